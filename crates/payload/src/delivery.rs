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
mod tests {
    use super::*;
    use serde_json::Map;

    const DOC_2023: &[u8] = include_bytes!("../fixtures/showpass/purchase-doc-2023.json");
    const DOC_2026: &[u8] = include_bytes!("../fixtures/showpass/purchase-doc-2026.json");

    #[test]
    fn the_2023_sample_reads_numbers_and_capitalised_enums() {
        let d = Delivery::parse(DOC_2023).unwrap();
        assert_eq!(d.event_type, Some(EventType::InvoicePurchase));
        let data = d.data.unwrap();
        assert_eq!(data.showpass_organization_id.as_deref(), Some("20"));
        assert_eq!(data.payment_type, Some(PaymentType::Credit));
        assert_eq!(data.invoice_type, Some(InvoiceType::Sale));
        assert_eq!(data.money.net_sales, Some(Decimal::new(107, 0)));
        assert_eq!(data.customer_phone_number, None);
        assert_eq!(data.subscribe_to_venue, Some(true));
        let ticket = &data.ticket_items[0];
        assert_eq!(ticket.id.as_deref(), Some("7"));
        assert_eq!(ticket.ticket_status, Some(TicketStatus::Issued));
        assert_eq!(
            data.invoice_items[0].invoice_item_type,
            Some(InvoiceItemType::Ticket)
        );
    }

    #[test]
    fn the_2026_sample_reads_strings_and_lower_case_enums() {
        let d = Delivery::parse(DOC_2026).unwrap();
        assert_eq!(d.event_type, Some(EventType::InvoicePurchase));
        let data = d.data.unwrap();
        assert_eq!(data.money.net_sales, Some(Decimal::new(584, 2)));
        assert_eq!(data.money.total_tax, Some(Decimal::new(25, 2)));
        assert_eq!(data.ticket_items[0].id.as_deref(), Some("41349751"));
        assert_eq!(data.ticket_items[0].name_on_ticket, None);
        assert_eq!(
            data.invoice_items[0].money.gross_revenue,
            Some(Decimal::new(520, 2))
        );
    }

    #[test]
    fn unknown_fields_are_read_past_and_unknown_event_types_kept() {
        let d = Delivery::parse(
            br#"{"id":"x","event_type":"Invoice.Exchange","shiny":1,
                 "data":{"new_field":[1],"ticket_items":null}}"#,
        )
        .unwrap();
        assert_eq!(
            d.event_type,
            Some(EventType::Other("Invoice.Exchange".into()))
        );
        let data = d.data.unwrap();
        assert!(data.ticket_items.is_empty());
    }

    #[test]
    fn nul_characters_are_dropped_from_text_no_database_could_store() {
        let d = Delivery::parse(
            br#"{"id":"x","event_type":"invoice.\u0000purchase","data":{"customer_name":"A\u0000B","currency":"\u0000"}}"#,
        )
        .unwrap();
        let data = d.data.unwrap();
        assert_eq!(data.customer_name.as_deref(), Some("AB"));
        assert_eq!(data.currency, None);
        assert_eq!(d.event_type, Some(EventType::InvoicePurchase));
    }

    #[test]
    fn a_minimal_delivery_is_only_an_id() {
        let d = Delivery::parse(br#"{"id":"x"}"#).unwrap();
        assert_eq!(d.event_type, None);
        assert_eq!(d.data, None);
    }

    #[test]
    fn bad_money_makes_a_poison_event() {
        let err = Delivery::parse(br#"{"id":"x","data":{"net_sales":"twelve"}}"#).unwrap_err();
        assert!(err.to_string().contains("invalid money amount"), "{err}");
    }

    /// The amount that made the sales fold overflow (issue 11) is refused when parsed.
    #[test]
    fn amounts_beyond_a_trillion_are_refused_and_a_trillion_is_not() {
        for body in [
            r#"{"id":"x","data":{"invoice_items":[{"net_sales":"79228162514264337593543950335"}]}}"#,
            r#"{"id":"x","data":{"net_sales":-1000000000000.01}}"#,
            r#"{"id":"x","data":{"gross_revenue":"1e13"}}"#,
        ] {
            let err = Delivery::parse(body.as_bytes()).unwrap_err();
            assert!(err.to_string().contains("out of range"), "{body}: {err}");
        }
        let d = Delivery::parse(br#"{"id":"x","data":{"net_sales":"-1000000000000"}}"#).unwrap();
        assert_eq!(
            d.data.unwrap().money.net_sales,
            Some(-crate::limits::MAX_AMOUNT)
        );
    }

    /// Issue 11 review: every text that becomes a sales key is bounded.
    #[test]
    fn currencies_are_bounded_and_unknown_enum_values_cut() {
        let err = Delivery::parse(
            format!(r#"{{"id":"x","data":{{"currency":"{}"}}}}"#, "C".repeat(17)).as_bytes(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("currency"), "{err}");
        let d = Delivery::parse(
            format!(
                r#"{{"id":"x","data":{{"payment_type":"{}"}}}}"#,
                "p".repeat(500)
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(d.data.unwrap().payment_type.unwrap().as_str().len(), 64);
    }

    #[test]
    fn quantities_beyond_a_million_are_refused() {
        let err = Delivery::parse(br#"{"id":"x","data":{"invoice_items":[{"quantity":1000001}]}}"#)
            .unwrap_err();
        assert!(err.to_string().contains("quantity"), "{err}");
    }

    #[test]
    fn lists_longer_than_the_limit_are_refused_and_the_limit_is_not() {
        let list = |n: usize| vec!["{}"; n].join(",");
        let body = |n| format!(r#"{{"id":"x","data":{{"ticket_items":[{}]}}}}"#, list(n));
        let d = Delivery::parse(body(crate::limits::MAX_ITEMS).as_bytes()).unwrap();
        assert_eq!(d.data.unwrap().ticket_items.len(), crate::limits::MAX_ITEMS);
        let err = Delivery::parse(body(100_000).as_bytes()).unwrap_err();
        assert!(err.to_string().contains("more than 10000 entries"), "{err}");
    }

    #[test]
    fn overlong_ids_are_refused_and_overlong_text_is_cut() {
        let id = "7".repeat(256);
        let err = Delivery::parse(
            format!(r#"{{"id":"x","data":{{"transaction_id":"{id}"}}}}"#).as_bytes(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("longer than the 255"), "{err}");
        let name = "é".repeat(600);
        let d = Delivery::parse(
            format!(r#"{{"id":"x","data":{{"customer_name":"{name}"}}}}"#).as_bytes(),
        )
        .unwrap();
        let cut = d.data.unwrap().customer_name.unwrap();
        assert_eq!(cut.len(), 1_000);
        assert!(name.starts_with(&cut));
    }

    #[test]
    fn enums_are_written_in_lower_case() {
        let d = Delivery::parse(DOC_2023).unwrap();
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["data"]["payment_type"], "credit");
        assert_eq!(v["data"]["net_sales"], "107");
        assert_eq!(v["data"]["ticket_items"][0]["ticket_status"], "issued");
    }

    mod variations {
        use super::*;
        use proptest::prelude::*;

        /// A letter-case variation of `s`, chosen by `mask`.
        fn recase(s: &str, mask: u64) -> String {
            s.chars()
                .enumerate()
                .map(|(i, c)| {
                    if mask >> (i % 64) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect()
        }

        proptest! {
            /// However Showpass writes the same facts (numbers or strings, any case, any key
            /// order, extra fields), they parse to the same delivery.
            #[test]
            fn every_spelling_of_a_delivery_parses_the_same(
                cents in -10_000_000i64..10_000_000,
                money_as_string in any::<bool>(),
                org in 0u32..100_000,
                org_as_string in any::<bool>(),
                mask in any::<u64>(),
                reverse_keys in any::<bool>(),
                extra in proptest::option::of("[a-z]{1,8}"),
            ) {
                let amount = Decimal::new(cents, 2);
                let money = if money_as_string {
                    serde_json::json!(amount.to_string())
                } else {
                    serde_json::from_str::<Value>(&amount.to_string()).unwrap()
                };
                let org_v = if org_as_string { serde_json::json!(org.to_string()) } else { serde_json::json!(org) };
                let mut fields = vec![
                    ("transaction_id", serde_json::json!("t-1")),
                    ("showpass_organization_id", org_v),
                    ("net_sales", money),
                    ("payment_type", serde_json::json!(recase("direct_deposit", mask))),
                    ("invoice_type", serde_json::json!(recase("refund", mask.rotate_left(7)))),
                ];
                if reverse_keys { fields.reverse(); }
                let mut data = Map::new();
                for (k, v) in fields { data.insert(k.into(), v); }
                if let Some(e) = &extra { data.insert(format!("x_{e}"), serde_json::json!(e)); }
                let body = serde_json::json!({
                    "id": "t-1",
                    "event_type": recase("invoice.refund", mask.rotate_left(13)),
                    "data": data,
                });
                let d = Delivery::parse(&serde_json::to_vec(&body).unwrap()).unwrap();
                prop_assert_eq!(d.event_type, Some(EventType::InvoiceRefund));
                let data = d.data.unwrap();
                prop_assert_eq!(data.money.net_sales, Some(amount));
                let org_text = org.to_string();
                prop_assert_eq!(data.showpass_organization_id.as_deref(), Some(org_text.as_str()));
                prop_assert_eq!(data.payment_type, Some(PaymentType::DirectDeposit));
                prop_assert_eq!(data.invoice_type, Some(InvoiceType::Refund));
            }

            /// Parsing arbitrary bytes never panics; it answers a delivery or an error.
            #[test]
            fn parsing_any_bytes_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = Delivery::parse(&body);
                let _ = crate::Envelope::parse(&body);
            }
        }
    }
}
