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

mod streams;
mod upgrade;
mod url;

pub use streams::*;
pub use upgrade::*;
pub use url::{BadNatsUrl, NatsUrl, redact_urls};

/// Where NATS is and how the streams are shaped.
#[derive(Clone)]
pub struct NatsConfig {
    /// Server URLs, comma-separated; a URL may carry `user:password@` or `token@`. It shows
    /// itself without them.
    pub url: NatsUrl,
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
            .field("url", &self.url)
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

impl NatsConfig {
    /// Defaults for a local run against `nats://127.0.0.1:4222`.
    pub fn local(prefix: impl Into<String>) -> Self {
        Self {
            url: NatsUrl::parse("nats://127.0.0.1:4222").expect("a constant URL"),
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
            subjects: vec![
                subject::stored_events_filter(&self.prefix),
                subject::erased_events_filter(&self.prefix),
            ],
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
            subjects: vec![
                subject::deliveries_filter(&self.prefix),
                subject::erased_deliveries_filter(&self.prefix),
            ],
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
    let shown = &config.url;
    let mut options = config.url.authenticate(async_nats::ConnectOptions::new());
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
        .connect(config.url.servers())
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
    fn a_configs_debug_shows_no_credential() {
        let mut c = NatsConfig::local("p");
        c.url = "nats://u:hunter2@h:4222".parse().unwrap();
        c.token = Some(crate::Secret::new("t0ken"));
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("t0ken"),
            "{shown}"
        );
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
