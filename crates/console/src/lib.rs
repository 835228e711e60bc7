//! console: the browser console, served by the api process at `/console`.
//!
//! Server-rendered pages (maud, checked at compile time) over the api's own `/v1` queries:
//! each page asks the embedded api exactly what it shows, links to that same `/v1` query, and
//! works with JavaScript off. Charts are SVG drawn here; the one stylesheet is in the binary;
//! the Content-Security-Policy is `default-src 'self'`, so no request leaves the page.
#![forbid(unsafe_code)]

mod backend;
mod charts;
mod customers;
mod error;
mod format;
mod login;
mod logs;
mod orders;
mod overview;
mod session;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use showpass_api::Embedded;

pub use session::{COOKIE, Signer};

/// What every console handler shares.
#[derive(Clone)]
pub struct Console {
    api: Embedded,
    signer: Arc<Signer>,
}

/// The console's routes, to merge beside the api (`showpass_api::run_with`). Sessions last
/// `CONSOLE_SESSION_TTL`.
pub fn mount(api: Embedded) -> Router {
    let signer = Arc::new(Signer::new(api.session_secret(), api.config().session_ttl));
    let console = Console { api, signer };
    Router::new()
        .route("/console", get(overview::page))
        .route("/console/", get(overview::page))
        .route("/console/login", get(login::form).post(login::submit))
        .route("/console/logout", post(login::logout))
        .route("/console/customers", get(customers::list))
        .route("/console/customers/{id}", get(customers::one))
        .route("/console/orders/{transaction_id}", get(orders::one))
        .route("/console/logs", get(logs::list))
        .route("/console/logs/{id}", get(logs::one))
        .route("/console/logs/{id}/replay", post(logs::replay))
        .route("/console/json/v1/{*rest}", get(backend::json))
        .route("/console/console.css", get(stylesheet))
        .route(
            "/console/{*rest}",
            get(error::not_found).post(error::not_found),
        )
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(console)
}

const CSS: &str = include_str!("../static/console.css");

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

/// The page's policy: everything from here, nothing inline, no framing; pages hold customer
/// data, so no caching of them either.
pub const CSP: &str = "default-src 'self'; img-src 'self' data:; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

async fn secure_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
