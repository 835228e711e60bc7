//! The read-model database: connecting, creating it when missing, and the migrations.
#![forbid(unsafe_code)]

use std::time::Duration;

use anyhow::Context as _;
use sqlx::ConnectOptions;
use sqlx::postgres::{PgPool, PgPoolOptions};

mod url;
pub use url::{BadDatabaseUrl, DatabaseUrl};

/// The migrations in `migrations/`, embedded once.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// The default database URL for a local run.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/showpass";

/// A pool of `max` connections.
pub async fn connect(url: &DatabaseUrl, max: u32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(url.options())
        .await
        .with_context(|| format!("connecting to PostgreSQL at {url}"))
}

/// A pool that connects lazily, so a service can start (and report not ready) before the
/// database is up.
pub fn connect_lazy(url: &DatabaseUrl, max: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(url.options())
}

/// Creates the database named in `url` if it does not exist (connecting to `postgres`).
pub async fn create_database_if_missing(url: &DatabaseUrl) -> anyhow::Result<()> {
    let options = url.options();
    let name = url.database().to_owned();
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
pub async fn migrate(url: &DatabaseUrl) -> anyhow::Result<PgPool> {
    create_database_if_missing(url).await?;
    let pool = connect(url, 2).await?;
    MIGRATOR.run(&pool).await.context("applying migrations")?;
    Ok(pool)
}

/// Makes the user of `reader_url` a login role of its own that may only read the read models
/// (now, and every table created later, `showpass rebuild`'s included), with the password
/// the URL carries. Run with the owner's `owner_url`. Answers the role's name.
pub async fn ensure_reader(
    owner_url: &DatabaseUrl,
    reader_url: &DatabaseUrl,
) -> anyhow::Result<String> {
    let role = reader_url.username().to_owned();
    let owner = owner_url.options();
    anyhow::ensure!(
        !role.is_empty() && role != owner.get_username(),
        "API_DATABASE_URL must name a user other than DATABASE_URL's"
    );
    let password = reader_url
        .password()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| anyhow::anyhow!("API_DATABASE_URL must carry a password"))?
        .to_owned();
    let database = owner_url.database().to_owned();
    // The statements below carry the password's verifier: none of them is logged.
    let mut conn = owner
        .clone()
        .disable_statement_logging()
        .connect()
        .await
        .context("connecting as the owner to create the api's role")?;
    let ident = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let literal = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let (exists, superuser, createrole): (bool, bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1), rolsuper, rolcreaterole \
         FROM pg_roles WHERE rolname = current_user",
    )
    .bind(&role)
    .fetch_one(&mut conn)
    .await?;
    let member_of: Vec<String> = sqlx::query_scalar(
        "SELECT g.rolname FROM pg_auth_members m \
         JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles r ON r.oid = m.member \
         WHERE r.rolname = $1",
    )
    .bind(&role)
    .fetch_all(&mut conn)
    .await?;
    let verb = if exists { "ALTER" } else { "CREATE" };
    // Only a superuser may name these two attributes at all; a role made by anyone else
    // starts without them.
    let attributes = if superuser {
        "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
    } else {
        "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"
    };
    // The server is sent a SCRAM-SHA-256 verifier computed here, never the password: a
    // statement in the server's log (log_statement = ddl) shows nothing that logs in.
    let verifier = scram_sha256_verifier(&password, uuid::Uuid::new_v4().as_bytes())?;
    let r = ident(&role);
    let mut statements = Vec::new();
    if superuser || createrole {
        statements.push(format!(
            "{verb} ROLE {r} {attributes} PASSWORD {}",
            literal(&verifier)
        ));
        // An existing role keeps nothing it had: no membership, no privilege but reading.
        statements.extend(
            member_of
                .iter()
                .map(|g| format!("REVOKE {} FROM {r}", ident(g))),
        );
    } else if exists {
        // A role made by the platform's operator (CloudNativePG's managed roles, say): its
        // attributes and password are the operator's; the grants below are the owner's.
        tracing::info!(%role, "the read-only role exists and this user cannot alter roles: granting only");
    } else {
        anyhow::bail!(
            "the role {role:?} of API_DATABASE_URL does not exist, and DATABASE_URL's user may \
             not create roles: create it (CloudNativePG: spec.managed.roles), then run migrate again"
        );
    }
    statements.extend([
        format!("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {r}"),
        format!("REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {r}"),
        format!("REVOKE CREATE ON SCHEMA public FROM {r}"),
        format!("GRANT CONNECT ON DATABASE {} TO {r}", ident(&database)),
        format!("GRANT USAGE ON SCHEMA public TO {r}"),
        format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {r}"),
        format!(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} GRANT SELECT ON TABLES TO {r}",
            ident(owner.get_username()),
        ),
    ]);
    for s in statements {
        sqlx::raw_sql(&s)
            .execute(&mut conn)
            .await
            .map_err(|e| anyhow::anyhow!("preparing the read-only role {role:?}: {e}"))?;
    }
    Ok(role)
}

/// The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802, 7677), as
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`. Only ASCII passwords: the
/// server would normalize others (SASLprep) before hashing them, which is not done here.
pub fn scram_sha256_verifier(password: &str, salt: &[u8]) -> anyhow::Result<String> {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    anyhow::ensure!(
        password.bytes().all(|b| (0x20..0x7f).contains(&b)),
        "API_DATABASE_URL's password must be printable ASCII"
    );
    const ITERATIONS: u32 = 4096;
    let hmac = |key: &[u8], parts: &[&[u8]]| {
        let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        for p in parts {
            m.update(p);
        }
        <[u8; 32]>::from(m.finalize().into_bytes())
    };
    // PBKDF2-HMAC-SHA-256, one block.
    let mut u = hmac(password.as_bytes(), &[salt, &1u32.to_be_bytes()]);
    let mut salted = u;
    for _ in 1..ITERATIONS {
        u = hmac(password.as_bytes(), &[&u]);
        salted.iter_mut().zip(u).for_each(|(s, x)| *s ^= x);
    }
    let client_key = hmac(&salted, &[b"Client Key"]);
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, &[b"Server Key"]);
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(format!(
        "SCRAM-SHA-256${ITERATIONS}:{}${}:{}",
        b64.encode(salt),
        b64.encode(stored_key),
        b64.encode(server_key)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example exchange: the server signature computed from this verifier's
    /// ServerKey is the one the RFC shows.
    #[test]
    fn the_scram_verifier_matches_rfc_7677() {
        use base64::Engine as _;
        use hmac::{Hmac, Mac};
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = b64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let verifier = scram_sha256_verifier("pencil", &salt).unwrap();
        let (head, keys) = verifier.rsplit_once('$').unwrap();
        assert_eq!(head, "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==");
        let server_key = b64.decode(keys.split_once(':').unwrap().1).unwrap();
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
            c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let mut m = Hmac::<sha2::Sha256>::new_from_slice(&server_key).unwrap();
        m.update(auth_message.as_bytes());
        assert_eq!(
            b64.encode(m.finalize().into_bytes()),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        assert!(scram_sha256_verifier("pâss", &salt).is_err());
    }
}
