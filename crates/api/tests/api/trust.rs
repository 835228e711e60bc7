//! `/v1/gaps` and `/v1/anomalies`: what is missing and what deserves a look, over HTTP.

use serde_json::json;
use showpass_payload::samples::SampleKind::*;
use showpass_testkit::*;
use sqlx::PgPool;

use crate::common::*;

/// Gaps list oldest `resend_before` first, filter by organization and kind, page, and close
/// when the purchase arrives; a transfer's side waits an hour before it is listed.
#[sqlx::test(migrations = "../../migrations")]
async fn gaps_list_what_to_resend_soonest_first(pool: PgPool) {
    let p = Platform::start(pool).await;
    for (uuid, txn, org) in [("a", "A", "20"), ("b", "B", "21"), ("c", "C", "20")] {
        p.deliver(Refund, uuid, txn, org).await;
    }
    p.deliver(Purchase, "t-1", "T", "20").await;
    p.deliver(Transferred, "t-2", "T", "20").await;
    p.settle().await;

    let (all, pages) = p.all_pages("/v1/gaps?limit=1").await;
    assert_eq!(
        pages, 3,
        "one per page, and no transfer side before its hour"
    );
    let txns: Vec<&str> = all
        .iter()
        .map(|g| g["transaction_id"].as_str().unwrap())
        .collect();
    assert_eq!(txns, ["A", "B", "C"], "oldest resend_before first");
    let a = &all[0];
    assert_eq!(a["kind"], "missing_purchase");
    assert_eq!(a["org_id"], "20");
    assert_eq!(a["events_seen"][0]["event_type"], "invoice.refund");
    let refund = p.get_ok("/v1/logs?q=a").await["items"][0].clone();
    assert_eq!(a["events_seen"][0]["delivery_id"], refund["id"]);
    let first: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(a["first_seen_at"].clone()).unwrap();
    let resend: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(a["resend_before"].clone()).unwrap();
    assert_eq!(resend - first, chrono::Duration::days(15));

    let org21 = p.get_ok("/v1/gaps?org_id=21").await;
    assert_eq!(org21["items"].as_array().unwrap().len(), 1);
    assert_eq!(org21["items"][0]["transaction_id"], "B");
    let transfers = p.get_ok("/v1/gaps?kind=unmatched_transfer").await;
    assert_eq!(transfers["items"], json!([]));

    // An hour later (the side's clock moved back), the transfer's side is a gap too.
    sqlx::query("UPDATE gaps SET open_from = open_from - interval '1 hour' WHERE kind = 'unmatched_transfer'")
        .execute(&p.pool)
        .await
        .unwrap();
    let transfers = p.get_ok("/v1/gaps?kind=unmatched_transfer").await;
    assert_eq!(transfers["items"][0]["transaction_id"], "T");

    p.deliver(Purchase, "a-1", "A", "20").await;
    p.settle().await;
    let left = p.get_ok("/v1/gaps?kind=missing_purchase&org_id=20").await;
    let txns: Vec<&str> = left["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["transaction_id"].as_str().unwrap())
        .collect();
    assert_eq!(txns, ["C"], "A's purchase closed its gap");

    p.problem("/v1/gaps?kind=missing", 400).await;
    p.problem("/v1/gaps?kind=", 400).await;
    p.problem("/v1/gaps?cursor=abc.def", 400).await;
    let (status, _, _) = p.call("GET", "/v1/gaps", None).await;
    assert_eq!(status, 401);
    p.stop().await;
}

/// Anomalies list newest first with their delivery and detail, and filter by kind and
/// organization; a cursor from one listing is refused by the other.
#[sqlx::test(migrations = "../../migrations")]
async fn anomalies_list_newest_first(pool: PgPool) {
    let p = Platform::start(pool).await;
    p.deliver_body(edit(&sample_body(Purchase, "m", "M", "20"), |v| {
        v["data"]["gross_revenue"] = json!("50.00");
    }))
    .await;
    p.deliver(Purchase, "u-1", "U", "21").await;
    p.deliver_body(edit(&sample_body(Refund, "u-2", "U", "21"), |v| {
        v["data"]["currency"] = json!("USD");
    }))
    .await;
    p.settle().await;

    let all = p.get_ok("/v1/anomalies").await;
    let items = all["items"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["currency_mismatch", "totals_mismatch"],
        "newest first"
    );
    let refund = p.get_ok("/v1/logs?q=u-2").await["items"][0].clone();
    assert_eq!(items[0]["delivery_id"], refund["id"]);
    assert_eq!(items[0]["detected_at"], refund["received_at"]);
    assert_eq!(items[0]["org_id"], "21");
    assert_eq!(items[0]["transaction_id"], "U");
    assert_eq!(items[1]["detail"], "gross_revenue 50.00, its lines 52.00");

    let totals = p.get_ok("/v1/anomalies?kind=totals_mismatch").await;
    assert_eq!(totals["items"].as_array().unwrap().len(), 1);
    let org20 = p.get_ok("/v1/anomalies?org_id=20").await;
    assert_eq!(org20["items"][0]["transaction_id"], "M");
    let (page, pages) = p.all_pages("/v1/anomalies?limit=1").await;
    assert_eq!((page.len(), pages), (2, 2));

    let first = p.get_ok("/v1/anomalies?limit=1").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    p.problem(&format!("/v1/gaps?cursor={cursor}"), 400).await;
    p.problem("/v1/anomalies?kind=TOTALS_MISMATCH", 400).await;
    p.problem(&format!("/v1/anomalies?org_id={}", "9".repeat(101)), 400)
        .await;
    p.stop().await;
}

/// `/v1/health` answers end to end: each endpoint's last accepted delivery, rejections by
/// reason, failed events, gaps and anomalies, and the projector's lag (the oldest unapplied
/// message, deleted ones skipped); the gauges carry the same figures.
#[sqlx::test(migrations = "../../migrations")]
async fn health_answers_end_to_end_and_the_gauges_agree(pool: PgPool) {
    let mut p = Platform::start(pool).await;
    p.deliver(Purchase, "p-1", "P", "20").await;
    p.deliver(Refund, "g-2", "G", "20").await;
    p.deliver_body(edit(&sample_body(Purchase, "f-1", "F", "20"), |v| {
        v["data"]["net_sales"] = json!("a lot");
    }))
    .await;
    let (status, _) = post(p.ingest.addr, "/webhooks/showpass", &[], b"{}".to_vec()).await;
    assert_eq!(status.as_u16(), 401);
    p.settle().await;

    let h = p.get_ok("/v1/health").await;
    assert_eq!(h["status"], "attention", "{h:#}");
    assert!(
        h["attention"][0]
            .as_str()
            .unwrap()
            .contains("1 events could not be applied"),
        "{h:#}"
    );
    let last = p.get_ok("/v1/logs?outcome=accepted&limit=1").await["items"][0].clone();
    assert_eq!(h["endpoints"][0]["endpoint"], "default");
    assert_eq!(h["endpoints"][0]["last_delivery_id"], last["id"]);
    assert_eq!(h["endpoints"][0]["last_accepted_at"], last["received_at"]);
    let rejected: i64 = h["rejected"]["last_hour"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(rejected, 1, "{h:#}");
    assert_eq!(h["rejected"]["last_24h"], h["rejected"]["last_hour"]);
    assert_eq!(h["failed_events"], 1);
    assert_eq!(
        h["gaps"],
        json!({"missing_purchase": 1, "unmatched_transfer": 0})
    );
    assert_eq!(h["anomalies"]["totals_mismatch"], 0);
    assert_eq!(h["projector"]["lag_events"], 0, "{h:#}");
    assert_eq!(h["projector"]["lag_seconds"], 0.0);

    // The gauges follow (computed every 200 ms here; a loaded machine may take longer).
    let lines = [
        "showpass_gaps{kind=\"missing_purchase\"} 1",
        "showpass_gaps{kind=\"unmatched_transfer\"} 0",
        "showpass_failed_events 1",
        "showpass_anomalies{kind=\"totals_mismatch\"} 0",
        "showpass_last_accepted_delivery_timestamp_seconds{endpoint=\"default\"} ",
        "showpass_projector_lag_events{stream=",
        "showpass_rejected_deliveries{reason=",
        "showpass_oldest_gap_first_seen_timestamp_seconds ",
    ];
    let mut metrics = String::new();
    for _ in 0..600 {
        metrics = get(p.api, "/metrics").await.unwrap().1;
        if lines.iter().all(|l| metrics.contains(l)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for line in lines {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }

    // The projector stops; two events wait, the first of them deleted from the stream.
    p.projector.take().unwrap().stop().await;
    p.deliver(Purchase, "w-1", "W1", "20").await;
    p.deliver(Purchase, "w-2", "W2", "20").await;
    let events = p.ingest.events().await;
    let last_seq = events.get_info().await.unwrap().state.last_sequence;
    events.delete_message(last_seq - 1).await.unwrap();
    let second = events.get_raw_message(last_seq).await.unwrap();
    let h = p.get_ok("/v1/health").await;
    let lag = &h["projector"]["streams"][0];
    assert_eq!(lag["lag_events"], 2, "{h:#}");
    assert_eq!(lag["applied_through"], last_seq - 2);
    let oldest: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(lag["oldest_unapplied_at"].clone()).unwrap();
    assert_eq!(oldest, second.time.with_timezone(&chrono::Utc));
    assert!(h["projector"]["lag_seconds"].as_f64().unwrap() >= 0.0);
    p.stop().await;
}

/// `DELETE /v1/customers/{id}`: a read key is refused, an admin key erases (search, the
/// customer, the order's contact and the stored payload forget them; the money stays), a
/// second time changes nothing, a replay brings nothing back, an unknown id is a 404.
#[sqlx::test(migrations = "../../migrations")]
async fn a_customer_is_erased_over_http(pool: PgPool) {
    let p = Platform::start(pool).await;
    p.deliver(Purchase, "a-1", "A", "20").await;
    p.deliver_body(purchase_by(
        "b-1",
        "B",
        "20",
        "Blair Other",
        "blair@example.com",
    ))
    .await;
    p.settle().await;
    let alex = p.get_ok("/v1/customers?q=alex").await["items"][0].clone();
    let id = alex["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/customers/{id}");
    let before = p.get_ok("/v1/orders/A").await;

    let (status, problem, _) = p.call("DELETE", &path, Some(READ_KEY)).await;
    assert_eq!(status, 403, "{problem}");
    let (status, report, _) = p.call("DELETE", &path, Some(KEY)).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["customer_id"], id.as_str());
    assert_eq!(report["already_erased"], false);
    assert_eq!(report["rows"]["customers"], 1);
    // A's purchase, and B's: Blair bought it, but its tickets still name Alex.
    assert_eq!(report["messages"]["events"], 2);

    p.problem(&path, 404).await;
    assert_eq!(p.get_ok("/v1/customers?q=alex").await["items"], json!([]));
    assert_eq!(
        p.get_ok("/v1/customers?q=alx").await["items"],
        json!([]),
        "nor with a typo"
    );
    assert_eq!(
        p.get_ok("/v1/customers?q=al").await["items"],
        json!([]),
        "nor by the start of a word"
    );
    let after = p.get_ok("/v1/orders/A").await;
    assert_eq!(after["customer_email"], serde_json::Value::Null);
    assert_eq!(after["net_sales"], before["net_sales"]);
    assert_eq!(after["status"], before["status"]);
    let log = p.get_ok("/v1/logs?q=a-1").await["items"][0].clone();
    assert!(log["erased_at"].is_string(), "{log}");
    let detail = p
        .get_ok(&format!("/v1/logs/{}", log["id"].as_str().unwrap()))
        .await;
    assert_eq!(
        detail["payload"]["data"]["customer_email"],
        serde_json::Value::Null
    );
    assert!(detail["headers"]["Showpass-Erased"].is_string(), "{detail}");
    assert!(
        !detail.to_string().to_lowercase().contains("alex"),
        "{detail}"
    );
    let blair = p.get_ok("/v1/customers?q=blair").await;
    assert_eq!(blair["items"].as_array().unwrap().len(), 1);

    // Again: 200, nothing changed.
    let (status, again, _) = p.call("DELETE", &path, Some(KEY)).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["already_erased"], true);
    assert_eq!(
        again["rows"],
        json!({"customers": 0, "orders": 0, "invoices": 0, "tickets": 0, "search_words": 0, "deliveries": 0})
    );
    assert_eq!(
        again["messages"],
        json!({"events": 0, "deliveries": 0, "deleted": 0})
    );

    // A replay of their delivery brings nothing back.
    let (status, _, _) = p
        .call(
            "POST",
            &format!("/v1/logs/{}/replay", log["id"].as_str().unwrap()),
            Some(KEY),
        )
        .await;
    assert_eq!(status, 202);
    p.settle().await;
    assert_eq!(p.get_ok("/v1/customers?q=alex").await["items"], json!([]));
    assert_eq!(
        p.get_ok("/v1/orders/A").await["customer_email"],
        serde_json::Value::Null
    );

    let (status, _, _) = p
        .call(
            "DELETE",
            &format!("/v1/customers/{}", uuid::Uuid::new_v4()),
            Some(KEY),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _, _) = p
        .call("DELETE", "/v1/customers/not-a-uuid", Some(KEY))
        .await;
    assert_eq!(status, 404);
    let (status, _, _) = p.call("DELETE", &path, None).await;
    assert_eq!(status, 401);
    let by: String = sqlx::query_scalar("SELECT requested_by FROM erasure_audit LIMIT 1")
        .fetch_one(&p.pool)
        .await
        .unwrap();
    assert!(by.starts_with("key:") && by.len() == 16, "{by}");
    assert!(!by.contains(KEY));
    p.stop().await;
}
