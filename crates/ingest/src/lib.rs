//! ingest: the webhook receiver.
//!
//! Verifies each Showpass delivery, publishes its raw body to JetStream with the headers the
//! contract lists, and answers 2xx only once JetStream has acknowledged it. Duplicates (by
//! idempotency key, detected by JetStream's `Nats-Msg-Id` window) are answered 200 and
//! recorded on the deliveries stream with every rejection.
#![forbid(unsafe_code)]

mod allowlist;
mod answer;
mod bindings;
mod config;
mod deliveries;
mod handler;
mod limits;
mod metrics;
mod server;
mod state;

pub use allowlist::{Allowlist, SHOWPASS_ADDRESSES};
pub use bindings::backfill as backfill_bindings;
pub use config::{ConfigError, DEFAULT_ENDPOINT, Endpoint, Endpoints, IngestConfig};
pub use server::run;
