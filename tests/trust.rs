//! Trust boundaries tried for real (issue 12), with the `showpass` binary:
//! - every service under its own NATS user, with deploy/nats/authorization.conf, and the api on
//!   a read-only PostgreSQL role;
//! - ingest's memory while large, wrongly signed bodies arrive and NATS is paused;
//! - credentials in URLs never reaching a log line.

use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use showpass_testkit::{PrivateNats, database_url_of, post, request};

#[path = "common/bin.rs"]
mod bin;
use bin::{BIN, Within, free_port};

const SECRET: &str = "trust-secret-1f3a";
const ADMIN_KEY: &str = "trust-admin-key-77aa";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(command: &str, env: &[(String, String)]) -> Proc {
    Proc(
        Command::new(&*BIN)
            .arg(command)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn wait_http(port: u16, path: &str) {
    let url = format!("http://127.0.0.1:{port}{path}");
    for _ in 0..300 {
        let ok = Command::new(&*BIN)
            .args(["healthcheck", "--url", &url])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        if ok {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} never answered 200");
}

fn pair(k: &str, v: impl Into<String>) -> (String, String) {
    (k.to_owned(), v.into())
}

/// The NATS authorization the compose file runs, on a nats-server of the test's own, with
/// every service under its own user (and NATS_PROVISION=false: only `migrate` provisions), and
/// the api on a read-only database role. Events flow end to end and a replay works; then each
/// user is tried beyond its rights.
#[test]
fn every_service_runs_with_only_what_it_needs() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let passwords: Vec<(String, String)> = ["MIGRATE", "INGEST", "PROJECTOR", "API", "READER"]
        .iter()
        .map(|u| {
            pair(
                &format!("NATS_{u}_PASSWORD"),
                format!("pw-{}", u.to_lowercase()),
            )
        })
        .collect();
    // nats-server reads an `include` relative to the including file: both side by side, as
    // the compose file mounts them.
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("nats.conf");
    let auth =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats/authorization.conf");
    std::fs::copy(&auth, conf_dir.path().join("authorization.conf")).unwrap();
    std::fs::write(&conf, "include \"authorization.conf\"\n").unwrap();
    let nats = PrivateNats::start_with_config(Some((conf, passwords.clone())));
    let url = |user: &str| format!("nats://{user}:pw-{user}@127.0.0.1:{}", nats.port);

    let tag = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let db = format!("trust_{tag}");
    let owner_url = database_url_of(&db);
    let role = format!("showpass_api_{tag}");
    let reader_url = owner_url.replacen("://postgres@", &format!("://{role}:reader-pw@"), 1);
    let base = |user: &str| {
        vec![
            pair("NATS_URL", url(user)),
            pair("NATS_SUBJECT_PREFIX", "showpass"),
            pair("DATABASE_URL", owner_url.clone()),
            pair("RUST_LOG", "warn"),
        ]
    };

    let mut migrate_env = base("migrate");
    migrate_env.push(pair("API_DATABASE_URL", reader_url.clone()));
    let migrate = Command::new(&*BIN)
        .arg("migrate")
        .env_clear()
        .envs(migrate_env.iter().map(|(k, v)| (k, v)))
        .output_within(Duration::from_secs(120));
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );

    let (ingest_port, api_port) = (free_port(), free_port());
    let mut ingest_env = base("ingest");
    ingest_env.extend([
        pair("NATS_PROVISION", "false"),
        pair("SHOWPASS_WEBHOOK_SECRET", SECRET),
        pair("INGEST_ADDR", format!("127.0.0.1:{ingest_port}")),
    ]);
    let mut projector_env = base("projector");
    projector_env.push(pair("NATS_PROVISION", "false"));
    let mut api_env = base("api");
    api_env.extend([
        pair("DATABASE_URL", reader_url.clone()),
        pair("API_KEYS", format!("{ADMIN_KEY}:admin")),
        pair("API_ADDR", format!("127.0.0.1:{api_port}")),
    ]);
    let _ingest = spawn("ingest", &ingest_env);
    let _projector = spawn("projector", &projector_env);
    let _api = spawn("api", &api_env);
    wait_http(ingest_port, "/readyz");
    wait_http(api_port, "/readyz");

    rt.block_on(async {
        let ingest = std::net::SocketAddr::from(([127, 0, 0, 1], ingest_port));
        let api = std::net::SocketAddr::from(([127, 0, 0, 1], api_port));
        let (status, answer) = deliver_purchase(ingest, "auth-1", "AUTH-1").await;
        assert_eq!(status, 202, "{answer}");

        // The projector (as `projector`) applies it; the api (as `api`, read-only) serves it.
        let auth = format!("Bearer {ADMIN_KEY}");
        let headers = [("authorization", auth.as_str())];
        let deadline = Instant::now() + Duration::from_secs(30);
        let log_id = loop {
            let (status, body) = request(
                api,
                "GET",
                "/v1/logs?outcome=accepted",
                &headers,
                bytes::Bytes::new(),
            )
            .await
            .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if status == 200 && v["items"][0]["processing"] == "applied" {
                break v["items"][0]["id"].as_str().unwrap().to_owned();
            }
            assert!(Instant::now() < deadline, "never applied: {v}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let (status, body) = request(
            api,
            "POST",
            &format!("/v1/logs/{log_id}/replay"),
            &headers,
            bytes::Bytes::new(),
        )
        .await
        .unwrap();
        assert_eq!(
            status,
            202,
            "the api may replay: {}",
            String::from_utf8_lossy(&body)
        );

        // The api may ask for an erasure, and the projector may carry it out: read, store the
        // redacted copy, delete the original, answer.
        let (_, body) = request(
            api,
            "GET",
            "/v1/customers?q=alex",
            &headers,
            bytes::Bytes::new(),
        )
        .await
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let customer = v["items"][0]["id"]
            .as_str()
            .expect("alex is a customer")
            .to_owned();
        let (status, body) = request(
            api,
            "DELETE",
            &format!("/v1/customers/{customer}"),
            &headers,
            bytes::Bytes::new(),
        )
        .await
        .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(status, 200, "the api may ask for an erasure: {report}");
        assert!(report["messages"]["events"].as_u64() >= Some(1), "{report}");
        assert!(
            report["messages"]["deleted"].as_u64() >= Some(1),
            "{report}"
        );

        // Beyond their rights.
        let port = nats.port;
        // As each part connects: with its own inbox prefix (the reader keeps the default).
        let connect = |user: &'static str| async move {
            let options = async_nats::ConnectOptions::with_user_and_password(
                user.into(),
                format!("pw-{user}"),
            );
            let options = if user == "reader" {
                options
            } else {
                options.custom_inbox_prefix(showpass_core::nats::inbox_prefix(&format!(
                    "showpass-{user}"
                )))
            };
            options.connect(format!("127.0.0.1:{port}")).await.unwrap()
        };
        let js_of = |c: async_nats::Client| {
            async_nats::jetstream::ContextBuilder::new()
                .timeout(Duration::from_secs(2))
                .build(c)
        };
        let api_js = js_of(connect("api").await);
        assert!(
            api_js.delete_stream("SHOWPASS_EVENTS").await.is_err(),
            "the api's user cannot delete the event store"
        );
        let ingest_client = connect("ingest").await;
        let ingest_js = js_of(ingest_client.clone());
        let deliveries = ingest_js.get_stream("SHOWPASS_DELIVERIES").await.unwrap();
        assert!(
            deliveries
                .create_consumer(async_nats::jetstream::consumer::pull::Config::default())
                .await
                .is_err(),
            "ingest's user cannot read the delivery records through JetStream"
        );
        let reader = connect("reader").await;
        let mut as_ingest = ingest_client
            .subscribe("showpass.deliveries.>")
            .await
            .unwrap();
        let mut as_reader = reader.subscribe("showpass.deliveries.>").await.unwrap();
        ingest_client.flush().await.unwrap();
        reader.flush().await.unwrap();
        // A rejection makes ingest publish a delivery record.
        let (status, _) = post(
            ingest,
            "/webhooks/showpass",
            &[],
            b"{\"id\":\"x\"}".to_vec(),
        )
        .await;
        assert_eq!(status.as_u16(), 401);
        use futures::StreamExt as _;
        let seen_by_reader = tokio::time::timeout(Duration::from_secs(5), as_reader.next()).await;
        assert!(
            matches!(seen_by_reader, Ok(Some(_))),
            "the reader sees delivery records"
        );
        let seen_by_ingest = tokio::time::timeout(Duration::from_secs(1), as_ingest.next()).await;
        assert!(
            !matches!(seen_by_ingest, Ok(Some(_))),
            "ingest's user cannot read the delivery records"
        );
        let reader_js = js_of(reader);
        let before = reader_js
            .get_stream("SHOWPASS_EVENTS")
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .state
            .messages;
        let _ = reader_js
            .publish("_showpass.events.20.invoice.purchase", "{}".into())
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = reader_js
            .get_stream("SHOWPASS_EVENTS")
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .state
            .messages;
        assert_eq!(
            before, after,
            "the reader publishes nothing into the event store"
        );

        // Each service's replies and pull deliveries come to its own inbox: ingest cannot
        // read the projector's, and nothing a service receives passes through `_INBOX.>`.
        let mut projector_inbox = ingest_client
            .subscribe("_INBOX_showpass-projector.>")
            .await
            .unwrap();
        let mut any_inbox = ingest_client.subscribe("_INBOX.>").await.unwrap();
        let reader = connect("reader").await;
        let mut reader_inbox = reader.subscribe("_INBOX.>").await.unwrap();
        ingest_client.flush().await.unwrap();
        reader.flush().await.unwrap();
        let (status, _) = deliver_purchase(ingest, "auth-2", "AUTH-2").await;
        assert_eq!(status, 202);
        for (what, sub) in [
            ("ingest, the projector's inbox", &mut projector_inbox),
            ("ingest, _INBOX.>", &mut any_inbox),
            ("the reader, _INBOX.>", &mut reader_inbox),
        ] {
            let seen = tokio::time::timeout(Duration::from_secs(2), sub.next()).await;
            assert!(!matches!(seen, Ok(Some(_))), "{what} received {seen:?}");
        }

        // The api deletes nothing and forges no delivery record.
        let api_client = connect("api").await;
        let api_js = js_of(api_client.clone());
        let events = api_js.get_stream("SHOWPASS_EVENTS").await.unwrap();
        assert!(
            events.delete_message(1).await.is_err(),
            "the api's user cannot delete an event"
        );
        let mut records = reader.subscribe("showpass.deliveries.>").await.unwrap();
        reader.flush().await.unwrap();
        api_client
            .publish("showpass.deliveries.rejected.default", "forged".into())
            .await
            .unwrap();
        api_client.flush().await.unwrap();
        let forged = tokio::time::timeout(Duration::from_secs(1), records.next()).await;
        assert!(
            !matches!(forged, Ok(Some(_))),
            "the api's user cannot publish a delivery record"
        );

        // The reader keeps its own consumers, and cannot touch the projector's.
        let reader_js = js_of(reader.clone());
        let events = reader_js.get_stream("SHOWPASS_EVENTS").await.unwrap();
        assert!(
            events.delete_consumer("projector").await.is_err(),
            "the reader cannot delete the projector's consumer"
        );
        assert!(
            events
                .create_consumer(async_nats::jetstream::consumer::pull::Config {
                    durable_name: Some("projector".into()),
                    ..Default::default()
                })
                .await
                .is_err(),
            "the reader cannot redefine the projector's consumer"
        );
        assert!(
            events.consumer_info("projector").await.is_ok(),
            "the projector's consumer is still there"
        );
        let mine = events
            .create_consumer(async_nats::jetstream::consumer::pull::Config {
                durable_name: Some("reader-tool".into()),
                ..Default::default()
            })
            .await;
        assert!(mine.is_ok(), "a reader's own durable consumer: {mine:?}");
        assert!(events.delete_consumer("reader-tool").await.is_ok());

        // The api's database role reads and writes nothing; its password reached the server
        // only as a SCRAM verifier of it.
        let owner = sqlx::PgPool::connect(&owner_url).await.unwrap();
        let stored: String =
            sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
                .bind(&role)
                .fetch_one(&owner)
                .await
                .unwrap();
        let salt = stored.split(['$', ':']).nth(2).unwrap();
        use base64::Engine as _;
        let salt = base64::engine::general_purpose::STANDARD
            .decode(salt)
            .unwrap();
        assert_eq!(
            stored,
            showpass_store::scram_sha256_verifier("reader-pw", &salt).unwrap()
        );
        owner.close().await;
        let pool = sqlx::PgPool::connect(&reader_url).await.unwrap();
        assert!(
            sqlx::query("SELECT count(*) FROM orders")
                .execute(&pool)
                .await
                .is_ok()
        );
        for write in [
            "DELETE FROM orders",
            "UPDATE customers SET name = 'x'",
            "INSERT INTO checkpoints VALUES ('x', 1)",
            "DROP TABLE invoices",
        ] {
            assert!(sqlx::query(write).execute(&pool).await.is_err(), "{write}");
        }
        pool.close().await;
        let owner = sqlx::PgPool::connect(&database_url_of("postgres"))
            .await
            .unwrap();
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
            .execute(&owner)
            .await;
        let _ = sqlx::query(&format!("DROP ROLE IF EXISTS \"{role}\""))
            .execute(&owner)
            .await;
    });
}

/// Peak resident memory of a process, from /proc.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// While NATS is paused, 1 MiB bodies with a wrong signature arrive 256 at a time: ingest reads
/// each (it must, to know its `id`) within its body budget (64 MiB by default), refuses it,
/// and queues a record of its first bytes within the log's byte bound. Its peak memory stays
/// under 200 MB (measured: about 30 MiB at rest, 165 MiB peak; 103 MiB with a 16 MiB budget),
/// where reading them all at once would take 256 MiB and more; and once NATS is back, real
/// deliveries are accepted.
#[test]
fn ingest_memory_stays_bounded_when_large_bodies_arrive_while_nats_is_paused() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let nats = PrivateNats::start();
    let port = free_port();
    let env = vec![
        pair("NATS_URL", nats.url()),
        pair("NATS_SUBJECT_PREFIX", "rss"),
        pair("SHOWPASS_WEBHOOK_SECRET", SECRET),
        pair("INGEST_ADDR", format!("127.0.0.1:{port}")),
        pair("INGEST_REQUEST_TIMEOUT", "30s"),
        // Each request from an address of its own (behind a trusted proxy), so no source's
        // share stops them: the whole budget is taken.
        pair("INGEST_TRUSTED_PROXIES", "127.0.0.1"),
        pair("INGEST_ALLOWLIST", "0.0.0.0/0"),
        pair("RUST_LOG", "error"),
    ];
    let ingest = spawn("ingest", &env);
    wait_http(port, "/readyz");
    let pid = ingest.0.id();
    let baseline = peak_rss_kib(pid);
    let nats_pid = nats.pid().unwrap();
    let signal = |s: &str| {
        assert!(
            Command::new("kill")
                .args([s, &nats_pid.to_string()])
                .status()
                .unwrap()
                .success()
        )
    };
    signal("-STOP");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut big = br#"{"id":"x","pad":""#.to_vec();
    big.resize(1024 * 1024 - 4, b'a');
    big.extend_from_slice(br#""}"#);
    let big = bytes::Bytes::from(big);
    let answered = rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..256 {
            let big = big.clone();
            tasks.spawn(async move {
                let from = format!("198.51.100.{}", i % 250 + 1);
                let headers = [
                    (
                        "X-SHOWPASS-SIGNATURE",
                        "0000000000000000000000000000000000000000",
                    ),
                    ("x-forwarded-for", from.as_str()),
                ];
                let mut statuses = Vec::new();
                for _ in 0..2 {
                    if let Ok((s, _)) =
                        request(addr, "POST", "/webhooks/showpass", &headers, big.clone()).await
                    {
                        statuses.push(s.as_u16());
                    }
                }
                statuses
            });
        }
        let mut all = Vec::new();
        while let Some(r) = tasks.join_next().await {
            all.extend(r.unwrap());
        }
        all
    });
    let peak = peak_rss_kib(pid);
    signal("-CONT");
    assert!(answered.len() >= 500, "{} answers", answered.len());
    assert!(answered.iter().all(|s| *s == 401), "{answered:?}");
    assert!(
        peak < 200 * 1024,
        "peak RSS {} MiB (baseline {} MiB)",
        peak / 1024,
        baseline / 1024
    );
    println!(
        "ingest peak RSS {} MiB (baseline {} MiB) for 512 bodies of 1 MiB",
        peak / 1024,
        baseline / 1024
    );
    rt.block_on(async {
        let body = showpass_testkit::sample_body(
            showpass_payload::samples::SampleKind::Purchase,
            "after",
            "AFTER",
            "20",
        );
        let sig = showpass_payload::signature::sign(SECRET.as_bytes(), "AFTER");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, _) = post(
                addr,
                "/webhooks/showpass",
                &[("X-SHOWPASS-SIGNATURE", &sig)],
                body.clone(),
            )
            .await;
            if status.as_u16() == 202 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not accepting after NATS came back: {status}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

/// A password in NATS_URL or DATABASE_URL never reaches a log line, whatever goes wrong.
#[test]
fn credentials_in_urls_never_reach_the_logs() {
    let dead = free_port();
    let env = [
        // Unescaped delimiters in the password: the URL does not parse, and its error must
        // not show it.
        pair(
            "NATS_URL",
            format!("nats://ingest:hunter2/na?ts#x@127.0.0.1:{dead}"),
        ),
        pair(
            "DATABASE_URL",
            format!("postgres://u:hunter2-pg@127.0.0.1:{dead}/x"),
        ),
        pair("SHOWPASS_WEBHOOK_SECRET", SECRET),
        pair("INGEST_ADDR", format!("127.0.0.1:{}", free_port())),
        pair("API_ADDR", format!("127.0.0.1:{}", free_port())),
        pair("API_KEYS", "k"),
        pair("RUST_LOG", "debug"),
    ];
    for command in ["ingest", "projector", "api", "migrate"] {
        let mut child = Command::new(&*BIN)
            .arg(command)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(3));
        let _ = child.kill();
        let _ = child.wait();
        let out = output_of(&mut child);
        assert!(!out.is_empty(), "{command} said nothing");
        assert!(
            !out.contains("hunter2"),
            "{command} printed a password:\n{out}"
        );
    }
}

/// `migrate` makes the api's read-only role without its password in any log line, sqlx's
/// statement logging at its most verbose included (issue 12 review).
#[test]
fn the_read_only_roles_password_never_reaches_the_logs() {
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let db = format!("trust_pw_{tag}");
    let owner_url = database_url_of(&db);
    let role = format!("showpass_api_{tag}");
    // `hunter2/slash` percent-encoded, as a URL must carry it.
    let reader_url = owner_url.replacen("://postgres@", &format!("://{role}:hunter2%2Fslash@"), 1);
    let env = [
        pair("DATABASE_URL", owner_url.clone()),
        pair("API_DATABASE_URL", reader_url),
        // No NATS: migrate stops there, after the database and the role.
        pair("NATS_URL", format!("nats://127.0.0.1:{}", free_port())),
        pair("RUST_LOG", "trace"),
    ];
    let mut child = Command::new(&*BIN)
        .args(["migrate", "--wait", "3s"])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let out = output_of(&mut child);
    assert!(out.contains("read-only role ready"), "{out}");
    assert!(
        !out.contains("hunter2") && !out.contains("SCRAM-SHA-256$"),
        "migrate printed the password or its verifier:\n{out}"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let owner = sqlx::PgPool::connect(&database_url_of("postgres"))
            .await
            .unwrap();
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
            .execute(&owner)
            .await;
        let _ = sqlx::query(&format!("DROP ROLE IF EXISTS \"{role}\""))
            .execute(&owner)
            .await;
    });
}

/// What a finished child printed, its standard error then its standard output.
fn output_of(child: &mut std::process::Child) -> String {
    let mut out = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut out).unwrap();
    }
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut out).unwrap();
    }
    out
}

/// A sample purchase of organization 20, signed with the test's secret, POSTed to ingest.
async fn deliver_purchase(
    ingest: std::net::SocketAddr,
    uuid: &str,
    transaction: &str,
) -> (u16, serde_json::Value) {
    let body = showpass_testkit::sample_body(
        showpass_payload::samples::SampleKind::Purchase,
        uuid,
        transaction,
        "20",
    );
    let sig = showpass_payload::signature::sign(SECRET.as_bytes(), transaction);
    let (status, answer) = post(
        ingest,
        "/webhooks/showpass",
        &[("X-SHOWPASS-SIGNATURE", &sig)],
        body,
    )
    .await;
    (status.as_u16(), answer)
}
