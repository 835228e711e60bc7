//! The console in a real browser: Debian's headless Chromium, JavaScript off, driven over
//! WebDriver against `showpass all` with simulated traffic. Every page is screenshotted at
//! desktop width and at 375 px, into `target/console-screenshots/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use showpass_testkit::browser::Browser;

#[path = "../common/bin.rs"]
mod bin;
mod http;
#[path = "../common/scratch.rs"]
mod scratch;

use bin::{BIN, Within, free_port};
use http::{exchange, form_post, get_full, get_json, get_page, header};
use scratch::{Scratch, runtime};

const ADMIN: &str = "console-admin-key-5e1f";
const READ: &str = "console-read-key-0c2a";
const SECRET: &str = "console-webhook-secret";

/// `showpass <command>` with this test's streams, database and keys, on free ports; answers
/// once its api serves `/readyz`.
struct Running {
    child: Child,
    ingest: u16,
    api: u16,
}

impl Running {
    fn start(command: &str, scratch: &Scratch, extra: &[(&str, &str)]) -> Self {
        let (ingest, api) = (free_port(), free_port());
        let keys = format!("{ADMIN}:admin,{READ}");
        let child = Command::new(&*BIN)
            .arg(command)
            .env("INGEST_ADDR", format!("127.0.0.1:{ingest}"))
            .env("API_ADDR", format!("127.0.0.1:{api}"))
            .env("SHOWPASS_WEBHOOK_SECRET", SECRET)
            .env("NATS_SUBJECT_PREFIX", &scratch.prefix)
            .env("NATS_URL", &scratch.nats)
            .env("DATABASE_URL", &scratch.db_url)
            .env("API_KEYS", keys)
            .envs(extra.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let running = Self { child, ingest, api };
        let ready = (0..400).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            get_page(api, "/readyz", None).0 == 200
        });
        assert!(ready, "showpass {command} did not become ready");
        running
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.api)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn showpass(args: &[&str]) {
    let out = Command::new(&*BIN)
        .args(args)
        .env("SHOWPASS_WEBHOOK_SECRET", SECRET)
        .output_within(Duration::from_secs(300));
    assert!(
        out.status.success(),
        "showpass {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Simulated traffic, one order bought then refunded, and a delivery with a bad signature;
/// answers when the projector has applied everything.
fn traffic(platform: &Running) {
    let url = format!("http://127.0.0.1:{}/webhooks/showpass", platform.ingest);
    showpass(&[
        "simulate",
        "--url",
        &url,
        "--count",
        "400",
        "--rate",
        "0",
        "--seed",
        "11",
        "--organizations",
        "2",
        "--customers",
        "120",
        "--concurrency",
        "4",
    ]);
    for sample in ["purchase", "refund"] {
        showpass(&[
            "send",
            "--url",
            &url,
            "--sample",
            sample,
            "--transaction-id",
            "txn-console-1",
            "--org",
            "20",
        ]);
    }
    let bad = Command::new(&*BIN)
        .args(["send", "--url", &url, "--secret", "not-the-secret"])
        .output_within(Duration::from_secs(120));
    assert!(!bad.status.success(), "a bad signature is refused");
    let settled = (0..400).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        let health = get_json(platform.api, "/v1/health", ADMIN);
        let order = get_json(platform.api, "/v1/orders/txn-console-1?org_id=20", ADMIN);
        health["projector"]["lag_events"] == 0
            && order["invoices"].as_array().is_some_and(|i| i.len() == 2)
    });
    assert!(settled, "the projector caught up");
}

/// Screenshots of every page, at desktop width and at 375 px.
struct Shots {
    dir: PathBuf,
}

impl Shots {
    fn new() -> Self {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    async fn take(&self, b: &Browser, name: &str) {
        b.screenshot(&self.dir.join(format!("{name}-desktop.png")))
            .await
            .unwrap();
        let url = b.url().await.unwrap();
        b.resize(375, 812).await.unwrap();
        b.goto(&url).await.unwrap();
        b.screenshot(&self.dir.join(format!("{name}-375.png")))
            .await
            .unwrap();
        b.resize(1280, 900).await.unwrap();
        b.goto(&url).await.unwrap();
    }
}

/// "1,234.50 CAD" as "1234.50"; "1,024" as "1024".
fn plain(shown: &str) -> String {
    shown
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .replace(',', "")
}

/// Each currency's totals as the overview shows them equal `/v1/sales/summary`'s.
async fn totals_match(b: &Browser, platform: &Running, query: &str) {
    let summary = get_json(platform.api, &format!("/v1/sales/summary?{query}"), ADMIN);
    let totals = summary["totals"].as_array().unwrap();
    assert!(!totals.is_empty(), "there are sales: {summary}");
    assert_eq!(b.count("#totals tbody tr").await.unwrap(), totals.len());
    for t in totals {
        let cur = t["currency"].as_str().unwrap();
        for field in [
            "net_sales",
            "gross_revenue",
            "refunds",
            "service_fees",
            "total_tax",
            "discounts",
        ] {
            let css = format!("#totals tr[data-currency=\"{cur}\"] td[data-field=\"{field}\"]");
            let shown = b.text(&css).await.unwrap();
            assert!(
                shown.ends_with(cur),
                "{field} carries its currency: {shown}"
            );
            assert_eq!(plain(&shown), t[field].as_str().unwrap(), "{cur} {field}");
        }
        for field in ["orders", "tickets"] {
            let css = format!("#totals tr[data-currency=\"{cur}\"] td[data-field=\"{field}\"]");
            assert_eq!(
                plain(&b.text(&css).await.unwrap()),
                t[field].to_string(),
                "{cur} {field}"
            );
        }
    }
}

/// One letter of the surname changed.
fn typo(name: &str) -> String {
    let mut chars: Vec<char> = name.chars().collect();
    let i = chars.len() - 2;
    chars[i] = if chars[i] == 'e' { 'a' } else { 'e' };
    chars.into_iter().collect()
}

async fn walk_the_console(platform: &Running, expiring: &Running) {
    let shots = Shots::new();
    let b = Browser::start(1280, 900)
        .await
        .expect("headless chromium (apt-get install chromium chromium-driver)");

    // Without a session, a page sends the browser to the login form.
    eprintln!("console walk: Without a session, a page sends the browser to the login for");
    b.goto(&platform.url("/console/customers")).await.unwrap();
    assert!(
        b.url()
            .await
            .unwrap()
            .contains("/console/login?next=%2Fconsole%2Fcustomers")
    );
    shots.take(&b, "login").await;

    // A wrong key gets the form again, with an error.
    eprintln!("console walk: A wrong key gets the form again, with an error.");
    b.fill("#f-key", "not-a-key").await.unwrap();
    b.click("form button[type=submit]").await.unwrap();
    assert!(b.text(".error").await.unwrap().contains("not one of"));
    assert!(b.url().await.unwrap().ends_with("/console/login"));

    // The admin key logs in and goes on to where it was going.
    eprintln!("console walk: The admin key logs in and goes on to where it was going.");
    b.fill("#f-key", ADMIN).await.unwrap();
    b.click("form button[type=submit]").await.unwrap();
    assert!(b.url().await.unwrap().ends_with("/console/customers"));

    // The overview's totals are the sales summary's, for every currency, all time and for
    // one organization in a time zone.
    eprintln!("console walk: the overview and its totals");
    b.goto(&platform.url("/console")).await.unwrap();
    assert_eq!(b.title().await.unwrap(), "Overview · Showpass console");
    totals_match(&b, platform, "group_by=day").await;
    assert!(
        b.count("svg.chart rect.bar").await.unwrap() >= 1,
        "a bar per day"
    );
    assert!(
        b.count("table.bars tbody tr").await.unwrap() >= 2,
        "by event and by ticket type"
    );
    assert!(b.count("section.health").await.unwrap() == 1);
    shots.take(&b, "overview").await;
    b.fill("#f-org_id", "20").await.unwrap();
    b.fill("#f-tz", "America/Edmonton").await.unwrap();
    b.click("form.filters button").await.unwrap();
    assert!(b.url().await.unwrap().contains("org_id=20"));
    totals_match(&b, platform, "group_by=day&org_id=20&tz=America%2FEdmonton").await;

    // A bad filter is an error on the form, not a failure.
    eprintln!("console walk: A bad filter is an error on the form, not a failure.");
    b.fill("#f-tz", "Mars/Olympus").await.unwrap();
    b.click("form.filters button").await.unwrap();
    assert!(b.text("form.filters .error").await.unwrap().contains("tz"));
    assert_eq!(
        b.count("#f-tz").await.unwrap(),
        1,
        "the form is still there"
    );

    // A customer found with a typo in their name, and opened.
    eprintln!("console walk: A customer found with a typo in their name, and opened.");
    let some = get_json(platform.api, "/v1/customers?org_id=20&limit=200", ADMIN);
    let target = some["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["name"]
                .as_str()
                .is_some_and(|n| n.split(' ').nth(1).is_some_and(|l| l.len() >= 5))
        })
        .expect("a simulated customer with a surname")
        .clone();
    let name = target["name"].as_str().unwrap();
    b.goto(&platform.url("/console/customers")).await.unwrap();
    b.fill("#f-q", &typo(name)).await.unwrap();
    b.click("form.filters button").await.unwrap();
    let email = target["email"].as_str().unwrap();
    let found = b.texts("#customers tbody th a").await.unwrap();
    assert!(
        found.iter().any(|e| e == email),
        "{email} among {found:?} for {:?}",
        typo(name)
    );
    shots.take(&b, "customers").await;
    b.click(&format!(
        "#customers a[href=\"/console/customers/{}\"]",
        target["id"].as_str().unwrap()
    ))
    .await
    .unwrap();
    assert!(b.source().await.unwrap().contains(email));
    assert!(b.count("#orders tbody tr").await.unwrap() >= 1);
    assert!(b.count("#tickets tbody tr").await.unwrap() >= 1);
    shots.take(&b, "customer").await;

    // An order with a refund: both invoices on its timeline, and its tickets.
    eprintln!("console walk: An order with a refund: both invoices on its timeline, and i");
    b.goto(&platform.url("/console/orders/txn-console-1?org_id=20"))
        .await
        .unwrap();
    let events = b.texts("#invoices li strong").await.unwrap();
    assert_eq!(events, ["invoice.purchase", "invoice.refund"]);
    assert!(b.count("#tickets tbody tr").await.unwrap() >= 1);
    shots.take(&b, "order").await;

    // The log filtered to rejected deliveries.
    eprintln!("console walk: The log filtered to rejected deliveries.");
    b.goto(&platform.url("/console/logs")).await.unwrap();
    b.choose("#f-outcome", "rejected").await.unwrap();
    b.click("form.filters button").await.unwrap();
    assert!(b.url().await.unwrap().contains("outcome=rejected"));
    let rows = b.count("#deliveries tbody tr").await.unwrap();
    assert!(rows >= 1, "the bad signature is listed");
    assert_eq!(
        b.count("#deliveries tbody tr[data-outcome=\"rejected\"]")
            .await
            .unwrap(),
        rows
    );
    shots.take(&b, "logs").await;

    // One delivery, replayed as admin.
    eprintln!("console walk: One delivery, replayed as admin.");
    let order = get_json(platform.api, "/v1/orders/txn-console-1?org_id=20", ADMIN);
    let delivery = order["invoices"][0]["delivery_id"]
        .as_str()
        .unwrap()
        .to_owned();
    b.goto(&platform.url(&format!("/console/logs/{delivery}")))
        .await
        .unwrap();
    assert!(b.count("#payload").await.unwrap() == 1 && b.count("#headers").await.unwrap() == 1);
    shots.take(&b, "delivery").await;
    b.click("form.replay button").await.unwrap();
    assert!(b.url().await.unwrap().contains("replayed="));
    assert!(b.text(".notice").await.unwrap().starts_with("Replayed"));

    // Unknown ids are a 404 page.
    eprintln!("console walk: Unknown ids are a 404 page.");
    for path in [
        "/console/orders/no-such-transaction",
        "/console/customers/not-an-id",
        "/console/customers/00000000-0000-0000-0000-000000000000",
        "/console/logs/00000000-0000-0000-0000-000000000000",
        "/console/no-such-page",
    ] {
        b.goto(&platform.url(path)).await.unwrap();
        assert!(b.text("h1").await.unwrap().starts_with("404"), "{path}");
    }
    shots.take(&b, "not-found").await;

    // The API reference, with no script and nothing fetched from elsewhere.
    eprintln!("console walk: The API reference, with no script and nothing fetched from e");
    b.goto(&platform.url("/docs")).await.unwrap();
    assert!(b.source().await.unwrap().contains("/v1/sales/summary"));
    shots.take(&b, "docs").await;

    // A read key sees no Replay button.
    eprintln!("console walk: A read key sees no Replay button.");
    b.clear_cookies().await.unwrap();
    b.goto(&platform.url("/console/login")).await.unwrap();
    b.fill("#f-key", READ).await.unwrap();
    b.click("form button[type=submit]").await.unwrap();
    b.goto(&platform.url(&format!("/console/logs/{delivery}")))
        .await
        .unwrap();
    assert_eq!(b.count("form.replay").await.unwrap(), 0);

    // Log out: the console is behind the login again.
    eprintln!("console walk: Log out.");
    b.click("form.logout button").await.unwrap();
    assert!(b.url().await.unwrap().ends_with("/console/login"));
    b.goto(&platform.url("/console")).await.unwrap();
    assert!(b.url().await.unwrap().contains("/console/login?next="));

    // An expired session goes back to the login form.
    eprintln!("console walk: An expired session goes back to the login form.");
    b.goto(&expiring.url("/console/login")).await.unwrap();
    b.fill("#f-key", ADMIN).await.unwrap();
    b.click("form button[type=submit]").await.unwrap();
    assert!(b.url().await.unwrap().ends_with("/console"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    b.goto(&expiring.url("/console/logs")).await.unwrap();
    assert!(
        b.url().await.unwrap().contains("/console/login?next="),
        "expired"
    );
    b.quit().await;
}

/// The session cookie `POST /console/login` sets for `key`.
fn log_in(platform: &Running, key: &str) -> String {
    let (status, headers, _) =
        form_post(platform.api, "/console/login", &format!("key={key}"), None);
    assert_eq!(status, 303);
    header(&headers, "set-cookie")
        .map(|v| v.split(';').next().unwrap().to_owned())
        .expect("a session cookie")
}

/// The CSRF token in the forms of a page.
fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a form's token")
        .to_owned()
}

/// A read key's session is refused a replay even with its own valid CSRF token.
fn a_read_session_may_not_replay(platform: &Running, delivery: &str) {
    let cookie = log_in(platform, READ);
    let (status, page) = get_page(
        platform.api,
        &format!("/console/logs/{delivery}"),
        Some(&cookie),
    );
    assert_eq!(status, 200);
    let csrf = csrf_of(&page);
    let (status, _, _) = form_post(
        platform.api,
        &format!("/console/logs/{delivery}/replay"),
        &format!("csrf={csrf}"),
        Some(&cookie),
    );
    assert_eq!(status, 403);
}

/// Hostile requests get a clear answer: markup in a query is text, a replay without this
/// session's token is refused, a forged cookie is no session, a login cannot send the browser
/// elsewhere, and an oversized form is refused before it is read.
fn hostile_requests_get_clear_answers(platform: &Running, delivery: &str) {
    let admin = log_in(platform, ADMIN);
    let (status, headers, page) = get_full(
        platform.api,
        "/console/customers?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E%22%3E",
        &admin,
    );
    assert_eq!(status, 200);
    assert!(!page.contains("<script"), "the query is escaped");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;"));
    let csp = header(&headers, "content-security-policy").unwrap();
    assert!(csp.starts_with("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));

    // Bad filters are the form again with a 400 and the reason, never a 500.
    for (path, names) in [
        (format!("/console/customers?q={}", "a".repeat(300)), "q"),
        ("/console/logs?limit=abc".to_owned(), "limit"),
        ("/console/logs?outcome=exploded".to_owned(), "outcome"),
        ("/console/logs?cursor=not-a-cursor".to_owned(), "cursor"),
        ("/console?from=2026-13-45".to_owned(), "from"),
    ] {
        let (status, _, page) = get_full(platform.api, &path, &admin);
        assert_eq!(status, 400, "{path}");
        assert!(
            page.contains("class=\"filters\""),
            "the form is shown for {path}"
        );
        assert!(page.contains(names), "{path} names {names}");
    }

    // A replay needs this session's token.
    let replay = format!("/console/logs/{delivery}/replay");
    for form in [
        "",
        "csrf=",
        "csrf=0000000000000000000000000000000000000000000",
    ] {
        let (status, _, _) = form_post(platform.api, &replay, form, Some(&admin));
        assert_eq!(status, 403, "{form:?}");
    }
    let other = log_in(platform, READ);
    let (_, other_page) = get_page(platform.api, "/console/logs", Some(&other));
    let (status, _, _) = form_post(
        platform.api,
        &replay,
        &format!("csrf={}", csrf_of(&other_page)),
        Some(&admin),
    );
    assert_eq!(status, 403, "another session's token");

    // A forged or mangled cookie is no session.
    let (name, value) = admin.split_once('=').unwrap();
    let mut forged = value.to_owned();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    for cookie in [
        format!("{name}={forged}"),
        format!("{name}=garbage"),
        format!("{name}="),
    ] {
        let (status, headers, _) = get_full(platform.api, "/console/logs", &cookie);
        assert_eq!(status, 303, "{cookie}");
        assert!(
            header(&headers, "location")
                .unwrap()
                .starts_with("/console/login?next=")
        );
    }

    // A login goes on only to a console page.
    for next in [
        "https%3A%2F%2Fevil.example%2F",
        "%2F%2Fevil.example",
        "%2Fconsole%2F..%2F%2Fevil",
    ] {
        let (status, headers, _) = form_post(
            platform.api,
            "/console/login",
            &format!("key={ADMIN}&next={next}"),
            None,
        );
        assert_eq!(status, 303);
        assert_eq!(header(&headers, "location"), Some("/console"), "{next}");
    }

    // Another site cannot log a browser in.
    let (status, headers, _) = exchange(
        platform.api,
        "POST /console/login HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Origin: https://evil.example\r\n",
        &format!("key={ADMIN}"),
    );
    assert_eq!(status, 403);
    assert!(header(&headers, "set-cookie").is_none());

    // An oversized login form is refused without reading it all.
    let (status, _, _) = form_post(
        platform.api,
        "/console/login",
        &format!("key={}", "k".repeat(200_000)),
        None,
    );
    assert_eq!(status, 413);
    assert_eq!(
        get_page(platform.api, "/readyz", None).0,
        200,
        "and the api is fine"
    );
}

/// What the browser cannot see, over plain HTTP: the session cookie's attributes, a logout that
/// ends every copy of its cookie, "Next page" following the API's own cursor, the health panel
/// and the JSON links against the api's answers, and a label for every input and a title for
/// every chart on every page.
fn sessions_and_pages_keep_their_word(platform: &Running, delivery: &str) {
    // The cookie: HttpOnly, SameSite=Strict, only for /console, with an expiry; Secure only
    // when the browser came over https.
    let login = |extra: &str| {
        let (status, headers, _) = exchange(
            platform.api,
            &format!(
                "POST /console/login HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n{extra}"
            ),
            &format!("key={ADMIN}"),
        );
        assert_eq!(status, 303);
        header(&headers, "set-cookie").unwrap().to_owned()
    };
    let plain = login("");
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=28800",
    ] {
        assert!(
            plain.split("; ").any(|a| a == attribute),
            "{attribute} in {plain}"
        );
    }
    assert!(!plain.contains("Secure"), "not over plain http: {plain}");
    let behind_tls = login("X-Forwarded-Proto: https\r\n");
    assert!(
        behind_tls.split("; ").any(|a| a == "Secure"),
        "{behind_tls}"
    );

    // A logout needs the session's token, then ends the session for every copy of its cookie.
    let cookie = log_in(platform, ADMIN);
    let (status, page) = get_page(platform.api, "/console/logs", Some(&cookie));
    assert_eq!(status, 200);
    let csrf = csrf_of(&page);
    let (status, _, _) = form_post(platform.api, "/console/logout", "csrf=nope", Some(&cookie));
    assert_eq!(status, 403, "a logout without the token");
    assert_eq!(
        get_page(platform.api, "/console/logs", Some(&cookie)).0,
        200
    );
    let (status, headers, _) = form_post(
        platform.api,
        "/console/logout",
        &format!("csrf={csrf}"),
        Some(&cookie),
    );
    assert_eq!(status, 303);
    assert_eq!(header(&headers, "location"), Some("/console/login"));
    assert!(
        header(&headers, "set-cookie")
            .unwrap()
            .contains("Max-Age=0")
    );
    let (status, headers, _) = get_full(platform.api, "/console/logs", &cookie);
    assert_eq!(
        status, 303,
        "a copy of an ended session's cookie opens nothing"
    );
    assert!(
        header(&headers, "location")
            .unwrap()
            .starts_with("/console/login")
    );

    // "Next page" is the API's next page.
    let admin = log_in(platform, ADMIN);
    let ids_on = |page: &str| -> Vec<String> {
        page.split("<tbody>")
            .nth(1)
            .unwrap_or_default()
            .split("href=\"/console/logs/")
            .skip(1)
            .filter_map(|r| r.split('"').next())
            .map(str::to_owned)
            .collect()
    };
    let (status, first) = get_page(platform.api, "/console/logs?limit=3", Some(&admin));
    assert_eq!(status, 200);
    let next = first
        .split("rel=\"next\" href=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a next page")
        .replace("&amp;", "&");
    let (status, second) = get_page(platform.api, &next, Some(&admin));
    assert_eq!(status, 200);
    let api_first = get_json(platform.api, "/v1/logs?limit=3", ADMIN);
    let cursor = api_first["next_cursor"].as_str().unwrap();
    let api_second = get_json(
        platform.api,
        &format!("/v1/logs?limit=3&cursor={}", urlencode(cursor)),
        ADMIN,
    );
    let api_ids = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids_on(&first), api_ids(&api_first));
    assert_eq!(ids_on(&second), api_ids(&api_second));
    assert_ne!(ids_on(&first), ids_on(&second));

    // The health panel shows /v1/health's endpoints, rejections and failed events, and the
    // overview's footer links each of its four queries.
    let (status, overview) = get_page(platform.api, "/console", Some(&admin));
    assert_eq!(status, 200);
    let health = get_json(platform.api, "/v1/health", ADMIN);
    for e in health["endpoints"].as_array().unwrap() {
        let link = format!(
            "<a href=\"/console/logs/{}\">{}</a>",
            e["last_delivery_id"].as_str().unwrap(),
            e["endpoint"].as_str().unwrap()
        );
        assert!(overview.contains(&link), "{link}");
    }
    let rejected = health["rejected"]["last_24h"].as_object().unwrap();
    assert!(!rejected.is_empty(), "the bad signature was rejected");
    for (reason, n) in rejected {
        let row = format!("<th scope=\"row\">{reason}</th><td class=\"num\">{n}</td>");
        assert!(overview.contains(&row), "{row}");
    }
    assert_eq!(health["failed_events"], 0);
    assert!(overview.contains("<p>Failed events: 0</p>"));
    for json in [
        "/console/json/v1/sales/summary?group_by=day",
        "/console/json/v1/sales/summary?group_by=event",
        "/console/json/v1/sales/summary?group_by=ticket_type",
        "/console/json/v1/health",
    ] {
        assert!(overview.contains(&format!("href=\"{json}\"")), "{json}");
    }
    let (status, linked) = get_page(
        platform.api,
        "/console/json/v1/sales/summary?group_by=event",
        Some(&admin),
    );
    assert_eq!(status, 200);
    let linked: Value = serde_json::from_str(&linked).unwrap();
    assert_eq!(
        linked["totals"],
        get_json(platform.api, "/v1/sales/summary?group_by=event", ADMIN)["totals"]
    );

    // Every input has a label, every chart a title, on every page.
    let customer = get_json(platform.api, "/v1/customers?limit=1", ADMIN)["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in [
        "/console".to_owned(),
        "/console/customers?q=a".to_owned(),
        format!("/console/customers/{customer}"),
        "/console/orders/txn-console-1?org_id=20".to_owned(),
        "/console/logs".to_owned(),
        format!("/console/logs/{delivery}"),
    ] {
        let (status, page) = get_page(platform.api, &path, Some(&admin));
        assert_eq!(status, 200, "{path}");
        for control in page
            .split('<')
            .filter(|t| t.starts_with("input ") || t.starts_with("select "))
            .filter(|t| !t.contains("type=\"hidden\""))
        {
            let id = control
                .split("id=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or_else(|| panic!("{path}: an input without an id: <{control}"));
            assert!(
                page.contains(&format!("<label for=\"{id}\"")),
                "{path}: no label for #{id}"
            );
        }
        for chart in page.split("<svg").skip(1) {
            let tag = chart.split('>').next().unwrap();
            assert!(
                tag.contains("aria-label=\"") || chart.contains("<title>"),
                "{path}: a chart without a title: <svg{tag}>"
            );
        }
    }
    let (_, login_page) = get_page(platform.api, "/console/login", None);
    assert!(login_page.contains("<label for=\"f-key\""));
}

/// A query parameter's value, percent-encoded.
fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn the_console_works_in_a_real_browser_with_javascript_off() {
    assert!(
        Browser::available(),
        "the console is tested in Chromium: apt-get install chromium chromium-driver"
    );
    let scratch = Scratch::new("console");
    let result = std::panic::catch_unwind(|| {
        let platform = Running::start("all", &scratch, &[]);
        let expiring = Running::start("api", &scratch, &[("CONSOLE_SESSION_TTL", "2s")]);
        traffic(&platform);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(walk_the_console(&platform, &expiring));
        let order = get_json(platform.api, "/v1/orders/txn-console-1?org_id=20", ADMIN);
        let delivery: Value = order["invoices"][0]["delivery_id"].clone();
        a_read_session_may_not_replay(&platform, delivery.as_str().unwrap());
        hostile_requests_get_clear_answers(&platform, delivery.as_str().unwrap());
        sessions_and_pages_keep_their_word(&platform, delivery.as_str().unwrap());
    });
    scratch.remove(&runtime());
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
