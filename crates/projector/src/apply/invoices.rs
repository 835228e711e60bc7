//! The invoices of a batch: folded (pure, checked, a panic caught), then written.

use super::*;

/// What the pure part of a batch decides: ticket rows, sales deltas, and where each
/// invoice's money is booked.
pub(crate) struct Folded {
    pub tickets: HashMap<(String, String), TicketRow>,
    pub deltas: SalesDeltas,
    /// Idempotency key → the currency its money is booked in (`None`: not yet, its order's
    /// currency is unknown).
    pub booked: HashMap<String, Option<String>>,
    /// Orders whose stored waiting refunds were booked now, with the currency.
    pub rebooked: Vec<(OrderKey, String)>,
}

/// An order's currency: that of its first purchase or transfer in stream order (blank when it
/// had none). A refund or void without a currency is booked in it; until one is seen, such a
/// refund waits (`booked_currency` NULL) and is booked when it arrives.
pub(crate) type OrderKey = (String, String);

/// Per order, the money of its stored refunds and voids waiting for its currency, summed per
/// sales cell (currency aside) by the database, so a flood of them costs a few rows.
pub(crate) type Waiting = HashMap<OrderKey, Vec<(fold::CellKey, fold::Acc)>>;

/// Whether an event sets its order's currency.
pub(super) fn sets_currency(kind: Kind) -> bool {
    matches!(kind, Kind::Purchase | Kind::Transfer)
}

/// Folds a batch in stream order: pure and checked, an overflow is an error. A panic is caught
/// and reported as one, so the caller can fall back to one event at a time.
pub(super) fn fold_batch(
    tickets: HashMap<(String, String), TicketRow>,
    currencies: HashMap<OrderKey, String>,
    waiting: Waiting,
    applied: &[(&Incoming, &Invoice)],
) -> Result<Folded, ApplyError> {
    let fold = AssertUnwindSafe(move || fold_events(tickets, currencies, waiting, applied));
    match catch_unwind(fold) {
        Ok(folded) => Ok(folded?),
        Err(panic) => Err(ApplyError::Data(format!(
            "the projector could not fold these events: {}",
            panic_message(panic.as_ref())
        ))),
    }
}

/// [`fold_batch`] without the safety net, for the invariants (`crate::invariants`).
pub(crate) fn fold_events(
    mut tickets: HashMap<(String, String), TicketRow>,
    mut currencies: HashMap<OrderKey, String>,
    mut stored_waiting: Waiting,
    applied: &[(&Incoming, &Invoice)],
) -> Result<Folded, Overflow> {
    let mut deltas = SalesDeltas::default();
    let mut booked = HashMap::with_capacity(applied.len());
    let mut rebooked = Vec::new();
    // Refunds of this batch waiting for their order's currency (bounded by the batch).
    let mut waiting: HashMap<OrderKey, Vec<(&Invoice, DateTime<Utc>)>> = HashMap::new();
    for (m, inv) in applied {
        let at = m.meta.received_at;
        let order = (inv.org_id.clone(), inv.transaction_id.clone());
        if sets_currency(inv.kind) && !currencies.contains_key(&order) {
            currencies.insert(order.clone(), inv.currency.clone());
            // The refunds that waited for this order's currency are booked in it now.
            if let Some(cells) = stored_waiting.remove(&order) {
                for (cell, acc) in cells {
                    fold::add_cell(&mut deltas, cell.with(&order.0, &inv.currency), acc)?;
                }
                rebooked.push((order.clone(), inv.currency.clone()));
            }
            for (w, w_at) in waiting.remove(&order).unwrap_or_default() {
                fold::add_invoice_money(&mut deltas, w, &inv.currency, w_at)?;
                booked.insert(w.key.clone(), Some(inv.currency.clone()));
            }
        }
        let currency = if !inv.currency.is_empty() || !inv.kind.takes_money_back() {
            Some(inv.currency.clone())
        } else {
            currencies.get(&order).cloned()
        };
        match &currency {
            Some(c) => fold::add_invoice_money(&mut deltas, inv, c, at)?,
            None => waiting.entry(order).or_default().push((inv, at)),
        }
        let ticket_currency = currency.clone().unwrap_or_default();
        for t in &inv.tickets {
            fold::fold_ticket(&mut tickets, &mut deltas, inv, &ticket_currency, t, at)?;
        }
        booked.insert(inv.key.clone(), currency);
    }
    Ok(Folded {
        tickets,
        deltas,
        booked,
        rebooked,
    })
}

/// What a batch writes to the rows any lane may share (one event's sales cells, its show and
/// ticket types): written last, just before the commit, so a lane holds them only that long.
pub(super) struct Shared {
    deltas: SalesDeltas,
}

impl Shared {
    pub(super) async fn write(
        self,
        tx: &mut PgConnection,
        applied: &[(&Incoming, &Invoice)],
    ) -> Result<(), ApplyError> {
        sql::upsert_shows(tx, applied).await?;
        sql::upsert_ticket_types(tx, applied).await?;
        sql::add_sales(tx, &self.deltas).await?;
        Ok(())
    }
}

/// Applies the invoices to the tickets, orders and customers; answers what is left for the
/// shared rows. A lane holds every order and customer it recomputes first (those its tickets
/// or orders lead to are known only once those are read, so they are held then), so it never
/// recomputes from a snapshot that misses another lane's change.
pub(super) async fn apply_invoices(
    tx: &mut PgConnection,
    applied: &[(&Incoming, &Invoice)],
    frame: Frame,
) -> Result<Shared, ApplyError> {
    let ticket_keys: Vec<(String, String)> = applied
        .iter()
        .flat_map(|(_, inv)| {
            inv.tickets
                .iter()
                .map(|t| (inv.org_id.clone(), t.id.clone()))
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let tickets = sql::lock_tickets(tx, &ticket_keys).await?;
    let batch_orders: Vec<OrderKey> = applied
        .iter()
        .map(|(_, inv)| (inv.org_id.clone(), inv.transaction_id.clone()))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    // The order currency matters only to refunds and voids without one of their own.
    let need_currency: Vec<OrderKey> = applied
        .iter()
        .filter(|(_, inv)| inv.kind.takes_money_back() && inv.currency.is_empty())
        .map(|(_, inv)| (inv.org_id.clone(), inv.transaction_id.clone()))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let currencies = sql::order_currencies(tx, &need_currency).await?;
    // Refunds still waiting for a currency can only belong to orders purchased (or received
    // by transfer) here: once an order has one, none waits (a small partial index answers).
    let purchased: Vec<OrderKey> = applied
        .iter()
        .filter(|(_, inv)| sets_currency(inv.kind))
        .map(|(_, inv)| (inv.org_id.clone(), inv.transaction_id.clone()))
        .filter(|o| !currencies.contains_key(o))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let waiting = sql::waiting_sales(tx, &purchased).await?;

    let Folded {
        tickets,
        deltas,
        booked,
        rebooked,
    } = fold_batch(tickets, currencies, waiting, applied)?;

    let mut orders: HashSet<OrderKey> = batch_orders.into_iter().collect();
    let mut customers: HashSet<(String, String)> = HashSet::new();
    for (_, inv) in applied {
        if let Some(k) = &inv.customer_key {
            customers.insert((inv.org_id.clone(), k.clone()));
        }
    }
    let mut led_to = Vec::new();
    for row in tickets.values() {
        let order = (row.org_id.clone(), row.transaction_id.clone());
        if frame == Frame::Lane && !orders.contains(&order) {
            led_to.push(lanes::order_entity(&order.0, &order.1));
        }
        orders.insert(order);
    }
    sql::lock_entities(tx, &led_to).await?;

    sql::insert_invoices(tx, applied, &booked).await?;
    sql::book_waiting(tx, &rebooked).await?;
    sql::insert_items(tx, applied).await?;
    sql::upsert_tickets(tx, tickets.values()).await?;

    let orders: Vec<OrderKey> = orders.into_iter().collect();
    // An order may change hands (its customer is recomputed); the old customer changes too.
    let previous = sql::order_customers(tx, &orders).await?;
    if frame == Frame::Lane {
        let held: Vec<String> = previous
            .iter()
            .filter(|c| !customers.contains(*c))
            .map(|(org, key)| lanes::customer_entity(org, key))
            .collect();
        sql::lock_entities(tx, &held).await?;
    }
    customers.extend(previous);
    sql::recompute_orders(tx, &orders).await?;
    sql::derive_order_flags(tx, &orders, applied).await?;
    let groups = sql::record_transfer_sides(tx, applied).await?;
    sql::derive_transfer_gaps(tx, &groups, frame == Frame::Lane).await?;
    let customers: Vec<(String, String, uuid::Uuid)> = customers
        .into_iter()
        .map(|(org, key)| {
            let id = customer_id(&org, &key);
            (org, key, id)
        })
        .collect();
    sql::recompute_customers(tx, &customers).await?;
    let keys: Vec<String> = applied.iter().map(|(_, inv)| inv.key.clone()).collect();
    sql::mark_conflicting_duplicates(tx, &keys).await?;
    Ok(Shared { deltas })
}
