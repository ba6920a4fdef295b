//! How a referral looks to each caller. Personal data (the person, the note, comments
//! written by people) is included only for the referrer organisation, the accepting
//! structure and admin.

use chrono::Utc;
use contracts::HistoryStep;
pub use contracts::referrals::{
    ConsentView, HistoryView, OfferView, PersonView, ReferralPage, ReferralView, StructureContactView, StructureView,
};

use crate::privacy::Removal;
use crate::store::{HistoryRow, PersonRow, Referral, StructureContactRow};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disclosure {
    /// Ids, place, needs and constraints only.
    Matching,
    /// Everything, including the person.
    Personal,
}

pub struct Parts {
    pub person: Option<PersonRow>,
    /// Why the person is gone, if they are.
    pub removal: Option<Removal>,
    pub history: Option<Vec<HistoryRow>>,
    pub structure: Option<StructureContactRow>,
    /// For those who see the follow-up: the appointment, or `Some(None)` when none is set.
    pub appointment: Option<Option<contracts::referrals::AppointmentView>>,
}

pub fn render(r: Referral, parts: Parts, disclosure: Disclosure) -> ReferralView {
    let personal = disclosure == Disclosure::Personal;
    let current_offer = r.offer.map(|o| OfferView {
        structure_id: o.structure_id,
        structure_name: o.structure_name,
        offered_at: o.offered_at,
        expires_at: o.expires_at,
        distance_km: o.distance_km,
        score: o.score,
        explanation: o.explanation,
        reasons: o.reasons,
    });
    let structure = r.structure_id.clone().map(|id| {
        let contact = parts.structure.as_ref().map(|s| StructureContactView {
            phone: s.phone.clone(),
            email: s.email.clone(),
            website: s.website.clone(),
        });
        StructureView {
            name: parts
                .structure
                .as_ref()
                .map(|s| s.name.clone())
                .or_else(|| r.structure_name.clone())
                .unwrap_or_else(|| id.to_string()),
            id,
            accepted_at: r.accepted_at,
            contact,
        }
    });
    let removal = parts.removal;
    let (person, note, consent) = match (personal, parts.person) {
        (true, None) if removal.is_some() => (Some(None), None, None),
        (true, Some(p)) => (
            Some(Some(PersonView {
                first_name: p.first_name,
                last_name: p.last_name,
                phone: p.phone,
                email: p.email,
                contact_preference: p.contact_preference,
                commune_code: r.commune_code.clone(),
                commune: p.commune_name,
                languages: r.languages.clone(),
                accessibility: r.accessibility.clone(),
            })),
            p.note,
            Some(ConsentView { obtained: true, method: p.consent_method, at: p.consent_at }),
        ),
        _ => (None, None, None),
    };
    let history = parts.history.map(|rows| {
        rows.into_iter()
            .map(|h| {
                // A coordinator's reason for a reroute is about routing, not the person.
                let show_comment = personal || h.step == HistoryStep::Rerouted;
                HistoryView {
                    at: h.at,
                    status: h.step,
                    referral_status: h.status,
                    structure_id: h.structure_id,
                    reason: h.reason,
                    actor: h.actor.as_ref().map(ToString::to_string),
                    comment: if show_comment { h.comment } else { None },
                    via: h.via,
                    detail: if h.detail.as_object().is_some_and(|o| o.is_empty()) {
                        serde_json::Value::Null
                    } else {
                        h.detail
                    },
                }
            })
            .collect()
    });
    ReferralView {
        time_in_status_seconds: (Utc::now() - r.status_changed_at).num_seconds().max(0),
        id: r.id,
        status: r.status,
        created_at: r.created_at,
        updated_at: r.updated_at,
        status_changed_at: r.status_changed_at,
        organisation_id: r.organisation_id,
        territory: r.territory,
        commune_code: r.commune_code,
        needs: r.needs,
        modes: r.modes,
        languages: r.languages,
        accessibility: r.accessibility,
        max_distance_km: r.max_distance_km,
        urgency: r.urgency,
        deadline: r.deadline,
        attempts: r.attempts,
        escalated: r.escalated,
        waitlist_reason: r.waitlist_reason,
        current_offer,
        structure,
        outcome: r.outcome,
        closed_at: r.closed_at,
        person,
        personal_data: removal,
        possible_duplicates: None,
        note,
        consent,
        history,
        appointment: parts.appointment,
    }
}
