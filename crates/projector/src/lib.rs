//! projector: consumes the event store and maintains the read models in PostgreSQL.
//!
//! Exactly-once effects: each batch of events is applied in one transaction together with the
//! processed-event markers and the stream checkpoint, or split by order into lanes applied at
//! once, the checkpoint moved after they all commit ([`apply_parallel`]); JetStream acks come
//! after the commit. A
//! redelivered event is recognised by its marker in the ledger (never by the checkpoint alone)
//! and changes nothing. No event can stop the stream: one that cannot be applied is recorded
//! `failed` with its reason (see [`apply`]).
#![forbid(unsafe_code)]

pub mod apply;
mod batch;
mod consumer;
pub mod erase;
pub mod invariants;
mod janitor;
mod meta;
mod pass;
pub mod plan;
mod rebuild;

pub use apply::{
    ApplyError, Incoming, SWAP_LOCK, Tally, apply_events, apply_parallel, apply_records,
    apply_records_resilient, apply_resilient,
};
pub use batch::{Batch, BatchLimits, MIN_SPLIT, Source};
pub use consumer::{
    DEFAULT_PARALLELISM, DELIVERIES_CONSUMER, EVENTS_CONSUMER, MAX_PARALLELISM, ProjectorConfig,
    run,
};
pub use janitor::expire_delivery_log;
pub use meta::Meta;
pub use pass::{Continuity, Filled, Pass, fill_batch, pass};
pub use rebuild::{RebuildReport, rebuild};
