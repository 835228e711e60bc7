//! Typed ingest configuration.

use std::collections::BTreeMap;
use std::time::Duration;

use showpass_core::Secret;
use showpass_core::nats::NatsConfig;

use crate::Allowlist;

/// The endpoint `POST /webhooks/showpass` serves.
pub use showpass_payload::vocab::DEFAULT_ENDPOINT;

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
    /// Rejections recorded per source address a minute; past it they are only counted.
    pub rejection_records_per_minute: u32,
    /// Rejections recorded a minute from all sources together.
    pub rejection_records_total_per_minute: u32,
    /// Memory for request bodies being read at once, in bytes (one source holds an eighth).
    pub body_budget: usize,
    /// Bytes of delivery-log records waiting for JetStream, at most.
    pub log_queue_bytes: usize,
    /// Header-read timeout and connection cap of the listener.
    pub http: showpass_core::http::Limits,
    /// Where `/metrics` is served.
    pub metrics: showpass_core::http::MetricsAt,
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
            rejection_records_per_minute: 60,
            rejection_records_total_per_minute: 1000,
            body_budget: 64 * 1024 * 1024,
            log_queue_bytes: 16 * 1024 * 1024,
            http: showpass_core::http::Limits::default(),
            metrics: showpass_core::http::MetricsAt::Public,
        }
    }
}

/// Why the configuration cannot be used. Messages name the variable, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("no webhook secret configured: set SHOWPASS_WEBHOOK_SECRET or SHOWPASS_ENDPOINTS")]
    NoSecret,
    #[error("SHOWPASS_ENDPOINTS entry {0} is not NAME=SECRET[|SECRET...][@ORG[+ORG...]]")]
    BadEndpointEntry(usize),
    #[error("SHOWPASS_ENDPOINTS endpoint name {0:?} must be 1-64 letters, digits, '_' or '-'")]
    BadEndpointName(String),
    #[error("endpoint {0:?} is configured twice")]
    DuplicateEndpoint(String),
    #[error("{0} has an empty secret")]
    EmptySecret(String),
    #[error("{var}: {value:?} is neither a CIDR, an address nor the preset `showpass`")]
    BadNetwork { var: &'static str, value: String },
    #[error("{what}: {org:?} is not an organization id (1-20 digits)")]
    BadOrg { what: String, org: String },
    #[error(
        "SHOWPASS_WEBHOOK_ORGS is set but the default endpoint has no secret (SHOWPASS_WEBHOOK_SECRET)"
    )]
    OrgsWithoutSecret,
}

/// One endpoint: its secrets (two during a rotation), and the organizations it may deliver
/// for (`None`: any).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub secrets: Vec<Secret>,
    pub orgs: Option<Vec<String>>,
}

impl Endpoint {
    /// Whether a verified delivery for `org` may come through this endpoint.
    pub fn allows_org(&self, org: Option<&str>) -> bool {
        match (&self.orgs, org) {
            (None, _) => true,
            (Some(list), Some(org)) => list.iter().any(|o| o == org),
            (Some(_), None) => false,
        }
    }
}

/// Named endpoints.
#[derive(Debug, Clone, Default)]
pub struct Endpoints(BTreeMap<String, Endpoint>);

impl Endpoints {
    /// Builds the endpoints from `SHOWPASS_WEBHOOK_SECRET` (the default endpoint's secrets,
    /// comma-separated), `SHOWPASS_WEBHOOK_ORGS` (the organizations it accepts, comma-separated)
    /// and `SHOWPASS_ENDPOINTS` (`name=secret|newsecret@20+31,other=secret`).
    pub fn parse(default: Option<&str>, named: Option<&str>) -> Result<Self, ConfigError> {
        Self::parse_with_orgs(default, None, named)
    }

    /// [`Endpoints::parse`] with the default endpoint's organizations.
    pub fn parse_with_orgs(
        default: Option<&str>,
        default_orgs: Option<&str>,
        named: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let mut map = BTreeMap::new();
        let default_orgs = default_orgs
            .filter(|o| !o.trim().is_empty())
            .map(|o| orgs(o.split(','), "SHOWPASS_WEBHOOK_ORGS"))
            .transpose()?;
        if let Some(d) = default.filter(|d| !d.trim().is_empty()) {
            map.insert(
                DEFAULT_ENDPOINT.to_owned(),
                Endpoint {
                    secrets: secrets(d.split(','), "SHOWPASS_WEBHOOK_SECRET")?,
                    orgs: default_orgs,
                },
            );
        } else if default_orgs.is_some() {
            return Err(ConfigError::OrgsWithoutSecret);
        }
        for (i, entry) in named
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let (name, rest) = entry
                .split_once('=')
                .ok_or(ConfigError::BadEndpointEntry(i + 1))?;
            let name = name.trim();
            if !is_endpoint_name(name) {
                return Err(ConfigError::BadEndpointName(name.to_owned()));
            }
            let what = format!("endpoint {name:?}");
            // `@20+31` binds the endpoint to organizations: the part after the last `@`,
            // when it reads as a list of organization ids.
            let (list, bound) = match rest.rsplit_once('@') {
                Some((list, o)) if !o.is_empty() && o.split('+').all(is_org) => {
                    (list, Some(orgs(o.split('+'), &what)?))
                }
                _ => (rest, None),
            };
            let endpoint = Endpoint {
                secrets: secrets(list.split('|'), &what)?,
                orgs: bound,
            };
            if map.insert(name.to_owned(), endpoint).is_some() {
                return Err(ConfigError::DuplicateEndpoint(name.to_owned()));
            }
        }
        if map.is_empty() {
            return Err(ConfigError::NoSecret);
        }
        Ok(Self(map))
    }

    /// An endpoint, if it exists.
    pub fn get(&self, name: &str) -> Option<&Endpoint> {
        self.0.get(name)
    }

    /// The secrets of an endpoint, if it exists.
    pub fn secrets(&self, name: &str) -> Option<&[Secret]> {
        self.0.get(name).map(|e| e.secrets.as_slice())
    }

    /// Endpoint names, for logs at start-up.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The endpoints that accept any organization.
    pub fn unbound(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(|(_, e)| e.orgs.is_none())
            .map(|(n, _)| n.as_str())
    }
}

/// An organization id as Showpass issues them: 1-20 digits. (Digits only, so a secret that
/// happens to hold an `@` is not taken for a binding unless digits alone follow it.)
fn is_org(o: &str) -> bool {
    (1..=20).contains(&o.trim().len()) && o.trim().bytes().all(|b| b.is_ascii_digit())
}

fn orgs<'a>(parts: impl Iterator<Item = &'a str>, what: &str) -> Result<Vec<String>, ConfigError> {
    parts
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| {
            if is_org(o) {
                Ok(o.to_owned())
            } else {
                Err(ConfigError::BadOrg {
                    what: what.to_owned(),
                    org: o.chars().take(64).collect(),
                })
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|list| {
            if list.is_empty() {
                Err(ConfigError::BadOrg {
                    what: what.to_owned(),
                    org: String::new(),
                })
            } else {
                Ok(list)
            }
        })
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
    fn endpoints_are_bound_to_organizations_after_an_at_sign() {
        let e = Endpoints::parse_with_orgs(
            Some("s0"),
            Some("20, 31"),
            Some("venue=old|new@20+31,open=s@cret,lone=k@7"),
        )
        .unwrap();
        let default = e.get(DEFAULT_ENDPOINT).unwrap();
        assert_eq!(
            default.orgs.as_deref(),
            Some(&["20".to_owned(), "31".to_owned()][..])
        );
        let venue = e.get("venue").unwrap();
        assert_eq!(venue.secrets.len(), 2);
        assert!(venue.allows_org(Some("31")) && !venue.allows_org(Some("32")));
        assert!(
            !venue.allows_org(None),
            "a bound endpoint needs the organization"
        );
        // `@cret` is not an organization list: it is part of the secret.
        let open = e.get("open").unwrap();
        assert_eq!(open.secrets[0].expose(), "s@cret");
        assert!(open.allows_org(None) && open.allows_org(Some("99")));
        assert_eq!(e.unbound().collect::<Vec<_>>(), ["open"]);
        assert_eq!(
            e.get("lone").unwrap().orgs.as_deref(),
            Some(&["7".to_owned()][..])
        );
    }

    #[test]
    fn bad_organization_lists_are_refused() {
        assert!(matches!(
            Endpoints::parse_with_orgs(Some("s"), Some("20,a b"), None),
            Err(ConfigError::BadOrg { .. })
        ));
        assert_eq!(
            Endpoints::parse_with_orgs(None, Some("20"), Some("v=s")).unwrap_err(),
            ConfigError::OrgsWithoutSecret
        );
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
