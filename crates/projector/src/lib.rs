//! projector: consumes the event store and maintains the read models in PostgreSQL.
//!
//! Exactly-once effects: each batch of events is applied in one transaction together with the
//! processed-event markers and the stream checkpoint; JetStream acks come after the commit. A
//! redelivered event is recognised by the checkpoint or its marker and changes nothing.
#![forbid(unsafe_code)]

pub mod apply;
mod consumer;
mod meta;
pub mod plan;
mod rebuild;

pub use apply::{Incoming, SWAP_LOCK, Tally, apply_events, apply_records};
pub use consumer::{DELIVERIES_CONSUMER, EVENTS_CONSUMER, ProjectorConfig, run};
pub use meta::Meta;
pub use rebuild::{RebuildReport, rebuild};
