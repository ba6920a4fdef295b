//! Synthetic structures and people on the real communes (drawn by population), with
//! services, modes, languages, accessibility and opening hours in realistic proportions.
//! Seeded: every run of a benchmark sees the same data.

#![allow(dead_code)]

use contracts::events::Point;
use contracts::opening_hours::OpeningHours;
use contracts::{Accessibility, Language, Need, ReferralMode, StructureMode, Urgency};
use geo::Commune;
use matcher::domain::engine::Demand;
use matcher::domain::index::IndexedStructure;
use rand::Rng;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::StdRng;

/// How often a structure offers each service, and how often a person needs it
/// (administrative help and everyday digital skills dominate both).
const SERVICES: [(Need, f64, f64); 9] = [
    (Need::AideDemarchesAdministratives, 10.0, 12.0),
    (Need::MaitriseOutilsNumeriques, 8.0, 8.0),
    (Need::InsertionProfessionnelle, 3.0, 2.0),
    (Need::UtilisationSecurisee, 3.0, 1.5),
    (Need::ParentaliteEducation, 1.5, 0.7),
    (Need::LoisirsCreations, 1.0, 0.3),
    (Need::ComprehensionMondeNumerique, 1.5, 0.5),
    (Need::AccesInternetMateriel, 2.0, 1.5),
    (Need::AcquisitionMaterielSolidaire, 1.0, 0.5),
];

const ACCESSIBILITY: [(Accessibility, f64); 5] = [
    (Accessibility::Motor, 6.0),
    (Accessibility::Illiteracy, 2.0),
    (Accessibility::Visual, 1.5),
    (Accessibility::Deaf, 1.0),
    (Accessibility::Mental, 1.0),
];

const FOREIGN_LANGUAGES: [&str; 3] = ["en", "ar", "es"];

const OPENING_HOURS: [&str; 4] =
    ["Mo-Fr 09:00-12:00,14:00-17:00", "Mo-Fr 10:00-12:00,14:00-17:30", "Tu-Sa 09:00-12:30", "Mo,We,Fr 09:00-17:00"];

/// The communes of a département (or of France with `None`), drawn by population.
pub struct Places {
    communes: Vec<&'static Commune>,
    weights: WeightedIndex<f64>,
}

impl Places {
    pub fn new(departement: Option<&str>) -> Self {
        let mut communes: Vec<&'static Commune> = match departement {
            Some(d) => geo::communes().in_departement(d),
            None => geo::communes().iter().collect(),
        }
        .into_iter()
        .filter(|c| c.kind != geo::CommuneKind::Delegated && c.population > 0)
        .collect();
        // The table is a hash map: a fixed order keeps the data the same from run to run.
        communes.sort_by(|a, b| a.code.cmp(&b.code));
        let weights = WeightedIndex::new(communes.iter().map(|c| f64::from(c.population))).expect("populated communes");
        Self { communes, weights }
    }

    /// A point within `jitter_km` of a commune's centre, drawn by population.
    pub fn point(&self, rng: &mut StdRng, jitter_km: f64) -> Point {
        let c = self.communes[self.weights.sample(rng)];
        let dlat = rng.random_range(-jitter_km..=jitter_km) / 111.0;
        let dlon = rng.random_range(-jitter_km..=jitter_km) / (111.0 * c.location.lat.to_radians().cos());
        Point { lat: c.location.lat + dlat, lon: c.location.lon + dlon }
    }
}

fn pick_distinct<T: Copy>(rng: &mut StdRng, items: &[(T, f64)], k: usize) -> Vec<T> {
    let mut pool: Vec<(T, f64)> = items.to_vec();
    let mut out = Vec::with_capacity(k);
    while out.len() < k && !pool.is_empty() {
        let w = WeightedIndex::new(pool.iter().map(|(_, w)| *w)).expect("positive weights");
        out.push(pool.swap_remove(w.sample(rng)).0);
    }
    out
}

pub fn structure(rng: &mut StdRng, places: &Places, n: usize, capacity: u32) -> IndexedStructure {
    let services_count = rng.random_range(2..=5);
    let mut services = pick_distinct(rng, &SERVICES.map(|(s, w, _)| (s, w)), services_count);
    services.sort();
    let mut modes = vec![StructureMode::Individual];
    if rng.random_bool(0.4) {
        modes.push(StructureMode::Workshop);
    }
    if rng.random_bool(0.15) {
        modes.push(StructureMode::Remote);
    }
    let mut languages = vec![Language::french()];
    if rng.random_bool(0.1) {
        let l = FOREIGN_LANGUAGES[rng.random_range(0..FOREIGN_LANGUAGES.len())];
        languages.push(l.parse().expect("a language code"));
    }
    let accessibility_count = rng.random_range(0..=3);
    let accessibility = pick_distinct(rng, &ACCESSIBILITY, accessibility_count);
    IndexedStructure {
        id: format!("bench-{n:06}").parse().expect("a structure id"),
        name: format!("Espace numérique {n}"),
        territory: "16".parse().expect("a territory"),
        location: places.point(rng, 2.0),
        services,
        modes,
        languages,
        other_languages: rng.random_bool(0.05),
        accessibility,
        weekly_capacity: capacity,
        accepting: rng.random_bool(0.95),
        opening_hours: OpeningHours::parse(OPENING_HOURS[rng.random_range(0..OPENING_HOURS.len())]).ok(),
        reachable: true,
        phone: None,
    }
}

/// `count` structures placed by population, with capacities of 3 to 30 a week.
pub fn structures(rng: &mut StdRng, places: &Places, count: usize) -> Vec<IndexedStructure> {
    (0..count)
        .map(|n| {
            let capacity = rng.random_range(3..=30);
            structure(rng, places, n, capacity)
        })
        .collect()
}

/// A person's matching profile, drawn by population: one or two needs, mostly in person
/// within 30 km, sometimes another language or an accessibility need.
pub fn demand(rng: &mut StdRng, places: &Places, remote_share: f64) -> Demand {
    let needs_count = if rng.random_bool(0.25) { 2 } else { 1 };
    let mut needs = pick_distinct(rng, &SERVICES.map(|(s, _, w)| (s, w)), needs_count);
    needs.sort();
    let modes = if rng.random_bool(remote_share) {
        vec![ReferralMode::InPerson, ReferralMode::Remote]
    } else {
        vec![ReferralMode::InPerson]
    };
    let mut languages = vec![Language::french()];
    if rng.random_bool(0.08) {
        let l = FOREIGN_LANGUAGES[rng.random_range(0..FOREIGN_LANGUAGES.len())];
        languages = vec![l.parse().expect("a language code")];
    }
    let accessibility = if rng.random_bool(0.08) { pick_distinct(rng, &ACCESSIBILITY, 1) } else { Vec::new() };
    let max_distance_km = *[30.0, 30.0, 30.0, 20.0, 10.0].get(rng.random_range(0..5)).unwrap_or(&30.0);
    Demand {
        location: places.point(rng, 3.0),
        needs,
        modes,
        languages,
        accessibility,
        max_distance_km,
        urgency: if rng.random_bool(0.1) { Urgency::Urgent } else { Urgency::Normal },
    }
}

/// This process's resident and peak memory, in bytes (Linux).
pub fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub fn mib(bytes: u64) -> f64 {
    (bytes as f64 / (1024.0 * 1024.0) * 10.0).round() / 10.0
}

/// The `q` quantile (0..=1) of sorted values, nearest rank.
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> T {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
