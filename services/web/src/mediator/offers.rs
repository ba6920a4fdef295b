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

/// What an offer shows before acceptance, and its refusal form's state: the content of
/// `/propositions/{id}` and of an answer link's page (`partials/proposition.html`).
pub struct OfferContent {
    /// Where the forms post: `/propositions/{id}`, or `/reponse/{token}`.
    pub base: String,
    pub csrf: String,
    pub commune: String,
    pub distance: String,
    pub needs: Vec<&'static str>,
    pub languages: String,
    pub accessibility: String,
    pub urgent: bool,
    pub deadline: Option<String>,
    pub expires: String,
    pub left: String,
    pub reasons: Vec<Choice>,
    /// The reason chosen, kept when the form comes back.
    pub reason: Option<String>,
    pub reason_error: Option<String>,
    pub comment: String,
}

impl OfferContent {
    /// The offer `o` of `r`, before any answer.
    pub fn new(r: &ReferralView, o: &OfferView, base: String, csrf: String) -> Self {
        OfferContent {
            base,
            csrf,
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
            reason: None,
            reason_error: None,
            comment: String::new(),
        }
    }

    /// The refusal form back, with what was typed and why it was refused.
    pub fn refused(mut self, again: Again) -> Self {
        self.reason = again.choice;
        self.reason_error = Some(again.error.into());
        self.comment = again.comment;
        self
    }
}

/// A form that comes back: what was chosen and typed, and why it was refused.
pub struct Again {
    pub error: &'static str,
    pub choice: Option<String>,
    pub comment: String,
}

#[derive(Deserialize)]
pub struct DeclineForm {
    reason: Option<String>,
    comment: Option<String>,
}

/// The API's answer to a comment it refuses (422) on a refusal or a closing.
pub const COMMENT_REFUSED: &str = "Le commentaire contient des caractères refusés ou est trop long.";

impl DeclineForm {
    /// The refusal as the API takes it, or the form back with its error.
    pub fn request(self) -> Result<DeclineRequest, Again> {
        let comment = self.comment.unwrap_or_default();
        let Some(reason) = self.reason.as_deref().and_then(|r| r.parse::<DeclineReason>().ok()) else {
            return Err(Again { error: "Choisissez le motif du refus.", choice: None, comment });
        };
        if !DeclineReason::given_by_structures().any(|r| r == reason) {
            return Err(Again { error: "Choisissez le motif du refus.", choice: None, comment });
        }
        if comment.chars().count() > 1000 {
            let error = "Le commentaire est trop long (1000 caractères au plus).";
            return Err(Again { error, choice: Some(reason.slug().into()), comment });
        }
        Ok(DeclineRequest { reason: Some(reason.slug().to_string()), comment: text(&comment) })
    }
}

/// The form of `body` back, the API having refused its comment.
pub fn comment_refused(reason: Option<&str>, comment: Option<String>) -> Again {
    Again { error: COMMENT_REFUSED, choice: reason.map(str::to_string), comment: comment.unwrap_or_default() }
}

#[derive(askama::Template)]
#[template(path = "proposition.html")]
struct OfferPage {
    chrome: Chrome,
    offer: OfferContent,
}

/// The offer's page; once accepted, its follow-up's.
async fn offer_page(
    agent: &Agent,
    mine: &StructureId,
    id: ReferralId,
    again: Option<Again>,
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
    let invalid = again.is_some();
    let mut offer = OfferContent::new(&r, o, format!("/propositions/{id}"), agent.session.csrf.clone());
    if let Some(again) = again {
        offer = offer.refused(again);
    }
    let view = OfferPage {
        chrome: agent.chrome(if invalid { "Erreur : proposition" } else { "Proposition" }, "propositions"),
        offer,
    };
    let status = if invalid { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(render(status, &view, true))
}

pub async fn show(mediator: SignedIn<Mediator>, PathId(id): PathId<ReferralId>) -> Result<Response, PageError> {
    offer_page(&mediator, &mediator.scope, id, None).await
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
    let body = match form.request() {
        Ok(body) => body,
        Err(again) => return offer_page(&mediator, &mediator.scope, id, Some(again)).await,
    };
    match mediator.api.decline(id, &body).await {
        Ok(_) => Ok(Redirect::to("/propositions?refusee=1").into_response()),
        Err(failure) if failure.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => {
            let again = comment_refused(body.reason.as_deref(), body.comment);
            offer_page(&mediator, &mediator.scope, id, Some(again)).await
        }
        Err(failure) => Err(moved_on(failure)),
    }
}
