//! `showpass all` runs ingest beside the projector and the api: a panic in a neighbour must
//! not silence it (issue 11). The same supervision as `showpass all`, with the real ingest.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::StatusCode;
use showpass_core::nats::NatsConfig;
use showpass_core::supervise::supervise;
use showpass_ingest::IngestConfig;
use showpass_payload::samples::SampleKind;
use showpass_testkit::*;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_keeps_answering_while_a_panicking_neighbour_is_restarted() {
    let mut nats = NatsConfig::local(unique_prefix());
    nats.url = nats_url().parse().unwrap();
    let config = IngestConfig::local(nats, SECRET);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut listener = Some(listener);
    let shutdown = CancellationToken::new();
    let restarts = AtomicU64::new(0);

    let ingest = supervise("ingest", shutdown.clone(), None, || {
        let (config, token, listener) = (config.clone(), shutdown.clone(), listener.take());
        async move { showpass_ingest::run(config, listener.expect("started once"), token).await }
    });
    let neighbour = supervise("projector", shutdown.clone(), Some(&restarts), || async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        panic!("a bug in the projector");
    });
    let traffic = async {
        while !matches!(get(addr, "/readyz").await, Ok((StatusCode::OK, _))) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut accepted = 0;
        for i in 0..40 {
            let body = sample_body(
                SampleKind::Purchase,
                &format!("u-{i}"),
                &format!("T{i}"),
                "20",
            );
            let sig = showpass_payload::signature::sign(SECRET.as_bytes(), &format!("T{i}"));
            let (status, _) = post(
                addr,
                "/webhooks/showpass",
                &[("X-SHOWPASS-SIGNATURE", &sig)],
                body,
            )
            .await;
            accepted += usize::from(status == StatusCode::ACCEPTED);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        shutdown.cancel();
        accepted
    };
    let (ingest, neighbour, accepted) = tokio::join!(ingest, neighbour, traffic);
    ingest.unwrap();
    neighbour.unwrap();
    assert_eq!(
        accepted, 40,
        "every delivery accepted while the neighbour kept panicking"
    );
    assert!(
        restarts.load(Ordering::Relaxed) >= 2,
        "the neighbour was restarted"
    );

    let client = async_nats::connect(config.nats.url.expose()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    for s in config.nats.all_streams() {
        let _ = js.delete_stream(s).await;
    }
}
