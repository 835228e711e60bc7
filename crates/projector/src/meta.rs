//! What a stream message's headers say about its delivery.

use async_nats::HeaderMap;
use chrono::{DateTime, Utc};
use showpass_payload::headers as h;
use showpass_payload::subject::header_value;
use showpass_payload::vocab::{DEFAULT_ENDPOINT, Outcome};
use uuid::Uuid;

/// The delivery metadata ingest put in a message's headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// Which stream and where in it.
    pub stream: String,
    pub seq: u64,
    pub delivery_id: Uuid,
    pub received_at: DateTime<Utc>,
    pub endpoint: String,
    pub idempotency_key: Option<String>,
    pub event_type: Option<String>,
    pub webhook_event_uuid: Option<String>,
    pub transaction_id: Option<String>,
    pub org_id: Option<String>,
    pub remote_addr: Option<String>,
    /// What ingest answered, on a record of the deliveries stream.
    pub outcome: Option<Outcome>,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub http_status: Option<i32>,
    pub body_sha256: Option<String>,
    pub body_length: Option<i32>,
    pub body_truncated: bool,
    /// Set on an event re-published by the api's replay: the original's stream sequence.
    pub replay_of: Option<u64>,
    /// Why ingest marked an accepted delivery for a person to look at.
    pub suspect: Option<String>,
    /// On a redacted copy left by an erasure: when it ran.
    pub erased_at: Option<DateTime<Utc>>,
}

impl Meta {
    /// Reads the headers of message `seq` of `stream`. A message without a delivery id or a
    /// receive time (published by hand, say) gets ones derived from its position and the
    /// stream's own timestamp, so it can still be logged.
    pub fn from_headers(
        stream: &str,
        seq: u64,
        headers: Option<&HeaderMap>,
        stream_time: DateTime<Utc>,
    ) -> Self {
        // Whoever published the message chose its headers: each value is cut to what a
        // header may carry and loses control characters (NUL among them, which no text
        // column can hold), so its delivery can always be logged.
        let get = |name: &str| -> Option<String> {
            headers
                .and_then(|hs| hs.get(name))
                .map(|v| header_value(v.as_str()).trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let delivery_id = get(h::DELIVERY_ID)
            .and_then(|v| Uuid::parse_str(&v).ok())
            .unwrap_or_else(|| {
                Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("{stream}:{seq}").as_bytes())
            });
        let received_at = get(h::RECEIVED_AT)
            .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
            .map_or(stream_time, |t| t.with_timezone(&Utc));
        Self {
            stream: stream.to_owned(),
            seq,
            delivery_id,
            received_at,
            endpoint: get(h::ENDPOINT).unwrap_or_else(|| DEFAULT_ENDPOINT.into()),
            idempotency_key: get(h::IDEMPOTENCY_KEY).or_else(|| get(h::MSG_ID)),
            event_type: get(h::EVENT_TYPE),
            webhook_event_uuid: get(h::WEBHOOK_EVENT_UUID),
            transaction_id: get(h::TRANSACTION_ID),
            org_id: get(h::ORGANIZATION_ID),
            remote_addr: get(h::REMOTE_ADDR),
            outcome: get(h::OUTCOME).and_then(|v| Outcome::parse(&v)),
            reason: get(h::REASON),
            detail: get(h::DETAIL),
            http_status: get(h::HTTP_STATUS).and_then(|v| v.parse().ok()),
            body_sha256: get(h::BODY_SHA256),
            body_length: get(h::BODY_LENGTH).and_then(|v| v.parse().ok()),
            body_truncated: get(h::BODY_TRUNCATED).is_some_and(|v| v == "true"),
            replay_of: showpass_core::replay::replay_of(headers),
            suspect: get(h::SUSPECT),
            erased_at: get(h::ERASED)
                .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
                .map(|t| t.with_timezone(&Utc)),
        }
    }

    /// Only what places the message: for the record of an event whose own headers could not
    /// be stored.
    pub fn bare(&self) -> Self {
        Self {
            stream: self.stream.clone(),
            seq: self.seq,
            delivery_id: self.delivery_id,
            received_at: self.received_at,
            endpoint: DEFAULT_ENDPOINT.into(),
            idempotency_key: None,
            event_type: None,
            webhook_event_uuid: None,
            transaction_id: None,
            org_id: None,
            remote_addr: None,
            outcome: None,
            reason: None,
            detail: None,
            http_status: None,
            body_sha256: None,
            body_length: None,
            body_truncated: false,
            replay_of: None,
            suspect: None,
            erased_at: self.erased_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 11: headers are the publisher's to choose; none can make the record unstorable.
    #[test]
    fn header_values_that_no_column_can_hold_are_cleaned() {
        let mut hs = HeaderMap::new();
        hs.insert(h::TRANSACTION_ID, "T\0-1");
        hs.insert(h::EVENT_TYPE, "x".repeat(10_000).as_str());
        let m = Meta::from_headers("S", 1, Some(&hs), Utc::now());
        assert!(!m.transaction_id.unwrap().contains('\0'));
        assert_eq!(m.event_type.unwrap().len(), 256);
    }
}
