//! No secret ever reaches a log line, at any level, whatever happens to a delivery.

use std::io::Write;
use std::sync::{Arc, Mutex};

use showpass_ingest::Endpoints;
use showpass_testkit::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_any_log_line() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .init();

    let rotated = ["rotating-old-7d1e", "rotating-new-42aa"];
    let ingest = TestIngest::start_with(|c| {
        c.endpoints = Endpoints::parse(
            Some(SECRET),
            Some(&format!("venue={}|{}", rotated[0], rotated[1])),
        )
        .unwrap();
        tracing::info!(config = ?c, "configuration under test");
    })
    .await;
    ingest.deliver(DOC_2026).await;
    ingest.deliver(DOC_2026).await;
    ingest
        .deliver_to("/webhooks/showpass/venue", DOC_2023, rotated[1])
        .await;
    ingest
        .deliver_to("/webhooks/showpass/venue", DOC_2023, "wrong")
        .await;
    ingest
        .deliver_to("/webhooks/showpass/nope", DOC_2023, SECRET)
        .await;
    post(ingest.addr, "/webhooks/showpass", &[], b"{bad".to_vec()).await;
    drop(ingest);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("delivery rejected"),
        "the capture works: {logs}"
    );
    assert!(
        logs.contains("[redacted]"),
        "the config was logged, redacted"
    );
    for secret in [SECRET, rotated[0], rotated[1]] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}
