//! What unauthenticated traffic may cost: rejection records per source, and memory for bodies.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// How many rejections per source address are recorded in the delivery log each minute;
/// past that they are only counted. An IPv6 source is its /64, which one host commonly holds
/// whole. At most `MAX_SOURCES` addresses are tracked at once: when that many are active in
/// the same minute, rejections from new ones are only counted.
pub(crate) struct PerSource {
    per_minute: u32,
    sources: Mutex<HashMap<IpAddr, Window>>,
}

#[derive(Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
}

const WINDOW: Duration = Duration::from_secs(60);
const MAX_SOURCES: usize = 100_000;

impl PerSource {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            sources: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a rejection from `ip` is recorded (and counts toward its minute).
    pub fn allow(&self, ip: IpAddr) -> bool {
        self.allow_at(ip, Instant::now())
    }

    fn allow_at(&self, ip: IpAddr, now: Instant) -> bool {
        if self.per_minute == 0 {
            return false;
        }
        let key = source(ip);
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        if sources.len() >= MAX_SOURCES && !sources.contains_key(&key) {
            sources.retain(|_, w| now.duration_since(w.started) < WINDOW);
            if sources.len() >= MAX_SOURCES {
                return false;
            }
        }
        let w = sources.entry(key).or_insert(Window {
            started: now,
            count: 0,
        });
        if now.duration_since(w.started) >= WINDOW {
            *w = Window {
                started: now,
                count: 0,
            };
        }
        if w.count < self.per_minute {
            w.count += 1;
            true
        } else {
            false
        }
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
/// bodies waits for room instead of growing the process without bound.
#[derive(Clone)]
pub(crate) struct BodyBudget {
    kib: Arc<Semaphore>,
    capacity: u32,
}

/// Room held for one body; given back when dropped.
pub(crate) struct Held {
    kib: Arc<Semaphore>,
    held: u32,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.kib.add_permits(self.held as usize);
    }
}

impl BodyBudget {
    pub fn new(bytes: usize) -> Self {
        let kib = bytes.div_ceil(1024).clamp(1, u32::MAX as usize);
        Self {
            kib: Arc::new(Semaphore::new(kib)),
            capacity: u32::try_from(kib).unwrap_or(u32::MAX),
        }
    }

    /// Nothing held yet.
    pub fn empty(&self) -> Held {
        Held {
            kib: self.kib.clone(),
            held: 0,
        }
    }

    /// Grows `held` to cover `bytes`, waiting for room. `false` when the budget can never
    /// hold that much.
    pub async fn grow(&self, held: &mut Held, bytes: usize) -> bool {
        let want = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        if want <= held.held {
            return true;
        }
        if want > self.capacity {
            return false;
        }
        match self.kib.clone().acquire_many_owned(want - held.held).await {
            Ok(permit) => {
                permit.forget();
                held.held = want;
                true
            }
            Err(_) => false,
        }
    }

    /// KiB free now.
    #[cfg(test)]
    pub fn available_kib(&self) -> usize {
        self.kib.available_permits()
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
        let limit = PerSource::new(3);
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
    fn an_ipv6_host_cannot_rotate_through_its_64() {
        let limit = PerSource::new(1);
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
        assert!(!PerSource::new(0).allow(ip("203.0.113.7")));
    }

    #[tokio::test]
    async fn the_budget_is_given_back_when_a_body_is_done() {
        let budget = BodyBudget::new(4 * 1024);
        let mut a = budget.empty();
        assert!(budget.grow(&mut a, 3000).await);
        assert_eq!(budget.available_kib(), 1);
        assert!(budget.grow(&mut a, 3100).await, "within what it holds");
        drop(a);
        assert_eq!(budget.available_kib(), 4);
        let mut waiting = budget.empty();
        let mut big = budget.empty();
        assert!(budget.grow(&mut big, 4096).await);
        let blocked =
            tokio::time::timeout(Duration::from_millis(50), budget.grow(&mut waiting, 10)).await;
        assert!(blocked.is_err(), "waits for room");
        drop(big);
        assert!(budget.grow(&mut waiting, 10).await);
    }
}
