//! What an erasure leaves for the projector: events carrying an erased person's data are
//! applied with it blanked, and their messages (and any duplicate of an erased event) are
//! queued for the erasure's sweep to replace with a redacted copy. The tables are named in
//! `public`, where they stay during a rebuild (they are not projections).

use std::collections::{HashMap, HashSet};

use sqlx::PgConnection;

use crate::apply::Incoming;
use crate::plan::{Decision, Invoice, customer_key};

/// The SHA-256 an erasure records of an e-mail: of its folded form (`customers.email`).
pub fn email_hash(email: &str) -> Option<String> {
    customer_key(email).map(|k| showpass_payload::sha256_hex(k.as_bytes()))
}

/// The invoices of a batch that carry an erased person's data, blanked (by stream sequence);
/// each such message not yet a redacted copy is queued for the sweep.
pub async fn redact_erased(
    tx: &mut PgConnection,
    batch: &[Incoming],
) -> Result<HashMap<u64, Invoice>, sqlx::Error> {
    let mut asked: HashSet<(String, String)> = HashSet::new();
    for m in batch {
        if let Decision::Apply(inv) = &m.decision {
            for email in emails(inv) {
                if let Some(h) = email_hash(email) {
                    asked.insert((inv.org_id.clone(), h));
                }
            }
        }
    }
    if asked.is_empty() {
        return Ok(HashMap::new());
    }
    let (orgs, hashes): (Vec<String>, Vec<String>) = asked.into_iter().unzip();
    let erased: HashSet<(String, String)> = sqlx::query_as(
        "SELECT e.org_id, e.email_sha256 FROM public.erasures e
         WHERE (e.org_id, e.email_sha256) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))",
    )
    .bind(&orgs)
    .bind(&hashes)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    if erased.is_empty() {
        return Ok(HashMap::new());
    }
    let is_erased = |org: &str, email: &Option<String>| {
        email
            .as_deref()
            .and_then(email_hash)
            .is_some_and(|h| erased.contains(&(org.to_owned(), h)))
    };
    let mut out = HashMap::new();
    let mut queued: Vec<(&Incoming, &Invoice, String)> = Vec::new();
    for m in batch {
        let Decision::Apply(inv) = &m.decision else {
            continue;
        };
        let buyer = is_erased(&inv.org_id, &inv.customer_key);
        let holders: Vec<bool> = inv
            .tickets
            .iter()
            .map(|t| is_erased(&inv.org_id, &t.email_on_ticket))
            .collect();
        if !buyer && !holders.contains(&true) {
            continue;
        }
        let mut blank = (**inv).clone();
        if buyer {
            let h = inv.customer_key.as_deref().and_then(email_hash);
            blank.customer_key = None;
            blank.customer_name = None;
            blank.customer_phone = None;
            queued.extend(h.map(|h| (m, &**inv, h)));
        }
        for (t, holder) in blank.tickets.iter_mut().zip(&holders) {
            if buyer || *holder {
                if *holder && !buyer {
                    let h = t.email_on_ticket.as_deref().and_then(email_hash);
                    queued.extend(h.map(|h| (m, &**inv, h)));
                }
                t.name_on_ticket = None;
                t.email_on_ticket = None;
            }
        }
        out.insert(m.meta.seq, blank);
    }
    let fresh: Vec<&(&Incoming, &Invoice, String)> = queued
        .iter()
        .filter(|(m, _, _)| m.meta.erased_at.is_none())
        .collect();
    if !fresh.is_empty() {
        sqlx::query(
            "INSERT INTO public.erasure_pending (stream, stream_seq, delivery_id)
             SELECT * FROM UNNEST($1::text[], $2::int8[], $3::uuid[]) ON CONFLICT DO NOTHING",
        )
        .bind(
            fresh
                .iter()
                .map(|q| q.0.meta.stream.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            fresh
                .iter()
                .map(|q| i64::try_from(q.0.meta.seq).unwrap_or(i64::MAX))
                .collect::<Vec<_>>(),
        )
        .bind(
            fresh
                .iter()
                .map(|q| q.0.meta.delivery_id)
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
    }
    if !queued.is_empty() {
        let mut keys: Vec<(&str, &str, &str)> = queued
            .iter()
            .map(|(_, inv, h)| (inv.key.as_str(), inv.org_id.as_str(), h.as_str()))
            .collect();
        keys.sort();
        keys.dedup_by_key(|k| k.0);
        sqlx::query(
            "INSERT INTO public.erased_keys (idempotency_key, org_id, email_sha256)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING",
        )
        .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.2).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    Ok(out)
}

/// The e-mails an invoice carries: its customer's and its ticket holders'.
fn emails(inv: &Invoice) -> impl Iterator<Item = &str> {
    inv.customer_key.as_deref().into_iter().chain(
        inv.tickets
            .iter()
            .filter_map(|t| t.email_on_ticket.as_deref()),
    )
}

/// Queues, for the sweep, the messages of these logged deliveries that duplicate an erased
/// event (Showpass resending it) and are not a redacted copy already.
pub async fn queue_erased_duplicates(
    tx: &mut PgConnection,
    ids: &[uuid::Uuid],
) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO public.erasure_pending (stream, stream_seq, delivery_id)
         SELECT d.stream, d.stream_seq, d.id FROM deliveries d
         JOIN public.erased_keys k ON k.idempotency_key = d.idempotency_key
         WHERE d.id = ANY($1) AND d.erased_at IS NULL
         ON CONFLICT DO NOTHING",
    )
    .bind(ids)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
