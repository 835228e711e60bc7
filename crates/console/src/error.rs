//! What goes wrong, as a page: a 404 for what does not exist, the form again for a bad
//! filter (rendered by the page itself), a plain page for the rest. Never a stack trace.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use crate::view::{Chrome, layout};

#[derive(Debug)]
pub enum ConsoleError {
    /// The api refused a filter: `param` names it. Pages catch this and show their form.
    BadFilter {
        param: Option<String>,
        detail: String,
    },
    /// Input the console itself refuses (before asking the api).
    BadInput(String),
    NotFound(String),
    Forbidden(String),
    /// Conflict or gone (a replay of an aged-out event, say).
    Refused(StatusCode, String),
    Unavailable(String),
    Internal,
}

impl ConsoleError {
    /// What went wrong, in words.
    pub fn detail(&self) -> String {
        self.parts().2
    }

    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            Self::BadFilter { detail, .. } | Self::BadInput(detail) => {
                (StatusCode::BAD_REQUEST, "Bad request", detail.clone())
            }
            Self::NotFound(detail) => (StatusCode::NOT_FOUND, "Not found", detail.clone()),
            Self::Forbidden(detail) => (StatusCode::FORBIDDEN, "Forbidden", detail.clone()),
            Self::Refused(status, detail) => (*status, "Refused", detail.clone()),
            Self::Unavailable(detail) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                format!("{detail} Try again in a moment."),
            ),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The error is logged; try again, or look at the api's logs.".into(),
            ),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, title, detail) = self.parts();
        let body = html! {
            h1 { (status.as_u16()) " " (title) }
            p.error role="alert" { (detail) }
            p { a href="/console" { "Back to the overview" } }
        };
        (status, layout(title, &Chrome::default(), body)).into_response()
    }
}

/// Any other path under `/console`.
pub async fn not_found() -> ConsoleError {
    ConsoleError::NotFound("There is no such console page.".into())
}
