//! `/v1/customers`: search, and one customer with their orders.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, QueryBuilder};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, Problem};
use crate::money::{CurrencyAmount, CurrencyAmounts, Money};
use crate::orders::{self, OrderOut};
use crate::page::{self, Cursor, CursorKey, Key, Keyset, Page, bad_cursor};
use crate::params::{self, Params};
use crate::routes::Routes;
use crate::state::AppState;

pub(crate) fn routes() -> Routes {
    Routes::new("/v1")
        .add::<__path_list_customers, _, _>(list_customers)
        .add::<__path_get_customer, _, _>(get_customer)
}

/// A customer: one (organization, e-mail) pair.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
#[schema(example = json!({
    "id": "3d2f1c8e-6a51-5b7e-9c34-1f0e2d4a6b8c", "org_id": "20",
    "email": "ava.cote@example.com", "name": "Ava Côté", "phone": "+1 403 555 0100",
    "subscribed_to_venue": true, "orders_count": 2, "tickets_count": 3, "currency": "CAD",
    "total_spent": "112.50", "spent_by_currency": [{"currency": "CAD", "amount": "112.50"}],
    "first_seen_at": "2026-11-27T18:02:11.412Z", "last_seen_at": "2026-11-28T09:15:40.001Z",
    "score": null
}))]
pub struct CustomerOut {
    /// Stable across rebuilds: a UUID v5 of the organization and the e-mail.
    pub id: Uuid,
    pub org_id: String,
    /// Trimmed and lower-cased.
    pub email: String,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub subscribed_to_venue: bool,
    /// Orders they purchased or received by transfer.
    pub orders_count: i32,
    /// Tickets of their orders still valid.
    pub tickets_count: i32,
    /// Their currency: that of their first order with one.
    #[schema(example = "CAD")]
    pub currency: String,
    /// Net sales of their orders in `currency`, less refunds.
    #[sqlx(try_from = "Decimal")]
    pub total_spent: Money,
    /// What they spent in each currency of their orders (amounts in different currencies are
    /// never added together).
    #[schema(value_type = Vec<CurrencyAmount>)]
    pub spent_by_currency: CurrencyAmounts,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// How well the customer matches `q` (higher first); absent without `q`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[sqlx(default)]
    pub score: Option<f64>,
}

/// A customer with their orders.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerDetail {
    #[serde(flatten)]
    pub customer: CustomerOut,
    /// Their orders, newest first (at most 500).
    pub orders: Vec<OrderOut>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CustomerQuery {
    /// Matches e-mail, name or phone: case- and accent-insensitive, substring, typo-tolerant;
    /// results ranked by relevance. Words all under three letters (`jo`) match the start of
    /// a word first, and anywhere only when no customer has such a word.
    #[param(value_type = Option<crate::params_doc::Query>, inline)]
    pub q: Option<String>,
    /// Only this organization's customers.
    #[param(value_type = Option<crate::params_doc::Id>, inline)]
    pub org_id: Option<String>,
    /// Page size (default 50, at most 500).
    #[param(value_type = Option<crate::params_doc::Limit>, inline)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<crate::params_doc::CursorText>, inline)]
    pub cursor: Option<String>,
}

const COLUMNS: &str = "c.id, c.org_id, c.email, c.name, c.phone, c.subscribed_to_venue, \
    c.orders_count, c.tickets_count, c.currency, c.total_spent, c.spent_by_currency, \
    c.first_seen_at, c.last_seen_at";

/// Search customers.
///
/// Without `q`, customers in (organization, e-mail) order; with `q`, by relevance.
#[utoipa::path(get, path = "/v1/customers", tag = "customers", params(CustomerQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "a page of customers", body = Page<CustomerOut>),
              (status = 400, description = "a parameter is bad", body = Problem, content_type = "application/problem+json"),
              (status = 401, description = "no key or a wrong one", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "the database (or NATS) is unavailable or too slow; retry later", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list_customers(
    State(state): State<AppState>,
    Params(query): Params<CustomerQuery>,
) -> ApiResult<Json<Page<CustomerOut>>> {
    let limit = state.limit(query.limit.as_deref())?;
    let q = params::text("q", query.q.as_deref(), 200)?;
    let org = params::text("org_id", query.org_id.as_deref(), 100)?;
    let page = search_customers(
        &state.pool,
        &state.cursor_key,
        q.as_deref(),
        org.as_deref(),
        query.cursor.as_deref(),
        limit,
    )
    .await?;
    Ok(Json(page))
}

/// The query behind `GET /v1/customers`: by relevance with `q`, else by (organization, e-mail).
pub async fn search_customers(
    pool: &PgPool,
    key: &CursorKey,
    q: Option<&str>,
    org: Option<&str>,
    cursor: Option<&str>,
    limit: u32,
) -> ApiResult<Page<CustomerOut>> {
    let db = Db { pool, key };
    match q {
        None => list_all(db, org, cursor, limit).await,
        Some(q) => search(db, q, org, cursor, limit).await,
    }
}

/// Where a search reads, and the key its cursors are signed with.
#[derive(Clone, Copy)]
struct Db<'a> {
    pool: &'a PgPool,
    key: &'a CursorKey,
}

async fn list_all(
    db: Db<'_>,
    org: Option<&str>,
    cursor: Option<&str>,
    limit: u32,
) -> ApiResult<Page<CustomerOut>> {
    let mut sql = QueryBuilder::new(format!("SELECT {COLUMNS} FROM customers c WHERE true"));
    if let Some(org) = org {
        sql.push(" AND c.org_id = ").push_bind(org);
    }
    const LISTING: Keyset = Keyset {
        listing: "customers",
        columns: &[("c.org_id", Key::Text), ("c.email", Key::Text)],
        descending: false,
    };
    LISTING.after(&mut sql, cursor, db.key, limit)?;
    let rows: Vec<CustomerOut> = sql.build_query_as().fetch_all(db.pool).await?;
    Ok(LISTING.page(rows, limit, db.key, |c| {
        vec![c.org_id.clone(), c.email.clone()]
    }))
}

/// The stored, folded text a search matches; see migration `api_search`.
const DOC: &str = "c.search_doc";

/// The same without the e-mail's domain, after a space, for the starts of words; see
/// migration `search_word_starts`.
const WORDS: &str = "c.words_doc";

/// Three tiers, each tried only when the one before found nothing:
/// 0. (only for a query whose every word is under three letters, such as `jo`) customers with
///    a word that starts with each of them: a name begins with what people type, and unlike
///    the substring of two letters it is in the trigram index (`"  j"`, `" jo"`, the padded
///    trigrams of a word's start), so it reads the customers it finds instead of every row;
/// 1. every word of `q` occurs in the customer's text (trigram index), ranked by where the
///    first word occurs, an exact e-mail above all;
/// 2. the same with each word corrected to the closest word customers' names and e-mails are
///    made of (`search_words`: a few thousand words, not a million customers);
/// 3. typo-tolerant similarity against the whole text (`<%`), the slowest.
///
/// A cursor remembers its tier, so later pages continue the same listing.
async fn search(
    db: Db<'_>,
    q: &str,
    org: Option<&str>,
    cursor: Option<&str>,
    limit: u32,
) -> ApiResult<Page<CustomerOut>> {
    let words: Vec<String> = q.split_whitespace().take(8).map(str::to_owned).collect();
    let digits: String = q.chars().filter(char::is_ascii_digit).collect();
    let phone = digits.len() >= 4
        && q.chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    if phone {
        let after = match cursor {
            Some(c) => Some(score_and_id(Cursor::decode(c, PHONE, 2, db.key)?)?),
            None => None,
        };
        return by_phone(db, &digits, org, after, limit).await;
    }
    if let Some(c) = cursor {
        let (tier, parts) = [WORD_START, SUBSTRING, CORRECTED, FUZZY]
            .into_iter()
            .find_map(|t| Cursor::decode(c, t, 2, db.key).ok().map(|p| (t, p)))
            .ok_or_else(bad_cursor)?;
        let after = Some(score_and_id(parts)?);
        return match tier {
            // A word-start cursor goes on only with a query that listing takes (another
            // query's words might have no trigram, and read every index entry).
            WORD_START if !words.iter().all(|w| starts_words(w)) => Err(bad_cursor()),
            WORD_START | SUBSTRING => ranked(db, q, &words, org, after, limit, tier).await,
            CORRECTED => {
                let corrected = correct(db.pool, &words).await?;
                ranked(db, q, &corrected, org, after, limit, CORRECTED).await
            }
            _ => fuzzy(db, q, org, after, limit).await,
        };
    }
    if words.iter().all(|w| starts_words(w)) {
        let page = ranked(db, q, &words, org, None, limit, WORD_START).await?;
        if !page.items.is_empty() {
            return Ok(page);
        }
    }
    let page = ranked(db, q, &words, org, None, limit, SUBSTRING).await?;
    if !page.items.is_empty() || !q.chars().any(char::is_alphabetic) {
        return Ok(page);
    }
    let corrected = correct(db.pool, &words).await?;
    let page = ranked(db, q, &corrected, org, None, limit, CORRECTED).await?;
    if !page.items.is_empty() {
        return Ok(page);
    }
    fuzzy(db, q, org, None, limit).await
}

fn score_and_id(parts: Vec<String>) -> ApiResult<(f64, Uuid)> {
    let score: f64 = parts[0].parse().map_err(|_| bad_cursor())?;
    let id: Uuid = parts[1].parse().map_err(|_| bad_cursor())?;
    Ok((score, id))
}

/// A phone number, or its last digits, however written: matched on the digits' suffix index.
async fn by_phone(
    db: Db<'_>,
    digits: &str,
    org: Option<&str>,
    after: Option<(f64, Uuid)>,
    limit: u32,
) -> ApiResult<Page<CustomerOut>> {
    let reversed: String = digits.chars().rev().collect();
    let mut sql = QueryBuilder::new(format!(
        "SELECT * FROM (SELECT {COLUMNS}, (CASE WHEN regexp_replace(c.phone, '[^0-9]', '', 'g') = "
    ));
    sql.push_bind(digits.to_owned())
        .push(
            " THEN 2 ELSE 1 END)::float8 AS score FROM customers c \
               WHERE reverse(regexp_replace(c.phone, '[^0-9]', '', 'g')) LIKE ",
        )
        .push_bind(reversed + "%");
    if let Some(org) = org {
        sql.push(" AND c.org_id = ").push_bind(org.to_owned());
    }
    sql.push(") c WHERE true");
    finish(db, sql, after, limit, PHONE).await
}

/// Whether a word is looked for at the start of the customers' words first: under three
/// characters, all ASCII letters and digits or Latin-1 and Latin Extended-A letters (which
/// `unaccent` folds to ASCII). The trigram index pads and keeps those whatever the
/// database's locale; a word of other characters may have no trigram, and as an index
/// condition would read every entry.
fn starts_words(word: &str) -> bool {
    word.chars().count() < 3
        && word.chars().all(|c| {
            c.is_ascii_alphanumeric() || (c.is_alphabetic() && ('\u{c0}'..='\u{17f}').contains(&c))
        })
}

const PHONE: &str = "customers-ph";
const WORD_START: &str = "customers-ws";
const SUBSTRING: &str = "customers-q";
const CORRECTED: &str = "customers-c";
const FUZZY: &str = "customers-fz";

/// Each word folded, and replaced by the most similar known word when it is not one.
async fn correct(pool: &PgPool, words: &[String]) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT coalesce(
             (SELECT s.word FROM search_words s WHERE s.word % f.w
              ORDER BY similarity(s.word, f.w) DESC, s.word LIMIT 1),
             f.w)
         FROM (SELECT public.showpass_fold(u.w) AS w, u.n
               FROM unnest($1::text[]) WITH ORDINALITY AS u(w, n)) f
         ORDER BY f.n",
    )
    .bind(words)
    .fetch_all(pool)
    .await
}

/// Customers whose text holds every word; 2 where it starts with the first, falling towards
/// 1 the later it occurs; 3 for the exact e-mail.
async fn ranked(
    db: Db<'_>,
    q: &str,
    words: &[String],
    org: Option<&str>,
    after: Option<(f64, Uuid)>,
    limit: u32,
    listing: &'static str,
) -> ApiResult<Page<CustomerOut>> {
    let Some(first) = words.first() else {
        return Ok(Page {
            items: Vec::new(),
            next_cursor: None,
        });
    };
    let mut sql = QueryBuilder::new(format!(
        "SELECT * FROM (SELECT {COLUMNS}, (CASE WHEN c.email = lower("
    ));
    sql.push_bind(q)
        .push(") THEN 3 ELSE 1 + COALESCE(1.0::float8 / NULLIF(strpos(")
        .push(DOC)
        .push(", public.showpass_fold(")
        .push_bind(first.clone())
        .push(")), 0), 0) END)::float8 AS score FROM customers c WHERE true");
    for w in words {
        if listing == WORD_START {
            // After a space: every word of the text without the e-mail's domain starts after
            // one (it begins with a space), and the domain's words (`com`, `gmail`) are not
            // in its index's answer for `co` or `gm`, to be read only to be removed.
            sql.push(" AND ").push(WORDS).push(" LIKE ");
            push_prefix(&mut sql, "% ", w);
            continue;
        }
        match w.split_once('@') {
            // A domain's trigrams are in most rows (`gmail.com`): the index looks for the
            // local part alone, and each of its candidates is checked for the whole word.
            Some((local, _)) if local.chars().count() >= 3 => {
                sql.push(" AND ").push(DOC).push(" LIKE ");
                push_pattern(&mut sql, local);
                sql.push(" AND (").push(DOC).push(" || '') LIKE ");
                push_pattern(&mut sql, w);
            }
            // Under three characters a word has no trigram: in the index it would read every
            // entry. It is checked on the rows the other conditions find (the organization's,
            // through the index's first column).
            _ if w.chars().count() < 3 => {
                sql.push(" AND (").push(DOC).push(" || '') LIKE ");
                push_pattern(&mut sql, w);
            }
            _ => {
                sql.push(" AND ").push(DOC).push(" LIKE ");
                push_pattern(&mut sql, w);
            }
        }
    }
    if let Some(org) = org {
        sql.push(" AND c.org_id = ").push_bind(org);
    }
    sql.push(") c WHERE true");
    finish(db, sql, after, limit, listing).await
}

/// Typo-tolerant: customers whose text has words similar to `q`'s, by similarity.
async fn fuzzy(
    db: Db<'_>,
    q: &str,
    org: Option<&str>,
    after: Option<(f64, Uuid)>,
    limit: u32,
) -> ApiResult<Page<CustomerOut>> {
    let mut sql = QueryBuilder::new(format!(
        "SELECT * FROM (SELECT {COLUMNS}, word_similarity(public.showpass_fold("
    ));
    sql.push_bind(q)
        .push("), ")
        .push(DOC)
        .push(")::float8 AS score FROM customers c WHERE public.showpass_fold(")
        .push_bind(q)
        .push(") <% ")
        .push(DOC);
    if let Some(org) = org {
        sql.push(" AND c.org_id = ").push_bind(org);
    }
    sql.push(") c WHERE true");
    finish(db, sql, after, limit, FUZZY).await
}

/// Keyset on (score descending, id), and the page.
async fn finish(
    db: Db<'_>,
    mut sql: QueryBuilder<'_, sqlx::Postgres>,
    after: Option<(f64, Uuid)>,
    limit: u32,
    listing: &'static str,
) -> ApiResult<Page<CustomerOut>> {
    if let Some((score, id)) = after {
        sql.push(" AND (c.score < ")
            .push_bind(score)
            .push(" OR (c.score = ")
            .push_bind(score)
            .push(" AND c.id > ")
            .push_bind(id)
            .push("))");
    }
    sql.push(" ORDER BY c.score DESC, c.id LIMIT ")
        .push_bind(i64::from(limit) + 1);
    // Planned for its own parameters each time (not prepared): a prepared statement's generic
    // plan, PostgreSQL's choice after five runs, folds the query again for every candidate
    // row (`showpass_fold($1)` is a constant only in a plan for its value), and cannot tell a
    // pattern in every row from one in a few.
    let rows: Vec<CustomerOut> = sql
        .build_query_as()
        .persistent(false)
        .fetch_all(db.pool)
        .await?;
    Ok(Page::from_rows(rows, limit, db.key, |c| {
        Cursor::new(
            listing,
            vec![c.score.unwrap_or_default().to_string(), c.id.to_string()],
        )
    }))
}

/// `'%' || q folded, then with LIKE's wildcards escaped || '%'`. Folding comes first: it
/// maps fullwidth `％ ＿ ＼` to `% _ \`, which must then be escaped like any other.
pub(crate) fn push_pattern(sql: &mut QueryBuilder<'_, sqlx::Postgres>, q: &str) {
    push_prefix(sql, "%", q);
}

/// `before || q folded and escaped || '%'`.
fn push_prefix(sql: &mut QueryBuilder<'_, sqlx::Postgres>, before: &'static str, q: &str) {
    sql.push("('")
        .push(before)
        .push("' || replace(replace(replace(public.showpass_fold(")
        .push_bind(q.to_owned())
        .push(r"), '\', '\\'), '%', '\%'), '_', '\_') || '%')");
}

/// One customer with their orders.
#[utoipa::path(get, path = "/v1/customers/{id}", tag = "customers",
    params(("id" = String, Path, description = "The customer's id (a UUID)")),
    security(("bearer" = [])),
    responses((status = 200, description = "the customer, their orders and spending", body = CustomerDetail),
              (status = 401, description = "no key or a wrong one", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "no such customer", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "the database (or NATS) is unavailable or too slow; retry later", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn get_customer(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<CustomerDetail>> {
    let not_found = || ApiError::NotFound(format!("no customer with id {:?}", page::truncate(&id)));
    let uuid: Uuid = id.trim().parse().map_err(|_| not_found())?;
    let customer: CustomerOut = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM customers c WHERE c.id = $1"
    ))
    .bind(uuid)
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(not_found)?;
    let orders = orders::of_customer(&state.pool, uuid).await?;
    Ok(Json(CustomerDetail { customer, orders }))
}
