//! The HTTP server: routes, state, and the run loop with graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::connection::State as NatsState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use showpass_core::nats;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;

use crate::IngestConfig;
use crate::bindings::Bindings;
use crate::deliveries;
use crate::handler::{receive_default, receive_named};
use crate::limits::{BodyBudget, RecordRate};
use crate::metrics::Metrics;
use crate::state::{AppState, Inner};
use showpass_core::http::MetricsAt;

/// The routes of ingest.
pub(crate) fn router(state: AppState) -> Router {
    // Backstop for anything the handler's own deadlines do not cover.
    let deadline = state.config.request_timeout + Duration::from_secs(1);
    let mut router = Router::new()
        .route("/webhooks/showpass", post(receive_default))
        .route("/webhooks/showpass/{endpoint}", post(receive_named))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    if matches!(state.config.metrics, MetricsAt::Public) {
        router = router.route("/metrics", get(metrics));
    }
    router
        // The handler enforces the body limit itself, to answer and log a 413 its own way.
        .layer(DefaultBodyLimit::disable())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            deadline,
        ))
        .with_state(state)
}

/// Runs ingest on `listener` until `shutdown` fires, then lets in-flight requests finish and
/// flushes the delivery log.
pub async fn run(
    config: IngestConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    config.nats.validate()?;
    let client = nats::connect(&config.nats, "showpass-ingest").await?;
    let js = nats::jetstream(client.clone(), config.publish_timeout);
    nats::ensure_streams_until_ready(&js, &config.nats, &shutdown).await?;
    nats::check_server(&client)?;
    warn_if_body_limit_exceeds_max_payload(&client, config.body_limit);

    let metrics = Arc::new(Metrics::new());
    if let MetricsAt::Private(hub) = &config.metrics {
        let m = metrics.clone();
        hub.set("ingest", Arc::new(move || m.render()));
    }
    let (log, log_task) = deliveries::spawn(
        js.clone(),
        10_000,
        config.log_queue_bytes,
        config.publish_timeout,
        metrics.clone(),
    );
    let bucket = config.nats.bindings_bucket();
    let bindings = Bindings::new(
        js.get_key_value(&bucket)
            .await
            .with_context(|| format!("opening the key-value bucket {bucket}"))?,
    );
    let endpoints: Vec<_> = config.endpoints.names().map(str::to_owned).collect();
    let unbound: Vec<_> = config.endpoints.unbound().map(str::to_owned).collect();
    if !unbound.is_empty() {
        tracing::warn!(
            endpoints = ?unbound,
            "these endpoints accept deliveries for any organization: a captured signature can be \
             replayed for another one; bind them (SHOWPASS_ENDPOINTS name=secret@ORG, \
             SHOWPASS_WEBHOOK_ORGS for the default endpoint)"
        );
    }
    let state = AppState(Arc::new(Inner {
        rejections: RecordRate::new(
            config.rejection_records_per_minute,
            config.rejection_records_total_per_minute,
        ),
        signed_rejections: RecordRate::new(
            config.rejection_records_per_minute,
            config.rejection_records_total_per_minute,
        ),
        budget: BodyBudget::new(config.body_budget),
        config,
        client: client.clone(),
        js,
        metrics,
        log,
        bindings,
    }));
    let addr = listener
        .local_addr()
        .context("reading the listen address")?;
    tracing::info!(%addr, ?endpoints, "ingest listening");
    let limits = state.config.http;
    let serve = showpass_core::http::serve(listener, router(state), limits, shutdown.clone());
    tokio::select! {
        served = serve => served.context("serving HTTP")?,
        refused = nats::watch_server(client.clone()) => {
            shutdown.cancel();
            return Err(refused);
        }
    }

    // Every request is answered and the router (holding the log's sender) is gone: drain.
    if tokio::time::timeout(Duration::from_secs(10), log_task)
        .await
        .is_err()
    {
        tracing::warn!("delivery log not drained within 10s");
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), client.flush()).await;
    tracing::info!("ingest stopped");
    Ok(())
}

fn warn_if_body_limit_exceeds_max_payload(client: &async_nats::Client, body_limit: usize) {
    // Headers take up to about 2 KiB of the server's max_payload.
    let max = client.server_info().max_payload;
    if max != 0 && body_limit + 2048 > max {
        tracing::warn!(
            body_limit,
            max_payload = max,
            "INGEST_BODY_LIMIT plus headers exceeds the NATS server's max_payload; \
             bodies near the limit will be answered 413 (raise max_payload to 2MB on the server)"
        );
    }
}

async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    let connected = state.client.connection_state() == NatsState::Connected;
    let stream = state.config.nats.events_stream();
    let stream_present = connected
        && tokio::time::timeout(Duration::from_secs(2), state.js.get_stream(&stream))
            .await
            .is_ok_and(|r| r.is_ok());
    let status = if stream_present {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if stream_present { "ready" } else { "not_ready" },
        "nats_connected": connected,
        "stream": stream,
        "stream_present": stream_present,
    });
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    showpass_core::http::metrics_response(state.metrics.render())
}
