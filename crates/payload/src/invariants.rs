//! What must hold for any bytes whatever, run by the fuzz target (`fuzz/`) and by the
//! hostile-input tests on every build: nothing panics, what the envelope accepts is keyed and
//! routed safely, and what parses survives a round trip through its canonical form.

use crate::{Delivery, Envelope, idempotency_key, signature, subject};

/// Runs `body` through everything ingest and the projector do with a body. Panics on a
/// violated invariant (that is the fuzzer's signal).
pub fn check(body: &[u8]) {
    if let Ok(envelope) = Envelope::parse(body) {
        let key = idempotency_key(&envelope, body);
        assert!(
            !key.is_empty() && !key.contains(['\r', '\n']),
            "key {key:?}"
        );
        let s = subject::event_subject(
            "showpass",
            envelope.organization_id.as_deref(),
            envelope.event_type.as_deref(),
        );
        assert_eq!(s.split('.').count(), 5, "{s}");
        assert!(!s.contains(['*', '>', ' ']), "{s}");
        let sig = signature::sign(b"k", &envelope.id);
        let parsed = signature::parse_header(sig.as_bytes()).expect("our own signature parses");
        assert!(signature::verify([b"k".as_slice()], &envelope.id, &parsed));
    }
    let _ = signature::parse_header(body);
    if let Ok(d) = Delivery::parse(body) {
        let canonical = serde_json::to_vec(&d).expect("a parsed delivery serializes");
        let again = Delivery::parse(&canonical).expect("canonical form parses");
        assert_eq!(d, again, "canonical round trip");
    }
}
