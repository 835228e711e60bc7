//! The api against the real NATS and PostgreSQL: deliveries go in through ingest, the projector
//! builds the read models, and every route is read back over HTTP. One test binary, a module
//! per resource.

mod access;
mod common;
mod logs;
mod paging;
mod resources;
mod sales;
mod trust;
