//! `/healthz`, `/readyz` and `/metrics`: open, for orchestrators and scrapers.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use crate::routes::Routes;
use crate::state::AppState;

pub(crate) fn routes(public_metrics: bool) -> Routes {
    let routes = Routes::new("")
        .add::<__path_healthz, _, _>(healthz)
        .add::<__path_readyz, _, _>(readyz);
    if public_metrics {
        routes.add::<__path_metrics, _, _>(metrics)
    } else {
        routes
    }
}

/// Health of the api or of one of its dependencies.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    /// Each dependency checked: `database`, `nats` (when configured).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "alive", body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        checks: Vec::new(),
    })
}

/// The api can answer: PostgreSQL reachable with the read models migrated. NATS (payloads
/// and replay only) is reported but does not make the api unready.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "ready", body = Health),
              (status = 503, description = "a dependency is down", body = Health)))]
pub(crate) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let mut checks = Vec::new();
    let db = sqlx::query_scalar::<_, bool>(
        "SELECT to_regclass('customers') IS NOT NULL AND to_regclass('deliveries') IS NOT NULL",
    )
    .fetch_one(&state.pool)
    .await;
    checks.push(match db {
        Ok(true) => Check {
            name: "database",
            ok: true,
            detail: None,
        },
        Ok(false) => Check {
            name: "database",
            ok: false,
            detail: Some("read models missing: run `showpass migrate`".into()),
        },
        Err(e) => Check {
            name: "database",
            ok: false,
            detail: Some(format!("unreachable: {}", short(&e.to_string()))),
        },
    });
    if let Some(js) = &state.js {
        let connected = js.client().connection_state() == async_nats::connection::State::Connected;
        checks.push(Check {
            name: "nats",
            ok: connected,
            detail: (!connected).then(|| "not connected".into()),
        });
    }
    let ok = checks.iter().filter(|c| c.name == "database").all(|c| c.ok);
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let health = Health {
        status: if ok { "ok" } else { "unavailable" },
        checks,
    };
    (status, Json(health))
}

fn short(s: &str) -> String {
    s.chars().take(200).collect()
}

/// Prometheus metrics (OpenMetrics text): `showpass_api_request_seconds` by route, method,
/// status. Not served here when `METRICS_ADDR` moves them to a listener of their own.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "OpenMetrics text",
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    showpass_core::http::metrics_response(state.metrics.render())
}
