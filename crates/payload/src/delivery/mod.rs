//! The whole typed payload of a delivery, for the projector.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::lenient::{bounded_list, currency, flag, id, lenient_enum, money, quantity, text};

lenient_enum!(
    /// What happened (`event_type`).
    EventType {
        InvoicePurchase => "invoice.purchase",
        InvoiceRefund => "invoice.refund",
        InvoiceVoid => "invoice.void",
        InvoiceTransfer => "invoice.transfer",
        InvoiceTransferred => "invoice.transferred",
        WebhookTest => "webhook.test",
    }
);

lenient_enum!(
    /// `data.invoice_type` (older samples capitalise it: `"Sale"`).
    InvoiceType {
        Sale => "sale",
        Refund => "refund",
        Transfer => "transfer",
        Void => "void",
    }
);

lenient_enum!(
    /// `data.payment_type`.
    PaymentType {
        Cash => "cash",
        Credit => "credit",
        Interac => "interac",
        Complimentary => "complimentary",
        Free => "free",
        Bundled => "bundled",
        Transferred => "transferred",
        DirectDeposit => "direct_deposit",
        OtherMethod => "other",
        PaymentPlan => "payment_plan",
        UserCredit => "user_credit",
        ExchangeCredit => "exchange_credit",
        Afterpay => "afterpay",
    }
);

lenient_enum!(
    /// `data.account_credit_type`.
    AccountCreditType {
        VenueCredit => "venue_credit",
        UserCredit => "user_credit",
        ReferralCredit => "referral_credit",
        ExchangeCredit => "exchange_credit",
    }
);

lenient_enum!(
    /// `ticket_items[].ticket_status`.
    TicketStatus {
        Pending => "pending",
        Issued => "issued",
        Resold => "resold",
        Scanned => "scanned",
        RefundInProgress => "refund_in_progress",
        Refunded => "refunded",
        Voided => "voided",
        Transferred => "transferred",
        Expired => "expired",
        SuspectedFraud => "suspected_fraud",
        OnHold => "on_hold",
        SelectionRequired => "selection_required",
    }
);

lenient_enum!(
    /// `ticket_items[].ticket_item_type`.
    TicketItemType {
        Ticket => "ticket",
        Addon => "addon",
        Membership => "membership",
        Product => "product",
    }
);

lenient_enum!(
    /// `invoice_items[].invoice_item_type`.
    InvoiceItemType {
        Ticket => "ticket",
        Product => "product",
        Membership => "membership",
        Refund => "refund",
        Transfer => "transfer",
    }
);

/// A Showpass delivery. Only `id` is required. Fields this version does not know are not
/// read (the raw body, kept byte for byte in the stream, still holds them); the ones it
/// knows must keep to [`crate::limits`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    #[serde(default, deserialize_with = "opt_lenient")]
    pub event_type: Option<EventType>,
    #[serde(default, deserialize_with = "id::deserialize")]
    pub webhook_event_uuid: Option<String>,
    #[serde(default, deserialize_with = "opt_data")]
    pub data: Option<InvoiceData>,
}

/// `data` of an invoice event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InvoiceData {
    #[serde(default, deserialize_with = "id::deserialize")]
    pub transaction_id: Option<String>,
    #[serde(default, deserialize_with = "id::deserialize")]
    pub showpass_organization_id: Option<String>,
    #[serde(default, deserialize_with = "text::deserialize")]
    pub customer_name: Option<String>,
    #[serde(default, deserialize_with = "text::deserialize")]
    pub customer_email: Option<String>,
    #[serde(default, deserialize_with = "text::deserialize")]
    pub customer_phone_number: Option<String>,
    #[serde(default, deserialize_with = "flag::deserialize")]
    pub subscribe_to_venue: Option<bool>,
    #[serde(default, deserialize_with = "opt_lenient")]
    pub payment_type: Option<PaymentType>,
    #[serde(default, deserialize_with = "text::deserialize")]
    pub other_payment_type: Option<String>,
    #[serde(default, deserialize_with = "currency::deserialize")]
    pub currency: Option<String>,
    #[serde(flatten)]
    pub money: Amounts,
    #[serde(default, deserialize_with = "opt_lenient")]
    pub account_credit_type: Option<AccountCreditType>,
    #[serde(default, deserialize_with = "opt_lenient")]
    pub invoice_type: Option<InvoiceType>,
    #[serde(default, deserialize_with = "id::deserialize")]
    pub invoice_type_id: Option<String>,
    #[serde(default, deserialize_with = "bounded_list::deserialize")]
    pub ticket_items: Vec<TicketItem>,
    #[serde(default, deserialize_with = "bounded_list::deserialize")]
    pub invoice_items: Vec<InvoiceItem>,
    #[serde(default, deserialize_with = "text::deserialize")]
    pub partner_slug: Option<String>,
    #[serde(default, deserialize_with = "id::deserialize")]
    pub partner_external_user_id: Option<String>,
}

/// The money fields an invoice and each of its lines carry, as exact decimals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amounts {
    #[serde(default, with = "money")]
    pub discounts: Option<Decimal>,
    #[serde(default, with = "money")]
    pub net_sales: Option<Decimal>,
    #[serde(default, with = "money")]
    pub service_fees: Option<Decimal>,
    #[serde(default, with = "money")]
    pub account_credit_applied: Option<Decimal>,
    #[serde(default, with = "money")]
    pub gross_revenue: Option<Decimal>,
    #[serde(default, with = "money")]
    pub organizer_fees: Option<Decimal>,
    #[serde(default, with = "money")]
    pub total_tax: Option<Decimal>,
}

/// One ticket of an invoice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TicketItem {
    #[serde(default, deserialize_with = "id::deserialize")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "id::deserialize")]
    pub event_id: Option<String>,
    #[serde(default, deserialize_with = "text::deserialize")]
    pub event_name: Option<String>,
    #[serde(default, deserialize_with = "text::deserialize")]
    pub event_starts_on: Option<String>,
    #[serde(default, deserialize_with = "text::deserialize")]
    pub event_ends_on: Option<String>,
    #[serde(default, deserialize_with = "text::deserialize")]
    pub first_name_on_ticket: Option<String>,
    #[serde(default, deserialize_with = "text::deserialize")]
    pub last_name_on_ticket: Option<String>,
    #[serde(default, deserialize_with = "text::deserialize")]
    pub name_on_ticket: Option<String>,
    #[serde(default, deserialize_with = "text::deserialize")]
    pub email_on_ticket: Option<String>,
    #[serde(default, deserialize_with = "text::deserialize")]
    pub phone_number_on_ticket: Option<String>,
    #[serde(default, deserialize_with = "opt_lenient")]
    pub ticket_status: Option<TicketStatus>,
    #[serde(default, deserialize_with = "id::deserialize")]
    pub ticket_status_code: Option<String>,
    #[serde(default, deserialize_with = "text::deserialize")]
    pub barcode_string: Option<String>,
    #[serde(default, deserialize_with = "id::deserialize")]
    pub ticket_type_id: Option<String>,
    #[serde(default, deserialize_with = "text::deserialize")]
    pub ticket_type_name: Option<String>,
    #[serde(default, deserialize_with = "opt_lenient")]
    pub ticket_item_type: Option<TicketItemType>,
    #[serde(default, deserialize_with = "flag::deserialize")]
    pub created_by_transfer: Option<bool>,
    #[serde(default, deserialize_with = "id::deserialize")]
    pub product_id: Option<String>,
    #[serde(default, deserialize_with = "text::deserialize")]
    pub product_name: Option<String>,
    #[serde(default, deserialize_with = "id::deserialize")]
    pub product_attribute_id: Option<String>,
    #[serde(default, deserialize_with = "text::deserialize")]
    pub product_attribute_name: Option<String>,
}

/// One line of an invoice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InvoiceItem {
    #[serde(default, deserialize_with = "id::deserialize")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "opt_lenient")]
    pub invoice_item_type: Option<InvoiceItemType>,
    #[serde(default, with = "quantity")]
    pub quantity: Option<Decimal>,
    #[serde(flatten)]
    pub money: Amounts,
    #[serde(default, deserialize_with = "id::deserialize")]
    pub event_id: Option<String>,
    #[serde(default, deserialize_with = "text::deserialize")]
    pub event_name: Option<String>,
    #[serde(default, deserialize_with = "id::deserialize")]
    pub event_facebook_id: Option<String>,
    #[serde(default, deserialize_with = "id::deserialize")]
    pub ticket_type_id: Option<String>,
    #[serde(default, deserialize_with = "text::deserialize")]
    pub ticket_type_name: Option<String>,
    #[serde(default, deserialize_with = "id::deserialize")]
    pub ticket_type_external_id: Option<String>,
    #[serde(default, deserialize_with = "id::deserialize")]
    pub product_id: Option<String>,
    #[serde(default, deserialize_with = "text::deserialize")]
    pub product_name: Option<String>,
    #[serde(default, deserialize_with = "id::deserialize")]
    pub product_attribute_id: Option<String>,
    #[serde(default, deserialize_with = "text::deserialize")]
    pub product_attribute_name: Option<String>,
}

impl Delivery {
    /// Parses a raw body into the typed payload; an error here makes the event a poison event.
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

/// An optional lenient enum: null, blank or missing are `None`.
fn opt_lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(v) => T::deserialize(v)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// `data`: null or missing is `None`.
fn opt_data<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<InvoiceData>, D::Error> {
    Option::<InvoiceData>::deserialize(d)
}

#[cfg(test)]
mod tests;
