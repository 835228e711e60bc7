//! `/console`: sales of an organization over a period, as charts and per-currency totals,
//! and the platform's health.

use std::collections::BTreeMap;

use axum::extract::{Query as Params, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use crate::Console;
use crate::backend::Query;
use crate::charts::{self, Bar};
use crate::error::ConsoleError;
use crate::format::{age, count, float, money};
use crate::session::Session;
use crate::view::{Chrome, form_error, layout, text_field};

#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    org_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    tz: Option<String>,
}

/// The money and counts of a sales row or total (`/v1/sales/summary`).
#[derive(Debug, Deserialize)]
pub struct Figures {
    pub currency: String,
    pub orders: i64,
    pub tickets: i64,
    pub gross_revenue: String,
    pub net_sales: String,
    pub service_fees: String,
    pub total_tax: String,
    pub discounts: String,
    pub refunds: String,
}

#[derive(Debug, Deserialize)]
struct Row {
    key: String,
    label: Option<String>,
    #[serde(flatten)]
    figures: Figures,
}

#[derive(Debug, Deserialize)]
struct Summary {
    rows: Vec<Row>,
    totals: Vec<Figures>,
    truncated: bool,
    tz: String,
}

#[derive(Debug, Deserialize)]
struct Endpoint {
    endpoint: String,
    last_accepted_at: DateTime<Utc>,
    age_seconds: f64,
    last_delivery_id: String,
}

#[derive(Debug, Deserialize)]
struct Rejected {
    last_24h: BTreeMap<String, i64>,
}

#[derive(Debug, Deserialize)]
struct Lag {
    lag_events: i64,
    lag_seconds: f64,
}

#[derive(Debug, Deserialize)]
struct Health {
    status: String,
    attention: Vec<String>,
    endpoints: Vec<Endpoint>,
    rejected: Rejected,
    projector: Option<Lag>,
    failed_events: i64,
    gaps: BTreeMap<String, i64>,
    anomalies: BTreeMap<String, i64>,
}

fn summary_query(f: &Filters, group_by: &str) -> Query {
    Query::new("/v1/sales/summary")
        .param("group_by", Some(group_by))
        .param("org_id", f.org_id.as_deref())
        .param("from", f.from.as_deref())
        .param("to", f.to.as_deref())
        .param("tz", f.tz.as_deref())
}

pub async fn page(
    State(console): State<Console>,
    session: Session,
    Params(filters): Params<Filters>,
) -> Response {
    let day = summary_query(&filters, "day");
    let event = summary_query(&filters, "event");
    let ticket_type = summary_query(&filters, "ticket_type");
    let health = Query::new("/v1/health");
    // (No list of organizations for the form: `/v1/events` reads every show's tickets, over
    // a second on the benchmark's data, to fill a hint.)
    let (by_day, by_event, by_type, health_now) = futures::future::join4(
        console.get::<Summary>(&session, &day),
        console.get::<Summary>(&session, &event),
        console.get::<Summary>(&session, &ticket_type),
        console.get::<Health>(&session, &health),
    )
    .await;
    let chrome = Chrome::of(&console, &session, "overview", day)
        .and_json(event)
        .and_json(ticket_type)
        .and_json(health);
    let (status, sales, error) = match (by_day, by_event, by_type) {
        (Ok(d), Ok(e), Ok(t)) => (StatusCode::OK, Some(sales(&d, &e, &t)), None),
        (Err(ConsoleError::BadFilter { detail, .. }), ..)
        | (_, Err(ConsoleError::BadFilter { detail, .. }), _)
        | (.., Err(ConsoleError::BadFilter { detail, .. })) => {
            (StatusCode::BAD_REQUEST, None, Some(detail))
        }
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => return e.into_response(),
    };
    let body = html! {
        h1 { "Overview" }
        (form(&filters, error.as_deref()))
        @if let Some(s) = sales { (s) }
        (health_panel(health_now))
    };
    (status, layout("Overview", &chrome, body)).into_response()
}

fn form(f: &Filters, error: Option<&str>) -> Markup {
    html! {
        form.filters method="get" action="/console" aria-label="Sales filters" {
            (form_error(error))
            div.field {
                label for="f-org_id" { "Organization" }
                input id="f-org_id" name="org_id" type="text" inputmode="numeric" value=[f.org_id.as_deref()]
                    placeholder="all";
            }
            (text_field("from", "From (day)", f.from.as_deref(), "date", ""))
            (text_field("to", "To (day, inclusive)", f.to.as_deref(), "date", ""))
            (text_field("tz", "Time zone", f.tz.as_deref(), "text", "UTC"))
            button type="submit" { "Show" }
        }
    }
}

/// Groups rows by currency, keeping the api's order within each.
fn by_currency(rows: &[Row]) -> BTreeMap<&str, Vec<&Row>> {
    let mut out: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        out.entry(r.figures.currency.as_str()).or_default().push(r);
    }
    out
}

fn sales(by_day: &Summary, by_event: &Summary, by_type: &Summary) -> Markup {
    let days = by_currency(&by_day.rows);
    let events = by_currency(&by_event.rows);
    let types = by_currency(&by_type.rows);
    html! {
        section aria-labelledby="totals-h" {
            h2 id="totals-h" { "Totals" }
            @if by_day.totals.is_empty() {
                p.muted { "No sales for these filters." }
            } @else {
                (totals_table(&by_day.totals))
            }
        }
        @for total in &by_day.totals {
            @let cur = total.currency.as_str();
            section.currency aria-labelledby={ "cur-" (cur) } {
                h2 id={ "cur-" (cur) } { "Sales in " (cur) }
                @if let Some(rows) = days.get(cur) {
                    h3 { "Net sales by day (" (by_day.tz) ")" }
                    @let bars: Vec<Bar> = rows.iter().map(|r| Bar {
                        label: r.key.clone(),
                        value: float(&r.figures.net_sales),
                        shown: money(&r.figures.net_sales, cur),
                    }).collect();
                    (charts::columns(&format!("Net sales by day in {cur}"), &bars))
                    details {
                        summary { "Net sales by day in " (cur) ", as a table" }
                        (figures_table("Day", rows))
                    }
                    @if by_day.truncated { p.muted { "Only the first 5,000 days are drawn; narrow the period." } }
                }
                @if let Some(rows) = events.get(cur) {
                    h3 { "By event" }
                    (grouped_bars(&format!("Net sales by event in {cur}"), rows, cur))
                }
                @if let Some(rows) = types.get(cur) {
                    h3 { "By ticket type" }
                    (grouped_bars(&format!("Net sales by ticket type in {cur}"), rows, cur))
                }
            }
        }
    }
}

/// One row per currency, the figures `/v1/sales/summary` answers as `totals`.
fn totals_table(totals: &[Figures]) -> Markup {
    html! {
        div.scroll {
            table #totals {
                caption { "Per currency, for the filters above" }
                thead { tr {
                    th scope="col" { "Currency" }
                    th scope="col" class="num" { "Net sales" }
                    th scope="col" class="num" { "Gross revenue" }
                    th scope="col" class="num" { "Refunds" }
                    th scope="col" class="num" { "Service fees" }
                    th scope="col" class="num" { "Tax" }
                    th scope="col" class="num" { "Discounts" }
                    th scope="col" class="num" { "Orders" }
                    th scope="col" class="num" { "Tickets" }
                } }
                tbody {
                    @for t in totals {
                        tr data-currency=(t.currency) {
                            th scope="row" { (t.currency) }
                            td.num data-field="net_sales" { (money(&t.net_sales, &t.currency)) }
                            td.num data-field="gross_revenue" { (money(&t.gross_revenue, &t.currency)) }
                            td.num data-field="refunds" { (money(&t.refunds, &t.currency)) }
                            td.num data-field="service_fees" { (money(&t.service_fees, &t.currency)) }
                            td.num data-field="total_tax" { (money(&t.total_tax, &t.currency)) }
                            td.num data-field="discounts" { (money(&t.discounts, &t.currency)) }
                            td.num data-field="orders" { (count(t.orders)) }
                            td.num data-field="tickets" { (count(t.tickets)) }
                        }
                    }
                }
            }
        }
    }
}

fn figures_table(first: &str, rows: &[&Row]) -> Markup {
    html! {
        div.scroll {
            table {
                thead { tr {
                    th scope="col" { (first) }
                    th scope="col" class="num" { "Net sales" }
                    th scope="col" class="num" { "Refunds" }
                    th scope="col" class="num" { "Orders" }
                    th scope="col" class="num" { "Tickets" }
                } }
                tbody {
                    @for r in rows {
                        tr {
                            th scope="row" { (r.label.as_deref().unwrap_or(&r.key)) }
                            td.num { (money(&r.figures.net_sales, &r.figures.currency)) }
                            td.num { (money(&r.figures.refunds, &r.figures.currency)) }
                            td.num { (count(r.figures.orders)) }
                            td.num { (count(r.figures.tickets)) }
                        }
                    }
                }
            }
        }
    }
}

/// The 25 largest groups by net sales as bars with their figures; the rest summed up.
fn grouped_bars(caption: &str, rows: &[&Row], cur: &str) -> Markup {
    let mut sorted: Vec<&&Row> = rows.iter().collect();
    sorted.sort_by(|a, b| float(&b.figures.net_sales).total_cmp(&float(&a.figures.net_sales)));
    let shown: Vec<(Bar, Option<String>, Vec<String>)> = sorted
        .iter()
        .take(25)
        .map(|r| {
            let label = match (r.label.as_deref(), r.key.as_str()) {
                (Some(l), _) if !l.is_empty() => l.to_owned(),
                (_, "") => "(none)".to_owned(),
                (_, k) => k.to_owned(),
            };
            (
                Bar {
                    label,
                    value: float(&r.figures.net_sales),
                    shown: money(&r.figures.net_sales, cur),
                },
                None,
                vec![
                    money(&r.figures.net_sales, cur),
                    count(r.figures.tickets),
                    count(r.figures.orders),
                ],
            )
        })
        .collect();
    html! {
        (charts::bar_table(caption, &["Net sales", "Tickets", "Orders"], &shown))
        @if sorted.len() > 25 {
            p.muted { (sorted.len() - 25) " smaller groups not drawn; the JSON has them all." }
        }
    }
}

fn health_panel(health: Result<Health, ConsoleError>) -> Markup {
    html! {
        section.health aria-labelledby="health-h" {
            h2 id="health-h" { "Health" }
            @match health {
                Err(e) => p.error { "Health is unavailable: " (e.detail()) },
                Ok(h) => {
                    p { "Status: " (crate::view::badge(&h.status)) }
                    @if !h.attention.is_empty() {
                        ul.attention { @for a in &h.attention { li { (a) } } }
                    }
                    div.panels {
                        div {
                            h3 { "Last accepted delivery" }
                            @if h.endpoints.is_empty() { p.muted { "None yet." } }
                            @else {
                                table {
                                    thead { tr { th scope="col" { "Endpoint" } th scope="col" class="num" { "Age" } } }
                                    tbody { @for e in &h.endpoints { tr {
                                        th scope="row" { a href={ "/console/logs/" (e.last_delivery_id) } { (e.endpoint) } }
                                        td.num title=(crate::format::time(&e.last_accepted_at)) { (age(e.age_seconds)) }
                                    } } }
                                }
                            }
                        }
                        div {
                            h3 { "Rejected, last 24 h" }
                            @if h.rejected.last_24h.is_empty() { p.muted { "None." } }
                            @else {
                                table {
                                    thead { tr { th scope="col" { "Reason" } th scope="col" class="num" { "Deliveries" } } }
                                    tbody { @for (reason, n) in &h.rejected.last_24h { tr {
                                        th scope="row" { (reason) }
                                        td.num { (count(*n)) }
                                    } } }
                                }
                            }
                            p { a href="/console/logs?outcome=rejected" { "All rejected deliveries" } }
                        }
                        div {
                            h3 { "Projector" }
                            @match &h.projector {
                                Some(l) => p { "Lag: " strong { (count(l.lag_events)) " events" } ", oldest " (age(l.lag_seconds)) },
                                None => p.muted { "Lag unknown: the api runs without NATS." },
                            }
                            p { "Failed events: "
                                @if h.failed_events > 0 {
                                    a href="/console/logs?processing=failed" { strong { (count(h.failed_events)) } }
                                } @else { "0" }
                            }
                            p { "Open gaps: " (count(h.gaps.values().sum())) " · anomalies: " (count(h.anomalies.values().sum())) }
                        }
                    }
                }
            }
        }
    }
}
