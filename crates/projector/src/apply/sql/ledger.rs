//! The batch's frame (the swap lock, the checkpoint) and its ledgers: the invoices' keys
//! already applied, and the delivery log.

use std::collections::{HashMap, HashSet};

use showpass_payload::vocab::Outcome as Answer;
use sqlx::{PgConnection, Row};

use crate::apply::{Outcome, SWAP_LOCK};

/// Starts a batch: takes the swap lock shared, and the stream's checkpoint row, so batches of
/// one stream never overlap.
///
/// The commit is asynchronous: a crash of PostgreSQL may lose the last batches, but never half
/// of one (the checkpoint commits with them), and a new leader always restarts the stream
/// from the checkpoint, so what was lost is projected again from JetStream.
pub async fn begin_batch(tx: &mut PgConnection, stream: &str) -> Result<(), sqlx::Error> {
    begin_lane(tx).await?;
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
        .bind(SWAP_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO checkpoints (stream, last_seq) VALUES ($1, 0) ON CONFLICT DO NOTHING")
        .bind(stream)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT last_seq FROM checkpoints WHERE stream = $1 FOR UPDATE")
        .bind(stream)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Starts every batch transaction, a whole batch's or one lane's: asynchronous commit. (A lane
/// takes no swap lock: the batch's first connection holds it for all its lanes, see
/// `crate::apply::lanes`.)
pub async fn begin_lane(tx: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Holds these entities (a ticket, an order, a customer, a transfer group: see
/// `crate::apply::lanes`) until the transaction ends, as transaction advisory locks taken in
/// the order of their 64-bit hash, so lanes that share an entity take turns on it, and each
/// statement after the wait sees what the other lane committed. The hash includes the schema,
/// so a rebuild's side schema never waits on the live tables' lanes.
pub async fn lock_entities(tx: &mut PgConnection, keys: &[String]) -> Result<(), sqlx::Error> {
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "SELECT pg_advisory_xact_lock(h) FROM (
             SELECT DISTINCT hashtextextended(current_schema() || ':' || k, 0) AS h
             FROM UNNEST($1::text[]) k ORDER BY h) held",
    )
    .bind(keys)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Moves the checkpoint, in the batch's transaction.
pub async fn end_batch(tx: &mut PgConnection, stream: &str, last: u64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE checkpoints SET last_seq = GREATEST(last_seq, $2) WHERE stream = $1")
        .bind(stream)
        .bind(last as i64)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// What the ledger holds of an applied key.
#[derive(Debug, Clone)]
pub struct Processed {
    pub body_sha256: String,
    /// The stream sequence of the message that applied it.
    pub seq: i64,
    pub delivery_id: Option<uuid::Uuid>,
}

/// The ledger's entries of the keys already applied.
pub async fn processed(
    tx: &mut PgConnection,
    keys: &[String],
) -> Result<HashMap<String, Processed>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(
        "SELECT idempotency_key, body_sha256, stream_seq, delivery_id FROM invoices
         WHERE idempotency_key = ANY($1)",
    )
    .bind(keys)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let p = Processed {
                body_sha256: r.get(1),
                seq: r.get(2),
                delivery_id: r.get(3),
            };
            (r.get(0), p)
        })
        .collect())
}

/// Which of these (sequence, delivery) pairs of `stream` the delivery log already records:
/// the ledger of the events that change no read model (tests, unknown types, failures). A
/// row at that sequence for another delivery (a stream renumbered since) does not count.
pub async fn logged_seqs(
    tx: &mut PgConnection,
    stream: &str,
    seqs: &[(i64, uuid::Uuid)],
) -> Result<HashSet<i64>, sqlx::Error> {
    if seqs.is_empty() {
        return Ok(HashSet::new());
    }
    let (seq, id): (Vec<i64>, Vec<uuid::Uuid>) = seqs.iter().copied().unzip();
    sqlx::query_scalar(
        "SELECT d.stream_seq FROM deliveries d
         WHERE d.stream = $1
           AND (d.stream_seq, d.id) IN (SELECT * FROM UNNEST($2::int8[], $3::uuid[]))",
    )
    .bind(stream)
    .bind(seq)
    .bind(id)
    .fetch_all(&mut *tx)
    .await
    .map(|v| v.into_iter().collect())
}

/// Flags earlier duplicate records whose body differs from the event now applied.
pub async fn mark_conflicting_duplicates(
    tx: &mut PgConnection,
    keys: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deliveries d SET error = $2 || p.body_sha256 || ')'
         FROM invoices p
         WHERE d.outcome = $3 AND d.idempotency_key = ANY($1) AND d.error IS NULL
           AND p.idempotency_key = d.idempotency_key
           AND d.body_sha256 IS DISTINCT FROM p.body_sha256",
    )
    .bind(keys)
    .bind(crate::apply::CONFLICT)
    .bind(Answer::Duplicate.as_str())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Writes the delivery log rows of a batch. A replayed event keeps its delivery id, so its row
/// is updated with the new processing result.
pub async fn log_deliveries(
    tx: &mut PgConnection,
    rows: &[Outcome<'_>],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    // The last result for a delivery id within one batch wins.
    let mut by_id: HashMap<uuid::Uuid, &Outcome> = HashMap::new();
    for r in rows {
        by_id.insert(r.meta.delivery_id, r);
    }
    let mut rows: Vec<&Outcome> = by_id.into_values().collect();
    rows.sort_by_key(|r| r.meta.delivery_id);
    let m = |f: fn(&crate::meta::Meta) -> Option<&str>| {
        rows.iter().map(|r| f(r.meta)).collect::<Vec<_>>()
    };
    sqlx::query(
        "INSERT INTO deliveries (id, received_at, endpoint, outcome, reason, detail, http_status,
             event_type, webhook_event_uuid, transaction_id, org_id, idempotency_key, remote_addr,
             stream, stream_seq, body_sha256, body_length, body_truncated, processing, error,
             suspect, erased_at)
         SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
             $6::text[], $7::int4[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
             $13::text[], $14::text[], $15::int8[], $16::text[], $17::int4[], $18::bool[],
             $19::text[], $20::text[], $21::text[], $22::timestamptz[])
         ON CONFLICT (id) DO UPDATE SET
             processing = EXCLUDED.processing, error = EXCLUDED.error,
             stream = EXCLUDED.stream, stream_seq = EXCLUDED.stream_seq,
             erased_at = COALESCE(deliveries.erased_at, EXCLUDED.erased_at)",
    )
    .bind(rows.iter().map(|r| r.meta.delivery_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.meta.received_at).collect::<Vec<_>>())
    .bind(m(|m| Some(&m.endpoint)))
    .bind(rows.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>())
    .bind(m(|m| m.reason.as_deref()))
    .bind(m(|m| m.detail.as_deref()))
    .bind(
        rows.iter()
            .map(|r| {
                r.meta
                    .http_status
                    .unwrap_or(if r.outcome == Answer::Accepted {
                        202
                    } else {
                        0
                    })
            })
            .collect::<Vec<_>>(),
    )
    .bind(m(|m| m.event_type.as_deref()))
    .bind(m(|m| m.webhook_event_uuid.as_deref()))
    .bind(m(|m| m.transaction_id.as_deref()))
    .bind(m(|m| m.org_id.as_deref()))
    .bind(m(|m| m.idempotency_key.as_deref()))
    .bind(m(|m| m.remote_addr.as_deref()))
    .bind(m(|m| Some(&m.stream)))
    .bind(rows.iter().map(|r| r.meta.seq as i64).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.body_sha256).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.meta.body_length).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.meta.body_truncated)
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.processing.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.error.as_deref()).collect::<Vec<_>>())
    .bind(m(|m| m.suspect.as_deref()))
    .bind(rows.iter().map(|r| r.meta.erased_at).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// An accepted delivery as the endpoints' activity counts it: endpoint, arrival, delivery id.
pub type Seen<'a> = (&'a str, chrono::DateTime<chrono::Utc>, uuid::Uuid);

/// Moves each endpoint's last accepted delivery forward (never back: a replay, a late
/// redelivery of an old one, or a batch's messages seen twice leave it), one row per endpoint,
/// in key order.
pub async fn note_activity<'a>(
    tx: &mut PgConnection,
    accepted: impl Iterator<Item = Seen<'a>>,
) -> Result<(), sqlx::Error> {
    let mut last: std::collections::BTreeMap<&str, (chrono::DateTime<chrono::Utc>, uuid::Uuid)> =
        std::collections::BTreeMap::new();
    for (endpoint, at, id) in accepted {
        let seen = (at, id);
        let e = last.entry(endpoint).or_insert(seen);
        *e = (*e).max(seen);
    }
    if last.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO endpoint_activity (endpoint, last_accepted_at, last_delivery_id)
         SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::uuid[])
         ON CONFLICT (endpoint) DO UPDATE SET
             last_accepted_at = EXCLUDED.last_accepted_at,
             last_delivery_id = EXCLUDED.last_delivery_id
         WHERE (endpoint_activity.last_accepted_at, endpoint_activity.last_delivery_id)
             < (EXCLUDED.last_accepted_at, EXCLUDED.last_delivery_id)",
    )
    .bind(last.keys().copied().collect::<Vec<_>>())
    .bind(last.values().map(|v| v.0).collect::<Vec<_>>())
    .bind(last.values().map(|v| v.1).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}
