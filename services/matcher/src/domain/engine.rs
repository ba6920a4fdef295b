//! The matching engine: pure, deterministic, and explainable.
//!
//! Hard constraints (all must hold): the structure is accepting; someone there can answer
//! (an active mediator, or a public e-mail address that takes mail); it covers every need;
//! its mode fits (`in_person` needs an `individual` or `workshop` structure within the
//! referral's `max_distance_km`; `remote` needs a `remote` structure, at any distance);
//! it shares a language with the person or supports other languages; it supports every
//! accessibility need; it was not tried before for this referral; it has capacity left
//! this week.
//!
//! Score: distance dominates. Load (the share of this week's capacity already used)
//! adds at most `min(LOAD_MARGIN_KM, LOAD_MARGIN_RATIO × distance)`, so a fuller
//! structure only ever loses to one at most 3 km and 25 % farther. Scores within the
//! same `NEAR_TIE_KM` band are near-ties, broken by the sooner next opening, then by
//! score, then by structure id: results never depend on iteration order.

use std::cmp::Ordering;
use std::collections::HashMap;

use chrono::NaiveDateTime;
use contracts::events::Point;
use contracts::explain::Reason;
use contracts::{Accessibility, ExclusionCode, Language, Need, ReferralMode, StructureId, StructureMode, Urgency};

use super::index::{Index, IndexedStructure};

pub const LOAD_MARGIN_KM: f64 = 3.0;
pub const LOAD_MARGIN_RATIO: f64 = 0.25;
pub const NEAR_TIE_KM: f64 = 0.5;

/// What matching knows about a referral: no personal data.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Demand {
    pub location: Point,
    pub needs: Vec<Need>,
    pub modes: Vec<ReferralMode>,
    pub languages: Vec<Language>,
    pub accessibility: Vec<Accessibility>,
    pub max_distance_km: f64,
    pub urgency: Urgency,
}

/// What happened at a structure already tried for a referral. It is never offered the
/// referral again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tried {
    Offered,
    Declined,
    Expired,
    Withdrawn,
}

impl Tried {
    pub fn slug(self) -> &'static str {
        match self {
            Tried::Offered => "offered",
            Tried::Declined => "declined",
            Tried::Expired => "expired",
            Tried::Withdrawn => "withdrawn",
        }
    }
}

/// Why a structure cannot take a referral.
#[derive(Debug, Clone, PartialEq)]
pub enum Exclusion {
    NotAccepting,
    MissingServices(Vec<Need>),
    NoFittingMode,
    BeyondDistance {
        max_km: f64,
    },
    NoSharedLanguage,
    MissingAccessibility(Vec<Accessibility>),
    AlreadyTried {
        outcome: Tried,
    },
    NoCapacity {
        used: u32,
        capacity: u32,
    },
    /// No active mediator, and no public e-mail address that takes mail: nobody would
    /// see an offer.
    Unreachable,
}

impl Exclusion {
    /// A stable code for clients.
    pub fn code(&self) -> ExclusionCode {
        match self {
            Exclusion::NotAccepting => ExclusionCode::NotAccepting,
            Exclusion::MissingServices(_) => ExclusionCode::MissingService,
            Exclusion::NoFittingMode => ExclusionCode::Mode,
            Exclusion::BeyondDistance { .. } => ExclusionCode::BeyondDistance,
            Exclusion::NoSharedLanguage => ExclusionCode::NoSharedLanguage,
            Exclusion::MissingAccessibility(_) => ExclusionCode::Accessibility,
            Exclusion::AlreadyTried { .. } => ExclusionCode::AlreadyTried,
            Exclusion::NoCapacity { .. } => ExclusionCode::NoCapacity,
            Exclusion::Unreachable => ExclusionCode::Unreachable,
        }
    }

    /// What a person reads.
    pub fn message(&self) -> String {
        let list = |v: &[String]| v.join(", ");
        match self {
            Exclusion::NotAccepting => "not accepting referrals at the moment".to_string(),
            Exclusion::MissingServices(n) => {
                format!("does not offer {}", list(&n.iter().map(|n| n.slug().to_string()).collect::<Vec<_>>()))
            }
            Exclusion::NoFittingMode => "does not offer the requested mode (in person or remote)".to_string(),
            Exclusion::BeyondDistance { max_km } => format!("beyond {} km", format_km(*max_km)),
            Exclusion::NoSharedLanguage => "no shared language".to_string(),
            Exclusion::MissingAccessibility(a) => {
                format!("does not support {}", list(&a.iter().map(|a| a.slug().to_string()).collect::<Vec<_>>()))
            }
            Exclusion::AlreadyTried { outcome } => format!("already {}", outcome.slug()),
            Exclusion::NoCapacity { used, capacity } => {
                format!("no capacity left this week ({used}/{capacity} used)")
            }
            Exclusion::Unreachable => "no active mediator and no public e-mail address that takes mail".to_string(),
        }
    }
}

fn format_km(km: f64) -> String {
    if (km - km.round()).abs() < 1e-9 { format!("{km:.0}") } else { format!("{km:.1}") }
}

/// A structure with no hard constraint against it (capacity aside).
#[derive(Debug, Clone, Copy)]
pub struct Feasible<'a> {
    pub structure: &'a IndexedStructure,
    pub distance_km: f64,
    /// Reached through `remote` rather than in person.
    pub remote: bool,
}

/// A structure that could take the referral now, with its score and explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub structure_id: StructureId,
    pub name: String,
    pub distance_km: f64,
    pub score: f64,
    pub used: u32,
    pub capacity: u32,
    pub next_opening: Option<NaiveDateTime>,
    pub remote: bool,
    pub reasons: Vec<Reason>,
}

/// A structure near the person that cannot take the referral, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Excluded {
    pub structure_id: StructureId,
    pub name: String,
    pub distance_km: f64,
    pub reasons: Vec<Exclusion>,
    /// The public phone of a structure excluded as unreachable: it can still be called.
    pub phone: Option<String>,
}

impl Excluded {
    fn new(s: &IndexedStructure, distance_km: f64, reasons: Vec<Exclusion>) -> Self {
        let phone = if reasons.contains(&Exclusion::Unreachable) { s.phone.clone() } else { None };
        Excluded { structure_id: s.id.clone(), name: s.name.clone(), distance_km, reasons, phone }
    }
}

/// Every hard constraint but capacity, for one structure. `tried` maps the structures
/// already tried for this referral to what happened there ("declined", "expired" …).
pub fn assess(demand: &Demand, s: &IndexedStructure, tried: &HashMap<String, Tried>) -> (f64, bool, Vec<Exclusion>) {
    let distance = geo::distance_km(
        geo::LatLon { lat: demand.location.lat, lon: demand.location.lon },
        geo::LatLon { lat: s.location.lat, lon: s.location.lon },
    );
    let mut reasons = Vec::new();
    if !s.accepting {
        reasons.push(Exclusion::NotAccepting);
    }
    if !s.reachable {
        reasons.push(Exclusion::Unreachable);
    }
    let missing: Vec<Need> = demand.needs.iter().copied().filter(|n| !s.services.contains(n)).collect();
    if !missing.is_empty() {
        reasons.push(Exclusion::MissingServices(missing));
    }
    let in_person_mode = s.modes.iter().any(|m| matches!(m, StructureMode::Individual | StructureMode::Workshop));
    let wants_in_person = demand.modes.contains(&ReferralMode::InPerson);
    let wants_remote = demand.modes.contains(&ReferralMode::Remote);
    let in_person_ok = wants_in_person && in_person_mode && distance <= demand.max_distance_km;
    let remote_ok = wants_remote && s.modes.contains(&StructureMode::Remote);
    let mut remote = false;
    if !in_person_ok && !remote_ok {
        if wants_in_person && in_person_mode && distance > demand.max_distance_km {
            reasons.push(Exclusion::BeyondDistance { max_km: demand.max_distance_km });
        } else {
            reasons.push(Exclusion::NoFittingMode);
        }
    } else if !in_person_ok {
        remote = true;
    }
    let shares_language = demand.languages.is_empty()
        || demand.languages.iter().any(|l| s.languages.contains(l))
        || (s.other_languages && demand.languages.iter().any(|l| l.as_str() != "fr"));
    if !shares_language {
        reasons.push(Exclusion::NoSharedLanguage);
    }
    let missing: Vec<Accessibility> =
        demand.accessibility.iter().copied().filter(|a| !s.accessibility.contains(a)).collect();
    if !missing.is_empty() {
        reasons.push(Exclusion::MissingAccessibility(missing));
    }
    if let Some(outcome) = tried.get(s.id.as_str()) {
        reasons.push(Exclusion::AlreadyTried { outcome: *outcome });
    }
    (distance, remote, reasons)
}

/// Whether a structure satisfies every hard constraint but capacity: exactly
/// `assess(…).2.is_empty()`, without building the reasons. The searches call it for
/// every structure they pass, most of which fail one constraint: the cheapest checks come
/// first and the first that fails ends it. Returns the distance and whether only remote
/// support fits.
pub fn fits(demand: &Demand, s: &IndexedStructure, tried: &HashMap<String, Tried>) -> Option<(f64, bool)> {
    if !s.accepting || !s.reachable {
        return None;
    }
    if !demand.needs.iter().all(|n| s.services.contains(n)) {
        return None;
    }
    if !demand.accessibility.iter().all(|a| s.accessibility.contains(a)) {
        return None;
    }
    let shares_language = demand.languages.is_empty()
        || demand.languages.iter().any(|l| s.languages.contains(l))
        || (s.other_languages && demand.languages.iter().any(|l| l.as_str() != "fr"));
    if !shares_language {
        return None;
    }
    if !tried.is_empty() && tried.contains_key(s.id.as_str()) {
        return None;
    }
    let distance = geo::distance_km(
        geo::LatLon { lat: demand.location.lat, lon: demand.location.lon },
        geo::LatLon { lat: s.location.lat, lon: s.location.lon },
    );
    let in_person_mode = s.modes.iter().any(|m| matches!(m, StructureMode::Individual | StructureMode::Workshop));
    let in_person_ok =
        demand.modes.contains(&ReferralMode::InPerson) && in_person_mode && distance <= demand.max_distance_km;
    let remote_ok = demand.modes.contains(&ReferralMode::Remote) && s.modes.contains(&StructureMode::Remote);
    (in_person_ok || remote_ok).then_some((distance, !in_person_ok))
}

/// The structures that satisfy every hard constraint except capacity, nearest first
/// (ties by id). Eager: one radius query, cheaper than [`feasible_nearest_first`] when
/// every structure in range is wanted (the candidates endpoint).
pub fn feasible<'a>(index: &'a Index, demand: &Demand, tried: &HashMap<String, Tried>) -> Vec<Feasible<'a>> {
    let mut found: Vec<Feasible<'a>> = Vec::new();
    let mut consider = |s: &'a IndexedStructure| {
        if let Some((distance_km, remote)) = fits(demand, s, tried) {
            found.push(Feasible { structure: s, distance_km, remote });
        }
    };
    let wants_remote = demand.modes.contains(&ReferralMode::Remote);
    if demand.modes.contains(&ReferralMode::InPerson) {
        for s in index.within(demand.location, demand.max_distance_km) {
            // A remote structure is considered below, once.
            if !(wants_remote && s.modes.contains(&StructureMode::Remote)) {
                consider(s);
            }
        }
    }
    if wants_remote {
        for s in index.remote() {
            consider(s);
        }
    }
    found.sort_by(|a, b| a.distance_km.total_cmp(&b.distance_km).then_with(|| a.structure.id.cmp(&b.structure.id)));
    found
}

/// The feasible structures nearest first, found lazily: in person within the referral's
/// radius and, when it accepts remote support, remote structures at any distance, merged
/// by distance. Only what a caller pulls is assessed.
pub fn feasible_nearest_first<'a>(
    index: &'a Index,
    demand: &'a Demand,
    tried: &'a HashMap<String, Tried>,
) -> impl Iterator<Item = Feasible<'a>> + 'a {
    let wants_remote = demand.modes.contains(&ReferralMode::Remote);
    let wants_in_person = demand.modes.contains(&ReferralMode::InPerson);
    // Each stream is built only when wanted: a nearest-neighbour search allocates and
    // visits the tree's top as soon as it is made. A remote structure comes through the
    // remote stream only, so it is seen once.
    let in_person = wants_in_person
        .then(|| index.nearest_within(demand.location, demand.max_distance_km))
        .into_iter()
        .flatten()
        .filter(move |(s, _)| !(wants_remote && s.modes.contains(&StructureMode::Remote)));
    let remote = wants_remote.then(|| index.nearest_remote(demand.location)).into_iter().flatten();
    merge_by_distance(in_person, remote).filter_map(move |s| {
        fits(demand, s, tried).map(|(distance_km, remote)| Feasible { structure: s, distance_km, remote })
    })
}

fn merge_by_distance<'a>(
    a: impl Iterator<Item = (&'a IndexedStructure, f64)>,
    b: impl Iterator<Item = (&'a IndexedStructure, f64)>,
) -> impl Iterator<Item = &'a IndexedStructure> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some((_, da)), Some((_, db))) if db < da => b.next().map(|(s, _)| s),
        (Some(_), _) => a.next().map(|(s, _)| s),
        (None, _) => b.next().map(|(s, _)| s),
    })
}

/// An online search for the best structures: pulls feasible structures nearest first
/// until the head of the ranking is settled. A structure at distance `d` scores at least
/// `d`, so once the next unseen structure is at `d`, every candidate in a near-tie band
/// below `d`'s is already in its final place: the search returns exactly the first
/// entries of the full ranking, having looked at a few dozen structures instead of every
/// one in range. The caller supplies the capacity used (from the ledger) for what it
/// pulled.
pub struct Search<'a, I: Iterator<Item = Feasible<'a>>> {
    stream: std::iter::Peekable<I>,
    pulled: Vec<Feasible<'a>>,
    seen_any: bool,
}

impl<'a, I: Iterator<Item = Feasible<'a>>> Search<'a, I> {
    pub fn new(stream: I) -> Self {
        Self { stream: stream.peekable(), pulled: Vec::new(), seen_any: false }
    }

    /// Pulls up to `n` more feasible structures and returns them.
    pub fn pull(&mut self, n: usize) -> &[Feasible<'a>] {
        let start = self.pulled.len();
        self.pulled.extend(self.stream.by_ref().take(n));
        self.seen_any |= self.pulled.len() > start;
        &self.pulled[start..]
    }

    /// No feasible structure is left to pull.
    pub fn exhausted(&mut self) -> bool {
        self.stream.peek().is_none()
    }

    /// Whether any feasible structure exists at all (capacity aside).
    pub fn found_any(&self) -> bool {
        self.seen_any
    }

    /// The candidates pulled so far whose rank is final, best first.
    pub fn settled(
        &mut self,
        used_this_week: impl Fn(&str) -> u32,
        now_local: Option<NaiveDateTime>,
    ) -> Vec<Candidate> {
        // Float rounding between the index's chord order and the haversine distance
        // is far below a millimetre; the margin keeps the bound safe.
        let bound = self.stream.peek().map(|f| band(f.distance_km - 1e-6));
        let mut candidates = candidates(&self.pulled, used_this_week, now_local);
        if let Some(bound) = bound {
            candidates.retain(|c| band(c.score) < bound);
        }
        candidates
    }
}

impl<'a, I: Iterator<Item = Feasible<'a>>> Search<'a, I> {
    /// The best candidate with capacity: pulls `first_batch` structures, then twice as
    /// many each round, until the head of the ranking is settled or nothing is left. The
    /// answer does not depend on the batch (the head is exact); a smaller first batch
    /// assesses fewer structures when the nearest ones settle it, as they mostly do.
    pub fn best(
        &mut self,
        first_batch: usize,
        used_this_week: impl Fn(&str) -> u32,
        now_local: Option<NaiveDateTime>,
    ) -> Option<Candidate> {
        let mut batch = first_batch.max(1);
        loop {
            self.pull(batch);
            let settled = self.settled(&used_this_week, now_local);
            if let Some(best) = settled.into_iter().next() {
                return Some(best);
            }
            if self.exhausted() {
                return None;
            }
            batch *= 2;
        }
    }
}

/// The best structure with capacity, searched online (see [`Search`]).
pub fn best(
    index: &Index,
    demand: &Demand,
    tried: &HashMap<String, Tried>,
    used_this_week: impl Fn(&str) -> u32,
    now_local: Option<NaiveDateTime>,
) -> Option<Candidate> {
    Search::new(feasible_nearest_first(index, demand, tried)).best(SEARCH_BATCH, used_this_week, now_local)
}

/// How many feasible structures an online search pulls at first.
pub const SEARCH_BATCH: usize = 16;

/// Scores the feasible structures against their use of this week's capacity. Returns
/// the candidates, best first, and those with no capacity left.
pub fn rank(
    feasible: &[Feasible<'_>],
    used_this_week: impl Fn(&str) -> u32,
    now_local: Option<NaiveDateTime>,
) -> (Vec<Candidate>, Vec<Excluded>) {
    let full = feasible
        .iter()
        .filter_map(|f| {
            let (s, used) = (f.structure, used_this_week(&f.structure.id));
            (used >= s.weekly_capacity).then(|| {
                Excluded::new(s, f.distance_km, vec![Exclusion::NoCapacity { used, capacity: s.weekly_capacity }])
            })
        })
        .collect();
    (candidates(feasible, used_this_week, now_local), full)
}

/// The candidates of [`rank`], best first, without listing the full structures: what a
/// search needs, which in a week where every place nearby is full pulls hundreds of them.
fn candidates(
    feasible: &[Feasible<'_>],
    used_this_week: impl Fn(&str) -> u32,
    now_local: Option<NaiveDateTime>,
) -> Vec<Candidate> {
    let mut candidates = Vec::with_capacity(feasible.len());
    for f in feasible {
        let s = f.structure;
        let used = used_this_week(&s.id);
        if used >= s.weekly_capacity {
            continue;
        }
        let load = f64::from(used) / f64::from(s.weekly_capacity.max(1));
        let score = score(f.distance_km, load);
        candidates.push(Candidate {
            structure_id: s.id.clone(),
            name: s.name.clone(),
            distance_km: f.distance_km,
            score,
            used,
            capacity: s.weekly_capacity,
            next_opening: None,
            remote: f.remote,
            reasons: Vec::new(),
        });
    }
    // Opening hours only matter between near-ties, so only the leading band pays for them.
    if let (Some(now), Some(best)) = (now_local, candidates.iter().map(|c| c.score).min_by(f64::total_cmp)) {
        let leading = band(best);
        for c in candidates.iter_mut().filter(|c| band(c.score) == leading) {
            if let Some(s) = feasible.iter().find(|f| f.structure.id == c.structure_id) {
                c.next_opening = s.structure.opening_hours.as_ref().and_then(|h| h.next_opening(now));
            }
        }
    }
    candidates.sort_by(compare);
    candidates
}

/// Distance plus the bounded load penalty.
pub fn score(distance_km: f64, load: f64) -> f64 {
    distance_km + load.clamp(0.0, 1.0) * LOAD_MARGIN_KM.min(LOAD_MARGIN_RATIO * distance_km)
}

fn band(score: f64) -> i64 {
    (score / NEAR_TIE_KM).floor() as i64
}

/// The total order of candidates: score band, then sooner opening (unknown last), then
/// score, then id.
pub fn compare(a: &Candidate, b: &Candidate) -> Ordering {
    band(a.score)
        .cmp(&band(b.score))
        .then_with(|| match (a.next_opening, b.next_opening) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
        .then_with(|| a.score.total_cmp(&b.score))
        .then_with(|| a.structure_id.cmp(&b.structure_id))
}

/// Why this structure: distance, needs, language, accessibility, load, opening.
pub fn explain(demand: &Demand, c: &Candidate, s: &IndexedStructure) -> Vec<Reason> {
    let mut reasons = Vec::new();
    if c.remote {
        reasons.push(Reason::Remote { km: round1(c.distance_km) });
    } else {
        reasons.push(Reason::Distance { km: round1(c.distance_km), max_km: demand.max_distance_km });
    }
    reasons.push(Reason::Covers { needs: demand.needs.clone() });
    let shared: Vec<Language> = demand.languages.iter().filter(|l| s.languages.contains(l)).cloned().collect();
    if !shared.is_empty() {
        reasons.push(Reason::Speaks { languages: shared });
    } else if s.other_languages {
        reasons.push(Reason::OtherLanguages);
    }
    if !demand.accessibility.is_empty() {
        reasons.push(Reason::Supports { accessibility: demand.accessibility.clone() });
    }
    reasons.push(Reason::Load { used: c.used, capacity: c.capacity });
    if let Some(at) = c.next_opening {
        reasons.push(Reason::NextOpening { at });
    }
    reasons
}

fn round1(km: f64) -> f64 {
    (km * 10.0).round() / 10.0
}

/// Structures around the person that cannot take the referral, nearest first, with every
/// reason (capacity included, from `used_this_week`).
pub fn excluded_nearby(
    index: &Index,
    demand: &Demand,
    tried: &HashMap<String, Tried>,
    used_this_week: impl Fn(&str) -> u32,
    radius_km: f64,
    limit: usize,
) -> Vec<Excluded> {
    let mut out: Vec<Excluded> = index
        .within(demand.location, radius_km)
        .filter_map(|s| {
            let (distance_km, _, mut reasons) = assess(demand, s, tried);
            let used = used_this_week(&s.id);
            if used >= s.weekly_capacity {
                reasons.push(Exclusion::NoCapacity { used, capacity: s.weekly_capacity });
            }
            (!reasons.is_empty()).then(|| Excluded::new(s, distance_km, reasons))
        })
        .collect();
    out.sort_by(|a, b| a.distance_km.total_cmp(&b.distance_km).then_with(|| a.structure_id.cmp(&b.structure_id)));
    out.truncate(limit);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::index::IndexedStructure;
    use contracts::opening_hours::OpeningHours;

    fn structure(id: &str, lat: f64, lon: f64, services: &[Need]) -> IndexedStructure {
        IndexedStructure {
            id: id.parse().unwrap(),
            name: id.to_uppercase(),
            territory: "16".parse().unwrap(),
            location: Point { lat, lon },
            services: services.to_vec(),
            modes: vec![StructureMode::Individual],
            languages: vec![Language::french()],
            other_languages: false,
            accessibility: vec![],
            weekly_capacity: 5,
            accepting: true,
            opening_hours: None,
            reachable: true,
            phone: None,
        }
    }

    fn demand() -> Demand {
        Demand {
            location: Point { lat: 45.6458, lon: 0.14502 },
            needs: vec![Need::AideDemarchesAdministratives],
            modes: vec![ReferralMode::InPerson],
            languages: vec![Language::french()],
            accessibility: vec![],
            max_distance_km: 30.0,
            urgency: Urgency::Normal,
        }
    }

    const AIDE: Need = Need::AideDemarchesAdministratives;

    fn index(structures: Vec<IndexedStructure>) -> Index {
        let mut i = Index::default();
        for s in structures {
            i.upsert(s);
        }
        i
    }

    fn best(index: &Index, d: &Demand, used: &HashMap<String, u32>) -> Option<String> {
        let f = feasible(index, d, &HashMap::new());
        let (c, _) = rank(&f, |id| used.get(id).copied().unwrap_or(0), None);
        c.first().map(|c| c.structure_id.to_string())
    }

    #[test]
    fn the_nearest_structure_covering_the_need_wins_over_a_nearer_one_that_does_not() {
        let i = index(vec![
            structure("leisure", 45.6460, 0.1452, &[Need::LoisirsCreations]),
            structure("near", 45.6500, 0.1550, &[AIDE]),
            structure("far", 45.7000, 0.2000, &[AIDE]),
        ]);
        assert_eq!(best(&i, &demand(), &HashMap::new()).as_deref(), Some("near"));
    }

    #[test]
    fn a_full_structure_is_skipped_for_the_next_nearest() {
        let i = index(vec![structure("near", 45.6500, 0.1550, &[AIDE]), structure("far", 45.7000, 0.2000, &[AIDE])]);
        let used = HashMap::from([("near".to_string(), 5)]);
        assert_eq!(best(&i, &demand(), &used).as_deref(), Some("far"));
        let f = feasible(&i, &demand(), &HashMap::new());
        let (_, full) = rank(&f, |id| used.get(id).copied().unwrap_or(0), None);
        assert_eq!(full[0].reasons[0].message(), "no capacity left this week (5/5 used)");
    }

    #[test]
    fn beyond_the_radius_nothing_is_feasible() {
        let i = index(vec![structure("cognac", 45.6962, -0.3292, &[AIDE])]);
        let mut d = demand();
        d.max_distance_km = 20.0;
        assert!(best(&i, &d, &HashMap::new()).is_none());
        let ex = excluded_nearby(&i, &d, &HashMap::new(), |_| 0, 60.0, 10);
        assert_eq!(ex[0].reasons, vec![Exclusion::BeyondDistance { max_km: 20.0 }]);
        assert_eq!(ex[0].reasons[0].message(), "beyond 20 km");
    }

    #[test]
    fn a_person_who_speaks_no_french_goes_to_a_shared_language_or_other_languages() {
        let mut arabic = structure("arabic", 45.70, 0.20, &[AIDE]);
        arabic.languages.push("ar".parse().unwrap());
        let mut others = structure("others", 45.66, 0.16, &[AIDE]);
        others.other_languages = true;
        let french_only = structure("french", 45.6460, 0.1452, &[AIDE]);
        let mut d = demand();
        d.languages = vec!["ar".parse().unwrap()];
        let i = index(vec![french_only.clone(), arabic.clone()]);
        assert_eq!(best(&i, &d, &HashMap::new()).as_deref(), Some("arabic"));
        let i = index(vec![french_only, arabic, others]);
        assert_eq!(best(&i, &d, &HashMap::new()).as_deref(), Some("others"));
    }

    #[test]
    fn an_accessibility_need_goes_only_to_a_structure_that_supports_it() {
        let mut motor = structure("motor", 45.70, 0.20, &[AIDE]);
        motor.accessibility = vec![Accessibility::Motor];
        let i = index(vec![structure("near", 45.6460, 0.1452, &[AIDE]), motor]);
        let mut d = demand();
        d.accessibility = vec![Accessibility::Motor];
        assert_eq!(best(&i, &d, &HashMap::new()).as_deref(), Some("motor"));
    }

    #[test]
    fn a_structure_already_tried_is_never_proposed_again() {
        let i = index(vec![structure("near", 45.6500, 0.1550, &[AIDE]), structure("far", 45.7000, 0.2000, &[AIDE])]);
        let tried = HashMap::from([("near".to_string(), Tried::Declined)]);
        let f = feasible(&i, &demand(), &tried);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].structure.id, "far");
        let ex = excluded_nearby(&i, &demand(), &tried, |_| 0, 30.0, 10);
        assert_eq!(ex[0].reasons[0].message(), "already declined");
    }

    #[test]
    fn remote_referrals_go_to_remote_structures_at_any_distance() {
        let mut remote = structure("remote", 48.85, 2.35, &[AIDE]);
        remote.modes = vec![StructureMode::Remote];
        let i = index(vec![structure("near", 45.6500, 0.1550, &[AIDE]), remote]);
        let mut d = demand();
        d.modes = vec![ReferralMode::Remote];
        assert_eq!(best(&i, &d, &HashMap::new()).as_deref(), Some("remote"));
        d.modes = vec![ReferralMode::InPerson, ReferralMode::Remote];
        assert_eq!(best(&i, &d, &HashMap::new()).as_deref(), Some("near"));
    }

    #[test]
    fn load_moves_a_referral_farther_only_inside_the_margin() {
        // 10 km vs 11 km: a busy near structure (4/5) loses to an empty one 1 km farther.
        let i = index(vec![structure("a", 45.7358, 0.14502, &[AIDE]), structure("b", 45.7448, 0.14502, &[AIDE])]);
        let used = HashMap::from([("a".to_string(), 4)]);
        assert_eq!(best(&i, &demand(), &used).as_deref(), Some("b"));
        // …but never to one more than 3 km / 25 % farther.
        let i = index(vec![structure("a", 45.7358, 0.14502, &[AIDE]), structure("c", 45.7800, 0.14502, &[AIDE])]);
        assert_eq!(best(&i, &demand(), &used).as_deref(), Some("a"));
    }

    #[test]
    fn the_explanation_names_distance_needs_language_and_load() {
        let s = structure("near", 45.6500, 0.1550, &[AIDE]);
        let i = index(vec![s.clone()]);
        let f = feasible(&i, &demand(), &HashMap::new());
        let (c, _) = rank(&f, |_| 1, None);
        let lines: Vec<String> = explain(&demand(), &c[0], &s).iter().map(Reason::text_en).collect();
        assert!(lines[0].contains("km away"), "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("aide_demarches_administratives")));
        assert!(lines.iter().any(|l| l == "speaks fr"));
        assert!(lines.iter().any(|l| l == "load this week: 1/5"));
    }

    #[test]
    fn between_near_ties_a_place_closed_on_christmas_day_opens_later() {
        let mut weekdays = structure("weekdays", 45.6500, 0.1550, &[AIDE]);
        weekdays.opening_hours = OpeningHours::parse("Mo-Fr 09:00-17:00; PH off").ok();
        let mut saturdays = structure("saturdays", 45.6500, 0.1550, &[AIDE]);
        saturdays.opening_hours = OpeningHours::parse("Mo-Sa 09:00-12:00; PH off").ok();
        let i = index(vec![weekdays.clone(), saturdays.clone()]);
        let f = feasible(&i, &demand(), &HashMap::new());
        // Thursday 24 December 2026, 18:00 in Paris: Friday 25 is a public holiday.
        let christmas_eve = chrono::NaiveDate::from_ymd_opt(2026, 12, 24).and_then(|d| d.and_hms_opt(18, 0, 0));
        let (c, _) = rank(&f, |_| 0, christmas_eve);
        assert_eq!(c[0].structure_id, "saturdays");
        let lines = |c: &Candidate, s: &IndexedStructure| -> Vec<String> {
            explain(&demand(), c, s).iter().map(Reason::text_en).collect()
        };
        assert!(lines(&c[0], &saturdays).contains(&"next opening: Sat 26 Dec 09:00".to_string()));
        assert!(lines(&c[1], &weekdays).contains(&"next opening: Mon 28 Dec 09:00".to_string()));
    }

    #[test]
    fn an_unreachable_structure_is_never_offered_and_is_listed_with_its_phone() {
        let mut silent = structure("silent", 45.6460, 0.1452, &[AIDE]);
        silent.reachable = false;
        silent.phone = Some("05 45 00 00 01".into());
        let mut full_with_phone = structure("full", 45.6480, 0.1470, &[AIDE]);
        full_with_phone.phone = Some("05 45 00 00 02".into());
        let far = structure("far", 45.7000, 0.2000, &[AIDE]);
        let i = index(vec![silent.clone(), full_with_phone, far]);
        let used = HashMap::from([("full".to_string(), 5)]);
        assert_eq!(best(&i, &demand(), &used).as_deref(), Some("far"), "the nearest cannot answer, the next is full");
        let online = super::best(&i, &demand(), &HashMap::new(), |id| used.get(id).copied().unwrap_or(0), None);
        assert_eq!(online.map(|c| c.structure_id.to_string()).as_deref(), Some("far"));
        let ex = excluded_nearby(&i, &demand(), &HashMap::new(), |id| used.get(id).copied().unwrap_or(0), 30.0, 10);
        assert_eq!(ex[0].structure_id, "silent");
        assert_eq!(ex[0].reasons, vec![Exclusion::Unreachable]);
        assert_eq!(ex[0].reasons[0].code(), ExclusionCode::Unreachable);
        assert_eq!(ex[0].phone.as_deref(), Some("05 45 00 00 01"), "it can still be called");
        assert_eq!(ex[1].structure_id, "full");
        assert_eq!(ex[1].phone, None, "a phone only for a structure that cannot be reached otherwise");
        // Reachable again (a mediator signed in, an address was added): offered first.
        silent.reachable = true;
        let i = index(vec![silent, structure("far", 45.7000, 0.2000, &[AIDE])]);
        assert_eq!(best(&i, &demand(), &HashMap::new()).as_deref(), Some("silent"));
    }

    #[test]
    fn reasons_add_up_for_an_unreachable_structure_that_also_lacks_the_service() {
        let mut s = structure("leisure", 45.6460, 0.1452, &[Need::LoisirsCreations]);
        s.reachable = false;
        let (_, _, reasons) = assess(&demand(), &s, &HashMap::new());
        let codes: Vec<ExclusionCode> = reasons.iter().map(Exclusion::code).collect();
        assert_eq!(codes, [ExclusionCode::Unreachable, ExclusionCode::MissingService]);
    }

    proptest::proptest! {
        #[test]
        fn the_quick_check_agrees_with_the_reasons(
            needs in proptest::collection::vec(0usize..9, 0..3),
            offered in proptest::collection::vec(0usize..9, 0..5),
            wanted_access in proptest::collection::vec(0usize..5, 0..2),
            access in proptest::collection::vec(0usize..5, 0..4),
            (wants_in_person, wants_remote) in (proptest::bool::ANY, proptest::bool::ANY),
            mode_kind in 0u32..4,
            (speaks, demand_language, other_languages) in (0usize..3, 0usize..4, proptest::bool::ANY),
            (accepting, reachable, was_tried) in (proptest::bool::weighted(0.9), proptest::bool::weighted(0.9), proptest::bool::weighted(0.1)),
            (lat, max_distance_km) in (45.0f64..46.5, 1.0f64..40.0),
        ) {
            const LANGUAGES: [&str; 3] = ["fr", "en", "ar"];
            let mut s = structure("s", lat, 0.2, &offered.iter().map(|&k| Need::ALL[k]).collect::<Vec<_>>());
            s.accessibility = access.iter().map(|&k| Accessibility::ALL[k]).collect();
            s.modes = match mode_kind {
                0 => vec![StructureMode::Remote],
                1 => vec![StructureMode::Individual, StructureMode::Remote],
                2 => vec![StructureMode::Workshop],
                _ => vec![StructureMode::Individual],
            };
            s.languages = vec![LANGUAGES[speaks].parse().unwrap()];
            s.other_languages = other_languages;
            s.accepting = accepting;
            s.reachable = reachable;
            let mut d = demand();
            d.needs = needs.iter().map(|&k| Need::ALL[k]).collect();
            d.accessibility = wanted_access.iter().map(|&k| Accessibility::ALL[k]).collect();
            d.modes = [(wants_in_person, ReferralMode::InPerson), (wants_remote, ReferralMode::Remote)]
                .into_iter().filter(|(on, _)| *on).map(|(_, m)| m).collect();
            d.languages = LANGUAGES.get(demand_language).map(|l| vec![l.parse().unwrap()]).unwrap_or_default();
            d.max_distance_km = max_distance_km;
            let tried: HashMap<String, Tried> =
                if was_tried { [("s".to_string(), Tried::Declined)].into() } else { HashMap::new() };
            let (distance, remote, reasons) = assess(&d, &s, &tried);
            let quick = fits(&d, &s, &tried);
            proptest::prop_assert_eq!(quick, reasons.is_empty().then_some((distance, remote)));
        }

        #[test]
        fn ranking_is_deterministic_and_never_offers_an_infeasible_structure(
            points in proptest::collection::vec(
                (45.0f64..46.5, -0.5f64..1.0, 0u32..6, proptest::bool::ANY, 0u32..4, proptest::bool::weighted(0.8)), 1..40),
            order_seed in 0usize..1000,
        ) {
            let structures: Vec<IndexedStructure> = points.iter().enumerate().map(|(i, (lat, lon, cap, accepting, svc, reachable))| {
                let mut s = structure(&format!("s{i:02}"), *lat, *lon, &[Need::ALL[*svc as usize]]);
                s.weekly_capacity = *cap;
                s.accepting = *accepting;
                s.reachable = *reachable;
                s
            }).collect();
            let mut shuffled = structures.clone();
            shuffled.rotate_left(order_seed % structures.len());
            let a = index(structures.clone());
            let b = index(shuffled);
            let d = demand();
            let used = |id: &str| (id.len() as u32) % 3;
            let (ca, _) = rank(&feasible(&a, &d, &HashMap::new()), used, None);
            let (cb, _) = rank(&feasible(&b, &d, &HashMap::new()), used, None);
            proptest::prop_assert_eq!(&ca, &cb);
            for c in &ca {
                let s = structures.iter().find(|s| s.id == c.structure_id).unwrap();
                proptest::prop_assert!(s.accepting && s.reachable && s.services.contains(&AIDE));
                proptest::prop_assert!(c.distance_km <= d.max_distance_km);
                proptest::prop_assert!(used(&s.id) < s.weekly_capacity);
            }
            for w in ca.windows(2) {
                proptest::prop_assert!(compare(&w[0], &w[1]) == Ordering::Less);
                // Load never moves a referral more than the margin farther.
                proptest::prop_assert!(w[0].distance_km <= w[1].distance_km + LOAD_MARGIN_KM + NEAR_TIE_KM);
            }
        }

        #[test]
        fn the_online_search_settles_exactly_the_head_of_the_full_ranking(
            points in proptest::collection::vec(
                (45.4f64..45.9, -0.1f64..0.4, 0u32..4, 0u32..4, 0usize..4, 0u32..5, proptest::bool::weighted(0.75)), 1..120),
            wants_remote in proptest::bool::ANY,
            in_person in proptest::bool::ANY,
            max_distance_km in 2.0f64..40.0,
            batch in 1usize..20,
        ) {
            const HOURS: [&str; 3] = ["Mo-Fr 09:00-12:00", "Tu-Sa 14:00-18:00", "We 08:00-10:00"];
            let structures: Vec<IndexedStructure> = points.iter().enumerate().map(|(i, (lat, lon, cap, svc, hours, kind, reachable))| {
                let mut s = structure(&format!("s{i:03}"), *lat, *lon, &[AIDE, Need::ALL[*svc as usize]]);
                s.weekly_capacity = *cap;
                s.reachable = *reachable;
                s.opening_hours = HOURS.get(*hours).and_then(|h| OpeningHours::parse(h).ok());
                s.modes = match kind {
                    0 => vec![StructureMode::Remote],
                    1 => vec![StructureMode::Individual, StructureMode::Remote],
                    _ => vec![StructureMode::Individual],
                };
                s
            }).collect();
            let idx = index(structures);
            let mut d = demand();
            d.max_distance_km = max_distance_km;
            d.modes = match (in_person || !wants_remote, wants_remote) {
                (true, true) => vec![ReferralMode::InPerson, ReferralMode::Remote],
                (true, false) => vec![ReferralMode::InPerson],
                _ => vec![ReferralMode::Remote],
            };
            let tried: HashMap<String, Tried> = [("s001".to_string(), Tried::Declined)].into();
            let used = |id: &str| id.bytes().map(u32::from).sum::<u32>() % 3;
            let now = chrono::NaiveDate::from_ymd_opt(2026, 11, 25).and_then(|d| d.and_hms_opt(11, 0, 0));
            let all = feasible(&idx, &d, &tried);
            let lazy: Vec<Feasible<'_>> = feasible_nearest_first(&idx, &d, &tried).collect();
            let ids = |v: &[Feasible<'_>]| { let mut x: Vec<String> = v.iter().map(|f| f.structure.id.to_string()).collect(); x.sort(); x };
            // Against a scan of every structure: neither the radius query nor the
            // nearest-first search misses one or adds one.
            let mut scanned: Vec<String> =
                idx.iter().filter(|s| assess(&d, s, &tried).2.is_empty()).map(|s| s.id.to_string()).collect();
            scanned.sort();
            proptest::prop_assert_eq!(ids(&all), scanned.clone());
            proptest::prop_assert_eq!(ids(&lazy), scanned);
            proptest::prop_assert!(lazy.windows(2).all(|w| w[0].distance_km <= w[1].distance_km + 1e-9));
            let (full, _) = rank(&all, used, now);
            // Settled candidates, however the search is pulled, are a prefix of the full ranking.
            let mut search = Search::new(feasible_nearest_first(&idx, &d, &tried));
            loop {
                search.pull(batch);
                let settled = search.settled(used, now);
                proptest::prop_assert_eq!(&settled[..], &full[..settled.len()]);
                if search.exhausted() {
                    proptest::prop_assert_eq!(settled.len(), full.len());
                    break;
                }
            }
            let online = super::best(&idx, &d, &tried, used, now);
            proptest::prop_assert_eq!(online.as_ref(), full.first());
            // Nobody who cannot answer is ever a candidate, and each one nearby is listed
            // as unreachable.
            proptest::prop_assert!(all.iter().all(|f| f.structure.reachable));
            let excluded = excluded_nearby(&idx, &d, &tried, used, d.max_distance_km, usize::MAX);
            for s in idx.within(d.location, d.max_distance_km).filter(|s| !s.reachable) {
                let listed = excluded.iter().find(|e| e.structure_id == s.id);
                proptest::prop_assert!(listed.is_some_and(|e| e.reasons.contains(&Exclusion::Unreachable)), "{}", s.id);
            }
        }
    }
}
