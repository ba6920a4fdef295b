//! Offers: the list waiting for the structure, soonest expiry first, and one offer to
//! accept or decline. Before acceptance the page never shows who the person is.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use contracts::api::{AcceptRequest, DeclineRequest};
use contracts::referrals::{OfferView, ReferralView};
use contracts::{DeclineReason, ReferralId, ReferralStatus, StructureId, Urgency};
use serde::Deserialize;

use super::{Choice, Line, LinksView, moved_on, needs_text, time_left};
use crate::error::PageError;
use crate::extract::{Agent, CsrfForm, Mediator, NoFields, PathId, SignedIn};
use crate::form::text;
use crate::views::{Chrome, commune_name, paris, render};

pub async fn list(
    mediator: SignedIn<Mediator>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let page = mediator.api.referrals(Some(ReferralStatus::Offered)).await?;
    let mut offers: Vec<(&ReferralView, &OfferView)> = page
        .items
        .iter()
        .filter_map(|r| Some((r, r.current_offer.as_ref().filter(|o| o.structure_id == mediator.scope)?)))
        .collect();
    offers.sort_by_key(|(_, o)| o.expires_at);
    let lines = offers
        .iter()
        .map(|(r, o)| Line {
            href: format!("/propositions/{}", r.id),
            text: format!(
                "{} — {} — répondre avant le {} (reste {})",
                commune_name(r.commune_code.as_str()),
                needs_text(&r.needs),
                paris(&o.expires_at),
                time_left(&o.expires_at),
            ),
            urgent: r.urgency == Urgency::Urgent,
        })
        .collect();
    let notice = q
        .contains_key("refusee")
        .then(|| "La proposition est refusée : Aiguillage cherche un autre lieu pour la personne.".to_string());
    let view = LinksView {
        chrome: mediator.chrome("Propositions", "propositions"),
        heading: "Propositions en attente".into(),
        intro: "Les personnes qu'Aiguillage propose à votre structure, la réponse la plus pressée d'abord. Leur identité s'affiche une fois la proposition acceptée.".into(),
        empty: "Aucune proposition en attente.".into(),
        lines,
        notice,
    };
    Ok(render(StatusCode::OK, &view, true))
}

#[derive(askama::Template)]
#[template(path = "proposition.html")]
struct OfferPage {
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

/// The offer's page; once accepted, its follow-up's.
async fn offer_page(
    agent: &Agent,
    mine: &StructureId,
    id: ReferralId,
    reason_error: Option<String>,
    comment: String,
) -> Result<Response, PageError> {
    let r = agent.api.referral(id).await?;
    if matches!(r.status, ReferralStatus::Accepted | ReferralStatus::InProgress | ReferralStatus::Closed)
        && r.held_person().is_some()
    {
        return Ok(Redirect::to(&format!("/suivis/{id}")).into_response());
    }
    let Some(o) = r.current_offer.as_ref().filter(|o| o.structure_id == *mine && r.status == ReferralStatus::Offered)
    else {
        return Err(PageError::not_found());
    };
    let invalid = reason_error.is_some();
    let view = OfferPage {
        chrome: agent.chrome(if invalid { "Erreur : proposition" } else { "Proposition" }, "propositions"),
        csrf: agent.session.csrf.clone(),
        id: r.id.to_string(),
        commune: commune_name(r.commune_code.as_str()),
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
        reasons: DeclineReason::given_by_structures()
            .map(|d| Choice { value: d.slug(), label: d.label_fr() })
            .collect(),
        reason_error,
        comment,
    };
    let status = if invalid { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(render(status, &view, true))
}

pub async fn show(mediator: SignedIn<Mediator>, PathId(id): PathId<ReferralId>) -> Result<Response, PageError> {
    offer_page(&mediator, &mediator.scope, id, None, String::new()).await
}

#[derive(Deserialize)]
pub struct DeclineForm {
    reason: Option<String>,
    comment: Option<String>,
}

/// The accept button's form carries nothing but its token.
pub async fn accept(
    mediator: SignedIn<Mediator>,
    PathId(id): PathId<ReferralId>,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    let body = AcceptRequest { mediator_name: mediator.me.given_name.as_ref().map(|n| n.expose().clone()) };
    match mediator.api.accept(id, &body).await {
        Ok(_) => Ok(Redirect::to(&format!("/suivis/{id}?acceptee=1")).into_response()),
        Err(failure) => Err(moved_on(failure)),
    }
}

pub async fn decline(
    mediator: SignedIn<Mediator>,
    PathId(id): PathId<ReferralId>,
    CsrfForm(form): CsrfForm<DeclineForm>,
) -> Result<Response, PageError> {
    let comment = form.comment.unwrap_or_default();
    let again = |error: &str, comment: String| offer_page(&mediator, &mediator.scope, id, Some(error.into()), comment);
    let Some(reason) = form.reason.as_deref().and_then(|r| r.parse::<DeclineReason>().ok()) else {
        return again("Choisissez le motif du refus.", comment).await;
    };
    if comment.chars().count() > 1000 {
        return again("Le commentaire est trop long (1000 caractères au plus).", comment).await;
    }
    let body = DeclineRequest { reason: Some(reason.slug().to_string()), comment: text(&comment) };
    match mediator.api.decline(id, &body).await {
        Ok(_) => Ok(Redirect::to("/propositions?refusee=1").into_response()),
        Err(failure) if failure.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => {
            again("Le commentaire contient des caractères refusés ou est trop long.", comment).await
        }
        Err(failure) => Err(moved_on(failure)),
    }
}
