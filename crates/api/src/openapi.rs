//! The OpenAPI 3.1 document, generated from the handlers, and the `/docs` page.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::state::AppState;
use crate::{customers, erasure, events, flags, health, logs, ops, orders, sales, tickets};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Showpass platform API",
        description = "Customers, orders, tickets, sales and the delivery log built from Showpass \
            webhooks. Every `/v1` route needs `Authorization: Bearer <key>`. Errors are \
            `application/problem+json`. Lists are keyset-paginated: pass `next_cursor` back as \
            `cursor`. Money is a decimal string with two places; times are RFC 3339 UTC."
    ),
    paths(
        customers::list_customers,
        customers::get_customer,
        erasure::erase_customer,
        orders::list_orders,
        orders::get_order,
        tickets::list_tickets,
        events::list_events,
        sales::sales_summary,
        logs::list_logs,
        logs::get_log,
        logs::replay_log,
        flags::list_gaps,
        flags::list_anomalies,
        health::health,
        ops::healthz,
        ops::readyz,
        ops::metrics,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "customers", description = "One customer per organization and e-mail"),
        (name = "orders", description = "One order per Showpass transaction"),
        (name = "tickets", description = "Tickets and their current status"),
        (name = "events", description = "Showpass events (shows) seen"),
        (name = "sales", description = "Sales from incrementally maintained aggregates"),
        (name = "logs", description = "Every delivery, its outcome and processing, and replay"),
        (name = "trust", description = "The platform end to end: gaps to resend in time, anomalies for a person to look at, health"),
        (name = "operations", description = "Health and metrics (no key needed)"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A key from API_KEYS"))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document; needs no database.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

pub(crate) fn router() -> Router<AppState> {
    let doc = openapi();
    let value = serde_json::to_value(&doc).unwrap_or_default();
    let page = bytes::Bytes::from(crate::docs_page::render(&value));
    Router::new()
        .route("/openapi.json", get(move || async move { Json(doc) }))
        .route(
            "/docs",
            get(move || async move { crate::docs_page::page(page.clone()) }),
        )
        .route(
            "/docs/docs.css",
            get(|| async { crate::docs_page::stylesheet() }),
        )
}
