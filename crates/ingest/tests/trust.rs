//! Trust boundaries (issue 12): what unauthenticated traffic may leave behind, what a captured
//! signature may still do, and which addresses are believed.

use std::time::Duration;

use hyper::StatusCode;
use serde_json::json;
use showpass_ingest::{Allowlist, Endpoints};
use showpass_payload::signature::sign;
use showpass_testkit::*;

fn with_ids(uuid: &str, txn: &str, org: &str) -> Vec<u8> {
    edit(DOC_2026, |v| {
        v["webhook_event_uuid"] = json!(uuid);
        v["data"]["transaction_id"] = json!(txn);
        v["data"]["showpass_organization_id"] = json!(org);
    })
}

/// Records on the deliveries stream now, after the log's queue has had time to drain.
async fn records(ingest: &TestIngest) -> u64 {
    tokio::time::sleep(Duration::from_millis(500)).await;
    count(&mut ingest.deliveries().await).await
}

async fn metric(ingest: &TestIngest, line_start: &str) -> u64 {
    let (_, text) = get(ingest.addr, "/metrics").await.unwrap();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Neither an unknown endpoint nor a source the allowlist refuses leaves a record: both are
/// counted. The allowlist is checked first, so a refused source cannot tell which endpoints
/// exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_endpoints_and_refused_sources_are_counted_not_recorded() {
    let ingest = TestIngest::start().await;
    for _ in 0..20 {
        let (status, answer) =
            post(ingest.addr, "/webhooks/showpass/nope", &[], b"{}".to_vec()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    }
    assert_eq!(records(&ingest).await, 0);
    assert_eq!(
        metric(
            &ingest,
            r#"showpass_ingest_requests_total{outcome="rejected",reason="unknown_endpoint"}"#
        )
        .await,
        20
    );

    let guarded = TestIngest::start_with(|c| {
        c.allowlist = Some(Allowlist::parse("203.0.113.0/24", None).unwrap());
    })
    .await;
    for path in ["/webhooks/showpass", "/webhooks/showpass/nope"] {
        let (status, answer) = post(guarded.addr, path, &[], b"{}".to_vec()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {answer}");
        assert_eq!(answer["reason"], "source_not_allowed", "{path}");
    }
    assert_eq!(records(&guarded).await, 0);
}

/// Rejections at a known endpoint are recorded up to the source's rate, then only counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_from_one_source_are_recorded_up_to_its_rate() {
    let ingest = TestIngest::start_with(|c| c.rejection_records_per_minute = 5).await;
    for _ in 0..40 {
        let (status, _) = ingest
            .deliver_to("/webhooks/showpass", DOC_2026, "wrong")
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(records(&ingest).await, 5);
    assert_eq!(
        metric(&ingest, "showpass_ingest_rejections_unrecorded_total").await,
        35
    );
}

/// A flood from one address (unsigned requests to an unknown endpoint, and wrongly signed ones
/// to a real one) leaves a bounded number of records, while real deliveries sent meanwhile are
/// all accepted. `FLOOD_REQUESTS` sets the size of each half (100,000 by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unsigned_and_wrongly_signed_requests_leaves_bounded_traces() {
    let n: usize = std::env::var("FLOOD_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let ingest = TestIngest::start().await;
    let started = std::time::Instant::now();
    let body = bytes::Bytes::from_static(DOC_2026);
    let flood = |path: &'static str, sig: &'static str, n: usize| {
        let body = body.clone();
        let addr = ingest.addr;
        async move {
            let workers = 32;
            let mut tasks = tokio::task::JoinSet::new();
            for w in 0..workers {
                let body = body.clone();
                tasks.spawn(async move {
                    let mut conn = KeepAlive::connect(addr).await;
                    let mut i = w;
                    while i < n {
                        let status = conn
                            .post(path, &[("X-SHOWPASS-SIGNATURE", sig)], body.clone())
                            .await;
                        assert!(status == 404 || status == 401, "{status}");
                        i += workers;
                    }
                });
            }
            while let Some(r) = tasks.join_next().await {
                r.unwrap();
            }
        }
    };
    let real = async {
        let mut accepted = 0;
        for i in 0..50 {
            let (status, _) = ingest
                .deliver(&with_ids(&format!("real-{i}"), &format!("R{i}"), "5796"))
                .await;
            accepted += usize::from(status == StatusCode::ACCEPTED);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        accepted
    };
    let bad = "0000000000000000000000000000000000000000";
    let (_, _, accepted) = tokio::join!(
        flood("/webhooks/showpass/nope", bad, n),
        flood("/webhooks/showpass", bad, n),
        real
    );
    assert_eq!(
        accepted, 50,
        "every real delivery accepted during the flood"
    );
    let minutes = started.elapsed().as_secs() / 60 + 1;
    let recorded = records(&ingest).await;
    assert!(
        recorded <= 60 * minutes,
        "{recorded} records of {} rejections in {minutes} minute(s)",
        2 * n
    );
    assert!(recorded >= 1);
    assert_eq!(count(&mut ingest.events().await).await, 50);
}

/// `X-Forwarded-For` may come as several lines, the first written by the client: only the
/// right-most hop a trusted proxy appended is believed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_first_forwarded_for_line_does_not_pass_the_allowlist() {
    let ingest = TestIngest::start_with(|c| {
        c.allowlist = Some(Allowlist::parse("showpass", Some("127.0.0.1")).unwrap());
    })
    .await;
    let id = showpass_payload::Envelope::parse(DOC_2026)
        .unwrap()
        .id
        .into_owned();
    let sig = sign(SECRET.as_bytes(), &id);
    let headers = [
        ("X-SHOWPASS-SIGNATURE", sig.as_str()),
        ("X-Forwarded-For", "34.83.8.110"),
        ("X-Forwarded-For", "198.51.100.23"),
    ];
    let (status, answer) = post(
        ingest.addr,
        "/webhooks/showpass",
        &headers,
        DOC_2026.to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let honest = [
        ("X-SHOWPASS-SIGNATURE", sig.as_str()),
        ("X-Forwarded-For", "198.51.100.23, 34.83.8.110"),
    ];
    let (status, answer) = post(
        ingest.addr,
        "/webhooks/showpass",
        &honest,
        DOC_2026.to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
}

/// An endpoint bound to organizations refuses a verified delivery for any other with 403,
/// recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_bound_to_organizations_refuses_others() {
    let ingest = TestIngest::start_with(|c| {
        c.endpoints =
            Endpoints::parse_with_orgs(Some(SECRET), Some("5796"), Some("venue=vk@20+31")).unwrap();
    })
    .await;
    for (path, secret, org, expected) in [
        ("/webhooks/showpass", SECRET, "5796", StatusCode::ACCEPTED),
        ("/webhooks/showpass", SECRET, "20", StatusCode::FORBIDDEN),
        ("/webhooks/showpass/venue", "vk", "31", StatusCode::ACCEPTED),
        (
            "/webhooks/showpass/venue",
            "vk",
            "5796",
            StatusCode::FORBIDDEN,
        ),
    ] {
        let body = with_ids(&format!("{path}-{org}"), &format!("T-{org}"), org);
        let body = edit(&body, |v| v["id"] = json!(format!("id-{path}-{org}")));
        let (status, answer) = ingest.deliver_to(path, &body, secret).await;
        assert_eq!(status, expected, "{path} {org}: {answer}");
        if expected == StatusCode::FORBIDDEN {
            assert_eq!(answer["reason"], "organization_not_allowed");
        }
    }
    let missing = edit(DOC_2026, |v| {
        v["data"]
            .as_object_mut()
            .unwrap()
            .remove("showpass_organization_id");
    });
    let (status, answer) = ingest.deliver(&missing).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "no organization at all: {answer}"
    );
    assert_eq!(records(&ingest).await, 3);
    assert_eq!(count(&mut ingest.events().await).await, 2);
}

/// A signed `id` belongs to the organization of its first accepted delivery: the same `id`
/// (and so the same signature) for another organization is refused with 409, nothing
/// published; for another transaction of the same organization it is accepted, and marked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_signature_cannot_move_to_another_organization() {
    let ingest = TestIngest::start().await;
    let first = with_ids("u-1", "T-1", "20");
    assert_eq!(ingest.deliver(&first).await.0, StatusCode::ACCEPTED);
    let forged = with_ids("u-2", "T-1", "31");
    let (status, answer) = ingest.deliver(&forged).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["reason"], "id_conflict");
    assert_eq!(
        count(&mut ingest.events().await).await,
        1,
        "nothing published"
    );

    let (status, answer) = ingest.deliver(&with_ids("u-3", "T-OTHER", "20")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let seq = answer["stream_sequence"].as_u64().unwrap();
    let m = ingest.events().await.get_raw_message(seq).await.unwrap();
    let suspect = m
        .headers
        .get("Showpass-Suspect")
        .map(|v| v.as_str().to_owned());
    assert!(
        suspect
            .as_deref()
            .is_some_and(|s| s.starts_with("id_transaction_mismatch")),
        "{suspect:?}"
    );
    // The binding is the stream's, not the process's: a second replica, and a restart, see it.
    let replica = TestIngest::start_config(ingest.config.clone()).await;
    let (status, _) = replica.deliver(&with_ids("u-4", "T-1", "31")).await;
    assert_eq!(status, StatusCode::CONFLICT);
}

/// Ids accepted before bindings existed (here: stored straight on the stream, as an older
/// ingest did) are bound by `migrate`'s backfill, first delivery first: a signature captured
/// from one of them cannot be sent first for another organization afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_stored_before_bindings_existed_are_bound_by_the_backfill() {
    let ingest = TestIngest::start().await;
    let nats = &ingest.config.nats;
    for (id, org) in [("old-1", "20"), ("old-1", "31"), ("old-2", "20")] {
        let body = edit(&with_ids(&format!("{id}-{org}"), "T-old", org), |v| {
            v["id"] = json!(id)
        });
        ingest
            .js
            .publish(
                showpass_payload::subject::stored_event_subject(
                    &nats.prefix,
                    Some(org),
                    Some("invoice.purchase"),
                ),
                body.into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    assert_eq!(
        showpass_ingest::backfill_bindings(&ingest.js, nats)
            .await
            .unwrap(),
        2,
        "two ids, each bound once: the first delivery wins"
    );
    let moved = edit(&with_ids("old-1-again", "T-old", "31"), |v| {
        v["id"] = json!("old-1")
    });
    let (status, answer) = ingest.deliver(&moved).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let stays = edit(&with_ids("old-2-again", "T-old", "20"), |v| {
        v["id"] = json!("old-2")
    });
    assert_eq!(
        ingest.deliver(&stays).await.0,
        StatusCode::ACCEPTED,
        "its own organization"
    );
    // Done once: a later migrate does not scan the stream again.
    assert_eq!(
        showpass_ingest::backfill_bindings(&ingest.js, nats)
            .await
            .unwrap(),
        0
    );
}

/// An endpoint of one organization binds its ids too: they stay bound when the endpoint's
/// organizations change later, and another transaction under the same id is marked suspect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_organization_endpoint_binds_its_ids_for_later() {
    let mut ingest = TestIngest::start_with(|c| {
        c.endpoints = Endpoints::parse_with_orgs(Some(SECRET), Some("20"), None).unwrap();
    })
    .await;
    assert_eq!(
        ingest.deliver(&with_ids("s-1", "T-1", "20")).await.0,
        StatusCode::ACCEPTED
    );
    let (status, answer) = ingest.deliver(&with_ids("s-2", "T-2", "20")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let seq = answer["stream_sequence"].as_u64().unwrap();
    let m = ingest.events().await.get_raw_message(seq).await.unwrap();
    assert!(
        m.headers
            .get("Showpass-Suspect")
            .is_some_and(|v| v.as_str().starts_with("id_transaction_mismatch")),
        "{:?}",
        m.headers
    );
    ingest.stop().await;
    let mut config = ingest.config.clone();
    config.endpoints = Endpoints::parse_with_orgs(Some(SECRET), Some("20,31"), None).unwrap();
    let widened = TestIngest::start_config(config).await;
    let (status, answer) = widened.deliver(&with_ids("s-3", "T-1", "31")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
}

/// Many sources together leave at most the total of records a minute (here behind a trusted
/// proxy, each request from an address of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sources_together_leave_at_most_the_total_of_records() {
    let ingest = TestIngest::start_with(|c| {
        c.allowlist = Some(Allowlist::parse("0.0.0.0/0,::/0", Some("127.0.0.1")).unwrap());
        c.rejection_records_total_per_minute = 50;
    })
    .await;
    let mut conn = KeepAlive::connect(ingest.addr).await;
    for i in 0..300u32 {
        let from = format!("198.51.{}.{}", i / 250, i % 250 + 1);
        let status = conn
            .post(
                "/webhooks/showpass",
                &[("x-forwarded-for", from.as_str())],
                bytes::Bytes::from_static(b"{}"),
            )
            .await;
        assert_eq!(status, 401);
    }
    assert_eq!(records(&ingest).await, 50);
    assert_eq!(
        metric(&ingest, "showpass_ingest_rejections_unrecorded_total").await,
        250
    );
}

/// One keep-alive connection that posts request after request.
struct KeepAlive {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
}

impl KeepAlive {
    async fn connect(addr: std::net::SocketAddr) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        Self { sender }
    }

    async fn post(&mut self, path: &str, headers: &[(&str, &str)], body: bytes::Bytes) -> u16 {
        use http_body_util::BodyExt as _;
        let mut req = hyper::Request::post(path).header("host", "x");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.sender.ready().await.unwrap();
        let resp = self
            .sender
            .send_request(req.body(http_body_util::Full::new(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let _ = resp.into_body().collect().await;
        status
    }
}
