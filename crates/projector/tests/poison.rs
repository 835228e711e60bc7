//! Signed deliveries that used to stop projection or book money wrongly (issue 11), through
//! the real ingest, NATS and PostgreSQL.

use rust_decimal::Decimal;
use serde_json::json;
use showpass_payload::samples::SampleKind::{self, *};
use showpass_testkit::*;
use sqlx::{PgPool, Row};

async fn deliver(ingest: &TestIngest, body: &[u8]) {
    let (status, answer) = ingest.deliver(body).await;
    assert!(status.is_success(), "{answer}");
}

fn body(kind: SampleKind, uuid: &str, txn: &str) -> Vec<u8> {
    sample_body(kind, uuid, txn, "20")
}

fn without_currency(b: Vec<u8>) -> Vec<u8> {
    edit(&b, |v| {
        v["data"].as_object_mut().unwrap().remove("currency");
    })
}

fn in_currency(b: Vec<u8>, currency: &str) -> Vec<u8> {
    edit(&b, |v| v["data"]["currency"] = currency.into())
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

async fn processing(pool: &PgPool, uuid: &str) -> (String, Option<String>) {
    sqlx::query_as("SELECT processing, error FROM deliveries WHERE webhook_event_uuid = $1")
        .bind(uuid)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Net sales and tickets per currency, summed over every cell of the finest table.
async fn sales_by_currency(pool: &PgPool) -> Vec<(String, Decimal, i64)> {
    sqlx::query_as(
        "SELECT currency, sum(net_sales), sum(tickets)::int8 FROM sales_by_order_attrs
         GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The signed purchase of issue 11 used to panic the projector ("Addition overflowed") on
/// every start; it is recorded failed and what follows it applies.
#[sqlx::test(migrations = "../../migrations")]
async fn the_purchase_that_overflowed_the_fold_is_failed_and_the_stream_moves_on(pool: PgPool) {
    let ingest = TestIngest::start().await;
    let projector = TestProjector::start(&ingest, &pool, |_| {});
    let poison = edit(&body(Purchase, "huge", "H"), |v| {
        let line = v["data"]["invoice_items"][0].clone();
        v["data"]["invoice_items"] = json!([line.clone(), line]);
        for line in v["data"]["invoice_items"].as_array_mut().unwrap() {
            line["net_sales"] = "79228162514264337593543950335".into();
        }
    });
    let (status, _) = ingest.deliver(&poison).await;
    assert_eq!(status, hyper::StatusCode::ACCEPTED);
    deliver(&ingest, &body(Purchase, "after", "A")).await;
    caught_up(&ingest, &pool).await;
    let (state, error) = processing(&pool, "huge").await;
    assert_eq!(state, "failed");
    assert!(error.unwrap().contains("out of range"));
    assert_eq!(processing(&pool, "after").await.0, "applied");
    assert_eq!(
        sales_by_currency(&pool).await,
        [("CAD".into(), dec("58.40"), 2)]
    );
    assert!(
        !projector.task.is_finished(),
        "the projector is still running"
    );
    projector.stop().await;
}

/// A hundred thousand tickets in one signed delivery: failed with the reason, not a batch
/// that exhausts memory.
#[sqlx::test(migrations = "../../migrations")]
async fn a_delivery_with_a_hundred_thousand_tickets_is_failed_with_its_reason(pool: PgPool) {
    let ingest = TestIngest::start().await;
    let projector = TestProjector::start(&ingest, &pool, |_| {});
    let huge = edit(&body(Purchase, "many", "M"), |v| {
        v["data"]["ticket_items"] = serde_json::Value::Array(vec![json!({"id": 1}); 100_000]);
    });
    deliver(&ingest, &huge).await;
    deliver(&ingest, &body(Purchase, "after", "A")).await;
    caught_up(&ingest, &pool).await;
    let (state, error) = processing(&pool, "many").await;
    assert_eq!(state, "failed");
    assert!(error.unwrap().contains("more than 10000 entries"));
    assert_eq!(processing(&pool, "after").await.0, "applied");
    projector.stop().await;
}

/// A refund or void without a currency is booked in its order's currency, whether it
/// arrives after its purchase or before it; nothing is booked under "".
#[sqlx::test(migrations = "../../migrations")]
async fn refunds_without_a_currency_are_booked_in_their_orders_currency(pool: PgPool) {
    let ingest = TestIngest::start().await;
    let projector = TestProjector::start(&ingest, &pool, |_| {});
    // In order: a USD purchase, then a void without a currency.
    deliver(&ingest, &in_currency(body(Purchase, "u-p", "U"), "USD")).await;
    deliver(&ingest, &without_currency(body(Void, "u-v", "U"))).await;
    // Out of order: a refund without a currency waits for its CAD purchase.
    deliver(&ingest, &without_currency(body(Refund, "c-r", "C"))).await;
    caught_up(&ingest, &pool).await;
    let waiting: Option<String> =
        sqlx::query_scalar("SELECT booked_currency FROM invoices WHERE idempotency_key = 'c-r'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(waiting, None, "no purchase yet: its money waits");
    deliver(&ingest, &body(Purchase, "c-p", "C")).await;
    caught_up(&ingest, &pool).await;

    assert_eq!(
        sales_by_currency(&pool).await,
        [
            ("CAD".into(), Decimal::ZERO, 0),
            ("USD".into(), Decimal::ZERO, 0)
        ]
    );
    let cancel: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT cancel_currency FROM tickets WHERE cancelled ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(cancel, ["CAD", "USD"]);
    for (txn, currency) in [("U", "USD"), ("C", "CAD")] {
        let o = sqlx::query("SELECT currency, refunded FROM orders WHERE transaction_id = $1")
            .bind(txn)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(o.get::<String, _>("currency"), currency);
        assert_eq!(o.get::<Decimal, _>("refunded"), dec("58.40"));
    }
    projector.stop().await;
}

/// Amounts in different currencies are never added: an order's `refunded` keeps its own
/// currency and lists the others apart; a customer's `total_spent` is in their currency, and
/// a refund in another currency counts in that currency's spending.
#[sqlx::test(migrations = "../../migrations")]
async fn refunds_and_spending_in_other_currencies_are_never_added(pool: PgPool) {
    let ingest = TestIngest::start().await;
    let projector = TestProjector::start(&ingest, &pool, |_| {});
    deliver(&ingest, &body(Purchase, "a-p", "A")).await;
    deliver(&ingest, &in_currency(body(Refund, "a-r", "A"), "USD")).await;
    deliver(&ingest, &in_currency(body(Purchase, "b-p", "B"), "USD")).await;
    caught_up(&ingest, &pool).await;

    let a = sqlx::query(
        "SELECT refunded, other_currency_refunds FROM orders WHERE transaction_id = 'A'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(a.get::<Decimal, _>("refunded"), Decimal::ZERO);
    assert_eq!(
        a.get::<serde_json::Value, _>("other_currency_refunds"),
        json!([{"currency": "USD", "amount": "58.40"}])
    );
    let alex = sqlx::query(
        "SELECT currency, total_spent, spent_by_currency FROM customers
         WHERE email = 'alex.buyer@example.com'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(alex.get::<String, _>("currency"), "CAD");
    assert_eq!(alex.get::<Decimal, _>("total_spent"), dec("58.40"));
    assert_eq!(
        alex.get::<serde_json::Value, _>("spent_by_currency"),
        json!([
            {"currency": "CAD", "amount": "58.40"},
            {"currency": "USD", "amount": "0.00"}
        ]),
        "the USD refund of a CAD order counts against USD spending, never CAD"
    );
    projector.stop().await;
}

/// Showpass may report a transferred-away ticket `voided`: it was sold and still counts, and
/// its order is transferred, not voided.
#[sqlx::test(migrations = "../../migrations")]
async fn tickets_reported_voided_in_a_transfer_were_transferred(pool: PgPool) {
    let ingest = TestIngest::start().await;
    let projector = TestProjector::start(&ingest, &pool, |_| {});
    deliver(&ingest, &body(Purchase, "d-p", "D")).await;
    let voided = edit(&body(Transferred, "d-x", "D"), |v| {
        for t in v["data"]["ticket_items"].as_array_mut().unwrap() {
            t["ticket_status"] = "voided".into();
        }
    });
    deliver(&ingest, &voided).await;
    caught_up(&ingest, &pool).await;
    let status: String = sqlx::query_scalar("SELECT status FROM orders WHERE transaction_id = 'D'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "transferred");
    assert_eq!(
        sales_by_currency(&pool).await,
        [("CAD".into(), dec("58.40"), 2)]
    );
    projector.stop().await;
}

/// Issue 12: duplicate and rejected deliveries expire after the retention; accepted ones
/// (the events' own log) and recent ones stay.
#[sqlx::test(migrations = "../../migrations")]
async fn old_duplicates_and_rejections_expire_from_the_delivery_log(pool: PgPool) {
    for (age_days, outcome, n) in [
        (40, "rejected", 25_000),
        (40, "duplicate", 3),
        (40, "accepted", 2),
        (1, "rejected", 4),
    ] {
        sqlx::query(
            "INSERT INTO deliveries (id, received_at, endpoint, outcome, http_status, stream,
                 stream_seq, processing)
             SELECT gen_random_uuid(), now() - make_interval(days => $1), 'default', $2, 401,
                 'S_' || $2 || $1, g, 'skipped'
             FROM generate_series(1, $3) AS g",
        )
        .bind(age_days)
        .bind(outcome)
        .bind(n)
        .execute(&pool)
        .await
        .unwrap();
    }
    let mut conn = pool.acquire().await.unwrap();
    let gone = showpass_projector::expire_delivery_log(
        &mut conn,
        std::time::Duration::from_secs(30 * 86_400),
    )
    .await
    .unwrap();
    assert_eq!(gone, 25_003, "in chunks, every old duplicate and rejection");
    let left: Vec<(String, i64)> =
        sqlx::query_as("SELECT outcome, count(*) FROM deliveries GROUP BY 1 ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        left,
        [("accepted".to_owned(), 2), ("rejected".to_owned(), 4)]
    );
}
