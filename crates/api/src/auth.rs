//! Bearer keys on `/v1`, compared in constant time.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::server::AppState;
use showpass_core::Secret;

/// The accepted keys, kept as SHA-256 digests: every comparison has the same length, and
/// every key is compared, so timing tells nothing about a key or which one matched.
pub(crate) struct Keys(Vec<[u8; 32]>);

impl Keys {
    pub fn new(keys: &[Secret]) -> Self {
        Self(keys.iter().map(|k| digest(k.expose())).collect())
    }

    pub fn accepts(&self, token: &str) -> bool {
        let presented = digest(token);
        self.0
            .iter()
            .fold(subtle::Choice::from(0), |acc, k| acc | k.ct_eq(&presented))
            .into()
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
    if state.config.insecure && state.config.keys.is_empty() {
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
    match token {
        Some(t) if state.keys.accepts(t) => next.run(req).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_configured_key_is_accepted_and_nothing_else() {
        let keys = Keys::new(&[Secret::new("first-key"), Secret::new("second-key")]);
        assert!(keys.accepts("first-key"));
        assert!(keys.accepts("second-key"));
        for wrong in ["", "first-ke", "first-key ", "FIRST-KEY", "second-key2"] {
            assert!(!keys.accepts(wrong), "{wrong:?}");
        }
    }
}
