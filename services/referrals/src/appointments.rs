//! A referral's appointment and the messages that tell the person of it, as stored.
//!
//! One appointment row per referral: setting, moving, cancelling it and setting a new one
//! after a no-show each bump its `version`. Messages to the person are queued here, beside
//! their sealed record ([`crate::person_messages`] sends them): one of each kind per
//! version, their recipient sealed while they wait.

use chrono::{DateTime, Utc};
use contracts::referrals::{AppointmentView, NoticeView};
use contracts::{AppointmentNotice, ContactPreference, NoticeChannel, NoticeStatus, ReferralId, StructureId};
use platform::vault::Vault;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::store::PersonRow;

/// The appointment as stored.
#[derive(Debug, Clone)]
pub struct AppointmentRow {
    pub structure_id: StructureId,
    pub version: i32,
    pub first_version: i32,
    pub at: DateTime<Utc>,
    pub duration_minutes: i32,
    pub place: Option<String>,
    pub channel: NoticeChannel,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub attended: Option<bool>,
}

impl AppointmentRow {
    /// Set, not cancelled, attendance not yet recorded: what a move, a cancellation or an
    /// attendance applies to.
    pub fn is_pending(&self) -> bool {
        self.cancelled_at.is_none() && self.attended.is_none()
    }
}

pub async fn get(conn: &mut PgConnection, id: ReferralId) -> sqlx::Result<Option<AppointmentRow>> {
    sqlx::query_as!(
        AppointmentRow,
        r#"SELECT structure_id AS "structure_id: StructureId", version, first_version, at, duration_minutes, place,
                  channel AS "channel: NoticeChannel", cancelled_at, attended
           FROM referrals.appointments WHERE referral_id = $1"#,
        id.as_uuid()
    )
    .fetch_optional(conn)
    .await
}

/// Stores the appointment of `version` (a new one, or a move).
pub async fn put(
    conn: &mut PgConnection,
    id: ReferralId,
    a: &AppointmentRow,
    set_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO referrals.appointments
             (referral_id, structure_id, version, first_version, at, duration_minutes, place, channel, set_at,
              cancelled_at, attended, attendance_recorded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL, NULL)
         ON CONFLICT (referral_id) DO UPDATE SET structure_id = EXCLUDED.structure_id, version = EXCLUDED.version,
             first_version = EXCLUDED.first_version, at = EXCLUDED.at, duration_minutes = EXCLUDED.duration_minutes,
             place = EXCLUDED.place, channel = EXCLUDED.channel, set_at = EXCLUDED.set_at, cancelled_at = NULL,
             attended = NULL, attendance_recorded_at = NULL",
        id.as_uuid(),
        a.structure_id.as_str(),
        a.version,
        a.first_version,
        a.at,
        a.duration_minutes,
        a.place,
        a.channel.slug(),
        set_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn mark_cancelled(
    conn: &mut PgConnection,
    id: ReferralId,
    version: i32,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE referrals.appointments SET version = $2, cancelled_at = $3 WHERE referral_id = $1",
        id.as_uuid(),
        version,
        at
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn mark_attendance(
    conn: &mut PgConnection,
    id: ReferralId,
    attended: bool,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE referrals.appointments SET attended = $2, attendance_recorded_at = $3 WHERE referral_id = $1",
        id.as_uuid(),
        attended,
        at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// How the person is told, from their contact preference, and where: their phone number
/// for an SMS, their address for an e-mail. A preference whose contact is gone falls back
/// on the other one; a person whose data is gone (purged, erased) is told by the referrer.
pub fn channel_of(person: Option<&PersonRow>) -> (NoticeChannel, Option<String>) {
    let Some(p) = person else { return (NoticeChannel::Referrer, None) };
    let sms = p.phone.clone().map(|phone| (NoticeChannel::Sms, Some(phone)));
    let email = p.email.clone().map(|email| (NoticeChannel::Email, Some(email)));
    let chosen = match p.contact_preference {
        ContactPreference::Phone => sms.or(email),
        ContactPreference::Email => email.or(sms),
        ContactPreference::ViaReferrer => None,
    };
    chosen.unwrap_or((NoticeChannel::Referrer, None))
}

/// Whether the person was told of the appointment first set at `first_version` (a `set`
/// or `changed` message of it went out): then a move or a cancellation is news to them.
pub async fn person_was_told(conn: &mut PgConnection, id: ReferralId, first_version: i32) -> sqlx::Result<bool> {
    let told = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM referrals.person_messages
                          WHERE referral_id = $1 AND version >= $2 AND kind IN ('set', 'changed')
                            AND status IN ('sent', 'delivered')) AS "told!""#,
        id.as_uuid(),
        first_version
    )
    .fetch_one(conn)
    .await?;
    Ok(told)
}

/// Drops the messages still waiting (an older version's, or any once the referral ends):
/// a reminder of a moved or cancelled appointment never goes. A message being sent holds
/// its row, so this waits for it: what is sent was sent before the change.
pub async fn drop_queued(conn: &mut PgConnection, id: ReferralId) -> sqlx::Result<u64> {
    let dropped = sqlx::query!(
        "DELETE FROM referrals.person_messages WHERE referral_id = $1 AND status = $2",
        id.as_uuid(),
        NoticeStatus::Queued.slug()
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(dropped)
}

/// A message to queue: `due` is when it goes (now, or a reminder's time).
pub struct Queued<'a> {
    pub id: ReferralId,
    pub version: i32,
    pub kind: AppointmentNotice,
    pub channel: NoticeChannel,
    /// The phone number (E.164) or the e-mail address, sealed here.
    pub recipient: Option<&'a str>,
    pub due: DateTime<Utc>,
}

/// Queues a message (once: the same kind for the same version is a no-op). The referrer
/// channel's note is `sent` at once: the notifications service tells the referrer from
/// the event.
pub async fn queue(conn: &mut PgConnection, vault: &Vault, m: &Queued<'_>) -> sqlx::Result<()> {
    let message = Uuid::now_v7();
    let (status, sent_at) = match m.channel {
        NoticeChannel::Referrer => (NoticeStatus::Sent, Some(Utc::now())),
        NoticeChannel::Sms | NoticeChannel::Email => (NoticeStatus::Queued, None),
    };
    let recipient = match m.channel {
        NoticeChannel::Referrer => None,
        NoticeChannel::Sms | NoticeChannel::Email => vault.seal_opt(&recipient_place(message), m.recipient),
    };
    let key_id = recipient.as_ref().map(|_| vault.current_key() as i32);
    sqlx::query!(
        "INSERT INTO referrals.person_messages
             (id, referral_id, version, kind, channel, status, due_at, next_attempt_at, recipient, key_id, sent_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10)
         ON CONFLICT (referral_id, version, kind) DO NOTHING",
        message,
        m.id.as_uuid(),
        m.version,
        m.kind.slug(),
        m.channel.slug(),
        status.slug(),
        m.due,
        recipient,
        key_id,
        sent_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Where a message's recipient is sealed (the vault binds a value to its place).
pub fn recipient_place(message: Uuid) -> String {
    format!("person_messages.recipient:{message}")
}

/// The appointment as the referrer organisation and the accepting structure see it, or
/// `None` when none is set (or it was cancelled); with every message to the person.
pub async fn view(conn: &mut PgConnection, id: ReferralId) -> sqlx::Result<Option<AppointmentView>> {
    let Some(a) = get(&mut *conn, id).await? else { return Ok(None) };
    if a.cancelled_at.is_some() {
        return Ok(None);
    }
    let notice = sqlx::query!(
        r#"SELECT channel AS "channel: NoticeChannel", kind AS "kind: AppointmentNotice",
                  status AS "status: NoticeStatus", COALESCE(sent_at, due_at) AS "at!"
           FROM referrals.person_messages WHERE referral_id = $1 AND version >= $2
           ORDER BY due_at, id"#,
        id.as_uuid(),
        a.first_version
    )
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|n| NoticeView { channel: n.channel, kind: n.kind, status: n.status, at: n.at })
    .collect();
    Ok(Some(AppointmentView {
        at: a.at,
        duration_minutes: u32::try_from(a.duration_minutes).unwrap_or_default(),
        place: a.place,
        attended: a.attended,
        notice,
    }))
}
