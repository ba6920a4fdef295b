//! Privacy by design: the audit of access to personal data, the retention purge, the
//! person's erasure (GDPR art. 17), and sealing rows left in plain text by a database
//! migrated from before encryption.
//!
//! - **Audit.** [`record`] appends to `referrals.audit` in the caller's transaction, so
//!   a change and its audit entry commit together. It holds ids and actions only.
//! - **Purge.** [`purge`] removes the personal data of referrals whose last activity is
//!   older than the retention, in batches: each batch is one transaction (a referral is
//!   purged entirely or not at all), takes its rows `FOR UPDATE SKIP LOCKED` (two
//!   replicas share the work and never purge one twice), and leaves a `referrals.erasures`
//!   row, so a run that stops part-way resumes where it was and a second run finds
//!   nothing left to do. Intake never waits: new referrals are not among the rows locked.
//! - **What stays.** The referral's id, facts (needs, modes, commune, statuses, outcome),
//!   timeline of steps without their free text, and the month of the purge. Insights'
//!   projection holds no personal data and is not touched, so statistics for past
//!   periods are the same before and after.

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use contracts::audit::Principal;
use contracts::referrals::AuditEntry;
use contracts::{Actor, AuditAction, ReferralId};
use platform::auth::{self, Caller};
use platform::row::Columns;
use platform::vault::Vault;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Who did it, as an audit entry records it (ids only).
pub struct Entry {
    /// [`Caller::actor`]: role, scope and principal.
    pub actor: Actor,
    /// What the audit's `agent` filter matches.
    pub principal: Principal,
    /// The active membership of a signed-in agent.
    pub membership: Option<Uuid>,
}

impl Entry {
    pub fn of(caller: &Caller) -> Self {
        let membership = match caller.principal {
            auth::Principal::Agent { membership, .. } => membership,
            auth::Principal::Token(_) | auth::Principal::Service => None,
        };
        Self { actor: caller.actor(), principal: caller.audit_principal(), membership }
    }
}

/// Appends one entry per referral to the audit.
pub async fn record(
    conn: &mut PgConnection,
    caller: &Caller,
    action: AuditAction,
    referrals: &[ReferralId],
) -> sqlx::Result<()> {
    if referrals.is_empty() {
        return Ok(());
    }
    let entry = Entry::of(caller);
    let ids: Vec<Uuid> = referrals.iter().map(|r| r.as_uuid()).collect();
    sqlx::query!(
        "INSERT INTO referrals.audit (actor, principal, membership, action, referral_id)
         SELECT $1::text, $2::text, $3::uuid, $4::text, unnest($5::uuid[])",
        entry.actor.to_string(),
        entry.principal.to_string(),
        entry.membership,
        action.slug(),
        &ids
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Appends an entry of the command line (the operator).
pub async fn record_operator(
    conn: &mut PgConnection,
    action: AuditAction,
    referral: Option<ReferralId>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO referrals.audit (actor, principal, action, referral_id) VALUES ($1, $2, $3, $4)",
        Actor::Operator.to_string(),
        Principal::Operator.to_string(),
        action.slug(),
        referral.map(ReferralId::as_uuid)
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// One audit row: the entry the API and the command line show, and its id (the cursor).
#[derive(Debug)]
pub struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The role, scope and who (`account:…` or `token:…`).
    pub actor: Actor,
    /// The active membership of a signed-in agent.
    pub membership: Option<Uuid>,
    /// `read`, `export`, `correct`, `erase`, or a step (`submit`, `accept` …).
    pub action: AuditAction,
    pub referral_id: Option<ReferralId>,
}

impl AuditRow {
    pub fn entry(self) -> AuditEntry {
        AuditEntry {
            at: self.at,
            actor: self.actor,
            membership: self.membership,
            action: self.action,
            referral_id: self.referral_id,
        }
    }
}

#[derive(Debug, Default)]
pub struct AuditFilter {
    pub referral_id: Option<Uuid>,
    /// An account or token id.
    pub agent: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// The id after which to continue (oldest first).
    pub after: Option<i64>,
    pub limit: i64,
}

/// The audit, oldest first. An actor or an action that does not parse fails the read:
/// the audit is evidence, and a value read as something else would falsify it.
pub async fn audit(conn: &mut PgConnection, f: &AuditFilter) -> sqlx::Result<Vec<AuditRow>> {
    // An agent is either principal: an account, or a token.
    let principals = f.agent.map(|a| [Principal::Account(a), Principal::Token(a)].map(|p| p.to_string()).to_vec());
    sqlx::query_as!(
        AuditRow,
        r#"SELECT id, at, actor AS "actor: Actor", membership, action AS "action: AuditAction",
                  referral_id AS "referral_id: ReferralId"
           FROM referrals.audit
           WHERE ($1::uuid IS NULL OR referral_id = $1)
             AND ($2::text[] IS NULL OR principal = ANY($2))
             AND ($3::timestamptz IS NULL OR at >= $3)
             AND ($4::timestamptz IS NULL OR at < $4)
             AND ($5::bigint IS NULL OR id > $5)
           ORDER BY id LIMIT $6"#,
        f.referral_id,
        principals.as_deref(),
        f.from,
        f.to,
        f.after,
        f.limit
    )
    .fetch_all(conn)
    .await
}

/// Why a referral's personal data is gone (the API's `personal_data`).
pub use contracts::referrals::Removal;

/// A row of `referrals.erasures`, whose kind must be one of [`Removal`]'s.
fn removal_of(referral_id: Uuid, kind: &str) -> Result<Removal, platform::row::RowError> {
    Columns::of("referrals.erasures", referral_id).parse("kind", kind)
}

/// Whether (and why) a referral's personal data is gone.
pub async fn removal(conn: &mut PgConnection, id: ReferralId) -> sqlx::Result<Option<Removal>> {
    let kind = sqlx::query_scalar!("SELECT kind FROM referrals.erasures WHERE referral_id = $1", id.as_uuid())
        .fetch_optional(conn)
        .await?;
    Ok(kind.map(|k| removal_of(id.as_uuid(), &k)).transpose()?)
}

/// The removals among several referrals (a list page).
pub async fn removals(
    conn: &mut PgConnection,
    ids: &[ReferralId],
) -> sqlx::Result<std::collections::HashMap<ReferralId, Removal>> {
    let ids: Vec<Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
    let rows = sqlx::query!("SELECT referral_id, kind FROM referrals.erasures WHERE referral_id = ANY($1)", &ids)
        .fetch_all(conn)
        .await?;
    let removals = rows.into_iter().map(|r| Ok((r.referral_id.into(), removal_of(r.referral_id, &r.kind)?)));
    removals.collect::<Result<_, platform::row::RowError>>().map_err(Into::into)
}

fn month_of(t: DateTime<Utc>) -> NaiveDate {
    NaiveDate::from_ymd_opt(t.year(), t.month(), 1).unwrap_or_default()
}

/// Removes the personal data of these referrals, in the caller's transaction: the
/// persons rows, the free text of their history, their idempotency keys (whose hashes
/// are of bodies holding personal data), their answer links (which would open the
/// follow-up of a person who is gone); and records the removal. Referrals already
/// removed are left as they are. Returns how many were removed now.
pub async fn remove(conn: &mut PgConnection, ids: &[Uuid], kind: Removal) -> sqlx::Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let removed = sqlx::query!(
        "INSERT INTO referrals.erasures (referral_id, kind, month)
         SELECT id, $2, $3 FROM unnest($1::uuid[]) AS id ON CONFLICT (referral_id) DO NOTHING",
        ids,
        kind.slug(),
        month_of(Utc::now())
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::query!("DELETE FROM referrals.persons WHERE referral_id = ANY($1)", ids).execute(&mut *conn).await?;
    sqlx::query!(
        "UPDATE referrals.history SET comment = NULL, key_id = NULL WHERE referral_id = ANY($1) AND comment IS NOT NULL",
        ids
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!("DELETE FROM referrals.idempotency_keys WHERE referral_id = ANY($1)", ids).execute(&mut *conn).await?;
    sqlx::query!("DELETE FROM referrals.answer_links WHERE referral_id = ANY($1)", ids).execute(&mut *conn).await?;
    // Messages to the person that still wait hold their sealed contact: they never go.
    // Those sent or failed hold none (their recipient was deleted then).
    sqlx::query!("DELETE FROM referrals.person_messages WHERE referral_id = ANY($1) AND status = 'queued'", ids)
        .execute(&mut *conn)
        .await?;
    coarsen_dates(conn, ids, kind).await?;
    Ok(removed)
}

/// Keeps only the month of a removed referral's dates, and of its timeline's: what is
/// left of it is a pseudonymous fact (needs, commune, statuses, month by month), not a
/// record of a person's days. A purged referral (the retention time ran out) always;
/// an erased one once it has ended (closed or cancelled): a referral still under way
/// keeps its exact dates, which its waiting order and its offer's expiry run on. The
/// statistics are not touched: insights keeps its own facts, with no identity.
async fn coarsen_dates(conn: &mut PgConnection, ids: &[Uuid], kind: Removal) -> sqlx::Result<()> {
    let ended_only = kind == Removal::Erased;
    let coarsened = sqlx::query_scalar!(
        "UPDATE referrals.referrals SET
             created_at = date_trunc('month', created_at, 'UTC'),
             updated_at = date_trunc('month', updated_at, 'UTC'),
             status_changed_at = date_trunc('month', status_changed_at, 'UTC'),
             offered_at = date_trunc('month', offered_at, 'UTC'),
             accepted_at = date_trunc('month', accepted_at, 'UTC'),
             closed_at = date_trunc('month', closed_at, 'UTC')
         WHERE id = ANY($1) AND (NOT $2 OR status IN ('closed', 'cancelled'))
         RETURNING id",
        ids,
        ended_only
    )
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query!(
        "UPDATE referrals.history SET at = date_trunc('month', at, 'UTC') WHERE referral_id = ANY($1)",
        &coarsened
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What a purge did (or, dry, would do).
#[derive(Debug, Default, Serialize)]
pub struct PurgeReport {
    pub dry_run: bool,
    /// Referrals whose last activity is before this.
    pub cutoff: DateTime<Utc>,
    pub referrals: u64,
    pub batches: u64,
}

/// Referrals purged per transaction: small enough that a batch holds its locks and its
/// share of the database for a fraction of a second.
const PURGE_BATCH: i64 = 500;

/// After each batch the purge rests as long as the batch took, so it never takes more
/// than half of the database's time from intake, whatever the machine; 100,000
/// referrals still take about a minute.
fn pause_after(batch: std::time::Duration) -> std::time::Duration {
    batch.clamp(std::time::Duration::from_millis(10), std::time::Duration::from_secs(2))
}

/// Purges the personal data of referrals inactive since before `now - retention`.
pub async fn purge(pool: &PgPool, retention: Duration, dry_run: bool) -> sqlx::Result<PurgeReport> {
    let cutoff = Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(730));
    let mut report = PurgeReport { dry_run, cutoff, ..Default::default() };
    if dry_run {
        let n = sqlx::query_scalar!(
            r#"SELECT count(*) AS "n!" FROM referrals.referrals r WHERE r.updated_at < $1
               AND EXISTS (SELECT 1 FROM referrals.persons p WHERE p.referral_id = r.id)"#,
            cutoff
        )
        .fetch_one(pool)
        .await?;
        report.referrals = n as u64;
        return Ok(report);
    }
    // Keyset over (updated_at, id): each batch starts after the last one, and rows
    // another replica holds are skipped (it purges them).
    let mut after: Option<(DateTime<Utc>, Uuid)> = None;
    loop {
        let started = std::time::Instant::now();
        let mut tx = pool.begin().await?;
        let rows = sqlx::query!(
            "SELECT r.id, r.updated_at FROM referrals.referrals r
             WHERE r.updated_at < $1
               AND ($2::timestamptz IS NULL OR (r.updated_at, r.id) > ($2, $3))
               AND EXISTS (SELECT 1 FROM referrals.persons p WHERE p.referral_id = r.id)
             ORDER BY r.updated_at, r.id LIMIT $4
             FOR UPDATE OF r SKIP LOCKED",
            cutoff,
            after.map(|a| a.0),
            after.map(|a| a.1),
            PURGE_BATCH
        )
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last() else {
            tx.rollback().await?;
            break;
        };
        after = Some((last.updated_at, last.id));
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        report.referrals += remove(&mut tx, &ids, Removal::Purged).await?;
        tx.commit().await?;
        report.batches += 1;
        if (rows.len() as i64) < PURGE_BATCH {
            break;
        }
        tokio::time::sleep(pause_after(started.elapsed())).await;
    }
    Ok(report)
}

/// Seals the rows a database migrated from before encryption holds in plain text.
/// Idempotent; each row is sealed in one statement.
pub async fn seal_legacy(pool: &PgPool, vault: &Vault) -> sqlx::Result<u64> {
    use crate::store::place;
    let key_id = vault.current_key() as i32;
    let mut sealed = 0;
    let persons = sqlx::query!(
        "SELECT referral_id, first_name, last_name, phone, email, note FROM referrals.persons WHERE key_id IS NULL"
    )
    .fetch_all(pool)
    .await?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    for p in persons {
        let id = p.referral_id;
        let seal = |col: &str, v: &[u8]| vault.seal(&place(col, id), &text(v));
        sqlx::query!(
            "UPDATE referrals.persons SET first_name = $2, last_name = $3, phone = $4, email = $5, note = $6,
                    key_id = $7, phone_key = $8, email_key = $9
             WHERE referral_id = $1 AND key_id IS NULL",
            id,
            seal("persons.first_name", &p.first_name),
            seal("persons.last_name", &p.last_name),
            p.phone.as_deref().map(|v| seal("persons.phone", v)),
            p.email.as_deref().map(|v| seal("persons.email", v)),
            p.note.as_deref().map(|v| seal("persons.note", v)),
            key_id,
            p.phone.as_deref().map(|v| crate::store::phone_key(vault, &text(v))),
            p.email.as_deref().map(|v| crate::store::email_key(vault, &text(v)))
        )
        .execute(pool)
        .await?;
        sealed += 1;
    }
    let comments = sqlx::query!(
        r#"SELECT id, comment AS "comment!" FROM referrals.history WHERE key_id IS NULL AND comment IS NOT NULL"#
    )
    .fetch_all(pool)
    .await?;
    for c in comments {
        sqlx::query!(
            "UPDATE referrals.history SET comment = $2, key_id = $3 WHERE id = $1 AND key_id IS NULL",
            c.id,
            vault.seal(&place("history.comment", c.id), &text(&c.comment)),
            key_id
        )
        .execute(pool)
        .await?;
        sealed += 1;
    }
    Ok(sealed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn removals_keep_the_month_only() {
        let t = DateTime::parse_from_rfc3339("2026-11-28T09:55:00Z").map(|t| t.with_timezone(&Utc));
        assert_eq!(t.map(month_of).ok(), NaiveDate::from_ymd_opt(2026, 11, 1));
    }

    #[test]
    fn actions_have_stable_names() {
        assert_eq!(AuditAction::Read.slug(), "read");
        assert_eq!(AuditAction::Export.slug(), "export");
        assert_eq!(AuditAction::Correct.slug(), "correct");
        assert_eq!(AuditAction::Erase.slug(), "erase");
        assert_eq!(AuditAction::Cancel.slug(), "cancel");
        assert_eq!(AuditAction::KeysRotated.slug(), "keys_rotated");
    }

    #[test]
    fn a_removal_of_an_unknown_kind_names_its_row() {
        let id = Uuid::now_v7();
        assert_eq!(removal_of(id, "erased"), Ok(Removal::Erased));
        let err = removal_of(id, "forgotten").unwrap_err();
        assert_eq!((err.table, err.column, err.id), ("referrals.erasures", "kind", id.to_string()));
    }
}
