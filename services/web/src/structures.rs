//! Adding and editing a structure by hand (`/admin/structures/nouvelle`,
//! `/admin/structures/{id}/modifier`), for admins and for coordinators within their
//! départements, as `PUT /api/v1/structures/{id}` scopes it. Editing keeps what the form
//! does not show (modes, languages, accessibility, location, fees, labels): the page
//! reads the structure, changes the fields of the form, and puts the whole record back.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, RawForm, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use contracts::{Need, Role};
use serde_json::{Value, json};

use crate::WebState;
use crate::error::PageError;
use crate::pages::{Agent, form_agent, required_as};
use crate::views::{Chrome, render};

const MANAGERS: &[Role] = &[Role::Admin, Role::Coordinator];

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/admin/structures/nouvelle", get(new_form).post(create))
        .route("/admin/structures/{id}/modifier", get(edit_form).post(update))
}

/// The form's fields, in order, with the label the error summary uses.
const FIELDS: [(&str, &str); 11] = [
    ("id", "Identifiant"),
    ("name", "Nom"),
    ("services", "Services"),
    ("street", "Adresse"),
    ("postcode", "Code postal"),
    ("commune", "Commune"),
    ("hours", "Horaires"),
    ("capacity", "Places par semaine"),
    ("accepting", "Accepte de nouvelles orientations"),
    ("phone", "Téléphone"),
    ("email", "Adresse e-mail"),
];

#[derive(Clone, Default)]
pub struct Fields {
    pub csrf: String,
    pub id: String,
    pub name: String,
    pub services: Vec<String>,
    pub street: String,
    pub postcode: String,
    pub commune: String,
    pub hours: String,
    pub capacity: String,
    pub accepting: bool,
    pub phone: String,
    pub email: String,
}

impl Fields {
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut f = Fields::default();
        for (k, v) in pairs {
            match k.as_str() {
                "csrf" => f.csrf = v,
                "id" => f.id = v,
                "name" => f.name = v,
                "services" => f.services.push(v),
                "street" => f.street = v,
                "postcode" => f.postcode = v,
                "commune" => f.commune = v,
                "hours" => f.hours = v,
                "capacity" => f.capacity = v,
                "accepting" => f.accepting = v == "oui",
                "phone" => f.phone = v,
                "email" => f.email = v,
                _ => {}
            }
        }
        f
    }

    /// From the API's record of a structure.
    fn from_record(id: &str, s: &Value) -> Self {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        Fields {
            csrf: String::new(),
            id: id.to_string(),
            name: text(&s["name"]),
            services: s["services"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            street: text(&s["address"]["street"]),
            postcode: text(&s["address"]["postcode"]),
            commune: text(&s["address"]["commune"]),
            hours: text(&s["opening_hours"]),
            capacity: s["weekly_capacity"].as_i64().map(|c| c.to_string()).unwrap_or_default(),
            accepting: s["accepting"].as_bool().unwrap_or(true),
            phone: text(&s["contact"]["phone"]),
            email: text(&s["contact"]["email"]),
        }
    }

    /// `record` (the stored structure, or `{}`) with the form's fields in place.
    fn into_request(self, mut record: Value) -> Result<Value, HashMap<&'static str, String>> {
        let mut errors = HashMap::new();
        let text = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let capacity = match self.capacity.trim() {
            "" => None,
            raw => match raw.parse::<i64>() {
                Ok(c) if (0..=10_000).contains(&c) => Some(c),
                _ => {
                    errors.insert("capacity", "Indiquez un nombre de places entre 0 et 10 000.".to_string());
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        if !record.is_object() {
            record = json!({});
        }
        for read_only in ["id", "territory", "source", "updated_at"] {
            record.as_object_mut().map(|o| o.remove(read_only));
        }
        record["name"] = json!(text(&self.name));
        record["services"] = json!(self.services);
        let mut address = record["address"].take();
        if !address.is_object() {
            address = json!({});
        }
        let postcode = text(&self.postcode);
        let commune = text(&self.commune);
        // A new postcode or commune: the API finds the commune code (and the centroid) again.
        if address["postcode"].as_str() != postcode.as_deref() || address["commune"].as_str() != commune.as_deref() {
            address.as_object_mut().map(|o| o.remove("commune_code"));
            record.as_object_mut().map(|o| o.remove("location"));
        }
        address["street"] = json!(text(&self.street));
        address["postcode"] = json!(postcode);
        address["commune"] = json!(commune);
        record["address"] = address;
        record["opening_hours"] = json!(text(&self.hours));
        if let Some(c) = capacity {
            record["weekly_capacity"] = json!(c);
        }
        record["accepting"] = json!(self.accepting);
        let mut contact = record["contact"].take();
        if !contact.is_object() {
            contact = json!({});
        }
        contact["phone"] = json!(text(&self.phone));
        contact["email"] = json!(text(&self.email));
        record["contact"] = contact;
        Ok(record)
    }
}

pub struct ServiceChoice {
    pub value: &'static str,
    pub label: &'static str,
    pub checked: bool,
}

#[derive(askama::Template)]
#[template(path = "admin_structure.html")]
struct FormView {
    chrome: Chrome,
    /// `None`: a new structure, whose identifier the form asks for.
    editing: Option<String>,
    action: String,
    f: Fields,
    services: Vec<ServiceChoice>,
    errors: HashMap<&'static str, String>,
    summary: Vec<(&'static str, String)>,
    saved: bool,
}

impl FormView {
    fn error(&self, field: &str) -> Option<&String> {
        self.errors.get(field)
    }
}

fn encoded(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

fn form_page(
    agent: &Agent,
    editing: Option<String>,
    f: Fields,
    errors: HashMap<&'static str, String>,
    saved: bool,
) -> Response {
    let summary: Vec<(&'static str, String)> =
        FIELDS.iter().filter_map(|(name, _)| errors.get(name).map(|m| (*name, m.clone()))).collect();
    let invalid = !summary.is_empty();
    let title = match (&editing, invalid) {
        (None, false) => "Ajouter une structure".to_string(),
        (None, true) => "Erreur : ajouter une structure".to_string(),
        (Some(_), false) => "Modifier une structure".to_string(),
        (Some(_), true) => "Erreur : modifier une structure".to_string(),
    };
    let action = match &editing {
        None => "/admin/structures/nouvelle".to_string(),
        Some(id) => format!("/admin/structures/{}/modifier", encoded(id)),
    };
    let services = Need::ALL
        .iter()
        .map(|n| ServiceChoice {
            value: n.slug(),
            label: n.label_fr(),
            checked: f.services.iter().any(|s| s == n.slug()),
        })
        .collect();
    let view = FormView {
        chrome: agent.chrome(&title, "structures"),
        editing,
        action,
        f: Fields { csrf: agent.session.csrf.clone(), ..f },
        services,
        errors,
        summary,
        saved,
    };
    render(if invalid { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK }, &view, true)
}

async fn new_form(State(state): State<WebState>, headers: HeaderMap) -> Result<Response, PageError> {
    let agent = match required_as(&state, &headers, "/admin/structures/nouvelle", MANAGERS).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let f = Fields { accepting: true, ..Fields::default() };
    Ok(form_page(&agent, None, f, HashMap::new(), false))
}

async fn edit_form(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: axum::extract::Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let next = format!("/admin/structures/{}/modifier", encoded(&id));
    let agent = match required_as(&state, &headers, &next, MANAGERS).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let reply =
        state.api.send(Method::GET, &format!("/api/v1/structures/{}", encoded(&id)), &agent.token, None).await?;
    if !reply.status.is_success() {
        return Err(reply.failure().into());
    }
    let f = Fields::from_record(&id, &reply.body);
    Ok(form_page(&agent, Some(id), f, HashMap::new(), query.contains_key("enregistree")))
}

fn pairs(form: Result<RawForm, axum::extract::rejection::RawFormRejection>) -> Vec<(String, String)> {
    match form {
        Ok(RawForm(bytes)) => form_urlencoded::parse(&bytes).into_owned().collect(),
        Err(_) => Vec::new(),
    }
}

async fn create(
    State(state): State<WebState>,
    headers: HeaderMap,
    form: Result<RawForm, axum::extract::rejection::RawFormRejection>,
) -> Result<Response, PageError> {
    let f = Fields::from_pairs(pairs(form));
    let agent = form_agent(&state, &headers, Some(&f.csrf)).await?;
    if !agent.acts_as(MANAGERS) {
        return Err(PageError::not_found());
    }
    let id = f.id.trim().to_string();
    if !valid_id(&id) {
        let errors = HashMap::from([(
            "id",
            "Indiquez un identifiant de 1 à 200 lettres sans accent, chiffres, « - », « _ », « . », « : » ou « @ », par exemple « mediatheque-mansle ».".to_string(),
        )]);
        return Ok(form_page(&agent, None, f, errors, false));
    }
    // PUT would replace a structure that has this identifier: refuse instead.
    let path = format!("/api/v1/structures/{}", encoded(&id));
    let existing = state.api.send(Method::GET, &path, &agent.token, None).await?;
    if existing.status != StatusCode::NOT_FOUND {
        if !existing.status.is_success() {
            return Err(existing.failure().into());
        }
        let errors =
            HashMap::from([("id", "Une structure a déjà cet identifiant : choisissez-en un autre.".to_string())]);
        return Ok(form_page(&agent, None, f, errors, false));
    }
    save(&state, &agent, None, id, f, json!({})).await
}

async fn update(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<RawForm, axum::extract::rejection::RawFormRejection>,
) -> Result<Response, PageError> {
    let f = Fields::from_pairs(pairs(form));
    let agent = form_agent(&state, &headers, Some(&f.csrf)).await?;
    if !agent.acts_as(MANAGERS) {
        return Err(PageError::not_found());
    }
    let reply =
        state.api.send(Method::GET, &format!("/api/v1/structures/{}", encoded(&id)), &agent.token, None).await?;
    if !reply.status.is_success() {
        return Err(reply.failure().into());
    }
    save(&state, &agent, Some(id.clone()), id, f, reply.body).await
}

/// Puts the record; the API's 422 becomes French errors beside the fields.
async fn save(
    state: &WebState,
    agent: &Agent,
    editing: Option<String>,
    id: String,
    f: Fields,
    record: Value,
) -> Result<Response, PageError> {
    let keep = Fields { id: id.clone(), ..f.clone() };
    let body = match f.into_request(record) {
        Ok(body) => body,
        Err(errors) => return Ok(form_page(agent, editing, keep, errors, false)),
    };
    let path = format!("/api/v1/structures/{}", encoded(&id));
    let reply = state.api.send(Method::PUT, &path, &agent.token, Some(&body)).await?;
    if reply.status.is_success() {
        return Ok(Redirect::to(&format!("/admin/structures/{}/modifier?enregistree=1", encoded(&id))).into_response());
    }
    if reply.status != StatusCode::UNPROCESSABLE_ENTITY {
        return Err(reply.failure().into());
    }
    let mut errors = HashMap::new();
    for (field, _) in reply.failure().field_errors() {
        let (name, message) = field_message(&field);
        errors.entry(name).or_insert_with(|| message.to_string());
    }
    if errors.is_empty() {
        errors.insert("name", "La structure n'a pas pu être enregistrée. Vérifiez le formulaire.".to_string());
    }
    Ok(form_page(agent, editing, keep, errors, false))
}

/// The API's field path, as the form's field and a French message.
fn field_message(api: &str) -> (&'static str, &'static str) {
    let api = api.split('[').next().unwrap_or(api);
    match api {
        "name" => ("name", "Indiquez le nom de la structure (300 caractères au plus)."),
        "services" => ("services", "Cochez au moins un service."),
        "address.street" => ("street", "L'adresse fait 300 caractères au plus."),
        "address.postcode" => ("postcode", "Indiquez un code postal à 5 chiffres, par exemple 16000."),
        "address.commune" | "address.commune_code" | "address" | "location" => {
            ("commune", "Aiguillage ne trouve pas cette commune : vérifiez le code postal et le nom de la commune.")
        }
        "opening_hours" => (
            "hours",
            "Écrivez les horaires au format OpenStreetMap, par exemple « Mo-Fr 09:00-12:00,14:00-17:00; PH off ».",
        ),
        "weekly_capacity" => ("capacity", "Indiquez un nombre de places entre 0 et 10 000."),
        "contact.phone" => ("phone", "Indiquez un numéro de téléphone français, par exemple 05 45 00 00 00."),
        "contact.email" => ("email", "Indiquez une adresse e-mail valide, par exemple accueil@exemple.fr."),
        _ => ("name", "La structure n'a pas pu être enregistrée. Vérifiez le formulaire."),
    }
}

/// What the API accepts as a structure's `{id}`.
fn valid_id(id: &str) -> bool {
    (1..=200).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:@-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editing_keeps_what_the_form_does_not_show_and_drops_read_only_fields() {
        let stored = json!({
            "id": "lieu-1", "territory": "16", "source": "mednum", "updated_at": "2026-01-01T00:00:00Z",
            "name": "Ancien nom", "services": ["aide_demarches_administratives"], "languages": ["fr", "ar"],
            "modes": ["individual"], "accessibility": ["motor"], "location": {"lat": 45.6, "lon": 0.15},
            "address": {"street": "1 rue", "postcode": "16000", "commune": "Angoulême", "commune_code": "16015"},
            "contact": {"phone": "0545000000", "website": "https://example.org"},
            "weekly_capacity": 5, "accepting": true, "fees": ["gratuit"],
        });
        let mut f = Fields::from_record("lieu-1", &stored);
        f.name = "Nouveau nom".into();
        f.capacity = "8".into();
        let body = f.into_request(stored.clone()).unwrap();
        assert_eq!(body["name"], "Nouveau nom");
        assert_eq!(body["weekly_capacity"], 8);
        assert_eq!(body["languages"], json!(["fr", "ar"]));
        assert_eq!(body["accessibility"], json!(["motor"]));
        assert_eq!(body["location"], stored["location"], "same commune: same location");
        assert_eq!(body["address"]["commune_code"], "16015");
        assert_eq!(body["contact"]["website"], "https://example.org");
        assert_eq!(body["fees"], json!(["gratuit"]));
        for read_only in ["id", "territory", "source", "updated_at"] {
            assert!(body.get(read_only).is_none(), "{read_only}");
        }
    }

    #[test]
    fn a_new_commune_lets_the_api_place_the_structure_again() {
        let stored = json!({"address": {"postcode": "16000", "commune": "Angoulême", "commune_code": "16015"}, "location": {"lat": 45.6, "lon": 0.15}});
        let mut f = Fields::from_record("lieu-1", &stored);
        f.postcode = "16230".into();
        f.commune = "Mansle".into();
        let body = f.into_request(stored).unwrap();
        assert!(body["address"].get("commune_code").is_none());
        assert!(body.get("location").is_none());
        assert_eq!(body["address"]["postcode"], "16230");
    }

    #[test]
    fn a_capacity_that_is_not_a_number_of_places_is_refused_before_the_api() {
        for bad in ["-1", "10001", "huit", "1.5"] {
            let f = Fields { capacity: bad.into(), ..Fields::default() };
            assert!(f.into_request(json!({})).unwrap_err().contains_key("capacity"), "{bad}");
        }
        let f = Fields { capacity: " 12 ".into(), ..Fields::default() };
        assert_eq!(f.into_request(json!({})).unwrap()["weekly_capacity"], 12);
    }

    #[test]
    fn identifiers_are_what_the_api_accepts() {
        assert!(valid_id("mediatheque-mansle") && valid_id("a:b@c.d_e"));
        assert!(!valid_id("") && !valid_id("médiathèque") && !valid_id("a b") && !valid_id(&"a".repeat(201)));
    }
}
