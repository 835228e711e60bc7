//! `showpass rebuild`: every read model built again from the start of the streams, beside the
//! live ones (which keep serving), then swapped in atomically.
//!
//! 1. The migrations run in a new schema `rebuild_*` (they use unqualified names), and both
//!    streams are projected into it with the same code as the live projector.
//! 2. In one transaction holding [`SWAP_LOCK`] exclusively (so no live batch is half done), the
//!    events the live projector applied meanwhile are projected too, then each table moves:
//!    the live one out to a `retired_*` schema, the rebuilt one into `public`.
//! 3. The retired tables are dropped.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use sqlx::{Connection, PgConnection, Row};

use crate::apply::SWAP_LOCK;
use crate::batch::{Batch, BatchLimits, Source};
use crate::consumer::ProjectorConfig;

/// What a rebuild did.
#[derive(Debug, Default, Clone)]
pub struct RebuildReport {
    pub events: u64,
    pub records: u64,
    pub tables: Vec<String>,
    pub elapsed: Duration,
}

/// The tables that are not projections (what erasures asked and did): a rebuild keeps the
/// live ones, and honours them while it projects.
pub const KEPT: &[&str] = &[
    "erasures",
    "erasure_audit",
    "erased_keys",
    "erasure_pending",
    "erased_messages",
];

/// Progress callback: (stream, done, total).
pub type Progress<'a> = &'a mut dyn FnMut(&str, u64, u64);

/// Rebuilds every read model from the streams and swaps the result in.
pub async fn rebuild(
    config: &ProjectorConfig,
    progress: Progress<'_>,
) -> anyhow::Result<RebuildReport> {
    let started = Instant::now();
    let client = showpass_core::nats::connect(&config.nats, "showpass-rebuild").await?;
    let js = showpass_core::nats::jetstream(client, Duration::from_secs(10));
    let mut conn = PgConnection::connect_with(&config.database_url.options())
        .await
        .context("connecting to PostgreSQL")?;
    // No erasure meanwhile: the side schema would keep what it erases from the live tables.
    // (The lock is the session's: it goes with the connection.)
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(crate::erase::ERASE_LOCK)
        .execute(&mut conn)
        .await
        .context("waiting for an erasure to finish")?;
    let tag = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let side = format!("rebuild_{tag}");
    let retired = format!("retired_{tag}");

    let result = async {
        sqlx::raw_sql(&format!("CREATE SCHEMA {side}")).execute(&mut conn).await?;
        sqlx::raw_sql(&format!("SET search_path TO {side}, public")).execute(&mut conn).await?;
        for m in showpass_store::MIGRATOR.iter() {
            sqlx::raw_sql(&m.sql).execute(&mut conn).await.with_context(|| format!("migration {} in {side}", m.version))?;
        }
        // The events' other lanes, projecting into the side schema too.
        let mut lanes = Vec::new();
        for _ in 1..config.parallelism.clamp(1, crate::consumer::MAX_PARALLELISM) {
            let mut lane = PgConnection::connect_with(&config.database_url.options()).await?;
            sqlx::raw_sql(&format!("SET search_path TO {side}, public")).execute(&mut lane).await?;
            lanes.push(lane);
        }
        let events_stream = config.nats.events_stream();
        let deliveries_stream = config.nats.deliveries_stream();
        let mut report = RebuildReport {
            events: project_range(&js, &mut conn, &mut lanes, &events_stream, Source::Events, 1, None, config.batch_size, progress).await?,
            records: project_range(&js, &mut conn, &mut [], &deliveries_stream, Source::Deliveries, 1, None, config.batch_size, progress).await?,
            ..RebuildReport::default()
        };
        for lane in lanes {
            let _ = lane.close().await;
        }

        // The swap: no live batch may run meanwhile.
        sqlx::raw_sql("SET search_path TO public").execute(&mut conn).await?;
        let mut tx = conn.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SWAP_LOCK).execute(&mut *tx).await?;
        for (stream, source) in [(&events_stream, Source::Events), (&deliveries_stream, Source::Deliveries)] {
            let live: i64 = checkpoint(&mut tx, "public", stream).await?;
            let built: i64 = checkpoint(&mut tx, &side, stream).await?;
            if live > built {
                sqlx::raw_sql(&format!("SET LOCAL search_path TO {side}, public")).execute(&mut *tx).await?;
                // One lane: the others' connections would wait on this transaction's swap lock.
                let n = project_range(&js, &mut tx, &mut [], stream, source, built as u64 + 1, Some(live as u64), config.batch_size, progress).await?;
                if stream == &events_stream { report.events += n } else { report.records += n }
                sqlx::raw_sql("SET LOCAL search_path TO public").execute(&mut *tx).await?;
            }
        }
        let tables: Vec<String> = sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = $1 AND NOT (tablename = ANY($2)) ORDER BY 1")
            .bind(&side)
            .bind(KEPT)
            .fetch_all(&mut *tx)
            .await?;
        sqlx::raw_sql(&format!("CREATE SCHEMA {retired}")).execute(&mut *tx).await?;
        for t in &tables {
            sqlx::raw_sql(&format!("ALTER TABLE IF EXISTS public.{t} SET SCHEMA {retired}; ALTER TABLE {side}.{t} SET SCHEMA public"))
                .execute(&mut *tx)
                .await
                .with_context(|| format!("swapping table {t}"))?;
        }
        tx.commit().await?;
        report.tables = tables;
        anyhow::Ok(report)
    }
    .await;

    // Whatever happened, leave no side schema behind.
    let _ = sqlx::raw_sql("SET search_path TO public")
        .execute(&mut conn)
        .await;
    for schema in [&side, &retired] {
        let _ = sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&mut conn)
            .await;
    }
    let mut report = result?;
    report.elapsed = started.elapsed();
    Ok(report)
}

async fn checkpoint(
    conn: &mut PgConnection,
    schema: &str,
    stream: &str,
) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT COALESCE((SELECT last_seq FROM {schema}.checkpoints WHERE stream = $1), 0)"
    ))
    .bind(stream)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.get(0))
}

/// Projects messages `from..=to` (to: the stream's last message now, when `None`) of a stream
/// through the connections' search_path, in batches bounded like the live projector's, events
/// applied over `conn` and `more` at once. Returns
/// how many messages were read. Messages deleted from the stream (an erasure) are simply absent.
#[allow(clippy::too_many_arguments)]
async fn project_range(
    js: &jetstream::Context,
    conn: &mut PgConnection,
    more: &mut [PgConnection],
    stream_name: &str,
    source: Source,
    from: u64,
    to: Option<u64>,
    batch_size: usize,
    progress: Progress<'_>,
) -> anyhow::Result<u64> {
    let mut stream = js
        .get_stream(stream_name)
        .await
        .with_context(|| format!("opening stream {stream_name}"))?;
    let info = stream.info().await?.clone();
    // Never past what the stream holds (after an upgrade that renumbered it, the live
    // checkpoint may be).
    let last = to.unwrap_or(u64::MAX).min(info.state.last_sequence);
    let first = from.max(info.state.first_sequence);
    if last < first || info.state.messages == 0 {
        progress(stream_name, 0, 0);
        return Ok(0);
    }
    // An estimate: messages deleted from the range are not delivered.
    let total = (last - first + 1).min(info.state.messages);
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let limits = BatchLimits::for_rebuild(batch_size);
    let mut batch = Batch::new(source, more.len() + 1);
    let mut done = 0u64;
    loop {
        let Some(m) = tokio::time::timeout(Duration::from_secs(30), messages.next())
            .await
            .context("the stream stopped delivering")?
        else {
            break;
        };
        let m = m?;
        let info = m.info().map_err(|e| {
            anyhow::anyhow!("a message of {stream_name} has no readable metadata: {e}")
        })?;
        let (seq, pending) = (info.stream_sequence, info.pending);
        if seq > last {
            break;
        }
        batch.push(
            stream_name,
            seq,
            m.headers.as_ref(),
            info.published,
            &m.payload,
        );
        done += 1;
        let end = seq >= last || pending == 0;
        if end || batch.full(&limits) {
            batch.apply(conn, more, stream_name).await?;
            batch.clear();
            progress(stream_name, done, total.max(done));
        }
        if end {
            break;
        }
    }
    if !batch.is_empty() {
        batch.apply(conn, more, stream_name).await?;
    }
    Ok(done)
}
