//! ingest against the real NATS: every row of the contract's answer table.

use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde_json::json;
use showpass_payload::signature::sign;
use showpass_testkit::*;

fn header<'a>(m: &'a async_nats::jetstream::message::StreamMessage, name: &str) -> Option<&'a str> {
    m.headers.get(name).map(|v| v.as_str())
}

fn with_uuid(uuid: &str) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(DOC_2026).unwrap();
    v["webhook_event_uuid"] = json!(uuid);
    serde_json::to_vec(&v).unwrap()
}

/// The two samples from Showpass's documentation, signed as Showpass documents, are accepted
/// and stored byte for byte on their organization's purchase subject with every header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_documented_samples_are_stored_byte_for_byte_with_their_headers() {
    let ingest = TestIngest::start().await;
    let prefix = ingest.config.nats.prefix.clone();
    for (doc, org, uuid, txn) in [
        (
            DOC_2023,
            "20",
            "06d5dc13-2eea-48ad-9f40-2a5bfc9e4c2c",
            "b3-3eb2-405b-b640-39ec45d04fda",
        ),
        (
            DOC_2026,
            "5796",
            "09117c09-e1f8-4913-b2f5-52cc161cf5f7",
            "f1-1068-4af6-be8f-1222417da0f2",
        ),
    ] {
        let (status, answer) = ingest.deliver(doc).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        assert_eq!(answer["status"], "accepted");
        assert_eq!(answer["webhook_event_uuid"], uuid);

        let seq = answer["stream_sequence"].as_u64().unwrap();
        let m = ingest.events().await.get_raw_message(seq).await.unwrap();
        assert_eq!(
            m.subject.as_str(),
            format!("_{prefix}.events.{org}.invoice.purchase")
        );
        assert_eq!(m.payload.as_ref(), doc, "the raw body, byte for byte");
        assert_eq!(header(&m, "Nats-Msg-Id"), Some(uuid));
        assert_eq!(header(&m, "Showpass-Event-Type"), Some("invoice.purchase"));
        assert_eq!(header(&m, "Showpass-Webhook-Event-Uuid"), Some(uuid));
        assert_eq!(header(&m, "Showpass-Transaction-Id"), Some(txn));
        assert_eq!(header(&m, "Showpass-Organization-Id"), Some(org));
        assert_eq!(header(&m, "Showpass-Endpoint"), Some("default"));
        assert_eq!(header(&m, "Content-Type"), Some("application/json"));
        assert_eq!(
            header(&m, "Showpass-Delivery-Id"),
            answer["delivery_id"].as_str()
        );
        let received = header(&m, "Showpass-Received-At").unwrap();
        let at = chrono::DateTime::parse_from_rfc3339(received).unwrap();
        assert_eq!(at.offset().local_minus_utc(), 0, "UTC: {received}");
        assert!(received.ends_with('Z'));
    }
    assert_eq!(count(&mut ingest.events().await).await, 2);
}

/// Showpass retries reuse `webhook_event_uuid`: the retry is answered 200 and nothing new is
/// stored; the delivery log records it with its whole body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_is_answered_duplicate_and_stored_once() {
    let ingest = TestIngest::start().await;
    let (status, first) = ingest.deliver(DOC_2026).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, again) = ingest.deliver(DOC_2026).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["status"], "duplicate");
    assert_eq!(again["webhook_event_uuid"], first["webhook_event_uuid"]);
    assert_eq!(count(&mut ingest.events().await).await, 1);

    let m = wait_for_record(&ingest, 1).await;
    assert_eq!(header(&m, "Showpass-Outcome"), Some("duplicate"));
    assert_eq!(header(&m, "Showpass-Http-Status"), Some("200"));
    assert_eq!(m.payload.as_ref(), DOC_2026);
    assert!(m.subject.ends_with(".deliveries.duplicate.default"));
}

/// Issue 11: a plain NATS subscriber on the public subjects receives each accepted event
/// once, with its body and headers: a redelivery answered `duplicate` is not published there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_subscriber_sees_an_event_once_however_often_it_is_redelivered() {
    use futures::StreamExt as _;
    let ingest = TestIngest::start().await;
    let prefix = ingest.config.nats.prefix.clone();
    let client = async_nats::connect(ingest.config.nats.url.expose())
        .await
        .unwrap();
    let mut live = client
        .subscribe(format!("{prefix}.events.>"))
        .await
        .unwrap();
    client.flush().await.unwrap();
    let (status, first) = ingest.deliver(DOC_2026).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    for _ in 0..3 {
        assert_eq!(ingest.deliver(DOC_2026).await.0, StatusCode::OK);
    }
    let (status, _) = ingest.deliver(&with_uuid("another")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mut seen = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(500), live.next()).await {
        seen.push(m);
    }
    assert_eq!(seen.len(), 2, "one message per accepted event");
    let m = &seen[0];
    assert_eq!(
        m.subject.as_str(),
        format!("{prefix}.events.5796.invoice.purchase")
    );
    assert_eq!(m.payload.as_ref(), DOC_2026, "the raw body, byte for byte");
    let headers = m.headers.as_ref().unwrap();
    assert_eq!(
        headers.get("Showpass-Delivery-Id").map(|v| v.as_str()),
        first["delivery_id"].as_str()
    );
    assert_eq!(
        headers.get("Nats-Msg-Id").map(|v| v.as_str()),
        Some("09117c09-e1f8-4913-b2f5-52cc161cf5f7")
    );
}

/// The signature covers `id`; anything but the right HMAC under the endpoint's secret is 401,
/// and each refusal is logged with only a prefix of the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_missing_empty_and_truncated_signatures_are_401() {
    let ingest = TestIngest::start().await;
    let good = sign(SECRET.as_bytes(), "f1-1068-4af6-be8f-1222417da0f2");
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "another id",
            vec![("X-SHOWPASS-SIGNATURE", sign(SECRET.as_bytes(), "other-id"))],
        ),
        ("missing", vec![]),
        ("empty", vec![("X-SHOWPASS-SIGNATURE", String::new())]),
        (
            "truncated",
            vec![("X-SHOWPASS-SIGNATURE", good[..20].to_string())],
        ),
        (
            "one digit short",
            vec![("X-SHOWPASS-SIGNATURE", good[..39].to_string())],
        ),
        // Last: its record (a well-formed signature, so its body was read) is checked below.
        (
            "wrong secret",
            vec![(
                "X-SHOWPASS-SIGNATURE",
                sign(b"nope", "f1-1068-4af6-be8f-1222417da0f2"),
            )],
        ),
    ];
    for (what, headers) in &cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, answer) = post(
            ingest.addr,
            "/webhooks/showpass",
            &headers,
            DOC_2026.to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {answer}");
        assert_eq!(answer["status"], "rejected");
    }
    assert_eq!(count(&mut ingest.events().await).await, 0);

    // Showpass's exact hex in upper case, quoted, or padded is still the right signature.
    for variant in [
        good.to_uppercase(),
        format!("\"{good}\""),
        format!(" {good} "),
    ] {
        let (status, _) = post(
            ingest.addr,
            "/webhooks/showpass",
            &[("x-showpass-signature", &variant)],
            DOC_2026.to_vec(),
        )
        .await;
        assert!(status.is_success(), "{variant}: {status}");
    }

    let m = wait_for_record(&ingest, cases.len() as u64).await;
    assert_eq!(header(&m, "Showpass-Outcome"), Some("rejected"));
    assert_eq!(header(&m, "Showpass-Http-Status"), Some("401"));
    assert_eq!(m.payload.len(), 256, "a rejection keeps only a prefix");
    assert_eq!(header(&m, "Showpass-Body-Truncated"), Some("true"));
    assert_eq!(
        header(&m, "Showpass-Body-Length"),
        Some(DOC_2026.len().to_string().as_str())
    );
}

/// Bodies that are not a JSON object with a string `id` are 400, whatever the signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_are_not_deliveries_are_400() {
    let ingest = TestIngest::start().await;
    let sig = sign(SECRET.as_bytes(), "x");
    for (what, body) in [
        ("broken JSON", &b"{\"id\": \"x\", "[..]),
        ("a JSON array", b"[{\"id\": \"x\"}]"),
        ("no id", b"{\"event_type\": \"invoice.purchase\"}"),
        ("a numeric id", b"{\"id\": 5}"),
        ("not JSON at all", b"id=x"),
        ("empty", b""),
        // The projector refuses a repeated field, so ingest does too (issue 11).
        (
            "a repeated top-level key",
            b"{\"id\": \"x\", \"data\": {}, \"data\": {}}",
        ),
    ] {
        let (status, answer) = post(
            ingest.addr,
            "/webhooks/showpass",
            &[("X-SHOWPASS-SIGNATURE", &sig)],
            body.to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {answer}");
        assert_eq!(answer["reason"], "invalid_body", "{what}");
        assert!(answer["detail"].as_str().unwrap().len() > 5);
    }
    assert_eq!(count(&mut ingest.events().await).await, 0);
    wait_for_record(&ingest, 7).await;
}

/// Over 1 MiB is 413, whether the size is declared up front or only seen while reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_one_mebibyte_is_413() {
    let ingest = TestIngest::start().await;
    let mut big = br#"{"id":"x","pad":""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    big.extend(br#""}"#);
    let sig = sign(SECRET.as_bytes(), "x");
    let (status, answer) = post(
        ingest.addr,
        "/webhooks/showpass",
        &[("X-SHOWPASS-SIGNATURE", &sig)],
        big.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["reason"], "body_too_large");

    let (status, _) = chunked_post(ingest.addr, &sig, big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(count(&mut ingest.events().await).await, 0);
}

/// Named endpoints have their own secrets, several during a rotation; other names are 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_endpoints_verify_with_their_own_secrets_and_unknown_ones_are_404() {
    let ingest = TestIngest::start_with(|c| {
        c.endpoints =
            showpass_ingest::Endpoints::parse(Some(SECRET), Some("boxoffice=old-key|new-key"))
                .unwrap();
    })
    .await;
    for secret in ["old-key", "new-key"] {
        let body = with_uuid(&uuid::Uuid::new_v4().to_string());
        let (status, _) = ingest
            .deliver_to("/webhooks/showpass/boxoffice", &body, secret)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{secret}");
    }
    let (status, _) = ingest
        .deliver_to("/webhooks/showpass/boxoffice", &with_uuid("u-x"), SECRET)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the default secret is not boxoffice's"
    );

    let (status, answer) = ingest
        .deliver_to("/webhooks/showpass/nowhere", DOC_2026, SECRET)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(answer["reason"], "unknown_endpoint");

    let mut events = ingest.events().await;
    let m = events.get_raw_message(1).await.unwrap();
    assert_eq!(header(&m, "Showpass-Endpoint"), Some("boxoffice"));
    assert_eq!(count(&mut events).await, 2);
}

/// Dots, wildcards and whitespace in the payload cannot add tokens or wildcards to a subject;
/// the exact values travel in the headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_organization_or_event_type_cannot_change_the_subject_shape() {
    let ingest = TestIngest::start().await;
    let prefix = ingest.config.nats.prefix.clone();
    let body = json!({
        "id": "t-1",
        "event_type": "invoice.refund.> *",
        "webhook_event_uuid": "hostile-1",
        "data": {"showpass_organization_id": "20.*.>\tx"}
    });
    let (status, answer) = ingest.deliver(&serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let m = ingest.events().await.get_raw_message(1).await.unwrap();
    assert_eq!(
        m.subject.as_str(),
        format!("_{prefix}.events.20_____x.invoice.refund____")
    );
    assert_eq!(m.subject.split('.').count(), 5);
    assert_eq!(header(&m, "Showpass-Organization-Id"), Some("20.*.> x"));
    assert_eq!(
        header(&m, "Showpass-Event-Type"),
        Some("invoice.refund.> *")
    );
}

/// Without `webhook_event_uuid` the key is the SHA-256 of the raw body: an identical resend is
/// still a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_without_a_uuid_is_keyed_by_its_bytes() {
    let ingest = TestIngest::start().await;
    let body = br#"{"id":"t-9","event_type":"webhook.test"}"#;
    let (status, answer) = ingest.deliver(body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let key = answer["idempotency_key"].as_str().unwrap();
    assert_eq!(
        key,
        format!("sha256:{}", showpass_payload::sha256_hex(body))
    );
    assert_eq!(ingest.deliver(body).await.0, StatusCode::OK);
}

/// With an allowlist, other sources get 403; behind a trusted proxy the forwarded address
/// counts, and from anyone else the header is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allowlist_refuses_other_sources_with_403() {
    let ingest = TestIngest::start_with(|c| {
        c.allowlist = Some(showpass_ingest::Allowlist::parse("showpass", None).unwrap());
    })
    .await;
    let (status, answer) = ingest.deliver(DOC_2026).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["reason"], "source_not_allowed");
    let sig = sign(SECRET.as_bytes(), "f1-1068-4af6-be8f-1222417da0f2");
    let forged = [
        ("X-SHOWPASS-SIGNATURE", sig.as_str()),
        ("X-Forwarded-For", "34.83.8.110"),
    ];
    let (status, _) = post(
        ingest.addr,
        "/webhooks/showpass",
        &forged,
        DOC_2026.to_vec(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "an untrusted peer cannot claim an address"
    );
    drop(ingest);

    let behind_proxy = TestIngest::start_with(|c| {
        c.allowlist =
            Some(showpass_ingest::Allowlist::parse("showpass", Some("127.0.0.1")).unwrap());
    })
    .await;
    let (status, _) = post(
        behind_proxy.addr,
        "/webhooks/showpass",
        &forged,
        DOC_2026.to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let m = behind_proxy
        .events()
        .await
        .get_raw_message(1)
        .await
        .unwrap();
    assert_eq!(header(&m, "Showpass-Remote-Addr"), Some("34.83.8.110"));
}

/// Health, readiness and metrics answer as operators expect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_are_served() {
    let ingest = TestIngest::start().await;
    assert_eq!(
        get(ingest.addr, "/healthz").await.unwrap().0,
        StatusCode::OK
    );
    let (status, ready) = get(ingest.addr, "/readyz").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(ready.contains("\"stream_present\":true"), "{ready}");
    ingest.deliver(DOC_2026).await;
    ingest.deliver(DOC_2026).await;
    let (_, metrics) = get(ingest.addr, "/metrics").await.unwrap();
    assert!(
        metrics
            .contains(r#"showpass_ingest_requests_total{outcome="accepted",reason="published"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(
        r#"showpass_ingest_requests_total{outcome="duplicate",reason="already_accepted"} 1"#
    ));
    assert!(metrics.contains("showpass_ingest_publish_seconds_bucket"));
}

/// With NATS stopped, deliveries get 503 within seconds (Showpass retries), never a 2xx; once
/// NATS is back the same delivery is accepted, and the stream holds it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nats_down_deliveries_get_503_and_are_accepted_once_it_is_back() {
    let mut nats = PrivateNats::start();
    let url = nats.url();
    let ingest = TestIngest::start_with(|c| {
        c.nats.url = url.parse().unwrap();
        c.publish_timeout = Duration::from_secs(1);
    })
    .await;
    assert_eq!(
        ingest.deliver(&with_uuid("before")).await.0,
        StatusCode::ACCEPTED
    );

    nats.kill();
    let body = with_uuid("during");
    let started = Instant::now();
    let (status, answer) = ingest.deliver(&body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "503 took {:?}",
        started.elapsed()
    );

    nats.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let (status, _) = ingest.deliver(&body).await;
        if status.is_success() || Instant::now() > deadline {
            break status;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(status.is_success(), "{status}");
    assert_eq!(
        count(&mut ingest.events().await).await,
        2,
        "before + during, once each"
    );
}

/// Shutting down lets a request that is already being received finish and be acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_deliveries() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut ingest = TestIngest::start().await;
    let sig = sign(SECRET.as_bytes(), "f1-1068-4af6-be8f-1222417da0f2");
    let mut conn = tokio::net::TcpStream::connect(ingest.addr).await.unwrap();
    let head = format!(
        "POST /webhooks/showpass HTTP/1.1\r\nhost: x\r\nx-showpass-signature: {sig}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        DOC_2026.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&DOC_2026[..100]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    ingest.shutdown_token().cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    conn.write_all(&DOC_2026[100..]).await.unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    ingest.stop().await;
    assert_eq!(count(&mut ingest.events().await).await, 1);
}

/// A body that trickles in slower than the request deadline is answered 408 and logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_slower_than_the_request_deadline_is_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ingest = TestIngest::start_with(|c| c.request_timeout = Duration::from_millis(300)).await;
    let mut conn = tokio::net::TcpStream::connect(ingest.addr).await.unwrap();
    let head = format!(
        "POST /webhooks/showpass HTTP/1.1\r\nhost: x\r\nx-showpass-signature: {}\r\ncontent-length: {}\r\n\r\n",
        "0".repeat(40),
        DOC_2026.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&DOC_2026[..10]).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    let m = wait_for_record(&ingest, 1).await;
    assert_eq!(header(&m, "Showpass-Http-Status"), Some("408"));
}

/// Waits until the deliveries stream holds `n` records and returns the last.
async fn wait_for_record(
    ingest: &TestIngest,
    n: u64,
) -> async_nats::jetstream::message::StreamMessage {
    let mut stream = ingest.deliveries().await;
    for _ in 0..100 {
        if count(&mut stream).await >= n {
            return stream.get_raw_message(n).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the deliveries stream did not reach {n} records");
}

/// POSTs with chunked transfer encoding, so no size is declared up front.
async fn chunked_post(
    addr: std::net::SocketAddr,
    sig: &str,
    body: Vec<u8>,
) -> (StatusCode, bytes::Bytes) {
    use http_body_util::{BodyExt, StreamBody};
    use hyper::body::Frame;
    let chunks: Vec<Result<Frame<bytes::Bytes>, std::convert::Infallible>> = body
        .chunks(64 * 1024)
        .map(|c| Ok(Frame::data(bytes::Bytes::copy_from_slice(c))))
        .collect();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::post("/webhooks/showpass")
        .header("host", "x")
        .header("x-showpass-signature", sig)
        .body(StreamBody::new(futures::stream::iter(chunks)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}
