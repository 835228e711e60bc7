//! The delivery log keeps what no one needs for ever: duplicate and rejected deliveries expire
//! after a retention period (their stream keeps them for its own age limit too). Accepted
//! deliveries stay: they are the events' own log.

use std::time::Duration;

use chrono::Utc;
use sqlx::PgConnection;

/// Rows deleted per statement, so expiring a backlog never holds long locks.
const CHUNK: i64 = 10_000;

/// Deletes duplicate and rejected deliveries received more than `retention` ago. Answers how
/// many rows went.
pub async fn expire_delivery_log(
    conn: &mut PgConnection,
    retention: Duration,
) -> Result<u64, sqlx::Error> {
    let cutoff = Utc::now()
        - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(36_500));
    let mut total = 0;
    loop {
        let n = sqlx::query(
            "DELETE FROM deliveries WHERE id IN (
                 SELECT id FROM deliveries
                 WHERE received_at < $1 AND outcome IN ('duplicate', 'rejected')
                 LIMIT $2)",
        )
        .bind(cutoff)
        .bind(CHUNK)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        total += n;
        if n < CHUNK as u64 {
            return Ok(total);
        }
    }
}
