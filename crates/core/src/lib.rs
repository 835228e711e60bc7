//! What every showpass service needs: NATS connection and stream provisioning, telemetry,
//! shutdown, and a secret type that cannot be printed.
#![forbid(unsafe_code)]

pub mod http;
pub mod nats;
pub mod replay;
mod secret;
pub mod shutdown;
pub mod supervise;
pub mod telemetry;

pub use secret::Secret;
pub use tokio_util::sync::CancellationToken;
