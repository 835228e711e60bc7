//! `/console/logs`: the delivery log with `/v1/logs`' filters and pages; one delivery with
//! its headers, payload and processing; and Replay, for an admin, behind a CSRF token.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Path, Query as Params, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::html;
use serde::Deserialize;

use crate::Console;
use crate::backend::Query;
use crate::error::ConsoleError;
use crate::format::{segment, time};
use crate::session::Session;
use crate::view::{Chrome, badge, form_error, layout, pager, select_field, text_field};

#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    outcome: Option<String>,
    processing: Option<String>,
    event_type: Option<String>,
    q: Option<String>,
    org_id: Option<String>,
    endpoint: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Delivery {
    id: String,
    received_at: DateTime<Utc>,
    endpoint: String,
    outcome: String,
    reason: Option<String>,
    detail: Option<String>,
    http_status: i64,
    event_type: Option<String>,
    webhook_event_uuid: Option<String>,
    transaction_id: Option<String>,
    org_id: Option<String>,
    remote_addr: Option<String>,
    processing: String,
    error: Option<String>,
    stream: String,
    stream_seq: i64,
    body_length: Option<i64>,
    erased_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
struct Deliveries {
    items: Vec<Delivery>,
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Detail {
    #[serde(flatten)]
    delivery: Delivery,
    headers: BTreeMap<String, String>,
    payload: Option<serde_json::Value>,
    payload_unavailable: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Replayed {
    delivery_id: String,
}

const OUTCOMES: [(&str, &str); 4] = [
    ("", "any"),
    ("accepted", "accepted"),
    ("duplicate", "duplicate"),
    ("rejected", "rejected"),
];
const PROCESSING: [(&str, &str); 6] = [
    ("", "any"),
    ("pending", "pending"),
    ("applied", "applied"),
    ("duplicate", "duplicate"),
    ("skipped", "skipped"),
    ("failed", "failed"),
];

pub async fn list(
    State(console): State<Console>,
    session: Session,
    Params(f): Params<Filters>,
) -> Response {
    let query = Query::new("/v1/logs")
        .param("outcome", f.outcome.as_deref())
        .param("processing", f.processing.as_deref())
        .param("event_type", f.event_type.as_deref())
        .param("q", f.q.as_deref())
        .param("org_id", f.org_id.as_deref())
        .param("endpoint", f.endpoint.as_deref())
        .param("from", f.from.as_deref())
        .param("to", f.to.as_deref())
        .param("limit", f.limit.as_deref())
        .param("cursor", f.cursor.as_deref());
    let chrome = Chrome::of(&console, &session, "logs", query.clone());
    let (status, results, error) = match console.get::<Deliveries>(&session, &query).await {
        Ok(page) => (StatusCode::OK, Some(page), None),
        Err(ConsoleError::BadFilter { detail, .. }) => {
            (StatusCode::BAD_REQUEST, None, Some(detail))
        }
        Err(e) => return e.into_response(),
    };
    let body = html! {
        h1 { "Deliveries" }
        form.filters method="get" action="/console/logs" aria-label="Delivery filters" {
            (form_error(error.as_deref()))
            (select_field("outcome", "Outcome", f.outcome.as_deref(), &OUTCOMES))
            (select_field("processing", "Processing", f.processing.as_deref(), &PROCESSING))
            (text_field("event_type", "Event type", f.event_type.as_deref(), "text", "invoice.purchase"))
            (text_field("q", "Search", f.q.as_deref(), "search", "transaction or event id"))
            (text_field("org_id", "Organization", f.org_id.as_deref(), "text", "all"))
            (text_field("endpoint", "Endpoint", f.endpoint.as_deref(), "text", "all"))
            (text_field("from", "From", f.from.as_deref(), "text", "2026-11-27"))
            (text_field("to", "To", f.to.as_deref(), "text", "2026-11-28"))
            button type="submit" { "Filter" }
        }
        @if let Some(page) = results {
            @if page.items.is_empty() {
                p.muted { "No delivery matches." }
            } @else {
                div.scroll { table #deliveries {
                    thead { tr {
                        th scope="col" { "Received" }
                        th scope="col" { "Outcome" }
                        th scope="col" { "Event" }
                        th scope="col" { "Transaction" }
                        th scope="col" { "Processing" }
                        th scope="col" class="num" { "HTTP" }
                    } }
                    tbody { @for d in &page.items { tr data-outcome=(d.outcome) {
                        th scope="row" { a href={ "/console/logs/" (segment(&d.id)) } { (time(&d.received_at)) } }
                        td { (badge(&d.outcome)) @if let Some(r) = &d.reason { " " span.muted { (r) } } }
                        td { (d.event_type.as_deref().unwrap_or("—")) }
                        td { (d.transaction_id.as_deref().unwrap_or("—")) }
                        td { (badge(&d.processing)) }
                        td.num { (d.http_status) }
                    } } }
                } }
            }
            (pager("/console/logs", &query, page.next_cursor.as_deref(), f.cursor.is_none()))
        }
    };
    (status, layout("Deliveries", &chrome, body)).into_response()
}

#[derive(Debug, Deserialize)]
pub struct Notice {
    replayed: Option<String>,
}

pub async fn one(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
    Params(notice): Params<Notice>,
) -> Result<Response, ConsoleError> {
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ConsoleError::NotFound(
            "There is no delivery with that id.".into(),
        ));
    }
    let query = Query::new(format!("/v1/logs/{id}"));
    let detail: Detail = console.get(&session, &query).await?;
    let d = &detail.delivery;
    let replayed = notice
        .replayed
        .as_deref()
        .and_then(|r| uuid::Uuid::parse_str(r).ok());
    let chrome = Chrome::of(&console, &session, "logs", query);
    let csrf = console.signer.csrf(&session);
    let payload = detail
        .payload
        .as_ref()
        .map(|p| serde_json::to_string_pretty(p).unwrap_or_default());
    let body = html! {
        h1 { "Delivery " (badge(&d.outcome)) }
        @if let Some(r) = replayed {
            p.notice role="status" { "Replayed: the event is published again as "
                a href={ "/console/logs/" (r) } { "delivery " (r) } "." }
        }
        dl.facts {
            dt { "Id" } dd { code { (d.id) } }
            dt { "Received" } dd { (time(&d.received_at)) }
            dt { "Endpoint" } dd { (d.endpoint) }
            dt { "Answered" } dd { "HTTP " (d.http_status) }
            @if let Some(r) = &d.reason { dt { "Reason" } dd { (r) } }
            @if let Some(x) = &d.detail { dt { "Detail" } dd { (x) } }
            dt { "Event type" } dd { (d.event_type.as_deref().unwrap_or("—")) }
            dt { "Webhook event" } dd { (d.webhook_event_uuid.as_deref().unwrap_or("—")) }
            dt { "Transaction" } dd {
                @match (&d.transaction_id, &d.org_id) {
                    (Some(t), Some(org)) => a href={ "/console/orders/" (segment(t)) "?" (serde_urlencoded::to_string([("org_id", org)]).unwrap_or_default()) } { (t) },
                    (Some(t), None) => (t),
                    _ => "—",
                }
            }
            dt { "Organization" } dd { (d.org_id.as_deref().unwrap_or("—")) }
            dt { "From" } dd { (d.remote_addr.as_deref().unwrap_or("—")) }
            dt { "Stored" } dd { (d.stream) " #" (d.stream_seq) @if let Some(n) = d.body_length { ", " (n) " bytes" } }
            @if let Some(e) = &d.erased_at { dt { "Erased" } dd { (time(e)) } }
        }
        h2 { "Processing" }
        p #processing { (badge(&d.processing)) @if let Some(e) = &d.error { " " span.error { (e) } } }
        @if session.is_admin() {
            form.replay method="post" action={ "/console/logs/" (segment(&d.id)) "/replay" } {
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" { "Replay" }
                span.muted { " Publishes the stored event again; the projector applies it at most once." }
            }
        }
        h2 { "Headers" }
        @if detail.headers.is_empty() { p.muted { "None stored." } }
        @else {
            div.scroll { table #headers {
                thead { tr { th scope="col" { "Header" } th scope="col" { "Value" } } }
                tbody { @for (k, v) in &detail.headers { tr { th scope="row" { code { (k) } } td { code { (v) } } } } }
            } }
        }
        h2 { "Payload" }
        @match (&payload, &detail.payload_unavailable) {
            (Some(p), _) => pre #payload { code { (p) } },
            (None, Some(why)) => p.muted { "Unavailable: " (why) },
            (None, None) => p.muted { "Unavailable." },
        }
    };
    Ok(layout("Delivery", &chrome, body).into_response())
}

#[derive(Debug, Deserialize)]
pub struct Csrf {
    #[serde(default)]
    csrf: String,
}

/// Replays as the session's key: the api itself refuses a read key (403), and a form without
/// this session's token is refused before that.
pub async fn replay(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<Csrf>,
) -> Result<Response, ConsoleError> {
    if !console.signer.csrf_ok(&session, &form.csrf) {
        return Err(ConsoleError::Forbidden(
            "This form has expired or came from elsewhere; reload the page and try again.".into(),
        ));
    }
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ConsoleError::NotFound(
            "There is no delivery with that id.".into(),
        ));
    }
    let done: Replayed = console
        .post(&session, &format!("/v1/logs/{id}/replay"))
        .await?;
    tracing::info!(who = %session.who.0, delivery = %id, replay = %done.delivery_id, "console replay");
    Ok(Redirect::to(&format!(
        "/console/logs/{id}?{}",
        serde_urlencoded::to_string([("replayed", &done.delivery_id)]).unwrap_or_default()
    ))
    .into_response())
}
