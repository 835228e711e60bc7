//! `DATABASE_URL`, parsed once: a PostgreSQL URL that shows itself without its password.

use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;

/// A PostgreSQL URL, parsed once where configuration is read. `Display` and `Debug` show it
/// without its password (`postgres://user@host:5432/db`); the password is only ever handed to
/// the driver, and to `migrate` to make the api's role.
#[derive(Clone)]
pub struct DatabaseUrl {
    options: PgConnectOptions,
    password: Option<String>,
}

/// A `DATABASE_URL` that is not a PostgreSQL URL. The message never repeats the URL.
#[derive(Debug, thiserror::Error)]
#[error("not a PostgreSQL URL: {0}")]
pub struct BadDatabaseUrl(String);

impl DatabaseUrl {
    /// Parses a URL; the error never repeats it (it may hold a password).
    pub fn parse(url: &str) -> Result<Self, BadDatabaseUrl> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| BadDatabaseUrl(e.to_string().replace(url, "[DATABASE_URL]")))?
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
        Ok(Self {
            options,
            password: url_password(url),
        })
    }

    /// The driver's connect options.
    pub fn options(&self) -> PgConnectOptions {
        self.options.clone()
    }

    /// The database's name (`postgres` when the URL names none).
    pub fn database(&self) -> &str {
        self.options.get_database().unwrap_or("postgres")
    }

    /// The user.
    pub fn username(&self) -> &str {
        self.options.get_username()
    }

    /// The password, percent-decoded, if the URL carries one.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The same server and credentials, another database.
    pub fn with_database(&self, database: &str) -> Self {
        Self {
            options: self.options.clone().database(database),
            password: self.password.clone(),
        }
    }
}

impl FromStr for DatabaseUrl {
    type Err = BadDatabaseUrl;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = &self.options;
        write!(
            f,
            "postgres://{}@{}:{}/{}",
            o.get_username(),
            o.get_host(),
            o.get_port(),
            self.database()
        )
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
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
        let err = DatabaseUrl::parse("postgres://u:hunter2@db:notaport/x").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn a_database_url_shows_itself_without_its_password() {
        let url = DatabaseUrl::parse("postgres://api:hunter2@db:5433/showpass").unwrap();
        assert_eq!(url.to_string(), "postgres://api@db:5433/showpass");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(url.password(), Some("hunter2"));
        assert_eq!(url.with_database("other").database(), "other");
    }
}
