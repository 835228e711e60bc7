//! A replay: an event the api publishes again from the events stream, for the projector to
//! apply again (its idempotency makes that harmless) and subscribers to see again. Its headers
//! follow one rule, kept here: the original's, less its `Nats-Msg-Id` (or JetStream would drop
//! the replay as a duplicate), with its idempotency key kept and the original's stream
//! sequence in `Showpass-Replay-Of`.

use async_nats::HeaderMap;
use showpass_payload::headers as h;

/// The headers a replay of the message at `original_seq` is published with.
pub fn headers(original: Option<&HeaderMap>, original_seq: u64) -> HeaderMap {
    let mut out = HeaderMap::new();
    if let Some(original) = original {
        for (name, values) in original.iter() {
            let name = name.to_string();
            if name.eq_ignore_ascii_case(h::MSG_ID) || name.eq_ignore_ascii_case(h::REPLAY_OF) {
                continue;
            }
            for v in values {
                out.append(name.as_str(), v.as_str());
            }
        }
        if original.get(h::IDEMPOTENCY_KEY).is_none()
            && let Some(key) = original.get(h::MSG_ID)
        {
            out.insert(h::IDEMPOTENCY_KEY, key.as_str());
        }
    }
    out.insert(h::REPLAY_OF, original_seq.to_string().as_str());
    out
}

/// The original's stream sequence, when these are a replay's headers.
pub fn replay_of(headers: Option<&HeaderMap>) -> Option<u64> {
    headers?.get(h::REPLAY_OF)?.as_str().trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_keeps_the_originals_key_under_a_new_message_id() {
        let mut original = HeaderMap::new();
        original.insert(h::MSG_ID, "key-1");
        original.insert(h::EVENT_TYPE, "invoice.purchase");
        original.insert(h::REPLAY_OF, "3");
        let replay = headers(Some(&original), 42);
        assert!(replay.get(h::MSG_ID).is_none());
        assert_eq!(replay.get(h::IDEMPOTENCY_KEY).unwrap().as_str(), "key-1");
        assert_eq!(
            replay.get(h::EVENT_TYPE).unwrap().as_str(),
            "invoice.purchase"
        );
        assert_eq!(replay_of(Some(&replay)), Some(42));
        assert_eq!(replay_of(Some(&original)), Some(3));
        assert_eq!(replay_of(None), None);
    }
}
