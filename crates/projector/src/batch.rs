//! One decode path for a stream message, live or in a rebuild: its headers read into a
//! [`Meta`], an event planned, and the batch it joins, bounded and applied the same way.

use std::time::Duration;

use async_nats::HeaderMap;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tracing::Instrument as _;

use crate::apply::{self, ApplyError, Incoming, Tally};
use crate::meta::Meta;

/// The fewest events worth splitting into lanes: a smaller batch (what live traffic makes, a
/// few events each) is one transaction, as lanes would only add a transaction to it (the
/// checkpoint's) and the time to the next batch.
pub const MIN_SPLIT: usize = 64;

/// Which of the two streams a message comes from, and so what applying it means: an event
/// changes the read models, a delivery record only the delivery log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Events,
    Deliveries,
}

/// How large a batch may grow: in messages, in weight (lines and tickets, see
/// [`Incoming::weight`]), in body bytes, and in time once its first message is in.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub messages: usize,
    pub weight: usize,
    pub bytes: usize,
    pub linger: Duration,
}

impl BatchLimits {
    /// The live projector's bounds.
    pub fn live(batch_size: usize, linger: Duration) -> Self {
        Self {
            linger,
            ..Self::for_rebuild(batch_size)
        }
    }

    /// The same bounds, without a linger (a rebuild reads what is already stored).
    pub fn for_rebuild(batch_size: usize) -> Self {
        Self {
            messages: batch_size.max(1),
            weight: 50_000,
            bytes: 8 * 1024 * 1024,
            linger: Duration::ZERO,
        }
    }
}

/// Messages of one stream, decoded as they are taken in, to be applied in one transaction, or
/// one per lane (see [`apply::order_by_lane`] and [`apply::apply_parallel`]).
#[derive(Debug)]
pub struct Batch {
    source: Source,
    events: Vec<Incoming>,
    /// How many lanes its events are split into when applied.
    lanes: usize,
    /// Once split, the events are in lane order, and these are the lanes' lengths.
    lane_lengths: Option<Vec<usize>>,
    records: Vec<Meta>,
    weight: usize,
    bytes: usize,
}

impl Batch {
    /// An empty batch, its events to be applied over `lanes` connections.
    pub fn new(source: Source, lanes: usize) -> Self {
        Self {
            source,
            events: Vec::new(),
            lanes: lanes.max(1),
            lane_lengths: None,
            records: Vec::new(),
            weight: 0,
            bytes: 0,
        }
    }

    /// Decodes message `seq` of `stream` (what its headers say, and for an event, its plan)
    /// and takes it in.
    pub fn push(
        &mut self,
        stream: &str,
        seq: u64,
        headers: Option<&HeaderMap>,
        published: DateTime<Utc>,
        body: &[u8],
    ) {
        let meta = Meta::from_headers(stream, seq, headers, published);
        self.bytes = self.bytes.saturating_add(body.len());
        match self.source {
            Source::Events => {
                let one = Incoming::plan(meta, body);
                self.weight = self.weight.saturating_add(one.weight());
                self.events.push(one);
            }
            Source::Deliveries => {
                self.weight = self.weight.saturating_add(1);
                self.records.push(meta);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.events.len() + self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether it has reached one of its limits.
    pub fn full(&self, limits: &BatchLimits) -> bool {
        self.len() >= limits.messages || self.weight >= limits.weight || self.bytes >= limits.bytes
    }

    /// Applies the batch in one transaction (event by event if the data makes the whole
    /// impossible), or its events in one per lane over `conn` and `more`, inside a `batch`
    /// span that gives its size and time.
    pub async fn apply(
        &mut self,
        conn: &mut PgConnection,
        more: &mut [PgConnection],
        stream: &str,
    ) -> Result<Tally, ApplyError> {
        let span = tracing::info_span!(
            "batch",
            stream,
            messages = self.len(),
            lanes = self.lanes,
            weight = self.weight,
            elapsed_ms = tracing::field::Empty,
        );
        async {
            let started = std::time::Instant::now();
            let tally = match self.source {
                Source::Events if self.lanes > 1 && self.events.len() >= MIN_SPLIT => {
                    // Ordered once, moving the events, not copying them: a retry applies
                    // the same lanes again.
                    let lengths = match &self.lane_lengths {
                        Some(l) if l.iter().sum::<usize>() == self.events.len() => l.clone(),
                        _ => {
                            // From stream order, whatever was pushed since.
                            self.events.sort_by_key(|e| e.meta.seq);
                            let l = apply::order_by_lane(&mut self.events, self.lanes);
                            self.lane_lengths = Some(l.clone());
                            l
                        }
                    };
                    let mut rest = self.events.as_slice();
                    let lanes: Vec<&[Incoming]> = lengths
                        .iter()
                        .map(|&n| {
                            let (lane, after) = rest.split_at(n.min(rest.len()));
                            rest = after;
                            lane
                        })
                        .collect();
                    apply::apply_parallel(conn, more, stream, &lanes).await
                }
                Source::Events => apply::apply_resilient(conn, stream, &self.events).await,
                Source::Deliveries => {
                    apply::apply_records_resilient(conn, stream, &self.records).await
                }
            };
            let elapsed = started.elapsed();
            tracing::Span::current().record("elapsed_ms", elapsed.as_secs_f64() * 1e3);
            tracing::debug!(?elapsed, ?tally, "batch applied");
            tally
        }
        .instrument(span)
        .await
    }

    /// Empties it for the next batch.
    pub fn clear(&mut self) {
        *self = Self::new(self.source, self.lanes);
    }
}
