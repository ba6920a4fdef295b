//! `/territoire/simulation`: what if. The coordinator picks a past period, changes the
//! places per week of the territory's structures, closes some, adds new ones at a
//! commune, and the API replays the period's referrals as things were and with the
//! changes (`POST /api/v1/simulations`). The whole scenario is one form posted back to
//! this page, so that it works without JavaScript: "Ajouter un lieu" keeps each new place
//! in a hidden field and shows the form again, "Simuler" shows the results under it.
//! "Enregistrer le scénario" keeps the request "Simuler" would send under a name for the
//! territory (`POST /api/v1/simulations/scenarios`); the list "Scénarios enregistrés"
//! under the form has a small form per scenario whose "Rejouer" loads its request into
//! the form and simulates it.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Datelike, NaiveDate, Utc};
use contracts::directory::StructureView;
use contracts::simulation::{SaveScenario, SavedScenario, SimulationRequest};
use contracts::{Need, Role, Territory};

use crate::api::ApiFailure;
use crate::error::PageError;
use crate::extract::{Agent, Coordinators, CsrfForm, SignedIn};
use crate::views::{Chrome, commune_name, paris, render};
use scenario::{
    Action, Draft, FORM_MESSAGE, Row, SAVE_FIELD, SAVE_MESSAGE, Target, add, api_field, api_save_field, changes,
    place_field, rows, scenario_name,
};

mod results;
mod scenario;

/// Pages of 100 structures read at most: a département has a few hundred places, and a
/// form of thousands of fields would be of no use.
const MAX_PAGES: usize = 20;

/// A place the scenario adds, as the list shows it.
pub struct PlaceLine {
    pub index: usize,
    /// Its hidden field's value.
    pub hidden: String,
    pub name: String,
    pub commune: String,
    pub capacity: i64,
    pub services: String,
    pub error: Option<String>,
}

/// A saved scenario, as the list "Scénarios enregistrés" shows it.
pub struct SavedLine {
    pub id: String,
    pub name: String,
    /// "03/12/2026 à 14:05", in Paris.
    pub saved_at: String,
    /// "du 01/09/2026 au 30/11/2026".
    pub period: String,
    /// "3 changements".
    pub changes: String,
}

impl SavedLine {
    fn of(s: &SavedScenario) -> Self {
        let day = |d: &Option<String>| {
            let raw = d.clone().unwrap_or_default();
            NaiveDate::parse_from_str(&raw, "%Y-%m-%d").map_or(raw, |d| d.format("%d/%m/%Y").to_string())
        };
        let changes = match s.request.changes.len() {
            0 => "aucun changement".to_string(),
            1 => "1 changement".to_string(),
            n => format!("{n} changements"),
        };
        SavedLine {
            id: s.id.to_string(),
            name: s.name.clone(),
            saved_at: paris(&s.saved_at),
            period: format!("du {} au {}", day(&s.request.from), day(&s.request.to)),
            changes,
        }
    }
}

/// What the list of saved scenarios says above it.
pub struct Notice {
    pub text: String,
    /// A scenario gone from the list, rather than one saved.
    pub warning: bool,
}

pub struct Choice {
    pub value: &'static str,
    pub label: &'static str,
    pub checked: bool,
}

#[derive(askama::Template)]
#[template(path = "simulation.html")]
struct SimulationView {
    chrome: Chrome,
    csrf: String,
    /// (code, "Charente (16)"): the départements the agent may choose, when more than one.
    departements: Vec<(String, String)>,
    /// The département simulated (its code, empty until an admin chooses one), in words.
    chosen: String,
    territory_name: String,
    from: String,
    to: String,
    rows: Vec<Row>,
    /// The territory has more places than the table lists.
    truncated: bool,
    places: Vec<PlaceLine>,
    commune: String,
    new_name: String,
    capacity: String,
    services: Vec<Choice>,
    /// Field → French message, shown beside it.
    errors: HashMap<String, String>,
    /// (anchor, message), in the order of the form.
    summary: Vec<(String, String)>,
    /// What "Ajouter un lieu" or "Retirer" did.
    notice: Option<String>,
    /// What the error summary says was not done.
    refused: &'static str,
    /// "Nom du scénario", as typed.
    scenario_name: String,
    /// The territory's saved scenarios, newest first; `None` when the API refuses to list
    /// them to this agent.
    saved: Option<Vec<SavedLine>>,
    /// What "Enregistrer le scénario" or "Rejouer" did, above the list.
    saved_notice: Option<Notice>,
    /// The saved scenario the results are of, and what of it the form could not hold.
    replayed: Option<String>,
    results: Option<results::Results>,
}

impl SimulationView {
    fn error(&self, field: &str) -> Option<&String> {
        self.errors.get(field)
    }
}

/// What the page shows, before it is laid out.
struct Shown {
    d: Draft,
    territory: Option<Territory>,
    structures: Listed,
    errors: HashMap<String, String>,
    notice: Option<String>,
    results: Option<results::Results>,
    /// The territory's saved scenarios; `None` when the API refuses to list them.
    saved: Option<Vec<SavedScenario>>,
    saved_notice: Option<Notice>,
    replayed: Option<String>,
    /// "Enregistrer le scénario" sent the form: what is about the whole form goes beside it.
    saving: bool,
}

impl Shown {
    fn new(d: Draft, territory: Option<Territory>, structures: Listed, errors: HashMap<String, String>) -> Self {
        Shown {
            d,
            territory,
            structures,
            errors,
            notice: None,
            results: None,
            saved: Some(Vec::new()),
            saved_notice: None,
            replayed: None,
            saving: false,
        }
    }
}

/// The territory's saved scenarios, newest first; `None` when the API says the agent may
/// not see them (403: a coordinator of another territory).
async fn saved(agent: &Agent, territory: &Territory) -> Result<Option<Vec<SavedScenario>>, PageError> {
    match agent.api.scenarios(territory).await {
        Ok(list) => Ok(Some(list)),
        Err(failure) if failure.status() == Some(StatusCode::FORBIDDEN) => Ok(None),
        Err(failure) => Err(failure.into()),
    }
}

/// The territory's structures, by name.
#[derive(Default)]
struct Listed {
    structures: Vec<StructureView>,
    truncated: bool,
}

async fn listed(agent: &Agent, territory: &Territory) -> Result<Listed, ApiFailure> {
    let mut structures = Vec::new();
    let mut cursor: Option<String> = None;
    let mut truncated = true;
    for _ in 0..MAX_PAGES {
        let page = agent.api.structures(Some(territory), cursor.as_deref()).await?;
        structures.extend(page.items);
        cursor = page.next_cursor;
        if cursor.is_none() {
            truncated = false;
            break;
        }
    }
    structures.sort_by_cached_key(|s| geo::normalize_name(&s.name));
    Ok(Listed { structures, truncated })
}

/// The départements the agent may simulate: a coordinator's own, every one for an admin.
fn territories(agent: &Agent) -> Vec<(String, String)> {
    let communes = geo::communes();
    let name =
        |code: &str| communes.departement(code).map_or_else(|| code.to_string(), |d| format!("{} ({code})", d.name));
    match agent.active.as_ref() {
        Some(m) if m.role == Role::Admin => {
            let mut all: Vec<(String, String)> =
                communes.departements().map(|d| (d.code.clone(), format!("{} ({})", d.name, d.code))).collect();
            all.sort();
            all
        }
        Some(m) => m.territories.iter().map(|t| (t.to_string(), name(t.as_str()))).collect(),
        None => Vec::new(),
    }
}

/// The département asked for, if the agent may simulate it; a coordinator's first one
/// when none is asked for, while an admin chooses. Another coordinator's département is
/// a page that does not exist, as the API answers; a code that is not in the list of
/// several is an error beside it.
fn chosen(agent: &Agent, asked: &str, errors: &mut HashMap<String, String>) -> Result<Option<Territory>, PageError> {
    let allowed = territories(agent);
    let asked = asked.trim();
    if asked.is_empty() {
        if agent.active.as_ref().is_some_and(|m| m.role == Role::Admin) {
            return Ok(None);
        }
        return Ok(allowed.first().and_then(|(c, _)| c.parse().ok()));
    }
    if allowed.iter().any(|(c, _)| c == asked) {
        return Ok(asked.parse().ok());
    }
    if allowed.len() <= 1 {
        return Err(PageError::not_found());
    }
    errors.insert("departement".into(), "Choisissez un département de la liste.".into());
    Ok(None)
}

/// The last three whole months.
fn default_period() -> (NaiveDate, NaiveDate) {
    let today = Utc::now().with_timezone(&chrono_tz::Europe::Paris).date_naive();
    let month = today.with_day(1).unwrap_or(today);
    (month - chrono::Months::new(3), month - chrono::Days::new(1))
}

pub async fn form(
    coordinator: SignedIn<Coordinators>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let (from, to) = default_period();
    let d = Draft {
        departement: q.get("departement").cloned().unwrap_or_default(),
        from: from.to_string(),
        to: to.to_string(),
        ..Draft::default()
    };
    let mut errors = HashMap::new();
    let territory = chosen(&coordinator, &d.departement, &mut errors)?;
    let (structures, list) = match &territory {
        Some(t) => (listed(&coordinator, t).await?, saved(&coordinator, t).await?),
        None => (Listed::default(), Some(Vec::new())),
    };
    let shown = Shown { saved: list, ..Shown::new(d, territory, structures, errors) };
    Ok(page(&coordinator, shown))
}

pub async fn submit(
    coordinator: SignedIn<Coordinators>,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let mut d = Draft::from_pairs(pairs);
    let mut errors = HashMap::new();
    let Some(territory) = chosen(&coordinator, &d.departement, &mut errors)? else {
        if errors.is_empty() {
            errors.insert("departement".into(), "Choisissez un département.".into());
        }
        return Ok(page(&coordinator, Shown::new(d, None, Listed::default(), errors)));
    };
    let structures = listed(&coordinator, &territory).await?;
    let mut list = saved(&coordinator, &territory).await?;
    let mut notice = None;
    let mut results = None;
    let mut saved_notice = None;
    let mut replayed = None;
    match d.action {
        Action::Remove(i) => {
            if i < d.places.len() {
                let removed = d.places.remove(i);
                notice = Some(format!("Lieu retiré du scénario : {}.", removed.name));
            }
        }
        Action::Add => {
            let pending = changes(&rows(&structures.structures, &d), &d.places, &mut HashMap::new()).len();
            notice = add(&mut d, &territory, pending, &mut errors);
        }
        Action::Simulate => {
            results = simulate(&coordinator, &d, &territory, &structures.structures, &mut errors).await?;
        }
        Action::Save => {
            if let Some(kept) = save(&coordinator, &d, &territory, &structures.structures, &mut errors).await? {
                saved_notice = Some(Notice {
                    text: format!(
                        "Scénario « {} » enregistré : il est dans la liste ci-dessous, pour le rejouer plus tard.",
                        kept.name
                    ),
                    warning: false,
                });
                // The list as it is now: the name may have replaced an older scenario.
                list = saved(&coordinator, &territory).await?;
            }
        }
        Action::Replay(id) => match list.iter().flatten().find(|s| s.id == id) {
            Some(scenario) => {
                let (loaded, left_out) =
                    Draft::from_request(&scenario.request, territory.as_str(), &structures.structures);
                d = Draft { scenario_name: scenario.name.clone(), ..loaded };
                replayed = Some(replayed_line(&scenario.name, left_out));
                results = simulate(&coordinator, &d, &territory, &structures.structures, &mut errors).await?;
            }
            None => {
                let (from, to) = default_period();
                (d.from, d.to) = (from.to_string(), to.to_string());
                saved_notice = Some(Notice {
                    text: "Ce scénario n'est plus enregistré : il a peut-être été remplacé par un autre du même nom. Choisissez-en un dans la liste.".into(),
                    warning: true,
                });
            }
        },
    }
    let saving = d.action == Action::Save;
    let shown = Shown {
        notice,
        results,
        saved: list,
        saved_notice,
        replayed,
        saving,
        ..Shown::new(d, Some(territory), structures, errors)
    };
    Ok(page(&coordinator, shown))
}

/// What the results say of the saved scenario they are of.
fn replayed_line(name: &str, left_out: usize) -> String {
    let mut line = format!("Résultats du scénario enregistré « {name} », rechargé dans le formulaire ci-dessus.");
    match left_out {
        0 => {}
        1 => line.push_str(
            " Un de ses changements porte sur un lieu qui n'est plus dans la liste du département : il est laissé de côté.",
        ),
        n => line.push_str(&format!(
            " {n} de ses changements portent sur des lieux qui ne sont plus dans la liste du département : ils sont laissés de côté."
        )),
    }
    line
}

/// The request the form asks for, when its period and places are right: what "Simuler"
/// sends and "Enregistrer le scénario" keeps, with the line of the form each change came
/// from. What is wrong is beside its field.
fn request(
    d: &Draft,
    territory: &Territory,
    structures: &[StructureView],
    errors: &mut HashMap<String, String>,
) -> Option<(SimulationRequest, Vec<Target>)> {
    let mut period = HashMap::new();
    let from = crate::form::date(Some(&d.from), "du", &mut period);
    let to = crate::form::date(Some(&d.to), "au", &mut period);
    errors.extend(period.into_iter().map(|(k, v)| (k.to_string(), v)));
    if d.from.trim().is_empty() {
        errors.insert("du".into(), "Indiquez le premier jour de la période.".into());
    }
    if d.to.trim().is_empty() {
        errors.insert("au".into(), "Indiquez le dernier jour de la période.".into());
    }
    if let (Some(from), Some(to)) = (from, to)
        && to < from
    {
        errors.insert("au".into(), "Le dernier jour doit être après le premier.".into());
    }
    let rows = rows(structures, d);
    let changes = changes(&rows, &d.places, errors);
    let (Some(from), Some(to)) = (from, to) else { return None };
    if !errors.is_empty() {
        return None;
    }
    let request = SimulationRequest {
        territory: Some(territory.to_string()),
        from: Some(from.to_string()),
        to: Some(to.to_string()),
        seed: None,
        changes: changes.iter().map(|(_, c)| c.clone()).collect(),
    };
    Some((request, changes.into_iter().map(|(t, _)| t).collect()))
}

/// Saves the form's request under the name typed, when both are right; the API's
/// refusals come back beside their fields, a 403 beside the button.
async fn save(
    agent: &Agent,
    d: &Draft,
    territory: &Territory,
    structures: &[StructureView],
    errors: &mut HashMap<String, String>,
) -> Result<Option<SavedScenario>, PageError> {
    let name = scenario_name(&d.scenario_name).map_err(|message| errors.insert("nom_scenario".into(), message.into()));
    let request = request(d, territory, structures, errors);
    let (Ok(name), Some((request, targets))) = (name, request) else {
        general_to_save(errors);
        return Ok(None);
    };
    match agent.api.save_scenario(&SaveScenario { name: Some(name), request: Some(request) }).await {
        Ok(kept) => Ok(Some(kept)),
        Err(failure) if failure.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => {
            for e in failure.field_errors() {
                let (field, message) = api_save_field(&e.field, &targets);
                errors.entry(field).or_insert_with(|| message.to_string());
            }
            if errors.is_empty() {
                errors.insert(SAVE_FIELD.into(), SAVE_MESSAGE.into());
            }
            tracing::info!(fields = ?errors.keys().collect::<Vec<_>>(), "scenario refused");
            Ok(None)
        }
        Err(failure) if failure.status() == Some(StatusCode::FORBIDDEN) => {
            errors.insert(
                SAVE_FIELD.into(),
                "Vous ne pouvez pas enregistrer de scénario pour ce département : seuls ses coordinateurs le peuvent."
                    .into(),
            );
            Ok(None)
        }
        Err(failure) => Err(failure.into()),
    }
}

/// What the form's checks put under "Simuler" goes beside "Enregistrer le scénario" when
/// that is the button pressed.
fn general_to_save(errors: &mut HashMap<String, String>) {
    if let Some(message) = errors.remove("form") {
        let message = if message == FORM_MESSAGE { SAVE_MESSAGE.to_string() } else { message };
        errors.insert(SAVE_FIELD.into(), message);
    }
}

/// Runs the simulation, when the period is right; the API's refusals come back beside
/// their fields.
async fn simulate(
    agent: &Agent,
    d: &Draft,
    territory: &Territory,
    structures: &[StructureView],
    errors: &mut HashMap<String, String>,
) -> Result<Option<results::Results>, PageError> {
    let Some((request, targets)) = request(d, territory, structures, errors) else { return Ok(None) };
    match agent.api.simulate(&request).await {
        Ok(answer) => Ok(Some(results::results(&answer, structures, &d.closed, &d.places))),
        Err(failure) if failure.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => {
            for e in failure.field_errors() {
                let (field, message) = api_field(&e.field, &targets);
                errors.entry(field).or_insert_with(|| message.to_string());
            }
            if errors.is_empty() {
                errors.insert("form".into(), FORM_MESSAGE.into());
            }
            tracing::info!(fields = ?errors.keys().collect::<Vec<_>>(), "simulation refused");
            Ok(None)
        }
        Err(failure) => Err(failure.into()),
    }
}

fn page(agent: &Agent, shown: Shown) -> Response {
    let Shown { d, territory, structures, mut errors, notice, results, saved, saved_notice, replayed, saving } = shown;
    let departements = territories(agent);
    let chosen = territory.as_ref().map(Territory::to_string).unwrap_or_default();
    let territory_name = departements.iter().find(|(c, _)| *c == chosen).map(|(_, n)| n.clone()).unwrap_or_default();
    let mut rows = rows(&structures.structures, &d);
    for row in &mut rows {
        row.error = errors.get(&row.field()).cloned();
    }
    let places: Vec<PlaceLine> = d
        .places
        .iter()
        .enumerate()
        .map(|(index, p)| PlaceLine {
            index,
            hidden: p.encode(),
            name: p.name.clone(),
            commune: commune_name(&p.commune_code),
            capacity: p.weekly_capacity,
            services: p
                .services
                .iter()
                .map(|s| s.parse::<Need>().map_or_else(|_| s.clone(), |n| n.label_fr().to_string()))
                .collect::<Vec<_>>()
                .join(", "),
            error: errors.get(&place_field(index)).cloned(),
        })
        .collect();
    // An error the page cannot place (a line that is gone) is said beside the button
    // pressed.
    let fields = fields(&rows, &places);
    if errors.keys().any(|k| !fields.contains(k)) {
        errors.retain(|k, _| fields.contains(k));
        let (key, message) = if saving { (SAVE_FIELD, SAVE_MESSAGE) } else { ("form", FORM_MESSAGE) };
        errors.entry(key.into()).or_insert_with(|| message.into());
    }
    let summary = fields
        .into_iter()
        .filter_map(|f| {
            let message = errors.get(&f)?.clone();
            let anchor = if f == "form" { "simuler".to_string() } else { f };
            Some((anchor, message))
        })
        .collect();
    let services = Need::ALL
        .iter()
        .map(|n| Choice { value: n.slug(), label: n.label_fr(), checked: d.services.iter().any(|s| s == n.slug()) })
        .collect();
    let invalid = !errors.is_empty();
    let view = SimulationView {
        chrome: agent.chrome(if invalid { "Erreur : simulation" } else { "Simulation" }, "simulation"),
        csrf: agent.session.csrf.clone(),
        departements: if departements.len() > 1 { departements } else { Vec::new() },
        chosen,
        territory_name,
        from: d.from,
        to: d.to,
        rows,
        truncated: structures.truncated,
        places,
        commune: d.commune,
        new_name: d.name,
        capacity: d.capacity,
        services,
        errors,
        summary,
        notice,
        refused: if saving {
            "Le scénario n'a pas été enregistré."
        } else {
            "La simulation n'a pas été lancée."
        },
        scenario_name: d.scenario_name,
        saved: saved.map(|list| list.iter().map(SavedLine::of).collect()),
        saved_notice,
        replayed,
        results,
    };
    render(if invalid { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK }, &view, true)
}

/// The fields an error can be beside, in the order of the form.
fn fields(rows: &[Row], places: &[PlaceLine]) -> Vec<String> {
    ["departement", "du", "au"]
        .into_iter()
        .map(str::to_string)
        .chain(rows.iter().map(Row::field))
        .chain(places.iter().map(|p| place_field(p.index)))
        .chain(
            [
                "commune_nouveau",
                "nom_nouveau",
                "services_nouveau",
                "capacite_nouveau",
                "form",
                "nom_scenario",
                SAVE_FIELD,
            ]
            .map(str::to_string),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_scenario_reads_in_french_in_paris() {
        let saved = SavedScenario {
            id: uuid::Uuid::nil(),
            territory: "16".into(),
            name: "Mansle ouvre le mardi".into(),
            request: SimulationRequest {
                from: Some("2026-09-01".into()),
                to: Some("2026-11-30".into()),
                changes: vec![Default::default(), Default::default()],
                ..Default::default()
            },
            // 23:30 in UTC: half past midnight the next day in Paris (winter time).
            saved_at: "2026-12-03T23:30:00Z".parse().unwrap(),
        };
        let line = SavedLine::of(&saved);
        assert_eq!(line.saved_at, "04/12/2026 à 00:30");
        assert_eq!(line.period, "du 01/09/2026 au 30/11/2026");
        assert_eq!(line.changes, "2 changements");
        let one = SavedScenario {
            request: SimulationRequest { changes: vec![Default::default()], ..saved.request.clone() },
            ..saved.clone()
        };
        assert_eq!(SavedLine::of(&one).changes, "1 changement");
        let none = SavedScenario { request: SimulationRequest { changes: vec![], ..saved.request.clone() }, ..saved };
        assert_eq!(SavedLine::of(&none).changes, "aucun changement");
    }

    #[test]
    fn the_results_say_which_saved_scenario_they_are_of() {
        assert!(replayed_line("Mansle", 0).starts_with("Résultats du scénario enregistré « Mansle »"));
        assert!(replayed_line("Mansle", 1).contains("Un de ses changements"));
        assert!(replayed_line("Mansle", 2).contains("2 de ses changements portent"));
    }
}
