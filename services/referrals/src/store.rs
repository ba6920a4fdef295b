//! SQL for the `referrals` schema.

use chrono::{DateTime, NaiveDate, Utc};
use contracts::events::Structure;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::referral::NewReferral;

/// One referral (no personal data: that is in [`PersonRow`]).
#[derive(Debug, Clone)]
pub struct ReferralRow {
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub status: String,
    pub territory: String,
    pub commune_code: String,
    pub lat: f64,
    pub lon: f64,
    pub needs: Vec<String>,
    pub modes: Vec<String>,
    pub languages: Vec<String>,
    pub accessibility: Vec<String>,
    pub urgency: String,
    pub deadline: Option<NaiveDate>,
    pub max_distance_km: f64,
    pub attempts: i32,
    pub escalated: bool,
    pub waitlist_reason: Option<String>,
    pub round: i32,
    pub match_sequence: i64,
    pub offer_structure_id: Option<String>,
    pub offer_structure_name: Option<String>,
    pub offer_reservation_id: Option<Uuid>,
    pub offered_at: Option<DateTime<Utc>>,
    pub offer_expires_at: Option<DateTime<Utc>>,
    pub offer_distance_km: Option<f64>,
    pub offer_score: Option<f64>,
    pub offer_explanation: Option<serde_json::Value>,
    pub structure_id: Option<String>,
    pub structure_name: Option<String>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub event_sequence: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub status_changed_at: DateTime<Utc>,
}

impl ReferralRow {
    pub fn clear_offer(&mut self) {
        self.offer_structure_id = None;
        self.offer_structure_name = None;
        self.offer_reservation_id = None;
        self.offered_at = None;
        self.offer_expires_at = None;
        self.offer_distance_km = None;
        self.offer_score = None;
        self.offer_explanation = None;
    }
}

pub struct PersonRow {
    pub first_name: String,
    pub last_name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub contact_preference: String,
    pub commune_name: String,
    pub note: Option<String>,
    pub consent_method: Option<String>,
    pub consent_at: Option<DateTime<Utc>>,
}

impl PersonRow {
    pub fn from_new(r: &NewReferral) -> Self {
        Self {
            first_name: r.person.first_name.expose().clone(),
            last_name: r.person.last_name.expose().clone(),
            phone: r.person.phone.expose().clone(),
            email: r.person.email.expose().clone(),
            contact_preference: r.person.contact_preference.slug().to_string(),
            commune_name: r.commune_name.clone(),
            note: r.note.expose().clone(),
            consent_method: r.consent.method.clone(),
            consent_at: r.consent.at,
        }
    }
}

pub struct HistoryRow {
    pub at: DateTime<Utc>,
    pub step: String,
    pub status: String,
    pub structure_id: Option<String>,
    pub reason: Option<String>,
    pub actor: Option<String>,
    pub comment: Option<String>,
    pub detail: serde_json::Value,
}

impl HistoryRow {
    pub fn submitted(at: DateTime<Utc>, actor: &str) -> Self {
        Self {
            at,
            step: "submitted".to_string(),
            status: "submitted".to_string(),
            structure_id: None,
            reason: None,
            actor: Some(actor.to_string()),
            comment: None,
            detail: serde_json::json!({}),
        }
    }
}

/// One step of a referral's history.
#[derive(Debug, Default)]
pub struct Step<'a> {
    pub step: &'a str,
    pub structure_id: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub comment: Option<&'a str>,
    pub detail: Option<serde_json::Value>,
}

fn slugs<T: std::fmt::Display>(values: &[T]) -> Vec<String> {
    values.iter().map(ToString::to_string).collect()
}

/// Stores a new referral and its person; its first event (`referral.submitted`) is
/// sequence 1.
pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    organisation_id: Uuid,
    r: &NewReferral,
) -> sqlx::Result<ReferralRow> {
    let row = sqlx::query_as!(
        ReferralRow,
        "INSERT INTO referrals.referrals (id, organisation_id, status, territory, commune_code, lat, lon, needs, modes,
                                          languages, accessibility, urgency, deadline, max_distance_km, event_sequence)
         VALUES ($1, $2, 'submitted', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1)
         RETURNING *",
        id,
        organisation_id,
        r.territory,
        r.commune_code,
        r.location.lat,
        r.location.lon,
        &slugs(&r.needs),
        &slugs(&r.modes),
        &slugs(&r.languages),
        &slugs(&r.accessibility),
        r.urgency.slug(),
        r.deadline,
        r.max_distance_km,
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query!(
        "INSERT INTO referrals.persons (referral_id, first_name, last_name, phone, email, contact_preference,
                                        commune_name, note, consent_method, consent_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        id,
        r.person.first_name.expose(),
        r.person.last_name.expose(),
        r.person.phone.expose().as_deref(),
        r.person.email.expose().as_deref(),
        r.person.contact_preference.slug(),
        r.commune_name,
        r.note.expose().as_deref(),
        r.consent.method,
        r.consent.at,
    )
    .execute(conn)
    .await?;
    Ok(row)
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<ReferralRow>> {
    sqlx::query_as!(ReferralRow, "SELECT * FROM referrals.referrals WHERE id = $1", id).fetch_optional(conn).await
}

pub async fn lock(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<ReferralRow>> {
    sqlx::query_as!(ReferralRow, "SELECT * FROM referrals.referrals WHERE id = $1 FOR UPDATE", id)
        .fetch_optional(conn)
        .await
}

/// Writes back every field a transition may change.
pub async fn update(conn: &mut PgConnection, r: &ReferralRow) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE referrals.referrals SET
            status_changed_at = CASE WHEN status <> $2 THEN now() ELSE status_changed_at END,
            status = $2, attempts = $3, escalated = $4, waitlist_reason = $5, round = $6, match_sequence = $7,
            offer_structure_id = $8, offer_structure_name = $9, offer_reservation_id = $10, offered_at = $11,
            offer_expires_at = $12, offer_distance_km = $13, offer_score = $14, offer_explanation = $15,
            structure_id = $16, structure_name = $17, accepted_at = $18, outcome = $19, closed_at = $20,
            event_sequence = $21, updated_at = now()
         WHERE id = $1",
        r.id,
        r.status,
        r.attempts,
        r.escalated,
        r.waitlist_reason,
        r.round,
        r.match_sequence,
        r.offer_structure_id,
        r.offer_structure_name,
        r.offer_reservation_id,
        r.offered_at,
        r.offer_expires_at,
        r.offer_distance_km,
        r.offer_score,
        r.offer_explanation,
        r.structure_id,
        r.structure_name,
        r.accepted_at,
        r.outcome,
        r.closed_at,
        r.event_sequence,
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn person(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<PersonRow>> {
    sqlx::query_as!(
        PersonRow,
        "SELECT first_name, last_name, phone, email, contact_preference, commune_name, note, consent_method, consent_at
         FROM referrals.persons WHERE referral_id = $1",
        id
    )
    .fetch_optional(conn)
    .await
}

pub async fn add_history(conn: &mut PgConnection, referral_id: Uuid, status: &str, s: Step<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO referrals.history (referral_id, step, status, structure_id, reason, actor, comment, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        referral_id,
        s.step,
        status,
        s.structure_id,
        s.reason,
        s.actor,
        s.comment,
        s.detail.unwrap_or_else(|| serde_json::json!({})),
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn history(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Vec<HistoryRow>> {
    sqlx::query_as!(
        HistoryRow,
        "SELECT at, step, status, structure_id, reason, actor, comment, detail
         FROM referrals.history WHERE referral_id = $1 ORDER BY id",
        id
    )
    .fetch_all(conn)
    .await
}

/// Who may be listed: the scope of the caller.
pub enum ListScope {
    All,
    Organisation(Uuid),
    Structure(String),
    Territories(Vec<String>),
}

pub struct ListFilter {
    pub scope: ListScope,
    pub status: Option<String>,
    pub escalated: Option<bool>,
    pub unchanged_since: Option<DateTime<Utc>>,
    pub before: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// Newest first, keyset-paginated on (created_at, id).
pub async fn list(conn: &mut PgConnection, f: &ListFilter) -> sqlx::Result<Vec<ReferralRow>> {
    let (all, org, structure, territories) = match &f.scope {
        ListScope::All => (true, None, None, None),
        ListScope::Organisation(o) => (false, Some(*o), None, None),
        ListScope::Structure(s) => (false, None, Some(s.clone()), None),
        ListScope::Territories(t) => (false, None, None, Some(t.clone())),
    };
    let (before_at, before_id) = f.before.map(|(a, i)| (Some(a), Some(i))).unwrap_or((None, None));
    sqlx::query_as!(
        ReferralRow,
        "SELECT * FROM referrals.referrals
         WHERE ($1 OR organisation_id = $2
                OR (($3::text IS NOT NULL) AND ((status = 'offered' AND offer_structure_id = $3) OR structure_id = $3))
                OR territory = ANY($4))
           AND ($5::text IS NULL OR status = $5)
           AND ($6::bool IS NULL OR escalated = $6)
           AND ($7::timestamptz IS NULL OR status_changed_at <= $7)
           AND ($8::timestamptz IS NULL OR (created_at, id) < ($8, $9))
         ORDER BY created_at DESC, id DESC
         LIMIT $10",
        all,
        org,
        structure,
        territories.as_deref(),
        f.status,
        f.escalated,
        f.unchanged_since,
        before_at,
        before_id,
        f.limit,
    )
    .fetch_all(conn)
    .await
}

/// Offers whose deadline passed, locked so that no other replica fires them too.
pub async fn due_offers(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM referrals.referrals WHERE status = 'offered' AND offer_expires_at <= now()
         ORDER BY offer_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit
    )
    .fetch_all(conn)
    .await
}

/// When the next offer falls due.
pub async fn next_offer_expiry(conn: &mut PgConnection) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!("SELECT min(offer_expires_at) FROM referrals.referrals WHERE status = 'offered'")
        .fetch_one(conn)
        .await
}

/// Records an `Idempotency-Key`, or returns the referral and request hash it was first
/// used with.
pub async fn claim_idempotency_key(
    conn: &mut PgConnection,
    scope: &str,
    key: &str,
    request_hash: &str,
    referral_id: Uuid,
) -> sqlx::Result<Option<(String, Uuid)>> {
    let inserted = sqlx::query!(
        "INSERT INTO referrals.idempotency_keys (scope, key, request_hash, referral_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (scope, key) DO NOTHING",
        scope,
        key,
        request_hash,
        referral_id
    )
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(None);
    }
    let row = sqlx::query!(
        "SELECT request_hash, referral_id FROM referrals.idempotency_keys WHERE scope = $1 AND key = $2",
        scope,
        key
    )
    .fetch_one(conn)
    .await?;
    Ok(Some((row.request_hash, row.referral_id)))
}

pub async fn upsert_structure(conn: &mut PgConnection, s: &Structure, sequence: i64) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO referrals.structures (id, name, phone, email, website, source_sequence)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, phone = EXCLUDED.phone, email = EXCLUDED.email,
             website = EXCLUDED.website, source_sequence = EXCLUDED.source_sequence
         WHERE referrals.structures.source_sequence < EXCLUDED.source_sequence",
        s.id,
        s.name,
        s.contact.phone,
        s.contact.email,
        s.contact.website,
        sequence
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub struct StructureContactRow {
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub website: Option<String>,
}

pub async fn structure_contact(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<StructureContactRow>> {
    sqlx::query_as!(
        StructureContactRow,
        "SELECT name, phone, email, website FROM referrals.structures WHERE id = $1",
        id
    )
    .fetch_optional(conn)
    .await
}

/// Pending offers and waitlist size per territory, for the metrics.
pub async fn gauges(conn: &mut PgConnection) -> sqlx::Result<Vec<(String, i64, i64)>> {
    let rows = sqlx::query!(
        r#"SELECT territory, count(*) FILTER (WHERE status = 'offered') AS "offered!",
                  count(*) FILTER (WHERE status = 'waitlisted') AS "waitlisted!"
           FROM referrals.referrals WHERE status IN ('offered', 'waitlisted') GROUP BY territory"#
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.territory, r.offered, r.waitlisted)).collect())
}
