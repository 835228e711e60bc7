//! Test harness: real services on 127.0.0.1 against the real NATS (and PostgreSQL), each test
//! with its own subject prefix and streams, removed when the test ends.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream::{self, stream::Stream};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use showpass_core::nats::NatsConfig;
use showpass_ingest::IngestConfig;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "test-secret-9f1c2e";
pub use showpass_payload::samples::{DOC_2023, DOC_2026};
pub mod browser;

pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A unique subject prefix, so tests run in parallel without meeting.
pub fn unique_prefix() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A running ingest.
pub struct TestIngest {
    pub addr: SocketAddr,
    pub config: IngestConfig,
    pub js: jetstream::Context,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestIngest {
    /// Starts ingest with the default test configuration.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts ingest after `tweak` adjusts its configuration.
    pub async fn start_with(tweak: impl FnOnce(&mut IngestConfig)) -> Self {
        let mut nats = NatsConfig::local(unique_prefix());
        nats.url = nats_url().parse().unwrap();
        let mut config = IngestConfig::local(nats, SECRET);
        config.publish_timeout = Duration::from_secs(2);
        tweak(&mut config);
        Self::start_config(config).await
    }

    pub async fn start_config(config: IngestConfig) -> Self {
        let listener = showpass_core::http::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(showpass_ingest::run(
            config.clone(),
            listener,
            shutdown.clone(),
        ));
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(config.nats.url.expose())
            .await
            .unwrap();
        let js = jetstream::new(client);
        let ingest = Self {
            addr,
            config,
            js,
            shutdown,
            task: Some(task),
        };
        ingest.wait_until_ready().await;
        ingest
    }

    async fn wait_until_ready(&self) {
        for _ in 0..200 {
            if let Ok((StatusCode::OK, _)) = get(self.addr, "/readyz").await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("ingest did not become ready");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs `body` signed for its `id` with `secret` to the default endpoint.
    pub async fn deliver(&self, body: &[u8]) -> (StatusCode, serde_json::Value) {
        self.deliver_to("/webhooks/showpass", body, SECRET).await
    }

    pub async fn deliver_to(
        &self,
        path: &str,
        body: &[u8],
        secret: &str,
    ) -> (StatusCode, serde_json::Value) {
        let id = showpass_payload::Envelope::parse(body)
            .unwrap()
            .id
            .into_owned();
        let sig = showpass_payload::signature::sign(secret.as_bytes(), &id);
        post(
            self.addr,
            path,
            &[("X-SHOWPASS-SIGNATURE", sig.as_str())],
            body.to_vec(),
        )
        .await
    }

    pub async fn events(&self) -> Stream {
        self.js
            .get_stream(self.config.nats.events_stream())
            .await
            .unwrap()
    }

    pub async fn deliveries(&self) -> Stream {
        self.js
            .get_stream(self.config.nats.deliveries_stream())
            .await
            .unwrap()
    }

    /// The token that stops ingest gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops ingest gracefully and waits until it has stopped. The streams stay until drop.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestIngest {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let url = self.config.nats.url.expose().to_owned();
        let streams = self.config.nats.all_streams();
        clean_up_blocking(async move {
            delete_streams(&url, streams).await;
        });
    }
}

/// Runs a clean-up to its end from a `Drop`: Drop cannot await, and the test's runtime may be
/// the very thread blocked there, so it runs on a thread with a runtime of its own (a failing
/// test cleans up too).
pub fn clean_up_blocking(work: impl std::future::Future<Output = ()> + Send + 'static) {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(work);
    })
    .join()
    .ok();
}

/// Deletes these streams, if NATS at `url` answers.
pub async fn delete_streams(url: &str, streams: impl IntoIterator<Item = String>) {
    if let Ok(client) = async_nats::connect(url).await {
        let js = jetstream::new(client);
        for s in streams {
            let _ = js.delete_stream(s).await;
        }
    }
}

/// Number of messages a stream holds (read fresh).
pub async fn count(stream: &mut Stream) -> u64 {
    stream.info().await.unwrap().state.messages
}

pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(StatusCode, String)> {
    let (status, body) = request(addr, "GET", path, &[], Bytes::new()).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

pub async fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value) {
    let (status, body) = request(addr, "POST", path, headers, Bytes::from(body))
        .await
        .unwrap();
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("answer is not JSON: {}", String::from_utf8_lossy(&body)));
    (status, json)
}

pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let (status, _, body) = request_full(addr, method, path, headers, body).await?;
    Ok((status, body))
}

/// A POST whose answer may come before the body is all sent (a 413 for a body over the
/// limit, answered from its Content-Length): sent once over a raw connection, the body
/// written beside the reading, so a write the server stops reading cannot hide its answer
/// (hyper's client reports the broken pipe instead). The answer must be JSON with a
/// Content-Length; the connection is closed after it.
pub async fn post_early_answer(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let writer = tokio::spawn(async move {
        // Errors are the server having answered already: the answer says so.
        let _ = write.write_all(head.as_bytes()).await;
        let _ = write.write_all(&body).await;
        write
    });
    let mut answer = Vec::new();
    // A server closing with the body unread resets the connection after its answer: what was
    // read before the reset is kept.
    let read = tokio::time::timeout(Duration::from_secs(30), read.read_to_end(&mut answer))
        .await
        .expect("an answer within 30 s");
    if let Err(e) = read {
        assert!(!answer.is_empty(), "reading the answer: {e}");
    }
    drop(writer.await);
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&answer)));
    let head = String::from_utf8_lossy(&answer[..end]).into_owned();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no Content-Length in {head:?}"));
    let body = &answer[end + 4..];
    let body = &body[..length.min(body.len())];
    let json = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("answer is not JSON: {}", String::from_utf8_lossy(body)));
    (StatusCode::from_u16(status).unwrap(), json)
}

/// A request, answered with its status, headers and body.
pub async fn request_full(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> anyhow::Result<(StatusCode, hyper::HeaderMap, Bytes)> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        req = req.header("content-type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender.send_request(req.body(Full::new(body))?).await?;
    let status = resp.status();
    let headers = resp.headers().clone();
    Ok((
        status,
        headers,
        resp.into_body().collect().await?.to_bytes(),
    ))
}

/// A nats-server of the test's own (temp store, free port) that it may kill and restart.
pub struct PrivateNats {
    pub port: u16,
    store: tempfile::TempDir,
    child: Option<Child>,
    /// A configuration file, and the environment it reads.
    config: Option<(std::path::PathBuf, Vec<(String, String)>)>,
}

impl PrivateNats {
    pub fn start() -> Self {
        Self::start_with_config(None)
    }

    /// Starts one with a configuration file (`-c`) and the environment it reads (`$VAR`s).
    pub fn start_with_config(config: Option<(std::path::PathBuf, Vec<(String, String)>)>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut n = Self {
            port,
            store: tempfile::tempdir().unwrap(),
            child: None,
            config,
        };
        n.restart();
        n
    }

    /// The server's process id, to signal it (SIGSTOP pauses it).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        let mut cmd = Command::new(nats_server_binary());
        if let Some((file, env)) = &self.config {
            cmd.arg("-c")
                .arg(file)
                .envs(env.iter().map(|(k, v)| (k, v)));
        }
        let child = cmd
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nats-server");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("private nats-server did not start");
    }

    /// SIGKILL: no goodbye to clients.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The nats-server to run: `NATS_SERVER_BIN`, else Debian's or another usual place.
pub fn nats_server_binary() -> String {
    std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| {
        [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "/usr/local/bin/nats-server",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("nats-server")
        .to_owned()
    })
}

/// A delivery body of the given sample kind.
pub fn sample_body(
    kind: showpass_payload::samples::SampleKind,
    uuid: &str,
    transaction_id: &str,
    org: &str,
) -> Vec<u8> {
    let ids = showpass_payload::samples::SampleIds {
        webhook_event_uuid: uuid,
        transaction_id,
        organization_id: org,
    };
    serde_json::to_vec(&showpass_payload::samples::sample(kind, &ids)).unwrap()
}

/// Edits a JSON body.
pub fn edit(body: &[u8], f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(body).unwrap();
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

/// The URL of the database a `#[sqlx::test]` pool points at, for services that take a URL.
pub fn database_url_of(database: &str) -> String {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/showpass".into());
    match base.rfind('/') {
        Some(i) if base[..i].contains("://") && base[..i].matches('/').count() >= 2 => {
            let query = base[i..].find('?').map(|q| &base[i + q..]).unwrap_or("");
            format!("{}/{database}{query}", &base[..i])
        }
        _ => format!("{base}/{database}"),
    }
}

/// The database a `#[sqlx::test]` pool points at, typed.
pub fn database_of(database: &str) -> showpass_store::DatabaseUrl {
    showpass_store::DatabaseUrl::parse(&database_url_of(database)).expect("a PostgreSQL URL")
}

/// A projector running against the test's streams and database.
pub struct TestProjector {
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestProjector {
    pub fn start(
        ingest: &TestIngest,
        pool: &sqlx::PgPool,
        tweak: impl FnOnce(&mut showpass_projector::ProjectorConfig),
    ) -> Self {
        let db = pool.connect_options().get_database().unwrap().to_owned();
        let mut config = showpass_projector::ProjectorConfig::local(
            ingest.config.nats.clone(),
            database_of(&db),
        );
        tweak(&mut config);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(showpass_projector::run(config, shutdown.clone()));
        Self { shutdown, task }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// Waits until the projector has caught up with the events stream (and the deliveries one).
pub async fn caught_up(ingest: &TestIngest, pool: &sqlx::PgPool) {
    for _ in 0..400 {
        let mut events = ingest.events().await;
        let mut deliveries = ingest.deliveries().await;
        let e = events.info().await.unwrap().state.last_sequence as i64;
        let d = deliveries.info().await.unwrap().state.last_sequence as i64;
        let rows = sqlx::query("SELECT stream, last_seq FROM checkpoints")
            .fetch_all(pool)
            .await
            .unwrap();
        let at = |s: &str| {
            rows.iter()
                .find(|r| sqlx::Row::get::<String, _>(*r, 0) == s)
                .map_or(0, |r| sqlx::Row::get::<i64, _>(r, 1))
        };
        if at(&ingest.config.nats.events_stream()) >= e
            && at(&ingest.config.nats.deliveries_stream()) >= d
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the projector did not catch up");
}

/// Every read-model table, each row as JSON, in key order: what the API can answer from.
pub async fn snapshot(pool: &sqlx::PgPool) -> Vec<(String, Vec<serde_json::Value>)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' AND tablename <> '_sqlx_migrations' ORDER BY 1",
    )
    .fetch_all(pool).await.unwrap();
    let mut out = Vec::new();
    for t in tables {
        let rows: Vec<serde_json::Value> = sqlx::query_scalar(&format!(
            "SELECT to_jsonb(x) FROM {t} x ORDER BY to_jsonb(x)::text"
        ))
        .fetch_all(pool)
        .await
        .unwrap();
        out.push((t, rows));
    }
    out
}
