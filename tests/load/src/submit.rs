//! The open-loop scheduler: one referral every 1/rate seconds whatever the server does,
//! at most `concurrency` requests in flight; a tick that finds no free slot is dropped
//! (and counted), never delayed, so a slow server cannot slow the offered load down.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::events::Tracker;
use crate::setup::Api;
use crate::territory::{self, Territory};

/// How to submit: `rate` per second for `duration`, at most `concurrency` in flight.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub rate: f64,
    pub duration: Duration,
    pub concurrency: usize,
    /// Seed of the referrals' synthetic data.
    pub seed: u64,
    /// Sends each submission with `Idempotency-Key: {prefix}{n}`, as a client that may
    /// retry does, so that a submission answered with an error can be looked up afterwards.
    pub idempotency_prefix: Option<&'static str>,
    /// Every submission is about the same person ([`territory::same_person`]).
    pub same_person: bool,
}

#[derive(Debug, Default)]
pub struct Results {
    pub errors: BTreeMap<String, u64>,
    /// Milliseconds from sending each POST to its complete response, whatever the status.
    pub latencies_ms: Vec<f64>,
    /// The idempotency keys of the submissions answered with an error (or none), and when
    /// each was sent: their outcome is unknown to the client (a 503 during a failover may
    /// come after the commit reached the standby).
    pub indeterminate: Vec<(String, Instant)>,
}

/// Counters shared with the progress reporter.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub created: AtomicU64,
    pub dropped: AtomicU64,
    pub in_flight: AtomicU64,
}

#[derive(Debug, Clone, Default)]
pub struct Submitter {
    pub counters: Arc<Counters>,
    results: Arc<Mutex<Results>>,
}

impl Submitter {
    fn results(&self) -> MutexGuard<'_, Results> {
        self.results.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Submit latencies of the responses that arrived after the first `from`.
    pub fn latencies_since(&self, from: usize) -> (Vec<f64>, usize) {
        let results = self.results();
        (results.latencies_ms.get(from..).unwrap_or_default().to_vec(), results.latencies_ms.len())
    }

    pub fn take_results(&self) -> Results {
        std::mem::take(&mut *self.results())
    }

    /// Submits for `duration` at `rate` per second, then waits (up to a minute) for the
    /// requests still in flight. Returns how long the schedule ran.
    pub async fn run(&self, api: &Api, territory: Arc<Territory>, tracker: &Tracker, schedule: Schedule) -> Duration {
        let Schedule { rate, duration, concurrency, seed, idempotency_prefix, same_person } = schedule;
        let slots = Arc::new(Semaphore::new(concurrency));
        let mut rng = StdRng::seed_from_u64(seed);
        let total = (rate * duration.as_secs_f64()).round() as u64;
        let start = tokio::time::Instant::now();
        let url = Arc::new(api.url("/api/v1/referrals"));
        for n in 0..total {
            tokio::time::sleep_until(start + Duration::from_secs_f64(n as f64 / rate)).await;
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let mut body = territory::referral(&mut rng, &territory, n);
            if same_person {
                territory::same_person(&mut body);
            }
            let mut request = api.client.post(url.as_str()).bearer_auth(&api.token).json(&body);
            let key = idempotency_prefix.map(|prefix| format!("{prefix}{n}"));
            if let Some(key) = &key {
                request = request.header("Idempotency-Key", key);
            }
            let this = self.clone();
            let tracker = tracker.clone();
            tokio::spawn(async move {
                let _slot = slot;
                this.counters.sent.fetch_add(1, Ordering::Relaxed);
                this.counters.in_flight.fetch_add(1, Ordering::Relaxed);
                let sent_at = Instant::now();
                let outcome = send(request).await;
                let ms = sent_at.elapsed().as_secs_f64() * 1000.0;
                this.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
                let mut results = this.results();
                results.latencies_ms.push(ms);
                match outcome {
                    Ok(id) => {
                        drop(results);
                        this.counters.created.fetch_add(1, Ordering::Relaxed);
                        tracker.created(id, sent_at);
                    }
                    Err(kind) => {
                        *results.errors.entry(kind).or_default() += 1;
                        if let Some(key) = key {
                            results.indeterminate.push((key, sent_at));
                        }
                    }
                }
            });
        }
        let scheduled_for = start.elapsed();
        let all = u32::try_from(concurrency).unwrap_or(u32::MAX);
        if tokio::time::timeout(Duration::from_secs(60), slots.acquire_many(all)).await.is_err() {
            eprintln!("some requests were still in flight a minute after the last tick");
        }
        scheduled_for
    }
}

/// The created referral's id, or the kind of failure (`"500"`, `"timeout"` …).
async fn send(request: reqwest::RequestBuilder) -> Result<Uuid, String> {
    let response = request.send().await.map_err(|err| error_kind(&err))?;
    let status = response.status();
    let location = response.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok()).map(str::to_string);
    let body = response.bytes().await.map_err(|err| error_kind(&err))?;
    if status != StatusCode::CREATED {
        return Err(status.as_u16().to_string());
    }
    location
        .as_deref()
        .and_then(|l| l.rsplit('/').next())
        .and_then(|id| Uuid::parse_str(id).ok())
        .or_else(|| {
            let body: Value = serde_json::from_slice(&body).ok()?;
            Uuid::parse_str(body["id"].as_str()?).ok()
        })
        .ok_or_else(|| "201_without_id".to_string())
}

fn error_kind(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connect"
    } else if err.is_body() || err.is_decode() {
        "body"
    } else {
        "request"
    }
    .to_string()
}
