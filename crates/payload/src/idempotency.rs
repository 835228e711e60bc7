//! The idempotency key: `webhook_event_uuid`, else the SHA-256 of the raw body.

use sha2::{Digest, Sha256};

use crate::Envelope;
use crate::subject::header_value;

/// Longest `webhook_event_uuid` used as it is; a longer one is hashed so keys stay bounded.
const MAX_KEY_LEN: usize = 128;

/// The key JetStream de-duplicates on (`Nats-Msg-Id`) and the projector applies once by.
///
/// Showpass reuses `webhook_event_uuid` for every retry of one event, so it is the key; a
/// delivery without one is keyed by its exact bytes (`sha256:` + hex), so an identical resend
/// is still recognised.
pub fn idempotency_key(envelope: &Envelope<'_>, body: &[u8]) -> String {
    match envelope.webhook_event_uuid.as_deref() {
        Some(uuid) if uuid.len() <= MAX_KEY_LEN => header_value(uuid).into_owned(),
        Some(uuid) => format!("sha256:{}", sha256_hex(uuid.as_bytes())),
        None => format!("sha256:{}", sha256_hex(body)),
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(body: &[u8]) -> String {
        idempotency_key(&Envelope::parse(body).unwrap(), body)
    }

    #[test]
    fn the_webhook_event_uuid_is_the_key() {
        assert_eq!(key(br#"{"id":"a","webhook_event_uuid":"u-1"}"#), "u-1");
    }

    #[test]
    fn retries_of_one_event_share_a_key_whatever_else_changed() {
        assert_eq!(
            key(br#"{"id":"a","webhook_event_uuid":"u-1","x":1}"#),
            key(br#"{"webhook_event_uuid":"u-1","id":"b"}"#)
        );
    }

    #[test]
    fn without_a_uuid_the_key_is_the_hash_of_the_exact_bytes() {
        let body = br#"{"id":"a"}"#;
        assert_eq!(key(body), "sha256:".to_owned() + &sha256_hex(body));
        assert_ne!(key(br#"{"id":"a"}"#), key(br#"{"id": "a"}"#));
    }

    #[test]
    fn huge_or_hostile_uuids_give_bounded_header_safe_keys() {
        let long = format!(
            r#"{{"id":"a","webhook_event_uuid":"{}"}}"#,
            "u".repeat(10_000)
        );
        assert!(key(long.as_bytes()).len() <= 7 + 64);
        let k = key(br#"{"id":"a","webhook_event_uuid":"u\r\nX-Evil: 1"}"#);
        assert!(!k.contains(['\r', '\n']));
    }
}
