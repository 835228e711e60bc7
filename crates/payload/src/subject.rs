//! How deliveries are named on NATS: subjects, stream names and header values.
//!
//! Subscribers see `{prefix}.events.…`. The events stream stores each event on the same
//! subject behind an underscore, `_{prefix}.events.…`, and republishes what it stored to the
//! public subject (JetStream RePublish): a redelivery JetStream drops as a duplicate is stored
//! nowhere and so reaches no subscriber. Publishers (ingest, replay) publish to the stored
//! subject only.
//!
//! Event subjects always have the shape `{prefix}.events.{org}.{category}.{action}`: five
//! tokens, whatever the payload says. Tokens from the payload keep only `[A-Za-z0-9_-]`
//! (anything else becomes `_`), so no `.`, `*`, `>` or whitespace from a delivery can add a
//! token or a wildcard. The event type's first `.` separates category and action; later dots
//! become `_`; a missing part is `_`.

use std::borrow::Cow;

/// Longest token taken from a payload, in bytes.
const MAX_TOKEN: usize = 64;

/// The token that stands for a missing value.
pub const MISSING: &str = "_";

/// A payload value made into one safe subject token.
pub fn token(value: Option<&str>) -> Cow<'_, str> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Cow::Borrowed(MISSING);
    };
    let safe = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    if v.len() <= MAX_TOKEN && v.bytes().all(safe) {
        return Cow::Borrowed(v);
    }
    let cleaned: String = v
        .chars()
        .take(MAX_TOKEN)
        .map(|c| {
            if c.is_ascii() && safe(c as u8) {
                c
            } else {
                '_'
            }
        })
        .collect();
    Cow::Owned(cleaned)
}

/// The subject an event is published on: `{prefix}.events.{org}.{category}.{action}`.
pub fn event_subject(
    prefix: &str,
    organization_id: Option<&str>,
    event_type: Option<&str>,
) -> String {
    let (category, action) = match event_type.map(str::trim) {
        Some(t) => match t.split_once('.') {
            Some((c, a)) => (Some(c), Some(a)),
            None => (Some(t), None),
        },
        None => (None, None),
    };
    let mut s = String::with_capacity(prefix.len() + 48);
    s.push_str(prefix);
    s.push_str(".events.");
    s.push_str(&token(organization_id));
    s.push('.');
    s.push_str(&token(category));
    s.push('.');
    s.push_str(&token(action));
    s
}

/// The subject an event is stored on, and published to: `_{prefix}.events.{org}.{category}.{action}`.
pub fn stored_event_subject(
    prefix: &str,
    organization_id: Option<&str>,
    event_type: Option<&str>,
) -> String {
    format!("_{}", event_subject(prefix, organization_id, event_type))
}

/// What subscribers listen to: `{prefix}.events.>` (the destination of the republish).
pub fn events_filter(prefix: &str) -> String {
    format!("{prefix}.events.>")
}

/// The subjects the events stream stores: `_{prefix}.events.>`.
pub fn stored_events_filter(prefix: &str) -> String {
    format!("_{prefix}.events.>")
}

/// Where the events stream stores an erasure's redacted copies: `_{prefix}.erased.events.>`.
/// Not republished, so a subscriber of `{prefix}.events.>` still sees each event once.
pub fn erased_events_filter(prefix: &str) -> String {
    format!("_{prefix}.erased.events.>")
}

/// Where the deliveries stream stores an erasure's redacted copies:
/// `_{prefix}.erased.deliveries.>` (not on the subjects subscribers of records listen to).
pub fn erased_deliveries_filter(prefix: &str) -> String {
    format!("_{prefix}.erased.deliveries.>")
}

/// The subject of the redacted copy of a message stored on `original` (stored or public,
/// events or deliveries): `_{prefix}.erased.` and the original's subject after its prefix.
pub fn erased_subject(prefix: &str, original: &str) -> String {
    let public = public_subject(original);
    let rest = public
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('.'))
        .unwrap_or(public);
    let rest = rest.strip_prefix("erased.").unwrap_or(rest);
    format!("_{prefix}.erased.{rest}")
}

/// The public subject of a stored one (`_p.events.…` gives `p.events.…`); any other subject
/// is returned as it is.
pub fn public_subject(stored: &str) -> &str {
    stored.strip_prefix('_').unwrap_or(stored)
}

/// The subject a delivery-log record is published on: `{prefix}.deliveries.{outcome}.{endpoint}`.
pub fn delivery_subject(prefix: &str, outcome: crate::vocab::Outcome, endpoint: &str) -> String {
    format!(
        "{prefix}.deliveries.{}.{}",
        outcome.as_str(),
        token(Some(endpoint))
    )
}

/// The subject filter of the deliveries stream: `{prefix}.deliveries.>`.
pub fn deliveries_filter(prefix: &str) -> String {
    format!("{prefix}.deliveries.>")
}

/// Where the projector takes erasure requests (request and reply; not stored).
pub fn erase_subject(prefix: &str) -> String {
    format!("_{prefix}.admin.erase")
}

/// Stream names derive from the prefix: `showpass` gives `SHOWPASS_EVENTS`.
pub fn events_stream(prefix: &str) -> String {
    format!("{}_EVENTS", stream_stem(prefix))
}

/// `showpass` gives `SHOWPASS_DELIVERIES`.
pub fn deliveries_stream(prefix: &str) -> String {
    format!("{}_DELIVERIES", stream_stem(prefix))
}

fn stream_stem(prefix: &str) -> String {
    prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Whether `prefix` can be the first subject token: one token of `[A-Za-z0-9_-]`.
pub fn is_valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= MAX_TOKEN
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A payload value made safe for a NATS header: control characters become spaces and the
/// value is cut at 256 bytes (on a character boundary).
pub fn header_value(v: &str) -> Cow<'_, str> {
    const MAX: usize = 256;
    if v.len() <= MAX && !v.chars().any(char::is_control) {
        return Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len().min(MAX));
    for c in v.chars() {
        if out.len() + c.len_utf8() > MAX {
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn subjects_follow_the_contract() {
        assert_eq!(
            event_subject("showpass", Some("20"), Some("invoice.purchase")),
            "showpass.events.20.invoice.purchase"
        );
        assert_eq!(
            event_subject("showpass", None, Some("webhook.test")),
            "showpass.events._.webhook.test"
        );
        assert_eq!(event_subject("p", None, None), "p.events._._._");
        assert_eq!(
            event_subject("p", Some("1"), Some("ping")),
            "p.events.1.ping._"
        );
    }

    #[test]
    fn events_are_stored_behind_an_underscore_and_seen_without_it() {
        let stored = stored_event_subject("showpass", Some("20"), Some("invoice.purchase"));
        assert_eq!(stored, "_showpass.events.20.invoice.purchase");
        assert_eq!(
            public_subject(&stored),
            "showpass.events.20.invoice.purchase"
        );
        assert_eq!(stored_events_filter("showpass"), "_showpass.events.>");
        assert_eq!(
            erased_subject("showpass", "_showpass.events.20.invoice.purchase"),
            "_showpass.erased.events.20.invoice.purchase"
        );
        assert_eq!(
            erased_subject("showpass", "showpass.deliveries.duplicate.default"),
            "_showpass.erased.deliveries.duplicate.default"
        );
        assert_eq!(
            erased_subject("showpass", "_showpass.erased.events.20.invoice.purchase"),
            "_showpass.erased.events.20.invoice.purchase",
            "a copy's replay stays a copy"
        );
    }

    #[test]
    fn hostile_values_cannot_change_the_subject_shape() {
        assert_eq!(
            event_subject("showpass", Some("20.*.>"), Some("invoice.refund.x y")),
            "showpass.events.20____.invoice.refund_x_y"
        );
        assert_eq!(
            event_subject("showpass", Some(" \t"), Some(".>")),
            "showpass.events._._._"
        );
    }

    #[test]
    fn stream_names_derive_from_the_prefix() {
        assert_eq!(events_stream("showpass"), "SHOWPASS_EVENTS");
        assert_eq!(deliveries_stream("t-1_x"), "T-1_X_DELIVERIES");
    }

    #[test]
    fn header_values_lose_line_breaks() {
        assert_eq!(header_value("a\r\nb"), "a  b");
        assert_eq!(header_value(&"é".repeat(200)).len(), 256);
    }

    proptest! {
        #[test]
        fn every_event_subject_has_five_safe_tokens(
            org in proptest::option::of(".{0,80}"),
            event_type in proptest::option::of(".{0,80}"),
        ) {
            let s = event_subject("showpass", org.as_deref(), event_type.as_deref());
            let tokens: Vec<&str> = s.split('.').collect();
            prop_assert_eq!(tokens.len(), 5, "{}", s);
            for t in tokens {
                prop_assert!(!t.is_empty());
                prop_assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'), "{}", s);
            }
        }

        #[test]
        fn header_values_never_hold_control_characters(v in ".{0,400}") {
            let h = header_value(&v);
            prop_assert!(!h.chars().any(char::is_control));
            prop_assert!(h.len() <= 256);
        }
    }
}
