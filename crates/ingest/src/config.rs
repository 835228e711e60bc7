//! Typed ingest configuration.

use std::collections::BTreeMap;
use std::time::Duration;

use showpass_core::Secret;
use showpass_core::nats::NatsConfig;

use crate::Allowlist;

/// The endpoint `POST /webhooks/showpass` serves.
pub const DEFAULT_ENDPOINT: &str = "default";

/// Everything ingest needs to run.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub nats: NatsConfig,
    pub endpoints: Endpoints,
    /// Largest body accepted; larger ones get 413.
    pub body_limit: usize,
    /// How long to wait for JetStream's ack before answering 503.
    pub publish_timeout: Duration,
    /// How long a whole request may take, reading its body included.
    pub request_timeout: Duration,
    /// Source addresses allowed to deliver; `None` allows all.
    pub allowlist: Option<Allowlist>,
    /// How many bytes of a rejected body the delivery log keeps.
    pub rejected_body_prefix: usize,
}

impl IngestConfig {
    /// A configuration for tests and local runs: one default endpoint with `secret`.
    pub fn local(nats: NatsConfig, secret: &str) -> Self {
        Self {
            nats,
            endpoints: Endpoints::parse(Some(secret), None).expect("a non-empty secret"),
            body_limit: 1024 * 1024,
            publish_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            allowlist: None,
            rejected_body_prefix: 256,
        }
    }
}

/// Why the configuration cannot be used. Messages name the variable, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("no webhook secret configured: set SHOWPASS_WEBHOOK_SECRET or SHOWPASS_ENDPOINTS")]
    NoSecret,
    #[error("SHOWPASS_ENDPOINTS entry {0} is not NAME=SECRET[|SECRET...]")]
    BadEndpointEntry(usize),
    #[error("SHOWPASS_ENDPOINTS endpoint name {0:?} must be 1-64 letters, digits, '_' or '-'")]
    BadEndpointName(String),
    #[error("endpoint {0:?} is configured twice")]
    DuplicateEndpoint(String),
    #[error("{0} has an empty secret")]
    EmptySecret(String),
    #[error("{var}: {value:?} is neither a CIDR, an address nor the preset `showpass`")]
    BadNetwork { var: &'static str, value: String },
}

/// Named endpoints, each with one or more secrets (two during a rotation).
#[derive(Debug, Clone, Default)]
pub struct Endpoints(BTreeMap<String, Vec<Secret>>);

impl Endpoints {
    /// Builds the endpoints from `SHOWPASS_WEBHOOK_SECRET` (the default endpoint's secrets,
    /// comma-separated) and `SHOWPASS_ENDPOINTS` (`name=secret|newsecret,other=secret`).
    pub fn parse(default: Option<&str>, named: Option<&str>) -> Result<Self, ConfigError> {
        let mut map = BTreeMap::new();
        if let Some(d) = default.filter(|d| !d.trim().is_empty()) {
            map.insert(
                DEFAULT_ENDPOINT.to_owned(),
                secrets(d.split(','), "SHOWPASS_WEBHOOK_SECRET")?,
            );
        }
        for (i, entry) in named
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let (name, list) = entry
                .split_once('=')
                .ok_or(ConfigError::BadEndpointEntry(i + 1))?;
            let name = name.trim();
            if !is_endpoint_name(name) {
                return Err(ConfigError::BadEndpointName(name.to_owned()));
            }
            let list = secrets(list.split('|'), &format!("endpoint {name:?}"))?;
            if map.insert(name.to_owned(), list).is_some() {
                return Err(ConfigError::DuplicateEndpoint(name.to_owned()));
            }
        }
        if map.is_empty() {
            return Err(ConfigError::NoSecret);
        }
        Ok(Self(map))
    }

    /// The secrets of an endpoint, if it exists.
    pub fn secrets(&self, name: &str) -> Option<&[Secret]> {
        self.0.get(name).map(Vec::as_slice)
    }

    /// Endpoint names, for logs at start-up.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

fn secrets<'a>(
    parts: impl Iterator<Item = &'a str>,
    what: &str,
) -> Result<Vec<Secret>, ConfigError> {
    parts
        .map(str::trim)
        .map(|s| {
            if s.is_empty() {
                Err(ConfigError::EmptySecret(what.to_owned()))
            } else {
                Ok(Secret::new(s))
            }
        })
        .collect()
}

/// Endpoint names are one path segment: 1-64 of `[A-Za-z0-9_-]`.
pub(crate) fn is_endpoint_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_secret_and_named_endpoints_with_rotations_parse() {
        let e = Endpoints::parse(Some("s0"), Some("boxoffice=s1, venue2=s2|s2new")).unwrap();
        assert_eq!(
            e.names().collect::<Vec<_>>(),
            ["boxoffice", "default", "venue2"]
        );
        let venue = e.secrets("venue2").unwrap();
        assert_eq!(
            venue.iter().map(Secret::expose).collect::<Vec<_>>(),
            ["s2", "s2new"]
        );
        let default = e.secrets(DEFAULT_ENDPOINT).unwrap();
        assert_eq!(default[0].expose(), "s0");
    }

    #[test]
    fn comma_separated_default_secrets_are_a_rotation() {
        let e = Endpoints::parse(Some("old,new"), None).unwrap();
        assert_eq!(e.secrets(DEFAULT_ENDPOINT).unwrap().len(), 2);
    }

    #[test]
    fn no_secret_at_all_is_refused() {
        assert_eq!(
            Endpoints::parse(None, None).unwrap_err(),
            ConfigError::NoSecret
        );
        assert_eq!(
            Endpoints::parse(Some(" "), Some("")).unwrap_err(),
            ConfigError::NoSecret
        );
    }

    #[test]
    fn malformed_endpoint_lists_are_refused_without_echoing_secrets() {
        for (named, want) in [
            ("nosecret", ConfigError::BadEndpointEntry(1)),
            (
                "a=s,bad name=s",
                ConfigError::BadEndpointName("bad name".into()),
            ),
            ("a=s,a=t", ConfigError::DuplicateEndpoint("a".into())),
            ("a=s||t", ConfigError::EmptySecret("endpoint \"a\"".into())),
        ] {
            let err = Endpoints::parse(None, Some(named)).unwrap_err();
            assert_eq!(err, want);
            assert!(!err.to_string().contains("=s"));
        }
    }
}
