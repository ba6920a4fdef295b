//! The referrer's pages: the organisation's referrals (`/orientations`), the referral
//! form (`/orientations/nouvelle`), and one referral with its timeline and its
//! cancellation (`/orientations/{id}`). Other memberships get 404, as the API does.

use std::collections::HashMap;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, RawForm, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, Utc};
use contracts::{Accessibility, ContactPreference, HistoryStep, Need, ReferralMode, ReferralStatus, Role, Urgency};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::WebState;
use crate::error::PageError;
use crate::pages::{Agent, form_agent, required_as};
use crate::session::random_token;
use crate::views::{Chrome, commune_name, paris, render};

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/orientations", get(list))
        .route("/orientations/nouvelle", get(new_form).post(submit))
        .route("/orientations/{id}", get(show))
        .route("/orientations/{id}/annulation", post(cancel))
}

/// The languages offered as boxes to tick, the most spoken by people referred in France.
const LANGUAGES: [&str; 10] = ["fr", "en", "ar", "es", "pt", "tr", "ru", "uk", "ro", "fa"];

/// The agent, if their active membership is a referrer's; else 404 (or sign-in).
async fn referrer(state: &WebState, headers: &HeaderMap, here: &str) -> Result<Result<Agent, Response>, PageError> {
    required_as(state, headers, here, &[Role::Referrer]).await
}

fn status_fr(s: ReferralStatus) -> &'static str {
    match s {
        ReferralStatus::Submitted => "Envoyée, en recherche d'un lieu",
        ReferralStatus::Offered => "Proposée à un lieu, en attente de réponse",
        ReferralStatus::Waitlisted => "En liste d'attente",
        ReferralStatus::Accepted => "Acceptée par un lieu",
        ReferralStatus::InProgress => "Accompagnement en cours",
        ReferralStatus::Closed => "Clôturée",
        ReferralStatus::Cancelled => "Annulée",
    }
}

// ---------------------------------------------------------------- list

#[derive(Deserialize)]
struct Named {
    #[serde(alias = "structure_name")]
    name: String,
}

#[derive(Deserialize)]
struct Summary {
    id: String,
    status: ReferralStatus,
    created_at: DateTime<Utc>,
    commune_code: String,
    needs: Vec<Need>,
    urgency: Urgency,
    #[serde(default)]
    escalated: bool,
    #[serde(default)]
    current_offer: Option<Named>,
    #[serde(default)]
    structure: Option<Named>,
    #[serde(default)]
    outcome: Option<contracts::Outcome>,
}

/// The status as a referrer reads it: where the referral is, and with whom.
fn status_words(r: &Summary) -> String {
    let place = |n: &Option<Named>| n.as_ref().map(|n| n.name.clone()).unwrap_or_else(|| "un lieu".into());
    match r.status {
        ReferralStatus::Submitted => "Envoyée, en recherche d'un lieu".into(),
        ReferralStatus::Offered => format!("Proposée à {}", place(&r.current_offer)),
        ReferralStatus::Waitlisted if r.escalated => "En attente d'une place (signalée à la coordination)".into(),
        ReferralStatus::Waitlisted => "En attente d'une place".into(),
        ReferralStatus::Accepted => format!("Acceptée par {}", place(&r.structure)),
        ReferralStatus::InProgress => format!("Accompagnement en cours à {}", place(&r.structure)),
        ReferralStatus::Closed => match r.outcome {
            Some(o) => format!("Clôturée : {}", crate::mediator::outcome_fr(o).to_lowercase()),
            None => "Clôturée".into(),
        },
        ReferralStatus::Cancelled => "Annulée".into(),
    }
}

/// What needs the referrer's attention comes first: waiting, then offered, then the rest.
fn attention(s: ReferralStatus) -> u8 {
    match s {
        ReferralStatus::Waitlisted => 0,
        ReferralStatus::Submitted | ReferralStatus::Offered => 1,
        ReferralStatus::Accepted | ReferralStatus::InProgress => 2,
        ReferralStatus::Closed | ReferralStatus::Cancelled => 3,
    }
}

#[derive(Deserialize)]
struct ListPage {
    items: Vec<Summary>,
}

pub struct Row {
    pub id: String,
    pub created: String,
    pub commune: String,
    pub needs: String,
    pub status: String,
    pub urgent: bool,
}

#[derive(askama::Template)]
#[template(path = "orientations.html")]
struct ListView {
    chrome: Chrome,
    rows: Vec<Row>,
    statuses: Vec<(&'static str, &'static str)>,
    chosen: String,
}

async fn list(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let agent = match referrer(&state, &headers, "/orientations").await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let chosen = q.get("statut").map(|s| s.trim().to_string()).unwrap_or_default();
    let status = ReferralStatus::ALL.iter().copied().find(|s| s.slug() == chosen);
    let path = match status {
        Some(s) => format!("/api/v1/referrals?limit=200&status={}", s.slug()),
        None => "/api/v1/referrals?limit=200".to_string(),
    };
    let page: ListPage = state.api.get(&path, &agent.token).await?;
    let mut items = page.items;
    // Newest first, within what needs attention first.
    items.sort_by_key(|r| (attention(r.status), std::cmp::Reverse(r.created_at)));
    let rows = items
        .into_iter()
        .map(|r| Row {
            created: paris(&r.created_at),
            commune: commune_name(&r.commune_code),
            needs: r.needs.iter().map(|n| n.label_fr()).collect::<Vec<_>>().join(", "),
            status: status_words(&r),
            urgent: r.urgency == Urgency::Urgent,
            id: r.id,
        })
        .collect();
    let page = ListView {
        chrome: agent.chrome("Orientations de mon organisation", "orientations"),
        rows,
        statuses: ReferralStatus::ALL.iter().map(|s| (s.slug(), status_fr(*s))).collect(),
        chosen: status.map(|s| s.slug().to_string()).unwrap_or_default(),
    };
    Ok(render(StatusCode::OK, &page, true))
}

// ---------------------------------------------------------------- the form

/// What the form holds, as typed: it comes back with the errors.
#[derive(Default, Clone)]
pub struct Draft {
    pub csrf: String,
    pub key: String,
    pub first_name: String,
    pub last_name: String,
    pub phone: String,
    pub email: String,
    pub contact_preference: String,
    pub commune: String,
    pub languages: Vec<String>,
    pub other_language: String,
    pub needs: Vec<String>,
    pub modes: Vec<String>,
    pub accessibility: Vec<String>,
    pub max_distance_km: String,
    pub urgency: String,
    pub deadline: String,
    pub note: String,
    pub consent: bool,
    pub consent_method: String,
    /// "Voir les lieux possibles" was pressed, not "Envoyer l'orientation".
    pub preview: bool,
}

impl Draft {
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut d = Draft::default();
        for (k, v) in pairs {
            match k.as_str() {
                "csrf" => d.csrf = v,
                "key" => d.key = v,
                "first_name" => d.first_name = v,
                "last_name" => d.last_name = v,
                "phone" => d.phone = v,
                "email" => d.email = v,
                "contact_preference" => d.contact_preference = v,
                "commune" => d.commune = v,
                "languages" => d.languages.push(v),
                "other_language" => d.other_language = v,
                "needs" => d.needs.push(v),
                "modes" => d.modes.push(v),
                "accessibility" => d.accessibility.push(v),
                "max_distance_km" => d.max_distance_km = v,
                "urgency" => d.urgency = v,
                "deadline" => d.deadline = v,
                "note" => d.note = v,
                "consent" => d.consent = v == "oui",
                "consent_method" => d.consent_method = v,
                "apercu" => d.preview = true,
                _ => {}
            }
        }
        d
    }
}

pub struct Choice {
    pub value: &'static str,
    pub label: String,
    pub checked: bool,
}

#[derive(askama::Template)]
#[template(path = "orientation_nouvelle.html")]
struct FormView {
    chrome: Chrome,
    d: Draft,
    /// Field → French message, shown beside it.
    errors: HashMap<&'static str, String>,
    /// In the order of the form, for the summary at the top.
    summary: Vec<(&'static str, String)>,
    languages: Vec<Choice>,
    needs: Vec<Choice>,
    modes: Vec<Choice>,
    accessibility: Vec<Choice>,
    preferences: Vec<Choice>,
    urgencies: Vec<Choice>,
    /// Where the referral could go, when asked before sending.
    preview: Option<String>,
}

impl FormView {
    fn error(&self, field: &str) -> Option<&String> {
        self.errors.get(field)
    }
}

fn choices<T: Copy>(all: &[T], slug: fn(T) -> &'static str, label: fn(T) -> String, chosen: &[String]) -> Vec<Choice> {
    all.iter()
        .map(|v| Choice { value: slug(*v), label: label(*v), checked: chosen.iter().any(|c| c == slug(*v)) })
        .collect()
}

/// The form's fields, in order, with the label the summary uses.
const FIELDS: [(&str, &str); 15] = [
    ("first_name", "Prénom"),
    ("last_name", "Nom"),
    ("phone", "Téléphone"),
    ("email", "Adresse e-mail"),
    ("contact_preference", "Préférence de contact"),
    ("commune", "Commune"),
    ("languages", "Langues"),
    ("needs", "Besoins"),
    ("modes", "Modalité"),
    ("accessibility", "Accessibilité"),
    ("max_distance_km", "Distance maximale"),
    ("urgency", "Urgence"),
    ("deadline", "Date limite"),
    ("note", "Note"),
    ("consent", "Consentement"),
];

fn form_page(agent: &Agent, d: Draft, errors: HashMap<&'static str, String>, status: StatusCode) -> Response {
    form_page_with(agent, d, errors, None, status)
}

fn form_page_with(
    agent: &Agent,
    d: Draft,
    errors: HashMap<&'static str, String>,
    preview: Option<String>,
    status: StatusCode,
) -> Response {
    let summary = FIELDS
        .iter()
        .filter_map(|(f, _)| errors.get(f).map(|m| (*f, m.clone())))
        .chain(errors.get("consent_method").map(|m| ("consent_method", m.clone())))
        .collect();
    let mut languages: Vec<String> = d.languages.clone();
    if languages.is_empty() && d.key.is_empty() {
        languages.push("fr".into());
    }
    let lang_choices = LANGUAGES
        .iter()
        .map(|code| {
            let lang: contracts::Language = code.parse().unwrap_or_else(|_| contracts::Language::french());
            Choice { value: code, label: lang.name_fr().to_string(), checked: languages.iter().any(|l| l == code) }
        })
        .collect();
    let modes = if d.modes.is_empty() && d.key.is_empty() { vec!["in_person".to_string()] } else { d.modes.clone() };
    let preference = if d.contact_preference.is_empty() { "phone".to_string() } else { d.contact_preference.clone() };
    let urgency = if d.urgency.is_empty() { "normal".to_string() } else { d.urgency.clone() };
    let title = if errors.is_empty() {
        "Nouvelle orientation".to_string()
    } else {
        "Erreur : nouvelle orientation".to_string()
    };
    let mut d = d;
    if d.key.is_empty() {
        d.key = random_token();
    }
    d.csrf = agent.session.csrf.clone();
    let page = FormView {
        chrome: agent.chrome(&title, "nouvelle"),
        languages: lang_choices,
        needs: choices(Need::ALL, Need::slug, |n| n.label_fr().to_string(), &d.needs),
        modes: choices(ReferralMode::ALL, ReferralMode::slug, |m| m.label_fr().to_string(), &modes),
        accessibility: choices(Accessibility::ALL, Accessibility::slug, |a| a.label_fr().to_string(), &d.accessibility),
        preferences: choices(
            ContactPreference::ALL,
            ContactPreference::slug,
            |p| p.label_fr().to_string(),
            &[preference],
        ),
        urgencies: choices(Urgency::ALL, Urgency::slug, |u| u.label_fr().to_string(), &[urgency]),
        d,
        errors,
        summary,
        preview,
    };
    render(status, &page, true)
}

async fn new_form(State(state): State<WebState>, headers: HeaderMap) -> Result<Response, PageError> {
    let agent = match referrer(&state, &headers, "/orientations/nouvelle").await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    Ok(form_page(&agent, Draft::default(), HashMap::new(), StatusCode::OK))
}

/// "16000", "16000 Angoulême", "Angoulême" or an INSEE code: the commune's code.
fn resolve_commune(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("Indiquez la commune de la personne : son nom ou son code postal.".into());
    }
    let communes = geo::communes();
    let digits: String = raw.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
    if digits.len() == 5 && digits.chars().all(|c| c.is_ascii_digit()) {
        let rest = raw[digits.len()..].trim();
        if let Ok(c) = communes.resolve(None, Some(&digits), Some(rest).filter(|r| !r.is_empty())) {
            return Ok(c.code.clone());
        }
        if let Some(c) = communes.by_code(&digits) {
            return Ok(c.code.clone());
        }
        return Err(format!("Aucune commune n'a le code postal {digits}."));
    }
    let wanted = geo::normalize_name(raw);
    let mut found: Vec<&geo::Commune> = communes.iter().filter(|c| geo::normalize_name(&c.name) == wanted).collect();
    found.sort_by_key(|c| std::cmp::Reverse(c.population));
    match found.as_slice() {
        [] => Err(format!("Aucune commune ne s'appelle « {raw} ». Essayez avec son code postal.")),
        [one] => Ok(one.code.clone()),
        several => Err(format!(
            "Plusieurs communes s'appellent « {raw} » ({}). Ajoutez le code postal, par exemple « {} {} ».",
            several.iter().take(4).map(|c| format!("{} ({})", c.name, c.departement)).collect::<Vec<_>>().join(", "),
            several[0].postcodes.first().cloned().unwrap_or_default(),
            several[0].name
        )),
    }
}

/// "3 lieux possibles à moins de 30 km : A (2,1 km), B …", from `match/preview`.
fn preview_words(body: &Value) -> String {
    let candidates = body["candidates"].as_array().cloned().unwrap_or_default();
    let radius = body["max_distance_km"].as_f64().unwrap_or(30.0);
    if candidates.is_empty() {
        return format!(
            "Aucun lieu possible à moins de {radius} km pour ces besoins cette semaine : l'orientation attendrait une place, et la coordination en serait prévenue."
        );
    }
    let names: Vec<String> = candidates
        .iter()
        .filter_map(|c| {
            let km = c["distance_km"].as_f64()?;
            Some(format!("{} ({} km)", c["name"].as_str()?, format!("{km:.1}").replace('.', ",")))
        })
        .collect();
    let n = candidates.len();
    let more = if n >= 5 { " ou plus" } else { "" };
    format!(
        "{n}{more} lieu{} possible{} à moins de {radius} km : {}. Aiguillage proposera la personne au plus adapté.",
        if n > 1 { "x" } else { "" },
        if n > 1 { "s" } else { "" },
        names.join(", ")
    )
}

/// The API's field path, as the form's field.
fn form_field(api: &str) -> &'static str {
    let api = api.split('[').next().unwrap_or(api);
    match api {
        "person.first_name" => "first_name",
        "person.last_name" => "last_name",
        "person.phone" => "phone",
        "person.email" => "email",
        "person.contact_preference" => "contact_preference",
        "person.commune_code" | "person.postcode" => "commune",
        "person.languages" => "languages",
        "person.accessibility" => "accessibility",
        "needs" => "needs",
        "modes" => "modes",
        "max_distance_km" => "max_distance_km",
        "urgency" => "urgency",
        "deadline" => "deadline",
        "note" => "note",
        "consent" | "consent.obtained" => "consent",
        "consent.method" | "consent.at" => "consent_method",
        _ => "form",
    }
}

fn message_fr(field: &str) -> &'static str {
    match field {
        "first_name" => "Indiquez le prénom de la personne (200 caractères au plus).",
        "last_name" => "Indiquez le nom de la personne (200 caractères au plus).",
        "phone" => "Ce numéro de téléphone n'est pas valide. Exemple : 06 12 34 56 78 ou +33 6 12 34 56 78.",
        "email" => "Cette adresse e-mail n'est pas valide. Exemple : nom@exemple.fr.",
        "contact_preference" => "Choisissez comment joindre la personne, avec un numéro ou une adresse pour ce moyen.",
        "commune" => "Cette commune n'est pas connue.",
        "languages" => {
            "Une langue indiquée n'est pas reconnue : utilisez un code à deux lettres (par exemple « wo » pour le wolof)."
        }
        "needs" => "Cochez au moins un besoin.",
        "modes" => "Cochez au moins une modalité.",
        "accessibility" => "Un besoin d'accessibilité n'est pas reconnu.",
        "max_distance_km" => "Indiquez une distance en kilomètres, entre 1 et 200.",
        "urgency" => "Choisissez l'urgence.",
        "deadline" => "La date limite doit être une date à venir, au format jj/mm/aaaa.",
        "note" => "La note est trop longue ou contient des caractères refusés.",
        "consent" => "L'orientation ne peut être envoyée qu'avec le consentement de la personne.",
        "consent_method" => "Indiquez comment le consentement a été recueilli.",
        _ => "L'orientation n'a pas pu être enregistrée. Vérifiez le formulaire.",
    }
}

async fn submit(
    State(state): State<WebState>,
    headers: HeaderMap,
    form: Result<RawForm, axum::extract::rejection::RawFormRejection>,
) -> Result<Response, PageError> {
    let pairs: Vec<(String, String)> = match form {
        Ok(RawForm(bytes)) => form_urlencoded::parse(&bytes).into_owned().collect(),
        Err(_) => Vec::new(),
    };
    let d = Draft::from_pairs(pairs);
    let agent = form_agent(&state, &headers, Some(&d.csrf)).await?;
    if !agent.acts_as(&[Role::Referrer]) {
        return Err(PageError::not_found());
    }
    let mut errors: HashMap<&'static str, String> = HashMap::new();
    let commune_code = match resolve_commune(&d.commune) {
        Ok(code) => Some(code),
        Err(message) => {
            errors.insert("commune", message);
            None
        }
    };
    if d.first_name.trim().is_empty() {
        errors.insert("first_name", message_fr("first_name").into());
    }
    if d.last_name.trim().is_empty() {
        errors.insert("last_name", message_fr("last_name").into());
    }
    if d.phone.trim().is_empty() && d.email.trim().is_empty() && d.contact_preference != "via_referrer" {
        errors.insert("phone", "Indiquez un téléphone ou une adresse e-mail pour joindre la personne.".into());
    }
    if !d.consent {
        errors.insert("consent", message_fr("consent").into());
    }
    if d.needs.is_empty() {
        errors.insert("needs", message_fr("needs").into());
    }
    let deadline = d.deadline.trim();
    if !deadline.is_empty() && NaiveDate::parse_from_str(deadline, "%Y-%m-%d").is_err() {
        errors.insert("deadline", message_fr("deadline").into());
    }
    let distance = d.max_distance_km.trim().replace(',', ".");
    let distance = if distance.is_empty() {
        None
    } else {
        match distance.parse::<f64>() {
            Ok(km) if km.is_finite() => Some(km),
            _ => {
                errors.insert("max_distance_km", message_fr("max_distance_km").into());
                None
            }
        }
    };
    let mut languages = d.languages.clone();
    for other in d.other_language.split([',', ' ']).map(str::trim).filter(|l| !l.is_empty()) {
        let code = contracts::LANGUAGE_NAMES_FR
            .iter()
            .find(|(_, name)| geo::normalize_name(name) == geo::normalize_name(other))
            .map(|(code, _)| code.to_string())
            .unwrap_or_else(|| other.to_lowercase());
        languages.push(code);
    }
    let text = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    if d.preview {
        // Only what matching needs: the commune and the need must be there, nothing else.
        let mut errors: HashMap<&'static str, String> =
            errors.into_iter().filter(|(f, _)| matches!(*f, "commune" | "needs" | "max_distance_km")).collect();
        let mut preview = None;
        if errors.is_empty() {
            let body = json!({
                "commune_code": commune_code,
                "needs": d.needs,
                "modes": d.modes,
                "languages": languages,
                "accessibility": d.accessibility,
                "max_distance_km": distance,
                "urgency": text(&d.urgency),
                "limit": 5,
            });
            let reply = state.api.send(Method::POST, "/api/v1/match/preview", &agent.token, Some(&body)).await?;
            if reply.status.is_success() {
                preview = Some(preview_words(&reply.body));
            } else {
                errors.insert("form", message_fr("form").into());
            }
        }
        let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
        return Ok(form_page_with(&agent, d, errors, preview, status));
    }
    if errors.is_empty() {
        let body = json!({
            "person": {
                "first_name": text(&d.first_name),
                "last_name": text(&d.last_name),
                "phone": text(&d.phone),
                "email": text(&d.email),
                "contact_preference": text(&d.contact_preference),
                "commune_code": commune_code,
                "languages": languages,
                "accessibility": d.accessibility,
            },
            "needs": d.needs,
            "modes": d.modes,
            "max_distance_km": distance,
            "urgency": text(&d.urgency),
            "deadline": text(deadline),
            "note": text(&d.note),
            "consent": { "obtained": d.consent, "method": text(&d.consent_method) },
        });
        let key = Some(d.key.as_str()).filter(|k| !k.is_empty());
        let reply =
            state.api.send_idempotent(Method::POST, "/api/v1/referrals", &agent.token, Some(&body), key).await?;
        if reply.status.is_success() {
            let id = reply.body["id"].as_str().unwrap_or_default();
            return Ok(Redirect::to(&format!("/orientations/{id}")).into_response());
        }
        if reply.status != StatusCode::UNPROCESSABLE_ENTITY {
            return Err(reply.failure().into());
        }
        let failure = reply.failure();
        for (field, _) in failure.field_errors() {
            let f = form_field(&field);
            errors.entry(f).or_insert_with(|| message_fr(f).to_string());
        }
        if errors.is_empty() {
            errors.insert("form", message_fr("form").into());
        }
    }
    tracing::info!(fields = ?errors.keys().collect::<Vec<_>>(), "referral form refused");
    Ok(form_page(&agent, d, errors, StatusCode::UNPROCESSABLE_ENTITY))
}

// ---------------------------------------------------------------- one referral

#[derive(Deserialize)]
struct Offer {
    structure_id: String,
    structure_name: String,
    expires_at: DateTime<Utc>,
    distance_km: f64,
    #[serde(default)]
    reasons: Vec<contracts::explain::Reason>,
}

#[derive(Deserialize)]
struct Accepting {
    id: String,
    name: String,
    accepted_at: Option<DateTime<Utc>>,
    contact: Option<AcceptingContact>,
}

#[derive(Deserialize)]
struct AcceptingContact {
    phone: Option<String>,
    email: Option<String>,
    website: Option<String>,
}

#[derive(Deserialize)]
struct Person {
    first_name: String,
    last_name: String,
    phone: Option<String>,
    email: Option<String>,
    contact_preference: ContactPreference,
    commune: String,
    languages: Vec<contracts::Language>,
}

#[derive(Deserialize)]
struct Step {
    at: DateTime<Utc>,
    status: HistoryStep,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    comment: Option<String>,
}

#[derive(Deserialize)]
struct Detail {
    id: String,
    status: ReferralStatus,
    created_at: DateTime<Utc>,
    needs: Vec<Need>,
    urgency: Urgency,
    deadline: Option<NaiveDate>,
    attempts: u32,
    escalated: bool,
    waitlist_reason: Option<contracts::WaitlistReason>,
    current_offer: Option<Offer>,
    structure: Option<Accepting>,
    outcome: Option<contracts::Outcome>,
    person: Option<Person>,
    /// `purged` or `erased` once the person's data is gone.
    #[serde(default)]
    personal_data: Option<String>,
    note: Option<String>,
    #[serde(default)]
    history: Option<Vec<Step>>,
}

#[derive(Deserialize)]
struct PlaceAddress {
    street: Option<String>,
    postcode: Option<String>,
    commune: Option<String>,
}

#[derive(Deserialize)]
struct PlaceInfo {
    address: PlaceAddress,
    opening_hours: Option<String>,
}

/// OpenStreetMap opening hours, read aloud in French: days and months by name, times
/// as « 9 h 00 », public holidays as « jours fériés ». Rules are kept as they are.
pub fn hours_fr(osm: &str) -> String {
    const WORDS: [(&str, &str); 10] = [
        ("Mo", "lundi"),
        ("Tu", "mardi"),
        ("We", "mercredi"),
        ("Th", "jeudi"),
        ("Fr", "vendredi"),
        ("Sa", "samedi"),
        ("Su", "dimanche"),
        ("PH", "jours fériés"),
        ("off", "fermé"),
        ("closed", "fermé"),
    ];
    // One atom: a day, a keyword or a time (`09:00` → `9 h 00`).
    let atom = |x: &str| -> String {
        if let Some((_, fr)) = WORDS.iter().find(|(en, _)| *en == x) {
            return fr.to_string();
        }
        match x.split_once(':') {
            Some((h, m)) if !h.is_empty() && h.len() <= 2 && h.bytes().all(|b| b.is_ascii_digit()) && m.len() == 2 => {
                let h = h.trim_start_matches('0');
                format!("{} h {m}", if h.is_empty() { "0" } else { h })
            }
            _ => x.to_string(),
        }
    };
    let token = |t: &str| -> String {
        t.split(',')
            .map(|part| part.split('-').map(atom).collect::<Vec<_>>().join(" – "))
            .collect::<Vec<_>>()
            .join(", ")
    };
    osm.split(';')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|rule| rule.split_whitespace().map(token).collect::<Vec<_>>().join(" : "))
        .collect::<Vec<_>>()
        .join(" ; ")
}

pub struct TimelineItem {
    pub at: String,
    pub what: String,
    pub detail: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "orientation.html")]
struct DetailView {
    chrome: Chrome,
    csrf: String,
    id: String,
    status: String,
    created: String,
    needs: Vec<&'static str>,
    urgent: bool,
    deadline: Option<String>,
    person: Option<(String, String, String)>,
    note: Option<String>,
    offer: Option<(String, String, String)>,
    reasons: Vec<String>,
    structure: Option<(String, String, Vec<String>)>,
    /// The place's address and opening hours.
    place: Option<(String, Option<String>)>,
    waiting: Option<String>,
    outcome: Option<String>,
    timeline: Vec<TimelineItem>,
    cancellable: bool,
    cancel_error: Option<String>,
    cancel_reason: String,
    cancelled_now: bool,
}

async fn detail_page(
    state: &WebState,
    agent: &Agent,
    id: &str,
    cancel_error: Option<String>,
    cancel_reason: String,
    cancelled_now: bool,
) -> Result<Response, PageError> {
    let id = id.trim();
    if id.parse::<uuid::Uuid>().is_err() {
        return Err(PageError::not_found());
    }
    let r: Detail = state.api.get(&format!("/api/v1/referrals/{id}"), &agent.token).await?;
    let removed = crate::pages::removed_label(r.personal_data.as_deref())
        .map(|label| (label.to_string(), "—".to_string(), "—".to_string()));
    let person = r.person.as_ref().map(|p| {
        let reach = match p.contact_preference {
            ContactPreference::Phone => p.phone.clone().unwrap_or_default(),
            ContactPreference::Email => p.email.clone().unwrap_or_default(),
            ContactPreference::ViaReferrer => "par votre intermédiaire".to_string(),
        };
        (
            format!("{} {}", p.first_name, p.last_name),
            format!("{} : {}", p.contact_preference.label_fr(), reach),
            format!("{} · {}", p.commune, p.languages.iter().map(|l| l.name_fr()).collect::<Vec<_>>().join(", ")),
        )
    });
    let offer = r.current_offer.as_ref().map(|o| {
        (o.structure_name.clone(), format!("à {:.1} km", o.distance_km).replace('.', ","), paris(&o.expires_at))
    });
    let reasons = r.current_offer.as_ref().map(|o| o.reasons.iter().map(|x| x.text_fr()).collect()).unwrap_or_default();
    let structure = r.structure.as_ref().map(|s| {
        let mut contact = Vec::new();
        if let Some(c) = &s.contact {
            contact.extend(c.phone.iter().map(|p| format!("Téléphone : {p}")));
            contact.extend(c.email.iter().map(|e| format!("E-mail : {e}")));
            contact.extend(c.website.iter().map(|w| format!("Site : {w}")));
        }
        (s.name.clone(), s.accepted_at.as_ref().map(paris).unwrap_or_default(), contact)
    });
    let waiting = (r.status == ReferralStatus::Waitlisted).then(|| {
        let why = r.waitlist_reason.map(|w| w.label_fr()).unwrap_or("aucun lieu disponible");
        let escalated = if r.escalated { " La coordination du territoire a été prévenue." } else { "" };
        format!("{why} après {} proposition(s).{escalated}", r.attempts)
    });
    let timeline = r
        .history
        .unwrap_or_default()
        .into_iter()
        .map(|s| TimelineItem {
            at: crate::views::referral_time(&s.at, removed.is_some()),
            what: s.status.label_fr().to_string(),
            detail: s
                .reason
                .as_deref()
                .map(|reason| {
                    reason
                        .parse::<contracts::DeclineReason>()
                        .map(|d| d.label_fr().to_string())
                        .or_else(|_| reason.parse::<contracts::Outcome>().map(|o| o.label_fr().to_string()))
                        .unwrap_or_else(|_| reason.to_string())
                })
                .or(s.comment),
        })
        .collect();
    let cancellable = !matches!(r.status, ReferralStatus::Closed | ReferralStatus::Cancelled);
    // Where the place is and when it opens, as the directory has them.
    let place_id =
        r.structure.as_ref().map(|s| s.id.clone()).or_else(|| r.current_offer.as_ref().map(|o| o.structure_id.clone()));
    let place = match place_id {
        Some(id) => {
            let path =
                format!("/api/v1/structures/{}", form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>());
            state.api.get::<PlaceInfo>(&path, &agent.token).await.ok().map(|p| {
                let a = p.address;
                let address =
                    [a.street, Some([a.postcode, a.commune].into_iter().flatten().collect::<Vec<_>>().join(" "))]
                        .into_iter()
                        .flatten()
                        .filter(|l| !l.trim().is_empty())
                        .collect::<Vec<_>>()
                        .join(", ");
                (address, p.opening_hours.as_deref().map(hours_fr))
            })
        }
        None => None,
    };
    let page = DetailView {
        chrome: agent
            .chrome(if cancel_error.is_some() { "Erreur : orientation" } else { "Orientation" }, "orientations"),
        csrf: agent.session.csrf.clone(),
        status: status_fr(r.status).to_string(),
        created: paris(&r.created_at),
        needs: r.needs.iter().map(|n| n.label_fr()).collect(),
        urgent: r.urgency == Urgency::Urgent,
        deadline: r.deadline.map(|d| d.format("%d/%m/%Y").to_string()),
        person: person.or(removed),
        note: r.note,
        offer,
        reasons,
        structure,
        place,
        waiting,
        outcome: r.outcome.map(|o| o.label_fr().to_string()),
        timeline,
        cancellable,
        cancel_error,
        cancel_reason,
        cancelled_now,
        id: r.id,
    };
    Ok(render(StatusCode::OK, &page, true))
}

async fn show(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let agent = match referrer(&state, &headers, &format!("/orientations/{id}")).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    detail_page(&state, &agent, &id, None, String::new(), q.contains_key("annulee")).await
}

#[derive(Deserialize, Default)]
struct CancelForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

async fn cancel(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<axum::extract::Form<CancelForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = form.map(|axum::extract::Form(f)| f).unwrap_or_default();
    let agent = form_agent(&state, &headers, form.csrf.as_deref()).await?;
    if !agent.acts_as(&[Role::Referrer]) || id.parse::<uuid::Uuid>().is_err() {
        return Err(PageError::not_found());
    }
    let reason = form.reason.unwrap_or_default();
    if reason.trim().is_empty() {
        let mut response =
            detail_page(&state, &agent, &id, Some("Indiquez le motif de l'annulation.".into()), reason, false).await?;
        *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(response);
    }
    let body: Value = json!({ "reason": reason.trim() });
    let reply =
        state.api.send(Method::POST, &format!("/api/v1/referrals/{id}/cancel"), &agent.token, Some(&body)).await?;
    let message = match reply.status {
        s if s.is_success() => return Ok(Redirect::to(&format!("/orientations/{id}?annulee=1")).into_response()),
        StatusCode::CONFLICT => "Cette orientation ne peut plus être annulée : elle est déjà clôturée ou annulée.",
        StatusCode::UNPROCESSABLE_ENTITY => {
            "Le motif est trop long (500 caractères au plus) ou contient des caractères refusés."
        }
        _ => return Err(reply.failure().into()),
    };
    let mut response = detail_page(&state, &agent, &id, Some(message.into()), reason, false).await?;
    *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn communes_are_found_by_postcode_name_or_both() {
        assert_eq!(resolve_commune("16000").unwrap(), "16015");
        assert_eq!(resolve_commune("16000 Angoulême").unwrap(), "16015");
        assert_eq!(resolve_commune("angouleme").unwrap(), "16015");
        assert!(resolve_commune("").unwrap_err().contains("Indiquez"));
        assert!(resolve_commune("99999").unwrap_err().contains("99999"));
        assert!(resolve_commune("Nullepartville").unwrap_err().contains("Nullepartville"));
        // Several communes share the name: the message asks for the postcode.
        assert!(resolve_commune("Saint-Denis").unwrap_err().contains("code postal"));
    }

    #[test]
    fn opening_hours_are_read_in_french() {
        assert_eq!(
            hours_fr("Mo-Fr 09:00-12:00,14:00-17:30; Sa 09:00-12:00; PH off"),
            "lundi – vendredi : 9 h 00 – 12 h 00, 14 h 00 – 17 h 30 ; samedi : 9 h 00 – 12 h 00 ; jours fériés : fermé"
        );
        assert_eq!(hours_fr("We 00:30-02:00"), "mercredi : 0 h 30 – 2 h 00");
        assert_eq!(hours_fr(""), "");
    }

    #[test]
    fn every_api_field_lands_beside_a_form_field() {
        for (api, form) in [
            ("person.first_name", "first_name"),
            ("person.languages[2]", "languages"),
            ("consent.obtained", "consent"),
            ("person.postcode", "commune"),
            ("something_else", "form"),
        ] {
            assert_eq!(form_field(api), form);
            assert!(!message_fr(form).is_empty());
        }
    }
}
