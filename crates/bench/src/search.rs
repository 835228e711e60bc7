//! Customer search class by class, on the api benchmark's 1M customers: each kind of query a
//! person types, through `showpass api` over HTTP, at concurrency 1 (latency) and 16
//! (throughput), so a slow class cannot hide in a mix.

use std::path::PathBuf;
use std::sync::Arc;

use sqlx::{PgPool, Row};

use crate::api::{KEY, Query, over_http};
use crate::services;

#[derive(clap::Args)]
pub struct Args {
    /// Queries per class and per concurrency.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// The api benchmark's database (`showpass-bench api` loads it).
    #[arg(
        long,
        default_value = "postgres://postgres@127.0.0.1:5432/showpass_bench_api"
    )]
    database_url: String,
    /// Within one organization (`org_id`), as the console's users search, rather than across
    /// all of them.
    #[arg(long)]
    per_organization: bool,
    #[arg(long)]
    showpass_bin: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let database = showpass_store::DatabaseUrl::parse(&args.database_url)?;
    showpass_store::migrate(&database).await?;
    let pool = showpass_store::connect(&database, 2).await?;
    crate::api::load(&pool, false).await?;
    let classes = classes(&pool, args.requests, args.per_organization).await?;

    let bin = services::showpass_bin(args.showpass_bin.as_deref());
    let (mut api, addr) = services::spawn_api(&bin, &args.database_url, KEY, None).await?;

    let scope = if args.per_organization {
        "within one organization"
    } else {
        "across all organizations"
    };
    println!(
        "\ncustomer search by class, {} queries each, {scope}, through the api (API_DB_POOL 16)",
        args.requests
    );
    println!("| class | c=1 p50 | c=1 p99 | c=1 max | c=16 p50 | c=16 p99 | c=16 rate |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (name, queries) in classes {
        let queries = Arc::new(queries);
        // A class whose queries fail (a 503 past the api's request timeout) says so and the
        // next class runs.
        let measured = async {
            over_http(addr, &queries, 4).await?; // warm
            let one = over_http(addr, &queries, 1).await?;
            anyhow::Ok((one, over_http(addr, &queries, 16).await))
        };
        match measured.await {
            Ok((mut one, many)) => {
                let (c1_50, c1_99, c1_max) = (
                    one.percentile_ms(50.0),
                    one.percentile_ms(99.0),
                    one.percentile_ms(100.0),
                );
                let many = match many {
                    Ok(mut m) => format!(
                        "{:.2} ms | {:.2} ms | {:.0}/s",
                        m.percentile_ms(50.0),
                        m.percentile_ms(99.0),
                        m.rate()
                    ),
                    Err(e) => format!("failed: {} | | ", first_line(&e)),
                };
                println!("| {name} | {c1_50:.2} ms | {c1_99:.2} ms | {c1_max:.2} ms | {many} |");
            }
            Err(e) => println!("| {name} | failed: {} | | | | | |", first_line(&e)),
        }
    }
    services::stop(&mut api).await;
    Ok(())
}

/// A sampled customer: e-mail, name, phone, organization.
type Sampled = (String, String, String, String);

/// The queries of each class, from customers sampled at random.
async fn classes(
    pool: &PgPool,
    n: usize,
    per_org: bool,
) -> anyhow::Result<Vec<(&'static str, Vec<Query>)>> {
    let rows = sqlx::query(
        "SELECT email, name, phone, org_id FROM customers TABLESAMPLE SYSTEM (1) LIMIT $1",
    )
    .bind(n as i64)
    .fetch_all(pool)
    .await?;
    anyhow::ensure!(!rows.is_empty(), "no customers loaded");
    let common: Vec<String> = sqlx::query_scalar(
        "SELECT split_part(name, ' ', 1) FROM customers GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 10",
    )
    .fetch_all(pool)
    .await?;
    let sampled: Vec<Sampled> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let of = |f: &dyn Fn(usize, &Sampled) -> String| -> Vec<Query> {
        (0..n)
            .map(|i| {
                let c = &sampled[i % sampled.len()];
                Query::Search {
                    q: f(i, c),
                    org: per_org.then(|| c.3.clone()),
                }
            })
            .collect()
    };
    let surname = |name: &str| name.split(' ').nth(1).unwrap_or(name).to_owned();
    Ok(vec![
        ("full e-mail", of(&|_, c| c.0.clone())),
        (
            "e-mail prefix (6 characters)",
            of(&|_, c| c.0.chars().take(6).collect()),
        ),
        ("last name", of(&|_, c| surname(&c.1))),
        (
            "the 10 most common first names",
            of(&|i, _| common[i % common.len()].clone()),
        ),
        (
            "2 letters",
            of(&|_, c| surname(&c.1).to_lowercase().chars().take(2).collect()),
        ),
        (
            "a one-letter typo in a surname",
            of(&|_, c| one_letter_typo(&surname(&c.1))),
        ),
        (
            "a phone suffix (4 digits)",
            of(&|_, c| {
                let digits: Vec<char> = c.2.chars().filter(char::is_ascii_digit).collect();
                digits[digits.len().saturating_sub(4)..].iter().collect()
            }),
        ),
    ])
}

/// One letter in the middle replaced by another.
fn one_letter_typo(word: &str) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    let at = chars.len() / 2;
    chars[at] = if chars[at] == 'x' { 'q' } else { 'x' };
    chars.into_iter().collect()
}

fn first_line(e: &anyhow::Error) -> String {
    e.to_string()
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(80)
        .collect()
}
