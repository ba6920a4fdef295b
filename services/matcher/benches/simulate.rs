//! What-if replays (issue 28): a département's quarter and a national year, on synthetic
//! structures and referrals placed on the real communes by population.
//!
//!     cargo bench -p matcher --bench simulate
//!
//! One replay is what `POST /api/v1/simulations` does twice (baseline and scenario) once
//! the profiles are loaded: every referral of the period through the engine's online
//! search on a simulated clock, weekly capacities renewed each ISO week, the waitlist
//! matched again, acceptances drawn from the seed. Criterion measures the département's
//! quarter (200 structures, 10,000 referrals over 13 weeks). The national year (18,000
//! structures, 1,000,000 referrals over 52 weeks) is simulated three times as the API
//! does it, a baseline then a scenario (the busiest structure closed), and the median
//! printed with each replay's time, as one JSON line on stdout.

// A benchmark, like a test, stops loudly on broken synthetic data.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod synth;

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::Criterion;
use matcher::domain::index::IndexedStructure;
use matcher::domain::simulate::{self, Arrival, Replay};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

struct World {
    structures: Vec<IndexedStructure>,
    arrivals: Vec<Arrival>,
    acceptance: HashMap<String, f64>,
}

fn world(departement: Option<&str>, structures: usize, referrals: usize, weeks: i64) -> World {
    let mut rng = StdRng::seed_from_u64(referrals as u64);
    let places = synth::Places::new(departement);
    let structures = synth::structures(&mut rng, &places, structures);
    let acceptance = structures.iter().map(|s| (s.id.to_string(), rng.random_range(0.5..1.0))).collect();
    let start: DateTime<Utc> = "2026-01-05T07:00:00Z".parse().unwrap();
    let span = weeks * 7 * 86_400;
    let arrivals = (0..referrals)
        .map(|k| Arrival {
            referral_id: uuid::Uuid::from_u128(k as u128 + 1),
            commune_code: None,
            demand: synth::demand(&mut rng, &places, 0.05),
            deadline: None,
            at: start + chrono::Duration::seconds(rng.random_range(0..span)),
            recorded_first_offer: None,
        })
        .collect();
    World { structures, arrivals, acceptance }
}

fn replay(w: &World) -> simulate::Run {
    let replay =
        Replay { arrivals: &w.arrivals, acceptance: &w.acceptance, default_acceptance: 0.8, seed: 7, max_attempts: 3 };
    simulate::run(w.structures.clone(), &replay)
}

fn main() {
    let quarter = world(Some("16"), 200, 10_000, 13);
    let mut c = Criterion::default().configure_from_args().sample_size(10).measurement_time(Duration::from_secs(20));
    c.bench_function("replay a département's quarter (200 structures, 10,000 referrals)", |b| {
        b.iter(|| black_box(replay(&quarter)))
    });
    c.final_summary();
    let quarter_run = replay(&quarter);

    let mut year = world(None, 18_000, 1_000_000, 52);
    // What the API does with a change: the baseline, then the scenario, here with the
    // structure that placed the most closed.
    let mut times = Vec::new();
    let mut replays = Vec::new();
    let mut run = None;
    for _ in 0..3 {
        let started = Instant::now();
        let baseline = black_box(replay(&year));
        replays.push(started.elapsed().as_secs_f64());
        let busiest = baseline.placed_at.iter().max_by_key(|(_, n)| **n).map(|(id, _)| id.clone()).unwrap();
        let original = std::mem::take(&mut year.structures);
        year.structures = simulate::apply(&original, &[simulate::Change::Closed { structure_id: busiest }]);
        let middle = Instant::now();
        black_box(replay(&year));
        replays.push(middle.elapsed().as_secs_f64());
        year.structures = original;
        times.push(started.elapsed().as_secs_f64());
        run = Some(baseline);
    }
    times.sort_by(f64::total_cmp);
    replays.sort_by(f64::total_cmp);
    let run = run.unwrap();
    println!(
        "{}",
        json!({
            "quarter": {"referrals": 10_000, "structures": 200, "placed": quarter_run.metrics.placed,
                        "waitlist_peak": quarter_run.metrics.waitlist_peak},
            "national_year": {"referrals": 1_000_000, "structures": 18_000,
                              "simulation_seconds_median_of_3": times[1], "simulation_seconds": times,
                              "replay_seconds": replays, "placed": run.metrics.placed,
                              "waitlist_peak": run.metrics.waitlist_peak},
        })
    );
}
