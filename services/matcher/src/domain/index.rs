//! An in-memory spatial index of structures: an R-tree over points on the unit sphere,
//! so a Euclidean radius query is an exact great-circle radius query.

use std::collections::HashMap;

use contracts::events::{Point, Structure};
use contracts::opening_hours::OpeningHours;
use contracts::{Accessibility, Language, Need, StructureId, StructureMode, Territory};
use rstar::RTree;
use rstar::primitives::GeomWithData;

const EARTH_RADIUS_KM: f64 = 6371.0088;

/// What matching needs of a structure.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IndexedStructure {
    pub id: StructureId,
    pub name: String,
    pub territory: Territory,
    pub location: Point,
    pub services: Vec<Need>,
    pub modes: Vec<StructureMode>,
    pub languages: Vec<Language>,
    pub other_languages: bool,
    pub accessibility: Vec<Accessibility>,
    pub weekly_capacity: u32,
    pub accepting: bool,
    pub opening_hours: Option<OpeningHours>,
    /// Someone there would see an offer: an active mediator, or a public e-mail address
    /// that takes mail ([`super::reach`]). "Active" slides with time, so the read model
    /// recomputes this flag when accounts change and every hour, and the index reloads a
    /// structure whose flag flipped like any other change.
    pub reachable: bool,
    /// The public phone number, shown beside a structure that is not reachable otherwise.
    pub phone: Option<String>,
}

impl From<&Structure> for IndexedStructure {
    fn from(s: &Structure) -> Self {
        Self {
            id: s.id.clone(),
            name: s.name.clone(),
            territory: s.territory.clone(),
            location: s.location,
            services: s.services.clone(),
            modes: s.modes.clone(),
            languages: s.languages.clone(),
            other_languages: s.other_languages,
            accessibility: s.accessibility.clone(),
            weekly_capacity: s.weekly_capacity,
            accepting: s.accepting,
            opening_hours: s.opening_hours.as_deref().and_then(|h| OpeningHours::parse(h).ok()),
            // From the record alone: its public address. Mediators are known only from
            // accounts' events, in the matcher's read model.
            reachable: s.contact.email.as_deref().is_some_and(|e| !e.trim().is_empty()),
            phone: s.contact.phone.clone(),
        }
    }
}

type Entry = GeomWithData<[f64; 3], usize>;

#[derive(Default, Clone)]
pub struct Index {
    slots: Vec<Option<IndexedStructure>>,
    by_id: HashMap<StructureId, usize>,
    free: Vec<usize>,
    tree: RTree<Entry>,
    /// The structures that offer remote support, which serve at any distance.
    remote: RTree<Entry>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("structures", &self.by_id.len()).finish()
    }
}

fn unit_vector(p: Point) -> [f64; 3] {
    let (lat, lon) = (p.lat.to_radians(), p.lon.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

/// The straight-line distance through the sphere (squared, on the unit sphere) that
/// corresponds to a great-circle distance.
fn chord_squared(km: f64) -> f64 {
    let angle = (km / EARTH_RADIUS_KM).min(std::f64::consts::PI);
    let chord = 2.0 * (angle / 2.0).sin();
    chord * chord
}

impl Index {
    /// Builds an index in one pass (bulk-loaded R-trees). A later structure with the same
    /// id replaces an earlier one.
    pub fn build(structures: impl IntoIterator<Item = IndexedStructure>) -> Self {
        let mut index = Index::default();
        for s in structures {
            match index.by_id.get(s.id.as_str()) {
                Some(&slot) => index.slots[slot] = Some(s),
                None => {
                    index.by_id.insert(s.id.clone(), index.slots.len());
                    index.slots.push(Some(s));
                }
            }
        }
        let entry = |(slot, s): (usize, &Option<IndexedStructure>)| {
            s.as_ref().map(|s| (Entry::new(unit_vector(s.location), slot), s.modes.contains(&StructureMode::Remote)))
        };
        let entries: Vec<(Entry, bool)> = index.slots.iter().enumerate().filter_map(entry).collect();
        index.remote = RTree::bulk_load(entries.iter().filter(|(_, r)| *r).map(|(e, _)| *e).collect());
        index.tree = RTree::bulk_load(entries.into_iter().map(|(e, _)| e).collect());
        index
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&IndexedStructure> {
        self.by_id.get(id).and_then(|&i| self.slots[i].as_ref())
    }

    pub fn upsert(&mut self, s: IndexedStructure) {
        self.remove(s.id.as_str());
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        self.tree.insert(Entry::new(unit_vector(s.location), slot));
        if s.modes.contains(&StructureMode::Remote) {
            self.remote.insert(Entry::new(unit_vector(s.location), slot));
        }
        self.by_id.insert(s.id.clone(), slot);
        self.slots[slot] = Some(s);
    }

    pub fn remove(&mut self, id: &str) {
        let Some(slot) = self.by_id.remove(id) else { return };
        if let Some(old) = self.slots[slot].take() {
            let entry = Entry::new(unit_vector(old.location), slot);
            self.tree.remove(&entry);
            self.remote.remove(&entry);
        }
        self.free.push(slot);
    }

    /// Structures within `km` of `p` (great-circle), in no particular order.
    pub fn within(&self, p: Point, km: f64) -> impl Iterator<Item = &IndexedStructure> {
        self.tree
            .locate_within_distance(unit_vector(p), chord_squared(km) * (1.0 + 1e-12))
            .filter_map(|e| self.slots[e.data].as_ref())
    }

    /// Structures within `km` of `p`, nearest first, lazily: a search that stops early
    /// visits only what it needs. The second value orders by distance (a chord length).
    pub fn nearest_within(&self, p: Point, km: f64) -> impl Iterator<Item = (&IndexedStructure, f64)> {
        let limit = chord_squared(km) * (1.0 + 1e-12);
        self.tree
            .nearest_neighbor_iter_with_distance_2(&unit_vector(p))
            .take_while(move |(_, d2)| *d2 <= limit)
            .filter_map(|(e, d2)| self.slots[e.data].as_ref().map(|s| (s, d2)))
    }

    /// Structures that offer remote support, nearest first, lazily, at any distance.
    pub fn nearest_remote(&self, p: Point) -> impl Iterator<Item = (&IndexedStructure, f64)> {
        self.remote
            .nearest_neighbor_iter_with_distance_2(&unit_vector(p))
            .filter_map(|(e, d2)| self.slots[e.data].as_ref().map(|s| (s, d2)))
    }

    /// Structures that offer remote support.
    pub fn remote(&self) -> impl Iterator<Item = &IndexedStructure> {
        self.remote.iter().filter_map(|e| self.slots[e.data].as_ref())
    }

    pub fn iter(&self) -> impl Iterator<Item = &IndexedStructure> {
        self.slots.iter().flatten()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(id: &str, lat: f64, lon: f64) -> IndexedStructure {
        IndexedStructure {
            id: id.parse().unwrap(),
            name: id.into(),
            territory: "16".parse().unwrap(),
            location: Point { lat, lon },
            services: vec![Need::AideDemarchesAdministratives],
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

    #[test]
    fn radius_queries_agree_with_great_circle_distance() {
        let centre = Point { lat: 45.6458, lon: 0.14502 };
        let structures: Vec<IndexedStructure> = (0..400)
            .map(|i| at(&format!("s{i}"), 44.0 + (i as f64) * 0.01, -1.0 + (i as f64 * 7.0 % 300.0) * 0.01))
            .collect();
        let index = Index::build(structures.clone());
        for radius in [1.0, 10.0, 30.0, 100.0] {
            let mut found: Vec<&str> = index.within(centre, radius).map(|s| s.id.as_str()).collect();
            found.sort();
            let mut expected: Vec<&str> = structures
                .iter()
                .filter(|s| {
                    geo::distance_km(
                        geo::LatLon { lat: centre.lat, lon: centre.lon },
                        geo::LatLon { lat: s.location.lat, lon: s.location.lon },
                    ) <= radius
                })
                .map(|s| s.id.as_str())
                .collect();
            expected.sort();
            assert_eq!(found, expected, "radius {radius}");
        }
    }

    #[test]
    fn nearest_first_iteration_agrees_with_the_radius_query_and_build_keeps_the_last_duplicate() {
        let centre = Point { lat: 45.6458, lon: 0.14502 };
        let mut structures: Vec<IndexedStructure> = (0..300)
            .map(|i| {
                at(&format!("s{i}"), 45.0 + (i as f64 * 13.0 % 150.0) * 0.01, -0.5 + (i as f64 * 7.0 % 150.0) * 0.01)
            })
            .collect();
        let mut moved = at("s0", 60.0, 10.0);
        moved.modes.push(StructureMode::Remote);
        structures.push(moved);
        let index = Index::build(structures);
        assert_eq!(index.len(), 300);
        assert_eq!(index.get("s0").unwrap().location.lat, 60.0);
        let nearest: Vec<(&str, f64)> = index.nearest_within(centre, 40.0).map(|(s, d)| (s.id.as_str(), d)).collect();
        assert!(nearest.windows(2).all(|w| w[0].1 <= w[1].1), "nearest first");
        let mut ids: Vec<&str> = nearest.iter().map(|(id, _)| *id).collect();
        ids.sort();
        let mut expected: Vec<&str> = index.within(centre, 40.0).map(|s| s.id.as_str()).collect();
        expected.sort();
        assert_eq!(ids, expected);
        assert!(!ids.contains(&"s0"), "the duplicate's first location is gone");
        let remote: Vec<&str> = index.nearest_remote(centre).map(|(s, _)| s.id.as_str()).collect();
        assert_eq!(remote, vec!["s0"]);
    }

    #[test]
    fn upserts_move_and_removals_forget() {
        let mut index = Index::build(vec![at("a", 45.0, 0.0)]);
        index.upsert(at("a", 46.0, 0.0));
        assert_eq!(index.len(), 1);
        assert_eq!(index.within(Point { lat: 45.0, lon: 0.0 }, 5.0).count(), 0);
        assert_eq!(index.within(Point { lat: 46.0, lon: 0.0 }, 5.0).count(), 1);
        index.remove("a");
        assert!(index.is_empty());
        assert_eq!(index.within(Point { lat: 46.0, lon: 0.0 }, 5.0).count(), 0);
        index.upsert(at("b", 46.0, 0.0));
        assert_eq!(index.get("b").unwrap().id, "b");
    }
}
