//! The matcher API's answer: why a referral goes where it goes (the candidates, and the
//! nearby structures excluded with the constraint that excluded them). The matcher
//! serialises it and the web app reads it back.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{ExclusionCode, ReferralId, StructureId};

/// A structure that can take the referral, best first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = Candidate)]
pub struct CandidateView {
    pub structure_id: StructureId,
    pub name: String,
    pub distance_km: f64,
    pub score: f64,
    pub load: LoadView,
    /// The next opening, local time (`2026-12-01T09:00`); `null` when the hours are unknown.
    pub next_opening: Option<String>,
    /// Helped remotely, so distance does not count.
    pub remote: bool,
    pub explanation: Vec<String>,
    /// The same, as codes with their values.
    pub reasons: Vec<crate::explain::Reason>,
}

/// This week's accepted referrals against the declared capacity.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = Load)]
pub struct LoadView {
    pub used: u32,
    pub weekly_capacity: u32,
}

/// One constraint that excludes a structure.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = ExclusionReason)]
pub struct ReasonView {
    pub code: ExclusionCode,
    pub message: String,
}

/// A structure near the person that cannot take the referral, and why.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = ExcludedStructure)]
pub struct ExcludedView {
    pub structure_id: StructureId,
    pub name: String,
    pub distance_km: f64,
    pub reasons: Vec<ReasonView>,
    /// The structure's public phone number, for one that is `unreachable` otherwise: the
    /// person or the referrer can still call it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// Why a referral goes where it goes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = Assessment)]
pub struct AssessmentView {
    /// The referral assessed (absent for a preview).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referral_id: Option<ReferralId>,
    pub max_distance_km: f64,
    pub candidates: Vec<CandidateView>,
    pub excluded: Vec<ExcludedView>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_excluded_structure_reads_back_with_its_codes() {
        let json = r#"{"max_distance_km": 30, "candidates": [], "excluded": [{"structure_id": "lieu",
            "name": "Lieu", "distance_km": 2.5,
            "reasons": [{"code": "no_capacity", "message": "no capacity left this week (1/1 used)"}]}]}"#;
        let a: AssessmentView = serde_json::from_str(json).unwrap();
        assert_eq!(a.excluded[0].reasons[0].code, ExclusionCode::NoCapacity);
        assert_eq!(a.excluded[0].reasons[0].code.label_fr(), "Plus de place cette semaine");
    }
}
