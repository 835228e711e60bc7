//! `POST /webhooks/showpass[/{endpoint}]`: verify, publish, answer.

use std::net::SocketAddr;
use std::time::Instant;

use async_nats::connection::State as NatsState;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use showpass_payload::{Envelope, idempotency_key, signature, subject};

use crate::DEFAULT_ENDPOINT;
use crate::deliveries::{DeliveryMeta, Record, header as h, record_body};
use crate::server::{AppState, Inner};

/// Why a delivery was not accepted: the HTTP status, a stable reason code, and a detail.
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    reason: &'static str,
    detail: String,
}

impl Refusal {
    fn new(status: StatusCode, reason: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            detail: detail.into(),
        }
    }
}

/// The JSON body of every answer.
#[derive(Serialize)]
struct Answer<'a> {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_event_uuid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<&'a str>,
    delivery_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_sequence: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

fn json(status: StatusCode, answer: &Answer<'_>) -> Response {
    let body = serde_json::to_vec(answer).expect("answers serialize");
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Receives a delivery for the default endpoint.
pub(crate) async fn receive_default(State(state): State<AppState>, req: Request) -> Response {
    receive(state, DEFAULT_ENDPOINT.to_owned(), req).await
}

/// Receives a delivery for a named endpoint.
pub(crate) async fn receive_named(
    State(state): State<AppState>,
    Path(endpoint): Path<String>,
    req: Request,
) -> Response {
    receive(state, endpoint, req).await
}

// The span is at debug level: at the default `info` it costs nothing per request, and every
// event worth seeing at `info` or above carries the delivery id and endpoint itself.
#[tracing::instrument(
    name = "delivery",
    level = "debug",
    skip_all,
    fields(endpoint = %endpoint, delivery_id = tracing::field::Empty, outcome = tracing::field::Empty)
)]
async fn receive(state: AppState, endpoint: String, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |c| c.0.ip());
    let (parts, body) = req.into_parts();
    let remote = match &state.config.allowlist {
        Some(a) => a.client_addr(
            peer,
            parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok()),
        ),
        None => peer,
    };
    let meta = DeliveryMeta::new(&endpoint, remote);
    tracing::Span::current().record("delivery_id", tracing::field::display(meta.id));

    // Refusals that come before a body is read keep no body at all.
    let Some(secrets) = state.config.endpoints.secrets(&endpoint) else {
        let r = Refusal::new(
            StatusCode::NOT_FOUND,
            "unknown_endpoint",
            format!("no endpoint named {endpoint:?}"),
        );
        return state.refuse(&meta, None, &Bytes::new(), r);
    };
    if let Some(allowlist) = &state.config.allowlist
        && !allowlist.allows(remote)
    {
        let r = Refusal::new(
            StatusCode::FORBIDDEN,
            "source_not_allowed",
            format!("source address {remote} is not on the allowlist"),
        );
        return state.refuse(&meta, None, &Bytes::new(), r);
    }
    let body = match read_body(&state, &parts.headers, body).await {
        Ok(b) => b,
        Err(r) => return state.refuse(&meta, None, &Bytes::new(), r),
    };

    let Some(sig) = parts
        .headers
        .get("x-showpass-signature")
        .map(|v| signature::parse_header(v.as_bytes()))
    else {
        let r = Refusal::new(
            StatusCode::UNAUTHORIZED,
            "missing_signature",
            "the X-SHOWPASS-SIGNATURE header is missing",
        );
        return state.refuse(&meta, Envelope::parse(&body).ok().as_ref(), &body, r);
    };
    let envelope = match Envelope::parse(&body) {
        Ok(e) => e,
        Err(e) => {
            let r = Refusal::new(StatusCode::BAD_REQUEST, "invalid_body", e.to_string());
            return state.refuse(&meta, None, &body, r);
        }
    };
    let verified = sig.is_some_and(|sig| {
        signature::verify(
            secrets.iter().map(|s| s.expose().as_bytes()),
            &envelope.id,
            &sig,
        )
    });
    if !verified {
        let detail = if sig.is_none() {
            "the X-SHOWPASS-SIGNATURE header is not 40 hex digits"
        } else {
            "the X-SHOWPASS-SIGNATURE header does not match the payload id under this endpoint's secret"
        };
        let r = Refusal::new(StatusCode::UNAUTHORIZED, "bad_signature", detail);
        return state.refuse(&meta, Some(&envelope), &body, r);
    }

    state.publish(&meta, &envelope, body.clone()).await
}

/// Reads the body within the size limit and the request deadline.
async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<Bytes, Refusal> {
    let limit = state.config.body_limit;
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let read = Limited::new(body, limit).collect();
    match tokio::time::timeout(state.config.request_timeout, read).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "body_unreadable",
            format!("the body could not be read: {e}"),
        )),
        Err(_) => Err(Refusal::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "the body did not arrive in time",
        )),
    }
}

impl Inner {
    /// Queues a delivery-log record on `{prefix}.deliveries.{outcome}.{endpoint}`, keeping at
    /// most `keep` bytes of the body.
    fn log_record(
        &self,
        meta: &DeliveryMeta,
        outcome: &str,
        mut headers: async_nats::HeaderMap,
        body: &Bytes,
        keep: usize,
    ) {
        let body = record_body(&mut headers, body, keep);
        self.log.record(Record {
            subject: subject::delivery_subject(&self.config.nats.prefix, outcome, &meta.endpoint),
            headers,
            body,
        });
    }

    /// Answers a refusal and records it on the deliveries stream.
    fn refuse(
        &self,
        meta: &DeliveryMeta,
        envelope: Option<&Envelope<'_>>,
        body: &Bytes,
        r: Refusal,
    ) -> Response {
        tracing::Span::current().record("outcome", "rejected");
        tracing::warn!(
            endpoint = %meta.endpoint,
            delivery_id = %meta.id,
            remote_addr = %meta.remote_addr,
            status = r.status.as_u16(),
            reason = r.reason,
            detail = %r.detail,
            "delivery rejected"
        );
        self.metrics.request("rejected", r.reason);
        let mut headers = meta.headers(envelope, None);
        headers.insert(h::OUTCOME, "rejected");
        headers.insert(h::REASON, r.reason);
        headers.insert(h::DETAIL, subject::header_value(&r.detail).as_ref());
        headers.insert(h::HTTP_STATUS, r.status.as_str());
        self.log_record(
            meta,
            "rejected",
            headers,
            body,
            self.config.rejected_body_prefix,
        );
        json(
            r.status,
            &Answer {
                status: "rejected",
                webhook_event_uuid: envelope.and_then(|e| e.webhook_event_uuid.as_deref()),
                idempotency_key: None,
                delivery_id: meta.id.to_string(),
                stream_sequence: None,
                reason: Some(r.reason),
                detail: Some(&r.detail),
            },
        )
    }

    /// Publishes a verified delivery and answers once JetStream has acked it.
    async fn publish(&self, meta: &DeliveryMeta, envelope: &Envelope<'_>, body: Bytes) -> Response {
        let key = idempotency_key(envelope, &body);
        if self.client.connection_state() != NatsState::Connected {
            let r = Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "nats_unavailable",
                "the event store is unreachable; retry later",
            );
            return self.refuse(meta, Some(envelope), &body, r);
        }
        // Stored behind an underscore; the stream republishes it to subscribers only if it
        // stored it, so a duplicate it drops is seen by no one.
        let subject = subject::stored_event_subject(
            &self.config.nats.prefix,
            envelope.organization_id.as_deref(),
            envelope.event_type.as_deref(),
        );
        let headers = meta.headers(Some(envelope), Some(&key));
        let message = PublishMessage::build()
            .payload(body.clone())
            .headers(headers);
        let started = Instant::now();
        let acked = tokio::time::timeout(self.config.publish_timeout, async {
            self.js.send_publish(subject, message).await?.await
        })
        .await;
        self.metrics
            .publish_seconds
            .observe(started.elapsed().as_secs_f64());
        let ack = match acked {
            Ok(Ok(ack)) => ack,
            Ok(Err(e)) => {
                let r = match e.kind() {
                    PublishErrorKind::MaxPayloadExceeded => Refusal::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        format!(
                            "the body with its headers exceeds the NATS server's max_payload: {e}"
                        ),
                    ),
                    PublishErrorKind::StreamNotFound => Refusal::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "stream_missing",
                        "the events stream does not exist; retry later",
                    ),
                    _ => Refusal::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "publish_failed",
                        format!("the event store did not store the delivery: {e}"),
                    ),
                };
                return self.refuse(meta, Some(envelope), &body, r);
            }
            Err(_) => {
                let r = Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "publish_timeout",
                    "the event store did not acknowledge in time; retry later",
                );
                return self.refuse(meta, Some(envelope), &body, r);
            }
        };

        let uuid = envelope.webhook_event_uuid.as_deref();
        if ack.duplicate {
            tracing::Span::current().record("outcome", "duplicate");
            tracing::info!(endpoint = %meta.endpoint, delivery_id = %meta.id, idempotency_key = %key, "duplicate delivery");
            self.metrics.duplicate.inc();
            let mut headers = meta.headers(Some(envelope), None);
            headers.insert(h::IDEMPOTENCY_KEY, key.as_str());
            headers.insert(h::OUTCOME, "duplicate");
            headers.insert(h::HTTP_STATUS, "200");
            self.log_record(meta, "duplicate", headers, &body, usize::MAX);
            return json(
                StatusCode::OK,
                &Answer {
                    status: "duplicate",
                    webhook_event_uuid: uuid,
                    idempotency_key: Some(&key),
                    delivery_id: meta.id.to_string(),
                    stream_sequence: Some(ack.sequence),
                    reason: None,
                    detail: None,
                },
            );
        }
        tracing::Span::current().record("outcome", "accepted");
        tracing::debug!(sequence = ack.sequence, "delivery accepted");
        self.metrics.accepted.inc();
        json(
            StatusCode::ACCEPTED,
            &Answer {
                status: "accepted",
                webhook_event_uuid: uuid,
                idempotency_key: Some(&key),
                delivery_id: meta.id.to_string(),
                stream_sequence: Some(ack.sequence),
                reason: None,
                detail: None,
            },
        )
    }
}
