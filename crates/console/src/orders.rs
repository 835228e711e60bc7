//! `/console/orders/{transaction_id}`: an order as its timeline of invoices, its lines and
//! its tickets, each linked to the delivery that made it.

use axum::extract::{Path, Query as Params, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use crate::Console;
use crate::backend::Query;
use crate::error::ConsoleError;
use crate::format::{money, segment, time};
use crate::session::Session;
use crate::view::{Chrome, badge, layout};

#[derive(Debug, Deserialize)]
pub struct Order {
    pub transaction_id: String,
    pub org_id: String,
    pub status: String,
    pub customer_id: Option<String>,
    pub customer_email: Option<String>,
    pub customer_name: Option<String>,
    pub currency: String,
    pub payment_type: Option<String>,
    pub net_sales: String,
    pub gross_revenue: String,
    pub service_fees: String,
    pub total_tax: String,
    pub discounts: String,
    pub refunded: String,
    pub tickets_total: i64,
    pub tickets_valid: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Order {
    /// Its console page (the organization named, as transaction ids are per organization).
    pub fn link(&self) -> String {
        format!(
            "/console/orders/{}?{}",
            segment(&self.transaction_id),
            serde_urlencoded::to_string([("org_id", &self.org_id)]).unwrap_or_default()
        )
    }
}

#[derive(Debug, Deserialize)]
pub struct Ticket {
    pub id: String,
    pub transaction_id: String,
    pub event_name: Option<String>,
    pub ticket_type_name: Option<String>,
    pub barcode: Option<String>,
    pub status: String,
    pub name_on_ticket: Option<String>,
    pub created_by_transfer: bool,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct Invoice {
    event_type: String,
    invoice_type: Option<String>,
    received_at: DateTime<Utc>,
    delivery_id: Option<String>,
    stream_seq: i64,
    currency: String,
    net_sales: String,
    gross_revenue: String,
    service_fees: String,
    total_tax: String,
    discounts: String,
}

#[derive(Debug, Deserialize)]
struct Item {
    line_no: i64,
    invoice_item_type: Option<String>,
    quantity: Option<f64>,
    event_name: Option<String>,
    ticket_type_name: Option<String>,
    product_name: Option<String>,
    net_sales: String,
}

#[derive(Debug, Deserialize)]
struct Detail {
    #[serde(flatten)]
    order: Order,
    invoices: Vec<Invoice>,
    items: Vec<Item>,
    tickets: Vec<Ticket>,
}

#[derive(Debug, Deserialize)]
pub struct Org {
    org_id: Option<String>,
}

pub async fn one(
    State(console): State<Console>,
    session: Session,
    Path(transaction_id): Path<String>,
    Params(org): Params<Org>,
) -> Result<Response, ConsoleError> {
    if transaction_id.is_empty() || transaction_id.len() > 200 {
        return Err(ConsoleError::NotFound(
            "There is no order with that transaction id.".into(),
        ));
    }
    let query = Query::new(format!("/v1/orders/{}", segment(&transaction_id)))
        .param("org_id", org.org_id.as_deref());
    let d: Detail = console.get(&session, &query).await?;
    let o = &d.order;
    let chrome = Chrome::of(&console, &session, "customers", query);
    let title = format!("Order {}", o.transaction_id);
    let body = html! {
        h1 { (title) " " (badge(&o.status)) }
        dl.facts {
            dt { "Customer" }
            dd {
                @match (&o.customer_id, &o.customer_email) {
                    (Some(id), Some(email)) => a href={ "/console/customers/" (segment(id)) } { (email) },
                    (_, Some(email)) => (email),
                    _ => "—",
                }
                @if let Some(n) = &o.customer_name { " (" (n) ")" }
            }
            dt { "Organization" } dd { (o.org_id) }
            dt { "Payment" } dd { (o.payment_type.as_deref().unwrap_or("—")) }
            dt { "Net sales" } dd.num { (money(&o.net_sales, &o.currency)) }
            dt { "Gross revenue" } dd.num { (money(&o.gross_revenue, &o.currency)) }
            dt { "Service fees" } dd.num { (money(&o.service_fees, &o.currency)) }
            dt { "Tax" } dd.num { (money(&o.total_tax, &o.currency)) }
            dt { "Discounts" } dd.num { (money(&o.discounts, &o.currency)) }
            dt { "Refunded" } dd.num { (money(&o.refunded, &o.currency)) }
            dt { "Tickets valid" } dd.num { (o.tickets_valid) " of " (o.tickets_total) }
            dt { "Created" } dd { (time(&o.created_at)) }
            dt { "Updated" } dd { (time(&o.updated_at)) }
        }
        h2 { "Timeline" }
        ol.timeline #invoices {
            @for i in &d.invoices {
                li data-event-type=(i.event_type) {
                    p.when { (time(&i.received_at)) }
                    p {
                        strong { (i.event_type) }
                        @if let Some(t) = &i.invoice_type { " · " (t) }
                        " · net " span.num { (money(&i.net_sales, &i.currency)) }
                        " · gross " span.num { (money(&i.gross_revenue, &i.currency)) }
                        " · fees " span.num { (money(&i.service_fees, &i.currency)) }
                        " · tax " span.num { (money(&i.total_tax, &i.currency)) }
                        " · discounts " span.num { (money(&i.discounts, &i.currency)) }
                    }
                    p.muted {
                        "stream sequence " (i.stream_seq) " · "
                        @match &i.delivery_id {
                            Some(id) => a href={ "/console/logs/" (segment(id)) } { "the delivery" },
                            None => "delivery not logged",
                        }
                    }
                }
            }
        }
        h2 { "Lines" }
        @if d.items.is_empty() { p.muted { "No lines: the invoice's own totals count." } }
        @else {
            div.scroll { table {
                thead { tr {
                    th scope="col" class="num" { "#" }
                    th scope="col" { "What" }
                    th scope="col" class="num" { "Quantity" }
                    th scope="col" class="num" { "Net sales" }
                } }
                tbody { @for it in &d.items { tr {
                    td.num { (it.line_no) }
                    td {
                        (it.event_name.as_deref().or(it.product_name.as_deref()).unwrap_or("—"))
                        @if let Some(t) = &it.ticket_type_name { " · " (t) }
                        @if let Some(k) = &it.invoice_item_type { span.muted { " (" (k) ")" } }
                    }
                    td.num { (it.quantity.map(|q| q.to_string()).unwrap_or_default()) }
                    td.num { (money(&it.net_sales, &o.currency)) }
                } } }
            } }
        }
        h2 { "Tickets" }
        (tickets_table(&d.tickets))
    };
    Ok(layout(&title, &chrome, body).into_response())
}

/// Tickets and their statuses.
pub fn tickets_table(tickets: &[Ticket]) -> Markup {
    html! {
        @if tickets.is_empty() { p.muted { "No tickets." } }
        @else {
            div.scroll { table #tickets {
                thead { tr {
                    th scope="col" { "Barcode" }
                    th scope="col" { "Event · type" }
                    th scope="col" { "Name on ticket" }
                    th scope="col" { "Status" }
                    th scope="col" { "Order" }
                    th scope="col" { "Updated" }
                } }
                tbody { @for t in tickets { tr {
                    th scope="row" { (t.barcode.as_deref().unwrap_or(&t.id)) }
                    td {
                        (t.event_name.as_deref().unwrap_or("—"))
                        @if let Some(tt) = &t.ticket_type_name { " · " (tt) }
                    }
                    td { (t.name_on_ticket.as_deref().unwrap_or("")) }
                    td { (badge(&t.status)) @if t.created_by_transfer { " " span.muted { "(by transfer)" } } }
                    td { (t.transaction_id) }
                    td { (time(&t.updated_at)) }
                } } }
            } }
        }
    }
}
