//! The platform's words, each written once: what ingest records, the projector stores and the
//! api serves. Every word has one text, the one in the database, on the wire and in the
//! OpenAPI document; `as_str` and `parse` are its only conversions. Adding a value is a change
//! here that the compiler then walks through every `match` (and a migration where a `CHECK`
//! constraint lists the values: `tests/vocabulary.rs` of the projector compares them).
//!
//! What Showpass sends (event types, ticket statuses, payment types) is lenient: unknown
//! values are kept as received. Those enums live with the payload and are re-exported here.

use chrono::{DateTime, TimeDelta, Utc};

pub use crate::delivery::{EventType, TicketStatus};
pub use crate::headers as header;

/// Defines a closed set of words: the enum, `ALL`, `as_str`, `parse`, `Display`, serde.
macro_rules! words {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The value's text.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// The value of a text, exactly as written by `as_str`.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }

            /// `'a', 'b'`: the values as an SQL list, for a `CHECK` or an `IN (...)`.
            pub fn sql_list(values: &[Self]) -> String {
                values
                    .iter()
                    .map(|v| format!("'{}'", v.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }

        impl Word for $name {
            const ALL: &'static [Self] = $name::ALL;
            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s).ok_or(UnknownWord(stringify!($name)))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(concat!("not a known ", stringify!($name)))
                })
            }
        }
    };
}

/// A closed set of words, for code that takes any of them (a query parameter, a test of the
/// `CHECK` constraints).
pub trait Word: Copy + Sized + 'static {
    /// Every value.
    const ALL: &'static [Self];
    /// The value's text.
    fn as_str(self) -> &'static str;
}

/// A text that is none of a vocabulary's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a known {0}")]
pub struct UnknownWord(pub &'static str);

/// The endpoint of `/webhooks/showpass`, and of records that name none.
pub const DEFAULT_ENDPOINT: &str = "default";

words! {
    /// Where an order stands, derived from its invoices and tickets (`orders.status`).
    OrderStatus {
        Purchased => "purchased",
        PartiallyRefunded => "partially_refunded",
        Refunded => "refunded",
        Voided => "voided",
        Transferred => "transferred",
    }
}

words! {
    /// How an order came about (`orders.kind`).
    OrderKind {
        Purchase => "purchase",
        Transfer => "transfer",
        Other => "other",
    }
}

words! {
    /// What ingest answered a delivery (`deliveries.outcome`, `Showpass-Outcome`).
    Outcome {
        Accepted => "accepted",
        Duplicate => "duplicate",
        Rejected => "rejected",
    }
}

words! {
    /// What the projector did with a delivery (`deliveries.processing`).
    Processing {
        /// Not projected yet.
        Pending => "pending",
        /// Its effects are in the read models, once.
        Applied => "applied",
        /// A redelivery of an event already applied.
        Duplicate => "duplicate",
        /// Nothing to apply (a test, an unknown event type).
        Skipped => "skipped",
        /// It cannot be applied; the error says why.
        Failed => "failed",
    }
}

words! {
    /// A business event that should have arrived and did not (`gaps.kind`).
    GapKind {
        /// A refund, void or transferred arrived for a transaction whose purchase never did.
        MissingPurchase => "missing_purchase",
        /// One side of a transfer arrived and, an hour later, not the other.
        UnmatchedTransfer => "unmatched_transfer",
    }
}

words! {
    /// What deserves a person's look (`anomalies.kind`); never a change to the money.
    AnomalyKind {
        /// An invoice's totals differ from the sum of its lines by more than 0.01.
        TotalsMismatch => "totals_mismatch",
        /// An order's refunds exceed what it was sold for.
        RefundExceedsPurchase => "refund_exceeds_purchase",
        /// A refund or void in another currency than its purchase.
        CurrencyMismatch => "currency_mismatch",
        /// The same idempotency key came again with a different body.
        ConflictingRedelivery => "conflicting_redelivery",
        /// The signed `id` was first accepted with another transaction.
        IdTransactionMismatch => "id_transaction_mismatch",
    }
}

words! {
    /// Why ingest refused a delivery (`reason` of a problem, `Showpass-Reason`).
    Reason {
        UnknownEndpoint => "unknown_endpoint",
        SourceNotAllowed => "source_not_allowed",
        MissingSignature => "missing_signature",
        BadSignature => "bad_signature",
        BodyTooLarge => "body_too_large",
        BodyTimeout => "body_timeout",
        BodyUnreadable => "body_unreadable",
        InvalidBody => "invalid_body",
        OrganizationNotAllowed => "organization_not_allowed",
        IdConflict => "id_conflict",
        Busy => "busy",
        NatsUnavailable => "nats_unavailable",
        StreamMissing => "stream_missing",
        PublishFailed => "publish_failed",
        PublishTimeout => "publish_timeout",
    }
}

words! {
    /// A sales aggregate: cells of sales keyed by its columns, in a 15-minute tier and a
    /// daily one.
    Grain {
        /// Per ticket type of an event.
        TicketType => "ticket_type",
        /// Per event.
        Event => "event",
        /// Per organization, by the order's attributes (payment type, currency) only: every
        /// order once.
        OrderAttrs => "order_attrs",
    }
}

impl Grain {
    /// The table of the 15-minute tier.
    pub const fn table(self) -> &'static str {
        match self {
            Grain::TicketType => "sales_by_ticket_type",
            Grain::Event => "sales_by_event",
            Grain::OrderAttrs => "sales_by_order_attrs",
        }
    }

    /// The table of the daily tier.
    pub const fn daily_table(self) -> &'static str {
        match self {
            Grain::TicketType => "sales_by_ticket_type_daily",
            Grain::Event => "sales_by_event_daily",
            Grain::OrderAttrs => "sales_by_order_attrs_daily",
        }
    }

    /// The table of the monthly tier.
    pub const fn monthly_table(self) -> &'static str {
        match self {
            Grain::TicketType => "sales_by_ticket_type_monthly",
            Grain::Event => "sales_by_event_monthly",
            Grain::OrderAttrs => "sales_by_order_attrs_monthly",
        }
    }

    /// The table of a tier.
    pub const fn table_of(self, tier: Tier) -> &'static str {
        match tier {
            Tier::Quarter => self.table(),
            Tier::Day => self.daily_table(),
            Tier::Month => self.monthly_table(),
        }
    }

    /// The columns that key a cell, before `bucket, payment_type, currency`.
    pub const fn key_columns(self) -> &'static [&'static str] {
        match self {
            Grain::TicketType => &["org_id", "event_id", "ticket_type_id"],
            Grain::Event => &["org_id", "event_id"],
            Grain::OrderAttrs => &["org_id"],
        }
    }

    /// Whether its cells have an `event_id`.
    pub const fn has_event(self) -> bool {
        !matches!(self, Grain::OrderAttrs)
    }

    /// The SQL that rolls the whole 15-minute tier up into a coarser one (the projector keeps
    /// the coarser tiers in step batch by batch; this is for tables loaded at once).
    pub fn rollup_sql(self, tier: Tier) -> String {
        let keys = self.key_columns().join(", ");
        let groups = (1..=self.key_columns().len() + 3)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let unit = match tier {
            Tier::Month => "month",
            Tier::Day | Tier::Quarter => "day",
        };
        format!(
            "INSERT INTO {to} SELECT {keys}, date_trunc('{unit}', bucket, 'UTC'), payment_type, currency, \
             sum(orders), sum(tickets), sum(gross_revenue), sum(net_sales), sum(service_fees), \
             sum(total_tax), sum(discounts), sum(refunds) FROM {table} GROUP BY {groups}",
            to = self.table_of(tier),
            table = self.table(),
        )
    }
}

/// The tiers of a sales aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// 15-minute buckets: fine enough for any time zone's days.
    Quarter,
    /// Whole UTC days.
    Day,
    /// Whole UTC calendar months: what an all-time or a long summary reads.
    Month,
}

impl Tier {
    /// The tiers the projector keeps beside the 15-minute one, finest first.
    pub const COARSER: [Tier; 2] = [Tier::Day, Tier::Month];
}

impl Tier {
    /// The bucket of this tier that `at` falls in (its start).
    pub fn bucket(self, at: DateTime<Utc>) -> DateTime<Utc> {
        use chrono::{Datelike as _, DurationRound as _, TimeZone as _};
        let width = match self {
            Tier::Quarter => TimeDelta::minutes(15),
            Tier::Day => TimeDelta::days(1),
            Tier::Month => {
                return Utc
                    .with_ymd_and_hms(at.year(), at.month(), 1, 0, 0, 0)
                    .single()
                    .unwrap_or(at);
            }
        };
        at.duration_trunc(width).unwrap_or(at)
    }
}

/// A statement with the vocabulary's words put in, each as an SQL string: `{PURCHASE}`,
/// `{REFUND}`, `{VOID}`, `{TRANSFER}` (event types), `{OPENS}` (purchases and transfers),
/// `{TAKES_BACK}` (refunds and voids), `{K_*}` (order kinds), `{S_*}` (order statuses) and
/// `{T_*}` (ticket statuses).
pub fn fill_sql(sql: &str) -> String {
    let filled = fill_words(sql);
    debug_assert!(
        unfilled(&filled).is_none(),
        "a placeholder the vocabulary does not know: {:?}",
        unfilled(&filled)
    );
    filled
}

fn fill_words(sql: &str) -> String {
    fn q(s: &str) -> String {
        format!("'{s}'")
    }
    let e = |t: EventType| q(t.as_str());
    let out = sql
        .replace(
            "{OPENS}",
            &format!(
                "{}, {}",
                e(EventType::InvoicePurchase),
                e(EventType::InvoiceTransfer)
            ),
        )
        .replace(
            "{TAKES_BACK}",
            &format!(
                "{}, {}",
                e(EventType::InvoiceRefund),
                e(EventType::InvoiceVoid)
            ),
        )
        .replace("{PURCHASE}", &e(EventType::InvoicePurchase))
        .replace("{REFUND}", &e(EventType::InvoiceRefund))
        .replace("{VOID}", &e(EventType::InvoiceVoid))
        .replace("{TRANSFERRED}", &e(EventType::InvoiceTransferred))
        .replace("{TRANSFER}", &e(EventType::InvoiceTransfer));
    let out = OrderKind::ALL.iter().fold(out, |s, k| {
        s.replace(
            &format!("{{K_{}}}", k.as_str().to_uppercase()),
            &q(k.as_str()),
        )
    });
    let out = GapKind::ALL.iter().fold(out, |s, k| {
        s.replace(
            &format!("{{G_{}}}", k.as_str().to_uppercase()),
            &q(k.as_str()),
        )
    });
    let out = AnomalyKind::ALL.iter().fold(out, |s, k| {
        s.replace(
            &format!("{{A_{}}}", k.as_str().to_uppercase()),
            &q(k.as_str()),
        )
    });
    let out = OrderStatus::ALL.iter().fold(out, |s, k| {
        s.replace(
            &format!("{{S_{}}}", k.as_str().to_uppercase()),
            &q(k.as_str()),
        )
    });
    [
        TicketStatus::Refunded,
        TicketStatus::Voided,
        TicketStatus::Transferred,
        TicketStatus::Resold,
    ]
    .iter()
    .fold(out, |s, t| {
        s.replace(
            &format!("{{T_{}}}", t.as_str().to_uppercase()),
            &q(t.as_str()),
        )
    })
}

/// The first `{UPPER_CASE}` placeholder left in a statement, if any.
pub fn unfilled(sql: &str) -> Option<&str> {
    sql.split('{').skip(1).find_map(|rest| {
        let word = rest.split('}').next()?;
        (rest.contains('}')
            && !word.is_empty()
            && word.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        .then_some(word)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_of_a_statement_is_put_in() {
        let sql =
            fill_sql("{OPENS} {TAKES_BACK} {PURCHASE} {K_OTHER} {S_PARTIALLY_REFUNDED} {T_RESOLD}");
        assert_eq!(
            sql,
            "'invoice.purchase', 'invoice.transfer' 'invoice.refund', 'invoice.void' \
             'invoice.purchase' 'other' 'partially_refunded' 'resold'"
        );
    }

    #[test]
    fn every_word_reads_back_as_itself() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(*s));
        }
        for p in Processing::ALL {
            assert_eq!(p.as_str().parse::<Processing>(), Ok(*p));
        }
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(*r));
        }
        assert_eq!(Outcome::parse("Accepted"), None, "exact text only");
        assert_eq!(
            serde_json::to_string(&Processing::Applied).unwrap(),
            "\"applied\""
        );
    }

    #[test]
    fn an_sql_list_quotes_each_value() {
        assert_eq!(
            Outcome::sql_list(Outcome::ALL),
            "'accepted', 'duplicate', 'rejected'"
        );
    }

    #[test]
    fn buckets_are_quarter_hours_and_utc_days() {
        let at: DateTime<Utc> = "2026-11-27T23:59:59Z".parse().unwrap();
        assert_eq!(
            Tier::Quarter.bucket(at),
            "2026-11-27T23:45:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            Tier::Day.bucket(at),
            "2026-11-27T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn rollups_group_by_every_key_and_truncate_to_their_tier() {
        let sql = Grain::TicketType.rollup_sql(Tier::Day);
        assert!(sql.starts_with("INSERT INTO sales_by_ticket_type_daily SELECT org_id, event_id, ticket_type_id, date_trunc('day'"));
        assert!(sql.ends_with("FROM sales_by_ticket_type GROUP BY 1, 2, 3, 4, 5, 6"));
        let sql = Grain::OrderAttrs.rollup_sql(Tier::Month);
        assert!(sql.starts_with(
            "INSERT INTO sales_by_order_attrs_monthly SELECT org_id, date_trunc('month'"
        ));
        assert!(sql.ends_with("GROUP BY 1, 2, 3, 4"));
    }

    #[test]
    fn a_month_bucket_is_its_first_utc_midnight() {
        use chrono::TimeZone as _;
        let at = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(
            Tier::Month.bucket(at),
            Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
        );
        let first = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
        assert_eq!(Tier::Month.bucket(first), first);
    }
}
