//! The notify schema's SQL (runtime queries with typed rows).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// What notifications know of a referral: no personal data.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Referral {
    pub referral_id: Uuid,
    pub organisation_id: Option<Uuid>,
    pub submitted_by: Option<Uuid>,
    pub commune_code: Option<String>,
    pub territory: Option<String>,
    pub needs: Vec<String>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub status: String,
    pub structure_id: Option<String>,
    pub last_event_at: DateTime<Utc>,
}

pub struct Submitted<'a> {
    pub referral_id: Uuid,
    pub organisation_id: Uuid,
    pub submitted_by: Option<Uuid>,
    pub commune_code: &'a str,
    pub territory: &'a str,
    pub needs: Vec<String>,
    pub submitted_at: DateTime<Utc>,
}

pub async fn submitted(conn: &mut PgConnection, s: &Submitted<'_>, sequence: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO notify.referrals
             (referral_id, organisation_id, submitted_by, commune_code, territory, needs, submitted_at,
              status, last_event_at, last_sequence)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'submitted', $7, $8)
         ON CONFLICT (referral_id) DO UPDATE SET
             organisation_id = EXCLUDED.organisation_id, submitted_by = EXCLUDED.submitted_by,
             commune_code = EXCLUDED.commune_code, territory = EXCLUDED.territory,
             needs = EXCLUDED.needs, submitted_at = EXCLUDED.submitted_at",
    )
    .bind(s.referral_id)
    .bind(s.organisation_id)
    .bind(s.submitted_by)
    .bind(s.commune_code)
    .bind(s.territory)
    .bind(&s.needs)
    .bind(s.submitted_at)
    .bind(sequence)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the state an event leaves the referral in, unless a later event already did,
/// and returns the referral as it was known before (one round trip for both).
pub async fn moved(
    conn: &mut PgConnection,
    referral_id: Uuid,
    status: &str,
    structure_id: Option<&str>,
    at: DateTime<Utc>,
    sequence: i64,
) -> sqlx::Result<Option<Referral>> {
    // Every part of one statement sees the same snapshot: `known` is the row before the
    // upsert.
    sqlx::query_as(
        "WITH known AS (
             SELECT referral_id, organisation_id, submitted_by, commune_code, territory, needs, submitted_at, status,
                    structure_id, last_event_at
             FROM notify.referrals WHERE referral_id = $1
         ),
         moved AS (
             INSERT INTO notify.referrals (referral_id, status, structure_id, last_event_at, last_sequence)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (referral_id) DO UPDATE SET
                 status = EXCLUDED.status,
                 structure_id = COALESCE(EXCLUDED.structure_id, notify.referrals.structure_id),
                 last_event_at = EXCLUDED.last_event_at, last_sequence = EXCLUDED.last_sequence
             WHERE notify.referrals.last_sequence < EXCLUDED.last_sequence
         )
         SELECT * FROM known",
    )
    .bind(referral_id)
    .bind(status)
    .bind(structure_id)
    .bind(at)
    .bind(sequence)
    .fetch_optional(conn)
    .await
}

pub async fn referral(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Referral>> {
    sqlx::query_as(
        "SELECT referral_id, organisation_id, submitted_by, commune_code, territory, needs, submitted_at, status,
                structure_id, last_event_at
         FROM notify.referrals WHERE referral_id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Referrals in these départements, still open, that no event moved since `before`.
pub async fn stale(
    conn: &mut PgConnection,
    territories: &[String],
    before: DateTime<Utc>,
) -> sqlx::Result<Vec<Referral>> {
    sqlx::query_as(
        "SELECT referral_id, organisation_id, submitted_by, commune_code, territory, needs, submitted_at, status,
                structure_id, last_event_at
         FROM notify.referrals
         WHERE territory = ANY($1) AND last_event_at < $2
           AND status IN ('submitted', 'offered', 'waitlisted', 'accepted', 'in_progress')
         ORDER BY last_event_at LIMIT 500",
    )
    .bind(territories)
    .bind(before)
    .fetch_all(conn)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Structure {
    pub id: String,
    pub name: String,
    pub territory: String,
    pub contact_email: Option<String>,
    pub invited_at: Option<DateTime<Utc>>,
}

pub async fn upsert_structure(
    conn: &mut PgConnection,
    s: &contracts::events::Structure,
    sequence: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO notify.structures (id, name, territory, commune, contact_email, removed, source_sequence)
         VALUES ($1, $2, $3, $4, $5, false, $6)
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, territory = EXCLUDED.territory,
             commune = EXCLUDED.commune, contact_email = EXCLUDED.contact_email, removed = false,
             source_sequence = EXCLUDED.source_sequence
         WHERE notify.structures.source_sequence <= EXCLUDED.source_sequence",
    )
    .bind(s.id.as_str())
    .bind(&s.name)
    .bind(s.territory.as_str())
    .bind(s.address.commune.as_deref())
    .bind(s.contact.email.as_deref().filter(|e| !e.trim().is_empty()))
    .bind(sequence)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn remove_structure(conn: &mut PgConnection, id: &str, sequence: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE notify.structures SET removed = true, source_sequence = $2 WHERE id = $1 AND source_sequence <= $2",
    )
    .bind(id)
    .bind(sequence)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn structure(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<Structure>> {
    sqlx::query_as("SELECT id, name, territory, contact_email, invited_at FROM notify.structures WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn structures_in(conn: &mut PgConnection, territories: &[String]) -> sqlx::Result<Vec<Structure>> {
    sqlx::query_as(
        "SELECT id, name, territory, contact_email, invited_at FROM notify.structures
         WHERE territory = ANY($1) AND NOT removed ORDER BY territory, name, id",
    )
    .bind(territories)
    .fetch_all(conn)
    .await
}

/// Records an invitation sent now, if none went out in the last week. Returns whether
/// this call may send one.
pub async fn claim_invitation(conn: &mut PgConnection, id: &str, now: DateTime<Utc>) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE notify.structures SET invited_at = $2
         WHERE id = $1 AND contact_email IS NOT NULL AND (invited_at IS NULL OR invited_at <= $2 - interval '7 days')",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A message to store in the outbox.
pub struct NewMessage<'a> {
    pub source_id: Uuid,
    pub kind: &'a str,
    pub account_id: Option<Uuid>,
    pub address: Option<&'a str>,
    pub referral_id: Option<Uuid>,
    pub structure_id: Option<&'a str>,
    pub mail: &'a crate::render::Mail,
    /// `pending` or `held` (for the daily digest).
    pub status: &'a str,
}

/// Stores a message once per (source, recipient, kind); a second call does nothing.
pub async fn enqueue(conn: &mut PgConnection, m: &NewMessage<'_>) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO notify.messages
             (id, source_id, kind, account_id, address, referral_id, structure_id, subject, body_text, body_html,
              link, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (source_id, recipient, kind) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(m.source_id)
    .bind(m.kind)
    .bind(m.account_id)
    .bind(m.address)
    .bind(m.referral_id)
    .bind(m.structure_id)
    .bind(&m.mail.subject)
    .bind(&m.mail.text)
    .bind(&m.mail.html)
    .bind(&m.mail.link)
    .bind(m.status)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What the messages of one event to several agents share.
pub struct Common<'a> {
    pub source_id: Uuid,
    pub kind: &'a str,
    pub referral_id: Option<Uuid>,
    pub structure_id: Option<&'a str>,
    pub mail: &'a crate::render::Mail,
}

/// Stores the same message for each (account, status) in one statement, once per
/// (source, recipient, kind) as [`enqueue`] does.
pub async fn enqueue_for_accounts(conn: &mut PgConnection, m: &Common<'_>, to: &[(Uuid, &str)]) -> sqlx::Result<()> {
    if to.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = to.iter().map(|_| Uuid::now_v7()).collect();
    let accounts: Vec<Uuid> = to.iter().map(|(a, _)| *a).collect();
    let statuses: Vec<&str> = to.iter().map(|(_, s)| *s).collect();
    sqlx::query(
        "INSERT INTO notify.messages
             (id, source_id, kind, account_id, referral_id, structure_id, subject, body_text, body_html, link, status)
         SELECT r.id, $4, $5, r.account_id, $6, $7, $8, $9, $10, $11, r.status
         FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS r(id, account_id, status)
         ON CONFLICT (source_id, recipient, kind) DO NOTHING",
    )
    .bind(&ids)
    .bind(&accounts)
    .bind(&statuses)
    .bind(m.source_id)
    .bind(m.kind)
    .bind(m.referral_id)
    .bind(m.structure_id)
    .bind(&m.mail.subject)
    .bind(&m.mail.text)
    .bind(&m.mail.html)
    .bind(&m.mail.link)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets (or moves) a reminder, unless a later event already set or cleared it.
pub async fn set_timer(
    conn: &mut PgConnection,
    kind: &str,
    referral_id: Uuid,
    structure_id: Option<&str>,
    due_at: DateTime<Utc>,
    sequence: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO notify.timers (kind, referral_id, structure_id, due_at, active, sequence)
         VALUES ($1, $2, $3, $4, true, $5)
         ON CONFLICT (kind, referral_id) DO UPDATE SET structure_id = EXCLUDED.structure_id,
             due_at = EXCLUDED.due_at, active = true, sequence = EXCLUDED.sequence, fired_at = NULL
         WHERE notify.timers.sequence < EXCLUDED.sequence",
    )
    .bind(kind)
    .bind(referral_id)
    .bind(structure_id)
    .bind(due_at)
    .bind(sequence)
    .execute(conn)
    .await?;
    Ok(())
}

/// Clears a reminder; a later-arriving older event cannot set it again.
pub async fn clear_timer(conn: &mut PgConnection, kind: &str, referral_id: Uuid, sequence: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO notify.timers (kind, referral_id, due_at, active, sequence)
         VALUES ($1, $2, now(), false, $3)
         ON CONFLICT (kind, referral_id) DO UPDATE SET active = false, sequence = EXCLUDED.sequence
         WHERE notify.timers.sequence < EXCLUDED.sequence",
    )
    .bind(kind)
    .bind(referral_id)
    .bind(sequence)
    .execute(conn)
    .await?;
    Ok(())
}
