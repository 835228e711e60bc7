//! Moving an events stream made before republishing to the current shape.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};

use super::NatsConfig;
use super::streams::ensure_streams;

/// What an upgrade of the events stream did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UpgradeReport {
    /// Messages carried over into the upgraded stream.
    pub messages: u64,
    /// Whether the stream's sequence numbers changed (the old stream had gaps, or the copy
    /// dropped a message), so the read models must be rebuilt from it.
    pub resequenced: bool,
    /// Messages of the old stream the upgraded one lacks (JetStream's de-duplication of a
    /// resend copied within the shortest window of its original). The copy is then kept, as
    /// `{NAME}_UPGRADE`, for an operator to look at: nothing is deleted.
    pub missing: u64,
}

/// The description of the copy while an upgrade runs; `resequenced` is written into it, so a
/// run that resumes after a crash still knows.
fn copy_description(name: &str, resequenced: bool) -> String {
    format!("{name} while it is upgraded (in progress; resequenced={resequenced})")
}

/// Whether an upgrade of the events stream is under way (its copy exists and is not a kept
/// one): services wait for it to finish rather than touch the stream meanwhile.
pub(super) async fn upgrade_in_progress(js: &jetstream::Context, config: &NatsConfig) -> bool {
    match js
        .get_stream(format!("{}_UPGRADE", config.events_stream()))
        .await
    {
        Ok(mut copy) => copy.info().await.is_ok_and(|i| {
            i.config
                .description
                .as_deref()
                .is_some_and(|d| d.contains("(in progress"))
        }),
        Err(_) => false,
    }
}

/// Gives an events stream of the earlier shape the current one on a server that cannot
/// change it in place: its messages are copied (JetStream sources) into `{NAME}_UPGRADE`,
/// the stream is created again with the current configuration, the messages are copied back,
/// and the copy removed once the new stream holds every message (kept otherwise). Each step
/// can be run again after a crash. Run it with every service stopped: the old stream is
/// sealed first, and services refuse to touch the stream while the copy says it is in use.
pub async fn upgrade_events_stream(
    js: &jetstream::Context,
    config: &NatsConfig,
) -> anyhow::Result<UpgradeReport> {
    let name = config.events_stream();
    let copy = format!("{name}_UPGRADE");
    let mut report = UpgradeReport::default();
    if let Ok(mut old) = js.get_stream(&name).await {
        let info = old.info().await?.clone();
        if info.config.republish.is_some()
            && info.config.sources.as_deref().is_none_or(<[_]>::is_empty)
        {
            if !upgrade_in_progress(js, config).await {
                ensure_streams(js, config).await?;
                return Ok(report);
            }
        } else if info.config.republish.is_none() {
            // 1. Seal the old stream and copy it aside.
            let state = info.state.clone();
            report.resequenced = state.first_sequence > 1
                || state.deleted_count.unwrap_or(0) > 0
                || state.last_sequence != state.messages;
            if !info.config.sealed {
                let mut sealed = info.config.clone();
                sealed.sealed = true;
                js.update_stream(sealed)
                    .await
                    .with_context(|| format!("sealing {name}"))?;
            }
            js.get_or_create_stream(stream::Config {
                name: copy.clone(),
                description: Some(copy_description(&name, report.resequenced)),
                sources: Some(vec![stream::Source {
                    name: name.clone(),
                    ..Default::default()
                }]),
                storage: stream::StorageType::File,
                num_replicas: config.replicas,
                duplicate_window: SHORTEST_WINDOW,
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating {copy}"))?;
            let copied = wait_for_source(js, &copy).await?;
            if copied != state.messages {
                anyhow::bail!(
                    "copying {name} aside gave {copied} of its {} messages; nothing was deleted \
                     ({name} is sealed, {copy} holds the copy): look at both before going on",
                    state.messages
                );
            }
            js.delete_stream(&name)
                .await
                .with_context(|| format!("deleting the old {name}"))?;
        }
    }
    // 2. The stream again, in the current shape, filled from the copy.
    let mut copy_stream = js
        .get_stream(&copy)
        .await
        .with_context(|| format!("neither {name} nor {copy} exists: nothing to upgrade"))?;
    let copy_info = copy_stream.info().await?.clone();
    // Resuming after a crash: what the first run found is in the description; if it cannot
    // be read, assume the worst.
    report.resequenced |= copy_info
        .config
        .description
        .as_deref()
        .is_none_or(|d| !d.contains("resequenced=false"));
    let expected = copy_info.state.messages;
    if copy_info
        .config
        .sources
        .as_ref()
        .is_some_and(|s| !s.is_empty())
    {
        // The copy stops following the old stream, or the new one would source in a cycle.
        let mut detached = copy_info.config.clone();
        detached.sources = None;
        js.update_stream(detached)
            .await
            .with_context(|| format!("detaching {copy}"))?;
    }
    let mut filling = config.events_config();
    let final_config = filling.clone();
    filling.sources = Some(vec![stream::Source {
        name: copy.clone(),
        ..Default::default()
    }]);
    // Messages keep their `Nats-Msg-Id`: the shortest window keeps the copy from dropping
    // most resends that Showpass sent long after their original; one it drops anyway is
    // counted, and then the copy is kept.
    filling.duplicate_window = SHORTEST_WINDOW;
    match js.get_stream(&name).await {
        Ok(_) => {
            js.update_stream(filling).await?;
        }
        Err(_) => {
            js.create_stream(filling).await?;
        }
    }
    report.messages = wait_for_source(js, &name).await?;
    report.missing = expected.saturating_sub(report.messages);
    report.resequenced |= report.missing > 0;
    js.update_stream(final_config)
        .await
        .with_context(|| format!("finishing {name}"))?;
    if report.missing == 0 {
        js.delete_stream(&copy)
            .await
            .with_context(|| format!("removing {copy}"))?;
    } else {
        let mut kept = copy_info.config.clone();
        kept.sources = None;
        kept.description = Some(format!(
            "{name} before its upgrade, kept: {} of its messages were not carried over",
            report.missing
        ));
        js.update_stream(kept)
            .await
            .with_context(|| format!("keeping {copy}"))?;
    }
    tracing::info!(stream = %name, messages = report.messages, missing = report.missing, resequenced = report.resequenced, "events stream upgraded");
    Ok(report)
}

/// The shortest de-duplication window JetStream accepts.
const SHORTEST_WINDOW: Duration = Duration::from_millis(100);

/// Waits until a stream filled from a source has caught up with it: every source reports no
/// lag, and the stream holds as many messages two seconds later. The source is sealed or
/// detached, so nothing arrives there meanwhile. Answers how many messages the stream holds.
async fn wait_for_source(js: &jetstream::Context, name: &str) -> anyhow::Result<u64> {
    let mut last = (u64::MAX, std::time::Instant::now());
    loop {
        let mut s = js.get_stream(name).await?;
        let info = s.info().await?.clone();
        let n = info.state.messages;
        let caught_up = !info.sources.is_empty()
            && info
                .sources
                .iter()
                .all(|s| s.lag == 0 && s.active.is_some());
        if n != last.0 {
            last = (n, std::time::Instant::now());
        } else if caught_up && last.1.elapsed() > Duration::from_secs(2) {
            return Ok(n);
        }
        anyhow::ensure!(
            last.1.elapsed() < Duration::from_secs(120),
            "copying into {name} stalled at {n} messages"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
