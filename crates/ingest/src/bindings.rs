//! A signed `id` belongs to one organization: that of its first accepted delivery.
//!
//! Showpass signs only `id`, so whoever captured one `(id, signature)` pair could sign any
//! body with it. The first accepted delivery binds its `id` to its organization (and
//! transaction) in a JetStream key-value bucket with create-only writes, so the binding
//! survives restarts and is shared by every ingest replica. A later delivery with that `id`:
//! - for another organization: refused, 409 `id_conflict`;
//! - for the same organization but another transaction: accepted, its record marked suspect.
//!
//! Bindings never change once made, so each replica remembers the ones it has seen: 24 bytes
//! each (a 128-bit prefix of the key, a 64-bit digest of the binding), at most `CACHE`.
//! Ids accepted before bindings existed are bound by `showpass migrate` ([`backfill`]), from
//! the events stream, the first delivery of each id winning.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::kv::CreateErrorKind;
use async_nats::jetstream::{self, consumer::pull, kv};
use bytes::Bytes;
use futures::StreamExt as _;
use showpass_core::nats::NatsConfig;
use showpass_payload::{Envelope, sha256_hex, subject};

/// What a delivery's `id` was first accepted for: the organization and transaction exactly as
/// the signed body holds them (`subject::MISSING` for none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Binding {
    pub org: String,
    pub transaction_id: String,
}

impl Binding {
    /// The binding a delivery asks for.
    pub fn of(envelope: &Envelope<'_>) -> Self {
        let field = |v: &Option<std::borrow::Cow<'_, str>>| {
            v.as_deref().unwrap_or(subject::MISSING).to_owned()
        };
        Self {
            org: field(&envelope.organization_id),
            transaction_id: field(&envelope.transaction_id),
        }
    }

    fn encode(&self) -> Bytes {
        Bytes::from(
            serde_json::to_vec(&(&self.org, &self.transaction_id)).expect("strings serialize"),
        )
    }

    /// A digest of the binding: equal bindings have equal digests, and another binding with
    /// the same one is a SHA-256 second preimage away.
    fn digest(&self) -> u64 {
        let hex = sha256_hex(&self.encode());
        u64::from_str_radix(&hex[..16], 16).expect("hex")
    }

    fn decode(v: &[u8]) -> Option<Self> {
        let (org, transaction_id) = serde_json::from_slice::<(String, String)>(v).ok()?;
        Some(Self {
            org,
            transaction_id,
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
    /// Bound, but the binding does not read (written by hand?): nothing to hold the delivery
    /// to, so it is not accepted.
    Unreadable,
}

/// Most bindings remembered in memory before the memory is cleared (about 3 MB).
const CACHE: usize = 100_000;

pub(crate) struct Bindings {
    kv: kv::Store,
    /// Key prefix → digest of the binding, for the ids this replica has seen.
    seen: Mutex<HashMap<u128, u64>>,
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
        let short = u128::from_str_radix(&key[..32], 16).expect("hex");
        let digest = mine.digest();
        if self.remembered(short) == Some(digest) {
            return Ok(Check::Agrees);
        }
        // Not seen here, or seen with another binding (whose details the bucket holds).
        let first = match self.kv.create(&key, mine.encode()).await {
            Ok(_) => {
                self.remember(short, digest);
                return Ok(Check::Agrees);
            }
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                let stored = self.kv.get(key.clone()).await?;
                match stored.as_deref().and_then(Binding::decode) {
                    Some(b) => {
                        self.remember(short, b.digest());
                        b
                    }
                    None => return Ok(Check::Unreadable),
                }
            }
            Err(e) => {
                return Err(kv::EntryError::with_source(kv::EntryErrorKind::Other, e));
            }
        };
        Ok(if first.org != mine.org {
            Check::OtherOrg(first.org)
        } else if first.transaction_id != mine.transaction_id {
            Check::OtherTransaction(first.transaction_id)
        } else {
            Check::Agrees
        })
    }

    fn remembered(&self, short: u128) -> Option<u64> {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&short)
            .copied()
    }

    fn remember(&self, short: u128, digest: u64) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= CACHE {
            seen.clear();
        }
        seen.insert(short, digest);
    }
}

/// The key that says the events stream has been backfilled (bindings' own keys are SHA-256
/// hex, which never collides with it).
const BACKFILLED: &str = "backfilled";

/// How many ids are bound at once while backfilling.
const BACKFILL_CHUNK: usize = 256;

/// Binds every id the events stream holds, unless bound already, to the organization and
/// transaction of its first delivery. Ingest binds each id it accepts, so this is needed once,
/// for the ids accepted before bindings existed (a signature captured from those could
/// otherwise be sent first for another organization); a marker in the bucket records that it
/// was done, and later runs return at once. Returns how many ids it bound.
pub async fn backfill(js: &jetstream::Context, config: &NatsConfig) -> anyhow::Result<u64> {
    let bucket = config.bindings_bucket();
    let kv = js
        .get_key_value(&bucket)
        .await
        .with_context(|| format!("opening the key-value bucket {bucket}"))?;
    if kv.get(BACKFILLED).await?.is_some() {
        return Ok(0);
    }
    let stream_name = config.events_stream();
    let mut stream = js
        .get_stream(&stream_name)
        .await
        .with_context(|| format!("opening stream {stream_name}"))?;
    let state = stream.info().await?.state.clone();
    let mut bound = 0;
    if state.messages > 0 {
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: state.first_sequence,
                },
                ..Default::default()
            })
            .await?;
        let mut messages = consumer.messages().await?;
        let mut chunk: Vec<(String, Binding)> = Vec::with_capacity(BACKFILL_CHUNK);
        loop {
            let Some(m) = tokio::time::timeout(Duration::from_secs(30), messages.next())
                .await
                .context("the events stream stopped delivering")?
            else {
                break;
            };
            let m = m?;
            let info = m
                .info()
                .map_err(|e| anyhow::anyhow!("a message without readable metadata: {e}"))?;
            let (seq, pending) = (info.stream_sequence, info.pending);
            if seq > state.last_sequence {
                break;
            }
            // A body that does not parse now was never accepted by this ingest's rules: it
            // binds nothing.
            if let Ok(envelope) = Envelope::parse(&m.payload) {
                let key = sha256_hex(envelope.id.as_bytes());
                // Within a chunk, as across chunks, the first delivery of an id wins.
                if !chunk.iter().any(|(k, _)| *k == key) {
                    chunk.push((key, Binding::of(&envelope)));
                }
            }
            let end = seq >= state.last_sequence || pending == 0;
            if end || chunk.len() >= BACKFILL_CHUNK {
                bound += bind_all(&kv, &mut chunk).await?;
            }
            if end {
                break;
            }
        }
        bound += bind_all(&kv, &mut chunk).await?;
    }
    kv.put(BACKFILLED, Bytes::from(state.last_sequence.to_string()))
        .await
        .context("recording that the bindings are backfilled")?;
    tracing::info!(
        bound,
        through = state.last_sequence,
        "id bindings backfilled"
    );
    Ok(bound)
}

/// Creates the chunk's bindings at once; those that exist already stay as they are.
async fn bind_all(kv: &kv::Store, chunk: &mut Vec<(String, Binding)>) -> anyhow::Result<u64> {
    let created = futures::future::try_join_all(chunk.drain(..).map(|(key, binding)| async move {
        match kv.create(&key, binding.encode()).await {
            Ok(_) => Ok(1),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(0),
            Err(e) => Err(anyhow::Error::new(e).context("creating an id binding")),
        }
    }))
    .await?;
    Ok(created.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binding_reads_back_as_written() {
        let b = Binding {
            org: "2\n0".into(),
            transaction_id: "T-1".into(),
        };
        assert_eq!(Binding::decode(&b.encode()), Some(b));
        assert_eq!(Binding::decode(b"20\nT-1"), None);
    }
}
