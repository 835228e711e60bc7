//! `/v1/gaps` (business events that should have arrived and did not, oldest deadline first)
//! and `/v1/anomalies` (what deserves a person's look, newest first). The projector derives
//! both; they never change the money.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use showpass_payload::vocab::{AnomalyKind, GapKind, Word};
use sqlx::QueryBuilder;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiResult, Problem};
use crate::page::{self, Key, Keyset, Page};
use crate::params::{self, Params};
use crate::routes::Routes;
use crate::state::AppState;

pub(crate) fn routes() -> Routes {
    Routes::new("/v1")
        .add::<__path_list_gaps, _, _>(list_gaps)
        .add::<__path_list_anomalies, _, _>(list_anomalies)
}

/// One event of a gap's transaction that did arrive.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SeenEvent {
    #[schema(example = "invoice.refund")]
    pub event_type: String,
    /// The delivery that brought it (see `/v1/logs/{id}`).
    pub delivery_id: Option<Uuid>,
    pub received_at: DateTime<Utc>,
}

/// A business event that should have arrived and did not.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[schema(example = json!({
    "kind": "missing_purchase", "org_id": "20", "transaction_id": "ef4fe3e2b2c0c0c84b7fa3b4f5b2d2a8",
    "events_seen": [{"event_type": "invoice.refund",
        "delivery_id": "019ac4e2-5b1a-7d3e-8f21-6c0b9a4d2e17",
        "received_at": "2026-11-27T18:02:11.412Z"}],
    "first_seen_at": "2026-11-27T18:02:11.412Z", "resend_before": "2026-12-12T18:02:11.412Z"
}))]
pub struct GapOut {
    #[schema(schema_with = crate::params_doc::gap_kind_field)]
    pub kind: String,
    pub org_id: String,
    /// The transaction the missing event belongs to (for `unmatched_transfer`, that of the
    /// side that did arrive).
    pub transaction_id: String,
    /// The events of the transaction that did arrive, oldest first (at most 100).
    #[sqlx(json)]
    pub events_seen: Vec<SeenEvent>,
    pub first_seen_at: DateTime<Utc>,
    /// Until when Showpass can still resend it from its dashboard (`first_seen_at` + 15 days).
    pub resend_before: DateTime<Utc>,
}

/// What deserves a person's look. Never a change to the money.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[schema(example = json!({
    "kind": "totals_mismatch", "org_id": "20", "transaction_id": "ef4fe3e2b2c0c0c84b7fa3b4f5b2d2a8",
    "delivery_id": "019ac4e2-5b1a-7d3e-8f21-6c0b9a4d2e17", "detected_at": "2026-11-27T18:02:11.412Z",
    "detail": "net_sales 60.00, its lines 58.40"
}))]
pub struct AnomalyOut {
    #[schema(schema_with = crate::params_doc::anomaly_kind_field)]
    pub kind: String,
    pub org_id: Option<String>,
    pub transaction_id: Option<String>,
    /// The delivery that showed it (see `/v1/logs/{id}`).
    pub delivery_id: Uuid,
    /// When that delivery arrived.
    pub detected_at: DateTime<Utc>,
    /// What is wrong, with the figures.
    pub detail: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GapQuery {
    #[param(value_type = Option<crate::params_doc::Id>, inline)]
    pub org_id: Option<String>,
    /// `missing_purchase` or `unmatched_transfer`.
    #[param(value_type = Option<crate::params_doc::GapKindWord>, inline)]
    pub kind: Option<String>,
    #[param(value_type = Option<crate::params_doc::Limit>, inline)]
    pub limit: Option<String>,
    #[param(value_type = Option<crate::params_doc::CursorText>, inline)]
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnomalyQuery {
    #[param(value_type = Option<crate::params_doc::Id>, inline)]
    pub org_id: Option<String>,
    /// `totals_mismatch`, `refund_exceeds_purchase`, `currency_mismatch`,
    /// `conflicting_redelivery` or `id_transaction_mismatch`.
    #[param(value_type = Option<crate::params_doc::AnomalyKindWord>, inline)]
    pub kind: Option<String>,
    #[param(value_type = Option<crate::params_doc::Limit>, inline)]
    pub limit: Option<String>,
    #[param(value_type = Option<crate::params_doc::CursorText>, inline)]
    pub cursor: Option<String>,
}

/// The filters both listings take.
fn filter<'a, W: Word>(
    sql: &mut QueryBuilder<'a, sqlx::Postgres>,
    alias: &str,
    org: Option<String>,
    kind: Option<W>,
) {
    if let Some(org) = org {
        sql.push(format!(" AND {alias}.org_id = ")).push_bind(org);
    }
    if let Some(kind) = kind {
        sql.push(format!(" AND {alias}.kind = "))
            .push_bind(kind.as_str());
    }
}

/// Open gaps, the one to resend soonest first. A side of a transfer counts only once its
/// other side has had an hour to arrive.
#[utoipa::path(get, path = "/v1/gaps", tag = "trust", params(GapQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "a page of open gaps, oldest `resend_before` first", body = Page<GapOut>),
              (status = 400, description = "a parameter is bad", body = Problem, content_type = "application/problem+json"),
              (status = 401, description = "no key or a wrong one", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "the database is unavailable or too slow; retry later", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list_gaps(
    State(state): State<AppState>,
    Params(query): Params<GapQuery>,
) -> ApiResult<Json<Page<GapOut>>> {
    let limit = state.limit(query.limit.as_deref())?;
    let org = params::text("org_id", query.org_id.as_deref(), 100)?;
    let kind = params::word::<GapKind>("kind", query.kind.as_deref())?;
    let mut sql = QueryBuilder::new(
        "SELECT g.kind, g.org_id, g.transaction_id, g.events_seen, g.first_seen_at, \
         g.resend_before FROM gaps g WHERE g.open_from <= now()",
    );
    filter(&mut sql, "g", org, kind);
    const LISTING: Keyset = Keyset {
        listing: "gaps",
        columns: &[
            ("g.resend_before", Key::Time),
            ("g.kind", Key::Text),
            ("g.org_id", Key::Text),
            ("g.transaction_id", Key::Text),
        ],
        descending: false,
    };
    LISTING.after(&mut sql, query.cursor.as_deref(), &state.cursor_key, limit)?;
    let rows: Vec<GapOut> = sql.build_query_as().fetch_all(&state.pool).await?;
    Ok(Json(LISTING.page(rows, limit, &state.cursor_key, |g| {
        vec![
            page::time(g.resend_before),
            g.kind.clone(),
            g.org_id.clone(),
            g.transaction_id.clone(),
        ]
    })))
}

/// Anomalies, newest first.
#[utoipa::path(get, path = "/v1/anomalies", tag = "trust", params(AnomalyQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "a page of anomalies, newest first", body = Page<AnomalyOut>),
              (status = 400, description = "a parameter is bad", body = Problem, content_type = "application/problem+json"),
              (status = 401, description = "no key or a wrong one", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "the database is unavailable or too slow; retry later", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list_anomalies(
    State(state): State<AppState>,
    Params(query): Params<AnomalyQuery>,
) -> ApiResult<Json<Page<AnomalyOut>>> {
    let limit = state.limit(query.limit.as_deref())?;
    let org = params::text("org_id", query.org_id.as_deref(), 100)?;
    let kind = params::word::<AnomalyKind>("kind", query.kind.as_deref())?;
    let mut sql = QueryBuilder::new(
        "SELECT a.kind, a.org_id, a.transaction_id, a.delivery_id, a.detected_at, a.detail \
         FROM anomalies a WHERE true",
    );
    filter(&mut sql, "a", org, kind);
    const LISTING: Keyset = Keyset {
        listing: "anomalies",
        columns: &[
            ("a.detected_at", Key::Time),
            ("a.kind", Key::Text),
            ("a.delivery_id", Key::Uuid),
        ],
        descending: true,
    };
    LISTING.after(&mut sql, query.cursor.as_deref(), &state.cursor_key, limit)?;
    let rows: Vec<AnomalyOut> = sql.build_query_as().fetch_all(&state.pool).await?;
    Ok(Json(LISTING.page(rows, limit, &state.cursor_key, |a| {
        vec![
            page::time(a.detected_at),
            a.kind.clone(),
            a.delivery_id.to_string(),
        ]
    })))
}
