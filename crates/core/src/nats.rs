//! NATS: connecting, and provisioning the two streams idempotently.
//!
//! - `{PREFIX}_EVENTS` on `_{prefix}.events.>`: the event store. File storage, no age limit
//!   unless configured, discard *new* when a size limit is reached (refusing a delivery, which
//!   Showpass retries, is better than dropping history), de-duplication on `Nats-Msg-Id`. What
//!   it stores it republishes to `{prefix}.events.>`, so subscribers see each stored event
//!   once and never a dropped duplicate.
//! - `{PREFIX}_DELIVERIES` on `{prefix}.deliveries.>`: duplicate and rejected deliveries,
//!   kept for a limited age.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};
use showpass_payload::subject;

/// Where NATS is and how the streams are shaped.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// Server URLs, comma-separated.
    pub url: String,
    /// First subject token; stream names derive from it.
    pub prefix: String,
    /// Stream replicas: 1 on one server, 3 in a cluster.
    pub replicas: usize,
    /// How long JetStream remembers a `Nats-Msg-Id` to drop a redelivery.
    pub duplicate_window: Duration,
    /// Age limit of the events stream; zero keeps events forever.
    pub events_max_age: Duration,
    /// Size limit of the events stream in bytes; `None` is unlimited.
    pub events_max_bytes: Option<i64>,
    /// Age limit of the deliveries stream.
    pub deliveries_max_age: Duration,
}

impl NatsConfig {
    /// Defaults for a local run against `nats://127.0.0.1:4222`.
    pub fn local(prefix: impl Into<String>) -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            prefix: prefix.into(),
            replicas: 1,
            duplicate_window: Duration::from_secs(24 * 3600),
            events_max_age: Duration::ZERO,
            events_max_bytes: None,
            deliveries_max_age: Duration::from_secs(30 * 24 * 3600),
        }
    }

    /// Checks what can be checked without a server.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            subject::is_valid_prefix(&self.prefix),
            "NATS_SUBJECT_PREFIX must be one subject token of letters, digits, '_' or '-' (got {:?})",
            self.prefix
        );
        anyhow::ensure!(
            (1..=5).contains(&self.replicas),
            "NATS_STREAM_REPLICAS must be between 1 and 5 (got {})",
            self.replicas
        );
        anyhow::ensure!(
            !self.duplicate_window.is_zero(),
            "NATS_DUPLICATE_WINDOW must be longer than zero"
        );
        Ok(())
    }

    pub fn events_stream(&self) -> String {
        subject::events_stream(&self.prefix)
    }

    pub fn deliveries_stream(&self) -> String {
        subject::deliveries_stream(&self.prefix)
    }

    fn events_config(&self) -> stream::Config {
        let mut duplicate_window = self.duplicate_window;
        if !self.events_max_age.is_zero() {
            // JetStream refuses a window longer than the stream's age limit.
            duplicate_window = duplicate_window.min(self.events_max_age);
        }
        stream::Config {
            name: self.events_stream(),
            description: Some("Showpass deliveries: the event store".into()),
            subjects: vec![subject::stored_events_filter(&self.prefix)],
            republish: Some(stream::Republish {
                source: subject::stored_events_filter(&self.prefix),
                destination: subject::events_filter(&self.prefix),
                headers_only: false,
            }),
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::New,
            max_age: self.events_max_age,
            max_bytes: self.events_max_bytes.unwrap_or(-1),
            max_messages: -1,
            num_replicas: self.replicas,
            duplicate_window,
            ..Default::default()
        }
    }

    fn deliveries_config(&self) -> stream::Config {
        stream::Config {
            name: self.deliveries_stream(),
            description: Some("Duplicate and rejected Showpass deliveries".into()),
            subjects: vec![subject::deliveries_filter(&self.prefix)],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            max_age: self.deliveries_max_age,
            max_messages: -1,
            max_bytes: -1,
            num_replicas: self.replicas,
            duplicate_window: Duration::from_secs(120).min(self.deliveries_max_age),
            ..Default::default()
        }
    }
}

/// Connects to NATS, retrying in the background if the server is not up yet, so a service can
/// start before NATS and report itself not ready until it connects.
pub async fn connect(config: &NatsConfig, name: &str) -> anyhow::Result<async_nats::Client> {
    let servers = config
        .url
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("NATS_URL is not a list of NATS URLs: {:?}", config.url))?;
    anyhow::ensure!(!servers.is_empty(), "NATS_URL names no server");
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((100 * attempts as u64).min(2_000))
        })
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("connected to NATS"),
                async_nats::Event::Disconnected => tracing::warn!("disconnected from NATS"),
                other => tracing::info!(event = %other, "NATS event"),
            }
        })
        .connect(servers)
        .await
        .context("connecting to NATS")
}

/// nats-server releases known to lose acknowledged writes: 2.10.20 to 2.10.22, per the 2025
/// Jepsen analysis of NATS JetStream (fixed in 2.10.23).
pub fn loses_acknowledged_writes(version: &str) -> bool {
    let core = version.trim().trim_start_matches('v');
    let core = core.split(['-', '+']).next().unwrap_or("");
    let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(Some(2)), Some(Some(10)), Some(Some(20..=22)))
    )
}

/// Refuses a connection to a nats-server release known to lose acknowledged writes.
pub fn check_server(client: &async_nats::Client) -> anyhow::Result<()> {
    let info = client.server_info();
    if loses_acknowledged_writes(&info.version) {
        anyhow::bail!(
            "nats-server {} ({}) is known to lose acknowledged writes (2.10.20 to 2.10.22, \
             per the 2025 Jepsen analysis): upgrade NATS to 2.10.23 or later before running \
             showpass",
            info.version,
            info.server_name,
        );
    }
    Ok(())
}

/// Re-checks the server after every reconnect (a cluster may hand the client to another
/// server, or a server may be upgraded under it). Answers only with the refusal.
pub async fn watch_server(client: async_nats::Client) -> anyhow::Error {
    let mut seen = String::new();
    loop {
        if client.connection_state() == async_nats::connection::State::Connected {
            let info = client.server_info();
            if info.server_id != seen {
                if let Err(e) = check_server(&client) {
                    return e;
                }
                seen = info.server_id;
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// A JetStream context whose API calls and publish acks time out after `timeout`.
pub fn jetstream(client: async_nats::Client, timeout: Duration) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(timeout)
        .build(client)
}

/// The events stream has the shape earlier versions gave it (storing the public subjects, no
/// republish), and this server cannot change that in place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "stream {stream} was created by an earlier version of showpass (it stores the public \
     subjects and does not republish them), and this NATS server cannot change that in place: \
     stop ingest, then run `showpass migrate --upgrade-events-stream` once"
)]
pub struct NeedsUpgrade {
    pub stream: String,
}

/// Creates or updates both streams. Safe to run from many replicas at once.
pub async fn ensure_streams(js: &jetstream::Context, config: &NatsConfig) -> anyhow::Result<()> {
    for wanted in [config.events_config(), config.deliveries_config()] {
        let name = wanted.name.clone();
        match js.create_or_update_stream(wanted.clone()).await {
            Ok(_) => {}
            // Another replica created it between our update and create: update again.
            Err(e) if e.to_string().contains("already in use") => {
                js.update_stream(wanted)
                    .await
                    .with_context(|| format!("updating stream {name}"))?;
            }
            // NATS before 2.10 cannot add a republish to an existing stream.
            Err(e) if e.to_string().contains("can not change RePublish") => {
                return Err(NeedsUpgrade { stream: name }.into());
            }
            Err(e) => return Err(e).with_context(|| format!("creating or updating stream {name}")),
        }
        tracing::info!(stream = %name, "stream ready");
    }
    Ok(())
}

/// What an upgrade of the events stream did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UpgradeReport {
    /// Messages carried over into the upgraded stream.
    pub messages: u64,
    /// Whether the stream's sequence numbers changed (the old stream had gaps), so the read
    /// models must be rebuilt from it.
    pub resequenced: bool,
}

/// Gives an events stream of the earlier shape the current one on a server that cannot
/// change it in place: its messages are copied (JetStream sources) into `{NAME}_UPGRADE`,
/// the stream is created again with the current configuration, the messages are copied back,
/// and the copy removed. Each step can be run again after a crash: the copy is kept until the
/// new stream holds every message. Run it with ingest stopped (the old stream is sealed first).
pub async fn upgrade_events_stream(
    js: &jetstream::Context,
    config: &NatsConfig,
) -> anyhow::Result<UpgradeReport> {
    let name = config.events_stream();
    let copy = format!("{name}_UPGRADE");
    let mut report = UpgradeReport::default();
    if let Ok(mut old) = js.get_stream(&name).await {
        let info = old.info().await?.clone();
        if info.config.republish.is_some() {
            ensure_streams(js, config).await?;
            if js.get_stream(&copy).await.is_err() {
                return Ok(report);
            }
        } else {
            // 1. Seal the old stream and copy it aside.
            let state = info.state.clone();
            report.resequenced = state.first_sequence > 1
                || state.deleted_count.unwrap_or(0) > 0
                || state.last_sequence != state.messages;
            let mut sealed = info.config.clone();
            sealed.sealed = true;
            js.update_stream(sealed)
                .await
                .with_context(|| format!("sealing {name}"))?;
            js.get_or_create_stream(stream::Config {
                name: copy.clone(),
                description: Some(format!("{name} while it is upgraded")),
                sources: Some(vec![stream::Source {
                    name: name.clone(),
                    ..Default::default()
                }]),
                storage: stream::StorageType::File,
                num_replicas: config.replicas,
                duplicate_window: SHORTEST_WINDOW,
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating {copy}"))?;
            let copied = wait_for_source(js, &copy, state.messages).await?;
            report.resequenced |= copied != state.messages;
            js.delete_stream(&name)
                .await
                .with_context(|| format!("deleting the old {name}"))?;
        }
    }
    // 2. The stream again, in the current shape, filled from the copy.
    let mut copy_stream = js
        .get_stream(&copy)
        .await
        .with_context(|| format!("neither {name} nor {copy} exists: nothing to upgrade"))?;
    let copy_info = copy_stream.info().await?.clone();
    let expected = copy_info.state.messages;
    if copy_info
        .config
        .sources
        .as_ref()
        .is_some_and(|s| !s.is_empty())
    {
        // The copy stops following the old stream, or the new one would source in a cycle.
        let mut detached = copy_info.config.clone();
        detached.sources = None;
        js.update_stream(detached)
            .await
            .with_context(|| format!("detaching {copy}"))?;
    }
    let mut filling = config.events_config();
    let final_config = filling.clone();
    filling.sources = Some(vec![stream::Source {
        name: copy.clone(),
        ..Default::default()
    }]);
    // Messages keep their `Nats-Msg-Id`: the shortest window keeps the copy from dropping
    // most resends that Showpass sent long after their original (one it drops anyway shows as
    // a resequencing).
    filling.duplicate_window = SHORTEST_WINDOW;
    match js.get_stream(&name).await {
        Ok(_) => {
            js.update_stream(filling).await?;
        }
        Err(_) => {
            js.create_stream(filling).await?;
        }
    }
    report.messages = wait_for_source(js, &name, expected).await?;
    report.resequenced |= report.messages != expected;
    js.update_stream(final_config)
        .await
        .with_context(|| format!("finishing {name}"))?;
    js.delete_stream(&copy)
        .await
        .with_context(|| format!("removing {copy}"))?;
    tracing::info!(stream = %name, messages = report.messages, resequenced = report.resequenced, "events stream upgraded");
    Ok(report)
}

/// The shortest de-duplication window JetStream accepts.
const SHORTEST_WINDOW: Duration = Duration::from_millis(100);

/// Waits until a stream filled from a source holds `count` messages, or has caught up with
/// its source with fewer (de-duplication dropped some). Answers how many it holds.
async fn wait_for_source(js: &jetstream::Context, name: &str, count: u64) -> anyhow::Result<u64> {
    let mut last = (u64::MAX, std::time::Instant::now());
    loop {
        let mut s = js.get_stream(name).await?;
        let info = s.info().await?.clone();
        let n = info.state.messages;
        if n >= count {
            return Ok(n);
        }
        let caught_up = !info.sources.is_empty()
            && info
                .sources
                .iter()
                .all(|s| s.lag == 0 && s.active.is_some());
        if n != last.0 {
            last = (n, std::time::Instant::now());
        } else if caught_up && last.1.elapsed() > Duration::from_secs(2) {
            return Ok(n);
        }
        anyhow::ensure!(
            last.1.elapsed() < Duration::from_secs(60),
            "copying into {name} stalled at {n} of {count} messages"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Like [`ensure_streams`], retrying every second until it succeeds or `cancel` fires.
pub async fn ensure_streams_until_ready(
    js: &jetstream::Context,
    config: &NatsConfig,
    cancel: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    loop {
        match ensure_streams(js, config).await {
            Ok(()) => return Ok(()),
            // Waiting cannot cure this one.
            Err(e) if e.is::<NeedsUpgrade>() => return Err(e),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "streams not ready; retrying"),
        }
        tokio::select! {
            _ = cancel.cancelled() => anyhow::bail!("shut down before the streams were ready"),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Parses durations written like `24h`, `90s`, `30days`, or `0` for none.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s.trim()).map_err(|e| format!("{e} (write e.g. 5s, 24h, 30days)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_that_lose_acknowledged_writes_are_recognised() {
        for bad in [
            "2.10.20",
            "2.10.21",
            "v2.10.22",
            "2.10.22-RC.1",
            "2.10.21+build",
        ] {
            assert!(loses_acknowledged_writes(bad), "{bad}");
        }
        for good in [
            "2.9.25", "2.10.19", "2.10.23", "2.11.0", "2.10.2", "2.10.200", "", "garbage",
        ] {
            assert!(!loses_acknowledged_writes(good), "{good}");
        }
    }
}
