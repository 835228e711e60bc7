//! Command-line and environment configuration, validated into each crate's typed config.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use showpass_api::ApiConfig;
use showpass_core::nats::{NatsConfig, NatsUrl, parse_duration};
use showpass_ingest::{Allowlist, Endpoints, IngestConfig};
use showpass_projector::ProjectorConfig;
use showpass_store::DatabaseUrl;

/// Where NATS is and how the streams are shaped.
#[derive(Args, Debug, Clone)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(
        long = "nats-url",
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        hide_env_values = true
    )]
    // Parsed in `config`, not by clap: clap's error would print the value, password and all.
    pub nats_url: String,
    /// First subject token; stream names derive from it (`showpass` gives SHOWPASS_EVENTS).
    #[arg(
        long = "nats-subject-prefix",
        env = "NATS_SUBJECT_PREFIX",
        default_value = "showpass"
    )]
    pub subject_prefix: String,
    /// Stream replicas: 1 on one server, 3 in a cluster.
    #[arg(
        long = "nats-stream-replicas",
        env = "NATS_STREAM_REPLICAS",
        default_value_t = 1
    )]
    pub stream_replicas: usize,
    /// How long JetStream remembers an idempotency key to drop redeliveries.
    #[arg(long = "nats-duplicate-window", env = "NATS_DUPLICATE_WINDOW", default_value = "24h", value_parser = parse_duration)]
    pub duplicate_window: Duration,
    /// Age limit of the events stream (0: keep forever; it is the event store).
    #[arg(long = "nats-events-max-age", env = "NATS_EVENTS_MAX_AGE", default_value = "0", value_parser = parse_duration)]
    pub events_max_age: Duration,
    /// Size limit of the events stream in bytes (unset: unlimited). When full, new
    /// deliveries are refused with 503 rather than old events dropped.
    #[arg(long = "nats-events-max-bytes", env = "NATS_EVENTS_MAX_BYTES")]
    pub events_max_bytes: Option<i64>,
    /// Age limit of the deliveries stream (duplicates and rejections).
    #[arg(long = "nats-deliveries-max-age", env = "NATS_DELIVERIES_MAX_AGE", default_value = "30days", value_parser = parse_duration)]
    pub deliveries_max_age: Duration,
    /// Size limit of the deliveries stream in bytes; the oldest records go first.
    #[arg(long = "nats-deliveries-max-bytes", env = "NATS_DELIVERIES_MAX_BYTES", default_value_t = 1 << 30)]
    pub deliveries_max_bytes: i64,
    /// A NATS credentials file (JWT and NKey seed).
    #[arg(long = "nats-creds", env = "NATS_CREDS")]
    pub creds: Option<std::path::PathBuf>,
    /// A NATS token (or put `user:password@` or `token@` in NATS_URL).
    #[arg(long = "nats-token", env = "NATS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Create and update the streams at start. `false` where NATS permissions leave that to
    /// `showpass migrate`: the service then waits for them to exist.
    #[arg(long = "nats-provision", env = "NATS_PROVISION", default_value_t = true, action = clap::ArgAction::Set)]
    pub provision: bool,
}

impl NatsArgs {
    pub fn config(&self) -> anyhow::Result<NatsConfig> {
        let config = NatsConfig {
            url: NatsUrl::parse(&self.nats_url)?,
            prefix: self.subject_prefix.clone(),
            replicas: self.stream_replicas,
            duplicate_window: self.duplicate_window,
            events_max_age: self.events_max_age,
            events_max_bytes: self.events_max_bytes,
            deliveries_max_age: self.deliveries_max_age,
            deliveries_max_bytes: self.deliveries_max_bytes,
            provision: self.provision,
            creds: self.creds.clone(),
            token: self.token.as_deref().map(showpass_core::Secret::new),
        };
        anyhow::ensure!(
            config.deliveries_max_bytes > 0,
            "NATS_DELIVERIES_MAX_BYTES must be positive"
        );
        config.validate()?;
        Ok(config)
    }
}

/// `showpass ingest`.
#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Listen address.
    #[arg(
        long = "ingest-addr",
        env = "INGEST_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub addr: SocketAddr,
    /// Secret(s) of the default endpoint, comma-separated during a rotation.
    #[arg(
        long = "showpass-webhook-secret",
        env = "SHOWPASS_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub webhook_secret: Option<String>,
    /// Organizations the default endpoint accepts, comma-separated (unset: any, with a warning).
    #[arg(long = "showpass-webhook-orgs", env = "SHOWPASS_WEBHOOK_ORGS")]
    pub webhook_orgs: Option<String>,
    /// Named endpoints: `name=secret[|newsecret][@org[+org...]],other=secret`.
    #[arg(
        long = "showpass-endpoints",
        env = "SHOWPASS_ENDPOINTS",
        hide_env_values = true
    )]
    pub endpoints: Option<String>,
    /// Largest body accepted, in bytes.
    #[arg(long = "ingest-body-limit", env = "INGEST_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub body_limit: usize,
    /// How long to wait for JetStream's ack before answering 503.
    #[arg(long = "ingest-publish-timeout", env = "INGEST_PUBLISH_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub publish_timeout: Duration,
    /// How long one request may take, reading its body included.
    #[arg(long = "ingest-request-timeout", env = "INGEST_REQUEST_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Allowed source addresses: CIDRs, addresses, or `showpass` for Showpass's published
    /// addresses, comma-separated. Unset: everyone may deliver.
    #[arg(long = "ingest-allowlist", env = "INGEST_ALLOWLIST")]
    pub allowlist: Option<String>,
    /// Proxies whose X-Forwarded-For is believed (CIDRs or addresses, comma-separated).
    #[arg(long = "ingest-trusted-proxies", env = "INGEST_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// How many bytes of a rejected body the delivery log keeps.
    #[arg(
        long = "ingest-rejected-body-prefix",
        env = "INGEST_REJECTED_BODY_PREFIX",
        default_value_t = 256
    )]
    pub rejected_body_prefix: usize,
    /// Rejections recorded in the delivery log per source address a minute (past it: counted).
    #[arg(
        long = "ingest-rejection-records-per-minute",
        env = "INGEST_REJECTION_RECORDS_PER_MINUTE",
        default_value_t = 60
    )]
    pub rejection_records_per_minute: u32,
    /// Rejections recorded in the delivery log a minute from all sources together.
    #[arg(
        long = "ingest-rejection-records-total-per-minute",
        env = "INGEST_REJECTION_RECORDS_TOTAL_PER_MINUTE",
        default_value_t = 1000
    )]
    pub rejection_records_total_per_minute: u32,
    /// Memory for request bodies being read at once, in bytes (at least 8 × the body limit:
    /// one source may hold an eighth of it).
    #[arg(long = "ingest-body-budget", env = "INGEST_BODY_BUDGET", default_value_t = 64 * 1024 * 1024)]
    pub body_budget: usize,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// The limits of a public HTTP listener, and where `/metrics` goes.
#[derive(Args, Debug, Clone)]
pub struct HttpArgs {
    /// How long a client may take to send a request's headers.
    #[arg(long = "http-header-read-timeout", env = "HTTP_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// Most connections open at once on each listener.
    #[arg(
        long = "http-max-connections",
        env = "HTTP_MAX_CONNECTIONS",
        default_value_t = 10_000
    )]
    pub max_connections: usize,
    /// Serve `/metrics` on this address only, not on the public listeners.
    #[arg(long = "metrics-addr", env = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

impl HttpArgs {
    pub fn limits(&self) -> anyhow::Result<showpass_core::http::Limits> {
        anyhow::ensure!(
            !self.header_read_timeout.is_zero(),
            "HTTP_HEADER_READ_TIMEOUT must be positive"
        );
        anyhow::ensure!(
            self.max_connections > 0,
            "HTTP_MAX_CONNECTIONS must be positive"
        );
        Ok(showpass_core::http::Limits {
            header_read_timeout: self.header_read_timeout,
            max_connections: self.max_connections,
            ..showpass_core::http::Limits::default()
        })
    }
}

impl IngestArgs {
    pub fn load(self) -> anyhow::Result<(IngestConfig, SocketAddr)> {
        let endpoints = Endpoints::parse_with_orgs(
            self.webhook_secret.as_deref(),
            self.webhook_orgs.as_deref(),
            self.endpoints.as_deref(),
        )?;
        let allowlist = match (&self.allowlist, &self.trusted_proxies) {
            (None, None) => None,
            (a, p) => Some(Allowlist::parse(
                a.as_deref().unwrap_or_default(),
                p.as_deref(),
            )?),
        };
        anyhow::ensure!(self.body_limit > 0, "INGEST_BODY_LIMIT must be positive");
        anyhow::ensure!(
            !self.publish_timeout.is_zero() && self.publish_timeout < self.request_timeout,
            "INGEST_PUBLISH_TIMEOUT must be positive and shorter than INGEST_REQUEST_TIMEOUT"
        );
        let config = IngestConfig {
            nats: self.nats.config()?,
            endpoints,
            body_limit: self.body_limit,
            publish_timeout: self.publish_timeout,
            request_timeout: self.request_timeout,
            allowlist,
            rejected_body_prefix: self.rejected_body_prefix,
            rejection_records_per_minute: self.rejection_records_per_minute,
            rejection_records_total_per_minute: self.rejection_records_total_per_minute,
            body_budget: self.body_budget.max(self.body_limit.saturating_mul(8)),
            log_queue_bytes: 16 * 1024 * 1024,
            http: self.http.limits()?,
            metrics: showpass_core::http::MetricsAt::Public,
        };
        Ok((config, self.addr))
    }
}

/// The read-model database.
#[derive(Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// PostgreSQL URL of the read models (created by `migrate` when missing).
    #[arg(long = "database-url", env = "DATABASE_URL", default_value = showpass_store::DEFAULT_DATABASE_URL, hide_env_values = true)]
    // Parsed by `url`, not by clap: clap's error would print the value, password and all.
    pub database_url: String,
}

impl DatabaseArgs {
    /// `DATABASE_URL`, parsed; the error never shows the URL.
    pub fn url(&self) -> anyhow::Result<DatabaseUrl> {
        Ok(DatabaseUrl::parse(&self.database_url)?)
    }
}

/// The projector's own settings.
#[derive(Args, Debug, Clone)]
pub struct ProjectorOnlyArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Most events applied in one transaction.
    #[arg(
        long = "projector-batch-size",
        env = "PROJECTOR_BATCH_SIZE",
        default_value_t = 1_000
    )]
    pub batch_size: usize,
    /// How many PostgreSQL connections apply a batch's events at once (1 to 64).
    #[arg(
        long = "projector-parallelism",
        env = "PROJECTOR_PARALLELISM",
        default_value_t = showpass_projector::DEFAULT_PARALLELISM
    )]
    pub parallelism: usize,
    /// How long to wait for more events to fill a batch once one has arrived, while the stream
    /// still holds more (a caught-up projector applies what it has at once).
    #[arg(long = "projector-batch-linger", env = "PROJECTOR_BATCH_LINGER", default_value = "10ms", value_parser = parse_duration)]
    pub batch_linger: Duration,
    /// Most unacknowledged events in flight from JetStream.
    #[arg(
        long = "projector-max-ack-pending",
        env = "PROJECTOR_MAX_ACK_PENDING",
        default_value_t = 20_000
    )]
    pub max_ack_pending: i64,
    /// How long duplicate and rejected deliveries stay in the delivery log (0: for ever).
    #[arg(long = "delivery-log-retention", env = "DELIVERY_LOG_RETENTION", default_value = "30days", value_parser = parse_duration)]
    pub log_retention: Duration,
}

impl ProjectorOnlyArgs {
    pub fn config(&self, nats: NatsConfig) -> anyhow::Result<ProjectorConfig> {
        anyhow::ensure!(
            (1..=50_000).contains(&self.batch_size),
            "PROJECTOR_BATCH_SIZE must be between 1 and 50000"
        );
        anyhow::ensure!(
            (1..=showpass_projector::MAX_PARALLELISM).contains(&self.parallelism),
            "PROJECTOR_PARALLELISM must be between 1 and {}",
            showpass_projector::MAX_PARALLELISM
        );
        anyhow::ensure!(
            self.max_ack_pending > 0,
            "PROJECTOR_MAX_ACK_PENDING must be positive"
        );
        Ok(ProjectorConfig {
            nats,
            database_url: self.database.url()?,
            batch_size: self.batch_size,
            parallelism: self.parallelism,
            batch_linger: self.batch_linger,
            max_ack_pending: self.max_ack_pending,
            standby_poll: Duration::from_millis(500),
            log_retention: self.log_retention,
        })
    }
}

/// `showpass projector` and `showpass rebuild`.
#[derive(Args, Debug)]
pub struct ProjectorArgs {
    #[command(flatten)]
    pub projector: ProjectorOnlyArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
}

impl ProjectorArgs {
    pub fn config(&self) -> anyhow::Result<ProjectorConfig> {
        self.projector.config(self.nats.config()?)
    }
}

/// `showpass erase`.
#[derive(Args, Debug)]
pub struct EraseArgs {
    /// The organization (`showpass_organization_id`).
    #[arg(long)]
    pub org: String,
    /// The customer's e-mail (case and surrounding spaces do not matter).
    #[arg(long)]
    pub email: String,
    #[command(flatten)]
    pub projector: ProjectorArgs,
}

/// The api's own settings.
#[derive(Args, Debug, Clone)]
pub struct ApiOnlyArgs {
    /// Listen address of the api.
    #[arg(long = "api-addr", env = "API_ADDR", default_value = "0.0.0.0:8081")]
    pub api_addr: SocketAddr,
    /// Bearer tokens accepted on /v1, comma-separated.
    #[arg(long = "api-keys", env = "API_KEYS", hide_env_values = true)]
    pub api_keys: Option<String>,
    /// Serve /v1 without keys when API_KEYS is unset (never in production).
    #[arg(long = "insecure", env = "API_INSECURE", default_value_t = false)]
    pub api_insecure: bool,
    /// Origins allowed by CORS, comma-separated (`*` for any; unset for none).
    #[arg(long = "api-cors-origins", env = "API_CORS_ORIGINS")]
    pub api_cors_origins: Option<String>,
    /// Largest page size a client may ask for.
    #[arg(long = "api-max-limit", env = "API_MAX_LIMIT", default_value_t = 500)]
    pub api_max_limit: u32,
    /// How long a request (and each SQL statement) may take before a 503.
    #[arg(long = "api-request-timeout", env = "API_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub api_request_timeout: Duration,
    /// PostgreSQL connections of the api.
    #[arg(long = "api-db-pool", env = "API_DB_POOL", default_value_t = 16)]
    pub api_pool_size: u32,
    /// Signs pagination cursors (unset: derived from API_KEYS).
    #[arg(
        long = "api-cursor-secret",
        env = "API_CURSOR_SECRET",
        hide_env_values = true
    )]
    pub api_cursor_secret: Option<String>,
    /// How long a CSV export's statement may take.
    #[arg(long = "api-export-timeout", env = "API_EXPORT_TIMEOUT", default_value = "10m", value_parser = parse_duration)]
    pub api_export_timeout: Duration,
    /// PostgreSQL connections for CSV exports (at most this many run at once).
    #[arg(
        long = "api-export-connections",
        env = "API_EXPORT_CONNECTIONS",
        default_value_t = 2
    )]
    pub api_export_connections: u32,
    /// How long a console login lasts before the browser is sent back to the login form.
    #[arg(long = "console-session-ttl", env = "CONSOLE_SESSION_TTL", default_value = "8h", value_parser = parse_duration)]
    pub console_session_ttl: Duration,
}

impl ApiOnlyArgs {
    pub fn config(
        &self,
        database: &DatabaseArgs,
        nats: NatsConfig,
        http: &HttpArgs,
    ) -> anyhow::Result<ApiConfig> {
        anyhow::ensure!(self.api_pool_size > 0, "API_DB_POOL must be positive");
        let config = ApiConfig {
            database_url: database.url()?,
            nats: Some(nats),
            keys: ApiConfig::parse_keys(self.api_keys.as_deref().unwrap_or_default()),
            insecure: self.api_insecure,
            cors_origins: self
                .api_cors_origins
                .as_deref()
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(str::to_owned)
                .collect(),
            default_limit: 50.min(self.api_max_limit.max(1)),
            max_limit: self.api_max_limit,
            body_limit: 64 * 1024,
            request_timeout: self.api_request_timeout,
            pool_size: self.api_pool_size,
            cursor_secret: self
                .api_cursor_secret
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(showpass_core::Secret::new),
            export_connections: self.api_export_connections.max(1),
            export_timeout: self.api_export_timeout,
            http: http.limits()?,
            metrics: showpass_core::http::MetricsAt::Public,
            health_refresh: std::time::Duration::from_secs(15),
            session_ttl: self.console_session_ttl,
        };
        config.validate()?;
        Ok(config)
    }
}

/// `showpass api`.
#[derive(Args, Debug)]
pub struct ApiArgs {
    #[command(flatten)]
    pub api: ApiOnlyArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// `showpass all`: ingest, projector and api in one process.
#[derive(Args, Debug)]
pub struct AllArgs {
    #[command(flatten)]
    pub ingest: IngestArgs,
    #[command(flatten)]
    pub projector: ProjectorOnlyArgs,
    #[command(flatten)]
    pub api: ApiOnlyArgs,
}
