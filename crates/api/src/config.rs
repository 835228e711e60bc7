//! The api's typed configuration.

use std::time::Duration;

use showpass_core::Secret;
use showpass_core::nats::NatsConfig;
use showpass_store::DatabaseUrl;

use crate::auth::ApiKey;

/// Everything `showpass api` needs.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub database_url: DatabaseUrl,
    /// JetStream, for delivery payloads and replay. Without it those answer 503.
    pub nats: Option<NatsConfig>,
    /// Bearer keys accepted on `/v1`, each with its role.
    pub keys: Vec<ApiKey>,
    /// Serve `/v1` without keys (local experiments only). Must be asked for explicitly.
    pub insecure: bool,
    /// Origins allowed by CORS: empty for none, `*` for any.
    pub cors_origins: Vec<String>,
    /// Page size when `limit` is not given, and the largest allowed.
    pub default_limit: u32,
    pub max_limit: u32,
    /// Largest request body (only replay takes one, and ignores it).
    pub body_limit: usize,
    /// How long one request may take (CSV exports excepted: they stream).
    pub request_timeout: Duration,
    /// PostgreSQL connections.
    pub pool_size: u32,
    /// Signs pagination cursors, so a forged one is refused. Unset: derived from the API keys
    /// (stable across restarts and replicas that share them).
    pub cursor_secret: Option<Secret>,
    /// CSV exports run on connections of their own, at most this many, each statement at most
    /// `export_timeout`.
    pub export_connections: u32,
    pub export_timeout: Duration,
    /// Header-read timeout and connection cap of the listener.
    pub http: showpass_core::http::Limits,
    /// Where `/metrics` is served.
    pub metrics: showpass_core::http::MetricsAt,
    /// How often the health gauges (`showpass_gaps`, ...) are computed again.
    pub health_refresh: Duration,
    /// How long a console login lasts.
    pub session_ttl: Duration,
}

/// A configuration that cannot run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error(
        "no API key: set API_KEYS (comma-separated bearer tokens), or start with --insecure \
         (API_INSECURE=true) to serve /v1 without authentication"
    )]
    NoKeys,
    #[error("page limits must satisfy 1 <= default ({default}) <= max ({max}) <= 10000")]
    Limits { default: u32, max: u32 },
}

impl ApiConfig {
    /// A local configuration: the given database and NATS, one key.
    pub fn local(database_url: DatabaseUrl, nats: Option<NatsConfig>, key: &str) -> Self {
        Self {
            database_url,
            nats,
            keys: vec![ApiKey::parse(key)],
            insecure: false,
            cors_origins: Vec::new(),
            default_limit: 50,
            max_limit: 500,
            body_limit: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            pool_size: 16,
            cursor_secret: None,
            export_connections: 2,
            export_timeout: Duration::from_secs(600),
            http: showpass_core::http::Limits::default(),
            metrics: showpass_core::http::MetricsAt::Public,
            health_refresh: Duration::from_secs(15),
            session_ttl: Duration::from_secs(8 * 3600),
        }
    }

    /// Parses `API_KEYS`: comma-separated `key` or `key:admin`, blanks ignored.
    pub fn parse_keys(list: &str) -> Vec<ApiKey> {
        list.split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(ApiKey::parse)
            .collect()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.keys.is_empty() && !self.insecure {
            return Err(ConfigError::NoKeys);
        }
        if !(1 <= self.default_limit
            && self.default_limit <= self.max_limit
            && self.max_limit <= 10_000)
        {
            return Err(ConfigError::Limits {
                default: self.default_limit,
                max: self.max_limit,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    #[test]
    fn the_api_refuses_to_start_without_a_key_unless_told_to_run_insecure() {
        let mut config = ApiConfig::local(
            DatabaseUrl::parse("postgres://x/y").unwrap(),
            None,
            "0123456789abcdef",
        );
        config.keys.clear();
        assert_eq!(config.validate(), Err(ConfigError::NoKeys));
        config.insecure = true;
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn keys_are_comma_separated_and_trimmed() {
        let keys = ApiConfig::parse_keys(" a , ,b:admin,");
        assert_eq!(
            keys.iter()
                .map(|k| (k.key.expose(), k.role))
                .collect::<Vec<_>>(),
            [("a", Role::Read), ("b", Role::Admin)]
        );
    }
}
