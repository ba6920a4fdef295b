//! The offline optimum that online matching is measured against: a min-cost flow from
//! referrals to structures with weekly capacities, solved by successive shortest paths
//! (Dijkstra on reduced costs with Johnson potentials).
//!
//! Every referral carries one unit, so each augmentation assigns one more referral, and
//! the cost of each augmenting path never decreases. Stopping after `k` augmentations
//! therefore gives the least total cost of any assignment of exactly `k` referrals: the
//! solver records that cost for every `k` up to the maximum number assignable.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The price of a place whose loss would leave a referral unassigned.
pub const UNAVAILABLE: i64 = i64::MAX / 4;

/// A possible assignment: referral `demand` to structure `supply`, at `cost` (≥ 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arc {
    pub demand: usize,
    pub supply: usize,
    pub cost: i64,
}

/// The optimum for every number of referrals assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Optimum {
    /// `cost_by_assigned[k]` is the least total cost of assigning exactly `k` referrals;
    /// its last index is the most referrals that can be assigned at all.
    pub cost_by_assigned: Vec<i64>,
    /// One optimal assignment of the most referrals: `(demand, supply)` pairs.
    pub pairs: Vec<(usize, usize)>,
    /// What each structure's last place is worth to the optimum of the most referrals:
    /// how much the least total cost grows if the structure had one place less (0 while
    /// it has room; [`UNAVAILABLE`] when fewer referrals could then be assigned). These
    /// are the duals of the capacity constraints, the prices at which every referral's
    /// cheapest structure, distance plus price, is the one the optimum gives it.
    pub prices: Vec<i64>,
}

impl Optimum {
    pub fn max_assigned(&self) -> usize {
        self.cost_by_assigned.len() - 1
    }
}

#[derive(Debug, Clone, Copy)]
struct Edge {
    to: usize,
    capacity: i64,
    cost: i64,
}

struct Graph {
    edges: Vec<Edge>,
    out: Vec<Vec<usize>>,
}

impl Graph {
    fn new(nodes: usize) -> Self {
        Self { edges: Vec::new(), out: vec![Vec::new(); nodes] }
    }

    /// Adds an edge and its residual twin (at index ^ 1).
    fn add(&mut self, from: usize, to: usize, capacity: i64, cost: i64) {
        self.out[from].push(self.edges.len());
        self.edges.push(Edge { to, capacity, cost });
        self.out[to].push(self.edges.len());
        self.edges.push(Edge { to: from, capacity: 0, cost: -cost });
    }
}

/// Solves the assignment of `demands` referrals to structures with `capacities`, over
/// the given arcs. Panics if an arc names an unknown referral or structure or has a
/// negative cost: those are programming errors.
pub fn solve(demands: usize, capacities: &[u32], arcs: &[Arc]) -> Optimum {
    let supplies = capacities.len();
    let source = 0;
    let sink = demands + supplies + 1;
    let demand_node = |d: usize| 1 + d;
    let supply_node = |s: usize| 1 + demands + s;
    let mut g = Graph::new(sink + 1);
    for d in 0..demands {
        g.add(source, demand_node(d), 1, 0);
    }
    let first_arc = g.edges.len();
    for a in arcs {
        assert!(a.demand < demands && a.supply < supplies && a.cost >= 0, "invalid arc {a:?}");
        g.add(demand_node(a.demand), supply_node(a.supply), 1, a.cost);
    }
    let after_arcs = g.edges.len();
    for (s, &c) in capacities.iter().enumerate() {
        g.add(supply_node(s), sink, i64::from(c), 0);
    }

    let nodes = sink + 1;
    let mut potential = vec![0i64; nodes];
    let mut distance = vec![i64::MAX; nodes];
    let mut via = vec![usize::MAX; nodes];
    let mut cost_by_assigned = vec![0i64];
    let mut heap = BinaryHeap::new();
    loop {
        distance.fill(i64::MAX);
        via.fill(usize::MAX);
        distance[source] = 0;
        heap.push(Reverse((0i64, source)));
        while let Some(Reverse((d, u))) = heap.pop() {
            if d > distance[u] {
                continue;
            }
            for &e in &g.out[u] {
                let edge = g.edges[e];
                if edge.capacity <= 0 {
                    continue;
                }
                // Reduced costs are non-negative for every residual edge.
                let next = d + edge.cost + potential[u] - potential[edge.to];
                if next < distance[edge.to] {
                    distance[edge.to] = next;
                    via[edge.to] = e;
                    heap.push(Reverse((next, edge.to)));
                }
            }
        }
        if distance[sink] == i64::MAX {
            break;
        }
        for (p, &d) in potential.iter_mut().zip(&distance) {
            if d != i64::MAX {
                *p += d;
            }
        }
        // One unit along the path (every referral edge has capacity one).
        let mut v = sink;
        let mut path_cost = 0;
        while v != source {
            let e = via[v];
            g.edges[e].capacity -= 1;
            g.edges[e ^ 1].capacity += 1;
            path_cost += g.edges[e].cost;
            v = g.edges[e ^ 1].to;
        }
        let total = cost_by_assigned.last().copied().unwrap_or(0) + path_cost;
        cost_by_assigned.push(total);
    }

    let pairs = (first_arc..after_arcs)
        .step_by(2)
        .zip(arcs)
        .filter(|(e, _)| g.edges[*e].capacity == 0)
        .map(|(_, a)| (a.demand, a.supply))
        .collect();
    let prices = prices(&g, sink, nodes).into_iter().skip(1 + demands).take(supplies).collect();
    Optimum { cost_by_assigned, pairs, prices }
}

/// The least cost from every node to the sink in the residual graph of the final flow:
/// for a structure, the cheapest chain of moves that frees one of its places (Bellman-Ford
/// with a queue, since residual edges may cost less than nothing; an optimal flow leaves
/// no negative cycle).
fn prices(g: &Graph, sink: usize, nodes: usize) -> Vec<i64> {
    let mut distance = vec![i64::MAX; nodes];
    let mut queued = vec![false; nodes];
    let mut queue = std::collections::VecDeque::new();
    distance[sink] = 0;
    queue.push_back(sink);
    while let Some(v) = queue.pop_front() {
        queued[v] = false;
        for &e in &g.out[v] {
            // `e ^ 1` runs from `u` into `v`.
            let into = g.edges[e ^ 1];
            let u = g.edges[e].to;
            if into.capacity <= 0 {
                continue;
            }
            let through = distance[v] + into.cost;
            if through < distance[u] {
                distance[u] = through;
                if !queued[u] {
                    queued[u] = true;
                    queue.push_back(u);
                }
            }
        }
    }
    distance.into_iter().map(|d| if d == i64::MAX { UNAVAILABLE } else { d.max(0) }).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every way to give each referral one of its arcs or nothing, within capacities:
    /// the least cost for each number assigned.
    fn brute_force(demands: usize, capacities: &[u32], arcs: &[Arc]) -> Vec<i64> {
        let mut best: Vec<Option<i64>> = vec![None; demands + 1];
        let mut used = vec![0u32; capacities.len()];
        #[allow(clippy::too_many_arguments)]
        fn go(
            d: usize,
            demands: usize,
            capacities: &[u32],
            arcs: &[Arc],
            used: &mut [u32],
            assigned: usize,
            cost: i64,
            best: &mut [Option<i64>],
        ) {
            if d == demands {
                let slot = &mut best[assigned];
                *slot = Some(slot.map_or(cost, |b| b.min(cost)));
                return;
            }
            go(d + 1, demands, capacities, arcs, used, assigned, cost, best);
            for a in arcs.iter().filter(|a| a.demand == d) {
                if used[a.supply] < capacities[a.supply] {
                    used[a.supply] += 1;
                    go(d + 1, demands, capacities, arcs, used, assigned + 1, cost + a.cost, best);
                    used[a.supply] -= 1;
                }
            }
        }
        go(0, demands, capacities, arcs, &mut used, 0, 0, &mut best);
        best.into_iter().map_while(|b| b).collect()
    }

    #[test]
    fn a_crossing_is_undone() {
        // Greedy in arrival order gives referral 0 the near structure 0 (cost 1) and
        // leaves referral 1 the far one (cost 100): 101. The optimum swaps: 2 + 10 = 12.
        let arcs = [
            Arc { demand: 0, supply: 0, cost: 1 },
            Arc { demand: 0, supply: 1, cost: 10 },
            Arc { demand: 1, supply: 0, cost: 2 },
            Arc { demand: 1, supply: 1, cost: 100 },
        ];
        let optimum = solve(2, &[1, 1], &arcs);
        assert_eq!(optimum.cost_by_assigned, vec![0, 1, 12]);
        let mut pairs = optimum.pairs.clone();
        pairs.sort();
        assert_eq!(pairs, vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn capacity_limits_how_many_are_assigned() {
        let arcs: Vec<Arc> = (0..5).map(|d| Arc { demand: d, supply: 0, cost: d as i64 }).collect();
        let optimum = solve(5, &[3], &arcs);
        assert_eq!(optimum.max_assigned(), 3);
        assert_eq!(optimum.cost_by_assigned, vec![0, 0, 1, 3]);
        assert_eq!(optimum.pairs.len(), 3);
    }

    #[test]
    fn nothing_to_assign() {
        let optimum = solve(3, &[2, 2], &[]);
        assert_eq!(optimum.cost_by_assigned, vec![0]);
        assert!(optimum.pairs.is_empty());
    }

    fn instance() -> impl Strategy<Value = (usize, Vec<u32>, Vec<Arc>)> {
        (1usize..=5, proptest::collection::vec(0u32..=2, 1..=3)).prop_flat_map(|(demands, capacities)| {
            let supplies = capacities.len();
            let arcs = proptest::collection::vec((0..demands, 0..supplies, 0i64..50), 0..=12).prop_map(|raw| {
                let mut seen = std::collections::HashSet::new();
                raw.into_iter()
                    .filter(|(d, s, _)| seen.insert((*d, *s)))
                    .map(|(demand, supply, cost)| Arc { demand, supply, cost })
                    .collect::<Vec<_>>()
            });
            (Just(demands), Just(capacities), arcs)
        })
    }

    proptest! {
        #[test]
        fn equals_exhaustive_search((demands, capacities, arcs) in instance()) {
            let optimum = solve(demands, &capacities, &arcs);
            prop_assert_eq!(&optimum.cost_by_assigned, &brute_force(demands, &capacities, &arcs));
            // The pairs are a valid assignment of the most referrals, at the optimal cost.
            let mut per_supply = vec![0u32; capacities.len()];
            let mut per_demand = vec![0u32; demands];
            let mut cost = 0;
            for &(d, s) in &optimum.pairs {
                per_supply[s] += 1;
                per_demand[d] += 1;
                cost += arcs.iter().find(|a| a.demand == d && a.supply == s).unwrap().cost;
            }
            prop_assert!(per_supply.iter().zip(&capacities).all(|(u, c)| u <= c));
            prop_assert!(per_demand.iter().all(|&n| n <= 1));
            prop_assert_eq!(optimum.pairs.len(), optimum.max_assigned());
            prop_assert_eq!(cost, *optimum.cost_by_assigned.last().unwrap());
        }

        #[test]
        fn a_price_is_what_one_place_less_costs((demands, capacities, arcs) in instance()) {
            let optimum = solve(demands, &capacities, &arcs);
            let best = *optimum.cost_by_assigned.last().unwrap();
            for s in (0..capacities.len()).filter(|&s| capacities[s] > 0) {
                let used = optimum.pairs.iter().filter(|p| p.1 == s).count() as u32;
                if used < capacities[s] {
                    prop_assert_eq!(optimum.prices[s], 0, "structure {} has room", s);
                    continue;
                }
                let mut fewer = capacities.clone();
                fewer[s] -= 1;
                let without = solve(demands, &fewer, &arcs);
                if without.max_assigned() < optimum.max_assigned() {
                    prop_assert_eq!(optimum.prices[s], UNAVAILABLE);
                } else {
                    prop_assert_eq!(optimum.prices[s], without.cost_by_assigned.last().unwrap() - best);
                }
            }
        }
    }
}
