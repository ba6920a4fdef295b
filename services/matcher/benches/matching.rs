//! Online matching latency and the matcher's memory, on synthetic structures placed on
//! the real communes of France by population.
//!
//!     cargo bench -p matcher --bench matching
//!
//! One match is the engine's part of `routing::Matcher::route`: the online search
//! (feasible structures nearest first over the R-tree, the hard constraints, the score,
//! the near-tie break on opening hours) until the best structure is settled, and its
//! explanation. The capacity ledger is an in-memory map here; in the service it is one
//! indexed query per batch pulled. Criterion measures it for 1k, 20k and 100k
//! structures, beside the full ranking of every feasible structure in range (what the
//! candidates endpoint does). Then each match of 20,000 people is timed on its own for
//! the p50/p99/max, and the memory that 100k structures take is read from
//! /proc/self/status. The figures end in one JSON line on stdout.

// A benchmark, like a test, stops loudly on broken synthetic data.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod synth;

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use criterion::{BenchmarkId, Criterion};
use matcher::domain::engine::{self, Demand};
use matcher::domain::index::Index;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

const SIZES: [usize; 3] = [1_000, 20_000, 100_000];
const PEOPLE: usize = 20_000;

/// One benchmarked operation on a world and a person.
type Run<'r> = &'r dyn Fn(&World, &Demand) -> usize;

struct World {
    index: Index,
    used: HashMap<String, u32>,
    demands: Vec<Demand>,
}

fn world(size: usize) -> World {
    let mut rng = StdRng::seed_from_u64(size as u64);
    let places = synth::Places::new(None);
    let structures = synth::structures(&mut rng, &places, size);
    // Mid-week: each structure has used some of its capacity, a few all of it.
    let used = structures.iter().map(|s| (s.id.to_string(), rng.random_range(0..=s.weekly_capacity))).collect();
    let index = Index::build(structures);
    let demands = (0..PEOPLE).map(|_| synth::demand(&mut rng, &places, 0.1)).collect();
    World { index, used, demands }
}

/// One online match: the chosen structure and why, or none.
fn match_one(world: &World, demand: &Demand, now: chrono::NaiveDateTime) -> Option<(String, Vec<String>)> {
    let tried = HashMap::new();
    let used = |id: &str| world.used.get(id).copied().unwrap_or(0);
    let best = engine::best(&world.index, demand, &tried, used, Some(now))?;
    let structure = world.index.get(&best.structure_id)?;
    let explanation = engine::explain(demand, &best, structure);
    Some((best.structure_id.into_string(), explanation))
}

/// Every feasible structure in range, ranked.
fn rank_all(world: &World, demand: &Demand, now: chrono::NaiveDateTime) -> usize {
    let tried = HashMap::new();
    let feasible = engine::feasible(&world.index, demand, &tried);
    let (candidates, _) = engine::rank(&feasible, |id| world.used.get(id).copied().unwrap_or(0), Some(now));
    candidates.len()
}

fn now() -> chrono::NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 11, 25).and_then(|d| d.and_hms_opt(10, 30, 0)).expect("a valid date")
}

fn main() {
    // Memory first, on a fresh heap: the process before and after holding 100k structures.
    let before = {
        let _ = geo::communes();
        synth::rss().0
    };
    let started = Instant::now();
    let big = world(100_000);
    let build_seconds = started.elapsed().as_secs_f64();
    let (after, peak) = synth::rss();
    let memory = json!({
        "structures": big.index.len(),
        "process_rss_mib": synth::mib(after),
        "process_peak_rss_mib": synth::mib(peak),
        "index_and_people_mib": synth::mib(after.saturating_sub(before)),
        "build_seconds": (build_seconds * 100.0).round() / 100.0,
    });

    let mut worlds: Vec<(usize, World)> = SIZES[..2].iter().map(|&n| (n, world(n))).collect();
    worlds.push((100_000, big));
    let now = now();

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    // The online search as deployed, and the full ranking the candidates endpoint does.
    let online = |w: &World, d: &Demand| black_box(match_one(w, d, now)).is_some() as usize;
    let full = |w: &World, d: &Demand| black_box(rank_all(w, d, now));
    let benches: [(&str, Run<'_>); 2] = [("online_match", &online), ("full_ranking", &full)];
    for (name, run) in benches {
        let mut group = c.benchmark_group(name);
        for (size, w) in &worlds {
            let mut i = 0;
            group.bench_with_input(BenchmarkId::from_parameter(size), w, |b, w| {
                b.iter(|| {
                    i = (i + 1) % w.demands.len();
                    run(w, &w.demands[i])
                })
            });
        }
        group.finish();
    }
    c.final_summary();

    // Each match timed on its own, for the tail.
    let mut latency = serde_json::Map::new();
    for (size, w) in &worlds {
        let mut micros: Vec<f64> = Vec::with_capacity(w.demands.len());
        let mut matched = 0usize;
        let mut feasible_total = 0usize;
        for d in &w.demands {
            let t = Instant::now();
            let found = black_box(match_one(w, d, now));
            micros.push(t.elapsed().as_secs_f64() * 1e6);
            matched += usize::from(found.is_some());
            feasible_total += engine::feasible(&w.index, d, &HashMap::new()).len();
        }
        micros.sort_by(f64::total_cmp);
        let r = |v: f64| (v * 10.0).round() / 10.0;
        latency.insert(
            size.to_string(),
            json!({
                "matches": micros.len(),
                "p50_us": r(synth::quantile(&micros, 0.50)),
                "p90_us": r(synth::quantile(&micros, 0.90)),
                "p99_us": r(synth::quantile(&micros, 0.99)),
                "max_us": r(micros[micros.len() - 1]),
                "matched_share": (matched as f64 / micros.len() as f64 * 1000.0).round() / 1000.0,
                "mean_feasible": r(feasible_total as f64 / micros.len() as f64),
            }),
        );
        eprintln!(
            "online match, {size:>6} structures: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
            synth::quantile(&micros, 0.50),
            synth::quantile(&micros, 0.99),
            micros[micros.len() - 1]
        );
    }
    println!("{}", json!({ "online_match": latency, "memory_100k": memory }));
}
