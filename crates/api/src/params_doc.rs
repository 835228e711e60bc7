//! The OpenAPI schemas of the query parameters: exactly what `params` and `page` enforce, so a
//! client generated from the document, or a fuzzer, sends what the server takes and nothing
//! else. Each is a type for `#[param(value_type = Option<params_doc::X>, inline)]` (so the
//! field's doc comment stays its description); enums come from the vocabulary. The response
//! fields holding a word say so with `*_field` (`#[schema(schema_with = ...)]`).

use showpass_payload::vocab::{
    AnomalyKind, GapKind, OrderKind, OrderStatus, Outcome, Processing, Word,
};
use utoipa::openapi::schema::{
    AnyOfBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};

/// Text without NUL (`params::text` refuses it).
const NO_NUL: &str = "^[^\\u0000]*$";

fn text(max: usize) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(max))
        .pattern(Some(NO_NUL))
        .build()
        .into()
}

fn words_object(words: impl IntoIterator<Item = &'static str>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(words))
}

fn one_of_words(words: impl IntoIterator<Item = &'static str>) -> Schema {
    words_object(words).build().into()
}

/// A response field holding one of `words`, described, with an example.
fn word_field<W: Word>(description: &str, example: W) -> Schema {
    words_object(W::ALL.iter().map(|w| w.as_str()))
        .description(Some(description))
        .examples([serde_json::Value::from(example.as_str())])
        .build()
        .into()
}

/// `OrderOut.kind`.
pub fn order_kind_field() -> Schema {
    word_field(
        "`purchase` for a sale, `transfer` for tickets received by transfer.",
        OrderKind::Purchase,
    )
}

/// `OrderOut.status`.
pub fn order_status_field() -> Schema {
    word_field(
        "`purchased`, `partially_refunded` (some tickets refunded), `refunded` (all), `voided`, \
         or `transferred` (all tickets transferred away).",
        OrderStatus::Purchased,
    )
}

/// `DeliveryOut.outcome`.
pub fn outcome_field() -> Schema {
    word_field("What ingest answered.", Outcome::Accepted)
}

/// `DeliveryOut.processing`.
pub fn processing_field() -> Schema {
    word_field("What the projector did with it.", Processing::Applied)
}

/// `GapOut.kind`.
pub fn gap_kind_field() -> Schema {
    word_field(
        "`missing_purchase`: a refund, void or transferred arrived for a transaction whose \
         purchase never did; `unmatched_transfer`: one side of a transfer, an hour without the \
         other.",
        GapKind::MissingPurchase,
    )
}

/// `AnomalyOut.kind`.
pub fn anomaly_kind_field() -> Schema {
    word_field(
        "`totals_mismatch`, `refund_exceeds_purchase`, `currency_mismatch`, \
         `conflicting_redelivery` or `id_transaction_mismatch`.",
        AnomalyKind::TotalsMismatch,
    )
}

/// An organization, event, transaction or endpoint id: at most 100 characters.
pub fn id() -> Schema {
    text(100)
}

/// Free text (`q`, a barcode, an event type): at most 200 characters.
pub fn query() -> Schema {
    text(200)
}

/// A ticket status: letters and `_`, at most 40.
pub fn ticket_status() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(40))
        .pattern(Some("^[A-Za-z_]*$"))
        .build()
        .into()
}

/// `limit`: an integer from 1 to 500 (the default `API_MAX_LIMIT`).
pub fn limit() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(500))
        .build()
        .into()
}

/// A cursor as the server hands it out: base64url payload, a dot, base64url signature.
pub fn cursor() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(crate::page::MAX_CURSOR))
        .pattern(Some("^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$"))
        .build()
        .into()
}

/// `from` and `to`: a date or an RFC 3339 time, in the years 1 to 9999.
pub fn when() -> Schema {
    let year = "^(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-";
    let of = |format| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(format)))
            .pattern(Some(year))
            .build()
    };
    AnyOfBuilder::new()
        .item(of(KnownFormat::Date))
        .item(of(KnownFormat::DateTime))
        .build()
        .into()
}

/// An IANA time zone name, one of those the server knows.
pub fn time_zone() -> Schema {
    one_of_words(crate::sales::zones())
}

pub fn order_status() -> Schema {
    one_of_words(OrderStatus::ALL.iter().map(|w| w.as_str()))
}

pub fn outcome() -> Schema {
    one_of_words(<Outcome as Word>::ALL.iter().map(|w| w.as_str()))
}

pub fn processing() -> Schema {
    one_of_words(<Processing as Word>::ALL.iter().map(|w| w.as_str()))
}

pub fn gap_kind() -> Schema {
    one_of_words(<GapKind as Word>::ALL.iter().map(|w| w.as_str()))
}

pub fn anomaly_kind() -> Schema {
    one_of_words(<AnomalyKind as Word>::ALL.iter().map(|w| w.as_str()))
}

pub fn group_by() -> Schema {
    one_of_words(crate::sales::GROUPS.iter().copied())
}

pub fn format() -> Schema {
    one_of_words(["json", "csv"])
}

/// Defines a parameter type whose schema is `$schema()`.
macro_rules! param_types {
    ($($(#[$m:meta])* $name:ident => $schema:ident,)+) => {
        $(
            $(#[$m])*
            pub struct $name;

            impl utoipa::PartialSchema for $name {
                fn schema() -> utoipa::openapi::RefOr<Schema> {
                    $schema().into()
                }
            }

            impl utoipa::ToSchema for $name {}
        )+
    };
}

param_types! {
    Id => id,
    Query => query,
    TicketStatusText => ticket_status,
    Limit => limit,
    CursorText => cursor,
    When => when,
    TimeZone => time_zone,
    OrderStatusWord => order_status,
    OutcomeWord => outcome,
    ProcessingWord => processing,
    GapKindWord => gap_kind,
    AnomalyKindWord => anomaly_kind,
    GroupBy => group_by,
    Format => format,
}
