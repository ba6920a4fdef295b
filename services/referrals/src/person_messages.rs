//! Sends the messages that tell the person of their appointment: an SMS through the
//! Brevo-compatible provider ([`platform::sms`]), or an e-mail over SMTP
//! ([`platform::mail`]), from beside the person's sealed record.
//!
//! Each round takes the due messages in one transaction, `FOR UPDATE SKIP LOCKED`, and
//! holds them while it sends: another replica skips them, and a move or a cancellation of
//! the appointment (which drops what still waits) waits for the round, so a reminder of an
//! older time never goes once the change is made. A message is composed when it goes,
//! from the appointment and the place as they are then. Sent or failed, its recipient is
//! deleted. A 5xx, a timeout or no connection is retried with backoff for a day from when
//! it was due; a 4xx (or SMS or e-mail off) fails at once, and the failure is announced
//! (`referral.person_notice_failed`) so that the referrer is told to tell the person.
//!
//! Nothing here logs the number, the address or the text: a message's id, its kind and
//! channel, and the provider's status code.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use contracts::{AppointmentNotice, NoticeChannel, NoticeStatus, ReferralId};
use futures::StreamExt;
use platform::sms::{SmsClient, SmsError};
use platform::vault::Vault;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::appointments::recipient_place;
use crate::domain::person_mail::appointment_mail;
use crate::domain::sms::{SmsKind, SmsPlace, appointment_sms};
use crate::{lifecycle, store};

/// Messages taken per round; each is sent at once, side by side.
const BATCH: i64 = 16;
const IDLE: Duration = Duration::from_millis(250);
/// Longest wait between two tries of one message: a provider down for ten minutes is
/// tried again within this of coming back.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a message is tried after it was due, before it counts as failed.
pub const GIVE_UP_AFTER: chrono::Duration = chrono::Duration::hours(24);

/// The ways out: either may be off (unset in the configuration), and a message for it
/// then fails at once, which the referrer is told of.
#[derive(Clone, Default)]
pub struct Senders {
    pub sms: Option<SmsClient>,
    pub mail: Option<Arc<platform::mail::Mailer>>,
}

impl Senders {
    pub fn from_config(config: &platform::Config) -> anyhow::Result<Self> {
        Ok(Self {
            sms: SmsClient::from_config(config),
            mail: platform::mail::Mailer::from_config(config)?.map(Arc::new),
        })
    }
}

/// The sender's loop, until shutdown.
pub async fn run(pool: PgPool, vault: Vault, senders: Senders, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        if let Err(err) = announce_failures(&pool).await {
            tracing::warn!(error = %err, "failed messages to persons not announced yet; retrying");
        }
        let pause = match send_due(&pool, &vault, &senders).await {
            Ok(n) if n > 0 => Duration::ZERO,
            Ok(_) => IDLE,
            Err(err) => {
                tracing::warn!(error = %err, "messages to persons unavailable; retrying");
                Duration::from_secs(1)
            }
        };
        if pause > Duration::ZERO {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// The queries above find their rows through partial indexes (`status = 'queued'`,
/// `status = 'failed'`), but name the status as a parameter. Once PostgreSQL settles on a
/// generic plan for such a prepared statement (after five runs, while the table is still
/// small), it cannot use those indexes and reads the whole table at every round: at 100
/// referrals/s with appointments, 1,803 sequential scans reading 6.4 million rows in 100 s,
/// and PostgreSQL's CPU from 0.15 to 0.60 cores (tests/load/bench/appointments-ab.sh).
/// Custom plans, for this transaction only, see the value and use the indexes.
async fn custom_plans(tx: &mut sqlx::PgConnection) -> sqlx::Result<()> {
    sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan").execute(tx).await?;
    Ok(())
}

/// Backoff after `attempts` failed tries: 1 s, 2 s, 4 s … up to [`MAX_BACKOFF`].
pub fn backoff(attempts: i32) -> Duration {
    let exp = attempts.clamp(0, 16) as u32;
    Duration::from_secs(1u64 << exp).min(MAX_BACKOFF)
}

struct Due {
    id: Uuid,
    referral_id: Uuid,
    kind: AppointmentNotice,
    channel: NoticeChannel,
    recipient: Option<Vec<u8>>,
    attempts: i32,
    due_at: DateTime<Utc>,
    at: DateTime<Utc>,
    duration_minutes: i32,
    room: Option<String>,
    name: Option<String>,
    phone: Option<String>,
    street: Option<String>,
    commune: Option<String>,
}

/// What became of one message this round.
enum Outcome {
    Sent(Option<String>),
    Retry(String),
    Failed(String),
}

/// Sends every message that is due and returns how many were tried. Tests step the
/// sender with this.
pub async fn send_due(pool: &PgPool, vault: &Vault, senders: &Senders) -> sqlx::Result<usize> {
    let mut tx = pool.begin().await?;
    custom_plans(&mut tx).await?;
    let due = sqlx::query_as!(
        Due,
        r#"SELECT m.id, m.referral_id, m.kind AS "kind: AppointmentNotice", m.channel AS "channel: NoticeChannel",
                  m.recipient, m.attempts, m.due_at, a.at, a.duration_minutes, a.place AS room,
                  s.name AS "name?", s.phone AS "phone?", s.street AS "street?", s.commune AS "commune?"
           FROM referrals.person_messages m
           JOIN referrals.appointments a ON a.referral_id = m.referral_id AND a.version = m.version
           LEFT JOIN referrals.structures s ON s.id = a.structure_id
           WHERE m.status = $1 AND m.next_attempt_at <= now()
           ORDER BY m.next_attempt_at LIMIT $2
           FOR UPDATE OF m SKIP LOCKED"#,
        NoticeStatus::Queued.slug(),
        BATCH
    )
    .fetch_all(&mut *tx)
    .await?;
    if due.is_empty() {
        return Ok(0);
    }
    if due.iter().any(|m| m.recipient.as_deref().is_some_and(|r| !vault.knows(r))) {
        // A data key made by another process since this one loaded them.
        vault.reload(pool).await.map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    }
    let n = due.len();
    let mut sends = Vec::with_capacity(n);
    for m in &due {
        sends.push(async move { (m, send_one(vault, senders, m).await) });
    }
    let results: Vec<(&Due, Outcome)> = futures::stream::iter(sends).buffer_unordered(BATCH as usize).collect().await;
    let now = Utc::now();
    for (m, outcome) in &results {
        match outcome {
            Outcome::Sent(provider_id) => {
                sqlx::query!(
                    "UPDATE referrals.person_messages SET status = $2, sent_at = now(), recipient = NULL,
                         key_id = NULL, provider_id = $3, attempts = attempts + 1, error = NULL
                     WHERE id = $1",
                    m.id,
                    NoticeStatus::Sent.slug(),
                    provider_id.as_deref()
                )
                .execute(&mut *tx)
                .await?;
            }
            Outcome::Retry(why) if now - m.due_at < GIVE_UP_AFTER => {
                let wait = i64::try_from(backoff(m.attempts).as_millis()).unwrap_or(i64::MAX);
                sqlx::query!(
                    "UPDATE referrals.person_messages SET attempts = attempts + 1, error = $2,
                         next_attempt_at = now() + $3 * interval '1 millisecond'
                     WHERE id = $1",
                    m.id,
                    why,
                    wait as f64
                )
                .execute(&mut *tx)
                .await?;
            }
            Outcome::Retry(why) | Outcome::Failed(why) => {
                sqlx::query!(
                    "UPDATE referrals.person_messages SET status = $2, recipient = NULL, key_id = NULL,
                         attempts = attempts + 1, error = $3
                     WHERE id = $1",
                    m.id,
                    NoticeStatus::Failed.slug(),
                    why
                )
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    tx.commit().await?;
    for (m, outcome) in &results {
        let (id, referral_id, kind, channel) = (m.id, m.referral_id, m.kind, m.channel);
        match outcome {
            Outcome::Sent(_) => {
                tracing::info!(message_id = %id, %referral_id, %kind, %channel, "message to the person sent")
            }
            Outcome::Retry(why) => {
                tracing::info!(message_id = %id, %referral_id, %kind, %channel, attempts = m.attempts, %why, "message to the person deferred")
            }
            Outcome::Failed(why) => {
                tracing::warn!(message_id = %id, %referral_id, %kind, %channel, %why, "message to the person failed")
            }
        }
    }
    Ok(n)
}

fn sms_kind(kind: AppointmentNotice) -> SmsKind {
    match kind {
        AppointmentNotice::Set => SmsKind::Set,
        AppointmentNotice::Changed => SmsKind::Changed,
        AppointmentNotice::Cancelled => SmsKind::Cancelled,
        AppointmentNotice::Reminder => SmsKind::Reminder,
    }
}

async fn send_one(vault: &Vault, senders: &Senders, m: &Due) -> Outcome {
    let Some(sealed) = m.recipient.as_deref() else {
        return Outcome::Failed("no recipient".into());
    };
    let to = match vault.open_value(&recipient_place(m.id), sealed) {
        Ok(to) => to,
        Err(err) => return Outcome::Failed(format!("the recipient cannot be opened: {err}")),
    };
    let place = SmsPlace {
        name: m.name.as_deref().unwrap_or("Le lieu d'accueil"),
        street: m.street.as_deref(),
        commune: m.commune.as_deref(),
        phone: m.phone.as_deref(),
    };
    let kind = sms_kind(m.kind);
    match m.channel {
        NoticeChannel::Sms => {
            let Some(sms) = &senders.sms else {
                return Outcome::Failed("SMS is off (AIGUILLAGE_SMS_URL unset)".into());
            };
            let text = appointment_sms(kind, m.at, &place, m.room.as_deref());
            match sms.send(&to, &text, "appointment").await {
                Ok(sent) => Outcome::Sent(sent.message_id.map(|id| id.to_string())),
                Err(err @ SmsError::Permanent { .. }) => Outcome::Failed(err.to_string()),
                Err(err @ SmsError::Retry { .. }) => Outcome::Retry(err.to_string()),
            }
        }
        NoticeChannel::Email => {
            let Some(mailer) = &senders.mail else {
                return Outcome::Failed("e-mail is off (AIGUILLAGE_SMTP_URL unset)".into());
            };
            let duration = u32::try_from(m.duration_minutes).unwrap_or(60);
            let mail = appointment_mail(kind, m.at, duration, &place, m.room.as_deref());
            let out = platform::mail::Mail {
                message_id: m.id,
                subject: &mail.subject,
                text: &mail.text,
                html: &mail.html,
                list_unsubscribe: None,
            };
            match mailer.send(&to, &out).await {
                Ok(()) => Outcome::Sent(None),
                Err(platform::mail::SendError::Retry(why)) => Outcome::Retry(why),
                Err(platform::mail::SendError::Permanent(why)) => Outcome::Failed(why),
            }
        }
        // Never queued: the notifications service tells the referrer.
        NoticeChannel::Referrer => Outcome::Sent(None),
    }
}

/// Announces each failed message once (`referral.person_notice_failed`), in its own
/// transaction with its referral locked, after the round that failed it committed.
pub async fn announce_failures(pool: &PgPool) -> sqlx::Result<usize> {
    let mut tx = pool.begin().await?;
    custom_plans(&mut tx).await?;
    let failed = sqlx::query!(
        r#"SELECT id, referral_id, kind AS "kind: AppointmentNotice", channel AS "channel: NoticeChannel"
           FROM referrals.person_messages WHERE status = $1 AND NOT failure_announced LIMIT 32"#,
        NoticeStatus::Failed.slug()
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let n = failed.len();
    for f in failed {
        let mut tx = pool.begin().await?;
        let Some(mut r) = store::lock(&mut tx, ReferralId::from(f.referral_id)).await? else { continue };
        let claimed = sqlx::query!(
            "UPDATE referrals.person_messages SET failure_announced = true WHERE id = $1 AND NOT failure_announced",
            f.id
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 1 {
            lifecycle::person_notice_failed(&mut tx, &mut r, f.channel, f.kind, Utc::now()).await?;
        }
        tx.commit().await?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the end-to-end test's ten-minute outage stands for: the tries that ten
    /// minutes of backoff make, each wait at most a minute, all well within the day.
    #[test]
    fn ten_minutes_of_outage_are_fifteen_tries_a_minute_apart_at_most() {
        let mut elapsed = Duration::ZERO;
        let mut tries = 0;
        while elapsed < Duration::from_secs(600) {
            elapsed += backoff(tries);
            tries += 1;
        }
        assert_eq!(tries, 15);
        assert!((0..100).all(|n| backoff(n) <= MAX_BACKOFF));
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(6), MAX_BACKOFF);
        assert!(chrono::Duration::from_std(elapsed).unwrap() < GIVE_UP_AFTER);
    }
}
