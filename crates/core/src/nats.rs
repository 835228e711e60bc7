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
#[derive(Clone)]
pub struct NatsConfig {
    /// Server URLs, comma-separated; a URL may carry `user:password@` or `token@`. Never
    /// printed: [`redact_urls`] is what logs and errors show.
    pub url: String,
    /// A NATS credentials file (JWT and NKey seed), `NATS_CREDS`.
    pub creds: Option<std::path::PathBuf>,
    /// A token, `NATS_TOKEN`.
    pub token: Option<crate::Secret>,
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
    /// Size limit of the deliveries stream in bytes: the oldest records go first, so duplicate
    /// and rejected deliveries can never crowd out the event store.
    pub deliveries_max_bytes: i64,
    /// Whether this service creates and updates the streams at start (`NATS_PROVISION`). Off
    /// where NATS grants each service only what it needs: `showpass migrate` provisions, and
    /// the services wait for the streams to exist.
    pub provision: bool,
}

impl std::fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsConfig")
            .field("url", &redact_urls(&self.url))
            .field("creds", &self.creds)
            .field("token", &self.token)
            .field("prefix", &self.prefix)
            .field("replicas", &self.replicas)
            .field("duplicate_window", &self.duplicate_window)
            .field("events_max_age", &self.events_max_age)
            .field("events_max_bytes", &self.events_max_bytes)
            .field("deliveries_max_age", &self.deliveries_max_age)
            .field("deliveries_max_bytes", &self.deliveries_max_bytes)
            .field("provision", &self.provision)
            .finish()
    }
}

/// The inbox prefix of a client named `name`.
pub fn inbox_prefix(name: &str) -> String {
    format!("_INBOX_{name}")
}

/// URLs with any `user:password@` or `token@` replaced by `[redacted]@`, for logs and errors.
pub fn redact_urls(urls: &str) -> String {
    urls.split(',')
        .map(|u| {
            let u = u.trim();
            let (scheme, rest) = u.split_once("://").map_or(("", u), |(s, r)| (s, r));
            // The last `@`: a password may hold `/`, `?`, `#` or `@` unescaped (a URL that
            // then fails to parse is exactly the one an error message shows).
            match rest.rfind('@') {
                Some(at) => {
                    let shown = format!("[redacted]{}", &rest[at..]);
                    if scheme.is_empty() {
                        shown
                    } else {
                        format!("{scheme}://{shown}")
                    }
                }
                None => u.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
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
            deliveries_max_bytes: 1 << 30,
            provision: true,
            creds: None,
            token: None,
        }
    }

    /// Every stream the platform makes under this prefix (the events, the deliveries, the
    /// bindings bucket's, and an upgrade's copy): what a test or a bench removes after itself.
    pub fn all_streams(&self) -> [String; 4] {
        [
            self.events_stream(),
            self.deliveries_stream(),
            format!("KV_{}", self.bindings_bucket()),
            format!("{}_UPGRADE", self.events_stream()),
        ]
    }

    /// The key-value bucket binding each signed `id` to its organization.
    pub fn bindings_bucket(&self) -> String {
        format!("{}_bindings", self.prefix)
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
            max_bytes: self.deliveries_max_bytes,
            num_replicas: self.replicas,
            duplicate_window: Duration::from_secs(120).min(self.deliveries_max_age),
            ..Default::default()
        }
    }
}

/// Connects to NATS, retrying in the background if the server is not up yet, so a service can
/// start before NATS and report itself not ready until it connects. Credentials come from the
/// URL (`nats://user:password@host`, `nats://token@host`), `NATS_TOKEN` or `NATS_CREDS`; none
/// of them ever appears in a log line or an error.
pub async fn connect(config: &NatsConfig, name: &str) -> anyhow::Result<async_nats::Client> {
    let shown = redact_urls(&config.url);
    let servers = config
        .url
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| anyhow::anyhow!("NATS_URL is not a list of NATS URLs: {shown}"))?;
    anyhow::ensure!(!servers.is_empty(), "NATS_URL names no server");
    let mut options = async_nats::ConnectOptions::new();
    if let Some(server) = servers.iter().find(|s| s.has_user_pass()) {
        let user = server.username().unwrap_or_default().to_owned();
        options = match server.password() {
            Some(pass) => options.user_and_password(user, pass.to_owned()),
            None => options.token(user),
        };
    }
    // The client logs the addresses it connects to: hand it none that holds a credential.
    let servers = servers
        .iter()
        .map(|s| {
            redact_urls(s.clone().into_inner().as_ref())
                .replace("[redacted]@", "")
                .parse::<async_nats::ServerAddr>()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| anyhow::anyhow!("NATS_URL is not a list of NATS URLs: {shown}"))?;
    if let Some(token) = &config.token {
        options = options.token(token.expose().to_owned());
    }
    if let Some(path) = &config.creds {
        options = options
            .credentials_file(path)
            .await
            .with_context(|| format!("reading NATS_CREDS {}", path.display()))?;
    }
    options
        .name(name)
        // Replies and pull deliveries come to this service's own inboxes: its NATS user may
        // subscribe to `_INBOX_{name}.>` and no other service's (deploy/nats/authorization.conf).
        .custom_inbox_prefix(inbox_prefix(name))
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
        .map_err(|e| {
            anyhow::anyhow!(
                "connecting to NATS at {shown}: {}",
                redact_urls(&e.to_string())
            )
        })
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
    if upgrade_in_progress(js, config).await {
        anyhow::bail!(
            "an upgrade of {} is under way (`showpass migrate --upgrade-events-stream`): waiting \
             for it to finish",
            config.events_stream()
        );
    }
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
    let bucket = config.bindings_bucket();
    if js.get_key_value(&bucket).await.is_err() {
        // The key-value bucket's own stream, as `create_key_value` would make it: that call
        // first reads the account's JetStream info, which this client cannot parse from
        // nats-server 2.9.
        let kv = stream::Config {
            name: format!("KV_{bucket}"),
            description: Some("Each signed id's first organization and transaction".into()),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_message_size: 1024,
            storage: stream::StorageType::File,
            num_replicas: config.replicas,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        };
        match js.create_stream(kv).await {
            Ok(_) => {}
            // Another replica created it meanwhile.
            Err(_) if js.get_key_value(&bucket).await.is_ok() => {}
            Err(e) => return Err(e).with_context(|| format!("creating key-value bucket {bucket}")),
        }
    }
    tracing::info!(bucket = %bucket, "bindings ready");
    Ok(())
}

/// What an upgrade of the events stream did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UpgradeReport {
    /// Messages carried over into the upgraded stream.
    pub messages: u64,
    /// Whether the stream's sequence numbers changed (the old stream had gaps, or the copy
    /// dropped a message), so the read models must be rebuilt from it.
    pub resequenced: bool,
    /// Messages of the old stream the upgraded one lacks (JetStream's de-duplication of a
    /// resend copied within the shortest window of its original). The copy is then kept, as
    /// `{NAME}_UPGRADE`, for an operator to look at: nothing is deleted.
    pub missing: u64,
}

/// The description of the copy while an upgrade runs; `resequenced` is written into it, so a
/// run that resumes after a crash still knows.
fn copy_description(name: &str, resequenced: bool) -> String {
    format!("{name} while it is upgraded (in progress; resequenced={resequenced})")
}

/// Whether an upgrade of the events stream is under way (its copy exists and is not a kept
/// one): services wait for it to finish rather than touch the stream meanwhile.
async fn upgrade_in_progress(js: &jetstream::Context, config: &NatsConfig) -> bool {
    match js
        .get_stream(format!("{}_UPGRADE", config.events_stream()))
        .await
    {
        Ok(mut copy) => copy.info().await.is_ok_and(|i| {
            i.config
                .description
                .as_deref()
                .is_some_and(|d| d.contains("(in progress"))
        }),
        Err(_) => false,
    }
}

/// Gives an events stream of the earlier shape the current one on a server that cannot
/// change it in place: its messages are copied (JetStream sources) into `{NAME}_UPGRADE`,
/// the stream is created again with the current configuration, the messages are copied back,
/// and the copy removed once the new stream holds every message (kept otherwise). Each step
/// can be run again after a crash. Run it with every service stopped: the old stream is
/// sealed first, and services refuse to touch the stream while the copy says it is in use.
pub async fn upgrade_events_stream(
    js: &jetstream::Context,
    config: &NatsConfig,
) -> anyhow::Result<UpgradeReport> {
    let name = config.events_stream();
    let copy = format!("{name}_UPGRADE");
    let mut report = UpgradeReport::default();
    if let Ok(mut old) = js.get_stream(&name).await {
        let info = old.info().await?.clone();
        if info.config.republish.is_some()
            && info.config.sources.as_deref().is_none_or(<[_]>::is_empty)
        {
            if !upgrade_in_progress(js, config).await {
                ensure_streams(js, config).await?;
                return Ok(report);
            }
        } else if info.config.republish.is_none() {
            // 1. Seal the old stream and copy it aside.
            let state = info.state.clone();
            report.resequenced = state.first_sequence > 1
                || state.deleted_count.unwrap_or(0) > 0
                || state.last_sequence != state.messages;
            if !info.config.sealed {
                let mut sealed = info.config.clone();
                sealed.sealed = true;
                js.update_stream(sealed)
                    .await
                    .with_context(|| format!("sealing {name}"))?;
            }
            js.get_or_create_stream(stream::Config {
                name: copy.clone(),
                description: Some(copy_description(&name, report.resequenced)),
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
            let copied = wait_for_source(js, &copy).await?;
            if copied != state.messages {
                anyhow::bail!(
                    "copying {name} aside gave {copied} of its {} messages; nothing was deleted \
                     ({name} is sealed, {copy} holds the copy): look at both before going on",
                    state.messages
                );
            }
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
    // Resuming after a crash: what the first run found is in the description; if it cannot
    // be read, assume the worst.
    report.resequenced |= copy_info
        .config
        .description
        .as_deref()
        .is_none_or(|d| !d.contains("resequenced=false"));
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
    // most resends that Showpass sent long after their original; one it drops anyway is
    // counted, and then the copy is kept.
    filling.duplicate_window = SHORTEST_WINDOW;
    match js.get_stream(&name).await {
        Ok(_) => {
            js.update_stream(filling).await?;
        }
        Err(_) => {
            js.create_stream(filling).await?;
        }
    }
    report.messages = wait_for_source(js, &name).await?;
    report.missing = expected.saturating_sub(report.messages);
    report.resequenced |= report.missing > 0;
    js.update_stream(final_config)
        .await
        .with_context(|| format!("finishing {name}"))?;
    if report.missing == 0 {
        js.delete_stream(&copy)
            .await
            .with_context(|| format!("removing {copy}"))?;
    } else {
        let mut kept = copy_info.config.clone();
        kept.sources = None;
        kept.description = Some(format!(
            "{name} before its upgrade, kept: {} of its messages were not carried over",
            report.missing
        ));
        js.update_stream(kept)
            .await
            .with_context(|| format!("keeping {copy}"))?;
    }
    tracing::info!(stream = %name, messages = report.messages, missing = report.missing, resequenced = report.resequenced, "events stream upgraded");
    Ok(report)
}

/// The shortest de-duplication window JetStream accepts.
const SHORTEST_WINDOW: Duration = Duration::from_millis(100);

/// Waits until a stream filled from a source has caught up with it: every source reports no
/// lag, and the stream holds as many messages two seconds later. The source is sealed or
/// detached, so nothing arrives there meanwhile. Answers how many messages the stream holds.
async fn wait_for_source(js: &jetstream::Context, name: &str) -> anyhow::Result<u64> {
    let mut last = (u64::MAX, std::time::Instant::now());
    loop {
        let mut s = js.get_stream(name).await?;
        let info = s.info().await?.clone();
        let n = info.state.messages;
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
            last.1.elapsed() < Duration::from_secs(120),
            "copying into {name} stalled at {n} messages"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until both streams and the bindings bucket exist (made by `showpass migrate`).
pub async fn streams_exist(js: &jetstream::Context, config: &NatsConfig) -> anyhow::Result<()> {
    for name in [
        config.events_stream(),
        config.deliveries_stream(),
        format!("KV_{}", config.bindings_bucket()),
    ] {
        js.get_stream(&name)
            .await
            .with_context(|| format!("stream {name} (run `showpass migrate`)"))?;
    }
    Ok(())
}

/// Like [`ensure_streams`] (or, when this service does not provision, [`streams_exist`]),
/// retrying every second until it succeeds or `cancel` fires.
pub async fn ensure_streams_until_ready(
    js: &jetstream::Context,
    config: &NatsConfig,
    cancel: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let ready = if config.provision {
            ensure_streams(js, config).await
        } else {
            streams_exist(js, config).await
        };
        match ready {
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

    /// Issue 12: credentials in `NATS_URL` never reach a log line or an error.
    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(
            redact_urls("nats://ingest:s3cret@nats:4222, tls://tok3n@n2:4222,nats://n3:4222"),
            "nats://[redacted]@nats:4222,tls://[redacted]@n2:4222,nats://n3:4222"
        );
        assert_eq!(
            redact_urls("nats://api:a/b?c#d@e@nats:4222"),
            "nats://[redacted]@nats:4222",
            "a password with URL delimiters in it"
        );
        let mut c = NatsConfig::local("p");
        c.url = "nats://u:hunter2@h:4222".into();
        c.token = Some(crate::Secret::new("t0ken"));
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("t0ken"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn a_bad_nats_url_is_named_without_its_password() {
        let mut c = NatsConfig::local("p");
        c.url = "nats://u:hunter2@[not a host".into();
        let err = connect(&c, "t").await.unwrap_err();
        assert!(!format!("{err:#}").contains("hunter2"), "{err:#}");
    }

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
