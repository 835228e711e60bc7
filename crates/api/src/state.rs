//! The state every handler shares.

use std::ops::Deref;
use std::sync::Arc;

use async_nats::jetstream;
use sqlx::PgPool;

use crate::auth::Keys;
use crate::config::ApiConfig;
use crate::metrics::Metrics;
use crate::page::CursorKey;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Inner>);

pub(crate) struct Inner {
    pub pool: PgPool,
    /// CSV exports' own connections, with their own statement timeout.
    pub export_pool: PgPool,
    /// JetStream, for payloads and replay, when configured.
    pub js: Option<jetstream::Context>,
    pub config: ApiConfig,
    pub keys: Keys,
    pub cursor_key: CursorKey,
    /// Signs console sessions.
    pub session_secret: [u8; 32],
    pub metrics: Metrics,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// The page size a request asked for, within the configured bounds.
    pub fn limit(&self, raw: Option<&str>) -> Result<u32, crate::error::ApiError> {
        crate::page::limit(raw, self.config.default_limit, self.config.max_limit)
    }

    pub fn new(
        pool: PgPool,
        export_pool: PgPool,
        js: Option<jetstream::Context>,
        config: ApiConfig,
    ) -> Self {
        let keys = Keys::new(&config.keys);
        let cursor_key = CursorKey::derive(config.cursor_secret.as_ref(), &config.keys);
        let session_secret = crate::page::derive_secret(
            b"showpass console session\0",
            config.cursor_secret.as_ref(),
            &config.keys,
        );
        Self(Arc::new(Inner {
            pool,
            export_pool,
            js,
            config,
            keys,
            cursor_key,
            session_secret,
            metrics: Metrics::new(),
        }))
    }
}
