//! Adding and editing a structure by hand (`/admin/structures/nouvelle`,
//! `/admin/structures/{id}/modifier`), for admins and for coordinators within their
//! départements, as `PUT /api/v1/structures/{id}` scopes it. Editing keeps what the form
//! does not show (modes, languages, accessibility, location, fees, labels): the page
//! reads the structure, changes the fields of the form, and puts the whole record back.
//! Every field the record holds is read as the API sent it: an answer without one is an
//! error, never a guess (an absent `accepting` must not reopen a closed place).

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use contracts::api::{AddressRequest, StructureContactRequest, StructureRequest};
use contracts::directory::StructureView;
use contracts::{Need, StructureId};

use crate::error::PageError;
use crate::extract::{Agent, Coordinators, CsrfForm, PathId, SignedIn};
use crate::form::text;
use crate::views::{Chrome, render};

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

/// What the form holds, as typed: it comes back with the errors.
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
    fn from_record(s: &StructureView) -> Self {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        Fields {
            csrf: String::new(),
            id: s.id.to_string(),
            name: s.name.clone(),
            services: s.services.iter().map(|n| n.slug().to_string()).collect(),
            street: text(&s.address.street),
            postcode: text(&s.address.postcode),
            commune: text(&s.address.commune),
            hours: text(&s.opening_hours),
            capacity: s.weekly_capacity.to_string(),
            accepting: s.accepting,
            phone: text(&s.contact.phone),
            email: text(&s.contact.email),
        }
    }

    /// `record` (the stored structure, or nothing for a new one) with the form's fields
    /// in place.
    fn into_request(self, mut record: StructureRequest) -> Result<StructureRequest, HashMap<&'static str, String>> {
        let capacity = match self.capacity.trim() {
            "" => None,
            raw => match raw.parse::<i64>() {
                Ok(c) if (0..=10_000).contains(&c) => Some(c),
                _ => {
                    let message = "Indiquez un nombre de places entre 0 et 10 000.".to_string();
                    return Err(HashMap::from([("capacity", message)]));
                }
            },
        };
        record.name = text(&self.name);
        record.services = Some(self.services);
        let mut address = record.address.take().unwrap_or_default();
        let (postcode, commune) = (text(&self.postcode), text(&self.commune));
        // A new postcode or commune: the API finds the commune code (and the centroid) again.
        if address.postcode != postcode || address.commune != commune {
            address.commune_code = None;
            record.location = None;
        }
        record.address = Some(AddressRequest { street: text(&self.street), postcode, commune, ..address });
        record.opening_hours = text(&self.hours);
        if capacity.is_some() {
            record.weekly_capacity = capacity;
        }
        record.accepting = Some(self.accepting);
        let contact = record.contact.take().unwrap_or_default();
        record.contact =
            Some(StructureContactRequest { phone: text(&self.phone), email: text(&self.email), ..contact });
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

fn encoded(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

pub async fn new(coordinator: SignedIn<Coordinators>) -> Response {
    let f = Fields { accepting: true, ..Fields::default() };
    form_page(&coordinator, None, f, HashMap::new(), false)
}

pub async fn edit(
    coordinator: SignedIn<Coordinators>,
    PathId(id): PathId<StructureId>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let s = coordinator.api.structure(&id).await?;
    let f = Fields::from_record(&s);
    Ok(form_page(&coordinator, Some(id.to_string()), f, HashMap::new(), query.contains_key("enregistree")))
}

pub async fn create(
    coordinator: SignedIn<Coordinators>,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let f = Fields::from_pairs(pairs);
    let id = f.id.trim().to_string();
    let Some(structure_id) = valid_id(&id) else {
        let errors = HashMap::from([(
            "id",
            "Indiquez un identifiant de 1 à 200 lettres sans accent, chiffres, « - », « _ », « . », « : » ou « @ », par exemple « mediatheque-mansle ».".to_string(),
        )]);
        return Ok(form_page(&coordinator, None, f, errors, false));
    };
    // PUT would replace a structure that has this identifier: refuse instead.
    match coordinator.api.structure(&structure_id).await {
        Err(err) if err.status() == Some(StatusCode::NOT_FOUND) => {}
        Err(err) => return Err(err.into()),
        Ok(_) => {
            let errors =
                HashMap::from([("id", "Une structure a déjà cet identifiant : choisissez-en un autre.".to_string())]);
            return Ok(form_page(&coordinator, None, f, errors, false));
        }
    }
    save(&coordinator, None, structure_id, f, StructureRequest::default()).await
}

pub async fn update(
    coordinator: SignedIn<Coordinators>,
    PathId(id): PathId<StructureId>,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let f = Fields::from_pairs(pairs);
    let stored = coordinator.api.structure(&id).await?;
    save(&coordinator, Some(id.to_string()), id, f, StructureRequest::from(stored)).await
}

/// Puts the record; the API's 422 becomes French errors beside the fields.
async fn save(
    agent: &Agent,
    editing: Option<String>,
    id: StructureId,
    f: Fields,
    record: StructureRequest,
) -> Result<Response, PageError> {
    let keep = Fields { id: id.to_string(), ..f.clone() };
    let body = match f.into_request(record) {
        Ok(body) => body,
        Err(errors) => return Ok(form_page(agent, editing, keep, errors, false)),
    };
    let failure = match agent.api.put_structure(&id, &body).await {
        Ok(_) => {
            let saved = format!("/admin/structures/{}/modifier?enregistree=1", encoded(id.as_str()));
            return Ok(Redirect::to(&saved).into_response());
        }
        Err(failure) if failure.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => failure,
        Err(failure) => return Err(failure.into()),
    };
    let mut errors = HashMap::new();
    for e in failure.field_errors() {
        let (name, message) = field_message(&e.field);
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

/// What the API accepts as a new structure's `{id}`.
fn valid_id(id: &str) -> Option<StructureId> {
    let allowed =
        (1..=200).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:@-".contains(&b));
    allowed.then(|| id.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use contracts::events::{Address, Point, Structure, StructureContact};
    use contracts::{Accessibility, Language, StructureMode};

    use super::*;

    fn stored(accepting: bool) -> StructureView {
        StructureView::from(Structure {
            id: "lieu-1".parse().unwrap(),
            name: "Ancien nom".into(),
            services: vec![Need::AideDemarchesAdministratives],
            modes: vec![StructureMode::Individual],
            languages: vec![Language::french(), "ar".parse().unwrap()],
            other_languages: false,
            accessibility: vec![Accessibility::Motor],
            address: Address {
                street: Some("1 rue".into()),
                postcode: Some("16000".into()),
                commune: Some("Angoulême".into()),
                commune_code: Some("16015".into()),
            },
            location: Point { lat: 45.6, lon: 0.15 },
            territory: "16".parse().unwrap(),
            opening_hours: None,
            weekly_capacity: 5,
            accepting,
            contact: StructureContact {
                phone: Some("0545000000".into()),
                email: None,
                website: Some("https://example.org".into()),
            },
            source: Some("mednum".into()),
            fees: vec!["gratuit".into()],
            labels: vec![],
            siret: None,
            updated_at: chrono::Utc::now(),
        })
    }

    #[test]
    fn editing_keeps_what_the_form_does_not_show() {
        let record = stored(true);
        let mut f = Fields::from_record(&record);
        f.name = "Nouveau nom".into();
        f.capacity = "8".into();
        let body = f.into_request(StructureRequest::from(record)).unwrap();
        assert_eq!(body.name.as_deref(), Some("Nouveau nom"));
        assert_eq!(body.weekly_capacity, Some(8));
        assert_eq!(body.languages, Some(vec!["fr".to_string(), "ar".to_string()]));
        assert_eq!(body.accessibility, Some(vec!["motor".to_string()]));
        assert!(body.location.is_some(), "same commune: same location");
        assert_eq!(body.address.as_ref().unwrap().commune_code.as_deref(), Some("16015"));
        assert_eq!(body.contact.as_ref().unwrap().website.as_deref(), Some("https://example.org"));
        assert_eq!(body.fees, Some(vec!["gratuit".to_string()]));
    }

    #[test]
    fn a_closed_place_stays_closed_when_its_form_is_saved_unchanged() {
        let record = stored(false);
        let f = Fields::from_record(&record);
        assert!(!f.accepting);
        let body = f.into_request(StructureRequest::from(record)).unwrap();
        assert_eq!(body.accepting, Some(false));
    }

    #[test]
    fn a_new_commune_lets_the_api_place_the_structure_again() {
        let record = stored(true);
        let mut f = Fields::from_record(&record);
        f.postcode = "16230".into();
        f.commune = "Mansle".into();
        let body = f.into_request(StructureRequest::from(record)).unwrap();
        let address = body.address.unwrap();
        assert_eq!(address.commune_code, None);
        assert!(body.location.is_none());
        assert_eq!(address.postcode.as_deref(), Some("16230"));
    }

    #[test]
    fn a_capacity_that_is_not_a_number_of_places_is_refused_before_the_api() {
        for bad in ["-1", "10001", "huit", "1.5"] {
            let f = Fields { capacity: bad.into(), ..Fields::default() };
            assert!(f.into_request(StructureRequest::default()).unwrap_err().contains_key("capacity"), "{bad}");
        }
        let f = Fields { capacity: " 12 ".into(), ..Fields::default() };
        assert_eq!(f.into_request(StructureRequest::default()).unwrap().weekly_capacity, Some(12));
    }

    #[test]
    fn identifiers_are_what_the_api_accepts() {
        assert!(valid_id("mediatheque-mansle").is_some() && valid_id("a:b@c.d_e").is_some());
        assert!(valid_id("").is_none() && valid_id("médiathèque").is_none() && valid_id("a b").is_none());
        assert!(valid_id(&"a".repeat(201)).is_none());
    }
}
