//! Any bytes through everything ingest and the projector do with a body: parse the envelope,
//! key it, name its subject, verify a signature, and parse the full delivery. Nothing may
//! panic, and what the envelope accepts must be keyed and routed safely.
#![no_main]

use libfuzzer_sys::fuzz_target;
use showpass_payload::{Delivery, Envelope, idempotency_key, signature, subject};

fuzz_target!(|body: &[u8]| {
    if let Ok(envelope) = Envelope::parse(body) {
        let key = idempotency_key(&envelope, body);
        assert!(!key.is_empty() && !key.contains(['\r', '\n']));
        let s = subject::event_subject(
            "showpass",
            envelope.organization_id.as_deref(),
            envelope.event_type.as_deref(),
        );
        assert_eq!(s.split('.').count(), 5, "{s}");
        assert!(!s.contains(['*', '>', ' ']));
        let sig = signature::sign(b"k", &envelope.id);
        let parsed = signature::parse_header(sig.as_bytes()).unwrap();
        assert!(signature::verify([b"k".as_slice()], &envelope.id, &parsed));
    }
    let _ = signature::parse_header(body);
    if let Ok(d) = Delivery::parse(body) {
        // What parses is written in canonical form and reads back as the same delivery.
        let canonical = serde_json::to_vec(&d).expect("a parsed delivery serializes");
        let again = Delivery::parse(&canonical).expect("canonical form parses");
        assert_eq!(d, again);
    }
});
