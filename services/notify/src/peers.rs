//! What notify asks of other services, through their API (in process when they run
//! here, over HTTP at `AIGUILLAGE_API_URL` in a split deployment), with a service token:
//! agents' e-mail addresses from accounts, at send time, and from referrals an answer
//! link when the e-mail that carries it goes, or the withdrawal of an offer whose
//! structure cannot be reached. Nothing it is given is kept: an address or a link lives
//! in the message being sent.

use std::collections::HashMap;

use contracts::Personal;
use contracts::accounts::{Recipients as Found, RecipientsRequest};
use contracts::answer_links::{MintLink, MintedLink, Withdrawal};
use contracts::{DeclineReason, ReferralId, StructureId};
use platform::auth::{Authenticator, Claims};
use platform::client::{ApiClient, CallError};
use uuid::Uuid;

/// How long the service token of one call lives: it is used at once.
const TOKEN_TTL: chrono::Duration = chrono::Duration::minutes(1);

#[derive(Clone, Debug)]
pub struct Peers {
    accounts: ApiClient,
    referrals: ApiClient,
    auth: Authenticator,
}

impl Peers {
    /// The APIs of accounts and referrals; `auth` signs this service's tokens.
    pub fn new(accounts: ApiClient, referrals: ApiClient, auth: Authenticator) -> Self {
        Self { accounts, referrals, auth }
    }

    fn token(&self) -> String {
        self.auth.ring().issue(&Claims::for_service(crate::SERVICE, TOKEN_TTL))
    }

    /// The addresses of these accounts; an unknown or purged account has none.
    pub async fn addresses(&self, accounts: &[Uuid]) -> Result<HashMap<Uuid, Personal<String>>, CallError> {
        let mut found = HashMap::with_capacity(accounts.len());
        if accounts.is_empty() {
            return Ok(found);
        }
        let token = self.token();
        let mut wanted = accounts.to_vec();
        wanted.sort();
        wanted.dedup();
        for chunk in wanted.chunks(RecipientsRequest::MAX) {
            let body = RecipientsRequest { accounts: chunk.to_vec() };
            let answer: Found = self.accounts.post("/api/v1/accounts/recipients", &token, &body).await?;
            found.extend(answer.items.into_iter().map(|r| (r.account_id, r.email)));
        }
        Ok(found)
    }

    /// A fresh answer link for a structure's offer or follow-up. A 409 means the offer
    /// ended before the e-mail went.
    pub async fn mint_link(&self, referral: ReferralId, structure: &StructureId) -> Result<MintedLink, CallError> {
        let body = MintLink { referral_id: referral, structure_id: structure.clone() };
        self.referrals.post("/api/v1/answer-links", &self.token(), &body).await
    }

    /// Withdraws the structure's pending offer of the referral: its address refused the
    /// e-mail for good. A 409 means the offer had already moved on.
    pub async fn withdraw(&self, referral: ReferralId, structure: &StructureId) -> Result<(), CallError> {
        let body = Withdrawal { structure_id: structure.clone(), reason: DeclineReason::StructureUnreachable };
        let path = format!("/api/v1/referrals/{referral}/withdraw");
        let _: serde_json::Value = self.referrals.post(&path, &self.token(), &body).await?;
        Ok(())
    }
}
