//! The consuming side: leadership, durable pull consumers, batching, retries and acks.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt;
use showpass_core::nats::NatsConfig;
use sqlx::{Connection, PgConnection};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::apply::{self, Incoming, Tally};
use crate::meta::Meta;
use crate::plan::plan;

/// Everything the projector needs to run.
#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    pub nats: NatsConfig,
    pub database_url: String,
    /// Most events applied in one transaction.
    pub batch_size: usize,
    /// How long to wait for more events to fill a batch once one has arrived.
    pub batch_linger: Duration,
    /// Most unacknowledged events the consumer hands out.
    pub max_ack_pending: i64,
    /// How often a standby checks whether the active projector is gone.
    pub standby_poll: Duration,
}

impl ProjectorConfig {
    pub fn local(nats: NatsConfig, database_url: impl Into<String>) -> Self {
        Self {
            nats,
            database_url: database_url.into(),
            batch_size: 1_000,
            batch_linger: Duration::from_millis(10),
            max_ack_pending: 20_000,
            standby_poll: Duration::from_millis(500),
        }
    }
}

/// The durable consumer names, one per stream.
pub const EVENTS_CONSUMER: &str = "projector";
pub const DELIVERIES_CONSUMER: &str = "projector-deliveries";

/// Which of the two streams a loop consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Events,
    Deliveries,
}

/// Runs the projector until `shutdown`: waits to become the active instance (a second one is a
/// hot standby), then applies both streams. Loses leadership → back to standby.
pub async fn run(config: ProjectorConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    config.nats.validate()?;
    let client = showpass_core::nats::connect(&config.nats, "showpass-projector").await?;
    let js = showpass_core::nats::jetstream(client.clone(), Duration::from_secs(10));
    showpass_core::nats::ensure_streams_until_ready(&js, &config.nats, &shutdown).await?;
    showpass_core::nats::check_server(&client)?;
    let lock_key = leader_key(&config.nats.prefix);
    let project = async {
        while !shutdown.is_cancelled() {
            let Some(lead) = acquire_leadership(&config, lock_key, &shutdown).await else {
                break;
            };
            tracing::info!("projector active");
            match lead_until_lost(&config, &js, lead, &shutdown).await {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "projector lost its footing; starting over")
                }
            }
        }
    };
    tokio::select! {
        () = project => {}
        refused = showpass_core::nats::watch_server(client.clone()) => return Err(refused),
    }
    let _ = client.flush().await;
    tracing::info!("projector stopped");
    Ok(())
}

/// The advisory lock that makes one projector per event store active.
fn leader_key(prefix: &str) -> i64 {
    // FNV-1a of the prefix: stable across versions and machines.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("showpass-projector:{prefix}").bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// Holds the leader's connections: one owns the session lock, the others apply batches and
/// are checked against it before each batch.
struct Leadership {
    lock_conn: PgConnection,
    events_conn: PgConnection,
    records_conn: PgConnection,
}

/// Waits until this instance holds the leader lock, or `shutdown`.
async fn acquire_leadership(
    config: &ProjectorConfig,
    key: i64,
    shutdown: &CancellationToken,
) -> Option<Leadership> {
    let mut announced = false;
    loop {
        let attempt = async {
            let options = showpass_store::options(&config.database_url)?;
            let mut lock_conn = PgConnection::connect_with(&options).await?;
            let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(key)
                .fetch_one(&mut lock_conn)
                .await?;
            if !got {
                return anyhow::Ok(None);
            }
            let events_conn = PgConnection::connect_with(&options).await?;
            let records_conn = PgConnection::connect_with(&options).await?;
            Ok(Some(Leadership {
                lock_conn,
                events_conn,
                records_conn,
            }))
        };
        match attempt.await {
            Ok(Some(l)) => return Some(l),
            Ok(None) if !announced => {
                tracing::info!("another projector is active; standing by");
                announced = true;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "database unavailable; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(config.standby_poll) => {}
        }
    }
}

async fn lead_until_lost(
    config: &ProjectorConfig,
    js: &jetstream::Context,
    mut lead: Leadership,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let stop = shutdown.child_token();
    let events_stream = config.nats.events_stream();
    let deliveries_stream = config.nats.deliveries_stream();
    let events = consume(
        config,
        js,
        &events_stream,
        Source::Events,
        &mut lead.events_conn,
        &stop,
    );
    let records = consume(
        config,
        js,
        &deliveries_stream,
        Source::Deliveries,
        &mut lead.records_conn,
        &stop,
    );
    // Leadership lasts as long as the lock's session: check it, and stop both loops if it goes.
    let watch = async {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if let Err(e) = sqlx::query("SELECT 1").execute(&mut lead.lock_conn).await {
                stop.cancel();
                return Err(anyhow::Error::from(e).context("the leader lock's connection is gone"));
            }
        }
    };
    let (e, r, w) = tokio::join!(
        async {
            let r = events.await;
            stop.cancel();
            r
        },
        async {
            let r = records.await;
            stop.cancel();
            r
        },
        watch
    );
    e.and(r).and(w)
}

/// Consumes one stream until `stop`, applying batches in order.
async fn consume(
    config: &ProjectorConfig,
    js: &jetstream::Context,
    stream_name: &str,
    source: Source,
    conn: &mut PgConnection,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let consumer_name = match source {
        Source::Events => EVENTS_CONSUMER,
        Source::Deliveries => DELIVERIES_CONSUMER,
    };
    let checkpoint: i64 = sqlx::query_scalar(
        "SELECT COALESCE((SELECT last_seq FROM checkpoints WHERE stream = $1), 0)",
    )
    .bind(stream_name)
    .fetch_one(&mut *conn)
    .await
    .context("reading the checkpoint")?;
    // A new leader starts the consumer right after the checkpoint, so nothing a previous leader
    // left unacknowledged is delivered out of order.
    let stream = js
        .get_stream(stream_name)
        .await
        .with_context(|| format!("opening stream {stream_name}"))?;
    let _ = stream.delete_consumer(consumer_name).await;
    let consumer: jetstream::consumer::Consumer<pull::Config> = stream
        .create_consumer(pull::Config {
            durable_name: Some(consumer_name.to_owned()),
            description: Some("showpass projector: read models in PostgreSQL".into()),
            deliver_policy: if checkpoint > 0 {
                jetstream::consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: checkpoint as u64 + 1,
                }
            } else {
                jetstream::consumer::DeliverPolicy::All
            },
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(60),
            max_ack_pending: config.max_ack_pending,
            ..Default::default()
        })
        .await
        .with_context(|| format!("creating consumer {consumer_name} on {stream_name}"))?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(config.batch_size.min(10_000))
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .context("starting to pull")?;
    tracing::info!(stream = stream_name, from = checkpoint + 1, "consuming");

    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            m = messages.next() => m,
        };
        let Some(first) = first else {
            anyhow::bail!("the message stream of {stream_name} ended");
        };
        let mut batch = vec![first.context("pulling messages")?];
        let deadline = Instant::now() + config.batch_linger;
        while batch.len() < config.batch_size {
            match tokio::time::timeout_at(deadline, messages.next()).await {
                Ok(Some(Ok(m))) => batch.push(m),
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "pull error");
                    break;
                }
                Ok(None) | Err(_) => break,
            }
        }
        let started = Instant::now();
        let tally = apply_with_retry(conn, stream_name, source, &batch, stop).await?;
        let Some(tally) = tally else { return Ok(()) };
        for m in &batch {
            if let Err(e) = m.ack().await {
                // The commit stands; a redelivery is recognised by the checkpoint.
                tracing::warn!(error = %e, "ack failed");
            }
        }
        tracing::debug!(stream = stream_name, events = batch.len(), elapsed = ?started.elapsed(), ?tally, "batch applied");
    }
}

/// Decodes a batch and applies it, retrying with back-off while the database is away, and
/// keeping the messages from being redelivered meanwhile. `None` when stopped first.
async fn apply_with_retry(
    conn: &mut PgConnection,
    stream_name: &str,
    source: Source,
    batch: &[jetstream::Message],
    stop: &CancellationToken,
) -> anyhow::Result<Option<Tally>> {
    let metas: Vec<Meta> = batch.iter().map(|m| meta_of(stream_name, m)).collect();
    let incoming: Vec<Incoming> = match source {
        Source::Events => batch
            .iter()
            .zip(&metas)
            .map(|(m, meta)| Incoming {
                decision: plan(meta, &m.payload),
                body_sha256: showpass_payload::sha256_hex(&m.payload),
                meta: meta.clone(),
            })
            .collect(),
        Source::Deliveries => Vec::new(),
    };
    let mut backoff = Duration::from_millis(100);
    let started = Instant::now();
    loop {
        let result = match source {
            Source::Events => apply::apply_events(conn, stream_name, &incoming).await,
            Source::Deliveries => apply::apply_records(conn, stream_name, &metas).await,
        };
        match result {
            Ok(t) => return Ok(Some(t)),
            Err(sqlx::Error::Database(d))
                if source == Source::Events && is_data_error(d.code().as_deref()) =>
            {
                tracing::warn!(error = %d, stream = stream_name, "the database refused a batch's data; applying it event by event");
                return one_by_one(conn, stream_name, &incoming).await.map(Some);
            }
            Err(e) if is_connection_error(&e) => {
                // The leader's connections are tied to its lock; a lost connection means
                // leadership must be re-established from the start.
                return Err(anyhow::Error::from(e).context("database connection lost"));
            }
            Err(e) => {
                tracing::warn!(error = %e, stream = stream_name, retry_in = ?backoff, "batch failed; retrying");
                if started.elapsed() > Duration::from_secs(20) {
                    for m in batch {
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

/// SQLSTATE classes 22 (data exception) and 23 (integrity violation): the same data fails the
/// same way every time, so retrying cannot help.
fn is_data_error(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.starts_with("22") || c.starts_with("23"))
}

/// Applies a batch one event at a time; an event the database refuses is logged as failed
/// with the database's reason (and can be replayed after a fix), so it never blocks the stream.
async fn one_by_one(
    conn: &mut PgConnection,
    stream_name: &str,
    incoming: &[Incoming],
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    for one in incoming {
        let t = match apply::apply_events(conn, stream_name, std::slice::from_ref(one)).await {
            Ok(t) => t,
            Err(sqlx::Error::Database(d)) if is_data_error(d.code().as_deref()) => {
                tracing::warn!(error = %d, seq = one.meta.seq, "event refused by the database; logged as failed");
                let failed = Incoming {
                    decision: crate::plan::Decision::Fail(format!("the database refused it: {d}")),
                    ..one.clone()
                };
                apply::apply_events(conn, stream_name, std::slice::from_ref(&failed)).await?
            }
            Err(e) => return Err(e.into()),
        };
        tally.applied += t.applied;
        tally.duplicate += t.duplicate;
        tally.skipped += t.skipped;
        tally.failed += t.failed;
        tally.already += t.already;
    }
    Ok(tally)
}

fn is_connection_error(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::Protocol(_)
    ) || matches!(e, sqlx::Error::Database(d) if d.code().is_some_and(|c| c.starts_with("08") || c == "57P01"))
}

fn meta_of(stream: &str, m: &jetstream::Message) -> Meta {
    let (seq, published) = match m.info() {
        Ok(i) => (i.stream_sequence, i.published),
        Err(_) => (0, chrono::Utc::now()),
    };
    Meta::from_headers(stream, seq, m.headers.as_ref(), published)
}
