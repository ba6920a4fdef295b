//! `--appointments FRACTION`: places that answer. For that share of the referrals offered
//! during the run, the offered place's mediator accepts and sets an appointment three days
//! ahead, so that the person is told (an SMS for the generator's people, whose preference
//! is the phone) while intake goes on: what issue 24's speed criterion measures beside a
//! run without it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use contracts::Role;
use platform::auth::{Scope, TokenKey};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::setup::{self, Api};
use crate::stats::round1;

/// At most this many accept + appointment pairs in flight.
const IN_FLIGHT: usize = 32;

#[derive(Debug, Default)]
pub struct Counts {
    pub offers_seen: AtomicU64,
    pub accepted: AtomicU64,
    pub appointed: AtomicU64,
    pub errors: AtomicU64,
}

/// Whether the `n`-th offer (from 0) is one the places answer: exactly `fraction` of any
/// run of offers, spread evenly (no randomness, so two runs compare).
pub fn chosen(n: u64, fraction: f64) -> bool {
    let f = fraction.clamp(0.0, 1.0);
    ((n + 1) as f64 * f).floor() > (n as f64 * f).floor()
}

/// Accepts and (with `appoint`) sets an appointment for the chosen offers it is sent
/// (referral, place). Without `appoint` it only accepts: the side of the comparison that
/// has the same acceptances and none of the appointments' work.
pub fn start(
    api: Api,
    key: TokenKey,
    fraction: f64,
    appoint: bool,
    mut offers: mpsc::UnboundedReceiver<(Uuid, String)>,
) -> (Arc<Counts>, JoinHandle<()>) {
    let counts = Arc::new(Counts::default());
    let out = Arc::clone(&counts);
    let task = tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        let mut tokens: HashMap<String, String> = HashMap::new();
        let mut running = Vec::new();
        while let Some((referral, structure)) = offers.recv().await {
            let n = counts.offers_seen.fetch_add(1, Ordering::Relaxed);
            if !chosen(n, fraction) {
                continue;
            }
            let token = match tokens.get(&structure) {
                Some(t) => t.clone(),
                None => {
                    let Ok(scope) = structure.parse().map(Scope::Structure) else { continue };
                    let Ok(t) = setup::token(&key, Role::Mediator, scope) else { continue };
                    tokens.insert(structure.clone(), t.clone());
                    t
                }
            };
            let mediator = api.with_token(token);
            let counts = Arc::clone(&counts);
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else { break };
            running.push(tokio::spawn(async move {
                let _permit = permit;
                answer(&mediator, referral, appoint, &counts).await;
            }));
            running.retain(|t: &JoinHandle<()>| !t.is_finished());
        }
        for t in running {
            let _ = t.await;
        }
    });
    (out, task)
}

async fn answer(mediator: &Api, referral: Uuid, appoint: bool, counts: &Counts) {
    let accepted = mediator.post(&format!("/api/v1/referrals/{referral}/accept"), &json!({})).await;
    if !matches!(&accepted, Ok((s, _)) if s.is_success()) {
        counts.errors.fetch_add(1, Ordering::Relaxed);
        return;
    }
    counts.accepted.fetch_add(1, Ordering::Relaxed);
    if !appoint {
        return;
    }
    let at = chrono::Utc::now() + chrono::Duration::days(3);
    let body = json!({"at": at.to_rfc3339(), "duration_minutes": 60, "place": "Salle 2"});
    match mediator.put(&format!("/api/v1/referrals/{referral}/appointment"), &body).await {
        Ok((s, _)) if s.is_success() => {
            counts.appointed.fetch_add(1, Ordering::Relaxed);
        }
        _ => {
            counts.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The messages to persons, by status, and how long the due ones took to drain after the
/// run (`None`: still some after `timeout`).
pub async fn backlog(pool: &PgPool, organisation: Uuid, timeout: Duration) -> Value {
    let started = Instant::now();
    let due = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM referrals.person_messages m JOIN referrals.referrals r ON r.id = m.referral_id
             WHERE r.organisation_id = $1 AND m.status = 'queued' AND m.next_attempt_at <= now()",
        )
        .bind(organisation)
        .fetch_one(pool)
        .await
        .unwrap_or(-1)
    };
    let mut drained = None;
    while started.elapsed() < timeout {
        if due().await == 0 {
            drained = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let by_status: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT m.kind, m.status, count(*) FROM referrals.person_messages m
         JOIN referrals.referrals r ON r.id = m.referral_id WHERE r.organisation_id = $1
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(organisation)
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    json!({
        "by_kind_and_status": by_status.into_iter().map(|(k, s, n)| json!({"kind": k, "status": s, "n": n})).collect::<Vec<_>>(),
        "due_drained_after_s": drained.map(|d| round1(d.as_secs_f64())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chosen_share_is_exact_and_spread() {
        for fraction in [0.0, 0.25, 0.5, 1.0] {
            let n = (0..1000).filter(|&i| chosen(i, fraction)).count();
            assert_eq!(n, (1000.0 * fraction) as usize, "{fraction}");
        }
        let half: Vec<bool> = (0..4).map(|i| chosen(i, 0.5)).collect();
        assert_eq!(half, vec![false, true, false, true]);
    }
}
