//! `NATS_URL`, parsed once: the servers, and the credential one of them may carry. It shows
//! itself (and errors show it) without the credential.

use std::str::FromStr;

use async_nats::ServerAddr;

use crate::Secret;

/// Server URLs, comma-separated; a URL may carry `user:password@` or `token@`.
#[derive(Clone)]
pub struct NatsUrl {
    /// The servers, without credentials: the client logs the addresses it connects to.
    servers: Vec<ServerAddr>,
    credential: Option<Credential>,
    shown: String,
    /// As given, for a test's plain client.
    raw: Secret,
}

#[derive(Clone)]
enum Credential {
    UserPassword(String, Secret),
    Token(Secret),
}

/// A `NATS_URL` that is not a list of NATS URLs. The message shows it without credentials.
#[derive(Debug, thiserror::Error)]
pub enum BadNatsUrl {
    #[error("NATS_URL is not a list of NATS URLs: {0}")]
    NotUrls(String),
    #[error("NATS_URL names no server")]
    Empty,
}

impl NatsUrl {
    pub fn parse(urls: &str) -> Result<Self, BadNatsUrl> {
        let shown = redact_urls(urls);
        let bad = || BadNatsUrl::NotUrls(shown.clone());
        let given = urls
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<ServerAddr>().map_err(|_| bad()))
            .collect::<Result<Vec<_>, _>>()?;
        if given.is_empty() {
            return Err(BadNatsUrl::Empty);
        }
        // A URL carries its user and password percent-encoded (`%40` for `@`, `%2C` for `,`);
        // the server wants them as they are.
        let credential = given.iter().find(|s| s.has_user_pass()).map(|server| {
            let user = percent_decode(server.username().unwrap_or_default());
            match server.password() {
                Some(pass) => Credential::UserPassword(user, Secret::new(percent_decode(pass))),
                None => Credential::Token(Secret::new(user)),
            }
        });
        let servers = given
            .iter()
            .map(|s| {
                redact_urls(s.clone().into_inner().as_ref())
                    .replace("[redacted]@", "")
                    .parse::<ServerAddr>()
                    .map_err(|_| bad())
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            servers,
            credential,
            shown,
            raw: Secret::new(urls),
        })
    }

    /// The servers, without credentials.
    pub fn servers(&self) -> Vec<ServerAddr> {
        self.servers.clone()
    }

    /// Options that log in with the URL's credential, if it has one.
    pub fn authenticate(&self, options: async_nats::ConnectOptions) -> async_nats::ConnectOptions {
        match &self.credential {
            Some(Credential::UserPassword(user, pass)) => {
                options.user_and_password(user.clone(), pass.expose().to_owned())
            }
            Some(Credential::Token(token)) => options.token(token.expose().to_owned()),
            None => options,
        }
    }

    /// The URL as given, credentials included: for a plain client in a test.
    pub fn expose(&self) -> &str {
        self.raw.expose()
    }
}

impl FromStr for NatsUrl {
    type Err = BadNatsUrl;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl std::fmt::Display for NatsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Debug for NatsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NatsUrl({})", self.shown)
    }
}

/// URLs with any `user:password@` or `token@` replaced by `[redacted]@`, for logs and errors.
pub fn redact_urls(urls: &str) -> String {
    urls.split(',')
        .map(|u| {
            let u = u.trim();
            let (scheme, rest) = u.split_once("://").map_or(("", u), |(s, r)| (s, r));
            // The last `@`: a password may hold `/`, `?`, `#` or `@` unescaped (a URL that
            // then fails to parse is exactly the one an error message shows).
            let with_scheme = |shown: String| {
                if scheme.is_empty() {
                    shown
                } else {
                    format!("{scheme}://{shown}")
                }
            };
            match rest.rfind('@') {
                Some(at) => with_scheme(format!("[redacted]{}", &rest[at..])),
                None => {
                    // `user:pass` cut off at a comma in the password: a "port" that is not a
                    // number is no port.
                    let authority = rest.split('/').next().unwrap_or(rest);
                    let port_like = authority.rsplit_once(':').map(|(_, p)| p);
                    if port_like.is_some_and(|p| !p.bytes().all(|b| b.is_ascii_digit())) {
                        with_scheme("[redacted]".to_owned())
                    } else {
                        u.to_owned()
                    }
                }
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `%XX` sequences decoded (others kept as they are).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
    }

    #[test]
    fn a_nats_url_shows_itself_without_its_credential() {
        let url = NatsUrl::parse("nats://u:hunter2@h:4222,nats://h2:4222").unwrap();
        assert_eq!(url.to_string(), "nats://[redacted]@h:4222,nats://h2:4222");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(url.servers().len(), 2);
        assert!(url.servers().iter().all(|s| !s.has_user_pass()));
        let err = NatsUrl::parse("nats://u:hunter2@[not a host").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(matches!(NatsUrl::parse(" , "), Err(BadNatsUrl::Empty)));
    }

    /// Issue 16 review: a password with `@`, `:` or `,` is given percent-encoded and sent
    /// decoded; one given with a raw comma (which splits the list) is not shown in errors.
    #[test]
    fn credentials_are_percent_decoded_and_a_comma_split_one_is_redacted() {
        assert_eq!(percent_decode("p%40ss%3Aw%2C1%"), "p@ss:w,1%");
        let url = NatsUrl::parse("nats://svc:p%40ss%2Cw@h:4222").unwrap();
        match &url.credential {
            Some(Credential::UserPassword(user, pass)) => {
                assert_eq!(user, "svc");
                assert_eq!(pass.expose(), "p@ss,w");
            }
            _ => panic!("no user and password"),
        }
        let shown = redact_urls("nats://svc:pa,ss@h:4222");
        assert!(!shown.contains("svc") && !shown.contains("pa"), "{shown}");
        assert_eq!(
            redact_urls("nats://h:4222,nats://h2"),
            "nats://h:4222,nats://h2"
        );
    }
}
