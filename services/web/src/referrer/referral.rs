//! `/orientations/{id}`: one referral as its referrer follows it (status, offer or
//! structure and why, where the place is and when it opens, the appointment and how the
//! person was told, the timeline), and its cancellation.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use contracts::api::CancelRequest;
use contracts::directory::StructureView as Place;
use contracts::referrals::ReferralView;
use contracts::{ContactPreference, ExclusionCode, HistoryStep, ReferralId, ReferralStatus, Urgency};
use serde::Deserialize;

use super::status_fr;
use crate::error::PageError;
use crate::extract::{Agent, CsrfForm, PathId, Referrers, SignedIn};
use crate::mediator::appointment::{AppointmentWords, step_words};
use crate::views::{Chrome, paris, referral_time, render};

/// OpenStreetMap opening hours, read aloud in French: days and months by name, times
/// as « 9 h 00 », public holidays as « jours fériés ». Rules are kept as they are.
pub fn hours_fr(osm: &str) -> String {
    const WORDS: [(&str, &str); 10] = [
        ("Mo", "lundi"),
        ("Tu", "mardi"),
        ("We", "mercredi"),
        ("Th", "jeudi"),
        ("Fr", "vendredi"),
        ("Sa", "samedi"),
        ("Su", "dimanche"),
        ("PH", "jours fériés"),
        ("off", "fermé"),
        ("closed", "fermé"),
    ];
    // One atom: a day, a keyword or a time (`09:00` → `9 h 00`).
    let atom = |x: &str| -> String {
        if let Some((_, fr)) = WORDS.iter().find(|(en, _)| *en == x) {
            return fr.to_string();
        }
        match x.split_once(':') {
            Some((h, m)) if !h.is_empty() && h.len() <= 2 && h.bytes().all(|b| b.is_ascii_digit()) && m.len() == 2 => {
                let h = h.trim_start_matches('0');
                format!("{} h {m}", if h.is_empty() { "0" } else { h })
            }
            _ => x.to_string(),
        }
    };
    let token = |t: &str| -> String {
        t.split(',')
            .map(|part| part.split('-').map(atom).collect::<Vec<_>>().join(" – "))
            .collect::<Vec<_>>()
            .join(", ")
    };
    osm.split(';')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|rule| rule.split_whitespace().map(token).collect::<Vec<_>>().join(" : "))
        .collect::<Vec<_>>()
        .join(" ; ")
}

/// A place near the person that could take the referral but that no offer can reach
/// (no account, no e-mail address): the referrer can call it.
pub struct ByPhone {
    pub name: String,
    pub distance: String,
    pub phone: String,
    /// The number for a `tel:` link: digits and a leading `+` only.
    pub tel: String,
}

pub struct TimelineItem {
    pub at: String,
    pub what: String,
    pub detail: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "orientation.html")]
struct DetailView {
    chrome: Chrome,
    csrf: String,
    id: String,
    status: String,
    created: String,
    needs: Vec<&'static str>,
    urgent: bool,
    deadline: Option<String>,
    person: Option<(String, String, String)>,
    note: Option<String>,
    offer: Option<(String, String, String)>,
    reasons: Vec<String>,
    structure: Option<(String, String, Vec<String>)>,
    /// The place's address and opening hours.
    place: Option<(String, Option<String>)>,
    /// The appointment the place set, once it follows the person.
    appointment: Option<AppointmentWords>,
    /// The person's slip, while a place follows them.
    slip: Option<String>,
    /// The person chose to be told by the referrer.
    via_referrer: bool,
    waiting: Option<String>,
    by_phone: Vec<ByPhone>,
    outcome: Option<String>,
    timeline: Vec<TimelineItem>,
    cancellable: bool,
    cancel_error: Option<String>,
    cancel_reason: String,
    cancelled_now: bool,
}

/// A timeline step's reason in words: a decline reason's or an outcome's label, else as
/// written (a coordinator's reason for a reroute).
fn reason_words(reason: &str) -> String {
    reason
        .parse::<contracts::DeclineReason>()
        .map(|d| d.label_fr().to_string())
        .or_else(|_| reason.parse::<contracts::Outcome>().map(|o| o.label_fr().to_string()))
        .unwrap_or_else(|_| reason.to_string())
}

/// The place's address on one line, and its opening hours in words.
fn place_words(p: Place) -> (String, Option<String>) {
    let a = p.address;
    let address = [a.street, Some([a.postcode, a.commune].into_iter().flatten().collect::<Vec<_>>().join(" "))]
        .into_iter()
        .flatten()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    (address, p.opening_hours.as_deref().map(hours_fr))
}

/// For a waitlisted referral, the places nearby whose only obstacle is that no offer can
/// reach them (the matcher's exclusion `unreachable`), with their public phone numbers.
/// None when the matcher does not answer: the rest of the page does not depend on it.
async fn by_phone(agent: &Agent, r: &ReferralView) -> Vec<ByPhone> {
    if r.status != ReferralStatus::Waitlisted {
        return vec![];
    }
    let excluded = match agent.api.candidates(r.id).await {
        Ok(a) => a.excluded,
        Err(err) => {
            if err.status() != Some(StatusCode::NOT_FOUND) {
                tracing::warn!(error = %err, "the places near a waitlisted referral are unavailable");
            }
            return vec![];
        }
    };
    excluded
        .into_iter()
        .filter(|e| !e.reasons.is_empty() && e.reasons.iter().all(|x| x.code == ExclusionCode::Unreachable))
        .filter_map(|e| {
            let phone = e.phone?.trim().to_string();
            let tel: String = phone
                .chars()
                .enumerate()
                .filter(|(i, c)| c.is_ascii_digit() || (*i == 0 && *c == '+'))
                .map(|(_, c)| c)
                .collect();
            (tel.len() >= 4).then(|| ByPhone {
                name: e.name,
                distance: format!("{:.1} km", e.distance_km).replace('.', ","),
                phone,
                tel,
            })
        })
        .take(10)
        .collect()
}

/// Where the place of the offer or of the acceptance is, as the directory has it. None
/// when the directory no longer lists it, or does not answer: the rest of the page does
/// not depend on it.
async fn place(agent: &Agent, r: &ReferralView) -> Option<(String, Option<String>)> {
    let id = r.structure.as_ref().map(|s| &s.id).or_else(|| r.current_offer.as_ref().map(|o| &o.structure_id))?;
    match agent.api.structure(id).await {
        Ok(p) => Some(place_words(p)),
        Err(err) => {
            if err.status() != Some(StatusCode::NOT_FOUND) {
                tracing::warn!(error = %err, "the place of a referral is unavailable");
            }
            None
        }
    }
}

async fn detail_page(
    agent: &Agent,
    id: ReferralId,
    cancel_error: Option<String>,
    cancel_reason: String,
    cancelled_now: bool,
) -> Result<Response, PageError> {
    let r = agent.api.referral(id).await?;
    let removed = r.personal_data.map(|label| (label.label_fr().to_string(), "—".to_string(), "—".to_string()));
    let person = r.held_person().map(|p| {
        let reach = match p.contact_preference {
            ContactPreference::Phone => p.phone.clone().unwrap_or_default(),
            ContactPreference::Email => p.email.clone().unwrap_or_default(),
            ContactPreference::ViaReferrer => "par votre intermédiaire".to_string(),
        };
        (
            format!("{} {}", p.first_name, p.last_name),
            format!("{} : {}", p.contact_preference.label_fr(), reach),
            format!("{} · {}", p.commune, p.languages.iter().map(|l| l.name_fr()).collect::<Vec<_>>().join(", ")),
        )
    });
    let offer = r.current_offer.as_ref().map(|o| {
        (o.structure_name.clone(), format!("à {:.1} km", o.distance_km).replace('.', ","), paris(&o.expires_at))
    });
    let reasons = r.current_offer.as_ref().map(|o| o.reasons.iter().map(|x| x.text_fr()).collect()).unwrap_or_default();
    let structure = r.structure.as_ref().map(|s| {
        let mut contact = Vec::new();
        if let Some(c) = &s.contact {
            contact.extend(c.phone.iter().map(|p| format!("Téléphone : {p}")));
            contact.extend(c.email.iter().map(|e| format!("E-mail : {e}")));
            contact.extend(c.website.iter().map(|w| format!("Site : {w}")));
        }
        (s.name.clone(), s.accepted_at.as_ref().map(paris).unwrap_or_default(), contact)
    });
    let waiting = (r.status == ReferralStatus::Waitlisted).then(|| {
        let why = r.waitlist_reason.map(|w| w.label_fr()).unwrap_or("aucun lieu disponible");
        let escalated = if r.escalated { " La coordination du territoire a été prévenue." } else { "" };
        format!("{why} après {} proposition(s).{escalated}", r.attempts)
    });
    let timeline = r
        .history
        .iter()
        .flatten()
        .map(|s| TimelineItem {
            at: referral_time(&s.at, removed.is_some()),
            what: s.status.label_fr().to_string(),
            detail: match s.status {
                HistoryStep::AppointmentSet | HistoryStep::AppointmentCancelled | HistoryStep::AttendanceRecorded => {
                    step_words(s.reason.as_deref()).map(str::to_string)
                }
                _ => s.reason.as_deref().map(reason_words).or_else(|| s.comment.clone()),
            },
        })
        .collect();
    let cancellable = !matches!(r.status, ReferralStatus::Closed | ReferralStatus::Cancelled);
    let place = place(agent, &r).await;
    let by_phone = by_phone(agent, &r).await;
    let followed = matches!(r.status, ReferralStatus::Accepted | ReferralStatus::InProgress);
    let appointment =
        r.appointment.as_ref().and_then(Option::as_ref).map(|a| AppointmentWords::new(a, chrono::Utc::now()));
    let page = DetailView {
        chrome: agent
            .chrome(if cancel_error.is_some() { "Erreur : orientation" } else { "Orientation" }, "orientations"),
        csrf: agent.session.csrf.clone(),
        status: status_fr(r.status).to_string(),
        created: paris(&r.created_at),
        needs: r.needs.iter().map(|n| n.label_fr()).collect(),
        urgent: r.urgency == Urgency::Urgent,
        deadline: r.deadline.map(|d| d.format("%d/%m/%Y").to_string()),
        person: person.or(removed),
        note: r.note.clone(),
        offer,
        reasons,
        structure,
        place,
        appointment,
        slip: followed.then(|| format!("/orientations/{}/fiche", r.id)),
        via_referrer: r.held_person().is_some_and(|p| p.contact_preference == ContactPreference::ViaReferrer),
        waiting,
        by_phone,
        outcome: r.outcome.map(|o| o.label_fr().to_string()),
        timeline,
        cancellable,
        cancel_error,
        cancel_reason,
        cancelled_now,
        id: r.id.to_string(),
    };
    Ok(render(StatusCode::OK, &page, true))
}

pub async fn show(
    referrer: SignedIn<Referrers>,
    PathId(id): PathId<ReferralId>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    detail_page(&referrer, id, None, String::new(), q.contains_key("annulee")).await
}

#[derive(Deserialize)]
pub struct CancelForm {
    reason: Option<String>,
}

pub async fn cancel(
    referrer: SignedIn<Referrers>,
    PathId(id): PathId<ReferralId>,
    CsrfForm(form): CsrfForm<CancelForm>,
) -> Result<Response, PageError> {
    let reason = form.reason.unwrap_or_default();
    let message = if reason.trim().is_empty() {
        "Indiquez le motif de l'annulation."
    } else {
        match referrer.api.cancel(id, &CancelRequest { reason: Some(reason.trim().to_string()) }).await {
            Ok(_) => return Ok(Redirect::to(&format!("/orientations/{id}?annulee=1")).into_response()),
            Err(failure) => match failure.status() {
                Some(StatusCode::CONFLICT) => {
                    "Cette orientation ne peut plus être annulée : elle est déjà clôturée ou annulée."
                }
                Some(StatusCode::UNPROCESSABLE_ENTITY) => {
                    "Le motif est trop long (500 caractères au plus) ou contient des caractères refusés."
                }
                _ => return Err(failure.into()),
            },
        }
    };
    let mut response = detail_page(&referrer, id, Some(message.into()), reason, false).await?;
    *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_hours_are_read_in_french() {
        assert_eq!(
            hours_fr("Mo-Fr 09:00-12:00,14:00-17:30; Sa 09:00-12:00; PH off"),
            "lundi – vendredi : 9 h 00 – 12 h 00, 14 h 00 – 17 h 30 ; samedi : 9 h 00 – 12 h 00 ; jours fériés : fermé"
        );
        assert_eq!(hours_fr("We 00:30-02:00"), "mercredi : 0 h 30 – 2 h 00");
        assert_eq!(hours_fr(""), "");
    }
}
