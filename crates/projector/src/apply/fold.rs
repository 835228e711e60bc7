//! The pure part of applying a batch: ticket states and sales deltas.
//!
//! Both are commutative over the events of one ticket or order, so a refund that arrives
//! before its purchase ends in the same state as in order:
//! - a ticket's status only moves to a higher [`status_rank`];
//! - a ticket counts as sold once (+1 in its purchase's cell) and as cancelled once (−1 in its
//!   cancelling event's cell), and the −1 waits until the sale has been seen.

use std::collections::HashMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use rust_decimal::Decimal;

use crate::plan::{Invoice, Kind, Money, TicketIn, is_cancelled, status_rank};

/// A ticket row as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketRow {
    pub org_id: String,
    pub id: String,
    pub transaction_id: String,
    pub event_id: Option<String>,
    pub event_name: Option<String>,
    pub ticket_type_id: Option<String>,
    pub ticket_type_name: Option<String>,
    pub barcode: Option<String>,
    pub status: String,
    pub status_rank: i32,
    pub name_on_ticket: Option<String>,
    pub email_on_ticket: Option<String>,
    pub created_by_transfer: bool,
    pub sold: bool,
    pub cancelled: bool,
    /// Where the cancellation is counted: (bucket, payment type, currency).
    pub cancel_cell: Option<(DateTime<Utc>, String, String)>,
    pub updated_at: DateTime<Utc>,
}

/// The cell keys of the three sales tables.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cell {
    pub org_id: String,
    pub event_id: String,
    pub ticket_type_id: String,
    pub bucket: DateTime<Utc>,
    pub payment_type: String,
    pub currency: String,
}

/// What one cell gains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Acc {
    pub orders: i64,
    pub tickets: i64,
    pub gross_revenue: Decimal,
    pub net_sales: Decimal,
    pub service_fees: Decimal,
    pub total_tax: Decimal,
    pub discounts: Decimal,
    pub refunds: Decimal,
}

impl Acc {
    fn add_money(&mut self, kind: Kind, m: &Money) {
        // Purchases add; refunds and voids subtract the absolute value, whatever its sign.
        let signed = |v: Decimal| if kind.takes_money_back() { -v.abs() } else { v };
        self.gross_revenue += signed(m.gross_revenue);
        self.net_sales += signed(m.net_sales);
        self.service_fees += signed(m.service_fees);
        self.total_tax += signed(m.total_tax);
        self.discounts += signed(m.discounts);
        if kind.takes_money_back() {
            self.refunds += m.net_sales.abs();
        }
    }

    pub fn add(&mut self, o: &Acc) {
        self.orders += o.orders;
        self.tickets += o.tickets;
        self.gross_revenue += o.gross_revenue;
        self.net_sales += o.net_sales;
        self.service_fees += o.service_fees;
        self.total_tax += o.total_tax;
        self.discounts += o.discounts;
        self.refunds += o.refunds;
    }
}

/// The sales deltas of a batch, per table, at the finest grain each table keeps.
#[derive(Debug, Default)]
pub struct SalesDeltas {
    /// (org, event, ticket type, bucket, payment, currency)
    pub by_ticket_type: HashMap<Cell, Acc>,
    /// ticket type blanked
    pub by_event: HashMap<Cell, Acc>,
    /// event and ticket type blanked
    pub by_order_attrs: HashMap<Cell, Acc>,
}

/// A finest-grain cell's projections onto the event and order-attribute grains.
fn grains(cell: &Cell) -> (Cell, Cell) {
    let by_event = Cell {
        ticket_type_id: String::new(),
        ..cell.clone()
    };
    let by_attrs = Cell {
        event_id: String::new(),
        ..by_event.clone()
    };
    (by_event, by_attrs)
}

impl SalesDeltas {
    fn add(&mut self, cell: Cell, acc: Acc) {
        let (by_event, by_attrs) = grains(&cell);
        self.by_ticket_type.entry(cell).or_default().add(&acc);
        self.by_event.entry(by_event).or_default().add(&acc);
        self.by_order_attrs.entry(by_attrs).or_default().add(&acc);
    }

    /// Adds an order count, once per row of each table the order touches.
    fn add_order(&mut self, cells: &[Cell]) {
        let mut seen_tt = std::collections::HashSet::new();
        let mut seen_ev = std::collections::HashSet::new();
        let mut seen_attrs = std::collections::HashSet::new();
        for cell in cells {
            let (by_event, by_attrs) = grains(cell);
            if seen_tt.insert(cell.clone()) {
                self.by_ticket_type.entry(cell.clone()).or_default().orders += 1;
            }
            if seen_ev.insert(by_event.clone()) {
                self.by_event.entry(by_event).or_default().orders += 1;
            }
            if seen_attrs.insert(by_attrs.clone()) {
                self.by_order_attrs.entry(by_attrs).or_default().orders += 1;
            }
        }
    }
}

/// The 15-minute bucket a delivery falls in: fine enough for any time zone's days.
pub fn bucket(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::minutes(15)).unwrap_or(at)
}

/// The UTC midnight a bucket falls on: the key of the daily tier.
pub fn utc_day(bucket: DateTime<Utc>) -> DateTime<Utc> {
    bucket.duration_trunc(TimeDelta::days(1)).unwrap_or(bucket)
}

/// Applies one invoice's money to the deltas (from its lines, or itself when it has none).
pub fn add_invoice_money(deltas: &mut SalesDeltas, inv: &Invoice, received_at: DateTime<Utc>) {
    if !inv.kind.moves_money() {
        return;
    }
    let cell = |event: &Option<String>, tt: &Option<String>| Cell {
        org_id: inv.org_id.clone(),
        event_id: event.clone().unwrap_or_default(),
        ticket_type_id: tt.clone().unwrap_or_default(),
        bucket: bucket(received_at),
        payment_type: inv.payment_type.clone().unwrap_or_default(),
        currency: inv.currency.clone(),
    };
    let cells: Vec<Cell> = if inv.items.is_empty() {
        let c = cell(&None, &None);
        let mut acc = Acc::default();
        acc.add_money(inv.kind, &inv.money);
        deltas.add(c.clone(), acc);
        vec![c]
    } else {
        inv.items
            .iter()
            .map(|item| {
                let c = cell(&item.event_id, &item.ticket_type_id);
                let mut acc = Acc::default();
                acc.add_money(inv.kind, &item.money);
                deltas.add(c.clone(), acc);
                c
            })
            .collect()
    };
    if inv.kind == Kind::Purchase {
        deltas.add_order(&cells);
    }
}

/// Folds one event's view of a ticket into its row (creating it), recording sales deltas.
pub fn fold_ticket(
    rows: &mut HashMap<(String, String), TicketRow>,
    deltas: &mut SalesDeltas,
    inv: &Invoice,
    t: &TicketIn,
    received_at: DateTime<Utc>,
) {
    let rank = status_rank(&t.status);
    let row = rows
        .entry((inv.org_id.clone(), t.id.clone()))
        .or_insert_with(|| TicketRow {
            org_id: inv.org_id.clone(),
            id: t.id.clone(),
            transaction_id: inv.transaction_id.clone(),
            event_id: None,
            event_name: None,
            ticket_type_id: None,
            ticket_type_name: None,
            barcode: None,
            status: t.status.clone(),
            status_rank: rank,
            name_on_ticket: None,
            email_on_ticket: None,
            created_by_transfer: false,
            sold: false,
            cancelled: false,
            cancel_cell: None,
            updated_at: received_at,
        });
    if rank > row.status_rank {
        row.status = t.status.clone();
        row.status_rank = rank;
    }
    fill(&mut row.event_id, &t.event_id);
    fill(&mut row.event_name, &t.event_name);
    fill(&mut row.ticket_type_id, &t.ticket_type_id);
    fill(&mut row.ticket_type_name, &t.ticket_type_name);
    fill(&mut row.barcode, &t.barcode);
    fill(&mut row.name_on_ticket, &t.name_on_ticket);
    fill(&mut row.email_on_ticket, &t.email_on_ticket);
    row.created_by_transfer |= t.created_by_transfer;
    row.updated_at = row.updated_at.max(received_at);

    let ticket_cell = |row: &TicketRow, (b, p, c): (DateTime<Utc>, String, String)| Cell {
        org_id: row.org_id.clone(),
        event_id: row.event_id.clone().unwrap_or_default(),
        ticket_type_id: row.ticket_type_id.clone().unwrap_or_default(),
        bucket: b,
        payment_type: p,
        currency: c,
    };
    let here = (
        bucket(received_at),
        inv.payment_type.clone().unwrap_or_default(),
        inv.currency.clone(),
    );
    let one = |n: i64| Acc {
        tickets: n,
        ..Acc::default()
    };
    if inv.kind == Kind::Purchase && !row.sold {
        row.sold = true;
        deltas.add(ticket_cell(row, here.clone()), one(1));
        if let Some(cancel) = row.cancel_cell.clone() {
            deltas.add(ticket_cell(row, cancel), one(-1));
        }
    }
    if is_cancelled(&row.status) && !row.cancelled {
        row.cancelled = true;
        row.cancel_cell = Some(here.clone());
        if row.sold {
            deltas.add(ticket_cell(row, here), one(-1));
        }
    }
}

fn fill(slot: &mut Option<String>, value: &Option<String>) {
    if slot.is_none() {
        slot.clone_from(value);
    }
}

#[cfg(test)]
mod tests {
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
            add_invoice_money(&mut deltas, i, at);
            for t in &i.tickets {
                fold_ticket(&mut rows, &mut deltas, i, t, at);
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
        add_invoice_money(&mut deltas, &p, at);
        add_invoice_money(&mut deltas, &r, at);
        for item in &mut r.items {
            item.money.net_sales = item.money.net_sales.abs();
        }
        add_invoice_money(&mut deltas, &r, at);
        let total: Acc = deltas
            .by_order_attrs
            .values()
            .fold(Acc::default(), |mut a, b| {
                a.add(b);
                a
            });
        assert_eq!(total.orders, 1);
        assert_eq!(
            total.net_sales,
            Decimal::new(5840, 2) - Decimal::new(5840 * 2, 2)
        );
        assert_eq!(total.refunds, Decimal::new(5840 * 2, 2));
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
            utc_day(late),
            Utc.with_ymd_and_hms(2026, 1, 2, 0, 0, 0).unwrap()
        );
        let midnight = Utc.with_ymd_and_hms(2026, 1, 3, 0, 0, 0).unwrap();
        assert_eq!(utc_day(midnight), midnight);
    }
}
