//! Hostile input against a running ingest: every body answered with its documented status and
//! leaving a delivery-log record, and slow clients that do not starve real deliveries.

use std::time::Duration;

use hyper::StatusCode;
use serde_json::json;
use showpass_payload::signature::sign;
use showpass_testkit::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn delivery(uuid: &str, edit_data: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    edit(DOC_2026, |v| {
        v["webhook_event_uuid"] = json!(uuid);
        edit_data(&mut v["data"]);
    })
}

/// Every hostile body gets its documented answer, and every one of them is on record: an
/// accepted one as an event, the others in the delivery log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_body_gets_its_documented_answer_and_a_record() {
    let ingest = TestIngest::start().await;
    let id: String = serde_json::from_slice::<serde_json::Value>(DOC_2026).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut deep = br#"{"id":"deep","data":"#.to_vec();
    deep.extend(b"[".repeat(100_000));
    deep.extend(b"]".repeat(100_000));
    deep.extend(b"}");
    let long_name =
        |uuid: &str, len: usize| delivery(uuid, |d| d["customer_name"] = json!("a".repeat(len)));
    let cases: Vec<(&str, Vec<u8>, &str, StatusCode)> = vec![
        (
            "arrays nested 100,000 deep",
            [b"[".repeat(100_000), b"]".repeat(100_000)].concat(),
            "x",
            StatusCode::BAD_REQUEST,
        ),
        (
            "data nested 100,000 deep under a valid id",
            deep,
            "deep",
            StatusCode::BAD_REQUEST,
        ),
        (
            "a 1 MiB string",
            long_name("e2c1c0de-0000-4000-8000-000000000001", 1024 * 1024),
            &id,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            // Under the body limit and under this NATS server's default max_payload (1 MB)
            // with the headers.
            "a half-MiB string",
            long_name("e2c1c0de-0000-4000-8000-000000000002", 512 * 1024),
            &id,
            StatusCode::ACCEPTED,
        ),
        (
            "invalid UTF-8",
            b"{\"id\":\"\xff\xfe\",\"event_type\":\"invoice.purchase\"}".to_vec(),
            "x",
            StatusCode::BAD_REQUEST,
        ),
        (
            "a raw NUL byte",
            b"{\"id\":\"a\0b\"}".to_vec(),
            "a\0b",
            StatusCode::BAD_REQUEST,
        ),
        (
            "an escaped NUL in the payload",
            delivery("e2c1c0de-0000-4000-8000-000000000003", |d| {
                d["customer_name"] = json!("Nul\u{0}Name")
            }),
            &id,
            StatusCode::ACCEPTED,
        ),
        (
            "money of 1e400",
            // No double holds it: not JSON ingest can vouch for.
            money("e2c1c0de-0000-4000-8000-000000000004", b"1e400"),
            &id,
            StatusCode::BAD_REQUEST,
        ),
        (
            "money of -0",
            money("e2c1c0de-0000-4000-8000-000000000005", b"-0"),
            &id,
            StatusCode::ACCEPTED,
        ),
        (
            "duplicate keys",
            br#"{"id":"a","id":"b","webhook_event_uuid":"e2c1c0de-0000-4000-8000-000000000006"}"#
                .to_vec(),
            "b",
            StatusCode::BAD_REQUEST,
        ),
    ];
    let mut accepted = 0;
    for (what, body, signed_id, expected) in &cases {
        let sig = sign(SECRET.as_bytes(), signed_id);
        // The 1 MiB body's 413 comes before it is all sent.
        let (status, answer) = post_early_answer(
            ingest.addr,
            "/webhooks/showpass",
            &[("X-SHOWPASS-SIGNATURE", &sig)],
            body.clone(),
        )
        .await;
        assert_eq!(status, *expected, "{what}: {answer}");
        assert!(answer["delivery_id"].is_string(), "{what}: {answer}");
        if status.is_success() {
            accepted += 1;
        } else {
            assert!(
                answer["detail"].as_str().is_some_and(|d| d.len() > 5),
                "{what} has no useful detail: {answer}"
            );
        }
    }

    // A valid signature on a body whose uuid repeats with different content: a duplicate, not
    // a second event, and the different body is kept whole in the delivery log.
    let original = delivery("e2c1c0de-0000-4000-8000-000000000007", |_| {});
    let forged = delivery("e2c1c0de-0000-4000-8000-000000000007", |d| {
        d["net_sales"] = json!("9999.00")
    });
    let sig = sign(SECRET.as_bytes(), &id);
    let (first, _) = ingest_post(&ingest, &sig, original).await;
    let (second, answer) = ingest_post(&ingest, &sig, forged.clone()).await;
    assert_eq!(first, StatusCode::ACCEPTED);
    assert_eq!(second, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "duplicate");
    accepted += 1;

    // The rejections, and the duplicate.
    let records = (cases.len() - (accepted - 1)) as u64 + 1;
    let mut events = ingest.events().await;
    let mut log = ingest.deliveries().await;
    for _ in 0..100 {
        if count(&mut log).await >= records {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count(&mut events).await, accepted as u64, "events");
    assert_eq!(count(&mut log).await, records, "delivery-log records");
    let last = log.get_raw_message(records).await.unwrap();
    assert_eq!(
        last.headers.get("Showpass-Outcome").map(|v| v.as_str()),
        Some("duplicate")
    );
    assert_eq!(
        last.payload.as_ref(),
        forged.as_slice(),
        "the forged body is kept whole"
    );
}

async fn ingest_post(
    ingest: &TestIngest,
    sig: &str,
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value) {
    post(
        ingest.addr,
        "/webhooks/showpass",
        &[("X-SHOWPASS-SIGNATURE", sig)],
        body,
    )
    .await
}

/// A delivery whose `net_sales` is written as the raw JSON number `number` (which
/// `serde_json::Value` could not hold).
fn money(uuid: &str, number: &[u8]) -> Vec<u8> {
    let body = delivery(uuid, |d| d["net_sales"] = json!("PLACEHOLDER"));
    let from = b"\"PLACEHOLDER\"";
    let at = body
        .windows(from.len())
        .position(|w| w == from)
        .expect("placeholder present");
    [&body[..at], number, &body[at + from.len()..]].concat()
}

/// Hundreds of clients trickling a request a byte at a time hold connections, not the
/// server: real deliveries sent meanwhile are all accepted, and the slow requests are cut off
/// at the request deadline with a 408 and a record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_do_not_starve_real_deliveries() {
    let ingest = TestIngest::start_with(|c| {
        c.request_timeout = Duration::from_secs(3);
        // All from one address: record every one (the per-source rate is tested apart).
        c.rejection_records_per_minute = 1_000;
    })
    .await;
    let addr = ingest.addr;
    let sig = sign(SECRET.as_bytes(), "slow");
    let mut slow = Vec::new();
    for _ in 0..300 {
        let sig = sig.clone();
        slow.push(tokio::spawn(async move {
            let s = tokio::net::TcpStream::connect(addr).await.ok()?;
            let (mut rd, mut wr) = s.into_split();
            let head = format!(
                "POST /webhooks/showpass HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\nx-showpass-signature: {sig}\r\n\r\n"
            );
            wr.write_all(head.as_bytes()).await.ok()?;
            // The body, one byte a second: never done before the deadline.
            let trickle = async {
                for b in br#"{"id":"slow","#.iter() {
                    if wr.write_all(&[*b]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                std::future::pending::<()>().await
            };
            let mut answer = Vec::new();
            let read = async {
                let mut buf = [0u8; 512];
                loop {
                    match rd.read(&mut buf).await {
                        Ok(0) => break,
                        Ok(n) => answer.extend_from_slice(&buf[..n]),
                        Err(e) => {
                            answer.extend_from_slice(format!("(read: {e})").as_bytes());
                            break;
                        }
                    }
                }
            };
            tokio::select! {
                () = trickle => {}
                () = read => {}
            }
            Some(answer)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..50 {
        let body = delivery(&format!("5101c0de-0000-4000-8000-{i:012}"), |_| {});
        let id = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, answer) = ingest_post(&ingest, &sign(SECRET.as_bytes(), &id), body).await;
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "delivery {i} while slow clients hang on: {answer}"
        );
    }
    let (mut cut_off, mut other, mut unconnected) = (0u64, Vec::new(), 0);
    for s in slow {
        match s.await.unwrap() {
            Some(answer) if answer.starts_with(b"HTTP/1.1 408") => cut_off += 1,
            Some(answer) => other.push(String::from_utf8_lossy(&answer).into_owned()),
            None => unconnected += 1,
        }
    }
    assert_eq!(
        (cut_off, other.len()),
        (300 - unconnected, 0),
        "every slow request that reached ingest is cut off with a 408 ({unconnected} could not \
         connect); the others were answered: {other:?}"
    );
    // Each slow request that was cut off at the deadline was recorded.
    let mut log = ingest.deliveries().await;
    for _ in 0..100 {
        if count(&mut log).await >= cut_off {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count(&mut log).await, cut_off, "a record per slow request");
    assert!(
        cut_off >= 250,
        "too few slow clients connected to test anything"
    );
    let record = log.get_raw_message(1).await.unwrap();
    assert_eq!(
        record.headers.get("Showpass-Reason").map(|v| v.as_str()),
        Some("body_timeout")
    );
}

/// Issue 12 review: a hundred clients that declare (or do not declare) a 1 MiB body and send
/// it a byte a second cannot hold the body budget from real deliveries: their lane is apart,
/// and one source holds an eighth of it at most, refused at once past that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_large_bodies_do_not_hold_the_room_of_deliveries() {
    let ingest = TestIngest::start_with(|c| {
        c.request_timeout = Duration::from_secs(4);
    })
    .await;
    let addr = ingest.addr;
    let sig = sign(SECRET.as_bytes(), "slow");
    let mut slow = Vec::new();
    for i in 0..100 {
        let sig = sig.clone();
        slow.push(tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
            let length = if i % 5 == 0 {
                "transfer-encoding: chunked\r\n".to_owned()
            } else {
                "content-length: 1048576\r\n".to_owned()
            };
            let head = format!(
                "POST /webhooks/showpass HTTP/1.1\r\nhost: x\r\n{length}x-showpass-signature: {sig}\r\n\r\n"
            );
            s.write_all(head.as_bytes()).await.ok()?;
            for _ in 0..6 {
                let byte: &[u8] = if i % 5 == 0 { b"1\r\n{\r\n" } else { b"{" };
                if s.write_all(byte).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Some(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..20 {
        let body = delivery(&format!("b1c0de00-0000-4000-8000-{i:012}"), |_| {});
        let id = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, answer) = tokio::time::timeout(
            Duration::from_secs(2),
            ingest_post(&ingest, &sign(SECRET.as_bytes(), &id), body),
        )
        .await
        .expect("a delivery waited behind slow bodies");
        assert_eq!(status, StatusCode::ACCEPTED, "delivery {i}: {answer}");
    }
    for s in slow {
        let _ = s.await;
    }
}
