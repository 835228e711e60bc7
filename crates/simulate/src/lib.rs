//! A Showpass-like traffic generator, deterministic for a seed: organizations with shows and
//! ticket types, a pool of customers, and a stream of deliveries mixing purchases, partial and
//! full refunds, voids, transfers, test events, verbatim resends (duplicates) and refunds sent
//! before their purchase (out of order). It keeps a [`Ledger`] of what it generated, so the
//! read models can be checked against it.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, VecDeque};

use rust_decimal::Decimal;
use serde_json::{Value, json};
use showpass_payload::vocab::{EventType, TicketStatus};

/// The shape of the simulated world.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub organizations: usize,
    pub shows_per_organization: usize,
    pub ticket_types_per_show: usize,
    pub customers: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            organizations: 3,
            shows_per_organization: 4,
            ticket_types_per_show: 3,
            customers: 2_000,
        }
    }
}

/// One generated delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The signed `id` (the transaction).
    pub id: String,
    pub event_type: &'static str,
    pub body: Vec<u8>,
    /// A verbatim resend of an earlier delivery.
    pub resend: bool,
}

/// What was generated, to check results against. Amounts are per currency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    pub deliveries: u64,
    pub resends: u64,
    pub by_type: BTreeMap<&'static str, u64>,
    pub orders: u64,
    /// Tickets sold and not refunded or voided.
    pub tickets: i64,
    pub net_sales: BTreeMap<String, Decimal>,
    pub refunds: BTreeMap<String, Decimal>,
}

struct Order {
    org: usize,
    txn: String,
    customer: usize,
    tickets: Vec<(u64, usize, usize)>, // (ticket id, show, ticket type)
    live: Vec<bool>,
    transferred: bool,
    voided: bool,
}

/// The generator: an endless iterator of deliveries.
pub struct Simulator {
    config: SimConfig,
    rng: u64,
    next_id: u64,
    orders: Vec<Order>,
    queue: VecDeque<Delivery>,
    sent: Vec<Delivery>,
    pub ledger: Ledger,
}

impl Simulator {
    pub fn new(config: SimConfig) -> Self {
        // splitmix64 walks a counter, so seeds must be scattered, not merely scaled: nearby
        // seeds would otherwise replay each other's sequence a few steps apart.
        let mut z = config.seed ^ 0xD1B5_4A32_D192_ED03;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let rng = z ^ (z >> 31);
        Self {
            config,
            rng,
            next_id: 0,
            orders: Vec::new(),
            queue: VecDeque::new(),
            sent: Vec::new(),
            ledger: Ledger::default(),
        }
    }

    /// splitmix64: small, fast, and the same everywhere.
    fn next(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn fresh(&mut self) -> u64 {
        self.next_id += 1;
        self.config.seed * 1_000_000_000 + self.next_id
    }

    fn currency(org: usize) -> &'static str {
        if org.is_multiple_of(2) { "CAD" } else { "USD" }
    }

    fn price(show: usize, tt: usize) -> Decimal {
        Decimal::new(2_500 + (show as i64 % 7) * 500 + tt as i64 * 1_250, 2)
    }

    fn plan_next(&mut self) {
        let roll = self.below(100);
        let live_orders: Vec<usize> = (0..self.orders.len())
            .filter(|&i| {
                !self.orders[i].voided
                    && !self.orders[i].transferred
                    && self.orders[i].live.iter().any(|l| *l)
            })
            .collect();
        match roll {
            0..=59 => self.purchase(false),
            60..=66 if !live_orders.is_empty() => {
                let o = live_orders[self.below(live_orders.len())];
                let all = self.below(3) == 0;
                self.refund(o, all, false);
            }
            67..=69 if !live_orders.is_empty() => {
                let o = live_orders[self.below(live_orders.len())];
                self.refund(o, true, true);
            }
            70..=75 if !live_orders.is_empty() => {
                let o = live_orders[self.below(live_orders.len())];
                self.transfer(o);
            }
            76 => {
                let body = self.invoice_body(
                    et(EventType::WebhookTest),
                    "TEST",
                    0,
                    0,
                    &[],
                    Decimal::ZERO,
                    "sale",
                );
                self.emit("TEST".into(), et(EventType::WebhookTest), body);
            }
            77..=84 if !self.sent.is_empty() => {
                let i = self.below(self.sent.len());
                let mut d = self.sent[i].clone();
                d.resend = true;
                self.queue.push_back(d);
            }
            85..=87 => self.purchase(true),
            _ => self.purchase(false),
        }
    }

    fn purchase(&mut self, refund_first: bool) {
        let org = self.below(self.config.organizations);
        let customer = self.below(self.config.customers);
        let txn = format!("sim-{}", self.fresh());
        let n = 1 + self.below(4);
        let show = self.below(self.config.shows_per_organization);
        let tickets: Vec<(u64, usize, usize)> = (0..n)
            .map(|_| {
                let tt = self.below(self.config.ticket_types_per_show);
                (self.fresh(), show, tt)
            })
            .collect();
        let total: Decimal = tickets.iter().map(|(_, s, t)| Self::price(*s, *t)).sum();
        let body = self.invoice_body(
            et(EventType::InvoicePurchase),
            &txn,
            org,
            customer,
            &tickets,
            total,
            "sale",
        );
        self.ledger.orders += 1;
        self.ledger.tickets += n as i64;
        *self
            .ledger
            .net_sales
            .entry(Self::currency(org).into())
            .or_default() += total;
        self.orders.push(Order {
            org,
            txn: txn.clone(),
            customer,
            live: vec![true; n],
            tickets,
            transferred: false,
            voided: false,
        });
        if refund_first {
            // The refund is generated now and sent first; the purchase follows it.
            let o = self.orders.len() - 1;
            self.refund(o, true, false);
            self.emit(txn, et(EventType::InvoicePurchase), body);
        } else {
            self.emit(txn, et(EventType::InvoicePurchase), body);
        }
    }

    fn refund(&mut self, o: usize, all: bool, void: bool) {
        let live: Vec<usize> = (0..self.orders[o].tickets.len())
            .filter(|&i| self.orders[o].live[i])
            .collect();
        let take: Vec<usize> = if all {
            live
        } else {
            live.into_iter().take(1).collect()
        };
        let order = &mut self.orders[o];
        let tickets: Vec<(u64, usize, usize)> = take.iter().map(|&i| order.tickets[i]).collect();
        for &i in &take {
            order.live[i] = false;
        }
        if void {
            order.voided = true;
        }
        let (org, customer, txn) = (order.org, order.customer, order.txn.clone());
        let amount: Decimal = tickets.iter().map(|(_, s, t)| Self::price(*s, *t)).sum();
        let (event_type, invoice_type) = if void {
            (et(EventType::InvoiceVoid), "void")
        } else {
            (et(EventType::InvoiceRefund), "refund")
        };
        let body = self.invoice_body(
            event_type,
            &txn,
            org,
            customer,
            &tickets,
            -amount,
            invoice_type,
        );
        self.ledger.tickets -= tickets.len() as i64;
        let cur = Self::currency(org).to_string();
        *self.ledger.net_sales.entry(cur.clone()).or_default() -= amount;
        *self.ledger.refunds.entry(cur).or_default() += amount;
        self.emit(txn, event_type, body);
    }

    fn transfer(&mut self, o: usize) {
        let recipient = self.below(self.config.customers);
        let order = &mut self.orders[o];
        order.transferred = true;
        let (org, customer, txn) = (order.org, order.customer, order.txn.clone());
        let originals: Vec<(u64, usize, usize)> = (0..order.tickets.len())
            .filter(|&i| order.live[i])
            .map(|i| order.tickets[i])
            .collect();
        let new_txn = format!("{txn}-T");
        let fresh: Vec<(u64, usize, usize)> =
            originals.iter().map(|(_, s, t)| (0, *s, *t)).collect();
        let fresh: Vec<(u64, usize, usize)> = fresh
            .into_iter()
            .map(|(_, s, t)| (self.fresh(), s, t))
            .collect();
        let out = self.invoice_body(
            et(EventType::InvoiceTransferred),
            &txn,
            org,
            customer,
            &originals,
            Decimal::ZERO,
            "transfer",
        );
        let inn = self.invoice_body(
            et(EventType::InvoiceTransfer),
            &new_txn,
            org,
            recipient,
            &fresh,
            Decimal::ZERO,
            "transfer",
        );
        self.emit(txn, et(EventType::InvoiceTransferred), out);
        self.emit(new_txn, et(EventType::InvoiceTransfer), inn);
    }

    #[allow(clippy::too_many_arguments)]
    fn invoice_body(
        &mut self,
        event_type: &'static str,
        txn: &str,
        org: usize,
        customer: usize,
        tickets: &[(u64, usize, usize)],
        total: Decimal,
        invoice_type: &str,
    ) -> Vec<u8> {
        let uuid = format!("{:016x}-{:016x}", self.next(), self.next());
        let status = match EventType::parse(event_type) {
            EventType::InvoiceRefund => TicketStatus::Refunded,
            EventType::InvoiceVoid => TicketStatus::Voided,
            EventType::InvoiceTransferred => TicketStatus::Transferred,
            _ => TicketStatus::Issued,
        };
        let (first, last) = (
            FIRST[customer % FIRST.len()],
            LAST[(customer / FIRST.len()) % LAST.len()],
        );
        let email = format!(
            "{}.{}{}@example.com",
            first.to_lowercase(),
            last.to_lowercase(),
            customer
        );
        let money = |d: Decimal| json!(d.round_dp(2).to_string());
        let mut lines: BTreeMap<(usize, usize), (u32, Decimal)> = BTreeMap::new();
        for (_, s, t) in tickets {
            let e = lines.entry((*s, *t)).or_default();
            e.0 += 1;
            e.1 += Self::price(*s, *t);
        }
        let sign = if total.is_sign_negative() {
            Decimal::NEGATIVE_ONE
        } else {
            Decimal::ONE
        };
        let moves_money = !total.is_zero();
        let items: Vec<Value> = lines
            .iter()
            .map(|((s, t), (q, amount))| {
                let amount = if moves_money { *amount * sign } else { Decimal::ZERO };
                json!({
                    "id": self.next() % 100_000_000,
                    "invoice_item_type": "ticket",
                    "quantity": q,
                    "discounts": "0.00", "net_sales": money(amount), "service_fees": "0.00",
                    "account_credit_applied": "0.00", "gross_revenue": money(amount),
                    "organizer_fees": "0.00", "total_tax": "0.00",
                    "event_id": format!("{}{:02}", org + 1, s), "event_name": format!("Show {} of org {}", s + 1, org + 1),
                    "ticket_type_id": format!("{}{:02}{}", org + 1, s, t), "ticket_type_name": TICKET_TYPES[*t % TICKET_TYPES.len()],
                })
            })
            .collect();
        let ticket_items: Vec<Value> = tickets
            .iter()
            .map(|(id, s, t)| json!({
                "id": id, "event_id": format!("{}{:02}", org + 1, s), "event_name": format!("Show {} of org {}", s + 1, org + 1),
                "event_starts_on": "2027-03-01T02:00:00Z", "event_ends_on": "2027-03-01T05:00:00Z",
                "name_on_ticket": format!("{first} {last}"), "email_on_ticket": email,
                "ticket_status": status, "ticket_status_code": "2", "barcode_string": format!("SIM{id:X}"),
                "ticket_type_id": format!("{}{:02}{}", org + 1, s, t), "ticket_type_name": TICKET_TYPES[*t % TICKET_TYPES.len()],
                "ticket_item_type": "ticket", "created_by_transfer": event_type == et(EventType::InvoiceTransfer),
            }))
            .collect();
        let body = json!({
            "id": txn,
            "event_type": event_type,
            "webhook_event_uuid": uuid,
            "data": {
                "transaction_id": txn, "showpass_organization_id": (org + 1).to_string(),
                "customer_name": format!("{first} {last}"), "customer_email": email,
                "customer_phone_number": format!("+1 403 555 {:04}", customer % 10_000),
                "subscribe_to_venue": customer.is_multiple_of(3),
                "payment_type": if event_type == et(EventType::InvoiceTransfer) { "transferred" } else { PAYMENTS[customer % PAYMENTS.len()] },
                "currency": Self::currency(org),
                "discounts": "0.00", "net_sales": money(total), "service_fees": "0.00", "account_credit_applied": "0.00",
                "gross_revenue": money(total), "organizer_fees": "0.00", "total_tax": "0.00",
                "invoice_type": invoice_type, "invoice_type_id": "101",
                "ticket_items": ticket_items, "invoice_items": items,
            }
        });
        serde_json::to_vec(&body).expect("bodies serialize")
    }

    fn emit(&mut self, id: String, event_type: &'static str, body: Vec<u8>) {
        self.queue.push_back(Delivery {
            id,
            event_type,
            body,
            resend: false,
        });
    }
}

impl Iterator for Simulator {
    type Item = Delivery;

    fn next(&mut self) -> Option<Delivery> {
        while self.queue.is_empty() {
            self.plan_next();
        }
        let d = self.queue.pop_front()?;
        self.ledger.deliveries += 1;
        *self.ledger.by_type.entry(d.event_type).or_default() += 1;
        if d.resend {
            self.ledger.resends += 1;
        } else {
            self.sent.push(d.clone());
            if self.sent.len() > 10_000 {
                self.sent.swap_remove(0);
            }
        }
        Some(d)
    }
}

const FIRST: [&str; 12] = [
    "Ava", "Liam", "Zoë", "Noah", "Émile", "Maya", "Owen", "Chloé", "Ravi", "Sofia", "Kenji",
    "Amara",
];
const LAST: [&str; 10] = [
    "Smith", "Tremblay", "Nguyen", "García", "Wilson", "Côté", "Patel", "Martin", "Lee", "Okafor",
];
const TICKET_TYPES: [&str; 4] = ["General admission", "VIP", "Student", "Early bird"];
const PAYMENTS: [&str; 4] = ["credit", "interac", "cash", "complimentary"];

/// An event type's text, as a [`Delivery`] carries it.
fn et(t: EventType) -> &'static str {
    t.known_text().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use showpass_payload::{Delivery as Parsed, Envelope};

    #[test]
    fn the_same_seed_generates_the_same_traffic() {
        let a: Vec<Vec<u8>> = Simulator::new(SimConfig::default())
            .take(500)
            .map(|d| d.body)
            .collect();
        let b: Vec<Vec<u8>> = Simulator::new(SimConfig::default())
            .take(500)
            .map(|d| d.body)
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn different_seeds_never_share_events() {
        let ids = |seed| -> std::collections::HashSet<Vec<u8>> {
            Simulator::new(SimConfig {
                seed,
                ..SimConfig::default()
            })
            .take(2_000)
            .filter(|d| !d.resend)
            .map(|d| d.body)
            .collect()
        };
        assert!(ids(7).is_disjoint(&ids(99)));
    }

    #[test]
    fn every_kind_of_delivery_appears_and_every_body_parses() {
        let mut sim = Simulator::new(SimConfig::default());
        for d in sim.by_ref().take(3_000) {
            let env = Envelope::parse(&d.body).unwrap();
            assert_eq!(env.id, d.id);
            Parsed::parse(&d.body).unwrap();
        }
        for t in [
            "invoice.purchase",
            "invoice.refund",
            "invoice.void",
            "invoice.transfer",
            "invoice.transferred",
            "webhook.test",
        ] {
            assert!(
                sim.ledger.by_type.get(t).copied().unwrap_or(0) > 0,
                "{t}: {:?}",
                sim.ledger.by_type
            );
        }
        assert!(sim.ledger.resends > 0);
        assert!(sim.ledger.tickets > 0);
        assert_eq!(sim.ledger.net_sales.len(), 2, "two currencies");
    }
}
