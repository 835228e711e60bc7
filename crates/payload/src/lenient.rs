//! Deserializers that accept the shapes real Showpass traffic takes.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::limits::{MAX_AMOUNT, MAX_ID_BYTES, MAX_ITEMS, MAX_QUANTITY, MAX_TEXT_BYTES};

/// Parses a money amount written as a string (`"5.84"`, `" 1e2 "`) into an exact decimal.
pub fn parse_money(s: &str) -> Option<Decimal> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    Decimal::from_str(s)
        .or_else(|_| Decimal::from_scientific(s))
        .ok()
}

/// Formats a float by its shortest round-trip representation, so the JSON number `5.84`
/// becomes exactly `5.84`, never `5.8399999999999998578914528479799628257751464843750`.
fn float_text(v: f64) -> String {
    let mut buf = String::new();
    use fmt::Write;
    let _ = write!(buf, "{v}");
    buf
}

/// Skips any JSON value. Unlike [`IgnoredAny`], it descends through `deserialize_any`, so
/// serde_json's nesting limit (128) applies to what is skipped too: everything ingest accepts
/// can be read by any serde_json consumer, and deep nesting costs no extra pass.
pub(crate) struct Skip;

impl<'de> de::Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Skip, A::Error> {
        while a.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Skip, A::Error> {
        while a.next_entry::<IgnoredAny, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

/// A scalar value read leniently: strings, numbers and booleans become text; null, arrays
/// and objects become `None` (the value is skipped, so parsing always goes on).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lenient<'a>(pub Option<Cow<'a, str>>);

impl<'de: 'a, 'a> de::Deserialize<'de> for Lenient<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Lenient<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Owned(v))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Owned(float_text(v)))))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Borrowed(if v {
                    "true"
                } else {
                    "false"
                }))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<Skip>()?.is_some() {}
                Ok(Lenient(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, Skip>()?.is_some() {}
                Ok(Lenient(None))
            }
        }
        d.deserialize_any(V)
    }
}

impl Lenient<'_> {
    /// The text, trimmed, or `None` when absent, null or blank.
    pub fn text(&self) -> Option<&str> {
        self.0.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
}

/// Ids: strings or numbers, kept as trimmed text; null, blank or missing become `None`. NUL
/// characters are dropped: valid in JSON, but no text column or header can hold them. An id
/// longer than [`MAX_ID_BYTES`] is an error: cut, two ids could become one.
pub(crate) mod id {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let v = Lenient::deserialize(d)?;
        let id = v.text().map(without_nul).filter(|s| !s.is_empty());
        match id {
            Some(id) if id.len() > MAX_ID_BYTES => Err(de::Error::custom(format_args!(
                "an id of {} bytes is longer than the {MAX_ID_BYTES} allowed",
                id.len()
            ))),
            id => Ok(id),
        }
    }

    use serde::Deserialize;
}

/// The text without NUL characters.
pub(crate) fn without_nul(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "")
    } else {
        s.to_owned()
    }
}

/// Optional free text: strings (or numbers, written as text); null or missing become `None`.
/// Text longer than [`MAX_TEXT_BYTES`] is cut at a character boundary.
pub(crate) mod text {
    use super::*;
    use serde::Deserialize;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let v = Lenient::deserialize(d)?;
        Ok(v.text()
            .map(|t| without_nul(cut(t, MAX_TEXT_BYTES)))
            .filter(|s| !s.is_empty()))
    }
}

/// Longest value of an enumeration this version does not know (`Other`), in bytes: such
/// values become sales keys, which an index must hold.
pub(crate) const MAX_OTHER_BYTES: usize = 64;

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let end = (0..=max)
        .rev()
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0);
    &s[..end]
}

/// A currency code: text of at most 16 bytes (ISO 4217 codes have 3); longer is an error,
/// since a currency is a key of every sales figure.
pub(crate) mod currency {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        match text::deserialize(d)? {
            Some(c) if c.len() > 16 => Err(de::Error::custom(format_args!(
                "a currency of {} bytes is longer than the 16 allowed",
                c.len()
            ))),
            c => Ok(c),
        }
    }
}

/// A list that may be null or missing (both read as empty), of at most [`MAX_ITEMS`] entries:
/// a longer one is an error found before it is all in memory.
pub(crate) mod bounded_list {
    use super::*;
    use serde::Deserialize;
    use std::marker::PhantomData;

    pub fn deserialize<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Vec<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Vec::new())
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Vec::new())
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_seq(self)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = a.next_element::<T>()? {
                    if out.len() == MAX_ITEMS {
                        return Err(de::Error::custom(format_args!(
                            "a list of more than {MAX_ITEMS} entries"
                        )));
                    }
                    out.push(item);
                }
                Ok(out)
            }
        }
        d.deserialize_option(V(PhantomData))
    }
}

/// Money: a JSON number or a decimal string, into an exact [`Decimal`]; null or `""` is `None`.
/// An amount beyond ±[`MAX_AMOUNT`] is an error.
pub(crate) mod money {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        bounded(d, MAX_AMOUNT, "money amount")
    }

    /// A decimal whose absolute value is at most `max`.
    pub(crate) fn bounded<'de, D: Deserializer<'de>>(
        d: D,
        max: Decimal,
        what: &'static str,
    ) -> Result<Option<Decimal>, D::Error> {
        match exact(d)? {
            Some(v) if v.abs() > max => Err(de::Error::custom(format_args!(
                "{what} {v} is out of range (at most {max} either side of zero)"
            ))),
            v => Ok(v),
        }
    }

    fn exact<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Option<Decimal>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a money amount as a number or a decimal string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v.trim().is_empty() {
                    return Ok(None);
                }
                parse_money(v)
                    .map(Some)
                    .ok_or_else(|| E::custom(format_args!("invalid money amount {v:?}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Some(Decimal::from(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Some(Decimal::from(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                if !v.is_finite() {
                    return Err(E::custom("money amount is not finite"));
                }
                let text = float_text(v);
                parse_money(&text)
                    .map(Some)
                    .ok_or_else(|| E::custom(format_args!("money amount {text} is out of range")))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(self)
            }
        }
        d.deserialize_any(V)
    }

    /// Writes money as a decimal string, as the payload's newer samples do.
    pub fn serialize<S: serde::Serializer>(v: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.collect_str(d),
            None => s.serialize_none(),
        }
    }
}

/// A line's quantity: a number or a decimal string within ±[`MAX_QUANTITY`].
pub(crate) mod quantity {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        super::money::bounded(d, MAX_QUANTITY, "quantity")
    }

    pub use super::money::serialize;
}

/// Booleans as `true`, `"true"`, `"True"`, `1` or `"1"`; null or missing are `None`.
pub(crate) mod flag {
    use super::*;
    use serde::Deserialize;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        let v = Lenient::deserialize(d)?;
        match v.text().map(str::to_ascii_lowercase).as_deref() {
            None => Ok(None),
            Some("true" | "1" | "yes") => Ok(Some(true)),
            Some("false" | "0" | "no") => Ok(Some(false)),
            Some(other) => Err(de::Error::custom(format_args!(
                "expected a boolean, got {other:?}"
            ))),
        }
    }
}

/// Defines an enum of known lower-case values with an `Other` fallback, read case-insensitively
/// and written in lower case, so `"Sale"`, `"SALE"` and `"sale"` are one value and a value
/// Showpass adds tomorrow is kept rather than refused.
macro_rules! lenient_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)+
            /// A value this version does not know, kept as received (trimmed).
            Other(String),
        }

        impl $name {
            /// The canonical lower-case text of this value.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Other(s) => s,
                }
            }

            /// The text of a known value; `None` for `Other`.
            pub fn known_text(&self) -> Option<&'static str> {
                match self {
                    $(Self::$variant => Some($text),)+
                    Self::Other(_) => None,
                }
            }

            /// Reads a value in any letter case; unknown values become `Other`, cut to
            /// [`MAX_OTHER_BYTES`](crate::lenient::MAX_OTHER_BYTES).
            pub fn parse(s: &str) -> Self {
                let s = $crate::lenient::without_nul(s.trim());
                $(if s.eq_ignore_ascii_case($text) { return Self::$variant; })+
                Self::Other($crate::lenient::cut(&s, $crate::lenient::MAX_OTHER_BYTES).to_owned())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = $crate::lenient::Lenient::deserialize(d)?;
                match v.text() {
                    Some(s) => Ok(Self::parse(s)),
                    None => Err(serde::de::Error::custom(concat!(
                        "expected a ", stringify!($name), " as text"
                    ))),
                }
            }
        }
    };
}
pub(crate) use lenient_enum;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct M {
        #[serde(default, with = "money")]
        m: Option<Decimal>,
    }

    fn money_of(json: &str) -> Option<Decimal> {
        serde_json::from_str::<M>(json).unwrap().m
    }

    #[test]
    fn money_reads_numbers_and_strings_exactly() {
        assert_eq!(money_of(r#"{"m": 107}"#), Some(Decimal::new(107, 0)));
        assert_eq!(money_of(r#"{"m": "5.84"}"#), Some(Decimal::new(584, 2)));
        assert_eq!(money_of(r#"{"m": 5.84}"#), Some(Decimal::new(584, 2)));
        assert_eq!(money_of(r#"{"m": -12.5}"#), Some(Decimal::new(-125, 1)));
        assert_eq!(money_of(r#"{"m": "1e2"}"#), Some(Decimal::new(100, 0)));
        assert_eq!(money_of(r#"{"m": " 0.10 "}"#), Some(Decimal::new(10, 2)));
        assert_eq!(money_of(r#"{"m": -0}"#), Some(Decimal::ZERO));
    }

    #[test]
    fn money_absent_null_or_blank_is_none() {
        assert_eq!(money_of(r#"{}"#), None);
        assert_eq!(money_of(r#"{"m": null}"#), None);
        assert_eq!(money_of(r#"{"m": ""}"#), None);
    }

    #[test]
    fn money_that_is_not_a_number_is_an_error_not_a_zero() {
        assert!(serde_json::from_str::<M>(r#"{"m": "abc"}"#).is_err());
        assert!(serde_json::from_str::<M>(r#"{"m": 1e300}"#).is_err());
        assert!(serde_json::from_str::<M>(r#"{"m": true}"#).is_err());
    }
}
