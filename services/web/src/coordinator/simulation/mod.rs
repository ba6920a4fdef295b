//! `/territoire/simulation`: what if. The coordinator picks a past period, changes the
//! places per week of the territory's structures, closes some, adds new ones at a
//! commune, and the API replays the period's referrals as things were and with the
//! changes (`POST /api/v1/simulations`). The whole scenario is one form posted back to
//! this page, so that it works without JavaScript: "Ajouter un lieu" keeps each new place
//! in a hidden field and shows the form again, "Simuler" shows the results under it.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Datelike, NaiveDate, Utc};
use contracts::directory::StructureView;
use contracts::simulation::SimulationRequest;
use contracts::{Need, Role, Territory};

use crate::api::ApiFailure;
use crate::error::PageError;
use crate::extract::{Agent, Coordinators, CsrfForm, SignedIn};
use crate::views::{Chrome, commune_name, render};
use scenario::{Action, Draft, FORM_MESSAGE, Row, Target, add, api_field, changes, place_field, rows};

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
    let structures = match &territory {
        Some(t) => listed(&coordinator, t).await?,
        None => Listed::default(),
    };
    Ok(page(&coordinator, Shown { d, territory, structures, errors, notice: None, results: None }))
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
        let shown = Shown { d, territory: None, structures: Listed::default(), errors, notice: None, results: None };
        return Ok(page(&coordinator, shown));
    };
    let structures = listed(&coordinator, &territory).await?;
    let mut notice = None;
    let mut results = None;
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
    }
    Ok(page(&coordinator, Shown { d, territory: Some(territory), structures, errors, notice, results }))
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
    let (Some(from), Some(to)) = (from, to) else { return Ok(None) };
    if !errors.is_empty() {
        return Ok(None);
    }
    let request = SimulationRequest {
        territory: Some(territory.to_string()),
        from: Some(from.to_string()),
        to: Some(to.to_string()),
        seed: None,
        changes: changes.iter().map(|(_, c)| c.clone()).collect(),
    };
    match agent.api.simulate(&request).await {
        Ok(answer) => Ok(Some(results::results(&answer, structures, &d.closed, &d.places))),
        Err(failure) if failure.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => {
            let targets: Vec<Target> = changes.iter().map(|(t, _)| *t).collect();
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
    let Shown { d, territory, structures, mut errors, notice, results } = shown;
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
    // An error the page cannot place (a line that is gone) is said under the form.
    let fields = fields(&rows, &places);
    if errors.keys().any(|k| !fields.contains(k)) {
        errors.retain(|k, _| fields.contains(k));
        errors.entry("form".into()).or_insert_with(|| FORM_MESSAGE.into());
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
        .chain(["commune_nouveau", "nom_nouveau", "services_nouveau", "capacite_nouveau", "form"].map(str::to_string))
        .collect()
}
