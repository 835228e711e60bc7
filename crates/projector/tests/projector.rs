//! The projector against the real NATS and PostgreSQL: read models, exactly once.

use std::time::Duration;

use rust_decimal::Decimal;
use showpass_payload::samples::SampleKind::{self, *};
use showpass_projector::ProjectorConfig;
use showpass_testkit::*;
use sqlx::{PgPool, Row};

async fn deliver(ingest: &TestIngest, kind: SampleKind, uuid: &str, txn: &str, org: &str) {
    let (status, answer) = ingest.deliver(&sample_body(kind, uuid, txn, org)).await;
    assert!(status.is_success(), "{kind:?} {uuid}: {answer}");
}

/// Delivers purchases `u-{i}` of orders `T{i}` for every `i` in `range`.
async fn purchases(ingest: &TestIngest, range: std::ops::Range<i64>) {
    for i in range {
        deliver(ingest, Purchase, &format!("u-{i}"), &format!("T{i}"), "20").await;
    }
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

async fn order(pool: &PgPool, txn: &str) -> sqlx::postgres::PgRow {
    sqlx::query("SELECT status, net_sales, refunded, currency, customer_email, tickets_total, kind FROM orders WHERE transaction_id = $1")
        .bind(txn)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("order {txn}: {e}"))
}

/// Every kind of event, duplicates, a refund before its purchase, partial refunds, voids,
/// transfers, test events and two currencies end in exactly the expected read models.
#[sqlx::test(migrations = "../../migrations")]
async fn a_mixed_sequence_yields_exactly_the_expected_read_models(pool: PgPool) {
    let ingest = TestIngest::start().await;
    let projector = TestProjector::start(&ingest, &pool, |_| {});

    // Order A (CAD): purchase of 2 tickets, delivered twice, then one ticket refunded.
    deliver(&ingest, Purchase, "a-1", "A", "20").await;
    deliver(&ingest, Purchase, "a-1", "A", "20").await;
    let partial = edit(&sample_body(Refund, "a-2", "A", "20"), |v| {
        let data = &mut v["data"];
        data["ticket_items"].as_array_mut().unwrap().truncate(1);
        for f in ["net_sales", "gross_revenue", "service_fees", "total_tax"] {
            data[f] = "-10.00".into();
            data["invoice_items"][0][f] = "-10.00".into();
        }
    });
    assert!(ingest.deliver(&partial).await.0.is_success());

    // Order B (USD): purchased, then voided.
    let usd = |b: Vec<u8>| edit(&b, |v| v["data"]["currency"] = "USD".into());
    let b_purchase = edit(&usd(sample_body(Purchase, "b-1", "B", "20")), |v| {
        v["data"]["customer_email"] = " Other@Example.com ".into();
    });
    assert!(ingest.deliver(&b_purchase).await.0.is_success());
    assert!(
        ingest
            .deliver(&usd(sample_body(Void, "b-2", "B", "20")))
            .await
            .0
            .is_success()
    );

    // Order C: the refund arrives before its purchase (a resend).
    deliver(&ingest, Refund, "c-2", "C", "20").await;
    deliver(&ingest, Purchase, "c-1", "C", "20").await;

    // Order D: purchased, then its tickets transferred to Sam (new order D-T, new tickets).
    deliver(&ingest, Purchase, "d-1", "D", "20").await;
    deliver(&ingest, Transferred, "d-2", "D", "20").await;
    deliver(&ingest, Transfer, "d-3", "D", "20").await;

    // A test event and a type from the future.
    deliver(&ingest, Test, "t-1", "T", "20").await;
    let future = edit(&sample_body(Purchase, "f-1", "F", "20"), |v| {
        v["event_type"] = "invoice.exchange".into()
    });
    assert!(ingest.deliver(&future).await.0.is_success());

    caught_up(&ingest, &pool).await;

    let a = order(&pool, "A").await;
    assert_eq!(a.get::<String, _>("status"), "partially_refunded");
    assert_eq!(a.get::<Decimal, _>("net_sales"), dec("58.40"));
    assert_eq!(a.get::<Decimal, _>("refunded"), dec("10.00"));
    assert_eq!(
        a.get::<String, _>("customer_email"),
        "alex.buyer@example.com"
    );
    let b = order(&pool, "B").await;
    assert_eq!(b.get::<String, _>("status"), "voided");
    assert_eq!(b.get::<String, _>("currency"), "USD");
    assert_eq!(b.get::<String, _>("customer_email"), "other@example.com");
    assert_eq!(
        order(&pool, "C").await.get::<String, _>("status"),
        "refunded"
    );
    assert_eq!(
        order(&pool, "D").await.get::<String, _>("status"),
        "transferred"
    );
    let dt = order(&pool, "D-T").await;
    assert_eq!(dt.get::<String, _>("status"), "purchased");
    assert_eq!(dt.get::<String, _>("kind"), "transfer");
    assert_eq!(dt.get::<Decimal, _>("net_sales"), Decimal::ZERO);
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(orders, 5, "no order for the test event or the unknown type");

    // Customers: Alex bought A, C, D (A counted once despite the redelivery); Sam received D-T.
    let alex = sqlx::query("SELECT orders_count, tickets_count, total_spent FROM customers WHERE email = 'alex.buyer@example.com'")
        .fetch_one(&pool).await.unwrap();
    assert_eq!(alex.get::<i32, _>("orders_count"), 3);
    assert_eq!(
        alex.get::<i32, _>("tickets_count"),
        1,
        "A keeps one valid ticket; C refunded; D transferred"
    );
    assert_eq!(
        alex.get::<Decimal, _>("total_spent"),
        dec("58.40") * dec("3") - dec("10.00") - dec("58.40")
    );
    let sam: i32 = sqlx::query_scalar(
        "SELECT orders_count FROM customers WHERE email = 'sam.recipient@example.com'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(sam, 1);

    // Sales, per currency, never mixed: CAD has A, C, D; USD has B, voided.
    let sales = sqlx::query(
        "SELECT currency, sum(orders)::int8, sum(tickets)::int8, sum(net_sales), sum(refunds)
         FROM sales_by_order_attrs GROUP BY currency ORDER BY currency",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let row = |i: usize| {
        (
            sales[i].get::<String, _>(0),
            sales[i].get::<i64, _>(1),
            sales[i].get::<i64, _>(2),
            sales[i].get::<Decimal, _>(3),
            sales[i].get::<Decimal, _>(4),
        )
    };
    assert_eq!(sales.len(), 2);
    // Tickets still sold: A keeps 1, C none (refunded), D 2 (transferred tickets were sold).
    assert_eq!(
        row(0),
        (
            "CAD".into(),
            3,
            3,
            dec("58.40") * dec("3") - dec("10.00") - dec("58.40"),
            dec("68.40")
        )
    );
    assert_eq!(row(1), ("USD".into(), 1, 0, Decimal::ZERO, dec("58.40")));

    // The delivery log: the redelivery, the test event and the unknown type, each as it went.
    let log = sqlx::query(
        "SELECT outcome, processing, count(*)::int8 FROM deliveries GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let log: Vec<(String, String, i64)> =
        log.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(
        log,
        [
            ("accepted".into(), "applied".into(), 10),
            ("accepted".into(), "skipped".into(), 1),
            ("duplicate".into(), "duplicate".into(), 1),
        ]
    );
    projector.stop().await;
}

/// A signed event that cannot be understood is logged as failed, and the stream moves on.
#[sqlx::test(migrations = "../../migrations")]
async fn a_poison_event_is_recorded_and_later_events_still_apply(pool: PgPool) {
    let ingest = TestIngest::start().await;
    let projector = TestProjector::start(&ingest, &pool, |_| {});
    let poison = edit(&sample_body(Purchase, "p-1", "P", "20"), |v| {
        v["data"]["net_sales"] = "twelve".into()
    });
    assert!(ingest.deliver(&poison).await.0.is_success());
    deliver(&ingest, Purchase, "ok-1", "OK", "20").await;
    caught_up(&ingest, &pool).await;
    let (processing, error): (String, Option<String>) =
        sqlx::query_as("SELECT processing, error FROM deliveries WHERE webhook_event_uuid = 'p-1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(processing, "failed");
    assert!(error.unwrap().contains("invalid money amount"));
    assert_eq!(
        order(&pool, "OK").await.get::<String, _>("status"),
        "purchased"
    );
    projector.stop().await;
}

/// The same uuid with a different body is logged as a conflict, and applied only once.
#[sqlx::test(migrations = "../../migrations")]
async fn a_reused_uuid_with_a_different_body_is_a_conflict_not_a_second_apply(pool: PgPool) {
    let ingest = TestIngest::start().await;
    let projector = TestProjector::start(&ingest, &pool, |_| {});
    deliver(&ingest, Purchase, "same", "X", "20").await;
    let forged = edit(&sample_body(Purchase, "same", "X", "20"), |v| {
        v["data"]["net_sales"] = "999.00".into()
    });
    assert_eq!(ingest.deliver(&forged).await.0, hyper::StatusCode::OK);
    caught_up(&ingest, &pool).await;
    let error: Option<String> =
        sqlx::query_scalar("SELECT error FROM deliveries WHERE outcome = 'duplicate'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(error.unwrap().starts_with("conflict:"));
    assert_eq!(
        order(&pool, "X").await.get::<Decimal, _>("net_sales"),
        dec("58.40")
    );
    projector.stop().await;
}

/// Sum of the read models that double-applying would change.
async fn fingerprint(pool: &PgPool) -> (i64, i64, i64, Decimal, i64) {
    let r = sqlx::query(
        "SELECT (SELECT count(*) FROM invoices), (SELECT count(*) FROM tickets),
                (SELECT COALESCE(sum(orders), 0)::int8 FROM sales_by_order_attrs),
                (SELECT COALESCE(sum(net_sales), 0) FROM sales_by_order_attrs),
                (SELECT COALESCE(sum(tickets), 0)::int8 FROM sales_by_ticket_type)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
}

/// A projector aborted mid-stream and started again applies nothing twice and misses nothing.
#[sqlx::test(migrations = "../../migrations")]
async fn an_aborted_projector_restarts_without_double_applying(pool: PgPool) {
    let ingest = TestIngest::start().await;
    let n = 400;
    purchases(&ingest, 0..n).await;
    let small = |c: &mut ProjectorConfig| c.batch_size = 7;
    let first = TestProjector::start(&ingest, &pool, small);
    loop {
        let at: Option<i64> =
            sqlx::query_scalar("SELECT last_seq FROM checkpoints WHERE stream LIKE '%EVENTS'")
                .fetch_optional(&pool)
                .await
                .unwrap();
        if at.unwrap_or(0) > 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.task.abort();
    let _ = first.task.await;
    let second = TestProjector::start(&ingest, &pool, small);
    caught_up(&ingest, &pool).await;
    assert_eq!(
        fingerprint(&pool).await,
        (n, 2 * n, n, dec("58.40") * Decimal::from(n), 2 * n)
    );
    second.stop().await;
}

/// Two projectors run together: one is active, the other stands by and takes over when the
/// first is gone; nothing is applied twice.
#[sqlx::test(migrations = "../../migrations")]
async fn two_projectors_never_double_apply_and_the_standby_takes_over(pool: PgPool) {
    let ingest = TestIngest::start().await;
    let a = TestProjector::start(&ingest, &pool, |c| c.batch_size = 5);
    let b = TestProjector::start(&ingest, &pool, |c| c.batch_size = 5);
    purchases(&ingest, 0..100).await;
    caught_up(&ingest, &pool).await;
    a.task.abort();
    let _ = a.task.await;
    purchases(&ingest, 100..200).await;
    tokio::time::timeout(Duration::from_secs(15), caught_up(&ingest, &pool))
        .await
        .expect("the standby took over");
    assert_eq!(
        fingerprint(&pool).await,
        (200, 400, 200, dec("58.40") * Decimal::from(200), 400)
    );
    b.stop().await;
}

/// Rebuilding from the stream, while the projector keeps running, gives exactly the read
/// models the incremental projection built.
#[sqlx::test(migrations = "../../migrations")]
async fn rebuild_equals_the_incremental_projection(pool: PgPool) {
    let ingest = TestIngest::start().await;
    let projector = TestProjector::start(&ingest, &pool, |c| c.batch_size = 3);
    for (kind, uuid, txn) in [
        (Refund, "c-2", "C"),
        (Purchase, "a-1", "A"),
        (Purchase, "a-1", "A"),
        (Purchase, "c-1", "C"),
        (Void, "a-2", "A"),
        (Purchase, "d-1", "D"),
        (Transferred, "d-2", "D"),
        (Transfer, "d-3", "D"),
        (Test, "t-1", "T"),
    ] {
        deliver(&ingest, kind, uuid, txn, "20").await;
    }
    let poison = edit(&sample_body(Purchase, "p-1", "P", "21"), |v| {
        v["data"]["net_sales"] = "twelve".into()
    });
    assert!(ingest.deliver(&poison).await.0.is_success());
    assert_eq!(
        post(ingest.addr, "/webhooks/showpass", &[], b"{}".to_vec())
            .await
            .0,
        hyper::StatusCode::UNAUTHORIZED
    );
    caught_up(&ingest, &pool).await;
    let before = snapshot(&pool).await;
    assert!(
        before
            .iter()
            .any(|(t, rows)| t == "orders" && rows.len() == 4)
    );

    let db = pool.connect_options().get_database().unwrap().to_owned();
    let config = ProjectorConfig::local(ingest.config.nats.clone(), database_of(&db));
    let mut seen = Vec::new();
    let report = showpass_projector::rebuild(&config, &mut |stream, done, total| {
        seen.push((stream.to_owned(), done, total))
    })
    .await
    .unwrap();
    assert_eq!(report.events, 9, "8 distinct deliveries and the poison one");
    assert!(
        seen.iter()
            .any(|(_, done, total)| done == total && *total == 9),
        "{seen:?}"
    );

    // The projector keeps working on the swapped-in tables.
    deliver(&ingest, Purchase, "e-1", "E", "20").await;
    caught_up(&ingest, &pool).await;
    let after = snapshot(&pool).await;
    let without_e = |s: &[(String, Vec<serde_json::Value>)]| -> Vec<(String, usize)> {
        s.iter().map(|(t, rows)| (t.clone(), rows.len())).collect()
    };
    assert_ne!(
        without_e(&before),
        without_e(&after),
        "E was applied after the swap"
    );

    // And a second rebuild reproduces the live state exactly, row for row.
    let live = snapshot(&pool).await;
    showpass_projector::rebuild(&config, &mut |_, _, _| {})
        .await
        .unwrap();
    assert_eq!(snapshot(&pool).await, live);
    let leftovers: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'rebuild_%' OR nspname LIKE 'retired_%'")
        .fetch_one(&pool).await.unwrap();
    assert_eq!(leftovers, 0);
    projector.stop().await;
}

/// Simulated traffic (purchases, partial and full refunds, voids, transfers, test events,
/// verbatim resends, refunds before their purchase) ends in read models that agree with what
/// the simulator says it generated.
#[sqlx::test(migrations = "../../migrations")]
async fn simulated_traffic_ends_in_read_models_that_match_its_ledger(pool: PgPool) {
    use showpass_simulate::{SimConfig, Simulator};
    let ingest = TestIngest::start().await;
    let projector = TestProjector::start(&ingest, &pool, |c| c.batch_size = 50);
    let mut sim = Simulator::new(SimConfig {
        seed: 3,
        customers: 200,
        ..SimConfig::default()
    });
    for d in sim.by_ref().take(1_500) {
        let (status, answer) = ingest.deliver(&d.body).await;
        assert!(status.is_success(), "{answer}");
    }
    caught_up(&ingest, &pool).await;
    let ledger = sim.ledger;

    let orders: i64 =
        sqlx::query_scalar("SELECT COALESCE(sum(orders), 0)::int8 FROM sales_by_order_attrs")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(orders as u64, ledger.orders);
    let tickets: i64 =
        sqlx::query_scalar("SELECT COALESCE(sum(tickets), 0)::int8 FROM sales_by_ticket_type")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(tickets, ledger.tickets);
    for (currency, net) in &ledger.net_sales {
        let (got_net, got_refunds): (Decimal, Decimal) = sqlx::query_as(
            "SELECT COALESCE(sum(net_sales), 0), COALESCE(sum(refunds), 0) FROM sales_by_event WHERE currency = $1",
        )
        .bind(currency)
        .fetch_one(&pool).await.unwrap();
        assert_eq!(&got_net, net, "{currency}");
        assert_eq!(
            Some(&got_refunds),
            ledger.refunds.get(currency).or(Some(&Decimal::ZERO)),
            "{currency}"
        );
    }
    // Each daily and monthly tier is its 15-minute tier rolled up to UTC days or months, cell
    // for cell.
    for (table, keys) in [
        ("sales_by_ticket_type", "org_id, event_id, ticket_type_id"),
        ("sales_by_event", "org_id, event_id"),
        ("sales_by_order_attrs", "org_id"),
    ] {
        for (tier, unit) in [("daily", "day"), ("monthly", "month")] {
            let rollup = format!(
                "SELECT {keys}, date_trunc('{unit}', bucket, 'UTC') AS bucket, payment_type, currency,
                        sum(orders)::int8, sum(tickets)::int8, sum(gross_revenue), sum(net_sales),
                        sum(service_fees), sum(total_tax), sum(discounts), sum(refunds)
                 FROM {table} GROUP BY {keys}, {at}, payment_type, currency",
                at = keys.split(',').count() + 1
            );
            let coarse = format!(
                "SELECT {keys}, bucket, payment_type, currency, orders, tickets, gross_revenue,
                        net_sales, service_fees, total_tax, discounts, refunds FROM {table}_{tier}"
            );
            let differ: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM ((({rollup}) EXCEPT ({coarse})) UNION ALL (({coarse}) EXCEPT ({rollup}))) d"
            ))
            .fetch_one(&pool)
            .await
            .unwrap();
            let cells: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}_{tier}"))
                .fetch_one(&pool)
                .await
                .unwrap();
            assert!(cells > 0, "{table}_{tier} is empty");
            assert_eq!(differ, 0, "{table}_{tier} differs from its rollup");
        }
    }
    // Every resend was recognised: nothing counted twice, each logged as a duplicate.
    let duplicates: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE processing = 'duplicate'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(duplicates as u64, ledger.resends);
    // The customers' totals add up to the orders' totals.
    let (spent, net): (Decimal, Decimal) = sqlx::query_as(
        "SELECT (SELECT COALESCE(sum(total_spent), 0) FROM customers),
                (SELECT COALESCE(sum(net_sales - refunded), 0) FROM orders WHERE customer_key IS NOT NULL)",
    )
    .fetch_one(&pool).await.unwrap();
    assert_eq!(spent, net);
    projector.stop().await;
}

/// NATS killed and restarted under a running projector: it carries on by itself, applying
/// what came before and after, once.
#[sqlx::test(migrations = "../../migrations")]
async fn the_projector_survives_a_nats_restart(pool: PgPool) {
    let mut nats = PrivateNats::start();
    let url = nats.url();
    let ingest = TestIngest::start_with(|c| {
        c.nats.url = url.parse().unwrap();
        c.publish_timeout = Duration::from_secs(1);
    })
    .await;
    let projector = TestProjector::start(&ingest, &pool, |_| {});
    purchases(&ingest, 0..20).await;
    caught_up(&ingest, &pool).await;
    nats.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.restart();
    let mut i = 20;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while i < 40 {
        let body = sample_body(Purchase, &format!("u-{i}"), &format!("T{i}"), "20");
        if ingest.deliver(&body).await.0.is_success() {
            i += 1;
        } else {
            assert!(
                std::time::Instant::now() < deadline,
                "NATS did not come back"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::timeout(Duration::from_secs(20), caught_up(&ingest, &pool))
        .await
        .expect("the projector carried on");
    assert_eq!(
        fingerprint(&pool).await,
        (40, 80, 40, dec("58.40") * Decimal::from(40), 80)
    );
    projector.stop().await;
}

/// Every PostgreSQL connection of the projector cut (as a database restart does): it
/// reconnects, takes the lead again and carries on, applying each event once.
#[sqlx::test(migrations = "../../migrations")]
async fn the_projector_survives_losing_its_database_connections(pool: PgPool) {
    let ingest = TestIngest::start().await;
    let projector = TestProjector::start(&ingest, &pool, |_| {});
    purchases(&ingest, 0..20).await;
    caught_up(&ingest, &pool).await;
    let cut: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        cut >= 3,
        "the projector's lock and batch connections were cut ({cut})"
    );
    purchases(&ingest, 20..40).await;
    tokio::time::timeout(Duration::from_secs(20), caught_up(&ingest, &pool))
        .await
        .expect("the projector carried on");
    assert_eq!(
        fingerprint(&pool).await,
        (40, 80, 40, dec("58.40") * Decimal::from(40), 80)
    );
    projector.stop().await;
}

/// Text PostgreSQL cannot store (a NUL character) neither blocks the stream nor loses the
/// delivery: it is applied with the character removed.
#[sqlx::test(migrations = "../../migrations")]
async fn a_nul_character_in_payload_text_does_not_block_the_stream(pool: PgPool) {
    let ingest = TestIngest::start().await;
    let projector = TestProjector::start(&ingest, &pool, |_| {});
    let nul = edit(&sample_body(Purchase, "n-1", "N", "20"), |v| {
        v["data"]["customer_name"] = "Nul\u{0}Name".into();
        v["data"]["ticket_items"][0]["barcode_string"] = "BAR\u{0}CODE".into();
    });
    assert!(ingest.deliver(&nul).await.0.is_success());
    deliver(&ingest, Purchase, "ok-1", "OK", "20").await;
    tokio::time::timeout(Duration::from_secs(15), caught_up(&ingest, &pool))
        .await
        .expect("the stream moved on");
    let name: Option<String> =
        sqlx::query_scalar("SELECT customer_name FROM orders WHERE transaction_id = 'N'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(name.as_deref(), Some("NulName"));
    assert_eq!(
        order(&pool, "OK").await.get::<String, _>("status"),
        "purchased"
    );
    projector.stop().await;
}

/// An event the database refuses for its data (here a CHECK constraint the test adds) is
/// logged as failed with the database's reason, and the events around it in the same batch
/// still apply.
#[sqlx::test(migrations = "../../migrations")]
async fn an_event_the_database_refuses_is_logged_failed_and_its_batch_still_applies(pool: PgPool) {
    sqlx::query("ALTER TABLE invoices ADD CONSTRAINT test_refuses_evil CHECK (customer_name IS DISTINCT FROM 'Evil')")
        .execute(&pool).await.unwrap();
    let ingest = TestIngest::start().await;
    deliver(&ingest, Purchase, "a-1", "A", "20").await;
    let evil = edit(&sample_body(Purchase, "e-1", "E", "20"), |v| {
        v["data"]["customer_name"] = "Evil".into()
    });
    assert!(ingest.deliver(&evil).await.0.is_success());
    deliver(&ingest, Purchase, "b-1", "B", "20").await;
    // All three are in the stream before the projector starts: one batch.
    let projector = TestProjector::start(&ingest, &pool, |_| {});
    tokio::time::timeout(Duration::from_secs(15), caught_up(&ingest, &pool))
        .await
        .expect("the stream moved on");
    let (processing, error): (String, Option<String>) =
        sqlx::query_as("SELECT processing, error FROM deliveries WHERE webhook_event_uuid = 'e-1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(processing, "failed");
    assert!(error.unwrap().contains("test_refuses_evil"));
    assert_eq!(
        order(&pool, "A").await.get::<String, _>("status"),
        "purchased"
    );
    assert_eq!(
        order(&pool, "B").await.get::<String, _>("status"),
        "purchased"
    );
    projector.stop().await;
}
