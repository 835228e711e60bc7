//! `/v1/logs`: the delivery log, one delivery with its stored payload, and replay.

use std::collections::BTreeMap;

use async_nats::HeaderMap;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use showpass_payload::subject;
use showpass_payload::vocab::{Outcome, Processing};
use sqlx::QueryBuilder;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, Problem};
use crate::page::{self, Key, Keyset, Page};
use crate::params::{self, Params, Range};
use crate::routes::Routes;
use crate::state::AppState;

pub(crate) fn routes() -> Routes {
    Routes::new("/v1")
        .add::<__path_list_logs, _, _>(list_logs)
        .add::<__path_get_log, _, _>(get_log)
        .add::<__path_replay_log, _, _>(replay_log)
}

/// One HTTP delivery and what became of it.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[schema(example = json!({
    "id": "019ac4e2-5b1a-7d3e-8f21-6c0b9a4d2e17", "received_at": "2026-11-27T18:02:11.412Z",
    "endpoint": "default", "outcome": "accepted", "reason": null, "detail": null,
    "http_status": 202, "event_type": "invoice.purchase",
    "webhook_event_uuid": "5f3c1a2b-9d8e-4f7a-b6c5-0e1d2c3b4a59",
    "transaction_id": "ef4fe3e2b2c0c0c84b7fa3b4f5b2d2a8", "org_id": "20",
    "remote_addr": "34.83.8.110", "processing": "applied", "error": null,
    "idempotency_key": "5f3c1a2b-9d8e-4f7a-b6c5-0e1d2c3b4a59", "stream": "SHOWPASS_EVENTS",
    "stream_seq": 1042, "body_sha256": "9c1185a5c5e9fc54612808977ee8f548b2258d31b2f94e3c1f8a4f0d7c1c7e0a",
    "body_length": 2991, "body_truncated": false, "suspect": null, "erased_at": null
}))]
pub struct DeliveryOut {
    pub id: Uuid,
    pub received_at: DateTime<Utc>,
    /// The endpoint it was posted to (`default` for `/webhooks/showpass`).
    pub endpoint: String,
    #[schema(schema_with = crate::params_doc::outcome_field)]
    pub outcome: String,
    /// Why it was refused, or `published`/`already_accepted`.
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub http_status: i32,
    pub event_type: Option<String>,
    pub webhook_event_uuid: Option<String>,
    pub transaction_id: Option<String>,
    pub org_id: Option<String>,
    pub remote_addr: Option<String>,
    #[schema(schema_with = crate::params_doc::processing_field)]
    pub processing: String,
    /// Why it failed or was skipped; `conflict: ...` for a reused uuid with another body.
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
    /// Where the stored message is: the events stream for accepted deliveries.
    pub stream: String,
    pub stream_seq: i64,
    pub body_sha256: Option<String>,
    pub body_length: Option<i32>,
    /// Rejected deliveries keep only a prefix of their body.
    pub body_truncated: bool,
    /// Why an accepted delivery deserves a look: `id_transaction_mismatch: ...` when its
    /// signed `id` was first accepted with another transaction of the same organization.
    pub suspect: Option<String>,
    /// When the personal data of this delivery was erased (its stored message is then a
    /// redacted copy, header `Showpass-Erased`); `null` when it was not.
    pub erased_at: Option<DateTime<Utc>>,
}

/// A delivery with its stored message.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: DeliveryOut,
    /// The message's headers (`Showpass-*`, `Nats-Msg-Id`, ...), from the stream.
    pub headers: BTreeMap<String, String>,
    /// The stored body: JSON when it parses, else the text; `null` when unavailable.
    pub payload: Option<serde_json::Value>,
    /// Why the payload is missing, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_unavailable: Option<String>,
}

/// What a replay published.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayOut {
    #[schema(example = "replayed")]
    pub status: &'static str,
    pub delivery_id: Uuid,
    /// The stream sequence of the original message.
    pub replay_of: i64,
    pub stream: String,
    /// The replay's own stream sequence.
    pub stream_seq: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// `accepted`, `duplicate` or `rejected`.
    #[param(value_type = Option<crate::params_doc::OutcomeWord>, inline)]
    pub outcome: Option<String>,
    /// `pending`, `applied`, `duplicate`, `skipped` or `failed`.
    #[param(value_type = Option<crate::params_doc::ProcessingWord>, inline)]
    pub processing: Option<String>,
    /// e.g. `invoice.refund`.
    #[param(value_type = Option<crate::params_doc::Query>, inline)]
    pub event_type: Option<String>,
    /// A webhook_event_uuid, transaction id, delivery id or idempotency key.
    #[param(value_type = Option<crate::params_doc::Query>, inline)]
    pub q: Option<String>,
    #[param(value_type = Option<crate::params_doc::Id>, inline)]
    pub org_id: Option<String>,
    #[param(value_type = Option<crate::params_doc::Id>, inline)]
    pub endpoint: Option<String>,
    /// Received at or after: a date (UTC) or an RFC 3339 time.
    #[param(value_type = Option<crate::params_doc::When>, inline)]
    pub from: Option<String>,
    /// Received at or before (a date counts whole).
    #[param(value_type = Option<crate::params_doc::When>, inline)]
    pub to: Option<String>,
    #[param(value_type = Option<crate::params_doc::Limit>, inline)]
    pub limit: Option<String>,
    #[param(value_type = Option<crate::params_doc::CursorText>, inline)]
    pub cursor: Option<String>,
}

const COLUMNS: &str = "d.id, d.received_at, d.endpoint, d.outcome, d.reason, d.detail, \
    d.http_status, d.event_type, d.webhook_event_uuid, d.transaction_id, d.org_id, \
    d.remote_addr, d.processing, d.error, d.idempotency_key, d.stream, d.stream_seq, \
    d.body_sha256, d.body_length, d.body_truncated, d.suspect, d.erased_at";

/// The delivery log, newest first.
#[utoipa::path(get, path = "/v1/logs", tag = "logs", params(LogQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "a page of deliveries, newest first", body = Page<DeliveryOut>),
              (status = 400, description = "a parameter is bad", body = Problem, content_type = "application/problem+json"),
              (status = 401, description = "no key or a wrong one", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "the database (or NATS) is unavailable or too slow; retry later", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list_logs(
    State(state): State<AppState>,
    Params(query): Params<LogQuery>,
) -> ApiResult<Json<Page<DeliveryOut>>> {
    let limit = state.limit(query.limit.as_deref())?;
    let outcome = params::word::<Outcome>("outcome", query.outcome.as_deref())?;
    let processing = params::word::<Processing>("processing", query.processing.as_deref())?;
    let event_type = params::text("event_type", query.event_type.as_deref(), 200)?;
    let q = params::text("q", query.q.as_deref(), 200)?;
    let org = params::text("org_id", query.org_id.as_deref(), 100)?;
    let endpoint = params::text("endpoint", query.endpoint.as_deref(), 100)?;
    let range = Range::utc(query.from.as_deref(), query.to.as_deref())?;

    let mut sql = QueryBuilder::new(format!("SELECT {COLUMNS} FROM deliveries d WHERE true"));
    if let Some(o) = outcome {
        sql.push(" AND d.outcome = ").push_bind(o.as_str());
    }
    if let Some(p) = processing {
        sql.push(" AND d.processing = ").push_bind(p.as_str());
    }
    if let Some(t) = &event_type {
        sql.push(" AND d.event_type = ").push_bind(t);
    }
    if let Some(org) = &org {
        sql.push(" AND d.org_id = ").push_bind(org);
    }
    if let Some(e) = &endpoint {
        sql.push(" AND d.endpoint = ").push_bind(e);
    }
    if let Some(q) = &q {
        sql.push(" AND (d.webhook_event_uuid = ")
            .push_bind(q)
            .push(" OR d.transaction_id = ")
            .push_bind(q)
            .push(" OR d.idempotency_key = ")
            .push_bind(q);
        if let Ok(id) = q.parse::<Uuid>() {
            sql.push(" OR d.id = ").push_bind(id);
        }
        sql.push(")");
    }
    if let Some(start) = range.start {
        sql.push(" AND d.received_at >= ").push_bind(start);
    }
    if let Some(end) = range.end {
        sql.push(" AND d.received_at < ").push_bind(end);
    }
    const LISTING: Keyset = Keyset {
        listing: "logs",
        columns: &[("d.received_at", Key::Time), ("d.id", Key::Uuid)],
        descending: true,
    };
    LISTING.after(&mut sql, query.cursor.as_deref(), &state.cursor_key, limit)?;
    let rows: Vec<DeliveryOut> = sql.build_query_as().fetch_all(&state.pool).await?;
    Ok(Json(LISTING.page(rows, limit, &state.cursor_key, |d| {
        vec![page::time(d.received_at), d.id.to_string()]
    })))
}

async fn find(state: &AppState, id: &str) -> ApiResult<DeliveryOut> {
    let not_found = || ApiError::NotFound(format!("no delivery with id {:?}", page::truncate(id)));
    let uuid: Uuid = id.trim().parse().map_err(|_| not_found())?;
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM deliveries d WHERE d.id = $1"
    ))
    .bind(uuid)
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(not_found)
}

/// Fetches the stored message of a delivery from its stream.
async fn stored(
    state: &AppState,
    d: &DeliveryOut,
) -> ApiResult<async_nats::jetstream::message::StreamMessage> {
    let js = state.js.as_ref().ok_or_else(|| {
        ApiError::Unavailable(
            "the api runs without NATS (NATS_URL unset): payloads and replay are unavailable"
                .into(),
        )
    })?;
    let stream = js.get_stream(&d.stream).await.map_err(|e| {
        tracing::warn!(error = %e, stream = %d.stream, "stream unavailable");
        ApiError::Unavailable(format!("stream {} is unavailable; retry shortly", d.stream))
    })?;
    stream
        .get_raw_message(d.stream_seq as u64)
        .await
        .map_err(|e| match e.kind() {
            LastRawMessageErrorKind::NoMessageFound => ApiError::Gone(format!(
                "message {} of {} is no longer in the stream (aged out or purged)",
                d.stream_seq, d.stream
            )),
            _ => {
                tracing::warn!(error = %e, "reading a stored message");
                ApiError::Unavailable("NATS did not answer; retry shortly".into())
            }
        })
}

fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(name, values)| {
            let joined = values
                .iter()
                .map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            (name.to_string(), joined)
        })
        .collect()
}

/// One delivery: headers, payload and processing result.
#[utoipa::path(get, path = "/v1/logs/{id}", tag = "logs",
    params(("id" = String, Path, description = "The delivery id (a UUID)")),
    security(("bearer" = [])),
    responses((status = 200, description = "the delivery, its stored headers and payload", body = DeliveryDetail),
              (status = 401, description = "no key or a wrong one", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "no such delivery", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "the database (or NATS) is unavailable or too slow; retry later", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn get_log(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryDetail>> {
    let delivery = find(&state, &id).await?;
    let (headers, payload, payload_unavailable) = match stored(&state, &delivery).await {
        Ok(m) => {
            let payload = serde_json::from_slice(&m.payload).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&m.payload).into_owned())
            });
            (header_map(&m.headers), Some(payload), None)
        }
        // The log row stands on its own; the payload is a bonus when the stream has it.
        Err(e @ (ApiError::Gone(_) | ApiError::Unavailable(_))) => {
            (BTreeMap::new(), None, Some(e.to_string()))
        }
        Err(e) => return Err(e),
    };
    Ok(Json(DeliveryDetail {
        delivery,
        headers,
        payload,
        payload_unavailable,
    }))
}

/// Re-publish a stored event for re-processing (admin key).
///
/// The event goes back on its subject with its original headers (and `Showpass-Replay-Of`), so
/// subscribers see it again, marked as a replay.
/// The projector's idempotency makes replaying an applied event harmless; a failed one is
/// applied, once the projector understands it.
#[utoipa::path(post, path = "/v1/logs/{id}/replay", tag = "logs",
    params(("id" = String, Path, description = "The delivery id (a UUID)")),
    security(("bearer" = [])),
    responses((status = 202, description = "re-published", body = ReplayOut),
              (status = 401, description = "no key or a wrong one", body = Problem, content_type = "application/problem+json"),
              (status = 403, description = "a read key: replay needs an admin key", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "no such delivery", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "not an accepted delivery: nothing to replay", body = Problem, content_type = "application/problem+json"),
              (status = 410, description = "the message is no longer in the stream", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "NATS unavailable", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn replay_log(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<ReplayOut>)> {
    let delivery = find(&state, &id).await?;
    if delivery.outcome != Outcome::Accepted.as_str() {
        return Err(ApiError::Conflict(format!(
            "delivery {} was {}: only accepted deliveries carry an event to replay",
            delivery.id, delivery.outcome
        )));
    }
    let original = stored(&state, &delivery).await?;
    let headers = showpass_core::replay::headers(Some(&original.headers), original.sequence);
    let js = state
        .js
        .as_ref()
        .expect("stored() checked NATS is configured");
    let unavailable = |e: &dyn std::fmt::Display| {
        tracing::warn!(error = %e, "replay publish failed");
        ApiError::Unavailable("JetStream did not acknowledge the replay; retry".into())
    };
    // Back to the subject the stream stores events on (events stored before stores and
    // republishes were apart carry the public subject).
    let subject = format!("_{}", subject::public_subject(&original.subject));
    let ack = js
        .publish_with_headers(subject, headers, original.payload.clone())
        .await
        .map_err(|e| unavailable(&e))?
        .await
        .map_err(|e| unavailable(&e))?;
    tracing::info!(delivery = %delivery.id, from = original.sequence, to = ack.sequence, "event replayed");
    Ok((
        StatusCode::ACCEPTED,
        Json(ReplayOut {
            status: "replayed",
            delivery_id: delivery.id,
            replay_of: delivery.stream_seq,
            stream: ack.stream,
            stream_seq: ack.sequence,
        }),
    ))
}
