use super::*;
use serde_json::Map;

const DOC_2023: &[u8] = include_bytes!("../../fixtures/showpass/purchase-doc-2023.json");
const DOC_2026: &[u8] = include_bytes!("../../fixtures/showpass/purchase-doc-2026.json");

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
    let err =
        Delivery::parse(format!(r#"{{"id":"x","data":{{"transaction_id":"{id}"}}}}"#).as_bytes())
            .unwrap_err();
    assert!(err.to_string().contains("longer than the 255"), "{err}");
    let name = "é".repeat(600);
    let d =
        Delivery::parse(format!(r#"{{"id":"x","data":{{"customer_name":"{name}"}}}}"#).as_bytes())
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
