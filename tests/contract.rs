//! The api's OpenAPI document as an integrator meets it: valid OpenAPI 3.1 by a standard
//! validator, and true of the running server by schemathesis with all its checks, against the
//! real `showpass all` holding simulated traffic.
//!
//! The tools are pinned and installed on first use into `target/tools/python` (a virtual
//! environment) and `target/tools/node`, so `cargo test --workspace` needs nothing installed
//! beforehand but Python 3 with `venv`, Node.js with `npm`, and a way to PyPI and npm.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

#[path = "common/bin.rs"]
mod bin;
use bin::{BIN, Within, free_port};

/// The pinned tools, each `package==version`.
const TOOLS: &[&str] = &[
    "schemathesis==4.32.5",
    "openapi-spec-validator==0.7.1",
    "openapi-python-client==0.29.1",
    "mypy==2.4.1",
];

const SECRET: &str = "contract-secret-5e1d";
const ADMIN_KEY: &str = "contract-admin-key-90ab";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_owned()
}

/// Where the pinned tools go: `target/tools`.
fn tools_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
        .join("tools")
}

/// The virtual environment holding the pinned tools, made (once per test binary) if missing
/// or holding other versions.
static TOOLS_ENV: LazyLock<PathBuf> = LazyLock::new(|| {
    let venv = tools_dir().join("python");
    let stamp = venv.join("showpass-tools.txt");
    let wanted = TOOLS.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return venv;
    }
    let run = |cmd: &mut Command, what: &str| {
        let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
        "python3 -m venv",
    );
    run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(TOOLS),
        "pip install",
    );
    std::fs::write(&stamp, wanted).unwrap();
    venv
});

fn succeeds(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 16: the document is valid OpenAPI 3.1 (openapi-spec-validator), and every example in
/// it is valid against its own schema.
#[test]
fn the_openapi_document_is_valid_openapi_3_1_with_valid_examples() {
    let doc = workspace().join("docs/openapi.json");
    succeeds(Command::new(TOOLS_ENV.join("bin/openapi-spec-validator")).arg(&doc));
    succeeds(
        Command::new(TOOLS_ENV.join("bin/python"))
            .arg(workspace().join("tests/schemathesis/examples.py"))
            .arg(&doc),
    );
}

/// `showpass all` on its own database, streams and ports, stopped and cleaned up on drop.
struct Platform {
    child: Child,
    ingest: u16,
    api: u16,
    database: String,
    prefix: String,
}

impl Platform {
    fn start() -> Self {
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..10];
        let (ingest, api) = (free_port(), free_port());
        let database = format!("contract_{tag}");
        let prefix = format!("contract{tag}");
        // Only what is set here: nothing of the environment's (API_MAX_LIMIT, METRICS_ADDR...)
        // may make the server other than the document describes.
        let child = Command::new(&*BIN)
            .arg("all")
            .env_clear()
            .env("DATABASE_URL", showpass_testkit::database_url_of(&database))
            .env("NATS_URL", showpass_testkit::nats_url())
            .env("NATS_SUBJECT_PREFIX", &prefix)
            .env("SHOWPASS_WEBHOOK_SECRET", SECRET)
            .env_remove("SHOWPASS_ENDPOINTS")
            .env("API_KEYS", format!("{ADMIN_KEY}:admin"))
            .env("INGEST_ADDR", format!("127.0.0.1:{ingest}"))
            .env("API_ADDR", format!("127.0.0.1:{api}"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let platform = Self {
            child,
            ingest,
            api,
            database,
            prefix,
        };
        platform.wait_ready();
        platform
    }

    fn wait_ready(&self) {
        for port in [self.ingest, self.api] {
            let url = format!("http://127.0.0.1:{port}/readyz");
            let ready = (0..300).any(|_| {
                std::thread::sleep(Duration::from_millis(100));
                Command::new(&*BIN)
                    .args(["healthcheck", "--url", &url])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            });
            assert!(ready, "{url} never answered 200");
        }
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (database, prefix) = (self.database.clone(), self.prefix.clone());
        showpass_testkit::clean_up_blocking(async move {
            let streams = showpass_core::nats::NatsConfig::local(prefix).all_streams();
            showpass_testkit::delete_streams(&showpass_testkit::nats_url(), streams).await;
            if let Ok(pool) =
                sqlx::PgPool::connect(&showpass_testkit::database_url_of("postgres")).await
            {
                let _ = sqlx::query(&format!(
                    "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
                ))
                .execute(&pool)
                .await;
            }
        });
    }
}

fn seed() -> Vec<String> {
    match std::env::var("SHOWPASS_FUZZ_SEED").as_deref() {
        Ok("random") => Vec::new(),
        Ok(n) => vec!["--seed".into(), n.to_owned()],
        Err(_) => vec!["--seed".into(), "16".into()],
    }
}

/// Issue 16: against the running platform with simulated traffic in it, schemathesis (every
/// check, every operation, replay included with an admin key) finds no failure; then a client
/// generated from the document (openapi-python-client) type-checks (mypy --strict) and lists
/// customers, pages, and reads a sales summary.
#[test]
fn the_running_api_is_true_to_its_document() {
    let platform = Platform::start();
    let sent = Command::new(&*BIN)
        .args(["simulate", "--count", "300", "--rate", "0", "--seed", "16"])
        .args([
            "--url",
            &format!("http://127.0.0.1:{}/webhooks/showpass", platform.ingest),
        ])
        .args(["--secret", SECRET])
        .output_within(Duration::from_secs(300));
    assert!(
        sent.status.success(),
        "simulate failed: {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    // Projected: the delivery log holds the traffic.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", platform.api).parse().unwrap();
    let auth = format!("Bearer {ADMIN_KEY}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = rt.block_on(showpass_testkit::request(
            addr,
            "GET",
            "/v1/logs?limit=1",
            &[("authorization", auth.as_str())],
            bytes::Bytes::new(),
        ));
        if page.is_ok_and(|(_, body)| body.starts_with(b"{\"items\":[{")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the traffic never reached the delivery log"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let api = format!("http://127.0.0.1:{}", platform.api);
    let out = Command::new(TOOLS_ENV.join("bin/schemathesis"))
        .args(["run", &format!("{api}/openapi.json")])
        .args(["--checks", "all", "--workers", "2", "--max-examples", "150"])
        // A fixed seed, so CI is repeatable; SHOWPASS_FUZZ_SEED=random (or a number) explores.
        .args(seed())
        .args(["--max-failures", "20"])
        .args(["-H", &format!("Authorization: Bearer {ADMIN_KEY}")])
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("PYTHONPATH", workspace().join("tests/schemathesis"))
        .env("SHOWPASS_API_URL", &api)
        .env("SHOWPASS_API_KEY", ADMIN_KEY)
        .env("NO_COLOR", "1")
        // Its caches and reports go there, not into the source tree.
        .current_dir(tools_dir())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    // The summary, in the test's output (`--nocapture`) and in CI's log on failure.
    println!(
        "{}",
        report
            .lines()
            .rev()
            .take(14)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    generated_client_works(&api);
}

/// Generates the Python client the way docs/api.md says, type-checks it with the script that
/// uses it, and runs the script against `api`.
fn generated_client_works(api: &str) {
    let dir = tempfile::tempdir().unwrap();
    succeeds(
        Command::new(TOOLS_ENV.join("bin/openapi-python-client"))
            .args([
                "generate",
                "--meta",
                "none",
                "--output-path",
                "showpass_client",
            ])
            .arg("--path")
            .arg(workspace().join("docs/openapi.json"))
            .arg("--config")
            .arg(workspace().join("tests/client/config.yaml"))
            .current_dir(dir.path()),
    );
    let script = dir.path().join("use_client.py");
    std::fs::copy(workspace().join("tests/client/use_client.py"), &script).unwrap();
    succeeds(
        Command::new(TOOLS_ENV.join("bin/mypy"))
            .args(["--strict", "--cache-dir"])
            .arg(dir.path().join(".mypy_cache"))
            .args(["use_client.py", "showpass_client"])
            .current_dir(dir.path()),
    );
    succeeds(
        Command::new(TOOLS_ENV.join("bin/python"))
            .arg(&script)
            .env("SHOWPASS_API_URL", api)
            .env("SHOWPASS_API_KEY", ADMIN_KEY)
            .current_dir(dir.path()),
    );
}

/// The AsyncAPI parser, pinned, installed on first use into `target/tools/node` with the
/// validation script beside it.
static NODE_TOOLS: LazyLock<PathBuf> = LazyLock::new(|| {
    const PARSER: &str = "@asyncapi/parser@3.6.6";
    let dir = tools_dir().join("node");
    let stamp = dir.join("showpass-tools.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(PARSER) {
        std::fs::create_dir_all(&dir).unwrap();
        succeeds(
            Command::new("npm")
                .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir)
                .arg(PARSER),
        );
        std::fs::write(&stamp, PARSER).unwrap();
    }
    // Beside its node_modules, so the import resolves.
    std::fs::copy(
        workspace().join("tests/asyncapi/validate.mjs"),
        dir.join("validate.mjs"),
    )
    .unwrap();
    dir
});

/// Issue 16: docs/asyncapi.yaml is valid by the AsyncAPI parser, and what ingest publishes (an
/// event as subscribers see it, a duplicate's record, a rejection's record) is what it says:
/// subjects, every header, and the payload's schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_asyncapi_document_is_valid_and_true_of_what_ingest_publishes() {
    use futures::StreamExt as _;
    let doc = workspace().join("docs/asyncapi.yaml");
    let node = NODE_TOOLS.clone();
    succeeds(
        Command::new("node")
            .arg(node.join("validate.mjs"))
            .arg(&doc)
            .current_dir(&node),
    );

    let ingest = showpass_testkit::TestIngest::start().await;
    let prefix = ingest.config.nats.prefix.clone();
    let client = async_nats::connect(showpass_testkit::nats_url())
        .await
        .unwrap();
    let mut events = client
        .subscribe(format!("{prefix}.events.>"))
        .await
        .unwrap();
    let mut records = client
        .subscribe(format!("{prefix}.deliveries.>"))
        .await
        .unwrap();
    client.flush().await.unwrap();
    let body = showpass_testkit::sample_body(
        showpass_payload::samples::SampleKind::Purchase,
        "a5c1e0d2-7f3b-4c9a-8e61-2d4b6f8a0c13",
        "txn-asyncapi-1",
        "20",
    );
    assert_eq!(ingest.deliver(&body).await.0, 202);
    assert_eq!(ingest.deliver(&body).await.0, 200);
    assert_eq!(
        ingest
            .deliver_to("/webhooks/showpass", &body, "not-the-secret")
            .await
            .0,
        401
    );
    let mut captured = Vec::new();
    for (subscription, n) in [(&mut events, 1), (&mut records, 2)] {
        for _ in 0..n {
            let m = tokio::time::timeout(Duration::from_secs(10), subscription.next())
                .await
                .expect("a message in time")
                .expect("the subscription is open");
            captured.push(m);
        }
    }
    let messages: Vec<serde_json::Value> = captured
        .iter()
        .map(|m| {
            let headers: serde_json::Map<String, serde_json::Value> = m
                .headers
                .iter()
                .flat_map(|hs| hs.iter())
                .map(|(k, v)| (k.to_string(), v[0].as_str().into()))
                .collect();
            serde_json::json!({
                "subject": m.subject.as_str(),
                "headers": headers,
                "payload": String::from_utf8_lossy(&m.payload),
            })
        })
        .collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(&messages).unwrap()).unwrap();
    succeeds(
        Command::new(TOOLS_ENV.join("bin/python"))
            .arg(workspace().join("tests/asyncapi/check_messages.py"))
            .arg(&doc)
            .arg(&prefix)
            .arg(file.path()),
    );
}
