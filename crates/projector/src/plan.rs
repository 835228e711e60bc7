//! From a delivery to what it changes: a pure function of the body and its metadata, with no
//! clock and no randomness, so replaying the stream gives the same answer.
//!
//! No body can make it panic: the payload's own bounds ([`showpass_payload::limits`]) refuse
//! what could overflow or exhaust memory, this module does no unchecked arithmetic, indexing
//! or unwrapping (the lints below), and [`plan`] turns a panic that slipped through anyway
//! into a failed event.
#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::as_conversions
)]

use std::panic::{AssertUnwindSafe, catch_unwind};

use rust_decimal::Decimal;
use showpass_payload::{Delivery, Envelope, EventType, InvoiceData, TicketStatus, idempotency_key};

use crate::meta::Meta;

/// What the projector does with one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// An invoice event to apply to the read models.
    Apply(Box<Invoice>),
    /// `webhook.test`: logged, and nothing else.
    Test,
    /// A signed event of a type this version does not know: logged as skipped.
    Skip(String),
    /// A signed event that cannot be understood: logged as failed, the stream moves on.
    Fail(String),
}

/// The invoice event kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Purchase,
    Refund,
    Void,
    Transfer,
    Transferred,
}

impl Kind {
    /// Refunds and voids take money back.
    pub fn takes_money_back(self) -> bool {
        matches!(self, Kind::Refund | Kind::Void)
    }

    /// Whether the event moves money at all (transfers never do).
    pub fn moves_money(self) -> bool {
        matches!(self, Kind::Purchase | Kind::Refund | Kind::Void)
    }

    /// The event type of this kind of invoice event.
    pub fn event_type(self) -> EventType {
        match self {
            Kind::Purchase => EventType::InvoicePurchase,
            Kind::Refund => EventType::InvoiceRefund,
            Kind::Void => EventType::InvoiceVoid,
            Kind::Transfer => EventType::InvoiceTransfer,
            Kind::Transferred => EventType::InvoiceTransferred,
        }
    }
}

/// The money fields, as Showpass sent them (missing is zero).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Money {
    pub discounts: Decimal,
    pub net_sales: Decimal,
    pub service_fees: Decimal,
    pub account_credit_applied: Decimal,
    pub gross_revenue: Decimal,
    pub organizer_fees: Decimal,
    pub total_tax: Decimal,
}

impl Money {
    fn from(a: &showpass_payload::Amounts) -> Self {
        let z = |v: Option<Decimal>| v.unwrap_or_default();
        Self {
            discounts: z(a.discounts),
            net_sales: z(a.net_sales),
            service_fees: z(a.service_fees),
            account_credit_applied: z(a.account_credit_applied),
            gross_revenue: z(a.gross_revenue),
            organizer_fees: z(a.organizer_fees),
            total_tax: z(a.total_tax),
        }
    }
}

/// One applied invoice event.
#[derive(Debug, Clone, PartialEq)]
pub struct Invoice {
    pub kind: Kind,
    pub key: String,
    pub org_id: String,
    pub transaction_id: String,
    pub invoice_type: Option<String>,
    /// The trimmed, lower-cased e-mail; `None` makes no customer.
    pub customer_key: Option<String>,
    pub customer_name: Option<String>,
    pub customer_phone: Option<String>,
    pub subscribe_to_venue: Option<bool>,
    pub payment_type: Option<String>,
    pub currency: String,
    pub money: Money,
    pub items: Vec<Item>,
    pub tickets: Vec<TicketIn>,
}

/// One invoice line.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub item_id: Option<String>,
    pub item_type: Option<String>,
    pub quantity: Option<Decimal>,
    pub event_id: Option<String>,
    pub event_name: Option<String>,
    pub ticket_type_id: Option<String>,
    pub ticket_type_name: Option<String>,
    pub product_id: Option<String>,
    pub product_name: Option<String>,
    pub money: Money,
}

/// A ticket as one event describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketIn {
    pub id: String,
    pub event_id: Option<String>,
    pub event_name: Option<String>,
    pub event_starts_on: Option<String>,
    pub event_ends_on: Option<String>,
    pub ticket_type_id: Option<String>,
    pub ticket_type_name: Option<String>,
    pub barcode: Option<String>,
    pub status: String,
    pub name_on_ticket: Option<String>,
    pub email_on_ticket: Option<String>,
    pub created_by_transfer: bool,
}

/// The organization id used when a delivery has none (as in subjects).
pub const NO_ORG: &str = "_";

/// Decides what one event does. Never panics: a panic while reading the event makes it a
/// failed one.
pub fn plan(meta: &Meta, body: &[u8]) -> Decision {
    catch_unwind(AssertUnwindSafe(|| decide(meta, body))).unwrap_or_else(|panic| {
        Decision::Fail(format!(
            "the projector could not read this event: {}",
            panic_message(panic.as_ref())
        ))
    })
}

/// The text of a caught panic.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// [`plan`] without the safety net, for the invariants (`crate::invariants`).
pub(crate) fn decide(meta: &Meta, body: &[u8]) -> Decision {
    // The envelope first: ingest's reader, so what ingest would refuse (a repeated key, say)
    // is refused here for the same reason, whoever published it.
    let envelope = match Envelope::parse(body) {
        Ok(e) => e,
        Err(e) => return Decision::Fail(format!("payload not understood: {e}")),
    };
    let delivery = match Delivery::parse(body) {
        Ok(d) => d,
        Err(e) => return Decision::Fail(format!("payload not understood: {e}")),
    };
    let kind = match &delivery.event_type {
        Some(EventType::InvoicePurchase) => Kind::Purchase,
        Some(EventType::InvoiceRefund) => Kind::Refund,
        Some(EventType::InvoiceVoid) => Kind::Void,
        Some(EventType::InvoiceTransfer) => Kind::Transfer,
        Some(EventType::InvoiceTransferred) => Kind::Transferred,
        Some(EventType::WebhookTest) => return Decision::Test,
        Some(EventType::Other(t)) => return Decision::Skip(format!("unknown event type {t:?}")),
        None => return Decision::Skip("no event_type".into()),
    };
    let Some(data) = delivery.data else {
        return Decision::Fail(format!("{} without data", kind.event_type()));
    };
    let Some(transaction_id) = data.transaction_id.clone() else {
        return Decision::Fail(format!("{} without data.transaction_id", kind.event_type()));
    };
    let key = meta
        .idempotency_key
        .clone()
        .unwrap_or_else(|| idempotency_key(&envelope, body));
    Decision::Apply(Box::new(invoice(kind, key, transaction_id, data)))
}

fn invoice(kind: Kind, key: String, transaction_id: String, data: InvoiceData) -> Invoice {
    let default_status = match kind {
        Kind::Purchase | Kind::Transfer => TicketStatus::Issued,
        Kind::Refund => TicketStatus::Refunded,
        Kind::Void => TicketStatus::Voided,
        Kind::Transferred => TicketStatus::Transferred,
    };
    let status_of = |t: &showpass_payload::TicketItem| match t.ticket_status.clone() {
        // A transfer moves a ticket to someone else: Showpass may report the original
        // `voided`, but it was sold, still counts, and its order is transferred, not voided.
        Some(TicketStatus::Voided) if matches!(kind, Kind::Transfer | Kind::Transferred) => {
            TicketStatus::Transferred
        }
        Some(s) => s,
        None => default_status.clone(),
    };
    let tickets = data
        .ticket_items
        .iter()
        .filter_map(|t| {
            let id = t.id.clone().or_else(|| t.barcode_string.clone())?;
            Some(TicketIn {
                id,
                event_id: t.event_id.clone(),
                event_name: t.event_name.clone(),
                event_starts_on: t.event_starts_on.clone(),
                event_ends_on: t.event_ends_on.clone(),
                ticket_type_id: t.ticket_type_id.clone(),
                ticket_type_name: t.ticket_type_name.clone(),
                barcode: t.barcode_string.clone(),
                status: status_of(t).as_str().to_owned(),
                name_on_ticket: t.name_on_ticket.clone().or_else(|| {
                    let full = [&t.first_name_on_ticket, &t.last_name_on_ticket]
                        .into_iter()
                        .flatten()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(" ");
                    (!full.is_empty()).then_some(full)
                }),
                email_on_ticket: t.email_on_ticket.clone(),
                created_by_transfer: t.created_by_transfer.unwrap_or(kind == Kind::Transfer),
            })
        })
        .collect();
    let items = data
        .invoice_items
        .iter()
        .map(|i| Item {
            item_id: i.id.clone(),
            item_type: i.invoice_item_type.as_ref().map(|t| t.as_str().to_owned()),
            quantity: i.quantity,
            event_id: i.event_id.clone(),
            event_name: i.event_name.clone(),
            ticket_type_id: i.ticket_type_id.clone(),
            ticket_type_name: i.ticket_type_name.clone(),
            product_id: i.product_id.clone(),
            product_name: i.product_name.clone(),
            money: Money::from(&i.money),
        })
        .collect();
    Invoice {
        kind,
        key,
        org_id: data
            .showpass_organization_id
            .unwrap_or_else(|| NO_ORG.into()),
        transaction_id,
        invoice_type: data.invoice_type.map(|t| t.as_str().to_owned()),
        customer_key: data.customer_email.as_deref().and_then(customer_key),
        customer_name: data.customer_name,
        customer_phone: data.customer_phone_number,
        subscribe_to_venue: data.subscribe_to_venue,
        payment_type: data.payment_type.map(|p| p.as_str().to_owned()),
        currency: data
            .currency
            .map(|c| c.trim().to_ascii_uppercase())
            .unwrap_or_default(),
        money: Money::from(&data.money),
        items,
        tickets,
    }
}

/// A customer is an (organization, e-mail) pair, the e-mail trimmed and lower-cased.
pub fn customer_key(email: &str) -> Option<String> {
    let k = email.trim().to_lowercase();
    (!k.is_empty()).then_some(k)
}

/// The stable id of a customer: the same in every rebuild.
pub fn customer_id(org_id: &str, key: &str) -> uuid::Uuid {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x7f3c_59a4_1b0e_4d57_9a62_0c1e_8d4b_2f10);
    uuid::Uuid::new_v5(&NAMESPACE, format!("{org_id}\n{key}").as_bytes())
}

/// How far along a ticket's life a status is. A ticket only ever moves to a higher rank, so
/// a late or repeated event cannot move it back from refunded, voided or transferred.
pub fn status_rank(status: &str) -> i32 {
    match TicketStatus::parse(status) {
        TicketStatus::Pending => 0,
        TicketStatus::Scanned | TicketStatus::Expired | TicketStatus::RefundInProgress => 2,
        TicketStatus::Transferred | TicketStatus::Resold => 3,
        TicketStatus::Refunded => 4,
        TicketStatus::Voided => 5,
        _ => 1,
    }
}

/// Whether a status takes a ticket out of the sales count.
pub fn is_cancelled(status: &str) -> bool {
    matches!(
        TicketStatus::parse(status),
        TicketStatus::Refunded | TicketStatus::Voided
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use showpass_payload::samples::{SampleIds, SampleKind, sample};

    fn meta() -> Meta {
        Meta::from_headers(
            "S",
            1,
            None,
            chrono::Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
        )
    }

    fn planned(kind: SampleKind) -> Invoice {
        let ids = SampleIds {
            webhook_event_uuid: "u",
            transaction_id: "t",
            organization_id: "20",
        };
        let body = serde_json::to_vec(&sample(kind, &ids)).unwrap();
        match plan(&meta(), &body) {
            Decision::Apply(i) => *i,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_purchase_plans_its_lines_tickets_and_customer() {
        let i = planned(SampleKind::Purchase);
        assert_eq!(i.kind, Kind::Purchase);
        assert_eq!(i.key, "u");
        assert_eq!(i.org_id, "20");
        assert_eq!(i.customer_key.as_deref(), Some("alex.buyer@example.com"));
        assert_eq!(i.currency, "CAD");
        assert_eq!(i.money.net_sales, Decimal::new(5840, 2));
        assert_eq!(i.items.len(), 1);
        assert_eq!(i.tickets.len(), 2);
        assert_eq!(i.tickets[0].status, "issued");
    }

    #[test]
    fn refunds_voids_and_transfers_carry_their_ticket_states() {
        assert_eq!(planned(SampleKind::Refund).tickets[0].status, "refunded");
        assert_eq!(planned(SampleKind::Void).tickets[0].status, "voided");
        assert_eq!(
            planned(SampleKind::Transferred).tickets[0].status,
            "transferred"
        );
        let t = planned(SampleKind::Transfer);
        assert_eq!(t.transaction_id, "t-T");
        assert!(t.tickets[0].created_by_transfer);
    }

    #[test]
    fn test_unknown_and_broken_events_are_told_apart() {
        let ids = SampleIds {
            webhook_event_uuid: "u",
            transaction_id: "t",
            organization_id: "20",
        };
        let body = serde_json::to_vec(&sample(SampleKind::Test, &ids)).unwrap();
        assert_eq!(plan(&meta(), &body), Decision::Test);
        assert!(matches!(
            plan(&meta(), br#"{"id":"x","event_type":"invoice.exchange"}"#),
            Decision::Skip(_)
        ));
        assert!(
            matches!(plan(&meta(), br#"{"id":"x","event_type":"invoice.purchase","data":{"net_sales":"ten"}}"#), Decision::Fail(e) if e.contains("invalid money"))
        );
        assert!(
            matches!(plan(&meta(), br#"{"id":"x","event_type":"invoice.purchase","data":{}}"#), Decision::Fail(e) if e.contains("transaction_id"))
        );
        assert!(matches!(plan(&meta(), b"not json"), Decision::Fail(_)));
    }

    /// Issue 11: Showpass may report a transferred-away ticket `voided`; it was sold.
    #[test]
    fn a_ticket_reported_voided_in_a_transfer_is_transferred() {
        for kind in [SampleKind::Transferred, SampleKind::Transfer] {
            let ids = SampleIds {
                webhook_event_uuid: "u",
                transaction_id: "t",
                organization_id: "20",
            };
            let mut v = sample(kind, &ids);
            for t in v["data"]["ticket_items"].as_array_mut().unwrap() {
                t["ticket_status"] = "Voided".into();
            }
            let Decision::Apply(i) = plan(&meta(), &serde_json::to_vec(&v).unwrap()) else {
                panic!("{kind:?} not applied");
            };
            assert!(
                i.tickets.iter().all(|t| t.status == "transferred"),
                "{kind:?}"
            );
        }
        let ids = SampleIds {
            webhook_event_uuid: "u",
            transaction_id: "t",
            organization_id: "20",
        };
        let Decision::Apply(void) = plan(
            &meta(),
            &serde_json::to_vec(&sample(SampleKind::Void, &ids)).unwrap(),
        ) else {
            panic!("void not applied")
        };
        assert!(void.tickets.iter().all(|t| t.status == "voided"));
    }

    /// Issue 11: ingest and the projector read the top level with one parser.
    #[test]
    fn a_repeated_top_level_key_fails_as_ingest_refuses_it() {
        let body = br#"{"id":"x","event_type":"invoice.purchase","data":{"transaction_id":"t"},"note":1,"note":2}"#;
        assert!(
            matches!(plan(&meta(), body), Decision::Fail(e) if e.contains("`note` appears more than once"))
        );
    }

    #[test]
    fn ticket_ranks_only_go_forward_to_final_states() {
        assert!(status_rank("issued") < status_rank("scanned"));
        assert!(status_rank("scanned") < status_rank("transferred"));
        assert!(status_rank("transferred") < status_rank("refunded"));
        assert!(status_rank("refunded") < status_rank("voided"));
        assert_eq!(status_rank("Issued"), status_rank("issued"));
        assert!(is_cancelled("Refunded") && is_cancelled("voided") && !is_cancelled("transferred"));
    }

    #[test]
    fn customers_are_keyed_by_trimmed_lower_cased_email_and_ids_are_stable() {
        assert_eq!(
            customer_key("  Alex@Example.COM "),
            Some("alex@example.com".into())
        );
        assert_eq!(customer_key("  "), None);
        assert_eq!(customer_id("20", "a@b"), customer_id("20", "a@b"));
        assert_ne!(customer_id("20", "a@b"), customer_id("21", "a@b"));
    }
}
