//! The cluster, tried for real: three nats-servers as one JetStream cluster (streams at 3
//! replicas), two ingests and an active and a standby projector. Under steady traffic, the
//! stream leader's server is killed, then the active projector, then one ingest, then the
//! server that became leader next. Nothing acknowledged may be lost, nothing applied twice,
//! and the read models must equal a fault-free run's; each recovery is timed.
//!
//! - short run (CI): `cargo test -p showpass-e2e --test chaos cluster`
//! - long run: `FAILOVER_DELIVERIES=20000 FAILOVER_RATE=200 cargo test --release -p
//!   showpass-e2e --test chaos cluster -- --nocapture`

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::ServerAddr;
use async_nats::jetstream;
use showpass_testkit::PrivateNats;
use sqlx::PgPool;

use crate::bin::Within as _;
use crate::cluster::{Part, Postgres};
use crate::nats_cluster::NatsCluster;
use crate::traffic::{self, Ledger};
use crate::{Plan, Platform, bin, run_once, verify};

/// What was killed, and how long until the platform did its work again without it.
struct Recovery {
    what: String,
    /// Until a new stream leader, a new active projector, or deliveries accepted again.
    took_over: Duration,
    /// Until every event the stream held at the kill was applied (the killed part still down).
    caught_up: Duration,
}

struct Services {
    cluster: NatsCluster,
    ingests: [Part; 2],
    addrs: [SocketAddr; 2],
    projectors: [Part; 2],
    /// Which projector holds the leadership now.
    active: usize,
    js: jetstream::Context,
    pool: PgPool,
    events: String,
}

impl Services {
    async fn leader(&self) -> Option<String> {
        let mut stream = self.js.get_stream(&self.events).await.ok()?;
        stream.info().await.ok()?.cluster.as_ref()?.leader.clone()
    }

    /// Every replica of the events stream is current (a node put back has caught up).
    async fn replicas_current(&self) -> bool {
        let Ok(mut stream) = self.js.get_stream(&self.events).await else {
            return false;
        };
        let Ok(info) = stream.info().await else {
            return false;
        };
        info.cluster.as_ref().is_some_and(|c| {
            c.leader.is_some() && c.replicas.len() == 2 && c.replicas.iter().all(|r| r.current)
        })
    }

    /// Waits until the projector has applied what the stream held at `since`'s start.
    async fn applied_all_of(&self, target: u64, since: Instant, what: &str) -> Duration {
        loop {
            if verify::checkpoint(&self.pool, &self.events)
                .await
                .is_some_and(|c| c >= target)
            {
                return since.elapsed();
            }
            assert!(
                since.elapsed() < Duration::from_secs(120),
                "nothing applied within 2 minutes of {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn last_seq(&self) -> u64 {
        loop {
            if let Some(seq) = verify::last_seq(&self.js, &self.events).await {
                return seq;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the events stream's leader; answers when a new one leads and the projector has
    /// applied everything stored before the kill; then puts the node back and waits until
    /// it is current again.
    async fn kill_leader(&mut self, ledger: &Ledger, hold: Duration, what: &str) -> Recovery {
        let leader = loop {
            if let Some(l) = self.leader().await {
                break l;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let node = self.cluster.index_of(&leader).expect("a known node leads");
        let target = self.last_seq().await;
        let acked = ledger.acknowledged();
        let killed = Instant::now();
        self.cluster.kill(node);
        // A new leader, and deliveries acknowledged again (through it).
        loop {
            let led = self.leader().await.is_some_and(|l| l != leader);
            if led && ledger.acknowledged() > acked {
                break;
            }
            assert!(
                killed.elapsed() < Duration::from_secs(60),
                "no new leader within a minute of {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took_over = killed.elapsed();
        let caught_up = self.applied_all_of(target, killed, what).await;
        tokio::time::sleep(hold.saturating_sub(killed.elapsed())).await;
        self.cluster.restart(node);
        let back = Instant::now();
        while !self.replicas_current().await {
            assert!(
                back.elapsed() < Duration::from_secs(60),
                "node {leader} not current within a minute of its restart"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Recovery {
            what: format!("{what} ({leader})"),
            took_over,
            caught_up,
        }
    }

    /// Kills the active projector: the standby takes the leadership and applies everything
    /// the stream held at the kill. The killed one comes back as the standby.
    async fn kill_active_projector(&mut self, hold: Duration) -> Recovery {
        let target = self.last_seq().await;
        let before = verify::checkpoint(&self.pool, &self.events)
            .await
            .unwrap_or(0);
        let killed = Instant::now();
        let active = self.active;
        self.projectors[active].kill();
        // Taken over: the checkpoint moves again.
        loop {
            if verify::checkpoint(&self.pool, &self.events)
                .await
                .is_some_and(|c| c > before)
            {
                break;
            }
            assert!(
                killed.elapsed() < Duration::from_secs(60),
                "the standby did not take over within a minute"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took_over = killed.elapsed();
        let caught_up = self
            .applied_all_of(target.max(before + 1), killed, "the projector kill")
            .await;
        tokio::time::sleep(hold.saturating_sub(killed.elapsed())).await;
        self.projectors[active].start();
        self.active = 1 - active;
        Recovery {
            what: "SIGKILL the active projector".into(),
            took_over,
            caught_up,
        }
    }

    /// Kills one ingest: deliveries go on through the other.
    async fn kill_ingest(&mut self, i: usize, ledger: &Ledger, hold: Duration) -> Recovery {
        let target = self.last_seq().await;
        let acked = ledger.acknowledged();
        let killed = Instant::now();
        self.ingests[i].kill();
        while ledger.acknowledged() <= acked {
            assert!(
                killed.elapsed() < Duration::from_secs(60),
                "no delivery accepted within a minute of an ingest kill"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let took_over = killed.elapsed();
        let caught_up = self.applied_all_of(target, killed, "the ingest kill").await;
        tokio::time::sleep(hold.saturating_sub(killed.elapsed())).await;
        self.ingests[i].start();
        Recovery {
            what: format!("SIGKILL ingest {}", i + 1),
            took_over,
            caught_up,
        }
    }
}

/// Whether a projector holds the leadership (its session's advisory lock).
async fn leadership_taken(pool: &PgPool) -> bool {
    sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted",
    )
    .fetch_one(pool)
    .await
    .is_ok_and(|n| n > 0)
}

fn run(deliveries: usize, rate: f64, hold: Duration) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let logs = tempfile::tempdir().unwrap();
    let good = traffic::traffic(13, deliveries);
    let cluster = NatsCluster::start();
    let postgres = Postgres::start();
    let database_url = postgres.url("failover");
    let prefix = "failover".to_owned();
    let env = |more: &[(&str, String)]| -> Vec<(String, String)> {
        [
            ("NATS_URL", cluster.urls()),
            ("NATS_STREAM_REPLICAS", "3".to_owned()),
            ("NATS_SUBJECT_PREFIX", prefix.clone()),
            ("DATABASE_URL", database_url.clone()),
            ("SHOWPASS_WEBHOOK_SECRET", traffic::SECRET.to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ]
        .into_iter()
        .chain(more.iter().cloned())
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    };
    // The cluster elects its meta leader in a moment: provision once it has one.
    let started = Instant::now();
    loop {
        let migrate = std::process::Command::new(&*bin::BIN)
            .arg("migrate")
            .env_clear()
            .envs(env(&[]))
            .output_within(Duration::from_secs(120));
        if migrate.status.success() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "showpass migrate on the cluster: {}",
            String::from_utf8_lossy(&migrate.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let ports = [bin::free_port(), bin::free_port()];
    let addrs = ports.map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
    let ingests = [0, 1].map(|i| {
        Part::new(
            "ingest",
            env(&[("INGEST_ADDR", addrs[i].to_string())]),
            logs.path().join(format!("ingest-{}.log", i + 1)),
        )
    });
    let projectors = [0, 1].map(|i| {
        Part::new(
            "projector",
            env(&[]),
            logs.path().join(format!("projector-{}.log", i + 1)),
        )
    });
    let nats_config = showpass_core::nats::NatsConfig::local(prefix.clone());
    let servers: Vec<ServerAddr> = cluster
        .urls()
        .split(',')
        .map(|u| u.parse().unwrap())
        .collect();

    let (ledger, accounting, models, recoveries) = rt.block_on(async {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&database_url)
            .await
            .unwrap();
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connect(servers)
            .await
            .unwrap();
        let mut s = Services {
            cluster,
            ingests,
            addrs,
            projectors,
            active: 0,
            js: jetstream::new(client),
            pool,
            events: nats_config.events_stream(),
        };
        for ingest in &mut s.ingests {
            ingest.start();
        }
        for addr in s.addrs {
            let up = Instant::now();
            while !matches!(showpass_testkit::get(addr, "/readyz").await,
                            Ok((status, _)) if status.is_success())
            {
                assert!(up.elapsed() < Duration::from_secs(60), "ingest not ready");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        // The first projector takes the leadership; the second waits as the standby.
        s.projectors[0].start();
        let up = Instant::now();
        while !leadership_taken(&s.pool).await {
            assert!(up.elapsed() < Duration::from_secs(60), "no projector leads");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        s.projectors[1].start();

        let ledger = Arc::new(Ledger::new(good.len()));
        let addrs = s.addrs;
        let send = traffic::send_all(&addrs, &good, &ledger, rate, 16);
        let faults = async {
            let gap = Duration::from_secs(2);
            let mut done = Vec::new();
            tokio::time::sleep(gap).await;
            done.push(
                s.kill_leader(&ledger, hold, "SIGKILL the stream leader")
                    .await,
            );
            tokio::time::sleep(gap).await;
            done.push(s.kill_active_projector(hold).await);
            tokio::time::sleep(gap).await;
            done.push(s.kill_ingest(0, &ledger, hold).await);
            tokio::time::sleep(gap).await;
            done.push(
                s.kill_leader(&ledger, hold, "SIGKILL the next leader")
                    .await,
            );
            done
        };
        let ((), recoveries) = tokio::join!(send, faults);
        let deliveries = nats_config.deliveries_stream();
        verify::caught_up(&s.js, &s.pool, [&s.events, &deliveries]).await;
        let accounting = verify::account(&s.js, &s.pool, &s.events, &good, &ledger).await;
        let models = verify::read_models(&s.pool).await;
        for (i, p) in s.projectors.iter_mut().enumerate() {
            assert!(p.exited().is_none(), "projector {} exited by itself", i + 1);
        }
        (ledger, accounting, models, recoveries)
    });

    // The same traffic without faults, on one nats-server.
    let mut reference = Platform::start(
        PrivateNats::start(),
        Postgres::start(),
        "reference",
        logs.path(),
        1,
    );
    let plan = Plan {
        deliveries,
        poison: 0,
        rate: 1e9,
        rounds: 0,
        hold,
        long_hold: hold,
        gap: hold,
        parallelism: 1,
    };
    let (_, _, reference_models, _) = rt.block_on(run_once(&mut reference, &plan, &good, false));
    let differences = verify::differences(&models, &reference_models);

    println!();
    println!(
        "cluster fail-over: {} deliveries at {rate}/s, 3 nats-servers (R3), 2 ingests, 2 projectors",
        good.len()
    );
    println!(
        "acknowledged {} of {}, lost {}, applied twice {}, attempts {}, refusals {:?}",
        ledger.acknowledged(),
        good.len(),
        accounting.lost_from_stream + accounting.not_applied,
        accounting.applied_twice,
        ledger.attempts(),
        ledger.refusals()
    );
    println!("| killed | taken over s | all applied s |");
    println!("|---|---:|---:|");
    for r in &recoveries {
        println!(
            "| {} | {:.2} | {:.2} |",
            r.what,
            r.took_over.as_secs_f64(),
            r.caught_up.as_secs_f64()
        );
    }
    let keep_logs = || {
        let kept = logs.path().to_path_buf();
        std::mem::forget(logs);
        kept
    };
    assert_eq!(
        ledger.acknowledged(),
        good.len(),
        "every delivery acknowledged in the end"
    );
    assert_eq!(
        (accounting.lost_from_stream, accounting.not_applied),
        (0, 0),
        "acknowledged but lost: {:?}",
        accounting.processing
    );
    assert_eq!(accounting.applied_twice, 0, "applied twice");
    assert!(
        differences.is_empty(),
        "read models differ from the fault-free run (logs in {:?}):\n{}",
        keep_logs(),
        differences.join("\n")
    );
}

/// The CI run: a few thousand deliveries while the four kills happen.
#[test]
fn a_cluster_loses_nothing_when_its_leader_projector_and_ingest_die() {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<f64>().ok());
    run(
        var("FAILOVER_DELIVERIES").map_or(2_500, |n| n as usize),
        var("FAILOVER_RATE").unwrap_or(80.0),
        Duration::from_secs(3),
    );
}
