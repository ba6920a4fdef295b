//! Answer links: how a structure with no account answers an offer, from the link of an
//! e-mail (API.md, "Structures without an account: answer links"). A link is a
//! capability for one referral at one structure. `referrals` keeps only the token's hash;
//! `notify` asks for a fresh token when it sends the e-mail, and keeps none; the web app
//! trades the token for a short-lived bearer token scoped to that referral and structure,
//! and then calls the same endpoints a mediator calls.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{DeclineReason, LinkStage, ReferralId, StructureId};

/// `POST /api/v1/answer-links` (the notifications service, when it sends the e-mail).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MintLink {
    pub referral_id: ReferralId,
    pub structure_id: StructureId,
}

/// A fresh link. The token is shown here once; only its hash is kept.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct MintedLink {
    /// At least 128 random bits, URL-safe.
    pub token: String,
    /// Where the link leads on the site: `/reponse/{token}`.
    pub path: String,
}

impl std::fmt::Debug for MintedLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MintedLink(***)")
    }
}

/// `POST /api/v1/answer-links/exchange` and `/renewals` (the web app): the token of a
/// link, in a body, never in a URL the API logs.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkToken {
    pub token: String,
}

impl std::fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkToken(***)")
    }
}

/// What a valid link opens: a bearer token for five minutes, scoped to the link's
/// referral and structure, for the endpoints a mediator of that structure calls.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct LinkSession {
    pub access_token: String,
    pub referral_id: ReferralId,
    pub structure_id: StructureId,
    /// The structure's name, so the person at the desk knows the page is meant for them.
    pub structure_name: String,
    pub stage: LinkStage,
    /// What the page's forms must carry back: bound to this link.
    pub csrf: String,
}

impl std::fmt::Debug for LinkSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LinkSession({}, {}, {:?}, ***)", self.referral_id, self.structure_id, self.stage)
    }
}

/// `POST /api/v1/referrals/{id}/withdraw` (the notifications service): the structure
/// could not be reached, so its pending offer is withdrawn and the referral goes on.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Withdrawal {
    pub structure_id: StructureId,
    /// Only `structure_unreachable`.
    pub reason: DeclineReason,
}
