//! What accounts does, in transactions, for both the HTTP API and the command line.

use contracts::accounts::{AccountView, SignInRequest, SignInResponse};
use contracts::{Personal, Role, Territory};
use platform::vault::Vault;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use contracts::accounts::RequestStatus;

use crate::domain::{self, Grant, Manager};
use crate::store::{self, Audit, Identity, Membership};

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("the e-mail address is not one")]
    BadEmail,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A verified sign-in: creates or refreshes the account, turns the open invitations for
/// its e-mail address into memberships, and audits it.
pub async fn sign_in(
    pool: &PgPool,
    vault: &Vault,
    req: &SignInRequest,
    actor: &str,
) -> Result<SignInResponse, SignInError> {
    let email_key = domain::email_key(req.email.expose()).ok_or(SignInError::BadEmail)?;
    let siret = req.siret.as_deref().and_then(domain::siret);
    let mut tx = pool.begin().await?;
    let identity = Identity {
        issuer: &req.issuer,
        subject: &req.subject,
        email: &req.email,
        email_key: &email_key,
        given_name: req.given_name.as_ref(),
        usual_name: req.usual_name.as_ref(),
        siret: siret.as_deref(),
    };
    let (account_id, created) = store::sign_in(&mut tx, vault, &identity).await?;
    let mut accepted = 0;
    for invitation in store::open_invitations(&mut tx, vault, &email_key).await? {
        store::grant(&mut tx, account_id, &invitation.grant, &format!("invitation:{}", invitation.id)).await?;
        store::accept_invitation(&mut tx, invitation.id, account_id).await?;
        accepted += 1;
    }
    crate::announce::account(&mut tx, account_id).await?;
    let memberships = store::memberships(&mut tx, account_id).await?;
    let detail = json!({ "created": created, "invitations_accepted": accepted, "issuer": req.issuer });
    record(&mut tx, "sign_in", actor, None, Some(account_id), &scopes(&memberships), detail).await?;
    tx.commit().await?;
    tracing::info!(account_id = %account_id, created, invitations_accepted = accepted, "agent signed in");
    Ok(SignInResponse { account_id, created, memberships: memberships.iter().map(Membership::view).collect() })
}

/// Every département the memberships concern, for the audit record.
pub fn scopes(memberships: &[Membership]) -> Vec<Territory> {
    let mut all: Vec<Territory> = memberships.iter().flat_map(|m| m.scope.iter().cloned()).collect();
    all.sort();
    all.dedup();
    all
}

pub async fn record(
    conn: &mut PgConnection,
    action: &str,
    actor: &str,
    membership: Option<&str>,
    account_id: Option<Uuid>,
    territories: &[Territory],
    detail: serde_json::Value,
) -> sqlx::Result<()> {
    store::audit(conn, Audit { action, actor, membership, account_id, territories, detail }).await
}

/// What `grant` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Granted {
    /// The account existed: the membership is in force now.
    Now { account_id: Uuid, membership_id: Option<Uuid> },
    /// Nobody has signed in with that address yet: it is granted at the first sign-in.
    Invited { invitation_id: Uuid },
}

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("`{0}` is not an e-mail address")]
    BadEmail(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Gives the agent with this e-mail address a membership, now or at their first
/// sign-in (how the first admin is made).
pub async fn grant_by_email(
    pool: &PgPool,
    vault: &Vault,
    email: &str,
    grant: &Grant,
    actor: &str,
) -> Result<Granted, GrantError> {
    let key = domain::email_key(email).ok_or_else(|| GrantError::BadEmail(email.to_string()))?;
    let mut tx = pool.begin().await?;
    let granted = match store::account_by_email(&mut tx, vault, &key).await? {
        Some(account_id) => {
            let membership_id = store::grant(&mut tx, account_id, grant, actor).await?;
            crate::announce::account(&mut tx, account_id).await?;
            let detail = json!({ "role": grant.role(), "membership_id": membership_id });
            record(&mut tx, "membership_granted", actor, None, Some(account_id), &[], detail).await?;
            Granted::Now { account_id, membership_id }
        }
        None => {
            let invitation_id =
                store::invite(&mut tx, vault, &Personal::new(email.trim().to_string()), &key, grant, actor).await?;
            let detail = json!({ "role": grant.role(), "invitation_id": invitation_id });
            record(&mut tx, "invitation_created", actor, None, None, &[], detail).await?;
            Granted::Invited { invitation_id }
        }
    };
    tx.commit().await?;
    Ok(granted)
}

/// Removes the memberships of the agent with this e-mail address (of one role, or all).
/// Returns how many were removed; takes effect on the agent's next request.
pub async fn revoke_by_email(
    pool: &PgPool,
    vault: &Vault,
    email: &str,
    role: Option<Role>,
    actor: &str,
) -> Result<usize, GrantError> {
    let key = domain::email_key(email).ok_or_else(|| GrantError::BadEmail(email.to_string()))?;
    let mut tx = pool.begin().await?;
    let Some(account_id) = store::account_by_email(&mut tx, vault, &key).await? else { return Ok(0) };
    let mut removed = 0;
    for m in store::memberships(&mut tx, account_id).await? {
        if role.is_none_or(|r| r == m.grant.role()) {
            store::remove_membership(&mut tx, m.id, actor).await?;
            let detail = json!({ "membership_id": m.id, "role": m.grant.role() });
            record(&mut tx, "membership_removed", actor, None, Some(account_id), &m.scope, detail).await?;
            removed += 1;
        }
    }
    if removed > 0 {
        crate::announce::account(&mut tx, account_id).await?;
    }
    tx.commit().await?;
    Ok(removed)
}

/// Every account and its memberships (for the operator's `account list`).
pub async fn list(pool: &PgPool, vault: &Vault) -> sqlx::Result<Vec<AccountView>> {
    let mut conn = pool.acquire().await?;
    let accounts = store::accounts(&mut conn, vault, None, 10_000).await?;
    Ok(accounts
        .into_iter()
        .map(|(agent, memberships)| AccountView {
            agent,
            memberships: memberships.iter().map(Membership::view).collect(),
        })
        .collect())
}

/// What is decided about a membership request.
#[derive(Debug, Clone)]
pub enum Decision {
    Approve,
    Refuse { reason: Option<String> },
}

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// No such request, or not one this manager may decide on.
    #[error("no such request")]
    NotFound,
    #[error("the request is already {0}")]
    AlreadyDecided(&'static str),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Approves (the agent gets the membership) or refuses a pending request, and audits
/// it, in one transaction. Returns the request's account.
pub async fn decide(
    pool: &PgPool,
    vault: &Vault,
    id: Uuid,
    decision: &Decision,
    manager: &Manager,
    actor: &str,
    from: Option<&str>,
) -> Result<Uuid, DecideError> {
    let mut tx = pool.begin().await?;
    let request = store::lock_request(&mut tx, vault, id).await?.ok_or(DecideError::NotFound)?;
    if !manager.may_manage(&request.scope) {
        return Err(DecideError::NotFound);
    }
    match request.status {
        RequestStatus::Pending => {}
        RequestStatus::Approved => return Err(DecideError::AlreadyDecided("approved")),
        RequestStatus::Refused => return Err(DecideError::AlreadyDecided("refused")),
    }
    let (action, detail) = match decision {
        Decision::Approve => {
            let membership_id = store::grant(&mut tx, request.account_id, &request.grant, actor).await?;
            crate::announce::account(&mut tx, request.account_id).await?;
            store::decide(&mut tx, vault, request.id, RequestStatus::Approved, actor, None).await?;
            (
                "request_approved",
                json!({ "request_id": request.id, "membership_id": membership_id, "role": request.grant.role() }),
            )
        }
        Decision::Refuse { reason } => {
            store::decide(&mut tx, vault, request.id, RequestStatus::Refused, actor, reason.as_deref()).await?;
            ("request_refused", json!({ "request_id": request.id, "role": request.grant.role() }))
        }
    };
    record(&mut tx, action, actor, from, Some(request.account_id), &request.scope, detail).await?;
    tx.commit().await?;
    tracing::info!(request_id = %request.id, action, "membership request decided");
    Ok(request.account_id)
}

/// The pending requests, oldest first, with who asked (for the operator).
pub async fn pending_requests(pool: &PgPool, vault: &Vault) -> sqlx::Result<Vec<contracts::accounts::RequestView>> {
    let mut conn = pool.acquire().await?;
    let filter = store::RequestFilter { status: Some("pending"), account_id: None, territories: None, limit: 500 };
    let mut items = Vec::new();
    for r in store::requests(&mut conn, vault, &filter).await? {
        let agent = store::agent(&mut conn, vault, r.account_id).await?;
        items.push(r.view(agent));
    }
    Ok(items)
}

/// Whether an invitation or an account exists for this address (the demo seeds once).
pub async fn known_email(pool: &PgPool, vault: &Vault, email: &str) -> Result<bool, GrantError> {
    let key = domain::email_key(email).ok_or_else(|| GrantError::BadEmail(email.to_string()))?;
    let mut conn = pool.acquire().await?;
    Ok(store::known_email(&mut conn, vault, &key).await?)
}

/// Writes an account with one membership directly, sealed like a sign-in's (the load
/// generator's recipients of notifications). Returns its id.
pub async fn create_agent(
    conn: &mut PgConnection,
    vault: &Vault,
    issuer: &str,
    email: &str,
    grant: &Grant,
    by: &str,
) -> sqlx::Result<Uuid> {
    let id = store::create_agent(conn, vault, issuer, email, grant, by).await?;
    crate::announce::account(conn, id).await?;
    Ok(id)
}
