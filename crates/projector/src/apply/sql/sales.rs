//! The sales aggregates: each grain's 15-minute cells and their daily and monthly tiers,
//! moved by the batch's deltas.

use std::collections::HashMap;

use rust_decimal::Decimal;
use sqlx::PgConnection;

use crate::apply::ApplyError;
use crate::apply::fold::{Acc, Cell, Overflow, SalesDeltas};
use showpass_payload::vocab::{Grain, Tier};

/// Adds the batch's sales deltas to the three aggregate tables and their daily and monthly
/// tiers.
pub async fn add_sales(tx: &mut PgConnection, deltas: &SalesDeltas) -> Result<(), ApplyError> {
    for &grain in Grain::ALL {
        let (keys, cells) = (grain.key_columns(), deltas.of(grain));
        add_sales_table(tx, grain.table(), keys, cells).await?;
        for tier in Tier::COARSER {
            add_sales_table(tx, grain.table_of(tier), keys, &roll_up(cells, tier)?).await?;
        }
    }
    Ok(())
}

/// The cells rolled up to `tier`'s buckets (whole UTC days or months).
fn roll_up(cells: &HashMap<Cell, Acc>, tier: Tier) -> Result<HashMap<Cell, Acc>, Overflow> {
    let mut rolled: HashMap<Cell, Acc> = HashMap::with_capacity(cells.len());
    for (cell, acc) in cells {
        let coarse = Cell {
            bucket: tier.bucket(cell.bucket),
            ..cell.clone()
        };
        rolled.entry(coarse).or_default().add(acc)?;
    }
    Ok(rolled)
}

async fn add_sales_table(
    tx: &mut PgConnection,
    table: &str,
    keys: &[&str],
    cells: &HashMap<Cell, Acc>,
) -> Result<(), sqlx::Error> {
    if cells.is_empty() {
        return Ok(());
    }
    let mut cells: Vec<(&Cell, &Acc)> = cells.iter().collect();
    cells.sort_by(|a, b| a.0.cmp(b.0));
    let key_cols = keys.join(", ");
    let key_params: Vec<String> = (1..=keys.len()).map(|i| format!("${i}::text[]")).collect();
    let n = keys.len();
    let p = |k: usize| n + k;
    let sql = format!(
        "INSERT INTO {table} ({key_cols}, bucket, payment_type, currency, orders, tickets,
             gross_revenue, net_sales, service_fees, total_tax, discounts, refunds)
         SELECT * FROM UNNEST({}, ${}::timestamptz[], ${}::text[], ${}::text[], ${}::int8[], ${}::int8[],
             ${}::numeric[], ${}::numeric[], ${}::numeric[], ${}::numeric[], ${}::numeric[], ${}::numeric[])
         ON CONFLICT ({key_cols}, bucket, payment_type, currency) DO UPDATE SET
             orders = {table}.orders + EXCLUDED.orders,
             tickets = {table}.tickets + EXCLUDED.tickets,
             gross_revenue = {table}.gross_revenue + EXCLUDED.gross_revenue,
             net_sales = {table}.net_sales + EXCLUDED.net_sales,
             service_fees = {table}.service_fees + EXCLUDED.service_fees,
             total_tax = {table}.total_tax + EXCLUDED.total_tax,
             discounts = {table}.discounts + EXCLUDED.discounts,
             refunds = {table}.refunds + EXCLUDED.refunds",
        key_params.join(", "),
        p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(8), p(9), p(10), p(11),
    );
    let mut q = sqlx::query(&sql);
    let key_values = |c: &Cell, k: &str| -> String {
        match k {
            "org_id" => c.org_id.clone(),
            "event_id" => c.event_id.clone(),
            _ => c.ticket_type_id.clone(),
        }
    };
    for k in keys {
        q = q.bind(
            cells
                .iter()
                .map(|(c, _)| key_values(c, k))
                .collect::<Vec<_>>(),
        );
    }
    let acc = |f: fn(&Acc) -> Decimal| cells.iter().map(|(_, a)| f(a)).collect::<Vec<_>>();
    q.bind(cells.iter().map(|(c, _)| c.bucket).collect::<Vec<_>>())
        .bind(
            cells
                .iter()
                .map(|(c, _)| c.payment_type.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            cells
                .iter()
                .map(|(c, _)| c.currency.clone())
                .collect::<Vec<_>>(),
        )
        .bind(cells.iter().map(|(_, a)| a.orders).collect::<Vec<_>>())
        .bind(cells.iter().map(|(_, a)| a.tickets).collect::<Vec<_>>())
        .bind(acc(|a| a.gross_revenue))
        .bind(acc(|a| a.net_sales))
        .bind(acc(|a| a.service_fees))
        .bind(acc(|a| a.total_tax))
        .bind(acc(|a| a.discounts))
        .bind(acc(|a| a.refunds))
        .execute(&mut *tx)
        .await?;
    Ok(())
}
