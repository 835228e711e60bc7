//! Prometheus metrics: request latency by route, method and status.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::AppState;

type Labels = [(&'static str, String); 3];
type Latency = Family<Labels, Histogram, fn() -> Histogram>;

pub(crate) struct Metrics {
    registry: Registry,
    latency: Latency,
}

fn histogram() -> Histogram {
    // 0.25 ms to about 8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("showpass_api");
        let latency: Latency = Family::new_with_constructor(histogram);
        registry.register(
            "request_seconds",
            "Time to answer a request, by route, method and status",
            latency.clone(),
        );
        Self { registry, latency }
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
