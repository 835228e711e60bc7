//! The sales summary and the itemised export.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use showpass_api::ApiConfig;
use showpass_core::CancellationToken;
use showpass_payload::samples::SampleKind::*;
use showpass_testkit::*;
use sqlx::PgPool;

use crate::common::*;

/// Sales from the aggregates: every group_by, per-currency totals, refunds subtracted, tz days.
#[sqlx::test(migrations = "../../migrations")]
async fn sales_summary_groups_and_totals_per_currency(pool: PgPool) {
    let p = Platform::start(pool).await;
    p.deliver(Purchase, "s-1", "S1", "20").await;
    p.deliver(Purchase, "s-2", "S2", "20").await;
    p.deliver(Refund, "s-3", "S2", "20").await;
    p.deliver_body(edit(&sample_body(Purchase, "s-4", "S4", "20"), |v| {
        v["data"]["currency"] = json!("USD");
        v["data"]["payment_type"] = json!("cash");
    }))
    .await;
    p.deliver(Transfer, "s-5", "S1", "20").await;
    p.settle().await;

    let by_event = p.get_ok("/v1/sales/summary?group_by=event&org_id=20").await;
    let rows = by_event["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "one row per currency: {by_event}");
    let cad = rows.iter().find(|r| r["currency"] == "CAD").unwrap();
    assert_eq!(cad["key"], "474708");
    assert_eq!(cad["label"], "Sample Night");
    assert_eq!(cad["orders"], 2, "a refunded order still counts");
    assert_eq!(
        cad["tickets"], 2,
        "refunded tickets do not; transferred ones do"
    );
    assert_eq!(cad["net_sales"], "58.40");
    assert_eq!(cad["refunds"], "58.40");
    assert_eq!(cad["gross_revenue"], "52.00");
    let totals = by_event["totals"].as_array().unwrap();
    assert_eq!(
        totals
            .iter()
            .map(|t| t["currency"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["CAD", "USD"]
    );
    assert_eq!(totals[1]["net_sales"], "58.40");

    let by_type = p
        .get_ok("/v1/sales/summary?group_by=ticket_type&org_id=20")
        .await;
    assert_eq!(by_type["rows"][0]["key"], "1657978");
    assert_eq!(by_type["rows"][0]["label"], "General admission");
    let by_payment = p
        .get_ok("/v1/sales/summary?group_by=payment_type&org_id=20")
        .await;
    let keys: HashSet<&str> = by_payment["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, HashSet::from(["credit", "cash"]));

    // Days are counted in `tz`: a fixed +14:00 zone is a day ahead of UTC from 10:00.
    let received = p.get_ok("/v1/logs?q=s-1").await["items"][0]["received_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let at = chrono::DateTime::parse_from_rfc3339(&received).unwrap();
    let utc_day = at.date_naive().to_string();
    let kiribati_day = (at + chrono::Duration::hours(14)).date_naive().to_string();
    let by_day = p.get_ok("/v1/sales/summary?group_by=day&org_id=20").await;
    assert_eq!(by_day["rows"][0]["key"], utc_day);
    let by_day = p
        .get_ok("/v1/sales/summary?group_by=day&org_id=20&tz=Etc/GMT-14")
        .await;
    assert_eq!(by_day["rows"][0]["key"], kiribati_day);
    assert_eq!(by_day["tz"], "Etc/GMT-14");

    // A range that excludes today leaves nothing; one that includes it, everything.
    let empty = p.get_ok("/v1/sales/summary?org_id=20&to=2000-01-01").await;
    assert!(
        empty["rows"].as_array().unwrap().is_empty()
            && empty["totals"].as_array().unwrap().is_empty()
    );
    let all = p
        .get_ok(&format!(
            "/v1/sales/summary?org_id=20&from={utc_day}&to={utc_day}"
        ))
        .await;
    assert_eq!(all["totals"].as_array().unwrap().len(), 2);
    p.stop().await;
}

/// The itemised export streams CSV, refunds negative, when asked by format or Accept.
#[sqlx::test(migrations = "../../migrations")]
async fn sales_export_is_itemised_csv(pool: PgPool) {
    let p = Platform::start(pool).await;
    p.deliver(Purchase, "c-1", "C1", "20").await;
    p.deliver(Refund, "c-2", "C1", "20").await;
    p.deliver(Transfer, "c-3", "C1", "20").await;
    p.deliver_body(purchase_by(
        "c-4",
        "C4",
        "20",
        "=cmd|' /C calc'!A0",
        "x@example.com",
    ))
    .await;
    p.settle().await;
    let auth = format!("Bearer {KEY}");
    for (path, accept) in [
        ("/v1/sales/summary?format=csv&org_id=20", "*/*"),
        ("/v1/sales/summary?org_id=20", "text/csv"),
    ] {
        let (status, body, content_type) = raw(
            p.api,
            "GET",
            path,
            &[("authorization", &auth), ("accept", accept)],
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(content_type, "text/csv; charset=utf-8");
        let text = String::from_utf8(body.to_vec()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("received_at,local_time,org_id,transaction_id,event_type"));
        assert_eq!(
            lines.len(),
            1 + 3,
            "purchase, refund and second purchase; no transfer: {text}"
        );
        assert!(
            lines[1].contains(",invoice.purchase,")
                && lines[1].ends_with(",52.00,58.40,5.90,2.50,0.00,0.00"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains(",invoice.refund,")
                && lines[2].ends_with(",-52.00,-58.40,-5.90,-2.50,0.00,58.40"),
            "{}",
            lines[2]
        );
    }
    p.stop().await;
}

/// Issue 12: a ticket type's label comes from its own organization's tickets, and a summary
/// stops at 5,000 rows, saying so, with complete totals.
#[sqlx::test(migrations = "../../migrations")]
async fn sales_labels_stay_in_their_organization_and_rows_are_capped(pool: PgPool) {
    let p = Platform::start(pool.clone()).await;
    // Organization 31 first, with the same event and ticket-type ids: a label looked up
    // without the organization would find its name.
    let other = edit(&sample_body(Purchase, "lb-2", "LB2", "31"), |v| {
        for t in v["data"]["ticket_items"].as_array_mut().unwrap() {
            t["ticket_type_name"] = json!("Secret VIP of org 31");
        }
    });
    p.deliver_body(other).await;
    p.settle().await;
    p.deliver(Purchase, "lb-1", "LB1", "20").await;
    p.settle().await;
    let summary = p
        .get_ok("/v1/sales/summary?group_by=ticket_type&org_id=20")
        .await;
    assert_eq!(
        summary["rows"][0]["label"], "General admission",
        "{summary}"
    );
    assert_eq!(summary["truncated"], false);

    // 5,001 ticket types in one organization's daily and monthly tiers.
    for tier in ["daily", "monthly"] {
        sqlx::query(&format!(
            "INSERT INTO sales_by_ticket_type_{tier} (org_id, event_id, ticket_type_id, bucket,
                 payment_type, currency, orders, tickets, net_sales)
             SELECT '77', 'E', 'tt-' || n, '2026-11-01T00:00:00Z', 'credit', 'CAD', 1, 1, 1
             FROM generate_series(1, 5001) AS n"
        ))
        .execute(&pool)
        .await
        .unwrap();
    }
    let summary = p
        .get_ok("/v1/sales/summary?group_by=ticket_type&org_id=77")
        .await;
    assert_eq!(summary["rows"].as_array().unwrap().len(), 5000);
    assert_eq!(summary["truncated"], true);
    p.stop().await;
}

/// Issue 17: a summary by ticket type names its rows from the ticket-type dimension the
/// projector keeps, reading no tickets: with every ticket gone the labels stay, and a rename
/// shows once a later delivery carries it.
#[sqlx::test(migrations = "../../migrations")]
async fn ticket_type_labels_come_from_their_dimension_not_from_tickets(pool: PgPool) {
    let p = Platform::start(pool.clone()).await;
    let renamed = edit(&sample_body(Purchase, "tt-2", "TT2", "20"), |v| {
        for t in v["data"]["ticket_items"].as_array_mut().unwrap() {
            t["ticket_type_name"] = json!("General admission (renamed)");
        }
        for i in v["data"]["invoice_items"].as_array_mut().unwrap() {
            i["ticket_type_name"] = json!("General admission (renamed)");
        }
    });
    p.deliver(Purchase, "tt-1", "TT1", "20").await;
    p.settle().await;
    p.deliver_body(renamed).await;
    p.settle().await;
    sqlx::query("DELETE FROM tickets")
        .execute(&pool)
        .await
        .unwrap();
    let summary = p
        .get_ok("/v1/sales/summary?group_by=ticket_type&org_id=20")
        .await;
    assert_eq!(summary["rows"][0]["key"], "1657978");
    assert_eq!(
        summary["rows"][0]["label"], "General admission (renamed)",
        "{summary}"
    );
    let kept: (String, String) = sqlx::query_as(
        "SELECT name, event_id FROM ticket_types WHERE org_id = '20' AND ticket_type_id = '1657978'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(kept.0, "General admission (renamed)");
    p.stop().await;
}

/// Issue 12: an export that fails midway (here: its statement times out behind a lock) ends
/// its body with an error, never as a file that looks complete; and it runs on connections of
/// its own, so the api's queries go on meanwhile.
#[sqlx::test(migrations = "../../migrations")]
async fn a_failing_export_ends_with_an_error_and_never_takes_the_queries_connections(pool: PgPool) {
    let db = pool.connect_options().get_database().unwrap().to_owned();
    let mut config = ApiConfig::local(database_of(&db), None, KEY);
    config.export_connections = 1;
    config.export_timeout = Duration::from_secs(1);
    // One connection for the queries: an export that took it would block them.
    config.pool_size = 1;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(showpass_api::run(config, listener, shutdown.clone()));
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE invoices IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let auth = format!("Bearer {KEY}");
    let headers = [("authorization", auth.as_str())];
    let export = request_full(
        addr,
        "GET",
        "/v1/sales/summary?format=csv",
        &headers,
        Bytes::new(),
    );
    let query = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        raw(addr, "GET", "/v1/customers", &[("authorization", &auth)])
            .await
            .0
    };
    let (export, query) = tokio::join!(export, query);
    assert_eq!(query, 200, "the queries' own connections answer");
    assert!(export.is_err(), "the export ends with an error: {export:?}");
    lock.rollback().await.unwrap();
    shutdown.cancel();
}

/// Issue 16 review: every time zone the document lists (and `tz` accepts) is one this
/// PostgreSQL knows, so a listed zone never answers 400.
#[sqlx::test(migrations = "../../migrations")]
async fn every_listed_time_zone_is_known_to_postgresql(pool: PgPool) {
    let listed: Vec<&str> = include_str!("../../src/sales/zones.txt")
        .lines()
        .filter(|z| !z.is_empty())
        .collect();
    assert!(listed.len() > 500, "{}", listed.len());
    let unknown: Vec<String> = sqlx::query_scalar(
        "SELECT z FROM unnest($1::text[]) z WHERE NOT EXISTS \
         (SELECT 1 FROM pg_timezone_names n WHERE n.name = z)",
    )
    .bind(&listed)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(unknown.is_empty(), "unknown to PostgreSQL: {unknown:?}");
}
