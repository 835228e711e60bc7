//! Any bytes as a signed event through the projector's pure path: plan it, fold what it
//! plans alone and after a purchase of its order. Nothing may panic or overflow, and a plan
//! stays within the payload's bounds (`showpass_projector::invariants`, also run on every
//! build by `crates/projector/tests/hostile_events.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    showpass_projector::invariants::check(body);
});
