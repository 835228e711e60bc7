//! What must hold for any event body whatever, run by the `plan_event` fuzz target (`fuzz/`)
//! and by the hostile-event tests on every build: planning never panics and answers either a
//! plan within the payload's bounds or a reason; folding what it plans, alone and after the
//! purchase of the same order, never panics and never overflows.

use std::collections::HashMap;

use chrono::{TimeZone, Utc};
use showpass_payload::limits::{MAX_AMOUNT, MAX_ID_BYTES, MAX_ITEMS};

use crate::apply::{Incoming, fold_events};
use crate::meta::Meta;
use crate::plan::{Decision, Invoice, Money, decide};

/// What the body came to, for the caller's statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planned {
    Applied,
    Test,
    Skipped,
    Failed,
}

/// Plans `body` and folds the plan. Panics on a violated invariant (the fuzzer's signal).
pub fn check(body: &[u8]) -> Planned {
    let meta = Meta::from_headers(
        "SHOWPASS_EVENTS",
        7,
        None,
        Utc.timestamp_opt(1_764_000_000, 0)
            .single()
            .unwrap_or_default(),
    );
    let decision = decide(&meta, body);
    let inv = match &decision {
        Decision::Apply(inv) => inv.as_ref(),
        Decision::Test => return Planned::Test,
        Decision::Skip(why) => {
            assert!(!why.is_empty(), "a skip without a reason");
            return Planned::Skipped;
        }
        Decision::Fail(why) => {
            assert!(!why.is_empty(), "a failure without a reason");
            return Planned::Failed;
        }
    };
    within_bounds(inv);
    let incoming = Incoming {
        meta: meta.clone(),
        decision: decision.clone(),
        body_sha256: showpass_payload::sha256_hex(body),
    };
    // Alone, as the first event of its order (a refund waits for its currency).
    let alone = [(&incoming, inv)];
    fold_events(HashMap::new(), HashMap::new(), HashMap::new(), &alone)
        .unwrap_or_else(|e| panic!("folding the event alone: {e}"));
    // After a purchase of the same order that shares its tickets, so cancellations, the
    // currency lookup and the order count all run.
    let mut purchase = inv.clone();
    purchase.kind = crate::plan::Kind::Purchase;
    purchase.key.push_str("-purchase");
    if purchase.currency.is_empty() {
        purchase.currency = "CAD".into();
    }
    let first = Incoming {
        meta: Meta {
            seq: 6,
            ..meta.clone()
        },
        decision: Decision::Apply(Box::new(purchase.clone())),
        body_sha256: String::new(),
    };
    let both = [(&first, &purchase), (&incoming, inv)];
    fold_events(HashMap::new(), HashMap::new(), HashMap::new(), &both)
        .unwrap_or_else(|e| panic!("folding the event after its purchase: {e}"));
    Planned::Applied
}

fn within_bounds(inv: &Invoice) {
    assert!(!inv.key.is_empty(), "an empty idempotency key");
    assert!(!inv.org_id.is_empty(), "an empty organization");
    assert!(
        inv.transaction_id.len() <= MAX_ID_BYTES,
        "an overlong transaction id"
    );
    assert!(inv.items.len() <= MAX_ITEMS, "{} lines", inv.items.len());
    assert!(
        inv.tickets.len() <= MAX_ITEMS,
        "{} tickets",
        inv.tickets.len()
    );
    let money = |m: &Money| {
        for v in [
            m.discounts,
            m.net_sales,
            m.service_fees,
            m.account_credit_applied,
            m.gross_revenue,
            m.organizer_fees,
            m.total_tax,
        ] {
            assert!(v.abs() <= MAX_AMOUNT, "amount {v} beyond the bound");
        }
    };
    money(&inv.money);
    for item in &inv.items {
        money(&item.money);
    }
    for t in &inv.tickets {
        assert!(t.id.len() <= MAX_ID_BYTES, "an overlong ticket id");
    }
}
