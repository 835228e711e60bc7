//! Applying a batch of stream messages to the read models: one transaction holding the
//! read-model changes, the exactly-once markers (the invoice ledger's keys) and the checkpoint.
//!
//! What counts as applied is the ledger, never the checkpoint alone: a message at or below the
//! checkpoint that the ledger (or, for an event that changes no read model, the delivery log)
//! does not hold is applied like any other. The checkpoint only says where a new consumer
//! starts.
//!
//! [`apply_resilient`] is the entry point of both the live consumer and `rebuild`: a batch the
//! data makes impossible to apply (the database refuses a value, a sum overflows, the fold
//! panics) is applied again one event at a time, and the event that cannot be applied is
//! recorded `failed` with the reason, so no event can stop the stream.

pub mod fold;
mod invoices;
mod lanes;
mod records;
pub(crate) mod sql;

use invoices::apply_invoices;
pub(crate) use invoices::{Waiting, fold_events};
pub use lanes::{apply_parallel, order_by_lane};
use records::move_past;
pub use records::{apply_records, apply_records_resilient};
pub use sql::ALL_SEARCH_WORDS;

use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};

use crate::meta::Meta;
use crate::plan::{Decision, Invoice, Kind, customer_id, panic_message};
use fold::{Overflow, SalesDeltas, TicketRow};
use showpass_payload::vocab::{self, Processing};

/// Every batch transaction holds this advisory lock shared; `rebuild` takes it exclusively to
/// swap the rebuilt tables in, so no batch straddles the swap.
pub const SWAP_LOCK: i64 = 0x5348_4f57_5041_5353;

/// Longest error text kept in the delivery log.
const MAX_ERROR_BYTES: usize = 1_000;

/// One message of the events stream, decided.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub meta: Meta,
    pub decision: Decision,
    pub body_sha256: String,
}

impl Incoming {
    /// Plans a message of the events stream.
    pub fn plan(meta: Meta, body: &[u8]) -> Self {
        // A redacted copy stands for the original it replaced: the ledger keeps the
        // original's hash, so Showpass resending the original is a duplicate, not a conflict.
        let body_sha256 = match (&meta.erased_at, &meta.body_sha256) {
            (Some(_), Some(original)) => original.clone(),
            _ => showpass_payload::sha256_hex(body),
        };
        Self {
            decision: crate::plan::plan(&meta, body),
            body_sha256,
            meta,
        }
    }

    /// How much applying it weighs: one, plus its lines and tickets. Batches are bounded by
    /// weight as well as count, so a batch's memory and statements stay bounded whatever its
    /// events carry.
    pub fn weight(&self) -> usize {
        match &self.decision {
            Decision::Apply(inv) => 1usize
                .saturating_add(inv.items.len())
                .saturating_add(inv.tickets.len()),
            _ => 1,
        }
    }
}

/// What became of a batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub applied: usize,
    pub duplicate: usize,
    pub skipped: usize,
    pub failed: usize,
    /// Already applied (the ledger holds it): changed nothing.
    pub already: usize,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.applied += o.applied;
        self.duplicate += o.duplicate;
        self.skipped += o.skipped;
        self.failed += o.failed;
        self.already += o.already;
    }
}

/// Why a batch could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The events' data cannot be folded (an overflow, or a panic caught in the fold).
    #[error("{0}")]
    Data(String),
}

impl From<Overflow> for ApplyError {
    fn from(e: Overflow) -> Self {
        Self::Data(e.to_string())
    }
}

impl ApplyError {
    /// Whether the same events would fail the same way again: the data is the cause, so a
    /// retry cannot help, and applying the events one by one finds the culprit.
    ///
    /// PostgreSQL: class 21 (cardinality: a row a statement would change twice), 22 (data
    /// exception: a value out of range, text it cannot store),
    /// 23 (integrity violation) and 54 (a program limit: an index row too large, too many
    /// arguments). Everything else (a lost connection, a lock timeout, a full disk) is the
    /// database's state and is retried.
    pub fn is_deterministic(&self) -> bool {
        match self {
            Self::Data(_) => true,
            // A value the driver cannot encode or decode: the same data fails the same way.
            Self::Database(
                sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::Encode(_),
            ) => true,
            Self::Database(sqlx::Error::Database(d)) => d
                .code()
                .is_some_and(|c| ["21", "22", "23", "54"].iter().any(|k| c.starts_with(k))),
            Self::Database(_) => false,
        }
    }
}

/// The processing result logged for one message.
#[derive(Debug)]
pub(crate) struct Outcome<'a> {
    pub meta: &'a Meta,
    pub outcome: vocab::Outcome,
    pub processing: Processing,
    pub error: Option<String>,
    pub body_sha256: Option<&'a str>,
}

/// How a batch's transaction is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frame {
    /// The whole batch: its transaction holds the stream's checkpoint row, so batches of one
    /// stream never overlap, and moves it.
    Whole,
    /// One lane of a batch applied over several connections at once ([`apply_parallel`]): it
    /// holds the entities it touches (advisory locks in one sorted order) instead of the
    /// checkpoint, which moves only once every lane has committed.
    Lane,
}

/// Applies a batch of the events stream, in stream order, exactly once.
pub async fn apply_events(
    conn: &mut PgConnection,
    stream: &str,
    batch: &[Incoming],
) -> Result<Tally, ApplyError> {
    apply_framed(conn, stream, batch, Frame::Whole).await
}

async fn apply_framed(
    conn: &mut PgConnection,
    stream: &str,
    batch: &[Incoming],
    frame: Frame,
) -> Result<Tally, ApplyError> {
    let mut tx = conn.begin().await?;
    match frame {
        Frame::Whole => sql::begin_batch(&mut tx, stream).await?,
        Frame::Lane => sql::begin_lane(&mut tx).await?,
    }
    let mut tally = Tally::default();
    let Some(last) = batch.iter().map(|m| m.meta.seq).max() else {
        tx.commit().await?;
        return Ok(tally);
    };

    let keys: Vec<String> = batch
        .iter()
        .filter_map(|m| match &m.decision {
            Decision::Apply(inv) => Some(inv.key.clone()),
            _ => None,
        })
        .collect();
    let mut known = sql::processed(&mut tx, &keys).await?;
    let others: Vec<(i64, uuid::Uuid)> = batch
        .iter()
        .filter(|m| !matches!(m.decision, Decision::Apply(_)))
        .map(|m| (seq_of(&m.meta), m.meta.delivery_id))
        .collect();
    let logged = sql::logged_seqs(&mut tx, stream, &others).await?;
    // What an erased person's data is blanked in before it is applied.
    let redacted = sql::redact_erased(&mut tx, batch).await?;
    if frame == Frame::Lane {
        let invoices = batch.iter().filter_map(|m| match &m.decision {
            Decision::Apply(inv) => Some(redacted.get(&m.meta.seq).unwrap_or(inv)),
            _ => None,
        });
        sql::lock_entities(&mut tx, &lanes::entities(invoices)).await?;
    }

    let mut outcomes = Vec::with_capacity(batch.len());
    let mut applied: Vec<(&Incoming, &Invoice)> = Vec::new();
    for m in batch {
        let (processing, error) = match &m.decision {
            Decision::Apply(inv) => {
                let inv: &Invoice = redacted.get(&m.meta.seq).unwrap_or(inv);
                match known.get(&inv.key) {
                    // This very message is in the ledger: a redelivery.
                    Some(p) if p.seq == seq_of(&m.meta) => {
                        tally.already += 1;
                        continue;
                    }
                    // Its delivery is: a replay, logged applied again (the log then shows the
                    // replay), or a redelivery of a message the delivery's replay applied.
                    Some(p) if p.delivery_id == Some(m.meta.delivery_id) => {
                        if m.meta.replay_of.is_none() {
                            tally.already += 1;
                            continue;
                        }
                        tally.duplicate += 1;
                        (Processing::Applied, None)
                    }
                    Some(p) => {
                        tally.duplicate += 1;
                        (
                            Processing::Duplicate,
                            (p.body_sha256 != m.body_sha256).then(|| conflict(&p.body_sha256)),
                        )
                    }
                    None => {
                        known.insert(
                            inv.key.clone(),
                            sql::Processed {
                                body_sha256: m.body_sha256.clone(),
                                seq: seq_of(&m.meta),
                                delivery_id: Some(m.meta.delivery_id),
                            },
                        );
                        applied.push((m, inv));
                        tally.applied += 1;
                        (Processing::Applied, None)
                    }
                }
            }
            _ if logged.contains(&seq_of(&m.meta)) => {
                tally.already += 1;
                continue;
            }
            Decision::Test => {
                tally.applied += 1;
                (Processing::Applied, None)
            }
            Decision::Skip(why) => {
                tally.skipped += 1;
                (Processing::Skipped, Some(why.clone()))
            }
            Decision::Fail(why) => {
                tally.failed += 1;
                (Processing::Failed, Some(why.clone()))
            }
        };
        outcomes.push(Outcome {
            meta: &m.meta,
            outcome: vocab::Outcome::Accepted,
            processing,
            error: error.map(|e| bounded_error(&e)),
            body_sha256: Some(&m.body_sha256),
        });
    }

    let shared = if applied.is_empty() {
        None
    } else {
        Some(apply_invoices(&mut tx, &applied, frame).await?)
    };
    sql::log_deliveries(&mut tx, &outcomes).await?;
    sql::flag_deliveries(&mut tx, &flagged(&outcomes), &keys).await?;
    sql::queue_erased_duplicates(&mut tx, &duplicates(&outcomes)).await?;
    // The rows every lane may share come last, so each lane holds them only to its commit.
    if let Some(shared) = shared {
        shared.write(&mut tx, &applied).await?;
    }
    match frame {
        Frame::Whole => {
            sql::note_activity(&mut tx, activity(batch)).await?;
            sql::end_batch(&mut tx, stream, last).await?;
        }
        Frame::Lane => {}
    }
    tx.commit().await?;
    Ok(tally)
}

/// Each message's endpoint, arrival and delivery: what moves the endpoints' last accepted
/// delivery (every message of the events stream was accepted).
fn activity(batch: &[Incoming]) -> impl Iterator<Item = sql::Seen<'_>> {
    batch.iter().map(|m| {
        (
            m.meta.endpoint.as_str(),
            m.meta.received_at,
            m.meta.delivery_id,
        )
    })
}

/// Applies a batch of the events stream; when its data makes that impossible, applies it one
/// event at a time and records each event that cannot be applied as `failed`. Errors only for
/// what a retry may cure (the database unavailable, say).
pub async fn apply_resilient(
    conn: &mut PgConnection,
    stream: &str,
    batch: &[Incoming],
) -> Result<Tally, ApplyError> {
    resilient(conn, stream, batch, Frame::Whole).await
}

async fn resilient(
    conn: &mut PgConnection,
    stream: &str,
    batch: &[Incoming],
    frame: Frame,
) -> Result<Tally, ApplyError> {
    match guarded(apply_framed(conn, stream, batch, frame)).await {
        Err(e) if e.is_deterministic() => {
            tracing::warn!(error = %e, stream, events = batch.len(), "a batch's data cannot be applied; applying it event by event");
            let mut tally = Tally::default();
            for one in batch {
                tally.add(apply_one(conn, stream, one, frame).await?);
            }
            Ok(tally)
        }
        other => other,
    }
}

/// Runs an application, turning a panic anywhere in it (SQL building, decoding, folding) into
/// a deterministic error, so the events behind it end `failed` instead of crashing the
/// projector on them again and again.
async fn guarded(
    apply: impl std::future::Future<Output = Result<Tally, ApplyError>>,
) -> Result<Tally, ApplyError> {
    use futures::FutureExt as _;
    match AssertUnwindSafe(apply).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(ApplyError::Data(format!(
            "the projector panicked applying these events: {}",
            panic_message(panic.as_ref())
        ))),
    }
}

/// Applies one event; if its data cannot be applied, records it `failed` with the reason; if
/// even that record cannot be stored, a bare one; and if not even that, moves the checkpoint
/// past it alone, logged at `error`: nothing can hold the stream.
async fn apply_one(
    conn: &mut PgConnection,
    stream: &str,
    one: &Incoming,
    frame: Frame,
) -> Result<Tally, ApplyError> {
    let e = match guarded(apply_framed(conn, stream, std::slice::from_ref(one), frame)).await {
        Err(e) if e.is_deterministic() => e,
        other => return other,
    };
    tracing::warn!(error = %e, seq = one.meta.seq, delivery_id = %one.meta.delivery_id, "event cannot be applied; logged as failed");
    let failed = Incoming {
        decision: Decision::Fail(format!("the event could not be applied: {e}")),
        ..one.clone()
    };
    match guarded(apply_framed(
        conn,
        stream,
        std::slice::from_ref(&failed),
        frame,
    ))
    .await
    {
        Err(e) if e.is_deterministic() => {
            tracing::error!(error = %e, seq = one.meta.seq, "the failed event's record cannot be stored; storing a bare one");
            let bare = Incoming {
                meta: one.meta.bare(),
                decision: Decision::Fail(format!(
                    "the event could not be applied, nor its delivery recorded: {e}"
                )),
                body_sha256: one.body_sha256.clone(),
            };
            match guarded(apply_framed(
                conn,
                stream,
                std::slice::from_ref(&bare),
                frame,
            ))
            .await
            {
                Err(e) if e.is_deterministic() => {
                    tracing::error!(error = %e, seq = one.meta.seq, delivery_id = %one.meta.delivery_id, "not even a bare record of the event can be stored; the stream moves past it unrecorded");
                    match frame {
                        Frame::Whole => move_past(conn, stream, one.meta.seq).await,
                        // The batch's checkpoint moves past it once every lane is done.
                        Frame::Lane => Ok(Tally {
                            failed: 1,
                            ..Tally::default()
                        }),
                    }
                }
                other => other,
            }
        }
        other => other,
    }
}

/// The logged deliveries that are an anomaly of their own: a conflicting body, a suspect id.
fn flagged(outcomes: &[Outcome<'_>]) -> Vec<uuid::Uuid> {
    outcomes
        .iter()
        .filter(|o| {
            o.meta.suspect.is_some() || o.error.as_deref().is_some_and(|e| e.starts_with(CONFLICT))
        })
        .map(|o| o.meta.delivery_id)
        .collect()
}

/// The logged deliveries that duplicate an applied event (one of them may be erased).
fn duplicates(outcomes: &[Outcome<'_>]) -> Vec<uuid::Uuid> {
    outcomes
        .iter()
        .filter(|o| o.processing == Processing::Duplicate)
        .map(|o| o.meta.delivery_id)
        .collect()
}

/// A stream sequence as PostgreSQL stores it.
fn seq_of(meta: &Meta) -> i64 {
    i64::try_from(meta.seq).unwrap_or(i64::MAX)
}

/// The error of a duplicate whose body differs from the event applied: this, the applied
/// body's SHA-256, then `)`.
pub(crate) const CONFLICT: &str = "conflict: same idempotency key as an applied event with a different body (applied body sha256 ";

fn conflict(applied_hash: &str) -> String {
    format!("{CONFLICT}{applied_hash})")
}

/// An error text cut to what the log keeps, without NUL (which no text column can hold).
fn bounded_error(e: &str) -> String {
    let mut out = String::with_capacity(e.len().min(MAX_ERROR_BYTES));
    for c in e.chars() {
        if out.len() + c.len_utf8() > MAX_ERROR_BYTES {
            break;
        }
        if c != '\0' {
            out.push(c);
        }
    }
    out
}
