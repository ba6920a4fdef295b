//! Following the people the structure accepted: the list, one referral with the
//! person's contact details and timeline, its appointment ([`super::appointment`]), a
//! contact recorded, the referral closed.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use contracts::api::{CloseRequest, ContactRequest};
use contracts::referrals::{AttendanceBody, ReferralView};
use contracts::{ContactKind, HistoryStep, Outcome, ReferralId, ReferralStatus, Urgency};
use serde::Deserialize;

use super::appointment::{AppointmentBlock, AppointmentForm, AttendanceForm, Typed, step_words};
use super::offers::{Again, comment_refused};
use super::{Choice, Line, LinksView, moved_on, needs_text};
use crate::error::PageError;
use crate::extract::{Agent, CsrfForm, Mediator, NoFields, PathId, SignedIn};
use crate::form::text;
use crate::views::{Chrome, paris, render, short_reference};

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
    /// What the last step did (`?acceptee`, `?contact`, `?cloturee`, `?rendez-vous`…).
    pub notice: Option<String>,
    pub name: String,
    /// The short reference the person's slip carries.
    pub reference: String,
    /// The person's printable slip, for a signed-in mediator.
    pub slip: Option<String>,
    pub contact: Vec<Reach>,
    pub preference: String,
    pub commune: String,
    pub needs: Vec<&'static str>,
    pub languages: String,
    pub deadline: Option<String>,
    pub note: Option<String>,
    pub timeline: Vec<Step>,
    /// Accepted or in progress: an appointment, contacts and closing are still possible.
    pub open: bool,
    pub appointment: AppointmentBlock,
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
        } else if q.contains_key("rendez-vous") {
            Some("Le rendez-vous est fixé. La personne en est prévenue comme elle l'a choisi.")
        } else if q.contains_key("rendez-vous-annule") {
            Some("Le rendez-vous est annulé. La personne en est prévenue.")
        } else if q.contains_key("presence") {
            Some("C'est noté.")
        } else {
            None
        };
        let appointment = AppointmentBlock::new(r.appointment.as_ref().and_then(Option::as_ref), Utc::now());
        Some(FollowContent {
            base,
            csrf,
            notice: notice.map(str::to_string),
            name,
            reference: short_reference(r.id),
            slip: None,
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
                    what: match (s.status, s.reason.as_deref()) {
                        (HistoryStep::Closed, Some(reason)) => match reason.parse::<Outcome>() {
                            Ok(o) => format!("{} : {}", s.status.label_fr(), o.label_fr()),
                            Err(_) => s.status.label_fr().to_string(),
                        },
                        (HistoryStep::AppointmentSet | HistoryStep::AttendanceRecorded, reason) => {
                            match step_words(reason) {
                                Some(detail) => format!("{} : {detail}", s.status.label_fr()),
                                None => s.status.label_fr().to_string(),
                            }
                        }
                        _ => s.status.label_fr().to_string(),
                    },
                })
                .collect(),
            open: matches!(r.status, ReferralStatus::Accepted | ReferralStatus::InProgress),
            kinds: ContactKind::ALL.iter().map(|k| Choice { value: k.slug(), label: k.label_fr() }).collect(),
            outcomes: Outcome::ALL.iter().map(|o| Choice { value: o.slug(), label: o.label_fr() }).collect(),
            // After a no-show, closing is most likely for that reason.
            outcome: appointment.no_show.then(|| Outcome::NoShow.slug().to_string()),
            appointment,
            outcome_error: None,
            comment: String::new(),
        })
    }

    /// A form back, with what was typed and why it was refused.
    pub fn returned(mut self, returned: Returned) -> Self {
        match returned {
            Returned::Close(again) => {
                self.outcome = again.choice;
                self.outcome_error = Some(again.error.into());
                self.comment = again.comment;
            }
            Returned::Appointment(typed) => self.appointment.form = typed,
        }
        self
    }
}

/// A form of the follow-up that comes back with its errors.
pub enum Returned {
    /// "Clôturer".
    Close(Again),
    /// "Fixer le rendez-vous".
    Appointment(Typed),
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
    returned: Option<Returned>,
) -> Result<Response, PageError> {
    let r = agent.api.referral(id).await?;
    let mut follow = FollowContent::new(&r, format!("/suivis/{id}"), agent.session.csrf.clone(), q)
        .ok_or_else(PageError::not_found)?;
    follow.slip = Some(format!("/orientations/{id}/fiche"));
    let invalid = returned.is_some();
    let view = FollowView {
        chrome: agent.chrome(if invalid { "Erreur : suivi" } else { "Suivi" }, "suivis"),
        follow: match returned {
            Some(returned) => follow.returned(returned),
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
        Err(again) => return follow_page(&mediator, id, &no_query, Some(Returned::Close(again))).await,
    };
    match mediator.api.close(id, &body).await {
        Ok(_) => Ok(Redirect::to(&format!("/suivis/{id}?cloturee=1")).into_response()),
        Err(failure) if failure.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => {
            let again = comment_refused(body.outcome.as_deref(), body.comment);
            follow_page(&mediator, id, &no_query, Some(Returned::Close(again))).await
        }
        Err(failure) => Err(moved_on(failure)),
    }
}

/// "Fixer le rendez-vous": sets or moves it; a wrong field comes back beside it.
pub async fn set_appointment(
    mediator: SignedIn<Mediator>,
    PathId(id): PathId<ReferralId>,
    CsrfForm(form): CsrfForm<AppointmentForm>,
) -> Result<Response, PageError> {
    let no_query = HashMap::new();
    let body = match form.request(Utc::now()) {
        Ok(body) => body,
        Err(typed) => return follow_page(&mediator, id, &no_query, Some(Returned::Appointment(typed))).await,
    };
    match mediator.api.set_appointment(id, &body).await {
        Ok(_) => Ok(Redirect::to(&format!("/suivis/{id}?rendez-vous=1")).into_response()),
        Err(failure) if failure.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => {
            let typed = Typed::of_body(&body).with_api_errors(failure.field_errors());
            follow_page(&mediator, id, &no_query, Some(Returned::Appointment(typed))).await
        }
        Err(failure) => Err(moved_on(failure)),
    }
}

/// "Annuler le rendez-vous". None to cancel (409: cancelled at the same moment, or its
/// time has passed): the page shows where it is.
pub async fn cancel_appointment(
    mediator: SignedIn<Mediator>,
    PathId(id): PathId<ReferralId>,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    match mediator.api.cancel_appointment(id).await {
        Ok(_) => Ok(Redirect::to(&format!("/suivis/{id}?rendez-vous-annule=1")).into_response()),
        Err(failure) if failure.status() == Some(StatusCode::CONFLICT) => {
            Ok(Redirect::to(&format!("/suivis/{id}")).into_response())
        }
        Err(failure) => Err(moved_on(failure)),
    }
}

/// "La personne est venue" / "La personne n'est pas venue". Too early, or already said
/// (409): the page shows where the appointment is.
pub async fn attendance(
    mediator: SignedIn<Mediator>,
    PathId(id): PathId<ReferralId>,
    CsrfForm(form): CsrfForm<AttendanceForm>,
) -> Result<Response, PageError> {
    let Some(attended) = form.attended() else { return Ok(Redirect::to(&format!("/suivis/{id}")).into_response()) };
    match mediator.api.record_attendance(id, &AttendanceBody { attended }).await {
        Ok(_) => Ok(Redirect::to(&format!("/suivis/{id}?presence=1")).into_response()),
        Err(failure) if failure.status() == Some(StatusCode::CONFLICT) => {
            Ok(Redirect::to(&format!("/suivis/{id}")).into_response())
        }
        Err(failure) => Err(moved_on(failure)),
    }
}
