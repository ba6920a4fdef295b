//! The agent's own pages: the home page of their space (`/`), their account with their
//! memberships and a membership request (`/compte`), switching space (`/espace`) and
//! their notification preferences (`/compte/notifications`).

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use contracts::Role;
use contracts::accounts::{MembershipRequestBody, PlaceKind, PlaceView};
use serde::Deserialize;
use uuid::Uuid;

use crate::WebState;
use crate::error::PageError;
use crate::extract::{Agent, Anyone, CsrfForm, SignedIn, space_label};
use crate::session;
use crate::views::{Compte, Home, MembershipItem, PlaceOption, render};

mod preferences;

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/", get(home))
        .route("/compte", get(compte))
        .route("/compte/demandes", post(request_access))
        .route("/espace", post(switch_space))
        .route("/compte/notifications", get(preferences::show).post(preferences::save))
}

const JOURNAL_LINK: &str = "Consulter le journal des accès aux données personnelles";

async fn home(agent: SignedIn<Anyone>) -> Result<Response, PageError> {
    let Some(active) = agent.active.clone() else {
        return compte_page(&agent, CompteForm::default(), None, FieldErrors::default(), StatusCode::OK).await;
    };
    let links = match active.role {
        Role::Referrer => vec![
            ("/orientations/nouvelle".to_string(), "Nouvelle orientation".to_string()),
            ("/orientations".to_string(), "Suivre les orientations de mon organisation".to_string()),
        ],
        Role::Mediator => vec![
            ("/propositions".to_string(), "Répondre aux propositions".to_string()),
            ("/suivis".to_string(), "Suivre les personnes accueillies".to_string()),
            ("/ma-structure".to_string(), "Mettre à jour les places de la semaine".to_string()),
        ],
        Role::Coordinator => vec![
            ("/territoire".to_string(), "Voir les files d'attente et la liste d'attente".to_string()),
            ("/territoire/entonnoir".to_string(), "Voir l'entonnoir d'une période".to_string()),
            ("/territoire/offre-et-demande".to_string(), "Comparer l'offre et la demande par commune".to_string()),
        ],
        Role::Admin => vec![
            ("/territoire".to_string(), "Voir les files d'attente et la liste d'attente".to_string()),
            ("/territoire/entonnoir".to_string(), "Voir l'entonnoir d'une période".to_string()),
            ("/territoire/offre-et-demande".to_string(), "Comparer l'offre et la demande par commune".to_string()),
            ("/journal".to_string(), JOURNAL_LINK.to_string()),
        ],
        Role::Dpo => vec![("/journal".to_string(), JOURNAL_LINK.to_string())],
    };
    let page = Home {
        chrome: agent.chrome("Accueil", "accueil"),
        given_name: agent.me.given_name.as_ref().map(|n| n.expose().clone()).unwrap_or_default(),
        space: space_label(&active),
        links,
    };
    Ok(render(StatusCode::OK, &page, true))
}

/// The account page's query (a search, a request just sent) and its request form.
#[derive(Deserialize, Default)]
struct CompteForm {
    place: Option<String>,
    message: Option<String>,
    q: Option<String>,
    demande: Option<String>,
}

async fn compte(agent: SignedIn<Anyone>, Query(q): Query<CompteForm>) -> Result<Response, PageError> {
    let done = q
        .demande
        .is_some()
        .then(|| "Votre demande d'accès a été envoyée. Vous serez prévenu de la décision.".to_string());
    compte_page(&agent, q, done, FieldErrors::default(), StatusCode::OK).await
}

#[derive(Default)]
struct FieldErrors {
    place: Option<String>,
    message: Option<String>,
}

/// A place as the request form offers it: `structure:{id}`, with its name and where.
fn place_option(p: &PlaceView) -> PlaceOption {
    let (kind, what) = match p.kind {
        PlaceKind::Structure => ("structure", "Structure"),
        PlaceKind::Organisation => ("organisation", "Organisation"),
    };
    let commune = p.commune.as_deref().map(|c| format!(", {c}")).unwrap_or_default();
    PlaceOption { value: format!("{kind}:{}", p.id), text: format!("{} ({what}{commune}, {})", p.name, &*p.territory) }
}

async fn compte_page(
    agent: &Agent,
    form: CompteForm,
    done: Option<String>,
    errors: FieldErrors,
    status: StatusCode,
) -> Result<Response, PageError> {
    let query = form.q.clone().unwrap_or_default().trim().to_string();
    let mut search_error = None;
    // The places of the agent's SIRET first (the API uses the agent's own), then the search.
    let siret_places = agent.api.places(None).await?;
    let mut found = Vec::new();
    if !query.is_empty() {
        if query.chars().count() < 2 {
            search_error = Some("Saisissez au moins 2 caractères.".to_string());
        } else {
            match agent.api.places(Some(&query)).await {
                Ok(p) => found = p.items,
                Err(err) if err.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => {
                    search_error = Some(
                        "Cette recherche n'est pas valide : utilisez des lettres, des chiffres et des espaces.".into(),
                    );
                }
                Err(err) => return Err(err.into()),
            }
            if found.is_empty() && search_error.is_none() {
                search_error = Some(format!("Aucune organisation ni structure ne correspond à « {query} »."));
            }
        }
    }
    let matches: Vec<PlaceOption> = siret_places.items.iter().filter(|p| p.matches_siret).map(place_option).collect();
    let has_siret_matches = !matches.is_empty();
    let mut places = Vec::new();
    if has_siret_matches {
        places.push(("Lieux de votre employeur (SIRET)".to_string(), matches));
    }
    if !found.is_empty() {
        places.push((format!("Résultats pour « {query} »"), found.iter().map(place_option).collect()));
    }
    let memberships = agent
        .me
        .memberships
        .iter()
        .map(|m| MembershipItem {
            id: m.id.to_string(),
            role: m.role.space_fr().to_string(),
            label: m.label.clone(),
            active: agent.active.as_ref().is_some_and(|a| a.id == m.id),
        })
        .collect();
    let me = agent.api.me(true).await?;
    let requests = me
        .requests
        .iter()
        .map(|r| {
            (
                format!("{} — {}", r.role.space_fr(), r.label),
                r.created_at.with_timezone(&chrono_tz::Europe::Paris).format("%d/%m/%Y").to_string(),
            )
        })
        .collect();
    let title = if agent.me.memberships.is_empty() { "Compte en attente de validation" } else { "Mon compte" };
    let invalid = errors.place.is_some() || errors.message.is_some();
    let title = if invalid { format!("Erreur : {title}") } else { title.to_string() };
    let page = Compte {
        chrome: agent.chrome(&title, "compte"),
        csrf: agent.session.csrf.clone(),
        done,
        name: agent.name(),
        email: agent.me.email.as_ref().map(|e| e.expose().clone()).unwrap_or_default(),
        siret: agent.me.siret.clone(),
        memberships,
        requests,
        query,
        search_error,
        places,
        has_siret_matches,
        chosen: form.place.unwrap_or_default(),
        place_error: errors.place,
        message: form.message.unwrap_or_default(),
        message_error: errors.message,
    };
    Ok(render(status, &page, true))
}

/// The membership a chosen place asks for: a mediator's of a structure, a referrer's of
/// an organisation.
fn request_for(place: &str, message: Option<String>) -> Option<MembershipRequestBody> {
    let (role, organisation_id, structure_id) = match place.split_once(':') {
        Some(("structure", id)) if !id.is_empty() => (Role::Mediator, None, Some(id.to_string())),
        Some(("organisation", id)) if !id.is_empty() => (Role::Referrer, Some(id.to_string()), None),
        _ => return None,
    };
    Some(MembershipRequestBody {
        role: Some(role.slug().to_string()),
        organisation_id,
        structure_id,
        territories: None,
        message,
    })
}

async fn request_access(agent: SignedIn<Anyone>, CsrfForm(form): CsrfForm<CompteForm>) -> Result<Response, PageError> {
    let place = form.place.as_deref().map(str::trim).unwrap_or_default();
    let message = form.message.as_deref().map(str::trim).filter(|m| !m.is_empty()).map(str::to_string);
    let Some(body) = request_for(place, message) else {
        let errors = FieldErrors { place: Some("Choisissez une organisation ou une structure.".into()), message: None };
        return compte_page(&agent, form, None, errors, StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    let failure = match agent.api.request_membership(&body).await {
        Ok(_) => return Ok(Redirect::to("/compte?demande=envoyee").into_response()),
        Err(failure) => failure,
    };
    let errors = match failure.status() {
        Some(StatusCode::CONFLICT) => FieldErrors {
            place: Some("Vous avez déjà cet accès, ou une demande est déjà en attente pour ce lieu.".into()),
            message: None,
        },
        Some(StatusCode::UNPROCESSABLE_ENTITY) => {
            let mut errors = FieldErrors::default();
            for e in failure.field_errors() {
                if e.field == "message" {
                    errors.message = Some(
                        "Le message est trop long (500 caractères au plus) ou contient des caractères refusés.".into(),
                    );
                } else {
                    errors.place = Some("Ce lieu n'est pas connu d'Aiguillage. Choisissez-en un dans la liste.".into());
                }
            }
            errors
        }
        _ => return Err(failure.into()),
    };
    compte_page(&agent, form, None, errors, StatusCode::UNPROCESSABLE_ENTITY).await
}

#[derive(Deserialize)]
struct SpaceForm {
    membership: Option<String>,
}

async fn switch_space(
    State(state): State<WebState>,
    agent: SignedIn<Anyone>,
    CsrfForm(form): CsrfForm<SpaceForm>,
) -> Result<Response, PageError> {
    let wanted: Option<Uuid> = form.membership.as_deref().and_then(|m| m.trim().parse().ok());
    let Some(membership) = wanted.filter(|id| agent.me.memberships.iter().any(|m| m.id == *id)) else {
        return Err(PageError::not_found());
    };
    session::set_membership(&state.pool, &agent.cookie, Some(membership)).await?;
    Ok(Redirect::to("/").into_response())
}
