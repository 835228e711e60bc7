//! `/v1/customers`: search, and one customer with their orders.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::QueryBuilder;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, Problem};
use crate::money::Money;
use crate::orders::{self, OrderOut};
use crate::page::{self, Cursor, Page};
use crate::params::{self, Params};
use crate::server::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/customers", get(list_customers))
        .route("/customers/{id}", get(get_customer))
}

/// A customer: one (organization, e-mail) pair.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct CustomerOut {
    /// Stable across rebuilds: a UUID v5 of the organization and the e-mail.
    pub id: Uuid,
    pub org_id: String,
    /// Trimmed and lower-cased.
    pub email: String,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub subscribed_to_venue: bool,
    /// Orders they purchased or received by transfer.
    pub orders_count: i32,
    /// Tickets of their orders still valid.
    pub tickets_count: i32,
    /// Net sales of their orders less refunds.
    #[sqlx(try_from = "Decimal")]
    pub total_spent: Money,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// How well the customer matches `q` (higher first); absent without `q`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[sqlx(default)]
    pub score: Option<f64>,
}

/// A customer with their orders.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerDetail {
    #[serde(flatten)]
    pub customer: CustomerOut,
    /// Their orders, newest first (at most 500).
    pub orders: Vec<OrderOut>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CustomerQuery {
    /// Matches e-mail, name or phone: case- and accent-insensitive, substring, typo-tolerant;
    /// results ranked by relevance.
    pub q: Option<String>,
    /// Only this organization's customers.
    pub org_id: Option<String>,
    /// Page size (default 50, at most 500).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

const COLUMNS: &str = "c.id, c.org_id, c.email, c.name, c.phone, c.subscribed_to_venue, \
    c.orders_count, c.tickets_count, c.total_spent, c.first_seen_at, c.last_seen_at";

/// Search customers.
///
/// Without `q`, customers in (organization, e-mail) order; with `q`, by relevance.
#[utoipa::path(get, path = "/v1/customers", tag = "customers", params(CustomerQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<CustomerOut>),
              (status = 400, description = "a parameter is bad", body = Problem, content_type = "application/problem+json"),
              (status = 401, description = "no key or a wrong one", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list_customers(
    State(state): State<AppState>,
    Params(query): Params<CustomerQuery>,
) -> ApiResult<Json<Page<CustomerOut>>> {
    let limit = page::limit(
        query.limit.as_deref(),
        state.config.default_limit,
        state.config.max_limit,
    )?;
    let q = params::text("q", query.q.as_deref(), 200)?;
    let org = params::text("org_id", query.org_id.as_deref(), 100)?;
    let rows = match q {
        None => list_all(&state, org.as_deref(), query.cursor.as_deref(), limit).await?,
        Some(q) => search(&state, &q, org.as_deref(), query.cursor.as_deref(), limit).await?,
    };
    Ok(Json(rows))
}

async fn list_all(
    state: &AppState,
    org: Option<&str>,
    cursor: Option<&str>,
    limit: u32,
) -> ApiResult<Page<CustomerOut>> {
    let mut sql = QueryBuilder::new(format!("SELECT {COLUMNS} FROM customers c WHERE true"));
    if let Some(org) = org {
        sql.push(" AND c.org_id = ").push_bind(org);
    }
    if let Some(c) = cursor {
        let parts = Cursor::decode(c, "customers", 2)?;
        sql.push(" AND (c.org_id, c.email) > (")
            .push_bind(parts[0].clone())
            .push(", ")
            .push_bind(parts[1].clone())
            .push(")");
    }
    sql.push(" ORDER BY c.org_id, c.email LIMIT ")
        .push_bind(i64::from(limit) + 1);
    let rows: Vec<CustomerOut> = sql.build_query_as().fetch_all(&state.pool).await?;
    Ok(Page::from_rows(rows, limit, |c| {
        Cursor::new("customers", vec![c.org_id.clone(), c.email.clone()])
    }))
}

/// The indexed document and the folded query; see migration `api_search`.
const DOC: &str = "public.showpass_customer_doc(c.email, c.name, c.phone)";

async fn search(
    state: &AppState,
    q: &str,
    org: Option<&str>,
    cursor: Option<&str>,
    limit: u32,
) -> ApiResult<Page<CustomerOut>> {
    // A substring match ranks above a merely similar one; an exact e-mail above both.
    let mut sql = QueryBuilder::new(format!(
        "SELECT * FROM (SELECT {COLUMNS}, (CASE WHEN c.email = lower("
    ));
    sql.push_bind(q)
        .push(") THEN 2 WHEN ")
        .push(DOC)
        .push(" LIKE ");
    push_pattern(&mut sql, q);
    sql.push(" THEN 1 ELSE 0 END + word_similarity(public.showpass_fold(")
        .push_bind(q)
        .push("), ")
        .push(DOC)
        .push("))::float8 AS score FROM customers c WHERE (")
        .push(DOC)
        .push(" LIKE ");
    push_pattern(&mut sql, q);
    sql.push(" OR public.showpass_fold(")
        .push_bind(q)
        .push(") <% ")
        .push(DOC)
        .push(")");
    if let Some(org) = org {
        sql.push(" AND c.org_id = ").push_bind(org);
    }
    sql.push(") c WHERE true");
    if let Some(c) = cursor {
        let parts = Cursor::decode(c, "customers-q", 2)?;
        let score: f64 = parts[0].parse().map_err(|_| bad_cursor())?;
        let id: Uuid = parts[1].parse().map_err(|_| bad_cursor())?;
        sql.push(" AND (c.score < ")
            .push_bind(score)
            .push(" OR (c.score = ")
            .push_bind(score)
            .push(" AND c.id > ")
            .push_bind(id)
            .push("))");
    }
    sql.push(" ORDER BY c.score DESC, c.id LIMIT ")
        .push_bind(i64::from(limit) + 1);
    let rows: Vec<CustomerOut> = sql.build_query_as().fetch_all(&state.pool).await?;
    Ok(Page::from_rows(rows, limit, |c| {
        Cursor::new(
            "customers-q",
            vec![c.score.unwrap_or_default().to_string(), c.id.to_string()],
        )
    }))
}

/// `'%' || folded q with LIKE's wildcards escaped || '%'`.
fn push_pattern(sql: &mut QueryBuilder<'_, sqlx::Postgres>, q: &str) {
    let escaped = q
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    sql.push("('%' || public.showpass_fold(")
        .push_bind(escaped)
        .push(") || '%')");
}

fn bad_cursor() -> ApiError {
    ApiError::bad("cursor", "cursor is not one this listing gave out")
}

/// One customer with their orders.
#[utoipa::path(get, path = "/v1/customers/{id}", tag = "customers",
    params(("id" = String, Path, description = "The customer's id (a UUID)")),
    security(("bearer" = [])),
    responses((status = 200, body = CustomerDetail),
              (status = 401, description = "no key or a wrong one", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "no such customer", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn get_customer(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<CustomerDetail>> {
    let not_found = || ApiError::NotFound(format!("no customer with id {:?}", page::truncate(&id)));
    let uuid: Uuid = id.trim().parse().map_err(|_| not_found())?;
    let customer: CustomerOut = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM customers c WHERE c.id = $1"
    ))
    .bind(uuid)
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(not_found)?;
    let orders = orders::of_customer(&state.pool, uuid).await?;
    Ok(Json(CustomerDetail { customer, orders }))
}
