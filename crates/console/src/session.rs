//! Sessions: a key logs in once, and its browser carries a signed, expiring cookie naming the
//! key (never the key itself). Every request checks the signature, the expiry, and that the
//! key is still configured, and takes the key's role as it is now. Logging out ends the
//! session on this api process: its cookie is refused from then on, even if a copy of it
//! survives in another browser.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, HeaderValue, header, request::Parts};
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use showpass_api::{KeyName, Role};
use subtle::ConstantTimeEq;

use crate::Console;

/// The cookie's name; it is sent only to `/console`.
pub const COOKIE: &str = "showpass_session";

/// A logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub who: KeyName,
    pub role: Role,
    /// Random per login: the CSRF token is derived from it.
    nonce: String,
    pub expires_at: u64,
}

impl Session {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// How many ended sessions are remembered one by one until they would have expired. Past
/// that, a logout ends every session of its key that expires no later than its own (never
/// fewer sessions than asked: an ended session cannot come back by being forgotten).
pub const MAX_ENDED: usize = 100_000;

/// Sessions ended by a logout.
#[derive(Default)]
struct Ended {
    /// Each ended session's nonce, with its expiry.
    nonces: HashMap<String, u64>,
    /// Per key (bounded by the configured keys): its sessions expiring at or before this
    /// are ended.
    key_cutoff: HashMap<String, u64>,
    /// When expired nonces were last dropped.
    pruned_at: u64,
}

/// Signs and checks cookies and CSRF tokens with the api's session secret, and remembers the
/// sessions ended by a logout.
pub struct Signer {
    secret: [u8; 32],
    ttl: Duration,
    ended: Mutex<Ended>,
}

impl Signer {
    pub fn new(secret: [u8; 32], ttl: Duration) -> Self {
        Self {
            secret,
            ttl,
            ended: Mutex::new(Ended::default()),
        }
    }

    fn ended(&self) -> std::sync::MutexGuard<'_, Ended> {
        self.ended.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends a session: its cookie opens nothing from now on, on this process.
    pub fn end(&self, session: &Session, now: SystemTime) {
        let now = unix(now);
        let mut ended = self.ended();
        // Expired nonces are dropped when the memory is full, at most once a minute.
        if ended.nonces.len() >= MAX_ENDED && now >= ended.pruned_at + 60 {
            ended.nonces.retain(|_, expires| *expires > now);
            ended.pruned_at = now;
        }
        if ended.nonces.len() < MAX_ENDED {
            ended
                .nonces
                .insert(session.nonce.clone(), session.expires_at);
        } else {
            let cutoff = ended.key_cutoff.entry(session.who.0.clone()).or_default();
            *cutoff = (*cutoff).max(session.expires_at);
        }
    }

    fn is_ended(&self, who: &str, nonce: &str, expires: u64) -> bool {
        let ended = self.ended();
        ended.nonces.contains_key(nonce) || ended.key_cutoff.get(who).is_some_and(|c| expires <= *c)
    }

    fn mac(&self, parts: &[&str]) -> String {
        let mut m =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        for p in parts {
            m.update(p.as_bytes());
            m.update(b"\0");
        }
        hex::encode(&m.finalize().into_bytes()[..16])
    }

    /// A new session's cookie value for the key named `who`, valid from `now`.
    pub fn issue(&self, who: &KeyName, now: SystemTime) -> String {
        let expires = unix(now) + self.ttl.as_secs();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        self.sign(&who.0, expires, &nonce)
    }

    fn sign(&self, who: &str, expires: u64, nonce: &str) -> String {
        let expires = expires.to_string();
        let mac = self.mac(&["session", who, &expires, nonce]);
        format!("{who}.{expires}.{nonce}.{mac}")
    }

    /// The session a cookie value holds, when its signature is ours and it has not expired.
    /// The role is looked up afterwards, against the keys configured now.
    fn open(&self, value: &str, now: SystemTime) -> Option<(KeyName, String, u64)> {
        let mut parts = value.split('.');
        let (who, expires, nonce, mac) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || value.len() > 200 {
            return None;
        }
        let want = self.mac(&["session", who, expires, nonce]);
        if !bool::from(want.as_bytes().ct_eq(mac.as_bytes())) {
            return None;
        }
        let expires: u64 = expires.parse().ok()?;
        (expires > unix(now) && !self.is_ended(who, nonce, expires))
            .then(|| (KeyName(who.to_owned()), nonce.to_owned(), expires))
    }

    /// The CSRF token of a session: forms that write carry it, and it is checked on POST.
    pub fn csrf(&self, session: &Session) -> String {
        self.mac(&["csrf", &session.who.0, &session.nonce])
    }

    pub fn csrf_ok(&self, session: &Session, token: &str) -> bool {
        bool::from(self.csrf(session).as_bytes().ct_eq(token.as_bytes()))
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The `Set-Cookie` that starts a session: HttpOnly, SameSite=Strict, only for `/console`, and
/// Secure when the browser reached us over https (directly or through a proxy saying so).
pub fn set_cookie(value: &str, ttl: Duration, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/console; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        ttl.as_secs()
    ))
    .expect("a cookie of hex digits and dots is a valid header")
}

/// The `Set-Cookie` that ends one.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("a constant cookie is a valid header")
}

/// Whether the request came over https: `X-Forwarded-Proto` or `Forwarded` from a proxy in
/// front (a client lying about it only denies itself the cookie over plain http).
pub fn is_https(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("proto=https"));
    forwarded_proto || forwarded
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Without a valid session a page answers with a redirect to the login form, which brings
/// the browser back to the page afterwards.
#[derive(Debug)]
pub struct LoginFirst {
    next: String,
}

impl IntoResponse for LoginFirst {
    fn into_response(self) -> Response {
        let to = format!(
            "/console/login?{}",
            serde_urlencoded::to_string([("next", self.next.as_str())]).unwrap_or_default()
        );
        Redirect::to(&to).into_response()
    }
}

impl FromRequestParts<Console> for Session {
    type Rejection = LoginFirst;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, LoginFirst> {
        // A form posted after the session ended goes back to the console, not to its action
        // (which only answers POST).
        let next = if parts.method == axum::http::Method::GET {
            parts
                .uri
                .path_and_query()
                .map_or("/console", |p| p.as_str())
        } else {
            "/console"
        }
        .to_owned();
        let found = cookie_value(&parts.headers, COOKIE)
            .and_then(|v| console.signer.open(v, SystemTime::now()))
            .and_then(|(who, nonce, expires_at)| {
                let role = console.api.role_of_name(&who)?;
                Some(Session {
                    who,
                    role,
                    nonce,
                    expires_at,
                })
            });
        found.ok_or(LoginFirst { next })
    }
}

/// Whether a form was posted from this site: a browser says where a POST comes from
/// (`Origin`, `Sec-Fetch-Site`); a request that says nothing (curl, a script) is not a browser
/// tricked by another site.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // The browser's own word first: it holds behind a proxy that rewrites `Host`.
    match text("sec-fetch-site") {
        Some("same-origin" | "none") => return true,
        Some(_) => return false,
        None => {}
    }
    match text("origin") {
        None => true,
        Some(origin) => {
            let authority = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            authority.is_some()
                && (authority == text("host") || authority == text("x-forwarded-host"))
        }
    }
}

/// Where to go after logging in: a console page, never elsewhere (no open redirect).
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if (n == "/console" || n.starts_with("/console/") || n.starts_with("/console?"))
                && !n.contains("//")
                && !n.contains('\\')
                && n.len() <= 2000
                && n.bytes().all(|b| b.is_ascii_graphic())
                && !n.starts_with("/console/login") =>
        {
            n
        }
        _ => "/console",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::new([7; 32], Duration::from_secs(3600))
    }

    #[test]
    fn a_cookie_opens_until_it_expires_and_not_once_altered() {
        let s = signer();
        let who = KeyName("key:0123456789ab".into());
        let now = SystemTime::now();
        let value = s.issue(&who, now);
        assert_eq!(s.open(&value, now).map(|o| o.0.0), Some(who.0.clone()));
        assert!(s.open(&value, now + Duration::from_secs(3601)).is_none());
        let forged = value.replacen("key:0123456789ab", "key:ba9876543210", 1);
        assert!(s.open(&forged, now).is_none());
        let later = value.replacen(&(unix(now) + 3600).to_string(), "99999999999", 1);
        assert!(s.open(&later, now).is_none());
        let other = Signer::new([8; 32], Duration::from_secs(3600));
        assert!(other.open(&value, now).is_none());
        assert!(
            other.open(&other.issue(&who, now), now).is_some(),
            "another signer opens its own"
        );
        for junk in ["", ".", "a.b.c.d", "a.b.c.d.e", &"x".repeat(500)] {
            assert!(s.open(junk, now).is_none(), "{junk:?}");
        }
    }

    fn session_of(s: &Signer, value: &str, now: SystemTime) -> Option<Session> {
        s.open(value, now).map(|(who, nonce, expires_at)| Session {
            who,
            role: Role::Read,
            nonce,
            expires_at,
        })
    }

    #[test]
    fn a_session_ended_by_logout_never_opens_again_and_others_still_do() {
        let s = signer();
        let who = KeyName("key:0123456789ab".into());
        let now = SystemTime::now();
        let (one, two) = (s.issue(&who, now), s.issue(&who, now));
        let session = session_of(&s, &one, now).expect("a fresh session");
        s.end(&session, now);
        assert!(s.open(&one, now).is_none(), "ended");
        assert!(s.open(&two, now).is_some(), "the same key's other session");
    }

    #[test]
    fn ended_sessions_are_bounded_and_never_come_back() {
        let s = signer();
        let (who, other) = (
            KeyName("key:0123456789ab".into()),
            KeyName("key:ba9876543210".into()),
        );
        let now = SystemTime::now();
        let first = s.issue(&who, now);
        s.end(&session_of(&s, &first, now).unwrap(), now);
        let still_open = s.issue(&who, now);
        let others = s.issue(&other, now);
        let later = now + Duration::from_secs(60);
        // (Sessions made as `open` would make them: past the memory, one ended in the same
        // second as another of its key no longer opens.)
        let made = |value: &str| {
            let parts: Vec<&str> = value.split('.').collect();
            Session {
                who: who.clone(),
                role: Role::Read,
                nonce: parts[2].to_owned(),
                expires_at: parts[1].parse().unwrap(),
            }
        };
        for _ in 0..MAX_ENDED + 10 {
            s.end(&made(&s.issue(&who, later)), later);
        }
        assert_eq!(s.ended().nonces.len(), MAX_ENDED);
        assert!(s.ended().key_cutoff.len() == 1, "one entry per key");
        // Nothing ended was forgotten; past the memory, a logout ended its key's older
        // sessions too, and no other key's.
        assert!(s.open(&first, later).is_none());
        assert!(s.open(&still_open, later).is_none());
        assert!(s.open(&others, later).is_some());
        // Once the remembered ones have expired, they make room again.
        let expired = later + Duration::from_secs(3601);
        let value = s.issue(&who, expired);
        s.end(&session_of(&s, &value, expired).unwrap(), expired);
        assert_eq!(s.ended().nonces.len(), 1);
        assert!(
            s.open(&s.issue(&who, expired), expired).is_some(),
            "a new login"
        );
    }

    #[test]
    fn a_form_from_another_site_is_not_same_origin() {
        let h = |pairs: &[(&'static str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, HeaderValue::from_str(v).unwrap());
            }
            m
        };
        assert!(same_origin(&h(&[("host", "console.example:8081")])));
        assert!(same_origin(&h(&[
            ("host", "console.example:8081"),
            ("origin", "https://console.example:8081"),
        ])));
        assert!(
            same_origin(&h(&[
                ("host", "api:8081"),
                ("origin", "https://console.example"),
                ("sec-fetch-site", "same-origin"),
            ])),
            "behind a proxy that rewrites Host"
        );
        for bad in [
            h(&[
                ("host", "console.example"),
                ("origin", "https://evil.example"),
            ]),
            h(&[("host", "console.example"), ("origin", "null")]),
            h(&[
                ("host", "console.example"),
                ("sec-fetch-site", "cross-site"),
            ]),
            h(&[("host", "console.example"), ("sec-fetch-site", "same-site")]),
        ] {
            assert!(!same_origin(&bad), "{bad:?}");
        }
    }

    #[test]
    fn after_login_only_console_pages_are_destinations() {
        assert_eq!(
            safe_next(Some("/console/logs?outcome=rejected")),
            "/console/logs?outcome=rejected"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/console//evil",
            "/consolex",
            "/console/login",
            "/\\evil",
            "/console/\nSet-Cookie: x",
            "/console/é",
            "/console/ x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console", "{bad}");
        }
        assert_eq!(safe_next(None), "/console");
    }
}
