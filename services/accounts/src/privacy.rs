//! Privacy by design for agents (issue 15): sealing rows left in plain text by a database
//! migrated from before encryption, the purge of accounts without a sign-in for the
//! account retention, and the data keys' refresh.
//!
//! - **Purge.** [`purge`] empties accounts whose last sign-in (or creation, for an
//!   account that never signed in) is older than the retention, in batches: each batch is
//!   one transaction, takes its rows `FOR UPDATE SKIP LOCKED` (two replicas share the
//!   work) and marks them `purged_at`, so a run that stops part-way resumes where it was
//!   and a second run finds nothing left to do.
//! - **What stays.** The account's id (which the audit, the referrals' audit and removed
//!   memberships name), its issuer, creation and last sign-in times. Its names, e-mail
//!   address and its blind index, SIRET and provider subject are gone; its memberships
//!   are removed, its pending requests refused, the free text of its requests cleared and
//!   its notification preferences deleted. A later sign-in makes a new account.

use std::time::Duration;

use chrono::{DateTime, Utc};
use platform::vault::Vault;
use serde::Serialize;
use sqlx::PgPool;

use crate::store::{email_index, place};

/// What an account purge did (or, dry, would do).
#[derive(Debug, Default, Serialize)]
pub struct PurgeReport {
    pub dry_run: bool,
    /// Accounts without a sign-in since before this.
    pub cutoff: DateTime<Utc>,
    pub accounts: u64,
    pub batches: u64,
}

const PURGE_BATCH: i64 = 500;
/// Who the purge's membership removals and audit entries name.
pub const ACTOR: &str = "retention";

/// Purges the accounts without a sign-in since before `now - retention`.
pub async fn purge(pool: &PgPool, retention: Duration, dry_run: bool) -> sqlx::Result<PurgeReport> {
    let cutoff = Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(730));
    let mut report = PurgeReport { dry_run, cutoff, ..Default::default() };
    if dry_run {
        let n = sqlx::query_scalar!(
            r#"SELECT count(*) AS "n!" FROM accounts.accounts
               WHERE purged_at IS NULL AND COALESCE(last_sign_in_at, created_at) < $1"#,
            cutoff
        )
        .fetch_one(pool)
        .await?;
        report.accounts = n as u64;
        return Ok(report);
    }
    loop {
        let mut tx = pool.begin().await?;
        let ids = sqlx::query_scalar!(
            "SELECT id FROM accounts.accounts
             WHERE purged_at IS NULL AND COALESCE(last_sign_in_at, created_at) < $1
             ORDER BY COALESCE(last_sign_in_at, created_at), id LIMIT $2
             FOR UPDATE SKIP LOCKED",
            cutoff,
            PURGE_BATCH
        )
        .fetch_all(&mut *tx)
        .await?;
        if ids.is_empty() {
            tx.rollback().await?;
            break;
        }
        sqlx::query!(
            "UPDATE accounts.memberships SET removed_at = now(), removed_by = $2
             WHERE account_id = ANY($1) AND removed_at IS NULL",
            &ids,
            ACTOR
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE accounts.requests SET message = NULL, decision_reason = NULL,
                    status = CASE status WHEN 'pending' THEN 'refused' ELSE status END,
                    decided_at = COALESCE(decided_at, now()), decided_by = COALESCE(decided_by, $2)
             WHERE account_id = ANY($1)",
            &ids,
            ACTOR
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!("DELETE FROM accounts.notification_preferences WHERE account_id = ANY($1)", &ids)
            .execute(&mut *tx)
            .await?;
        let purged = sqlx::query!(
            "UPDATE accounts.accounts SET given_name = NULL, usual_name = NULL, email = NULL, email_key = NULL,
                    siret = NULL, key_id = NULL, subject = 'purged:' || id::text, purged_at = now()
             WHERE id = ANY($1)",
            &ids
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query!(
            "INSERT INTO accounts.audit (action, actor, account_id) SELECT 'account_purged', $2, unnest($1::uuid[])",
            &ids,
            ACTOR
        )
        .execute(&mut *tx)
        .await?;
        for id in &ids {
            crate::announce::account(&mut tx, *id).await?;
        }
        tx.commit().await?;
        report.accounts += purged;
        report.batches += 1;
        if (ids.len() as i64) < PURGE_BATCH {
            break;
        }
    }
    Ok(report)
}

/// Seals the rows a database migrated from before encryption holds in plain text, and
/// replaces their plain `email_key` with its blind index. Idempotent; each row is sealed
/// in one statement.
pub async fn seal_legacy(pool: &PgPool, vault: &Vault) -> sqlx::Result<u64> {
    let key_id = vault.current_key() as i32;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut sealed = 0;
    let accounts = sqlx::query!(
        "SELECT id, given_name, usual_name, email FROM accounts.accounts WHERE key_id IS NULL AND purged_at IS NULL"
    )
    .fetch_all(pool)
    .await?;
    for a in accounts {
        let id = a.id;
        let seal = |col: &str, v: &[u8]| vault.seal(&place(col, id), &text(v));
        let key = a.email.as_deref().map(|e| email_index(vault, &normalised(&text(e))));
        sqlx::query!(
            "UPDATE accounts.accounts SET given_name = $2, usual_name = $3, email = $4, email_key = $5, key_id = $6
             WHERE id = $1 AND key_id IS NULL",
            id,
            a.given_name.as_deref().map(|v| seal("accounts.given_name", v)),
            a.usual_name.as_deref().map(|v| seal("accounts.usual_name", v)),
            a.email.as_deref().map(|v| seal("accounts.email", v)),
            key,
            key_id
        )
        .execute(pool)
        .await?;
        sealed += 1;
    }
    let invitations =
        sqlx::query!("SELECT id, email FROM accounts.invitations WHERE key_id IS NULL").fetch_all(pool).await?;
    for i in invitations {
        let (id, email) = (i.id, text(&i.email));
        sqlx::query!(
            "UPDATE accounts.invitations SET email = $2, email_key = $3, key_id = $4 WHERE id = $1 AND key_id IS NULL",
            id,
            vault.seal(&place("invitations.email", id), &email),
            email_index(vault, &normalised(&email)),
            key_id
        )
        .execute(pool)
        .await?;
        sealed += 1;
    }
    let requests = sqlx::query!("SELECT id, message, decision_reason FROM accounts.requests WHERE key_id IS NULL")
        .fetch_all(pool)
        .await?;
    for r in requests {
        let id = r.id;
        sqlx::query!(
            "UPDATE accounts.requests SET message = $2, decision_reason = $3, key_id = $4 WHERE id = $1 AND key_id IS NULL",
            id,
            r.message.as_deref().map(|v| vault.seal(&place("requests.message", id), &text(v))),
            r.decision_reason.as_deref().map(|v| vault.seal(&place("requests.decision_reason", id), &text(v))),
            key_id
        )
        .execute(pool)
        .await?;
        sealed += 1;
    }
    Ok(sealed)
}

/// The address as `email_key` held it before encryption (lower case).
fn normalised(email: &str) -> String {
    crate::domain::email_key(email).unwrap_or_else(|| email.trim().to_lowercase())
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn legacy_addresses_are_normalised_as_sign_in_normalises_them() {
        // A plain row's address, hashed at sealing, must meet the hash of a later sign-in.
        let at_sign_in = crate::domain::email_key(" Ancien.Agent@Exemple.FR ");
        assert_eq!(Some(normalised("Ancien.Agent@Exemple.FR")), at_sign_in);
        // Something that is not an address (never accepted, but a row could hold one) is
        // still hashed, lower-cased, rather than lost.
        assert_eq!(normalised(" Pas Une Adresse "), "pas une adresse");
        assert_eq!(place("accounts.email", Uuid::nil()), "accounts.email:00000000-0000-0000-0000-000000000000");
    }
}
