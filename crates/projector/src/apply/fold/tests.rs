use super::*;
use crate::meta::Meta;
use crate::plan::{Decision, plan};
use chrono::TimeZone;
use showpass_payload::samples::{SampleIds, SampleKind, sample};

fn inv(kind: SampleKind, uuid: &str) -> Invoice {
    let ids = SampleIds {
        webhook_event_uuid: uuid,
        transaction_id: "t",
        organization_id: "20",
    };
    let body = serde_json::to_vec(&sample(kind, &ids)).unwrap();
    let meta = Meta::from_headers("S", 1, None, Utc.timestamp_opt(0, 0).unwrap());
    match plan(&meta, &body) {
        Decision::Apply(i) => *i,
        d => panic!("{d:?}"),
    }
}

/// Applies events in order and returns the net tickets and the ticket rows.
fn run(events: &[(Invoice, i64)]) -> (i64, Vec<TicketRow>) {
    let mut rows = HashMap::new();
    let mut deltas = SalesDeltas::default();
    for (i, at) in events {
        let at = Utc.timestamp_opt(*at, 0).unwrap();
        add_invoice_money(&mut deltas, i, &i.currency, at).unwrap();
        for t in &i.tickets {
            fold_ticket(&mut rows, &mut deltas, i, &i.currency, t, at).unwrap();
        }
    }
    let tickets = deltas.by_order_attrs.values().map(|a| a.tickets).sum();
    let mut rows: Vec<_> = rows.into_values().collect();
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    (tickets, rows)
}

#[test]
fn a_refund_before_its_purchase_ends_like_one_after_it() {
    let p = inv(SampleKind::Purchase, "p");
    let r = inv(SampleKind::Refund, "r");
    let (in_order, rows_a) = run(&[(p.clone(), 1_000), (r.clone(), 2_000)]);
    let (reversed, rows_b) = run(&[(r, 2_000), (p, 1_000)]);
    assert_eq!(in_order, 0);
    assert_eq!(reversed, 0);
    assert_eq!(rows_a, rows_b);
    assert!(rows_a.iter().all(|t| t.status == "refunded"));
}

#[test]
fn a_refund_without_its_purchase_counts_nothing() {
    assert_eq!(run(&[(inv(SampleKind::Refund, "r"), 0)]).0, 0);
}

#[test]
fn a_void_after_a_refund_does_not_take_the_tickets_away_twice() {
    let (n, rows) = run(&[
        (inv(SampleKind::Purchase, "p"), 0),
        (inv(SampleKind::Refund, "r"), 10),
        (inv(SampleKind::Void, "v"), 20),
    ]);
    assert_eq!(n, 0);
    assert!(rows.iter().all(|t| t.status == "voided"));
}

#[test]
fn a_transferred_ticket_still_counts_as_sold_and_never_moves_back() {
    let (n, rows) = run(&[
        (inv(SampleKind::Transferred, "x"), 10),
        (inv(SampleKind::Purchase, "p"), 0),
    ]);
    assert_eq!(n, 2);
    assert!(rows.iter().all(|t| t.status == "transferred"), "{rows:?}");
}

#[test]
fn refunds_subtract_absolute_amounts_whatever_their_sign() {
    let mut deltas = SalesDeltas::default();
    let at = Utc.timestamp_opt(0, 0).unwrap();
    let p = inv(SampleKind::Purchase, "p");
    let mut r = inv(SampleKind::Refund, "r");
    add_invoice_money(&mut deltas, &p, "CAD", at).unwrap();
    add_invoice_money(&mut deltas, &r, "CAD", at).unwrap();
    for item in &mut r.items {
        item.money.net_sales = item.money.net_sales.abs();
    }
    add_invoice_money(&mut deltas, &r, "CAD", at).unwrap();
    let total: Acc = deltas
        .by_order_attrs
        .values()
        .fold(Acc::default(), |mut a, b| {
            a.add(b).unwrap();
            a
        });
    assert_eq!(total.orders, 1);
    assert_eq!(
        total.net_sales,
        Decimal::new(5840, 2) - Decimal::new(5840 * 2, 2)
    );
    assert_eq!(total.refunds, Decimal::new(5840 * 2, 2));
}

/// Issue 11: sums that no longer fit are an error, never a panic.
#[test]
fn a_sum_that_overflows_is_an_error() {
    let mut deltas = SalesDeltas::default();
    let at = Utc.timestamp_opt(0, 0).unwrap();
    let mut p = inv(SampleKind::Purchase, "p");
    p.items[0].money.net_sales = Decimal::MAX;
    p.items.push(p.items[0].clone());
    assert_eq!(add_invoice_money(&mut deltas, &p, "CAD", at), Err(Overflow));
    let mut a = Acc {
        tickets: i64::MAX,
        ..Acc::default()
    };
    assert_eq!(
        a.add(&Acc {
            tickets: 1,
            ..Acc::default()
        }),
        Err(Overflow)
    );
}

/// Issue 11: a ticket refunded before its order's currency is known takes the sale's.
#[test]
fn a_cancellation_without_a_currency_takes_the_sales_currency() {
    let p = inv(SampleKind::Purchase, "p");
    let r = inv(SampleKind::Refund, "r");
    let mut rows = HashMap::new();
    let mut deltas = SalesDeltas::default();
    let at = Utc.timestamp_opt(0, 0).unwrap();
    for t in &r.tickets {
        fold_ticket(&mut rows, &mut deltas, &r, "", t, at).unwrap();
    }
    for t in &p.tickets {
        fold_ticket(&mut rows, &mut deltas, &p, "CAD", t, at).unwrap();
    }
    assert!(
        rows.values()
            .all(|t| t.cancel_cell.as_ref().unwrap().2 == "CAD")
    );
    assert!(deltas.by_order_attrs.keys().all(|c| c.currency == "CAD"));
    assert_eq!(
        deltas
            .by_order_attrs
            .values()
            .map(|a| a.tickets)
            .sum::<i64>(),
        0
    );
}

#[test]
fn buckets_are_quarter_hours() {
    let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 29, 59).unwrap();
    assert_eq!(
        bucket(at),
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 15, 0).unwrap()
    );
}

#[test]
fn the_daily_tier_keys_buckets_by_their_utc_midnight() {
    let late = Utc.with_ymd_and_hms(2026, 1, 2, 23, 45, 0).unwrap();
    assert_eq!(
        Tier::Day.bucket(late),
        Utc.with_ymd_and_hms(2026, 1, 2, 0, 0, 0).unwrap()
    );
    let midnight = Utc.with_ymd_and_hms(2026, 1, 3, 0, 0, 0).unwrap();
    assert_eq!(Tier::Day.bucket(midnight), midnight);
}
