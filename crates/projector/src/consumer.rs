//! The consuming side: leadership, durable pull consumers, batching, retries and acks.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::pull};
use showpass_core::nats::NatsConfig;
use sqlx::{Connection, PgConnection};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use showpass_store::DatabaseUrl;

use crate::batch::{BatchLimits, Source};
use crate::pass::{Pass, pass};

/// Everything the projector needs to run.
#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    pub nats: NatsConfig,
    pub database_url: DatabaseUrl,
    /// Most events in one batch.
    pub batch_size: usize,
    /// How many PostgreSQL connections apply a batch's events at once (its lanes, see
    /// [`crate::apply_parallel`]); 1 applies each batch in one transaction.
    pub parallelism: usize,
    /// How long to wait for more events to fill a batch once one has arrived, while the stream
    /// still holds more (see [`crate::fill_batch`]).
    pub batch_linger: Duration,
    /// Most unacknowledged events the consumer hands out.
    pub max_ack_pending: i64,
    /// How often a standby checks whether the active projector is gone.
    pub standby_poll: Duration,
    /// How long duplicate and rejected deliveries stay in the delivery log (zero: for ever).
    pub log_retention: Duration,
}

impl ProjectorConfig {
    pub fn local(nats: NatsConfig, database_url: DatabaseUrl) -> Self {
        Self {
            nats,
            database_url,
            batch_size: 1_000,
            parallelism: DEFAULT_PARALLELISM,
            batch_linger: Duration::from_millis(10),
            max_ack_pending: 20_000,
            standby_poll: Duration::from_millis(500),
            log_retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// The default of `PROJECTOR_PARALLELISM`, from docs/benchmarks.md ("Parallel catch-up").
pub const DEFAULT_PARALLELISM: usize = 2;

/// Most connections a batch may be applied over.
pub const MAX_PARALLELISM: usize = 64;

/// How often the leader looks for messages an erasure still has to redact.
const ERASURE_SWEEP: Duration = Duration::from_secs(2);

/// The durable consumer names, one per stream.
pub const EVENTS_CONSUMER: &str = "projector";
pub const DELIVERIES_CONSUMER: &str = "projector-deliveries";

/// Runs the projector until `shutdown`: waits to become the active instance (a second one is a
/// hot standby), then applies both streams. Loses leadership → back to standby.
pub async fn run(config: ProjectorConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    config.nats.validate()?;
    let client = showpass_core::nats::connect(&config.nats, "showpass-projector").await?;
    let js = showpass_core::nats::jetstream(client.clone(), Duration::from_secs(10));
    showpass_core::nats::ensure_streams_until_ready(&js, &config.nats, &shutdown).await?;
    showpass_core::nats::check_server(&client)?;
    let lock_key = leader_key(&config.nats.prefix);
    // Erasure requests need no leadership: every instance answers them.
    let erasures = tokio::spawn(crate::erase::serve(
        client.clone(),
        js.clone(),
        config.nats.clone(),
        config.database_url.clone(),
        shutdown.child_token(),
    ));
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
    erasures.abort();
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

/// Holds the leader's connections: one owns the session lock (checked every second), the
/// others apply batches: the events' (the first of them also moves the checkpoint) and the
/// delivery records'.
struct Leadership {
    lock_conn: PgConnection,
    events_conn: PgConnection,
    /// The events' other lanes (`parallelism - 1`).
    lane_conns: Vec<PgConnection>,
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
            let options = config.database_url.options();
            let mut lock_conn = PgConnection::connect_with(&options).await?;
            let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(key)
                .fetch_one(&mut lock_conn)
                .await?;
            if !got {
                return anyhow::Ok(None);
            }
            let events_conn = PgConnection::connect_with(&options).await?;
            let mut lane_conns = Vec::new();
            for _ in 1..config.parallelism.clamp(1, MAX_PARALLELISM) {
                lane_conns.push(PgConnection::connect_with(&options).await?);
            }
            let records_conn = PgConnection::connect_with(&options).await?;
            Ok(Some(Leadership {
                lock_conn,
                events_conn,
                lane_conns,
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
        &mut lead.lane_conns,
        &stop,
    );
    let records = consume(
        config,
        js,
        &deliveries_stream,
        Source::Deliveries,
        &mut lead.records_conn,
        &mut [],
        &stop,
    );
    // Leadership lasts as long as the lock's session: check it, and stop both loops if it goes.
    // The same connection expires the delivery log's old duplicates and rejections, hourly.
    let watch = async {
        let mut next_expiry = Instant::now();
        let mut next_sweep = Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if let Err(e) = sqlx::query("SELECT 1").execute(&mut lead.lock_conn).await {
                stop.cancel();
                return Err(anyhow::Error::from(e).context("the leader lock's connection is gone"));
            }
            // Redacts what erasures left: a resent duplicate of an erased event, a crashed run.
            if Instant::now() >= next_sweep {
                next_sweep = Instant::now() + ERASURE_SWEEP;
                match crate::erase::sweep(js, &mut lead.lock_conn, &config.nats).await {
                    Ok(m) if m == crate::erase::MessagesChanged::default() => {}
                    Ok(m) => tracing::info!(?m, "erasure sweep replaced messages"),
                    Err(e) => tracing::warn!(
                        error = format!("{e:#}"),
                        "erasure sweep failed; trying again"
                    ),
                }
            }
            if !config.log_retention.is_zero() && Instant::now() >= next_expiry {
                next_expiry = Instant::now() + Duration::from_secs(3600);
                match crate::janitor::expire_delivery_log(&mut lead.lock_conn, config.log_retention)
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(rows = n, "expired old duplicate and rejected deliveries")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "expiring the delivery log failed; trying again in an hour")
                    }
                }
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

/// Consumes one stream until `stop`, applying batches in order. Each pass starts a consumer
/// right after the checkpoint; a pass that cannot vouch for the messages it was handed (a pull
/// error, a gap in the consumer's deliveries, a message it cannot place) applies what came
/// before, then starts again from the checkpoint, so nothing is ever passed over.
async fn consume(
    config: &ProjectorConfig,
    js: &jetstream::Context,
    stream_name: &str,
    source: Source,
    conn: &mut PgConnection,
    more: &mut [PgConnection],
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let consumer_name = match source {
        Source::Events => EVENTS_CONSUMER,
        Source::Deliveries => DELIVERIES_CONSUMER,
    };
    let limits = BatchLimits::live(config.batch_size, config.batch_linger);
    let mut pause = Duration::ZERO;
    loop {
        // Passes that end at once, again and again (a server refusing pulls, say), must not
        // spin: each one waits a little longer, up to 5 s, until a pass gets going.
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(pause) => {}
        }
        let started = Instant::now();
        let checkpoint: i64 = sqlx::query_scalar(
            "SELECT COALESCE((SELECT last_seq FROM checkpoints WHERE stream = $1), 0)",
        )
        .bind(stream_name)
        .fetch_one(&mut *conn)
        .await
        .context("reading the checkpoint")?;
        // A new pass starts the consumer right after the checkpoint, so nothing a previous
        // leader (or pass) left unacknowledged is delivered out of order.
        let stream = js
            .get_stream(stream_name)
            .await
            .with_context(|| format!("opening stream {stream_name}"))?;
        let _ = stream.delete_consumer(consumer_name).await;
        let consumer: jetstream::consumer::Consumer<pull::Config> = stream
            .create_consumer(pull::Config {
                durable_name: Some(consumer_name.to_owned()),
                description: Some("showpass projector: read models in PostgreSQL".into()),
                deliver_policy: match u64::try_from(checkpoint) {
                    Ok(c) if c > 0 => jetstream::consumer::DeliverPolicy::ByStartSequence {
                        start_sequence: c.saturating_add(1),
                    },
                    _ => jetstream::consumer::DeliverPolicy::All,
                },
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(60),
                max_ack_pending: config.max_ack_pending,
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating consumer {consumer_name} on {stream_name}"))?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(config.batch_size.min(10_000))
            .max_bytes_per_batch(MAX_PULL_BYTES)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .context("starting to pull")?;
        tracing::info!(stream = stream_name, from = checkpoint + 1, "consuming");
        let mut messages = std::pin::pin!(messages);
        match pass(conn, more, stream_name, source, &mut messages, limits, stop).await? {
            Pass::Stopped => return Ok(()),
            Pass::Restart(why) => {
                tracing::warn!(stream = stream_name, reason = %why, "starting again from the checkpoint");
                pause = if started.elapsed() > Duration::from_secs(10) {
                    Duration::ZERO
                } else {
                    (pause * 2).clamp(Duration::from_millis(100), Duration::from_secs(5))
                };
            }
        }
    }
}

/// Most bytes one pull request may bring (JetStream's own `max_bytes`), so what the client
/// buffers stays bounded however large the messages.
const MAX_PULL_BYTES: usize = 16 * 1024 * 1024;
