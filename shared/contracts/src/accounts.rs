//! The accounts API's bodies: who is signed in, their memberships, requests for a
//! membership, invitations and the audit of sign-ins. Agents' names and e-mail addresses
//! are personal data: they travel in [`Personal`], whose `Debug` prints `***`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{OrganisationId, Personal, Role, StructureId, Territory};

/// One role over one scope, held by an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipView {
    pub id: Uuid,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation_id: Option<OrganisationId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structure_id: Option<StructureId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub territories: Vec<Territory>,
    /// What people read: the organisation's or structure's name, or the départements.
    pub label: String,
}

/// Who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerKind {
    Agent,
    Token,
    Service,
}

/// `GET /api/v1/me`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeView {
    pub kind: CallerKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<Personal<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usual_name: Option<Personal<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Personal<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub siret: Option<String>,
    pub memberships: Vec<MembershipView>,
    /// The membership this call acts for (a signed-in agent's active one), if any.
    pub active: Option<Uuid>,
    /// The agent's membership requests still waiting for a decision.
    #[serde(default)]
    pub requests: Vec<RequestView>,
}

/// `POST /api/v1/accounts/sign-ins`: an identity the web app has verified with the
/// OpenID provider.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    pub issuer: String,
    pub subject: String,
    pub email: Personal<String>,
    #[serde(default)]
    pub given_name: Option<Personal<String>>,
    #[serde(default)]
    pub usual_name: Option<Personal<String>>,
    #[serde(default)]
    pub siret: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignInResponse {
    pub account_id: Uuid,
    pub created: bool,
    pub memberships: Vec<MembershipView>,
}

/// `POST /api/v1/accounts/sign-in-failures`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SignInFailure {
    /// A code (`state_mismatch`, `bad_id_token` …), never a personal value.
    pub reason: String,
    #[serde(default)]
    pub issuer: Option<String>,
}

/// A membership as a request or an invitation names it. Loosely typed, so every bad
/// field is reported at once.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipBody {
    pub role: Option<String>,
    pub organisation_id: Option<String>,
    pub structure_id: Option<String>,
    pub territories: Option<Vec<String>>,
}

/// `POST /api/v1/accounts/requests`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipRequestBody {
    pub role: Option<String>,
    pub organisation_id: Option<String>,
    pub structure_id: Option<String>,
    pub territories: Option<Vec<String>>,
    pub message: Option<String>,
}

/// The agent a request or an account is about, for those who decide on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentView {
    pub account_id: Uuid,
    pub given_name: Option<Personal<String>>,
    pub usual_name: Option<Personal<String>>,
    pub email: Personal<String>,
    pub siret: Option<String>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Pending,
    Approved,
    Refused,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestView {
    pub id: Uuid,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation_id: Option<OrganisationId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structure_id: Option<StructureId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub territories: Vec<Territory>,
    pub label: String,
    pub status: RequestStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Personal<String>>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    /// Shown to those who decide, not to the agent who asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AgentView>,
}

/// `POST /api/v1/accounts/requests/{id}/refuse`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RefuseBody {
    pub reason: Option<String>,
}

/// `POST /api/v1/accounts/invitations`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InvitationBody {
    pub email: Option<String>,
    pub membership: Option<MembershipBody>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvitationView {
    pub id: Uuid,
    pub email: Personal<String>,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation_id: Option<OrganisationId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structure_id: Option<StructureId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub territories: Vec<Territory>,
    pub label: String,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<DateTime<Utc>>,
}

/// An account and its memberships (`GET /api/v1/accounts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountView {
    #[serde(flatten)]
    pub agent: AgentView,
    pub memberships: Vec<MembershipView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaceKind {
    Structure,
    Organisation,
}

/// What a membership request can name (`GET /api/v1/accounts/places`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaceView {
    pub kind: PlaceKind,
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commune: Option<String>,
    pub territory: Territory,
    /// The agent's SIRET (from ProConnect) is this place's.
    pub matches_siret: bool,
}

/// One record of the sign-in and membership audit: who, when, what, from which
/// membership. No personal value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub action: String,
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<Uuid>,
    pub detail: serde_json::Value,
}

/// A page of items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}
