//! End to end: the `showpass` binary as a user runs it, against the real NATS and PostgreSQL.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

#[path = "common/bin.rs"]
mod bin;
use bin::{BIN, Within, free_port};
#[path = "common/scratch.rs"]
mod scratch;
use scratch::{Scratch, cleanup, runtime};

fn showpass(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(&*BIN);
    cmd.args(args)
        .env_remove("SHOWPASS_WEBHOOK_SECRET")
        .env_remove("SHOWPASS_ENDPOINTS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output_within(Duration::from_secs(120))
}

/// Starts `showpass <command>` with ingest (and the api, if it runs one) on free ports and
/// waits until ingest's `/readyz` answers 200, and the api's too when it is given keys.
/// Answers the ingest and api ports.
fn spawn_ready(command: &str, env: &[(&str, &str)]) -> (std::process::Child, u16, u16) {
    let (port, api_port) = (free_port(), free_port());
    let mut child = Command::new(&*BIN)
        .arg(command)
        .env("INGEST_ADDR", format!("127.0.0.1:{port}"))
        .env("API_ADDR", format!("127.0.0.1:{api_port}"))
        .envs(env.iter().copied())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ready_ports = vec![port];
    if env.iter().any(|(k, _)| *k == "API_KEYS") {
        ready_ports.push(api_port);
    }
    for ready_port in ready_ports {
        let readyz = format!("http://127.0.0.1:{ready_port}/readyz");
        let ready = (0..400).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            showpass(&["healthcheck", "--url", &readyz], &[])
                .status
                .success()
        });
        if !ready {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("showpass {command}: {readyz} never answered 200");
        }
    }
    (child, port, api_port)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn ingest_refuses_to_start_without_a_secret_and_names_the_variable() {
    let o = showpass(&["ingest"], &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("SHOWPASS_WEBHOOK_SECRET"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_configuration_is_refused_naming_the_variable_and_never_the_secret() {
    let secret = ("SHOWPASS_WEBHOOK_SECRET", "very-secret-value");
    for (var, value) in [
        ("NATS_SUBJECT_PREFIX", "a.b"),
        ("INGEST_ALLOWLIST", "10.0.0.0/99"),
        ("NATS_DUPLICATE_WINDOW", "forever"),
        ("SHOWPASS_ENDPOINTS", "box office=very-secret-value"),
        ("INGEST_ADDR", "not-an-address"),
    ] {
        let o = showpass(&["ingest"], &[secret, (var, value)]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{var}");
        assert!(
            err.contains(var)
                || err.contains(&var.to_lowercase().replace('_', "-"))
                || err.contains("endpoint name"),
            "{var}: {err}"
        );
        assert!(
            !err.contains("very-secret-value"),
            "{var} leaked the secret: {err}"
        );
    }
}

#[test]
fn send_dry_run_prints_a_signed_curl_command() {
    let o = showpass(
        &[
            "send",
            "--sample",
            "refund",
            "--transaction-id",
            "txn-42",
            "--dry-run",
        ],
        &[("SHOWPASS_WEBHOOK_SECRET", "k")],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let sig = showpass_payload::signature::sign(b"k", "txn-42");
    assert!(
        out.contains(&format!("X-SHOWPASS-SIGNATURE: {sig}")),
        "{out}"
    );
    assert!(stderr(&o).contains("invoice.refund"));
}

#[test]
fn send_refuses_unknown_samples_and_missing_secrets() {
    let o = showpass(
        &["send", "--sample", "bogus"],
        &[("SHOWPASS_WEBHOOK_SECRET", "k")],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("unknown sample"), "{}", stderr(&o));
    let o = showpass(&["send", "--dry-run"], &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("SHOWPASS_WEBHOOK_SECRET"));
}

/// `showpass send` of each built-in sample to a running `showpass ingest`: all accepted, and a
/// resend with the same uuid is a duplicate.
#[test]
fn every_sample_sent_to_a_running_ingest_is_accepted() {
    let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let nats = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let env = [
        ("SHOWPASS_WEBHOOK_SECRET", "cli-secret"),
        ("NATS_SUBJECT_PREFIX", prefix.as_str()),
        ("NATS_URL", nats.as_str()),
    ];
    let (mut ingest, port, _) = spawn_ready("ingest", &env);
    let url = format!("http://127.0.0.1:{port}/webhooks/showpass");
    let result = std::panic::catch_unwind(|| {
        for sample in [
            "purchase",
            "refund",
            "void",
            "transfer",
            "transferred",
            "test",
        ] {
            let o = showpass(
                &[
                    "send",
                    "--url",
                    &url,
                    "--sample",
                    sample,
                    "--transaction-id",
                    "txn-cli",
                ],
                &env,
            );
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(o.status.success(), "{sample}: {out} {}", stderr(&o));
            assert!(out.contains("HTTP 202"), "{sample}: {out}");
        }
        let again = ["send", "--url", &url, "--uuid", "same-uuid"];
        assert!(showpass(&again, &env).status.success());
        let o = showpass(&again, &env);
        assert!(String::from_utf8_lossy(&o.stdout).contains("\"status\":\"duplicate\""));
        let o = showpass(
            &["send", "--url", &url],
            &[("SHOWPASS_WEBHOOK_SECRET", "wrong")],
        );
        assert!(!o.status.success(), "a 401 is a failed send");
        assert!(String::from_utf8_lossy(&o.stdout).contains("HTTP 401"));
    });
    ingest.kill().unwrap();
    ingest.wait().unwrap();
    cleanup(&nats, &prefix);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// A plain HTTP/1.1 GET, answering the status and body; a server that cannot be reached, or
/// answers nothing within 10 s, fails the test.
fn http_get(port: u16, path: &str, key: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let limit = Some(Duration::from_secs(10));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    tcp.set_read_timeout(limit).unwrap();
    tcp.set_write_timeout(limit).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn the_api_refuses_to_start_without_a_key_unless_told_to_run_insecure() {
    let o = showpass(&["api"], &[("API_ADDR", "127.0.0.1:0")]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("API_KEYS"), "{}", stderr(&o));
}

/// `showpass all` creates its database, and a delivery sent to it shows up in the api.
#[test]
fn all_runs_ingest_and_projector_into_a_database_it_creates() {
    let scratch = Scratch::new("all");
    let env = [
        ("SHOWPASS_WEBHOOK_SECRET", "cli-secret"),
        ("NATS_SUBJECT_PREFIX", scratch.prefix.as_str()),
        ("NATS_URL", scratch.nats.as_str()),
        ("DATABASE_URL", scratch.db_url.as_str()),
        ("API_KEYS", "cli-api-key"),
    ];
    let (mut all, port, api_port) = spawn_ready("all", &env);
    let result = std::panic::catch_unwind(|| {
        let url = format!("http://127.0.0.1:{port}/webhooks/showpass");
        let o = showpass(
            &["send", "--url", &url, "--transaction-id", "txn-all"],
            &env,
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let order = (0..400).find_map(|_| {
            std::thread::sleep(Duration::from_millis(50));
            let (status, body) = http_get(api_port, "/v1/orders/txn-all", "cli-api-key");
            (status == 200).then_some(body)
        });
        let order: serde_json::Value =
            serde_json::from_str(&order.expect("the order appears")).unwrap();
        assert_eq!(order["status"], "purchased");
        assert_eq!(http_get(api_port, "/v1/orders/txn-all", "wrong").0, 401);
    });
    all.kill().unwrap();
    all.wait().unwrap();
    scratch.remove(&runtime());
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// Without `API_KEYS`, `showpass all` still receives webhooks (the api alone stays down).
#[test]
fn all_without_an_api_key_still_runs_ingest_and_the_projector() {
    let scratch = Scratch::new("nokey");
    let env = [
        ("SHOWPASS_WEBHOOK_SECRET", "cli-secret"),
        ("NATS_SUBJECT_PREFIX", scratch.prefix.as_str()),
        ("NATS_URL", scratch.nats.as_str()),
        ("DATABASE_URL", scratch.db_url.as_str()),
    ];
    let (mut all, port, _) = spawn_ready("all", &env);
    let url = format!("http://127.0.0.1:{port}/webhooks/showpass");
    let sent = showpass(&["send", "--url", &url], &env);
    all.kill().unwrap();
    all.wait().unwrap();
    scratch.remove(&runtime());
    assert!(sent.status.success(), "{}", stderr(&sent));
}

/// What `showpass ingest` writes to a pipe in its first seconds, with NATS away (so it logs).
fn ingest_log(env: &[(&str, &str)]) -> String {
    use std::io::Read as _;
    let mut child = Command::new(&*BIN)
        .arg("ingest")
        .env_remove("SHOWPASS_ENDPOINTS")
        .env("SHOWPASS_WEBHOOK_SECRET", "log-test-secret")
        .env("INGEST_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("NATS_URL", format!("nats://127.0.0.1:{}", free_port()))
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let _ = child.kill();
    let _ = child.wait();
    let mut out = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    out
}

/// Issue 13: a log that is not a terminal carries no colour codes, and `LOG_FORMAT=json` makes
/// every line a JSON object.
#[test]
fn logs_are_plain_text_off_a_terminal_and_json_when_asked() {
    let plain = ingest_log(&[]);
    assert!(!plain.trim().is_empty(), "ingest logged nothing");
    assert!(
        !plain.contains('\u{1b}'),
        "escape codes in a piped log:\n{plain}"
    );
    let json = ingest_log(&[("LOG_FORMAT", "json")]);
    let lines: Vec<&str> = json.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "ingest logged nothing");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
}
