//! HTTP request bodies as they arrive on the wire. Fields are loosely typed (strings,
//! options) on purpose: each service parses them into its domain types and reports
//! every bad field at once, rather than stopping at the first one serde meets.
//! Unknown fields are rejected.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganisationRequest {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub territory: Option<String>,
    pub siret: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressRequest {
    pub street: Option<String>,
    pub postcode: Option<String>,
    pub commune: Option<String>,
    pub commune_code: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointRequest {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StructureContactRequest {
    pub phone: Option<String>,
    pub email: Option<String>,
    pub website: Option<String>,
}

/// `PUT /api/v1/structures/{id}`. The read-only fields of a `GET` response (`id`,
/// `territory`, `source`, `updated_at`) are accepted and ignored, so a client can send
/// back what it read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StructureRequest {
    pub name: Option<String>,
    pub services: Option<Vec<String>>,
    pub modes: Option<Vec<String>>,
    pub languages: Option<Vec<String>>,
    pub other_languages: Option<bool>,
    pub accessibility: Option<Vec<String>>,
    pub address: Option<AddressRequest>,
    pub location: Option<PointRequest>,
    pub opening_hours: Option<String>,
    pub weekly_capacity: Option<i64>,
    pub accepting: Option<bool>,
    pub contact: Option<StructureContactRequest>,
    pub fees: Option<Vec<String>>,
    pub labels: Option<Vec<String>>,
    #[serde(rename = "id")]
    pub _id: Option<serde_json::Value>,
    #[serde(rename = "territory")]
    pub _territory: Option<serde_json::Value>,
    #[serde(rename = "source")]
    pub _source: Option<serde_json::Value>,
    #[serde(rename = "updated_at")]
    pub _updated_at: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityRequest {
    pub weekly_capacity: Option<i64>,
    pub accepting: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonRequest {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub contact_preference: Option<String>,
    pub commune_code: Option<String>,
    pub postcode: Option<String>,
    pub languages: Option<Vec<String>>,
    pub accessibility: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    pub obtained: Option<bool>,
    pub method: Option<String>,
    pub at: Option<String>,
}

/// `POST /api/v1/referrals`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferralRequest {
    pub person: Option<PersonRequest>,
    pub needs: Option<Vec<String>>,
    pub modes: Option<Vec<String>>,
    pub max_distance_km: Option<f64>,
    pub urgency: Option<String>,
    pub deadline: Option<String>,
    pub note: Option<String>,
    pub consent: Option<ConsentRequest>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    pub mediator_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclineRequest {
    pub reason: Option<String>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactRequest {
    pub kind: Option<String>,
    pub at: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    pub outcome: Option<String>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RerouteRequest {
    pub structure_id: Option<String>,
    pub force: Option<bool>,
    pub reason: Option<String>,
}

/// `POST /api/v1/match/preview`: a profile with no personal data.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    pub commune_code: Option<String>,
    pub postcode: Option<String>,
    pub needs: Option<Vec<String>>,
    pub modes: Option<Vec<String>>,
    pub languages: Option<Vec<String>>,
    pub accessibility: Option<Vec<String>>,
    pub max_distance_km: Option<f64>,
    pub urgency: Option<String>,
    pub limit: Option<u32>,
}
