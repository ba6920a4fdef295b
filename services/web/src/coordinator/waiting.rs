//! `/territoire/orientations/{id}`: a waiting or escalated referral, with no personal
//! data, the places that could take it and those nearby that cannot (and why), and its
//! rerouting.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use contracts::api::RerouteRequest;
use contracts::matching::{CandidateView, ExcludedView};
use contracts::{ReferralId, Urgency};
use serde::Deserialize;

use crate::error::PageError;
use crate::extract::{Agent, Coordinators, CsrfForm, PathId, SignedIn};
use crate::form::text;
use crate::views::{Chrome, commune_name, render};

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

/// Where the referral could go, and the places nearby that cannot take it. The matcher
/// may not have read the referral yet (404): then nothing is proposed, and rerouting
/// lets Aiguillage search again; any other failure is logged and leaves the same choice.
async fn assessment(agent: &Agent, id: ReferralId) -> (Vec<CandidateView>, Vec<ExcludedView>) {
    match agent.api.candidates(id).await {
        Ok(a) => (a.candidates, a.excluded),
        Err(err) => {
            if err.status() != Some(StatusCode::NOT_FOUND) {
                tracing::warn!(error = %err, "the candidates of a waiting referral are unavailable");
            }
            (vec![], vec![])
        }
    }
}

async fn waiting_page(agent: &Agent, id: ReferralId, error: Option<String>, done: bool) -> Result<Response, PageError> {
    let r = agent.api.referral(id).await?;
    let (candidates, excluded) = assessment(agent, id).await;
    let options = candidates
        .iter()
        .map(|c| Option_ {
            value: c.structure_id.to_string(),
            label: format!(
                "{} — {} km, {} place(s) prise(s) sur {} cette semaine",
                c.name,
                format!("{:.1}", c.distance_km).replace('.', ","),
                c.load.used,
                c.load.weekly_capacity
            ),
        })
        .collect();
    let excluded = excluded
        .iter()
        .take(10)
        .map(|e| (e.name.clone(), e.reasons.iter().map(|r| r.code.label_fr()).collect::<Vec<_>>().join(" ; ")))
        .collect();
    let invalid = error.is_some();
    let view = WaitingView {
        chrome: agent
            .chrome(if invalid { "Erreur : orientation en attente" } else { "Orientation en attente" }, "territoire"),
        csrf: agent.session.csrf.clone(),
        created: r.created_at.with_timezone(&chrono_tz::Europe::Paris).format("%d/%m/%Y à %H:%M").to_string(),
        status: r.status.label_fr().to_string(),
        commune: commune_name(r.commune_code.as_str()),
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
        id: r.id.to_string(),
    };
    let status = if invalid { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(render(status, &view, true))
}

pub async fn show(
    coordinator: SignedIn<Coordinators>,
    PathId(id): PathId<ReferralId>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    waiting_page(&coordinator, id, None, q.contains_key("reorientee")).await
}

#[derive(Deserialize)]
pub struct RerouteForm {
    structure: Option<String>,
    force: Option<String>,
}

/// Why a reroute is recorded, in the referral's history.
const REROUTED_BY_COORDINATION: &str = "réorientée par la coordination";

pub async fn reroute(
    coordinator: SignedIn<Coordinators>,
    PathId(id): PathId<ReferralId>,
    CsrfForm(form): CsrfForm<RerouteForm>,
) -> Result<Response, PageError> {
    // No structure: matching runs again with the attempts reset.
    let structure_id = form.structure.as_deref().and_then(text);
    let force = structure_id.as_ref().map(|_| form.force.is_some());
    let body = RerouteRequest { structure_id, force, reason: Some(REROUTED_BY_COORDINATION.to_string()) };
    let failure = match coordinator.api.reroute(id, &body).await {
        Ok(_) => return Ok(Redirect::to(&format!("/territoire/orientations/{id}?reorientee=1")).into_response()),
        Err(failure) => failure,
    };
    let message = match failure.status() {
        Some(StatusCode::CONFLICT) => {
            "Cette orientation ne peut pas être réorientée dans son état actuel (déjà acceptée, clôturée ou annulée)."
        }
        Some(StatusCode::UNPROCESSABLE_ENTITY) => {
            "Cette structure ne peut pas recevoir l'orientation : choisissez-en une dans la liste."
        }
        _ => return Err(failure.into()),
    };
    waiting_page(&coordinator, id, Some(message.into()), false).await
}
