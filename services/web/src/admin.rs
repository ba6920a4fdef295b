//! Managing access (`/admin/comptes`): the membership requests waiting for a decision
//! (Valider, Refuser) and invitations by e-mail (Inviter). For admins, and for
//! coordinators within their départements, as the API scopes it.

use std::collections::HashMap;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use contracts::Role;
use contracts::accounts::{InvitationView, Page, PlaceKind, Places, RequestView};
use serde::Deserialize;
use serde_json::json;

use crate::WebState;
use crate::error::PageError;
use crate::pages::{Agent, form_agent, required_as, role_label};
use crate::views::{Chrome, render};

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/admin/organisations", get(organisations).post(create_organisation))
        .route("/admin/structures", get(structures))
        .route("/admin/comptes", get(accounts))
        .route("/admin/comptes/demandes/{id}", post(decide))
        .route("/admin/comptes/invitations", post(invite))
}

/// Who manages access: admins, and coordinators within their départements.
const MANAGERS: &[Role] = &[Role::Admin, Role::Coordinator];

pub struct RequestLine {
    pub id: String,
    pub who: String,
    pub what: String,
    pub message: Option<String>,
}

pub struct PlaceOption {
    pub value: String,
    pub text: String,
}

#[derive(askama::Template)]
#[template(path = "admin_comptes.html")]
struct AccountsView {
    chrome: Chrome,
    csrf: String,
    done: Option<String>,
    requests: Vec<RequestLine>,
    invitations: Vec<(String, String, String)>,
    places: Vec<PlaceOption>,
    query: String,
    email: String,
    place: String,
    errors: HashMap<&'static str, String>,
}

impl AccountsView {
    fn error(&self, field: &str) -> Option<&String> {
        self.errors.get(field)
    }
}

#[derive(Deserialize, Default)]
struct InviteForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    place: Option<String>,
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    fait: Option<String>,
}

async fn page(
    state: &WebState,
    agent: &Agent,
    form: InviteForm,
    errors: HashMap<&'static str, String>,
) -> Result<Response, PageError> {
    let requests: Page<RequestView> = state.api.get("/api/v1/accounts/requests?limit=200", &agent.token).await?;
    let invitations: Page<InvitationView> =
        state.api.get("/api/v1/accounts/invitations?limit=200", &agent.token).await?;
    let query = form.q.clone().unwrap_or_default().trim().to_string();
    let mut places = vec![];
    if query.chars().count() >= 2 {
        let q: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
        if let Ok(p) = state.api.get::<Places>(&format!("/api/v1/accounts/places?q={q}&limit=50"), &agent.token).await {
            places = p.items;
        }
    }
    let mut options: Vec<PlaceOption> = Vec::new();
    if agent.active.as_ref().is_some_and(|m| m.role == Role::Admin) {
        options.push(PlaceOption { value: "admin".into(), text: "Administration de la plateforme".into() });
        options.push(PlaceOption { value: "dpo".into(), text: "Protection des données (journal des accès)".into() });
    }
    for t in agent.active.as_ref().map(|m| m.territories.clone()).unwrap_or_default() {
        options.push(PlaceOption {
            value: format!("coordinator:{}", &*t),
            text: format!("Coordination du département {}", &*t),
        });
    }
    for p in &places {
        let (kind, role) = match p.kind {
            PlaceKind::Organisation => ("organisation", "Prescription"),
            PlaceKind::Structure => ("structure", "Médiation"),
        };
        options.push(PlaceOption {
            value: format!("{kind}:{}", p.id),
            text: format!("{role} — {} ({})", p.name, &*p.territory),
        });
    }
    let done = match form.fait.as_deref() {
        Some("valide") => Some("La demande est validée : l'agent a son accès dès sa prochaine page.".to_string()),
        Some("refuse") => Some("La demande est refusée.".to_string()),
        Some("invite") => Some(
            "L'invitation est enregistrée : l'accès sera donné à la première connexion de cette adresse.".to_string(),
        ),
        _ => None,
    };
    let title = if errors.is_empty() { "Comptes et accès" } else { "Erreur : comptes et accès" };
    let view = AccountsView {
        chrome: agent.chrome(title, "comptes"),
        csrf: agent.session.csrf.clone(),
        done,
        requests: requests
            .items
            .iter()
            .map(|r| RequestLine {
                id: r.id.to_string(),
                who: r
                    .account
                    .as_ref()
                    .map(|a| {
                        let name = [&a.given_name, &a.usual_name]
                            .into_iter()
                            .flatten()
                            .map(|n| n.expose().as_str())
                            .collect::<Vec<_>>()
                            .join(" ");
                        format!("{name} ({})", a.email.expose())
                    })
                    .unwrap_or_default(),
                what: format!("{} — {}", role_label(r.role), r.label),
                message: r.message.as_ref().map(|m| m.expose().clone()),
            })
            .collect(),
        invitations: invitations
            .items
            .iter()
            .filter(|i| i.accepted_at.is_none())
            .map(|i| {
                (
                    i.email.expose().clone(),
                    format!("{} — {}", role_label(i.role), i.label),
                    i.created_at.with_timezone(&chrono_tz::Europe::Paris).format("%d/%m/%Y").to_string(),
                )
            })
            .collect(),
        places: options,
        query,
        email: form.email.unwrap_or_default(),
        place: form.place.unwrap_or_default(),
        errors: errors.clone(),
    };
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok(render(status, &view, true))
}

async fn accounts(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<InviteForm>,
) -> Result<Response, PageError> {
    let agent = match required_as(&state, &headers, "/admin/comptes", MANAGERS).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    page(&state, &agent, q, HashMap::new()).await
}

#[derive(Deserialize, Default)]
struct DecisionForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    decision: Option<String>,
}

async fn decide(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let agent = form_agent(&state, &headers, form.csrf.as_deref()).await?;
    if !agent.acts_as(MANAGERS) || id.parse::<uuid::Uuid>().is_err() {
        return Err(PageError::not_found());
    }
    let (path, done) = match form.decision.as_deref() {
        Some("valider") => ("approve", "valide"),
        Some("refuser") => ("refuse", "refuse"),
        _ => return Err(PageError::forbidden()),
    };
    let reply =
        state.api.send(Method::POST, &format!("/api/v1/accounts/requests/{id}/{path}"), &agent.token, None).await?;
    match reply.status {
        s if s.is_success() => Ok(Redirect::to(&format!("/admin/comptes?fait={done}")).into_response()),
        StatusCode::CONFLICT => Err(PageError {
            status: StatusCode::CONFLICT,
            heading: "Demande déjà traitée",
            message: "Quelqu'un d'autre a déjà validé ou refusé cette demande.".into(),
            reference: None,
            back_to_sign_in: false,
        }),
        _ => Err(reply.failure().into()),
    }
}

async fn invite(
    State(state): State<WebState>,
    headers: HeaderMap,
    form: Result<Form<InviteForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let agent = form_agent(&state, &headers, form.csrf.as_deref()).await?;
    if !agent.acts_as(MANAGERS) {
        return Err(PageError::not_found());
    }
    let email = form.email.as_deref().map(str::trim).unwrap_or_default().to_string();
    let place = form.place.as_deref().map(str::trim).unwrap_or_default().to_string();
    let mut errors = HashMap::new();
    if !contracts::email::is_email_address(&email) {
        errors.insert("email", "Indiquez une adresse e-mail valide, par exemple prenom.nom@exemple.fr.".to_string());
    }
    let membership = match place.split_once(':') {
        _ if place == "admin" => Some(json!({ "role": "admin" })),
        _ if place == "dpo" => Some(json!({ "role": "dpo" })),
        Some(("coordinator", t)) => Some(json!({ "role": "coordinator", "territories": [t] })),
        Some(("organisation", id)) => Some(json!({ "role": "referrer", "organisation_id": id })),
        Some(("structure", id)) => Some(json!({ "role": "mediator", "structure_id": id })),
        _ => None,
    };
    if membership.is_none() {
        errors.insert("place", "Choisissez l'accès à donner.".to_string());
    }
    if errors.is_empty() {
        let body = json!({ "email": email, "membership": membership });
        let reply = state.api.send(Method::POST, "/api/v1/accounts/invitations", &agent.token, Some(&body)).await?;
        if reply.status.is_success() {
            return Ok(Redirect::to("/admin/comptes?fait=invite").into_response());
        }
        match reply.status {
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
                errors.insert(
                    "place",
                    "Cet accès ne peut pas être donné depuis votre espace, ou il l'est déjà.".to_string(),
                );
            }
            _ => return Err(reply.failure().into()),
        }
    }
    page(&state, &agent, InviteForm { email: Some(email), place: Some(place), ..form }, errors).await
}

// ---------------------------------------------------------------- organisations

#[derive(Deserialize)]
struct Organisation {
    name: String,
    kind: contracts::OrganisationKind,
    territory: String,
    #[serde(default)]
    siret: Option<String>,
}

#[derive(Deserialize)]
struct OrganisationPage {
    items: Vec<Organisation>,
    #[serde(default)]
    next_cursor: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "admin_organisations.html")]
struct OrganisationsView {
    chrome: Chrome,
    csrf: String,
    rows: Vec<(String, String, String, String)>,
    next: Option<String>,
    done: bool,
    name: String,
    kind: String,
    territory: String,
    siret: String,
    kinds: Vec<(&'static str, &'static str)>,
    errors: HashMap<&'static str, String>,
}

impl OrganisationsView {
    fn error(&self, field: &str) -> Option<&String> {
        self.errors.get(field)
    }
}

#[derive(Deserialize, Default)]
struct OrganisationForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    territory: Option<String>,
    #[serde(default)]
    siret: Option<String>,
    #[serde(default)]
    apres: Option<String>,
    #[serde(default)]
    creee: Option<String>,
}

async fn organisations_page(
    state: &WebState,
    agent: &Agent,
    form: OrganisationForm,
    errors: HashMap<&'static str, String>,
) -> Result<Response, PageError> {
    let cursor = form.apres.as_deref().filter(|c| c.bytes().all(|b| b.is_ascii_digit()) && !c.is_empty());
    let path = match cursor {
        Some(c) => format!("/api/v1/organisations?limit=100&cursor={c}"),
        None => "/api/v1/organisations?limit=100".to_string(),
    };
    let page: OrganisationPage = state.api.get(&path, &agent.token).await?;
    let invalid = !errors.is_empty();
    let view = OrganisationsView {
        chrome: agent.chrome(if invalid { "Erreur : organisations" } else { "Organisations" }, "organisations"),
        csrf: agent.session.csrf.clone(),
        rows: page
            .items
            .into_iter()
            .map(|o| (o.name, o.kind.label_fr().to_string(), o.territory, o.siret.unwrap_or_default()))
            .collect(),
        next: page.next_cursor.map(|c| format!("/admin/organisations?apres={c}")),
        done: form.creee.is_some(),
        name: form.name.unwrap_or_default(),
        kind: form.kind.unwrap_or_default(),
        territory: form.territory.unwrap_or_default(),
        siret: form.siret.unwrap_or_default(),
        kinds: contracts::OrganisationKind::ALL.iter().map(|k| (k.slug(), k.label_fr())).collect(),
        errors,
    };
    Ok(render(if invalid { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK }, &view, true))
}

async fn organisations(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<OrganisationForm>,
) -> Result<Response, PageError> {
    let agent = match required_as(&state, &headers, "/admin/organisations", &[Role::Admin]).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    organisations_page(&state, &agent, q, HashMap::new()).await
}

async fn create_organisation(
    State(state): State<WebState>,
    headers: HeaderMap,
    form: Result<Form<OrganisationForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let agent = form_agent(&state, &headers, form.csrf.as_deref()).await?;
    if !agent.acts_as(&[Role::Admin]) {
        return Err(PageError::not_found());
    }
    let text = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let body = json!({
        "name": text(&form.name),
        "kind": text(&form.kind),
        "territory": text(&form.territory),
        "siret": text(&form.siret).map(|s| s.replace(' ', "")),
    });
    let reply = state.api.send(Method::POST, "/api/v1/organisations", &agent.token, Some(&body)).await?;
    if reply.status.is_success() {
        return Ok(Redirect::to("/admin/organisations?creee=1").into_response());
    }
    if reply.status != StatusCode::UNPROCESSABLE_ENTITY {
        return Err(reply.failure().into());
    }
    let failure = reply.failure();
    let mut errors = HashMap::new();
    for (field, _) in failure.field_errors() {
        let (f, message) = match field.as_str() {
            "name" => ("name", "Indiquez le nom de l'organisation (300 caractères au plus)."),
            "kind" => ("kind", "Choisissez le type d'organisation."),
            "territory" => ("territory", "Indiquez un code de département, par exemple 16, 2A ou 971."),
            "siret" => ("siret", "Un SIRET a 14 chiffres."),
            _ => ("name", "L'organisation n'a pas pu être créée."),
        };
        errors.entry(f).or_insert_with(|| message.to_string());
    }
    organisations_page(&state, &agent, OrganisationForm { creee: None, apres: None, ..form }, errors).await
}

// ---------------------------------------------------------------- structures

#[derive(Deserialize)]
struct StructureRow {
    id: String,
    name: String,
    territory: String,
    weekly_capacity: u32,
    accepting: bool,
    #[serde(default)]
    address: Option<StructureAddress>,
}

#[derive(Deserialize)]
struct StructureAddress {
    commune: Option<String>,
}

#[derive(Deserialize)]
struct StructurePage {
    items: Vec<StructureRow>,
    #[serde(default)]
    next_cursor: Option<String>,
}

pub struct StructureLine {
    pub href: String,
    /// Its form (`/admin/structures/{id}/modifier`).
    pub edit: String,
    pub name: String,
    pub commune: String,
    pub territory: String,
    pub capacity: String,
}

#[derive(askama::Template)]
#[template(path = "admin_structures.html")]
struct StructuresView {
    chrome: Chrome,
    territory: String,
    rows: Vec<StructureLine>,
    next: Option<String>,
    error: Option<String>,
}

async fn structures(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let agent = match required_as(&state, &headers, "/admin/structures", MANAGERS).await? {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let territory = q.get("departement").map(|t| t.trim().to_string()).unwrap_or_default();
    let mut error = None;
    let mut path = "/api/v1/structures?limit=100".to_string();
    if !territory.is_empty() {
        if territory.parse::<contracts::Territory>().is_ok() {
            path.push_str(&format!("&territory={territory}"));
        } else {
            error = Some("Indiquez un code de département, par exemple 16, 2A ou 971.".to_string());
        }
    }
    if let Some(c) = q.get("apres").filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit())) {
        path.push_str(&format!("&cursor={c}"));
    }
    let page: StructurePage = state.api.get(&path, &agent.token).await?;
    let rows = page
        .items
        .into_iter()
        .map(|s| StructureLine {
            href: format!(
                "/territoire/structures/{}/rapport",
                form_urlencoded::byte_serialize(s.id.as_bytes()).collect::<String>()
            ),
            edit: format!(
                "/admin/structures/{}/modifier",
                form_urlencoded::byte_serialize(s.id.as_bytes()).collect::<String>()
            ),
            commune: s.address.and_then(|a| a.commune).unwrap_or_default(),
            capacity: format!("{}{}", s.weekly_capacity, if s.accepting { "" } else { " (n'accepte plus)" }),
            name: s.name,
            territory: s.territory,
        })
        .collect();
    let next = page.next_cursor.map(|c| format!("/admin/structures?departement={territory}&apres={c}"));
    let invalid = error.is_some();
    let view = StructuresView {
        chrome: agent.chrome(if invalid { "Erreur : structures" } else { "Structures" }, "structures"),
        territory,
        rows,
        next,
        error,
    };
    Ok(render(if invalid { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK }, &view, true))
}
