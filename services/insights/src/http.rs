//! The coordinator API: queues and the funnel, by territory.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Json as AxumJson, Router};
use chrono::{DateTime, NaiveDate, Utc};
use contracts::week::CapacityWeek;
use platform::ApiError;
use platform::auth::roles::{Coordinators, StructureKeepers};
use platform::auth::{Authorized, Scope};
use platform::json::Query;
use platform::path::Path;
use platform::problem::responses::{Authenticated, Forbidden, InvalidQuery, NotFound};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::InsightsState;
use contracts::insights::{CommuneSupply, FunnelView, Queues, StructureReport, SupplyDemand, TerritoryLabel};

use crate::queries;

/// The routes with their OpenAPI operations: one list, so the document cannot describe a
/// route the router does not serve.
pub fn routes() -> OpenApiRouter<InsightsState> {
    OpenApiRouter::new()
        .routes(routes!(queues))
        .routes(routes!(funnel))
        .routes(routes!(supply_demand))
        .routes(routes!(flows))
        .routes(routes!(export_csv))
        .routes(routes!(structure_report))
        .routes(routes!(open_data_csv))
        .routes(routes!(open_data_json))
        .routes(routes!(open_data_schema))
}

pub fn router(state: InsightsState) -> Router {
    routes().split_for_parts().0.with_state(state)
}

/// The territories a request covers: the one asked for (which the caller must cover,
/// else 404), or every territory of the caller. Coordinators and admin only.
pub fn territories(caller: &Authorized<Coordinators>, asked: Option<&str>) -> Result<Option<Vec<String>>, ApiError> {
    if asked.is_some_and(contracts::validate::has_control_characters) {
        return Err(ApiError::invalid_field("territory", "contains control characters"));
    }
    match asked.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) if caller.covers_territory(t) => Ok(Some(vec![t.to_string()])),
        Some(_) => Err(ApiError::not_found()),
        None => Ok(caller.territories().map(|t| t.iter().map(ToString::to_string).collect())),
    }
}

fn label(territories: &Option<Vec<String>>) -> Option<TerritoryLabel> {
    match territories {
        Some(t) if t.len() == 1 => Some(TerritoryLabel::One(t[0].clone())),
        Some(t) => Some(TerritoryLabel::Several(t.clone())),
        None => None,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct QueuesQuery {
    /// A département code the caller covers (else 404). Default: all of the caller's.
    #[param(schema_with = contracts::api::schema::query_text)]
    territory: Option<String>,
}

/// Queues of a territory: pending offers by structure, the waitlist (coordinator of the
/// territory; admin).
#[utoipa::path(
    get,
    path = "/api/v1/insights/queues",
    operation_id = "getQueues",
    tag = "insights",
    params(QueuesQuery),
    responses((status = 200, description = "The queues", body = Queues), Authenticated, Forbidden, NotFound, InvalidQuery)
)]
async fn queues(
    State(state): State<InsightsState>,
    caller: Authorized<Coordinators>,
    Query(q): Query<QueuesQuery>,
) -> Result<AxumJson<Queues>, ApiError> {
    let territories = territories(&caller, q.territory.as_deref())?;
    let mut conn = state.pool.acquire().await?;
    let week = CapacityWeek::current();
    let structures = queries::structure_queues(&mut conn, territories.as_deref(), week.start()).await?;
    let waitlist = queries::waitlist(&mut conn, territories.as_deref()).await?;
    Ok(AxumJson(Queues { territory: label(&territories), week: week.to_string(), structures, waitlist }))
}

/// A period bound: a date (`2026-11-01`) or an RFC 3339 time; empty is no bound.
fn period_bound() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
    let format = |f| ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(f)));
    AnyOfBuilder::new()
        .item(format(KnownFormat::Date))
        .item(format(KnownFormat::DateTime))
        .item(ObjectBuilder::new().schema_type(Type::String).max_length(Some(0)))
        .description(Some("A date (`2026-11-01`) or an RFC 3339 time; empty is no bound"))
        .build()
        .into()
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PeriodQuery {
    /// A département code the caller covers (else 404). Default: all of the caller's.
    #[param(schema_with = contracts::api::schema::query_text)]
    pub territory: Option<String>,
    /// Start of the period, included; must be before `to`.
    #[param(schema_with = period_bound)]
    pub from: Option<String>,
    /// End of the period, excluded.
    #[param(schema_with = period_bound)]
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

/// Funnel of the cohort submitted in `[from, to)`: each stage counts the referrals that
/// reached at least that stage (coordinator of the territory; admin).
#[utoipa::path(
    get,
    path = "/api/v1/insights/funnel",
    operation_id = "getFunnel",
    tag = "insights",
    params(PeriodQuery),
    responses((status = 200, description = "The funnel", body = FunnelView), Authenticated, Forbidden, NotFound, InvalidQuery)
)]
async fn funnel(
    State(state): State<InsightsState>,
    caller: Authorized<Coordinators>,
    Query(q): Query<PeriodQuery>,
) -> Result<AxumJson<FunnelView>, ApiError> {
    let territories = territories(&caller, q.territory.as_deref())?;
    let (from, to) = period(&q)?;
    let mut conn = state.pool.acquire().await?;
    let funnel = queries::funnel(&mut conn, territories.as_deref(), from, to).await?;
    Ok(AxumJson(FunnelView { funnel, territory: label(&territories), from, to }))
}

/// Days of demand averaged when no period is given.
const DEFAULT_DEMAND_DAYS: i64 = 28;

/// Per commune with demand in the period (default: the last 28 days), referrals per week
/// against the capacity nearby (coordinator of the territory; admin).
#[utoipa::path(
    get,
    path = "/api/v1/insights/supply-demand",
    operation_id = "getSupplyDemand",
    tag = "insights",
    params(PeriodQuery),
    responses((status = 200, description = "Supply against demand", body = SupplyDemand), Authenticated, Forbidden, NotFound, InvalidQuery)
)]
async fn supply_demand(
    State(state): State<InsightsState>,
    caller: Authorized<Coordinators>,
    Query(q): Query<PeriodQuery>,
) -> Result<AxumJson<SupplyDemand>, ApiError> {
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
    let items: Vec<CommuneSupply> = demand
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
            CommuneSupply {
                commune: commune.map(|c| c.name.clone()),
                commune_code: d.commune_code,
                referrals: d.referrals,
                referrals_per_week: (per_week * 100.0).round() / 100.0,
                capacity_within_radius: capacity,
                ratio: (capacity > 0).then(|| (per_week / capacity as f64 * 1000.0).round() / 1000.0),
            }
        })
        .collect();
    Ok(AxumJson(SupplyDemand {
        territory: label(&territories),
        from,
        to,
        radius_km: radius,
        ratio_is: "referrals_per_week / capacity_within_radius (above 1: more demand than weekly capacity nearby)"
            .to_string(),
        items,
    }))
}

/// Where a referral ended up, for the flows' last column.
fn terminal(status: &str, outcome: Option<&str>) -> String {
    match (status, outcome) {
        (_, Some(o)) => format!("outcome:{o}"),
        (s, None) => format!("status:{s}"),
    }
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum FlowNodeKind {
    Organisation,
    Structure,
    Unplaced,
    End,
}

/// A column of the flows: the referring organisation, the accepting structure (or
/// `unplaced`), and where the referral ended (`outcome:…` or `status:…`).
#[derive(Debug, Serialize, ToSchema)]
struct FlowNode {
    id: String,
    kind: FlowNodeKind,
    /// Absent for an end node; `null` when the name is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable)]
    name: Option<Option<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
struct FlowLink {
    source: String,
    target: String,
    /// Referrals that went that way.
    value: i64,
}

/// Referral flows as a Sankey diagram: organisation → structure → end.
#[derive(Debug, Serialize, ToSchema)]
struct Flows {
    territory: Option<TerritoryLabel>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    referrals: usize,
    nodes: Vec<FlowNode>,
    links: Vec<FlowLink>,
}

/// Where the referrals submitted in the period went (coordinator of the territory; admin).
#[utoipa::path(
    get,
    path = "/api/v1/insights/flows",
    operation_id = "getFlows",
    tag = "insights",
    params(PeriodQuery),
    responses((status = 200, description = "The flows", body = Flows), Authenticated, Forbidden, NotFound, InvalidQuery)
)]
async fn flows(
    State(state): State<InsightsState>,
    caller: Authorized<Coordinators>,
    Query(q): Query<PeriodQuery>,
) -> Result<AxumJson<Flows>, ApiError> {
    let territories = territories(&caller, q.territory.as_deref())?;
    let (from, to) = period(&q)?;
    let mut conn = state.pool.acquire().await?;
    let paths = queries::paths(&mut conn, territories.as_deref(), from, to).await?;
    let mut nodes: BTreeMap<String, FlowNode> = BTreeMap::new();
    let mut links: BTreeMap<(String, String), i64> = BTreeMap::new();
    let node = |id: &str, kind, name| FlowNode { id: id.to_string(), kind, name };
    for p in &paths {
        let org = format!("organisation:{}", p.organisation_id.map(|o| o.to_string()).unwrap_or_default());
        nodes
            .entry(org.clone())
            .or_insert_with(|| node(&org, FlowNodeKind::Organisation, Some(p.organisation_name.clone())));
        let middle = match &p.accepted_structure {
            Some(s) => {
                let id = format!("structure:{s}");
                nodes
                    .entry(id.clone())
                    .or_insert_with(|| node(&id, FlowNodeKind::Structure, Some(p.structure_name.clone())));
                id
            }
            None => {
                let id = "unplaced".to_string();
                nodes
                    .entry(id.clone())
                    .or_insert_with(|| node(&id, FlowNodeKind::Unplaced, Some(Some("not accepted (yet)".to_string()))));
                id
            }
        };
        let end = terminal(p.status.slug(), p.outcome.map(contracts::Outcome::slug));
        nodes.entry(end.clone()).or_insert_with(|| node(&end, FlowNodeKind::End, None));
        *links.entry((org, middle.clone())).or_insert(0) += 1;
        *links.entry((middle, end)).or_insert(0) += 1;
    }
    let links =
        links.into_iter().map(|((source, target), value)| FlowLink { source, target, value }).collect::<Vec<_>>();
    Ok(AxumJson(Flows {
        territory: label(&territories),
        from,
        to,
        referrals: paths.len(),
        nodes: nodes.into_values().collect(),
        links,
    }))
}

/// A stable pseudonym: the referral cannot be found from it, but two exports agree.
fn pseudonym(id: uuid::Uuid) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("aiguillage-export:{id}").as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// One row per referral submitted in the period, with pseudonymised facts only: never a
/// name, phone number, e-mail address or note (coordinator of the territory; admin).
#[utoipa::path(
    get,
    path = "/api/v1/insights/export.csv",
    operation_id = "exportCsv",
    tag = "insights",
    params(PeriodQuery),
    responses(
        (status = 200, description = "CSV with a header line: referral (a pseudonym), month, territory, needs \
            (`|`-separated), urgency, status, outcome, offers, declines, expired_offers, seconds_to_accept, \
            seconds_to_first_contact, seconds_to_close, structure_id, organisation_kind, seconds_to_appointment \
            (to the first appointment kept or held), appointments_attended, appointments_missed",
            body = String, content_type = "text/csv",
            headers(("Content-Disposition" = String, description = "`attachment; filename=\"aiguillage-export.csv\"`"))),
        Authenticated, Forbidden, NotFound, InvalidQuery,
    )
)]
async fn export_csv(
    State(state): State<InsightsState>,
    caller: Authorized<Coordinators>,
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
        "seconds_to_appointment",
        "appointments_attended",
        "appointments_missed",
    ];
    out.write_record(header).map_err(ApiError::internal)?;
    let secs = |v: Option<f64>| v.map(|s| (s.round() as i64).to_string()).unwrap_or_default();
    for p in paths {
        let record = [
            pseudonym(p.referral_id),
            // The month in Paris, as the reports count it.
            p.submitted_at.map(|t| contracts::week::paris_local(t).format("%Y-%m").to_string()).unwrap_or_default(),
            p.territory.map(|t| t.to_string()).unwrap_or_default(),
            p.needs.unwrap_or_default().iter().map(|n| n.slug()).collect::<Vec<_>>().join("|"),
            p.urgency.map(|u| u.slug().to_string()).unwrap_or_default(),
            p.status.slug().to_string(),
            p.outcome.map(|o| o.slug().to_string()).unwrap_or_default(),
            p.offers.to_string(),
            p.declines.to_string(),
            p.expiries.to_string(),
            secs(p.seconds_to_accept),
            secs(p.seconds_to_first_contact),
            secs(p.seconds_to_close),
            p.accepted_structure.map(|s| s.to_string()).unwrap_or_default(),
            p.organisation_kind.map(|k| k.slug().to_string()).unwrap_or_default(),
            secs(p.seconds_to_appointment),
            p.appointments_attended.to_string(),
            p.appointments_missed.to_string(),
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ReportQuery {
    /// `YYYY-MM`, Paris time. Default (absent or empty): this month.
    #[param(pattern = "^([0-9]{4}-(0[1-9]|1[0-2]))?$")]
    month: Option<String>,
    /// `csv` (or `Accept: text/csv`) for CSV. Default: `json`.
    #[param(schema_with = report_format)]
    format: Option<String>,
}

fn report_format() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["json", "csv"]))
        .build()
}

/// `{id}` of a structure.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct StructurePath {
    id: String,
}

/// The monthly activity report of one structure: for its mediators, the coordinator of
/// its territory, and admin. JSON, or CSV with `format=csv` (or `Accept: text/csv`).
#[utoipa::path(
    get,
    path = "/api/v1/insights/structures/{id}/report",
    operation_id = "getStructureReport",
    tag = "insights",
    params(StructurePath, ReportQuery),
    responses(
        (status = 200, description = "The report", content(
            (StructureReport = "application/json"),
            (String = "text/csv"),
        )),
        Authenticated, Forbidden, NotFound, InvalidQuery,
    )
)]
async fn structure_report(
    State(state): State<InsightsState>,
    caller: Authorized<StructureKeepers>,
    Path(id): Path<contracts::StructureId>,
    headers: axum::http::HeaderMap,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let structure = queries::structure(&mut conn, &id).await?.ok_or_else(ApiError::not_found)?;
    let allowed = match &caller.scope {
        Scope::All => true,
        Scope::Structure(s) => s.as_str() == structure.id,
        Scope::Territories(t) => t.iter().any(|t| t.as_str() == structure.territory),
        Scope::Organisation(_) | Scope::Pending | Scope::Service(_) | Scope::Dpo | Scope::AnswerLink { .. } => false,
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
            ("appointments", String::new(), report.appointments.to_string()),
            ("attendance_recorded", String::new(), report.attendance_recorded.to_string()),
            ("attended", String::new(), report.attended.to_string()),
            ("no_shows", String::new(), report.no_shows.to_string()),
            // Empty, not 0, when no attendance was recorded.
            ("no_show_rate", String::new(), report.no_show_rate.map(|r| r.to_string()).unwrap_or_default()),
        ];
        rows.extend(report.declined_by_reason.iter().map(|(k, v)| ("declined_by_reason", k.clone(), v.to_string())));
        rows.extend(report.outcomes.iter().map(|(k, v)| ("outcome", k.clone(), v.to_string())));
        for (indicator, detail, value) in rows {
            row(indicator, &detail, value).map_err(ApiError::internal)?;
        }
        let body = out.into_inner().map_err(ApiError::internal)?;
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response());
    }
    Ok(AxumJson(StructureReport {
        structure_id: structure.id,
        name: structure.name,
        territory: structure.territory,
        weekly_capacity: structure.weekly_capacity,
        month: month_label,
        from,
        to,
        report,
    })
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct OpenDataQuery {
    /// A département's code (`16`, `2A`, `971`) or `France`: only its rows. Default (absent
    /// or empty): every row.
    #[param(schema_with = contracts::api::schema::query_text)]
    departement: Option<String>,
}

/// The département asked for: a known code, `France`, or none.
fn departement(q: &OpenDataQuery) -> Result<Option<String>, ApiError> {
    match q.departement.as_deref().filter(|d| !d.is_empty()) {
        None => Ok(None),
        Some(d) if d == crate::open_data::NATIONAL || geo::is_departement_code(d) => Ok(Some(d.to_string())),
        Some(_) => Err(ApiError::invalid_field("departement", "expected a département's code (16, 2A, 971) or France")),
    }
}

/// Clients and proxies may keep a file an hour, then ask again with its `ETag`.
const OPEN_DATA_CACHE: &str = "public, max-age=3600";

/// A public, cacheable answer: 304 when the client's `If-None-Match` names this body.
fn cacheable(headers: &axum::http::HeaderMap, content_type: &'static str, body: Vec<u8>) -> Response {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(&body);
    let etag = format!("\"{}\"", digest.iter().take(16).map(|b| format!("{b:02x}")).collect::<String>());
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag));
    let common = [(header::CACHE_CONTROL, OPEN_DATA_CACHE.to_string()), (header::ETAG, etag)];
    if matches {
        return (axum::http::StatusCode::NOT_MODIFIED, common).into_response();
    }
    (common, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn open_rows(
    state: &InsightsState,
    q: &OpenDataQuery,
) -> Result<(DateTime<Utc>, Vec<contracts::insights::OpenDataRow>), ApiError> {
    let departement = departement(q)?;
    let generated_at = crate::open_data::ensure_published(&state.pool).await?;
    let rows = crate::open_data::rows(&state.pool, departement.as_deref()).await?;
    Ok((generated_at, rows))
}

/// The schema's URL, absolute when the public URL is known.
fn schema_url(state: &InsightsState) -> String {
    let path = "/api/v1/open-data/schema.json";
    match state.config.public_url.as_deref() {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => path.to_string(),
    }
}

/// The open statistics as CSV: one row per département and month and a national row
/// (`France`) per month, with statistical secrecy (a hidden cell is empty and `secret`
/// names it), under the Licence Ouverte 2.0. No sign-in.
#[utoipa::path(
    get,
    path = "/api/v1/open-data/referrals.csv",
    security(()),
    operation_id = "getOpenDataCsv",
    tag = "open-data",
    params(OpenDataQuery),
    responses(
        (status = 200, description = "CSV with a header line: departement, mois, orientations, proposees, acceptees, \
            reorientees, en_attente, accompagnements_realises, delai_acceptation_mediane_jours, taux_reorientation, \
            provisoire, secret (the hidden columns, `|`-separated); described by /api/v1/open-data/schema.json",
            body = String, content_type = "text/csv",
            headers(("ETag" = String, description = "The file's version"), ("Cache-Control" = String, description = "`public, max-age=3600`"))),
        (status = 304, description = "Not modified (`If-None-Match`)"),
        InvalidQuery,
    )
)]
async fn open_data_csv(
    State(state): State<InsightsState>,
    headers: axum::http::HeaderMap,
    Query(q): Query<OpenDataQuery>,
) -> Result<Response, ApiError> {
    let (_, rows) = open_rows(&state, &q).await?;
    let body = crate::open_data::csv(&rows).map_err(ApiError::internal)?;
    Ok(cacheable(&headers, "text/csv; charset=utf-8", body))
}

/// The open statistics as JSON: the CSV's rows (`null` for a hidden cell), the licence,
/// when they were computed and the schema's URL. No sign-in.
#[utoipa::path(
    get,
    path = "/api/v1/open-data/referrals.json",
    security(()),
    operation_id = "getOpenDataJson",
    tag = "open-data",
    params(OpenDataQuery),
    responses(
        (status = 200, description = "The open statistics", body = contracts::insights::OpenDataFile,
            headers(("ETag" = String, description = "The file's version"), ("Cache-Control" = String, description = "`public, max-age=3600`"))),
        (status = 304, description = "Not modified (`If-None-Match`)"),
        InvalidQuery,
    )
)]
async fn open_data_json(
    State(state): State<InsightsState>,
    headers: axum::http::HeaderMap,
    Query(q): Query<OpenDataQuery>,
) -> Result<Response, ApiError> {
    let (generated_at, rows) = open_rows(&state, &q).await?;
    let file = contracts::insights::OpenDataFile {
        licence: "Licence Ouverte 2.0".to_string(),
        generated_at,
        schema: schema_url(&state),
        rows,
    };
    let body = serde_json::to_vec(&file).map_err(ApiError::internal)?;
    Ok(cacheable(&headers, "application/json", body))
}

/// The Frictionless Table Schema of the open statistics' CSV, in French, with its
/// licence (Licence Ouverte 2.0), as schema.data.gouv.fr publishes them. No sign-in.
#[utoipa::path(
    get,
    path = "/api/v1/open-data/schema.json",
    security(()),
    operation_id = "getOpenDataSchema",
    tag = "open-data",
    responses(
        (status = 200, description = "The Table Schema", body = Object,
            headers(("ETag" = String, description = "The schema's version"), ("Cache-Control" = String, description = "`public, max-age=3600`"))),
        (status = 304, description = "Not modified (`If-None-Match`)"),
    )
)]
async fn open_data_schema(
    State(state): State<InsightsState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let url = schema_url(&state).replace("schema.json", "referrals.csv");
    let body = serde_json::to_vec_pretty(&crate::open_data::schema(&url)).map_err(ApiError::internal)?;
    Ok(cacheable(&headers, "application/json", body))
}
