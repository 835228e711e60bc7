//! Erasure of one customer: from the read models, the delivery log and the event store.
//!
//! 1. A tombstone (`erasures`: the organization and the SHA-256 of the folded e-mail, never the
//!    e-mail) makes the projector blank anything of theirs it applies from then on: a rebuild,
//!    a replay, or Showpass resending one of their events brings nothing back.
//! 2. In one transaction, the read models lose them: their customer row goes; their orders,
//!    invoices and the tickets of their orders (and any ticket they hold) keep money, statuses
//!    and counts but no name, e-mail or phone; the search words only they had go. Their
//!    events' keys are recorded (`erased_keys`) and their deliveries marked `erased_at`; every
//!    stream message of those deliveries is queued (`erasure_pending`).
//! 3. Each queued message is replaced: a redacted copy (personal fields `null`,
//!    `Showpass-Erased` set, the other headers kept, a `Nats-Msg-Id` of its own so a rerun
//!    stores it once) is stored on `_{prefix}.erased.…` (stored, never republished), the
//!    log and the ledger point at it, and the original is deleted. A replay's original is
//!    queued in turn.
//!
//! Every step is idempotent and recorded before the next, so a run cut anywhere is finished by
//! the next one (or the projector's sweep): a message is copied once (JetStream drops a second
//! copy with the same id), and an original whose copy is stored is deleted even if the run
//! died in between (`erased_messages`). One run at a time (an advisory lock).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream::LastRawMessageErrorKind};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use showpass_core::nats::NatsConfig;
use showpass_payload::headers as h;
use showpass_payload::subject;
use sqlx::{Connection, PgConnection, Row};
use uuid::Uuid;

use crate::apply::sql::email_hash;
use crate::plan::{customer_id, customer_key};

/// Held (per session) by whoever erases or sweeps.
pub(crate) const ERASE_LOCK: i64 = 0x5348_4f57_4552_4153;

/// Messages handled per round trip to the queue.
const CHUNK: i64 = 100;

/// Who is to be erased.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EraseRequest {
    pub org_id: Option<String>,
    /// The e-mail (`showpass erase --email`), or ...
    pub email: Option<String>,
    /// ... the customer's id (`DELETE /v1/customers/{id}`).
    pub customer_id: Option<Uuid>,
    /// The API key's name or hash, or `cli`.
    pub requested_by: String,
}

/// What an erasure changed, and how long it took.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ErasureReport {
    pub erasure_id: Uuid,
    pub org_id: String,
    pub customer_id: Uuid,
    /// They had been erased before: this run finished or confirmed it.
    pub already_erased: bool,
    pub rows: RowsChanged,
    pub messages: MessagesChanged,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RowsChanged {
    pub customers: u64,
    pub orders: u64,
    pub invoices: u64,
    pub tickets: u64,
    pub search_words: u64,
    pub deliveries: u64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessagesChanged {
    /// Messages of the events stream replaced by a redacted copy.
    pub events: u64,
    /// Messages of the deliveries stream replaced by a redacted copy.
    pub deliveries: u64,
    /// Originals deleted (after a crash, some whose copy an earlier run stored).
    pub deleted: u64,
}

impl MessagesChanged {
    fn add(&mut self, o: MessagesChanged) {
        self.events += o.events;
        self.deliveries += o.deliveries;
        self.deleted += o.deleted;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Fault injection for the tests: stop, as a crash would, right after storing the n-th copy
/// (before the log points at it and before the original is deleted).
#[derive(Debug, Clone, Copy, Default)]
pub struct EraseOptions {
    pub crash_after_copies: Option<u64>,
}

/// Erases one customer (see the module). Idempotent: a second run changes nothing and says
/// `already_erased`; a run after a crash finishes the first.
pub async fn erase(
    js: &jetstream::Context,
    conn: &mut PgConnection,
    nats: &NatsConfig,
    request: &EraseRequest,
    options: EraseOptions,
) -> Result<ErasureReport, EraseError> {
    let started = Instant::now();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(ERASE_LOCK)
        .execute(&mut *conn)
        .await
        .context("taking the erasure lock")?;
    let result = erase_locked(js, conn, nats, request, options, started).await;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(ERASE_LOCK)
        .execute(&mut *conn)
        .await;
    result
}

/// [`erase`] on connections of its own (`showpass erase`).
pub async fn erase_with(
    config: &crate::ProjectorConfig,
    request: &EraseRequest,
) -> Result<ErasureReport, EraseError> {
    let client = showpass_core::nats::connect(&config.nats, "showpass-projector").await?;
    let js = showpass_core::nats::jetstream(client, Duration::from_secs(10));
    let mut conn = PgConnection::connect_with(&config.database_url.options())
        .await
        .context("connecting to PostgreSQL")?;
    let report = erase(
        &js,
        &mut conn,
        &config.nats,
        request,
        EraseOptions::default(),
    )
    .await;
    let _ = conn.close().await;
    report
}

/// Who the request names: (organization, folded e-mail if known, its hash, customer id).
async fn resolve(
    conn: &mut PgConnection,
    request: &EraseRequest,
) -> Result<(String, Option<String>, String, Uuid), EraseError> {
    if let Some(email) = &request.email {
        let org = request
            .org_id
            .clone()
            .filter(|o| !o.trim().is_empty())
            .ok_or_else(|| {
                EraseError::Invalid("an organization is needed with an e-mail".into())
            })?;
        let key = customer_key(email)
            .filter(|k| k.len() <= 320)
            .ok_or_else(|| EraseError::Invalid("the e-mail is blank or too long".into()))?;
        let hash = showpass_payload::sha256_hex(key.as_bytes());
        // Their row's id (a bulk-loaded row may have another than the projector would give).
        let id: Uuid =
            sqlx::query_scalar("SELECT id FROM customers WHERE org_id = $1 AND email = $2")
                .bind(&org)
                .bind(&key)
                .fetch_optional(&mut *conn)
                .await
                .context("looking the customer up")?
                .unwrap_or_else(|| customer_id(&org, &key));
        let known: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM customers WHERE id = $1)
                 OR EXISTS (SELECT 1 FROM invoices WHERE org_id = $2 AND customer_key = $3)
                 OR EXISTS (SELECT 1 FROM public.erasures WHERE org_id = $2 AND email_sha256 = $4)
                 OR EXISTS (SELECT 1 FROM tickets WHERE org_id = $2
                     AND lower(btrim(email_on_ticket)) = $3)",
        )
        .bind(id)
        .bind(&org)
        .bind(&key)
        .bind(&hash)
        .fetch_one(&mut *conn)
        .await
        .context("looking the customer up")?;
        if !known {
            return Err(EraseError::NotFound(format!(
                "organization {org} has no customer with that e-mail"
            )));
        }
        return Ok((org, Some(key), hash, id));
    }
    let id = request
        .customer_id
        .ok_or_else(|| EraseError::Invalid("an e-mail or a customer id is needed".into()))?;
    let row = sqlx::query("SELECT org_id, email FROM customers WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .context("looking the customer up")?;
    if let Some(r) = row {
        let (org, key): (String, String) = (r.get(0), r.get(1));
        let hash = showpass_payload::sha256_hex(key.as_bytes());
        return Ok((org, Some(key), hash, id));
    }
    let erased =
        sqlx::query("SELECT org_id, email_sha256 FROM public.erasures WHERE customer_id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .context("looking the erasure up")?;
    match erased {
        Some(r) => Ok((r.get(0), None, r.get(1), id)),
        None => Err(EraseError::NotFound(format!("no customer with id {id}"))),
    }
}

async fn erase_locked(
    js: &jetstream::Context,
    conn: &mut PgConnection,
    nats: &NatsConfig,
    request: &EraseRequest,
    options: EraseOptions,
    started: Instant,
) -> Result<ErasureReport, EraseError> {
    let (org, key, hash, id) = resolve(conn, request).await?;
    let erasure_id = Uuid::now_v7();
    let now = Utc::now();

    let mut tx = conn.begin().await.context("starting the erasure")?;
    // No batch runs meanwhile: one that began before the tombstone would write them back,
    // and the batches' lock order (tickets, invoices, orders) is not this one's.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(crate::apply::SWAP_LOCK)
        .execute(&mut *tx)
        .await
        .context("waiting for the projector's batch to end")?;
    sqlx::query(
        "INSERT INTO public.erasure_audit (id, org_id, email_sha256, customer_id, requested_by, requested_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(erasure_id)
    .bind(&org)
    .bind(&hash)
    .bind(id)
    .bind(request.requested_by.chars().take(200).collect::<String>())
    .bind(now)
    .execute(&mut *tx)
    .await
    .context("recording the request")?;
    let first = sqlx::query(
        "INSERT INTO public.erasures (org_id, email_sha256, customer_id, erased_at)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(&org)
    .bind(&hash)
    .bind(id)
    .bind(now)
    .execute(&mut *tx)
    .await
    .context("recording the tombstone")?
    .rows_affected();
    let rows = match &key {
        Some(key) => redact_read_models(&mut tx, &org, key, &hash, id, now)
            .await
            .context("erasing from the read models")?,
        None => RowsChanged::default(),
    };
    tx.commit().await.context("committing the read models")?;

    let messages = replace_pending(js, conn, nats, options)
        .await
        .context("replacing the stream messages")?;
    let report = ErasureReport {
        erasure_id,
        org_id: org,
        customer_id: id,
        already_erased: first == 0,
        rows,
        messages,
        elapsed_ms: started.elapsed().as_millis() as u64,
    };
    sqlx::query("UPDATE public.erasure_audit SET finished_at = now(), report = $2 WHERE id = $1")
        .bind(erasure_id)
        .bind(serde_json::to_value(&report).context("the report")?)
        .execute(&mut *conn)
        .await
        .context("recording the report")?;
    tracing::info!(%erasure_id, org = %report.org_id, customer = %id, ?report, "customer erased");
    Ok(report)
}

/// Step 2 of the module, in the caller's transaction.
async fn redact_read_models(
    tx: &mut PgConnection,
    org: &str,
    key: &str,
    hash: &str,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<RowsChanged, sqlx::Error> {
    let mut rows = RowsChanged::default();
    // Their transactions, and those with a ticket they hold.
    let theirs: Vec<String> = sqlx::query_scalar(
        "SELECT transaction_id FROM invoices WHERE org_id = $1 AND customer_key = $2
         UNION SELECT transaction_id FROM orders WHERE org_id = $1 AND customer_id = $3",
    )
    .bind(org)
    .bind(key)
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    // The one read of the organization's tickets (no index holds who a ticket is for: that
    // would cost every ticket written, for the rare erasure).
    let held: Vec<(String, String)> = sqlx::query_as(
        "SELECT transaction_id, id FROM tickets
         WHERE org_id = $1 AND lower(btrim(email_on_ticket)) = $2",
    )
    .bind(org)
    .bind(key)
    .fetch_all(&mut *tx)
    .await?;
    let held_ids: Vec<&str> = held.iter().map(|(_, id)| id.as_str()).collect();
    let all: Vec<&String> = theirs.iter().chain(held.iter().map(|(t, _)| t)).collect();
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT idempotency_key FROM invoices WHERE org_id = $1 AND transaction_id = ANY($2)",
    )
    .bind(org)
    .bind(&all)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO public.erased_keys (idempotency_key, org_id, email_sha256)
         SELECT k, $2, $3 FROM unnest($1::text[]) AS k ON CONFLICT DO NOTHING",
    )
    .bind(&keys)
    .bind(org)
    .bind(hash)
    .execute(&mut *tx)
    .await?;

    rows.invoices = sqlx::query(
        "UPDATE invoices SET customer_key = NULL, customer_name = NULL, customer_phone = NULL,
             customer_id = NULL
         WHERE org_id = $1 AND customer_key = $2",
    )
    .bind(org)
    .bind(key)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    rows.orders = sqlx::query(
        "UPDATE orders SET customer_key = NULL, customer_email = NULL, customer_name = NULL,
             customer_id = NULL
         WHERE org_id = $1 AND (customer_key = $2 OR customer_id = $3)",
    )
    .bind(org)
    .bind(key)
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    rows.tickets = sqlx::query(
        "UPDATE tickets SET name_on_ticket = NULL, email_on_ticket = NULL
         WHERE org_id = $1 AND (transaction_id = ANY($2) OR id = ANY($3))
           AND (name_on_ticket IS NOT NULL OR email_on_ticket IS NOT NULL)",
    )
    .bind(org)
    .bind(&theirs)
    .bind(&held_ids)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    // Their words, before their row goes; each kept while another customer has it.
    let words: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT w FROM customers c,
             unnest(regexp_split_to_array(public.showpass_fold(coalesce(c.name, '') || ' '
                 || split_part(c.email, '@', 1)), '[^a-z]+')) AS w
         WHERE c.id = $1 AND length(w) BETWEEN 3 AND 64",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    rows.customers = sqlx::query("DELETE FROM customers WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    rows.search_words = sqlx::query(
        "DELETE FROM search_words s WHERE s.word = ANY($1)
           AND NOT EXISTS (SELECT 1 FROM customers c WHERE c.search_doc LIKE '%' || s.word || '%')",
    )
    .bind(&words)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    // Their events' deliveries, and any other of their transactions' (a failed or skipped
    // event carries them too, without an invoice).
    sqlx::query(
        "INSERT INTO public.erasure_pending (stream, stream_seq, delivery_id)
         SELECT d.stream, d.stream_seq, d.id FROM deliveries d
         WHERE (d.idempotency_key = ANY($1) OR (d.transaction_id = ANY($2) AND d.org_id = $3))
           AND d.erased_at IS NULL
         ON CONFLICT DO NOTHING",
    )
    .bind(&keys)
    .bind(&all)
    .bind(org)
    .execute(&mut *tx)
    .await?;
    rows.deliveries = sqlx::query(
        "UPDATE deliveries d SET erased_at = $2
         WHERE (d.idempotency_key = ANY($1) OR (d.transaction_id = ANY($3) AND d.org_id = $4))
           AND d.erased_at IS NULL",
    )
    .bind(&keys)
    .bind(now)
    .bind(&all)
    .bind(org)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(rows)
}

/// Replaces what the projector queued since (a duplicate of an erased event, an event of an
/// erased person), and finishes what a crashed erasure left. Skips when an erasure runs.
pub async fn sweep(
    js: &jetstream::Context,
    conn: &mut PgConnection,
    nats: &NatsConfig,
) -> anyhow::Result<MessagesChanged> {
    let waiting: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM public.erasure_pending)
             OR EXISTS (SELECT 1 FROM public.erased_messages WHERE NOT orig_deleted)",
    )
    .fetch_one(&mut *conn)
    .await?;
    if !waiting {
        return Ok(MessagesChanged::default());
    }
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(ERASE_LOCK)
        .fetch_one(&mut *conn)
        .await?;
    if !locked {
        return Ok(MessagesChanged::default());
    }
    let result = replace_pending(js, conn, nats, EraseOptions::default()).await;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(ERASE_LOCK)
        .execute(&mut *conn)
        .await;
    result
}

/// Step 3 of the module, and the deletion of originals a crash left behind.
async fn replace_pending(
    js: &jetstream::Context,
    conn: &mut PgConnection,
    nats: &NatsConfig,
    options: EraseOptions,
) -> anyhow::Result<MessagesChanged> {
    let mut done = MessagesChanged::default();
    done.add(delete_originals(js, conn).await?);
    let events_stream = nats.events_stream();
    let mut copies = 0u64;
    loop {
        let queue: Vec<(String, i64, Option<Uuid>)> = sqlx::query_as(
            "SELECT stream, stream_seq, delivery_id FROM public.erasure_pending
             ORDER BY stream, stream_seq LIMIT $1",
        )
        .bind(CHUNK)
        .fetch_all(&mut *conn)
        .await?;
        if queue.is_empty() {
            return Ok(done);
        }
        for (stream_name, seq, delivery) in queue {
            let stream = js
                .get_stream(&stream_name)
                .await
                .with_context(|| format!("stream {stream_name}"))?;
            let original = match stream.get_raw_message(seq as u64).await {
                Ok(m) => Some(m),
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => None,
                Err(e) => return Err(anyhow::Error::from(e).context("reading a message")),
            };
            // Gone (aged out, or replaced already), or no longer the message queued (a stream
            // renumbered since): nothing of theirs to redact here.
            let carries = |m: &async_nats::jetstream::message::StreamMessage| {
                m.headers.get(h::ERASED).is_none()
                    && delivery.is_none_or(|d| {
                        m.headers
                            .get(h::DELIVERY_ID)
                            .is_some_and(|v| v.as_str().trim() == d.to_string())
                    })
            };
            let Some(original) = original.filter(carries) else {
                unqueue(conn, &stream_name, seq).await?;
                continue;
            };
            let erased = erased_hashes(conn, &original.payload).await?;
            let is_events = stream_name == events_stream;
            // Not on the subjects subscribers listen to: they saw the event once already.
            let subject = subject::erased_subject(&nats.prefix, &original.subject);
            let headers = copy_headers(&original.headers, &original.payload, &stream_name, seq);
            let ack = js
                .publish_with_headers(
                    subject,
                    headers,
                    redact_body(&original.payload, |email| {
                        email_hash(email).is_some_and(|h| erased.contains(&h))
                    })
                    .into(),
                )
                .await?
                .await
                .context("storing a redacted copy")?;
            copies += 1;
            if options.crash_after_copies.is_some_and(|n| copies >= n) {
                anyhow::bail!("stopped after {copies} copies (fault injection)");
            }
            let mut tx = conn.begin().await?;
            sqlx::query(
                "INSERT INTO public.erased_messages (stream, orig_seq, copy_seq)
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(&stream_name)
            .bind(seq)
            .bind(ack.sequence as i64)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE deliveries SET stream_seq = $3, erased_at = coalesce(erased_at, now())
                 WHERE stream = $1 AND stream_seq = $2",
            )
            .bind(&stream_name)
            .bind(seq)
            .bind(ack.sequence as i64)
            .execute(&mut *tx)
            .await?;
            let key = original
                .headers
                .get(h::IDEMPOTENCY_KEY)
                .or_else(|| original.headers.get(h::MSG_ID));
            if let (true, Some(key)) = (is_events, key) {
                sqlx::query(
                    "UPDATE invoices SET stream_seq = $2 WHERE idempotency_key = $3 AND stream_seq = $1",
                )
                .bind(seq)
                .bind(ack.sequence as i64)
                .bind(key.as_str())
                .execute(&mut *tx)
                .await?;
            }
            // A replay's original carries the same data.
            if let Some(from) = showpass_core::replay::replay_of(Some(&original.headers)) {
                sqlx::query(
                    "INSERT INTO public.erasure_pending (stream, stream_seq, delivery_id)
                     SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM public.erased_messages
                         WHERE stream = $1 AND orig_seq = $2)
                     ON CONFLICT DO NOTHING",
                )
                .bind(&stream_name)
                .bind(from as i64)
                .bind(delivery)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("DELETE FROM public.erasure_pending WHERE stream = $1 AND stream_seq = $2")
                .bind(&stream_name)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            if is_events {
                done.events += 1;
            } else {
                done.deliveries += 1;
            }
            done.add(delete_originals(js, conn).await?);
        }
    }
}

/// The erased e-mails' hashes of the organization a message's body names.
async fn erased_hashes(
    conn: &mut PgConnection,
    body: &[u8],
) -> Result<std::collections::HashSet<String>, sqlx::Error> {
    let org = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        match &v["data"]["showpass_organization_id"] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    });
    let Some(org) = org else {
        return Ok(Default::default());
    };
    let hashes: Vec<String> =
        sqlx::query_scalar("SELECT email_sha256 FROM public.erasures WHERE org_id = $1")
            .bind(org)
            .fetch_all(&mut *conn)
            .await?;
    Ok(hashes.into_iter().collect())
}

async fn unqueue(conn: &mut PgConnection, stream: &str, seq: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM public.erasure_pending WHERE stream = $1 AND stream_seq = $2")
        .bind(stream)
        .bind(seq)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Deletes every original whose copy is stored and that is not deleted yet.
async fn delete_originals(
    js: &jetstream::Context,
    conn: &mut PgConnection,
) -> anyhow::Result<MessagesChanged> {
    let mut done = MessagesChanged::default();
    let left: Vec<(String, i64)> = sqlx::query_as(
        "SELECT stream, orig_seq FROM public.erased_messages WHERE NOT orig_deleted ORDER BY 1, 2",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (stream_name, seq) in left {
        let stream = js.get_stream(&stream_name).await?;
        if let Err(e) = stream.delete_message(seq as u64).await {
            // Already gone is done; anything else is retried by the next run.
            match stream.get_raw_message(seq as u64).await {
                Err(g) if g.kind() == LastRawMessageErrorKind::NoMessageFound => {}
                _ => return Err(anyhow::Error::from(e).context("deleting an original")),
            }
        } else {
            done.deleted += 1;
        }
        sqlx::query(
            "UPDATE public.erased_messages SET orig_deleted = true WHERE stream = $1 AND orig_seq = $2",
        )
        .bind(&stream_name)
        .bind(seq)
        .execute(&mut *conn)
        .await?;
    }
    Ok(done)
}

/// The original's headers, marked erased, under a message id of the copy's own (one per
/// original, so a rerun's copy is dropped by JetStream as a duplicate). An events-stream copy
/// records the original body's hash, so the ledger keeps it.
fn copy_headers(original: &HeaderMap, payload: &[u8], stream: &str, seq: i64) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, values) in original.iter() {
        let name = name.to_string();
        if name.eq_ignore_ascii_case(h::MSG_ID) || name.eq_ignore_ascii_case(h::ERASED) {
            continue;
        }
        for v in values {
            out.append(name.as_str(), v.as_str());
        }
    }
    if original.get(h::IDEMPOTENCY_KEY).is_none()
        && let Some(key) = original.get(h::MSG_ID)
    {
        out.insert(h::IDEMPOTENCY_KEY, key.as_str());
    }
    if original.get(h::BODY_SHA256).is_none() {
        out.insert(
            h::BODY_SHA256,
            showpass_payload::sha256_hex(payload).as_str(),
        );
    }
    out.insert(h::MSG_ID, format!("erased:{stream}:{seq}").as_str());
    out.insert(
        h::ERASED,
        Utc::now()
            .to_rfc3339_opts(SecondsFormat::Micros, true)
            .as_str(),
    );
    out
}

/// The personal fields of a delivery body (the customer's, each ticket holder's).
const CUSTOMER_FIELDS: &[&str] = &[
    "customer_name",
    "customer_email",
    "customer_phone_number",
    "partner_external_user_id",
];
const TICKET_FIELDS: &[&str] = &[
    "first_name_on_ticket",
    "last_name_on_ticket",
    "name_on_ticket",
    "email_on_ticket",
    "phone_number_on_ticket",
];

/// The same event with the erased people's personal fields `null`: the customer's and every
/// ticket's when the customer is erased (their order's tickets go with them), else each
/// ticket held by an erased person. Everyone else's stay. A body that is not a JSON object (a
/// record's truncated prefix) keeps nothing.
pub fn redact_body(body: &[u8], erased: impl Fn(&str) -> bool) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let Some(obj) = v.as_object_mut() else {
        return Vec::new();
    };
    let email_of = |o: &serde_json::Map<String, Value>, field: &str| {
        o.get(field).and_then(Value::as_str).is_some_and(&erased)
    };
    if let Some(data) = obj.get_mut("data").and_then(Value::as_object_mut) {
        let buyer = email_of(data, "customer_email");
        if buyer {
            for f in CUSTOMER_FIELDS {
                if let Some(x) = data.get_mut(*f) {
                    *x = Value::Null;
                }
            }
        }
        if let Some(tickets) = data.get_mut("ticket_items").and_then(Value::as_array_mut) {
            for t in tickets.iter_mut().filter_map(Value::as_object_mut) {
                if !buyer && !email_of(t, "email_on_ticket") {
                    continue;
                }
                for f in TICKET_FIELDS {
                    if let Some(x) = t.get_mut(*f) {
                        *x = Value::Null;
                    }
                }
            }
        }
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Answers erasure requests on `_{prefix}.admin.erase` (the api's `DELETE /v1/customers/{id}`)
/// until `shutdown`. Every projector instance answers (a queue group): an erasure needs no
/// leadership, and runs one at a time.
pub async fn serve(
    client: async_nats::Client,
    js: jetstream::Context,
    nats: NatsConfig,
    database: showpass_store::DatabaseUrl,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    let mut requests = client
        .queue_subscribe(
            subject::erase_subject(&nats.prefix),
            "showpass-erase".into(),
        )
        .await
        .context("subscribing to erasure requests")?;
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            m = requests.next() => match m { Some(m) => m, None => return Ok(()) },
        };
        let Some(reply) = msg.reply.clone() else {
            continue;
        };
        let answer = match serde_json::from_slice::<EraseRequest>(&msg.payload) {
            Err(e) => EraseAnswer::Invalid(format!("not an erasure request: {e}")),
            Ok(request) => {
                match tokio::time::timeout(Duration::from_secs(600), async {
                    let mut conn = PgConnection::connect_with(&database.options())
                        .await
                        .context("connecting to PostgreSQL")?;
                    let r = erase(&js, &mut conn, &nats, &request, EraseOptions::default()).await;
                    let _ = conn.close().await;
                    Ok::<_, anyhow::Error>(r)
                })
                .await
                {
                    Ok(Ok(Ok(report))) => EraseAnswer::Erased(report),
                    Ok(Ok(Err(EraseError::NotFound(why)))) => EraseAnswer::NotFound(why),
                    Ok(Ok(Err(EraseError::Invalid(why)))) => EraseAnswer::Invalid(why),
                    Ok(Ok(Err(EraseError::Failed(e)))) | Ok(Err(e)) => {
                        tracing::warn!(error = format!("{e:#}"), "erasure failed");
                        EraseAnswer::Failed(format!("{e:#}"))
                    }
                    Err(_) => EraseAnswer::Failed(
                        "the erasure took too long; ask again to finish it".into(),
                    ),
                }
            }
        };
        let body = serde_json::to_vec(&answer).unwrap_or_default();
        if let Err(e) = client.publish(reply, body.into()).await {
            tracing::warn!(error = %e, "answering an erasure request");
        }
    }
}

/// What the projector answers an erasure request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EraseAnswer {
    Erased(ErasureReport),
    NotFound(String),
    Invalid(String),
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redacted_body_keeps_the_event_and_the_money_and_loses_every_personal_field() {
        let body = br#"{"id":"T1","event_type":"invoice.purchase","data":{"transaction_id":"T1",
            "customer_name":"Alex","customer_email":"a@x.y","customer_phone_number":"+1",
            "net_sales":"5.00","ticket_items":[{"id":1,"name_on_ticket":"Alex",
            "email_on_ticket":"a@x.y","first_name_on_ticket":"A","ticket_status":"issued"}]}}"#;
        let alex = |e: &str| email_hash(e) == email_hash("a@x.y");
        let out: Value = serde_json::from_slice(&redact_body(body, alex)).unwrap();
        assert_eq!(out["id"], "T1");
        assert_eq!(out["data"]["net_sales"], "5.00");
        assert_eq!(out["data"]["customer_name"], Value::Null);
        assert_eq!(out["data"]["customer_email"], Value::Null);
        assert_eq!(out["data"]["customer_phone_number"], Value::Null);
        assert_eq!(
            out["data"]["ticket_items"][0]["email_on_ticket"],
            Value::Null
        );
        assert_eq!(out["data"]["ticket_items"][0]["ticket_status"], "issued");
        assert!(!String::from_utf8_lossy(&redact_body(body, alex)).contains("Alex"));
        assert!(redact_body(b"{\"id\":\"T1\",\"data\":{\"customer_na", alex).is_empty());
        assert!(redact_body(b"[1,2]", alex).is_empty());
    }

    #[test]
    fn only_the_erased_persons_fields_are_blanked() {
        let body = br#"{"id":"T1","data":{"customer_name":"Blair","customer_email":"b@x.y",
            "ticket_items":[{"name_on_ticket":"Alex","email_on_ticket":" A@X.y "},
                            {"name_on_ticket":"Blair","email_on_ticket":"b@x.y"}]}}"#;
        let holder = |e: &str| email_hash(e) == email_hash("a@x.y");
        let out: Value = serde_json::from_slice(&redact_body(body, holder)).unwrap();
        assert_eq!(out["data"]["customer_name"], "Blair");
        assert_eq!(
            out["data"]["ticket_items"][0]["name_on_ticket"],
            Value::Null
        );
        assert_eq!(out["data"]["ticket_items"][1]["name_on_ticket"], "Blair");
    }

    #[test]
    fn the_hash_is_of_the_folded_address() {
        assert_eq!(email_hash(" A@X.y "), email_hash("a@x.y"));
        assert_eq!(email_hash("  "), None);
    }
}
