//! The summary's query: rows of one grouping and per-currency totals, from the aggregates.

use showpass_payload::vocab::Grain;
use sqlx::{PgPool, QueryBuilder};

use super::tiers::{Cells, is_utc};
use super::{MAX_ROWS, SalesFilters, SalesRow, SalesSummary, SalesTotal};
use crate::error::ApiResult;
use crate::params;

pub(crate) const GROUPS: &[&str] = &["event", "ticket_type", "day", "payment_type"];

pub(crate) const SUMS: &str = "sum(s.orders)::int8 AS orders, sum(s.tickets)::int8 AS tickets, \
    sum(s.gross_revenue) AS gross_revenue, sum(s.net_sales) AS net_sales, \
    sum(s.service_fees) AS service_fees, sum(s.total_tax) AS total_tax, \
    sum(s.discounts) AS discounts, sum(s.refunds) AS refunds";

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
    let grain = match (group_by, filters.event.is_some()) {
        ("ticket_type", _) => Grain::TicketType,
        ("event", _) | (_, true) => Grain::Event,
        _ => Grain::OrderAttrs,
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
            "(SELECT tt.name FROM ticket_types tt WHERE tt.org_id = g.org_id \
             AND tt.event_id = g.event_id AND tt.ticket_type_id = g.key)"
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
        if grain.has_event() {
            "min(s.event_id)"
        } else {
            "NULL::text"
        }
    ));
    let range = filters.range(pool).await?;
    let cells = match group_by {
        "day" if is_utc(&filters.tz) => Cells::UtcDays,
        "day" => Cells::LocalDays,
        _ => Cells::Any,
    };
    filters.push_cells(&mut sql, grain, range, cells);
    sql.push(" GROUP BY 1, 2, s.currency) g ORDER BY g.key, g.currency LIMIT ")
        .push_bind((MAX_ROWS + 1) as i64);

    // Totals from the coarsest grain the filters allow, where each order counts once.
    let totals_grain = if filters.event.is_some() {
        Grain::Event
    } else {
        Grain::OrderAttrs
    };
    let mut totals_sql = QueryBuilder::new(format!("SELECT s.currency, {SUMS} FROM "));
    filters.push_cells(&mut totals_sql, totals_grain, range, Cells::Any);
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
