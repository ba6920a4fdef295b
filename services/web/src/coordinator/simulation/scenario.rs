//! What the form holds, and what it asks of the API: the period, the places per week
//! typed for each structure, the structures closed, and the new places kept in hidden
//! fields; the changes sent (only the structures that change), and the API's refusals
//! brought back beside the fields they came from. A saved scenario's request comes back
//! into the same form ([`Draft::from_request`]), so that running it again is filling the
//! form and pressing "Simuler".

use std::collections::{HashMap, HashSet};

use contracts::directory::StructureView;
use contracts::simulation::{NewStructure, SimulationChange, SimulationRequest};
use contracts::{Need, Territory};

use crate::form;

/// The API's bound on the changes of one simulation.
const MAX_CHANGES: usize = 50;
/// The API's bound on a place's places per week.
const MAX_PLACES: i64 = 10_000;

/// The API's bound on a saved scenario's name, in characters.
const MAX_NAME: usize = 120;

const CAPACITY_MESSAGE: &str = "Indiquez un nombre entier de places par semaine, de 0 à 10 000.";
pub const FORM_MESSAGE: &str = "La simulation n'a pas pu être lancée. Vérifiez le formulaire.";
pub const SAVE_MESSAGE: &str = "Le scénario n'a pas pu être enregistré. Vérifiez le formulaire.";
pub const NAME_MESSAGE: &str = "Indiquez le nom du scénario, par exemple « Mansle ouvre le mardi ».";
pub const NAME_LENGTH_MESSAGE: &str = "Le nom du scénario compte au plus 120 caractères : raccourcissez-le.";

/// Which button sent the form.
#[derive(Default, Clone, Copy, PartialEq)]
pub enum Action {
    /// "Simuler", or the Enter key.
    #[default]
    Simulate,
    /// "Ajouter un lieu".
    Add,
    /// "Retirer" beside the new place at this position.
    Remove(usize),
    /// "Enregistrer le scénario", under the name typed.
    Save,
    /// "Rejouer" beside the saved scenario of this id.
    Replay(uuid::Uuid),
}

/// A place the scenario adds, as its hidden field keeps it between two posts.
#[derive(Clone, Debug, PartialEq)]
pub struct NewPlace {
    pub commune_code: String,
    pub weekly_capacity: i64,
    /// Need slugs.
    pub services: Vec<String>,
    pub name: String,
}

impl NewPlace {
    /// `16206|8|aide_demarches_administratives,maitrise_outils_numeriques|Permanence`:
    /// the name last, as it may hold a `|`.
    pub fn encode(&self) -> String {
        format!("{}|{}|{}|{}", self.commune_code, self.weekly_capacity, self.services.join(","), self.name)
    }

    fn decode(raw: &str) -> Option<Self> {
        let mut parts = raw.splitn(4, '|');
        let commune_code = parts.next()?.trim().to_string();
        let weekly_capacity = parts.next()?.trim().parse().ok()?;
        let services = parts.next()?.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
        let name = parts.next()?.trim().to_string();
        Some(Self { commune_code, weekly_capacity, services, name })
    }
}

/// What the form holds, as typed: it comes back with the errors and with the results.
#[derive(Default)]
pub struct Draft {
    pub departement: String,
    pub from: String,
    pub to: String,
    /// Structure id → the places per week typed for it.
    pub capacities: HashMap<String, String>,
    /// The structures ticked "Fermé".
    pub closed: HashSet<String>,
    /// The places added so far.
    pub places: Vec<NewPlace>,
    /// The new place being typed.
    pub commune: String,
    pub name: String,
    pub services: Vec<String>,
    pub capacity: String,
    /// "Nom du scénario", as typed.
    pub scenario_name: String,
    pub action: Action,
}

impl Draft {
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut d = Draft::default();
        for (k, v) in pairs {
            if let Some(id) = k.strip_prefix("capacite:") {
                d.capacities.insert(id.to_string(), v);
                continue;
            }
            if let Some(id) = k.strip_prefix("ferme:") {
                d.closed.insert(id.to_string());
                continue;
            }
            match k.as_str() {
                "departement" => d.departement = v,
                "du" => d.from = v,
                "au" => d.to = v,
                "nouveau" => {
                    if d.places.len() < MAX_CHANGES
                        && let Some(place) = NewPlace::decode(&v)
                    {
                        d.places.push(place);
                    }
                }
                "commune_nouveau" => d.commune = v,
                "nom_nouveau" => d.name = v,
                "services_nouveau" => d.services.push(v),
                "capacite_nouveau" => d.capacity = v,
                "nom_scenario" => d.scenario_name = v,
                "ajouter" => d.action = Action::Add,
                "enregistrer" => d.action = Action::Save,
                "rejouer" => {
                    if let Ok(id) = v.trim().parse() {
                        d.action = Action::Replay(id);
                    }
                }
                "retirer" => {
                    if let Ok(i) = v.trim().parse() {
                        d.action = Action::Remove(i);
                    }
                }
                _ => {}
            }
        }
        d
    }

    /// A saved scenario's request as the form holds it: its period, the places per week
    /// and the closings of the territory's `structures`, and its new places. Also the
    /// number of its changes left out: those of a structure the table no longer lists.
    pub fn from_request(request: &SimulationRequest, departement: &str, structures: &[StructureView]) -> (Self, usize) {
        let listed: HashSet<&str> = structures.iter().map(|s| s.id.as_str()).collect();
        let mut d = Draft {
            departement: departement.to_string(),
            from: request.from.clone().unwrap_or_default(),
            to: request.to.clone().unwrap_or_default(),
            ..Draft::default()
        };
        let mut left_out = 0;
        for change in &request.changes {
            if let Some(new) = &change.new_structure {
                let place = NewPlace {
                    commune_code: new.commune_code.clone().unwrap_or_default(),
                    weekly_capacity: new.weekly_capacity.unwrap_or_default(),
                    services: new.services.clone().unwrap_or_default(),
                    name: new.name.as_deref().and_then(form::text).unwrap_or_else(|| "Nouveau lieu".to_string()),
                };
                if d.places.len() < MAX_CHANGES {
                    d.places.push(place);
                } else {
                    left_out += 1;
                }
                continue;
            }
            let Some(id) = change.structure_id.as_deref().filter(|id| listed.contains(id)) else {
                left_out += 1;
                continue;
            };
            if change.closed == Some(true) {
                d.closed.insert(id.to_string());
            } else if let Some(n) = change.weekly_capacity {
                d.capacities.insert(id.to_string(), n.to_string());
            }
        }
        (d, left_out)
    }
}

/// A scenario's name as the API keeps it: the white space of a paste (tabs, line breaks)
/// made single spaces, 1 to 120 characters; else what to say beside the field.
pub fn scenario_name(raw: &str) -> Result<String, &'static str> {
    let spaced: String = raw.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let name = spaced.split_whitespace().collect::<Vec<_>>().join(" ");
    match name.chars().count() {
        0 => Err(NAME_MESSAGE),
        n if n > MAX_NAME => Err(NAME_LENGTH_MESSAGE),
        _ => Ok(name),
    }
}

/// A structure of the territory, as its line of the table shows it.
pub struct Row {
    /// Its position in the table: its fields' ids (`lieu-3-capacite`).
    pub index: usize,
    pub id: String,
    pub name: String,
    pub commune: String,
    /// Its places per week today.
    pub current: u32,
    /// As typed, or today's.
    pub capacity: String,
    pub closed: bool,
    pub accepting: bool,
    pub error: Option<String>,
}

impl Row {
    pub fn field(&self) -> String {
        format!("lieu-{}-capacite", self.index)
    }
}

pub fn place_field(index: usize) -> String {
    format!("nouveau-{index}")
}

/// The new place typed, checked and added to the scenario; its fields emptied for the
/// next one. `pending`: the changes the scenario already holds.
pub fn add(
    d: &mut Draft,
    territory: &Territory,
    pending: usize,
    errors: &mut HashMap<String, String>,
) -> Option<String> {
    let commune = match form::commune(&d.commune, "Indiquez la commune du nouveau lieu : son nom ou son code postal.") {
        Ok(code) => match geo::communes().by_code(&code) {
            Some(c) if c.departement == territory.as_str() => Some(c),
            Some(c) => {
                errors.insert(
                    "commune_nouveau".into(),
                    format!(
                        "{} n'est pas dans le département simulé ({territory}) : choisissez une de ses communes.",
                        c.name
                    ),
                );
                None
            }
            None => {
                errors.insert("commune_nouveau".into(), "Cette commune n'est pas connue.".into());
                None
            }
        },
        Err(message) => {
            errors.insert("commune_nouveau".into(), message);
            None
        }
    };
    let capacity = whole(&d.capacity).filter(|n| (0..=MAX_PLACES).contains(n));
    if capacity.is_none() {
        errors.insert("capacite_nouveau".into(), CAPACITY_MESSAGE.into());
    }
    let services: Vec<String> =
        Need::ALL.iter().map(|n| n.slug()).filter(|s| d.services.iter().any(|c| c == s)).map(str::to_string).collect();
    if services.is_empty() {
        errors.insert("services_nouveau".into(), "Cochez au moins un service du nouveau lieu.".into());
    }
    if pending + 1 > MAX_CHANGES {
        errors.insert(
            "commune_nouveau".into(),
            format!("Une simulation compte au plus {MAX_CHANGES} changements : retirez-en un avant d'ajouter un lieu."),
        );
    }
    let (Some(commune), Some(weekly_capacity)) = (commune, capacity) else { return None };
    if !errors.is_empty() {
        return None;
    }
    let name: String =
        form::text(&d.name).unwrap_or_else(|| format!("Nouveau lieu à {}", commune.name)).chars().take(200).collect();
    let notice = format!(
        "Lieu ajouté au scénario : {name}, à {}. Ajoutez-en d'autres, ou cliquez sur « Simuler ».",
        commune.name
    );
    d.places.push(NewPlace { commune_code: commune.code.clone(), weekly_capacity, services, name });
    d.commune.clear();
    d.name.clear();
    d.capacity.clear();
    d.services.clear();
    Some(notice)
}

/// A whole number as people type it: "8", " 12 ", "1 000".
fn whole(raw: &str) -> Option<i64> {
    // Unicode's white space includes the no-break spaces of "1 000".
    let digits: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    digits.parse().ok()
}

pub fn rows(structures: &[StructureView], d: &Draft) -> Vec<Row> {
    structures
        .iter()
        .enumerate()
        .map(|(index, s)| Row {
            index,
            id: s.id.as_str().to_string(),
            name: s.name.clone(),
            commune: s.address.commune.clone().unwrap_or_default(),
            current: s.weekly_capacity,
            capacity: d.capacities.get(s.id.as_str()).cloned().unwrap_or_else(|| s.weekly_capacity.to_string()),
            closed: d.closed.contains(s.id.as_str()),
            accepting: s.accepting,
            error: None,
        })
        .collect()
}

/// Where a change of the request came from in the form: where its errors go.
#[derive(Clone, Copy)]
pub enum Target {
    /// The structure at this line of the table.
    Structure(usize),
    /// The new place at this position of the list.
    Place(usize),
}

/// The changes the form asks for, in the API's terms, each with the line it came from.
/// Structures whose places were left as they are, and not closed, are not sent. Places
/// that are not a whole number are errors beside their field; the API says which
/// numbers it takes.
pub fn changes(
    rows: &[Row],
    places: &[NewPlace],
    errors: &mut HashMap<String, String>,
) -> Vec<(Target, SimulationChange)> {
    let mut changes = Vec::new();
    for row in rows {
        if row.closed {
            let change =
                SimulationChange { structure_id: Some(row.id.clone()), closed: Some(true), ..Default::default() };
            changes.push((Target::Structure(row.index), change));
            continue;
        }
        match whole(&row.capacity) {
            Some(n) if n == i64::from(row.current) => {}
            Some(n) => {
                let change = SimulationChange {
                    structure_id: Some(row.id.clone()),
                    weekly_capacity: Some(n),
                    ..Default::default()
                };
                changes.push((Target::Structure(row.index), change));
            }
            None => {
                errors.insert(row.field(), CAPACITY_MESSAGE.into());
            }
        }
    }
    for (i, p) in places.iter().enumerate() {
        let new = NewStructure {
            name: Some(p.name.clone()),
            commune_code: Some(p.commune_code.clone()),
            services: Some(p.services.clone()),
            modes: None,
            languages: None,
            weekly_capacity: Some(p.weekly_capacity),
        };
        changes.push((Target::Place(i), SimulationChange { new_structure: Some(new), ..Default::default() }));
    }
    changes
}

/// The API's field (`to`, `changes[3].weekly_capacity`,
/// `changes[0].new_structure.commune_code`) as the form's, with what to say there.
pub fn api_field(field: &str, targets: &[Target]) -> (String, &'static str) {
    if let Some(rest) = field.strip_prefix("changes[")
        && let Some((index, tail)) = rest.split_once(']')
        && let Some(target) = index.parse::<usize>().ok().and_then(|i| targets.get(i))
    {
        // `new_structure.services[1]` is about the services as a whole.
        let tail = tail.trim_start_matches('.');
        let tail = tail.split('[').next().unwrap_or(tail);
        let message = match tail {
            "weekly_capacity" | "new_structure.weekly_capacity" => CAPACITY_MESSAGE,
            "structure_id" => "Ce lieu n'est pas encore connu de la simulation : réessayez dans quelques minutes.",
            "new_structure.commune_code" => "Cette commune n'est pas dans le département simulé.",
            "new_structure.services" => "Un service de ce lieu n'est pas reconnu : retirez-le et ajoutez-le à nouveau.",
            _ => FORM_MESSAGE,
        };
        let field = match target {
            Target::Structure(row) => format!("lieu-{row}-capacite"),
            Target::Place(i) => place_field(*i),
        };
        return (field, message);
    }
    match field {
        "territory" => ("departement".into(), "Choisissez un département de la liste."),
        "from" => ("du".into(), "Indiquez le premier jour de la période, au format jj/mm/aaaa."),
        // The page checks the order of the dates itself: the API's refusal is the length.
        "to" => ("au".into(), "La période compte au plus 366 jours : rapprochez le dernier jour du premier."),
        "changes" => ("form".into(), "Une simulation compte au plus 50 changements : retirez-en quelques-uns."),
        _ => ("form".into(), FORM_MESSAGE),
    }
}

/// A refusal of a scenario to save: `name`, or the request's field (`request.to`,
/// `request.changes[3].weekly_capacity`) beside the form's field as "Simuler" puts it.
/// What is about the whole form goes beside "Enregistrer le scénario".
pub fn api_save_field(field: &str, targets: &[Target]) -> (String, &'static str) {
    if field == "name" {
        return (
            "nom_scenario".into(),
            "Ce nom n'est pas accepté : de 1 à 120 caractères, sans retour à la ligne ni tabulation.",
        );
    }
    match field.strip_prefix("request.").map(|f| api_field(f, targets)) {
        Some((field, message)) if field != "form" => (field, message),
        Some((_, message)) if message != FORM_MESSAGE => (SAVE_FIELD.into(), message),
        _ => (SAVE_FIELD.into(), SAVE_MESSAGE),
    }
}

/// Where what is about the whole scenario saved is said: beside its button.
pub const SAVE_FIELD: &str = "enregistrer";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_place_survives_its_hidden_field_name_and_all() {
        let place = NewPlace {
            commune_code: "16206".into(),
            weekly_capacity: 8,
            services: vec!["aide_demarches_administratives".into(), "maitrise_outils_numeriques".into()],
            name: "Permanence | Mansle".into(),
        };
        assert_eq!(NewPlace::decode(&place.encode()), Some(place));
        assert_eq!(NewPlace::decode("16206|huit||x"), None);
        assert_eq!(NewPlace::decode("16206|8"), None);
    }

    #[test]
    fn only_the_structures_changed_or_closed_are_sent() {
        let row = |index: usize, capacity: &str, closed: bool| Row {
            index,
            id: format!("lieu-{index}"),
            name: format!("Lieu {index}"),
            commune: String::new(),
            current: 5,
            capacity: capacity.into(),
            closed,
            accepting: true,
            error: None,
        };
        let rows =
            [row(0, "5", false), row(1, " 8 ", false), row(2, "5", true), row(3, "huit", false), row(4, "-3", false)];
        let mut errors = HashMap::new();
        let sent = changes(&rows, &[], &mut errors);
        let ids: Vec<_> =
            sent.iter().map(|(_, c)| (c.structure_id.clone().unwrap(), c.weekly_capacity, c.closed)).collect();
        assert_eq!(
            ids,
            [
                ("lieu-1".to_string(), Some(8), None),
                ("lieu-2".to_string(), None, Some(true)),
                ("lieu-4".into(), Some(-3), None)
            ]
        );
        // Not a number: beside its field; a negative one is the API's to refuse.
        assert_eq!(errors.keys().collect::<Vec<_>>(), ["lieu-3-capacite"]);
    }

    #[test]
    fn the_api_s_fields_land_beside_the_line_they_came_from() {
        let targets = [Target::Structure(4), Target::Place(0), Target::Structure(7)];
        assert_eq!(api_field("changes[0].weekly_capacity", &targets), ("lieu-4-capacite".into(), CAPACITY_MESSAGE));
        assert_eq!(api_field("changes[2].structure_id", &targets).0, "lieu-7-capacite");
        let (field, message) = api_field("changes[1].new_structure.commune_code", &targets);
        assert_eq!(field, "nouveau-0");
        assert!(message.contains("département"));
        assert_eq!(api_field("changes[1].new_structure.services[2]", &targets).0, "nouveau-0");
        assert_eq!(api_field("to", &targets).0, "au");
        assert_eq!(api_field("from", &targets).0, "du");
        assert_eq!(api_field("changes", &targets).0, "form");
        // An index the page did not send: said under the form.
        assert_eq!(api_field("changes[9].weekly_capacity", &targets).0, "form");
    }

    fn structure(id: &str, weekly_capacity: u32) -> StructureView {
        use contracts::events::{Address, Point, Structure, StructureContact};
        StructureView::from(Structure {
            id: id.parse().unwrap(),
            name: format!("Lieu {id}"),
            services: vec![Need::AideDemarchesAdministratives],
            modes: vec![],
            languages: vec![],
            other_languages: false,
            accessibility: vec![],
            address: Address { street: None, postcode: None, commune: None, commune_code: Some("16015".into()) },
            location: Point { lat: 45.6, lon: 0.15 },
            territory: "16".parse().unwrap(),
            opening_hours: None,
            weekly_capacity,
            accepting: true,
            contact: StructureContact { phone: None, email: None, website: None },
            source: None,
            fees: vec![],
            labels: vec![],
            siret: None,
            updated_at: chrono::Utc::now(),
        })
    }

    /// The request "Simuler" would send for `d`.
    fn sent(structures: &[StructureView], d: &Draft) -> SimulationRequest {
        let mut errors = HashMap::new();
        let changes = changes(&rows(structures, d), &d.places, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        SimulationRequest {
            territory: Some(d.departement.clone()),
            from: Some(d.from.clone()),
            to: Some(d.to.clone()),
            seed: None,
            changes: changes.into_iter().map(|(_, c)| c).collect(),
        }
    }

    #[test]
    fn a_saved_request_comes_back_into_the_form_as_it_was_sent() {
        let structures = [structure("alpha", 1), structure("cognac", 3), structure("mansle", 2)];
        let typed = Draft::from_pairs(
            [
                ("departement", "16"),
                ("du", "2026-09-01"),
                ("au", "2026-11-30"),
                ("capacite:alpha", " 4 "),
                ("capacite:mansle", "2"),
                ("ferme:cognac", "oui"),
                ("nouveau", "16015|2|aide_demarches_administratives|Permanence | gare"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .to_vec(),
        );
        let request = sent(&structures, &typed);
        let (loaded, left_out) = Draft::from_request(&request, "16", &structures);
        assert_eq!(left_out, 0);
        assert_eq!(
            (loaded.departement.as_str(), loaded.from.as_str(), loaded.to.as_str()),
            ("16", "2026-09-01", "2026-11-30")
        );
        // Alpha's 4 as a number; Mansle left as it is, as it was not sent.
        assert_eq!(loaded.capacities, HashMap::from([("alpha".to_string(), "4".to_string())]));
        assert_eq!(loaded.closed, HashSet::from(["cognac".to_string()]));
        assert_eq!(loaded.places, typed.places);
        let again = sent(&structures, &loaded);
        assert_eq!(serde_json::to_value(&again).unwrap(), serde_json::to_value(&request).unwrap());
    }

    #[test]
    fn a_saved_request_keeps_what_the_form_can_hold() {
        let structures = [structure("alpha", 1)];
        let request = SimulationRequest {
            territory: Some("16".into()),
            from: Some("2026-09-01".into()),
            to: Some("2026-09-30".into()),
            seed: Some(7),
            changes: vec![
                SimulationChange {
                    structure_id: Some("alpha".into()),
                    weekly_capacity: Some(6),
                    closed: Some(false),
                    ..Default::default()
                },
                // A place gone from the directory since.
                SimulationChange { structure_id: Some("parti".into()), closed: Some(true), ..Default::default() },
                SimulationChange {
                    new_structure: Some(NewStructure {
                        name: None,
                        commune_code: Some("16206".into()),
                        services: Some(vec!["maitrise_outils_numeriques".into()]),
                        modes: None,
                        languages: None,
                        weekly_capacity: Some(3),
                    }),
                    ..Default::default()
                },
            ],
        };
        let (d, left_out) = Draft::from_request(&request, "16", &structures);
        assert_eq!(left_out, 1);
        assert_eq!(d.capacities.get("alpha").map(String::as_str), Some("6"));
        assert!(d.closed.is_empty());
        assert_eq!(
            d.places,
            [NewPlace {
                commune_code: "16206".into(),
                weekly_capacity: 3,
                services: vec!["maitrise_outils_numeriques".into()],
                name: "Nouveau lieu".into()
            }]
        );
        assert!(d.action == Action::Simulate);
    }

    #[test]
    fn the_buttons_and_the_name_are_read_from_the_form() {
        let read = |pairs: &[(&str, &str)]| {
            Draft::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
        };
        let d = read(&[("nom_scenario", "Mansle"), ("enregistrer", "1")]);
        assert!(d.action == Action::Save);
        assert_eq!(d.scenario_name, "Mansle");
        let id = uuid::Uuid::now_v7();
        assert!(read(&[("rejouer", &id.to_string())]).action == Action::Replay(id));
        assert!(read(&[("rejouer", "pas-un-id")]).action == Action::Simulate);
    }

    #[test]
    fn a_scenario_s_name_is_what_the_api_keeps() {
        assert_eq!(scenario_name("  Mansle\tle  mardi \n").as_deref(), Ok("Mansle le mardi"));
        assert_eq!(scenario_name(""), Err(NAME_MESSAGE));
        assert_eq!(scenario_name(" \t "), Err(NAME_MESSAGE));
        assert_eq!(scenario_name(&"é".repeat(120)).map(|n| n.chars().count()), Ok(120));
        assert_eq!(scenario_name(&"é".repeat(121)), Err(NAME_LENGTH_MESSAGE));
    }

    #[test]
    fn a_refused_scenario_s_fields_land_where_simuler_puts_them() {
        let targets = [Target::Structure(4), Target::Place(0)];
        assert_eq!(api_save_field("name", &targets).0, "nom_scenario");
        assert_eq!(api_save_field("request.to", &targets).0, "au");
        assert_eq!(api_save_field("request.from", &targets).0, "du");
        assert_eq!(
            api_save_field("request.changes[0].weekly_capacity", &targets),
            ("lieu-4-capacite".into(), CAPACITY_MESSAGE)
        );
        assert_eq!(api_save_field("request.changes[1].new_structure.commune_code", &targets).0, "nouveau-0");
        let (field, message) = api_save_field("request.changes", &targets);
        assert_eq!(field, SAVE_FIELD);
        assert!(message.contains("50 changements"));
        assert_eq!(api_save_field("request", &targets), (SAVE_FIELD.into(), SAVE_MESSAGE));
        assert_eq!(api_save_field("request.seed", &targets), (SAVE_FIELD.into(), SAVE_MESSAGE));
    }

    #[test]
    fn places_are_read_as_people_type_them() {
        assert_eq!(whole(" 12 "), Some(12));
        assert_eq!(whole("1 000"), Some(1000));
        assert_eq!(whole("-3"), Some(-3));
        assert_eq!(whole("huit"), None);
        assert_eq!(whole(""), None);
    }
}
