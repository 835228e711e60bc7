//! Serving: the router, the pools, and `run`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, StatusCode, header};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;

use crate::config::ApiConfig;
use crate::embed::Embedded;
use crate::routes::Routes;
use crate::state::AppState;
use crate::{
    auth, customers, erasure, events, flags, health, logs, metrics, ops, orders, sales, tickets,
};
use showpass_core::CancellationToken;
use showpass_core::http::MetricsAt;

/// Every `/v1` route, each from its handler's documentation.
pub(crate) fn v1_routes() -> Routes {
    customers::routes()
        .merge(erasure::routes())
        .merge(orders::routes())
        .merge(tickets::routes())
        .merge(events::routes())
        .merge(sales::routes())
        .merge(logs::routes())
        .merge(flags::routes())
        .merge(health::routes())
}

/// `/v1`'s routes and its fallback, without the key check.
pub(crate) fn v1_router() -> Router<AppState> {
    v1_routes().router().fallback(|| async {
        crate::error::ApiError::NotFound("no such route under /v1; see /docs".into())
    })
}

/// The whole API: `/v1` behind the keys; docs, health and metrics open; and `extra` (the
/// console), which authenticates its own requests.
pub(crate) fn router(state: AppState, extra: Router) -> Router {
    let v1 = v1_router().route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::require_key,
    ));
    let cors = cors(&state.config.cors_origins);
    let timeout = state.config.request_timeout;
    let body_limit = state.config.body_limit;
    let public_metrics = matches!(state.config.metrics, MetricsAt::Public);
    Router::new()
        .nest("/v1", v1)
        .merge(ops::routes(public_metrics).router())
        .merge(crate::openapi::router())
        .with_state(state.clone())
        .merge(extra)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(cors)
}

fn cors(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::ACCEPT, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(3600));
    if origins.iter().any(|o| o == "*") {
        layer.allow_origin(AllowOrigin::any())
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        layer.allow_origin(AllowOrigin::list(list))
    }
}

/// Opens the pool: a bounded statement time so a slow query answers 503, not a hung client,
/// and no JIT compilation. The api's queries are short index scans whose plans can still cost
/// above `jit_above_cost` (a correlated label lookup per group): compiling them took ~340 ms
/// of a 9 ms summary on the benchmark's data, at every request.
pub fn pool(config: &ApiConfig) -> anyhow::Result<PgPool> {
    pool_of(config, config.pool_size, config.request_timeout)
}

/// The CSV exports' pool: few connections, so exports cannot take the queries' connections,
/// and a statement time of their own, long enough for a large export.
fn export_pool(config: &ApiConfig) -> anyhow::Result<PgPool> {
    pool_of(config, config.export_connections, config.export_timeout)
}

fn pool_of(config: &ApiConfig, size: u32, timeout: Duration) -> anyhow::Result<PgPool> {
    let statement_timeout = timeout.as_millis().max(1000).to_string();
    let options = config.database_url.options().options([
        ("statement_timeout", statement_timeout.as_str()),
        // Typo tolerance of customer search (`<%`): lower than the 0.6 default, so one
        // transposed letter in a short name still matches.
        ("pg_trgm.word_similarity_threshold", "0.5"),
        ("jit", "off"),
        ("application_name", "showpass-api"),
    ]);
    Ok(PgPoolOptions::new()
        .max_connections(size.max(1))
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options))
}

/// Serves the API on `listener` until `shutdown`.
pub async fn run(
    config: ApiConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_with(config, listener, shutdown, |_| Router::new()).await
}

/// Serves the API and, beside it, what `mount` builds from the embedded api (the console).
pub async fn run_with(
    config: ApiConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
    mount: impl FnOnce(Embedded) -> Router,
) -> anyhow::Result<()> {
    config.validate()?;
    if config.insecure && config.keys.is_empty() {
        tracing::warn!("API started insecure: /v1 answers anyone, without a key");
    }
    let pool = pool(&config)?;
    let export_pool = export_pool(&config)?;
    let js = match &config.nats {
        Some(nats) => {
            let client = showpass_core::nats::connect(nats, "showpass-api").await?;
            Some(showpass_core::nats::jetstream(
                client,
                Duration::from_secs(5),
            ))
        }
        None => None,
    };
    let state = AppState::new(pool.clone(), export_pool.clone(), js, config);
    if let MetricsAt::Private(hub) = &state.config.metrics {
        let s = state.clone();
        hub.set("api", Arc::new(move || s.metrics.render()));
    }
    tokio::spawn(health::refresh(state.clone(), shutdown.clone()));
    let addr = listener
        .local_addr()
        .context("reading the listen address")?;
    tracing::info!(%addr, "api listening");
    let limits = state.config.http;
    let extra = mount(Embedded::new(state.clone()));
    showpass_core::http::serve(listener, router(state, extra), limits, shutdown)
        .await
        .context("serving HTTP")?;
    pool.close().await;
    export_pool.close().await;
    tracing::info!("api stopped");
    Ok(())
}
