//! A batch applied over several connections at once (`PROJECTOR_PARALLELISM`).
//!
//! - **Lanes.** A batch (of at least `MIN_SPLIT` events; a smaller one is one transaction) is
//!   split into groups of events linked by an entity they name: a ticket, an order, a customer,
//!   a transfer group. Groups are spread over the lanes by weight; each lane keeps stream
//!   order, so one order's events stay in one lane, in order. Each lane is one transaction on
//!   its own connection.
//! - **Entities.** Lanes share no entity their events name, but the stored rows link more: a
//!   ticket's order, an order's earlier customer. So a lane still holds what it will change:
//!   its tickets, orders, customers and transfer groups, as transaction advisory locks taken in
//!   one sorted order. Orders it reaches
//!   through its tickets, and customers through its orders, are held as soon as they are known.
//!   Two lanes that share an entity take turns. The second one's statements after the wait see
//!   what the first committed, so nothing is recomputed from a stale snapshot. Locks taken in
//!   a later step can, rarely, form a cycle: PostgreSQL breaks it (40P01) and the lane that lost
//!   is applied again. The lanes that committed are not.
//! - **Shared rows.** Every lane may add to the same sales cells, show and ticket types (one
//!   event's on-sale). Those are written last, each statement in key order, so a lane holds them
//!   only until its commit.
//! - **Swap lock.** The batch's first connection holds the swap lock shared (a session lock)
//!   from before the lanes start until the checkpoint has moved, so neither a rebuild's swap
//!   nor an erasure can come between a lane's commit and the checkpoint.
//! - **Checkpoint.** No lane touches it. It moves in a last transaction once every lane has
//!   committed, so it never passes an unapplied event. A crash in between leaves committed lanes
//!   whose messages come again: the ledger (the invoices' primary key, the delivery log) knows
//!   them.

use futures::future::join_all;

use super::*;

/// Most times a batch's lanes are applied again after losing a deadlock.
const DEADLOCK_ATTEMPTS: usize = 8;

/// Splits a batch into at most `lanes` lanes that share no entity the events name (a ticket,
/// an order, a customer, a transfer group): events linked through one are one group, and
/// groups go, largest first, to the lane with the least weight. Each lane keeps stream order.
#[cfg(test)]
pub fn split(batch: &[Incoming], lanes: usize) -> Vec<Vec<Incoming>> {
    members(batch, lanes)
        .into_iter()
        .map(|m| m.into_iter().map(|i| batch[i].clone()).collect())
        .collect()
}

/// Puts a batch's events in lane order (the lanes of [`members`]), without copying one:
/// each lane's events stay in stream order, one lane after another. Answers each lane's
/// length.
pub fn order_by_lane(batch: &mut Vec<Incoming>, lanes: usize) -> Vec<usize> {
    let members = members(batch, lanes);
    let mut slots: Vec<Option<Incoming>> = std::mem::take(batch).into_iter().map(Some).collect();
    let mut lengths = Vec::with_capacity(members.len());
    for lane in members {
        lengths.push(lane.len());
        batch.extend(lane.into_iter().filter_map(|i| slots[i].take()));
    }
    lengths
}

/// The indices of the events of each lane, each lane in stream order.
fn members(batch: &[Incoming], lanes: usize) -> Vec<Vec<usize>> {
    let lanes = lanes.clamp(1, batch.len().max(1));
    // Union-find over the events, linked by the entities they name.
    let mut parent: Vec<usize> = (0..batch.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut owner: HashMap<String, usize> = HashMap::new();
    for (i, m) in batch.iter().enumerate() {
        // Also linked, though no lock needs them: events of one idempotency key (the ledger
        // keeps the first in the stream, as one transaction would) and of one delivery (a
        // replay: its log row ends with the last in the stream).
        let mut names = match &m.decision {
            Decision::Apply(inv) => {
                let mut n = entities(std::iter::once(&**inv));
                n.push(format!("k{}", inv.key));
                n
            }
            _ => Vec::new(),
        };
        names.push(format!("d{}", m.meta.delivery_id));
        for name in names {
            match owner.get(&name) {
                Some(&j) => {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    parent[a.max(b)] = a.min(b);
                }
                None => {
                    owner.insert(name, i);
                }
            }
        }
    }
    let mut groups: HashMap<usize, (usize, Vec<usize>)> = HashMap::new();
    for (i, m) in batch.iter().enumerate() {
        let g = groups.entry(root(&mut parent, i)).or_default();
        g.0 += m.weight();
        g.1.push(i);
    }
    let mut groups: Vec<(usize, Vec<usize>)> = groups.into_values().collect();
    // Largest first; ties by first event, so a batch always splits the same way.
    groups.sort_by(|a, b| b.0.cmp(&a.0).then(a.1[0].cmp(&b.1[0])));
    let mut load = vec![0usize; lanes];
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); lanes];
    for (weight, events) in groups {
        let lane = (0..lanes).min_by_key(|&l| (load[l], l)).unwrap_or(0);
        load[lane] += weight;
        members[lane].extend(events);
    }
    members
        .into_iter()
        .filter(|m| !m.is_empty())
        .map(|mut m| {
            m.sort_unstable();
            m
        })
        .collect()
}

/// An entity's lock name: its kind, then its parts, each after its length, so no two entities
/// share one.
fn entity(kind: char, org: &str, id: &str) -> String {
    format!("{kind}{}:{org}{id}", org.len())
}

pub(crate) fn order_entity(org: &str, transaction_id: &str) -> String {
    entity('o', org, transaction_id)
}

pub(crate) fn customer_entity(org: &str, key: &str) -> String {
    entity('c', org, key)
}

/// What these invoices change, as lock names: tickets, orders, customers, transfer groups.
pub(crate) fn entities<'a>(invoices: impl Iterator<Item = &'a Invoice>) -> Vec<String> {
    let mut out = Vec::new();
    for inv in invoices {
        out.push(order_entity(&inv.org_id, &inv.transaction_id));
        if let Some(k) = &inv.customer_key {
            out.push(customer_entity(&inv.org_id, k));
        }
        for t in &inv.tickets {
            out.push(entity('t', &inv.org_id, &t.id));
        }
        if matches!(inv.kind, Kind::Transfer | Kind::Transferred) {
            out.push(entity('g', &inv.org_id, &sql::transfer_signature(inv)));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Applies a batch split into lanes ([`lane_of`]), each lane on its own connection at once
/// (`conn`, then `more`), then moves the checkpoint on `conn`. With no other connection it is
/// [`apply_resilient`]. Lanes beyond the connections are not applied: the batch must have
/// been split for as many.
pub async fn apply_parallel(
    conn: &mut PgConnection,
    more: &mut [PgConnection],
    stream: &str,
    lanes: &[&[Incoming]],
) -> Result<Tally, ApplyError> {
    let connections = more.len() + 1;
    if lanes.len() > connections {
        return Err(ApplyError::Data(format!(
            "a batch split into {} lanes cannot be applied over {connections} connections",
            lanes.len()
        )));
    }
    if lanes.len() <= 1 {
        return match lanes.first() {
            Some(one) => apply_resilient(conn, stream, one).await,
            None => Ok(Tally::default()),
        };
    }
    let Some(last) = lanes.iter().copied().flatten().map(|m| m.meta.seq).max() else {
        return Ok(Tally::default());
    };
    // The swap lock, shared, for the whole batch (every lane and the checkpoint): a rebuild's
    // swap or an erasure between the lanes' commits and the checkpoint would see the lanes'
    // events applied and the checkpoint before them (a rebuild would then swap in tables
    // without them). The lanes take no swap lock of their own: queued behind a waiting swap,
    // they would wait for it while it waits for this lock.
    sqlx::query("SELECT pg_advisory_lock_shared($1)")
        .bind(SWAP_LOCK)
        .execute(&mut *conn)
        .await?;
    let applied = lanes_then_checkpoint(conn, more, stream, lanes, last).await;
    let released = sqlx::query("SELECT pg_advisory_unlock_shared($1)")
        .bind(SWAP_LOCK)
        .execute(&mut *conn)
        .await;
    let tally = applied?;
    released?;
    Ok(tally)
}

async fn lanes_then_checkpoint(
    conn: &mut PgConnection,
    more: &mut [PgConnection],
    stream: &str,
    lanes: &[&[Incoming]],
    last: u64,
) -> Result<Tally, ApplyError> {
    let mut done: Vec<Option<Tally>> = lanes
        .iter()
        .map(|l| l.is_empty().then(Tally::default))
        .collect();
    for attempt in 1.. {
        let conns = std::iter::once(&mut *conn).chain(more.iter_mut());
        let pending = conns
            .zip(lanes)
            .zip(done.iter_mut())
            .filter(|(_, d)| d.is_none())
            .map(|((c, lane), d)| async move {
                let r = resilient(c, stream, lane, Frame::Lane).await;
                if let Ok(t) = &r {
                    *d = Some(*t);
                }
                r
            });
        let failed = join_all(pending).await.into_iter().find_map(Result::err);
        match failed {
            None => break,
            Some(e) if is_deadlock(&e) && attempt < DEADLOCK_ATTEMPTS => {
                tracing::info!(
                    stream,
                    attempt,
                    "lanes deadlocked; applying the one that lost again"
                );
            }
            Some(e) => return Err(e),
        }
    }
    let mut tally = Tally::default();
    for t in done.into_iter().flatten() {
        tally.add(t);
    }
    finish(conn, stream, lanes, last).await?;
    Ok(tally)
}

/// The batch's last step, once every lane has committed: the endpoints' activity and the
/// checkpoint.
async fn finish(
    conn: &mut PgConnection,
    stream: &str,
    lanes: &[&[Incoming]],
    last: u64,
) -> Result<(), ApplyError> {
    let mut tx = conn.begin().await?;
    sql::begin_batch(&mut tx, stream).await?;
    sql::note_activity(&mut tx, lanes.iter().flat_map(|l| activity(l))).await?;
    sql::end_batch(&mut tx, stream, last).await?;
    tx.commit().await?;
    Ok(())
}

fn is_deadlock(e: &ApplyError) -> bool {
    matches!(e, ApplyError::Database(sqlx::Error::Database(d)) if d.code().as_deref() == Some("40P01"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purchase(seq: u64, txn: &str, email: &str) -> Incoming {
        purchase_as(&format!("u-{seq}"), seq, txn, email)
    }

    fn purchase_as(uuid: &str, seq: u64, txn: &str, email: &str) -> Incoming {
        use showpass_payload::samples::{SampleIds, SampleKind, sample};
        let ids = SampleIds {
            webhook_event_uuid: uuid,
            transaction_id: txn,
            organization_id: "20",
        };
        let mut v = sample(SampleKind::Purchase, &ids);
        v["data"]["customer_email"] = email.into();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Showpass-Delivery-Id",
            uuid::Uuid::new_v4().to_string().as_str(),
        );
        Incoming::plan(
            crate::meta::Meta::from_headers("S", seq, Some(&headers), chrono::Utc::now()),
            &serde_json::to_vec(&v).unwrap(),
        )
    }

    fn seqs(lanes: &[Vec<Incoming>]) -> Vec<Vec<u64>> {
        lanes
            .iter()
            .map(|l| l.iter().map(|m| m.meta.seq).collect())
            .collect()
    }

    #[test]
    fn events_that_share_an_order_or_a_customer_share_a_lane_in_stream_order() {
        let batch = [
            purchase(1, "A", "a@example.com"),
            purchase(2, "B", "b@example.com"),
            purchase(3, "C", "a@example.com"),
            purchase(4, "D", "d@example.com"),
            purchase(5, "A", "x@example.com"),
        ];
        let lanes = split(&batch, 2);
        let mut got = seqs(&lanes);
        got.sort();
        // A (1, 5) and C (3) share a customer or an order; B and D share nothing.
        assert_eq!(got, [vec![1, 3, 5], vec![2, 4]]);
    }

    #[test]
    fn ordering_a_batch_by_lane_moves_each_event_once_into_its_lane() {
        let batch = vec![
            purchase(1, "A", "a@example.com"),
            purchase(2, "B", "b@example.com"),
            purchase(3, "C", "a@example.com"),
            purchase(4, "D", "d@example.com"),
            purchase(5, "A", "x@example.com"),
        ];
        let lanes = seqs(&split(&batch, 2));
        let mut ordered = batch;
        let lengths = order_by_lane(&mut ordered, 2);
        assert_eq!(lengths, lanes.iter().map(Vec::len).collect::<Vec<_>>());
        let got: Vec<u64> = ordered.iter().map(|m| m.meta.seq).collect();
        assert_eq!(got, lanes.concat(), "lane after lane, each in stream order");
    }

    #[test]
    fn a_reused_event_uuid_on_another_order_shares_the_first_ones_lane() {
        let batch = [
            purchase_as("same", 1, "A", "a@example.com"),
            purchase_as("other", 2, "B", "b@example.com"),
            purchase_as("same", 3, "C", "c@example.com"),
        ];
        let mut got = seqs(&split(&batch, 2));
        got.sort();
        assert_eq!(got, [vec![1, 3], vec![2]]);
    }

    #[test]
    fn a_batch_never_splits_into_more_lanes_than_asked_or_than_it_has_events() {
        let batch: Vec<Incoming> = (1..=6)
            .map(|i| purchase(i, &format!("T{i}"), &format!("{i}@example.com")))
            .collect();
        assert_eq!(split(&batch, 4).len(), 4);
        assert_eq!(split(&batch[..2], 4).len(), 2);
        assert_eq!(split(&batch, 1).len(), 1);
        assert!(split(&[], 4).is_empty());
        let all: usize = split(&batch, 4).iter().map(Vec::len).sum();
        assert_eq!(all, 6);
    }

    #[test]
    fn entity_names_never_collide_across_their_parts() {
        assert_ne!(order_entity("1", "23"), order_entity("12", "3"));
        assert_ne!(order_entity("1", "2"), customer_entity("1", "2"));
    }
}
