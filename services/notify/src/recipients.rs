//! Agents' e-mail addresses, asked of accounts at send time through its API (in process,
//! or over HTTP in a split deployment). Notify stores account ids only, and keeps no
//! address after sending.

use std::collections::HashMap;

use contracts::Personal;
use contracts::accounts::{Recipients as Found, RecipientsRequest};
use platform::auth::{Authenticator, Claims};
use platform::client::{ApiClient, CallError};
use uuid::Uuid;

/// How long the service token of one call lives: it is used at once.
const TOKEN_TTL: chrono::Duration = chrono::Duration::minutes(1);

#[derive(Clone, Debug)]
pub struct Recipients {
    api: ApiClient,
    auth: Authenticator,
}

impl Recipients {
    /// `api` reaches accounts' API; `auth` signs this service's tokens.
    pub fn new(api: ApiClient, auth: Authenticator) -> Self {
        Self { api, auth }
    }

    /// The addresses of these accounts; an unknown or purged account has none.
    pub async fn addresses(&self, accounts: &[Uuid]) -> Result<HashMap<Uuid, Personal<String>>, CallError> {
        let mut found = HashMap::with_capacity(accounts.len());
        if accounts.is_empty() {
            return Ok(found);
        }
        let token = self.auth.ring().issue(&Claims::for_service(crate::SERVICE, TOKEN_TTL));
        let mut wanted = accounts.to_vec();
        wanted.sort();
        wanted.dedup();
        for chunk in wanted.chunks(RecipientsRequest::MAX) {
            let body = RecipientsRequest { accounts: chunk.to_vec() };
            let answer: Found = self.api.post("/api/v1/accounts/recipients", &token, &body).await?;
            found.extend(answer.items.into_iter().map(|r| (r.account_id, r.email)));
        }
        Ok(found)
    }
}
