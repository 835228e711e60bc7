//! The deliveries stream: each record of a duplicate or a rejection, written to the delivery
//! log.

use super::*;

/// Applies a batch of the deliveries stream; a batch the database refuses for its data is
/// written record by record, and a record it refuses is written bare.
pub async fn apply_records_resilient(
    conn: &mut PgConnection,
    stream: &str,
    batch: &[Meta],
) -> Result<Tally, ApplyError> {
    match guarded(apply_records(conn, stream, batch)).await {
        Err(e) if e.is_deterministic() => {
            tracing::warn!(error = %e, stream, records = batch.len(), "a batch of delivery records cannot be written; writing it record by record");
            let mut tally = Tally::default();
            for one in batch {
                let t = match guarded(apply_records(conn, stream, std::slice::from_ref(one))).await
                {
                    Err(e) if e.is_deterministic() => {
                        tracing::error!(error = %e, seq = one.seq, "a delivery record cannot be written; writing a bare one");
                        let mut bare = one.bare();
                        bare.outcome.clone_from(&one.outcome);
                        match guarded(apply_records(conn, stream, std::slice::from_ref(&bare)))
                            .await
                        {
                            Err(e) if e.is_deterministic() => {
                                tracing::error!(error = %e, seq = one.seq, "not even a bare delivery record can be written; the stream moves past it");
                                move_past(conn, stream, one.seq).await?
                            }
                            other => other?,
                        }
                    }
                    other => other?,
                };
                tally.add(t);
            }
            Ok(tally)
        }
        other => other,
    }
}

/// Moves a stream's checkpoint past one message and nothing else: the last resort for a
/// message not even a bare record of which can be stored.
pub(super) async fn move_past(
    conn: &mut PgConnection,
    stream: &str,
    seq: u64,
) -> Result<Tally, ApplyError> {
    let mut tx = conn.begin().await?;
    sql::begin_batch(&mut tx, stream).await?;
    sql::end_batch(&mut tx, stream, seq).await?;
    tx.commit().await?;
    Ok(Tally {
        failed: 1,
        ..Tally::default()
    })
}

/// Applies a batch of the deliveries stream (duplicate and rejected deliveries) to the log.
/// Writing a record again changes nothing, so a redelivered one is simply written again.
pub async fn apply_records(
    conn: &mut PgConnection,
    stream: &str,
    batch: &[Meta],
) -> Result<Tally, ApplyError> {
    let mut tx = conn.begin().await?;
    sql::begin_batch(&mut tx, stream).await?;
    let mut tally = Tally::default();
    let Some(last) = batch.iter().map(|m| m.seq).max() else {
        tx.commit().await?;
        return Ok(tally);
    };
    let keys: Vec<String> = batch
        .iter()
        .filter_map(|m| m.idempotency_key.clone())
        .collect();
    let known = sql::processed(&mut tx, &keys).await?;
    let outcomes: Vec<Outcome> = batch
        .iter()
        .map(|m| {
            let duplicate = m.outcome == Some(vocab::Outcome::Duplicate);
            let error = if duplicate {
                tally.duplicate += 1;
                match (
                    m.idempotency_key.as_ref().and_then(|k| known.get(k)),
                    &m.body_sha256,
                ) {
                    (Some(applied), Some(mine)) if &applied.body_sha256 != mine => {
                        Some(conflict(&applied.body_sha256))
                    }
                    _ => None,
                }
            } else {
                tally.skipped += 1;
                None
            };
            Outcome {
                meta: m,
                outcome: if duplicate {
                    vocab::Outcome::Duplicate
                } else {
                    vocab::Outcome::Rejected
                },
                processing: if duplicate {
                    Processing::Duplicate
                } else {
                    Processing::Skipped
                },
                error,
                body_sha256: m.body_sha256.as_deref(),
            }
        })
        .collect();
    sql::log_deliveries(&mut tx, &outcomes).await?;
    sql::flag_deliveries(&mut tx, &flagged(&outcomes), &[]).await?;
    sql::queue_erased_duplicates(&mut tx, &duplicates(&outcomes)).await?;
    sql::end_batch(&mut tx, stream, last).await?;
    tx.commit().await?;
    Ok(tally)
}
