//! Built-in sample deliveries of every event type, in the shape of Showpass's 2026 sample.
//!
//! Showpass documents only the purchase; the others follow `showpass-webhooks.md`: a refund
//! or void carries negative amounts and refunded/voided tickets, a transfer is a new invoice
//! for the recipient with tickets `created_by_transfer`, `invoice.transferred` marks the
//! original tickets transferred, and `webhook.test` carries a sample purchase.

use serde_json::{Value, json};

use crate::EventType;

/// Showpass's documented 2023 sample: numbers for money, capitalised enums.
pub const DOC_2023: &[u8] = include_bytes!("../fixtures/showpass/purchase-doc-2023.json");
/// Showpass's documented 2026 sample: strings for money, lower-case enums.
pub const DOC_2026: &[u8] = include_bytes!("../fixtures/showpass/purchase-doc-2026.json");

/// Which sample to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    Purchase,
    Refund,
    Void,
    Transfer,
    Transferred,
    Test,
}

impl SampleKind {
    pub const ALL: [SampleKind; 6] = [
        Self::Purchase,
        Self::Refund,
        Self::Void,
        Self::Transfer,
        Self::Transferred,
        Self::Test,
    ];

    /// The `event_type` the sample carries.
    pub fn event_type(self) -> EventType {
        match self {
            Self::Purchase => EventType::InvoicePurchase,
            Self::Refund => EventType::InvoiceRefund,
            Self::Void => EventType::InvoiceVoid,
            Self::Transfer => EventType::InvoiceTransfer,
            Self::Transferred => EventType::InvoiceTransferred,
            Self::Test => EventType::WebhookTest,
        }
    }

    /// Reads `purchase` or `invoice.purchase` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase();
        let s = s.strip_prefix("invoice.").unwrap_or(&s);
        Some(match s {
            "purchase" => Self::Purchase,
            "refund" => Self::Refund,
            "void" => Self::Void,
            "transfer" => Self::Transfer,
            "transferred" => Self::Transferred,
            "test" | "webhook.test" => Self::Test,
            _ => return None,
        })
    }
}

/// The identities a sample is built around.
#[derive(Debug, Clone)]
pub struct SampleIds<'a> {
    pub webhook_event_uuid: &'a str,
    /// The order's transaction; a transfer's new invoice uses `{transaction_id}-T`.
    pub transaction_id: &'a str,
    pub organization_id: &'a str,
}

/// A complete delivery body of the given kind.
pub fn sample(kind: SampleKind, ids: &SampleIds<'_>) -> Value {
    let (sign, invoice_type, payment_type, ticket_status, transaction_id, created_by_transfer) =
        match kind {
            SampleKind::Purchase | SampleKind::Test => (
                "",
                "sale",
                "credit",
                "issued",
                ids.transaction_id.to_owned(),
                false,
            ),
            SampleKind::Refund => (
                "-",
                "refund",
                "credit",
                "refunded",
                ids.transaction_id.to_owned(),
                false,
            ),
            SampleKind::Void => (
                "-",
                "void",
                "credit",
                "voided",
                ids.transaction_id.to_owned(),
                false,
            ),
            SampleKind::Transfer => (
                "",
                "transfer",
                "transferred",
                "issued",
                format!("{}-T", ids.transaction_id),
                true,
            ),
            SampleKind::Transferred => (
                "",
                "transfer",
                "transferred",
                "transferred",
                ids.transaction_id.to_owned(),
                false,
            ),
        };
    let moves_money = matches!(
        kind,
        SampleKind::Purchase | SampleKind::Refund | SampleKind::Void | SampleKind::Test
    );
    let amount = |v: &str| -> Value {
        if moves_money {
            json!(format!("{sign}{v}"))
        } else {
            json!("0.00")
        }
    };
    let (customer_name, customer_email) = match kind {
        SampleKind::Transfer => ("Sam Recipient", "sam.recipient@example.com"),
        _ => ("Alex Buyer", "alex.buyer@example.com"),
    };
    // Ticket ids and barcodes derive from the transaction that issued them, as real ones are
    // unique: a purchase and its refund name the same tickets, a transfer issues new ones.
    let base = ticket_base(&transaction_id);
    let tickets: Vec<Value> = (1..=2)
        .map(|n| {
            json!({
                "id": base + n,
                "event_id": "474708",
                "event_name": "Sample Night",
                "event_starts_on": "2026-12-02T04:00:00Z",
                "event_ends_on": "2026-12-03T04:00:00Z",
                "first_name_on_ticket": customer_name.split(' ').next(),
                "last_name_on_ticket": customer_name.split(' ').nth(1),
                "name_on_ticket": customer_name,
                "email_on_ticket": customer_email,
                "phone_number_on_ticket": null,
                "ticket_status": ticket_status,
                "ticket_status_code": "2",
                "barcode_string": format!("SP{:08X}", base + n),
                "ticket_type_id": "1657978",
                "ticket_type_name": "General admission",
                "ticket_item_type": "ticket",
                "created_by_transfer": created_by_transfer,
                "product_id": null,
                "product_name": null,
                "product_attribute_id": null,
                "product_attribute_name": null
            })
        })
        .collect();
    json!({
        "id": transaction_id,
        "event_type": kind.event_type().as_str(),
        "webhook_event_uuid": ids.webhook_event_uuid,
        "data": {
            "transaction_id": transaction_id,
            "showpass_organization_id": ids.organization_id,
            "customer_name": customer_name,
            "customer_email": customer_email,
            "customer_phone_number": "+1 403 555 0100",
            "subscribe_to_venue": true,
            "payment_type": payment_type,
            "other_payment_type": null,
            "currency": "CAD",
            "discounts": amount("0.00"),
            "net_sales": amount("58.40"),
            "service_fees": amount("5.90"),
            "account_credit_applied": amount("0.00"),
            "gross_revenue": amount("52.00"),
            "organizer_fees": amount("0.00"),
            "total_tax": amount("2.50"),
            "account_credit_type": null,
            "invoice_type": invoice_type,
            "invoice_type_id": "101",
            "ticket_items": tickets,
            "invoice_items": [{
                "id": 21_110_231,
                "invoice_item_type": if kind == SampleKind::Transfer { "transfer" } else { "ticket" },
                "quantity": 2,
                "discounts": amount("0.00"),
                "net_sales": amount("58.40"),
                "service_fees": amount("5.90"),
                "account_credit_applied": amount("0.00"),
                "gross_revenue": amount("52.00"),
                "organizer_fees": amount("0.00"),
                "total_tax": amount("2.50"),
                "event_id": "474708",
                "event_name": "Sample Night",
                "event_facebook_id": null,
                "ticket_type_id": "1657978",
                "ticket_type_name": "General admission",
                "ticket_type_external_id": null,
                "product_id": null,
                "product_name": null,
                "product_attribute_id": null,
                "product_attribute_name": null
            }]
        }
    })
}

/// A stable number for a transaction id (FNV-1a), to make ticket ids from.
fn ticket_base(transaction_id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in transaction_id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h % 1_000_000_000) * 10
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Delivery, Envelope, TicketStatus};

    fn ids() -> SampleIds<'static> {
        SampleIds {
            webhook_event_uuid: "u-1",
            transaction_id: "txn-1",
            organization_id: "20",
        }
    }

    #[test]
    fn every_sample_parses_as_its_event_type() {
        for kind in SampleKind::ALL {
            let body = serde_json::to_vec(&sample(kind, &ids())).unwrap();
            let env = Envelope::parse(&body).unwrap();
            assert_eq!(env.event_type.as_deref(), Some(kind.event_type().as_str()));
            let d = Delivery::parse(&body).unwrap();
            assert_eq!(d.event_type, Some(kind.event_type()));
            assert_eq!(d.webhook_event_uuid.as_deref(), Some("u-1"));
        }
    }

    #[test]
    fn refunds_are_negative_and_transfers_move_no_money() {
        let refund =
            Delivery::parse(&serde_json::to_vec(&sample(SampleKind::Refund, &ids())).unwrap())
                .unwrap();
        let data = refund.data.unwrap();
        assert!(data.money.net_sales.unwrap().is_sign_negative());
        assert_eq!(
            data.ticket_items[0].ticket_status,
            Some(TicketStatus::Refunded)
        );
        let transfer =
            Delivery::parse(&serde_json::to_vec(&sample(SampleKind::Transfer, &ids())).unwrap())
                .unwrap();
        let data = transfer.data.unwrap();
        assert!(data.money.net_sales.unwrap().is_zero());
        assert_eq!(data.transaction_id.as_deref(), Some("txn-1-T"));
        assert_eq!(data.ticket_items[0].created_by_transfer, Some(true));
    }

    #[test]
    fn kinds_are_named_as_users_type_them() {
        assert_eq!(
            SampleKind::parse("invoice.refund"),
            Some(SampleKind::Refund)
        );
        assert_eq!(SampleKind::parse("Webhook.Test"), Some(SampleKind::Test));
        assert_eq!(SampleKind::parse("bogus"), None);
    }
}
