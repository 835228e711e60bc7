//! The pure part of applying a batch: ticket states and sales deltas.
//!
//! Both are commutative over the events of one ticket or order, so a refund that arrives
//! before its purchase ends in the same state as in order:
//! - a ticket's status only moves to a higher [`status_rank`];
//! - a ticket counts as sold once (+1 in its purchase's cell) and as cancelled once (−1 in its
//!   cancelling event's cell), and the −1 waits until the sale has been seen.
//!
//! Every sum is checked: an overflow is an [`Overflow`] error that fails the events behind it,
//! never a panic (the lints below keep it so).
#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::as_conversions
)]

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use showpass_payload::vocab::{Grain, Tier};

use crate::plan::{Invoice, Kind, Money, TicketIn, is_cancelled, status_rank};

/// A ticket row as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketRow {
    pub org_id: String,
    pub id: String,
    pub transaction_id: String,
    pub event_id: Option<String>,
    pub event_name: Option<String>,
    pub ticket_type_id: Option<String>,
    pub ticket_type_name: Option<String>,
    pub barcode: Option<String>,
    pub status: String,
    pub status_rank: i32,
    pub name_on_ticket: Option<String>,
    pub email_on_ticket: Option<String>,
    pub created_by_transfer: bool,
    pub sold: bool,
    pub cancelled: bool,
    /// Where the cancellation is counted: (bucket, payment type, currency).
    pub cancel_cell: Option<(DateTime<Utc>, String, String)>,
    pub updated_at: DateTime<Utc>,
}

/// The cell keys of the three sales tables.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cell {
    pub org_id: String,
    pub event_id: String,
    pub ticket_type_id: String,
    pub bucket: DateTime<Utc>,
    pub payment_type: String,
    pub currency: String,
}

/// A sum that no longer fits its type. The payload's bounds make it unreachable from one
/// delivery; should a batch ever get there, its events are applied one by one and the one
/// that overflows is recorded `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a sales sum overflowed")]
pub struct Overflow;

fn add_to(slot: &mut Decimal, v: Decimal) -> Result<(), Overflow> {
    *slot = slot.checked_add(v).ok_or(Overflow)?;
    Ok(())
}

fn count_to(slot: &mut i64, v: i64) -> Result<(), Overflow> {
    *slot = slot.checked_add(v).ok_or(Overflow)?;
    Ok(())
}

/// A cell without its organization and currency: what a stored refund waiting for its
/// order's currency adds, summed by the database.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CellKey {
    pub event_id: String,
    pub ticket_type_id: String,
    pub bucket: DateTime<Utc>,
    pub payment_type: String,
}

impl CellKey {
    /// The cell in `org` and `currency`.
    pub fn with(self, org: &str, currency: &str) -> Cell {
        Cell {
            org_id: org.to_owned(),
            event_id: self.event_id,
            ticket_type_id: self.ticket_type_id,
            bucket: self.bucket,
            payment_type: self.payment_type,
            currency: currency.to_owned(),
        }
    }
}

/// Adds an amount to a cell of every grain.
pub fn add_cell(deltas: &mut SalesDeltas, cell: Cell, acc: Acc) -> Result<(), Overflow> {
    deltas.add(cell, acc)
}

/// What one cell gains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Acc {
    pub orders: i64,
    pub tickets: i64,
    pub gross_revenue: Decimal,
    pub net_sales: Decimal,
    pub service_fees: Decimal,
    pub total_tax: Decimal,
    pub discounts: Decimal,
    pub refunds: Decimal,
}

impl Acc {
    fn add_money(&mut self, kind: Kind, m: &Money) -> Result<(), Overflow> {
        // Purchases add; refunds and voids subtract the absolute value, whatever its sign.
        let back = kind.takes_money_back();
        let signed = |v: Decimal| {
            if back {
                Decimal::ZERO.checked_sub(v.abs()).ok_or(Overflow)
            } else {
                Ok(v)
            }
        };
        add_to(&mut self.gross_revenue, signed(m.gross_revenue)?)?;
        add_to(&mut self.net_sales, signed(m.net_sales)?)?;
        add_to(&mut self.service_fees, signed(m.service_fees)?)?;
        add_to(&mut self.total_tax, signed(m.total_tax)?)?;
        add_to(&mut self.discounts, signed(m.discounts)?)?;
        if back {
            add_to(&mut self.refunds, m.net_sales.abs())?;
        }
        Ok(())
    }

    pub fn add(&mut self, o: &Acc) -> Result<(), Overflow> {
        count_to(&mut self.orders, o.orders)?;
        count_to(&mut self.tickets, o.tickets)?;
        add_to(&mut self.gross_revenue, o.gross_revenue)?;
        add_to(&mut self.net_sales, o.net_sales)?;
        add_to(&mut self.service_fees, o.service_fees)?;
        add_to(&mut self.total_tax, o.total_tax)?;
        add_to(&mut self.discounts, o.discounts)?;
        add_to(&mut self.refunds, o.refunds)
    }
}

/// The sales deltas of a batch, per table, at the finest grain each table keeps.
#[derive(Debug, Default)]
pub struct SalesDeltas {
    /// (org, event, ticket type, bucket, payment, currency)
    pub by_ticket_type: HashMap<Cell, Acc>,
    /// ticket type blanked
    pub by_event: HashMap<Cell, Acc>,
    /// event and ticket type blanked
    pub by_order_attrs: HashMap<Cell, Acc>,
}

impl SalesDeltas {
    /// The deltas of one grain's table.
    pub fn of(&self, grain: Grain) -> &HashMap<Cell, Acc> {
        match grain {
            Grain::TicketType => &self.by_ticket_type,
            Grain::Event => &self.by_event,
            Grain::OrderAttrs => &self.by_order_attrs,
        }
    }
}

/// A finest-grain cell's projections onto the event and order-attribute grains.
fn grains(cell: &Cell) -> (Cell, Cell) {
    let by_event = Cell {
        ticket_type_id: String::new(),
        ..cell.clone()
    };
    let by_attrs = Cell {
        event_id: String::new(),
        ..by_event.clone()
    };
    (by_event, by_attrs)
}

impl SalesDeltas {
    fn add(&mut self, cell: Cell, acc: Acc) -> Result<(), Overflow> {
        let (by_event, by_attrs) = grains(&cell);
        self.by_ticket_type.entry(cell).or_default().add(&acc)?;
        self.by_event.entry(by_event).or_default().add(&acc)?;
        self.by_order_attrs.entry(by_attrs).or_default().add(&acc)
    }

    /// Adds an order count, once per row of each table the order touches.
    fn add_order(&mut self, cells: &[Cell]) -> Result<(), Overflow> {
        let mut seen_tt = std::collections::HashSet::new();
        let mut seen_ev = std::collections::HashSet::new();
        let mut seen_attrs = std::collections::HashSet::new();
        for cell in cells {
            let (by_event, by_attrs) = grains(cell);
            if seen_tt.insert(cell.clone()) {
                count_to(
                    &mut self.by_ticket_type.entry(cell.clone()).or_default().orders,
                    1,
                )?;
            }
            if seen_ev.insert(by_event.clone()) {
                count_to(&mut self.by_event.entry(by_event).or_default().orders, 1)?;
            }
            if seen_attrs.insert(by_attrs.clone()) {
                count_to(
                    &mut self.by_order_attrs.entry(by_attrs).or_default().orders,
                    1,
                )?;
            }
        }
        Ok(())
    }
}

/// The 15-minute bucket a delivery falls in: fine enough for any time zone's days.
fn bucket(at: DateTime<Utc>) -> DateTime<Utc> {
    Tier::Quarter.bucket(at)
}

/// Applies one invoice's money to the deltas (from its lines, or itself when it has none),
/// in `currency`: the invoice's own, or its order's when it has none.
pub fn add_invoice_money(
    deltas: &mut SalesDeltas,
    inv: &Invoice,
    currency: &str,
    received_at: DateTime<Utc>,
) -> Result<(), Overflow> {
    if !inv.kind.moves_money() {
        return Ok(());
    }
    let cell = |event: &Option<String>, tt: &Option<String>| Cell {
        org_id: inv.org_id.clone(),
        event_id: event.clone().unwrap_or_default(),
        ticket_type_id: tt.clone().unwrap_or_default(),
        bucket: bucket(received_at),
        payment_type: inv.payment_type.clone().unwrap_or_default(),
        currency: currency.to_owned(),
    };
    let mut cells = Vec::with_capacity(inv.items.len().max(1));
    if inv.items.is_empty() {
        let c = cell(&None, &None);
        let mut acc = Acc::default();
        acc.add_money(inv.kind, &inv.money)?;
        deltas.add(c.clone(), acc)?;
        cells.push(c);
    } else {
        for item in &inv.items {
            let c = cell(&item.event_id, &item.ticket_type_id);
            let mut acc = Acc::default();
            acc.add_money(inv.kind, &item.money)?;
            deltas.add(c.clone(), acc)?;
            cells.push(c);
        }
    }
    if inv.kind == Kind::Purchase {
        deltas.add_order(&cells)?;
    }
    Ok(())
}

/// Folds one event's view of a ticket into its row (creating it), recording sales deltas.
/// `currency` is the one the invoice is booked in ([`add_invoice_money`]); `""` while a
/// refund's order currency is not known yet, which the sale fills in when it arrives.
pub fn fold_ticket(
    rows: &mut HashMap<(String, String), TicketRow>,
    deltas: &mut SalesDeltas,
    inv: &Invoice,
    currency: &str,
    t: &TicketIn,
    received_at: DateTime<Utc>,
) -> Result<(), Overflow> {
    let rank = status_rank(&t.status);
    let row = rows
        .entry((inv.org_id.clone(), t.id.clone()))
        .or_insert_with(|| TicketRow {
            org_id: inv.org_id.clone(),
            id: t.id.clone(),
            transaction_id: inv.transaction_id.clone(),
            event_id: None,
            event_name: None,
            ticket_type_id: None,
            ticket_type_name: None,
            barcode: None,
            status: t.status.clone(),
            status_rank: rank,
            name_on_ticket: None,
            email_on_ticket: None,
            created_by_transfer: false,
            sold: false,
            cancelled: false,
            cancel_cell: None,
            updated_at: received_at,
        });
    if rank > row.status_rank {
        row.status = t.status.clone();
        row.status_rank = rank;
    }
    fill(&mut row.event_id, &t.event_id);
    fill(&mut row.event_name, &t.event_name);
    fill(&mut row.ticket_type_id, &t.ticket_type_id);
    fill(&mut row.ticket_type_name, &t.ticket_type_name);
    fill(&mut row.barcode, &t.barcode);
    fill(&mut row.name_on_ticket, &t.name_on_ticket);
    fill(&mut row.email_on_ticket, &t.email_on_ticket);
    row.created_by_transfer |= t.created_by_transfer;
    row.updated_at = row.updated_at.max(received_at);

    let ticket_cell = |row: &TicketRow, (b, p, c): (DateTime<Utc>, String, String)| Cell {
        org_id: row.org_id.clone(),
        event_id: row.event_id.clone().unwrap_or_default(),
        ticket_type_id: row.ticket_type_id.clone().unwrap_or_default(),
        bucket: b,
        payment_type: p,
        currency: c,
    };
    let here = (
        bucket(received_at),
        inv.payment_type.clone().unwrap_or_default(),
        currency.to_owned(),
    );
    let one = |n: i64| Acc {
        tickets: n,
        ..Acc::default()
    };
    if inv.kind == Kind::Purchase && !row.sold {
        row.sold = true;
        deltas.add(ticket_cell(row, here.clone()), one(1))?;
        if let Some(mut cancel) = row.cancel_cell.clone() {
            // Cancelled before its order's currency was known: it is the sale's.
            if cancel.2.is_empty() {
                cancel.2.clone_from(&here.2);
                row.cancel_cell = Some(cancel.clone());
            }
            deltas.add(ticket_cell(row, cancel), one(-1))?;
        }
    }
    if is_cancelled(&row.status) && !row.cancelled {
        row.cancelled = true;
        row.cancel_cell = Some(here.clone());
        if row.sold {
            deltas.add(ticket_cell(row, here), one(-1))?;
        }
    }
    Ok(())
}

fn fill(slot: &mut Option<String>, value: &Option<String>) {
    if slot.is_none() {
        slot.clone_from(value);
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests;
