//! Delivery metadata as NATS headers, and the delivery log of duplicates and rejections.
//!
//! Accepted deliveries are their own log record: the event message carries every header.
//! Duplicates and rejections go to `{prefix}.deliveries.{outcome}.{endpoint}` through a queue
//! bounded by bytes and a background publisher, so a flood of bad requests can never slow real
//! deliveries nor grow memory while NATS is slow: when the queue is full the record is dropped
//! and counted.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use showpass_payload::subject::header_value;
use showpass_payload::{Envelope, sha256_hex};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::metrics::Metrics;

pub use showpass_payload::headers as header;

/// What is known of one HTTP delivery, from its arrival on.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryMeta {
    pub id: Uuid,
    pub received_at: DateTime<Utc>,
    pub endpoint: String,
    pub remote_addr: IpAddr,
}

impl DeliveryMeta {
    pub fn new(endpoint: &str, remote_addr: IpAddr) -> Self {
        Self {
            id: Uuid::now_v7(),
            received_at: Utc::now(),
            endpoint: header_value(endpoint).into_owned(),
            remote_addr,
        }
    }

    /// The headers every record of this delivery carries, with what the envelope tells.
    pub fn headers(&self, envelope: Option<&Envelope<'_>>, key: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(key) = key {
            h.insert(header::MSG_ID, key);
            h.insert(header::IDEMPOTENCY_KEY, key);
        }
        if let Some(e) = envelope {
            let fields = [
                (header::EVENT_TYPE, e.event_type.as_deref()),
                (header::WEBHOOK_EVENT_UUID, e.webhook_event_uuid.as_deref()),
                (header::TRANSACTION_ID, e.transaction_id.as_deref()),
                (header::ORGANIZATION_ID, e.organization_id.as_deref()),
            ];
            for (name, value) in fields {
                if let Some(v) = value {
                    h.insert(name, header_value(v).as_ref());
                }
            }
        }
        h.insert(header::ENDPOINT, self.endpoint.as_str());
        h.insert(
            header::RECEIVED_AT,
            self.received_at
                .to_rfc3339_opts(SecondsFormat::Micros, true)
                .as_str(),
        );
        h.insert(header::DELIVERY_ID, self.id.to_string().as_str());
        h.insert(header::REMOTE_ADDR, self.remote_addr.to_string().as_str());
        h.insert(header::CONTENT_TYPE, "application/json");
        h
    }
}

/// One record for the deliveries stream.
pub(crate) struct Record {
    pub subject: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Describes the body a record keeps: all of it for duplicates (so a conflicting resend can be
/// found), at most a prefix for rejections. The prefix is a copy, so a queued record never
/// keeps a large request's whole buffer alive.
pub(crate) fn record_body(headers: &mut HeaderMap, body: &Bytes, keep: usize) -> Bytes {
    headers.insert(header::BODY_SHA256, sha256_hex(body).as_str());
    headers.insert(header::BODY_LENGTH, body.len().to_string().as_str());
    match body.get(..keep) {
        Some(prefix) if keep < body.len() => {
            headers.insert(header::BODY_TRUNCATED, "true");
            Bytes::copy_from_slice(prefix)
        }
        _ => body.clone(),
    }
}

/// The sending side of the delivery log.
#[derive(Clone)]
pub(crate) struct DeliveryLog {
    tx: mpsc::Sender<(Record, usize)>,
    metrics: Arc<Metrics>,
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
}

impl Record {
    /// What a queued record holds in memory, about.
    fn weight(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, vs)| {
                let name: &str = k.as_ref();
                name.len() + vs.iter().map(|v| v.as_str().len() + 8).sum::<usize>()
            })
            .sum();
        self.body.len() + self.subject.len() + headers + 64
    }
}

impl DeliveryLog {
    /// Queues a record; never waits. A full queue (by count, or by the bytes of records not
    /// yet acknowledged by JetStream) drops it: counted in the metrics, logged at debug.
    pub fn record(&self, record: Record) {
        let weight = record.weight();
        let before = self.queued.fetch_add(weight, Ordering::Relaxed);
        if before + weight > self.max_bytes || self.tx.try_send((record, weight)).is_err() {
            self.queued.fetch_sub(weight, Ordering::Relaxed);
            self.metrics.log_dropped.inc();
            tracing::debug!("delivery log queue full; record dropped");
        }
    }
}

/// Gives a record's weight back to the queue when dropped.
struct Release(Arc<AtomicUsize>, usize);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::Relaxed);
    }
}

/// Starts the background publisher. It ends when every [`DeliveryLog`] is dropped and the
/// queue is drained.
pub(crate) fn spawn(
    js: jetstream::Context,
    capacity: usize,
    max_bytes: usize,
    ack_timeout: Duration,
    metrics: Arc<Metrics>,
) -> (DeliveryLog, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<(Record, usize)>(capacity);
    let queued = Arc::new(AtomicUsize::new(0));
    let in_queue = queued.clone();
    let task = tokio::spawn(async move {
        let mut acks = tokio::task::JoinSet::new();
        while let Some((r, weight)) = rx.recv().await {
            let subject = r.subject.clone();
            let published = js.publish_with_headers(r.subject, r.headers, r.body).await;
            // A record weighs on the queue until JetStream has it (or gave up on it): what the
            // client still buffers while NATS is slow counts too.
            let released = in_queue.clone();
            match published {
                Ok(ack) => {
                    acks.spawn(async move {
                        let _release = Release(released, weight);
                        match tokio::time::timeout(ack_timeout, ack.into_future()).await {
                            Ok(Ok(_)) => {}
                            Ok(Err(e)) => tracing::warn!(%subject, error = %e, "delivery log record not stored"),
                            Err(_) => tracing::warn!(%subject, "delivery log record not acknowledged in time"),
                        }
                    });
                }
                Err(e) => {
                    released.fetch_sub(weight, Ordering::Relaxed);
                    tracing::warn!(%subject, error = %e, "delivery log record not published");
                }
            }
            while acks.try_join_next().is_some() {}
        }
        while acks.join_next().await.is_some() {}
    });
    (
        DeliveryLog {
            tx,
            metrics,
            queued,
            max_bytes,
        },
        task,
    )
}
