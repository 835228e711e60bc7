//! Hostile bodies through the parser: a fixed corpus of the nastiest shapes, then a seeded
//! mutational fuzz run over real deliveries. The same invariants as the `cargo fuzz` target
//! (`showpass_payload::invariants::check`), on the stable toolchain, on every build.

use showpass_payload::invariants::check;
use showpass_payload::samples::{self, SampleIds, SampleKind};
use showpass_payload::{Delivery, Envelope};

fn sample(kind: SampleKind) -> Vec<u8> {
    let ids = SampleIds {
        webhook_event_uuid: "6f0c1f5e-6a55-4c5e-9a43-4b1e0f7d2a11",
        transaction_id: "T-1",
        organization_id: "20",
    };
    serde_json::to_vec(&samples::sample(kind, &ids)).unwrap()
}

/// The shapes a hostile sender tries first.
fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let sample = sample(SampleKind::Purchase);
    let mut huge_string = br#"{"id":"x","data":{"customer_name":""#.to_vec();
    huge_string.extend(std::iter::repeat_n(b'a', 1 << 20));
    huge_string.extend(br#""}}"#);
    vec![
        ("empty", Vec::new()),
        ("nesting 100,000 deep", {
            let mut b = b"[".repeat(100_000);
            b.extend(b"]".repeat(100_000));
            b
        }),
        ("nesting 100,000 deep inside data", {
            let mut b = br#"{"id":"x","data":"#.to_vec();
            b.extend(b"{\"a\":".repeat(100_000));
            b.extend(b"1");
            b.extend(b"}".repeat(100_000));
            b.extend(b"}");
            b
        }),
        ("a 1 MiB string", huge_string),
        (
            "invalid UTF-8",
            b"{\"id\":\"\xff\xfe\xfd\",\"data\":{}}".to_vec(),
        ),
        (
            "a lone surrogate escape",
            br#"{"id":"\ud800","data":{}}"#.to_vec(),
        ),
        (
            "NUL bytes",
            b"{\"id\":\"a\0b\",\"data\":{\"customer_name\":\"\\u0000\"}}".to_vec(),
        ),
        (
            "1e400",
            br#"{"id":"x","data":{"net_sales":1e400,"gross_revenue":-1e400}}"#.to_vec(),
        ),
        (
            "-0",
            br#"{"id":"x","data":{"net_sales":-0,"discounts":"-0.00"}}"#.to_vec(),
        ),
        (
            "duplicate keys",
            br#"{"id":"a","id":"b","event_type":"invoice.purchase","event_type":"invoice.refund"}"#
                .to_vec(),
        ),
        (
            "an id that is not a string",
            br#"{"id":{"$ne":null}}"#.to_vec(),
        ),
        (
            "subject wildcards in the organization",
            br#"{"id":"x","event_type":"invoice.*","data":{"showpass_organization_id":"> 20.*"}}"#
                .to_vec(),
        ),
        (
            "a byte-order mark",
            [b"\xef\xbb\xbf".as_slice(), &sample].concat(),
        ),
        ("trailing garbage", [sample.as_slice(), b"}}}"].concat()),
        ("the sample", sample),
    ]
}

#[test]
fn every_hostile_body_is_refused_or_parsed_and_never_panics() {
    for (name, body) in corpus() {
        let outcome = std::panic::catch_unwind(|| check(&body));
        assert!(outcome.is_ok(), "{name} broke an invariant");
    }
}

#[test]
fn what_the_envelope_cannot_use_it_refuses() {
    let corpus = corpus();
    let body = |name: &str| &corpus.iter().find(|(n, _)| *n == name).unwrap().1;
    for name in [
        "empty",
        "nesting 100,000 deep",
        "invalid UTF-8",
        "an id that is not a string",
    ] {
        assert!(Envelope::parse(body(name)).is_err(), "{name} was accepted");
    }
    // Numbers beyond any currency are refused by the full parser, not rounded to infinity.
    assert!(Delivery::parse(body("1e400")).is_err());
    assert!(Delivery::parse(body("the sample")).is_ok());
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

const TOKENS: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"1e400",
    b"-0",
    b"\\u0000",
    b"\\ud800",
    b"\xff",
    b"\0",
    b"\"id\":",
    b"\"data\":{",
    b"999999999999999999999999",
    b"0.005",
    b"\"\"",
];

fn mutate(rng: &mut Rng, body: &mut Vec<u8>) {
    for _ in 0..=rng.below(8) {
        let at = rng.below(body.len() + 1);
        match rng.below(5) {
            0 if !body.is_empty() => {
                let i = rng.below(body.len());
                body[i] ^= 1 << rng.below(8);
            }
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                body.splice(at..at, token.iter().copied());
            }
            2 if at < body.len() => {
                let end = (at + rng.below(64)).min(body.len());
                body.drain(at..end);
            }
            3 if at < body.len() => {
                let end = (at + rng.below(256)).min(body.len());
                let copy = body[at..end].to_vec();
                body.splice(at..at, copy);
            }
            _ => body.insert(at.min(body.len()), rng.next() as u8),
        }
    }
}

/// A fixed budget of mutated real deliveries (every sample kind, both documented payloads).
#[test]
fn a_seeded_fuzz_budget_over_real_deliveries_breaks_nothing() {
    let mut seeds: Vec<Vec<u8>> = SampleKind::ALL.into_iter().map(sample).collect();
    seeds.push(samples::DOC_2023.to_vec());
    seeds.push(samples::DOC_2026.to_vec());
    let budget: usize = std::env::var("FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut rng = Rng(0x5eed_5eed_5eed_5eed);
    let mut parsed = 0;
    for i in 0..budget {
        let mut body = seeds[rng.below(seeds.len())].clone();
        mutate(&mut rng, &mut body);
        let outcome = std::panic::catch_unwind(|| check(&body));
        assert!(
            outcome.is_ok(),
            "iteration {i} broke an invariant on {:?}",
            String::from_utf8_lossy(&body)
        );
        parsed += usize::from(Delivery::parse(&body).is_ok());
    }
    // The mutations must not be so destructive that nothing parses (the test would then only
    // exercise the error paths).
    assert!(
        parsed > budget / 20,
        "only {parsed} of {budget} mutated bodies parsed"
    );
}
