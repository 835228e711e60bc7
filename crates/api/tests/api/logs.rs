//! The delivery log and replay.

use serde_json::{Value, json};
use showpass_api::ApiConfig;
use showpass_payload::samples::SampleKind::*;
use showpass_testkit::*;
use sqlx::PgPool;

use crate::common::*;

/// Replaying an applied event changes nothing; replaying a duplicate is refused.
#[sqlx::test(migrations = "../../migrations")]
async fn replay_republishes_and_the_projector_applies_nothing_twice(pool: PgPool) {
    let p = Platform::start(pool).await;
    p.deliver(Purchase, "r-1", "R1", "20").await;
    p.deliver(Purchase, "r-1", "R1", "20").await;
    p.settle().await;
    let before = p.get_ok("/v1/orders/R1").await;
    let accepted = p.get_ok("/v1/logs?outcome=accepted").await["items"][0].clone();
    let duplicate = p.get_ok("/v1/logs?outcome=duplicate").await["items"][0].clone();

    let path = format!("/v1/logs/{}/replay", accepted["id"].as_str().unwrap());
    let (status, answer, _) = p.call("POST", &path, Some(KEY)).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["replay_of"], accepted["stream_seq"]);
    assert!(answer["stream_seq"].as_i64() > accepted["stream_seq"].as_i64());
    p.settle().await;

    let after = p.get_ok("/v1/orders/R1").await;
    assert_eq!(after["net_sales"], before["net_sales"]);
    assert_eq!(after["invoices"].as_array().unwrap().len(), 1);
    let log = p
        .get_ok(&format!("/v1/logs/{}", accepted["id"].as_str().unwrap()))
        .await;
    assert_eq!(log["processing"], "applied");
    assert_eq!(
        log["headers"]["Showpass-Replay-Of"],
        accepted["stream_seq"].to_string()
    );
    assert_eq!(
        p.get_ok("/v1/logs?outcome=accepted").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let path = format!("/v1/logs/{}/replay", duplicate["id"].as_str().unwrap());
    let (status, problem, _) = p.call("POST", &path, Some(KEY)).await;
    assert_eq!(status, 409, "{problem}");
    p.stop().await;
}

/// A poison event is logged failed; its replay is processed again (and fails the same way
/// until the projector understands it), never blocking later events.
#[sqlx::test(migrations = "../../migrations")]
async fn a_failed_event_can_be_replayed(pool: PgPool) {
    let p = Platform::start(pool).await;
    p.deliver_body(edit(&sample_body(Purchase, "f-1", "F1", "20"), |v| {
        v["data"]["net_sales"] = json!("a lot");
    }))
    .await;
    p.settle().await;
    let failed = p.get_ok("/v1/logs?processing=failed").await["items"][0].clone();
    assert!(
        failed["error"].as_str().unwrap().contains("a lot"),
        "{failed}"
    );
    let (status, answer, _) = p
        .call(
            "POST",
            &format!("/v1/logs/{}/replay", failed["id"].as_str().unwrap()),
            Some(KEY),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    p.deliver(Purchase, "f-2", "F2", "20").await;
    p.settle().await;
    let log = p
        .get_ok(&format!("/v1/logs/{}", failed["id"].as_str().unwrap()))
        .await;
    assert_eq!(log["processing"], "failed");
    assert_eq!(
        log["stream_seq"], answer["stream_seq"],
        "the replay was processed"
    );
    assert_eq!(p.get_ok("/v1/orders/F2").await["status"], "purchased");
    p.stop().await;
}

/// Without NATS, a delivery still reads back (its payload marked unavailable) and a replay is
/// a 503 to retry, not a lost request.
#[sqlx::test(migrations = "../../migrations")]
async fn without_nats_logs_still_answer_and_replay_is_a_503(pool: PgPool) {
    let p = Platform::start(pool).await;
    p.deliver(Purchase, "n-1", "N1", "20").await;
    p.settle().await;
    let id = p.get_ok("/v1/logs").await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A second api on the same database, configured for a NATS that is not there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut nats = p.ingest.config.nats.clone();
    nats.url = format!("nats://{dead}").parse().unwrap();
    let db = p.pool.connect_options().get_database().unwrap().to_owned();
    let config = ApiConfig::local(database_of(&db), Some(nats), &format!("{KEY}:admin"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(showpass_api::run(config, listener, p.shutdown.clone()));
    let auth = format!("Bearer {KEY}");
    let (status, body, _) = raw(
        addr,
        "GET",
        &format!("/v1/logs/{id}"),
        &[("authorization", &auth)],
    )
    .await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["processing"], "applied");
    assert!(
        body["payload"].is_null() && body["payload_unavailable"].is_string(),
        "{body}"
    );
    let (status, _, content_type) = raw(
        addr,
        "POST",
        &format!("/v1/logs/{id}/replay"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(content_type, "application/problem+json");
    p.stop().await;
}
