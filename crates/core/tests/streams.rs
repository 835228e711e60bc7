//! Stream provisioning against the real NATS.

use std::time::Duration;

use showpass_core::nats::{self, NatsConfig};

fn config() -> NatsConfig {
    let mut c = NatsConfig::local(format!(
        "t{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ));
    if let Ok(url) = std::env::var("NATS_URL") {
        c.url = url.parse().unwrap();
    }
    c
}

/// Two replicas starting together both provision successfully, and a later start with new
/// limits updates the streams in place.
#[tokio::test]
async fn provisioning_is_idempotent_concurrent_and_applies_new_limits() {
    let mut config = config();
    let client = nats::connect(&config, "test").await.unwrap();
    let js = nats::jetstream(client, Duration::from_secs(5));
    let (a, b) = tokio::join!(
        nats::ensure_streams(&js, &config),
        nats::ensure_streams(&js, &config)
    );
    a.unwrap();
    b.unwrap();
    nats::ensure_streams(&js, &config).await.unwrap();

    config.duplicate_window = Duration::from_secs(600);
    config.deliveries_max_age = Duration::from_secs(3600);
    nats::ensure_streams(&js, &config).await.unwrap();
    let mut events = js.get_stream(config.events_stream()).await.unwrap();
    let info = events.info().await.unwrap();
    assert_eq!(info.config.duplicate_window, Duration::from_secs(600));
    assert_eq!(
        info.config.subjects,
        [
            format!("_{}.events.>", config.prefix),
            format!("_{}.erased.events.>", config.prefix)
        ]
    );
    assert_eq!(
        info.config.max_age,
        Duration::ZERO,
        "the event store keeps events forever"
    );
    let mut deliveries = js.get_stream(config.deliveries_stream()).await.unwrap();
    assert_eq!(
        deliveries.info().await.unwrap().config.max_age,
        Duration::from_secs(3600)
    );

    for s in config.all_streams() {
        let _ = js.delete_stream(s).await;
    }
}

#[test]
fn prefixes_that_are_not_one_token_are_refused() {
    for bad in ["", "a.b", "a*", "a b", ">"] {
        let mut c = config();
        c.prefix = bad.into();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("NATS_SUBJECT_PREFIX"), "{bad:?}: {err}");
    }
}

/// Issue 11: a plain subscriber on the public subjects sees each stored event once; a
/// duplicate JetStream drops reaches no one.
#[tokio::test]
async fn subscribers_see_what_the_stream_stored_and_never_a_dropped_duplicate() {
    use futures::StreamExt as _;
    let config = config();
    let client = nats::connect(&config, "test").await.unwrap();
    let js = nats::jetstream(client.clone(), Duration::from_secs(5));
    nats::ensure_streams(&js, &config).await.unwrap();
    let mut live = client
        .subscribe(format!("{}.events.>", config.prefix))
        .await
        .unwrap();
    client.flush().await.unwrap();
    let stored = showpass_payload::subject::stored_event_subject(
        &config.prefix,
        Some("20"),
        Some("invoice.purchase"),
    );
    for body in ["first", "first again", "second"] {
        let mut headers = async_nats::HeaderMap::new();
        let id = if body == "second" { "u-2" } else { "u-1" };
        headers.insert("Nats-Msg-Id", id);
        let ack = js
            .publish_with_headers(stored.clone(), headers, body.into())
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(ack.duplicate, body == "first again");
    }
    let mut seen = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(500), live.next()).await {
        assert_eq!(
            m.subject.as_str(),
            format!("{}.events.20.invoice.purchase", config.prefix)
        );
        seen.push(String::from_utf8(m.payload.to_vec()).unwrap());
    }
    assert_eq!(seen, ["first", "second"]);

    for s in config.all_streams() {
        let _ = js.delete_stream(s).await;
    }
}

/// An events stream made by an earlier version (storing the public subjects, no republish)
/// is refused with the way out, and `upgrade_events_stream` moves it to the current shape
/// keeping every message, sequence numbers included.
#[tokio::test]
async fn a_stream_of_the_earlier_shape_is_upgraded_keeping_every_message() {
    let config = config();
    let client = nats::connect(&config, "test").await.unwrap();
    let js = nats::jetstream(client, Duration::from_secs(5));
    js.create_stream(async_nats::jetstream::stream::Config {
        name: config.events_stream(),
        subjects: vec![format!("{}.events.>", config.prefix)],
        duplicate_window: Duration::from_millis(100),
        ..Default::default()
    })
    .await
    .unwrap();
    for i in 0..50 {
        if i == 49 {
            // A resend long after its original, with the same id: the old stream kept both.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("u-{}", i % 49).as_str());
        js.publish_with_headers(
            format!("{}.events.20.invoice.purchase", config.prefix),
            headers,
            format!("event {i}").into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let err = nats::ensure_streams(&js, &config).await.unwrap_err();
    assert!(err.is::<nats::NeedsUpgrade>(), "{err:#}");
    assert!(err.to_string().contains("--upgrade-events-stream"));

    let stored_before = js
        .get_stream(config.events_stream())
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages;
    assert_eq!(stored_before, 50);
    let report = nats::upgrade_events_stream(&js, &config).await.unwrap();
    // The resend is the last message: whether or not the copy kept it, no other moved.
    assert!(
        report.messages == 50 || (report.messages == 49 && report.resequenced),
        "{report:?}"
    );
    let mut events = js.get_stream(config.events_stream()).await.unwrap();
    let info = events.info().await.unwrap().clone();
    assert_eq!(
        info.config.subjects,
        [
            format!("_{}.events.>", config.prefix),
            format!("_{}.erased.events.>", config.prefix)
        ]
    );
    assert!(info.config.republish.is_some());
    assert!(info.config.sources.unwrap_or_default().is_empty());
    assert_eq!(info.config.duplicate_window, config.duplicate_window);
    let seventh = events.get_raw_message(7).await.unwrap();
    assert_eq!(seventh.payload, "event 6".as_bytes());
    // Done once, it is done: the next provisioning and upgrade change nothing.
    nats::ensure_streams(&js, &config).await.unwrap();
    assert_eq!(
        nats::upgrade_events_stream(&js, &config).await.unwrap(),
        nats::UpgradeReport::default()
    );

    for s in config.all_streams() {
        let _ = js.delete_stream(s).await;
    }
}
