//! The two streams, made and kept in shape idempotently.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};

use super::NatsConfig;
use super::upgrade::upgrade_in_progress;

/// The events stream has the shape earlier versions gave it (storing the public subjects, no
/// republish), and this server cannot change that in place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "stream {stream} was created by an earlier version of showpass (it stores the public \
     subjects and does not republish them), and this NATS server cannot change that in place: \
     stop ingest, then run `showpass migrate --upgrade-events-stream` once"
)]
pub struct NeedsUpgrade {
    pub stream: String,
}

/// Creates or updates both streams. Safe to run from many replicas at once.
pub async fn ensure_streams(js: &jetstream::Context, config: &NatsConfig) -> anyhow::Result<()> {
    if upgrade_in_progress(js, config).await {
        anyhow::bail!(
            "an upgrade of {} is under way (`showpass migrate --upgrade-events-stream`): waiting \
             for it to finish",
            config.events_stream()
        );
    }
    for wanted in [config.events_config(), config.deliveries_config()] {
        let name = wanted.name.clone();
        match js.create_or_update_stream(wanted.clone()).await {
            Ok(_) => {}
            // Another replica created it between our update and create: update again.
            Err(e) if e.to_string().contains("already in use") => {
                js.update_stream(wanted)
                    .await
                    .with_context(|| format!("updating stream {name}"))?;
            }
            // NATS before 2.10 cannot add a republish to an existing stream.
            Err(e) if e.to_string().contains("can not change RePublish") => {
                return Err(NeedsUpgrade { stream: name }.into());
            }
            Err(e) => return Err(e).with_context(|| format!("creating or updating stream {name}")),
        }
        tracing::info!(stream = %name, "stream ready");
    }
    let bucket = config.bindings_bucket();
    if js.get_key_value(&bucket).await.is_err() {
        // The key-value bucket's own stream, as `create_key_value` would make it: that call
        // first reads the account's JetStream info, which this client cannot parse from
        // nats-server 2.9.
        let kv = stream::Config {
            name: format!("KV_{bucket}"),
            description: Some("Each signed id's first organization and transaction".into()),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_message_size: 1024,
            storage: stream::StorageType::File,
            num_replicas: config.replicas,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        };
        match js.create_stream(kv).await {
            Ok(_) => {}
            // Another replica created it meanwhile.
            Err(_) if js.get_key_value(&bucket).await.is_ok() => {}
            Err(e) => return Err(e).with_context(|| format!("creating key-value bucket {bucket}")),
        }
    }
    tracing::info!(bucket = %bucket, "bindings ready");
    Ok(())
}

/// Waits until both streams and the bindings bucket exist (made by `showpass migrate`).
pub async fn streams_exist(js: &jetstream::Context, config: &NatsConfig) -> anyhow::Result<()> {
    for name in [
        config.events_stream(),
        config.deliveries_stream(),
        format!("KV_{}", config.bindings_bucket()),
    ] {
        js.get_stream(&name)
            .await
            .with_context(|| format!("stream {name} (run `showpass migrate`)"))?;
    }
    Ok(())
}

/// Like [`ensure_streams`] (or, when this service does not provision, [`streams_exist`]),
/// retrying every second until it succeeds or `cancel` fires.
pub async fn ensure_streams_until_ready(
    js: &jetstream::Context,
    config: &NatsConfig,
    cancel: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let ready = if config.provision {
            ensure_streams(js, config).await
        } else {
            streams_exist(js, config).await
        };
        match ready {
            Ok(()) => return Ok(()),
            // Waiting cannot cure this one.
            Err(e) if e.is::<NeedsUpgrade>() => return Err(e),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "streams not ready; retrying"),
        }
        tokio::select! {
            _ = cancel.cancelled() => anyhow::bail!("shut down before the streams were ready"),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
