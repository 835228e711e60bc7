//! The api embedded in its own process: what a front end served beside it (the console) is
//! handed, so it reads through exactly the queries, checks and errors `/v1` answers with.

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::response::Response;
use tower::ServiceExt as _;

use crate::auth::{KeyName, Role};
use crate::config::ApiConfig;
use crate::state::AppState;

/// The `/v1` routes without their key check, and the configuration they run with. A caller
/// authenticates its own users (the console, by session) and states the role and the name
/// each request is made with; the handlers' own checks (an admin for a write) still apply.
#[derive(Clone)]
pub struct Embedded {
    state: AppState,
    v1: Router,
}

impl Embedded {
    pub(crate) fn new(state: AppState) -> Self {
        let v1 = Router::new()
            .nest("/v1", crate::server::v1_router())
            .with_state(state.clone());
        Self { state, v1 }
    }

    pub fn config(&self) -> &ApiConfig {
        &self.state.config
    }

    /// The role of a key, exactly as `/v1` would grant it: any key is an admin when the api
    /// runs insecure without keys.
    pub fn role_of(&self, key: &str) -> Option<Role> {
        if self.state.config.insecure && self.state.keys.is_empty() {
            return Some(Role::Admin);
        }
        self.state.keys.role_of(key)
    }

    /// The role of the configured key named `name` (see [`KeyName::of`]), if it still is one:
    /// a session ends when its key leaves `API_KEYS`, and follows a change of its role.
    pub fn role_of_name(&self, name: &KeyName) -> Option<Role> {
        if self.state.config.insecure && self.state.keys.is_empty() {
            return Some(Role::Admin);
        }
        self.state.keys.role_of_name(name)
    }

    /// A server secret for signing sessions: stable across restarts and replicas that share
    /// their configuration (see `API_CURSOR_SECRET`).
    pub fn session_secret(&self) -> [u8; 32] {
        self.state.session_secret
    }

    /// Runs `req` (a path under `/v1`) as `role`, recorded as `who`.
    pub async fn call(&self, mut req: Request<Body>, role: Role, who: KeyName) -> Response {
        req.extensions_mut().insert(role);
        req.extensions_mut().insert(who);
        match self.v1.clone().oneshot(req).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}
