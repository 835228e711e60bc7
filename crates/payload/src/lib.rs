//! Showpass webhook deliveries as data: no I/O, so every service, test and fuzzer can use it.
//!
//! - [`Envelope`]: the few fields ingest needs, parsed fast and leniently from the raw body.
//! - [`Delivery`]: the whole typed payload for the projector, accepting every variation real
//!   traffic shows (money as numbers or strings, enums in any case, ids as numbers or strings,
//!   missing or null fields, unknown fields read past), within [`limits`].
//! - [`signature`]: `X-SHOWPASS-SIGNATURE`, hex HMAC-SHA1 of the payload's `id`.
//! - [`idempotency_key`] and [`subject`]: how a delivery is named on JetStream.
#![forbid(unsafe_code)]
#![recursion_limit = "256"]

mod delivery;
mod envelope;
pub mod headers;
mod idempotency;
pub mod invariants;
mod lenient;
pub mod limits;
pub mod samples;
pub mod signature;
pub mod subject;
pub mod vocab;

pub use delivery::{
    AccountCreditType, Amounts, Delivery, EventType, InvoiceData, InvoiceItem, InvoiceItemType,
    InvoiceType, PaymentType, TicketItem, TicketItemType, TicketStatus,
};
pub use envelope::{Envelope, EnvelopeError};
pub use idempotency::{idempotency_key, sha256_hex};
pub use lenient::{Lenient, parse_money};
pub use rust_decimal::Decimal;
