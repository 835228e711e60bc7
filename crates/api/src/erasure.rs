//! `DELETE /v1/customers/{id}`: a customer asks to be forgotten. The api reads PostgreSQL as a
//! read-only role and may not delete from the streams, so the projector erases (see
//! `showpass_projector::erase`), asked over NATS request and reply on `_{prefix}.admin.erase`.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Admin, KeyName};
use crate::error::{ApiError, ApiResult, Problem};
use crate::page;
use crate::routes::Routes;
use crate::state::AppState;

pub(crate) fn routes() -> Routes {
    Routes::new("/v1").add::<__path_erase_customer, _, _>(erase_customer)
}

/// What an erasure changed, and how long it took.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "erasure_id": "019ac4e2-5b1a-7d3e-8f21-6c0b9a4d2e17", "org_id": "20",
    "customer_id": "6f1c3f0e-2b7d-5a43-9c1e-0d2f4b6a8c90", "already_erased": false,
    "rows": {"customers": 1, "orders": 2, "invoices": 3, "tickets": 4, "search_words": 2, "deliveries": 4},
    "messages": {"events": 3, "deliveries": 1, "deleted": 4}, "elapsed_ms": 38
}))]
pub struct ErasureOut {
    /// This request, in the audit (`erasure_audit`).
    pub erasure_id: Uuid,
    pub org_id: String,
    pub customer_id: Uuid,
    /// They had been erased before: this request finished or confirmed it (and changed only
    /// what an interrupted erasure had left).
    pub already_erased: bool,
    pub rows: ErasedRows,
    pub messages: ErasedMessages,
    pub elapsed_ms: u64,
}

/// Rows changed, per table.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErasedRows {
    pub customers: u64,
    pub orders: u64,
    pub invoices: u64,
    pub tickets: u64,
    pub search_words: u64,
    pub deliveries: u64,
}

/// Stream messages replaced by a redacted copy, and originals deleted.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErasedMessages {
    pub events: u64,
    pub deliveries: u64,
    pub deleted: u64,
}

/// The request the projector takes (`showpass_projector::erase::EraseRequest`).
#[derive(Serialize)]
struct Request {
    customer_id: Uuid,
    requested_by: String,
}

/// The projector's answer (`showpass_projector::erase::EraseAnswer`).
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Erased(ErasureOut),
    NotFound(String),
    Invalid(String),
    Failed(String),
}

/// Erase a customer (admin key): their customer row goes; their orders, invoices and tickets
/// keep money, statuses and counts without names, e-mails or phones; search forgets them; the
/// delivery log marks their deliveries `erased_at`; every stream message carrying their data
/// is replaced by a redacted copy (header `Showpass-Erased`) and deleted. Idempotent: asking
/// again answers 200 with nothing changed (or finishes an interrupted erasure).
#[utoipa::path(delete, path = "/v1/customers/{id}", tag = "customers",
    params(("id" = String, Path, description = "The customer's id (a UUID)")),
    security(("bearer" = [])),
    responses((status = 200, description = "erased: what changed", body = ErasureOut),
              (status = 401, description = "no key or a wrong one", body = Problem, content_type = "application/problem+json"),
              (status = 403, description = "a read key: erasure needs an admin key", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "no such customer, erased or not", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "the projector (or NATS, or the database) did not answer; ask again, the erasure resumes", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn erase_customer(
    State(state): State<AppState>,
    _admin: Admin,
    axum::Extension(who): axum::Extension<KeyName>,
    Path(id): Path<String>,
) -> ApiResult<Json<ErasureOut>> {
    let not_found = || ApiError::NotFound(format!("no customer with id {:?}", page::truncate(&id)));
    let customer_id: Uuid = id.trim().parse().map_err(|_| not_found())?;
    let known: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM customers WHERE id = $1)
             OR EXISTS (SELECT 1 FROM erasures WHERE customer_id = $1)",
    )
    .bind(customer_id)
    .fetch_one(&state.pool)
    .await?;
    if !known {
        return Err(not_found());
    }
    let (Some(js), Some(nats)) = (&state.js, &state.config.nats) else {
        return Err(ApiError::Unavailable(
            "the api runs without NATS (NATS_URL unset): erasure is unavailable".into(),
        ));
    };
    let body = serde_json::to_vec(&Request {
        customer_id,
        requested_by: who.0,
    })
    .map_err(anyhow::Error::from)?;
    let unavailable = |why: &str| {
        ApiError::Unavailable(format!(
            "the projector did not answer ({why}); ask again: the erasure resumes where it stopped"
        ))
    };
    let wait = state.config.request_timeout.max(Duration::from_secs(1));
    let reply = tokio::time::timeout(
        wait,
        js.client().request(
            showpass_payload::subject::erase_subject(&nats.prefix),
            body.into(),
        ),
    )
    .await
    .map_err(|_| unavailable("timed out"))?
    .map_err(|e| {
        tracing::warn!(error = %e, "erasure request");
        unavailable("no projector is running, or NATS refused the request")
    })?;
    match serde_json::from_slice::<Answer>(&reply.payload) {
        Ok(Answer::Erased(report)) => Ok(Json(report)),
        Ok(Answer::NotFound(why)) => Err(ApiError::NotFound(why)),
        Ok(Answer::Invalid(why)) => Err(ApiError::Internal(anyhow::anyhow!(
            "the projector refused the erasure request: {why}"
        ))),
        Ok(Answer::Failed(why)) => {
            tracing::warn!(why, "erasure failed");
            Err(unavailable("the erasure failed midway"))
        }
        Err(e) => Err(ApiError::Internal(anyhow::anyhow!(
            "the projector's answer is not one this api understands: {e}"
        ))),
    }
}
