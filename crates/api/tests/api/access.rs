//! Who may do what: keys and roles, and the open routes (docs, health, metrics).

use bytes::Bytes;
use showpass_api::ApiConfig;
use showpass_core::CancellationToken;
use showpass_payload::samples::SampleKind::*;
use showpass_store::DatabaseUrl;
use showpass_testkit::*;
use sqlx::PgPool;

use crate::common::*;

/// Keys are required on /v1 and compared exactly; docs and health are open.
#[sqlx::test(migrations = "../../migrations")]
async fn v1_needs_a_right_key_and_docs_and_health_do_not(pool: PgPool) {
    let p = Platform::start(pool).await;
    for key in [None, Some("wrong-key"), Some("test-api-key-4b1")] {
        let (status, body, content_type) = p.call("GET", "/v1/customers", key).await;
        assert_eq!(status, 401, "{key:?}");
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(body["status"], 401);
    }
    let (status, _, _) = p.call("GET", "/v1/customers", Some(KEY)).await;
    assert_eq!(status, 200);
    for open in ["/openapi.json", "/docs", "/healthz", "/readyz", "/metrics"] {
        let (status, _, _) = p.call("GET", open, None).await;
        assert_eq!(status, 200, "{open}");
    }
    let (_, doc, _) = p.call("GET", "/openapi.json", None).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let (_, _, metrics) = (0, 0, {
        let (_, body, _) = raw(p.api, "GET", "/metrics", &[]).await;
        String::from_utf8_lossy(&body).into_owned()
    });
    assert!(
        metrics.contains("route=\"/v1/customers\""),
        "latency by route: {metrics}"
    );
    p.stop().await;
}

/// An api whose database is unreachable answers 503 problems (never hangs or 500s), stays
/// alive, and says it is not ready.
#[tokio::test]
async fn an_unreachable_database_is_a_503_and_not_ready() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = ApiConfig::local(
        DatabaseUrl::parse(&format!("postgres://postgres@{dead}/nowhere")).unwrap(),
        None,
        KEY,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(showpass_api::run(config, listener, shutdown.clone()));
    let auth = format!("Bearer {KEY}");
    let (status, body, content_type) =
        raw(addr, "GET", "/v1/orders", &[("authorization", &auth)]).await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(raw(addr, "GET", "/readyz", &[]).await.0, 503);
    assert_eq!(raw(addr, "GET", "/healthz", &[]).await.0, 200);
    shutdown.cancel();
}

/// Issue 12: writes need an admin key; a read key reads and gets 403 for a replay.
#[sqlx::test(migrations = "../../migrations")]
async fn a_read_key_reads_but_cannot_replay(pool: PgPool) {
    let p = Platform::start(pool).await;
    p.deliver(Purchase, "rk-1", "RK1", "20").await;
    p.settle().await;
    let (status, page, _) = p.call("GET", "/v1/logs", Some(READ_KEY)).await;
    assert_eq!(status, 200, "{page}");
    let id = page["items"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/logs/{id}/replay");
    let (status, problem, content_type) = p.call("POST", &path, Some(READ_KEY)).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(content_type, "application/problem+json");
    assert!(problem["detail"].as_str().unwrap().contains("admin"));
    let (status, _, _) = p.call("POST", &path, Some(KEY)).await;
    assert_eq!(status, 202, "the admin key may");
    p.stop().await;
}

/// Issue 12: a method of the client's invention adds no metrics series of its own.
#[sqlx::test(migrations = "../../migrations")]
async fn invented_methods_share_one_metrics_label(pool: PgPool) {
    let p = Platform::start(pool).await;
    for m in ["BREW", "PROPFIND", "WHATEVER"] {
        let _ = p.call(m, "/metrics", None).await;
    }
    let (_, _, _) = p.call("GET", "/healthz", None).await;
    let (status, body) = showpass_testkit::get(p.api, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert!(
        !body.contains("BREW") && !body.contains("PROPFIND"),
        "{body}"
    );
    assert!(body.contains(r#"method="other""#), "{body}");
    p.stop().await;
}

/// Issue 12: with METRICS_ADDR, `/metrics` leaves the public listener for the process's own
/// metrics listener.
#[sqlx::test(migrations = "../../migrations")]
async fn metrics_can_move_off_the_public_listener(pool: PgPool) {
    let db = pool.connect_options().get_database().unwrap().to_owned();
    let hub = showpass_core::http::MetricsHub::default();
    let mut config = ApiConfig::local(database_of(&db), None, KEY);
    config.metrics = showpass_core::http::MetricsAt::Private(hub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(showpass_api::run(config, listener, shutdown.clone()));
    let (status, _, _) = raw(addr, "GET", "/healthz", &[]).await;
    assert_eq!(status, 200);
    let (status, _, _) = raw(addr, "GET", "/metrics", &[]).await;
    assert_eq!(status, 404, "not on the public listener");
    assert!(
        hub.render().contains("showpass_api_request_seconds"),
        "{}",
        hub.render()
    );
    shutdown.cancel();
}

/// `/docs` is the whole reference in one page from this process: every route, no script,
/// nothing fetched from elsewhere, and a policy that would block it if there were.
#[sqlx::test(migrations = "../../migrations")]
async fn the_docs_page_is_self_contained(pool: PgPool) {
    let p = Platform::start(pool).await;
    let (_, doc, _) = p.call("GET", "/openapi.json", None).await;
    let (status, headers, body) = request_full(p.api, "GET", "/docs", &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(status, 200);
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    let page = String::from_utf8_lossy(&body);
    for path in doc["paths"].as_object().unwrap().keys() {
        assert!(
            page.contains(&format!("<code class=\"path\">{path}</code>")),
            "{path}"
        );
    }
    assert!(!page.contains("<script"), "no script");
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "nothing from elsewhere"
    );
    let (status, _, content_type) = raw(p.api, "GET", "/docs/docs.css", &[]).await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/css; charset=utf-8")
    );
    p.stop().await;
}
