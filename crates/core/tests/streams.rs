//! Stream provisioning against the real NATS.

use std::time::Duration;

use showpass_core::nats::{self, NatsConfig};

fn config() -> NatsConfig {
    let mut c = NatsConfig::local(format!(
        "t{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ));
    if let Ok(url) = std::env::var("NATS_URL") {
        c.url = url;
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
        [format!("{}.events.>", config.prefix)]
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

    js.delete_stream(config.events_stream()).await.unwrap();
    js.delete_stream(config.deliveries_stream()).await.unwrap();
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
