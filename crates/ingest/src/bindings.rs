//! A signed `id` belongs to one organization: that of its first accepted delivery.
//!
//! Showpass signs only `id`, so whoever captured one `(id, signature)` pair could sign any
//! body with it. The first accepted delivery binds its `id` to its organization (and
//! transaction) in a JetStream key-value bucket with create-only writes, so the binding
//! survives restarts and is shared by every ingest replica. A later delivery with that `id`:
//! - for another organization: refused, 409 `id_conflict`;
//! - for the same organization but another transaction: accepted, its record marked suspect.
//!
//! Bindings never change once made, so each replica keeps the ones it has seen in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use async_nats::jetstream::kv::{self, CreateErrorKind};
use bytes::Bytes;
use showpass_payload::sha256_hex;

/// What a delivery's `id` was first accepted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Binding {
    pub org: String,
    pub transaction_id: String,
}

impl Binding {
    fn encode(&self) -> Bytes {
        Bytes::from(format!("{}\n{}", self.org, self.transaction_id))
    }

    fn decode(v: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(v).ok()?;
        let (org, transaction_id) = text.split_once('\n')?;
        Some(Self {
            org: org.to_owned(),
            transaction_id: transaction_id.to_owned(),
        })
    }
}

/// How a delivery stands against its `id`'s binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Check {
    /// First seen now, or seen before for the same organization and transaction.
    Agrees,
    /// Seen before for the same organization with another transaction.
    OtherTransaction(String),
    /// Seen before for another organization.
    OtherOrg(String),
}

/// Most bindings remembered in memory before the memory is cleared.
const CACHE: usize = 100_000;

pub(crate) struct Bindings {
    kv: kv::Store,
    seen: Mutex<HashMap<String, Binding>>,
}

impl Bindings {
    pub fn new(kv: kv::Store) -> Self {
        Self {
            kv,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Binds `id` to `mine` unless it is bound already, and says how `mine` stands.
    pub async fn check(&self, id: &str, mine: &Binding) -> Result<Check, kv::EntryError> {
        let key = sha256_hex(id.as_bytes());
        let known = self.remembered(&key);
        let first = match known {
            Some(b) => b,
            None => match self.kv.create(&key, mine.encode()).await {
                Ok(_) => {
                    self.remember(key, mine.clone());
                    return Ok(Check::Agrees);
                }
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                    let stored = self.kv.get(key.clone()).await?;
                    match stored.as_deref().and_then(Binding::decode) {
                        Some(b) => {
                            self.remember(key, b.clone());
                            b
                        }
                        // Unreadable (written by hand?): nothing to hold this delivery to.
                        None => return Ok(Check::Agrees),
                    }
                }
                Err(e) => {
                    return Err(kv::EntryError::with_source(kv::EntryErrorKind::Other, e));
                }
            },
        };
        Ok(if first.org != mine.org {
            Check::OtherOrg(first.org)
        } else if first.transaction_id != mine.transaction_id {
            Check::OtherTransaction(first.transaction_id)
        } else {
            Check::Agrees
        })
    }

    fn remembered(&self, key: &str) -> Option<Binding> {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    fn remember(&self, key: String, b: Binding) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= CACHE {
            seen.clear();
        }
        seen.insert(key, b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binding_reads_back_as_written() {
        let b = Binding {
            org: "20".into(),
            transaction_id: "T-1".into(),
        };
        assert_eq!(Binding::decode(&b.encode()), Some(b));
        assert_eq!(Binding::decode(b"no newline"), None);
    }
}
