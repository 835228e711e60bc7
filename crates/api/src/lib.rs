//! api: the query API over the read models.
//!
//! Customers, orders, tickets, shows, sales and the delivery log, as JSON over REST with keyset
//! pagination, bearer keys, `application/problem+json` errors and an OpenAPI 3.1 document. It
//! reads PostgreSQL only; replay and the delivery payloads come from JetStream, the event store.
#![forbid(unsafe_code)]

mod auth;
mod config;
mod customers;
mod docs_page;
mod embed;
mod erasure;
mod error;
mod events;
mod flags;
mod health;
mod logs;
mod metrics;
mod money;
mod openapi;
mod ops;
mod orders;
mod page;
mod params;
mod params_doc;
mod routes;
mod sales;
mod server;
mod state;
mod tickets;

pub use auth::{ApiKey, KeyName, Role};
pub use config::{ApiConfig, ConfigError};
pub use embed::Embedded;

/// The queries behind the routes, callable without HTTP: the benchmark runs them beside the
/// API to show what the HTTP layer adds.
pub mod direct {
    pub use crate::customers::{CustomerOut, search_customers};
    pub use crate::orders::{OrderDetail, find_order};
    pub use crate::page::{CursorKey, Page};
    pub use crate::params::When;
    pub use crate::sales::{SalesFilters, SalesSummary, summarize};
    /// The api's own pool, with its session settings (statement timeout, search threshold,
    /// no JIT), so the direct side runs the same SQL the same way.
    pub use crate::server::pool;
}
pub use openapi::openapi;
pub use server::{run, run_with};
