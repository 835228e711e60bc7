//! `/console/login` and `/console/logout`.

use std::time::SystemTime;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use showpass_api::KeyName;

use crate::Console;
use crate::error::ConsoleError;
use crate::session::{self, Session};
use crate::view::{Chrome, form_error, layout};

#[derive(Debug, Deserialize)]
pub struct Next {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Login {
    #[serde(default)]
    key: String,
    next: Option<String>,
}

fn page(next: &str, error: Option<&str>) -> Html<String> {
    let body = html! {
        section.login {
            h1 { "Log in" }
            p { "Log in with an API key (an entry of " code { "API_KEYS" } "). A read key sees \
                 everything; an admin key may also replay deliveries." }
            form method="post" action="/console/login" {
                (form_error(error))
                div.field {
                    label for="f-key" { "API key" }
                    input id="f-key" name="key" type="password" required autocomplete="current-password"
                        aria-describedby=[error.map(|_| "form-error")] autofocus;
                }
                input type="hidden" name="next" value=(next);
                button type="submit" { "Log in" }
            }
        }
    };
    layout("Log in", &Chrome::default(), body)
}

pub async fn form(Query(q): Query<Next>) -> Html<String> {
    page(session::safe_next(q.next.as_deref()), None)
}

/// A configured key starts a session and goes on to where it was going; anything else gets
/// the form again, with a 401.
pub async fn submit(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(login): Form<Login>,
) -> Response {
    let next = session::safe_next(login.next.as_deref()).to_owned();
    // No other site may log a browser in (to a session of its own key).
    if !session::same_origin(&headers) {
        tracing::info!("console login from another site refused");
        return (
            StatusCode::FORBIDDEN,
            page(&next, Some("Log in from this console's own page.")),
        )
            .into_response();
    }
    let key = login.key.trim();
    if key.is_empty() || key.len() > 1000 || console.api.role_of(key).is_none() {
        tracing::info!("console login refused");
        return (
            StatusCode::UNAUTHORIZED,
            page(&next, Some("That is not one of this platform's API keys.")),
        )
            .into_response();
    }
    let who = KeyName::of(key);
    tracing::info!(who = %who.0, "console login");
    let value = console.signer.issue(&who, SystemTime::now());
    let cookie = session::set_cookie(&value, console.signer.ttl(), session::is_https(&headers));
    ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
}

#[derive(Debug, Deserialize)]
pub struct Csrf {
    #[serde(default)]
    csrf: String,
}

/// Ends the session, here and for any copy of its cookie (the form carries the CSRF token,
/// so no other site can log one out).
pub async fn logout(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<Csrf>,
) -> Result<Response, ConsoleError> {
    if !console.signer.csrf_ok(&session, &form.csrf) {
        return Err(ConsoleError::Forbidden(
            "This form has expired; reload the page and try again.".into(),
        ));
    }
    console.signer.end(&session, SystemTime::now());
    tracing::info!(who = %session.who.0, "console logout");
    let cookie = session::clear_cookie(session::is_https(&headers));
    Ok((
        [(header::SET_COOKIE, cookie)],
        Redirect::to("/console/login"),
    )
        .into_response())
}
