//! Any bytes through everything ingest and the projector do with a body: parse the envelope,
//! key it, name its subject, verify a signature, and parse the full delivery. Nothing may
//! panic, and what the envelope accepts must be keyed and routed safely
//! (`showpass_payload::invariants`, also run on every build by the hostile-input tests).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| showpass_payload::invariants::check(body));
