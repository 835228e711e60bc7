//! Simulated Showpass traffic, sent as Showpass sends it: every delivery retried until it gets
//! a 2xx, with a ledger of every answer.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use showpass_payload::signature::sign;
use showpass_payload::{Envelope, idempotency_key};
use showpass_simulate::{SimConfig, Simulator};

pub const SECRET: &str = "chaos-secret-4be1";

/// One delivery and what it is known by.
pub struct Delivery {
    pub body: Bytes,
    pub signature: String,
    /// The idempotency key: `Nats-Msg-Id` on the stream.
    pub key: String,
    /// What ingest answers it in the end.
    pub expect: Expect,
}

/// The answer a delivery ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Accepted (retried until it is), and applied.
    Applied,
    /// Signed poison: accepted, then recorded `failed` or `skipped` with its error, never
    /// applied.
    Poison,
    /// Signed poison ingest refuses at the door with this status (not retried).
    Refused(u16),
}

/// The same seeded traffic for the faulty run and the fault-free one.
pub fn traffic(seed: u64, count: usize) -> Vec<Delivery> {
    Simulator::new(SimConfig {
        seed,
        customers: 500,
        ..SimConfig::default()
    })
    .take(count)
    .map(|d| {
        let envelope = Envelope::parse(&d.body).expect("the simulator's deliveries parse");
        Delivery {
            key: idempotency_key(&envelope, &d.body),
            signature: sign(SECRET.as_bytes(), &d.id),
            body: Bytes::from(d.body),
            expect: Expect::Applied,
        }
    })
    .collect()
}

/// `count` signed poison deliveries, of every kind that once stopped or could stop the
/// projector, each in its own order so it touches nothing good.
pub fn poison(count: usize) -> Vec<Delivery> {
    use serde_json::{Value, json};
    (0..count)
        .map(|i| {
            let txn = format!("POISON-{i}");
            let ids = showpass_payload::samples::SampleIds {
                webhook_event_uuid: &format!("poison-{i}"),
                transaction_id: &txn,
                organization_id: "20",
            };
            let mut v = showpass_payload::samples::sample(
                showpass_payload::samples::SampleKind::Purchase,
                &ids,
            );
            let data = &mut v["data"];
            let mut expect = Expect::Poison;
            match i % 8 {
                // Issue 11: two lines whose sum overflowed the sales fold.
                0 => {
                    let line = data["invoice_items"][0].clone();
                    data["invoice_items"] = json!([line.clone(), line]);
                    for l in data["invoice_items"].as_array_mut().unwrap() {
                        l["net_sales"] = "79228162514264337593543950335".into();
                    }
                }
                1 => data["ticket_items"] = Value::Array(vec![json!({"id": 1}); 10_001]),
                2 => data["net_sales"] = "1\u{0}0".into(),
                3 => v["event_type"] = "invoice.exchange".into(),
                4 => data["net_sales"] = json!({"$gt": 0}),
                5 => data["invoice_items"][0]["quantity"] = 10_000_000.into(),
                6 => {
                    data.as_object_mut().unwrap().remove("transaction_id");
                }
                _ => expect = Expect::Refused(400),
            }
            let mut body = serde_json::to_vec(&v).unwrap();
            if expect == Expect::Refused(400) {
                // A repeated top-level key: refused at the door, as the projector would.
                body.pop();
                body.extend_from_slice(br#","event_type":"invoice.refund"}"#);
            }
            let envelope = Envelope::parse(&body).ok();
            Delivery {
                key: envelope
                    .as_ref()
                    .map_or_else(String::new, |e| idempotency_key(e, &body)),
                signature: sign(SECRET.as_bytes(), &txn),
                body: Bytes::from(body),
                expect,
            }
        })
        .collect()
}

/// Good traffic with poison mixed in at seeded random places.
pub fn mixed(mut good: Vec<Delivery>, poison: Vec<Delivery>, seed: u64) -> Vec<Delivery> {
    let mut state = seed | 1;
    for p in poison {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let at = (state % (good.len() as u64 + 1)) as usize;
        good.insert(at, p);
    }
    good
}

/// Every answer the senders got.
#[derive(Default)]
pub struct Ledger {
    acknowledged: Vec<AtomicBool>,
    attempts: AtomicU64,
    /// Refusals by kind: `503`, `connection failed`, `timed out`, or `unexpected NNN`.
    refusals: Mutex<BTreeMap<String, u64>>,
    /// 2xx answers received while a fault was active.
    pub acked_during_faults: AtomicU64,
    pub fault_active: AtomicBool,
}

impl Ledger {
    pub fn new(deliveries: usize) -> Self {
        Self {
            acknowledged: (0..deliveries).map(|_| AtomicBool::new(false)).collect(),
            ..Self::default()
        }
    }

    pub fn acknowledged(&self) -> usize {
        self.acknowledged
            .iter()
            .filter(|a| a.load(Ordering::Relaxed))
            .count()
    }

    pub fn is_acknowledged(&self, i: usize) -> bool {
        self.acknowledged[i].load(Ordering::Relaxed)
    }

    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    pub fn refusals(&self) -> BTreeMap<String, u64> {
        self.refusals.lock().unwrap().clone()
    }

    fn refused(&self, kind: String) {
        *self.refusals.lock().unwrap().entry(kind).or_default() += 1;
    }
}

/// Sends every delivery at about `rate` per second from `workers` senders, retrying each until
/// it is answered 2xx (as Showpass does), until all are acknowledged.
pub async fn send_all(
    addrs: &[SocketAddr],
    deliveries: &[Delivery],
    ledger: &Ledger,
    rate: f64,
    workers: usize,
) {
    let queue = Mutex::new(VecDeque::from_iter(
        (0..deliveries.len()).map(|i| (i, Instant::now(), 0usize)),
    ));
    let outstanding = AtomicU64::new(deliveries.len() as u64);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let next_send = Mutex::new(Instant::now());
    let worker = || async {
        loop {
            let job = queue.lock().unwrap().pop_front();
            let Some((i, not_before, tries)) = job else {
                if outstanding.load(Ordering::Relaxed) == 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            tokio::time::sleep_until(not_before.into()).await;
            let slot = {
                let mut next = next_send.lock().unwrap();
                let slot = (*next).max(Instant::now());
                *next = slot + interval;
                slot
            };
            tokio::time::sleep_until(slot.into()).await;
            ledger.attempts.fetch_add(1, Ordering::Relaxed);
            let refused_as_expected = |status| deliveries[i].expect == Expect::Refused(status);
            // A retry goes to the next ingest, as behind a load balancer.
            let addr = addrs[(i + tries) % addrs.len()];
            match post(addr, &deliveries[i]).await {
                Ok(status) if (200..300).contains(&status) || refused_as_expected(status) => {
                    ledger.acknowledged[i].store(true, Ordering::Relaxed);
                    if ledger.fault_active.load(Ordering::Relaxed) {
                        ledger.acked_during_faults.fetch_add(1, Ordering::Relaxed);
                    }
                    outstanding.fetch_sub(1, Ordering::Relaxed);
                    continue;
                }
                Ok(503) => ledger.refused("503".into()),
                Ok(status) => ledger.refused(format!("unexpected {status}")),
                Err(kind) => ledger.refused(kind.into()),
            }
            // Showpass retries later; so do we, after a short pause.
            let retry_at = Instant::now() + Duration::from_millis(200);
            queue.lock().unwrap().push_back((i, retry_at, tries + 1));
        }
    };
    futures::future::join_all((0..workers).map(|_| worker())).await;
}

/// One POST, on a new connection (the server may have died since the last one).
async fn post(addr: SocketAddr, d: &Delivery) -> Result<u16, &'static str> {
    let headers = [("X-SHOWPASS-SIGNATURE", d.signature.as_str())];
    let request =
        showpass_testkit::request(addr, "POST", "/webhooks/showpass", &headers, d.body.clone());
    match tokio::time::timeout(Duration::from_secs(10), request).await {
        Ok(Ok((status, _))) => Ok(status.as_u16()),
        Ok(Err(_)) => Err("connection failed"),
        Err(_) => Err("timed out"),
    }
}
