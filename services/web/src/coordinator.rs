//! The coordinator's pages: the territory's queues and waitlist (`/territoire`), one
//! waiting or escalated referral to reroute (no personal data), the funnel of a period,
//! supply against demand by commune, and a structure's monthly report with its CSV.
//! Charts and the map are SVG drawn on the server, next to a table with the same
//! figures. Other memberships get 404, as the API does.

use std::collections::HashMap;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use contracts::{Need, ReferralStatus, Role, Urgency, WaitlistReason};
use serde::Deserialize;
use serde_json::json;

use crate::WebState;
use crate::error::PageError;
use crate::pages::{Agent, form_agent, required_as};
use crate::views::{Chrome, commune_name, render};

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/territoire", get(queues))
        .route("/territoire/orientations/{id}", get(waiting))
        .route("/territoire/orientations/{id}/reorientation", post(reroute))
        .route("/territoire/entonnoir", get(funnel))
        .route("/territoire/offre-et-demande", get(supply_demand))
        .route("/territoire/structures/{id}/rapport", get(report))
        .route("/territoire/structures/{id}/rapport.csv", get(report_csv))
        .route(
            "/territoire/import",
            get(import_form).post(import).layer(axum::extract::DefaultBodyLimit::max(IMPORT_LIMIT)),
        )
}

/// What the API takes (Mednum files of a whole region), and a little for the form.
const IMPORT_LIMIT: usize = 51 * 1024 * 1024;

#[derive(Deserialize)]
struct Rejected {
    index: usize,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    errors: Vec<String>,
}

#[derive(Deserialize)]
struct ImportReport {
    received: usize,
    created: usize,
    updated: usize,
    unchanged: usize,
    rejected: Vec<Rejected>,
    #[serde(default)]
    located_by_commune: usize,
}

#[derive(askama::Template)]
#[template(path = "import.html")]
struct ImportView {
    chrome: Chrome,
    csrf: String,
    error: Option<String>,
    summary: Vec<(&'static str, usize)>,
    rejected: Vec<(String, String)>,
    done: bool,
}

fn import_page(agent: &Agent, error: Option<String>, report: Option<ImportReport>) -> Response {
    let done = report.is_some();
    let (summary, rejected) = match report {
        Some(r) => (
            vec![
                ("Lieux lus", r.received),
                ("Créés", r.created),
                ("Mis à jour", r.updated),
                ("Inchangés", r.unchanged),
                ("Refusés", r.rejected.len()),
                ("Placés au centre de leur commune (sans coordonnées)", r.located_by_commune),
            ],
            r.rejected
                .into_iter()
                .take(200)
                .map(|x| {
                    let who = match x.id {
                        Some(id) => format!("Lieu n° {} ({id})", x.index + 1),
                        None => format!("Lieu n° {}", x.index + 1),
                    };
                    (who, x.errors.join(" ; "))
                })
                .collect(),
        ),
        None => (vec![], vec![]),
    };
    let invalid = error.is_some();
    let view = ImportView {
        chrome: agent.chrome(if invalid { "Erreur : import" } else { "Importer un fichier" }, "import"),
        csrf: agent.session.csrf.clone(),
        error,
        summary,
        rejected,
        done,
    };
    render(if invalid { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK }, &view, true)
}

async fn import_form(State(state): State<WebState>, headers: HeaderMap) -> Result<Response, PageError> {
    let agent = match coordinator(&state, &headers, "/territoire/import").await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    Ok(import_page(&agent, None, None))
}

async fn import(
    State(state): State<WebState>,
    headers: HeaderMap,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, PageError> {
    let mut csrf = None;
    let mut file: Option<(String, Vec<u8>)> = None;
    if let Ok(mut multipart) = multipart {
        while let Ok(Some(field)) = multipart.next_field().await {
            match field.name() {
                Some("csrf") => csrf = field.text().await.ok(),
                Some("fichier") => {
                    let name = field.file_name().unwrap_or("").to_ascii_lowercase();
                    match field.bytes().await {
                        Ok(bytes) => file = Some((name, bytes.to_vec())),
                        Err(_) => file = Some((name, Vec::new())),
                    }
                }
                _ => {}
            }
        }
    }
    let agent = form_agent(&state, &headers, csrf.as_deref()).await?;
    if !agent.acts_as(COORDINATING) {
        return Err(PageError::not_found());
    }
    let Some((name, bytes)) = file.filter(|(_, b)| !b.is_empty()) else {
        return Ok(import_page(&agent, Some("Choisissez un fichier Mednum (JSON ou CSV) à importer.".into()), None));
    };
    let trimmed = bytes.iter().copied().find(|b| !b.is_ascii_whitespace());
    let content_type = if name.ends_with(".csv") || (!name.ends_with(".json") && trimmed != Some(b'[')) {
        "text/csv"
    } else {
        "application/json"
    };
    let reply = state.api.post_bytes("/api/v1/structures/import", &agent.token, content_type, bytes).await?;
    match reply.status {
        s if s.is_success() => {
            let report: ImportReport = serde_json::from_value(reply.body).map_err(PageError::unavailable)?;
            Ok(import_page(&agent, None, Some(report)))
        }
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::PAYLOAD_TOO_LARGE => Ok(import_page(
            &agent,
            Some(
                "Ce fichier n'est pas un fichier Mednum lisible (JSON ou CSV du standard), ou il dépasse 50 Mo.".into(),
            ),
            None,
        )),
        _ => Err(reply.failure().into()),
    }
}

/// Who sees a territory's pages.
const COORDINATING: &[Role] = &[Role::Coordinator, Role::Admin];

async fn coordinator(state: &WebState, headers: &HeaderMap, here: &str) -> Result<Result<Agent, Response>, PageError> {
    required_as(state, headers, here, COORDINATING).await
}

fn duration_fr(seconds: Option<i64>) -> String {
    let Some(s) = seconds else { return "—".into() };
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    match (d, h) {
        (0, 0) => format!("{m} min"),
        (0, h) => format!("{h} h {m:02} min"),
        (d, h) => format!("{d} j {h} h"),
    }
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ---------------------------------------------------------------- queues

#[derive(Deserialize)]
struct StructureQueue {
    structure_id: String,
    name: String,
    pending_offers: i64,
    oldest_pending_offer_seconds: Option<i64>,
    accepted_this_week: i64,
    weekly_capacity: i32,
    accepting: bool,
    in_progress: i64,
}

#[derive(Deserialize)]
struct WaitingReferral {
    referral_id: String,
    commune_code: Option<String>,
    needs: Option<Vec<Need>>,
    urgency: Option<Urgency>,
    reason: Option<WaitlistReason>,
    escalated: bool,
    waiting_seconds: Option<i64>,
    offers: i32,
}

#[derive(Deserialize)]
struct Waitlist {
    count: i64,
    escalated: i64,
    items: Vec<WaitingReferral>,
}

#[derive(Deserialize)]
struct Queues {
    week: String,
    structures: Vec<StructureQueue>,
    waitlist: Waitlist,
}

pub struct QueueRow {
    pub id: String,
    pub name: String,
    pub pending: i64,
    pub oldest: String,
    pub week: String,
    pub in_progress: i64,
    pub accepting: bool,
}

pub struct WaitRow {
    pub id: String,
    pub commune: String,
    pub needs: String,
    pub why: String,
    pub waiting: String,
    pub escalated: bool,
    pub urgent: bool,
}

/// Rows per page of the territory's tables: a département has hundreds of places and,
/// on a bad week, hundreds of waiting referrals; a page stays small.
const PER_PAGE: usize = 50;

/// Links to the other pages of a table: (href, text).
pub struct Pager {
    pub caption: String,
    pub previous: Option<String>,
    pub next: Option<String>,
}

fn pager(total: usize, page: usize, param: &str, other: &str, what: &str) -> Pager {
    let pages = total.div_ceil(PER_PAGE).max(1);
    let link = |p: usize| format!("/territoire?{param}={p}{other}");
    Pager {
        caption: if pages > 1 {
            format!("{what}, page {} sur {pages} ({total} en tout)", page + 1)
        } else {
            format!("{what} ({total})")
        },
        previous: (page > 0).then(|| link(page - 1)),
        next: (page + 1 < pages).then(|| link(page + 1)),
    }
}

fn page_param(q: &HashMap<String, String>, name: &str) -> usize {
    q.get(name).and_then(|p| p.trim().parse::<usize>().ok()).unwrap_or(0).min(10_000)
}

#[derive(askama::Template)]
#[template(path = "territoire.html")]
struct QueuesView {
    chrome: Chrome,
    week: String,
    structures: Vec<QueueRow>,
    structures_pager: Pager,
    waiting: Vec<WaitRow>,
    waiting_pager: Pager,
    count: i64,
    escalated: i64,
    /// Structures with no mediator signed up (from notifications): their offers reach nobody.
    unreached: Vec<String>,
}

async fn queues(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let agent = match coordinator(&state, &headers, "/territoire").await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let q: Queues = state.api.get("/api/v1/insights/queues", &agent.token).await?;
    let (lieux, attente) = (page_param(&params, "lieux"), page_param(&params, "attente"));
    let structures_pager = pager(q.structures.len(), lieux, "lieux", &format!("&attente={attente}"), "Files d'attente");
    let waiting_pager = pager(
        q.waitlist.items.len(),
        attente,
        "attente",
        &format!("&lieux={lieux}"),
        "Liste d'attente, les orientations signalées d'abord",
    );
    let structures = q
        .structures
        .into_iter()
        .skip(lieux * PER_PAGE)
        .take(PER_PAGE)
        .map(|s| QueueRow {
            name: s.name,
            pending: s.pending_offers,
            oldest: duration_fr(s.oldest_pending_offer_seconds),
            week: format!("{} / {}", s.accepted_this_week, s.weekly_capacity),
            in_progress: s.in_progress,
            accepting: s.accepting,
            id: encode(&s.structure_id),
        })
        .collect();
    let waiting = q
        .waitlist
        .items
        .into_iter()
        .skip(attente * PER_PAGE)
        .take(PER_PAGE)
        .map(|w| WaitRow {
            commune: w.commune_code.as_deref().map(commune_name).unwrap_or_default(),
            needs: w.needs.unwrap_or_default().iter().map(|n| n.label_fr()).collect::<Vec<_>>().join(", "),
            why: format!(
                "{} ({} proposition{})",
                w.reason.map(|r| r.label_fr()).unwrap_or("en attente"),
                w.offers,
                if w.offers > 1 { "s" } else { "" }
            ),
            waiting: duration_fr(w.waiting_seconds),
            escalated: w.escalated,
            urgent: w.urgency == Some(Urgency::Urgent),
            id: w.referral_id,
        })
        .collect();
    let view = QueuesView {
        chrome: agent.chrome("Territoire", "territoire"),
        week: q.week,
        structures,
        structures_pager,
        waiting,
        waiting_pager,
        count: q.waitlist.count,
        escalated: q.waitlist.escalated,
        unreached: unreached(&state, &agent.token).await,
    };
    Ok(render(StatusCode::OK, &view, true))
}

// ---------------------------------------------------------------- one waiting referral

#[derive(Deserialize)]
struct Referral {
    id: String,
    status: ReferralStatus,
    created_at: DateTime<Utc>,
    commune_code: String,
    needs: Vec<Need>,
    urgency: Urgency,
    attempts: u32,
    escalated: bool,
    waitlist_reason: Option<WaitlistReason>,
}

#[derive(Deserialize)]
struct Candidate {
    structure_id: String,
    name: String,
    distance_km: f64,
    used: u32,
    capacity: u32,
}

#[derive(Deserialize)]
struct Excluded {
    name: String,
    #[serde(default)]
    reasons: Vec<contracts::explain::Reason>,
}

#[derive(Deserialize)]
struct Assessment {
    candidates: Vec<Candidate>,
    #[serde(default)]
    excluded: Vec<Excluded>,
}

pub struct Option_ {
    pub value: String,
    pub label: String,
}

#[derive(askama::Template)]
#[template(path = "territoire_orientation.html")]
struct WaitingView {
    chrome: Chrome,
    csrf: String,
    id: String,
    created: String,
    status: String,
    commune: String,
    needs: String,
    urgent: bool,
    why: Option<String>,
    options: Vec<Option_>,
    excluded: Vec<(String, String)>,
    error: Option<String>,
    done: bool,
}

async fn waiting_page(
    state: &WebState,
    agent: &Agent,
    id: &str,
    error: Option<String>,
    done: bool,
) -> Result<Response, PageError> {
    if id.parse::<uuid::Uuid>().is_err() {
        return Err(PageError::not_found());
    }
    let r: Referral = state.api.get(&format!("/api/v1/referrals/{id}"), &agent.token).await?;
    let assessment: Assessment = state
        .api
        .get(&format!("/api/v1/referrals/{id}/candidates"), &agent.token)
        .await
        .unwrap_or(Assessment { candidates: vec![], excluded: vec![] });
    let options = assessment
        .candidates
        .iter()
        .map(|c| Option_ {
            value: c.structure_id.clone(),
            label: format!(
                "{} — {} km, {} place(s) prise(s) sur {} cette semaine",
                c.name,
                format!("{:.1}", c.distance_km).replace('.', ","),
                c.used,
                c.capacity
            ),
        })
        .collect();
    let excluded = assessment
        .excluded
        .iter()
        .take(10)
        .map(|e| (e.name.clone(), e.reasons.iter().map(|r| r.text_fr()).collect::<Vec<_>>().join(" ; ")))
        .collect();
    let invalid = error.is_some();
    let view = WaitingView {
        chrome: agent
            .chrome(if invalid { "Erreur : orientation en attente" } else { "Orientation en attente" }, "territoire"),
        csrf: agent.session.csrf.clone(),
        created: r.created_at.with_timezone(&chrono_tz::Europe::Paris).format("%d/%m/%Y à %H:%M").to_string(),
        status: r.status.label_fr().to_string(),
        commune: commune_name(&r.commune_code),
        needs: r.needs.iter().map(|n| n.label_fr()).collect::<Vec<_>>().join(", "),
        urgent: r.urgency == Urgency::Urgent,
        why: r.waitlist_reason.map(|w| {
            format!(
                "{} après {} proposition(s){}",
                w.label_fr(),
                r.attempts,
                if r.escalated { ", signalée à la coordination" } else { "" }
            )
        }),
        options,
        excluded,
        error,
        done,
        id: r.id,
    };
    let status = if invalid { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(render(status, &view, true))
}

async fn waiting(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let agent = match coordinator(&state, &headers, &format!("/territoire/orientations/{id}")).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    waiting_page(&state, &agent, &id, None, q.contains_key("reorientee")).await
}

#[derive(Deserialize, Default)]
struct RerouteForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    structure: Option<String>,
    #[serde(default)]
    force: Option<String>,
}

async fn reroute(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<RerouteForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let agent = form_agent(&state, &headers, form.csrf.as_deref()).await?;
    if !agent.acts_as(COORDINATING) || id.parse::<uuid::Uuid>().is_err() {
        return Err(PageError::not_found());
    }
    // Empty: matching runs again with the attempts reset.
    let structure = form.structure.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let body = match structure {
        Some(s) => {
            json!({ "structure_id": s, "force": form.force.is_some(), "reason": "réorientée par la coordination" })
        }
        None => json!({ "reason": "réorientée par la coordination" }),
    };
    let reply =
        state.api.send(Method::POST, &format!("/api/v1/referrals/{id}/reroute"), &agent.token, Some(&body)).await?;
    if reply.status.is_success() {
        return Ok(Redirect::to(&format!("/territoire/orientations/{id}?reorientee=1")).into_response());
    }
    let message = match reply.status {
        StatusCode::CONFLICT => {
            "Cette orientation ne peut pas être réorientée dans son état actuel (déjà acceptée, clôturée ou annulée)."
        }
        StatusCode::UNPROCESSABLE_ENTITY => {
            "Cette structure ne peut pas recevoir l'orientation : choisissez-en une dans la liste."
        }
        _ => return Err(reply.failure().into()),
    };
    waiting_page(&state, &agent, &id, Some(message.into()), false).await
}

// ---------------------------------------------------------------- funnel

#[derive(Deserialize)]
struct Percentiles {
    p50: Option<i64>,
    p90: Option<i64>,
}

#[derive(Deserialize)]
struct Funnel {
    submitted: i64,
    offered: i64,
    accepted: i64,
    in_progress: i64,
    closed: i64,
    cancelled: i64,
    waitlisted_now: i64,
    expired_offers: i64,
    #[serde(default)]
    outcomes: std::collections::BTreeMap<String, i64>,
    #[serde(default)]
    declines: std::collections::BTreeMap<String, i64>,
    time_to_accept_seconds: Percentiles,
    time_to_first_contact_seconds: Percentiles,
    time_to_close_seconds: Percentiles,
}

pub struct Bar {
    pub label: &'static str,
    pub value: i64,
    pub width: f64,
    pub y: u32,
    pub share: String,
}

#[derive(askama::Template)]
#[template(path = "entonnoir.html")]
struct FunnelView {
    chrome: Chrome,
    from: String,
    to: String,
    errors: HashMap<&'static str, String>,
    bars: Vec<Bar>,
    others: Vec<(&'static str, String)>,
    /// (step, p50, p90)
    delays: Vec<(&'static str, String, String)>,
    declines: Vec<(String, i64)>,
    outcomes: Vec<(String, i64)>,
    chart_label: String,
}

impl FunnelView {
    fn error(&self, field: &str) -> Option<&String> {
        self.errors.get(field)
    }
}

pub(crate) fn date_field(
    raw: Option<&String>,
    field: &'static str,
    errors: &mut HashMap<&'static str, String>,
) -> Option<NaiveDate> {
    let raw = raw.map(|s| s.trim()).filter(|s| !s.is_empty())?;
    match NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        Ok(d) => Some(d),
        Err(_) => {
            errors.insert(field, "Indiquez une date au format jj/mm/aaaa.".into());
            None
        }
    }
}

async fn funnel(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let agent = match coordinator(&state, &headers, "/territoire/entonnoir").await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let today = Utc::now().with_timezone(&chrono_tz::Europe::Paris).date_naive();
    let mut errors = HashMap::new();
    let from = date_field(q.get("du"), "du", &mut errors)
        .unwrap_or_else(|| today.with_day(1).unwrap_or(today) - chrono::Months::new(2));
    let to = date_field(q.get("au"), "au", &mut errors).unwrap_or(today);
    if to < from {
        errors.insert("au", "La date de fin doit être après la date de début.".into());
    }
    let (from_q, to_q) =
        if errors.is_empty() { (from, to + chrono::Days::new(1)) } else { (today, today + chrono::Days::new(1)) };
    let f: Funnel = state.api.get(&format!("/api/v1/insights/funnel?from={from_q}&to={to_q}"), &agent.token).await?;
    let stages: [(&'static str, i64); 5] = [
        ("Envoyées", f.submitted),
        ("Proposées à un lieu", f.offered),
        ("Acceptées", f.accepted),
        ("Accompagnement commencé", f.in_progress),
        ("Clôturées", f.closed),
    ];
    let max = f.submitted.max(1) as f64;
    let bars = stages
        .iter()
        .enumerate()
        .map(|(i, (label, value))| Bar {
            label,
            value: *value,
            width: (*value as f64 / max * 100.0).clamp(0.0, 100.0),
            y: i as u32 * 36,
            share: if f.submitted > 0 { format!("{} %", (*value as f64 / max * 100.0).round()) } else { "—".into() },
        })
        .collect();
    let others = vec![
        ("Annulées", f.cancelled.to_string()),
        ("En liste d'attente aujourd'hui", f.waitlisted_now.to_string()),
        ("Propositions expirées sans réponse", f.expired_offers.to_string()),
    ];
    let delays = vec![
        ("Jusqu'à l'acceptation", duration_fr(f.time_to_accept_seconds.p50), duration_fr(f.time_to_accept_seconds.p90)),
        (
            "Jusqu'au premier contact",
            duration_fr(f.time_to_first_contact_seconds.p50),
            duration_fr(f.time_to_first_contact_seconds.p90),
        ),
        ("Jusqu'à la clôture", duration_fr(f.time_to_close_seconds.p50), duration_fr(f.time_to_close_seconds.p90)),
    ];
    let declines: Vec<(String, i64)> = f
        .declines
        .iter()
        .map(|(k, v)| {
            (k.parse::<contracts::DeclineReason>().map(crate::mediator::decline_fr).unwrap_or("Autre").to_string(), *v)
        })
        .collect();
    let outcomes: Vec<(String, i64)> = f
        .outcomes
        .iter()
        .map(|(k, v)| {
            (k.parse::<contracts::Outcome>().map(crate::mediator::outcome_fr).unwrap_or("Autre").to_string(), *v)
        })
        .collect();
    let invalid = !errors.is_empty();
    let status = if invalid { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let view = FunnelView {
        chrome: agent.chrome(if invalid { "Erreur : entonnoir" } else { "Entonnoir" }, "entonnoir"),
        chart_label: format!(
            "Entonnoir du {} au {} : {}",
            from.format("%d/%m/%Y"),
            to.format("%d/%m/%Y"),
            stages.iter().map(|(l, v)| format!("{l} {v}")).collect::<Vec<_>>().join(", ")
        ),
        from: q.get("du").cloned().unwrap_or_else(|| from.to_string()),
        to: q.get("au").cloned().unwrap_or_else(|| to.to_string()),
        errors,
        bars,
        others,
        delays,
        declines,
        outcomes,
    };
    Ok(render(status, &view, true))
}

// ---------------------------------------------------------------- supply and demand

#[derive(Deserialize)]
struct CommuneSupply {
    commune_code: String,
    commune: Option<String>,
    referrals: i64,
    referrals_per_week: f64,
    capacity_within_radius: i64,
    ratio: Option<f64>,
}

#[derive(Deserialize)]
struct SupplyDemand {
    radius_km: f64,
    items: Vec<CommuneSupply>,
}

pub struct SupplyRow {
    pub commune: String,
    pub referrals: i64,
    pub per_week: String,
    pub capacity: i64,
    pub ratio: String,
    pub tense: bool,
}

pub struct Dot {
    pub x: f64,
    pub y: f64,
    pub r: f64,
    pub class: &'static str,
    pub title: String,
}

#[derive(askama::Template)]
#[template(path = "offre_demande.html")]
struct SupplyView {
    chrome: Chrome,
    radius: String,
    total: usize,
    shown: usize,
    rows: Vec<SupplyRow>,
    dots: Vec<Dot>,
}

async fn supply_demand(State(state): State<WebState>, headers: HeaderMap) -> Result<Response, PageError> {
    let agent = match coordinator(&state, &headers, "/territoire/offre-et-demande").await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let s: SupplyDemand = state.api.get("/api/v1/insights/supply-demand", &agent.token).await?;
    let communes = geo::communes();
    let located: Vec<(&CommuneSupply, geo::LatLon)> =
        s.items.iter().filter_map(|i| communes.by_code(&i.commune_code).map(|c| (i, c.location))).collect();
    // An equirectangular projection of the communes' box, in a 600 × 400 frame.
    let (mut lat0, mut lat1, mut lon0, mut lon1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (_, p) in &located {
        lat0 = lat0.min(p.lat);
        lat1 = lat1.max(p.lat);
        lon0 = lon0.min(p.lon);
        lon1 = lon1.max(p.lon);
    }
    let (dlat, dlon) = ((lat1 - lat0).max(0.05), (lon1 - lon0).max(0.05));
    let dots = located
        .iter()
        .map(|(i, p)| Dot {
            x: (20.0 + (p.lon - lon0) / dlon * 560.0).round(),
            y: (20.0 + (lat1 - p.lat) / dlat * 360.0).round(),
            r: (4.0 + (i.referrals as f64).sqrt() * 1.5).min(30.0).round(),
            class: match i.ratio {
                None => "none",
                Some(r) if r > 1.0 => "tense",
                Some(_) => "ok",
            },
            title: format!(
                "{} : {} orientation(s), {} place(s) par semaine à proximité",
                i.commune.clone().unwrap_or_else(|| i.commune_code.clone()),
                i.referrals,
                i.capacity_within_radius
            ),
        })
        .collect();
    let shown = s.items.len().min(100);
    let rows = s
        .items
        .iter()
        .take(100)
        .map(|i| SupplyRow {
            commune: i
                .commune
                .clone()
                .map(|c| format!("{c} ({})", i.commune_code))
                .unwrap_or_else(|| i.commune_code.clone()),
            referrals: i.referrals,
            per_week: format!("{:.2}", i.referrals_per_week).replace('.', ","),
            capacity: i.capacity_within_radius,
            ratio: i.ratio.map(|r| format!("{r:.2}").replace('.', ",")).unwrap_or_else(|| "aucune place".into()),
            tense: i.ratio.is_none_or(|r| r > 1.0),
        })
        .collect();
    let view = SupplyView {
        chrome: agent.chrome("Offre et demande", "offre"),
        radius: format!("{}", s.radius_km),
        total: s.items.len(),
        shown,
        rows,
        dots,
    };
    Ok(render(StatusCode::OK, &view, true))
}

// ---------------------------------------------------------------- monthly report

#[derive(Deserialize)]
struct Monthly {
    received: i64,
    accepted: i64,
    declined: i64,
    declined_by_reason: std::collections::BTreeMap<String, i64>,
    expired: i64,
    first_contacts: i64,
    closed: i64,
    outcomes: std::collections::BTreeMap<String, i64>,
    median_seconds_offer_to_accept: Option<i64>,
    median_seconds_accept_to_first_contact: Option<i64>,
}

#[derive(Deserialize)]
struct StructureReport {
    structure_id: String,
    name: String,
    weekly_capacity: i32,
    month: String,
    report: Monthly,
}

#[derive(askama::Template)]
#[template(path = "rapport.html")]
struct ReportView {
    chrome: Chrome,
    id: String,
    name: String,
    month: String,
    month_error: Option<String>,
    csv_href: String,
    lines: Vec<(String, String)>,
    declines: Vec<(String, i64)>,
    outcomes: Vec<(String, i64)>,
}

fn month_of(q: &HashMap<String, String>) -> Result<Option<String>, String> {
    match q.get("mois").map(|m| m.trim()).filter(|m| !m.is_empty()) {
        None => Ok(None),
        Some(m) if NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").is_ok() && m.len() == 7 => {
            Ok(Some(m.to_string()))
        }
        Some(_) => Err("Indiquez un mois au format aaaa-mm, par exemple 2026-11.".into()),
    }
}

async fn report(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let agent = match coordinator(&state, &headers, &format!("/territoire/structures/{}/rapport", encode(&id))).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let (month, month_error) = match month_of(&q) {
        Ok(m) => (m, None),
        Err(e) => (None, Some(e)),
    };
    let query = month.as_deref().map(|m| format!("?month={m}")).unwrap_or_default();
    let r: StructureReport =
        state.api.get(&format!("/api/v1/insights/structures/{}/report{query}", encode(&id)), &agent.token).await?;
    let m = &r.report;
    let lines = vec![
        ("Propositions reçues".into(), m.received.to_string()),
        ("Acceptées".into(), m.accepted.to_string()),
        ("Refusées".into(), m.declined.to_string()),
        ("Expirées sans réponse".into(), m.expired.to_string()),
        ("Premiers contacts".into(), m.first_contacts.to_string()),
        ("Clôturées".into(), m.closed.to_string()),
        ("Délai médian de réponse".into(), duration_fr(m.median_seconds_offer_to_accept)),
        ("Délai médian jusqu'au premier contact".into(), duration_fr(m.median_seconds_accept_to_first_contact)),
        ("Places par semaine".into(), r.weekly_capacity.to_string()),
    ];
    let label = |slug: &str, f: fn(&str) -> Option<&'static str>| f(slug).unwrap_or("Autre").to_string();
    let declines = m
        .declined_by_reason
        .iter()
        .map(|(k, v)| (label(k, |s| s.parse::<contracts::DeclineReason>().ok().map(crate::mediator::decline_fr)), *v))
        .collect();
    let outcomes = m
        .outcomes
        .iter()
        .map(|(k, v)| (label(k, |s| s.parse::<contracts::Outcome>().ok().map(crate::mediator::outcome_fr)), *v))
        .collect();
    let status = if month_error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let view = ReportView {
        chrome: agent
            .chrome(if month_error.is_some() { "Erreur : rapport mensuel" } else { "Rapport mensuel" }, "territoire"),
        csv_href: format!("/territoire/structures/{}/rapport.csv?mois={}", encode(&r.structure_id), r.month),
        id: encode(&r.structure_id),
        name: r.name,
        month: r.month,
        month_error,
        lines,
        declines,
        outcomes,
    };
    Ok(render(status, &view, true))
}

async fn report_csv(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let agent = match coordinator(&state, &headers, &format!("/territoire/structures/{}/rapport", encode(&id))).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let month = month_of(&q).map_err(|_| PageError::not_found())?;
    let query = month.as_deref().map(|m| format!("&month={m}")).unwrap_or_default();
    let (status, bytes) = state
        .api
        .raw(&format!("/api/v1/insights/structures/{}/report?format=csv{query}", encode(&id)), &agent.token)
        .await?;
    if !status.is_success() {
        return Err(crate::api::ApiFailure::Status { status, problem: serde_json::Value::Null }.into());
    }
    let name = format!(
        "attachment; filename=\"rapport-{}-{}.csv\"",
        id.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"),
        month.unwrap_or_default()
    );
    let mut response = (StatusCode::OK, bytes).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&name).unwrap_or_else(|_| HeaderValue::from_static("attachment")),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The names of the structures nobody can be told about; none when the notifications
/// service does not answer (the rest of the page does not depend on it).
async fn unreached(state: &WebState, token: &str) -> Vec<String> {
    match state.api.get::<serde_json::Value>("/api/v1/notifications/unreached-structures", token).await {
        Ok(v) => v["items"]
            .as_array()
            .map(|items| items.iter().filter_map(|i| i["name"].as_str().map(str::to_string)).collect())
            .unwrap_or_default(),
        Err(err) => {
            tracing::warn!(error = %err, "structures without mediators unavailable");
            vec![]
        }
    }
}
