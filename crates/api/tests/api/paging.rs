//! Keyset pages and their signed cursors.

use std::collections::HashSet;

use showpass_payload::samples::SampleKind::*;
use sqlx::PgPool;

use crate::common::*;

/// Paging through more than three pages, with inserts meanwhile, repeats and skips nothing.
#[sqlx::test(migrations = "../../migrations")]
async fn keyset_pages_never_repeat_or_skip_under_concurrent_inserts(pool: PgPool) {
    let p = Platform::start(pool).await;
    for i in 0..17 {
        p.deliver_body(purchase_by(
            &format!("p-{i}"),
            &format!("P{i:02}"),
            "20",
            &format!("Buyer {i}"),
            &format!("b{i:02}@example.com"),
        ))
        .await;
    }
    p.settle().await;
    for (listing, id_field, expected) in [
        ("/v1/orders?org_id=20&limit=4", "transaction_id", 17),
        ("/v1/customers?org_id=20&limit=4", "email", 17),
        ("/v1/tickets?org_id=20&limit=5", "id", 34),
        ("/v1/logs?limit=4", "id", 17),
        ("/v1/customers?q=example.com&limit=4", "email", 17),
    ] {
        let before: HashSet<String> = p
            .all_pages(listing)
            .await
            .0
            .iter()
            .map(|v| v[id_field].to_string())
            .collect();
        assert!(before.len() >= expected, "{listing}: {}", before.len());
        // Page again while new deliveries land between pages.
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let url = match &cursor {
                Some(c) => format!("{listing}&cursor={c}"),
                None => listing.to_owned(),
            };
            let page = p.get_ok(&url).await;
            pages += 1;
            seen.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v[id_field].to_string()),
            );
            let n = 100 + pages;
            p.deliver_body(purchase_by(
                &format!("{listing}-{n}"),
                &format!("N{n}{}", listing.len()),
                "20",
                "New Buyer",
                &format!("new{n}{}@example.com", listing.len()),
            ))
            .await;
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert!(pages > 3, "{listing}: {pages} pages");
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "{listing}: a row repeated");
        assert!(
            before.iter().all(|id| unique.contains(id)),
            "{listing}: a row was skipped"
        );
        p.settle().await;
    }
    p.stop().await;
}

/// Issue 12: a cursor is signed; one changed by a client is a 400 naming `cursor`.
#[sqlx::test(migrations = "../../migrations")]
async fn a_tampered_cursor_is_refused(pool: PgPool) {
    let p = Platform::start(pool).await;
    for i in 0..3 {
        p.deliver(Purchase, &format!("cu-{i}"), &format!("CU{i}"), "20")
            .await;
    }
    p.settle().await;
    let page = p.get_ok("/v1/orders?limit=1").await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    assert_eq!(
        p.get_ok(&format!("/v1/orders?limit=1&cursor={cursor}"))
            .await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The same listing, a sort key moved: only the signature can tell.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (payload, mac) = cursor.split_once('.').unwrap();
    let decoded = String::from_utf8(b64.decode(payload).unwrap()).unwrap();
    let mut parts: Vec<String> = decoded.split('\0').map(str::to_owned).collect();
    assert_eq!(parts[0], "orders");
    let resigned = |parts: &[String]| format!("{}.{mac}", b64.encode(parts.join("\0")));
    assert_eq!(
        resigned(&parts),
        cursor,
        "re-encoding alone changes nothing"
    );
    let last = parts.len() - 1;
    parts[last] = "0".into();
    let problem = p
        .problem(
            &format!("/v1/orders?limit=1&cursor={}", resigned(&parts)),
            400,
        )
        .await;
    assert_eq!(problem["param"], "cursor");
    p.stop().await;
}
