//! Durable offer timers. The deadline is a column of the referral, so a timer that fell
//! due while every process was down fires after restart; `SKIP LOCKED` and the
//! conditional transition make sure several replicas never fire the same one twice.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::lifecycle;
use crate::store;

const BATCH: i64 = 100;
const MAX_SLEEP: Duration = Duration::from_millis(500);

pub async fn run(pool: PgPool, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let pause = match fire_due(&pool).await {
            Ok(n) if n as i64 >= BATCH => Duration::ZERO,
            Ok(_) => until_next(&pool).await,
            Err(err) => {
                tracing::warn!(error = %err, "offer timers unavailable; retrying");
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

async fn until_next(pool: &PgPool) -> Duration {
    let Ok(mut conn) = pool.acquire().await else { return MAX_SLEEP };
    match store::next_offer_expiry(&mut conn).await {
        Ok(Some(at)) => (at - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO).min(MAX_SLEEP),
        _ => MAX_SLEEP,
    }
}

/// Expires every offer that is due. Returns how many fired. Tests step timers with this.
pub async fn fire_due(pool: &PgPool) -> sqlx::Result<usize> {
    let mut tx = pool.begin().await?;
    let due = store::due_offers(&mut tx, BATCH).await?;
    let mut fired = 0;
    for id in &due {
        let mut r = match store::lock(&mut tx, *id).await {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            // One unreadable referral must not hold back every other timer; the error
            // names the row, for someone to mend it.
            Err(err) if platform::row::is_corrupt(&err) => {
                tracing::error!(error = %err, "offer timer skipped a corrupt referral");
                continue;
            }
            Err(err) => return Err(err),
        };
        if r.offer.as_ref().is_some_and(|o| o.expires_at <= chrono::Utc::now()) {
            match lifecycle::expire(&mut tx, &mut r).await {
                Ok(()) => fired += 1,
                Err(lifecycle::StepError::Database(e)) => return Err(e),
                Err(lifecycle::StepError::NotAllowed(_) | lifecycle::StepError::Conflict(_)) => {}
            }
        }
    }
    tx.commit().await?;
    if fired > 0 {
        tracing::info!(fired, "offers expired");
    }
    Ok(fired)
}
