//! The vocabulary and the schema agree: every value a `CHECK` constraint lists is a word of
//! the matching enum, and every word is allowed by it. A word added on one side only fails
//! here, not on the first row that carries it.

use std::collections::BTreeSet;

use showpass_payload::vocab::{
    AnomalyKind, GapKind, Grain, OrderKind, OrderStatus, Outcome, Processing, Tier, Word,
};
use sqlx::PgPool;

/// The quoted values of the `CHECK` constraint on `table.column`.
async fn allowed(pool: &PgPool, table: &str, column: &str) -> BTreeSet<String> {
    let defs: Vec<String> = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
         JOIN pg_class t ON t.oid = c.conrelid
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(c.conkey)
         WHERE c.contype = 'c' AND t.relname = $1 AND a.attname = $2",
    )
    .bind(table)
    .bind(column)
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(defs.len(), 1, "one CHECK on {table}.{column}: {defs:?}");
    defs[0]
        .split('\'')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn words<W: Word>() -> BTreeSet<String> {
    W::ALL.iter().map(|w| w.as_str().to_owned()).collect()
}

#[sqlx::test(migrations = "../../migrations")]
async fn every_word_is_allowed_by_its_check_constraint_and_nothing_else(pool: PgPool) {
    let pairs = [
        ("orders", "status", words::<OrderStatus>()),
        ("orders", "kind", words::<OrderKind>()),
        ("deliveries", "outcome", words::<Outcome>()),
        ("deliveries", "processing", words::<Processing>()),
        ("gaps", "kind", words::<GapKind>()),
        ("anomalies", "kind", words::<AnomalyKind>()),
    ];
    for (table, column, words) in pairs {
        assert_eq!(
            allowed(&pool, table, column).await,
            words,
            "{table}.{column} and the vocabulary"
        );
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn every_grain_names_tables_and_keys_that_exist(pool: PgPool) {
    for &grain in Grain::ALL {
        for table in [grain.table(), grain.daily_table(), grain.monthly_table()] {
            let columns: Vec<String> = sqlx::query_scalar(
                "SELECT column_name::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1",
            )
            .bind(table)
            .fetch_all(&pool)
            .await
            .unwrap();
            for key in grain.key_columns() {
                assert!(columns.iter().any(|c| c == key), "{table} has no {key}");
            }
            assert_eq!(
                columns.iter().any(|c| c == "event_id"),
                grain.has_event(),
                "{table}"
            );
        }
        // The roll-ups are valid SQL against the schema.
        for tier in Tier::COARSER {
            sqlx::query(&grain.rollup_sql(tier))
                .execute(&pool)
                .await
                .unwrap();
        }
    }
}
