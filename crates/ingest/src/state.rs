//! What every request shares: one `Arc`, so handing it to a request is one atomic increment;
//! and what it does with a delivery once verified or refused: publish it, record it, answer.

use std::sync::Arc;
use std::time::Instant;

use async_nats::connection::State as NatsState;
use async_nats::jetstream;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use showpass_payload::vocab::{Outcome, Reason};
use showpass_payload::{Envelope, idempotency_key, subject};

use crate::IngestConfig;
use crate::answer::{Answer, Refusal, Trust, answer_refusal, json};
use crate::bindings::{Binding, Bindings, Check};
use crate::deliveries::{DeliveryLog, DeliveryMeta, Record, header as h, record_body};
use crate::limits::{BodyBudget, RecordRate};
use crate::metrics::Metrics;

#[derive(Clone)]
pub(crate) struct AppState(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub config: IngestConfig,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub metrics: Arc<Metrics>,
    pub log: DeliveryLog,
    /// Which refusals of unsigned (or wrongly signed) requests are recorded.
    pub rejections: RecordRate,
    /// Which refusals of verified deliveries are recorded: a rate of their own, so a flood of
    /// junk cannot hide an attempt with a captured signature.
    pub signed_rejections: RecordRate,
    /// Memory for bodies being read.
    pub budget: BodyBudget,
    /// Each signed id's organization.
    pub bindings: Bindings,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Inner {
    /// Queues a delivery-log record on `{prefix}.deliveries.{outcome}.{endpoint}`, keeping at
    /// most `keep` bytes of the body.
    pub(crate) fn log_record(
        &self,
        meta: &DeliveryMeta,
        outcome: Outcome,
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

    /// Answers a refusal at a known endpoint and records it on the deliveries stream, up to
    /// the record rate of its kind; past it the refusal is only counted.
    pub(crate) fn refuse(
        &self,
        meta: &DeliveryMeta,
        envelope: Option<&Envelope<'_>>,
        body: &Bytes,
        r: Refusal,
        trust: Trust,
    ) -> Response {
        tracing::Span::current().record("outcome", Outcome::Rejected.as_str());
        self.metrics.rejected(r.reason);
        let rate = match trust {
            Trust::Unsigned => &self.rejections,
            Trust::Signed => &self.signed_rejections,
        };
        if !rate.allow(meta.remote_addr) {
            self.metrics.unrecorded.inc();
            tracing::debug!(remote_addr = %meta.remote_addr, reason = r.reason.as_str(), "delivery rejected (over the source's record rate: counted only)");
            return answer_refusal(meta, envelope, &r);
        }
        tracing::warn!(
            endpoint = %meta.endpoint,
            delivery_id = %meta.id,
            remote_addr = %meta.remote_addr,
            status = r.status.as_u16(),
            reason = r.reason.as_str(),
            detail = %r.detail,
            "delivery rejected"
        );
        let mut headers = meta.headers(envelope, None);
        headers.insert(h::OUTCOME, Outcome::Rejected.as_str());
        headers.insert(h::REASON, r.reason.as_str());
        headers.insert(h::DETAIL, subject::header_value(&r.detail).as_ref());
        headers.insert(h::HTTP_STATUS, r.status.as_str());
        self.log_record(
            meta,
            Outcome::Rejected,
            headers,
            body,
            self.config.rejected_body_prefix,
        );
        answer_refusal(meta, envelope, &r)
    }

    /// Answers a refusal that leaves no record (an unknown endpoint, a source not on the
    /// allowlist): it is counted in the metrics only.
    pub(crate) fn count_only(&self, meta: &DeliveryMeta, r: Refusal) -> Response {
        tracing::Span::current().record("outcome", Outcome::Rejected.as_str());
        self.metrics.rejected(r.reason);
        tracing::debug!(remote_addr = %meta.remote_addr, reason = r.reason.as_str(), "request refused (counted only)");
        answer_refusal(meta, None, &r)
    }

    /// Binds the delivery's signed `id` to its organization, or reads the binding it has.
    pub(crate) async fn bind(
        &self,
        envelope: &Envelope<'_>,
    ) -> Result<Check, async_nats::jetstream::kv::EntryError> {
        self.bindings
            .check(&envelope.id, &Binding::of(envelope))
            .await
    }

    /// Publishes a verified delivery and answers once JetStream has acked it. `suspect` says
    /// why its record should be looked at (it is accepted all the same).
    pub(crate) async fn publish(
        &self,
        meta: &DeliveryMeta,
        envelope: &Envelope<'_>,
        body: Bytes,
        suspect: Option<&str>,
    ) -> Response {
        let key = idempotency_key(envelope, &body);
        if self.client.connection_state() != NatsState::Connected {
            let r = Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Reason::NatsUnavailable,
                "the event store is unreachable; retry later",
            );
            return self.refuse(meta, Some(envelope), &body, r, Trust::Signed);
        }
        // Stored behind an underscore; the stream republishes it to subscribers only if it
        // stored it, so a duplicate it drops is seen by no one.
        let subject = subject::stored_event_subject(
            &self.config.nats.prefix,
            envelope.organization_id.as_deref(),
            envelope.event_type.as_deref(),
        );
        let mut headers = meta.headers(Some(envelope), Some(&key));
        if let Some(why) = suspect {
            headers.insert(h::SUSPECT, subject::header_value(why).as_ref());
        }
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
                        Reason::BodyTooLarge,
                        format!(
                            "the body with its headers exceeds the NATS server's max_payload: {e}"
                        ),
                    ),
                    PublishErrorKind::StreamNotFound => Refusal::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        Reason::StreamMissing,
                        "the events stream does not exist; retry later",
                    ),
                    _ => Refusal::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        Reason::PublishFailed,
                        format!("the event store did not store the delivery: {e}"),
                    ),
                };
                return self.refuse(meta, Some(envelope), &body, r, Trust::Signed);
            }
            Err(_) => {
                let r = Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Reason::PublishTimeout,
                    "the event store did not acknowledge in time; retry later",
                );
                return self.refuse(meta, Some(envelope), &body, r, Trust::Signed);
            }
        };

        let uuid = envelope.webhook_event_uuid.as_deref();
        if ack.duplicate {
            tracing::Span::current().record("outcome", Outcome::Duplicate.as_str());
            tracing::info!(endpoint = %meta.endpoint, delivery_id = %meta.id, idempotency_key = %key, "duplicate delivery");
            self.metrics.duplicate.inc();
            let mut headers = meta.headers(Some(envelope), None);
            headers.insert(h::IDEMPOTENCY_KEY, key.as_str());
            headers.insert(h::OUTCOME, Outcome::Duplicate.as_str());
            headers.insert(h::HTTP_STATUS, "200");
            self.log_record(meta, Outcome::Duplicate, headers, &body, usize::MAX);
            return json(
                StatusCode::OK,
                &Answer {
                    status: Outcome::Duplicate,
                    webhook_event_uuid: uuid,
                    idempotency_key: Some(&key),
                    delivery_id: meta.id.to_string(),
                    stream_sequence: Some(ack.sequence),
                    reason: None,
                    detail: None,
                },
            );
        }
        tracing::Span::current().record("outcome", Outcome::Accepted.as_str());
        tracing::debug!(sequence = ack.sequence, "delivery accepted");
        self.metrics.accepted.inc();
        json(
            StatusCode::ACCEPTED,
            &Answer {
                status: Outcome::Accepted,
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
