//! Serving: the state every handler shares, the router, and `run`.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, StatusCode, header};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;

use crate::auth::Keys;
use crate::config::ApiConfig;
use crate::metrics::Metrics;
use crate::page::CursorKey;
use crate::{auth, customers, events, logs, metrics, ops, orders, sales, tickets};
use showpass_core::CancellationToken;
use showpass_core::http::MetricsAt;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Inner>);

pub(crate) struct Inner {
    pub pool: PgPool,
    /// CSV exports' own connections, with their own statement timeout.
    pub export_pool: PgPool,
    /// JetStream, for payloads and replay, when configured.
    pub js: Option<jetstream::Context>,
    pub config: ApiConfig,
    pub keys: Keys,
    pub cursor_key: CursorKey,
    pub metrics: Metrics,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// The page size a request asked for, within the configured bounds.
    pub fn limit(&self, raw: Option<&str>) -> Result<u32, crate::error::ApiError> {
        crate::page::limit(raw, self.config.default_limit, self.config.max_limit)
    }

    pub fn new(
        pool: PgPool,
        export_pool: PgPool,
        js: Option<jetstream::Context>,
        config: ApiConfig,
    ) -> Self {
        let keys = Keys::new(&config.keys);
        let cursor_key = CursorKey::derive(config.cursor_secret.as_ref(), &config.keys);
        Self(Arc::new(Inner {
            pool,
            export_pool,
            js,
            config,
            keys,
            cursor_key,
            metrics: Metrics::new(),
        }))
    }
}

/// The whole API: `/v1` behind the keys; docs, health and metrics open.
pub(crate) fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .merge(customers::router())
        .merge(orders::router())
        .merge(tickets::router())
        .merge(events::router())
        .merge(sales::router())
        .merge(logs::router())
        .fallback(|| async {
            crate::error::ApiError::NotFound("no such route under /v1; see /docs".into())
        })
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ));
    let cors = cors(&state.config.cors_origins);
    let timeout = state.config.request_timeout;
    let body_limit = state.config.body_limit;
    let public_metrics = matches!(state.config.metrics, MetricsAt::Public);
    Router::new()
        .nest("/v1", v1)
        .merge(ops::router(public_metrics))
        .merge(crate::openapi::router())
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
        .with_state(state)
}

fn cors(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST])
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
    let options = showpass_store::options(&config.database_url)?.options([
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
    let addr = listener
        .local_addr()
        .context("reading the listen address")?;
    tracing::info!(%addr, "api listening");
    let limits = state.config.http;
    showpass_core::http::serve(listener, router(state), limits, shutdown)
        .await
        .context("serving HTTP")?;
    pool.close().await;
    export_pool.close().await;
    tracing::info!("api stopped");
    Ok(())
}
