//! The api's one error type, answered as `application/problem+json` (RFC 9457).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Why a request failed. Each kind has a stable `type` and `title`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query or path parameter is malformed; `param` names it.
    #[error("{detail}")]
    BadParam { param: &'static str, detail: String },
    #[error("{0}")]
    NotFound(String),
    #[error("missing or wrong API key")]
    Unauthorized,
    /// A key that may read but not write.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    /// The stored event aged out of its stream.
    #[error("{0}")]
    Gone(String),
    /// A dependency (PostgreSQL, NATS) is down or slow; worth retrying.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: logged with its cause, answered opaquely.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad(param: &'static str, detail: impl Into<String>) -> Self {
        Self::BadParam {
            param,
            detail: detail.into(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::BadParam { .. } => (StatusCode::BAD_REQUEST, "bad-parameter", "Bad parameter"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Self::Gone(_) => (StatusCode::GONE, "gone", "Gone"),
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => {
                tracing::warn!(error = %e, "database unavailable");
                Self::Unavailable("the database is unavailable; retry shortly".into())
            }
            // Statement timeouts and server shutdowns are transient too.
            sqlx::Error::Database(db)
                if db
                    .code()
                    .is_some_and(|c| c == "57014" || c.starts_with("57P")) =>
            {
                tracing::warn!(error = %e, "database query cancelled");
                Self::Unavailable("the database did not answer in time; retry shortly".into())
            }
            _ => Self::Internal(e.into()),
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `urn:showpass:problem:bad-parameter`.
    #[schema(example = "urn:showpass:problem:bad-parameter")]
    pub r#type: String,
    #[schema(example = "Bad parameter")]
    pub title: String,
    #[schema(example = 400)]
    pub status: u16,
    /// What went wrong, for a human.
    #[schema(example = "limit must be an integer between 1 and 500, not \"-1\"")]
    pub detail: String,
    /// The bad query or path parameter, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "limit")]
    pub param: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, title) = self.parts();
        let detail = match &self {
            Self::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                "something went wrong on our side; it has been logged".to_owned()
            }
            other => other.to_string(),
        };
        let param = match &self {
            Self::BadParam { param, .. } => Some((*param).to_owned()),
            _ => None,
        };
        let problem = Problem {
            r#type: format!("urn:showpass:problem:{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            param,
        };
        let mut response = (status, axum::Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"showpass\""),
            );
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
