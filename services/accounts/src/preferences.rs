//! Each agent's choice, per kind of notification message: at once, in the daily digest,
//! or never. Notifications learn them from `account.upserted` ([`crate::announce`]).

use std::collections::BTreeMap;

use contracts::{DeliveryMode, MessageKind};
use sqlx::PgConnection;
use uuid::Uuid;

/// Only the kinds the agent chose (the others take their default).
pub async fn chosen(conn: &mut PgConnection, account: Uuid) -> sqlx::Result<BTreeMap<MessageKind, DeliveryMode>> {
    let rows = sqlx::query!(
        "SELECT kind, mode FROM accounts.notification_preferences WHERE account_id = $1 ORDER BY kind",
        account
    )
    .fetch_all(conn)
    .await?;
    let mut out = BTreeMap::new();
    for row in rows {
        // Written only through `set`, from the vocabularies: anything else is a fault.
        let kind = row.kind.parse::<MessageKind>().map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        let mode = row.mode.parse::<DeliveryMode>().map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        out.insert(kind, mode);
    }
    Ok(out)
}

/// Every kind of message with the account's choice (defaults filled in).
pub async fn all(conn: &mut PgConnection, account: Uuid) -> sqlx::Result<BTreeMap<MessageKind, DeliveryMode>> {
    let chosen = chosen(conn, account).await?;
    Ok(MessageKind::ALL.iter().map(|k| (*k, chosen.get(k).copied().unwrap_or(k.default_mode()))).collect())
}

/// Records some of an account's choices; the others stay as they were.
pub async fn set(
    conn: &mut PgConnection,
    account: Uuid,
    choices: &BTreeMap<MessageKind, DeliveryMode>,
) -> sqlx::Result<()> {
    let kinds: Vec<&str> = choices.keys().map(|k| k.slug()).collect();
    let modes: Vec<&str> = choices.values().map(|m| m.slug()).collect();
    sqlx::query!(
        "INSERT INTO accounts.notification_preferences (account_id, kind, mode)
         SELECT $1, kind, mode FROM unnest($2::text[], $3::text[]) AS c(kind, mode)
         ON CONFLICT (account_id, kind) DO UPDATE SET mode = EXCLUDED.mode, updated_at = now()",
        account,
        &kinds as &[&str],
        &modes as &[&str]
    )
    .execute(conn)
    .await?;
    Ok(())
}
