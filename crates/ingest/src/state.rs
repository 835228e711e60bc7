//! What every request shares: one `Arc`, so handing it to a request is one atomic increment.

use std::sync::Arc;

use async_nats::jetstream;

use crate::IngestConfig;
use crate::bindings::Bindings;
use crate::deliveries::DeliveryLog;
use crate::limits::{BodyBudget, RecordRate};
use crate::metrics::Metrics;

#[derive(Clone)]
pub(crate) struct AppState(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub config: IngestConfig,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub metrics: Arc<Metrics>,
    pub log: DeliveryLog,
    /// Which refusals of unsigned (or wrongly signed) requests are recorded.
    pub rejections: RecordRate,
    /// Which refusals of verified deliveries are recorded: a rate of their own, so a flood of
    /// junk cannot hide an attempt with a captured signature.
    pub signed_rejections: RecordRate,
    /// Memory for bodies being read.
    pub budget: BodyBudget,
    /// Each signed id's organization.
    pub bindings: Bindings,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
