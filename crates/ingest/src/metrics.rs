//! Prometheus metrics: requests by outcome and reason, JetStream publish latency, and records
//! the delivery log had to drop.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use showpass_payload::vocab::{Outcome, Reason};

type Labels = [(&'static str, &'static str); 2];

pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    /// The hot paths' counters, resolved once instead of looked up per request.
    pub accepted: Counter,
    pub duplicate: Counter,
    pub publish_seconds: Histogram,
    pub log_dropped: Counter,
    /// Rejections past their source's record rate: counted, not recorded.
    pub unrecorded: Counter,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("showpass_ingest");
        let requests = Family::<Labels, Counter>::default();
        registry.register(
            "requests",
            "Webhook requests answered, by outcome and reason",
            requests.clone(),
        );
        // 0.25 ms to about 4 s.
        let publish_seconds = Histogram::new(exponential_buckets(0.000_25, 2.0, 15));
        registry.register(
            "publish_seconds",
            "Time from publishing to JetStream until its ack",
            publish_seconds.clone(),
        );
        let log_dropped = Counter::default();
        registry.register(
            "delivery_log_dropped",
            "Delivery-log records dropped because the log's queue was full",
            log_dropped.clone(),
        );
        let unrecorded = Counter::default();
        registry.register(
            "rejections_unrecorded",
            "Rejections not recorded in the delivery log: their source, or all sources together, exceeded the record rate",
            unrecorded.clone(),
        );
        let accepted = requests
            .get_or_create(&[
                ("outcome", Outcome::Accepted.as_str()),
                ("reason", "published"),
            ])
            .clone();
        let duplicate = requests
            .get_or_create(&[
                ("outcome", Outcome::Duplicate.as_str()),
                ("reason", "already_accepted"),
            ])
            .clone();
        Self {
            registry,
            requests,
            accepted,
            duplicate,
            publish_seconds,
            log_dropped,
            unrecorded,
        }
    }

    /// Counts a refused request.
    pub fn rejected(&self, reason: Reason) {
        self.requests
            .get_or_create(&[
                ("outcome", Outcome::Rejected.as_str()),
                ("reason", reason.as_str()),
            ])
            .inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
