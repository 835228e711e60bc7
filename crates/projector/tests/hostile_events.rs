//! Hostile signed events through the projector's plan and fold: the cases that broke it, then
//! a seeded structural fuzz run over real deliveries (extreme and negative numbers, huge
//! arrays, wrong types, missing fields, unknown event types). The same invariants as the
//! `plan_event` fuzz target (`showpass_projector::invariants::check`), on every build.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use showpass_payload::samples::{self, SampleIds, SampleKind};
use showpass_projector::invariants::{Planned, check};

fn sample(kind: SampleKind) -> Value {
    let ids = SampleIds {
        webhook_event_uuid: "6f0c1f5e-6a55-4c5e-9a43-4b1e0f7d2a11",
        transaction_id: "T-1",
        organization_id: "20",
    };
    samples::sample(kind, &ids)
}

/// Runs `check`, counting panics even where the projector would have caught them.
fn checked(body: &[u8]) -> Result<Planned, String> {
    std::panic::catch_unwind(|| check(body)).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default()
    })
}

/// The signed body of issue 11: two lines whose sum overflowed the sales fold.
fn the_overflowing_purchase() -> Vec<u8> {
    let mut v = sample(SampleKind::Purchase);
    let line = v["data"]["invoice_items"][0].clone();
    v["data"]["invoice_items"] = json!([line.clone(), line]);
    for line in v["data"]["invoice_items"].as_array_mut().unwrap() {
        line["net_sales"] = "79228162514264337593543950335".into();
    }
    serde_json::to_vec(&v).unwrap()
}

fn with(kind: SampleKind, f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = sample(kind);
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn the_body_that_overflowed_the_fold_fails_cleanly() {
    assert_eq!(checked(&the_overflowing_purchase()), Ok(Planned::Failed));
}

#[test]
fn every_hostile_event_is_planned_or_refused_and_never_panics() {
    let many = |n: usize, item: Value| Value::Array(vec![item; n]);
    let ticket = sample(SampleKind::Purchase)["data"]["ticket_items"][0].clone();
    let line = sample(SampleKind::Purchase)["data"]["invoice_items"][0].clone();
    let cases: Vec<(&str, Vec<u8>, Planned)> = vec![
        ("the overflow of issue 11", the_overflowing_purchase(), Planned::Failed),
        (
            "100,000 tickets",
            with(SampleKind::Purchase, |v| {
                v["data"]["ticket_items"] = many(100_000, json!({"id": 1}))
            }),
            Planned::Failed,
        ),
        (
            "10,000 real tickets and 10,000 lines, the most accepted",
            with(SampleKind::Purchase, |v| {
                let tickets: Vec<Value> = (0..10_000)
                    .map(|i| {
                        let mut t = ticket.clone();
                        t["id"] = i.into();
                        t
                    })
                    .collect();
                v["data"]["ticket_items"] = Value::Array(tickets);
                v["data"]["invoice_items"] = many(10_000, line.clone());
            }),
            Planned::Applied,
        ),
        (
            "a trillion on every line of a refund",
            with(SampleKind::Refund, |v| {
                v["data"]["invoice_items"] = many(
                    10_000,
                    json!({"net_sales": "-1000000000000", "gross_revenue": 1e12}),
                );
            }),
            Planned::Applied,
        ),
        (
            "a quantity beyond a million",
            with(SampleKind::Purchase, |v| {
                v["data"]["invoice_items"][0]["quantity"] = 1e7.into()
            }),
            Planned::Failed,
        ),
        (
            "money as an object",
            with(SampleKind::Purchase, |v| v["data"]["net_sales"] = json!({"$gt": 0})),
            Planned::Failed,
        ),
        (
            "tickets as a string",
            with(SampleKind::Purchase, |v| v["data"]["ticket_items"] = "all".into()),
            Planned::Failed,
        ),
        (
            "no data",
            with(SampleKind::Refund, |v| {
                v.as_object_mut().unwrap().remove("data");
            }),
            Planned::Failed,
        ),
        (
            "an unknown event type",
            with(SampleKind::Purchase, |v| v["event_type"] = "invoice.exchange".into()),
            Planned::Skipped,
        ),
        (
            "an event type that is a number",
            with(SampleKind::Purchase, |v| v["event_type"] = 7.into()),
            Planned::Skipped,
        ),
        (
            "an overlong ticket id",
            with(SampleKind::Purchase, |v| {
                v["data"]["ticket_items"][0]["id"] = "9".repeat(300).into()
            }),
            Planned::Failed,
        ),
        (
            "a repeated top-level key",
            br#"{"id":"T","event_type":"invoice.purchase","event_type":"invoice.refund","data":{"transaction_id":"T"}}"#.to_vec(),
            Planned::Failed,
        ),
        (
            "a refund with no currency and negative amounts",
            with(SampleKind::Refund, |v| {
                v["data"].as_object_mut().unwrap().remove("currency");
            }),
            Planned::Applied,
        ),
        ("not JSON", b"\xff{".to_vec(), Planned::Failed),
    ];
    for (name, body, expected) in cases {
        assert_eq!(checked(&body), Ok(expected), "{name}");
    }
}

/// xorshift64*: deterministic, so a failure reproduces from its iteration number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values a hostile sender puts where the payload expects something else.
fn hostile_value(rng: &mut Rng) -> Value {
    match rng.below(16) {
        0 => "79228162514264337593543950335".into(),
        1 => "-999999999999.99".into(),
        2 => json!(-1e12),
        3 => json!(1e300),
        4 => json!(-0.0),
        5 => "NaN".into(),
        6 => json!(true),
        7 => Value::Null,
        8 => json!([]),
        9 => json!({}),
        10 => "x".repeat(rng.below(600)).into(),
        11 => json!(i64::MIN),
        12 => json!(u64::MAX),
        13 => "0.0000000000000000000000000001".into(),
        14 => json!([[[[{"a": [1]}]]]]),
        _ => format!("{}", rng.next()).into(),
    }
}

/// One structural change somewhere in the tree.
fn mutate(rng: &mut Rng, v: &mut Value, depth: usize) {
    match v {
        Value::Object(map) if !map.is_empty() && depth < 6 && rng.below(4) != 0 => {
            let key = map.keys().nth(rng.below(map.len())).cloned().unwrap();
            match rng.below(6) {
                0 => {
                    map.remove(&key);
                }
                1 => {
                    map.insert(key, hostile_value(rng));
                }
                _ => mutate(rng, map.get_mut(&key).unwrap(), depth + 1),
            }
        }
        Value::Array(items) if !items.is_empty() && depth < 6 && rng.below(4) != 0 => {
            match rng.below(5) {
                // Grow the list: many copies of one element.
                0 => {
                    let copy = items[rng.below(items.len())].clone();
                    let n = [2, 50, 2_000, 12_000][rng.below(4)];
                    items.extend(std::iter::repeat_n(copy, n));
                }
                1 => {
                    items.remove(rng.below(items.len()));
                }
                _ => {
                    let i = rng.below(items.len());
                    mutate(rng, &mut items[i], depth + 1);
                }
            }
        }
        other => *other = hostile_value(rng),
    }
}

/// A fixed budget of structurally mutated real deliveries (every kind, both documented
/// payloads); `FUZZ_ITERATIONS` sets it.
#[test]
fn a_seeded_fuzz_budget_over_real_events_breaks_no_invariant() {
    let mut seeds: Vec<Value> = SampleKind::ALL.into_iter().map(sample).collect();
    seeds.push(serde_json::from_slice(samples::DOC_2023).unwrap());
    seeds.push(serde_json::from_slice(samples::DOC_2026).unwrap());
    let budget: usize = std::env::var("FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000);
    let mut rng = Rng(0x0b5e_55ed_c0ff_ee11);
    let planned = [
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    ];
    for i in 0..budget {
        let mut v = seeds[rng.below(seeds.len())].clone();
        for _ in 0..=rng.below(4) {
            mutate(&mut rng, &mut v, 0);
        }
        if v.is_object() && rng.below(8) == 0 {
            v["event_type"] =
                ["invoice.refund", "invoice.void", "invoice.transferred"][rng.below(3)].into();
        }
        let body = serde_json::to_vec(&v).unwrap();
        match checked(&body) {
            Ok(p) => planned[p as usize].fetch_add(1, Ordering::Relaxed),
            Err(e) => panic!(
                "iteration {i} broke an invariant ({e}) on {}",
                String::from_utf8_lossy(&body[..body.len().min(2_000)])
            ),
        };
    }
    // Both sides must be exercised: plenty applied, plenty refused.
    let [applied, _, _, failed] = planned.map(|n| n.into_inner());
    assert!(applied > budget / 10, "only {applied} of {budget} applied");
    assert!(failed > budget / 20, "only {failed} of {budget} failed");
}
