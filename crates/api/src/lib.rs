//! api: the query API over the read models.
//!
//! Customers, orders, tickets, shows, sales and the delivery log, as JSON over REST with keyset
//! pagination, bearer keys, `application/problem+json` errors and an OpenAPI 3.1 document. It
//! reads PostgreSQL only; replay and the delivery payloads come from JetStream, the event store.
#![forbid(unsafe_code)]

mod auth;
mod config;
mod customers;
mod error;
mod events;
mod logs;
mod metrics;
mod money;
mod openapi;
mod ops;
mod orders;
mod page;
mod params;
mod sales;
mod server;
mod tickets;

pub use config::{ApiConfig, ConfigError};
pub use openapi::openapi;
pub use server::run;
