//! How a referral looks to each caller. Personal data (the person, the note, comments
//! written by people) is included only for the referrer organisation, the accepting
//! structure and admin.

use chrono::{DateTime, NaiveDate, Utc};
use contracts::{
    Accessibility, CommuneCode, ContactPreference, HistoryStep, Language, Need, OrganisationId, Outcome, ReferralId,
    ReferralMode, ReferralStatus, StructureId, Territory, Urgency, WaitlistReason,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::privacy::Removal;
use crate::store::{HistoryRow, PersonRow, Referral, StructureContactRow};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disclosure {
    /// Ids, place, needs and constraints only.
    Matching,
    /// Everything, including the person.
    Personal,
}

/// A referral as one caller may see it.
#[derive(Serialize, ToSchema)]
#[schema(as = Referral)]
pub struct ReferralView {
    pub id: ReferralId,
    pub status: ReferralStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub status_changed_at: DateTime<Utc>,
    pub time_in_status_seconds: i64,
    pub organisation_id: OrganisationId,
    pub territory: Territory,
    pub commune_code: CommuneCode,
    pub needs: Vec<Need>,
    pub modes: Vec<ReferralMode>,
    pub languages: Vec<Language>,
    pub accessibility: Vec<Accessibility>,
    pub max_distance_km: f64,
    pub urgency: Urgency,
    pub deadline: Option<NaiveDate>,
    /// Offers made so far.
    pub attempts: u32,
    pub escalated: bool,
    pub waitlist_reason: Option<WaitlistReason>,
    /// The pending offer, while `offered`.
    pub current_offer: Option<OfferView>,
    /// The accepting structure, once accepted.
    pub structure: Option<StructureView>,
    pub outcome: Option<Outcome>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Only for the referrer organisation, the accepting structure and admin; `null`
    /// once the personal data is purged or erased (see `personal_data`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<PersonView>, nullable = true)]
    pub person: Option<Option<PersonView>>,
    /// `purged` (the retention time ran out) or `erased` (at the person's request): the
    /// person, the note, the consent and the comments are gone. Absent while held.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, nullable = false)]
    pub personal_data: Option<Removal>,
    /// On submission: open referrals of the organisation about the same phone number or
    /// e-mail address (compared through keyed hashes), newest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub possible_duplicates: Option<Vec<ReferralId>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent: Option<ConsentView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryView>>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = Offer)]
pub struct OfferView {
    pub structure_id: StructureId,
    pub structure_name: String,
    pub offered_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub distance_km: f64,
    pub score: f64,
    /// Why this structure, one line each.
    pub explanation: Vec<String>,
    /// The same as `explanation`, as codes with their values.
    pub reasons: Vec<contracts::explain::Reason>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = AcceptingStructure)]
pub struct StructureView {
    pub id: StructureId,
    pub name: String,
    pub accepted_at: Option<DateTime<Utc>>,
    /// `null` if the structure has left the directory.
    pub contact: Option<StructureContactView>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = AcceptingStructureContact)]
pub struct StructureContactView {
    pub phone: Option<String>,
    pub email: Option<String>,
    pub website: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = Person)]
pub struct PersonView {
    pub first_name: String,
    pub last_name: String,
    /// E.164.
    pub phone: Option<String>,
    pub email: Option<String>,
    pub contact_preference: ContactPreference,
    pub commune_code: CommuneCode,
    pub commune: String,
    pub languages: Vec<Language>,
    pub accessibility: Vec<Accessibility>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = Consent)]
pub struct ConsentView {
    pub obtained: bool,
    pub method: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = HistoryEntry)]
pub struct HistoryView {
    pub at: DateTime<Utc>,
    /// The step.
    pub status: HistoryStep,
    /// The referral's status after the step.
    pub referral_status: ReferralStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub structure_id: Option<StructureId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Facts of the step (`attempt`, `distance_km`, `expires_at`, `kind` …).
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    #[schema(value_type = Option<Object>, nullable = false)]
    pub detail: serde_json::Value,
}

/// A page of referrals.
#[derive(Serialize, ToSchema)]
pub struct ReferralPage {
    pub items: Vec<ReferralView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

pub struct Parts {
    pub person: Option<PersonRow>,
    /// Why the person is gone, if they are.
    pub removal: Option<Removal>,
    pub history: Option<Vec<HistoryRow>>,
    pub structure: Option<StructureContactRow>,
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
    }
}
