//! Gaps and anomalies, derived by the projector against the real NATS and PostgreSQL, and
//! derived again, row for row, by `rebuild`.

use chrono::{DateTime, Duration, Utc};
use showpass_payload::samples::SampleKind::{self, *};
use showpass_projector::ProjectorConfig;
use showpass_testkit::*;
use sqlx::{PgPool, Row};

async fn deliver(ingest: &TestIngest, body: &[u8]) {
    let (status, answer) = ingest.deliver(body).await;
    assert!(status.is_success(), "{answer}");
}

fn body(kind: SampleKind, uuid: &str, txn: &str) -> Vec<u8> {
    sample_body(kind, uuid, txn, "20")
}

/// The gaps, as (kind, transaction, event types seen).
async fn gaps(pool: &PgPool) -> Vec<(String, String, Vec<String>)> {
    sqlx::query(
        "SELECT kind, transaction_id,
             ARRAY(SELECT e->>'event_type' FROM jsonb_array_elements(events_seen) e) AS seen
         FROM gaps ORDER BY kind, transaction_id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

/// The anomalies, as (kind, transaction, detail).
async fn anomalies(pool: &PgPool) -> Vec<(String, Option<String>, String)> {
    sqlx::query("SELECT kind, transaction_id, detail FROM anomalies ORDER BY kind, transaction_id")
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn received_at(pool: &PgPool, uuid: &str) -> (uuid::Uuid, DateTime<Utc>) {
    let r = sqlx::query(
        "SELECT id, received_at FROM deliveries WHERE webhook_event_uuid = $1 AND outcome = 'accepted'",
    )
    .bind(uuid)
    .fetch_one(pool)
    .await
    .unwrap();
    (r.get(0), r.get(1))
}

/// Every flag table, each row as JSON, in key order.
async fn flags(pool: &PgPool) -> Vec<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for t in ["gaps", "anomalies", "transfer_sides"] {
        out.push(
            sqlx::query_scalar(&format!(
                "SELECT to_jsonb(x) FROM {t} x ORDER BY to_jsonb(x)::text"
            ))
            .fetch_all(pool)
            .await
            .unwrap(),
        );
    }
    out
}

async fn rebuild(ingest: &TestIngest, pool: &PgPool) {
    let db = pool.connect_options().get_database().unwrap().to_owned();
    let config = ProjectorConfig::local(ingest.config.nats.clone(), database_of(&db));
    showpass_projector::rebuild(&config, &mut |_, _, _| {})
        .await
        .unwrap();
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// A refund before its purchase opens a gap that the purchase closes; a purchase never sent
/// leaves its gap open with 15 days to resend it; a transfer waits for its other side.
#[sqlx::test(migrations = "../../migrations")]
async fn missing_events_are_gaps_until_they_arrive(pool: PgPool) {
    let ingest = TestIngest::start().await;
    let projector = TestProjector::start(&ingest, &pool, |c| c.batch_size = 2);

    // C: its refund first (a resend), then its purchase.
    deliver(&ingest, &body(Refund, "c-2", "C")).await;
    // Z: refunded, then voided; its purchase never comes.
    deliver(&ingest, &body(Refund, "z-2", "Z")).await;
    deliver(&ingest, &body(Void, "z-3", "Z")).await;
    // D: the sender's side of a transfer, alone for now.
    deliver(&ingest, &body(Purchase, "d-1", "D")).await;
    deliver(&ingest, &body(Transferred, "d-2", "D")).await;
    caught_up(&ingest, &pool).await;
    assert_eq!(
        gaps(&pool).await,
        vec![
            (
                "missing_purchase".into(),
                "C".into(),
                strings(&["invoice.refund"])
            ),
            (
                "missing_purchase".into(),
                "Z".into(),
                strings(&["invoice.refund", "invoice.void"])
            ),
            (
                "unmatched_transfer".into(),
                "D".into(),
                strings(&["invoice.transferred"])
            ),
        ]
    );

    // Z's gap: first seen with its refund, resendable for 15 days, with the delivery ids.
    let (refund_id, refund_at) = received_at(&pool, "z-2").await;
    let (void_id, _) = received_at(&pool, "z-3").await;
    let z = sqlx::query(
        "SELECT first_seen_at, resend_before, open_from, events_seen FROM gaps WHERE transaction_id = 'Z'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(z.get::<DateTime<Utc>, _>("first_seen_at"), refund_at);
    assert_eq!(
        z.get::<DateTime<Utc>, _>("resend_before"),
        refund_at + Duration::days(15)
    );
    assert_eq!(z.get::<DateTime<Utc>, _>("open_from"), refund_at);
    let seen: serde_json::Value = z.get("events_seen");
    assert_eq!(seen[0]["delivery_id"], refund_id.to_string());
    assert_eq!(seen[1]["delivery_id"], void_id.to_string());

    // A transfer's side counts as a gap only after an hour.
    let (_, transferred_at) = received_at(&pool, "d-2").await;
    let open_from: DateTime<Utc> =
        sqlx::query_scalar("SELECT open_from FROM gaps WHERE kind = 'unmatched_transfer'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(open_from, transferred_at + Duration::hours(1));

    // C's purchase arrives, and D's other side (the recipient's new transaction D-T): both
    // gaps close. Z's stays.
    deliver(&ingest, &body(Purchase, "c-1", "C")).await;
    deliver(&ingest, &body(Transfer, "d-3", "D")).await;
    caught_up(&ingest, &pool).await;
    assert_eq!(
        gaps(&pool).await,
        vec![(
            "missing_purchase".into(),
            "Z".into(),
            strings(&["invoice.refund", "invoice.void"])
        )]
    );

    // A transfer of other tickets (another ticket type) does not pair with D's.
    let other = edit(&body(Transfer, "e-3", "E"), |v| {
        for t in v["data"]["ticket_items"].as_array_mut().unwrap() {
            t["ticket_type_id"] = "999".into();
        }
    });
    deliver(&ingest, &other).await;
    deliver(&ingest, &body(Transferred, "f-2", "F")).await;
    caught_up(&ingest, &pool).await;
    let kinds: Vec<(String, String)> = gaps(&pool)
        .await
        .into_iter()
        .map(|(k, t, _)| (k, t))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("missing_purchase".into(), "F".into()),
            ("missing_purchase".into(), "Z".into()),
            ("unmatched_transfer".into(), "E-T".into()),
            ("unmatched_transfer".into(), "F".into()),
        ]
    );

    let live = flags(&pool).await;
    rebuild(&ingest, &pool).await;
    assert_eq!(flags(&pool).await, live, "rebuild derives the same gaps");
    projector.stop().await;
}

/// Totals that disagree with their lines, a refund in another currency, refunds beyond the
/// sale, a redelivery with another body and a signed id reused for another transaction are
/// flagged, the money untouched, and derived again by `rebuild`.
#[sqlx::test(migrations = "../../migrations")]
async fn anomalies_are_flagged_and_never_change_the_money(pool: PgPool) {
    let ingest = TestIngest::start().await;
    let projector = TestProjector::start(&ingest, &pool, |c| c.batch_size = 2);

    // M: the invoice says 60.00 net and 6.00 fees; its only line says 58.40 and 5.90.
    let m = edit(&body(Purchase, "m-1", "M"), |v| {
        v["data"]["net_sales"] = "60.00".into();
        v["data"]["service_fees"] = "6.00".into();
        v["data"]["total_tax"] = "2.505".into();
    });
    deliver(&ingest, &m).await;
    // An honest purchase: nothing to flag.
    deliver(&ingest, &body(Purchase, "h-1", "H")).await;
    // U: purchased in CAD, refunded in USD (the refund first).
    let usd = edit(&body(Refund, "u-2", "U"), |v| {
        v["data"]["currency"] = "USD".into()
    });
    deliver(&ingest, &usd).await;
    deliver(&ingest, &body(Purchase, "u-1", "U")).await;
    // R: refunded in full, then voided in full as well.
    deliver(&ingest, &body(Purchase, "r-1", "R")).await;
    deliver(&ingest, &body(Refund, "r-2", "R")).await;
    deliver(&ingest, &body(Void, "r-3", "R")).await;
    // H's event again, with another body.
    let changed = edit(&body(Purchase, "h-1", "H"), |v| {
        v["data"]["customer_name"] = "Someone Else".into();
    });
    let (status, _) = ingest.deliver(&changed).await;
    assert!(status.is_success());
    // The signed id "H" once more, for transaction X of the same organization.
    let reused = edit(&body(Purchase, "x-1", "X"), |v| v["id"] = "H".into());
    deliver(&ingest, &reused).await;
    caught_up(&ingest, &pool).await;

    let found = anomalies(&pool).await;
    let kinds: Vec<(&str, Option<&str>)> = found
        .iter()
        .map(|(k, t, _)| (k.as_str(), t.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("conflicting_redelivery", Some("H")),
            ("currency_mismatch", Some("U")),
            ("id_transaction_mismatch", Some("X")),
            ("refund_exceeds_purchase", Some("R")),
            ("totals_mismatch", Some("M")),
        ],
        "{found:#?}"
    );
    let detail = |kind: &str| {
        found
            .iter()
            .find(|(k, _, _)| k == kind)
            .map(|(_, _, d)| d.clone())
            .unwrap()
    };
    assert_eq!(
        detail("totals_mismatch"),
        "net_sales 60.00, its lines 58.40; service_fees 6.00, its lines 5.90"
    );
    assert_eq!(
        detail("currency_mismatch"),
        "invoice.refund of 58.40 USD; the order is in CAD"
    );
    assert_eq!(
        detail("refund_exceeds_purchase"),
        "refunded 116.80 CAD of 58.40 CAD sold"
    );

    // Each is on the delivery that showed it, dated when it arrived.
    let (refund_id, refund_at) = received_at(&pool, "u-2").await;
    let (id, at): (uuid::Uuid, DateTime<Utc>) = sqlx::query_as(
        "SELECT delivery_id, detected_at FROM anomalies WHERE kind = 'currency_mismatch'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((id, at), (refund_id, refund_at));
    let (void_id, _) = received_at(&pool, "r-3").await;
    let flagged: uuid::Uuid = sqlx::query_scalar(
        "SELECT delivery_id FROM anomalies WHERE kind = 'refund_exceeds_purchase'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(flagged, void_id, "the refund or void that went beyond");

    // The money is as Showpass sent it.
    let m_net: rust_decimal::Decimal =
        sqlx::query_scalar("SELECT net_sales FROM orders WHERE transaction_id = 'M'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(m_net.to_string(), "60.00");

    let live = flags(&pool).await;
    rebuild(&ingest, &pool).await;
    assert_eq!(
        flags(&pool).await,
        live,
        "rebuild derives the same anomalies"
    );
    projector.stop().await;
}
