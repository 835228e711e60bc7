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

/// Makes the user of `reader_url` a login role of its own that may only read the read models
/// (now, and every table created later, `showpass rebuild`'s included), with the password
/// the URL carries. Run with the owner's `owner_url`. Answers the role's name.
pub async fn ensure_reader(owner_url: &str, reader_url: &str) -> anyhow::Result<String> {
    let reader = options(reader_url)
        .map_err(|_| anyhow::anyhow!("API_DATABASE_URL is not a PostgreSQL URL"))?;
    let role = reader.get_username().to_owned();
    let owner = options(owner_url)?;
    anyhow::ensure!(
        !role.is_empty() && role != owner.get_username(),
        "API_DATABASE_URL must name a user other than DATABASE_URL's"
    );
    let password = url_password(reader_url)
        .ok_or_else(|| anyhow::anyhow!("API_DATABASE_URL must carry a password"))?;
    let database = owner.get_database().unwrap_or("postgres").to_owned();
    let mut conn = owner
        .connect()
        .await
        .context("connecting as the owner to create the api's role")?;
    let ident = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let literal = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(&role)
            .fetch_one(&mut conn)
            .await?;
    let verb = if exists { "ALTER" } else { "CREATE" };
    let statements = [
        format!(
            "{verb} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}",
            ident(&role),
            literal(&password)
        ),
        format!(
            "GRANT CONNECT ON DATABASE {} TO {}",
            ident(&database),
            ident(&role)
        ),
        format!("GRANT USAGE ON SCHEMA public TO {}", ident(&role)),
        format!(
            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}",
            ident(&role)
        ),
        format!(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} GRANT SELECT ON TABLES TO {}",
            ident(owner.get_username()),
            ident(&role)
        ),
    ];
    for s in statements {
        sqlx::raw_sql(&s)
            .execute(&mut conn)
            .await
            .with_context(|| format!("preparing the read-only role {role:?}"))?;
    }
    Ok(role)
}

/// The password in a URL's user info, percent-decoded.
fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    let password = userinfo.split_once(':')?.1;
    let mut out = Vec::with_capacity(password.len());
    let bytes = password.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok().filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_urls_password_is_read_percent_decoded() {
        assert_eq!(
            url_password("postgres://api:p%40ss:w@db:5432/showpass").as_deref(),
            Some("p@ss:w")
        );
        assert_eq!(url_password("postgres://api@db/showpass"), None);
    }

    /// Issue 12: a URL's password never reaches an error.
    #[test]
    fn a_bad_database_url_is_named_without_its_password() {
        let err = options("postgres://u:hunter2@db:notaport/x").unwrap_err();
        assert!(!format!("{err:#}").contains("hunter2"), "{err:#}");
    }
}
