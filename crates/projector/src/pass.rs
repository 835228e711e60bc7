//! A pass over a consumer: batches pulled, applied (retried while the database is away) and
//! acked, until the pass must stop or start again from the checkpoint.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures::{FutureExt as _, StreamExt};
use sqlx::PgConnection;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::apply::{ApplyError, Tally};
use crate::batch::{Batch, BatchLimits, Source};

/// How a pass over a consumer ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Pass {
    Stopped,
    /// Start again from the checkpoint, for this reason.
    Restart(String),
}

/// A batch, the messages it was read from (to ack once it is applied), and why it was cut
/// short if it was.
pub struct Filled {
    pub batch: Batch,
    pub messages: Vec<jetstream::Message>,
    pub interrupted: Option<String>,
}

/// Where the consumer's deliveries stand within a pass: each delivery's consumer sequence
/// must follow the last, or one was lost between the server and here.
#[derive(Debug, Default)]
pub struct Continuity {
    last_consumer_seq: Option<u64>,
}

/// Takes messages into `batch` (empty), starting with `first`, until a limit is reached or the
/// linger time passes. Stops short (and says why) at a pull error, a message whose metadata
/// cannot be read (it has no place in the stream, so it is neither applied nor acked), or a
/// gap in the consumer's sequence; what came before still forms the batch.
///
/// The linger waits only for messages the stream already held: once a message says none were
/// pending behind it (the consumer has caught up), the batch takes what has already arrived
/// and no more. Waiting then would wait for deliveries not yet sent, and every live event
/// would pay the whole linger; while a batch is applied, the next one gathers on its own.
pub async fn fill_batch<S, E>(
    first: Result<jetstream::Message, E>,
    messages: &mut S,
    stream_name: &str,
    batch: Batch,
    limits: BatchLimits,
    continuity: &mut Continuity,
) -> Filled
where
    S: futures::Stream<Item = Result<jetstream::Message, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut filled = Filled {
        batch,
        messages: Vec::new(),
        interrupted: None,
    };
    let deadline = Instant::now() + limits.linger;
    let mut caught_up = false;
    let mut next = Some(first);
    loop {
        let item = match next.take() {
            Some(item) => item,
            None => {
                if filled.batch.full(&limits) {
                    break;
                }
                let ready = if caught_up {
                    // Unconstrained: a message already in the channel is ready even when the
                    // task's cooperative budget is spent (acking the last batch spends it), or
                    // a batch would end at whatever budget was left.
                    tokio::task::unconstrained(messages.next()).now_or_never()
                } else {
                    tokio::time::timeout_at(deadline, messages.next())
                        .await
                        .ok()
                };
                match ready {
                    Some(Some(item)) => item,
                    Some(None) | None => break,
                }
            }
        };
        let message = match item {
            Ok(m) => m,
            Err(e) => {
                filled.interrupted = Some(format!("pull error: {e}"));
                break;
            }
        };
        let (seq, consumer_seq, published, pending) = match message.info() {
            Ok(i) => (
                i.stream_sequence,
                i.consumer_sequence,
                i.published,
                i.pending,
            ),
            Err(e) => {
                filled.interrupted = Some(format!(
                    "a message on {} has no readable stream metadata ({e})",
                    message.subject
                ));
                break;
            }
        };
        if let Some(last) = continuity.last_consumer_seq
            && consumer_seq != last.saturating_add(1)
        {
            filled.interrupted = Some(format!(
                "the consumer's deliveries skipped from {last} to {consumer_seq}"
            ));
            break;
        }
        continuity.last_consumer_seq = Some(consumer_seq);
        caught_up = pending == 0;
        filled.batch.push(
            stream_name,
            seq,
            message.headers.as_ref(),
            published,
            &message.payload,
        );
        filled.messages.push(message);
    }
    filled
}

/// Pulls, applies and acks batches until `stop`, or until the pass must start again. Events are
/// applied over `conn` and `more` at once (see [`crate::apply_parallel`]).
pub async fn pass<S, E>(
    conn: &mut PgConnection,
    more: &mut [PgConnection],
    stream_name: &str,
    source: Source,
    messages: &mut S,
    limits: BatchLimits,
    stop: &CancellationToken,
) -> anyhow::Result<Pass>
where
    S: futures::Stream<Item = Result<jetstream::Message, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut continuity = Continuity::default();
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => return Ok(Pass::Stopped),
            m = messages.next() => m,
        };
        let Some(first) = first else {
            return Ok(Pass::Restart(format!(
                "the message stream of {stream_name} ended"
            )));
        };
        let Filled {
            mut batch,
            messages: pulled,
            interrupted,
        } = fill_batch(
            first,
            messages,
            stream_name,
            Batch::new(source, more.len() + 1),
            limits,
            &mut continuity,
        )
        .await;
        if !batch.is_empty() {
            if apply_with_retry(conn, more, stream_name, &mut batch, &pulled, stop)
                .await?
                .is_none()
            {
                return Ok(Pass::Stopped);
            }
            for m in &pulled {
                if let Err(e) = m.ack().await {
                    // The commit stands; a redelivery is recognised by the ledger.
                    tracing::warn!(error = %e, "ack failed");
                }
            }
        }
        if let Some(why) = interrupted {
            return Ok(Pass::Restart(why));
        }
    }
}

/// Applies a batch, retrying with back-off while the database is away, and keeping the
/// messages from being redelivered meanwhile. `None` when stopped first.
async fn apply_with_retry(
    conn: &mut PgConnection,
    more: &mut [PgConnection],
    stream_name: &str,
    batch: &mut Batch,
    pulled: &[jetstream::Message],
    stop: &CancellationToken,
) -> anyhow::Result<Option<Tally>> {
    let mut backoff = Duration::from_millis(100);
    let started = Instant::now();
    loop {
        match batch.apply(conn, more, stream_name).await {
            Ok(t) => return Ok(Some(t)),
            Err(ApplyError::Database(e)) if is_connection_error(&e) => {
                // The leader's connections are tied to its lock; a lost connection means
                // leadership must be re-established from the start.
                return Err(anyhow::Error::from(e).context("database connection lost"));
            }
            Err(e) => {
                tracing::warn!(error = %e, stream = stream_name, retry_in = ?backoff, "batch failed; retrying");
                if started.elapsed() > Duration::from_secs(20) {
                    for m in pulled {
                        let _ = m.ack_with(AckKind::Progress).await;
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn is_connection_error(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::Protocol(_)
    ) || matches!(e, sqlx::Error::Database(d) if d.code().is_some_and(|c| c.starts_with("08") || c == "57P01"))
}
