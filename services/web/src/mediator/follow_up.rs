//! Following the people the structure accepted: the list, one referral with the
//! person's contact details and timeline, a contact recorded, the referral closed.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use contracts::api::{CloseRequest, ContactRequest};
use contracts::referrals::ReferralView;
use contracts::{ContactKind, HistoryStep, Outcome, ReferralId, ReferralStatus, Urgency};
use serde::Deserialize;

use super::offers::{Again, comment_refused};
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

/// One way to reach the person: a link the structure's phone or mail program opens.
pub struct Reach {
    pub how: &'static str,
    pub href: String,
    pub text: String,
}

/// What an accepted referral shows to the structure that follows the person, and its
/// forms' state: the content of `/suivis/{id}` and of an answer link's page after
/// acceptance (`partials/suivi.html`).
pub struct FollowContent {
    /// Where the forms post: `/suivis/{id}`, or `/reponse/{token}`.
    pub base: String,
    pub csrf: String,
    /// What the last step did (`?acceptee`, `?contact`, `?cloturee`).
    pub notice: Option<String>,
    pub name: String,
    pub contact: Vec<Reach>,
    pub preference: String,
    pub commune: String,
    pub needs: Vec<&'static str>,
    pub languages: String,
    pub deadline: Option<String>,
    pub note: Option<String>,
    pub timeline: Vec<Step>,
    /// Accepted or in progress: contacts and closing are still possible.
    pub open: bool,
    pub kinds: Vec<Choice>,
    pub outcomes: Vec<Choice>,
    /// The outcome chosen, kept when the form comes back.
    pub outcome: Option<String>,
    pub outcome_error: Option<String>,
    pub comment: String,
}

impl FollowContent {
    /// `r` as the structure that accepted it sees it; none when the API shows it no
    /// person (not this structure's to follow).
    pub fn new(r: &ReferralView, base: String, csrf: String, q: &HashMap<String, String>) -> Option<Self> {
        let person = r.held_person();
        let name = match (person, r.personal_data) {
            (Some(p), _) => format!("{} {}", p.first_name, p.last_name),
            (None, Some(removed)) => removed.label_fr().to_string(),
            (None, None) => return None,
        };
        let notice = if q.contains_key("acceptee") {
            Some("Proposition acceptée. Contactez la personne : ses coordonnées sont ci-dessous.")
        } else if q.contains_key("contact") {
            Some("Le contact est enregistré.")
        } else if q.contains_key("cloturee") {
            Some("L'orientation est clôturée. Merci : la personne qui l'a orientée en est informée.")
        } else {
            None
        };
        Some(FollowContent {
            base,
            csrf,
            notice: notice.map(str::to_string),
            name,
            contact: person
                .map(|p| {
                    let phone = p.phone.as_ref().map(|t| Reach {
                        how: "Téléphone",
                        href: format!(
                            "tel:{}",
                            t.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect::<String>()
                        ),
                        text: t.clone(),
                    });
                    let email =
                        p.email.as_ref().map(|e| Reach { how: "E-mail", href: format!("mailto:{e}"), text: e.clone() });
                    [phone, email].into_iter().flatten().collect()
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
                        Some(o) if s.status == HistoryStep::Closed => {
                            format!("{} : {}", s.status.label_fr(), o.label_fr())
                        }
                        _ => s.status.label_fr().to_string(),
                    },
                })
                .collect(),
            open: matches!(r.status, ReferralStatus::Accepted | ReferralStatus::InProgress),
            kinds: ContactKind::ALL.iter().map(|k| Choice { value: k.slug(), label: k.label_fr() }).collect(),
            outcomes: Outcome::ALL.iter().map(|o| Choice { value: o.slug(), label: o.label_fr() }).collect(),
            outcome: None,
            outcome_error: None,
            comment: String::new(),
        })
    }

    /// The closing form back, with what was typed and why it was refused.
    pub fn refused(mut self, again: Again) -> Self {
        self.outcome = again.choice;
        self.outcome_error = Some(again.error.into());
        self.comment = again.comment;
        self
    }
}

#[derive(askama::Template)]
#[template(path = "suivi.html")]
struct FollowView {
    chrome: Chrome,
    follow: FollowContent,
}

async fn follow_page(
    agent: &Agent,
    id: ReferralId,
    q: &HashMap<String, String>,
    again: Option<Again>,
) -> Result<Response, PageError> {
    let r = agent.api.referral(id).await?;
    let follow = FollowContent::new(&r, format!("/suivis/{id}"), agent.session.csrf.clone(), q)
        .ok_or_else(PageError::not_found)?;
    let invalid = again.is_some();
    let view = FollowView {
        chrome: agent.chrome(if invalid { "Erreur : suivi" } else { "Suivi" }, "suivis"),
        follow: match again {
            Some(again) => follow.refused(again),
            None => follow,
        },
    };
    let status = if invalid { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(render(status, &view, true))
}

pub async fn show(
    mediator: SignedIn<Mediator>,
    PathId(id): PathId<ReferralId>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    follow_page(&mediator, id, &q, None).await
}

#[derive(Deserialize)]
pub struct ContactForm {
    kind: Option<String>,
}

impl ContactForm {
    /// The contact as the API takes it: without a kind, a first contact.
    pub fn request(self) -> ContactRequest {
        let kind = self.kind.as_deref().and_then(|k| k.parse::<ContactKind>().ok());
        ContactRequest { kind: kind.map(|k| k.slug().to_string()), at: None }
    }
}

pub async fn contact(
    mediator: SignedIn<Mediator>,
    PathId(id): PathId<ReferralId>,
    CsrfForm(form): CsrfForm<ContactForm>,
) -> Result<Response, PageError> {
    match mediator.api.contact(id, &form.request()).await {
        Ok(_) => Ok(Redirect::to(&format!("/suivis/{id}?contact=1")).into_response()),
        Err(failure) => Err(moved_on(failure)),
    }
}

#[derive(Deserialize)]
pub struct CloseForm {
    outcome: Option<String>,
    comment: Option<String>,
}

impl CloseForm {
    /// The closing as the API takes it, or the form back with its error.
    pub fn request(self) -> Result<CloseRequest, Again> {
        let comment = self.comment.unwrap_or_default();
        let Some(outcome) = self.outcome.as_deref().and_then(|o| o.parse::<Outcome>().ok()) else {
            return Err(Again { error: "Choisissez le résultat de l'accompagnement.", choice: None, comment });
        };
        Ok(CloseRequest { outcome: Some(outcome.slug().to_string()), comment: text(&comment) })
    }
}

pub async fn close(
    mediator: SignedIn<Mediator>,
    PathId(id): PathId<ReferralId>,
    CsrfForm(form): CsrfForm<CloseForm>,
) -> Result<Response, PageError> {
    let no_query = HashMap::new();
    let body = match form.request() {
        Ok(body) => body,
        Err(again) => return follow_page(&mediator, id, &no_query, Some(again)).await,
    };
    match mediator.api.close(id, &body).await {
        Ok(_) => Ok(Redirect::to(&format!("/suivis/{id}?cloturee=1")).into_response()),
        Err(failure) if failure.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => {
            let again = comment_refused(body.outcome.as_deref(), body.comment);
            follow_page(&mediator, id, &no_query, Some(again)).await
        }
        Err(failure) => Err(moved_on(failure)),
    }
}
