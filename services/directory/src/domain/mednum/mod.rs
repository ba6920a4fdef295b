//! Reads a file in the national Mednum format (*schéma des lieux de médiation numérique*,
//! v1.0 and the older v0.1 vocabulary) into structure records and an import report.
//!
//! Real regional exports are messy: other separators, other field names, v0 labels, no
//! coordinates, the same place under two ids. Each record is judged on its own: a record is
//! usable when it has an `id`, a name, a place (coordinates, or a commune that resolves) and
//! at least one service that maps; every other record is listed with its reasons, and one
//! bad record never fails the file. Nothing here does I/O.

use std::collections::{BTreeMap, HashMap};

use contracts::events::{Address, Point, StructureContact};
use contracts::opening_hours::OpeningHours;
use contracts::{Accessibility, Language, Need, StructureMode};

// Shared with the data·inclusion reader (`super::data_inclusion`).
pub(super) mod duplicates;
pub(super) mod fields;
pub(super) mod place;
pub(super) mod read;
pub(super) mod vocab;

#[cfg(test)]
mod tests;

use fields::{Fit, Item, exact, split_map};
use place::{Places, RawPlace};
use read::{RawRecord, RawValue};
use vocab::Public;

/// The two encodings of the standard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

/// Sniffs the format: a body starting (after BOM/whitespace) with `[` or `{` is JSON, else CSV.
pub fn detect_format(bytes: &[u8]) -> Format {
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    let first = if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        let head = read::decode(bytes.get(..256.min(bytes.len())).unwrap_or(bytes));
        head.chars().find(|c| !c.is_whitespace() && *c != '\u{feff}').map(|c| c as u32)
    } else {
        bytes.iter().find(|b| !b.is_ascii_whitespace()).map(|b| u32::from(*b))
    };
    match first {
        Some(c) if c == u32::from(b'[') || c == u32::from(b'{') => Format::Json,
        _ => Format::Csv,
    }
}

/// A record that is not imported, and why; something corrected in one that is; a record
/// that looks like another under another id. The import report shows them as they are.
pub use contracts::directory::{ProbableDuplicate, Rejection, Warning};

/// A usable record, mapped to the API's vocabularies.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImportedRecord {
    /// 0-based position of the record in the file.
    pub index: usize,
    pub id: String,
    pub name: String,
    pub services: Vec<Need>,
    pub modes: Vec<StructureMode>,
    pub languages: Vec<Language>,
    pub other_languages: bool,
    pub accessibility: Vec<Accessibility>,
    pub address: Address,
    pub location: Point,
    /// Département code of the resolved commune, or from the INSEE code or postcode.
    pub territory: String,
    pub opening_hours: Option<String>,
    pub contact: StructureContact,
    pub fees: Vec<String>,
    pub labels: Vec<String>,
    pub source: Option<String>,
    pub pivot: Option<String>,
    pub updated_on: Option<chrono::NaiveDate>,
}

/// A file, read: the usable records and the report on the others.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ParsedFile {
    /// Number of records in the file (`records.len() + rejected.len()`).
    pub received: usize,
    /// Usable records, in file order.
    pub records: Vec<ImportedRecord>,
    pub rejected: Vec<Rejection>,
    /// Field (`services`, `modalites_accompagnement`…) → label that did not map → count.
    pub unmapped_values: BTreeMap<String, BTreeMap<String, usize>>,
    pub warnings: Vec<Warning>,
    /// Records with no usable `modalites_accompagnement`, given `individual`.
    pub defaulted_modes: usize,
    /// Records with no usable coordinates, placed at their commune's centroid.
    pub located_by_commune: usize,
    pub probable_duplicates: Vec<ProbableDuplicate>,
    /// data·inclusion: entries deliberately not imported, by reason, with their count.
    pub skipped: BTreeMap<String, usize>,
    /// data·inclusion: each imported place's `zone_eligibilite` codes, which are not stored.
    pub eligibility_zones: BTreeMap<String, Vec<String>>,
}

/// A file that cannot be read at all. A bad record is never one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FileError {
    #[error("not a JSON array of records: {0}")]
    NotJsonArray(String),
    #[error("not a CSV file of Mednum records: {0}")]
    Csv(String),
    #[error("the file is empty")]
    Empty,
    #[error("not a data·inclusion import: {0}")]
    DataInclusion(String),
}

/// Reads a whole file.
pub fn parse_file(bytes: &[u8], format: Format, communes: &geo::Communes) -> Result<ParsedFile, FileError> {
    Ok(Importer::new(communes).run(entries(bytes, format)?))
}

/// A whole file's raw entries, in `format`, whatever its encoding.
pub(in crate::domain) fn entries(bytes: &[u8], format: Format) -> Result<Vec<read::Entry>, FileError> {
    let text = read::decode(bytes);
    if text.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}').is_empty() {
        return Err(FileError::Empty);
    }
    match format {
        Format::Json => read::json_entries(&text),
        Format::Csv => read::csv_entries(&text),
    }
}

// Field names, folded (see `read::fold_key`, so `ID` is `id` and `Adresse postale` is
// `adresse_postale`), preferred spelling first. Regional exports have their own names
// (Gironde 2021: `Lieu`, `Adresse postale`, `Coord. X`; Région Sud 2022: `adresse_code_postal`,
// `contact_telephone`…).
const ID: &[&str] = &["id", "identifiant", "gid"];
const NAME: &[&str] = &["nom", "name", "lieu"];
const SERVICES: &[&str] = &["services", "service", "thematiques"];
const MODES: &[&str] = &["modalites_accompagnement"];
const PUBLICS: &[&str] = &["prise_en_charge_specifique", "publics_accueillis"];
const HOURS: &[&str] = &["horaires", "opening_hours"];
const FEES: &[&str] = &["frais_a_charge", "conditions_acces", "conditions_access"];
const LABELS: &[&str] = &["labels_nationaux", "dispositif_programmes_nationaux", "formations_labels"];
const PHONE: &[&str] = &["telephone", "tel", "phone", "contact_telephone"];
const EMAIL: &[&str] = &["courriels", "courriel", "email", "mail", "contact_email"];
const WEBSITE: &[&str] = &["site_web", "site_internet", "website", "url", "contact_web"];
const STREET: &[&str] = &["adresse", "address", "voie", "adresse_postale", "adresse_rue"];
/// A street number in a field of its own (Maine-et-Loire 2021, Région Sud 2022).
const STREET_NUMBER: &[&str] = &["numero", "adresse_numero", "numero_voie"];
const STREET_MORE: &[&str] = &["complement_adresse", "complement"];
const POSTCODE: &[&str] = &["code_postal", "cp", "postcode", "adresse_code_postal"];
const COMMUNE: &[&str] = &["commune", "ville", "adresse_commune"];
const CODE_INSEE: &[&str] = &["code_insee", "insee", "code_commune", "adresse_code_insee"];
/// `Coord. X` is the latitude in the Gironde export; a file that follows the other
/// convention (X = longitude) gets its coordinates swapped back by `place`.
const LATITUDE: &[&str] = &["latitude", "lat", "coord_x"];
const LONGITUDE: &[&str] = &["longitude", "lon", "lng", "long", "coord_y"];
/// Both coordinates in one field (`45.65, 0.15`), as some open-data portals export them.
const LAT_LON: &[&str] =
    &["coordonnees", "coordonnees_gps", "geo_point_2d", "geo_point", "geopoint", "localisation", "position"];
const SOURCE: &[&str] = &["source"];
const PIVOT: &[&str] = &["pivot", "siret"];
const UPDATED: &[&str] = &["date_maj", "date_mise_a_jour", "derniere_maj"];

const MAX_NAME_CHARS: usize = 300;

struct Importer<'a> {
    places: Places<'a>,
    unmapped: BTreeMap<String, BTreeMap<String, usize>>,
}

/// One record's outcome before it is added to the file's report.
struct Converted {
    record: ImportedRecord,
    warnings: Vec<(String, String)>,
    defaulted_modes: bool,
    located_by_commune: bool,
}

impl<'a> Importer<'a> {
    fn new(communes: &'a geo::Communes) -> Self {
        Self { places: Places::new(communes), unmapped: BTreeMap::new() }
    }

    fn run(mut self, entries: Vec<read::Entry>) -> ParsedFile {
        // A file whose layout has no ids at all (some regional exports) gets ids derived
        // from each place; in a file that has them, a record without one is an error.
        let given: Vec<Option<String>> = entries.iter().map(|e| e.as_ref().ok().and_then(given_id)).collect();
        let derive = given.iter().all(Option::is_none);
        let ids: Vec<Option<RecordId>> = given
            .into_iter()
            .zip(&entries)
            .map(|(id, entry)| match (id, entry) {
                (Some(id), _) => Some(RecordId::Given(id)),
                (None, Ok(raw)) if derive => derived_id(raw).map(RecordId::Derived),
                (None, _) => None,
            })
            .collect();
        let mut last_of_id: HashMap<&str, usize> = HashMap::new();
        for (index, id) in ids.iter().enumerate() {
            if let Some(id) = id {
                last_of_id.insert(id.as_str(), index);
            }
        }

        let mut parsed = ParsedFile { received: entries.len(), ..ParsedFile::default() };
        for (index, entry) in entries.into_iter().enumerate() {
            let record_id = ids.get(index).and_then(Option::as_ref);
            let id = record_id.map(|i| i.as_str().to_string());
            let raw = match entry {
                Ok(raw) => raw,
                Err(reason) => {
                    parsed.rejected.push(Rejection { index, id, errors: vec![reason] });
                    continue;
                }
            };
            if let Some(later) = id.as_deref().and_then(|i| last_of_id.get(i)).filter(|&&later| later != index) {
                let errors = vec![format!("duplicate id, superseded by record {later}")];
                parsed.rejected.push(Rejection { index, id, errors });
                continue;
            }
            match self.convert(index, &raw, record_id) {
                Ok(c) => {
                    parsed.defaulted_modes += usize::from(c.defaulted_modes);
                    parsed.located_by_commune += usize::from(c.located_by_commune);
                    parsed.warnings.extend(c.warnings.into_iter().map(|(field, message)| Warning {
                        index,
                        id: Some(c.record.id.clone()),
                        field,
                        message,
                    }));
                    parsed.records.push(c.record);
                }
                Err(errors) => parsed.rejected.push(Rejection { index, id, errors }),
            }
        }
        parsed.probable_duplicates = duplicates::probable_duplicates(&parsed.records);
        parsed.unmapped_values = self.unmapped;
        parsed
    }

    fn unmapped(&mut self, field: &str, label: &str) {
        *self.unmapped.entry(field.to_string()).or_default().entry(label.to_string()).or_default() += 1;
    }

    /// Maps a multi-valued field, counting what does not map under the field's name.
    fn map_values<T>(&mut self, field: &str, value: &RawValue, map: impl Fn(&str) -> Option<(T, Fit)>) -> Vec<Item<T>> {
        let items = split_map(value, map);
        for item in items.iter().filter(|i| i.mapped.is_none()) {
            self.unmapped(field, &item.label);
        }
        items
    }

    fn convert(&mut self, index: usize, raw: &RawRecord, id: Option<&RecordId>) -> Result<Converted, Vec<String>> {
        let mut errors = Vec::new();
        let mut warnings: Vec<(String, String)> = Vec::new();

        let id = match id {
            Some(RecordId::Given(id)) => {
                if let Some(given) = raw.text(ID).filter(|given| given != id) {
                    warnings.push((
                        "id".into(),
                        format!("id '{given}' has characters ids cannot have; imported as '{id}'"),
                    ));
                }
                Some(id.clone())
            }
            Some(RecordId::Derived(id)) => {
                warnings.push((
                    "id".into(),
                    format!(
                        "the file gives no ids; derived '{id}' from the name and address, so that importing the file again updates this record"
                    ),
                ));
                Some(id.clone())
            }
            None => {
                errors.push("missing id".to_string());
                None
            }
        };

        let name = raw.text(NAME).map(|n| n.split_whitespace().collect::<Vec<_>>().join(" ")).filter(|n| !n.is_empty());
        let name = match name {
            Some(n) if n.chars().count() > MAX_NAME_CHARS => {
                warnings.push(("nom".into(), format!("name longer than {MAX_NAME_CHARS} characters; shortened")));
                Some(n.chars().take(MAX_NAME_CHARS).collect::<String>())
            }
            Some(n) => Some(n),
            None => {
                errors.push("missing name (nom)".to_string());
                None
            }
        };

        let services = match raw.value(SERVICES) {
            None => {
                let (services, columns) = services_from_columns(raw);
                if services.is_empty() {
                    errors.push("no services given".to_string());
                } else {
                    warnings.push((
                        "services".into(),
                        format!("no services field; services read from the columns {}", columns.join(", ")),
                    ));
                }
                services
            }
            Some((_, value)) => {
                let items = self.map_values("services", value, vocab::service);
                let services = sorted(items.iter().filter_map(|i| i.mapped).collect());
                if services.is_empty() {
                    let labels: Vec<String> = items.iter().take(10).map(|i| format!("'{}'", i.label)).collect();
                    let more = if items.len() > 10 { format!(" and {} more", items.len() - 10) } else { String::new() };
                    errors.push(format!("no service could be mapped: {}{more}", labels.join(", ")));
                }
                services
            }
        };

        let mut modes = Vec::new();
        if let Some((field, value)) = raw.value(MODES) {
            let field = field.to_string();
            modes = sorted(self.map_values(&field, value, vocab::mode).into_iter().filter_map(|i| i.mapped).collect());
        }
        let defaulted_modes = modes.is_empty();
        if defaulted_modes {
            modes.push(StructureMode::Individual);
        }

        let mut accessibility = Vec::new();
        let mut languages = vec![Language::french()];
        let mut other_languages = false;
        for (field, value) in raw.values(PUBLICS) {
            for public in self.map_values(field, value, vocab::public).into_iter().filter_map(|i| i.mapped) {
                match public {
                    Public::Access(a) => accessibility.push(a),
                    Public::Language(l) if !languages.contains(&l) => languages.push(l),
                    Public::Language(_) | Public::Audience => {}
                    Public::OtherLanguages => other_languages = true,
                }
            }
        }
        let accessibility = sorted(accessibility);

        let opening_hours = hours(raw).and_then(|given| opening_hours("horaires", &given, &mut warnings));

        let mut fees = Vec::new();
        for (field, value) in raw.values(FEES) {
            let field = field.to_string();
            for item in self.map_values(&field, value, vocab::fee) {
                push_new(&mut fees, item.mapped.unwrap_or_else(|| vocab::fee_as_written(&item.label)));
            }
        }
        let mut labels = Vec::new();
        for (_, value) in raw.values(LABELS) {
            for item in split_map(value, |s| exact(vocab::label(s))) {
                push_new(&mut labels, item.mapped.unwrap_or(item.label));
            }
        }

        let contact = fields::contact(raw.text(PHONE), raw.text(EMAIL), raw.text(WEBSITE), "courriels", &mut warnings);

        let (latitude, longitude) = match (raw.text(LATITUDE), raw.text(LONGITUDE)) {
            (None, None) => lat_lon(raw).unzip(),
            given => given,
        };
        let street = street(raw);
        let raw_place = RawPlace {
            latitude,
            longitude,
            code_insee: raw.text(CODE_INSEE),
            postcode: postcode(raw, street.as_deref()),
            commune: raw.text(COMMUNE),
        };
        let placed = match self.places.locate(&raw_place) {
            Ok(p) => Some(p),
            Err(reason) => {
                errors.push(reason);
                None
            }
        };

        let (Some(id), Some(name), Some(placed), true) = (id, name, placed, errors.is_empty()) else {
            return Err(errors);
        };
        warnings.extend(placed.warnings.iter().map(|(f, m)| ((*f).to_string(), m.clone())));
        let address = placed.address(street, raw.text(STREET_MORE), &raw_place);
        let record = ImportedRecord {
            index,
            id,
            name,
            services,
            modes,
            languages,
            other_languages,
            accessibility,
            address,
            location: Point { lat: placed.location.lat, lon: placed.location.lon },
            territory: placed.territory.clone(),
            opening_hours,
            contact,
            fees,
            labels,
            source: raw.text(SOURCE),
            pivot: raw.text(PIVOT).filter(|p| !p.chars().all(|c| c == '0' || c.is_whitespace())),
            updated_on: raw.text(UPDATED).and_then(|d| fields::date(&d)),
        };
        Ok(Converted { record, warnings, defaulted_modes, located_by_commune: placed.by_commune })
    }
}

/// A record's id: the one it gives, made safe for URLs, or one derived from what
/// identifies the place.
#[derive(Debug, Clone, PartialEq)]
enum RecordId {
    Given(String),
    Derived(String),
}

impl RecordId {
    fn as_str(&self) -> &str {
        match self {
            Self::Given(id) | Self::Derived(id) => id,
        }
    }
}

/// Prefix of derived ids, so that they are recognisable in the directory.
const DERIVED_ID_PREFIX: &str = "sans-id-";

/// The id a record gives, made safe for URLs.
fn given_id(raw: &RawRecord) -> Option<String> {
    raw.text(ID).map(|id| fields::safe_id(&id)).filter(|id| !id.is_empty())
}

/// An id for a record of a file that gives none (Gironde 2021, Région Sud 2022): a hash of its folded
/// name, address, postcode, commune and INSEE code, so that importing the same file again
/// updates the same records instead of creating new ones. Coordinates are left out: they
/// are what gets corrected between two exports. Two records with the same name at the
/// same address are the same place, and the later one supersedes the earlier as with a
/// repeated id. Without a name there is nothing to identify the place by.
fn derived_id(raw: &RawRecord) -> Option<String> {
    let name = raw.text(NAME).map(|n| vocab::fold(&n)).filter(|n| !n.is_empty())?;
    let street = street(raw);
    let parts = [
        Some(name),
        street.as_deref().map(vocab::fold),
        raw.text(STREET_MORE).map(|s| vocab::fold(&s)),
        postcode(raw, street.as_deref()).map(|p| place::clean_postcode(&p)),
        raw.text(COMMUNE).map(|c| vocab::fold(&c)),
        raw.text(CODE_INSEE).map(|c| place::clean_code(&c)),
    ];
    let key = parts.map(Option::unwrap_or_default).join("|");
    Some(format!("{DERIVED_ID_PREFIX}{:016x}", fnv1a(key.as_bytes())))
}

/// 64-bit FNV-1a: small, and stable across Rust versions and platforms (the standard
/// library's hasher is not guaranteed to be), which a stored id needs.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The street, with its number when the file gives it in a field of its own.
fn street(raw: &RawRecord) -> Option<String> {
    let street = raw.text(STREET).map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "));
    let number = raw.text(STREET_NUMBER).filter(|n| !n.is_empty() && n.chars().count() <= 10);
    match (number, street) {
        (Some(n), Some(s)) if !s.starts_with(|c: char| c.is_ascii_digit()) => Some(format!("{n} {s}")),
        (_, s) => s.filter(|s| !s.is_empty()),
    }
}

/// The postcode field, else the postcode inside the street address.
fn postcode(raw: &RawRecord, street: Option<&str>) -> Option<String> {
    raw.text(POSTCODE).or_else(|| street.and_then(postcode_in))
}

/// The French postcode inside an address (`56, rue Armand Gayral - 33700 MERIGNAC`
/// → `33700`): the last group of exactly five digits that is not a post-office box or
/// CEDEX number.
fn postcode_in(address: &str) -> Option<String> {
    let words: Vec<&str> = address.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    words
        .iter()
        .enumerate()
        .filter(|(_, w)| w.len() == 5 && w.bytes().all(|b| b.is_ascii_digit()))
        .filter(|(i, _)| {
            let before = i.checked_sub(1).and_then(|b| words.get(b)).map(|w| w.to_lowercase());
            !matches!(before.as_deref(), Some("bp" | "cs" | "tsa" | "cedex"))
        })
        .map(|(_, w)| (*w).to_string())
        .next_back()
}

/// Services given as one `Oui`/`Non` column per service (Maine-et-Loire 2021:
/// `"Accès internet": "Oui"`), for a record with no services field: each column whose
/// name maps to a service and whose value says yes. Also the names of those columns.
fn services_from_columns(raw: &RawRecord) -> (Vec<Need>, Vec<String>) {
    let mut services = Vec::new();
    let mut columns = Vec::new();
    for (key, value) in raw.fields() {
        let RawValue::Text(text) = value else { continue };
        if !is_yes(text) {
            continue;
        }
        if let Some((need, _)) = vocab::service(&key.replace('_', " ")) {
            services.push(need);
            columns.push(format!("'{key}'"));
        }
    }
    (sorted(services), columns)
}

/// `Oui`, `yes`, `x`, `1`, `true`, `vrai`.
fn is_yes(value: &str) -> bool {
    matches!(vocab::fold(value).as_str(), "oui" | "yes" | "x" | "1" | "true" | "vrai")
}

/// Latitude and longitude from one field: `45.65, 0.15`, `45,65;0,15` or a JSON pair.
fn lat_lon(raw: &RawRecord) -> Option<(String, String)> {
    let parts: Vec<String> = match raw.value(LAT_LON)?.1 {
        RawValue::List(items) => items.clone(),
        RawValue::Text(s) => [", ", ";", ",", " "]
            .iter()
            .map(|sep| s.split(*sep).map(str::trim).filter(|p| !p.is_empty()).map(str::to_string).collect::<Vec<_>>())
            .find(|parts| parts.len() == 2 && parts.iter().all(|p| fields::coordinate(p).is_some()))?,
    };
    match parts.as_slice() {
        [lat, lon] => Some((lat.clone(), lon.clone())),
        _ => None,
    }
}

/// `horaires` as one string (a JSON array of rules is joined with `; `).
fn hours(raw: &RawRecord) -> Option<String> {
    match raw.value(HOURS)?.1 {
        RawValue::Text(s) => Some(s.trim().to_string()),
        RawValue::List(items) => {
            Some(items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect::<Vec<_>>().join("; "))
        }
    }
    .filter(|s| !s.is_empty())
}

/// A valid OSM value as given; one with a slip that is obviously harmless (a trailing `;`,
/// typographic dashes, `9h30`, `Mo-Fr: …`) repaired; anything else dropped. Both with a
/// warning.
pub(super) fn opening_hours(field: &str, given: &str, warnings: &mut Vec<(String, String)>) -> Option<String> {
    let error = match OpeningHours::parse(given) {
        Ok(hours) => return Some(hours.as_str().to_string()),
        Err(error) => error,
    };
    let repaired = repair_hours(given);
    if let Ok(hours) = OpeningHours::parse(&repaired) {
        warnings.push((field.into(), format!("opening hours '{given}' read as '{hours}'")));
        return Some(hours.as_str().to_string());
    }
    warnings.push((field.into(), format!("opening hours '{given}' dropped ({error})")));
    None
}

fn repair_hours(given: &str) -> String {
    let chars: Vec<char> = given
        .trim()
        .chars()
        .map(|c| match c {
            '–' | '—' | '−' => '-',
            '\u{a0}' => ' ',
            c => c,
        })
        .collect();
    let mut out = String::with_capacity(given.len());
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|p| chars.get(p)).copied();
        let next = chars.get(i + 1).copied();
        let next2 = chars.get(i + 2).copied();
        match c {
            // `Mo-Fr: 09:00` → `Mo-Fr 09:00`
            ':' if prev.is_some_and(char::is_alphabetic) && next.is_some_and(char::is_whitespace) => {}
            // `09h30` → `09:30`
            'h' | 'H'
                if prev.is_some_and(|p| p.is_ascii_digit())
                    && next.is_some_and(|n| n.is_ascii_digit())
                    && next2.is_some_and(|n| n.is_ascii_digit()) =>
            {
                out.push(':')
            }
            c => out.push(c),
        }
    }
    out.trim_end_matches([';', ',', ' ', '|']).to_string()
}

pub(super) fn sorted<T: Ord>(mut values: Vec<T>) -> Vec<T> {
    values.sort();
    values.dedup();
    values
}

pub(super) fn push_new(values: &mut Vec<String>, value: String) {
    if !value.is_empty() && !values.contains(&value) {
        values.push(value);
    }
}
