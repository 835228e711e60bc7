//! `/console/customers`: search as `/v1/customers`, and one customer with their orders and
//! tickets.

use axum::extract::{Path, Query as Params, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use crate::Console;
use crate::backend::Query;
use crate::error::ConsoleError;
use crate::format::{count, money, time};
use crate::orders::{Order, Ticket, tickets_table};
use crate::session::Session;
use crate::view::{Chrome, badge, form_error, layout, pager, text_field};

#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    q: Option<String>,
    org_id: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Customer {
    id: String,
    org_id: String,
    email: String,
    name: Option<String>,
    phone: Option<String>,
    subscribed_to_venue: bool,
    orders_count: i64,
    tickets_count: i64,
    currency: String,
    total_spent: String,
    /// Each currency apart (never added together).
    #[serde(default)]
    spent_by_currency: Vec<Amount>,
    first_seen_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct Amount {
    currency: String,
    amount: String,
}

#[derive(Debug, Deserialize)]
struct Customers {
    items: Vec<Customer>,
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Detail {
    #[serde(flatten)]
    customer: Customer,
    orders: Vec<Order>,
}

#[derive(Debug, Deserialize)]
struct Tickets {
    items: Vec<Ticket>,
}

pub async fn list(
    State(console): State<Console>,
    session: Session,
    Params(f): Params<Filters>,
) -> Response {
    let query = Query::new("/v1/customers")
        .param("q", f.q.as_deref())
        .param("org_id", f.org_id.as_deref())
        .param("limit", f.limit.as_deref())
        .param("cursor", f.cursor.as_deref());
    let chrome = Chrome::of(&console, &session, "customers", query.clone());
    let (status, results, error) = match console.get::<Customers>(&session, &query).await {
        Ok(page) => (StatusCode::OK, Some(page), None),
        Err(ConsoleError::BadFilter { detail, .. }) => {
            (StatusCode::BAD_REQUEST, None, Some(detail))
        }
        Err(e) => return e.into_response(),
    };
    let body = html! {
        h1 { "Customers" }
        form.filters method="get" action="/console/customers" role="search" {
            (form_error(error.as_deref()))
            (text_field("q", "Search (e-mail, name or phone)", f.q.as_deref(), "search", "ava cote"))
            (text_field("org_id", "Organization", f.org_id.as_deref(), "text", "all"))
            button type="submit" { "Search" }
        }
        @if let Some(page) = results {
            @if page.items.is_empty() {
                p.muted { "No customer matches." }
            } @else {
                div.scroll {
                    table #customers {
                        thead { tr {
                            th scope="col" { "Customer" }
                            th scope="col" { "Organization" }
                            th scope="col" { "Phone" }
                            th scope="col" class="num" { "Orders" }
                            th scope="col" class="num" { "Tickets" }
                            th scope="col" class="num" { "Spent" }
                            th scope="col" { "Last seen" }
                        } }
                        tbody {
                            @for c in &page.items {
                                tr {
                                    th scope="row" {
                                        a href={ "/console/customers/" (c.id) } { (c.email) }
                                        @if let Some(n) = &c.name { br; span.muted { (n) } }
                                    }
                                    td { (c.org_id) }
                                    td { (c.phone.as_deref().unwrap_or("")) }
                                    td.num { (count(c.orders_count)) }
                                    td.num { (count(c.tickets_count)) }
                                    td.num { (money(&c.total_spent, &c.currency)) }
                                    td { (time(&c.last_seen_at)) }
                                }
                            }
                        }
                    }
                }
            }
            (pager("/console/customers", &query, page.next_cursor.as_deref(), f.cursor.is_none()))
        }
    };
    (status, layout("Customers", &chrome, body)).into_response()
}

/// Tickets are read for this many of the newest orders; each order's page has all of its own.
const TICKET_ORDERS: usize = 20;

pub async fn one(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ConsoleError::NotFound(
            "There is no customer with that id.".into(),
        ));
    }
    let query = Query::new(format!("/v1/customers/{id}"));
    let detail: Detail = console.get(&session, &query).await?;
    // As many as the api gives in one page (an order with more shows them on its own page).
    let limit = console.api.config().max_limit.min(500).to_string();
    let ticket_queries: Vec<Query> = detail
        .orders
        .iter()
        .take(TICKET_ORDERS)
        .map(|o| {
            Query::new("/v1/tickets")
                .param("transaction_id", Some(&o.transaction_id))
                .param("org_id", Some(&o.org_id))
                .param("limit", Some(&limit))
        })
        .collect();
    let tickets = futures::future::join_all(
        ticket_queries
            .iter()
            .map(|q| console.get::<Tickets>(&session, q)),
    )
    .await;
    let mut all: Vec<Ticket> = Vec::new();
    for t in tickets {
        all.extend(t?.items);
    }
    let c = &detail.customer;
    let chrome = ticket_queries.into_iter().fold(
        Chrome::of(&console, &session, "customers", query),
        Chrome::and_json,
    );
    let title = c.name.clone().unwrap_or_else(|| c.email.clone());
    let body = html! {
        h1 { (title) }
        dl.facts {
            dt { "E-mail" } dd { (c.email) }
            dt { "Phone" } dd { (c.phone.as_deref().unwrap_or("—")) }
            dt { "Organization" } dd { (c.org_id) }
            dt { "Subscribed to the venue" } dd { @if c.subscribed_to_venue { "yes" } @else { "no" } }
            dt { "Orders" } dd.num { (count(c.orders_count)) }
            dt { "Valid tickets" } dd.num { (count(c.tickets_count)) }
            dt { "Spent" } dd.num {
                @if c.spent_by_currency.is_empty() {
                    (money(&c.total_spent, &c.currency))
                } @else {
                    @for (i, a) in c.spent_by_currency.iter().enumerate() {
                        @if i > 0 { br; }
                        (money(&a.amount, &a.currency))
                    }
                }
            }
            dt { "First seen" } dd { (time(&c.first_seen_at)) }
            dt { "Last seen" } dd { (time(&c.last_seen_at)) }
        }
        h2 { "Orders" }
        (orders_table(&detail.orders))
        h2 { "Tickets" }
        @if detail.orders.len() > TICKET_ORDERS {
            p.muted { "Tickets of the " (TICKET_ORDERS) " newest orders; open an order for its own." }
        }
        (tickets_table(&all))
    };
    Ok(layout(&title, &chrome, body).into_response())
}

fn orders_table(orders: &[Order]) -> Markup {
    html! {
        @if orders.is_empty() { p.muted { "No orders." } }
        @else {
            div.scroll {
                table #orders {
                    thead { tr {
                        th scope="col" { "Transaction" }
                        th scope="col" { "Status" }
                        th scope="col" class="num" { "Net sales" }
                        th scope="col" class="num" { "Refunded" }
                        th scope="col" class="num" { "Tickets" }
                        th scope="col" { "Created" }
                    } }
                    tbody {
                        @for o in orders {
                            tr {
                                th scope="row" { a href=(o.link()) { (o.transaction_id) } }
                                td { (badge(&o.status)) }
                                td.num { (money(&o.net_sales, &o.currency)) }
                                td.num { (money(&o.refunded, &o.currency)) }
                                td.num { (o.tickets_valid) " / " (o.tickets_total) }
                                td { (time(&o.created_at)) }
                            }
                        }
                    }
                }
            }
        }
    }
}
