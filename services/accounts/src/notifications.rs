//! What the notifications service asks of accounts: who should be told (account ids, by
//! the membership they hold), what each of them chose to receive, and — at send time
//! only — their e-mail addresses ([`recipients`]). Ids leave this schema; addresses do
//! not, except into the message being sent.

use std::collections::{BTreeMap, HashMap, HashSet};

use contracts::{DeliveryMode, MessageKind, StructureId, Territory};
use sqlx::PgConnection;
use uuid::Uuid;

pub use crate::store::recipients;

/// The mediators of a structure, by account.
pub async fn mediators(conn: &mut PgConnection, structure: &StructureId) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT DISTINCT account_id FROM accounts.memberships
         WHERE role = 'mediator' AND structure_id = $1 AND removed_at IS NULL ORDER BY account_id",
    )
    .bind(structure.as_str())
    .fetch_all(conn)
    .await
}

/// The referrers of an organisation, by account.
pub async fn referrers(conn: &mut PgConnection, organisation: Uuid) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT DISTINCT account_id FROM accounts.memberships
         WHERE role = 'referrer' AND organisation_id = $1 AND removed_at IS NULL ORDER BY account_id",
    )
    .bind(organisation)
    .fetch_all(conn)
    .await
}

/// The coordinators of a département, by account.
pub async fn coordinators(conn: &mut PgConnection, territory: &Territory) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT DISTINCT account_id FROM accounts.memberships
         WHERE role = 'coordinator' AND $1 = ANY(territories) AND removed_at IS NULL ORDER BY account_id",
    )
    .bind(territory.as_str())
    .fetch_all(conn)
    .await
}

/// Every coordinator with the départements of all their memberships.
pub async fn all_coordinators(conn: &mut PgConnection) -> sqlx::Result<Vec<(Uuid, Vec<String>)>> {
    sqlx::query_as(
        "SELECT account_id, array_agg(DISTINCT t ORDER BY t) FROM accounts.memberships, unnest(territories) t
         WHERE role = 'coordinator' AND removed_at IS NULL GROUP BY account_id ORDER BY account_id",
    )
    .fetch_all(conn)
    .await
}

/// Of these structures, those that have at least one mediator.
pub async fn structures_with_mediators(
    conn: &mut PgConnection,
    structures: &[String],
) -> sqlx::Result<HashSet<String>> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT structure_id FROM accounts.memberships
         WHERE role = 'mediator' AND structure_id = ANY($1) AND removed_at IS NULL",
    )
    .bind(structures)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// What each of these accounts chose for one kind of message (the default when unset).
pub async fn modes(
    conn: &mut PgConnection,
    accounts: &[Uuid],
    kind: MessageKind,
) -> sqlx::Result<HashMap<Uuid, DeliveryMode>> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT account_id, mode FROM accounts.notification_preferences WHERE account_id = ANY($1) AND kind = $2",
    )
    .bind(accounts)
    .bind(kind.slug())
    .fetch_all(conn)
    .await?;
    let set: HashMap<Uuid, DeliveryMode> =
        rows.into_iter().filter_map(|(id, mode)| Some((id, mode.parse().ok()?))).collect();
    Ok(accounts.iter().map(|id| (*id, set.get(id).copied().unwrap_or(kind.default_mode()))).collect())
}

/// Every kind of message with the account's choice (defaults filled in).
pub async fn preferences(conn: &mut PgConnection, account: Uuid) -> sqlx::Result<BTreeMap<MessageKind, DeliveryMode>> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, mode FROM accounts.notification_preferences WHERE account_id = $1")
            .bind(account)
            .fetch_all(conn)
            .await?;
    let mut out: BTreeMap<MessageKind, DeliveryMode> =
        MessageKind::ALL.iter().map(|k| (*k, k.default_mode())).collect();
    for (kind, mode) in rows {
        if let (Ok(kind), Ok(mode)) = (kind.parse::<MessageKind>(), mode.parse::<DeliveryMode>()) {
            out.insert(kind, mode);
        }
    }
    Ok(out)
}

/// Records some of an account's choices; the others stay as they were.
pub async fn set_preferences(
    conn: &mut PgConnection,
    account: Uuid,
    choices: &BTreeMap<MessageKind, DeliveryMode>,
) -> sqlx::Result<()> {
    for (kind, mode) in choices {
        sqlx::query(
            "INSERT INTO accounts.notification_preferences (account_id, kind, mode) VALUES ($1, $2, $3)
             ON CONFLICT (account_id, kind) DO UPDATE SET mode = EXCLUDED.mode, updated_at = now()",
        )
        .bind(account)
        .bind(kind.slug())
        .bind(mode.slug())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
