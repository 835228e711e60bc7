//! Erasure of a customer against the real NATS and PostgreSQL: the read models, the delivery
//! log and both streams, through a crash midway, a rebuild and a resend by Showpass.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use showpass_payload::headers as h;
use showpass_payload::samples::SampleKind::*;
use showpass_projector::ProjectorConfig;
use showpass_projector::erase::{EraseError, EraseOptions, EraseRequest, erase};
use showpass_testkit::*;
use sqlx::{Connection, PgConnection, PgPool};

const ALEX: &str = "alex.buyer@example.com";

async fn deliver(ingest: &TestIngest, body: &[u8]) {
    let (status, answer) = ingest.deliver(body).await;
    assert!(status.is_success(), "{answer}");
}

fn by_blair(kind: showpass_payload::samples::SampleKind, uuid: &str, txn: &str) -> Vec<u8> {
    edit(&sample_body(kind, uuid, txn, "20"), |v| {
        v["data"]["customer_name"] = json!("Blair Other");
        v["data"]["customer_email"] = json!("blair@example.com");
        for t in v["data"]["ticket_items"].as_array_mut().unwrap() {
            t["name_on_ticket"] = json!("Blair Other");
            t["email_on_ticket"] = json!("blair@example.com");
            t["first_name_on_ticket"] = json!("Blair");
            t["last_name_on_ticket"] = json!("Other");
        }
    })
}

/// Every sales table, row by row.
async fn sales(pool: &PgPool) -> BTreeMap<String, Vec<serde_json::Value>> {
    let mut out = BTreeMap::new();
    for t in [
        "sales_by_ticket_type",
        "sales_by_event",
        "sales_by_order_attrs",
        "sales_by_ticket_type_daily",
        "sales_by_event_daily",
        "sales_by_order_attrs_daily",
        "sales_by_ticket_type_monthly",
        "sales_by_event_monthly",
        "sales_by_order_attrs_monthly",
    ] {
        let rows = sqlx::query_scalar(&format!(
            "SELECT to_jsonb(x) FROM {t} x ORDER BY to_jsonb(x)::text"
        ))
        .fetch_all(pool)
        .await
        .unwrap();
        out.insert(t.to_owned(), rows);
    }
    out
}

/// The tables (and how many rows each) where "alex" still appears, in any column.
async fn tables_mentioning_alex(pool: &PgPool) -> Vec<(String, i64)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut out = Vec::new();
    for t in tables {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {t} x WHERE to_jsonb(x)::text ILIKE '%alex%'"
        ))
        .fetch_one(pool)
        .await
        .unwrap();
        if n > 0 {
            out.push((t, n));
        }
    }
    out
}

/// Every message of a stream: (sequence, erased, delivery id, body).
async fn messages(
    stream: &async_nats::jetstream::stream::Stream,
) -> Vec<(u64, bool, String, String)> {
    let info = stream.get_info().await.unwrap();
    let mut out = Vec::new();
    for seq in info.state.first_sequence..=info.state.last_sequence {
        if let Ok(m) = stream.get_raw_message(seq).await {
            let header = |n: &str| m.headers.get(n).map(|v| v.as_str().to_owned());
            out.push((
                seq,
                header(h::ERASED).is_some(),
                header(h::DELIVERY_ID).unwrap_or_default(),
                String::from_utf8_lossy(&m.payload).into_owned(),
            ));
        }
    }
    out
}

async fn messages_mentioning_alex(ingest: &TestIngest) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for stream in [ingest.events().await, ingest.deliveries().await] {
        for (seq, _, _, body) in messages(&stream).await {
            if body.to_lowercase().contains("alex") {
                out.push((seq, body));
            }
        }
    }
    out
}

async fn connect(pool: &PgPool) -> PgConnection {
    let db = pool.connect_options().get_database().unwrap().to_owned();
    PgConnection::connect_with(&database_of(&db).options())
        .await
        .unwrap()
}

fn request(email: &str) -> EraseRequest {
    EraseRequest {
        org_id: Some("20".into()),
        email: Some(email.into()),
        customer_id: None,
        requested_by: "cli".into(),
    }
}

/// Alex bought A (then a refund), Showpass resent A's purchase, Alex holds a ticket of
/// Blair's order H. Erasing Alex, cut after the first copy and run again, leaves the money
/// and Blair as they were and nothing of Alex anywhere: not in a table, not in a message of
/// either stream, not after a rebuild, not after Showpass resends A's purchase again.
#[sqlx::test(migrations = "../../migrations")]
async fn an_erasure_leaves_nothing_of_them_in_any_table_or_message(pool: PgPool) {
    let ingest = TestIngest::start().await;
    let projector = TestProjector::start(&ingest, &pool, |c| c.batch_size = 2);
    deliver(&ingest, &sample_body(Purchase, "a-1", "A", "20")).await;
    let partial = edit(&sample_body(Refund, "a-2", "A", "20"), |v| {
        v["data"]["ticket_items"]
            .as_array_mut()
            .unwrap()
            .truncate(1);
        for f in ["net_sales", "gross_revenue", "service_fees", "total_tax"] {
            v["data"][f] = json!("-10.00");
            v["data"]["invoice_items"][0][f] = json!("-10.00");
        }
    });
    deliver(&ingest, &partial).await;
    deliver(&ingest, &sample_body(Purchase, "a-1", "A", "20")).await;
    let h_with_alex = edit(&by_blair(Purchase, "h-1", "H"), |v| {
        let t = &mut v["data"]["ticket_items"][0];
        t["name_on_ticket"] = json!("Alex Buyer");
        t["email_on_ticket"] = json!(ALEX);
        t["first_name_on_ticket"] = json!("Alex");
    });
    deliver(&ingest, &h_with_alex).await;
    caught_up(&ingest, &pool).await;
    assert!(!messages_mentioning_alex(&ingest).await.is_empty());
    assert!(!tables_mentioning_alex(&pool).await.is_empty());
    let money = sales(&pool).await;
    let events_before = messages(&ingest.events().await).await.len();

    let mut conn = connect(&pool).await;
    let nats = ingest.config.nats.clone();
    // A subscriber saw each event once already: the copies are not published to it again.
    let mut subscriber = ingest
        .js
        .client()
        .subscribe(showpass_payload::subject::events_filter(&nats.prefix))
        .await
        .unwrap();
    let cut = erase(
        &ingest.js,
        &mut conn,
        &nats,
        &request(" Alex.Buyer@Example.com "),
        EraseOptions {
            crash_after_copies: Some(1),
        },
    )
    .await;
    assert!(matches!(cut, Err(EraseError::Failed(_))), "{cut:?}");
    // Cut midway: the read models are done, one copy is stored, its original not deleted.
    assert_eq!(tables_mentioning_alex(&pool).await, vec![]);

    let resumed = erase(
        &ingest.js,
        &mut conn,
        &nats,
        &request(ALEX),
        EraseOptions::default(),
    )
    .await
    .unwrap();
    assert!(resumed.already_erased);
    assert_eq!(resumed.rows.customers, 0, "the first run removed the row");
    // A's purchase, its refund and H's purchase (events), and A's duplicate record.
    assert_eq!(resumed.messages.events, 3, "{resumed:?}");
    assert_eq!(resumed.messages.deliveries, 1, "{resumed:?}");
    assert_eq!(resumed.messages.deleted, 4, "{resumed:?}");

    assert_eq!(messages_mentioning_alex(&ingest).await, vec![]);
    assert_eq!(tables_mentioning_alex(&pool).await, vec![]);
    {
        use futures::StreamExt as _;
        let seen = tokio::time::timeout(Duration::from_millis(300), subscriber.next()).await;
        assert!(seen.is_err(), "a subscriber got {seen:?}");
    }
    // Each event once: the crashed run's copy was not stored twice.
    let events = messages(&ingest.events().await).await;
    assert_eq!(events.len(), events_before);
    let mut ids: Vec<&str> = events.iter().map(|(_, _, id, _)| id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "one message per delivery");
    assert_eq!(events.iter().filter(|(_, erased, _, _)| *erased).count(), 3);

    // The money, the counts and Blair are as they were; the log says erased.
    assert_eq!(sales(&pool).await, money);
    let (status, refunded, tickets): (String, rust_decimal::Decimal, i32) = sqlx::query_as(
        "SELECT status, refunded, tickets_total FROM orders WHERE transaction_id = 'A'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (status.as_str(), refunded.to_string().as_str(), tickets),
        ("partially_refunded", "10.00", 2)
    );
    let customers: Vec<String> = sqlx::query_scalar("SELECT email FROM customers")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(customers, ["blair@example.com"]);
    let blair_ticket: Option<String> = sqlx::query_scalar(
        "SELECT name_on_ticket FROM tickets WHERE transaction_id = 'H' AND name_on_ticket IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(blair_ticket.as_deref(), Some("Blair Other"));
    let unerased: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deliveries WHERE transaction_id IN ('A', 'H') AND erased_at IS NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(unerased, 0);
    let words: Vec<String> = sqlx::query_scalar("SELECT word FROM search_words ORDER BY word")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(words, ["blair", "other"]);

    // The audit: who and when, a hash and no e-mail.
    let audit: Vec<(String, String, Option<serde_json::Value>)> = sqlx::query_as(
        "SELECT requested_by, email_sha256, report FROM erasure_audit ORDER BY requested_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0].1, showpass_payload::sha256_hex(ALEX.as_bytes()));
    assert!(audit[0].2.is_none(), "the cut run never finished");
    assert_eq!(audit[1].2.as_ref().unwrap()["messages"]["events"], 3);

    // Once more: nothing changes.
    let again = erase(
        &ingest.js,
        &mut conn,
        &nats,
        &request(ALEX),
        EraseOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        (again.rows, again.messages),
        Default::default(),
        "{again:?}"
    );

    // A rebuild gives the same money and brings nothing back.
    let db = pool.connect_options().get_database().unwrap().to_owned();
    let config = ProjectorConfig::local(nats.clone(), database_of(&db));
    showpass_projector::rebuild(&config, &mut |_, _, _| {})
        .await
        .unwrap();
    assert_eq!(sales(&pool).await, money);
    assert_eq!(tables_mentioning_alex(&pool).await, vec![]);
    let status: String = sqlx::query_scalar("SELECT status FROM orders WHERE transaction_id = 'A'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "partially_refunded");
    let audits: i64 = sqlx::query_scalar("SELECT count(*) FROM erasure_audit")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(audits, 3, "the audit survives a rebuild");

    // Showpass resends A's purchase, and Alex buys again: the projector blanks them and its
    // sweep replaces the messages.
    deliver(&ingest, &sample_body(Purchase, "a-1", "A", "20")).await;
    deliver(&ingest, &sample_body(Purchase, "a-9", "A9", "20")).await;
    caught_up(&ingest, &pool).await;
    assert_eq!(tables_mentioning_alex(&pool).await, vec![]);
    let mut left = messages_mentioning_alex(&ingest).await;
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = messages_mentioning_alex(&ingest).await;
    }
    assert_eq!(left, vec![], "the sweep replaced the resent messages");
    assert_eq!(tables_mentioning_alex(&pool).await, vec![]);
    projector.stop().await;
}

/// An e-mail the organization never saw is not found; a blank one is refused.
#[sqlx::test(migrations = "../../migrations")]
async fn an_unknown_customer_is_not_found(pool: PgPool) {
    let ingest = TestIngest::start().await;
    let mut conn = connect(&pool).await;
    let nats = ingest.config.nats.clone();
    let unknown = erase(
        &ingest.js,
        &mut conn,
        &nats,
        &request("nobody@example.com"),
        EraseOptions::default(),
    )
    .await;
    assert!(
        matches!(unknown, Err(EraseError::NotFound(_))),
        "{unknown:?}"
    );
    let blank = erase(
        &ingest.js,
        &mut conn,
        &nats,
        &request("   "),
        EraseOptions::default(),
    )
    .await;
    assert!(matches!(blank, Err(EraseError::Invalid(_))), "{blank:?}");
    let audits: i64 = sqlx::query_scalar("SELECT count(*) FROM erasure_audit")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(audits, 0);
}

/// Jordan never bought: they hold a ticket of Blair's order H, and a failed event of H names
/// them. Erasing Jordan blanks their ticket and redacts both messages, and Blair keeps every
/// field of theirs, in the tables, in the copies and after a rebuild.
#[sqlx::test(migrations = "../../migrations")]
async fn a_ticket_holder_is_erased_and_the_buyer_keeps_theirs(pool: PgPool) {
    let ingest = TestIngest::start().await;
    let projector = TestProjector::start(&ingest, &pool, |_| {});
    let jordan = |v: &mut serde_json::Value| {
        let t = &mut v["data"]["ticket_items"][0];
        t["name_on_ticket"] = json!("Jordan Holder");
        t["email_on_ticket"] = json!("Jordan@Example.com");
        t["first_name_on_ticket"] = json!("Jordan");
        t["last_name_on_ticket"] = json!("Holder");
    };
    deliver(&ingest, &edit(&by_blair(Purchase, "h-1", "H"), jordan)).await;
    let poison = edit(&by_blair(Refund, "h-2", "H"), |v| {
        jordan(v);
        v["data"]["net_sales"] = json!("a lot");
    });
    deliver(&ingest, &poison).await;
    caught_up(&ingest, &pool).await;
    let failed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE processing = 'failed'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(failed, 1);

    let mut conn = connect(&pool).await;
    let nats = ingest.config.nats.clone();
    let report = erase(
        &ingest.js,
        &mut conn,
        &nats,
        &request("jordan@example.com"),
        EraseOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.rows.customers, 0, "Jordan never was a customer");
    assert_eq!(report.rows.tickets, 1);
    assert_eq!(
        report.messages.events, 2,
        "the purchase and the failed refund"
    );

    let check = |pool: PgPool| async move {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        for t in tables {
            let n: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM {t} x WHERE to_jsonb(x)::text ILIKE '%jordan%'"
            ))
            .fetch_one(&pool)
            .await
            .unwrap();
            assert_eq!(n, 0, "{t}");
        }
        let blair: (String, Option<String>) = sqlx::query_as("SELECT email, name FROM customers")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(
            blair,
            ("blair@example.com".into(), Some("Blair Other".into()))
        );
        let names: Vec<Option<String>> =
            sqlx::query_scalar("SELECT name_on_ticket FROM tickets ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert!(
            names.contains(&None) && names.contains(&Some("Blair Other".into())),
            "{names:?}"
        );
    };
    check(pool.clone()).await;
    for stream in [ingest.events().await, ingest.deliveries().await] {
        for (_, erased, _, body) in messages(&stream).await {
            assert!(!body.to_lowercase().contains("jordan"), "{body}");
            if erased {
                assert!(body.contains("blair@example.com"), "Blair stays: {body}");
            }
        }
    }
    let db = pool.connect_options().get_database().unwrap().to_owned();
    let config = ProjectorConfig::local(nats.clone(), database_of(&db));
    showpass_projector::rebuild(&config, &mut |_, _, _| {})
        .await
        .unwrap();
    check(pool.clone()).await;
    projector.stop().await;
}
