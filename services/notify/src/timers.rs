//! Durable timers: reminders (one row per referral and kind, set and cleared by events)
//! and the daily and weekly digests (one row each, moved forward when they fire). A
//! timer fires in the transaction that locks it with `SKIP LOCKED` and then clears or
//! moves it, together with the messages it stores: it survives restarts (one that fell
//! due while every process was down fires on the next start) and never fires twice,
//! whatever the number of replicas.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Europe::Paris;
use contracts::{DeliveryMode, MessageKind, ReferralStatus, StructureId};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::Settings;
use crate::messaging;
use crate::render::{self, Item, Stale};
use crate::store::{self, DeliveryStatus, MessageStatus, Recipient, TimerKind};

const BATCH: i64 = 100;
const TICK: Duration = Duration::from_millis(500);
/// When digests go out, Paris time.
const DIGEST_HOUR: u32 = 7;

/// How long sent e-mails and made webhook deliveries are kept (for the admins' view and
/// for the uniqueness of what was sent), and how often they are purged.
const KEEP_SENT: &str = "30 days";
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// Deletes e-mails sent (or folded into a digest) and webhook deliveries made or given up
/// more than [`KEEP_SENT`] ago, a batch at a time. Returns how many rows went.
pub async fn purge(pool: &PgPool) -> sqlx::Result<u64> {
    let done: Vec<&str> =
        [MessageStatus::Sent, MessageStatus::Digested, MessageStatus::Withdrawn].iter().map(|s| s.slug()).collect();
    let messages = sqlx::query!(
        "DELETE FROM notify.messages WHERE id IN (
             SELECT id FROM notify.messages
             WHERE status = ANY($2) AND created_at < now() - $1::interval LIMIT 10000)",
        KEEP_SENT as _,
        &done as &[&str]
    )
    .execute(pool)
    .await?;
    let done: Vec<&str> =
        [DeliveryStatus::Delivered, DeliveryStatus::Dead, DeliveryStatus::Cancelled].iter().map(|s| s.slug()).collect();
    let deliveries = sqlx::query!(
        "DELETE FROM notify.webhook_deliveries WHERE id IN (
             SELECT id FROM notify.webhook_deliveries
             WHERE status = ANY($2) AND created_at < now() - $1::interval LIMIT 10000)",
        KEEP_SENT as _,
        &done as &[&str]
    )
    .execute(pool)
    .await?;
    Ok(messages.rows_affected() + deliveries.rows_affected())
}

pub async fn run(pool: PgPool, settings: Arc<Settings>, shutdown: CancellationToken) {
    let mut scheduled = false;
    let mut purged_at = tokio::time::Instant::now();
    while !shutdown.is_cancelled() {
        if purged_at.elapsed() >= PURGE_EVERY {
            purged_at = tokio::time::Instant::now();
            if let Err(err) = purge(&pool).await {
                tracing::warn!(error = %err, "purge of sent notifications failed; retrying later");
            }
        }
        if !scheduled {
            match schedule_digests(&pool, Utc::now()).await {
                Ok(()) => scheduled = true,
                Err(err) => tracing::warn!(error = %err, "digest timers unavailable; retrying"),
            }
        }
        let pause = match fire_due(&pool, &settings, Utc::now()).await {
            Ok(n) if n as i64 >= BATCH => Duration::ZERO,
            Ok(_) => TICK,
            Err(err) => {
                tracing::warn!(error = %err, "notification timers unavailable; retrying");
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

/// Makes sure both digest timers exist (idempotent; an existing one keeps its time).
pub async fn schedule_digests(pool: &PgPool, now: DateTime<Utc>) -> sqlx::Result<()> {
    for (kind, due) in [(TimerKind::DailyDigest, next_daily(now)), (TimerKind::WeeklyDigest, next_weekly(now))] {
        sqlx::query!(
            "INSERT INTO notify.timers (kind, referral_id, due_at, active) VALUES ($1, $2, $3, true)
             ON CONFLICT (kind, referral_id) DO NOTHING",
            kind.slug(),
            Uuid::nil(),
            due
        )
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// The first 07:00 in Paris after `now`.
pub fn next_daily(now: DateTime<Utc>) -> DateTime<Utc> {
    let local = now.with_timezone(&Paris).date_naive();
    (0..3)
        .filter_map(|d| {
            let day = local + chrono::Days::new(d);
            let at = day.and_time(NaiveTime::from_hms_opt(DIGEST_HOUR, 0, 0)?);
            Paris.from_local_datetime(&at).earliest().map(|t| t.with_timezone(&Utc))
        })
        .find(|t| *t > now)
        .unwrap_or(now + chrono::Duration::days(1))
}

/// The first Monday 07:00 in Paris after `now`.
pub fn next_weekly(now: DateTime<Utc>) -> DateTime<Utc> {
    let mut t = next_daily(now);
    while t.with_timezone(&Paris).weekday() != Weekday::Mon {
        t = next_daily(t);
    }
    t
}

#[derive(Debug)]
struct Due {
    kind: TimerKind,
    referral_id: Uuid,
    structure_id: Option<StructureId>,
    due_at: DateTime<Utc>,
}

/// Fires every timer due at `now`. Returns how many fired. Tests step timers with this,
/// giving a `now` in the future to see tomorrow's digest.
pub async fn fire_due(pool: &PgPool, settings: &Settings, now: DateTime<Utc>) -> sqlx::Result<usize> {
    let mut tx = pool.begin().await?;
    let due = sqlx::query_as!(
        Due,
        r#"SELECT kind AS "kind: TimerKind", referral_id, structure_id AS "structure_id: StructureId", due_at
           FROM notify.timers
           WHERE active AND due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED"#,
        now,
        BATCH
    )
    .fetch_all(&mut *tx)
    .await?;
    for t in &due {
        let next = match t.kind {
            TimerKind::OfferReminder | TimerKind::ContactReminder => {
                remind(&mut tx, settings, t).await?;
                None
            }
            TimerKind::DailyDigest => {
                daily(&mut tx, settings, now).await?;
                Some(next_daily(now))
            }
            TimerKind::WeeklyDigest => {
                weekly(&mut tx, settings, now).await?;
                Some(next_weekly(now))
            }
        };
        sqlx::query!(
            "UPDATE notify.timers SET active = $3, due_at = COALESCE($4, due_at), fired_at = $5
             WHERE kind = $1 AND referral_id = $2",
            t.kind.slug(),
            t.referral_id,
            next.is_some(),
            next,
            now
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    if !due.is_empty() {
        tracing::info!(fired = due.len(), "notification timers fired");
    }
    Ok(due.len())
}

async fn remind(tx: &mut PgConnection, settings: &Settings, t: &Due) -> sqlx::Result<()> {
    let Some(referral) = store::referral(tx, t.referral_id).await? else { return Ok(()) };
    let Some(structure) = t.structure_id.as_ref() else { return Ok(()) };
    // The events clear a reminder; this is a second guard, on the state the events left.
    let still = match t.kind {
        TimerKind::OfferReminder => referral.status == ReferralStatus::Offered,
        _ => referral.status == ReferralStatus::Accepted,
    };
    if !still || referral.structure_id.as_ref() != Some(structure) {
        return Ok(());
    }
    let name = store::structure(tx, structure).await?.map(|s| s.name).unwrap_or_else(|| "votre structure".into());
    let about = messaging::about(t.referral_id, Some(&referral));
    let (kind, mail) = match t.kind {
        TimerKind::OfferReminder => {
            let since = t.due_at - chrono::Duration::from_std(settings.offer_reminder_after).unwrap_or_default();
            (MessageKind::OfferReminder, render::offer_reminder(&settings.site, &about, &name, since))
        }
        _ => {
            let since = t.due_at - chrono::Duration::from_std(settings.contact_reminder_after).unwrap_or_default();
            (MessageKind::ContactReminder, render::contact_reminder(&settings.site, &about, &name, since))
        }
    };
    messaging::tell_structure(tx, Uuid::now_v7(), structure, kind, t.referral_id, &mail).await
}

#[derive(Debug)]
struct Held {
    id: Uuid,
    account_id: Uuid,
    kind: MessageKind,
    subject: String,
    link: String,
}

/// Every message held for the daily digest, one digest per agent. Each agent's choice is
/// read again: a message held for someone who has since chosen "never" for its kind is
/// withdrawn, not sent.
async fn daily(tx: &mut PgConnection, settings: &Settings, now: DateTime<Utc>) -> sqlx::Result<()> {
    let held = sqlx::query_as!(
        Held,
        r#"SELECT id, account_id AS "account_id!", kind AS "kind: MessageKind", subject, link FROM notify.messages
           WHERE status = $1 AND account_id IS NOT NULL ORDER BY created_at, id FOR UPDATE"#,
        MessageStatus::Held.slug()
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut by_kind: BTreeMap<MessageKind, Vec<Uuid>> = BTreeMap::new();
    for h in &held {
        by_kind.entry(h.kind).or_default().push(h.account_id);
    }
    let mut unwanted: std::collections::HashSet<(MessageKind, Uuid)> = std::collections::HashSet::new();
    for (kind, accounts) in by_kind {
        let modes = crate::agents::modes(tx, &accounts, kind).await?;
        unwanted.extend(modes.into_iter().filter(|(_, m)| *m == DeliveryMode::Never).map(|(a, _)| (kind, a)));
    }
    let (withdrawn, held): (Vec<Held>, Vec<Held>) =
        held.into_iter().partition(|h| unwanted.contains(&(h.kind, h.account_id)));
    if !withdrawn.is_empty() {
        let ids: Vec<Uuid> = withdrawn.iter().map(|h| h.id).collect();
        sqlx::query!(
            "UPDATE notify.messages SET status = $2 WHERE id = ANY($1)",
            &ids,
            MessageStatus::Withdrawn.slug()
        )
        .execute(&mut *tx)
        .await?;
    }
    let mut by_account: BTreeMap<Uuid, Vec<Held>> = BTreeMap::new();
    for h in held {
        by_account.entry(h.account_id).or_default().push(h);
    }
    let source = Uuid::now_v7();
    for (account, items) in by_account {
        let list: Vec<Item> = items.iter().map(|h| Item { subject: h.subject.clone(), link: h.link.clone() }).collect();
        let mail = render::daily_digest(&settings.site, &list, now);
        let digest = store::Common {
            source_id: source,
            kind: TimerKind::DailyDigest.slug(),
            referral_id: None,
            structure_id: None,
            mail: &mail,
        };
        store::enqueue(tx, &digest, &[(Recipient::Account(account), MessageStatus::Pending)]).await?;
        let ids: Vec<Uuid> = items.iter().map(|h| h.id).collect();
        sqlx::query!(
            "UPDATE notify.messages SET status = $3, digest_id = $2 WHERE id = ANY($1)",
            &ids,
            source,
            MessageStatus::Digested.slug()
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// To each coordinator: the referrals of their départements that have not moved for a
/// week, and the structures there that nobody can be told about.
async fn weekly(tx: &mut PgConnection, settings: &Settings, now: DateTime<Utc>) -> sqlx::Result<()> {
    let coordinators = crate::agents::all_coordinators(tx).await?;
    let ids: Vec<Uuid> = coordinators.iter().map(|(id, _)| *id).collect();
    let modes = crate::agents::modes(tx, &ids, MessageKind::WeeklyDigest).await?;
    let source = Uuid::now_v7();
    for (account, territories) in coordinators {
        if modes.get(&account) == Some(&DeliveryMode::Never) {
            continue;
        }
        let stale: Vec<Stale> = store::stale(tx, &territories, now - chrono::Duration::days(7))
            .await?
            .iter()
            .map(|r| Stale {
                about: messaging::about(r.referral_id, Some(r)),
                status: r.status.label_fr().to_string(),
                since: r.last_event_at,
            })
            .collect();
        let unreached = unreached(tx, settings, &territories).await?;
        if stale.is_empty() && unreached.is_empty() {
            continue;
        }
        let names: Vec<String> = unreached.into_iter().map(|s| s.name).collect();
        let mail = render::weekly_digest(&settings.site, &stale, &names, now);
        let m = store::Common {
            source_id: source,
            kind: TimerKind::WeeklyDigest.slug(),
            referral_id: None,
            structure_id: None,
            mail: &mail,
        };
        store::enqueue(tx, &m, &[(Recipient::Account(account), MessageStatus::Pending)]).await?;
    }
    Ok(())
}

/// The structures of these départements that no active mediator answers for: their
/// offers go to their public address by e-mail, or, without one that takes mail, to
/// nobody (coordinators call them).
pub async fn unreached(
    tx: &mut PgConnection,
    settings: &Settings,
    territories: &[String],
) -> sqlx::Result<Vec<store::Structure>> {
    let all = store::structures_in(tx, territories).await?;
    let ids: Vec<String> = all.iter().map(|s| s.id.to_string()).collect();
    let reached = crate::agents::structures_with_active_mediators(tx, &ids, settings.active_since(Utc::now())).await?;
    Ok(all.into_iter().filter(|s| !reached.contains(s.id.as_str())).collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn digests_go_out_at_seven_in_paris() {
        // 1 Dec 2026 is a Tuesday; Paris is UTC+1 in winter.
        let now: DateTime<Utc> = "2026-12-01T05:00:00Z".parse().unwrap();
        assert_eq!(next_daily(now), "2026-12-01T06:00:00Z".parse::<DateTime<Utc>>().unwrap());
        let later: DateTime<Utc> = "2026-12-01T06:00:00Z".parse().unwrap();
        assert_eq!(next_daily(later), "2026-12-02T06:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(next_weekly(now), "2026-12-07T06:00:00Z".parse::<DateTime<Utc>>().unwrap());
        // Summer time: UTC+2.
        let summer: DateTime<Utc> = "2026-07-01T12:00:00Z".parse().unwrap();
        assert_eq!(next_daily(summer), "2026-07-02T05:00:00Z".parse::<DateTime<Utc>>().unwrap());
    }
}
