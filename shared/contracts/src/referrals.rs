//! The referrals API's answers: a referral as one caller may see it, and a page of them.
//! Personal data (the person, the note, comments written by people) is included only for
//! the referrer organisation, the accepting structure and admin. The referrals service
//! serialises these types and the web app reads them back: one declaration for both.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    Accessibility, Actor, AnsweredVia, AuditAction, CommuneCode, ContactPreference, HistoryStep, Language, Need,
    OrganisationId, Outcome, ReferralId, ReferralMode, ReferralStatus, StructureId, Territory, Urgency, WaitlistReason,
};

/// Why a referral's personal data is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Removal {
    /// The retention time ran out.
    Purged,
    /// The person asked (art. 17).
    Erased,
}

impl std::str::FromStr for Removal {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "purged" => Ok(Removal::Purged),
            "erased" => Ok(Removal::Erased),
            other => Err(format!("unknown removal `{other}`, expected purged or erased")),
        }
    }
}

impl Removal {
    pub fn slug(self) -> &'static str {
        match self {
            Removal::Purged => "purged",
            Removal::Erased => "erased",
        }
    }

    /// What a page shows in place of the person.
    pub fn label_fr(self) -> &'static str {
        match self {
            Removal::Purged => "données supprimées (durée de conservation)",
            Removal::Erased => "données supprimées (à la demande de la personne)",
        }
    }
}

/// A referral as one caller may see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
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
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
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
    /// The appointment the accepting structure set, for the referrer organisation, the
    /// accepting structure and admin; absent for others, and `null` when none is set.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    #[schema(value_type = Option<AppointmentView>, nullable = true)]
    pub appointment: Option<Option<AppointmentView>>,
}

/// `PUT /api/v1/referrals/{id}/appointment` (the accepting structure): sets it, or moves it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppointmentBody {
    /// In the future, with its offset (`2026-12-10T09:30:00+01:00`).
    pub at: DateTime<chrono::FixedOffset>,
    /// From 5 to 480.
    #[serde(deserialize_with = "whole_minutes")]
    #[schema(minimum = 5, maximum = 480)]
    pub duration_minutes: u32,
    /// A room or another place than the structure's address; at most 200 characters.
    #[serde(default)]
    #[schema(schema_with = crate::api::schema::optional_text::<200>)]
    pub place: Option<String>,
}

/// A whole number of minutes, written `60` or `60.0` (JSON Schema's `integer` allows both).
fn whole_minutes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    n.as_u64()
        .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 4.0e9).map(|f| f as u64))
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| serde::de::Error::custom(format!("expected a whole number of minutes, got {n}")))
}

/// `POST /api/v1/referrals/{id}/appointment/attendance`, once the time has passed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttendanceBody {
    pub attended: bool,
}

/// The appointment of an accepted referral.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = Appointment)]
pub struct AppointmentView {
    pub at: DateTime<Utc>,
    pub duration_minutes: u32,
    pub place: Option<String>,
    /// Whether the person came, once recorded.
    pub attended: Option<bool>,
    /// How the person was told, message by message.
    pub notice: Vec<NoticeView>,
}

/// One message about the appointment to the person (or to the referrer who tells them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = Notice)]
pub struct NoticeView {
    pub channel: crate::NoticeChannel,
    pub kind: crate::AppointmentNotice,
    pub status: crate::NoticeStatus,
    pub at: DateTime<Utc>,
}

impl ReferralView {
    /// The person, when this caller sees them and they are still held.
    pub fn held_person(&self) -> Option<&PersonView> {
        self.person.as_ref().and_then(Option::as_ref)
    }
}

/// A field that is absent (`None`) or present, `null` or not (`Some(None)`, `Some(Some)`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
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
    pub reasons: Vec<crate::explain::Reason>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = AcceptingStructure)]
pub struct StructureView {
    pub id: StructureId,
    pub name: String,
    pub accepted_at: Option<DateTime<Utc>>,
    /// `null` if the structure has left the directory.
    pub contact: Option<StructureContactView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = AcceptingStructureContact)]
pub struct StructureContactView {
    pub phone: Option<String>,
    pub email: Option<String>,
    pub website: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
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

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = Consent)]
pub struct ConsentView {
    pub obtained: bool,
    pub method: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
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
    /// `answer_link` for a step a structure took through the link of its e-mail (the
    /// actor is then `answer_link:{structure_id}`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<AnsweredVia>,
    /// Facts of the step (`attempt`, `distance_km`, `expires_at`, `kind` …).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    #[schema(value_type = Option<Object>, nullable = false)]
    pub detail: serde_json::Value,
}

/// A page of referrals.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReferralPage {
    pub items: Vec<ReferralView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// One entry of the audit of access to personal data (`GET /api/v1/audit`, and the
/// command line's `audit list`): who read, exported or changed which referral's personal
/// data, and when. No personal value.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = PersonalDataAuditEntry)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    /// The role, scope and who (`account:…` or `token:…`).
    pub actor: Actor,
    /// The active membership of a signed-in agent.
    pub membership: Option<Uuid>,
    /// `read`, `export`, `correct`, `erase`, or a step (`submit`, `accept` …).
    pub action: AuditAction,
    pub referral_id: Option<ReferralId>,
}

/// A page of the audit of access to personal data.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_person_absent_null_or_held_reads_back_as_it_was_written() {
        let person = |json: &str| {
            let mut v: serde_json::Value = serde_json::from_str(REFERRAL).unwrap();
            if json != "absent" {
                v["person"] = serde_json::from_str(json).unwrap();
            }
            serde_json::from_value::<ReferralView>(v).unwrap().person
        };
        assert!(person("absent").is_none());
        assert!(matches!(person("null"), Some(None)));
        let held = r#"{"first_name": "A", "last_name": "B", "phone": null, "email": null,
            "contact_preference": "phone", "commune_code": "16015", "commune": "Angoulême",
            "languages": ["fr"], "accessibility": []}"#;
        assert_eq!(person(held).unwrap().unwrap().first_name, "A");
    }

    #[test]
    fn an_answer_missing_a_field_the_api_always_sends_is_an_error() {
        let mut v: serde_json::Value = serde_json::from_str(REFERRAL).unwrap();
        v.as_object_mut().unwrap().remove("escalated");
        assert!(serde_json::from_value::<ReferralView>(v).unwrap_err().to_string().contains("escalated"));
    }

    const REFERRAL: &str = r#"{
        "id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "status": "submitted",
        "created_at": "2026-11-28T09:55:00Z", "updated_at": "2026-11-28T09:55:00Z",
        "status_changed_at": "2026-11-28T09:55:00Z", "time_in_status_seconds": 0,
        "organisation_id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c", "territory": "16",
        "commune_code": "16015", "needs": ["aide_demarches_administratives"], "modes": ["in_person"],
        "languages": ["fr"], "accessibility": [], "max_distance_km": 30, "urgency": "normal",
        "deadline": null, "attempts": 0, "escalated": false, "waitlist_reason": null,
        "current_offer": null, "structure": null, "outcome": null, "closed_at": null
    }"#;
}
