//! What every api test shares: the platform on the test's own streams and database, keys,
//! and requests.

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
pub const KEY: &str = "test-api-key-4b1d";
pub const READ_KEY: &str = "test-read-key-77c0";

/// ingest, projector and api on the test's own streams and database.
pub struct Platform {
    pub ingest: TestIngest,
    pub projector: Option<TestProjector>,
    pub pool: PgPool,
    pub api: SocketAddr,
    pub shutdown: CancellationToken,
}

impl Platform {
    pub async fn start(pool: PgPool) -> Self {
        let ingest = TestIngest::start().await;
        let projector = TestProjector::start(&ingest, &pool, |_| {});
        let db = pool.connect_options().get_database().unwrap().to_owned();
        let mut config = ApiConfig::local(
            database_of(&db),
            Some(ingest.config.nats.clone()),
            &format!("{KEY}:admin"),
        );
        config.keys.extend(ApiConfig::parse_keys(READ_KEY));
        config.health_refresh = Duration::from_millis(200);
        let listener = showpass_core::http::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
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

    pub async fn deliver(&self, kind: SampleKind, uuid: &str, txn: &str, org: &str) {
        self.deliver_body(sample_body(kind, uuid, txn, org)).await;
    }

    pub async fn deliver_body(&self, body: Vec<u8>) {
        let (status, answer) = self.ingest.deliver(&body).await;
        assert!(status.is_success(), "{answer}");
    }

    /// Waits until everything delivered so far is visible.
    pub async fn settle(&self) {
        caught_up(&self.ingest, &self.pool).await;
    }

    pub async fn call(&self, method: &str, path: &str, key: Option<&str>) -> (u16, Value, String) {
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
    pub async fn get_ok(&self, path: &str) -> Value {
        let (status, body, _) = self.call("GET", path, Some(KEY)).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    /// GET with the right key; the answer must be a problem with `status`.
    pub async fn problem(&self, path: &str, status: u16) -> Value {
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
    pub async fn all_pages(&self, path: &str) -> (Vec<Value>, usize) {
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

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(p) = self.projector.take() {
            p.stop().await;
        }
        self.ingest.stop().await;
    }
}

pub async fn raw(
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
pub fn purchase_by(uuid: &str, txn: &str, org: &str, name: &str, email: &str) -> Vec<u8> {
    edit(&sample_body(Purchase, uuid, txn, org), |v| {
        v["data"]["customer_name"] = json!(name);
        v["data"]["customer_email"] = json!(email);
    })
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
