//! Asking the embedded api: a page's data is the answer of one `/v1` query, run as the
//! session's key, so the console shows exactly what the JSON says, with the same checks.

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{Method, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::Console;
use crate::error::ConsoleError;
use crate::session::Session;

/// A `/v1` query: its path and the parameters given (empty ones left out).
#[derive(Debug, Clone)]
pub struct Query {
    pub path: String,
    pub params: Vec<(&'static str, String)>,
}

impl Query {
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            params: Vec::new(),
        }
    }

    /// Adds `name=value` when `value` is given and not blank.
    pub fn param(mut self, name: &'static str, value: Option<&str>) -> Self {
        if let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) {
            self.params.push((name, v.to_owned()));
        }
        self
    }

    /// The path and query string, as `/v1` is asked.
    pub fn uri(&self) -> String {
        if self.params.is_empty() {
            self.path.clone()
        } else {
            format!(
                "{}?{}",
                self.path,
                serde_urlencoded::to_string(&self.params).unwrap_or_default()
            )
        }
    }

    /// The console's link to the same JSON, answered with the session.
    pub fn json_link(&self) -> String {
        format!("/console/json{}", self.uri())
    }

    /// The same query with `cursor` set: the next page.
    pub fn with_cursor(&self, cursor: &str) -> String {
        let mut params = self.params.clone();
        params.retain(|(k, _)| *k != "cursor");
        params.push(("cursor", cursor.to_owned()));
        serde_urlencoded::to_string(&params).unwrap_or_default()
    }
}

/// An api `problem+json`.
#[derive(Debug, Deserialize)]
struct Problem {
    #[serde(default)]
    detail: String,
    #[serde(default)]
    param: Option<String>,
}

impl Console {
    /// `GET` the query as the session's key, and read its JSON as `T`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        session: &Session,
        query: &Query,
    ) -> Result<T, ConsoleError> {
        let (status, body) = self.send(session, Method::GET, &query.uri()).await?;
        decode(status, &body)
    }

    /// `POST` with no body (replay), read as `T`.
    pub async fn post<T: DeserializeOwned>(
        &self,
        session: &Session,
        path: &str,
    ) -> Result<T, ConsoleError> {
        let (status, body) = self.send(session, Method::POST, path).await?;
        decode(status, &body)
    }

    async fn send(
        &self,
        session: &Session,
        method: Method,
        uri: &str,
    ) -> Result<(StatusCode, Bytes), ConsoleError> {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::ACCEPT, "application/json")
            .body(Body::empty())
            .map_err(|e| ConsoleError::BadInput(format!("not a valid address: {e}")))?;
        let response = self.api.call(req, session.role, session.who.clone()).await;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ConsoleError::Unavailable(format!("reading the api's answer: {e}")))?
            .to_bytes();
        Ok((status, body))
    }
}

fn decode<T: DeserializeOwned>(status: StatusCode, body: &[u8]) -> Result<T, ConsoleError> {
    if status.is_success() {
        return serde_json::from_slice(body).map_err(|e| {
            tracing::error!(error = %e, "the api answered JSON the console cannot read");
            ConsoleError::Internal
        });
    }
    let problem: Problem = serde_json::from_slice(body).unwrap_or(Problem {
        detail: String::from_utf8_lossy(body).chars().take(500).collect(),
        param: None,
    });
    Err(match status {
        StatusCode::BAD_REQUEST => ConsoleError::BadFilter {
            param: problem.param,
            detail: problem.detail,
        },
        StatusCode::NOT_FOUND => ConsoleError::NotFound(problem.detail),
        StatusCode::FORBIDDEN => ConsoleError::Forbidden(problem.detail),
        StatusCode::CONFLICT | StatusCode::GONE => ConsoleError::Refused(status, problem.detail),
        StatusCode::SERVICE_UNAVAILABLE => ConsoleError::Unavailable(problem.detail),
        _ => {
            tracing::error!(%status, detail = %problem.detail, "the api failed a console query");
            ConsoleError::Internal
        }
    })
}

/// `/console/json/v1/...`: the `/v1` answer itself, for the session, so the link under each
/// page opens the JSON it shows in the same browser.
pub async fn json(
    State(console): State<Console>,
    session: Session,
    uri: Uri,
    RawQuery(query): RawQuery,
) -> Response {
    let path = uri.path().trim_start_matches("/console/json");
    let target = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let req = match Request::builder()
        .uri(&target)
        .header(header::ACCEPT, "application/json")
        .body(Body::empty())
    {
        Ok(r) => r,
        Err(_) => return ConsoleError::NotFound("no such page".into()).into_response(),
    };
    console
        .api
        .call(req, session.role, session.who.clone())
        .await
}
