//! Prometheus metrics: request latency by route, method and status, and the platform's
//! health end to end (`showpass_*` gauges, refreshed by `health::refresh`).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::AppState;

type Labels = [(&'static str, String); 3];
type Latency = Family<Labels, Histogram, fn() -> Histogram>;

type Float = Gauge<f64, std::sync::atomic::AtomicU64>;
type Gauges = Family<Vec<(&'static str, String)>, Float>;

pub(crate) struct Metrics {
    registry: Registry,
    latency: Latency,
    health: HealthGauges,
}

/// The figures of `/v1/health`. Every label value comes from a bounded set: the configured
/// endpoints (only accepted, so signed, deliveries name one), the rejection reasons, the
/// streams, the kinds.
#[derive(Default)]
struct HealthGauges {
    last_accepted: Gauges,
    rejected: Gauges,
    lag_events: Gauges,
    lag_seconds: Gauges,
    failed: Float,
    gaps: Gauges,
    oldest_gap: Float,
    anomalies: Gauges,
}

fn histogram() -> Histogram {
    // 0.25 ms to about 8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let latency: Latency = Family::new_with_constructor(histogram);
        registry.sub_registry_with_prefix("showpass_api").register(
            "request_seconds",
            "Time to answer a request, by route, method and status",
            latency.clone(),
        );
        let health = HealthGauges::default();
        let h = &health;
        for (name, help, gauges) in [
            (
                "showpass_last_accepted_delivery_timestamp_seconds",
                "When each endpoint last accepted a delivery (Unix time)",
                &h.last_accepted,
            ),
            (
                "showpass_rejected_deliveries",
                "Deliveries rejected by reason, in the last hour and 24 hours (window)",
                &h.rejected,
            ),
            (
                "showpass_projector_lag_events",
                "Messages of each stream the projector has not applied yet",
                &h.lag_events,
            ),
            (
                "showpass_projector_lag_seconds",
                "Age of the oldest message of each stream the projector has not applied yet",
                &h.lag_seconds,
            ),
            ("showpass_gaps", "Open gaps by kind", &h.gaps),
            ("showpass_anomalies", "Anomalies by kind", &h.anomalies),
        ] {
            registry.register(name, help, gauges.clone());
        }
        registry.register(
            "showpass_failed_events",
            "Events the projector could not apply",
            h.failed.clone(),
        );
        registry.register(
            "showpass_oldest_gap_first_seen_timestamp_seconds",
            "When the oldest open gap was first seen (Unix time; 0 when there is none)",
            h.oldest_gap.clone(),
        );
        Self {
            registry,
            latency,
            health,
        }
    }

    /// Sets the health gauges to a fresh check's figures (label sets that went away go too).
    pub fn set_health(&self, h: &crate::health::HealthOut) {
        let g = &self.health;
        let unix = |t: chrono::DateTime<chrono::Utc>| t.timestamp_millis() as f64 / 1000.0;
        g.last_accepted.clear();
        for e in &h.endpoints {
            g.last_accepted
                .get_or_create(&vec![("endpoint", e.endpoint.clone())])
                .set(unix(e.last_accepted_at));
        }
        g.rejected.clear();
        for (window, counts) in [("1h", &h.rejected.last_hour), ("24h", &h.rejected.last_24h)] {
            for (reason, n) in counts {
                g.rejected
                    .get_or_create(&vec![("reason", reason.clone()), ("window", window.into())])
                    .set(*n as f64);
            }
        }
        g.lag_events.clear();
        g.lag_seconds.clear();
        for s in h.projector.iter().flat_map(|p| &p.streams) {
            let labels = vec![("stream", s.stream.clone())];
            g.lag_events.get_or_create(&labels).set(s.lag_events as f64);
            g.lag_seconds.get_or_create(&labels).set(s.lag_seconds);
        }
        g.failed.set(h.failed_events as f64);
        for (kinds, gauges) in [(&h.gaps, &g.gaps), (&h.anomalies, &g.anomalies)] {
            for (kind, n) in kinds {
                gauges
                    .get_or_create(&vec![("kind", kind.clone())])
                    .set(*n as f64);
            }
        }
        g.oldest_gap
            .set(h.oldest_gap_first_seen_at.map_or(0.0, unix));
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Times every request under its route template (never the raw path: ids would explode the
/// label set), its method (or `other`: a client may send any word as a method) and status.
/// Every label comes from a fixed set, so no request can add series without bound.
pub(crate) async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(req.method()).to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    state
        .metrics
        .latency
        .get_or_create(&[
            ("route", route),
            ("method", method),
            ("status", response.status().as_u16().to_string()),
        ])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// A request method as a label: the standard ones, else `other`.
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12: `curl -X BREW` no longer adds a label series per invented method.
    #[test]
    fn methods_outside_the_standard_set_share_one_label() {
        for m in ["BREW", "PROPFIND", "X"] {
            let m = axum::http::Method::from_bytes(m.as_bytes()).unwrap();
            assert_eq!(method_label(&m), "other");
        }
        assert_eq!(method_label(&axum::http::Method::GET), "GET");
    }
}
