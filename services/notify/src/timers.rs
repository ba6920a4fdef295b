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
use contracts::{DeliveryMode, MessageKind, StructureId};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::Settings;
use crate::messaging::{self, CONTACT_REMINDER, OFFER_REMINDER};
use crate::render::{self, Item, Stale};
use crate::store::{self, NewMessage};

pub const DAILY_DIGEST: &str = "daily_digest";
pub const WEEKLY_DIGEST: &str = "weekly_digest";
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
    let messages = sqlx::query(
        "DELETE FROM notify.messages WHERE id IN (
             SELECT id FROM notify.messages
             WHERE status IN ('sent', 'digested', 'withdrawn') AND created_at < now() - $1::interval LIMIT 10000)",
    )
    .bind(KEEP_SENT)
    .execute(pool)
    .await?;
    let deliveries = sqlx::query(
        "DELETE FROM notify.webhook_deliveries WHERE id IN (
             SELECT id FROM notify.webhook_deliveries
             WHERE status IN ('delivered', 'dead', 'cancelled') AND created_at < now() - $1::interval LIMIT 10000)",
    )
    .bind(KEEP_SENT)
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
    for (kind, due) in [(DAILY_DIGEST, next_daily(now)), (WEEKLY_DIGEST, next_weekly(now))] {
        sqlx::query(
            "INSERT INTO notify.timers (kind, referral_id, due_at, active) VALUES ($1, $2, $3, true)
             ON CONFLICT (kind, referral_id) DO NOTHING",
        )
        .bind(kind)
        .bind(Uuid::nil())
        .bind(due)
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

#[derive(Debug, sqlx::FromRow)]
struct Due {
    kind: String,
    referral_id: Uuid,
    structure_id: Option<String>,
    due_at: DateTime<Utc>,
}

/// Fires every timer due at `now`. Returns how many fired. Tests step timers with this,
/// giving a `now` in the future to see tomorrow's digest.
pub async fn fire_due(pool: &PgPool, settings: &Settings, now: DateTime<Utc>) -> sqlx::Result<usize> {
    let mut tx = pool.begin().await?;
    let due: Vec<Due> = sqlx::query_as(
        "SELECT kind, referral_id, structure_id, due_at FROM notify.timers
         WHERE active AND due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    for t in &due {
        let next = match t.kind.as_str() {
            OFFER_REMINDER | CONTACT_REMINDER => {
                remind(&mut tx, settings, t).await?;
                None
            }
            DAILY_DIGEST => {
                daily(&mut tx, settings, now).await?;
                Some(next_daily(now))
            }
            WEEKLY_DIGEST => {
                weekly(&mut tx, settings, now).await?;
                Some(next_weekly(now))
            }
            other => {
                tracing::error!(kind = other, "unknown timer kind: cleared");
                None
            }
        };
        sqlx::query(
            "UPDATE notify.timers SET active = $3, due_at = COALESCE($4, due_at), fired_at = $5
             WHERE kind = $1 AND referral_id = $2",
        )
        .bind(&t.kind)
        .bind(t.referral_id)
        .bind(next.is_some())
        .bind(next)
        .bind(now)
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
    let Some(structure) = t.structure_id.as_deref().and_then(|s| s.parse::<StructureId>().ok()) else { return Ok(()) };
    // The events clear a reminder; this is a second guard, on the state the events left.
    let still = match t.kind.as_str() {
        OFFER_REMINDER => referral.status == "offered",
        _ => referral.status == "accepted",
    };
    if !still || referral.structure_id.as_deref() != Some(structure.as_str()) {
        return Ok(());
    }
    let name =
        store::structure(tx, structure.as_str()).await?.map(|s| s.name).unwrap_or_else(|| "votre structure".into());
    let about = messaging::about(t.referral_id, Some(&referral));
    let (kind, mail) = match t.kind.as_str() {
        OFFER_REMINDER => {
            let since = t.due_at - chrono::Duration::from_std(settings.offer_reminder_after).unwrap_or_default();
            (MessageKind::OfferReminder, render::offer_reminder(&settings.site, &about, &name, since))
        }
        _ => {
            let since = t.due_at - chrono::Duration::from_std(settings.contact_reminder_after).unwrap_or_default();
            (MessageKind::ContactReminder, render::contact_reminder(&settings.site, &about, &name, since))
        }
    };
    messaging::tell_structure(tx, settings, Uuid::now_v7(), &structure, kind, t.referral_id, &mail).await
}

#[derive(Debug, sqlx::FromRow)]
struct Held {
    id: Uuid,
    account_id: Uuid,
    kind: String,
    subject: String,
    link: String,
}

/// Every message held for the daily digest, one digest per agent. Each agent's choice is
/// read again: a message held for someone who has since chosen "never" for its kind is
/// withdrawn, not sent.
async fn daily(tx: &mut PgConnection, settings: &Settings, now: DateTime<Utc>) -> sqlx::Result<()> {
    let held: Vec<Held> = sqlx::query_as(
        "SELECT id, account_id, kind, subject, link FROM notify.messages
         WHERE status = 'held' AND account_id IS NOT NULL ORDER BY created_at, id FOR UPDATE",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut by_kind: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
    for h in &held {
        by_kind.entry(h.kind.clone()).or_default().push(h.account_id);
    }
    let mut unwanted: std::collections::HashSet<(String, Uuid)> = std::collections::HashSet::new();
    for (slug, accounts) in by_kind {
        let Ok(kind) = slug.parse::<MessageKind>() else { continue };
        let modes = crate::agents::modes(tx, &accounts, kind).await?;
        unwanted.extend(modes.into_iter().filter(|(_, m)| *m == DeliveryMode::Never).map(|(a, _)| (slug.clone(), a)));
    }
    let (withdrawn, held): (Vec<Held>, Vec<Held>) =
        held.into_iter().partition(|h| unwanted.contains(&(h.kind.clone(), h.account_id)));
    if !withdrawn.is_empty() {
        let ids: Vec<Uuid> = withdrawn.iter().map(|h| h.id).collect();
        sqlx::query("UPDATE notify.messages SET status = 'withdrawn' WHERE id = ANY($1)")
            .bind(&ids)
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
        let digest = NewMessage {
            source_id: source,
            kind: DAILY_DIGEST,
            account_id: Some(account),
            address: None,
            referral_id: None,
            structure_id: None,
            mail: &mail,
            status: "pending",
        };
        store::enqueue(tx, &digest).await?;
        let ids: Vec<Uuid> = items.iter().map(|h| h.id).collect();
        sqlx::query("UPDATE notify.messages SET status = 'digested', digest_id = $2 WHERE id = ANY($1)")
            .bind(&ids)
            .bind(source)
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
                status: contracts::ReferralStatus::ALL
                    .iter()
                    .find(|s| s.slug() == r.status)
                    .map(|s| s.label_fr().to_string())
                    .unwrap_or_else(|| r.status.clone()),
                since: r.last_event_at,
            })
            .collect();
        let unreached = unreached(tx, &territories).await?;
        if stale.is_empty() && unreached.is_empty() {
            continue;
        }
        let names: Vec<String> = unreached.into_iter().map(|s| s.name).collect();
        let mail = render::weekly_digest(&settings.site, &stale, &names, now);
        let m = NewMessage {
            source_id: source,
            kind: WEEKLY_DIGEST,
            account_id: Some(account),
            address: None,
            referral_id: None,
            structure_id: None,
            mail: &mail,
            status: "pending",
        };
        store::enqueue(tx, &m).await?;
    }
    Ok(())
}

/// The structures of these départements with no mediator signed up.
pub async fn unreached(tx: &mut PgConnection, territories: &[String]) -> sqlx::Result<Vec<store::Structure>> {
    let all = store::structures_in(tx, territories).await?;
    let ids: Vec<String> = all.iter().map(|s| s.id.clone()).collect();
    let reached = crate::agents::structures_with_mediators(tx, &ids).await?;
    Ok(all.into_iter().filter(|s| !reached.contains(&s.id)).collect())
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
