//! `GET /v1/health`: one answer for an operator, end to end. Is each endpoint still hearing
//! from Showpass? What was refused, and why? How far behind is the projector? What failed,
//! what is missing, what looks wrong? The same figures are Prometheus gauges, refreshed in the
//! background ([`refresh`]).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use showpass_payload::vocab::{AnomalyKind, GapKind, Outcome, Processing};
use sqlx::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiResult, Problem};
use crate::routes::Routes;
use crate::state::AppState;
use showpass_core::CancellationToken;

pub(crate) fn routes() -> Routes {
    Routes::new("/v1").add::<__path_health, _, _>(health)
}

/// A gap counts as urgent once this old: five of its fifteen days are left to resend it.
pub const URGENT_GAP_DAYS: i64 = 10;

/// The projector is behind once its oldest unapplied event is this old.
pub const LAG_ATTENTION: Duration = Duration::from_secs(300);

/// The platform end to end.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthOut {
    /// `ok`, or `attention` when something below needs a person (see `attention`).
    #[schema(example = "ok")]
    pub status: &'static str,
    /// What needs a person, in words; empty when `ok`.
    pub attention: Vec<String>,
    pub checked_at: DateTime<Utc>,
    /// Per endpoint, its last accepted delivery.
    pub endpoints: Vec<EndpointHealth>,
    /// Rejected deliveries by reason.
    pub rejected: Rejected,
    /// The projector's lag; `null` when the api runs without NATS.
    pub projector: Option<ProjectorHealth>,
    /// Events the projector could not apply (see `/v1/logs?processing=failed`).
    pub failed_events: i64,
    /// Open gaps by kind (every kind listed, 0 when none).
    pub gaps: BTreeMap<String, i64>,
    /// When the oldest open gap was first seen; `null` when there is none.
    pub oldest_gap_first_seen_at: Option<DateTime<Utc>>,
    /// Anomalies by kind (every kind listed, 0 when none).
    pub anomalies: BTreeMap<String, i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointHealth {
    #[schema(example = "default")]
    pub endpoint: String,
    pub last_accepted_at: DateTime<Utc>,
    /// The delivery (see `/v1/logs/{id}`).
    pub last_delivery_id: Uuid,
    /// Seconds since then.
    pub age_seconds: f64,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Rejected {
    /// In the last hour, by reason (`bad_signature`, `rate_limited`, ...).
    pub last_hour: BTreeMap<String, i64>,
    /// In the last 24 hours, by reason.
    pub last_24h: BTreeMap<String, i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectorHealth {
    /// Events of the events stream not applied yet.
    pub lag_events: u64,
    /// The age of the oldest of them, in seconds (0 when none).
    pub lag_seconds: f64,
    /// Each stream the projector reads.
    pub streams: Vec<StreamLag>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StreamLag {
    #[schema(example = "SHOWPASS_EVENTS")]
    pub stream: String,
    /// The stream's last sequence.
    pub last_seq: u64,
    /// The projector's checkpoint: everything up to here is applied.
    pub applied_through: u64,
    pub lag_events: u64,
    pub lag_seconds: f64,
    /// When the oldest unapplied message was stored; `null` when none waits.
    pub oldest_unapplied_at: Option<DateTime<Utc>>,
}

/// The platform end to end: endpoints, rejections, the projector's lag, failures, gaps and
/// anomalies, with what needs a person spelled out.
#[utoipa::path(get, path = "/v1/health", tag = "trust",
    security(("bearer" = [])),
    responses((status = 200, description = "the platform end to end", body = HealthOut),
              (status = 401, description = "no key or a wrong one", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "the database is unavailable or too slow; retry later", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn health(State(state): State<AppState>) -> ApiResult<Json<HealthOut>> {
    Ok(Json(check(&state).await?))
}

/// Computes the health.
pub(crate) async fn check(state: &AppState) -> Result<HealthOut, crate::error::ApiError> {
    let pool = &state.pool;
    let now = Utc::now();
    let endpoints: Vec<EndpointHealth> = sqlx::query(
        "SELECT endpoint, last_accepted_at, last_delivery_id FROM endpoint_activity
         ORDER BY endpoint LIMIT 1000",
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| {
        let at: DateTime<Utc> = r.get(1);
        EndpointHealth {
            endpoint: r.get(0),
            last_accepted_at: at,
            last_delivery_id: r.get(2),
            age_seconds: seconds(now - at),
        }
    })
    .collect();

    // Literal words, so the partial index of expiring records (`outcome <> 'accepted'`) applies.
    let mut rejected = Rejected::default();
    let rows = sqlx::query(&format!(
        "SELECT coalesce(reason, ''), count(*) FILTER (WHERE received_at >= $1 - interval '1 hour'),
             count(*)
         FROM deliveries
         WHERE outcome <> '{accepted}' AND outcome = '{rejected}'
           AND received_at >= $1 - interval '24 hours'
         GROUP BY 1 ORDER BY 1",
        accepted = Outcome::Accepted.as_str(),
        rejected = Outcome::Rejected.as_str(),
    ))
    .bind(now)
    .fetch_all(pool)
    .await?;
    for r in rows {
        let reason: String = r.get(0);
        let (hour, day): (i64, i64) = (r.get(1), r.get(2));
        if hour > 0 {
            rejected.last_hour.insert(reason.clone(), hour);
        }
        rejected.last_24h.insert(reason, day);
    }

    let failed_events: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM deliveries WHERE processing = '{}'",
        Processing::Failed.as_str()
    ))
    .fetch_one(pool)
    .await?;

    let mut gaps: BTreeMap<String, i64> = GapKind::ALL
        .iter()
        .map(|k| (k.as_str().to_owned(), 0))
        .collect();
    let mut oldest_gap_first_seen_at: Option<DateTime<Utc>> = None;
    for r in sqlx::query(
        "SELECT kind, count(*), min(first_seen_at) FROM gaps WHERE open_from <= $1 GROUP BY kind",
    )
    .bind(now)
    .fetch_all(pool)
    .await?
    {
        gaps.insert(r.get(0), r.get(1));
        let first: DateTime<Utc> = r.get(2);
        oldest_gap_first_seen_at = Some(oldest_gap_first_seen_at.map_or(first, |o| o.min(first)));
    }
    let mut anomalies: BTreeMap<String, i64> = AnomalyKind::ALL
        .iter()
        .map(|k| (k.as_str().to_owned(), 0))
        .collect();
    for r in sqlx::query("SELECT kind, count(*) FROM anomalies GROUP BY kind")
        .fetch_all(pool)
        .await?
    {
        anomalies.insert(r.get(0), r.get(1));
    }

    let mut attention = Vec::new();
    let projector = match projector_lag(state, now).await {
        Ok(p) => p,
        Err(why) => {
            attention.push(why);
            None
        }
    };
    if let Some(p) = &projector
        && p.lag_seconds > LAG_ATTENTION.as_secs_f64()
    {
        attention.push(format!(
            "the projector is {} events and {:.0} s behind",
            p.lag_events, p.lag_seconds
        ));
    }
    if failed_events > 0 {
        attention.push(format!(
            "{failed_events} events could not be applied: see /v1/logs?processing=failed"
        ));
    }
    if let Some(first) = oldest_gap_first_seen_at
        && now - first > chrono::Duration::days(URGENT_GAP_DAYS)
    {
        attention.push(format!(
            "a gap first seen {} is older than {URGENT_GAP_DAYS} days: resend it from Showpass before {} (see /v1/gaps)",
            first.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            (first + chrono::Duration::days(15)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ));
    }
    Ok(HealthOut {
        status: if attention.is_empty() {
            "ok"
        } else {
            "attention"
        },
        attention,
        checked_at: now,
        endpoints,
        rejected,
        projector,
        failed_events,
        gaps,
        oldest_gap_first_seen_at,
        anomalies,
    })
}

/// How far each stream's checkpoint is behind the stream, and how old the first message past
/// it is. `Ok(None)` without NATS; `Err` with what a person should know when NATS fails.
async fn projector_lag(
    state: &AppState,
    now: DateTime<Utc>,
) -> Result<Option<ProjectorHealth>, String> {
    let (Some(js), Some(nats)) = (&state.js, &state.config.nats) else {
        return Ok(None);
    };
    let checkpoints: BTreeMap<String, i64> =
        sqlx::query_as::<_, (String, i64)>("SELECT stream, last_seq FROM checkpoints")
            .fetch_all(&state.pool)
            .await
            .map_err(|e| format!("the projector's checkpoints cannot be read: {e}"))?
            .into_iter()
            .collect();
    let mut streams = Vec::new();
    for name in [nats.events_stream(), nats.deliveries_stream()] {
        let unknown = |e: &dyn std::fmt::Display| {
            tracing::warn!(error = %e, stream = %name, "stream state unavailable");
            format!("the projector's lag is unknown: stream {name} did not answer")
        };
        let mut stream = js.get_stream(&name).await.map_err(|e| unknown(&e))?;
        let last_seq = stream
            .info()
            .await
            .map_err(|e| unknown(&e))?
            .state
            .last_sequence;
        let applied = checkpoints
            .get(&name)
            .map_or(0, |s| u64::try_from(*s).unwrap_or(0));
        let lag_events = last_seq.saturating_sub(applied);
        // The first message past the checkpoint (deleted ones skipped).
        let oldest_unapplied_at = if lag_events == 0 {
            None
        } else {
            match stream
                .get_first_raw_message_by_subject(">", applied.saturating_add(1))
                .await
            {
                Ok(m) => Some(m.time.with_timezone(&Utc)),
                Err(e) => return Err(unknown(&e)),
            }
        };
        streams.push(StreamLag {
            lag_seconds: oldest_unapplied_at.map_or(0.0, |t| seconds(now - t)),
            stream: name,
            last_seq,
            applied_through: applied,
            lag_events,
            oldest_unapplied_at,
        });
    }
    let events = &streams[0];
    Ok(Some(ProjectorHealth {
        lag_events: events.lag_events,
        lag_seconds: streams.iter().map(|s| s.lag_seconds).fold(0.0, f64::max),
        streams,
    }))
}

fn seconds(d: chrono::Duration) -> f64 {
    (d.num_milliseconds() as f64 / 1000.0).max(0.0)
}

/// Computes the health into the gauges every `health_refresh`, until `shutdown`.
pub(crate) async fn refresh(state: AppState, shutdown: CancellationToken) {
    let every = state.config.health_refresh.max(Duration::from_millis(10));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match tokio::time::timeout(every.max(Duration::from_secs(5)), check(&state)).await {
            Ok(Ok(h)) => state.metrics.set_health(&h),
            Ok(Err(e)) => tracing::warn!(error = %e, "health gauges not refreshed"),
            Err(_) => tracing::warn!("health gauges not refreshed: the check took too long"),
        }
    }
}
