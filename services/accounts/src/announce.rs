//! What the other services may know of an account, announced on the bus in the
//! transaction of each change: the memberships in force, the notification choices and
//! the last sign-in (`account.upserted`), or that the account was purged
//! (`account.removed`). Never a name or an address. Notifications keep their own read
//! model from these events, and ask this service's API for an address at send time.

use chrono::Utc;
use contracts::Envelope;
use contracts::events::{AccountMembership, AccountRemoved, AccountUpserted};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::store;

/// Announces the account as it now is, with the next number of its sequence. Called in
/// the transaction of the change: the event commits with it, or neither does. The row
/// lock of the sequence's update orders concurrent changes of one account.
pub async fn account(conn: &mut PgConnection, account_id: Uuid) -> sqlx::Result<()> {
    let Some(row) = sqlx::query!(
        "UPDATE accounts.accounts SET announced_sequence = announced_sequence + 1 WHERE id = $1
         RETURNING announced_sequence, last_sign_in_at, purged_at IS NOT NULL AS \"purged!\"",
        account_id
    )
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(());
    };
    let envelope = if row.purged {
        let event = AccountRemoved { account_id, removed_at: Utc::now() };
        Envelope::new(account_id.to_string(), row.announced_sequence, &event)
    } else {
        let memberships = store::memberships(conn, account_id)
            .await?
            .into_iter()
            .map(|m| {
                let (role, organisation_id, structure_id, territories) = m.grant.parts();
                AccountMembership { membership_id: m.id, role, organisation_id, structure_id, territories }
            })
            .collect();
        let preferences = crate::preferences::chosen(conn, account_id).await?;
        let event = AccountUpserted { account_id, memberships, preferences, last_signed_in_at: row.last_sign_in_at };
        Envelope::new(account_id.to_string(), row.announced_sequence, &event)
    };
    bus::enqueue(conn, crate::SCHEMA, &envelope).await
}

/// How many accounts one transaction of [`backlog`] announces.
const BACKLOG_BATCH: i64 = 200;

/// Announces, once, every account never announced: those of a database from before
/// these events. Idempotent, and safe with several replicas (SKIP LOCKED). Returns how
/// many it announced.
pub async fn backlog(pool: &PgPool) -> sqlx::Result<u64> {
    let mut announced = 0;
    loop {
        let mut tx = pool.begin().await?;
        let ids = sqlx::query_scalar!(
            "SELECT id FROM accounts.accounts WHERE announced_sequence = 0 ORDER BY id LIMIT $1
             FOR UPDATE SKIP LOCKED",
            BACKLOG_BATCH
        )
        .fetch_all(&mut *tx)
        .await?;
        for id in &ids {
            account(&mut tx, *id).await?;
        }
        tx.commit().await?;
        announced += ids.len() as u64;
        if (ids.len() as i64) < BACKLOG_BATCH {
            return Ok(announced);
        }
    }
}
