//! `/v1/tickets`: tickets with their current status.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, QueryBuilder};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, Problem};
use crate::page::{self, Key, Keyset, Page};
use crate::params::{self, Params};
use crate::routes::Routes;
use crate::state::AppState;

pub(crate) fn routes() -> Routes {
    Routes::new("/v1").add::<__path_list_tickets, _, _>(list_tickets)
}

/// A ticket and its current status (which never moves back from a later state).
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct TicketOut {
    pub id: String,
    pub org_id: String,
    pub transaction_id: String,
    pub event_id: Option<String>,
    pub event_name: Option<String>,
    pub ticket_type_id: Option<String>,
    pub ticket_type_name: Option<String>,
    pub barcode: Option<String>,
    /// As Showpass names it: `issued`, `scanned`, `transferred`, `refunded`, `voided`, ...
    #[schema(example = "issued")]
    pub status: String,
    pub name_on_ticket: Option<String>,
    pub email_on_ticket: Option<String>,
    /// Issued to the recipient of a transfer.
    pub created_by_transfer: bool,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TicketQuery {
    /// Exactly this barcode.
    #[param(value_type = Option<crate::params_doc::Query>, inline)]
    pub barcode: Option<String>,
    #[param(value_type = Option<crate::params_doc::Id>, inline)]
    pub event_id: Option<String>,
    /// A Showpass ticket status, e.g. `issued` or `refunded`.
    #[param(value_type = Option<crate::params_doc::TicketStatusText>, inline)]
    pub status: Option<String>,
    /// A barcode, ticket id or transaction id.
    #[param(value_type = Option<crate::params_doc::Query>, inline)]
    pub q: Option<String>,
    #[param(value_type = Option<crate::params_doc::Id>, inline)]
    pub org_id: Option<String>,
    #[param(value_type = Option<crate::params_doc::Id>, inline)]
    pub transaction_id: Option<String>,
    #[param(value_type = Option<crate::params_doc::Limit>, inline)]
    pub limit: Option<String>,
    #[param(value_type = Option<crate::params_doc::CursorText>, inline)]
    pub cursor: Option<String>,
}

const COLUMNS: &str = "t.id, t.org_id, t.transaction_id, t.event_id, t.event_name, \
    t.ticket_type_id, t.ticket_type_name, t.barcode, t.status, t.name_on_ticket, \
    t.email_on_ticket, t.created_by_transfer, t.updated_at";

/// List tickets, by organization and ticket id.
#[utoipa::path(get, path = "/v1/tickets", tag = "tickets", params(TicketQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "a page of tickets", body = Page<TicketOut>),
              (status = 400, description = "a parameter is bad", body = Problem, content_type = "application/problem+json"),
              (status = 401, description = "no key or a wrong one", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "the database (or NATS) is unavailable or too slow; retry later", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list_tickets(
    State(state): State<AppState>,
    Params(query): Params<TicketQuery>,
) -> ApiResult<Json<Page<TicketOut>>> {
    let limit = state.limit(query.limit.as_deref())?;
    let barcode = params::text("barcode", query.barcode.as_deref(), 200)?;
    let event = params::text("event_id", query.event_id.as_deref(), 100)?;
    let q = params::text("q", query.q.as_deref(), 200)?;
    let org = params::text("org_id", query.org_id.as_deref(), 100)?;
    let tx = params::text("transaction_id", query.transaction_id.as_deref(), 100)?;
    let status =
        params::text("status", query.status.as_deref(), 40)?.map(|s| s.to_ascii_lowercase());
    if let Some(s) = &status
        && !s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    {
        return Err(ApiError::bad(
            "status",
            format!(
                "status is a ticket status such as issued or refunded, not {:?}",
                page::truncate(s)
            ),
        ));
    }

    let mut sql = QueryBuilder::new(format!("SELECT {COLUMNS} FROM tickets t WHERE true"));
    if let Some(org) = &org {
        sql.push(" AND t.org_id = ").push_bind(org);
    }
    if let Some(b) = &barcode {
        sql.push(" AND t.barcode = ").push_bind(b);
    }
    if let Some(e) = &event {
        sql.push(" AND t.event_id = ").push_bind(e);
    }
    if let Some(s) = &status {
        sql.push(" AND t.status = ").push_bind(s);
    }
    if let Some(tx) = &tx {
        sql.push(" AND t.transaction_id = ").push_bind(tx);
    }
    if let Some(q) = &q {
        sql.push(" AND (t.barcode = ")
            .push_bind(q)
            .push(" OR t.transaction_id = ")
            .push_bind(q)
            .push(" OR t.id = ")
            .push_bind(q)
            .push(")");
    }
    const LISTING: Keyset = Keyset {
        listing: "tickets",
        columns: &[("t.org_id", Key::Text), ("t.id", Key::Text)],
        descending: false,
    };
    LISTING.after(&mut sql, query.cursor.as_deref(), &state.cursor_key, limit)?;
    let rows: Vec<TicketOut> = sql.build_query_as().fetch_all(&state.pool).await?;
    Ok(Json(LISTING.page(rows, limit, &state.cursor_key, |t| {
        vec![t.org_id.clone(), t.id.clone()]
    })))
}

/// The tickets of one order.
pub(crate) async fn of_order(
    pool: &PgPool,
    org_id: &str,
    tx: &str,
) -> Result<Vec<TicketOut>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tickets t WHERE t.org_id = $1 AND t.transaction_id = $2 ORDER BY t.id"
    ))
    .bind(org_id)
    .bind(tx)
    .fetch_all(pool)
    .await
}
