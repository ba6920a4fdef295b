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
use contracts::ReferralId;
use platform::auth::{Caller, Principal};
use platform::vault::Vault;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// What was done with a person's data, as the audit names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A read that returned the person's data (one referral, or a list page).
    Read,
    /// The export of everything held (art. 15).
    Export,
    /// A correction (art. 16).
    Correct,
    /// An erasure ahead of retention (art. 17).
    Erase,
    /// A step of the referral's life (submit, accept, decline, contact, close, cancel,
    /// reroute): each changes what is held about the person.
    Change(&'static str),
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Export => "export",
            Action::Correct => "correct",
            Action::Erase => "erase",
            Action::Change(step) => step,
        }
    }
}

/// Who did what, as an audit entry records it (ids and names of actions only).
pub struct Entry {
    /// [`Caller::actor`]: role, scope and who.
    pub actor: String,
    /// `account:<uuid>`, `token:<uuid>` or `service`.
    pub principal: String,
    /// The active membership of a signed-in agent.
    pub membership: Option<Uuid>,
    pub action: &'static str,
}

impl Entry {
    pub fn of(caller: &Caller, action: Action) -> Self {
        let (principal, membership) = match caller.principal {
            Principal::Agent { account, membership } => (format!("account:{account}"), membership),
            Principal::Token(id) => (format!("token:{id}"), None),
            Principal::Service => ("service".to_string(), None),
        };
        Self { actor: caller.actor(), principal, membership, action: action.name() }
    }
}

/// Appends one entry per referral to the audit.
pub async fn record(
    conn: &mut PgConnection,
    caller: &Caller,
    action: Action,
    referrals: &[ReferralId],
) -> sqlx::Result<()> {
    if referrals.is_empty() {
        return Ok(());
    }
    let entry = Entry::of(caller, action);
    let ids: Vec<Uuid> = referrals.iter().map(|r| r.as_uuid()).collect();
    sqlx::query(
        "INSERT INTO referrals.audit (actor, principal, membership, action, referral_id)
         SELECT $1, $2, $3, $4, unnest($5::uuid[])",
    )
    .bind(&entry.actor)
    .bind(&entry.principal)
    .bind(entry.membership)
    .bind(entry.action)
    .bind(&ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// Appends an entry of the command line (the operator).
pub async fn record_operator(conn: &mut PgConnection, action: &str, referral: Option<ReferralId>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO referrals.audit (actor, principal, action, referral_id) VALUES ('operator:cli', 'operator:cli', $1, $2)",
    )
    .bind(action)
    .bind(referral.map(|r| r.as_uuid()))
    .execute(conn)
    .await?;
    Ok(())
}

/// One audit entry, as the API and the command line show it.
#[derive(Debug, Serialize, utoipa::ToSchema, sqlx::FromRow)]
#[schema(as = PersonalDataAuditEntry)]
pub struct AuditEntry {
    #[serde(skip)]
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The role, scope and who (`account:…` or `token:…`).
    pub actor: String,
    /// The active membership of a signed-in agent.
    pub membership: Option<Uuid>,
    /// `read`, `export`, `correct`, `erase`, or a step (`submit`, `accept` …).
    pub action: String,
    pub referral_id: Option<Uuid>,
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

/// The audit, oldest first.
pub async fn audit(conn: &mut PgConnection, f: &AuditFilter) -> sqlx::Result<Vec<AuditEntry>> {
    sqlx::query_as(
        "SELECT id, at, actor, membership, action, referral_id FROM referrals.audit
         WHERE ($1::uuid IS NULL OR referral_id = $1)
           AND ($2::uuid IS NULL OR principal IN ('account:' || $2::text, 'token:' || $2::text))
           AND ($3::timestamptz IS NULL OR at >= $3)
           AND ($4::timestamptz IS NULL OR at < $4)
           AND ($5::bigint IS NULL OR id > $5)
         ORDER BY id LIMIT $6",
    )
    .bind(f.referral_id)
    .bind(f.agent)
    .bind(f.from)
    .bind(f.to)
    .bind(f.after)
    .bind(f.limit)
    .fetch_all(conn)
    .await
}

/// Why a referral's personal data is gone (the API's `personal_data`).
pub use contracts::referrals::Removal;

/// Whether (and why) a referral's personal data is gone.
pub async fn removal(conn: &mut PgConnection, id: ReferralId) -> sqlx::Result<Option<Removal>> {
    let kind: Option<String> = sqlx::query_scalar("SELECT kind FROM referrals.erasures WHERE referral_id = $1")
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await?;
    Ok(kind.map(|k| if k == "erased" { Removal::Erased } else { Removal::Purged }))
}

/// The removals among several referrals (a list page).
pub async fn removals(
    conn: &mut PgConnection,
    ids: &[ReferralId],
) -> sqlx::Result<std::collections::HashMap<ReferralId, Removal>> {
    let ids: Vec<Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT referral_id, kind FROM referrals.erasures WHERE referral_id = ANY($1)")
            .bind(&ids)
            .fetch_all(conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(id, k)| (id.into(), if k == "erased" { Removal::Erased } else { Removal::Purged }))
        .collect())
}

fn month_of(t: DateTime<Utc>) -> NaiveDate {
    NaiveDate::from_ymd_opt(t.year(), t.month(), 1).unwrap_or_default()
}

/// Removes the personal data of these referrals, in the caller's transaction: the
/// persons rows, the free text of their history, their idempotency keys (whose hashes
/// are of bodies holding personal data); and records the removal. Referrals already
/// removed are left as they are. Returns how many were removed now.
pub async fn remove(conn: &mut PgConnection, ids: &[Uuid], kind: Removal) -> sqlx::Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let removed = sqlx::query(
        "INSERT INTO referrals.erasures (referral_id, kind, month)
         SELECT id, $2, $3 FROM unnest($1::uuid[]) AS id ON CONFLICT (referral_id) DO NOTHING",
    )
    .bind(ids)
    .bind(kind.slug())
    .bind(month_of(Utc::now()))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::query("DELETE FROM referrals.persons WHERE referral_id = ANY($1)").bind(ids).execute(&mut *conn).await?;
    sqlx::query(
        "UPDATE referrals.history SET comment = NULL, key_id = NULL WHERE referral_id = ANY($1) AND comment IS NOT NULL",
    )
    .bind(ids)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM referrals.idempotency_keys WHERE referral_id = ANY($1)")
        .bind(ids)
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
    let coarsened: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE referrals.referrals SET
             created_at = date_trunc('month', created_at, 'UTC'),
             updated_at = date_trunc('month', updated_at, 'UTC'),
             status_changed_at = date_trunc('month', status_changed_at, 'UTC'),
             offered_at = date_trunc('month', offered_at, 'UTC'),
             accepted_at = date_trunc('month', accepted_at, 'UTC'),
             closed_at = date_trunc('month', closed_at, 'UTC')
         WHERE id = ANY($1) AND (NOT $2 OR status IN ('closed', 'cancelled'))
         RETURNING id",
    )
    .bind(ids)
    .bind(ended_only)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query("UPDATE referrals.history SET at = date_trunc('month', at, 'UTC') WHERE referral_id = ANY($1)")
        .bind(&coarsened)
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
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM referrals.referrals r WHERE r.updated_at < $1
               AND EXISTS (SELECT 1 FROM referrals.persons p WHERE p.referral_id = r.id)",
        )
        .bind(cutoff)
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
        let rows: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
            "SELECT r.id, r.updated_at FROM referrals.referrals r
             WHERE r.updated_at < $1
               AND ($2::timestamptz IS NULL OR (r.updated_at, r.id) > ($2, $3))
               AND EXISTS (SELECT 1 FROM referrals.persons p WHERE p.referral_id = r.id)
             ORDER BY r.updated_at, r.id LIMIT $4
             FOR UPDATE OF r SKIP LOCKED",
        )
        .bind(cutoff)
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1))
        .bind(PURGE_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last().copied() else {
            tx.rollback().await?;
            break;
        };
        after = Some((last.1, last.0));
        let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
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
    type Legacy = (Uuid, Vec<u8>, Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>);
    let persons: Vec<Legacy> = sqlx::query_as(
        "SELECT referral_id, first_name, last_name, phone, email, note FROM referrals.persons WHERE key_id IS NULL",
    )
    .fetch_all(pool)
    .await?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    for (id, first, last, phone, email, note) in persons {
        let seal = |col: &str, v: &[u8]| vault.seal(&place(col, id), &text(v));
        sqlx::query(
            "UPDATE referrals.persons SET first_name = $2, last_name = $3, phone = $4, email = $5, note = $6,
                    key_id = $7, phone_key = $8, email_key = $9
             WHERE referral_id = $1 AND key_id IS NULL",
        )
        .bind(id)
        .bind(seal("persons.first_name", &first))
        .bind(seal("persons.last_name", &last))
        .bind(phone.as_deref().map(|v| seal("persons.phone", v)))
        .bind(email.as_deref().map(|v| seal("persons.email", v)))
        .bind(note.as_deref().map(|v| seal("persons.note", v)))
        .bind(key_id)
        .bind(phone.as_deref().map(|v| crate::store::phone_key(vault, &text(v))))
        .bind(email.as_deref().map(|v| crate::store::email_key(vault, &text(v))))
        .execute(pool)
        .await?;
        sealed += 1;
    }
    let comments: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT id, comment FROM referrals.history WHERE key_id IS NULL AND comment IS NOT NULL")
            .fetch_all(pool)
            .await?;
    for (id, comment) in comments {
        sqlx::query("UPDATE referrals.history SET comment = $2, key_id = $3 WHERE id = $1 AND key_id IS NULL")
            .bind(id)
            .bind(vault.seal(&place("history.comment", id), &text(&comment)))
            .bind(key_id)
            .execute(pool)
            .await?;
        sealed += 1;
    }
    Ok(sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removals_keep_the_month_only() {
        let t = DateTime::parse_from_rfc3339("2026-11-28T09:55:00Z").map(|t| t.with_timezone(&Utc));
        assert_eq!(t.map(month_of).ok(), NaiveDate::from_ymd_opt(2026, 11, 1));
    }

    #[test]
    fn actions_have_stable_names() {
        assert_eq!(Action::Read.name(), "read");
        assert_eq!(Action::Export.name(), "export");
        assert_eq!(Action::Correct.name(), "correct");
        assert_eq!(Action::Erase.name(), "erase");
        assert_eq!(Action::Change("cancel").name(), "cancel");
    }
}
