//! An in-memory spatial index of structures: an R-tree over points on the unit sphere,
//! so a Euclidean radius query is an exact great-circle radius query.

use std::collections::HashMap;

use contracts::events::{Point, Structure};
use contracts::opening_hours::OpeningHours;
use contracts::{Accessibility, Language, Need, StructureMode};
use rstar::RTree;
use rstar::primitives::GeomWithData;

const EARTH_RADIUS_KM: f64 = 6371.0088;

/// What matching needs of a structure.
#[derive(Debug, Clone)]
pub struct IndexedStructure {
    pub id: String,
    pub name: String,
    pub territory: String,
    pub location: Point,
    pub services: Vec<Need>,
    pub modes: Vec<StructureMode>,
    pub languages: Vec<Language>,
    pub other_languages: bool,
    pub accessibility: Vec<Accessibility>,
    pub weekly_capacity: u32,
    pub accepting: bool,
    pub opening_hours: Option<OpeningHours>,
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
        }
    }
}

type Entry = GeomWithData<[f64; 3], usize>;

#[derive(Default, Clone)]
pub struct Index {
    slots: Vec<Option<IndexedStructure>>,
    by_id: HashMap<String, usize>,
    free: Vec<usize>,
    tree: RTree<Entry>,
    remote: Vec<usize>,
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
    /// Builds an index in one pass (bulk-loaded R-tree).
    pub fn build(structures: impl IntoIterator<Item = IndexedStructure>) -> Self {
        let mut index = Index::default();
        let mut entries = Vec::new();
        for s in structures {
            if index.by_id.contains_key(&s.id) {
                index.upsert(s);
                continue;
            }
            let slot = index.slots.len();
            entries.push(Entry::new(unit_vector(s.location), slot));
            if s.modes.contains(&StructureMode::Remote) {
                index.remote.push(slot);
            }
            index.by_id.insert(s.id.clone(), slot);
            index.slots.push(Some(s));
        }
        index.tree = RTree::bulk_load(entries);
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
        self.remove(&s.id);
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        self.tree.insert(Entry::new(unit_vector(s.location), slot));
        if s.modes.contains(&StructureMode::Remote) {
            self.remote.push(slot);
        }
        self.by_id.insert(s.id.clone(), slot);
        self.slots[slot] = Some(s);
    }

    pub fn remove(&mut self, id: &str) {
        let Some(slot) = self.by_id.remove(id) else { return };
        if let Some(old) = self.slots[slot].take() {
            self.tree.remove(&Entry::new(unit_vector(old.location), slot));
        }
        self.remote.retain(|&r| r != slot);
        self.free.push(slot);
    }

    /// Structures within `km` of `p` (great-circle), in no particular order.
    pub fn within(&self, p: Point, km: f64) -> impl Iterator<Item = &IndexedStructure> {
        self.tree
            .locate_within_distance(unit_vector(p), chord_squared(km) * (1.0 + 1e-12))
            .filter_map(|e| self.slots[e.data].as_ref())
    }

    /// Structures that offer remote support.
    pub fn remote(&self) -> impl Iterator<Item = &IndexedStructure> {
        self.remote.iter().filter_map(|&i| self.slots[i].as_ref())
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
            id: id.into(),
            name: id.into(),
            territory: "16".into(),
            location: Point { lat, lon },
            services: vec![Need::AideDemarchesAdministratives],
            modes: vec![StructureMode::Individual],
            languages: vec![Language::french()],
            other_languages: false,
            accessibility: vec![],
            weekly_capacity: 5,
            accepting: true,
            opening_hours: None,
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
