//! The read-model database: connecting, creating it when missing, and the migrations.
#![forbid(unsafe_code)]

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

/// The migrations in `migrations/`, embedded once.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// The default database URL for a local run.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/showpass";

/// Parses a database URL; the error never repeats the URL (it may hold a password).
pub fn options(url: &str) -> anyhow::Result<PgConnectOptions> {
    PgConnectOptions::from_str(url)
        .map(|o| o.log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1)))
        .map_err(|e| {
            anyhow::anyhow!(
                "DATABASE_URL is not a PostgreSQL URL: {}",
                redact(&e.to_string(), url)
            )
        })
}

fn redact(text: &str, url: &str) -> String {
    text.replace(url, "[DATABASE_URL]")
}

/// A pool of `max` connections.
pub async fn connect(url: &str, max: u32) -> anyhow::Result<PgPool> {
    let options = options(url)?;
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .with_context(|| format!("connecting to PostgreSQL database {:?}", database_name(url)))
}

/// A pool that connects lazily, so a service can start (and report not ready) before the
/// database is up.
pub fn connect_lazy(url: &str, max: u32) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options(url)?))
}

fn database_name(url: &str) -> String {
    options(url)
        .ok()
        .and_then(|o| o.get_database().map(str::to_owned))
        .unwrap_or_else(|| "postgres".into())
}

/// Creates the database named in `url` if it does not exist (connecting to `postgres`).
pub async fn create_database_if_missing(url: &str) -> anyhow::Result<()> {
    let options = options(url)?;
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let admin = options.clone().database("postgres");
    let mut conn = admin
        .connect()
        .await
        .context("connecting to PostgreSQL's `postgres` database to create ours")?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(&mut conn)
            .await
        {
            Ok(_) => tracing::info!(database = %name, "database created"),
            // Another replica created it first.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e).with_context(|| format!("creating database {name:?}")),
        }
    }
    Ok(())
}

/// Creates the database if missing and applies every migration.
pub async fn migrate(url: &str) -> anyhow::Result<PgPool> {
    create_database_if_missing(url).await?;
    let pool = connect(url, 2).await?;
    MIGRATOR.run(&pool).await.context("applying migrations")?;
    Ok(pool)
}
