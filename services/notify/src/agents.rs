//! Who may be told what: notify's own read model of agents, from accounts' events
//! (`account.upserted`, `account.removed`). Account ids, memberships and choices only:
//! an agent's address is asked of accounts at send time ([`crate::recipients`]).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use contracts::events::{AccountRemoved, AccountUpserted};
use contracts::{DeliveryMode, MessageKind, OrganisationId, StructureId, Territory};
use sqlx::PgConnection;
use uuid::Uuid;

/// Keeps the snapshot unless a later one is already here.
pub async fn upserted(conn: &mut PgConnection, e: &AccountUpserted, sequence: i64) -> sqlx::Result<()> {
    let preferences = serde_json::to_value(&e.preferences).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let newer = sqlx::query_scalar!(
        "INSERT INTO notify.agents (account_id, preferences, last_signed_in_at, removed, sequence)
         VALUES ($1, $2, $3, false, $4)
         ON CONFLICT (account_id) DO UPDATE SET preferences = EXCLUDED.preferences,
             last_signed_in_at = EXCLUDED.last_signed_in_at, removed = false, sequence = EXCLUDED.sequence
         WHERE notify.agents.sequence < EXCLUDED.sequence
         RETURNING account_id",
        e.account_id,
        preferences,
        e.last_signed_in_at,
        sequence
    )
    .fetch_optional(&mut *conn)
    .await?;
    if newer.is_none() {
        return Ok(());
    }
    sqlx::query!("DELETE FROM notify.memberships WHERE account_id = $1", e.account_id).execute(&mut *conn).await?;
    let ids: Vec<Uuid> = e.memberships.iter().map(|m| m.membership_id).collect();
    let roles: Vec<&str> = e.memberships.iter().map(|m| m.role.slug()).collect();
    let organisations: Vec<Option<Uuid>> =
        e.memberships.iter().map(|m| m.organisation_id.map(OrganisationId::as_uuid)).collect();
    let structures: Vec<Option<&str>> =
        e.memberships.iter().map(|m| m.structure_id.as_ref().map(StructureId::as_str)).collect();
    // Arrays of arrays must be rectangular in PostgreSQL: one comma-joined text each.
    let territories: Vec<String> = e
        .memberships
        .iter()
        .map(|m| m.territories.iter().map(Territory::as_str).collect::<Vec<_>>().join(","))
        .collect();
    sqlx::query!(
        "INSERT INTO notify.memberships (membership_id, account_id, role, organisation_id, structure_id, territories)
         SELECT m.id, $1, m.role, m.organisation_id, m.structure_id,
                CASE WHEN m.territories = '' THEN '{}'::text[] ELSE string_to_array(m.territories, ',') END
         FROM unnest($2::uuid[], $3::text[], $4::uuid[], $5::text[], $6::text[])
              AS m(id, role, organisation_id, structure_id, territories)",
        e.account_id,
        &ids,
        &roles as &[&str],
        &organisations as &[Option<Uuid>],
        &structures as &[Option<&str>],
        &territories
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A purged account: it holds no membership, and nobody tells it anything.
pub async fn removed(conn: &mut PgConnection, e: &AccountRemoved, sequence: i64) -> sqlx::Result<()> {
    let newer = sqlx::query_scalar!(
        "INSERT INTO notify.agents (account_id, removed, sequence) VALUES ($1, true, $2)
         ON CONFLICT (account_id) DO UPDATE SET removed = true, preferences = '{}', sequence = EXCLUDED.sequence
         WHERE notify.agents.sequence < EXCLUDED.sequence
         RETURNING account_id",
        e.account_id,
        sequence
    )
    .fetch_optional(&mut *conn)
    .await?;
    if newer.is_some() {
        sqlx::query!("DELETE FROM notify.memberships WHERE account_id = $1", e.account_id).execute(&mut *conn).await?;
    }
    Ok(())
}

/// The mediators of a structure, by account.
pub async fn mediators(conn: &mut PgConnection, structure: &StructureId) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT DISTINCT account_id AS \"account_id!\" FROM notify.memberships
         WHERE role = 'mediator' AND structure_id = $1 ORDER BY 1",
        structure.as_str()
    )
    .fetch_all(conn)
    .await
}

/// The referrers of an organisation, by account.
pub async fn referrers(conn: &mut PgConnection, organisation: Uuid) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT DISTINCT account_id AS \"account_id!\" FROM notify.memberships
         WHERE role = 'referrer' AND organisation_id = $1 ORDER BY 1",
        organisation
    )
    .fetch_all(conn)
    .await
}

/// The coordinators of a département, by account.
pub async fn coordinators(conn: &mut PgConnection, territory: &Territory) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT DISTINCT account_id AS \"account_id!\" FROM notify.memberships
         WHERE role = 'coordinator' AND territories @> ARRAY[$1::text] ORDER BY 1",
        territory.as_str()
    )
    .fetch_all(conn)
    .await
}

/// Every coordinator with the départements of all their memberships.
pub async fn all_coordinators(conn: &mut PgConnection) -> sqlx::Result<Vec<(Uuid, Vec<String>)>> {
    let rows = sqlx::query!(
        "SELECT account_id, array_agg(DISTINCT t ORDER BY t) AS \"territories!\"
         FROM notify.memberships, unnest(territories) t
         WHERE role = 'coordinator' GROUP BY account_id ORDER BY account_id"
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.account_id, r.territories)).collect())
}

/// Of these structures, those that have a mediator who signed in since `since`: someone
/// who answers offers on their pages.
pub async fn structures_with_active_mediators(
    conn: &mut PgConnection,
    structures: &[String],
    since: DateTime<Utc>,
) -> sqlx::Result<HashSet<String>> {
    let rows = sqlx::query_scalar!(
        "SELECT DISTINCT m.structure_id AS \"structure_id!\" FROM notify.memberships m
         JOIN notify.agents a USING (account_id)
         WHERE m.role = 'mediator' AND m.structure_id = ANY($1) AND a.last_signed_in_at >= $2 AND NOT a.removed",
        structures,
        since
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Whether the structure has a mediator who signed in since `since`.
pub async fn has_active_mediator(
    conn: &mut PgConnection,
    structure: &StructureId,
    since: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let ids = [structure.to_string()];
    Ok(!structures_with_active_mediators(conn, &ids, since).await?.is_empty())
}

/// What each of these accounts chose for one kind of message (the default when unset;
/// never for a purged account).
pub async fn modes(
    conn: &mut PgConnection,
    accounts: &[Uuid],
    kind: MessageKind,
) -> sqlx::Result<HashMap<Uuid, DeliveryMode>> {
    let rows = sqlx::query!(
        "SELECT account_id, CASE WHEN removed THEN 'never' ELSE preferences ->> $2 END AS mode
         FROM notify.agents WHERE account_id = ANY($1)",
        accounts,
        kind.slug()
    )
    .fetch_all(conn)
    .await?;
    let mut set = HashMap::with_capacity(rows.len());
    for row in rows {
        if let Some(mode) = row.mode {
            // Written from the event's vocabulary: anything else is a fault, not a default.
            set.insert(row.account_id, mode.parse::<DeliveryMode>().map_err(|e| sqlx::Error::Decode(Box::new(e)))?);
        }
    }
    Ok(accounts.iter().map(|id| (*id, set.get(id).copied().unwrap_or(kind.default_mode()))).collect())
}
