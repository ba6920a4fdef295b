//! The waitlist worker. When capacity may have appeared (a capacity increase, a new or
//! re-opened structure, a released reservation, a new week), waiting referrals are
//! matched again in priority order: urgent first, then nearest deadline, then oldest.
//!
//! Requests are rows in `pending_rematch`, written in the transaction that made the
//! capacity appear, so none is lost if the process dies; each is claimed and answered
//! in one transaction of its own.
//!
//! The worker also lets time pass for reachability: a mediator who has not signed in
//! within `AIGUILLAGE_MEDIATOR_ACTIVE_WITHIN` stops counting without any event saying so.
//! Account events recompute their structures at once; every [`REACHABILITY_INTERVAL`]
//! (and at start) the worker recomputes every structure, so a structure whose last
//! active mediator lapsed stops being offered within the hour.

use std::sync::Arc;
use std::time::Duration;

use contracts::week::CapacityWeek;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use crate::domain::engine;
use crate::routing::{Matcher, Routed};
use crate::store::{self, ProfileState};

/// Re-match every structure.
pub const ALL: &str = "*";
/// Proposals made by one run before it hands over to a fresh transaction.
const MAX_PROPOSALS_PER_RUN: usize = 200;
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often the week is checked for a rollover.
const WEEK_CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// A safety net: every waiting referral is looked at again this often, whatever happened.
const SWEEP_INTERVAL: Duration = Duration::from_secs(600);
/// How often every structure's reachability is recomputed as the active window slides.
pub const REACHABILITY_INTERVAL: Duration = Duration::from_secs(3600);

pub async fn run(pool: PgPool, matcher: Arc<Matcher>, shutdown: CancellationToken) {
    let mut listener: Option<PgListener> = None;
    let mut last_week_check = tokio::time::Instant::now() - WEEK_CHECK_INTERVAL;
    let mut last_sweep = tokio::time::Instant::now();
    let mut last_reachability: Option<tokio::time::Instant> = None;
    while !shutdown.is_cancelled() {
        if last_reachability.is_none_or(|t| t.elapsed() >= REACHABILITY_INTERVAL) {
            last_reachability = Some(tokio::time::Instant::now());
            if let Err(err) = refresh_reachability(&pool, &matcher).await {
                tracing::warn!(error = %err, "reachability refresh failed");
            }
        }
        if last_week_check.elapsed() >= WEEK_CHECK_INTERVAL {
            last_week_check = tokio::time::Instant::now();
            if let Err(err) = check_week(&pool).await {
                tracing::warn!(error = %err, "week rollover check failed");
            }
        }
        if last_sweep.elapsed() >= SWEEP_INTERVAL {
            last_sweep = tokio::time::Instant::now();
            if let Ok(mut conn) = pool.acquire().await {
                let _ = store::request_rematch(&mut conn, ALL).await;
            }
        }
        match step(&pool, &matcher).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(error = %err, "waitlist worker failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
        wait(&pool, &mut listener, &shutdown).await;
    }
}

async fn wait(pool: &PgPool, listener: &mut Option<PgListener>, shutdown: &CancellationToken) {
    if listener.is_none()
        && let Ok(mut l) = PgListener::connect_with(pool).await
        && l.listen("matcher_rematch").await.is_ok()
    {
        *listener = Some(l);
    }
    let notified = async {
        match listener.as_mut() {
            Some(l) => {
                if l.recv().await.is_err() {
                    *listener = None;
                }
            }
            None => tokio::time::sleep(POLL_INTERVAL).await,
        }
    };
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::timeout(POLL_INTERVAL, notified) => {}
    }
}

/// Recomputes every structure's reachability now; a structure that became reachable
/// gets its waiting referrals looked at. Returns how many did.
pub async fn refresh_reachability(pool: &PgPool, matcher: &Matcher) -> sqlx::Result<usize> {
    let mut tx = pool.begin().await?;
    let up = store::refresh_reachability(&mut tx, None, chrono::Utc::now(), matcher.active_within).await?;
    tx.commit().await?;
    Ok(up)
}

/// A new ISO week brings every structure's capacity back: re-match everything once.
async fn check_week(pool: &PgPool) -> sqlx::Result<()> {
    let week = CapacityWeek::current().to_string();
    let mut tx = pool.begin().await?;
    let known = store::fact(&mut tx, "week").await?;
    if known.as_deref() != Some(week.as_str()) {
        store::set_fact(&mut tx, "week", &week).await?;
        store::request_rematch(&mut tx, ALL).await?;
        tracing::info!(%week, "new capacity week: re-matching the waitlist");
    }
    tx.commit().await
}

/// Answers one pending request. Returns whether there was one. Tests step the worker
/// with this.
pub async fn step(pool: &PgPool, matcher: &Matcher) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let Some(structure) = store::claim_rematch(&mut tx).await? else {
        tx.rollback().await?;
        return Ok(false);
    };
    let index = matcher.snapshot(&mut tx).await?;
    let waiting = store::waitlist(&mut tx).await?;
    let target = (structure != ALL).then(|| index.get(&structure)).flatten();
    if structure != ALL && target.is_none_or(|s| !s.accepting || !s.reachable) {
        tx.commit().await?;
        return Ok(true);
    }
    let mut proposals = 0;
    for candidate in waiting {
        if let (Some(s), Some(demand)) = (target, candidate.demand.as_ref()) {
            let (_, _, reasons) = engine::assess(demand, s, &candidate.tried);
            if !reasons.is_empty() {
                continue;
            }
        }
        let Some(mut p) = store::lock_profile(&mut tx, candidate.referral_id).await? else { continue };
        if p.state != ProfileState::Waitlisted || p.escalated {
            continue;
        }
        if let Some(Routed::Proposed(_)) = matcher.route(&mut tx, &mut p, None).await? {
            proposals += 1;
        }
        if let Some(s) = target {
            let week = CapacityWeek::current().to_string();
            let used = store::usage(&mut tx, &[s.id.to_string()], &week).await?;
            if used.get(s.id.as_str()).copied().unwrap_or(0) >= s.weekly_capacity {
                break;
            }
        }
        if proposals >= MAX_PROPOSALS_PER_RUN {
            store::request_rematch(&mut tx, &structure).await?;
            break;
        }
    }
    tx.commit().await?;
    if proposals > 0 {
        tracing::info!(structure = %structure, proposals, "waitlist re-matched");
    }
    Ok(true)
}
