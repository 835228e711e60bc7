//! The bounds a delivery must keep to be understood. Beyond them an event is refused at parse
//! time (the projector records it `failed` with the reason), so nothing downstream can
//! overflow, allocate without bound, or write a row PostgreSQL cannot index.
//!
//! Each bound is far above anything real traffic carries: amounts of a trillion, a million of
//! one item, 10,000 lines (a 1 MiB body holds about 1,500 real ticket lines), ids of 255 bytes.

use rust_decimal::Decimal;

/// Largest absolute money amount: 10^12.
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(0xD4A5_1000, 0xE8, 0, false, 0);

/// Largest absolute quantity of an invoice line: 10^6.
pub const MAX_QUANTITY: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// Most entries of `ticket_items` or `invoice_items`.
pub const MAX_ITEMS: usize = 10_000;

/// Longest id (`transaction_id`, a ticket's `id`, `event_id`...), in bytes.
pub const MAX_ID_BYTES: usize = 255;

/// Longest free text kept (names, e-mails, event names), in bytes; longer text is cut at a
/// character boundary.
pub const MAX_TEXT_BYTES: usize = 1_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bounds_are_the_round_numbers_they_claim() {
        assert_eq!(MAX_AMOUNT, Decimal::from(1_000_000_000_000i64));
        assert_eq!(MAX_QUANTITY, Decimal::from(1_000_000));
    }
}
