//! `/v1/events`: the Showpass events (shows) seen, with their sales totals.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::QueryBuilder;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiResult, Problem};
use crate::page::{Key, Keyset, Page};
use crate::params::{self, Params};
use crate::routes::Routes;
use crate::sales::{SUMS, SalesTotal};
use crate::state::AppState;
use showpass_payload::vocab::Grain;

pub(crate) fn routes() -> Routes {
    Routes::new("/v1").add::<__path_list_events, _, _>(list_events)
}

/// A Showpass event (show) and its sales.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct EventOut {
    pub org_id: String,
    /// Showpass's event id.
    pub event_id: String,
    pub name: Option<String>,
    pub starts_on: Option<String>,
    pub ends_on: Option<String>,
    /// When a delivery first mentioned it.
    pub first_seen_at: DateTime<Utc>,
    /// Sales totals, one entry per currency.
    #[sqlx(skip)]
    pub totals: Vec<SalesTotal>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    #[param(value_type = Option<crate::params_doc::Id>, inline)]
    pub org_id: Option<String>,
    #[param(value_type = Option<crate::params_doc::Limit>, inline)]
    pub limit: Option<String>,
    #[param(value_type = Option<crate::params_doc::CursorText>, inline)]
    pub cursor: Option<String>,
}

#[derive(sqlx::FromRow)]
struct EventTotal {
    org_id: String,
    event_id: String,
    #[sqlx(flatten)]
    total: SalesTotal,
}

/// List the events seen, by organization and event id.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "a page of events, with their sales totals", body = Page<EventOut>),
              (status = 400, description = "a parameter is bad", body = Problem, content_type = "application/problem+json"),
              (status = 401, description = "no key or a wrong one", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "the database (or NATS) is unavailable or too slow; retry later", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list_events(
    State(state): State<AppState>,
    Params(query): Params<EventQuery>,
) -> ApiResult<Json<Page<EventOut>>> {
    let limit = state.limit(query.limit.as_deref())?;
    let org = params::text("org_id", query.org_id.as_deref(), 100)?;
    let mut sql = QueryBuilder::new(
        "SELECT org_id, event_id, name, starts_on, ends_on, first_seen AS first_seen_at FROM shows WHERE true",
    );
    if let Some(org) = &org {
        sql.push(" AND org_id = ").push_bind(org);
    }
    const LISTING: Keyset = Keyset {
        listing: "events",
        columns: &[("org_id", Key::Text), ("event_id", Key::Text)],
        descending: false,
    };
    LISTING.after(&mut sql, query.cursor.as_deref(), &state.cursor_key, limit)?;
    let rows: Vec<EventOut> = sql.build_query_as().fetch_all(&state.pool).await?;
    let mut page = LISTING.page(rows, limit, &state.cursor_key, |e| {
        vec![e.org_id.clone(), e.event_id.clone()]
    });

    let orgs: Vec<&str> = page.items.iter().map(|e| e.org_id.as_str()).collect();
    let ids: Vec<&str> = page.items.iter().map(|e| e.event_id.as_str()).collect();
    let totals: Vec<EventTotal> = sqlx::query_as(&format!(
        "SELECT s.org_id, s.event_id, s.currency, {SUMS}
         FROM {} s
         WHERE (s.org_id, s.event_id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))
         GROUP BY s.org_id, s.event_id, s.currency
         ORDER BY s.currency",
        Grain::Event.table()
    ))
    .bind(&orgs)
    .bind(&ids)
    .fetch_all(&state.pool)
    .await?;
    let mut by_event: HashMap<(String, String), Vec<SalesTotal>> = HashMap::new();
    for t in totals {
        by_event
            .entry((t.org_id, t.event_id))
            .or_default()
            .push(t.total);
    }
    for e in &mut page.items {
        e.totals = by_event
            .remove(&(e.org_id.clone(), e.event_id.clone()))
            .unwrap_or_default();
    }
    Ok(Json(page))
}
