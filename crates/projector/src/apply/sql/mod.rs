//! The statements of a batch. Each writes many rows at once from arrays (`UNNEST`), so a batch
//! costs a fixed number of round trips whatever its size.

mod customers;
mod erased;
mod flags;
mod invoices;
mod ledger;
mod orders;
mod sales;
mod tickets;

pub use customers::*;
pub use erased::*;
pub use flags::*;
pub use invoices::*;
pub use ledger::*;
pub use orders::*;
pub use sales::*;
pub use tickets::*;

pub(crate) use showpass_payload::vocab::fill_sql as words;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_statement_keeps_a_placeholder() {
        for sql in [
            &*invoices::ORDER_CURRENCIES,
            &*invoices::WAITING_SALES,
            &*invoices::BOOK_WAITING,
            &*orders::RECOMPUTE_ORDERS,
            &*customers::RECOMPUTE_CUSTOMERS,
            &*flags::MATCH_TRANSFERS,
            &*flags::DELETE_TRANSFER_GAPS,
            &*flags::INSERT_TRANSFER_GAPS,
            &*flags::DELETE_ORDER_FLAGS,
            &*flags::INSERT_MISSING_PURCHASES,
            &*flags::INSERT_ORDER_ANOMALIES,
            &*flags::FLAG_DELIVERIES,
        ] {
            assert_eq!(showpass_payload::vocab::unfilled(sql), None, "{sql}");
        }
    }
}
