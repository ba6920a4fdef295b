//! The notify schema's SQL: checked at compile time, with typed rows.

use chrono::{DateTime, Utc};
use contracts::{CommuneCode, Need, ReferralStatus, StructureId, Territory};
use sqlx::PgConnection;
use uuid::Uuid;

platform::text_enum! {
    /// Where an e-mail stands in the outbox.
    pub enum MessageStatus {
        /// To send.
        Pending = "pending",
        /// Waits for the agent's daily digest.
        Held = "held",
        /// Went out in a digest.
        Digested = "digested",
        Sent = "sent",
        /// Refused for good (see `error`).
        Failed = "failed",
        /// Held for someone who has since chosen never: not sent.
        Withdrawn = "withdrawn",
    }
}

platform::text_enum! {
    /// A message to a structure's public address (an agent's message is of a
    /// `contracts::MessageKind`, as they set their preferences).
    pub enum StructureMessage {
        /// An offer, with its answer link, to a structure no active mediator answers for.
        AnswerLinkOffer = "answer_link_offer",
        /// A fresh link for a referral the structure accepted.
        AnswerLinkRenewal = "answer_link_renewal",
    }
}

impl StructureMessage {
    /// Whether `kind` (a message's) carries an answer link, made when it is sent.
    pub fn of(kind: &str) -> Option<StructureMessage> {
        kind.parse().ok()
    }
}

platform::text_enum! {
    /// A durable timer: a reminder (one per referral) or a digest (one row).
    pub enum TimerKind {
        OfferReminder = "offer_reminder",
        ContactReminder = "contact_reminder",
        DailyDigest = "daily_digest",
        WeeklyDigest = "weekly_digest",
    }
}

platform::text_enum! {
    /// Where a webhook delivery stands.
    pub enum DeliveryStatus {
        Pending = "pending",
        Delivered = "delivered",
        /// Given up after 24 hours of failures.
        Dead = "dead",
        /// Its subscription was deleted.
        Cancelled = "cancelled",
    }
}

/// What notifications know of a referral: no personal data.
#[derive(Debug, Clone)]
pub struct Referral {
    pub referral_id: Uuid,
    pub organisation_id: Option<Uuid>,
    pub submitted_by: Option<Uuid>,
    pub commune_code: Option<CommuneCode>,
    pub territory: Option<Territory>,
    pub needs: Vec<Need>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub status: ReferralStatus,
    pub structure_id: Option<StructureId>,
    pub last_event_at: DateTime<Utc>,
}

pub struct Submitted<'a> {
    pub referral_id: Uuid,
    pub organisation_id: Uuid,
    pub submitted_by: Option<Uuid>,
    pub commune_code: &'a CommuneCode,
    pub territory: &'a Territory,
    pub needs: &'a [Need],
    pub submitted_at: DateTime<Utc>,
}

pub async fn submitted(conn: &mut PgConnection, s: &Submitted<'_>, sequence: i64) -> sqlx::Result<()> {
    let needs: Vec<&str> = s.needs.iter().map(|n| n.slug()).collect();
    sqlx::query!(
        "INSERT INTO notify.referrals
             (referral_id, organisation_id, submitted_by, commune_code, territory, needs, submitted_at,
              status, last_event_at, last_sequence)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'submitted', $7, $8)
         ON CONFLICT (referral_id) DO UPDATE SET
             organisation_id = EXCLUDED.organisation_id, submitted_by = EXCLUDED.submitted_by,
             commune_code = EXCLUDED.commune_code, territory = EXCLUDED.territory,
             needs = EXCLUDED.needs, submitted_at = EXCLUDED.submitted_at",
        s.referral_id,
        s.organisation_id,
        s.submitted_by,
        s.commune_code.as_str(),
        s.territory.as_str(),
        &needs as &[&str],
        s.submitted_at,
        sequence
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the state an event leaves the referral in, unless a later event already did,
/// and returns the referral as it was known before (one round trip for both).
pub async fn moved(
    conn: &mut PgConnection,
    referral_id: Uuid,
    status: ReferralStatus,
    structure_id: Option<&StructureId>,
    at: DateTime<Utc>,
    sequence: i64,
) -> sqlx::Result<Option<Referral>> {
    // Every part of one statement sees the same snapshot: `known` is the row before the
    // upsert.
    sqlx::query_as!(
        Referral,
        r#"WITH known AS (
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
         SELECT referral_id AS "referral_id!", organisation_id, submitted_by,
                commune_code AS "commune_code: CommuneCode", territory AS "territory: Territory",
                needs AS "needs!: Vec<Need>", submitted_at, status AS "status!: ReferralStatus",
                structure_id AS "structure_id: StructureId", last_event_at AS "last_event_at!"
         FROM known"#,
        referral_id,
        status.slug(),
        structure_id.map(StructureId::as_str),
        at,
        sequence
    )
    .fetch_optional(conn)
    .await
}

pub async fn referral(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Referral>> {
    sqlx::query_as!(
        Referral,
        r#"SELECT referral_id, organisation_id, submitted_by, commune_code AS "commune_code: CommuneCode",
                  territory AS "territory: Territory", needs AS "needs: Vec<Need>", submitted_at,
                  status AS "status: ReferralStatus", structure_id AS "structure_id: StructureId", last_event_at
           FROM notify.referrals WHERE referral_id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// Referrals in these départements, still open, that no event moved since `before`.
pub async fn stale(
    conn: &mut PgConnection,
    territories: &[String],
    before: DateTime<Utc>,
) -> sqlx::Result<Vec<Referral>> {
    sqlx::query_as!(
        Referral,
        r#"SELECT referral_id, organisation_id, submitted_by, commune_code AS "commune_code: CommuneCode",
                  territory AS "territory: Territory", needs AS "needs: Vec<Need>", submitted_at,
                  status AS "status: ReferralStatus", structure_id AS "structure_id: StructureId", last_event_at
           FROM notify.referrals
           WHERE territory = ANY($1) AND last_event_at < $2
             AND status IN ('submitted', 'offered', 'waitlisted', 'accepted', 'in_progress')
           ORDER BY last_event_at LIMIT 500"#,
        territories,
        before
    )
    .fetch_all(conn)
    .await
}

#[derive(Debug, Clone)]
pub struct Structure {
    pub id: StructureId,
    pub name: String,
    pub territory: Territory,
    /// The public contact address from the directory (institutional, not personal).
    pub contact_email: Option<String>,
    pub contact_phone: Option<String>,
    /// When that address last refused a message for good (SMTP 5xx): a structure nobody
    /// can reach by e-mail until the directory gives another address.
    pub bounced_at: Option<DateTime<Utc>>,
}

impl Structure {
    /// Its public address, unless that address refused a message for good.
    pub fn usable_address(&self) -> Option<&str> {
        self.contact_email.as_deref().filter(|_| self.bounced_at.is_none())
    }
}

/// Keeps the directory's public record, unless a later one is here; a new address
/// forgets that the previous one bounced.
pub async fn upsert_structure(
    conn: &mut PgConnection,
    s: &contracts::events::Structure,
    sequence: i64,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO notify.structures
             (id, name, territory, commune, contact_email, contact_phone, removed, source_sequence)
         VALUES ($1, $2, $3, $4, $5, $6, false, $7)
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, territory = EXCLUDED.territory,
             commune = EXCLUDED.commune, contact_email = EXCLUDED.contact_email,
             contact_phone = EXCLUDED.contact_phone, removed = false, source_sequence = EXCLUDED.source_sequence,
             bounced_at = CASE WHEN notify.structures.contact_email IS DISTINCT FROM EXCLUDED.contact_email
                               THEN NULL ELSE notify.structures.bounced_at END
         WHERE notify.structures.source_sequence <= EXCLUDED.source_sequence",
        s.id.as_str(),
        &s.name,
        s.territory.as_str(),
        s.address.commune.as_deref(),
        s.contact.email.as_deref().map(str::trim).filter(|e| !e.is_empty()),
        s.contact.phone.as_deref().map(str::trim).filter(|p| !p.is_empty()),
        sequence
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn remove_structure(conn: &mut PgConnection, id: &StructureId, sequence: i64) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE notify.structures SET removed = true, source_sequence = $2 WHERE id = $1 AND source_sequence <= $2",
        id.as_str(),
        sequence
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn structure(conn: &mut PgConnection, id: &StructureId) -> sqlx::Result<Option<Structure>> {
    sqlx::query_as!(
        Structure,
        r#"SELECT id AS "id: StructureId", name, territory AS "territory: Territory", contact_email, contact_phone,
                  bounced_at
           FROM notify.structures WHERE id = $1"#,
        id.as_str()
    )
    .fetch_optional(conn)
    .await
}

pub async fn structures_in(conn: &mut PgConnection, territories: &[String]) -> sqlx::Result<Vec<Structure>> {
    sqlx::query_as!(
        Structure,
        r#"SELECT id AS "id: StructureId", name, territory AS "territory: Territory", contact_email, contact_phone,
                  bounced_at
           FROM notify.structures
           WHERE territory = ANY($1) AND NOT removed ORDER BY territory, name, id"#,
        territories
    )
    .fetch_all(conn)
    .await
}

/// The départements that have a structure (an admin's view of every territory).
pub async fn territories(conn: &mut PgConnection) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        r#"SELECT DISTINCT territory AS "territory!" FROM notify.structures WHERE NOT removed ORDER BY 1"#
    )
    .fetch_all(conn)
    .await
}

/// Records that the structure's public address refused a message for good, and asks for
/// the withdrawal of the offer that message carried (done by [`due_withdrawals`] through
/// referrals' API, retried until it answers). Idempotent.
pub async fn bounced(conn: &mut PgConnection, structure: &StructureId, referral: Option<Uuid>) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE notify.structures SET bounced_at = COALESCE(bounced_at, now()) WHERE id = $1",
        structure.as_str()
    )
    .execute(&mut *conn)
    .await?;
    if let Some(referral) = referral {
        sqlx::query!(
            "INSERT INTO notify.withdrawals (referral_id, structure_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            referral,
            structure.as_str()
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// An offer to withdraw, with the tries so far.
#[derive(Debug)]
pub struct Withdrawal {
    pub referral_id: Uuid,
    pub structure_id: StructureId,
    pub attempts: i32,
}

/// The withdrawals due now, claimed for a minute (a replica that dies leaves them to
/// the others).
pub async fn due_withdrawals(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<Withdrawal>> {
    sqlx::query_as!(
        Withdrawal,
        r#"UPDATE notify.withdrawals SET next_attempt_at = now() + interval '1 minute'
           WHERE (referral_id, structure_id) IN (
               SELECT referral_id, structure_id FROM notify.withdrawals
               WHERE done_at IS NULL AND next_attempt_at <= now()
               ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING referral_id, structure_id AS "structure_id: StructureId", attempts"#,
        limit
    )
    .fetch_all(conn)
    .await
}

/// A withdrawal done (or no longer needed), or to try again after `retry_in`.
pub async fn withdrawal_tried(
    conn: &mut PgConnection,
    w: &Withdrawal,
    retry_in: Option<chrono::Duration>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE notify.withdrawals
         SET attempts = attempts + 1,
             done_at = CASE WHEN $3::interval IS NULL THEN now() END,
             next_attempt_at = now() + COALESCE($3::interval, interval '0')
         WHERE referral_id = $1 AND structure_id = $2",
        w.referral_id,
        w.structure_id.as_str(),
        retry_in.map(|d| sqlx::postgres::types::PgInterval::try_from(d).unwrap_or_default()) as _
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// What the messages of one event share.
pub struct Common<'a> {
    /// The event (or timer firing) the message comes from.
    pub source_id: Uuid,
    pub kind: &'a str,
    pub referral_id: Option<Uuid>,
    pub structure_id: Option<&'a StructureId>,
    pub mail: &'a crate::render::Mail,
}

/// Whom a message goes to.
pub enum Recipient<'a> {
    /// An agent: the address is asked of accounts at send time.
    Account(Uuid),
    /// A structure's public contact address.
    Address(&'a str),
}

/// Stores the same message for each recipient, with its status, in one statement: once
/// per (source, recipient, kind), so a second call for the same ones does nothing.
pub async fn enqueue(
    conn: &mut PgConnection,
    m: &Common<'_>,
    to: &[(Recipient<'_>, MessageStatus)],
) -> sqlx::Result<()> {
    if to.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = to.iter().map(|_| Uuid::now_v7()).collect();
    let accounts: Vec<Option<Uuid>> = to
        .iter()
        .map(|(r, _)| match r {
            Recipient::Account(a) => Some(*a),
            Recipient::Address(_) => None,
        })
        .collect();
    let addresses: Vec<Option<&str>> = to
        .iter()
        .map(|(r, _)| match r {
            Recipient::Account(_) => None,
            Recipient::Address(a) => Some(*a),
        })
        .collect();
    let statuses: Vec<&str> = to.iter().map(|(_, s)| s.slug()).collect();
    sqlx::query!(
        "INSERT INTO notify.messages
             (id, source_id, kind, account_id, address, referral_id, structure_id, subject, body_text, body_html,
              link, status)
         SELECT r.id, $5, $6, r.account_id, r.address, $7, $8, $9, $10, $11, $12, r.status
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]) AS r(id, account_id, address, status)
         ON CONFLICT (source_id, recipient, kind) DO NOTHING",
        &ids,
        &accounts as &[Option<Uuid>],
        &addresses as &[Option<&str>],
        &statuses as &[&str],
        m.source_id,
        m.kind,
        m.referral_id,
        m.structure_id.map(StructureId::as_str),
        &m.mail.subject,
        &m.mail.text,
        &m.mail.html,
        &m.mail.link
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets (or moves) a reminder, unless a later event already set or cleared it.
pub async fn set_timer(
    conn: &mut PgConnection,
    kind: TimerKind,
    referral_id: Uuid,
    structure_id: Option<&StructureId>,
    due_at: DateTime<Utc>,
    sequence: i64,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO notify.timers (kind, referral_id, structure_id, due_at, active, sequence)
         VALUES ($1, $2, $3, $4, true, $5)
         ON CONFLICT (kind, referral_id) DO UPDATE SET structure_id = EXCLUDED.structure_id,
             due_at = EXCLUDED.due_at, active = true, sequence = EXCLUDED.sequence, fired_at = NULL
         WHERE notify.timers.sequence < EXCLUDED.sequence",
        kind.slug(),
        referral_id,
        structure_id.map(StructureId::as_str),
        due_at,
        sequence
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Clears a reminder; a later-arriving older event cannot set it again.
pub async fn clear_timer(
    conn: &mut PgConnection,
    kind: TimerKind,
    referral_id: Uuid,
    sequence: i64,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO notify.timers (kind, referral_id, due_at, active, sequence)
         VALUES ($1, $2, now(), false, $3)
         ON CONFLICT (kind, referral_id) DO UPDATE SET active = false, sequence = EXCLUDED.sequence
         WHERE notify.timers.sequence < EXCLUDED.sequence",
        kind.slug(),
        referral_id,
        sequence
    )
    .execute(conn)
    .await?;
    Ok(())
}
