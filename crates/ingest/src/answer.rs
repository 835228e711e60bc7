//! What a delivery is answered: a refusal's status, reason and detail, and the JSON body of
//! every answer.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use showpass_payload::Envelope;
use showpass_payload::vocab::{Outcome, Reason};

use crate::deliveries::DeliveryMeta;

/// Why a delivery was not accepted: the HTTP status, a stable reason code, and a detail.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    pub reason: Reason,
    pub detail: String,
}

impl Refusal {
    pub fn new(status: StatusCode, reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            detail: detail.into(),
        }
    }
}

/// Whether a refused request carried a verified signature: the two are recorded at rates of
/// their own.
#[derive(Clone, Copy)]
pub(crate) enum Trust {
    Unsigned,
    Signed,
}

/// The JSON body of every answer.
#[derive(Serialize)]
pub(crate) struct Answer<'a> {
    pub status: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_event_uuid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<&'a str>,
    pub delivery_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_sequence: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'a str>,
}

/// The answer to a refusal.
pub(crate) fn answer_refusal(
    meta: &DeliveryMeta,
    envelope: Option<&Envelope<'_>>,
    r: &Refusal,
) -> Response {
    json(
        r.status,
        &Answer {
            status: Outcome::Rejected,
            webhook_event_uuid: envelope.and_then(|e| e.webhook_event_uuid.as_deref()),
            idempotency_key: None,
            delivery_id: meta.id.to_string(),
            stream_sequence: None,
            reason: Some(r.reason.as_str()),
            detail: Some(&r.detail),
        },
    )
}

pub(crate) fn json(status: StatusCode, answer: &Answer<'_>) -> Response {
    let body = serde_json::to_vec(answer).expect("answers serialize");
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
