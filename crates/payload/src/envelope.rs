//! The envelope: what ingest must read from a delivery before it can verify and route it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::lenient::{Lenient, Skip};
use crate::subject;

/// The routing fields of a delivery, borrowed from the raw body where possible.
///
/// Only `id` is required (it is what Showpass signs); every other field is read leniently and
/// is `None` when missing, null, blank or of an unexpected shape, so a signed delivery is
/// never refused for the shape of its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub id: Cow<'a, str>,
    pub event_type: Option<Cow<'a, str>>,
    pub webhook_event_uuid: Option<Cow<'a, str>>,
    pub transaction_id: Option<Cow<'a, str>>,
    pub organization_id: Option<Cow<'a, str>>,
}

/// Why a body is not a delivery; each maps to a 400 with this text as the detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body must be a JSON object")]
    NotObject,
    #[error("body has no `id` field")]
    MissingId,
    #[error("`id` must be a non-empty string")]
    IdNotString,
    #[error("`{0}` appears more than once")]
    DuplicateKey(String),
}

impl<'a> Envelope<'a> {
    /// Parses the envelope of a raw body. The whole body must be well-formed JSON.
    pub fn parse(body: &'a [u8]) -> Result<Self, EnvelopeError> {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b != b'{') {
            // A lone scalar or an array is JSON, but not a delivery; report bad JSON first.
            return match serde_json::from_slice::<Skip>(body) {
                Ok(_) => Err(EnvelopeError::NotObject),
                Err(e) => Err(EnvelopeError::NotJson(e.to_string())),
            };
        }
        let mut de = serde_json::Deserializer::from_slice(body);
        let raw = RawEnvelope::deserialize(&mut de).map_err(classify)?;
        de.end()
            .map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
        raw.finish()
    }
}

/// Maps serde's error text back to our typed causes (serde only carries strings).
fn classify(e: serde_json::Error) -> EnvelopeError {
    let text = e.to_string();
    match text.strip_prefix(DUPLICATE_KEY) {
        Some(rest) => {
            // serde_json appends " at line L column C".
            let key = rest.rsplit_once(" at line ").map_or(rest, |(k, _)| k);
            EnvelopeError::DuplicateKey(key.to_owned())
        }
        None => EnvelopeError::NotJson(text),
    }
}

const DUPLICATE_KEY: &str = "showpass: duplicate key ";

#[derive(Default)]
struct RawEnvelope<'a> {
    /// Outer `None`: no `id` key; inner `None`: an `id` that is not a string.
    id: Option<Option<Cow<'a, str>>>,
    event_type: Lenient<'a>,
    webhook_event_uuid: Lenient<'a>,
    transaction_id: Lenient<'a>,
    organization_id: Lenient<'a>,
}

impl<'a> RawEnvelope<'a> {
    fn deserialize<D: Deserializer<'a>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(TopVisitor)
    }

    fn finish(self) -> Result<Envelope<'a>, EnvelopeError> {
        let id = self
            .id
            .ok_or(EnvelopeError::MissingId)?
            .filter(|id| !id.is_empty())
            .ok_or(EnvelopeError::IdNotString)?;
        let keep = |l: Lenient<'a>| match l.0 {
            Some(Cow::Borrowed(s)) => Some(s.trim()).filter(|s| !s.is_empty()).map(Cow::Borrowed),
            Some(Cow::Owned(s)) => Some(s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .map(Cow::Owned),
            None => None,
        };
        Ok(Envelope {
            id,
            event_type: keep(self.event_type),
            webhook_event_uuid: keep(self.webhook_event_uuid),
            transaction_id: keep(self.transaction_id),
            organization_id: keep(self.organization_id),
        })
    }
}

/// The `id` as signed: a JSON string. Any other JSON value is read (so syntax errors still
/// surface as such) and reported as not a string.
struct IdValue<'a>(Option<Cow<'a, str>>);

impl<'de> de::Deserialize<'de> for IdValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A string is the id; anything else is skipped, remembering it was not a string.
        struct Any;
        impl<'de> Visitor<'de> for Any {
            type Value = IdValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(IdValue(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(IdValue(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(IdValue(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(IdValue(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(IdValue(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(IdValue(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(IdValue(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<Skip>()?.is_some() {}
                Ok(IdValue(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, Skip>()?.is_some() {}
                Ok(IdValue(None))
            }
        }
        d.deserialize_any(Any)
    }
}

/// An object key: one this module reads, matched without allocating, or any other (borrowed
/// from the body unless it holds escapes), kept only to tell a repeated key.
enum Key<'de> {
    Known(&'static str),
    Other(Cow<'de, str>),
}

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::known(v).unwrap_or(Key::Other(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key::known(v).unwrap_or_else(|| Key::Other(Cow::Owned(v.to_owned()))))
            }
        }
        d.deserialize_str(V)
    }
}

impl Key<'_> {
    const KNOWN: [&'static str; 6] = [
        "id",
        "event_type",
        "webhook_event_uuid",
        "data",
        "transaction_id",
        "showpass_organization_id",
    ];

    fn known(v: &str) -> Option<Self> {
        Self::KNOWN.into_iter().find(|k| *k == v).map(Key::Known)
    }
}

/// The keys of one object seen so far: a repeated key is an error, as it is for every typed
/// reader downstream (serde refuses a repeated field), so ingest refuses what the projector
/// would. Objects have a handful of keys; past 16 others a hash set keeps it linear.
#[derive(Default)]
struct SeenKeys<'de> {
    known: u8,
    few: Vec<Cow<'de, str>>,
    many: std::collections::HashSet<Cow<'de, str>>,
}

impl<'de> SeenKeys<'de> {
    /// Records `key`; `Err` with its name when it was seen before.
    fn see<E: de::Error>(&mut self, key: &Key<'de>, path: &str) -> Result<(), E> {
        let fresh = match key {
            Key::Known(k) => {
                let bit = 1u8 << Key::KNOWN.iter().position(|x| x == k).unwrap_or(0);
                let fresh = self.known & bit == 0;
                self.known |= bit;
                fresh
            }
            Key::Other(k) if self.many.is_empty() && self.few.len() < 16 => {
                let fresh = !self.few.contains(k);
                if fresh {
                    self.few.push(k.clone());
                }
                fresh
            }
            Key::Other(k) => {
                if self.many.is_empty() {
                    self.many.extend(self.few.drain(..));
                }
                self.many.insert(k.clone())
            }
        };
        if fresh {
            Ok(())
        } else {
            let name = match key {
                Key::Known(k) => k,
                Key::Other(k) => k.as_ref(),
            };
            Err(de::Error::custom(format_args!(
                "{DUPLICATE_KEY}{path}{}",
                subject::header_value(name)
            )))
        }
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = RawEnvelope<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = RawEnvelope::default();
        let mut seen = SeenKeys::default();
        while let Some(key) = map.next_key::<Key>()? {
            seen.see(&key, "")?;
            match key {
                Key::Known("id") => out.id = Some(map.next_value::<IdValue<'de>>()?.0),
                Key::Known("event_type") => out.event_type = map.next_value()?,
                Key::Known("webhook_event_uuid") => out.webhook_event_uuid = map.next_value()?,
                Key::Known("data") => map.next_value_seed(DataSeed(&mut out))?,
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(out)
    }
}

/// Reads the two routing fields of `data` into the envelope; a `data` that is not an object
/// is skipped.
struct DataSeed<'r, 'de>(&'r mut RawEnvelope<'de>);

impl<'de> DeserializeSeed<'de> for DataSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DataSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Only the routing fields must not repeat here: the projector refuses a repeated
        // field it reads, and ingest routes by these two.
        let mut seen = SeenKeys::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Known(k @ ("transaction_id" | "showpass_organization_id")) => {
                    seen.see(&Key::Known(k), "data.")?;
                    let value = map.next_value()?;
                    if k == "transaction_id" {
                        self.0.transaction_id = value;
                    } else {
                        self.0.organization_id = value;
                    }
                }
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC_2023: &str = include_str!("../fixtures/showpass/purchase-doc-2023.json");
    const DOC_2026: &str = include_str!("../fixtures/showpass/purchase-doc-2026.json");

    #[test]
    fn both_documented_samples_yield_their_routing_fields() {
        let e = Envelope::parse(DOC_2023.as_bytes()).unwrap();
        assert_eq!(e.id, "fd-3bc3-463c-8f41-a92971330c06");
        assert_eq!(e.event_type.as_deref(), Some("invoice.purchase"));
        assert_eq!(
            e.webhook_event_uuid.as_deref(),
            Some("06d5dc13-2eea-48ad-9f40-2a5bfc9e4c2c")
        );
        assert_eq!(e.organization_id.as_deref(), Some("20"));
        assert_eq!(
            e.transaction_id.as_deref(),
            Some("b3-3eb2-405b-b640-39ec45d04fda")
        );

        let e = Envelope::parse(DOC_2026.as_bytes()).unwrap();
        assert_eq!(e.id, "f1-1068-4af6-be8f-1222417da0f2");
        assert_eq!(e.event_type.as_deref(), Some("invoice.purchase"));
        assert_eq!(e.organization_id.as_deref(), Some("5796"));
    }

    #[test]
    fn numeric_organization_ids_are_read_as_text() {
        let e = Envelope::parse(br#"{"id":"x","data":{"showpass_organization_id":20}}"#).unwrap();
        assert_eq!(e.organization_id.as_deref(), Some("20"));
    }

    #[test]
    fn odd_shapes_of_optional_fields_are_absent_not_errors() {
        let e = Envelope::parse(
            br#"{"id":"x","event_type":null,"webhook_event_uuid":{"a":1},"data":"nope"}"#,
        )
        .unwrap();
        assert_eq!(e.event_type, None);
        assert_eq!(e.webhook_event_uuid, None);
        assert_eq!(e.organization_id, None);
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let e = Envelope::parse(br#"{"id":"a\"b","event_type":"invoice.\u0070urchase"}"#).unwrap();
        assert_eq!(e.id, "a\"b");
        assert_eq!(e.event_type.as_deref(), Some("invoice.purchase"));
    }

    #[test]
    fn bodies_that_are_not_deliveries_are_refused_with_their_reason() {
        type Expect = fn(&EnvelopeError) -> bool;
        let cases: &[(&[u8], Expect)] = &[
            (b"", |e| matches!(e, EnvelopeError::NotJson(_))),
            (b"{", |e| matches!(e, EnvelopeError::NotJson(_))),
            (b"not json", |e| matches!(e, EnvelopeError::NotJson(_))),
            (b"[1,2]", |e| *e == EnvelopeError::NotObject),
            (b"\"id\"", |e| *e == EnvelopeError::NotObject),
            (b"{}", |e| *e == EnvelopeError::MissingId),
            (br#"{"id": 5}"#, |e| *e == EnvelopeError::IdNotString),
            (br#"{"id": null}"#, |e| *e == EnvelopeError::IdNotString),
            (br#"{"id": ""}"#, |e| *e == EnvelopeError::IdNotString),
            (br#"{"id": "a", "id": "b"}"#, |e| {
                *e == EnvelopeError::DuplicateKey("id".into())
            }),
            (br#"{"id": "a", "data": {}, "data": {}}"#, |e| {
                *e == EnvelopeError::DuplicateKey("data".into())
            }),
            (br#"{"id": "a", "x": 1, "y": 2, "x": 3}"#, |e| {
                *e == EnvelopeError::DuplicateKey("x".into())
            }),
            (br#"{"id": "a", "\u0078": 1, "x": 3}"#, |e| {
                *e == EnvelopeError::DuplicateKey("x".into())
            }),
            (
                br#"{"id": "a", "data": {"transaction_id": "1", "transaction_id": "2"}}"#,
                |e| *e == EnvelopeError::DuplicateKey("data.transaction_id".into()),
            ),
            (br#"{"id": "a"} trailing"#, |e| {
                matches!(e, EnvelopeError::NotJson(_))
            }),
        ];
        for (body, expected) in cases {
            let err = Envelope::parse(body).unwrap_err();
            assert!(
                expected(&err),
                "{:?} gave {err:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    /// The projector refuses a repeated top-level field, so ingest does too (issue 11).
    #[test]
    fn a_repeated_key_among_many_is_found_and_many_distinct_keys_are_fine() {
        let keys: Vec<String> = (0..10_000).map(|i| format!(r#""k{i}":{i}"#)).collect();
        let body = format!(r#"{{"id":"a",{}}}"#, keys.join(","));
        assert!(Envelope::parse(body.as_bytes()).is_ok());
        let body = format!(r#"{{"id":"a",{},"k17":0}}"#, keys.join(","));
        assert_eq!(
            Envelope::parse(body.as_bytes()).unwrap_err(),
            EnvelopeError::DuplicateKey("k17".into())
        );
        // Repeats deeper down are the typed reader's business, not the envelope's.
        assert!(Envelope::parse(br#"{"id":"a","data":{"x":1,"x":2,"n":{"y":1,"y":1}}}"#).is_ok());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let mut body = br#"{"id":"x","data":"#.to_vec();
        body.extend(std::iter::repeat_n(b'[', 100_000));
        body.extend(std::iter::repeat_n(b']', 100_000));
        body.push(b'}');
        let err = Envelope::parse(&body).unwrap_err();
        assert!(err.to_string().contains("recursion limit"), "{err}");
    }

    #[test]
    fn brackets_inside_strings_do_not_count_as_nesting() {
        let body = format!(r#"{{"id":"x{}","data":[[[]]]}}"#, "[{".repeat(500));
        assert!(Envelope::parse(body.as_bytes()).is_ok());
    }

    /// What ingest accepts, every serde_json reader downstream can read: a number beyond
    /// f64 is refused at the door, `-0` is fine.
    #[test]
    fn numbers_out_of_float_range_are_refused_and_minus_zero_is_fine() {
        let err = Envelope::parse(br#"{"id": "a", "n": 1e400}"#).unwrap_err();
        assert!(matches!(err, EnvelopeError::NotJson(_)), "{err:?}");
        assert!(Envelope::parse(br#"{"id": "a", "z": -0, "f": -0.0}"#).is_ok());
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        assert!(matches!(
            Envelope::parse(b"{\"id\":\"\xff\xfe\"}"),
            Err(EnvelopeError::NotJson(_))
        ));
    }
}
