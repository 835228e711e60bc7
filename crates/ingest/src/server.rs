//! The HTTP server: routes, state, and the run loop with graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::connection::State as NatsState;
use async_nats::jetstream;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use serde_json::json;
use showpass_core::nats;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;

use crate::IngestConfig;
use crate::deliveries::{self, DeliveryLog};
use crate::handler::{receive_default, receive_named};
use crate::metrics::Metrics;

/// Shared by every request; one `Arc`, so handing it to a request is one atomic increment.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) config: IngestConfig,
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) log: DeliveryLog,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The routes of ingest.
pub(crate) fn router(state: AppState) -> Router {
    // Backstop for anything the handler's own deadlines do not cover.
    let deadline = state.config.request_timeout + Duration::from_secs(1);
    Router::new()
        .route("/webhooks/showpass", post(receive_default))
        .route("/webhooks/showpass/{endpoint}", post(receive_named))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
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
    let (log, log_task) =
        deliveries::spawn(js.clone(), 10_000, config.publish_timeout, metrics.clone());
    let endpoints: Vec<_> = config.endpoints.names().map(str::to_owned).collect();
    let state = AppState(Arc::new(Inner {
        config,
        client: client.clone(),
        js,
        metrics,
        log,
    }));
    let addr = listener
        .local_addr()
        .context("reading the listen address")?;
    tracing::info!(%addr, ?endpoints, "ingest listening");
    // Answers are small and latency matters: no Nagle delay on them.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    let serve = axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned());
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
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
