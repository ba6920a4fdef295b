//! `/orientations/nouvelle`: the referral form. It can first show where the referral
//! could go (the matching preview, with no personal data), then sends it; the API's
//! refusals come back in French beside each field.

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::NaiveDate;
use contracts::api::{ConsentRequest, PersonRequest, PreviewRequest, ReferralRequest};
use contracts::matching::AssessmentView;
use contracts::{Accessibility, ContactPreference, Need, ReferralMode, Urgency};

use crate::error::PageError;
use crate::extract::{Agent, CsrfForm, Referrers, SignedIn};
use crate::form::text;
use crate::session::random_token;
use crate::views::{Chrome, render};

/// The languages offered as boxes to tick, the most spoken by people referred in France.
const LANGUAGES: [&str; 10] = ["fr", "en", "ar", "es", "pt", "tr", "ru", "uk", "ro", "fa"];

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

pub async fn form(referrer: SignedIn<Referrers>) -> Response {
    form_page(&referrer, Draft::default(), HashMap::new(), StatusCode::OK)
}

/// The person's commune, as [`crate::form::commune`] finds it.
fn resolve_commune(raw: &str) -> Result<String, String> {
    crate::form::commune(raw, "Indiquez la commune de la personne : son nom ou son code postal.")
}

/// "3 lieux possibles à moins de 30 km : A (2,1 km), B …", from `match/preview`.
fn preview_words(assessment: &AssessmentView) -> String {
    let radius = assessment.max_distance_km;
    if assessment.candidates.is_empty() {
        return format!(
            "Aucun lieu possible à moins de {radius} km pour ces besoins cette semaine : l'orientation attendrait une place, et la coordination en serait prévenue."
        );
    }
    let names: Vec<String> = assessment
        .candidates
        .iter()
        .map(|c| format!("{} ({} km)", c.name, format!("{:.1}", c.distance_km).replace('.', ",")))
        .collect();
    let n = assessment.candidates.len();
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

/// What the form asks before anything is sent; every bad field at once.
fn check(d: &Draft) -> (Option<String>, HashMap<&'static str, String>) {
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
    if distance(d).is_err() {
        errors.insert("max_distance_km", message_fr("max_distance_km").into());
    }
    (commune_code, errors)
}

/// The distance typed, in km (a decimal comma is fine); empty: the API's default,
/// `AIGUILLAGE_MAX_DISTANCE_KM`.
fn distance(d: &Draft) -> Result<Option<f64>, ()> {
    let raw = d.max_distance_km.trim().replace(',', ".");
    if raw.is_empty() {
        return Ok(None);
    }
    match raw.parse::<f64>() {
        Ok(km) if km.is_finite() => Ok(Some(km)),
        _ => Err(()),
    }
}

/// The languages ticked, and those typed by name or code.
fn languages(d: &Draft) -> Vec<String> {
    let mut languages = d.languages.clone();
    for other in d.other_language.split([',', ' ']).map(str::trim).filter(|l| !l.is_empty()) {
        let code = contracts::LANGUAGE_NAMES_FR
            .iter()
            .find(|(_, name)| geo::normalize_name(name) == geo::normalize_name(other))
            .map(|(code, _)| code.to_string())
            .unwrap_or_else(|| other.to_lowercase());
        languages.push(code);
    }
    languages
}

fn referral_request(d: &Draft, commune_code: Option<String>) -> ReferralRequest {
    ReferralRequest {
        person: Some(PersonRequest {
            first_name: text(&d.first_name),
            last_name: text(&d.last_name),
            phone: text(&d.phone),
            email: text(&d.email),
            contact_preference: text(&d.contact_preference),
            commune_code,
            postcode: None,
            languages: Some(languages(d)),
            accessibility: Some(d.accessibility.clone()),
        }),
        needs: Some(d.needs.clone()),
        modes: Some(d.modes.clone()),
        max_distance_km: distance(d).ok().flatten(),
        urgency: text(&d.urgency),
        deadline: text(&d.deadline),
        note: text(&d.note),
        consent: Some(ConsentRequest { obtained: Some(d.consent), method: text(&d.consent_method), at: None }),
    }
}

/// Where the referral could go: only what matching needs, the commune and the needs
/// must be there, nothing else.
async fn preview(
    referrer: &Agent,
    d: Draft,
    commune_code: Option<String>,
    errors: HashMap<&'static str, String>,
) -> Result<Response, PageError> {
    let mut errors: HashMap<&'static str, String> =
        errors.into_iter().filter(|(f, _)| matches!(*f, "commune" | "needs" | "max_distance_km")).collect();
    let mut words = None;
    if errors.is_empty() {
        let body = PreviewRequest {
            commune_code,
            postcode: None,
            needs: Some(d.needs.clone()),
            modes: Some(d.modes.clone()),
            languages: Some(languages(&d)),
            accessibility: Some(d.accessibility.clone()),
            max_distance_km: distance(&d).ok().flatten(),
            urgency: text(&d.urgency),
            limit: Some(5),
        };
        match referrer.api.preview(&body).await {
            Ok(assessment) => words = Some(preview_words(&assessment)),
            // Refused: the form says it could not be read, as a refused submission does.
            Err(err) if err.status().is_some() => {
                errors.insert("form", message_fr("form").into());
            }
            Err(err) => return Err(err.into()),
        }
    }
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok(form_page_with(referrer, d, errors, words, status))
}

pub async fn submit(
    referrer: SignedIn<Referrers>,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let d = Draft::from_pairs(pairs);
    let (commune_code, mut errors) = check(&d);
    if d.preview {
        return preview(&referrer, d, commune_code, errors).await;
    }
    if errors.is_empty() {
        let key = Some(d.key.as_str()).filter(|k| !k.is_empty());
        match referrer.api.submit(&referral_request(&d, commune_code), key).await {
            Ok(created) => return Ok(Redirect::to(&format!("/orientations/{}", created.id)).into_response()),
            Err(failure) if failure.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => {
                for e in failure.field_errors() {
                    let f = form_field(&e.field);
                    errors.entry(f).or_insert_with(|| message_fr(f).to_string());
                }
                if errors.is_empty() {
                    errors.insert("form", message_fr("form").into());
                }
            }
            Err(failure) => return Err(failure.into()),
        }
    }
    tracing::info!(fields = ?errors.keys().collect::<Vec<_>>(), "referral form refused");
    Ok(form_page(&referrer, d, errors, StatusCode::UNPROCESSABLE_ENTITY))
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
