//! The mediator's pages: the offers waiting for the structure (`/propositions`), one
//! offer to accept or decline (never the person's identity before acceptance), the
//! referrals the structure follows (`/suivis`) with contacts and closing, and the
//! structure's week (`/ma-structure`). Other memberships get 404, as the API does.

use std::collections::HashMap;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, Utc};
use contracts::{
    Accessibility, ContactKind, ContactPreference, DeclineReason, HistoryStep, Language, Need, Outcome, ReferralStatus,
    Role, Urgency,
};
use serde::Deserialize;
use serde_json::json;

use crate::WebState;
use crate::error::PageError;
use crate::pages::{Agent, form_agent, required};
use crate::views::{Chrome, commune_name, paris, render};

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/propositions", get(offers))
        .route("/propositions/{id}", get(offer))
        .route("/propositions/{id}/acceptation", post(accept))
        .route("/propositions/{id}/refus", post(decline))
        .route("/suivis", get(followed))
        .route("/suivis/{id}", get(follow))
        .route("/suivis/{id}/contact", post(contact))
        .route("/suivis/{id}/cloture", post(close))
        .route("/ma-structure", get(structure).post(save_structure))
}

/// UI.md's words for the reasons and outcomes.
pub fn decline_fr(d: DeclineReason) -> &'static str {
    match d {
        DeclineReason::NoCapacity => "Plus de place cette semaine",
        DeclineReason::OutOfScope => "Hors de nos services",
        DeclineReason::OutOfArea => "Hors de notre zone",
        DeclineReason::Language => "Langue",
        DeclineReason::Accessibility => "Accessibilité",
        DeclineReason::Duplicate => "Doublon",
        DeclineReason::PersonUnreachable => "Personne injoignable",
        DeclineReason::Other => "Autre",
    }
}

pub fn outcome_fr(o: Outcome) -> &'static str {
    match o {
        Outcome::Completed => "Accompagnement réalisé",
        Outcome::PartiallyCompleted => "Partiellement réalisé",
        Outcome::Unreachable => "Personne injoignable",
        Outcome::NoShow => "Absent au rendez-vous",
        Outcome::DeclinedByPerson => "Refus de la personne",
        Outcome::Redirected => "Réorientée",
        Outcome::Other => "Autre",
    }
}

/// The agent and their structure, if their active membership is a mediator's.
async fn mediator(
    state: &WebState,
    headers: &HeaderMap,
    here: &str,
) -> Result<Result<(Agent, String), Response>, PageError> {
    match required(state, headers, here).await? {
        Ok(agent) => {
            match agent.active.as_ref().filter(|m| m.role == Role::Mediator).and_then(|m| m.structure_id.clone()) {
                Some(s) => Ok(Ok((agent, s.to_string()))),
                None => Err(PageError::not_found()),
            }
        }
        Err(redirect) => Ok(Err(redirect)),
    }
}

async fn mediator_form(
    state: &WebState,
    headers: &HeaderMap,
    csrf: Option<&str>,
) -> Result<(Agent, String), PageError> {
    let agent = form_agent(state, headers, csrf).await?;
    let structure = agent.active.as_ref().filter(|m| m.role == Role::Mediator).and_then(|m| m.structure_id.clone());
    match structure {
        Some(s) => Ok((agent, s.to_string())),
        None => Err(PageError::not_found()),
    }
}

fn time_left(until: &DateTime<Utc>) -> String {
    let left = *until - Utc::now();
    if left.num_minutes() <= 0 {
        return "expirée".into();
    }
    let (days, hours, minutes) = (left.num_days(), left.num_hours() % 24, left.num_minutes() % 60);
    match (days, hours) {
        (0, 0) => format!("{minutes} min"),
        (0, h) => format!("{h} h {minutes:02} min"),
        (d, h) => format!("{d} j {h} h"),
    }
}

fn valid_id(id: &str) -> Result<(), PageError> {
    id.parse::<uuid::Uuid>().map(|_| ()).map_err(|_| PageError::not_found())
}

#[derive(Deserialize)]
struct OfferPart {
    structure_id: String,
    expires_at: DateTime<Utc>,
    distance_km: f64,
}

#[derive(Deserialize)]
struct PersonPart {
    first_name: String,
    last_name: String,
    phone: Option<String>,
    email: Option<String>,
    contact_preference: ContactPreference,
    commune: String,
}

#[derive(Deserialize)]
struct StepPart {
    at: DateTime<Utc>,
    status: HistoryStep,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct Referral {
    id: String,
    status: ReferralStatus,
    created_at: DateTime<Utc>,
    commune_code: String,
    needs: Vec<Need>,
    languages: Vec<Language>,
    accessibility: Vec<Accessibility>,
    urgency: Urgency,
    deadline: Option<NaiveDate>,
    current_offer: Option<OfferPart>,
    #[serde(default)]
    person: Option<PersonPart>,
    /// `purged` or `erased` once the person's data is gone.
    #[serde(default)]
    personal_data: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    history: Option<Vec<StepPart>>,
}

#[derive(Deserialize)]
struct Page {
    items: Vec<Referral>,
}

pub struct Line {
    pub href: String,
    pub text: String,
    pub urgent: bool,
}

#[derive(askama::Template)]
#[template(path = "liste_liens.html")]
struct LinksView {
    chrome: Chrome,
    heading: String,
    intro: String,
    empty: String,
    lines: Vec<Line>,
    notice: Option<String>,
}

fn needs_text(needs: &[Need]) -> String {
    needs.iter().map(|n| n.label_fr()).collect::<Vec<_>>().join(", ")
}

async fn offers(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let (agent, mine) = match mediator(&state, &headers, "/propositions").await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let page: Page = state.api.get("/api/v1/referrals?status=offered&limit=200", &agent.token).await?;
    let mut items: Vec<Referral> =
        page.items.into_iter().filter(|r| r.current_offer.as_ref().is_some_and(|o| o.structure_id == mine)).collect();
    items.sort_by_key(|r| r.current_offer.as_ref().map(|o| o.expires_at));
    let lines = items
        .iter()
        .map(|r| {
            let o = r.current_offer.as_ref();
            Line {
                href: format!("/propositions/{}", r.id),
                text: format!(
                    "{} — {} — répondre avant le {} (reste {})",
                    commune_name(&r.commune_code),
                    needs_text(&r.needs),
                    o.map(|o| paris(&o.expires_at)).unwrap_or_default(),
                    o.map(|o| time_left(&o.expires_at)).unwrap_or_default(),
                ),
                urgent: r.urgency == Urgency::Urgent,
            }
        })
        .collect();
    let notice = if q.contains_key("refusee") {
        Some("La proposition est refusée : Aiguillage cherche un autre lieu pour la personne.".to_string())
    } else {
        None
    };
    let view = LinksView {
        chrome: agent.chrome("Propositions", "propositions"),
        heading: "Propositions en attente".into(),
        intro: "Les personnes qu'Aiguillage propose à votre structure, la réponse la plus pressée d'abord. Leur identité s'affiche une fois la proposition acceptée.".into(),
        empty: "Aucune proposition en attente.".into(),
        lines,
        notice,
    };
    Ok(render(StatusCode::OK, &view, true))
}

pub struct Choice {
    pub value: &'static str,
    pub label: &'static str,
}

#[derive(askama::Template)]
#[template(path = "proposition.html")]
struct OfferView {
    chrome: Chrome,
    csrf: String,
    id: String,
    commune: String,
    distance: String,
    needs: Vec<&'static str>,
    languages: String,
    accessibility: String,
    urgent: bool,
    deadline: Option<String>,
    expires: String,
    left: String,
    reasons: Vec<Choice>,
    reason_error: Option<String>,
    comment: String,
}

async fn offer_page(
    state: &WebState,
    agent: &Agent,
    mine: &str,
    id: &str,
    reason_error: Option<String>,
    comment: String,
) -> Result<Response, PageError> {
    valid_id(id)?;
    let r: Referral = state.api.get(&format!("/api/v1/referrals/{id}"), &agent.token).await?;
    if matches!(r.status, ReferralStatus::Accepted | ReferralStatus::InProgress | ReferralStatus::Closed)
        && r.person.is_some()
    {
        return Ok(Redirect::to(&format!("/suivis/{id}")).into_response());
    }
    let Some(o) = r.current_offer.as_ref().filter(|o| o.structure_id == mine && r.status == ReferralStatus::Offered)
    else {
        return Err(PageError::not_found());
    };
    let invalid = reason_error.is_some();
    let view = OfferView {
        chrome: agent.chrome(if invalid { "Erreur : proposition" } else { "Proposition" }, "propositions"),
        csrf: agent.session.csrf.clone(),
        id: r.id.clone(),
        commune: commune_name(&r.commune_code),
        distance: format!("{:.1} km", o.distance_km).replace('.', ","),
        needs: r.needs.iter().map(|n| n.label_fr()).collect(),
        languages: r.languages.iter().map(|l| l.name_fr()).collect::<Vec<_>>().join(", "),
        accessibility: if r.accessibility.is_empty() {
            "aucun besoin particulier indiqué".into()
        } else {
            r.accessibility.iter().map(|a| a.label_fr()).collect::<Vec<_>>().join(", ")
        },
        urgent: r.urgency == Urgency::Urgent,
        deadline: r.deadline.map(|d| d.format("%d/%m/%Y").to_string()),
        expires: paris(&o.expires_at),
        left: time_left(&o.expires_at),
        reasons: DeclineReason::ALL.iter().map(|d| Choice { value: d.slug(), label: decline_fr(*d) }).collect(),
        reason_error,
        comment,
    };
    let status = if invalid { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(render(status, &view, true))
}

async fn offer(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (agent, mine) = match mediator(&state, &headers, &format!("/propositions/{id}")).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    offer_page(&state, &agent, &mine, &id, None, String::new()).await
}

#[derive(Deserialize, Default)]
struct StepForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    outcome: Option<String>,
}

fn form_of(form: Result<Form<StepForm>, FormRejection>) -> StepForm {
    form.map(|Form(f)| f).unwrap_or_default()
}

/// A step the API refused because the referral moved on (409) or is gone (404).
fn moved_on(status: StatusCode) -> Option<PageError> {
    match status {
        StatusCode::CONFLICT => Some(PageError {
            status: StatusCode::CONFLICT,
            heading: "Cette orientation a changé",
            message:
                "Elle a été annulée, a expiré ou a déjà reçu une réponse. Revenez à la liste pour voir où elle en est."
                    .into(),
            reference: None,
            back_to_sign_in: false,
        }),
        StatusCode::NOT_FOUND | StatusCode::FORBIDDEN => Some(PageError::not_found()),
        _ => None,
    }
}

async fn accept(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<StepForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = form_of(form);
    let (agent, _) = mediator_form(&state, &headers, form.csrf.as_deref()).await?;
    valid_id(&id)?;
    let name = agent.me.given_name.as_ref().map(|n| n.expose().clone());
    let body = json!({ "mediator_name": name });
    let reply =
        state.api.send(Method::POST, &format!("/api/v1/referrals/{id}/accept"), &agent.token, Some(&body)).await?;
    if reply.status.is_success() {
        return Ok(Redirect::to(&format!("/suivis/{id}?acceptee=1")).into_response());
    }
    Err(moved_on(reply.status).unwrap_or_else(|| reply.failure().into()))
}

async fn decline(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<StepForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = form_of(form);
    let (agent, mine) = mediator_form(&state, &headers, form.csrf.as_deref()).await?;
    valid_id(&id)?;
    let comment = form.comment.unwrap_or_default();
    let reason = form.reason.as_deref().and_then(|r| r.parse::<DeclineReason>().ok());
    let Some(reason) = reason else {
        return offer_page(&state, &agent, &mine, &id, Some("Choisissez le motif du refus.".into()), comment).await;
    };
    if comment.chars().count() > 1000 {
        return offer_page(
            &state,
            &agent,
            &mine,
            &id,
            Some("Le commentaire est trop long (1000 caractères au plus).".into()),
            comment,
        )
        .await;
    }
    let body = json!({ "reason": reason.slug(), "comment": Some(comment.trim()).filter(|c| !c.is_empty()) });
    let reply =
        state.api.send(Method::POST, &format!("/api/v1/referrals/{id}/decline"), &agent.token, Some(&body)).await?;
    if reply.status.is_success() {
        return Ok(Redirect::to("/propositions?refusee=1").into_response());
    }
    if reply.status == StatusCode::UNPROCESSABLE_ENTITY {
        let message = "Le commentaire contient des caractères refusés ou est trop long.".to_string();
        return offer_page(&state, &agent, &mine, &id, Some(message), comment).await;
    }
    Err(moved_on(reply.status).unwrap_or_else(|| reply.failure().into()))
}

async fn followed(State(state): State<WebState>, headers: HeaderMap) -> Result<Response, PageError> {
    let (agent, _) = match mediator(&state, &headers, "/suivis").await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let mut items = Vec::new();
    for status in ["accepted", "in_progress"] {
        let page: Page = state.api.get(&format!("/api/v1/referrals?status={status}&limit=200"), &agent.token).await?;
        items.extend(page.items);
    }
    items.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    let lines = items
        .iter()
        .map(|r| {
            let who = r
                .person
                .as_ref()
                .map(|p| format!("{} {}", p.first_name, p.last_name))
                .or_else(|| crate::pages::removed_label(r.personal_data.as_deref()).map(str::to_string))
                .unwrap_or_default();
            let state = if r.status == ReferralStatus::Accepted { "à contacter" } else { "accompagnement en cours" };
            Line {
                href: format!("/suivis/{}", r.id),
                text: format!("{who} — {} — {state}", needs_text(&r.needs)),
                urgent: r.urgency == Urgency::Urgent,
            }
        })
        .collect();
    let view = LinksView {
        chrome: agent.chrome("Suivis", "suivis"),
        heading: "Personnes suivies".into(),
        intro: "Les orientations acceptées par votre structure, jusqu'à leur clôture.".into(),
        empty: "Aucune orientation en cours.".into(),
        lines,
        notice: None,
    };
    Ok(render(StatusCode::OK, &view, true))
}

pub struct Step {
    pub at: String,
    pub what: String,
}

#[derive(askama::Template)]
#[template(path = "suivi.html")]
struct FollowView {
    chrome: Chrome,
    csrf: String,
    id: String,
    accepted_now: bool,
    done: Option<String>,
    name: String,
    contact: Vec<String>,
    preference: String,
    commune: String,
    needs: Vec<&'static str>,
    languages: String,
    deadline: Option<String>,
    note: Option<String>,
    timeline: Vec<Step>,
    open: bool,
    kinds: Vec<Choice>,
    outcomes: Vec<Choice>,
    outcome_error: Option<String>,
    comment: String,
}

async fn follow_page(
    state: &WebState,
    agent: &Agent,
    id: &str,
    q: &HashMap<String, String>,
    outcome_error: Option<String>,
    comment: String,
) -> Result<Response, PageError> {
    valid_id(id)?;
    let r: Referral = state.api.get(&format!("/api/v1/referrals/{id}"), &agent.token).await?;
    let removed = crate::pages::removed_label(r.personal_data.as_deref());
    if r.person.is_none() && removed.is_none() {
        return Err(PageError::not_found());
    }
    let name = match (&r.person, removed) {
        (Some(p), _) => format!("{} {}", p.first_name, p.last_name),
        (None, label) => label.unwrap_or_default().to_string(),
    };
    let done = if q.contains_key("contact") {
        Some("Le contact est enregistré.".to_string())
    } else if q.contains_key("cloturee") {
        Some("L'orientation est clôturée. Merci : la personne qui l'a orientée en est informée.".to_string())
    } else {
        None
    };
    let invalid = outcome_error.is_some();
    let view = FollowView {
        chrome: agent.chrome(if invalid { "Erreur : suivi" } else { "Suivi" }, "suivis"),
        csrf: agent.session.csrf.clone(),
        id: r.id.clone(),
        accepted_now: q.contains_key("acceptee"),
        done,
        name,
        contact: r
            .person
            .as_ref()
            .map(|p| {
                [
                    p.phone.as_ref().map(|t| format!("Téléphone : {t}")),
                    p.email.as_ref().map(|e| format!("E-mail : {e}")),
                ]
                .into_iter()
                .flatten()
                .collect()
            })
            .unwrap_or_default(),
        preference: r
            .person
            .as_ref()
            .map(|p| p.contact_preference.label_fr().to_string())
            .unwrap_or_else(|| "—".into()),
        commune: r.person.as_ref().map(|p| p.commune.clone()).unwrap_or_else(|| "—".into()),
        needs: r.needs.iter().map(|n| n.label_fr()).collect(),
        languages: r.languages.iter().map(|l| l.name_fr()).collect::<Vec<_>>().join(", "),
        deadline: r.deadline.map(|d| d.format("%d/%m/%Y").to_string()),
        note: r.note.clone(),
        timeline: r
            .history
            .unwrap_or_default()
            .into_iter()
            .map(|s| Step {
                at: paris(&s.at),
                what: match s.reason.as_deref().and_then(|x| x.parse::<Outcome>().ok()) {
                    Some(o) if s.status == HistoryStep::Closed => {
                        format!("{} : {}", s.status.label_fr(), outcome_fr(o))
                    }
                    _ => s.status.label_fr().to_string(),
                },
            })
            .collect(),
        open: matches!(r.status, ReferralStatus::Accepted | ReferralStatus::InProgress),
        kinds: ContactKind::ALL.iter().map(|k| Choice { value: k.slug(), label: k.label_fr() }).collect(),
        outcomes: Outcome::ALL.iter().map(|o| Choice { value: o.slug(), label: outcome_fr(*o) }).collect(),
        outcome_error,
        comment,
    };
    let status = if invalid { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(render(status, &view, true))
}

async fn follow(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let (agent, _) = match mediator(&state, &headers, &format!("/suivis/{id}")).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    follow_page(&state, &agent, &id, &q, None, String::new()).await
}

async fn contact(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<StepForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = form_of(form);
    let (agent, _) = mediator_form(&state, &headers, form.csrf.as_deref()).await?;
    valid_id(&id)?;
    let kind = form.kind.as_deref().and_then(|k| k.parse::<ContactKind>().ok()).unwrap_or(ContactKind::FirstContact);
    let body = json!({ "kind": kind.slug() });
    let reply =
        state.api.send(Method::POST, &format!("/api/v1/referrals/{id}/contact"), &agent.token, Some(&body)).await?;
    if reply.status.is_success() {
        return Ok(Redirect::to(&format!("/suivis/{id}?contact=1")).into_response());
    }
    Err(moved_on(reply.status).unwrap_or_else(|| reply.failure().into()))
}

async fn close(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<StepForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = form_of(form);
    let (agent, _) = mediator_form(&state, &headers, form.csrf.as_deref()).await?;
    valid_id(&id)?;
    let comment = form.comment.unwrap_or_default();
    let Some(outcome) = form.outcome.as_deref().and_then(|o| o.parse::<Outcome>().ok()) else {
        return follow_page(
            &state,
            &agent,
            &id,
            &HashMap::new(),
            Some("Choisissez le résultat de l'accompagnement.".into()),
            comment,
        )
        .await;
    };
    let body = json!({ "outcome": outcome.slug(), "comment": Some(comment.trim()).filter(|c| !c.is_empty()) });
    let reply =
        state.api.send(Method::POST, &format!("/api/v1/referrals/{id}/close"), &agent.token, Some(&body)).await?;
    if reply.status.is_success() {
        return Ok(Redirect::to(&format!("/suivis/{id}?cloturee=1")).into_response());
    }
    if reply.status == StatusCode::UNPROCESSABLE_ENTITY {
        let message = "Le commentaire contient des caractères refusés ou est trop long.".to_string();
        return follow_page(&state, &agent, &id, &HashMap::new(), Some(message), comment).await;
    }
    Err(moved_on(reply.status).unwrap_or_else(|| reply.failure().into()))
}

#[derive(Deserialize)]
struct StructurePart {
    name: String,
    weekly_capacity: u32,
    accepting: bool,
    opening_hours: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "ma_structure.html")]
struct StructureForm {
    chrome: Chrome,
    csrf: String,
    name: String,
    capacity: String,
    accepting: bool,
    hours: String,
    saved: bool,
    errors: HashMap<&'static str, String>,
}

impl StructureForm {
    fn error(&self, field: &str) -> Option<&String> {
        self.errors.get(field)
    }
}

async fn structure(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let (agent, mine) = match mediator(&state, &headers, "/ma-structure").await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let s: StructurePart = state.api.get(&format!("/api/v1/structures/{mine}"), &agent.token).await?;
    let view = StructureForm {
        chrome: agent.chrome("Ma structure", "ma-structure"),
        csrf: agent.session.csrf.clone(),
        name: s.name,
        capacity: s.weekly_capacity.to_string(),
        accepting: s.accepting,
        hours: s.opening_hours.unwrap_or_default(),
        saved: q.contains_key("enregistre"),
        errors: HashMap::new(),
    };
    Ok(render(StatusCode::OK, &view, true))
}

#[derive(Deserialize, Default)]
struct StructureFields {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    capacity: Option<String>,
    #[serde(default)]
    accepting: Option<String>,
    #[serde(default)]
    hours: Option<String>,
}

async fn save_structure(
    State(state): State<WebState>,
    headers: HeaderMap,
    form: Result<Form<StructureFields>, FormRejection>,
) -> Result<Response, PageError> {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let (agent, mine) = mediator_form(&state, &headers, form.csrf.as_deref()).await?;
    let capacity_text = form.capacity.unwrap_or_default().trim().to_string();
    let hours = form.hours.unwrap_or_default().trim().to_string();
    let accepting = form.accepting.is_some();
    let mut errors = HashMap::new();
    let capacity = match capacity_text.parse::<i64>() {
        Ok(c) if (0..=10_000).contains(&c) => Some(c),
        _ => {
            errors.insert("capacity", "Indiquez un nombre de places entre 0 et 10 000.".to_string());
            None
        }
    };
    if !hours.is_empty() && contracts::opening_hours::OpeningHours::parse(&hours).is_err() {
        errors.insert(
            "hours",
            "Ces horaires ne sont pas au format attendu. Exemple : « Mo-Fr 09:00-12:00,14:00-17:00; Sa 09:00-12:00; PH off ».".to_string(),
        );
    }
    if errors.is_empty() {
        let body = json!({ "weekly_capacity": capacity, "accepting": accepting, "opening_hours": hours });
        let reply = state
            .api
            .send(Method::PUT, &format!("/api/v1/structures/{mine}/capacity"), &agent.token, Some(&body))
            .await?;
        if reply.status.is_success() {
            return Ok(Redirect::to("/ma-structure?enregistre=1").into_response());
        }
        if reply.status != StatusCode::UNPROCESSABLE_ENTITY {
            return Err(reply.failure().into());
        }
        errors.insert("hours", "Ces horaires n'ont pas été acceptés.".to_string());
    }
    let s: StructurePart = state.api.get(&format!("/api/v1/structures/{mine}"), &agent.token).await?;
    let view = StructureForm {
        chrome: agent.chrome("Erreur : ma structure", "ma-structure"),
        csrf: agent.session.csrf.clone(),
        name: s.name,
        capacity: capacity_text,
        accepting,
        hours,
        saved: false,
        errors,
    };
    Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &view, true))
}
