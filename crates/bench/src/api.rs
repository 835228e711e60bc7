//! The api benchmark: 1,000,000 customers and 5,000,000 tickets (a bulk load shaped as the
//! projector writes them, `load.sql`), then customer search, sales summary and order by id at
//! a fixed concurrency, each through `showpass api` over HTTP and as the same query functions
//! called directly on a pool, in the same run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use showpass_api::ApiConfig;
use showpass_api::direct::{self, SalesFilters};
use showpass_payload::vocab::{Grain, Tier};
use sqlx::{Executor, PgPool, Row};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::ingest::{collect, read_answer};
use crate::services;
use crate::stats::Run;

#[derive(clap::Args)]
pub struct Args {
    /// Requests per query kind and per side (API, direct).
    #[arg(long, default_value_t = 4_000)]
    requests: usize,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The benchmark's database (kept between runs: loading takes minutes).
    #[arg(
        long,
        default_value = "postgres://postgres@127.0.0.1:5432/showpass_bench_api"
    )]
    database_url: String,
    /// Drop and load the data again.
    #[arg(long)]
    reload: bool,
    #[arg(long)]
    showpass_bin: Option<PathBuf>,
    /// Renders of each console overview, one at a time.
    #[arg(long, default_value_t = 60)]
    console_requests: usize,
}

pub(crate) const KEY: &str = "bench-api-key-7c2e91";
const LOAD: &str = include_str!("load.sql");

/// The words of the customers' names and e-mails, as the projector keeps them for the search's
/// typo correction.
const SEARCH_WORDS: &str = showpass_projector::apply::ALL_SEARCH_WORDS;

/// One request of a workload: its API path, and the same query run directly.
#[derive(Clone)]
pub(crate) enum Query {
    Search { q: String, org: Option<String> },
    Order { tx: String },
    Sales { group_by: &'static str, org: String },
}

impl Query {
    fn path(&self) -> String {
        match self {
            Self::Search { q, org } => {
                let mut p = format!("/v1/customers?q={}", encode(q));
                if let Some(o) = org {
                    p.push_str(&format!("&org_id={o}"));
                }
                p
            }
            Self::Order { tx } => format!("/v1/orders/{tx}"),
            Self::Sales { group_by, org } => {
                format!("/v1/sales/summary?group_by={group_by}&org_id={org}")
            }
        }
    }

    async fn direct(&self, pool: &PgPool) -> anyhow::Result<()> {
        match self {
            Self::Search { q, org } => {
                let key = direct::CursorKey::derive(None, &[]);
                direct::search_customers(pool, &key, Some(q), org.as_deref(), None, 50).await?;
            }
            Self::Order { tx } => {
                direct::find_order(pool, tx, None).await?;
            }
            Self::Sales { group_by, org } => {
                let filters = SalesFilters {
                    org: Some(org.clone()),
                    ..SalesFilters::default()
                };
                direct::summarize(pool, group_by, filters).await?;
            }
        }
        Ok(())
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let database = showpass_store::DatabaseUrl::parse(&args.database_url)?;
    showpass_store::migrate(&database).await?;
    let pool = showpass_store::connect(&database, 2).await?;
    load(&pool, args.reload).await?;
    // The direct side: the api's own pool and session settings.
    let mut direct_config = ApiConfig::local(database, None, KEY);
    direct_config.pool_size = args.concurrency as u32;
    let direct_pool = direct::pool(&direct_config)?;

    let counts = sqlx::query(
        "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM tickets), \
         (SELECT count(*) FROM orders), (SELECT count(*) FROM sales_by_event)",
    )
    .fetch_one(&pool)
    .await?;
    println!(
        "data: {} customers, {} tickets, {} orders, {} sales_by_event rows",
        counts.get::<i64, _>(0),
        counts.get::<i64, _>(1),
        counts.get::<i64, _>(2),
        counts.get::<i64, _>(3)
    );

    let bin = services::showpass_bin(args.showpass_bin.as_deref());
    let (mut api, addr) =
        services::spawn_api(&bin, &args.database_url, KEY, Some(args.concurrency)).await?;

    let workloads = [
        (
            "customer search",
            searches(&pool, args.requests).await?,
            25.0,
        ),
        ("sales summary", sales(&pool, args.requests).await?, 10.0),
        ("order by id", orders(&pool, args.requests).await?, 3.0),
    ];
    println!(
        "\n{} requests per side at concurrency {}; direct = the api's own query functions on a pool",
        args.requests, args.concurrency
    );
    println!(
        "| query | api p50 | api p99 | direct p50 | direct p99 | api/direct p50 | api/direct p99 | api rate | target p99 |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (name, queries, target) in workloads {
        let queries = Arc::new(queries);
        // Warm both paths (caches, prepared statements), then measure each.
        over_http(addr, &queries, args.concurrency).await?;
        over_pool(&direct_pool, &queries, args.concurrency).await?;
        let mut direct = over_pool(&direct_pool, &queries, args.concurrency).await?;
        let mut http = over_http(addr, &queries, args.concurrency).await?;
        let (a50, a99) = (http.percentile_ms(50.0), http.percentile_ms(99.0));
        let (d50, d99) = (direct.percentile_ms(50.0), direct.percentile_ms(99.0));
        println!(
            "| {name} | {a50:.2} ms | {a99:.2} ms | {d50:.2} ms | {d99:.2} ms | {:.2} | {:.2} | {:.0}/s | < {target} ms |",
            a50 / d50,
            a99 / d99,
            http.rate()
        );
    }
    services::stop(&mut api).await;

    // The console as deployed: the api's default pool, since a page asks for several things
    // at once.
    let (mut api, addr) = services::spawn_api(&bin, &args.database_url, KEY, None).await?;
    console_overview(addr, &pool, args.console_requests).await?;
    services::stop(&mut api).await;
    Ok(())
}

/// The console's overview (net sales by day, by event, by ticket type, the totals and the
/// health panel) one render at a time: from the request to the page's last byte over
/// loopback, so an upper bound on the server's time.
async fn console_overview(addr: SocketAddr, pool: &PgPool, n: usize) -> anyhow::Result<()> {
    let cookie = console_login(addr).await?;
    let biggest: String = sqlx::query_scalar(
        "SELECT org_id FROM orders GROUP BY org_id ORDER BY count(*) DESC, org_id LIMIT 1",
    )
    .fetch_one(pool)
    .await?;
    println!(
        "\nconsole overview, {n} renders each at concurrency 1 (request to last byte; API_DB_POOL default)"
    );
    println!("| page | p50 | p99 | max | page size | target p99 |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let pages = [
        ("every organization, all time", "/console".to_owned()),
        (
            "the biggest organization, all time",
            format!("/console?org_id={biggest}"),
        ),
        (
            "the biggest organization, all time, in America/Edmonton",
            format!("/console?org_id={biggest}&tz=America%2FEdmonton"),
        ),
    ];
    for (name, path) in pages {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut buf = Vec::with_capacity(256 * 1024);
        let started = Instant::now();
        let mut lat = Vec::with_capacity(n);
        let mut size = 0;
        // Three renders warm the caches and prepared statements; the rest are measured.
        for i in 0..n + 3 {
            let req = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nCookie: {cookie}\r\n\r\n");
            let t = Instant::now();
            stream.write_all(req.as_bytes()).await?;
            let (status, body) = read_answer(&mut stream, &mut buf).await?;
            let took = t.elapsed().as_micros() as u32;
            anyhow::ensure!(status == 200, "{path} answered {status}");
            anyhow::ensure!(
                String::from_utf8_lossy(&body).contains("id=\"totals\""),
                "{path} is not the overview"
            );
            if i >= 3 {
                lat.push(took);
            }
            size = body.len();
        }
        let mut run = Run {
            latencies_us: lat,
            elapsed: started.elapsed(),
        };
        let max = run.percentile_ms(100.0);
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {max:.1} ms | {} KiB | < 300 ms |",
            run.percentile_ms(50.0),
            run.percentile_ms(99.0),
            size / 1024
        );
    }
    Ok(())
}

/// A console session for the bench's key: the cookie `POST /console/login` sets.
async fn console_login(addr: SocketAddr) -> anyhow::Result<String> {
    use tokio::io::AsyncReadExt as _;
    let mut stream = TcpStream::connect(addr).await?;
    let form = format!("key={KEY}");
    let req = format!(
        "POST /console/login HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    stream.write_all(req.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    anyhow::ensure!(
        answer.starts_with("HTTP/1.1 303"),
        "console login: {answer}"
    );
    answer
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("set-cookie")
                .then(|| v.trim().split(';').next().unwrap_or("").to_owned())
        })
        .context("console login set no cookie")
}

pub(crate) async fn load(pool: &PgPool, reload: bool) -> anyhow::Result<()> {
    let loaded: bool = sqlx::query_scalar("SELECT to_regclass('bench_loaded') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if loaded && !reload {
        println!("data already loaded (--reload to load again)");
        // Loaded before the bench kept the dictionary: fill it, as a load now does.
        let words: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM search_words)")
            .fetch_one(pool)
            .await?;
        if !words {
            sqlx::query(SEARCH_WORDS).execute(pool).await?;
        }
        return Ok(());
    }
    let mut conn = pool.acquire().await?;
    conn.execute(
        "DROP TABLE IF EXISTS bench_loaded; TRUNCATE shows, invoices, invoice_items, tickets, \
         orders, customers, search_words, ticket_types, sales_by_ticket_type, sales_by_event, sales_by_order_attrs, \
         sales_by_ticket_type_daily, sales_by_event_daily, sales_by_order_attrs_daily, \
         sales_by_ticket_type_monthly, sales_by_event_monthly, sales_by_order_attrs_monthly",
    )
    .await?;
    println!("loading 1,000,000 customers, 2,500,000 orders, 5,000,000 tickets ...");
    let started = Instant::now();
    // Statement by statement, so the progress shows.
    let rollups: Vec<String> = Tier::COARSER
        .iter()
        .flat_map(|&t| Grain::ALL.iter().map(move |g| g.rollup_sql(t)))
        .collect();
    let mut statements: Vec<&str> = LOAD
        .split(";\n")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let marker = statements
        .iter()
        .position(|s| s.contains("CREATE TABLE bench_loaded"))
        .unwrap_or(statements.len());
    statements.splice(marker..marker, rollups.iter().map(String::as_str));
    statements.insert(marker, SEARCH_WORDS);
    for statement in statements {
        let t = Instant::now();
        conn.execute(statement).await.with_context(|| {
            format!(
                "loading: {}",
                statement
                    .lines()
                    .find(|l| !l.starts_with("--"))
                    .unwrap_or("")
            )
        })?;
        let first = statement
            .lines()
            .find(|l| !l.starts_with("--"))
            .unwrap_or("");
        if t.elapsed() > Duration::from_secs(1) {
            println!(
                "  {:>6.1}s  {}",
                t.elapsed().as_secs_f64(),
                &first[..first.len().min(70)]
            );
        }
    }
    conn.execute("VACUUM ANALYZE").await?;
    println!("loaded in {:.0}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Search terms as people type them: part of an e-mail, a surname, a full name with a typo,
/// an accent left out, phone digits; half of them within one organization.
async fn searches(pool: &PgPool, n: usize) -> anyhow::Result<Vec<Query>> {
    let rows = sqlx::query(
        "SELECT email, name, phone, org_id FROM customers TABLESAMPLE SYSTEM (1) LIMIT $1",
    )
    .bind(n as i64)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (email, name, phone): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            let q = match i % 5 {
                0 => email.split('@').next().unwrap_or(&email).to_owned(),
                1 => name.split(' ').nth(1).unwrap_or(&name).to_owned(),
                2 => typo(&name),
                3 => name
                    .replace(['é', 'è'], "e")
                    .replace('ü', "u")
                    .replace('ç', "c"),
                _ => phone.chars().filter(char::is_ascii_digit).skip(4).collect(),
            };
            Query::Search {
                q,
                org: (i % 2 == 0).then(|| r.get::<String, _>(3)),
            }
        })
        .collect())
}

/// Swaps two letters in the middle of the surname.
fn typo(name: &str) -> String {
    let mut chars: Vec<char> = name.chars().collect();
    let at = chars.len() - 3;
    chars.swap(at, at + 1);
    chars.into_iter().collect()
}

async fn orders(pool: &PgPool, n: usize) -> anyhow::Result<Vec<Query>> {
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT transaction_id FROM orders TABLESAMPLE SYSTEM (1) LIMIT $1")
            .bind(n as i64)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|tx| Query::Order { tx }).collect())
}

/// All-time summaries of one organization, each `group_by` in turn.
async fn sales(pool: &PgPool, n: usize) -> anyhow::Result<Vec<Query>> {
    let orgs: Vec<String> = sqlx::query_scalar("SELECT DISTINCT org_id FROM shows ORDER BY 1")
        .fetch_all(pool)
        .await?;
    anyhow::ensure!(!orgs.is_empty(), "no data loaded");
    let groups = ["event", "ticket_type", "day", "payment_type"];
    Ok((0..n)
        .map(|i| Query::Sales {
            group_by: groups[i % 4],
            org: orgs[(i * 7) % orgs.len()].clone(),
        })
        .collect())
}

async fn over_pool(
    pool: &PgPool,
    queries: &Arc<Vec<Query>>,
    concurrency: usize,
) -> anyhow::Result<Run> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let (pool, queries) = (pool.clone(), queries.clone());
        tasks.spawn(async move {
            let mut lat = Vec::new();
            for q in queries.iter().skip(w).step_by(concurrency) {
                let t = Instant::now();
                q.direct(&pool).await?;
                lat.push(t.elapsed().as_micros() as u32);
            }
            anyhow::Ok(lat)
        });
    }
    collect(tasks, started).await
}

pub(crate) async fn over_http(
    addr: SocketAddr,
    queries: &Arc<Vec<Query>>,
    concurrency: usize,
) -> anyhow::Result<Run> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let queries = queries.clone();
        tasks.spawn(async move {
            let mut stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let mut buf = Vec::with_capacity(64 * 1024);
            let mut lat = Vec::new();
            for q in queries.iter().skip(w).step_by(concurrency) {
                let path = q.path();
                let req = format!(
                    "GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {KEY}\r\n\r\n"
                );
                let t = Instant::now();
                stream.write_all(req.as_bytes()).await?;
                let (status, body) = read_answer(&mut stream, &mut buf).await?;
                lat.push(t.elapsed().as_micros() as u32);
                anyhow::ensure!(
                    status == 200,
                    "{path} answered {status}: {}",
                    String::from_utf8_lossy(&body)
                );
            }
            anyhow::Ok(lat)
        });
    }
    collect(tasks, started).await
}
