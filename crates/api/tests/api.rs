//! The api against the real NATS and PostgreSQL: deliveries go in through ingest, the projector
//! builds the read models, and every route is read back over HTTP.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use showpass_api::ApiConfig;
use showpass_core::CancellationToken;
use showpass_payload::samples::SampleKind::{self, *};
use showpass_testkit::*;
use sqlx::PgPool;

/// The platform's admin key (`key:admin` in API_KEYS), and a read-only one.
const KEY: &str = "test-api-key-4b1d";
const READ_KEY: &str = "test-read-key-77c0";

/// ingest, projector and api on the test's own streams and database.
struct Platform {
    ingest: TestIngest,
    projector: Option<TestProjector>,
    pool: PgPool,
    api: SocketAddr,
    shutdown: CancellationToken,
}

impl Platform {
    async fn start(pool: PgPool) -> Self {
        let ingest = TestIngest::start().await;
        let projector = TestProjector::start(&ingest, &pool, |_| {});
        let db = pool.connect_options().get_database().unwrap().to_owned();
        let mut config = ApiConfig::local(
            database_url_of(&db),
            Some(ingest.config.nats.clone()),
            &format!("{KEY}:admin"),
        );
        config.keys.extend(ApiConfig::parse_keys(READ_KEY));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(showpass_api::run(config, listener, shutdown.clone()));
        Self {
            ingest,
            projector: Some(projector),
            pool,
            api,
            shutdown,
        }
    }

    async fn deliver(&self, kind: SampleKind, uuid: &str, txn: &str, org: &str) {
        self.deliver_body(sample_body(kind, uuid, txn, org)).await;
    }

    async fn deliver_body(&self, body: Vec<u8>) {
        let (status, answer) = self.ingest.deliver(&body).await;
        assert!(status.is_success(), "{answer}");
    }

    /// Waits until everything delivered so far is visible.
    async fn settle(&self) {
        caught_up(&self.ingest, &self.pool).await;
    }

    async fn call(&self, method: &str, path: &str, key: Option<&str>) -> (u16, Value, String) {
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut headers = vec![];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        let (status, body, content_type) = raw(self.api, method, path, &headers).await;
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (status, json, content_type)
    }

    /// GET with the right key; the answer must be 200 JSON.
    async fn get_ok(&self, path: &str) -> Value {
        let (status, body, _) = self.call("GET", path, Some(KEY)).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    /// GET with the right key; the answer must be a problem with `status`.
    async fn problem(&self, path: &str, status: u16) -> Value {
        let (got, body, content_type) = self.call("GET", path, Some(KEY)).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(content_type, "application/problem+json", "{path}");
        assert_eq!(body["status"], status, "{path}: {body}");
        assert!(
            !body["detail"].as_str().unwrap_or_default().is_empty(),
            "{path}: {body}"
        );
        body
    }

    /// Follows `next_cursor` from `path` to the end, returning every item.
    async fn all_pages(&self, path: &str) -> (Vec<Value>, usize) {
        let mut items = Vec::new();
        let mut pages = 0;
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = match &cursor {
                Some(c) => format!("{path}{sep}cursor={c}"),
                None => path.to_owned(),
            };
            let page = self.get_ok(&url).await;
            pages += 1;
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return (items, pages),
            }
        }
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(p) = self.projector.take() {
            p.stop().await;
        }
        self.ingest.stop().await;
    }
}

async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Bytes, String) {
    // The api may still be binding its pool: retry the connection for a moment.
    for _ in 0..100 {
        if let Ok((status, h, body)) = request_full(addr, method, path, headers, Bytes::new()).await
        {
            let content_type = h
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            return (status.as_u16(), body, content_type);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("api did not answer");
}

/// A purchase by someone with an accented name and their own e-mail.
fn purchase_by(uuid: &str, txn: &str, org: &str, name: &str, email: &str) -> Vec<u8> {
    edit(&sample_body(Purchase, uuid, txn, org), |v| {
        v["data"]["customer_name"] = json!(name);
        v["data"]["customer_email"] = json!(email);
    })
}

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

/// A purchase, its refund, a transfer and a test event read back through every route.
#[sqlx::test(migrations = "../../migrations")]
async fn deliveries_read_back_through_every_route(pool: PgPool) {
    let p = Platform::start(pool).await;
    p.deliver_body(purchase_by(
        "u-1",
        "T1",
        "20",
        "José Müller",
        "Jose.Muller@Example.com ",
    ))
    .await;
    p.deliver_body(purchase_by(
        "u-2",
        "T2",
        "20",
        "Ana Smith",
        "ana@example.com",
    ))
    .await;
    p.deliver(Refund, "u-3", "T2", "20").await;
    p.deliver(Test, "u-4", "T9", "20").await;
    p.deliver_body(purchase_by(
        "u-5",
        "T5",
        "21",
        "Other Org",
        "other@example.com",
    ))
    .await;
    p.deliver_body(purchase_by(
        "u-1",
        "T1",
        "20",
        "José Müller",
        "Jose.Muller@Example.com ",
    ))
    .await; // a duplicate
    p.settle().await;

    // Customers: accent- and case-insensitive, substring, typo-tolerant; ranked.
    for q in [
        "jose",
        "MULLER",
        "müller",
        "muller@exa",
        "Jsoe Muller",
        "403 555 0100",
    ] {
        let page = p.get_ok(&format!("/v1/customers?q={}", urlencode(q))).await;
        let emails: Vec<&str> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["email"].as_str().unwrap())
            .collect();
        if q.starts_with("403") {
            assert!(
                emails.contains(&"jose.muller@example.com"),
                "{q}: {emails:?}"
            );
        } else {
            assert_eq!(
                emails.first(),
                Some(&"jose.muller@example.com"),
                "{q}: {page}"
            );
        }
    }
    let page = p.get_ok("/v1/customers?q=jose.muller@example.com").await;
    let customer = &page["items"][0];
    for field in [
        "id",
        "org_id",
        "email",
        "name",
        "phone",
        "subscribed_to_venue",
        "orders_count",
        "tickets_count",
        "total_spent",
        "first_seen_at",
        "last_seen_at",
    ] {
        assert!(
            customer.get(field).is_some(),
            "customer lacks {field}: {customer}"
        );
    }
    assert_eq!(customer["name"], "José Müller");
    assert_eq!(customer["orders_count"], 1);
    assert_eq!(customer["total_spent"], "58.40");
    let only_21 = p.get_ok("/v1/customers?org_id=21").await;
    assert_eq!(only_21["items"].as_array().unwrap().len(), 1);
    let one = p
        .get_ok(&format!(
            "/v1/customers/{}",
            customer["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(one["email"], "jose.muller@example.com");
    assert_eq!(one["orders"][0]["transaction_id"], "T1");

    // Orders: the single view has its invoices, lines and tickets.
    let t2 = p.get_ok("/v1/orders/T2").await;
    assert_eq!(t2["status"], "refunded");
    assert_eq!(t2["refunded"], "58.40");
    assert_eq!(t2["net_sales"], "58.40");
    assert_eq!(t2["currency"], "CAD");
    assert_eq!(t2["invoices"].as_array().unwrap().len(), 2);
    assert_eq!(t2["invoices"][1]["event_type"], "invoice.refund");
    assert_eq!(t2["items"].as_array().unwrap().len(), 2);
    assert!(
        t2["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "refunded")
    );
    let barcode = t2["tickets"][0]["barcode"].as_str().unwrap().to_owned();
    for (query, expected) in [
        ("q=T2".to_owned(), vec!["T2"]),
        (format!("q={barcode}"), vec!["T2"]),
        ("q=ana%40example".to_owned(), vec!["T2"]),
        ("q=m%C3%BCller".to_owned(), vec!["T1"]),
        ("status=refunded".to_owned(), vec!["T2"]),
        ("org_id=21".to_owned(), vec!["T5"]),
        ("event_id=474708&org_id=20".to_owned(), vec!["T2", "T1"]),
        ("event_id=nope".to_owned(), vec![]),
    ] {
        let page = p.get_ok(&format!("/v1/orders?{query}")).await;
        let txs: Vec<&str> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["transaction_id"].as_str().unwrap())
            .collect();
        assert_eq!(txs, expected, "{query}");
    }

    // Tickets by barcode, with their status.
    let tickets = p.get_ok(&format!("/v1/tickets?barcode={barcode}")).await;
    assert_eq!(tickets["items"].as_array().unwrap().len(), 1);
    let ticket = &tickets["items"][0];
    for field in [
        "id",
        "transaction_id",
        "event_id",
        "event_name",
        "ticket_type_id",
        "ticket_type_name",
        "barcode",
        "status",
        "name_on_ticket",
        "email_on_ticket",
        "created_by_transfer",
        "updated_at",
    ] {
        assert!(
            ticket.get(field).is_some(),
            "ticket lacks {field}: {ticket}"
        );
    }
    assert_eq!(ticket["status"], "refunded");
    let issued = p.get_ok("/v1/tickets?status=issued&org_id=20").await;
    assert_eq!(issued["items"].as_array().unwrap().len(), 2);

    // Events with their totals.
    let events = p.get_ok("/v1/events?org_id=20").await;
    assert_eq!(events["items"][0]["event_id"], "474708");
    assert_eq!(events["items"][0]["name"], "Sample Night");
    let totals = &events["items"][0]["totals"][0];
    assert_eq!(
        (totals["currency"].as_str(), totals["orders"].as_i64()),
        (Some("CAD"), Some(2))
    );
    assert_eq!(totals["net_sales"], "58.40");
    assert_eq!(totals["refunds"], "58.40");

    // Logs: newest first, filters, and one delivery with its payload.
    let logs = p.get_ok("/v1/logs").await;
    let items = logs["items"].as_array().unwrap();
    assert_eq!(items.len(), 6);
    let times: Vec<&str> = items
        .iter()
        .map(|d| d["received_at"].as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    let dup = p.get_ok("/v1/logs?outcome=duplicate").await;
    assert_eq!(dup["items"].as_array().unwrap().len(), 1);
    assert_eq!(dup["items"][0]["http_status"], 200);
    let by_uuid = p.get_ok("/v1/logs?q=u-3").await;
    assert_eq!(by_uuid["items"][0]["event_type"], "invoice.refund");
    let tests = p.get_ok("/v1/logs?event_type=webhook.test").await;
    assert_eq!(tests["items"][0]["processing"], "applied");
    let id = by_uuid["items"][0]["id"].as_str().unwrap();
    let one = p.get_ok(&format!("/v1/logs/{id}")).await;
    assert_eq!(one["payload"]["webhook_event_uuid"], "u-3");
    assert_eq!(one["headers"]["Showpass-Event-Type"], "invoice.refund");
    assert_eq!(one["processing"], "applied");
    for field in [
        "id",
        "received_at",
        "endpoint",
        "outcome",
        "reason",
        "http_status",
        "event_type",
        "webhook_event_uuid",
        "transaction_id",
        "org_id",
        "remote_addr",
        "processing",
        "error",
    ] {
        assert!(one.get(field).is_some(), "delivery lacks {field}: {one}");
    }
    p.stop().await;
}

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

/// Bad parameters are 400 problems naming the parameter; unknown ids are 404.
#[sqlx::test(migrations = "../../migrations")]
async fn bad_input_is_answered_with_a_problem_naming_it(pool: PgPool) {
    let p = Platform::start(pool).await;
    p.deliver(Purchase, "b-1", "B1", "20").await;
    p.settle().await;
    for (path, param) in [
        ("/v1/customers?limit=-1", "limit"),
        ("/v1/customers?limit=0", "limit"),
        ("/v1/orders?limit=100000", "limit"),
        ("/v1/orders?limit=ten", "limit"),
        ("/v1/customers?cursor=forged", "cursor"),
        ("/v1/orders?cursor=WyJjdXN0b21lcnMiLCJ4IiwieSJd", "cursor"),
        ("/v1/orders?from=2026-02-30", "from"),
        ("/v1/orders?to=yesterday", "to"),
        ("/v1/logs?from=2026-11-02&to=2026-11-01", "to"),
        ("/v1/orders?status=lost", "status"),
        ("/v1/logs?outcome=maybe", "outcome"),
        ("/v1/logs?processing=done", "processing"),
        ("/v1/sales/summary?group_by=month", "group_by"),
        (
            "/v1/sales/summary?group_by=event%27%3B%20DROP%20TABLE%20orders%3B--",
            "group_by",
        ),
        ("/v1/sales/summary?tz=Mars/Olympus_Mons", "tz"),
        ("/v1/sales/summary?format=xml", "format"),
        ("/v1/tickets?status=1%20OR%201%3D1", "status"),
    ] {
        let problem = p.problem(path, 400).await;
        assert_eq!(problem["param"], param, "{path}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(param),
            "{path}: {problem}"
        );
    }
    for path in [
        "/v1/customers/00000000-0000-0000-0000-000000000000",
        "/v1/customers/not-a-uuid",
        "/v1/orders/NOPE",
        "/v1/logs/00000000-0000-0000-0000-000000000000",
        "/v1/logs/nope",
        "/v1/no-such-route",
    ] {
        p.problem(path, 404).await;
    }
    // SQL in free text is only text.
    let page = p.get_ok("/v1/customers?q=%27%20OR%201%3D1%20--").await;
    assert!(page["items"].as_array().unwrap().is_empty());
    let (status, _, _) = p
        .call(
            "POST",
            "/v1/logs/00000000-0000-0000-0000-000000000000/replay",
            Some(KEY),
        )
        .await;
    assert_eq!(status, 404);
    p.stop().await;
}

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

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An api whose database is unreachable answers 503 problems (never hangs or 500s), stays
/// alive, and says it is not ready.
#[tokio::test]
async fn an_unreachable_database_is_a_503_and_not_ready() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = ApiConfig::local(format!("postgres://postgres@{dead}/nowhere"), None, KEY);
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
    nats.url = format!("nats://{dead}");
    let db = p.pool.connect_options().get_database().unwrap().to_owned();
    let config = ApiConfig::local(database_url_of(&db), Some(nats), &format!("{KEY}:admin"));
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

/// Issue 12: the search pattern is folded before its wildcards are escaped, so a fullwidth
/// `％` (which folds to `%`) matches a literal percent sign, not every customer; and the
/// rank never divides by zero, with customers present.
#[sqlx::test(migrations = "../../migrations")]
async fn fullwidth_wildcards_match_themselves_and_never_break_the_rank(pool: PgPool) {
    let p = Platform::start(pool).await;
    p.deliver(Purchase, "fw-1", "FW1", "20").await;
    p.deliver_body(purchase_by(
        "fw-2",
        "FW2",
        "20",
        "Per Cent",
        "per%cent@example.com",
    ))
    .await;
    p.settle().await;
    for q in ["％", "＿", "＼", "%25"] {
        let page = p.get_ok(&format!("/v1/customers?q={}", urlencode(q))).await;
        let emails: Vec<&str> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["email"].as_str().unwrap())
            .collect();
        assert!(
            emails.iter().all(|e| e.contains(['%', '_', '\\'])),
            "{q}: {emails:?}"
        );
    }
    let page = p
        .get_ok(&format!("/v1/customers?q={}", urlencode("％")))
        .await;
    assert_eq!(page["items"][0]["email"], "per%cent@example.com");
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
    let mut parts: Vec<String> = serde_json::from_slice(&b64.decode(payload).unwrap()).unwrap();
    assert_eq!(parts[0], "orders");
    let resigned =
        |parts: &[String]| format!("{}.{mac}", b64.encode(serde_json::to_vec(parts).unwrap()));
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

    // 5,001 ticket types in one organization's daily tier.
    sqlx::query(
        "INSERT INTO sales_by_ticket_type_daily (org_id, event_id, ticket_type_id, bucket,
             payment_type, currency, orders, tickets, net_sales)
         SELECT '77', 'E', 'tt-' || n, '2026-11-01T00:00:00Z', 'credit', 'CAD', 1, 1, 1
         FROM generate_series(1, 5001) AS n",
    )
    .execute(&pool)
    .await
    .unwrap();
    let summary = p
        .get_ok("/v1/sales/summary?group_by=ticket_type&org_id=77")
        .await;
    assert_eq!(summary["rows"].as_array().unwrap().len(), 5000);
    assert_eq!(summary["truncated"], true);
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
    let mut config = ApiConfig::local(database_url_of(&db), None, KEY);
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

/// Issue 12: an export that fails midway (here: its statement times out behind a lock) ends
/// its body with an error, never as a file that looks complete; and it runs on connections of
/// its own, so the api's queries go on meanwhile.
#[sqlx::test(migrations = "../../migrations")]
async fn a_failing_export_ends_with_an_error_and_never_takes_the_queries_connections(pool: PgPool) {
    let db = pool.connect_options().get_database().unwrap().to_owned();
    let mut config = ApiConfig::local(database_url_of(&db), None, KEY);
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
