//! Reads the data·inclusion v1 national feed (a structures file and a services file, each
//! JSON or CSV) into the same records and report as a Mednum file.
//!
//! data·inclusion describes every kind of social service; the directory wants the places
//! where someone gets help with digital things. So a structure becomes a place when at
//! least one of its services has a `numerique--…` theme, with the union of what those
//! services offer; a digital service that gives an address of its own, not its
//! structure's, becomes a place of its own. Everything else is counted, not stored.
//!
//! Nothing that describes an agent is read: a service's `contact_nom_prenom`, and its
//! `courriel` and `telephone` (often a named person's), never leave the raw record; a
//! place's contact is its structure's own public `telephone`, `courriel` and `site_web`.
//! Nothing here does I/O.

use std::collections::{BTreeMap, HashMap, HashSet};

use contracts::events::Point;
use contracts::{Language, Need, StructureMode};
use serde_json::Value;

use super::mednum::fields;
use super::mednum::place::{self, Places, RawPlace};
use super::mednum::read::{self, Entry, RawRecord, RawValue};
use super::mednum::vocab::fold;
use super::mednum::{
    FileError, Format, ImportedRecord, ParsedFile, Rejection, Warning, detect_format, duplicates, opening_hours,
    push_new, sorted,
};

#[cfg(test)]
mod tests;

/// Prefix of every id this reader gives a place.
pub const ID_PREFIX: &str = "di-";
/// Suffix of the id of a place made of a service with an address of its own.
const SERVICE_ID_SUFFIX: &str = "@service";
const MAX_NAME_CHARS: usize = 300;
/// A service whose coordinates are farther than this from its structure's is elsewhere.
const SAME_PLACE_KM: f64 = 0.2;

/// The `numerique--…` themes, those of the schema since v1.0 (September 2025) and the
/// earlier ones that feeds still carry, with the need each one is.
pub const THEMES: &[(&str, Need)] = &[
    // Current v1 vocabulary.
    ("numerique--acceder-a-des-services-en-ligne", Need::AideDemarchesAdministratives),
    ("numerique--acceder-a-une-connexion-internet", Need::AccesInternetMateriel),
    ("numerique--acquerir-un-equipement", Need::AcquisitionMaterielSolidaire),
    ("numerique--maitriser-les-fondamentaux-du-numerique", Need::MaitriseOutilsNumeriques),
    // Earlier v1 vocabulary (the Mednum v0 services).
    ("numerique--acceder-a-du-materiel", Need::AccesInternetMateriel),
    ("numerique--accompagner-les-demarches-de-sante", Need::AideDemarchesAdministratives),
    ("numerique--approfondir-ma-culture-numerique", Need::ComprehensionMondeNumerique),
    ("numerique--creer-avec-le-numerique", Need::LoisirsCreations),
    ("numerique--creer-et-developper-mon-entreprise", Need::InsertionProfessionnelle),
    ("numerique--devenir-autonome-dans-les-demarches-administratives", Need::AideDemarchesAdministratives),
    ("numerique--favoriser-mon-insertion-professionnelle", Need::InsertionProfessionnelle),
    ("numerique--prendre-en-main-un-ordinateur", Need::MaitriseOutilsNumeriques),
    ("numerique--prendre-en-main-un-smartphone-ou-une-tablette", Need::MaitriseOutilsNumeriques),
    ("numerique--promouvoir-la-citoyennete-numerique", Need::ComprehensionMondeNumerique),
    ("numerique--realiser-des-demarches-administratives-avec-un-accompagnement", Need::AideDemarchesAdministratives),
    ("numerique--s-equiper-en-materiel-informatique", Need::AcquisitionMaterielSolidaire),
    ("numerique--soutenir-la-parentalite-et-l-education-avec-le-numerique", Need::ParentaliteEducation),
    ("numerique--utiliser-le-numerique-au-quotidien", Need::MaitriseOutilsNumeriques),
];

/// A theme of the digital family (`numerique`, `numerique--…`), whether known or not.
pub fn is_digital_theme(theme: &str) -> bool {
    theme == "numerique" || theme.starts_with("numerique--")
}

/// The need of a digital theme; `None` for one the table does not know (bare `numerique`
/// included: it says nothing of what is offered).
pub fn theme_need(theme: &str) -> Option<Need> {
    THEMES.iter().find(|(t, _)| *t == theme).map(|(_, n)| *n)
}

/// `modes_accueil`, with the service's `type`: in person is an individual accompaniment,
/// or a workshop when the service is one (`type`: `atelier`).
pub fn mode(mode_accueil: &str, service_type: Option<&str>) -> Option<StructureMode> {
    match mode_accueil {
        "a-distance" => Some(StructureMode::Remote),
        "en-presentiel" if service_type == Some("atelier") => Some(StructureMode::Workshop),
        "en-presentiel" => Some(StructureMode::Individual),
        _ => None,
    }
}

/// `frais` (current values `gratuit`, `payant`; earlier v1 also `gratuit-sous-conditions`,
/// `adhesion`, `pass-numerique`), spelled as the Mednum fees are.
pub fn fee(frais: &str) -> Option<&'static str> {
    match frais {
        "gratuit" => Some("Gratuit"),
        "gratuit-sous-conditions" => Some("Gratuit sous condition"),
        "payant" => Some("Payant"),
        "adhesion" => Some("Adhésion"),
        "pass-numerique" => Some("Accepte le Pass numérique"),
        _ => None,
    }
}

/// The files of a data·inclusion import, read to raw entries.
pub struct Entries {
    structures: Vec<Entry>,
    services: Vec<Entry>,
}

/// Reads one file of the pair: a JSON array, or CSV with the schema's field names.
pub(in crate::domain) fn read_file(bytes: &[u8]) -> Result<Vec<Entry>, FileError> {
    super::mednum::entries(bytes, detect_format(bytes))
}

/// A JSON object `{"structures": [...], "services": [...]}` (the HTTP import's form), or
/// `None` when the body is something else.
pub fn read_pair(bytes: &[u8]) -> Option<Entries> {
    if detect_format(bytes) != Format::Json {
        return None;
    }
    let text = read::decode(bytes);
    let trimmed = text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if !trimmed.starts_with('{') {
        return None;
    }
    let Ok(Value::Object(mut root)) = serde_json::from_str::<Value>(trimmed) else { return None };
    if !(root.get("structures").is_some_and(Value::is_array) && root.get("services").is_some_and(Value::is_array)) {
        return None;
    }
    let mut take = |key: &str| match root.remove(key) {
        Some(Value::Array(items)) => items.into_iter().map(read::json_entry).collect(),
        _ => Vec::new(),
    };
    Some(Entries { structures: take("structures"), services: take("services") })
}

/// Whether a file's entries are data·inclusion services (they name their `structure_id`).
pub(in crate::domain) fn are_services(entries: &[Entry]) -> bool {
    entries.iter().filter_map(|e| e.as_ref().ok()).take(20).any(|r| r.text(&["structure_id"]).is_some())
}

/// Reads the two files, in either order.
pub fn read_files(first: &[u8], second: &[u8]) -> Result<Entries, FileError> {
    let a = read_file(first)?;
    let b = read_file(second)?;
    match (are_services(&a), are_services(&b)) {
        (true, false) => Ok(Entries { structures: b, services: a }),
        (false, true) => Ok(Entries { structures: a, services: b }),
        _ => Err(FileError::DataInclusion(
            "expected a structures file and a services file (whose records give `structure_id`)".into(),
        )),
    }
}

/// The import: every usable place and the report on the rest. `source` names the source
/// stored on each place (default `data-inclusion/{source}`).
pub fn parse(entries: Entries, source: Option<&str>, communes: &geo::Communes) -> ParsedFile {
    Importer { places: Places::new(communes), unmapped: BTreeMap::new(), source }.run(entries)
}

// -- Raw fields

const SOURCE: &[&str] = &["source"];
const ID: &[&str] = &["id"];
const NAME: &[&str] = &["nom"];
const DATE: &[&str] = &["date_maj"];
const STRUCTURE_ID: &[&str] = &["structure_id"];
const THEMATIQUES: &[&str] = &["thematiques"];
const MODES: &[&str] = &["modes_accueil"];
const TYPE: &[&str] = &["type"];
const FRAIS: &[&str] = &["frais"];
const HOURS: &[&str] = &["horaires_accueil"];
const ZONE: &[&str] = &["zone_eligibilite"];
const STREET: &[&str] = &["adresse"];
const STREET_MORE: &[&str] = &["complement_adresse"];
const POSTCODE: &[&str] = &["code_postal"];
const COMMUNE: &[&str] = &["commune"];
const CODE_INSEE: &[&str] = &["code_insee"];
const LATITUDE: &[&str] = &["latitude"];
const LONGITUDE: &[&str] = &["longitude"];
const PHONE: &[&str] = &["telephone"];
const EMAIL: &[&str] = &["courriel"];
const WEBSITE: &[&str] = &["site_web"];
const SIRET: &[&str] = &["siret"];

const STRUCTURE_REQUIRED: &[&str] = &["source", "id", "nom", "date_maj"];
const SERVICE_REQUIRED: &[&str] = &["source", "structure_id", "id", "nom", "description", "date_maj"];

/// A list field: a JSON array, or in CSV a JSON array (`["a", "b"]`), a PostgreSQL array
/// (`{a,b}`) or values separated by `,`, `|` or `;`. Values are trimmed; blanks dropped.
pub(in crate::domain) fn list(value: Option<&RawValue>) -> Vec<String> {
    let items: Vec<String> = match value {
        None => Vec::new(),
        Some(RawValue::List(items)) => items.clone(),
        Some(RawValue::Text(text)) => {
            let t = text.trim();
            if t.starts_with('[')
                && let Ok(items) = serde_json::from_str::<Vec<Value>>(t)
            {
                items.into_iter().filter_map(|v| v.as_str().map(str::to_string)).collect()
            } else {
                let t = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')).unwrap_or(t);
                t.split([',', '|', ';']).map(str::to_string).collect()
            }
        }
    };
    items.into_iter().map(|s| s.trim().trim_matches(['"', '\'']).trim().to_string()).filter(|s| !s.is_empty()).collect()
}

fn missing(raw: &RawRecord, required: &[&str]) -> Vec<String> {
    required.iter().filter(|f| raw.text(&[**f]).is_none()).map(|f| format!("missing required field `{f}`")).collect()
}

/// `di-{source}--{id}`; a data·inclusion id that already starts with `{source}--` (as they
/// usually do: `dora--42`) is not prefixed twice.
pub fn place_id(source: &str, id: &str) -> String {
    let own = id.strip_prefix(source).and_then(|rest| rest.strip_prefix("--")).unwrap_or(id);
    fields::safe_id(&format!("{ID_PREFIX}{source}--{own}"))
}

fn service_place_id(source: &str, id: &str) -> String {
    let id = place_id(source, id);
    let keep = 200 - SERVICE_ID_SUFFIX.len();
    format!("{}{SERVICE_ID_SUFFIX}", id.chars().take(keep).collect::<String>())
}

/// A structure or service that passed its checks.
struct Structure<'r> {
    index: usize,
    raw: &'r RawRecord,
    source: String,
    id: String,
}

struct Service<'r> {
    index: usize,
    raw: &'r RawRecord,
    id: String,
    needs: Vec<Need>,
    unmapped_themes: Vec<String>,
}

struct Importer<'a, 's> {
    places: Places<'a>,
    unmapped: BTreeMap<String, BTreeMap<String, usize>>,
    source: Option<&'s str>,
}

/// A place about to be made: where, and the services offered there.
struct Draft<'r, 'x> {
    index: usize,
    id: String,
    name: String,
    structure: &'x Structure<'r>,
    /// The record the address is read from: the structure, or the service.
    at: &'r RawRecord,
    services: Vec<&'x Service<'r>>,
    is_service_place: bool,
}

impl<'a> Importer<'a, '_> {
    fn unmapped(&mut self, field: &str, label: &str) {
        *self.unmapped.entry(field.to_string()).or_default().entry(label.to_string()).or_default() += 1;
    }

    fn run(mut self, entries: Entries) -> ParsedFile {
        let offset = entries.structures.len();
        let mut parsed =
            ParsedFile { received: entries.structures.len() + entries.services.len(), ..ParsedFile::default() };

        // Structures, by (source, id); a repeated one is superseded by the later.
        let mut structures: Vec<Structure<'_>> = Vec::new();
        let mut by_key: HashMap<(String, String), usize> = HashMap::new();
        let mut rejected_structures: HashSet<(String, String)> = HashSet::new();
        for (index, entry) in entries.structures.iter().enumerate() {
            let raw = match entry {
                Ok(raw) => raw,
                Err(e) => {
                    reject(&mut parsed, index, None, vec![format!("structure: {e}")]);
                    continue;
                }
            };
            let errors: Vec<String> =
                missing(raw, STRUCTURE_REQUIRED).into_iter().map(|e| format!("structure: {e}")).collect();
            let (Some(source), Some(id), true) = (raw.text(SOURCE), raw.text(ID), errors.is_empty()) else {
                if let (Some(source), Some(id)) = (raw.text(SOURCE), raw.text(ID)) {
                    rejected_structures.insert((source, id));
                }
                reject(&mut parsed, index, raw.text(ID), errors);
                continue;
            };
            if let Some(earlier) = by_key.insert((source.clone(), id.clone()), structures.len()) {
                let old = &structures[earlier];
                let errors = vec![format!("structure: duplicate id, superseded by record {index}")];
                reject(&mut parsed, old.index, Some(old.id.clone()), errors);
            }
            structures.push(Structure { index, raw, source, id });
        }

        // Services, each judged and attached to its structure.
        let mut services: Vec<(usize, Service<'_>)> = Vec::new();
        let mut seen_services: HashMap<(String, String), usize> = HashMap::new();
        let mut not_digital = 0usize;
        for (position, entry) in entries.services.iter().enumerate() {
            let index = offset + position;
            let raw = match entry {
                Ok(raw) => raw,
                Err(e) => {
                    reject(&mut parsed, index, None, vec![format!("service: {e}")]);
                    continue;
                }
            };
            let errors: Vec<String> =
                missing(raw, SERVICE_REQUIRED).into_iter().map(|e| format!("service: {e}")).collect();
            let (Some(source), Some(id), Some(structure_id), true) =
                (raw.text(SOURCE), raw.text(ID), raw.text(STRUCTURE_ID), errors.is_empty())
            else {
                reject(&mut parsed, index, raw.text(ID), errors);
                continue;
            };
            let themes = list(raw.value(THEMATIQUES).map(|(_, v)| v));
            if !themes.iter().any(|t| is_digital_theme(t)) {
                not_digital += 1;
                continue;
            }
            let key = (source.clone(), structure_id.clone());
            let Some(&structure) = by_key.get(&key) else {
                let errors = vec![if rejected_structures.contains(&key) {
                    format!("service: its structure '{structure_id}' is rejected")
                } else {
                    format!(
                        "service: `structure_id` '{structure_id}' (source '{source}') is not in the structures file"
                    )
                }];
                reject(&mut parsed, index, Some(id), errors);
                continue;
            };
            if let Some(earlier) = seen_services.insert((source.clone(), id.clone()), services.len()) {
                let old = &services[earlier].1;
                let errors = vec![format!("service: duplicate id, superseded by record {index}")];
                reject(&mut parsed, old.index, Some(old.id.clone()), errors);
                services[earlier].0 = usize::MAX;
            }
            let mut needs = Vec::new();
            let mut unmapped_themes = Vec::new();
            for theme in themes.iter().filter(|t| is_digital_theme(t)) {
                match theme_need(theme) {
                    Some(need) => needs.push(need),
                    None => unmapped_themes.push(theme.clone()),
                }
            }
            services.push((structure, Service { index, raw, id, needs: sorted(needs), unmapped_themes }));
        }
        if not_digital > 0 {
            parsed.skipped.insert("services_not_digital".into(), not_digital);
        }

        // Places: each structure with its digital services at its address, and each
        // digital service elsewhere on its own.
        let mut at_structure: Vec<Vec<&Service<'_>>> = structures.iter().map(|_| Vec::new()).collect();
        let mut elsewhere: Vec<(usize, &Service<'_>)> = Vec::new();
        for (structure, service) in services.iter().filter(|(s, _)| *s != usize::MAX) {
            for theme in &service.unmapped_themes {
                self.unmapped("thematiques", theme);
            }
            if has_own_address(service.raw, structures[*structure].raw) {
                elsewhere.push((*structure, service));
            } else {
                at_structure[*structure].push(service);
            }
        }
        let has_elsewhere: HashSet<usize> = elsewhere.iter().map(|(s, _)| *s).collect();
        let mut drafts = Vec::new();
        let mut without_digital = 0usize;
        for (i, structure) in structures.iter().enumerate() {
            if by_key.get(&(structure.source.clone(), structure.id.clone())) != Some(&i) {
                continue;
            }
            let here = std::mem::take(&mut at_structure[i]);
            if here.is_empty() {
                if !has_elsewhere.contains(&i) {
                    without_digital += 1;
                }
                continue;
            }
            let name = structure.raw.text(NAME).unwrap_or_default();
            drafts.push(Draft {
                index: structure.index,
                id: place_id(&structure.source, &structure.id),
                name,
                structure,
                at: structure.raw,
                services: here,
                is_service_place: false,
            });
        }
        if without_digital > 0 {
            parsed.skipped.insert("structures_without_digital_service".into(), without_digital);
        }
        for (s, service) in elsewhere {
            let structure = &structures[s];
            let own = service.raw.text(NAME).unwrap_or_default();
            let name = match structure.raw.text(NAME) {
                Some(of) if !fold(&of).contains(&fold(&own)) => format!("{of} – {own}"),
                _ => own,
            };
            drafts.push(Draft {
                index: service.index,
                id: service_place_id(&structure.source, &service.id),
                name,
                structure,
                at: service.raw,
                services: vec![service],
                is_service_place: true,
            });
        }
        drafts.sort_by_key(|d| d.index);

        for draft in drafts {
            let (index, id) = (draft.index, draft.id.clone());
            match self.place(&draft, &mut parsed) {
                Ok((record, warnings)) => {
                    parsed.warnings.extend(warnings.into_iter().map(|(field, message)| Warning {
                        index,
                        id: Some(id.clone()),
                        field,
                        message,
                    }));
                    parsed.records.push(record);
                }
                Err(errors) => reject(&mut parsed, index, Some(id), errors),
            }
        }
        parsed.rejected.sort_by_key(|r| r.index);
        parsed.probable_duplicates = duplicates::probable_duplicates(&parsed.records);
        parsed.unmapped_values = self.unmapped;
        parsed
    }

    fn place(
        &mut self,
        draft: &Draft<'_, '_>,
        parsed: &mut ParsedFile,
    ) -> Result<(ImportedRecord, FieldWarnings), Vec<String>> {
        let mut errors = Vec::new();
        let mut warnings: FieldWarnings = Vec::new();
        let structure = draft.structure.raw;

        let services = sorted(draft.services.iter().flat_map(|s| s.needs.iter().copied()).collect::<Vec<_>>());
        if services.is_empty() {
            let themes: Vec<String> =
                draft.services.iter().flat_map(|s| s.unmapped_themes.iter().map(|t| format!("'{t}'"))).collect();
            errors.push(format!("`thematiques`: no digital theme could be mapped: {}", themes.join(", ")));
        }

        let mut modes = Vec::new();
        let mut zones: Vec<String> = Vec::new();
        let mut fees = Vec::new();
        for service in &draft.services {
            let kind = service.raw.text(TYPE);
            for given in list(service.raw.value(MODES).map(|(_, v)| v)) {
                match mode(&given, kind.as_deref()) {
                    Some(m) => modes.push(m),
                    None => self.unmapped("modes_accueil", &given),
                }
            }
            for given in list(service.raw.value(FRAIS).map(|(_, v)| v)) {
                match fee(&given) {
                    Some(f) => push_new(&mut fees, f.to_string()),
                    None => self.unmapped("frais", &given),
                }
            }
            for code in list(service.raw.value(ZONE).map(|(_, v)| v)) {
                if !zones.contains(&code) {
                    zones.push(code);
                }
            }
        }
        let mut modes = sorted(modes);
        let defaulted_modes = modes.is_empty();
        if defaulted_modes {
            modes.push(StructureMode::Individual);
        }

        // The place's own hours; else, at a structure, the one value all its services share.
        let hours = if draft.is_service_place {
            draft.at.text(HOURS).or_else(|| structure.text(HOURS))
        } else {
            structure.text(HOURS).or_else(|| shared_hours(&draft.services))
        };
        let opening_hours = hours.and_then(|given| opening_hours("horaires_accueil", &given, &mut warnings));

        // The structure's public contact only: a service's courriel and telephone are
        // often a named agent's and are never read.
        let contact = fields::contact(
            structure.text(PHONE),
            structure.text(EMAIL),
            structure.text(WEBSITE),
            "courriel",
            &mut warnings,
        );

        let at = draft.at;
        let raw_place = RawPlace {
            latitude: at.text(LATITUDE),
            longitude: at.text(LONGITUDE),
            code_insee: at.text(CODE_INSEE),
            postcode: at.text(POSTCODE),
            commune: at.text(COMMUNE),
        };
        let placed = match self.places.locate(&raw_place) {
            Ok(p) => Some(p),
            Err(reason) => {
                errors.push(reason);
                None
            }
        };
        let (Some(placed), true) = (placed, errors.is_empty()) else {
            return Err(errors);
        };
        warnings.extend(placed.warnings.iter().map(|(f, m)| ((*f).to_string(), m.clone())));
        let street =
            at.text(STREET).map(|s| s.split_whitespace().collect::<Vec<_>>().join(" ")).filter(|s| !s.is_empty());
        let address = placed.address(street, at.text(STREET_MORE), &raw_place);

        let mut name = draft.name.split_whitespace().collect::<Vec<_>>().join(" ");
        if name.chars().count() > MAX_NAME_CHARS {
            warnings.push(("nom".into(), format!("name longer than {MAX_NAME_CHARS} characters; shortened")));
            name = name.chars().take(MAX_NAME_CHARS).collect();
        }
        let source =
            self.source.map(str::to_string).unwrap_or_else(|| format!("data-inclusion/{}", draft.structure.source));
        let pivot = if draft.is_service_place {
            None
        } else {
            structure.text(SIRET).filter(|p| !p.chars().all(|c| c == '0' || c.is_whitespace()))
        };
        let updated_on = draft.at.text(DATE).and_then(|d| fields::date(&d));

        if !zones.is_empty() {
            parsed.eligibility_zones.insert(draft.id.clone(), zones);
        }
        parsed.defaulted_modes += usize::from(defaulted_modes);
        parsed.located_by_commune += usize::from(placed.by_commune);
        let record = ImportedRecord {
            index: draft.index,
            id: draft.id.clone(),
            name,
            services,
            modes,
            languages: vec![Language::french()],
            other_languages: false,
            accessibility: Vec::new(),
            address,
            location: Point { lat: placed.location.lat, lon: placed.location.lon },
            territory: placed.territory.clone(),
            opening_hours,
            contact,
            fees,
            labels: Vec::new(),
            source: Some(source),
            pivot,
            updated_on,
        };
        Ok((record, warnings))
    }
}

/// Warnings of one record: field, message.
type FieldWarnings = Vec<(String, String)>;

fn reject(parsed: &mut ParsedFile, index: usize, id: Option<String>, errors: Vec<String>) {
    parsed.rejected.push(Rejection { index, id, errors });
}

/// The hours every one of these services gives, when they all give the same.
fn shared_hours(services: &[&Service<'_>]) -> Option<String> {
    let given: Vec<String> = services.iter().filter_map(|s| s.raw.text(HOURS)).collect();
    let (first, rest) = given.split_first()?;
    (given.len() == services.len() && rest.iter().all(|h| h == first)).then(|| first.clone())
}

/// Whether a service gives an address that is not its structure's: another street, another
/// commune, or coordinates more than 200 m away. A service that gives no address is at its
/// structure.
fn has_own_address(service: &RawRecord, structure: &RawRecord) -> bool {
    let street = |r: &RawRecord| r.text(STREET).map(|s| fold(&s)).filter(|s| !s.is_empty());
    let code = |r: &RawRecord| r.text(CODE_INSEE).map(|c| place::clean_code(&c)).filter(|c| !c.is_empty());
    let postcode = |r: &RawRecord| r.text(POSTCODE).map(|c| place::clean_postcode(&c)).filter(|c| !c.is_empty());
    let point = |r: &RawRecord| {
        let lat = r.text(LATITUDE).and_then(|v| fields::coordinate(&v))?;
        let lon = r.text(LONGITUDE).and_then(|v| fields::coordinate(&v))?;
        geo::LatLon::new(lat, lon)
    };
    let differ = |a: Option<String>, b: Option<String>| matches!((a, b), (Some(a), Some(b)) if a != b);
    let own_street = street(service);
    if own_street.is_some() && street(structure).is_none() {
        return true;
    }
    if differ(own_street, street(structure))
        || differ(code(service), code(structure))
        || differ(postcode(service), postcode(structure))
    {
        return true;
    }
    match (point(service), point(structure)) {
        (Some(a), Some(b)) => geo::distance_km(a, b) > SAME_PLACE_KM,
        _ => false,
    }
}
