//! What unauthenticated traffic may cost: rejection records per source, and memory for bodies.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// How many rejections are recorded in the delivery log each minute: per source address, and
/// in all. Past either they are only counted. An IPv6 source is its /64, which one host
/// commonly holds whole; the total bounds what many sources (a /48 holds 65,536 /64s) can
/// write together. At most `MAX_SOURCES` addresses are tracked at once: when that many are
/// active in the same minute, rejections from new ones are only counted.
pub(crate) struct RecordRate {
    per_source: u32,
    total: u32,
    state: Mutex<RateState>,
}

struct RateState {
    sources: HashMap<IpAddr, Window>,
    all: Window,
    /// When a full map may next be swept for expired sources: at most every `SWEEP`, so a
    /// flood of new sources does not scan the map on every request.
    next_sweep: Instant,
}

#[derive(Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
}

impl Window {
    /// Counts one more in the minute unless `limit` is reached.
    fn take(&mut self, now: Instant, limit: u32) -> bool {
        if now.duration_since(self.started) >= WINDOW {
            *self = Window {
                started: now,
                count: 0,
            };
        }
        self.count < limit && {
            self.count += 1;
            true
        }
    }

    fn has_room(&self, now: Instant, limit: u32) -> bool {
        now.duration_since(self.started) >= WINDOW || self.count < limit
    }
}

const WINDOW: Duration = Duration::from_secs(60);
const SWEEP: Duration = Duration::from_secs(5);
const MAX_SOURCES: usize = 100_000;

impl RecordRate {
    pub fn new(per_source: u32, total: u32) -> Self {
        let now = Instant::now();
        Self {
            per_source,
            total,
            state: Mutex::new(RateState {
                sources: HashMap::new(),
                all: Window {
                    started: now,
                    count: 0,
                },
                next_sweep: now,
            }),
        }
    }

    /// Whether a rejection from `ip` is recorded (and counts toward its minute).
    pub fn allow(&self, ip: IpAddr) -> bool {
        self.allow_at(ip, Instant::now())
    }

    fn allow_at(&self, ip: IpAddr, now: Instant) -> bool {
        if self.per_source == 0 || self.total == 0 {
            return false;
        }
        let key = source(ip);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.all.has_room(now, self.total) {
            return false;
        }
        if state.sources.len() >= MAX_SOURCES && !state.sources.contains_key(&key) {
            if now < state.next_sweep {
                return false;
            }
            state.next_sweep = now + SWEEP;
            state
                .sources
                .retain(|_, w| now.duration_since(w.started) < WINDOW);
            if state.sources.len() >= MAX_SOURCES {
                return false;
            }
        }
        let per_source = self.per_source;
        let w = state.sources.entry(key).or_insert(Window {
            started: now,
            count: 0,
        });
        if !w.take(now, per_source) {
            return false;
        }
        let total = self.total;
        state.all.take(now, total)
    }
}

/// The source a rate is kept for: an IPv4 address, or an IPv6 /64.
fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut o = v6.octets();
                o[8..].fill(0);
                IpAddr::V6(o.into())
            }
        },
        v4 => v4,
    }
}

/// Memory for request bodies being read, in KiB, shared by every request: a flood of large
/// bodies waits for room instead of growing the process without bound. Three rules keep a
/// slow client from starving real deliveries of it:
/// - bodies that declare at most `SMALL_BODY` bytes (every real delivery) have a quarter of
///   the budget to themselves, which larger or undeclared bodies cannot take;
/// - one source holds at most an eighth of the budget in each lane: past it, its next body is
///   refused at once (503 `busy`), it does not wait. Per lane, so a source whose large bodies
///   crawl (or a proxy that sends for everyone) still has room for its deliveries;
/// - a body holds its room for at most the request deadline.
#[derive(Clone)]
pub(crate) struct BodyBudget {
    inner: Arc<Budget>,
}

struct Budget {
    small: Semaphore,
    large: Semaphore,
    small_kib: u32,
    large_kib: u32,
    per_source_kib: u32,
    by_source: Mutex<HashMap<(IpAddr, bool), u32>>,
}

/// Bodies declaring at most this many bytes use the small lane.
pub(crate) const SMALL_BODY: usize = 64 * 1024;

/// Why no room was given.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NoRoom {
    /// More than the whole budget (or lane) could ever hold.
    TooLarge,
    /// The source already holds its share.
    SourceFull,
}

/// Room held for one body; given back when dropped.
pub(crate) struct Held {
    share: Share,
    small: bool,
}

/// A source's part of what it holds; given back when dropped (also when the wait for room is
/// abandoned).
struct Share {
    budget: Arc<Budget>,
    /// The source, and whether it is the small lane.
    source: (IpAddr, bool),
    kib: u32,
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut by_source = self
            .budget
            .by_source
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(held) = by_source.get_mut(&self.source) {
            *held = held.saturating_sub(self.kib);
            if *held == 0 {
                by_source.remove(&self.source);
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let lane = if self.small {
            &self.share.budget.small
        } else {
            &self.share.budget.large
        };
        lane.add_permits(self.share.kib as usize);
    }
}

impl BodyBudget {
    pub fn new(bytes: usize) -> Self {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .max(4);
        let small_kib = kib / 4;
        let large_kib = kib - small_kib;
        Self {
            inner: Arc::new(Budget {
                small: Semaphore::new(small_kib as usize),
                large: Semaphore::new(large_kib as usize),
                small_kib,
                large_kib,
                per_source_kib: (kib / 8).max(1),
                by_source: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Room for a body of `bytes` from `from`, waiting for it unless the source already holds
    /// its share.
    pub async fn hold(&self, from: IpAddr, bytes: usize) -> Result<Held, NoRoom> {
        let want = u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        let small = bytes <= SMALL_BODY;
        let b = &self.inner;
        let lane_kib = if small { b.small_kib } else { b.large_kib };
        if want > lane_kib || want > b.per_source_kib {
            return Err(NoRoom::TooLarge);
        }
        let source = (source(from), small);
        let share = {
            let mut by_source = b.by_source.lock().unwrap_or_else(|p| p.into_inner());
            let held = by_source.entry(source).or_insert(0);
            if *held + want > b.per_source_kib {
                return Err(NoRoom::SourceFull);
            }
            *held += want;
            Share {
                budget: b.clone(),
                source,
                kib: want,
            }
        };
        let lane = if small { &b.small } else { &b.large };
        match lane.acquire_many(want).await {
            Ok(permit) => permit.forget(),
            Err(_) => return Err(NoRoom::TooLarge),
        }
        Ok(Held { share, small })
    }

    /// KiB free now in the small and large lanes.
    #[cfg(test)]
    pub fn available_kib(&self) -> (usize, usize) {
        (
            self.inner.small.available_permits(),
            self.inner.large.available_permits(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_source_gets_its_quota_a_minute() {
        let limit = RecordRate::new(3, 1000);
        let t0 = Instant::now();
        let a = ip("203.0.113.7");
        assert_eq!(
            (0..5).map(|_| limit.allow_at(a, t0)).collect::<Vec<_>>(),
            [true, true, true, false, false]
        );
        assert!(limit.allow_at(ip("203.0.113.8"), t0), "another source");
        assert!(limit.allow_at(a, t0 + WINDOW), "a new minute");
    }

    #[test]
    fn many_sources_together_get_the_total_a_minute() {
        let limit = RecordRate::new(60, 100);
        let t0 = Instant::now();
        // 65,536 /64s of one /48, one rejection each.
        let recorded = (0..65_536u32)
            .filter(|i| {
                let addr = format!("2001:db8:7:{:x}::1", i);
                limit.allow_at(ip(&addr), t0)
            })
            .count();
        assert_eq!(recorded, 100);
        assert!(
            limit.allow_at(ip("203.0.113.9"), t0 + WINDOW),
            "a new minute"
        );
    }

    #[test]
    fn a_full_map_of_sources_is_swept_at_most_every_few_seconds() {
        let limit = RecordRate::new(1, u32::MAX);
        let t0 = Instant::now();
        for i in 0..MAX_SOURCES as u32 {
            assert!(limit.allow_at(std::net::Ipv4Addr::from(i).into(), t0));
        }
        let newcomer = ip("2001:db8::1");
        // Swept once (nothing has expired): the newcomer is only counted, and so is the next
        // one, without another sweep.
        assert!(!limit.allow_at(newcomer, t0));
        let next_sweep = limit.state.lock().unwrap().next_sweep;
        assert!(!limit.allow_at(ip("2001:db8:1::1"), t0 + Duration::from_secs(1)));
        assert_eq!(limit.state.lock().unwrap().next_sweep, next_sweep);
        // A minute on, the sweep frees the map.
        assert!(limit.allow_at(newcomer, t0 + WINDOW));
        assert_eq!(limit.state.lock().unwrap().sources.len(), 1);
    }

    #[test]
    fn an_ipv6_host_cannot_rotate_through_its_64() {
        let limit = RecordRate::new(1, 1000);
        let t0 = Instant::now();
        assert!(limit.allow_at(ip("2001:db8::1"), t0));
        assert!(!limit.allow_at(ip("2001:db8::ffff:1234"), t0));
        assert!(limit.allow_at(ip("2001:db8:0:1::1"), t0));
        // An IPv4 address is one source however it is written.
        assert!(limit.allow_at(ip("::ffff:198.51.100.1"), t0));
        assert!(!limit.allow_at(ip("198.51.100.1"), t0));
    }

    #[test]
    fn zero_records_no_rejection() {
        assert!(!RecordRate::new(0, 100).allow(ip("203.0.113.7")));
        assert!(!RecordRate::new(100, 0).allow(ip("203.0.113.7")));
    }

    #[tokio::test]
    async fn the_budget_is_given_back_when_a_body_is_done() {
        // 8 MiB: small lane 2 MiB, large lane 6 MiB, 1 MiB a source.
        let budget = BodyBudget::new(8 << 20);
        let a = ip("203.0.113.7");
        let held = budget.hold(a, 1 << 20).await.unwrap();
        assert_eq!(budget.available_kib(), (2048, 6144 - 1024));
        drop(held);
        assert_eq!(budget.available_kib(), (2048, 6144));
        let small = budget.hold(a, 5000).await.unwrap();
        assert_eq!(budget.available_kib(), (2048 - 5, 6144));
        drop(small);
        assert_eq!(budget.available_kib(), (2048, 6144));
        assert_eq!(budget.inner.by_source.lock().unwrap().len(), 0);
    }

    #[tokio::test]
    async fn one_source_holds_at_most_its_share() {
        let budget = BodyBudget::new(8 << 20);
        let a = ip("203.0.113.7");
        let first = budget.hold(a, 600 << 10).await.unwrap();
        assert_eq!(
            budget.hold(a, 600 << 10).await.err(),
            Some(NoRoom::SourceFull),
            "refused at once, not queued"
        );
        assert!(budget.hold(ip("203.0.113.8"), 600 << 10).await.is_ok());
        assert!(
            budget.hold(a, 5000).await.is_ok(),
            "its small lane share is apart"
        );
        drop(first);
        assert!(budget.hold(a, 600 << 10).await.is_ok());
        assert_eq!(
            budget.hold(a, 2 << 20).await.err(),
            Some(NoRoom::TooLarge),
            "more than a source's share"
        );
    }

    #[tokio::test]
    async fn large_bodies_never_take_the_room_of_small_ones() {
        let budget = BodyBudget::new(8 << 20);
        // Six sources fill the large lane with undeclared (limit-sized) bodies.
        let mut large = Vec::new();
        for i in 0..6 {
            large.push(
                budget
                    .hold(ip(&format!("198.51.100.{i}")), 1 << 20)
                    .await
                    .unwrap(),
            );
        }
        let blocked = tokio::time::timeout(
            Duration::from_millis(50),
            budget.hold(ip("198.51.100.99"), 1 << 20),
        )
        .await;
        assert!(blocked.is_err(), "a seventh large body waits for room");
        let delivery = tokio::time::timeout(
            Duration::from_millis(50),
            budget.hold(ip("34.83.8.110"), 4_000),
        )
        .await;
        assert!(
            matches!(delivery, Ok(Ok(_))),
            "a delivery's room is its own"
        );
        // The abandoned wait gave its source's share back.
        assert!(
            !budget
                .inner
                .by_source
                .lock()
                .unwrap()
                .contains_key(&(ip("198.51.100.99"), false))
        );
    }
}
