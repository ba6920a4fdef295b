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
use crate::pages::{Agent, form_agent, required, role_label};
use crate::views::{Chrome, render};

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/admin/comptes", get(accounts))
        .route("/admin/comptes/demandes/{id}", post(decide))
        .route("/admin/comptes/invitations", post(invite))
}

fn manages(agent: &Agent) -> bool {
    agent.active.as_ref().is_some_and(|m| matches!(m.role, Role::Admin | Role::Coordinator))
}

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
    let agent = match required(&state, &headers, "/admin/comptes").await? {
        Ok(a) if manages(&a) => a,
        Ok(_) => return Err(PageError::not_found()),
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
    if !manages(&agent) || id.parse::<uuid::Uuid>().is_err() {
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
        _ => Err(crate::api::ApiFailure::Status { status: reply.status, problem: reply.body }.into()),
    }
}

async fn invite(
    State(state): State<WebState>,
    headers: HeaderMap,
    form: Result<Form<InviteForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let agent = form_agent(&state, &headers, form.csrf.as_deref()).await?;
    if !manages(&agent) {
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
            _ => return Err(crate::api::ApiFailure::Status { status: reply.status, problem: reply.body }.into()),
        }
    }
    page(&state, &agent, InviteForm { email: Some(email), place: Some(place), ..form }, errors).await
}
