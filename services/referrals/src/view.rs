//! How a referral looks to each caller. Personal data (the person, the note, comments
//! written by people) is included only for the referrer organisation, the accepting
//! structure and admin.

use chrono::{DateTime, NaiveDate, Utc};
use contracts::{
    Accessibility, ContactPreference, Language, Need, Outcome, ReferralMode, ReferralStatus, Urgency, WaitlistReason,
};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::store::{HistoryRow, PersonRow, ReferralRow, StructureContactRow};

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
    pub id: Uuid,
    #[schema(value_type = ReferralStatus)]
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub status_changed_at: DateTime<Utc>,
    pub time_in_status_seconds: i64,
    pub organisation_id: Uuid,
    pub territory: String,
    pub commune_code: String,
    #[schema(value_type = Vec<Need>)]
    pub needs: Vec<String>,
    #[schema(value_type = Vec<ReferralMode>)]
    pub modes: Vec<String>,
    #[schema(value_type = Vec<Language>)]
    pub languages: Vec<String>,
    #[schema(value_type = Vec<Accessibility>)]
    pub accessibility: Vec<String>,
    pub max_distance_km: f64,
    #[schema(value_type = Urgency)]
    pub urgency: String,
    pub deadline: Option<NaiveDate>,
    /// Offers made so far.
    pub attempts: i32,
    pub escalated: bool,
    #[schema(value_type = Option<WaitlistReason>)]
    pub waitlist_reason: Option<String>,
    /// The pending offer, while `offered`.
    pub current_offer: Option<OfferView>,
    /// The accepting structure, once accepted.
    pub structure: Option<StructureView>,
    #[schema(value_type = Option<Outcome>)]
    pub outcome: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Only for the referrer organisation, the accepting structure and admin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<PersonView>,
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
    pub structure_id: String,
    pub structure_name: String,
    pub offered_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub distance_km: Option<f64>,
    pub score: Option<f64>,
    /// Why this structure, one line each.
    #[schema(value_type = Vec<String>)]
    pub explanation: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
#[schema(as = AcceptingStructure)]
pub struct StructureView {
    pub id: String,
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
    #[schema(value_type = ContactPreference)]
    pub contact_preference: String,
    pub commune_code: String,
    pub commune: String,
    #[schema(value_type = Vec<Language>)]
    pub languages: Vec<String>,
    #[schema(value_type = Vec<Accessibility>)]
    pub accessibility: Vec<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = Consent)]
pub struct ConsentView {
    pub obtained: bool,
    pub method: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

/// The steps a referral's history records.
pub const STEPS: [&str; 11] = [
    "submitted",
    "offered",
    "declined",
    "offer_expired",
    "waitlisted",
    "accepted",
    "contacted",
    "closed",
    "cancelled",
    "rerouted",
    "offer_withdrawn",
];

fn step_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(STEPS))
        .description(Some("The step"))
        .build()
}

#[derive(Serialize, ToSchema)]
#[schema(as = HistoryEntry)]
pub struct HistoryView {
    pub at: DateTime<Utc>,
    #[schema(schema_with = step_schema)]
    pub status: String,
    /// The referral's status after the step.
    #[schema(value_type = ReferralStatus)]
    pub referral_status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub structure_id: Option<String>,
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
#[schema(as = ReferralPage)]
pub struct ReferralPage {
    pub items: Vec<ReferralView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

pub struct Parts {
    pub person: Option<PersonRow>,
    pub history: Option<Vec<HistoryRow>>,
    pub structure: Option<StructureContactRow>,
}

pub fn render(r: ReferralRow, parts: Parts, disclosure: Disclosure) -> ReferralView {
    let personal = disclosure == Disclosure::Personal;
    let current_offer = (r.status == "offered").then(|| OfferView {
        structure_id: r.offer_structure_id.clone().unwrap_or_default(),
        structure_name: r.offer_structure_name.clone().unwrap_or_default(),
        offered_at: r.offered_at,
        expires_at: r.offer_expires_at,
        distance_km: r.offer_distance_km,
        score: r.offer_score,
        explanation: r.offer_explanation.clone().unwrap_or(serde_json::json!([])),
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
                .unwrap_or_default(),
            id,
            accepted_at: r.accepted_at,
            contact,
        }
    });
    let (person, note, consent) = match (personal, parts.person) {
        (true, Some(p)) => (
            Some(PersonView {
                first_name: p.first_name,
                last_name: p.last_name,
                phone: p.phone,
                email: p.email,
                contact_preference: p.contact_preference,
                commune_code: r.commune_code.clone(),
                commune: p.commune_name,
                languages: r.languages.clone(),
                accessibility: r.accessibility.clone(),
            }),
            p.note,
            Some(ConsentView { obtained: true, method: p.consent_method, at: p.consent_at }),
        ),
        _ => (None, None, None),
    };
    let history = parts.history.map(|rows| {
        rows.into_iter()
            .map(|h| {
                // A coordinator's reason for a reroute is about routing, not the person.
                let show_comment = personal || h.step == "rerouted";
                HistoryView {
                    at: h.at,
                    status: h.step,
                    referral_status: h.status,
                    structure_id: h.structure_id,
                    reason: h.reason,
                    actor: h.actor,
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
        note,
        consent,
        history,
    }
}
