//! `/v1/orders`: search, and one order with its invoices, line items and tickets.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use showpass_payload::vocab::{EventType, OrderStatus};
use sqlx::{PgPool, QueryBuilder};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::customers;
use crate::error::{ApiError, ApiResult, Problem};
use crate::money::{CurrencyAmount, CurrencyAmounts, Money};
use crate::page::{self, Key, Keyset, Page};
use crate::params::{self, Params, Range};
use crate::routes::Routes;
use crate::state::AppState;
use crate::tickets::{self, TicketOut};

pub(crate) fn routes() -> Routes {
    Routes::new("/v1")
        .add::<__path_list_orders, _, _>(list_orders)
        .add::<__path_get_order, _, _>(get_order)
}

fn example_event_type() -> &'static str {
    EventType::InvoicePurchase.known_text().unwrap_or_default()
}

/// An order: one Showpass transaction.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[schema(example = json!({
    "transaction_id": "ef4fe3e2b2c0c0c84b7fa3b4f5b2d2a8", "org_id": "20", "kind": "purchase",
    "status": "partially_refunded", "customer_id": "3d2f1c8e-6a51-5b7e-9c34-1f0e2d4a6b8c",
    "customer_email": "ava.cote@example.com", "customer_name": "Ava Côté", "currency": "CAD",
    "payment_type": "credit", "net_sales": "75.00", "gross_revenue": "80.25",
    "service_fees": "5.25", "total_tax": "0.00", "discounts": "0.00", "refunded": "37.50",
    "other_currency_refunds": [], "tickets_total": 2, "tickets_valid": 1,
    "created_at": "2026-11-27T18:02:11.412Z", "updated_at": "2026-11-28T09:15:40.001Z"
}))]
pub struct OrderOut {
    pub transaction_id: String,
    pub org_id: String,
    #[schema(schema_with = crate::params_doc::order_kind_field)]
    pub kind: String,
    #[schema(schema_with = crate::params_doc::order_status_field)]
    pub status: String,
    pub customer_id: Option<Uuid>,
    pub customer_email: Option<String>,
    pub customer_name: Option<String>,
    #[schema(example = "CAD")]
    pub currency: String,
    pub payment_type: Option<String>,
    #[sqlx(try_from = "Decimal")]
    pub net_sales: Money,
    #[sqlx(try_from = "Decimal")]
    pub gross_revenue: Money,
    #[sqlx(try_from = "Decimal")]
    pub service_fees: Money,
    #[sqlx(try_from = "Decimal")]
    pub total_tax: Money,
    #[sqlx(try_from = "Decimal")]
    pub discounts: Money,
    /// The absolute sum of its refund and void invoices in its currency (or in none).
    #[sqlx(try_from = "Decimal")]
    pub refunded: Money,
    /// Refunds and voids in another currency than the order's, per currency: listed apart,
    /// never added to `refunded`.
    #[schema(value_type = Vec<CurrencyAmount>)]
    pub other_currency_refunds: CurrencyAmounts,
    pub tickets_total: i32,
    /// Tickets not refunded, voided or transferred away.
    pub tickets_valid: i32,
    /// When its first delivery arrived.
    pub created_at: DateTime<Utc>,
    /// When its latest delivery arrived.
    pub updated_at: DateTime<Utc>,
}

/// One invoice event of an order, amounts as Showpass sent them.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct InvoiceOut {
    /// The `webhook_event_uuid` (or `sha256:` of the body when it had none).
    pub idempotency_key: String,
    #[schema(example = example_event_type)]
    pub event_type: String,
    pub invoice_type: Option<String>,
    pub received_at: DateTime<Utc>,
    /// The delivery that carried it (see `/v1/logs/{id}`).
    pub delivery_id: Option<Uuid>,
    pub stream_seq: i64,
    pub payment_type: Option<String>,
    pub currency: String,
    #[sqlx(try_from = "Decimal")]
    pub discounts: Money,
    #[sqlx(try_from = "Decimal")]
    pub net_sales: Money,
    #[sqlx(try_from = "Decimal")]
    pub service_fees: Money,
    #[sqlx(try_from = "Decimal")]
    pub account_credit_applied: Money,
    #[sqlx(try_from = "Decimal")]
    pub gross_revenue: Money,
    #[sqlx(try_from = "Decimal")]
    pub organizer_fees: Money,
    #[sqlx(try_from = "Decimal")]
    pub total_tax: Money,
}

/// A line of an invoice.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct ItemOut {
    /// The invoice it belongs to.
    pub idempotency_key: String,
    pub line_no: i32,
    pub item_id: Option<String>,
    pub invoice_item_type: Option<String>,
    pub quantity: Option<f64>,
    pub event_id: Option<String>,
    pub event_name: Option<String>,
    pub ticket_type_id: Option<String>,
    pub ticket_type_name: Option<String>,
    pub product_id: Option<String>,
    pub product_name: Option<String>,
    #[sqlx(try_from = "Decimal")]
    pub discounts: Money,
    #[sqlx(try_from = "Decimal")]
    pub net_sales: Money,
    #[sqlx(try_from = "Decimal")]
    pub service_fees: Money,
    #[sqlx(try_from = "Decimal")]
    pub gross_revenue: Money,
    #[sqlx(try_from = "Decimal")]
    pub total_tax: Money,
}

/// An order with everything received about it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderDetail {
    #[serde(flatten)]
    pub order: OrderOut,
    /// One per invoice event received, in stream order.
    pub invoices: Vec<InvoiceOut>,
    pub items: Vec<ItemOut>,
    pub tickets: Vec<TicketOut>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// A transaction id, a ticket barcode, or (part of) the customer's e-mail or name.
    #[param(value_type = Option<crate::params_doc::Query>, inline)]
    pub q: Option<String>,
    #[param(value_type = Option<crate::params_doc::Id>, inline)]
    pub org_id: Option<String>,
    /// Orders with a ticket or line of this Showpass event.
    #[param(value_type = Option<crate::params_doc::Id>, inline)]
    pub event_id: Option<String>,
    /// `purchased`, `partially_refunded`, `refunded`, `voided` or `transferred`.
    #[param(value_type = Option<crate::params_doc::OrderStatusWord>, inline)]
    pub status: Option<String>,
    /// Created at or after: a date (`2026-11-27`, UTC) or an RFC 3339 time.
    #[param(value_type = Option<crate::params_doc::When>, inline)]
    pub from: Option<String>,
    /// Created at or before (a date counts whole).
    #[param(value_type = Option<crate::params_doc::When>, inline)]
    pub to: Option<String>,
    #[param(value_type = Option<crate::params_doc::Limit>, inline)]
    pub limit: Option<String>,
    #[param(value_type = Option<crate::params_doc::CursorText>, inline)]
    pub cursor: Option<String>,
}

pub(crate) const COLUMNS: &str = "o.transaction_id, o.org_id, o.kind, o.status, o.customer_id, \
    o.customer_email, o.customer_name, o.currency, o.payment_type, o.net_sales, o.gross_revenue, \
    o.service_fees, o.total_tax, o.discounts, o.refunded, o.other_currency_refunds, \
    o.tickets_total, o.tickets_valid, \
    o.created_at, o.updated_at";

/// Search orders, newest first.
#[utoipa::path(get, path = "/v1/orders", tag = "orders", params(OrderQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "a page of orders, newest first", body = Page<OrderOut>),
              (status = 400, description = "a parameter is bad", body = Problem, content_type = "application/problem+json"),
              (status = 401, description = "no key or a wrong one", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "the database (or NATS) is unavailable or too slow; retry later", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list_orders(
    State(state): State<AppState>,
    Params(query): Params<OrderQuery>,
) -> ApiResult<Json<Page<OrderOut>>> {
    let limit = state.limit(query.limit.as_deref())?;
    let q = params::text("q", query.q.as_deref(), 200)?;
    let org = params::text("org_id", query.org_id.as_deref(), 100)?;
    let event = params::text("event_id", query.event_id.as_deref(), 100)?;
    let status = params::word::<OrderStatus>("status", query.status.as_deref())?;
    let range = Range::utc(query.from.as_deref(), query.to.as_deref())?;

    let mut sql = QueryBuilder::new(format!("SELECT {COLUMNS} FROM orders o WHERE true"));
    if let Some(org) = &org {
        sql.push(" AND o.org_id = ").push_bind(org);
    }
    if let Some(status) = status {
        sql.push(" AND o.status = ").push_bind(status.as_str());
    }
    if let Some(start) = range.start {
        sql.push(" AND o.created_at >= ").push_bind(start);
    }
    if let Some(end) = range.end {
        sql.push(" AND o.created_at < ").push_bind(end);
    }
    if let Some(event) = &event {
        sql.push(
            " AND (EXISTS (SELECT 1 FROM tickets t WHERE t.org_id = o.org_id \
             AND t.transaction_id = o.transaction_id AND t.event_id = ",
        )
        .push_bind(event)
        .push(
            ") OR EXISTS (SELECT 1 FROM invoice_items i WHERE i.org_id = o.org_id \
             AND i.transaction_id = o.transaction_id AND i.event_id = ",
        )
        .push_bind(event)
        .push("))");
    }
    if let Some(q) = &q {
        // Each branch is an indexed lookup; their union names the candidate orders.
        sql.push(" AND (o.org_id, o.transaction_id) IN (SELECT org_id, transaction_id FROM orders WHERE transaction_id = ")
            .push_bind(q)
            .push(" UNION ALL SELECT org_id, transaction_id FROM tickets WHERE barcode = ")
            .push_bind(q)
            .push(
                " UNION ALL SELECT o2.org_id, o2.transaction_id FROM customers c \
                 JOIN orders o2 ON o2.customer_id = c.id WHERE c.search_doc LIKE ",
            );
        customers::push_pattern(&mut sql, q);
        sql.push(")");
    }
    const LISTING: Keyset = Keyset {
        listing: "orders",
        columns: &[
            ("o.created_at", Key::Time),
            ("o.org_id", Key::Text),
            ("o.transaction_id", Key::Text),
        ],
        descending: true,
    };
    LISTING.after(&mut sql, query.cursor.as_deref(), &state.cursor_key, limit)?;
    // With `q`, planned for its pattern each time, as customer search is (`customers::finish`).
    let rows: Vec<OrderOut> = sql
        .build_query_as()
        .persistent(q.is_none())
        .fetch_all(&state.pool)
        .await?;
    Ok(Json(LISTING.page(rows, limit, &state.cursor_key, |o| {
        vec![
            page::time(o.created_at),
            o.org_id.clone(),
            o.transaction_id.clone(),
        ]
    })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OneOrderQuery {
    /// Needed only when the transaction id exists in several organizations.
    #[param(value_type = Option<crate::params_doc::Id>, inline)]
    pub org_id: Option<String>,
}

/// One order: status, totals, its invoices (one per event received), line items, tickets.
#[utoipa::path(get, path = "/v1/orders/{transaction_id}", tag = "orders",
    params(("transaction_id" = String, Path, description = "Showpass's transaction id"), OneOrderQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "the order, its invoices, lines and tickets", body = OrderDetail),
              (status = 400, description = "the id exists in several organizations and org_id was not given", body = Problem, content_type = "application/problem+json"),
              (status = 401, description = "no key or a wrong one", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "no such order", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "the database (or NATS) is unavailable or too slow; retry later", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn get_order(
    State(state): State<AppState>,
    Path(transaction_id): Path<String>,
    Params(query): Params<OneOrderQuery>,
) -> ApiResult<Json<OrderDetail>> {
    let org = params::text("org_id", query.org_id.as_deref(), 100)?;
    Ok(Json(
        find_order(&state.pool, &transaction_id, org.as_deref()).await?,
    ))
}

/// The query behind `GET /v1/orders/{transaction_id}`: the order and all it holds.
pub async fn find_order(
    pool: &PgPool,
    transaction_id: &str,
    org: Option<&str>,
) -> ApiResult<OrderDetail> {
    let mut sql = QueryBuilder::new(format!(
        "SELECT {COLUMNS} FROM orders o WHERE o.transaction_id = "
    ));
    sql.push_bind(transaction_id);
    if let Some(org) = &org {
        sql.push(" AND o.org_id = ").push_bind(org);
    }
    sql.push(" LIMIT 2");
    let mut found: Vec<OrderOut> = sql.build_query_as().fetch_all(pool).await?;
    let order = match found.len() {
        0 => {
            return Err(ApiError::NotFound(format!(
                "no order with transaction id {:?}",
                page::truncate(transaction_id)
            )));
        }
        1 => found.remove(0),
        _ => {
            return Err(ApiError::bad(
                "org_id",
                "this transaction id exists in several organizations: pass org_id",
            ));
        }
    };
    let (org_id, tx) = (order.org_id.as_str(), order.transaction_id.as_str());
    let (invoices, items, tickets) = tokio::try_join!(
        sqlx::query_as::<_, InvoiceOut>(
            "SELECT idempotency_key, event_type, invoice_type, received_at, delivery_id, stream_seq,
                    payment_type, currency, discounts, net_sales, service_fees,
                    account_credit_applied, gross_revenue, organizer_fees, total_tax
             FROM invoices WHERE org_id = $1 AND transaction_id = $2
             ORDER BY stream_seq"
        )
        .bind(org_id)
        .bind(tx)
        .fetch_all(pool),
        sqlx::query_as::<_, ItemOut>(
            "SELECT i.idempotency_key, i.line_no, i.item_id, i.invoice_item_type,
                    i.quantity::float8 AS quantity, i.event_id, i.event_name, i.ticket_type_id,
                    i.ticket_type_name, i.product_id, i.product_name, i.discounts, i.net_sales,
                    i.service_fees, i.gross_revenue, i.total_tax
             FROM invoice_items i JOIN invoices v ON v.idempotency_key = i.idempotency_key
             WHERE i.org_id = $1 AND i.transaction_id = $2
             ORDER BY v.stream_seq, i.line_no"
        )
        .bind(org_id)
        .bind(tx)
        .fetch_all(pool),
        tickets::of_order(pool, org_id, tx),
    )?;
    Ok(OrderDetail {
        order,
        invoices,
        items,
        tickets,
    })
}

/// A customer's orders, newest first.
pub(crate) async fn of_customer(
    pool: &PgPool,
    customer: Uuid,
) -> Result<Vec<OrderOut>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM orders o WHERE o.customer_id = $1 \
         ORDER BY o.created_at DESC, o.transaction_id DESC LIMIT 500"
    ))
    .bind(customer)
    .fetch_all(pool)
    .await
}
