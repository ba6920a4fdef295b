//! French geography for matching: the communes table (INSEE code, postcodes, centroid,
//! département, population), resolution from a commune code or a postcode, great-circle
//! distance and territories.
//!
//! The table is embedded in the binary (see `data/README.md` for its sources and licence)
//! and parsed once, on first use.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

mod normalize;

pub use normalize::normalize_name;

const COMMUNES_CSV: &str = include_str!("../data/communes.csv");
const DEPARTEMENTS_CSV: &str = include_str!("../data/departements.csv");

/// Mean Earth radius (IUGG), in kilometres.
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// A WGS84 position in decimal degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatLon {
    pub lat: f64,
    pub lon: f64,
}

impl LatLon {
    /// A position, or `None` when it is not a valid WGS84 coordinate.
    pub fn new(lat: f64, lon: f64) -> Option<Self> {
        let valid =
            lat.is_finite() && lon.is_finite() && (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon);
        valid.then_some(Self { lat, lon })
    }
}

/// Great-circle (haversine) distance in kilometres.
pub fn distance_km(a: LatLon, b: LatLon) -> f64 {
    let (lat1, lat2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// Commune types of the *Code officiel géographique*.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommuneKind {
    /// A commune.
    Commune,
    /// A *commune déléguée* inside a *commune nouvelle*.
    Delegated,
    /// A municipal arrondissement (Paris, Lyon, Marseille).
    Arrondissement,
}

#[derive(Debug, Clone)]
pub struct Commune {
    /// INSEE code (`16015`, `2A004`).
    pub code: String,
    pub name: String,
    /// Département code (`16`, `2A`, `971`): the territory.
    pub departement: String,
    pub postcodes: Vec<String>,
    pub kind: CommuneKind,
    /// Centroid. Always set: communes published without one take their parent's, or the
    /// mean of the communes that share their postcode.
    pub location: LatLon,
    pub population: u32,
    pub parent: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Departement {
    pub code: String,
    pub name: String,
    pub centre: LatLon,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("unknown commune code {0}")]
    UnknownCommune(String),
    #[error("unknown postcode {0}")]
    UnknownPostcode(String),
    #[error("postcode {postcode} does not include commune code {code}")]
    Mismatch { code: String, postcode: String },
    #[error("neither a commune code nor a postcode was given")]
    Missing,
}

/// The communes table.
#[derive(Debug)]
pub struct Communes {
    by_code: HashMap<String, Commune>,
    by_postcode: HashMap<String, Vec<String>>,
    departements: BTreeMap<String, Departement>,
    /// (normalised name, code) of every commune, sorted by name: built on the first search.
    names: OnceLock<Vec<(String, String)>>,
}

/// The embedded table, parsed on first use.
pub fn communes() -> &'static Communes {
    static TABLE: OnceLock<Communes> = OnceLock::new();
    TABLE.get_or_init(|| Communes::parse(COMMUNES_CSV, DEPARTEMENTS_CSV))
}

#[derive(Debug, serde::Deserialize)]
struct Row {
    code: String,
    departement: String,
    name: String,
    postcode: String,
    kind: String,
    parent: String,
    lat: Option<f64>,
    lon: Option<f64>,
    population: Option<u32>,
}

#[derive(Debug, serde::Deserialize)]
struct DepartementRow {
    code: String,
    name: String,
    lat: f64,
    lon: f64,
}

impl Communes {
    fn parse(communes_csv: &str, departements_csv: &str) -> Self {
        let departements = csv::Reader::from_reader(departements_csv.as_bytes())
            .deserialize::<DepartementRow>()
            .filter_map(Result::ok)
            .filter_map(|d| {
                let centre = LatLon::new(d.lat, d.lon)?;
                Some((d.code.clone(), Departement { code: d.code, name: d.name, centre }))
            })
            .collect();

        let mut rows: BTreeMap<String, (Row, Vec<String>)> = BTreeMap::new();
        for row in csv::Reader::from_reader(communes_csv.as_bytes()).deserialize::<Row>().filter_map(Result::ok) {
            match rows.get_mut(&row.code) {
                Some((_, postcodes)) => postcodes.push(row.postcode),
                None => {
                    let postcodes = vec![row.postcode.clone()];
                    rows.insert(row.code.clone(), (row, postcodes));
                }
            }
        }

        let mut by_postcode: HashMap<String, Vec<String>> = HashMap::new();
        for (code, (_, postcodes)) in &rows {
            for p in postcodes {
                by_postcode.entry(p.clone()).or_default().push(code.clone());
            }
        }

        // First pass: rows with their own centroid and département.
        let mut by_code: HashMap<String, Commune> = HashMap::new();
        let mut incomplete = Vec::new();
        for (code, (row, postcodes)) in rows {
            let kind = match row.kind.as_str() {
                "COMD" => CommuneKind::Delegated,
                "ARM" => CommuneKind::Arrondissement,
                _ => CommuneKind::Commune,
            };
            let location = row.lat.zip(row.lon).and_then(|(lat, lon)| LatLon::new(lat, lon));
            let parent = (!row.parent.is_empty()).then_some(row.parent);
            let commune = Commune {
                code: code.clone(),
                name: row.name,
                departement: row.departement,
                postcodes,
                kind,
                location: location.unwrap_or(LatLon { lat: f64::NAN, lon: f64::NAN }),
                population: row.population.unwrap_or(0),
                parent,
            };
            if location.is_none() || commune.departement.is_empty() {
                incomplete.push(code.clone());
            }
            by_code.insert(code, commune);
        }

        Self::add_arrondissement_parents(&mut by_code);

        // Second pass: borrow what is missing from the parent, then from postcode neighbours.
        for code in incomplete {
            let Some(commune) = by_code.get(&code) else { continue };
            let parent = commune.parent.as_ref().and_then(|p| by_code.get(p));
            let mut departement = commune.departement.clone();
            if departement.is_empty() {
                departement =
                    parent.map(|p| p.departement.clone()).unwrap_or_else(|| departement_of_code(&code).to_string());
            }
            let mut location = commune.location;
            if !location.lat.is_finite() {
                location = parent
                    .map(|p| p.location)
                    .filter(|l| l.lat.is_finite())
                    .or_else(|| {
                        let neighbours: Vec<LatLon> = commune
                            .postcodes
                            .iter()
                            .flat_map(|p| by_postcode.get(p).into_iter().flatten())
                            .filter_map(|c| by_code.get(c))
                            .map(|c| c.location)
                            .filter(|l| l.lat.is_finite())
                            .collect();
                        mean(&neighbours)
                    })
                    .unwrap_or(location);
            }
            if let Some(commune) = by_code.get_mut(&code) {
                commune.departement = departement;
                commune.location = location;
            }
        }
        // A commune with no usable centroid at all cannot be matched on: drop it.
        by_code.retain(|_, c| c.location.lat.is_finite() && !c.departement.is_empty());
        for codes in by_postcode.values_mut() {
            codes.retain(|c| by_code.contains_key(c));
        }

        Self { by_code, by_postcode, departements, names: OnceLock::new() }
    }

    /// Paris, Lyon and Marseille are published as arrondissements only; the commune
    /// itself (75056, 69123, 13055) gets the population-weighted centroid of its parts.
    fn add_arrondissement_parents(by_code: &mut HashMap<String, Commune>) {
        let mut parents: BTreeMap<String, Vec<Commune>> = BTreeMap::new();
        for c in by_code.values() {
            if let (CommuneKind::Arrondissement, Some(parent)) = (c.kind, &c.parent)
                && !by_code.contains_key(parent)
            {
                parents.entry(parent.clone()).or_default().push(c.clone());
            }
        }
        for (code, parts) in parents {
            let population: u32 = parts.iter().map(|p| p.population).sum();
            let weight = f64::from(population.max(1));
            let lat = parts.iter().map(|p| p.location.lat * f64::from(p.population)).sum::<f64>();
            let lon = parts.iter().map(|p| p.location.lon * f64::from(p.population)).sum::<f64>();
            let mut postcodes: Vec<String> = parts.iter().flat_map(|p| p.postcodes.clone()).collect();
            postcodes.sort();
            postcodes.dedup();
            let name = match code.as_str() {
                "75056" => "Paris",
                "69123" => "Lyon",
                "13055" => "Marseille",
                _ => parts[0].name.split(' ').next().unwrap_or_default(),
            };
            // Not added to `by_postcode`: a postcode resolves to the arrondissement, which is
            // the finer place.
            by_code.insert(
                code.clone(),
                Commune {
                    code: code.clone(),
                    name: name.to_string(),
                    departement: parts[0].departement.clone(),
                    postcodes,
                    kind: CommuneKind::Commune,
                    location: LatLon { lat: lat / weight, lon: lon / weight },
                    population,
                    parent: None,
                },
            );
        }
    }

    pub fn len(&self) -> usize {
        self.by_code.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_code.is_empty()
    }

    pub fn by_code(&self, code: &str) -> Option<&Commune> {
        self.by_code.get(code.trim())
    }

    /// The communes served by a postcode, most populous first.
    pub fn by_postcode(&self, postcode: &str) -> Vec<&Commune> {
        let mut found: Vec<&Commune> =
            self.by_postcode.get(postcode.trim()).into_iter().flatten().filter_map(|c| self.by_code.get(c)).collect();
        found.sort_by(|a, b| b.population.cmp(&a.population).then(a.code.cmp(&b.code)));
        found
    }

    /// Resolves a place the way people give it: a commune code, or a postcode with an
    /// optional commune name to pick among the communes sharing that postcode. With a
    /// postcode alone the most populous commune of that postcode is taken.
    pub fn resolve(
        &self,
        code: Option<&str>,
        postcode: Option<&str>,
        name: Option<&str>,
    ) -> Result<&Commune, ResolveError> {
        let code = code.map(str::trim).filter(|c| !c.is_empty());
        let postcode = postcode.map(str::trim).filter(|p| !p.is_empty());
        if let Some(code) = code {
            let commune = self.by_code(code).ok_or_else(|| ResolveError::UnknownCommune(code.to_string()))?;
            return Ok(commune);
        }
        let Some(postcode) = postcode else {
            return Err(ResolveError::Missing);
        };
        let candidates = self.by_postcode(postcode);
        if candidates.is_empty() {
            return Err(ResolveError::UnknownPostcode(postcode.to_string()));
        }
        if let Some(wanted) = name.map(normalize_name).filter(|n| !n.is_empty()) {
            let named = candidates.iter().find(|c| normalize_name(&c.name) == wanted).or_else(|| {
                candidates.iter().find(|c| {
                    let n = normalize_name(&c.name);
                    n.contains(&wanted) || wanted.contains(&n)
                })
            });
            if let Some(c) = named {
                return Ok(c);
            }
        }
        Ok(candidates[0])
    }

    /// The communes someone typing `query` may mean, best first, at most `limit`: by
    /// postcode or INSEE code when `query` starts with digits (`16`, `16000`, `16015`), else by
    /// name, accents, case and hyphens ignored (`angouleme`, `st yrieix`): the names that
    /// start with it, then those with a word that does, the most populous first. A postcode
    /// followed by a name (`16000 Angoulême`, what a suggestion reads) narrows to that name.
    pub fn search(&self, query: &str, limit: usize) -> Vec<&Commune> {
        let query = query.trim();
        let digits: String = query.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        let code_like = digits.len() >= 2 && digits.chars().take(2).all(|c| c.is_ascii_digit());
        let mut found: Vec<&Commune> = if code_like {
            let rest = normalize_name(&query[digits.len()..]);
            let mut found: Vec<&Commune> = self
                .iter()
                .filter(|c| c.code == digits || c.postcodes.iter().any(|p| p.starts_with(digits.as_str())))
                .filter(|c| rest.is_empty() || normalize_name(&c.name).starts_with(&rest))
                .collect();
            found.sort_by(|a, b| {
                let exact = |c: &Commune| !(c.code == digits || c.postcodes.contains(&digits));
                exact(a).cmp(&exact(b)).then(b.population.cmp(&a.population)).then(a.code.cmp(&b.code))
            });
            found
        } else {
            let wanted = normalize_name(query);
            if wanted.is_empty() {
                return Vec::new();
            }
            let names = self.names.get_or_init(|| {
                let mut names: Vec<(String, String)> =
                    self.iter().map(|c| (normalize_name(&c.name), c.code.clone())).collect();
                names.sort();
                names
            });
            let word = format!(" {wanted}");
            let mut found: Vec<(bool, &Commune)> = names
                .iter()
                .filter_map(|(name, code)| {
                    let prefix = name.starts_with(&wanted);
                    if !prefix && !name.contains(&word) {
                        return None;
                    }
                    self.by_code.get(code).map(|c| (!prefix, c))
                })
                .collect();
            found.sort_by(|(a_later, a), (b_later, b)| {
                a_later.cmp(b_later).then(b.population.cmp(&a.population)).then(a.code.cmp(&b.code))
            });
            found.into_iter().map(|(_, c)| c).collect()
        };
        found.truncate(limit);
        found
    }

    pub fn departement(&self, code: &str) -> Option<&Departement> {
        self.departements.get(code)
    }

    pub fn departements(&self) -> impl Iterator<Item = &Departement> {
        self.departements.values()
    }

    /// Every commune (not the delegated ones or arrondissements), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Commune> {
        self.by_code.values().filter(|c| c.kind == CommuneKind::Commune)
    }

    /// The communes of one département, sorted by code.
    pub fn in_departement(&self, departement: &str) -> Vec<&Commune> {
        let mut found: Vec<&Commune> = self.iter().filter(|c| c.departement == departement).collect();
        found.sort_by(|a, b| a.code.cmp(&b.code));
        found
    }
}

/// The département of a commune code when the table does not say: `2A004` → `2A`,
/// `97105` → `971`, `16015` → `16`.
pub fn departement_of_code(code: &str) -> &str {
    let n = if code.starts_with("97") || code.starts_with("98") { 3 } else { 2 };
    code.get(..n).unwrap_or(code)
}

/// The département of a postcode when nothing else is known (`16000` → `16`,
/// `20000` → `2A`-or-`2B` is ambiguous and resolved through the table instead).
pub fn is_departement_code(code: &str) -> bool {
    communes().departement(code).is_some()
}

fn mean(points: &[LatLon]) -> Option<LatLon> {
    if points.is_empty() {
        return None;
    }
    let n = points.len() as f64;
    Some(LatLon {
        lat: points.iter().map(|p| p.lat).sum::<f64>() / n,
        lon: points.iter().map(|p| p.lon).sum::<f64>() / n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_finds_a_commune_by_name_in_any_case_or_by_postcode() {
        let t = communes();
        for q in ["Angoulême", "angouleme", "ANGOUL", "16000", "16015", "16000 Angoulême"] {
            let found = t.search(q, 10);
            assert_eq!(found.first().map(|c| c.code.as_str()), Some("16015"), "{q}: {found:?}");
        }
        assert!(t.search("16", 10).len() == 10, "a département's postcodes");
        assert!(t.search("16", 10).iter().all(|c| c.postcodes.iter().any(|p| p.starts_with("16"))));
        // A word inside the name: "Saint-Yrieix-sur-Charente" for "yrieix", after prefixes.
        assert!(t.search("yrieix", 20).iter().any(|c| c.name == "Saint-Yrieix-sur-Charente"));
        assert!(t.search("st yrieix sur", 5).iter().any(|c| c.name == "Saint-Yrieix-sur-Charente"));
        assert!(t.search("Nullepartville", 10).is_empty());
        assert!(t.search("  ", 10).is_empty());
        assert!(t.search("-", 10).is_empty());
        assert!(t.search("99999", 10).is_empty());
        assert!(t.search("a", 3).len() == 3);
        assert!(t.search("Paris", 0).is_empty());
    }

    proptest::proptest! {
        /// Whatever is typed: no panic, never more than asked, and every answer matches.
        #[test]
        fn search_never_panics_and_keeps_to_its_limit(q in "\\PC{0,40}", limit in 0usize..30) {
            let found = communes().search(&q, limit);
            proptest::prop_assert!(found.len() <= limit);
            let wanted = normalize_name(&q);
            for c in found {
                let by_name = normalize_name(&c.name).contains(&wanted);
                let by_code = c.postcodes.iter().chain([&c.code]).any(|p| q.trim().starts_with(&p[..2.min(p.len())]));
                proptest::prop_assert!(by_name || by_code, "{q:?} found {}", c.name);
            }
        }
    }

    #[test]
    fn the_table_holds_every_french_commune() {
        let t = communes();
        assert!(t.len() > 34_000, "{}", t.len());
        assert!(t.departements().count() >= 100);
    }

    #[test]
    fn resolves_a_commune_code_to_its_centroid_and_departement() {
        let c = communes().resolve(Some("16015"), None, None).unwrap();
        assert_eq!(c.name, "Angoulême");
        assert_eq!(c.departement, "16");
        assert!((c.location.lat - 45.6458).abs() < 1e-6);
        let corsica = communes().by_code("2A004").unwrap();
        assert_eq!(corsica.departement, "2A");
        assert_eq!(corsica.postcodes.len(), 3);
    }

    #[test]
    fn resolves_a_postcode_with_and_without_a_name() {
        let t = communes();
        let c = t.resolve(None, Some("16000"), None).unwrap();
        assert_eq!(c.code, "16015");
        let c = t.resolve(None, Some("16100"), Some("CHÂTEAUBERNARD")).unwrap();
        assert_eq!(c.code, "16089");
        assert_eq!(t.resolve(None, Some("00000"), None).unwrap_err(), ResolveError::UnknownPostcode("00000".into()));
        assert_eq!(t.resolve(Some("99999"), None, None).unwrap_err(), ResolveError::UnknownCommune("99999".into()));
        assert_eq!(t.resolve(None, None, None).unwrap_err(), ResolveError::Missing);
    }

    #[test]
    fn paris_exists_as_a_commune_built_from_its_arrondissements() {
        let paris = communes().by_code("75056").unwrap();
        assert_eq!(paris.departement, "75");
        assert!(paris.population > 2_000_000);
        assert!((paris.location.lat - 48.86).abs() < 0.05, "{:?}", paris.location);
        assert_eq!(communes().resolve(None, Some("75001"), None).unwrap().code, "75101");
    }

    #[test]
    fn communes_published_without_centroid_borrow_one() {
        let c = communes().by_code("60694").unwrap();
        assert!(c.location.lat.is_finite());
        assert_eq!(c.departement, "60");
        assert!(communes().by_code("60694").is_some());
    }

    #[test]
    fn distance_matches_known_values() {
        let angouleme = LatLon { lat: 45.6458, lon: 0.14502 };
        let cognac = LatLon { lat: 45.6962, lon: -0.3292 };
        let d = distance_km(angouleme, cognac);
        assert!((d - 37.3).abs() < 0.5, "{d}");
        assert_eq!(distance_km(angouleme, angouleme), 0.0);
        let paris = LatLon { lat: 48.8566, lon: 2.3522 };
        let marseille = LatLon { lat: 43.2965, lon: 5.3698 };
        assert!((distance_km(paris, marseille) - 661.0).abs() < 5.0);
    }

    #[test]
    fn departement_codes_are_derived_from_commune_codes() {
        assert_eq!(departement_of_code("16015"), "16");
        assert_eq!(departement_of_code("2A004"), "2A");
        assert_eq!(departement_of_code("97105"), "971");
    }

    #[test]
    fn invalid_coordinates_are_refused() {
        assert!(LatLon::new(91.0, 0.0).is_none());
        assert!(LatLon::new(f64::NAN, 0.0).is_none());
        assert!(LatLon::new(45.0, 0.1).is_some());
    }
}
