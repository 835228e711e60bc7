//! A test's own subject prefix and database, for the end-to-end targets that run the binary.

/// A subject prefix and a database name of a test's own, removed by `remove`.
pub struct Scratch {
    pub prefix: String,
    pub database: String,
    pub admin_url: String,
    pub db_url: String,
    pub nats: String,
}

impl Scratch {
    pub fn new(tag: &str) -> Self {
        let id = &uuid::Uuid::new_v4().simple().to_string()[..12];
        let database = format!("cli_{tag}_{id}");
        let admin_url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let db_url = format!("{}/{database}", &admin_url[..admin_url.rfind('/').unwrap()]);
        Self {
            prefix: format!("t{id}"),
            database,
            admin_url,
            db_url,
            nats: std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
        }
    }

    /// Deletes the streams and drops the database.
    pub fn remove(&self, rt: &tokio::runtime::Runtime) {
        cleanup(&self.nats, &self.prefix);
        rt.block_on(async {
            if let Ok(pool) = sqlx::PgPool::connect(&self.admin_url).await {
                let _ = sqlx::query(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.database
                ))
                .execute(&pool)
                .await;
            }
        });
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn cleanup(nats: &str, prefix: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(nats).await.unwrap();
        let js = async_nats::jetstream::new(client);
        for s in showpass_core::nats::NatsConfig::local(prefix).all_streams() {
            let _ = js.delete_stream(s).await;
        }
    });
}
