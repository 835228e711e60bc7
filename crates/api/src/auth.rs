//! Bearer keys on `/v1`, compared in constant time. `API_KEYS` entries are `key` (read) or
//! `key:admin` (read and write: replay, erasure); a write with a read key is a 403.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;
use showpass_core::Secret;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Every `GET`.
    Read,
    /// Reads, and the writes: replay, erasure.
    Admin,
}

/// An `API_KEYS` entry: the key and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub key: Secret,
    pub role: Role,
}

impl ApiKey {
    /// Reads `key` or `key:admin` (`key:read` too); the role is the part after the last `:`
    /// when it names one, so a key may itself hold a `:`.
    pub fn parse(entry: &str) -> Self {
        match entry.rsplit_once(':') {
            Some((key, role)) if role.eq_ignore_ascii_case("admin") && !key.is_empty() => Self {
                key: Secret::new(key),
                role: Role::Admin,
            },
            Some((key, role)) if role.eq_ignore_ascii_case("read") && !key.is_empty() => Self {
                key: Secret::new(key),
                role: Role::Read,
            },
            _ => Self {
                key: Secret::new(entry),
                role: Role::Read,
            },
        }
    }
}

/// The accepted keys, kept as SHA-256 digests: every comparison has the same length, and
/// every key is compared, so timing tells nothing about a key, which one matched, or its role.
pub(crate) struct Keys(Vec<([u8; 32], Role)>);

impl Keys {
    pub fn new(keys: &[ApiKey]) -> Self {
        Self(
            keys.iter()
                .map(|k| (digest(k.key.expose()), k.role))
                .collect(),
        )
    }

    /// The role of the key presented, if it is one of ours.
    pub fn role_of(&self, token: &str) -> Option<Role> {
        let presented = digest(token);
        let (any, admin) = self.0.iter().fold(
            (subtle::Choice::from(0), subtle::Choice::from(0)),
            |(any, admin), (k, role)| {
                let eq = k.ct_eq(&presented);
                (
                    any | eq,
                    admin | (eq & subtle::Choice::from(u8::from(*role == Role::Admin))),
                )
            },
        );
        match (bool::from(any), bool::from(admin)) {
            (_, true) => Some(Role::Admin),
            (true, false) => Some(Role::Read),
            _ => None,
        }
    }

    /// The role of the key named `name` (see [`KeyName::of`]), if one still is: the highest
    /// when several keys share a name.
    pub fn role_of_name(&self, name: &KeyName) -> Option<Role> {
        self.0
            .iter()
            .filter(|(d, _)| KeyName::of_digest(d).0 == name.0)
            .map(|(_, role)| *role)
            .max_by_key(|role| *role == Role::Admin)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Lets a request through only with `Authorization: Bearer <a configured key>` (any key when
/// started insecure without keys).
pub(crate) async fn require_key(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let mut req = req;
    if state.config.insecure && state.keys.is_empty() {
        req.extensions_mut().insert(Role::Admin);
        req.extensions_mut()
            .insert(KeyName("insecure (no key)".into()));
        return next.run(req).await;
    }
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    match token.and_then(|t| state.keys.role_of(t)) {
        Some(role) => {
            let name = KeyName::of(token.unwrap_or_default());
            req.extensions_mut().insert(role);
            req.extensions_mut().insert(name);
            next.run(req).await
        }
        None => ApiError::Unauthorized.into_response(),
    }
}

/// Who made a request, as an audit records it: `key:` and the first 12 hex digits of the
/// key's SHA-256, never the key.
#[derive(Debug, Clone)]
pub struct KeyName(pub String);

impl KeyName {
    /// The name of `token`.
    pub fn of(token: &str) -> Self {
        Self::of_digest(&digest(token))
    }

    fn of_digest(d: &[u8; 32]) -> Self {
        let hex: String = d[..6].iter().map(|b| format!("{b:02x}")).collect();
        Self(format!("key:{hex}"))
    }
}

/// The role of an authenticated request (set by [`require_key`]); extracting it in a write
/// handler refuses a read key with 403.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Role>() {
            Some(Role::Admin) => Ok(Admin),
            _ => Err(ApiError::Forbidden(
                "this is a write: it needs an admin key (an API_KEYS entry ending in :admin)"
                    .into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_configured_key_is_accepted_with_its_role_and_nothing_else() {
        let keys = Keys::new(&[
            ApiKey::parse("first-key"),
            ApiKey::parse("second-key:admin"),
        ]);
        assert_eq!(keys.role_of("first-key"), Some(Role::Read));
        assert_eq!(keys.role_of("second-key"), Some(Role::Admin));
        for wrong in [
            "",
            "first-ke",
            "first-key ",
            "FIRST-KEY",
            "second-key2",
            "second-key:admin",
        ] {
            assert_eq!(keys.role_of(wrong), None, "{wrong:?}");
        }
        // A console session names its key: the name finds the key's role, and nothing else.
        assert_eq!(KeyName::of("first-key").0.len(), "key:".len() + 12);
        assert_eq!(
            keys.role_of_name(&KeyName::of("first-key")),
            Some(Role::Read)
        );
        assert_eq!(
            keys.role_of_name(&KeyName::of("second-key")),
            Some(Role::Admin)
        );
        assert_eq!(keys.role_of_name(&KeyName::of("third-key")), None);
    }

    #[test]
    fn a_role_is_read_only_when_it_names_one() {
        assert_eq!(ApiKey::parse("k:admin").role, Role::Admin);
        assert_eq!(ApiKey::parse("k:ADMIN").role, Role::Admin);
        assert_eq!(ApiKey::parse("k:read").role, Role::Read);
        let odd = ApiKey::parse("a:b:c");
        assert_eq!((odd.key.expose(), odd.role), ("a:b:c", Role::Read));
        assert_eq!(ApiKey::parse(":admin").key.expose(), ":admin");
    }
}
