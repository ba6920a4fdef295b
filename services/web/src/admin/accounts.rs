//! `/admin/comptes`: the membership requests waiting for a decision (Valider, Refuser)
//! and invitations by e-mail (Inviter). For admins, and for coordinators within their
//! départements, as the API scopes it.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use contracts::Role;
use contracts::accounts::{InvitationBody, MembershipBody, PlaceKind};
use serde::Deserialize;
use uuid::Uuid;

use crate::error::PageError;
use crate::extract::{Agent, Coordinators, CsrfForm, PathId, SignedIn};
use crate::views::{Chrome, PlaceOption, render};

pub struct RequestLine {
    pub id: String,
    pub who: String,
    pub what: String,
    pub message: Option<String>,
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

/// The page's query (a search, what was just done) and the invitation form.
#[derive(Deserialize, Default)]
pub struct InviteForm {
    email: Option<String>,
    place: Option<String>,
    q: Option<String>,
    fait: Option<String>,
}

async fn page(agent: &Agent, form: InviteForm, errors: HashMap<&'static str, String>) -> Result<Response, PageError> {
    let requests = agent.api.membership_requests().await?;
    let invitations = agent.api.invitations().await?;
    let query = form.q.clone().unwrap_or_default().trim().to_string();
    let mut places = vec![];
    if query.chars().count() >= 2 {
        // A search the API refuses finds nothing.
        match agent.api.places(Some(&query)).await {
            Ok(p) => places = p.items,
            Err(err) if err.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => {}
            Err(err) => return Err(err.into()),
        }
    }
    let mut options: Vec<PlaceOption> = Vec::new();
    if agent.active.as_ref().is_some_and(|m| m.role == Role::Admin) {
        options.push(PlaceOption { value: "admin".into(), text: "Administration de la plateforme".into() });
        options.push(PlaceOption { value: "dpo".into(), text: "Protection des données (journal des accès)".into() });
    }
    for t in agent.active.iter().flat_map(|m| &m.territories) {
        options.push(PlaceOption {
            value: format!("coordinator:{}", t.as_str()),
            text: format!("Coordination du département {}", t.as_str()),
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
                what: format!("{} — {}", r.role.space_fr(), r.label),
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
                    format!("{} — {}", i.role.space_fr(), i.label),
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

pub async fn show(coordinator: SignedIn<Coordinators>, Query(q): Query<InviteForm>) -> Result<Response, PageError> {
    page(&coordinator, q, HashMap::new()).await
}

#[derive(Deserialize)]
pub struct DecisionForm {
    decision: Option<String>,
}

pub async fn decide(
    coordinator: SignedIn<Coordinators>,
    PathId(id): PathId<Uuid>,
    CsrfForm(form): CsrfForm<DecisionForm>,
) -> Result<Response, PageError> {
    let (decided, done) = match form.decision.as_deref() {
        Some("valider") => (coordinator.api.approve_request(id).await, "valide"),
        Some("refuser") => (coordinator.api.refuse_request(id).await, "refuse"),
        _ => return Err(PageError::forbidden()),
    };
    match decided {
        Ok(_) => Ok(Redirect::to(&format!("/admin/comptes?fait={done}")).into_response()),
        Err(err) if err.status() == Some(StatusCode::CONFLICT) => Err(PageError {
            status: StatusCode::CONFLICT,
            heading: "Demande déjà traitée",
            message: "Quelqu'un d'autre a déjà validé ou refusé cette demande.".into(),
            reference: None,
            back_to_sign_in: false,
        }),
        Err(err) => Err(err.into()),
    }
}

/// The membership a chosen access gives: `admin`, `dpo`, `coordinator:{département}`,
/// `organisation:{id}` (a referrer's) or `structure:{id}` (a mediator's).
fn membership_for(place: &str) -> Option<MembershipBody> {
    let role = |r: Role| Some(r.slug().to_string());
    let body = match place.split_once(':') {
        _ if place == "admin" => MembershipBody { role: role(Role::Admin), ..MembershipBody::default() },
        _ if place == "dpo" => MembershipBody { role: role(Role::Dpo), ..MembershipBody::default() },
        Some(("coordinator", t)) => MembershipBody {
            role: role(Role::Coordinator),
            territories: Some(vec![t.to_string()]),
            ..MembershipBody::default()
        },
        Some(("organisation", id)) => MembershipBody {
            role: role(Role::Referrer),
            organisation_id: Some(id.to_string()),
            ..MembershipBody::default()
        },
        Some(("structure", id)) => MembershipBody {
            role: role(Role::Mediator),
            structure_id: Some(id.to_string()),
            ..MembershipBody::default()
        },
        _ => return None,
    };
    Some(body)
}

pub async fn invite(
    coordinator: SignedIn<Coordinators>,
    CsrfForm(form): CsrfForm<InviteForm>,
) -> Result<Response, PageError> {
    let email = form.email.as_deref().map(str::trim).unwrap_or_default().to_string();
    let place = form.place.as_deref().map(str::trim).unwrap_or_default().to_string();
    let mut errors = HashMap::new();
    if !contracts::email::is_email_address(&email) {
        errors.insert("email", "Indiquez une adresse e-mail valide, par exemple prenom.nom@exemple.fr.".to_string());
    }
    let membership = membership_for(&place);
    if membership.is_none() {
        errors.insert("place", "Choisissez l'accès à donner.".to_string());
    }
    if errors.is_empty() {
        let body = InvitationBody { email: Some(email.clone()), membership };
        match coordinator.api.invite(&body).await {
            Ok(_) => return Ok(Redirect::to("/admin/comptes?fait=invite").into_response()),
            Err(err)
                if matches!(
                    err.status(),
                    Some(
                        StatusCode::UNPROCESSABLE_ENTITY
                            | StatusCode::CONFLICT
                            | StatusCode::FORBIDDEN
                            | StatusCode::NOT_FOUND
                    )
                ) =>
            {
                errors.insert(
                    "place",
                    "Cet accès ne peut pas être donné depuis votre espace, ou il l'est déjà.".to_string(),
                );
            }
            Err(err) => return Err(err.into()),
        }
    }
    page(&coordinator, InviteForm { email: Some(email), place: Some(place), ..form }, errors).await
}
