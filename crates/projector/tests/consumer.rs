//! The consuming loop with faults injected between JetStream and the projector (issue 11):
//! nothing it was not handed whole is ever passed over, and "already applied" means the
//! ledger holds it, not that the checkpoint is past it.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt as _;
use showpass_payload::samples::SampleKind::{Purchase, Refund};
use showpass_projector::{
    Batch, BatchLimits, Continuity, Incoming, Meta, Pass, Source, apply_events, fill_batch, pass,
};
use showpass_testkit::*;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Three purchases delivered through ingest, and the same three as a consumer hands them out.
async fn three_messages(ingest: &TestIngest) -> Vec<jetstream::Message> {
    deliver_purchases(ingest, 1..=3).await;
    pull_from(&consumer(ingest).await, 3).await
}

/// Purchases `T{i}` delivered through ingest, one per `i`.
async fn deliver_purchases(ingest: &TestIngest, ids: std::ops::RangeInclusive<u32>) {
    for i in ids {
        let (status, answer) = ingest
            .deliver(&sample_body(
                Purchase,
                &format!("u-{i}"),
                &format!("T{i}"),
                "20",
            ))
            .await;
        assert!(status.is_success(), "{answer}");
    }
}

async fn consumer(ingest: &TestIngest) -> jetstream::consumer::Consumer<pull::Config> {
    ingest
        .events()
        .await
        .create_consumer(pull::Config::default())
        .await
        .unwrap()
}

/// The next `n` messages the consumer hands out.
async fn pull_from(
    consumer: &jetstream::consumer::Consumer<pull::Config>,
    n: usize,
) -> Vec<jetstream::Message> {
    let messages: Vec<jetstream::Message> = consumer
        .fetch()
        .max_messages(n)
        .messages()
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(messages.len(), n);
    messages
}

/// How many messages a batch takes from `items`, followed by nothing ever again, with a
/// linger of an hour: the answer comes only if the batch stops waiting on its own.
async fn batch_taken_from(
    ingest: &TestIngest,
    items: impl futures::Stream<Item = Result<jetstream::Message, String>> + Unpin,
) -> usize {
    let mut items = items.chain(futures::stream::pending());
    let first = items.next().await.unwrap();
    let filled = tokio::time::timeout(
        Duration::from_secs(30),
        fill_batch(
            first,
            &mut items,
            &ingest.config.nats.events_stream(),
            Batch::new(Source::Events, 1),
            BatchLimits {
                linger: Duration::from_secs(3600),
                ..BatchLimits::for_rebuild(1_000)
            },
            &mut Continuity::default(),
        ),
    )
    .await
    .expect("the batch waited for deliveries not yet sent");
    assert_eq!(filled.interrupted, None);
    filled.messages.len()
}

/// One pass of the projector's loop over exactly these pulled items.
async fn one_pass(
    ingest: &TestIngest,
    pool: &PgPool,
    items: Vec<Result<jetstream::Message, String>>,
) -> Pass {
    let mut conn = pool.acquire().await.unwrap();
    let mut stream = futures::stream::iter(items);
    let limits = BatchLimits {
        linger: Duration::from_millis(10),
        ..BatchLimits::for_rebuild(1_000)
    };
    pass(
        &mut conn,
        &mut [],
        &ingest.config.nats.events_stream(),
        Source::Events,
        &mut stream,
        limits,
        &CancellationToken::new(),
    )
    .await
    .unwrap()
}

async fn checkpoint(ingest: &TestIngest, pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT COALESCE((SELECT last_seq FROM checkpoints WHERE stream = $1), 0)")
        .bind(ingest.config.nats.events_stream())
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn applied_orders(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT transaction_id FROM orders ORDER BY 1")
        .fetch_all(pool)
        .await
        .unwrap()
}

fn seq(m: &jetstream::Message) -> i64 {
    m.info().unwrap().stream_sequence as i64
}

/// Live traffic: the last message of the three says nothing is pending behind it, so the
/// batch is applied at once instead of lingering for deliveries no one has sent yet (every
/// live event paid the whole linger in its freshness).
#[sqlx::test(migrations = "../../migrations")]
async fn a_caught_up_consumer_applies_at_once_instead_of_waiting_out_the_linger(_pool: PgPool) {
    let ingest = TestIngest::start().await;
    let items = three_messages(&ingest).await.into_iter().map(Ok);
    assert_eq!(
        batch_taken_from(&ingest, futures::stream::iter(items)).await,
        3
    );
}

/// Caught up after the first message, the batch still takes the two that had already
/// arrived behind it: only the waiting stops.
#[sqlx::test(migrations = "../../migrations")]
async fn a_caught_up_batch_still_takes_what_has_already_arrived(_pool: PgPool) {
    let ingest = TestIngest::start().await;
    let consumer = consumer(&ingest).await;
    deliver_purchases(&ingest, 1..=1).await;
    let mut messages = pull_from(&consumer, 1).await;
    assert_eq!(messages[0].info().unwrap().pending, 0);
    deliver_purchases(&ingest, 2..=3).await;
    messages.extend(pull_from(&consumer, 2).await);
    let items = messages.into_iter().map(Ok);
    assert_eq!(
        batch_taken_from(&ingest, futures::stream::iter(items)).await,
        3
    );
}

/// Caught up, then not: a message that says more are pending behind it (published since)
/// makes the batch wait again, within the same linger.
#[sqlx::test(migrations = "../../migrations")]
async fn a_message_with_more_behind_it_makes_a_caught_up_batch_wait_again(_pool: PgPool) {
    let ingest = TestIngest::start().await;
    let consumer = consumer(&ingest).await;
    deliver_purchases(&ingest, 1..=1).await;
    let mut messages = pull_from(&consumer, 1).await;
    deliver_purchases(&ingest, 2..=3).await;
    messages.extend(pull_from(&consumer, 2).await);
    let [m1, m2, m3] = <[_; 3]>::try_from(messages).ok().unwrap();
    assert_eq!(
        (m1.info().unwrap().pending, m2.info().unwrap().pending),
        (0, 1)
    );
    let late = futures::stream::once(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(m3)
    });
    let items = futures::stream::iter([Ok(m1), Ok(m2)]).chain(late);
    assert_eq!(batch_taken_from(&ingest, Box::pin(items)).await, 3);
}

/// 200 messages, each caught up when it was handed out, all waiting in a channel: the batch
/// takes every one, though a task's cooperative budget (128 channel receives per poll) ends
/// long before; a message in the channel is ready whatever the budget.
#[sqlx::test(migrations = "../../migrations")]
async fn a_caught_up_batch_takes_more_ready_messages_than_a_tasks_budget(_pool: PgPool) {
    let ingest = TestIngest::start().await;
    let consumer = consumer(&ingest).await;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 1..=200 {
        deliver_purchases(&ingest, i..=i).await;
        let [m] = <[_; 1]>::try_from(pull_from(&consumer, 1).await)
            .ok()
            .unwrap();
        assert_eq!(m.info().unwrap().pending, 0);
        tx.send(Ok(m)).unwrap();
    }
    let items =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    assert_eq!(batch_taken_from(&ingest, Box::pin(items)).await, 200);
}

/// Catching up: the first message says two more are in the stream, so the batch waits for
/// them, however late they come (within the linger).
#[sqlx::test(migrations = "../../migrations")]
async fn messages_the_stream_still_holds_are_waited_for(_pool: PgPool) {
    let ingest = TestIngest::start().await;
    let [m1, m2, m3] = <[_; 3]>::try_from(three_messages(&ingest).await)
        .ok()
        .unwrap();
    assert_eq!(m1.info().unwrap().pending, 2);
    let late = futures::stream::once(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(m2)
    });
    let items = futures::stream::iter([Ok(m1)])
        .chain(late)
        .chain(futures::stream::iter([Ok(m3)]));
    assert_eq!(batch_taken_from(&ingest, Box::pin(items)).await, 3);
}

/// A pull error part-way through a batch: what came before is applied, and the pass starts
/// again from the checkpoint instead of going on past whatever the error cost.
#[sqlx::test(migrations = "../../migrations")]
async fn a_pull_error_mid_batch_never_lets_the_checkpoint_pass_an_unapplied_message(pool: PgPool) {
    let ingest = TestIngest::start().await;
    let [m1, _m2, m3] = <[_; 3]>::try_from(three_messages(&ingest).await)
        .ok()
        .unwrap();
    let first = seq(&m1);
    let outcome = one_pass(&ingest, &pool, vec![Ok(m1), Err("injected".into()), Ok(m3)]).await;
    assert!(
        matches!(&outcome, Pass::Restart(why) if why.contains("pull error: injected")),
        "{outcome:?}"
    );
    assert_eq!(checkpoint(&ingest, &pool).await, first);
    assert_eq!(applied_orders(&pool).await, ["T1"]);
}

/// A delivery lost between the server and the loop shows as a gap in the consumer's
/// sequence: the pass stops there and starts again from the checkpoint.
#[sqlx::test(migrations = "../../migrations")]
async fn a_gap_in_the_consumers_deliveries_never_lets_the_checkpoint_pass_it(pool: PgPool) {
    let ingest = TestIngest::start().await;
    let [m1, _lost, m3] = <[_; 3]>::try_from(three_messages(&ingest).await)
        .ok()
        .unwrap();
    let first = seq(&m1);
    let outcome = one_pass(&ingest, &pool, vec![Ok(m1), Ok(m3)]).await;
    assert!(
        matches!(&outcome, Pass::Restart(why) if why.contains("skipped from 1 to 3")),
        "{outcome:?}"
    );
    assert_eq!(checkpoint(&ingest, &pool).await, first);
    assert_eq!(applied_orders(&pool).await, ["T1"]);
}

/// A message whose stream metadata cannot be read is never taken for sequence 0 (and so for
/// applied): it is neither applied nor acknowledged, and the pass starts again.
#[sqlx::test(migrations = "../../migrations")]
async fn a_message_without_readable_metadata_is_never_treated_as_sequence_zero(pool: PgPool) {
    let ingest = TestIngest::start().await;
    let [m1, mut m2, _m3] = <[_; 3]>::try_from(three_messages(&ingest).await)
        .ok()
        .unwrap();
    let first = seq(&m1);
    m2.message.reply = Some("not.a.jetstream.ack".into());
    let outcome = one_pass(&ingest, &pool, vec![Ok(m1), Ok(m2)]).await;
    assert!(
        matches!(&outcome, Pass::Restart(why) if why.contains("no readable stream metadata")),
        "{outcome:?}"
    );
    assert_eq!(checkpoint(&ingest, &pool).await, first);
    assert_eq!(applied_orders(&pool).await, ["T1"]);
}

/// A message at or below the checkpoint that the ledger does not hold was never applied: it
/// is applied now. One the ledger holds is acknowledged as already applied, changing nothing.
#[sqlx::test(migrations = "../../migrations")]
async fn below_the_checkpoint_only_the_ledger_says_already_applied(pool: PgPool) {
    let ingest = TestIngest::start().await;
    let messages = three_messages(&ingest).await;
    let stream = ingest.config.nats.events_stream();
    sqlx::query("INSERT INTO checkpoints (stream, last_seq) VALUES ($1, 1000)")
        .bind(&stream)
        .execute(&pool)
        .await
        .unwrap();
    let m2 = &messages[1];
    let info = m2.info().unwrap();
    let incoming = Incoming::plan(
        Meta::from_headers(
            &stream,
            info.stream_sequence,
            m2.headers.as_ref(),
            info.published,
        ),
        &m2.payload,
    );
    let mut conn = pool.acquire().await.unwrap();
    let first = apply_events(&mut conn, &stream, std::slice::from_ref(&incoming))
        .await
        .unwrap();
    assert_eq!((first.applied, first.already), (1, 0));
    assert_eq!(applied_orders(&pool).await, ["T2"]);
    let again = apply_events(&mut conn, &stream, std::slice::from_ref(&incoming))
        .await
        .unwrap();
    assert_eq!((again.applied, again.duplicate, again.already), (0, 0, 1));
    assert_eq!(checkpoint(&ingest, &pool).await, 1000);
}

fn planned(stream: &str, seq: u64, body: &[u8]) -> Incoming {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        "Showpass-Delivery-Id",
        uuid::Uuid::new_v4().to_string().as_str(),
    );
    Incoming::plan(
        Meta::from_headers(stream, seq, Some(&headers), chrono::Utc::now()),
        body,
    )
}

/// Issue 11 review: when not even a bare record of an event can be stored (here the log
/// already has another delivery at its stream position, as after a renumbered stream), the
/// stream moves past it, logged, instead of retrying it for ever.
#[sqlx::test(migrations = "../../migrations")]
async fn an_event_no_record_of_which_can_be_stored_never_holds_the_stream(pool: PgPool) {
    let stream = "T_EVENTS";
    sqlx::query(
        "INSERT INTO deliveries (id, received_at, endpoint, outcome, http_status, stream,
             stream_seq, processing)
         VALUES (gen_random_uuid(), now(), 'default', 'accepted', 202, $1, 5, 'applied')",
    )
    .bind(stream)
    .execute(&pool)
    .await
    .unwrap();
    let body = sample_body(Purchase, "u-5", "T5", "20");
    let mut conn = pool.acquire().await.unwrap();
    let tally =
        showpass_projector::apply_resilient(&mut conn, stream, &[planned(stream, 5, &body)])
            .await
            .unwrap();
    assert_eq!(tally.failed, 1, "{tally:?}");
    let checkpoint: i64 = sqlx::query_scalar("SELECT last_seq FROM checkpoints WHERE stream = $1")
        .bind(stream)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(checkpoint, 5);
    assert!(
        applied_orders(&pool).await.is_empty(),
        "nothing half applied"
    );
}

/// Issue 11 review: a refund without a currency and its purchase in one batch book the
/// refund in the purchase's currency, as in two batches.
#[sqlx::test(migrations = "../../migrations")]
async fn a_refund_and_its_purchase_in_one_batch_share_the_purchases_currency(pool: PgPool) {
    let stream = "T_EVENTS";
    let refund = edit(&sample_body(Refund, "r-1", "B1", "20"), |v| {
        v["data"].as_object_mut().unwrap().remove("currency");
    });
    let purchase = edit(&sample_body(Purchase, "p-1", "B1", "20"), |v| {
        v["data"]["currency"] = "USD".into()
    });
    let batch = [planned(stream, 1, &refund), planned(stream, 2, &purchase)];
    let mut conn = pool.acquire().await.unwrap();
    let tally = apply_events(&mut conn, stream, &batch).await.unwrap();
    assert_eq!(tally.applied, 2);
    let cells: Vec<(String, rust_decimal::Decimal, i64)> = sqlx::query_as(
        "SELECT currency, sum(net_sales), sum(tickets)::int8 FROM sales_by_order_attrs GROUP BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(cells, [("USD".to_owned(), rust_decimal::Decimal::ZERO, 0)]);
    let booked: Vec<Option<String>> =
        sqlx::query_scalar("SELECT booked_currency FROM invoices ORDER BY stream_seq")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(booked, [Some("USD".to_owned()), Some("USD".to_owned())]);
}
