//! The coordinator API: queues and the funnel, by territory.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json as AxumJson, Router};
use chrono::{DateTime, NaiveDate, Utc};
use contracts::Role;
use contracts::week::CapacityWeek;
use platform::ApiError;
use platform::auth::{Caller, Scope};
use platform::json::Query;
use serde::Deserialize;

use crate::InsightsState;
use crate::queries;

pub fn router(state: InsightsState) -> Router {
    Router::new()
        .route("/api/v1/insights/queues", get(queues))
        .route("/api/v1/insights/funnel", get(funnel))
        .route("/api/v1/insights/supply-demand", get(supply_demand))
        .route("/api/v1/insights/flows", get(flows))
        .route("/api/v1/insights/export.csv", get(export_csv))
        .route("/api/v1/insights/structures/{id}/report", get(structure_report))
        .with_state(state)
}

/// The territories a request covers: the one asked for (which the caller must cover,
/// else 404), or every territory of the caller. Coordinators and admin only.
pub fn territories(caller: &Caller, asked: Option<&str>) -> Result<Option<Vec<String>>, ApiError> {
    caller.require(&[Role::Coordinator, Role::Admin])?;
    match asked.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) if caller.covers_territory(t) => Ok(Some(vec![t.to_string()])),
        Some(_) => Err(ApiError::not_found()),
        None => Ok(caller.territories().map(|t| t.iter().map(ToString::to_string).collect())),
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
/// A period's bounds; `None` is open.
pub type Period = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

pub fn period(q: &PeriodQuery) -> Result<Period, ApiError> {
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

/// Days of demand averaged when no period is given.
const DEFAULT_DEMAND_DAYS: i64 = 28;

async fn supply_demand(
    State(state): State<InsightsState>,
    caller: Caller,
    Query(q): Query<PeriodQuery>,
) -> Result<AxumJson<serde_json::Value>, ApiError> {
    let territories = territories(&caller, q.territory.as_deref())?;
    let (from, to) = period(&q)?;
    let now = Utc::now();
    let to = to.unwrap_or(now).min(now);
    let from = from.unwrap_or(to - chrono::Duration::days(DEFAULT_DEMAND_DAYS));
    let weeks = ((to - from).num_seconds() as f64 / (7.0 * 86_400.0)).max(1.0 / 7.0);
    let mut conn = state.pool.acquire().await?;
    let demand = queries::demand_by_commune(&mut conn, territories.as_deref(), from, to).await?;
    let supply = queries::supply(&mut conn).await?;
    let radius = state.config.max_distance_km;
    let items: Vec<serde_json::Value> = demand
        .into_iter()
        .map(|d| {
            let commune = geo::communes().by_code(&d.commune_code);
            let capacity: i64 = commune
                .map(|c| {
                    supply
                        .iter()
                        .filter(|s| geo::distance_km(c.location, geo::LatLon { lat: s.lat, lon: s.lon }) <= radius)
                        .map(|s| i64::from(s.weekly_capacity))
                        .sum()
                })
                .unwrap_or(0);
            let per_week = d.referrals as f64 / weeks;
            serde_json::json!({
                "commune_code": d.commune_code,
                "commune": commune.map(|c| c.name.clone()),
                "referrals": d.referrals,
                "referrals_per_week": (per_week * 100.0).round() / 100.0,
                "capacity_within_radius": capacity,
                "ratio": (capacity > 0).then(|| (per_week / capacity as f64 * 1000.0).round() / 1000.0),
            })
        })
        .collect();
    Ok(AxumJson(serde_json::json!({
        "territory": label(&territories), "from": from, "to": to, "radius_km": radius,
        "ratio_is": "referrals_per_week / capacity_within_radius (above 1: more demand than weekly capacity nearby)",
        "items": items,
    })))
}

/// Where a referral ended up, for the flows' last column.
fn terminal(status: &str, outcome: Option<&str>) -> String {
    match (status, outcome) {
        (_, Some(o)) => format!("outcome:{o}"),
        (s, None) => format!("status:{s}"),
    }
}

async fn flows(
    State(state): State<InsightsState>,
    caller: Caller,
    Query(q): Query<PeriodQuery>,
) -> Result<AxumJson<serde_json::Value>, ApiError> {
    let territories = territories(&caller, q.territory.as_deref())?;
    let (from, to) = period(&q)?;
    let mut conn = state.pool.acquire().await?;
    let paths = queries::paths(&mut conn, territories.as_deref(), from, to).await?;
    let mut nodes: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut links: BTreeMap<(String, String), i64> = BTreeMap::new();
    for p in &paths {
        let org = format!("organisation:{}", p.organisation_id.map(|o| o.to_string()).unwrap_or_default());
        nodes
            .entry(org.clone())
            .or_insert_with(|| serde_json::json!({"id": org, "kind": "organisation", "name": p.organisation_name}));
        let middle = match &p.accepted_structure {
            Some(s) => {
                let id = format!("structure:{s}");
                nodes
                    .entry(id.clone())
                    .or_insert_with(|| serde_json::json!({"id": id, "kind": "structure", "name": p.structure_name}));
                id
            }
            None => {
                let id = "unplaced".to_string();
                nodes
                    .entry(id.clone())
                    .or_insert_with(|| serde_json::json!({"id": id, "kind": "unplaced", "name": "not accepted (yet)"}));
                id
            }
        };
        let end = terminal(&p.status, p.outcome.as_deref());
        nodes.entry(end.clone()).or_insert_with(|| serde_json::json!({"id": end, "kind": "end"}));
        *links.entry((org, middle.clone())).or_insert(0) += 1;
        *links.entry((middle, end)).or_insert(0) += 1;
    }
    let links: Vec<serde_json::Value> = links
        .into_iter()
        .map(|((source, target), value)| serde_json::json!({"source": source, "target": target, "value": value}))
        .collect();
    Ok(AxumJson(serde_json::json!({
        "territory": label(&territories), "from": from, "to": to, "referrals": paths.len(),
        "nodes": nodes.into_values().collect::<Vec<_>>(), "links": links,
    })))
}

/// A stable pseudonym: the referral cannot be found from it, but two exports agree.
fn pseudonym(id: uuid::Uuid) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("aiguillage-export:{id}").as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

async fn export_csv(
    State(state): State<InsightsState>,
    caller: Caller,
    Query(q): Query<PeriodQuery>,
) -> Result<Response, ApiError> {
    let territories = territories(&caller, q.territory.as_deref())?;
    let (from, to) = period(&q)?;
    let mut conn = state.pool.acquire().await?;
    let paths = queries::paths(&mut conn, territories.as_deref(), from, to).await?;
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = [
        "referral",
        "month",
        "territory",
        "needs",
        "urgency",
        "status",
        "outcome",
        "offers",
        "declines",
        "expired_offers",
        "seconds_to_accept",
        "seconds_to_first_contact",
        "seconds_to_close",
        "structure_id",
        "organisation_kind",
    ];
    out.write_record(header).map_err(ApiError::internal)?;
    let secs = |v: Option<f64>| v.map(|s| (s.round() as i64).to_string()).unwrap_or_default();
    for p in paths {
        let record = [
            pseudonym(p.referral_id),
            p.submitted_at.map(|t| t.format("%Y-%m").to_string()).unwrap_or_default(),
            p.territory.unwrap_or_default(),
            p.needs.unwrap_or_default().join("|"),
            p.urgency.unwrap_or_default(),
            p.status,
            p.outcome.unwrap_or_default(),
            p.offers.to_string(),
            p.declines.to_string(),
            p.expiries.to_string(),
            secs(p.seconds_to_accept),
            secs(p.seconds_to_first_contact),
            secs(p.seconds_to_close),
            p.accepted_structure.unwrap_or_default(),
            p.organisation_kind.unwrap_or_default(),
        ];
        out.write_record(record).map_err(ApiError::internal)?;
    }
    let body = out.into_inner().map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"aiguillage-export.csv\""),
        ],
        body,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    month: Option<String>,
    format: Option<String>,
}

/// The monthly activity report of one structure: for its mediators, the coordinator of
/// its territory, and admin. JSON, or CSV with `format=csv` (or `Accept: text/csv`).
async fn structure_report(
    State(state): State<InsightsState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Mediator, Role::Coordinator, Role::Admin])?;
    let mut conn = state.pool.acquire().await?;
    let structure = queries::structure(&mut conn, &id).await?.ok_or_else(ApiError::not_found)?;
    let allowed = match &caller.scope {
        Scope::All => true,
        Scope::Structure(s) => s.as_str() == structure.id,
        Scope::Territories(t) => t.iter().any(|t| t.as_str() == structure.territory),
        Scope::Organisation(_) | Scope::Pending | Scope::Service(_) => false,
    };
    if !allowed {
        return Err(ApiError::not_found());
    }
    let month = match q.month.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d")
            .map_err(|_| ApiError::invalid_field("month", "expected YYYY-MM"))?,
        None => {
            let today = contracts::week::paris_local(Utc::now()).date();
            NaiveDate::from_ymd_opt(chrono::Datelike::year(&today), chrono::Datelike::month(&today), 1).unwrap_or(today)
        }
    };
    let next = month
        .checked_add_months(chrono::Months::new(1))
        .ok_or_else(|| ApiError::invalid_field("month", "out of range"))?;
    let (from, to) = (paris_midnight(month), paris_midnight(next));
    let report = queries::monthly_report(&mut conn, &structure.id, from, to).await?;
    let month_label = month.format("%Y-%m").to_string();
    let wants_csv = q.format.as_deref() == Some("csv")
        || headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/csv"));
    if let Some(f) = q.format.as_deref().filter(|f| !matches!(*f, "csv" | "json")) {
        return Err(ApiError::invalid_field("format", format!("unknown format {f}; expected json or csv")));
    }
    if wants_csv {
        let mut out = csv::Writer::from_writer(Vec::new());
        out.write_record(["structure_id", "structure", "month", "indicator", "detail", "value"])
            .map_err(ApiError::internal)?;
        let mut row = |indicator: &str, detail: &str, value: String| {
            out.write_record([
                structure.id.as_str(),
                structure.name.as_str(),
                month_label.as_str(),
                indicator,
                detail,
                value.as_str(),
            ])
        };
        let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        let mut rows = vec![
            ("received", String::new(), report.received.to_string()),
            ("accepted", String::new(), report.accepted.to_string()),
            ("declined", String::new(), report.declined.to_string()),
            ("expired", String::new(), report.expired.to_string()),
            ("first_contacts", String::new(), report.first_contacts.to_string()),
            ("closed", String::new(), report.closed.to_string()),
            ("median_seconds_offer_to_accept", String::new(), opt(report.median_seconds_offer_to_accept)),
            (
                "median_seconds_accept_to_first_contact",
                String::new(),
                opt(report.median_seconds_accept_to_first_contact),
            ),
            ("median_seconds_accept_to_close", String::new(), opt(report.median_seconds_accept_to_close)),
        ];
        rows.extend(report.declined_by_reason.iter().map(|(k, v)| ("declined_by_reason", k.clone(), v.to_string())));
        rows.extend(report.outcomes.iter().map(|(k, v)| ("outcome", k.clone(), v.to_string())));
        for (indicator, detail, value) in rows {
            row(indicator, &detail, value).map_err(ApiError::internal)?;
        }
        let body = out.into_inner().map_err(ApiError::internal)?;
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response());
    }
    Ok(AxumJson(serde_json::json!({
        "structure_id": structure.id, "name": structure.name, "territory": structure.territory,
        "weekly_capacity": structure.weekly_capacity, "month": month_label, "from": from, "to": to,
        "report": report,
    }))
    .into_response())
}

fn paris_midnight(day: NaiveDate) -> DateTime<Utc> {
    use chrono::TimeZone;
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    chrono_tz::Europe::Paris
        .from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| midnight.and_utc())
}
