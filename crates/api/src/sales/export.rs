//! The itemised export: one CSV line per invoice line, refunds and voids negative, streamed.

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use rust_decimal::Decimal;
use showpass_payload::vocab::fill_sql;
use sqlx::QueryBuilder;

use super::SalesFilters;
use crate::money::Money;
use crate::params::Range;
use crate::state::AppState;

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

/// The export's columns and rows after `local_time`: the money lines of purchases, refunds and
/// voids.
static EXPORT_COLUMNS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    fill_sql(
        ", 'YYYY-MM-DD\"T\"HH24:MI:SS') AS local_time, s.org_id, s.transaction_id, s.event_type, \
             s.idempotency_key, i.line_no, i.event_id, i.event_name, i.ticket_type_id, \
             i.ticket_type_name, i.invoice_item_type AS item_type, i.quantity, s.payment_type, s.currency, \
             m.gross_revenue, m.net_sales, m.service_fees, m.total_tax, m.discounts, m.refunds \
             FROM invoices s LEFT JOIN invoice_items i ON i.idempotency_key = s.idempotency_key \
             CROSS JOIN LATERAL (SELECT \
                 CASE WHEN s.event_type = {PURCHASE} THEN 1 ELSE -1 END AS sign) k \
             CROSS JOIN LATERAL (SELECT \
                 CASE WHEN k.sign = 1 THEN coalesce(i.gross_revenue, s.gross_revenue) ELSE -abs(coalesce(i.gross_revenue, s.gross_revenue)) END AS gross_revenue, \
                 CASE WHEN k.sign = 1 THEN coalesce(i.net_sales, s.net_sales) ELSE -abs(coalesce(i.net_sales, s.net_sales)) END AS net_sales, \
                 CASE WHEN k.sign = 1 THEN coalesce(i.service_fees, s.service_fees) ELSE -abs(coalesce(i.service_fees, s.service_fees)) END AS service_fees, \
                 CASE WHEN k.sign = 1 THEN coalesce(i.total_tax, s.total_tax) ELSE -abs(coalesce(i.total_tax, s.total_tax)) END AS total_tax, \
                 CASE WHEN k.sign = 1 THEN coalesce(i.discounts, s.discounts) ELSE -abs(coalesce(i.discounts, s.discounts)) END AS discounts, \
                 CASE WHEN k.sign = 1 THEN 0 ELSE abs(coalesce(i.net_sales, s.net_sales)) END AS refunds) m \
             WHERE s.event_type IN ({PURCHASE}, {REFUND}, {VOID})",
    )
});

/// The itemised export: money lines of purchases, refunds and voids, oldest first, streamed
/// from a cursor so memory stays flat however many lines there are.
pub(super) fn export(state: AppState, filters: SalesFilters, range: Range) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(8);
    tokio::spawn(async move {
        let mut sql =
            QueryBuilder::new("SELECT s.received_at, to_char(s.received_at AT TIME ZONE ");
        sql.push_bind(filters.tz.clone())
            .push(EXPORT_COLUMNS.as_str());
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

    #[test]
    fn the_export_statement_has_every_word_put_in() {
        assert_eq!(showpass_payload::vocab::unfilled(&EXPORT_COLUMNS), None);
        assert!(EXPORT_COLUMNS.contains("'invoice.purchase'"));
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
