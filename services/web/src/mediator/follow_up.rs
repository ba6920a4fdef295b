//! Following the people the structure accepted: the list, one referral with the
//! person's contact details and timeline, a contact recorded, the referral closed.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use contracts::api::{CloseRequest, ContactRequest};
use contracts::{ContactKind, HistoryStep, Outcome, ReferralId, ReferralStatus, Urgency};
use serde::Deserialize;

use super::{Choice, Line, LinksView, moved_on, needs_text};
use crate::error::PageError;
use crate::extract::{Agent, CsrfForm, Mediator, PathId, SignedIn};
use crate::form::text;
use crate::views::{Chrome, paris, render};

pub async fn list(mediator: SignedIn<Mediator>) -> Result<Response, PageError> {
    let mut items = Vec::new();
    for status in [ReferralStatus::Accepted, ReferralStatus::InProgress] {
        items.extend(mediator.api.referrals(Some(status)).await?.items);
    }
    items.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    let lines = items
        .iter()
        .map(|r| {
            let who = match (r.held_person(), r.personal_data) {
                (Some(p), _) => format!("{} {}", p.first_name, p.last_name),
                (None, Some(removed)) => removed.label_fr().to_string(),
                (None, None) => String::new(),
            };
            let state = if r.status == ReferralStatus::Accepted { "à contacter" } else { "accompagnement en cours" };
            Line {
                href: format!("/suivis/{}", r.id),
                text: format!("{who} — {} — {state}", needs_text(&r.needs)),
                urgent: r.urgency == Urgency::Urgent,
            }
        })
        .collect();
    let view = LinksView {
        chrome: mediator.chrome("Suivis", "suivis"),
        heading: "Personnes suivies".into(),
        intro: "Les orientations acceptées par votre structure, jusqu'à leur clôture.".into(),
        empty: "Aucune orientation en cours.".into(),
        lines,
        notice: None,
    };
    Ok(render(StatusCode::OK, &view, true))
}

pub struct Step {
    pub at: String,
    pub what: String,
}

#[derive(askama::Template)]
#[template(path = "suivi.html")]
struct FollowView {
    chrome: Chrome,
    csrf: String,
    id: String,
    accepted_now: bool,
    done: Option<String>,
    name: String,
    contact: Vec<String>,
    preference: String,
    commune: String,
    needs: Vec<&'static str>,
    languages: String,
    deadline: Option<String>,
    note: Option<String>,
    timeline: Vec<Step>,
    open: bool,
    kinds: Vec<Choice>,
    outcomes: Vec<Choice>,
    outcome_error: Option<String>,
    comment: String,
}

async fn follow_page(
    agent: &Agent,
    id: ReferralId,
    q: &HashMap<String, String>,
    outcome_error: Option<String>,
    comment: String,
) -> Result<Response, PageError> {
    let r = agent.api.referral(id).await?;
    let person = r.held_person();
    let name = match (person, r.personal_data) {
        (Some(p), _) => format!("{} {}", p.first_name, p.last_name),
        (None, Some(removed)) => removed.label_fr().to_string(),
        // Not this structure's to follow (the API shows it no person).
        (None, None) => return Err(PageError::not_found()),
    };
    let done = if q.contains_key("contact") {
        Some("Le contact est enregistré.".to_string())
    } else if q.contains_key("cloturee") {
        Some("L'orientation est clôturée. Merci : la personne qui l'a orientée en est informée.".to_string())
    } else {
        None
    };
    let invalid = outcome_error.is_some();
    let view = FollowView {
        chrome: agent.chrome(if invalid { "Erreur : suivi" } else { "Suivi" }, "suivis"),
        csrf: agent.session.csrf.clone(),
        id: r.id.to_string(),
        accepted_now: q.contains_key("acceptee"),
        done,
        name,
        contact: person
            .map(|p| {
                [
                    p.phone.as_ref().map(|t| format!("Téléphone : {t}")),
                    p.email.as_ref().map(|e| format!("E-mail : {e}")),
                ]
                .into_iter()
                .flatten()
                .collect()
            })
            .unwrap_or_default(),
        preference: person.map_or_else(|| "—".into(), |p| p.contact_preference.label_fr().to_string()),
        commune: person.map_or_else(|| "—".into(), |p| p.commune.clone()),
        needs: r.needs.iter().map(|n| n.label_fr()).collect(),
        languages: r.languages.iter().map(|l| l.name_fr()).collect::<Vec<_>>().join(", "),
        deadline: r.deadline.map(|d| d.format("%d/%m/%Y").to_string()),
        note: r.note.clone(),
        // The history is there for those who follow the referral.
        timeline: r
            .history
            .iter()
            .flatten()
            .map(|s| Step {
                at: paris(&s.at),
                what: match s.reason.as_deref().and_then(|x| x.parse::<Outcome>().ok()) {
                    Some(o) if s.status == HistoryStep::Closed => format!("{} : {}", s.status.label_fr(), o.label_fr()),
                    _ => s.status.label_fr().to_string(),
                },
            })
            .collect(),
        open: matches!(r.status, ReferralStatus::Accepted | ReferralStatus::InProgress),
        kinds: ContactKind::ALL.iter().map(|k| Choice { value: k.slug(), label: k.label_fr() }).collect(),
        outcomes: Outcome::ALL.iter().map(|o| Choice { value: o.slug(), label: o.label_fr() }).collect(),
        outcome_error,
        comment,
    };
    let status = if invalid { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(render(status, &view, true))
}

pub async fn show(
    mediator: SignedIn<Mediator>,
    PathId(id): PathId<ReferralId>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    follow_page(&mediator, id, &q, None, String::new()).await
}

#[derive(Deserialize)]
pub struct ContactForm {
    kind: Option<String>,
}

pub async fn contact(
    mediator: SignedIn<Mediator>,
    PathId(id): PathId<ReferralId>,
    CsrfForm(form): CsrfForm<ContactForm>,
) -> Result<Response, PageError> {
    // Without a kind, the API records a first contact.
    let kind = form.kind.as_deref().and_then(|k| k.parse::<ContactKind>().ok());
    let body = ContactRequest { kind: kind.map(|k| k.slug().to_string()), at: None };
    match mediator.api.contact(id, &body).await {
        Ok(_) => Ok(Redirect::to(&format!("/suivis/{id}?contact=1")).into_response()),
        Err(failure) => Err(moved_on(failure)),
    }
}

#[derive(Deserialize)]
pub struct CloseForm {
    outcome: Option<String>,
    comment: Option<String>,
}

pub async fn close(
    mediator: SignedIn<Mediator>,
    PathId(id): PathId<ReferralId>,
    CsrfForm(form): CsrfForm<CloseForm>,
) -> Result<Response, PageError> {
    let comment = form.comment.unwrap_or_default();
    let no_query = HashMap::new();
    let again = |error: &str, comment: String| follow_page(&mediator, id, &no_query, Some(error.into()), comment);
    let Some(outcome) = form.outcome.as_deref().and_then(|o| o.parse::<Outcome>().ok()) else {
        return again("Choisissez le résultat de l'accompagnement.", comment).await;
    };
    let body = CloseRequest { outcome: Some(outcome.slug().to_string()), comment: text(&comment) };
    match mediator.api.close(id, &body).await {
        Ok(_) => Ok(Redirect::to(&format!("/suivis/{id}?cloturee=1")).into_response()),
        Err(failure) if failure.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => {
            again("Le commentaire contient des caractères refusés ou est trop long.", comment).await
        }
        Err(failure) => Err(moved_on(failure)),
    }
}
