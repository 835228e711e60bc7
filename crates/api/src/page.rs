//! Keyset pagination: `limit` and an opaque `cursor` naming the last row of the previous page.
//!
//! A cursor is the sort key of that row, so a page never repeats or skips a row however many
//! are inserted meanwhile. It is base64url of the listing it belongs to and the sort key,
//! NUL-separated, and
//! signed (HMAC-SHA-256, 128 bits) with the server's cursor key: a cursor that was not handed
//! out by this server, does not decode, or belongs to another listing is a 400 naming
//! `cursor`, and nothing a client writes into one ever reaches a query unchecked.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{Postgres, QueryBuilder};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::ApiKey;
use crate::error::ApiError;
use showpass_core::Secret;

/// The key cursors are signed with.
#[derive(Clone)]
pub struct CursorKey([u8; 32]);

/// A server secret for one `purpose`: from `API_CURSOR_SECRET`, else from the API keys (so
/// replicas sharing their keys agree, across restarts), else random (for this process only).
pub(crate) fn derive_secret(purpose: &[u8], secret: Option<&Secret>, keys: &[ApiKey]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(purpose);
    match secret {
        Some(s) => h.update(s.expose().as_bytes()),
        None if !keys.is_empty() => {
            for k in keys {
                h.update(k.key.expose().as_bytes());
                h.update(b"\0");
            }
        }
        None => h.update(uuid::Uuid::new_v4().as_bytes()),
    }
    h.finalize().into()
}

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey([redacted])")
    }
}

impl CursorKey {
    /// From `API_CURSOR_SECRET`, else from the API keys (so replicas sharing their keys share
    /// cursors, and they survive restarts), else random (cursors last as long as the process).
    pub fn derive(secret: Option<&Secret>, keys: &[ApiKey]) -> Self {
        Self(derive_secret(b"showpass cursor key\0", secret, keys))
    }

    fn mac(&self, payload: &[u8]) -> [u8; 16] {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        m.update(payload);
        let full = m.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }
}

/// Longest cursor, and the OpenAPI document's `maxLength`: room for the longest sort keys (an
/// organization id of 255 bytes and an e-mail of 1,000, in base64, are under 1,800), while a
/// query string holding it, percent-encoded, stays under the 64 KiB a request line may be.
pub const MAX_CURSOR: usize = 4096;

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows: the extra row only says there is more.
    pub fn from_rows(
        mut rows: Vec<T>,
        limit: u32,
        signer: &CursorKey,
        key: impl Fn(&T) -> Cursor,
    ) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| key(r).encode(signer))
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }
}

/// The sort key of a row, tagged with its listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub listing: &'static str,
    pub parts: Vec<String>,
}

impl Cursor {
    pub fn new(listing: &'static str, parts: Vec<String>) -> Self {
        Self { listing, parts }
    }

    pub fn encode(&self, key: &CursorKey) -> String {
        // The listing and the parts, NUL-separated: no part can hold a NUL (PostgreSQL text
        // cannot), and nothing is escaped, so a cursor is at most 4/3 of its keys' bytes.
        let mut payload = self.listing.as_bytes().to_vec();
        for part in &self.parts {
            payload.push(0);
            payload.extend_from_slice(part.as_bytes());
        }
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(key.mac(&payload))
        )
    }

    /// Decodes a cursor of `listing` with exactly `n` parts, signed with `key`.
    pub fn decode(
        text: &str,
        listing: &'static str,
        n: usize,
        key: &CursorKey,
    ) -> Result<Vec<String>, ApiError> {
        if text.len() > MAX_CURSOR {
            return Err(bad_cursor());
        }
        let (payload, mac) = text.trim().split_once('.').ok_or_else(bad_cursor)?;
        let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| bad_cursor())?;
        let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| bad_cursor())?;
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            &key.mac(&bytes)[..],
            &mac[..],
        )) {
            return Err(bad_cursor());
        }
        let text = String::from_utf8(bytes).map_err(|_| bad_cursor())?;
        let mut all: Vec<String> = text.split('\0').map(str::to_owned).collect();
        if all.len() != n + 1 || all[0] != listing {
            return Err(bad_cursor());
        }
        all.remove(0);
        Ok(all)
    }
}

/// The type of a sort-key column, as a cursor carries it (text), and as it is bound.
#[derive(Debug, Clone, Copy)]
pub enum Key {
    Text,
    /// A `timestamptz`, carried as RFC 3339 with microseconds ([`time`]).
    Time,
    Uuid,
}

/// A keyset listing: its name (cursors of one listing are refused by another), the columns it
/// is sorted by, and the direction. Every list answer is built the same way: the filters, then
/// [`Keyset::after`] (the rows past the cursor's, in order, one more than a page), then
/// [`Keyset::page`].
pub struct Keyset {
    pub listing: &'static str,
    pub columns: &'static [(&'static str, Key)],
    pub descending: bool,
}

impl Keyset {
    /// Appends ` AND (columns) > (the cursor's row)` (`<` when descending), ` ORDER BY` and
    /// ` LIMIT limit + 1`. A cursor this listing did not give out is a 400 naming `cursor`.
    pub fn after(
        &self,
        sql: &mut QueryBuilder<'_, Postgres>,
        cursor: Option<&str>,
        key: &CursorKey,
        limit: u32,
    ) -> Result<(), ApiError> {
        let names: Vec<&str> = self.columns.iter().map(|(c, _)| *c).collect();
        if let Some(text) = cursor {
            let parts = Cursor::decode(text, self.listing, self.columns.len(), key)?;
            let op = if self.descending { "<" } else { ">" };
            sql.push(format!(" AND ({}) {op} (", names.join(", ")));
            for (i, (part, (_, kind))) in parts.into_iter().zip(self.columns).enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                match kind {
                    Key::Text => sql.push_bind(part),
                    Key::Time => sql.push_bind(
                        DateTime::parse_from_rfc3339(&part)
                            .map_err(|_| bad_cursor())?
                            .with_timezone(&Utc),
                    ),
                    Key::Uuid => sql.push_bind(part.parse::<Uuid>().map_err(|_| bad_cursor())?),
                };
            }
            sql.push(")");
        }
        let dir = if self.descending { " DESC" } else { "" };
        let order: Vec<String> = names.iter().map(|c| format!("{c}{dir}")).collect();
        sql.push(format!(" ORDER BY {} LIMIT ", order.join(", ")))
            .push_bind(i64::from(limit) + 1);
        Ok(())
    }

    /// The page of up to `limit + 1` rows, its cursor made of the last row's sort key.
    pub fn page<T>(
        &self,
        rows: Vec<T>,
        limit: u32,
        key: &CursorKey,
        sort_key: impl Fn(&T) -> Vec<String>,
    ) -> Page<T> {
        Page::from_rows(rows, limit, key, |r| Cursor::new(self.listing, sort_key(r)))
    }
}

/// A time as a cursor carries it.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A cursor that does not decode, or whose parts do not parse.
pub fn bad_cursor() -> ApiError {
    ApiError::bad(
        "cursor",
        "cursor is not one this listing gave out; pass next_cursor from the previous page \
         unchanged",
    )
}

/// Reads `limit`: absent gives the default; otherwise an integer in 1..=max.
pub fn limit(raw: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
    match crate::params::given("limit", raw)? {
        None => Ok(default),
        Some(v) => v
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| v.parse::<u32>().ok())
            .flatten()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad(
                    "limit",
                    format!(
                        "limit must be an integer between 1 and {max}, not {:?}",
                        truncate(v)
                    ),
                )
            }),
    }
}

/// At most 64 characters of a bad value, for an error message.
pub fn truncate(v: &str) -> String {
    v.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CursorKey {
        CursorKey::derive(Some(&Secret::new("test")), &[])
    }

    #[test]
    fn a_cursor_decodes_to_what_was_encoded() {
        let c = Cursor::new("orders", vec!["2026-01-01T00:00:00Z".into(), "a\"b".into()]);
        assert_eq!(
            Cursor::decode(&c.encode(&key()), "orders", 2, &key()).unwrap(),
            c.parts
        );
    }

    /// Issue 16 review: the longest sort keys (an id of 255 bytes, an e-mail of 1,000, both
    /// of characters JSON would escape) make a cursor the server takes back.
    #[test]
    fn the_longest_sort_keys_make_a_cursor_within_bounds() {
        let org = "\"".repeat(255);
        let email = "\u{1}".repeat(1000);
        let c = Cursor::new("customers", vec![org.clone(), email.clone()]);
        let text = c.encode(&key());
        assert!(text.len() <= MAX_CURSOR, "{}", text.len());
        assert_eq!(
            Cursor::decode(&text, "customers", 2, &key()).unwrap(),
            [org, email]
        );
    }

    /// Issue 12: a cursor this server did not sign is refused, however well-formed.
    #[test]
    fn a_forged_foreign_or_malformed_cursor_is_a_bad_cursor() {
        let c = Cursor::new("orders", vec!["x".into()]);
        let other = CursorKey::derive(Some(&Secret::new("another server")), &[]);
        let payload = URL_SAFE_NO_PAD.encode(b"orders\0x' OR 1=1 --");
        let forged = format!("{payload}.{}", URL_SAFE_NO_PAD.encode([0u8; 16]));
        let unsigned = payload.clone();
        for (text, listing, n) in [
            (c.encode(&key()), "customers", 1),
            (c.encode(&key()), "orders", 2),
            (c.encode(&other), "orders", 1),
            (forged, "orders", 1),
            (unsigned, "orders", 1),
            ("not base64!".to_owned(), "orders", 1),
            ("A".repeat(5000), "orders", 1),
        ] {
            let e = Cursor::decode(&text, listing, n, &key()).unwrap_err();
            assert!(
                matches!(
                    e,
                    ApiError::BadParam {
                        param: "cursor",
                        ..
                    }
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn limit_must_be_within_bounds() {
        assert_eq!(limit(None, 50, 500).unwrap(), 50);
        assert_eq!(limit(Some("500"), 50, 500).unwrap(), 500);
        for bad in [
            "0",
            "-1",
            "501",
            "1e3",
            "ten",
            "99999999999999999999",
            "+5",
            " 5",
        ] {
            assert!(
                matches!(
                    limit(Some(bad), 50, 500),
                    Err(ApiError::BadParam { param: "limit", .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_page_has_a_cursor_only_when_more_rows_follow() {
        let by = |n: &u32| Cursor::new("n", vec![n.to_string()]);
        let page = Page::from_rows(vec![1, 2, 3], 2, &key(), by);
        assert_eq!(page.items, [1, 2]);
        assert_eq!(
            Cursor::decode(page.next_cursor.as_deref().unwrap(), "n", 1, &key()).unwrap(),
            ["2"]
        );
        assert!(
            Page::from_rows(vec![1, 2], 2, &key(), by)
                .next_cursor
                .is_none()
        );
    }
}
