//! Issue 17: a batch applied over several connections at once (`PROJECTOR_PARALLELISM`) keeps
//! every guarantee of one transaction: the same read models, exactly once, and a checkpoint
//! that moves only once every lane has committed.

use showpass_payload::samples::SampleKind::Purchase;
use showpass_projector::{Batch, ProjectorConfig, Source};
use showpass_simulate::{SimConfig, Simulator};
use showpass_testkit::*;
use sqlx::{Connection, PgConnection, PgPool};

async fn connect(pool: &PgPool) -> PgConnection {
    PgConnection::connect_with(&pool.connect_options())
        .await
        .unwrap()
}

async fn checkpoint(pool: &PgPool, stream: &str) -> i64 {
    sqlx::query_scalar("SELECT COALESCE((SELECT last_seq FROM checkpoints WHERE stream = $1), 0)")
        .bind(stream)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn orders(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// `count` simulated deliveries through ingest, projected live over `parallelism` lanes in
/// batches of up to `batch_size`, until caught up; the projector is stopped, ingest returned.
async fn project_live(
    pool: &PgPool,
    sim: SimConfig,
    count: usize,
    parallelism: usize,
    batch_size: usize,
) -> TestIngest {
    let ingest = TestIngest::start().await;
    let projector = TestProjector::start(&ingest, pool, |c| {
        c.parallelism = parallelism;
        c.batch_size = batch_size;
    });
    for d in Simulator::new(sim).take(count) {
        let (status, answer) = ingest.deliver(&d.body).await;
        assert!(status.is_success(), "{answer}");
    }
    caught_up(&ingest, pool).await;
    projector.stop().await;
    ingest
}

/// 80 purchases by 80 customers, split over two lanes. The second lane's connection dies: the first lane's
/// orders stand, and the checkpoint does not move past the second's. Applied again, the
/// batch applies the second lane's events and knows the first's.
#[sqlx::test(migrations = "../../migrations")]
async fn a_lane_that_fails_holds_the_checkpoint_and_the_batch_applies_again_once(pool: PgPool) {
    let stream = "T_EVENTS";
    const N: i64 = 80;
    assert!(
        N as usize >= showpass_projector::MIN_SPLIT,
        "a batch worth splitting"
    );
    let mut batch = Batch::new(Source::Events, 2);
    for seq in 1..=N as u64 {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Showpass-Delivery-Id",
            uuid::Uuid::new_v4().to_string().as_str(),
        );
        let body = edit(
            &sample_body(Purchase, &format!("u-{seq}"), &format!("T{seq}"), "20"),
            |v| v["data"]["customer_email"] = format!("buyer{seq}@example.com").into(),
        );
        batch.push(stream, seq, Some(&headers), chrono::Utc::now(), &body);
    }
    let mut first = connect(&pool).await;
    let mut second = connect(&pool).await;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut second)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&pool)
        .await
        .unwrap();

    let lost = batch
        .apply(&mut first, std::slice::from_mut(&mut second), stream)
        .await;
    assert!(lost.is_err(), "a lane's connection died: {lost:?}");
    let half = orders(&pool).await;
    assert!(
        (1..N).contains(&half),
        "one lane committed, the other did not: {half} orders"
    );
    assert_eq!(checkpoint(&pool, stream).await, 0);

    let mut second = connect(&pool).await;
    let tally = batch
        .apply(&mut first, std::slice::from_mut(&mut second), stream)
        .await
        .unwrap();
    assert_eq!(tally.applied as i64, N - half, "{tally:?}");
    assert_eq!(tally.already as i64, half, "{tally:?}");
    assert_eq!(orders(&pool).await, N);
    assert_eq!(checkpoint(&pool, stream).await, N);
    let spent: rust_decimal::Decimal = sqlx::query_scalar("SELECT sum(total_spent) FROM customers")
        .fetch_one(&pool)
        .await
        .unwrap();
    let net: rust_decimal::Decimal = sqlx::query_scalar("SELECT sum(net_sales) FROM orders")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(spent, net, "each order counted once in its customer");
}

/// One organization's on-sale with few customers (so one customer's orders fall in several
/// lanes of a batch, and every lane adds to the same sales cells), with refunds, voids,
/// transfers and resends: projected live over four lanes, then rebuilt over one and over
/// four, the read models are the same row for row.
#[sqlx::test(migrations = "../../migrations")]
async fn lanes_build_exactly_the_read_models_one_transaction_builds(pool: PgPool) {
    let sim = SimConfig {
        seed: 17,
        organizations: 1,
        shows_per_organization: 2,
        ticket_types_per_show: 2,
        customers: 25,
    };
    let ingest = project_live(&pool, sim, 1_200, 4, 200).await;
    let live = snapshot(&pool).await;
    assert!(
        live.iter()
            .any(|(t, rows)| t == "customers" && rows.len() == 25),
        "every customer bought"
    );

    let db = pool.connect_options().get_database().unwrap().to_owned();
    for parallelism in [1, 4] {
        let config = ProjectorConfig {
            parallelism,
            batch_size: 200,
            ..ProjectorConfig::local(ingest.config.nats.clone(), database_of(&db))
        };
        showpass_projector::rebuild(&config, &mut |_, _, _| {})
            .await
            .unwrap();
        let rebuilt = snapshot(&pool).await;
        for ((table, want), (_, got)) in live.iter().zip(&rebuilt) {
            assert!(
                want == got,
                "{table} rebuilt over {parallelism} lanes differs: {} rows live, {} rebuilt",
                want.len(),
                got.len()
            );
        }
        assert_eq!(rebuilt.len(), live.len());
    }
}

/// A deadlock through a lane and another connection, made on purpose (a cycle between two
/// lanes cannot be timed from outside; the retry is the same): a stranger holds a customer's row
/// that a lane is about to update, and then asks for a lock that lane holds. PostgreSQL
/// breaks the cycle by aborting the lane (40P01; the stranger's `deadlock_timeout` is set long
/// so that the lane's check comes first). The lane is applied again once the stranger is
/// gone: every event is applied once, the customer's totals count both orders, and the
/// checkpoint reaches the batch's end.
#[sqlx::test(migrations = "../../migrations")]
async fn a_lane_that_loses_a_deadlock_is_applied_again_and_nothing_twice(pool: PgPool) {
    let stream = "T_EVENTS";
    let body_for = |seq: u64, email: &str| {
        edit(
            &sample_body(Purchase, &format!("u-{seq}"), &format!("T{seq}"), "20"),
            |v| v["data"]["customer_email"] = email.into(),
        )
    };
    let push = |batch: &mut Batch, seq: u64, body: &[u8]| {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Showpass-Delivery-Id",
            uuid::Uuid::new_v4().to_string().as_str(),
        );
        batch.push(stream, seq, Some(&headers), chrono::Utc::now(), body);
    };
    let mut first = connect(&pool).await;
    let mut earlier = Batch::new(Source::Events, 1);
    push(&mut earlier, 1, &body_for(1, "hot@example.com"));
    earlier.apply(&mut first, &mut [], stream).await.unwrap();

    let mut batch = Batch::new(Source::Events, 2);
    push(&mut batch, 2, &body_for(2, "hot@example.com"));
    for seq in 3..=80 {
        push(
            &mut batch,
            seq,
            &body_for(seq, &format!("buyer{seq}@example.com")),
        );
    }
    let mut stranger = connect(&pool).await;
    let stranger_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut stranger)
        .await
        .unwrap();
    sqlx::query("SET deadlock_timeout = '60s'")
        .execute(&mut stranger)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut stranger).await.unwrap();
    sqlx::query("SELECT 1 FROM customers WHERE email = 'hot@example.com' FOR UPDATE")
        .execute(&mut stranger)
        .await
        .unwrap();

    // The lanes look for a deadlock 5 s into a wait (the stranger only after 60 s): time
    // enough for the stranger to ask for its lock however slow the machine, so the cycle is
    // there when a lane looks. (Setting these needs a superuser, as the tests connect.)
    let lane_options = (*pool.connect_options())
        .clone()
        .options([("deadlock_timeout", "5s")]);
    first = PgConnection::connect_with(&lane_options).await.unwrap();
    let mut second = PgConnection::connect_with(&lane_options).await.unwrap();
    let applying = tokio::spawn(async move {
        let r = batch
            .apply(&mut first, std::slice::from_mut(&mut second), stream)
            .await;
        (r, [first, second])
    });

    // The lane that waits for the stranger's row, and a lock it holds.
    let mut waiting = None;
    for _ in 0..400 {
        waiting = sqlx::query_scalar::<_, i32>(
            "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
        )
        .bind(stranger_pid)
        .fetch_optional(&pool)
        .await
        .unwrap();
        if waiting.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let lane = waiting.expect("a lane waits for the stranger's row");
    let held: i64 = sqlx::query_scalar(
        "SELECT (classid::int8 << 32) | objid::int8 FROM pg_locks
         WHERE pid = $1 AND locktype = 'advisory' AND objsubid = 1
           AND mode = 'ExclusiveLock' AND granted
         LIMIT 1",
    )
    .bind(lane)
    .fetch_one(&pool)
    .await
    .unwrap();
    // Waits until PostgreSQL aborts the lane, which frees the lock.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(held)
        .execute(&mut stranger)
        .await
        .unwrap();
    sqlx::query("COMMIT").execute(&mut stranger).await.unwrap();

    let (applied, lanes) = applying.await.unwrap();
    let tally = applied.expect("the lane that lost is applied again");
    assert_eq!(tally.applied, 79);
    assert_eq!(
        (tally.already, tally.duplicate),
        (0, 0),
        "the lane that committed is not run again"
    );
    // The lanes' backends report their statistics (the deadlock) when next idle.
    for mut conn in lanes {
        sqlx::query("SELECT pg_stat_force_next_flush()")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("SELECT 1").execute(&mut conn).await.unwrap();
    }
    let mut deadlocks = 0_i64;
    for _ in 0..100 {
        deadlocks = sqlx::query_scalar(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if deadlocks > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(deadlocks, 1, "PostgreSQL broke one deadlock");
    assert_eq!(orders(&pool).await, 80);
    let hot: i32 =
        sqlx::query_scalar("SELECT orders_count FROM customers WHERE email = 'hot@example.com'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(hot, 2, "both of the customer's orders, each once");
    assert_eq!(checkpoint(&pool, stream).await, 80);
}

/// A rebuild's swap (or an erasure) holds the swap lock, exclusive: a batch split into lanes
/// waits for it before its first lane, so the swap never sees lanes committed and the
/// checkpoint before them. Without the batch's own hold on the lock, the lanes committed under
/// the swap and only the checkpoint waited.
#[sqlx::test(migrations = "../../migrations")]
async fn no_lane_commits_while_a_swap_holds_the_swap_lock(pool: PgPool) {
    let stream = "T_EVENTS";
    let mut batch = Batch::new(Source::Events, 2);
    for seq in 1..=80 {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Showpass-Delivery-Id",
            uuid::Uuid::new_v4().to_string().as_str(),
        );
        let body = edit(
            &sample_body(Purchase, &format!("u-{seq}"), &format!("T{seq}"), "20"),
            |v| v["data"]["customer_email"] = format!("buyer{seq}@example.com").into(),
        );
        batch.push(stream, seq, Some(&headers), chrono::Utc::now(), &body);
    }
    let mut swap = connect(&pool).await;
    let swap_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut swap)
        .await
        .unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(showpass_projector::SWAP_LOCK)
        .execute(&mut swap)
        .await
        .unwrap();

    let (mut first, mut second) = (connect(&pool).await, connect(&pool).await);
    let applying = tokio::spawn(async move {
        batch
            .apply(&mut first, std::slice::from_mut(&mut second), stream)
            .await
    });
    let mut blocked = false;
    for _ in 0..400 {
        blocked = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)))",
        )
        .bind(swap_pid)
        .fetch_one(&pool)
        .await
        .unwrap();
        if blocked {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(blocked, "the batch waits for the swap");
    assert_eq!(orders(&pool).await, 0, "no lane committed under the swap");
    assert_eq!(checkpoint(&pool, stream).await, 0);

    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(showpass_projector::SWAP_LOCK)
        .execute(&mut swap)
        .await
        .unwrap();
    let tally = applying.await.unwrap().unwrap();
    assert_eq!(tally.applied, 80);
    assert_eq!(orders(&pool).await, 80);
    assert_eq!(checkpoint(&pool, stream).await, 80);
}

/// Each grain's daily and monthly tiers, kept batch by batch, equal the roll-up of its
/// 15-minute cells: after simulated traffic
/// with refunds and voids, over two lanes and small batches, so cells are added to again and
/// again.
#[sqlx::test(migrations = "../../migrations")]
async fn the_daily_and_monthly_tiers_are_the_roll_up_of_the_cells(pool: PgPool) {
    let sim = SimConfig {
        seed: 23,
        organizations: 2,
        shows_per_organization: 2,
        ticket_types_per_show: 2,
        customers: 30,
    };
    project_live(&pool, sim, 600, 2, 100).await;
    for &grain in showpass_payload::vocab::Grain::ALL {
        for tier in showpass_payload::vocab::Tier::COARSER {
            let rollup = grain.rollup_sql(tier);
            let (_, select) = rollup.split_once(" SELECT ").unwrap();
            let table = grain.table_of(tier);
            let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(&pool)
                .await
                .unwrap();
            assert!(rows > 0, "{table} has rows");
            let differ: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM ((TABLE {table} EXCEPT SELECT {select})
                  UNION ALL (SELECT {select} EXCEPT TABLE {table})) d"
            ))
            .fetch_one(&pool)
            .await
            .unwrap();
            assert_eq!(differ, 0, "{table} is the roll-up of {}", grain.table());
        }
    }
}
