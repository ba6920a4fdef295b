//! The accounts API's bodies: who is signed in, their memberships, requests for a
//! membership, invitations and the audit of sign-ins. Agents' names and e-mail addresses
//! are personal data: they travel in [`Personal`], whose `Debug` prints `***`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{DeliveryMode, MessageKind, OrganisationId, Personal, Role, StructureId, Territory};

/// One role over one scope, held by an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallerKind {
    Agent,
    Token,
    Service,
}

/// `GET /api/v1/me`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MeView {
    pub kind: CallerKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub given_name: Option<Personal<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub usual_name: Option<Personal<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
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
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    #[schema(schema_with = crate::api::schema::text::<500>)]
    pub issuer: String,
    #[schema(schema_with = crate::api::schema::text::<255>)]
    pub subject: String,
    #[schema(value_type = String, format = Email, max_length = 254)]
    pub email: Personal<String>,
    #[serde(default)]
    #[schema(schema_with = crate::api::schema::optional_text::<200>)]
    pub given_name: Option<Personal<String>>,
    #[serde(default)]
    #[schema(schema_with = crate::api::schema::optional_text::<200>)]
    pub usual_name: Option<Personal<String>>,
    /// Kept only when it is one (14 digits).
    #[serde(default)]
    #[schema(schema_with = crate::api::schema::optional_text::<40>)]
    pub siret: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignInResponse {
    pub account_id: Uuid,
    pub created: bool,
    pub memberships: Vec<MembershipView>,
}

/// `POST /api/v1/accounts/sign-in-failures`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInFailure {
    /// A code (`state_mismatch`, `bad_id_token` …), never a personal value.
    #[schema(pattern = "^[a-z_]{1,64}$")]
    pub reason: String,
    #[serde(default)]
    #[schema(schema_with = crate::api::schema::optional_text::<500>)]
    pub issuer: Option<String>,
}

/// A membership as a request or an invitation names it. Loosely typed, so every bad
/// field is reported at once.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MembershipBody {
    #[schema(value_type = Role, required = true)]
    pub role: Option<String>,
    /// A referrer's organisation.
    #[schema(value_type = Option<crate::OrganisationId>)]
    pub organisation_id: Option<String>,
    /// A mediator's structure.
    #[schema(value_type = Option<crate::StructureId>)]
    pub structure_id: Option<String>,
    /// A coordinator's départements.
    #[schema(value_type = Option<Vec<Territory>>)]
    pub territories: Option<Vec<String>>,
}

/// `POST /api/v1/accounts/requests`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MembershipRequestBody {
    #[schema(value_type = Role, required = true)]
    pub role: Option<String>,
    /// A referrer's organisation.
    #[schema(value_type = Option<crate::OrganisationId>)]
    pub organisation_id: Option<String>,
    /// A mediator's structure.
    #[schema(value_type = Option<crate::StructureId>)]
    pub structure_id: Option<String>,
    /// A coordinator's départements.
    #[schema(value_type = Option<Vec<Territory>>)]
    pub territories: Option<Vec<String>>,
    /// For those who decide.
    #[schema(schema_with = crate::api::schema::optional_text::<500>)]
    pub message: Option<String>,
}

/// The agent a request or an account is about, for those who decide on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentView {
    pub account_id: Uuid,
    #[schema(value_type = Option<String>)]
    pub given_name: Option<Personal<String>>,
    #[schema(value_type = Option<String>)]
    pub usual_name: Option<Personal<String>>,
    #[schema(value_type = String)]
    pub email: Personal<String>,
    pub siret: Option<String>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Pending,
    Approved,
    Refused,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    #[schema(value_type = Option<String>)]
    pub message: Option<Personal<String>>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    /// Shown to those who decide, not to the agent who asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AgentView>,
}

/// `POST /api/v1/accounts/requests/{id}/refuse`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefuseBody {
    /// Shown to the agent.
    #[schema(schema_with = crate::api::schema::optional_text::<500>)]
    pub reason: Option<String>,
}

/// `POST /api/v1/accounts/invitations`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationBody {
    /// The invited agent's e-mail address, as ProConnect will give it.
    #[schema(value_type = String, format = Email, required = true)]
    pub email: Option<String>,
    #[schema(value_type = MembershipBody, required = true)]
    pub membership: Option<MembershipBody>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InvitationView {
    pub id: Uuid,
    #[schema(value_type = String)]
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

/// `granted` when the agent had already signed in, `invited` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    Granted,
    Invited,
}

/// What `POST /api/v1/accounts/invitations` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InvitationResult {
    pub status: InvitationStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership_id: Option<Uuid>,
}

/// An agent's notification preferences: for each kind of message, `immediate`, `daily`
/// (in the morning digest) or `never`. In a `PUT`, a kind left out keeps its setting; a
/// `GET` answers every kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesBody {
    /// A new offer for my structure (mediators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_received: Option<DeliveryMode>,
    /// An offer still pending after a day (mediators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_reminder: Option<DeliveryMode>,
    /// What became of my referrals: accepted, declined, closed, waitlisted (referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral_update: Option<DeliveryMode>,
    /// An accepted referral with no first contact after a week (mediators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_reminder: Option<DeliveryMode>,
    /// Referrals waitlisted or escalated in my départements (coordinators; default `daily`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub territory_waitlist: Option<DeliveryMode>,
    /// The weekly digest of stale referrals (coordinators): `never` turns it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly_digest: Option<DeliveryMode>,
}

impl PreferencesBody {
    fn slot(&mut self, kind: MessageKind) -> &mut Option<DeliveryMode> {
        match kind {
            MessageKind::OfferReceived => &mut self.offer_received,
            MessageKind::OfferReminder => &mut self.offer_reminder,
            MessageKind::ReferralUpdate => &mut self.referral_update,
            MessageKind::ContactReminder => &mut self.contact_reminder,
            MessageKind::TerritoryWaitlist => &mut self.territory_waitlist,
            MessageKind::WeeklyDigest => &mut self.weekly_digest,
        }
    }

    /// The mode the body sets for `kind`, if it names it.
    pub fn mode(&self, kind: MessageKind) -> Option<DeliveryMode> {
        match kind {
            MessageKind::OfferReceived => self.offer_received,
            MessageKind::OfferReminder => self.offer_reminder,
            MessageKind::ReferralUpdate => self.referral_update,
            MessageKind::ContactReminder => self.contact_reminder,
            MessageKind::TerritoryWaitlist => self.territory_waitlist,
            MessageKind::WeeklyDigest => self.weekly_digest,
        }
    }

    pub fn set(&mut self, kind: MessageKind, mode: DeliveryMode) {
        *self.slot(kind) = Some(mode);
    }

    /// The kinds the body names, with their mode.
    pub fn choices(&self) -> BTreeMap<MessageKind, DeliveryMode> {
        MessageKind::ALL.iter().filter_map(|k| Some((*k, self.mode(*k)?))).collect()
    }

    /// Every kind: its chosen mode, else the kind's default.
    pub fn of(chosen: &BTreeMap<MessageKind, DeliveryMode>) -> Self {
        let mut body = Self::default();
        for kind in MessageKind::ALL {
            body.set(*kind, chosen.get(kind).copied().unwrap_or(kind.default_mode()));
        }
        body
    }
}

/// An account and its memberships (`GET /api/v1/accounts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccountView {
    #[serde(flatten)]
    pub agent: AgentView,
    pub memberships: Vec<MembershipView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlaceKind {
    Structure,
    Organisation,
}

/// What a membership request can name (`GET /api/v1/accounts/places`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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

/// `GET /api/v1/accounts/places`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Places {
    pub items: Vec<PlaceView>,
}

/// One record of the sign-in and membership audit: who, when, what, from which
/// membership. No personal value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// Rules across the fields of the accounts bodies (see [`crate::api::cross_field_rules`]):
/// a membership names exactly the scope of its role.
pub fn cross_field_rules() -> Vec<(&'static str, serde_json::Value)> {
    let absent = serde_json::json!({ "type": "null" });
    let no_territories = serde_json::json!({ "anyOf": [{ "type": "null" }, { "type": "array", "maxItems": 0 }] });
    let role = |role: &str, scope: Option<(&str, serde_json::Value)>| {
        let mut properties = serde_json::json!({
            "role": { "const": role },
            "organisation_id": absent,
            "structure_id": absent,
            "territories": no_territories,
        });
        let mut required = vec![serde_json::json!("role")];
        if let Some((field, schema)) = scope {
            properties[field] = schema;
            required.push(serde_json::json!(field));
        }
        serde_json::json!({ "properties": properties, "required": required })
    };
    let scoped = |with_admin: bool| {
        let mut branches = vec![
            role(
                "referrer",
                Some(("organisation_id", serde_json::json!({ "$ref": "#/components/schemas/OrganisationId" }))),
            ),
            role("mediator", Some(("structure_id", serde_json::json!({ "$ref": "#/components/schemas/StructureId" })))),
            role(
                "coordinator",
                Some((
                    "territories",
                    serde_json::json!({ "type": "array", "minItems": 1, "items": { "$ref": "#/components/schemas/Territory" } }),
                )),
            ),
        ];
        if with_admin {
            branches.push(role("admin", None));
        }
        serde_json::json!({
            "description": "Exactly the scope of the role: an organisation for a referrer, a structure for a \
                mediator, départements for a coordinator.",
            "oneOf": branches,
        })
    };
    vec![("MembershipBody", scoped(true)), ("MembershipRequestBody", scoped(false))]
}

/// `POST /api/v1/accounts/recipients` (services only: notifications, at send time): the
/// e-mail addresses of some accounts. Addresses stay in `accounts`; the sender asks for
/// them when it sends, and keeps none.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecipientsRequest {
    /// At most [`RecipientsRequest::MAX`] account ids.
    #[schema(max_items = 100)]
    pub accounts: Vec<Uuid>,
}

impl RecipientsRequest {
    /// What one call may ask for: a batch of the sender.
    pub const MAX: usize = 100;
}

/// The addresses found; an unknown or purged account is left out.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Recipients {
    pub items: Vec<Recipient>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Recipient {
    pub account_id: Uuid,
    #[schema(value_type = String, format = Email)]
    pub email: Personal<String>,
}
