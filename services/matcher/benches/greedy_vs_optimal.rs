//! How far online matching is from the best assignment in hindsight.
//!
//!     cargo bench -p matcher --bench greedy_vs_optimal
//!
//! One synthetic département-week: hundreds of structures with weekly capacities placed
//! on the département's real communes by population, and thousands of referrals from
//! its people, arriving in random order. Online, each referral gets what the engine
//! picks at that moment (hard constraints, distance with the bounded load penalty,
//! opening hours between near-ties) and takes one unit of capacity; a referral with
//! nothing left is waitlisted. Offline, a min-cost flow over the same feasible pairs
//! gives the least total distance for the same number of referrals assigned, and the
//! most referrals assignable at all. Both use the same hard constraints.
//!
//! The optimum is reported two ways: over all the week's referrals, for the number the
//! greedy assigned (it may then serve others than the greedy did), and for exactly the
//! referrals the greedy served. Plain nearest-first is run beside the engine, to show
//! what the bounded load penalty costs or saves.
//!
//! Two more online rules show what any price on capacity could reach. Both know the
//! whole week in advance: each structure's price is the optimum's dual for its capacity
//! (what its last place is worth), and each referral takes the structure with capacity
//! that minimises distance plus price. One caps the price inside the engine's load margin
//! (`min(LOAD_MARGIN_KM, LOAD_MARGIN_RATIO × distance)`), as ARCHITECTURE.md requires
//! of anything that moves a referral farther; the other does not. A rule that only
//! forecasts the week cannot do better than the capped one on average, so it bounds what
//! tuning the engine's score could gain.
//!
//! Prints one line per scenario on stderr and one JSON document on stdout.

// A benchmark, like a test, stops loudly on broken synthetic data.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod synth;

use std::collections::HashMap;

use chrono::NaiveDate;
use matcher::domain::engine::{self, LOAD_MARGIN_KM, LOAD_MARGIN_RATIO};
use matcher::domain::index::Index;
use matcher::domain::optimal::{self, Arc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

struct Scenario {
    departement: &'static str,
    structures: usize,
    referrals: usize,
    capacity_factor: f64,
    seed: u64,
}

fn run(s: &Scenario) -> Value {
    let mut rng = StdRng::seed_from_u64(s.seed);
    let places = synth::Places::new(Some(s.departement));
    // Raw capacities of 2 to 20, scaled so the week's total is capacity_factor × referrals.
    let raw: Vec<u32> = (0..s.structures).map(|_| rng.random_range(2..=20)).collect();
    let scale = s.capacity_factor * s.referrals as f64 / f64::from(raw.iter().sum::<u32>());
    let structures: Vec<_> = raw
        .iter()
        .enumerate()
        .map(|(n, &c)| {
            let capacity = ((f64::from(c) * scale).round() as u32).max(1);
            let mut st = synth::structure(&mut rng, &places, n, capacity);
            st.accepting = true;
            st
        })
        .collect();
    let capacities: Vec<u32> = structures.iter().map(|st| st.weekly_capacity).collect();
    let slot: HashMap<String, usize> = structures.iter().enumerate().map(|(i, st)| (st.id.to_string(), i)).collect();
    let index = Index::build(structures);
    let demands: Vec<_> = (0..s.referrals).map(|_| synth::demand(&mut rng, &places, 0.0)).collect();
    let now = NaiveDate::from_ymd_opt(2026, 11, 23).and_then(|d| d.and_hms_opt(9, 0, 0)).expect("a valid date");

    let tried = HashMap::new();
    let ratio = |a: i64, b: i64| a as f64 / b.max(1) as f64;
    let metres = |km: f64| (km * 1000.0).round() as i64;
    // Online, as the matcher does it: the engine's choice among structures with capacity.
    let mut used: HashMap<String, u32> = HashMap::new();
    let mut greedy = Online::default();
    // Online, plain nearest structure with capacity: what the load penalty is compared to.
    let mut nearest_used = vec![0u32; capacities.len()];
    let mut nearest = Online::default();
    let mut arcs = Vec::new();
    // Each referral's feasible structures, nearest first: (structure, metres).
    let mut options: Vec<Vec<(usize, i64)>> = Vec::with_capacity(demands.len());
    for (d, demand) in demands.iter().enumerate() {
        let feasible = engine::feasible(&index, demand, &tried);
        options.push(feasible.iter().map(|f| (slot[f.structure.id.as_str()], metres(f.distance_km))).collect());
        arcs.extend(options[d].iter().map(|&(supply, cost)| Arc { demand: d, supply, cost }));
        let (candidates, _) = engine::rank(&feasible, |id| used.get(id).copied().unwrap_or(0), Some(now));
        if let Some(best) = candidates.first() {
            *used.entry(best.structure_id.to_string()).or_default() += 1;
            greedy.assign(d, metres(best.distance_km));
        }
        let free = feasible.iter().find(|f| nearest_used[slot[f.structure.id.as_str()]] < f.structure.weekly_capacity);
        if let Some(f) = free {
            nearest_used[slot[f.structure.id.as_str()]] += 1;
            nearest.assign(d, metres(f.distance_km));
        }
    }
    let started = std::time::Instant::now();
    let optimum = optimal::solve(demands.len(), &capacities, &arcs);
    let solve_seconds = started.elapsed().as_secs_f64();
    let optimal_metres = optimum.cost_by_assigned[greedy.served.len()];
    let margin = |metres: i64| ((LOAD_MARGIN_KM * 1000.0) as i64).min((metres as f64 * LOAD_MARGIN_RATIO) as i64);
    let capped = priced(&options, &capacities, |s, m| optimum.prices[s].min(margin(m)));
    let unbounded = priced(&options, &capacities, |s, _| optimum.prices[s]);
    // Each online rule against the optimum at the number it assigned.
    let against = |o: &Online| ratio(o.metres, optimum.cost_by_assigned[o.served.len()]);
    // The optimum for exactly the referrals the greedy served.
    let position: HashMap<usize, usize> = greedy.served.iter().enumerate().map(|(i, &d)| (d, i)).collect();
    let same_arcs: Vec<Arc> =
        arcs.iter().filter_map(|a| position.get(&a.demand).map(|&i| Arc { demand: i, ..*a })).collect();
    let same = optimal::solve(greedy.served.len(), &capacities, &same_arcs);
    let same_metres = same.cost_by_assigned[same.max_assigned()];

    let distance_ratio = ratio(greedy.metres, optimal_metres);
    let assigned_ratio = greedy.served.len() as f64 / optimum.max_assigned().max(1) as f64;
    let r3 = |v: f64| (v * 1000.0).round() / 1000.0;
    let km = |m: i64| r3(m as f64 / 1000.0);
    eprintln!(
        "dép. {} · {} structures · {} referrals · capacity ×{:.1} · seed {}: greedy assigns {} of at most {} \
         ({:.3}); total distance {:.0} km vs {:.0} km optimal at the same number ({:.3}), {:.0} km for the same \
         referrals ({:.3}); nearest-first {} assigned, {:.0} km; hindsight prices within the margin {:.3}, \
         unbounded {:.3}",
        s.departement,
        s.structures,
        s.referrals,
        s.capacity_factor,
        s.seed,
        greedy.served.len(),
        optimum.max_assigned(),
        assigned_ratio,
        greedy.metres as f64 / 1000.0,
        optimal_metres as f64 / 1000.0,
        distance_ratio,
        same_metres as f64 / 1000.0,
        ratio(greedy.metres, same_metres),
        nearest.served.len(),
        nearest.metres as f64 / 1000.0,
        against(&capped),
        against(&unbounded),
    );
    json!({
        "departement": s.departement,
        "structures": s.structures,
        "referrals": s.referrals,
        "weekly_capacity": capacities.iter().sum::<u32>(),
        "capacity_factor": s.capacity_factor,
        "seed": s.seed,
        "feasible_pairs": arcs.len(),
        "greedy_assigned": greedy.served.len(),
        "optimal_max_assigned": optimum.max_assigned(),
        "assigned_ratio": r3(assigned_ratio),
        "greedy_total_km": km(greedy.metres),
        "greedy_mean_km": r3(greedy.metres as f64 / 1000.0 / greedy.served.len().max(1) as f64),
        "optimal_total_km_same_assigned": km(optimal_metres),
        "distance_ratio": r3(distance_ratio),
        "optimal_total_km_same_referrals": km(same_metres),
        "distance_ratio_same_referrals": r3(ratio(greedy.metres, same_metres)),
        "nearest_first_assigned": nearest.served.len(),
        "nearest_first_total_km": km(nearest.metres),
        "hindsight_prices_within_margin": { "assigned": capped.served.len(), "total_km": km(capped.metres), "distance_ratio": r3(against(&capped)) },
        "hindsight_prices_unbounded": { "assigned": unbounded.served.len(), "total_km": km(unbounded.metres), "distance_ratio": r3(against(&unbounded)) },
        "solve_seconds": r3(solve_seconds),
    })
}

#[derive(Default)]
struct Online {
    served: Vec<usize>,
    metres: i64,
}

impl Online {
    fn assign(&mut self, demand: usize, metres: i64) {
        self.served.push(demand);
        self.metres += metres;
    }
}

/// Online, in arrival order: each referral takes the structure with capacity left that
/// minimises distance plus `price(structure, metres)`, ties to the nearer then the lower
/// index.
fn priced(options: &[Vec<(usize, i64)>], capacities: &[u32], price: impl Fn(usize, i64) -> i64) -> Online {
    let mut used = vec![0u32; capacities.len()];
    let mut online = Online::default();
    for (d, feasible) in options.iter().enumerate() {
        let best = feasible
            .iter()
            .filter(|(s, _)| used[*s] < capacities[*s])
            .min_by_key(|&&(s, metres)| (metres.saturating_add(price(s, metres)), metres, s));
        if let Some(&(s, metres)) = best {
            used[s] += 1;
            online.assign(d, metres);
        }
    }
    online
}

fn main() {
    // Criterion-style arguments (`--bench`, filters) are accepted and ignored.
    let mut scenarios = Vec::new();
    for seed in 1..=3 {
        for capacity_factor in [3.0, 2.0, 1.5, 1.2, 1.0, 0.8] {
            scenarios.push(Scenario { departement: "33", structures: 300, referrals: 3000, capacity_factor, seed });
        }
        scenarios.push(Scenario { departement: "16", structures: 80, referrals: 1000, capacity_factor: 1.2, seed });
    }
    let results: Vec<Value> = scenarios.iter().map(run).collect();
    println!("{}", json!({ "greedy_vs_optimal": results }));
}
