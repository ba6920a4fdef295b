//! The coordinator API: queues and the funnel, by territory.

use axum::extract::State;
use axum::routing::get;
use axum::{Json as AxumJson, Router};
use chrono::{DateTime, NaiveDate, Utc};
use contracts::Role;
use contracts::week::CapacityWeek;
use platform::ApiError;
use platform::auth::Caller;
use platform::json::Query;
use serde::Deserialize;

use crate::InsightsState;
use crate::queries;

pub fn router(state: InsightsState) -> Router {
    Router::new()
        .route("/api/v1/insights/queues", get(queues))
        .route("/api/v1/insights/funnel", get(funnel))
        .with_state(state)
}

/// The territories a request covers: the one asked for (which the caller must cover,
/// else 404), or every territory of the caller. Coordinators and admin only.
pub fn territories(caller: &Caller, asked: Option<&str>) -> Result<Option<Vec<String>>, ApiError> {
    caller.require(&[Role::Coordinator, Role::Admin])?;
    match asked.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) if caller.covers_territory(t) => Ok(Some(vec![t.to_string()])),
        Some(_) => Err(ApiError::not_found()),
        None => Ok(caller.territories().map(<[String]>::to_vec)),
    }
}

fn label(territories: &Option<Vec<String>>) -> serde_json::Value {
    match territories {
        Some(t) if t.len() == 1 => serde_json::json!(t[0]),
        Some(t) => serde_json::json!(t),
        None => serde_json::Value::Null,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueuesQuery {
    territory: Option<String>,
}

async fn queues(
    State(state): State<InsightsState>,
    caller: Caller,
    Query(q): Query<QueuesQuery>,
) -> Result<AxumJson<serde_json::Value>, ApiError> {
    let territories = territories(&caller, q.territory.as_deref())?;
    let mut conn = state.pool.acquire().await?;
    let week = CapacityWeek::current();
    let structures = queries::structure_queues(&mut conn, territories.as_deref(), week.start()).await?;
    let waitlist = queries::waitlist(&mut conn, territories.as_deref()).await?;
    Ok(AxumJson(serde_json::json!({
        "territory": label(&territories),
        "week": week.to_string(),
        "structures": structures,
        "waitlist": waitlist,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodQuery {
    pub territory: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// `from` and `to` are dates (or RFC 3339 times); the period is `[from, to)`, open
/// where a bound is missing.
pub fn period(q: &PeriodQuery) -> Result<(Option<DateTime<Utc>>, Option<DateTime<Utc>>), ApiError> {
    let parse = |field: &str, v: Option<&str>| -> Result<Option<DateTime<Utc>>, ApiError> {
        let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else { return Ok(None) };
        if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
            return Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()));
        }
        DateTime::parse_from_rfc3339(v)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| ApiError::invalid_field(field, "expected a date (YYYY-MM-DD) or an RFC 3339 time"))
    };
    let from = parse("from", q.from.as_deref())?;
    let to = parse("to", q.to.as_deref())?;
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return Err(ApiError::invalid_field("to", "must be after from"));
    }
    Ok((from, to))
}

async fn funnel(
    State(state): State<InsightsState>,
    caller: Caller,
    Query(q): Query<PeriodQuery>,
) -> Result<AxumJson<serde_json::Value>, ApiError> {
    let territories = territories(&caller, q.territory.as_deref())?;
    let (from, to) = period(&q)?;
    let mut conn = state.pool.acquire().await?;
    let f = queries::funnel(&mut conn, territories.as_deref(), from, to).await?;
    let mut body = serde_json::to_value(f).map_err(ApiError::internal)?;
    if let Some(o) = body.as_object_mut() {
        o.insert("territory".into(), label(&territories));
        o.insert("from".into(), serde_json::json!(from));
        o.insert("to".into(), serde_json::json!(to));
    }
    Ok(AxumJson(body))
}
