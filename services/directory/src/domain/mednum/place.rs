//! Where a record is: its coordinates, its commune and its territory (département), from
//! whatever the record gives (coordinates, INSEE code, postcode, commune name).

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use contracts::events::Address;
use geo::{Commune, Communes, LatLon};

use super::fields::coordinate;
use super::vocab::fold;

/// Coordinates farther than this from every commune centroid are not in France.
const FRANCE_KM: f64 = 150.0;
/// Coordinates farther than this from their commune's centroid get a warning.
const FAR_FROM_COMMUNE_KM: f64 = 50.0;
const CELL_DEGREES: f64 = 0.25;

/// What a record says about its place, as written.
#[derive(Debug, Default)]
pub(in crate::domain) struct RawPlace {
    pub latitude: Option<String>,
    pub longitude: Option<String>,
    pub code_insee: Option<String>,
    pub postcode: Option<String>,
    pub commune: Option<String>,
}

/// Where the record is.
#[derive(Debug)]
pub(in crate::domain) struct Placed<'a> {
    pub location: LatLon,
    /// The location is the commune's centroid: the record gave no usable coordinates.
    pub by_commune: bool,
    pub commune: Option<&'a Commune>,
    /// Postcode as given, cleaned (5 digits when it is one).
    pub postcode: Option<String>,
    pub territory: String,
    pub warnings: Vec<(&'static str, String)>,
}

impl Placed<'_> {
    /// The postal address of a place: the street and its complement as given, the
    /// commune's name as given (else the one found), and the commune's code when found.
    pub fn address(&self, street: Option<String>, more: Option<String>, raw: &RawPlace) -> Address {
        let street = match (street, more) {
            (Some(s), Some(more)) => Some(format!("{s}, {more}")),
            (s, more) => s.or(more),
        };
        Address {
            street,
            postcode: self.postcode.clone(),
            commune: raw.commune.clone().filter(|c| !c.is_empty()).or_else(|| self.commune.map(|c| c.name.clone())),
            commune_code: self.commune.map(|c| c.code.clone()),
        }
    }
}

/// Commune lookups that only some files need, built on first use (once per process for
/// the embedded communes table).
pub(in crate::domain) struct Places<'a> {
    communes: &'a Communes,
    shared: bool,
    grid: OnceCell<Grid<'a>>,
    names: OnceCell<Names<'a>>,
}

type Names<'a> = HashMap<String, Vec<&'a Commune>>;

impl<'a> Places<'a> {
    pub(in crate::domain) fn new(communes: &'a Communes) -> Self {
        let shared = std::ptr::eq(communes, geo::communes());
        Self { communes, shared, grid: OnceCell::new(), names: OnceCell::new() }
    }

    fn grid(&self) -> &Grid<'a> {
        static SHARED: OnceLock<Grid<'static>> = OnceLock::new();
        if self.shared {
            return SHARED.get_or_init(|| Grid::new(geo::communes()));
        }
        self.grid.get_or_init(|| Grid::new(self.communes))
    }

    /// Communes by folded name, including *communes déléguées*.
    fn names(&self) -> &Names<'a> {
        static SHARED: OnceLock<Names<'static>> = OnceLock::new();
        if self.shared {
            return SHARED.get_or_init(|| names(geo::communes()));
        }
        self.names.get_or_init(|| names(self.communes))
    }

    fn in_france(&self, p: LatLon) -> bool {
        self.grid().any_within(p, FRANCE_KM)
    }

    pub(in crate::domain) fn locate(&self, raw: &RawPlace) -> Result<Placed<'a>, String> {
        let mut warnings = Vec::new();
        let coordinates = self.coordinates(raw, &mut warnings);
        let code = raw.code_insee.as_deref().map(clean_code).filter(|c| !c.is_empty());
        let postcode = raw.postcode.as_deref().map(clean_postcode).filter(|p| !p.is_empty());
        let name = raw.commune.as_deref().map(str::trim).filter(|n| !n.is_empty());

        let by_code = code.as_deref().and_then(|c| self.communes.by_code(c));
        let mut commune = match (by_code, postcode.as_deref(), coordinates) {
            (Some(c), Some(postcode), Some(p)) => {
                self.settle_code_against_postcode(c, postcode, name, p, &mut warnings)
            }
            (c, _, _) => c,
        };
        if by_code.is_none() {
            commune = self.by_postcode_and_name(postcode.as_deref(), name, coordinates);
            if let (Some(code), Some(found)) = (&code, commune) {
                warnings.push((
                    "code_insee",
                    format!(
                        "unknown INSEE code '{code}'; commune {} ({}) found from the postcode and name",
                        found.name, found.code
                    ),
                ));
            }
        }

        let (location, by_commune) = match (coordinates, commune) {
            (Some(p), Some(c)) => {
                let d = geo::distance_km(p, c.location);
                // Kept as given: the coordinates may be the right ones and the address
                // wrong (the standard's own example has a Reims address and
                // coordinates in Provence); the report points it out.
                if d > FAR_FROM_COMMUNE_KM {
                    warnings.push((
                        "latitude",
                        format!("coordinates are {d:.0} km from the centre of {} ({}); kept as given", c.name, c.code),
                    ));
                }
                (p, false)
            }
            (Some(p), None) => (p, false),
            (None, Some(c)) => (c.location, true),
            (None, None) => return Err(no_location(raw, code.as_deref(), postcode.as_deref(), name)),
        };

        let territory = commune
            .map(|c| c.departement.clone())
            .or_else(|| postcode.as_deref().and_then(|p| self.departement_of_postcode(p)))
            .or_else(|| {
                code.as_deref()
                    .map(geo::departement_of_code)
                    .filter(|d| self.communes.departement(d).is_some())
                    .map(str::to_string)
            })
            .or_else(|| self.grid().nearest(location, FRANCE_KM).map(|(c, _)| c.departement.clone()));
        let Some(territory) = territory else {
            return Err(format!(
                "no territory: coordinates {:.5}, {:.5} are not in France and the commune, postcode and INSEE code do not resolve",
                location.lat, location.lon
            ));
        };
        Ok(Placed { location, by_commune, commune, postcode, territory, warnings })
    }

    /// The commune of a record whose INSEE code and postcode disagree (the INSEE code's
    /// commune does not have that postcode) and whose coordinates are far from the INSEE
    /// code's commune: the postcode's commune when the coordinates are in it, or none when
    /// the postcode is of an overseas collectivity the communes table does not hold
    /// (Nouvelle-Calédonie with the INSEE code of Mont-Dore, Puy-de-Dôme); else the
    /// INSEE code's, as before. Either way the coordinates stay as given.
    fn settle_code_against_postcode(
        &self,
        by_code: &'a Commune,
        postcode: &str,
        name: Option<&str>,
        p: LatLon,
        warnings: &mut Vec<(&'static str, String)>,
    ) -> Option<&'a Commune> {
        if by_code.postcodes.iter().any(|c| c == postcode)
            || geo::distance_km(p, by_code.location) <= FAR_FROM_COMMUNE_KM
        {
            return Some(by_code);
        }
        let by_postcode = self
            .by_postcode_and_name(Some(postcode), name, Some(p))
            .filter(|c| geo::distance_km(p, c.location) <= FAR_FROM_COMMUNE_KM);
        match by_postcode {
            Some(c) => {
                warnings.push((
                    "code_insee",
                    format!(
                        "INSEE code {} ({}) does not match postcode {postcode}, and the coordinates are in {} ({}), a commune of that postcode; {} used",
                        by_code.code, by_code.name, c.name, c.code, c.name
                    ),
                ));
                Some(c)
            }
            None if is_overseas(postcode) && self.communes.by_postcode(postcode).is_empty() => {
                warnings.push((
                    "code_insee",
                    format!(
                        "INSEE code {} ({}) does not match postcode {postcode} nor the coordinates; ignored",
                        by_code.code, by_code.name
                    ),
                ));
                None
            }
            None => Some(by_code),
        }
    }

    /// Valid WGS84 coordinates in France, swapped back when they were given the wrong way
    /// round. `0, 0` means none.
    fn coordinates(&self, raw: &RawPlace, warnings: &mut Vec<(&'static str, String)>) -> Option<LatLon> {
        let (lat_raw, lon_raw) = match (raw.latitude.as_deref(), raw.longitude.as_deref()) {
            (None, None) => return None,
            (lat, lon) => (lat.unwrap_or_default().trim(), lon.unwrap_or_default().trim()),
        };
        let parsed = coordinate(lat_raw).zip(coordinate(lon_raw));
        let valid = parsed
            .filter(|(lat, lon)| lat.abs() > 1e-6 || lon.abs() > 1e-6)
            .and_then(|(lat, lon)| LatLon::new(lat, lon));
        let Some(p) = valid else {
            if parsed.is_none_or(|(lat, lon)| lat.abs() > 1e-6 || lon.abs() > 1e-6) {
                warnings.push((
                    "latitude",
                    format!("'{lat_raw}', '{lon_raw}' are not WGS84 coordinates in decimal degrees; ignored"),
                ));
            }
            return None;
        };
        if self.in_france(p) {
            return Some(p);
        }
        if let Some(swapped) = LatLon::new(p.lon, p.lat).filter(|s| self.in_france(*s)) {
            warnings.push((
                "latitude",
                format!("latitude and longitude were swapped ({lat_raw}, {lon_raw}); swapped back"),
            ));
            return Some(swapped);
        }
        // The communes table stops at the five overseas départements: coordinates of the
        // other overseas territories (Polynésie, Nouvelle-Calédonie, Saint-Martin…) are kept.
        if raw.postcode.as_deref().map(clean_postcode).is_some_and(|p| is_overseas(&p)) {
            return Some(p);
        }
        warnings.push(("latitude", format!("coordinates {lat_raw}, {lon_raw} are not in France; ignored")));
        None
    }

    fn by_postcode_and_name(
        &self,
        postcode: Option<&str>,
        name: Option<&str>,
        near: Option<LatLon>,
    ) -> Option<&'a Commune> {
        let wanted = name.map(fold_commune).filter(|n| !n.is_empty());
        if let Some(postcode) = postcode {
            let candidates = self.communes.by_postcode(postcode);
            if let Some(wanted) = &wanted {
                let named = candidates.iter().find(|c| fold(&c.name) == *wanted).or_else(|| {
                    candidates.iter().find(|c| {
                        let n = fold(&c.name);
                        n.contains(wanted.as_str()) || wanted.contains(&n)
                    })
                });
                if let Some(c) = named {
                    return Some(*c);
                }
                // A CEDEX or mistyped postcode: the name within the postcode's département.
                if let Some(dep) = self.departement_of_postcode(postcode)
                    && let Some(c) = self.by_name(wanted, Some(&dep), near)
                {
                    return Some(c);
                }
            }
            // No name to go by: the candidate nearest the coordinates, else the most populous.
            let nearest = near.and_then(|p| {
                candidates
                    .iter()
                    .min_by(|a, b| geo::distance_km(p, a.location).total_cmp(&geo::distance_km(p, b.location)))
            });
            if let Some(c) = nearest.or(candidates.first()) {
                return Some(*c);
            }
        }
        wanted.and_then(|w| self.by_name(&w, None, near))
    }

    /// A commune by folded name: the only one with that name (in the département when
    /// given), or the one nearest the coordinates.
    fn by_name(&self, wanted: &str, departement: Option<&str>, near: Option<LatLon>) -> Option<&'a Commune> {
        let found: Vec<&'a Commune> = self
            .names()
            .get(wanted)?
            .iter()
            .copied()
            .filter(|c| departement.is_none_or(|d| c.departement == d))
            .collect();
        match (found.as_slice(), near) {
            ([one], _) => Some(*one),
            ([], _) | (_, None) => None,
            (many, Some(p)) => many
                .iter()
                .map(|c| (*c, geo::distance_km(p, c.location)))
                .filter(|(_, d)| *d < FAR_FROM_COMMUNE_KM)
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(c, _)| c),
        }
    }

    /// `16000` → `16`, `20090` → `2A`, `20200` → `2B`, `97110` → `971`, when that
    /// département exists.
    fn departement_of_postcode(&self, postcode: &str) -> Option<String> {
        if postcode.len() != 5 || !postcode.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let dep = match postcode.get(..2)? {
            "97" => postcode.get(..3)?.to_string(),
            "20" => if postcode.as_bytes().get(2).is_some_and(|b| *b <= b'1') { "2A" } else { "2B" }.to_string(),
            two => two.to_string(),
        };
        if self.communes.departement(&dep).is_some() {
            return Some(dep);
        }
        // Overseas collectivities (975, 977, 978, 986, 987, 988) are territories of their own.
        is_overseas(postcode).then(|| postcode.get(..3).unwrap_or_default().to_string())
    }
}

fn names(communes: &Communes) -> Names<'_> {
    let mut names: Names<'_> = HashMap::new();
    let mut seen = HashSet::new();
    let mut postcodes = HashSet::new();
    for commune in communes.iter() {
        for c in std::iter::once(commune).chain(
            commune.postcodes.iter().filter(|p| postcodes.insert(p.as_str())).flat_map(|p| communes.by_postcode(p)),
        ) {
            if seen.insert(c.code.as_str()) {
                names.entry(fold(&c.name)).or_default().push(c);
            }
        }
    }
    names
}

fn no_location(raw: &RawPlace, code: Option<&str>, postcode: Option<&str>, name: Option<&str>) -> String {
    let coordinates = match (raw.latitude.as_deref().map(str::trim), raw.longitude.as_deref().map(str::trim)) {
        (None | Some(""), None | Some("")) => "no coordinates".to_string(),
        (lat, lon) => format!("no valid coordinates ('{}', '{}')", lat.unwrap_or_default(), lon.unwrap_or_default()),
    };
    let given: Vec<&str> = [code, postcode].into_iter().flatten().collect();
    match (name, given.is_empty()) {
        (None, true) => format!("no usable location: {coordinates} and no commune, postcode or INSEE code"),
        (Some(n), true) => {
            format!("no usable location: {coordinates} and commune '{n}' does not resolve (no postcode or INSEE code)")
        }
        (n, false) => format!(
            "no usable location: {coordinates} and commune '{}' ({}) does not resolve",
            n.unwrap_or_default(),
            given.join(", ")
        ),
    }
}

/// A postcode of the overseas départements and collectivities.
fn is_overseas(postcode: &str) -> bool {
    postcode.len() == 5
        && postcode.bytes().all(|b| b.is_ascii_digit())
        && (postcode.starts_with("97") || postcode.starts_with("98"))
}

/// INSEE code: upper case, no spaces; a 4-digit code lost its leading zero in a spreadsheet.
pub(in crate::domain) fn clean_code(raw: &str) -> String {
    let code: String = raw.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_uppercase();
    let code = code.strip_suffix(".0").map(str::to_string).unwrap_or(code);
    if code.len() == 4 && code.bytes().all(|b| b.is_ascii_digit()) { format!("0{code}") } else { code }
}

/// Postcode: digits only when it is a number; a 4-digit one lost its leading zero.
pub(in crate::domain) fn clean_postcode(raw: &str) -> String {
    let compact: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    let compact = compact.strip_suffix(".0").unwrap_or(&compact).to_string();
    if compact.len() == 4 && compact.bytes().all(|b| b.is_ascii_digit()) { format!("0{compact}") } else { compact }
}

/// A commune name as written in addresses: `ANGOULEME CEDEX 9` → `angouleme`.
fn fold_commune(name: &str) -> String {
    let folded = fold(name);
    let words: Vec<&str> = folded.split(' ').collect();
    let end = words.iter().position(|w| *w == "cedex").unwrap_or(words.len());
    words[..end].join(" ")
}

/// Commune centroids in cells of a quarter degree, for the nearest commune of a point.
struct Grid<'a> {
    cells: HashMap<(i32, i32), Vec<&'a Commune>>,
}

impl<'a> Grid<'a> {
    fn new(communes: &'a Communes) -> Self {
        let mut cells: HashMap<(i32, i32), Vec<&'a Commune>> = HashMap::new();
        for c in communes.iter() {
            cells.entry(Self::cell(c.location)).or_default().push(c);
        }
        Self { cells }
    }

    fn cell(p: LatLon) -> (i32, i32) {
        ((p.lat / CELL_DEGREES).floor() as i32, (p.lon / CELL_DEGREES).floor() as i32)
    }

    /// Whether some commune centroid is within `max_km` of `p`.
    fn any_within(&self, p: LatLon, max_km: f64) -> bool {
        let (row, col) = Self::cell(p);
        let max_ring = Self::max_ring(p, max_km);
        (0..=max_ring).any(|ring| {
            Self::ring(row, col, ring)
                .filter_map(|key| self.cells.get(&key))
                .flatten()
                .any(|c| geo::distance_km(p, c.location) <= max_km)
        })
    }

    /// The narrowest side of a cell near `p`, in km.
    fn cell_km(p: LatLon) -> f64 {
        CELL_DEGREES * 111.0 * p.lat.to_radians().cos().max(0.1)
    }

    fn max_ring(p: LatLon, max_km: f64) -> i32 {
        ((max_km / Self::cell_km(p)).ceil() as i32 + 1).clamp(1, 60)
    }

    /// The cells at `ring` steps from a cell.
    fn ring(row: i32, col: i32, ring: i32) -> impl Iterator<Item = (i32, i32)> {
        (-ring..=ring)
            .flat_map(move |dr| (-ring..=ring).map(move |dc| (dr, dc)))
            .filter(move |(dr, dc)| dr.abs() == ring || dc.abs() == ring)
            .map(move |(dr, dc)| (row + dr, col + dc))
    }

    /// The commune whose centroid is nearest `p`, within `max_km`.
    fn nearest(&self, p: LatLon, max_km: f64) -> Option<(&'a Commune, f64)> {
        let (row, col) = Self::cell(p);
        let cell_km = Self::cell_km(p);
        let mut best: Option<(&'a Commune, f64)> = None;
        for ring in 0..=Self::max_ring(p, max_km) {
            for c in Self::ring(row, col, ring).filter_map(|key| self.cells.get(&key)).flatten() {
                let d = geo::distance_km(p, c.location);
                if best.is_none_or(|(_, b)| d < b) {
                    best = Some((c, d));
                }
            }
            if best.is_some_and(|(_, d)| d <= f64::from(ring) * cell_km) {
                break;
            }
        }
        best.filter(|(_, d)| *d <= max_km)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn place(
        lat: Option<&str>,
        lon: Option<&str>,
        code: Option<&str>,
        postcode: Option<&str>,
        commune: Option<&str>,
    ) -> RawPlace {
        RawPlace {
            latitude: lat.map(str::to_string),
            longitude: lon.map(str::to_string),
            code_insee: code.map(str::to_string),
            postcode: postcode.map(str::to_string),
            commune: commune.map(str::to_string),
        }
    }

    fn places() -> Places<'static> {
        Places::new(geo::communes())
    }

    #[test]
    fn coordinates_in_france_are_kept_and_the_territory_comes_from_the_commune() {
        let p = places()
            .locate(&place(Some("45,6813"), Some("-0,3312"), None, Some("16100"), Some("CHÂTEAUBERNARD")))
            .unwrap();
        assert!((p.location.lat - 45.6813).abs() < 1e-9);
        assert!(!p.by_commune);
        assert_eq!(p.commune.unwrap().code, "16089");
        assert_eq!(p.territory, "16");
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[test]
    fn a_record_without_coordinates_is_placed_at_its_commune() {
        let p = places().locate(&place(None, None, Some("16015"), None, None)).unwrap();
        assert!(p.by_commune);
        assert_eq!(p.territory, "16");
        let p = places().locate(&place(Some("0"), Some("0"), None, Some("1000"), Some("Bourg-en-Bresse"))).unwrap();
        assert!(p.by_commune);
        assert_eq!(p.commune.unwrap().code, "01053");
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[test]
    fn a_cedex_postcode_is_resolved_by_name_within_its_departement() {
        let p = places().locate(&place(None, None, None, Some("16017"), Some("Angoulême Cedex"))).unwrap();
        assert_eq!(p.commune.unwrap().code, "16015");
    }

    #[test]
    fn swapped_coordinates_are_swapped_back() {
        let p = places().locate(&place(Some("0.15"), Some("45.65"), None, Some("16000"), None)).unwrap();
        assert!((p.location.lat - 45.65).abs() < 1e-9);
        assert_eq!(p.warnings.len(), 1);
    }

    #[test]
    fn corsican_and_overseas_postcodes_give_their_departement() {
        let ps = places();
        assert_eq!(ps.departement_of_postcode("20090").as_deref(), Some("2A"));
        assert_eq!(ps.departement_of_postcode("20600").as_deref(), Some("2B"));
        assert_eq!(ps.departement_of_postcode("97110").as_deref(), Some("971"));
        assert_eq!(ps.departement_of_postcode("99999"), None);
        assert_eq!(ps.departement_of_postcode("98800").as_deref(), Some("988"));
        // Nouméa: no commune in the table, coordinates kept, territory from the postcode.
        let p = ps.locate(&place(Some("-22.2758"), Some("166.4580"), None, Some("98800"), Some("Nouméa"))).unwrap();
        assert_eq!((p.territory.as_str(), p.location.lat), ("988", -22.2758));
        // Coordinates and an unknown postcode: the territory still comes from the postcode.
        let p = ps.locate(&place(Some("41.9192"), Some("8.7386"), None, Some("20099"), Some("Nowhere"))).unwrap();
        assert_eq!(p.territory, "2A");
    }

    #[test]
    fn a_place_with_neither_coordinates_nor_a_known_commune_is_refused_with_the_reason() {
        let err = places().locate(&place(None, None, None, Some("99999"), Some("X"))).unwrap_err();
        assert_eq!(err, "no usable location: no coordinates and commune 'X' (99999) does not resolve");
        let err = places().locate(&place(Some("abc"), Some(""), None, None, None)).unwrap_err();
        assert!(err.contains("no valid coordinates"), "{err}");
    }

    #[test]
    fn coordinates_outside_france_fall_back_to_the_commune() {
        let p = places().locate(&place(Some("40.7"), Some("-74.0"), Some("16015"), None, None)).unwrap();
        assert!(p.by_commune);
        assert_eq!(p.warnings.len(), 1);
    }

    #[test]
    fn the_nearest_commune_is_found_in_the_grid() {
        let ps = places();
        let (c, d) = ps.grid().nearest(LatLon { lat: 45.6458, lon: 0.14502 }, 10.0).unwrap();
        assert_eq!(c.code, "16015");
        assert!(d < 1.0);
        assert!(ps.grid().nearest(LatLon { lat: 0.0, lon: -30.0 }, FRANCE_KM).is_none());
        assert!(ps.in_france(LatLon { lat: 4.0, lon: -53.0 }));
    }
}
