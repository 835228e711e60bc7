//! `/v1/sales/summary`: sales rows and per-currency totals, from the aggregates only
//! ([`summary`], over the tiers of [`tiers`]); and the itemised CSV export (`format=csv` or
//! `Accept: text/csv`), streamed from the ledger ([`export`]).

mod export;
mod summary;
mod tiers;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, Problem};
use crate::money::Money;
use crate::params::{self, Params, When};
use crate::routes::Routes;
use crate::state::AppState;
pub use summary::summarize;
pub(crate) use summary::{GROUPS, SUMS};

pub(crate) fn routes() -> Routes {
    Routes::new("/v1").add::<__path_sales_summary, _, _>(sales_summary)
}

/// Sales of one group in one currency.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[schema(example = json!({
    "key": "8716", "label": "Winter Gala", "currency": "CAD", "orders": 41, "tickets": 77,
    "gross_revenue": "3104.25", "net_sales": "2887.50", "service_fees": "216.75",
    "total_tax": "0.00", "discounts": "25.00", "refunds": "75.00"
}))]
pub struct SalesRow {
    /// The group: an event id, a ticket type id, a day (`2026-11-27`) or a payment type.
    /// `""` for sales without one (an invoice without lines has no event).
    pub key: String,
    /// The event's or ticket type's name; the day or payment type itself.
    pub label: Option<String>,
    pub currency: String,
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub figures: Figures,
}

/// The figures of a group or total.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Figures {
    /// Purchases in the group (a refunded order still counts; its money does not).
    pub orders: i64,
    /// Tickets sold by purchases and not refunded or voided.
    pub tickets: i64,
    #[sqlx(try_from = "Decimal")]
    pub gross_revenue: Money,
    #[sqlx(try_from = "Decimal")]
    pub net_sales: Money,
    #[sqlx(try_from = "Decimal")]
    pub service_fees: Money,
    #[sqlx(try_from = "Decimal")]
    pub total_tax: Money,
    #[sqlx(try_from = "Decimal")]
    pub discounts: Money,
    /// The absolute value of refunded and voided net sales.
    #[sqlx(try_from = "Decimal")]
    pub refunds: Money,
}

/// Totals in one currency (currencies are never added together).
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct SalesTotal {
    pub currency: String,
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub figures: Figures,
}

/// A sales summary.
#[derive(Debug, Serialize, ToSchema)]
pub struct SalesSummary {
    #[schema(example = "event")]
    pub group_by: &'static str,
    /// The time zone days are counted in.
    #[schema(example = "UTC")]
    pub tz: String,
    /// At most 5,000 rows (`MAX_ROWS`), by key.
    pub rows: Vec<SalesRow>,
    /// True when there were more than 5,000 rows and only the first 5,000 are here: narrow
    /// the range, or filter by event. `totals` are complete whatever the rows.
    pub truncated: bool,
    /// One entry per currency.
    pub totals: Vec<SalesTotal>,
}

/// Most rows a summary answers.
pub const MAX_ROWS: usize = 5_000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SalesQuery {
    /// `event` (default), `ticket_type`, `day` or `payment_type`.
    #[param(value_type = Option<crate::params_doc::GroupBy>, inline)]
    pub group_by: Option<String>,
    #[param(value_type = Option<crate::params_doc::Id>, inline)]
    pub org_id: Option<String>,
    #[param(value_type = Option<crate::params_doc::Id>, inline)]
    pub event_id: Option<String>,
    /// From this day (in `tz`) or RFC 3339 time. Sales resolve to 15-minute buckets.
    #[param(value_type = Option<crate::params_doc::When>, inline)]
    pub from: Option<String>,
    /// To this day inclusive (in `tz`) or RFC 3339 time.
    #[param(value_type = Option<crate::params_doc::When>, inline)]
    pub to: Option<String>,
    /// IANA time zone days are counted in, e.g. `America/Edmonton` (default `UTC`).
    #[param(value_type = Option<crate::params_doc::TimeZone>, inline)]
    pub tz: Option<String>,
    /// `json` (default) or `csv`: the itemised export, one row per invoice line.
    #[param(value_type = Option<crate::params_doc::Format>, inline)]
    pub format: Option<String>,
}

/// The filters of a summary or export.
#[derive(Debug, Clone, Default)]
pub struct SalesFilters {
    pub org: Option<String>,
    pub event: Option<String>,
    pub from: Option<When>,
    pub to: Option<When>,
    /// A time zone PostgreSQL knows (`UTC` when empty).
    pub tz: String,
}

/// Sales rows and per-currency totals.
///
/// Answered from incrementally maintained 15-minute aggregates, never a scan of raw rows. At
/// most 5,000 rows (`truncated` says when there were more); the totals are always complete.
/// With `format=csv` (or `Accept: text/csv`) the answer is instead the itemised export: one
/// line per invoice line, refunds and voids negative, streamed.
#[utoipa::path(get, path = "/v1/sales/summary", tag = "sales", params(SalesQuery),
    security(("bearer" = [])),
    responses((status = 200,
                description = "the summary (JSON), or the itemised export (text/csv)",
                content((SalesSummary = "application/json"), (String = "text/csv"))),
              (status = 400, description = "a parameter is bad", body = Problem, content_type = "application/problem+json"),
              (status = 401, description = "no key or a wrong one", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "the database (or NATS) is unavailable or too slow; retry later", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn sales_summary(
    State(state): State<AppState>,
    headers: HeaderMap,
    Params(query): Params<SalesQuery>,
) -> ApiResult<Response> {
    let group_by =
        params::one_of("group_by", query.group_by.as_deref(), summary::GROUPS)?.unwrap_or("event");
    let csv = match params::one_of("format", query.format.as_deref(), &["json", "csv"])? {
        Some(f) => f == "csv",
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv")),
    };
    let filters = SalesFilters {
        org: params::text("org_id", query.org_id.as_deref(), 100)?,
        event: params::text("event_id", query.event_id.as_deref(), 100)?,
        from: params::when("from", query.from.as_deref())?,
        to: params::when("to", query.to.as_deref())?,
        tz: time_zone(&state, query.tz.as_deref()).await?,
    };
    check_order(filters.from, filters.to)?;
    if csv {
        let range = filters.range(&state.pool).await?;
        return Ok(export::export(state, filters, range));
    }

    Ok(Json(summarize(&state.pool, group_by, filters).await?).into_response())
}

fn check_order(from: Option<When>, to: Option<When>) -> ApiResult<()> {
    let reversed = match (from, to) {
        (Some(When::Day(a)), Some(When::Day(b))) => b < a,
        (Some(When::Instant(a)), Some(When::Instant(b))) => b < a,
        _ => false,
    };
    if reversed {
        return Err(ApiError::bad("to", "to must not be before from"));
    }
    Ok(())
}

/// The IANA time zones a summary may count days in (PostgreSQL's, without its `posix/` and
/// `right/` copies): the OpenAPI document lists them, and `tz` must be one.
pub(crate) fn zones() -> impl Iterator<Item = &'static str> {
    include_str!("zones.txt").lines().filter(|z| !z.is_empty())
}

/// Checks `tz`: one of [`zones`], and known to PostgreSQL's zone database (the one the query
/// will use).
async fn time_zone(state: &AppState, tz: Option<&str>) -> ApiResult<String> {
    if params::given("tz", tz)?.is_none() {
        return Ok("UTC".into());
    }
    let Some(given) = params::text("tz", tz, 64)? else {
        return Ok("UTC".into());
    };
    let unknown = |tz: &str| {
        ApiError::bad(
            "tz",
            format!(
                "tz must be an IANA time zone such as America/Edmonton or UTC, not {:?}",
                crate::page::truncate(tz)
            ),
        )
    };
    let Some(tz) = zones().find(|z| *z == given) else {
        return Err(unknown(&given));
    };
    match sqlx::query("SELECT now() AT TIME ZONE $1")
        .bind(tz)
        .execute(&state.pool)
        .await
    {
        Ok(_) => Ok(tz.to_owned()),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("22023") => Err(unknown(tz)),
        Err(e) => Err(e.into()),
    }
}
