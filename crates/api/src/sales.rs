//! `/v1/sales/summary`: sales rows and per-currency totals, from the aggregates only; and the
//! itemised CSV export (`format=csv` or `Accept: text/csv`), streamed from the ledger.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt as _;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, QueryBuilder};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, Problem};
use crate::money::Money;
use crate::params::{self, Params, Range, When};
use crate::server::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/sales/summary", get(sales_summary))
}

/// Sales of one group in one currency.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
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
    pub group_by: Option<String>,
    pub org_id: Option<String>,
    pub event_id: Option<String>,
    /// From this day (in `tz`) or RFC 3339 time. Sales resolve to 15-minute buckets.
    pub from: Option<String>,
    /// To this day inclusive (in `tz`) or RFC 3339 time.
    pub to: Option<String>,
    /// IANA time zone days are counted in, e.g. `America/Edmonton` (default `UTC`).
    pub tz: Option<String>,
    /// `json` (default) or `csv`: the itemised export, one row per invoice line.
    pub format: Option<String>,
}

const GROUPS: &[&str] = &["event", "ticket_type", "day", "payment_type"];

const SUMS: &str = "sum(s.orders)::int8 AS orders, sum(s.tickets)::int8 AS tickets, \
    sum(s.gross_revenue) AS gross_revenue, sum(s.net_sales) AS net_sales, \
    sum(s.service_fees) AS service_fees, sum(s.total_tax) AS total_tax, \
    sum(s.discounts) AS discounts, sum(s.refunds) AS refunds";

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

impl SalesFilters {
    /// `from` and `to` as instants, days starting at midnight in `tz`.
    async fn range(&self, pool: &PgPool) -> ApiResult<Range> {
        let day = |w: Option<When>| match w {
            Some(When::Day(d)) => Some(d),
            _ => None,
        };
        let (first, past) = (
            day(self.from),
            day(self.to).map(|d| d.succ_opt().unwrap_or(d)),
        );
        if is_utc(&self.tz) || (first.is_none() && past.is_none()) {
            return Ok(Range::of(self.from, self.to, params::utc_midnight));
        }
        // Midnights in another zone come from PostgreSQL's zone database, which checked `tz`.
        let (start, end): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT $1::date::timestamp AT TIME ZONE $3, $2::date::timestamp AT TIME ZONE $3",
        )
        .bind(first)
        .bind(past)
        .bind(&self.tz)
        .fetch_one(pool)
        .await?;
        let utc = Range::of(self.from, self.to, params::utc_midnight);
        Ok(Range {
            start: if first.is_some() { start } else { utc.start },
            end: if past.is_some() { end } else { utc.end },
        })
    }

    /// `AND ...` on the column `time` (a bucket or an arrival time) of the alias `s`.
    fn push(
        &self,
        sql: &mut QueryBuilder<'_, Postgres>,
        time: &str,
        with_event: bool,
        range: Range,
    ) {
        if let Some(org) = &self.org {
            sql.push(" AND s.org_id = ").push_bind(org.clone());
        }
        if with_event && let Some(e) = &self.event {
            sql.push(" AND s.event_id = ").push_bind(e.clone());
        }
        if let Some(start) = range.start {
            sql.push(format!(" AND {time} >= ")).push_bind(start);
        }
        if let Some(end) = range.end {
            sql.push(format!(" AND {time} < ")).push_bind(end);
        }
    }

    /// `(SELECT ...) s`: the cells of `table` a summary sums over. Whole UTC days come from
    /// the table's daily tier; a range's edges off UTC midnight, and every cell when days are
    /// counted in another zone, from its 15-minute tier.
    fn push_cells(
        &self,
        sql: &mut QueryBuilder<'_, Postgres>,
        table: &str,
        with_event: bool,
        range: Range,
        local_days: bool,
    ) {
        let pieces = if local_days {
            vec![(Tier::Quarter, range)]
        } else {
            tiles(range)
        };
        sql.push("(");
        for (i, (t, r)) in pieces.into_iter().enumerate() {
            if i > 0 {
                sql.push(" UNION ALL ");
            }
            let t = match t {
                Tier::Daily => format!("{table}_daily"),
                Tier::Quarter => table.to_owned(),
            };
            sql.push(format!("SELECT * FROM {t} s WHERE true"));
            self.push(sql, "s.bucket", with_event, r);
        }
        sql.push(") s");
    }
}

/// The tiers of a sales aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    /// Whole UTC days.
    Daily,
    /// 15-minute buckets.
    Quarter,
}

/// Tiles a range with as many whole UTC days from the daily tier as it holds, and its edges
/// from the 15-minute tier. The tiles never overlap and cover the range exactly.
fn tiles(range: Range) -> Vec<(Tier, Range)> {
    let first_day = range.start.map(|t| {
        let day = utc_day(t);
        if day == t { t } else { day + Duration::days(1) }
    });
    let last_day = range.end.map(utc_day);
    let mut tiles = vec![(
        Tier::Daily,
        Range {
            start: first_day,
            end: last_day,
        },
    )];
    if range.start != first_day {
        let end = match (first_day, range.end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tiles.push((
            Tier::Quarter,
            Range {
                start: range.start,
                end,
            },
        ));
    }
    if range.end != last_day {
        let start = match (first_day, last_day) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        tiles.push((
            Tier::Quarter,
            Range {
                start,
                end: range.end,
            },
        ));
    }
    tiles.retain(|(_, r)| !r.is_empty());
    if tiles.is_empty() {
        // An empty range: one tile that matches nothing.
        tiles.push((Tier::Quarter, range));
    }
    tiles
}

/// The UTC midnight at or before `t`.
fn utc_day(t: DateTime<Utc>) -> DateTime<Utc> {
    params::utc_midnight(t.date_naive())
}

/// Zones whose days are UTC days (PostgreSQL's names for them, in any case).
fn is_utc(tz: &str) -> bool {
    const UTC: &[&str] = &[
        "UTC",
        "Etc/UTC",
        "GMT",
        "Etc/GMT",
        "UCT",
        "Etc/UCT",
        "Universal",
        "Etc/Universal",
        "Zulu",
        "Etc/Zulu",
        "Greenwich",
        "Etc/Greenwich",
        "GMT0",
        "Etc/GMT0",
    ];
    UTC.iter().any(|z| z.eq_ignore_ascii_case(tz))
}

/// Sales rows and per-currency totals.
///
/// Answered from incrementally maintained 15-minute aggregates, never a scan of raw rows. At
/// most 5,000 rows (`truncated` says when there were more); the totals are always complete.
/// With `format=csv` (or `Accept: text/csv`) the answer is instead the itemised export: one
/// line per invoice line, refunds and voids negative, streamed.
#[utoipa::path(get, path = "/v1/sales/summary", tag = "sales", params(SalesQuery),
    security(("bearer" = [])),
    responses((status = 200, body = SalesSummary,
                description = "the summary (JSON), or the itemised export (text/csv)"),
              (status = 400, description = "a parameter is bad", body = Problem, content_type = "application/problem+json"),
              (status = 401, description = "no key or a wrong one", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn sales_summary(
    State(state): State<AppState>,
    headers: HeaderMap,
    Params(query): Params<SalesQuery>,
) -> ApiResult<Response> {
    let group_by =
        params::one_of("group_by", query.group_by.as_deref(), GROUPS)?.unwrap_or("event");
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
        return Ok(export(state, filters, range));
    }

    Ok(Json(summarize(&state.pool, group_by, filters).await?).into_response())
}

/// The query behind `GET /v1/sales/summary`: rows of `group_by` (one of `event`,
/// `ticket_type`, `day`, `payment_type`) and per-currency totals, from the aggregates.
pub async fn summarize(
    pool: &PgPool,
    group_by: &str,
    mut filters: SalesFilters,
) -> ApiResult<SalesSummary> {
    let group_by = params::one_of("group_by", Some(group_by), GROUPS)?.unwrap_or("event");
    if filters.tz.is_empty() {
        filters.tz = "UTC".into();
    }
    let (table, has_event) = match (group_by, filters.event.is_some()) {
        ("ticket_type", _) => ("sales_by_ticket_type", true),
        ("event", _) | (_, true) => ("sales_by_event", true),
        _ => ("sales_by_order_attrs", false),
    };
    let (key, label) = match group_by {
        "ticket_type" => ("s.ticket_type_id", "NULL::text"),
        "event" => ("s.event_id", "NULL::text"),
        "day" => ("", ""),
        _ => ("s.payment_type", "NULLIF(s.payment_type, '')"),
    };
    let mut sql = QueryBuilder::new("SELECT g.key, ");
    sql.push(match group_by {
        "event" => {
            "(SELECT sh.name FROM shows sh WHERE sh.org_id = g.org_id AND sh.event_id = g.key)"
        }
        "ticket_type" => {
            "(SELECT t.ticket_type_name FROM tickets t WHERE t.org_id = g.org_id \
             AND t.event_id = g.event_id AND t.ticket_type_id = g.key \
             AND t.ticket_type_name IS NOT NULL LIMIT 1)"
        }
        _ => "g.label",
    });
    sql.push(" AS label, g.currency, g.orders, g.tickets, g.gross_revenue, g.net_sales, g.service_fees, g.total_tax, g.discounts, g.refunds FROM (SELECT ");
    if group_by == "day" {
        sql.push("to_char((s.bucket AT TIME ZONE ")
            .push_bind(filters.tz.clone())
            .push(")::date, 'YYYY-MM-DD') AS key, NULL::text AS label");
    } else {
        sql.push(format!("{key} AS key, {label} AS label"));
    }
    sql.push(format!(
        ", min(s.org_id) AS org_id, {} AS event_id, s.currency, {SUMS} FROM ",
        if has_event {
            "min(s.event_id)"
        } else {
            "NULL::text"
        }
    ));
    let range = filters.range(pool).await?;
    let local_days = group_by == "day" && !is_utc(&filters.tz);
    filters.push_cells(&mut sql, table, has_event, range, local_days);
    sql.push(" GROUP BY 1, 2, s.currency) g ORDER BY g.key, g.currency LIMIT ")
        .push_bind((MAX_ROWS + 1) as i64);

    // Totals from the coarsest grain the filters allow, where each order counts once.
    let totals_table = if filters.event.is_some() {
        "sales_by_event"
    } else {
        "sales_by_order_attrs"
    };
    let mut totals_sql = QueryBuilder::new(format!("SELECT s.currency, {SUMS} FROM "));
    filters.push_cells(
        &mut totals_sql,
        totals_table,
        filters.event.is_some(),
        range,
        false,
    );
    totals_sql.push(" GROUP BY s.currency ORDER BY s.currency");
    // Both read the aggregates by index only; run them side by side.
    let (mut rows, totals): (Vec<SalesRow>, Vec<SalesTotal>) = tokio::try_join!(
        sql.build_query_as().fetch_all(pool),
        totals_sql.build_query_as().fetch_all(pool),
    )?;
    if group_by == "day" {
        for r in &mut rows {
            r.label = Some(r.key.clone());
        }
    }
    let truncated = rows.len() > MAX_ROWS;
    rows.truncate(MAX_ROWS);

    Ok(SalesSummary {
        group_by,
        tz: filters.tz,
        rows,
        truncated,
        totals,
    })
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

/// Checks `tz` with PostgreSQL's own zone database (the one the query will use).
async fn time_zone(state: &AppState, tz: Option<&str>) -> ApiResult<String> {
    let Some(tz) = params::text("tz", tz, 64)? else {
        return Ok("UTC".into());
    };
    match sqlx::query("SELECT now() AT TIME ZONE $1")
        .bind(&tz)
        .execute(&state.pool)
        .await
    {
        Ok(_) => Ok(tz),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("22023") => {
            Err(ApiError::bad(
                "tz",
                format!(
                    "tz must be an IANA time zone such as America/Edmonton or UTC, not {:?}",
                    crate::page::truncate(&tz)
                ),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

const CSV_HEADER: &str = "received_at,local_time,org_id,transaction_id,event_type,invoice,line_no,\
event_id,event_name,ticket_type_id,ticket_type_name,item_type,quantity,payment_type,currency,\
gross_revenue,net_sales,service_fees,total_tax,discounts,refunds\r\n";

#[derive(sqlx::FromRow)]
struct ExportLine {
    received_at: DateTime<Utc>,
    local_time: String,
    org_id: String,
    transaction_id: String,
    event_type: String,
    idempotency_key: String,
    line_no: Option<i32>,
    event_id: Option<String>,
    event_name: Option<String>,
    ticket_type_id: Option<String>,
    ticket_type_name: Option<String>,
    item_type: Option<String>,
    quantity: Option<Decimal>,
    payment_type: Option<String>,
    currency: String,
    gross_revenue: Decimal,
    net_sales: Decimal,
    service_fees: Decimal,
    total_tax: Decimal,
    discounts: Decimal,
    refunds: Decimal,
}

impl ExportLine {
    fn write(&self, out: &mut String) {
        let text = |out: &mut String, v: Option<&str>| {
            push_field(out, v.unwrap_or(""));
            out.push(',');
        };
        text(
            out,
            Some(
                &self
                    .received_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            ),
        );
        text(out, Some(&self.local_time));
        text(out, Some(&self.org_id));
        text(out, Some(&self.transaction_id));
        text(out, Some(&self.event_type));
        text(out, Some(&self.idempotency_key));
        text(out, self.line_no.map(|n| n.to_string()).as_deref());
        text(out, self.event_id.as_deref());
        text(out, self.event_name.as_deref());
        text(out, self.ticket_type_id.as_deref());
        text(out, self.ticket_type_name.as_deref());
        text(out, self.item_type.as_deref());
        text(
            out,
            self.quantity.map(|q| q.normalize().to_string()).as_deref(),
        );
        text(out, self.payment_type.as_deref());
        text(out, Some(&self.currency));
        for (i, m) in [
            self.gross_revenue,
            self.net_sales,
            self.service_fees,
            self.total_tax,
            self.discounts,
            self.refunds,
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&Money(m).text());
        }
        out.push_str("\r\n");
    }
}

/// RFC 4180 quoting; text a spreadsheet would run as a formula gets a leading `'`. A number
/// (`-12.50`, `+1`) is left alone: it is data, not a formula.
fn push_field(out: &mut String, v: &str) {
    let number = !v.is_empty()
        && v.trim() == v
        && v.parse::<f64>().is_ok_and(f64::is_finite)
        && v.bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
    let formula = !number && v.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = formula || v.contains([',', '"', '\n', '\r']);
    if !quote {
        out.push_str(v);
        return;
    }
    out.push('"');
    if formula {
        out.push('\'');
    }
    for c in v.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
}

/// How long an export waits for its client to take the next chunk: a client that stops reading
/// gives its export connection back.
const EXPORT_SEND_STALL: std::time::Duration = std::time::Duration::from_secs(60);

/// Hands a chunk to the response body; `false` when the client went away or stalled.
async fn send(
    tx: &tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>,
    chunk: Result<bytes::Bytes, std::io::Error>,
) -> bool {
    matches!(
        tokio::time::timeout(EXPORT_SEND_STALL, tx.send(chunk)).await,
        Ok(Ok(()))
    )
}

/// The itemised export: money lines of purchases, refunds and voids, oldest first, streamed
/// from a cursor so memory stays flat however many lines there are.
fn export(state: AppState, filters: SalesFilters, range: Range) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(8);
    tokio::spawn(async move {
        let mut sql =
            QueryBuilder::new("SELECT s.received_at, to_char(s.received_at AT TIME ZONE ");
        sql.push_bind(filters.tz.clone()).push(
            ", 'YYYY-MM-DD\"T\"HH24:MI:SS') AS local_time, s.org_id, s.transaction_id, s.event_type, \
             s.idempotency_key, i.line_no, i.event_id, i.event_name, i.ticket_type_id, \
             i.ticket_type_name, i.invoice_item_type AS item_type, i.quantity, s.payment_type, s.currency, \
             m.gross_revenue, m.net_sales, m.service_fees, m.total_tax, m.discounts, m.refunds \
             FROM invoices s LEFT JOIN invoice_items i ON i.idempotency_key = s.idempotency_key \
             CROSS JOIN LATERAL (SELECT \
                 CASE WHEN s.event_type = 'invoice.purchase' THEN 1 ELSE -1 END AS sign) k \
             CROSS JOIN LATERAL (SELECT \
                 CASE WHEN k.sign = 1 THEN coalesce(i.gross_revenue, s.gross_revenue) ELSE -abs(coalesce(i.gross_revenue, s.gross_revenue)) END AS gross_revenue, \
                 CASE WHEN k.sign = 1 THEN coalesce(i.net_sales, s.net_sales) ELSE -abs(coalesce(i.net_sales, s.net_sales)) END AS net_sales, \
                 CASE WHEN k.sign = 1 THEN coalesce(i.service_fees, s.service_fees) ELSE -abs(coalesce(i.service_fees, s.service_fees)) END AS service_fees, \
                 CASE WHEN k.sign = 1 THEN coalesce(i.total_tax, s.total_tax) ELSE -abs(coalesce(i.total_tax, s.total_tax)) END AS total_tax, \
                 CASE WHEN k.sign = 1 THEN coalesce(i.discounts, s.discounts) ELSE -abs(coalesce(i.discounts, s.discounts)) END AS discounts, \
                 CASE WHEN k.sign = 1 THEN 0 ELSE abs(coalesce(i.net_sales, s.net_sales)) END AS refunds) m \
             WHERE s.event_type IN ('invoice.purchase', 'invoice.refund', 'invoice.void')",
        );
        filters.push(&mut sql, "s.received_at", false, range);
        if let Some(e) = &filters.event {
            sql.push(" AND i.event_id = ").push_bind(e.clone());
        }
        sql.push(" ORDER BY s.received_at, s.stream_seq, i.line_no");
        let mut rows = sql.build_query_as::<ExportLine>().fetch(&state.export_pool);
        let mut chunk = String::from(CSV_HEADER);
        loop {
            match rows.next().await {
                Some(Ok(line)) => {
                    line.write(&mut chunk);
                    if chunk.len() < 64 * 1024 {
                        continue;
                    }
                }
                Some(Err(e)) => {
                    tracing::error!(error = %e, "CSV export failed midway");
                    // The status is sent already: cut the body so the client sees an error.
                    let _ = send(&tx, Err(std::io::Error::other("export failed"))).await;
                    return;
                }
                None => {
                    let _ = send(&tx, Ok(bytes::Bytes::from(chunk))).await;
                    return;
                }
            }
            let full = std::mem::take(&mut chunk);
            if !send(&tx, Ok(bytes::Bytes::from(full))).await {
                return; // the client went away, or stopped reading
            }
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"sales.csv\"",
            ),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(v: &str) -> String {
        let mut s = String::new();
        push_field(&mut s, v);
        s
    }

    fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        use chrono::TimeZone as _;
        Utc.with_ymd_and_hms(2026, 11, day, hour, minute, 0)
            .unwrap()
    }

    /// Which tile holds the quarter hour starting at `t` (exactly one, or none outside).
    fn holder(tiles: &[(Tier, Range)], t: DateTime<Utc>) -> Option<Tier> {
        let inside = |r: &Range| r.start.is_none_or(|s| s <= t) && r.end.is_none_or(|e| t < e);
        let holders: Vec<Tier> = tiles
            .iter()
            .filter(|(_, r)| inside(r))
            .map(|(k, _)| *k)
            .collect();
        assert!(holders.len() <= 1, "{t} is in {holders:?}");
        holders.first().copied()
    }

    #[test]
    fn tiles_cover_a_range_exactly_with_whole_days_from_the_daily_tier() {
        let ends = [
            None,
            Some(at(10, 0, 0)),
            Some(at(10, 10, 15)),
            Some(at(11, 0, 0)),
            Some(at(11, 23, 45)),
            Some(at(13, 0, 0)),
            Some(at(13, 6, 30)),
        ];
        for start in ends {
            for end in ends {
                let range = Range { start, end };
                let tiles = tiles(range);
                for daily in tiles.iter().filter(|(k, _)| *k == Tier::Daily) {
                    let r = daily.1;
                    assert!(
                        r.start.is_none_or(|s| s == utc_day(s)),
                        "{range:?}: {tiles:?}"
                    );
                    assert!(
                        r.end.is_none_or(|e| e == utc_day(e)),
                        "{range:?}: {tiles:?}"
                    );
                }
                let mut t = at(9, 0, 0);
                while t < at(15, 0, 0) {
                    let inside = start.is_none_or(|s| s <= t) && end.is_none_or(|e| t < e);
                    assert_eq!(
                        holder(&tiles, t).is_some(),
                        inside,
                        "{range:?} at {t}: {tiles:?}"
                    );
                    t += Duration::minutes(15);
                }
            }
        }
        assert_eq!(
            tiles(Range::default()),
            vec![(Tier::Daily, Range::default())],
            "all time is the daily tier alone"
        );
    }

    #[test]
    fn days_are_utc_days_only_in_zones_without_an_offset() {
        assert!(is_utc("UTC") && is_utc("etc/utc") && is_utc("GMT"));
        assert!(!is_utc("America/Edmonton") && !is_utc("Asia/Kathmandu") && !is_utc("UTC+5"));
    }

    #[test]
    fn csv_fields_are_quoted_when_needed_and_formulas_defused() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(field("-cmd|' /C calc'!A0"), "\"'-cmd|' /C calc'!A0\"");
    }

    /// Issue 12: the guard defuses formulas, not negative numbers.
    #[test]
    fn csv_numbers_are_left_alone() {
        for n in ["-12.50", "+1", "-0", "1e3"] {
            assert_eq!(field(n), n);
        }
        assert_eq!(field("-1+2"), "\"'-1+2\"", "an expression is not a number");
        assert_eq!(field("+inf"), "\"'+inf\"");
    }
}
