//! `showpass migrate`: the database, the api's read-only role, the streams.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use showpass_core::nats::{self, parse_duration};
use showpass_projector::ProjectorConfig;
use showpass_store::DatabaseUrl;

use crate::config::{DatabaseArgs, NatsArgs};

/// `showpass migrate`.
#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// How long to wait for NATS before giving up.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub wait: Duration,
    /// Move an events stream made by a version before republishing to the current shape, on a
    /// NATS server that cannot change it in place (before 2.10). Stop ingest first.
    #[arg(long)]
    pub upgrade_events_stream: bool,
    /// The api's own PostgreSQL URL: `migrate` makes its user a read-only login with that
    /// password (the api never writes the read models).
    #[arg(
        long = "api-database-url",
        env = "API_DATABASE_URL",
        hide_env_values = true
    )]
    pub api_database_url: Option<String>,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
}

impl MigrateArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let database = self.database.url()?;
        showpass_store::migrate(&database).await?;
        println!("database ready: migrations applied");
        if let Some(reader) = self.api_database_url.as_deref().filter(|u| !u.is_empty()) {
            let reader = DatabaseUrl::parse(reader)
                .map_err(|_| anyhow::anyhow!("API_DATABASE_URL is not a PostgreSQL URL"))?;
            let role = showpass_store::ensure_reader(&database, &reader).await?;
            println!("read-only role ready: {role}");
        }
        let mut config = self.nats.config()?;
        // migrate is what provisions, whatever the services are told.
        config.provision = true;
        let client = nats::connect(&config, "showpass-migrate").await?;
        let js = nats::jetstream(client, Duration::from_secs(5));
        if self.upgrade_events_stream {
            let report = nats::upgrade_events_stream(&js, &config).await?;
            println!(
                "events stream {}: {} messages carried over",
                config.events_stream(),
                report.messages
            );
            if report.missing > 0 {
                eprintln!(
                    "warning: {} messages were not carried over (resends JetStream took for \
                     duplicates); the old stream's copy is kept as {}_UPGRADE",
                    report.missing,
                    config.events_stream()
                );
            }
            if report.resequenced {
                // The read models (and the delivery log) name messages by sequence.
                println!("its sequence numbers changed: rebuilding the read models from it");
                let projector = ProjectorConfig::local(config.clone(), database.clone());
                let rebuilt = showpass_projector::rebuild(&projector, &mut |_, _, _| {}).await?;
                println!("rebuilt {} tables", rebuilt.tables.len());
            }
        }
        let cancel = cancel_after(self.wait);
        nats::ensure_streams_until_ready(&js, &config, &cancel)
            .await
            .with_context(|| format!("provisioning streams on {}", config.url))?;
        println!(
            "streams ready: {} ({}), {} ({})",
            config.events_stream(),
            showpass_payload::subject::events_filter(&config.prefix),
            config.deliveries_stream(),
            showpass_payload::subject::deliveries_filter(&config.prefix),
        );
        // Ids accepted before ingest bound them get their binding now, once.
        let bound = showpass_ingest::backfill_bindings(&js, &config)
            .await
            .context("binding the ids of stored events to their organizations")?;
        if bound > 0 {
            println!("id bindings: {bound} ids of stored events bound to their organizations");
        }
        Ok(())
    }
}

fn cancel_after(after: Duration) -> showpass_core::CancellationToken {
    let token = showpass_core::CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        cancel.cancel();
    });
    token
}
