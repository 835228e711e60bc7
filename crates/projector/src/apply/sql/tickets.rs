//! Tickets, which only move forward in their life, and the shows (Showpass events) a batch
//! mentions.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

use crate::apply::Incoming;
use crate::apply::fold::TicketRow;
use crate::plan::Invoice;

const TICKET_COLUMNS: &str = "org_id, id, transaction_id, event_id, event_name, ticket_type_id,
    ticket_type_name, barcode, status, status_rank, name_on_ticket, email_on_ticket,
    created_by_transfer, sold, cancelled, cancel_bucket, cancel_payment_type, cancel_currency,
    updated_at";

/// Loads (and locks) the stored rows of the tickets a batch touches.
pub async fn lock_tickets(
    tx: &mut PgConnection,
    keys: &[(String, String)],
) -> Result<HashMap<(String, String), TicketRow>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let (orgs, ids): (Vec<&str>, Vec<&str>) =
        keys.iter().map(|(o, i)| (o.as_str(), i.as_str())).unzip();
    let rows = sqlx::query(&format!(
        "SELECT {TICKET_COLUMNS} FROM tickets
         WHERE (org_id, id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))
         ORDER BY org_id, id FOR UPDATE"
    ))
    .bind(orgs)
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let cancel_cell = match (
                r.get::<Option<DateTime<Utc>>, _>(15),
                r.get::<Option<String>, _>(16),
                r.get::<Option<String>, _>(17),
            ) {
                (Some(b), Some(p), Some(c)) => Some((b, p, c)),
                _ => None,
            };
            let row = TicketRow {
                org_id: r.get(0),
                id: r.get(1),
                transaction_id: r.get(2),
                event_id: r.get(3),
                event_name: r.get(4),
                ticket_type_id: r.get(5),
                ticket_type_name: r.get(6),
                barcode: r.get(7),
                status: r.get(8),
                status_rank: r.get(9),
                name_on_ticket: r.get(10),
                email_on_ticket: r.get(11),
                created_by_transfer: r.get(12),
                sold: r.get(13),
                cancelled: r.get(14),
                cancel_cell,
                updated_at: r.get(18),
            };
            ((row.org_id.clone(), row.id.clone()), row)
        })
        .collect())
}

pub async fn upsert_tickets<'a>(
    tx: &mut PgConnection,
    rows: impl Iterator<Item = &'a TicketRow>,
) -> Result<(), sqlx::Error> {
    let mut rows: Vec<&TicketRow> = rows.collect();
    if rows.is_empty() {
        return Ok(());
    }
    // A stable order keeps concurrent writers from deadlocking.
    rows.sort_by(|a, b| (&a.org_id, &a.id).cmp(&(&b.org_id, &b.id)));
    let col = |f: fn(&TicketRow) -> Option<&str>| rows.iter().map(|r| f(r)).collect::<Vec<_>>();
    let cancel = |f: fn(&(DateTime<Utc>, String, String)) -> String| {
        rows.iter()
            .map(|r| r.cancel_cell.as_ref().map(f))
            .collect::<Vec<_>>()
    };
    sqlx::query(&format!(
        "INSERT INTO tickets ({TICKET_COLUMNS})
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
             $6::text[], $7::text[], $8::text[], $9::text[], $10::int4[], $11::text[], $12::text[],
             $13::bool[], $14::bool[], $15::bool[], $16::timestamptz[], $17::text[], $18::text[],
             $19::timestamptz[])
         ON CONFLICT (org_id, id) DO UPDATE SET
             transaction_id = EXCLUDED.transaction_id, event_id = EXCLUDED.event_id,
             event_name = EXCLUDED.event_name, ticket_type_id = EXCLUDED.ticket_type_id,
             ticket_type_name = EXCLUDED.ticket_type_name, barcode = EXCLUDED.barcode,
             status = EXCLUDED.status, status_rank = EXCLUDED.status_rank,
             name_on_ticket = EXCLUDED.name_on_ticket, email_on_ticket = EXCLUDED.email_on_ticket,
             created_by_transfer = EXCLUDED.created_by_transfer, sold = EXCLUDED.sold,
             cancelled = EXCLUDED.cancelled, cancel_bucket = EXCLUDED.cancel_bucket,
             cancel_payment_type = EXCLUDED.cancel_payment_type,
             cancel_currency = EXCLUDED.cancel_currency, updated_at = EXCLUDED.updated_at"
    ))
    .bind(col(|r| Some(&r.org_id)))
    .bind(col(|r| Some(&r.id)))
    .bind(col(|r| Some(&r.transaction_id)))
    .bind(col(|r| r.event_id.as_deref()))
    .bind(col(|r| r.event_name.as_deref()))
    .bind(col(|r| r.ticket_type_id.as_deref()))
    .bind(col(|r| r.ticket_type_name.as_deref()))
    .bind(col(|r| r.barcode.as_deref()))
    .bind(col(|r| Some(&r.status)))
    .bind(rows.iter().map(|r| r.status_rank).collect::<Vec<_>>())
    .bind(col(|r| r.name_on_ticket.as_deref()))
    .bind(col(|r| r.email_on_ticket.as_deref()))
    .bind(
        rows.iter()
            .map(|r| r.created_by_transfer)
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.sold).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.cancelled).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.cancel_cell.as_ref().map(|c| c.0))
            .collect::<Vec<_>>(),
    )
    .bind(cancel(|c| c.1.clone()))
    .bind(cancel(|c| c.2.clone()))
    .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A show's name, start, end and first sighting.
type Show<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    DateTime<Utc>,
);

fn see<'a>(
    shows: &mut HashMap<(&'a str, &'a str), Show<'a>>,
    org: &'a str,
    event: Option<&'a str>,
    name: Option<&'a str>,
    starts: Option<&'a str>,
    ends: Option<&'a str>,
    at: DateTime<Utc>,
) {
    if let Some(e) = event {
        let s = shows.entry((org, e)).or_insert((None, None, None, at));
        s.0 = s.0.or(name);
        s.1 = s.1.or(starts);
        s.2 = s.2.or(ends);
        s.3 = s.3.min(at);
    }
}

/// Records the Showpass events (shows) a batch mentions.
pub async fn upsert_shows(
    tx: &mut PgConnection,
    applied: &[(&Incoming, &Invoice)],
) -> Result<(), sqlx::Error> {
    let mut shows: HashMap<(&str, &str), Show> = HashMap::new();
    for (m, inv) in applied {
        let at = m.meta.received_at;
        for t in &inv.tickets {
            see(
                &mut shows,
                &inv.org_id,
                t.event_id.as_deref(),
                t.event_name.as_deref(),
                t.event_starts_on.as_deref(),
                t.event_ends_on.as_deref(),
                at,
            );
        }
        for i in &inv.items {
            see(
                &mut shows,
                &inv.org_id,
                i.event_id.as_deref(),
                i.event_name.as_deref(),
                None,
                None,
                at,
            );
        }
    }
    if shows.is_empty() {
        return Ok(());
    }
    let mut shows: Vec<_> = shows.into_iter().collect();
    shows.sort_by(|a, b| a.0.cmp(&b.0));
    sqlx::query(
        "INSERT INTO shows (org_id, event_id, name, starts_on, ends_on, first_seen)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
         ON CONFLICT (org_id, event_id) DO UPDATE SET
             name = COALESCE(shows.name, EXCLUDED.name),
             starts_on = COALESCE(shows.starts_on, EXCLUDED.starts_on),
             ends_on = COALESCE(shows.ends_on, EXCLUDED.ends_on),
             first_seen = LEAST(shows.first_seen, EXCLUDED.first_seen)",
    )
    .bind(shows.iter().map(|s| s.0 .0).collect::<Vec<_>>())
    .bind(shows.iter().map(|s| s.0 .1).collect::<Vec<_>>())
    .bind(shows.iter().map(|s| s.1 .0).collect::<Vec<_>>())
    .bind(shows.iter().map(|s| s.1 .1).collect::<Vec<_>>())
    .bind(shows.iter().map(|s| s.1 .2).collect::<Vec<_>>())
    .bind(shows.iter().map(|s| s.1 .3).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A ticket type's latest name (with when its delivery was received) and first sighting.
type TicketType<'a> = (Option<(DateTime<Utc>, &'a str)>, DateTime<Utc>);

/// Records the ticket types a batch mentions, keeping for each the name of its latest
/// delivery (by receipt time, then by name, so every order of arrival ends the same).
pub async fn upsert_ticket_types(
    tx: &mut PgConnection,
    applied: &[(&Incoming, &Invoice)],
) -> Result<(), sqlx::Error> {
    let mut types: HashMap<(&str, &str, &str), TicketType> = HashMap::new();
    for (m, inv) in applied {
        let at = m.meta.received_at;
        let seen = inv
            .tickets
            .iter()
            .map(|t| (&t.event_id, &t.ticket_type_id, &t.ticket_type_name))
            .chain(
                inv.items
                    .iter()
                    .map(|i| (&i.event_id, &i.ticket_type_id, &i.ticket_type_name)),
            );
        for (event, id, name) in seen {
            let (Some(event), Some(id)) = (event.as_deref(), id.as_deref()) else {
                continue;
            };
            let t = types.entry((&inv.org_id, event, id)).or_insert((None, at));
            t.1 = t.1.min(at);
            if let Some(name) = name.as_deref() {
                t.0 = t.0.max(Some((at, name)));
            }
        }
    }
    if types.is_empty() {
        return Ok(());
    }
    let mut types: Vec<_> = types.into_iter().collect();
    // One lock order for every batch.
    types.sort_by(|a, b| a.0.cmp(&b.0));
    sqlx::query(
        "INSERT INTO ticket_types (org_id, event_id, ticket_type_id, name, name_seen_at, first_seen)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[])
         ON CONFLICT (org_id, event_id, ticket_type_id) DO UPDATE SET
             name = CASE WHEN EXCLUDED.name IS NOT NULL AND (ticket_types.name IS NULL
                 OR (EXCLUDED.name_seen_at, EXCLUDED.name) > (ticket_types.name_seen_at, ticket_types.name))
                 THEN EXCLUDED.name ELSE ticket_types.name END,
             name_seen_at = CASE WHEN EXCLUDED.name IS NOT NULL AND (ticket_types.name IS NULL
                 OR (EXCLUDED.name_seen_at, EXCLUDED.name) > (ticket_types.name_seen_at, ticket_types.name))
                 THEN EXCLUDED.name_seen_at ELSE ticket_types.name_seen_at END,
             first_seen = LEAST(ticket_types.first_seen, EXCLUDED.first_seen)",
    )
    .bind(types.iter().map(|t| t.0 .0).collect::<Vec<_>>())
    .bind(types.iter().map(|t| t.0 .1).collect::<Vec<_>>())
    .bind(types.iter().map(|t| t.0 .2).collect::<Vec<_>>())
    .bind(types.iter().map(|t| t.1 .0.map(|n| n.1)).collect::<Vec<_>>())
    .bind(types.iter().map(|t| t.1 .0.map(|n| n.0)).collect::<Vec<_>>())
    .bind(types.iter().map(|t| t.1 .1).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}
