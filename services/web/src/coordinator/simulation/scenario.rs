//! What the form holds, and what it asks of the API: the period, the places per week
//! typed for each structure, the structures closed, and the new places kept in hidden
//! fields; the changes sent (only the structures that change), and the API's refusals
//! brought back beside the fields they came from.

use std::collections::{HashMap, HashSet};

use contracts::directory::StructureView;
use contracts::simulation::{NewStructure, SimulationChange};
use contracts::{Need, Territory};

use crate::form;

/// The API's bound on the changes of one simulation.
const MAX_CHANGES: usize = 50;
/// The API's bound on a place's places per week.
const MAX_PLACES: i64 = 10_000;

const CAPACITY_MESSAGE: &str = "Indiquez un nombre entier de places par semaine, de 0 à 10 000.";
pub const FORM_MESSAGE: &str = "La simulation n'a pas pu être lancée. Vérifiez le formulaire.";

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
                "ajouter" => d.action = Action::Add,
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

    #[test]
    fn places_are_read_as_people_type_them() {
        assert_eq!(whole(" 12 "), Some(12));
        assert_eq!(whole("1 000"), Some(1000));
        assert_eq!(whole("-3"), Some(-3));
        assert_eq!(whole("huit"), None);
        assert_eq!(whole(""), None);
    }
}
