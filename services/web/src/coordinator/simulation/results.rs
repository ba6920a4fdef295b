//! A simulation's answer as the page shows it: the table "Comparaison" and the same
//! figures as a chart, the best placement possible, the territory as things are and with
//! the scenario on two maps side by side, then by commune and by place. French numbers:
//! a decimal comma, and "—" where there is no figure (no one placed, no distance).

use std::collections::HashSet;

use contracts::directory::StructureView;
use contracts::simulation::{CommuneComparison, Fidelity, Metrics, OptimumView, SimulationResponse};

use super::scenario::NewPlace;
use crate::views::commune_name;

/// The communes the table lists, those with the most referrals; the maps show them all.
const COMMUNE_ROWS: usize = 100;

pub struct Results {
    /// The period and how many referrals were replayed.
    pub summary: String,
    /// How close the baseline came to what happened.
    pub fidelity: String,
    pub comparison: Vec<Line>,
    /// Empty when the API did not compute it (a very large period).
    pub optimum: Vec<Line>,
    pub chart: Chart,
    pub map: Option<Map>,
    pub communes: Vec<CommuneLine>,
    pub communes_total: usize,
    pub loads: Vec<LoadLine>,
}

/// A figure as things are, with the scenario, and the difference.
pub struct Line {
    pub label: &'static str,
    pub baseline: String,
    pub scenario: String,
    pub change: String,
}

fn line(label: &'static str, baseline: String, scenario: String, change: String) -> Line {
    Line { label, baseline, scenario, change }
}

pub fn results(
    answer: &SimulationResponse,
    structures: &[StructureView],
    closed: &HashSet<String>,
    places: &[NewPlace],
) -> Results {
    let (b, s) = (&answer.baseline, &answer.scenario);
    let summary = if b.referrals == 0 {
        format!(
            "Aucune orientation du département n'a été envoyée du {} au {} : choisissez une autre période.",
            day(&answer.from),
            day(&answer.to)
        )
    } else {
        format!(
            "Du {} au {}, {} orientation{} du département, rejouée{} deux fois : comme les lieux sont aujourd'hui (situation actuelle), puis avec vos changements (scénario).",
            day(&answer.from),
            day(&answer.to),
            b.referrals,
            plural(b.referrals),
            plural(b.referrals)
        )
    };
    let optimum = match (&answer.optimum_baseline, &answer.optimum_scenario) {
        (Some(ob), Some(os)) => optimum(ob, os),
        _ => Vec::new(),
    };
    let mut communes: Vec<&CommuneComparison> = answer.communes.iter().collect();
    communes.sort_by(|x, y| {
        y.baseline.referrals.cmp(&x.baseline.referrals).then_with(|| x.commune_code.cmp(&y.commune_code))
    });
    Results {
        summary,
        fidelity: fidelity(&answer.fidelity),
        comparison: comparison(b, s),
        optimum,
        chart: chart(b, s),
        map: map(&communes, structures, closed, places),
        communes_total: communes.len(),
        communes: communes.iter().take(COMMUNE_ROWS).map(|c| commune_line(c)).collect(),
        loads: loads(answer, closed),
    }
}

fn plural(n: usize) -> &'static str {
    if n > 1 { "s" } else { "" }
}

/// `2026-09-01` → `01/09/2026`.
fn day(iso: &str) -> String {
    chrono::NaiveDate::parse_from_str(iso, "%Y-%m-%d")
        .map_or_else(|_| iso.to_string(), |d| d.format("%d/%m/%Y").to_string())
}

fn decimal(v: f64) -> String {
    format!("{v:.1}").replace('.', ",")
}

fn percent(share: f64) -> String {
    format!("{} %", (share * 100.0).round())
}

fn km(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |d| format!("{} km", decimal(d)))
}

fn days(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), decimal)
}

/// A difference with its sign: "+3", "-1,5 km", "0".
fn signed(delta: f64, decimals: usize, unit: &str) -> String {
    let magnitude = delta.abs();
    let text = format!("{magnitude:.decimals$}").replace('.', ",");
    if text.trim_start_matches(['0', ',']).is_empty() {
        "0".to_string()
    } else if delta > 0.0 {
        format!("+{text}{unit}")
    } else {
        format!("-{text}{unit}")
    }
}

fn count_change(baseline: usize, scenario: usize) -> String {
    signed(scenario as f64 - baseline as f64, 0, "")
}

/// Two shares' difference, in points of percentage, as the page rounds them.
fn points(baseline: f64, scenario: f64) -> String {
    let delta = (scenario * 100.0).round() - (baseline * 100.0).round();
    match signed(delta, 0, "").as_str() {
        "0" => "0".to_string(),
        text if delta.abs() > 1.0 => format!("{text} points"),
        text => format!("{text} point"),
    }
}

fn both(baseline: Option<f64>, scenario: Option<f64>, unit: &str) -> String {
    match (baseline, scenario) {
        (Some(b), Some(s)) => signed(s - b, 1, unit),
        _ => "—".to_string(),
    }
}

/// The referrals placed within 30 km: the API gives their share of those placed.
fn near_count(m: &Metrics) -> usize {
    (m.placed as f64 * m.within_30_km_share).round() as usize
}

fn near(m: &Metrics) -> String {
    if m.placed == 0 {
        "—".to_string()
    } else {
        format!("{} ({} des placées)", near_count(m), percent(m.within_30_km_share))
    }
}

fn comparison(b: &Metrics, s: &Metrics) -> Vec<Line> {
    vec![
        line("Orientations", b.referrals.to_string(), s.referrals.to_string(), "—".to_string()),
        line("Placées", b.placed.to_string(), s.placed.to_string(), count_change(b.placed, s.placed)),
        line("Part placée", percent(b.placed_share), percent(s.placed_share), points(b.placed_share, s.placed_share)),
        line(
            "Placées à moins de 30 km",
            near(b),
            near(s),
            if b.placed == 0 || s.placed == 0 {
                "—".to_string()
            } else {
                points(b.within_30_km_share, s.within_30_km_share)
            },
        ),
        line(
            "Distance médiane",
            km(b.distance_km_p50),
            km(s.distance_km_p50),
            both(b.distance_km_p50, s.distance_km_p50, " km"),
        ),
        line(
            "Attente médiane (jours)",
            days(b.wait_days_p50),
            days(s.wait_days_p50),
            both(b.wait_days_p50, s.wait_days_p50, ""),
        ),
        line(
            "Attente p90 (jours)",
            days(b.wait_days_p90),
            days(s.wait_days_p90),
            both(b.wait_days_p90, s.wait_days_p90, ""),
        ),
        line(
            "Pic de la liste d'attente",
            b.waitlist_peak.to_string(),
            s.waitlist_peak.to_string(),
            count_change(b.waitlist_peak, s.waitlist_peak),
        ),
        line("Non placées", b.unplaced.to_string(), s.unplaced.to_string(), count_change(b.unplaced, s.unplaced)),
    ]
}

fn optimum(b: &OptimumView, s: &OptimumView) -> Vec<Line> {
    vec![
        line("Placées", b.placed.to_string(), s.placed.to_string(), count_change(b.placed, s.placed)),
        line("Part placée", percent(b.placed_share), percent(s.placed_share), points(b.placed_share, s.placed_share)),
        line(
            "Distance moyenne",
            km(b.distance_km_mean),
            km(s.distance_km_mean),
            both(b.distance_km_mean, s.distance_km_mean, " km"),
        ),
    ]
}

fn fidelity(f: &Fidelity) -> String {
    match f.share {
        Some(share) if f.compared > 0 => format!(
            "Le scénario de référence (la situation actuelle, rejouée sans changement) retrouve la première proposition réelle pour {} des orientations acceptées dès leur première proposition ({} sur {}).",
            percent(share),
            f.same_first_offer,
            f.compared
        ),
        _ => "Aucune orientation de la période n'a été acceptée dès sa première proposition : la fidélité du scénario de référence ne peut pas être mesurée.".to_string(),
    }
}

// The chart: for each figure, a bar as things are and one with the scenario, one above
// the other, with the figure's name above them (it reads at 375 px as at 1280).

/// The chart's frame, in its viewBox's units.
const CHART_WIDTH: f64 = 480.0;
const LONGEST_BAR: f64 = 400.0;
const LEGEND_HEIGHT: u32 = 36;
const GROUP_HEIGHT: u32 = 76;

pub struct Chart {
    pub groups: Vec<Group>,
    pub width: f64,
    pub height: u32,
    /// The chart in words, for those who do not see it.
    pub label: String,
}

pub struct Group {
    pub label: &'static str,
    /// The group's top.
    pub y: u32,
    pub baseline: usize,
    pub scenario: usize,
    pub baseline_width: f64,
    pub scenario_width: f64,
}

fn chart(b: &Metrics, s: &Metrics) -> Chart {
    let figures: [(&'static str, usize, usize); 4] = [
        ("Placées", b.placed, s.placed),
        ("Placées à moins de 30 km", near_count(b), near_count(s)),
        ("Pic de la liste d'attente", b.waitlist_peak, s.waitlist_peak),
        ("Non placées", b.unplaced, s.unplaced),
    ];
    let max = figures.iter().map(|&(_, x, y)| x.max(y)).max().unwrap_or(0).max(1) as f64;
    let width = |v: usize| (v as f64 / max * LONGEST_BAR * 10.0).round() / 10.0;
    let groups = figures
        .iter()
        .enumerate()
        .map(|(i, &(label, baseline, scenario))| Group {
            label,
            y: LEGEND_HEIGHT + i as u32 * GROUP_HEIGHT,
            baseline,
            scenario,
            baseline_width: width(baseline),
            scenario_width: width(scenario),
        })
        .collect();
    let words: Vec<String> =
        figures.iter().map(|&(label, x, y)| format!("{label} : {x} actuellement, {y} avec le scénario")).collect();
    Chart {
        groups,
        width: CHART_WIDTH,
        height: LEGEND_HEIGHT + figures.len() as u32 * GROUP_HEIGHT,
        label: format!("{}. Les mêmes chiffres sont dans le tableau « Comparaison ».", words.join(" ; ")),
    }
}

// The maps: two panels of the same frame, the situation as it is on the left and the
// scenario on the right. A commune is a dot as large as its referrals, red when some of
// them found no place; a place is a small square, a new place a larger diamond.

const PANEL_WIDTH: f64 = 310.0;
const PANEL_HEIGHT: f64 = 320.0;
const PANEL_TOP: f64 = 30.0;
const PANEL_GAP: f64 = 20.0;
const MARGIN: f64 = 16.0;
/// Places further than this from the département's centre are left off the map: a wrong
/// coordinate would shrink the whole département to a corner.
const FAR_KM: f64 = 300.0;

pub struct Map {
    pub panels: Vec<Panel>,
    pub width: f64,
    pub height: f64,
    pub label: String,
}

pub struct Panel {
    pub title: &'static str,
    pub x: f64,
    pub dots: Vec<Dot>,
    pub places: Vec<Mark>,
}

pub struct Dot {
    pub x: f64,
    pub y: f64,
    pub r: f64,
    pub class: &'static str,
    pub title: String,
}

pub struct Mark {
    pub x: f64,
    pub y: f64,
    pub new: bool,
    pub title: String,
}

/// An equirectangular projection of the points' box into a panel, with one scale on
/// both axes (longitudes shrunk by the cosine of the latitude), so that the département
/// keeps its shape.
struct Frame {
    north: f64,
    west: f64,
    cos: f64,
    scale: f64,
    dx: f64,
    dy: f64,
}

impl Frame {
    fn around(points: &[geo::LatLon]) -> Option<Frame> {
        let first = points.first()?;
        let (mut south, mut north, mut west, mut east) = (first.lat, first.lat, first.lon, first.lon);
        for p in points {
            south = south.min(p.lat);
            north = north.max(p.lat);
            west = west.min(p.lon);
            east = east.max(p.lon);
        }
        let cos = ((south + north) / 2.0).to_radians().cos().max(0.1);
        let (w, h) = (((east - west) * cos).max(0.02), (north - south).max(0.02));
        let scale = ((PANEL_WIDTH - 2.0 * MARGIN) / w).min((PANEL_HEIGHT - 2.0 * MARGIN) / h);
        Some(Frame {
            north,
            west,
            cos,
            scale,
            dx: (PANEL_WIDTH - w * scale) / 2.0,
            dy: (PANEL_HEIGHT - h * scale) / 2.0,
        })
    }

    fn at(&self, p: geo::LatLon, panel_x: f64) -> (f64, f64) {
        let x = panel_x + self.dx + (p.lon - self.west) * self.cos * self.scale;
        let y = PANEL_TOP + self.dy + (self.north - p.lat) * self.scale;
        ((x * 10.0).round() / 10.0, (y * 10.0).round() / 10.0)
    }
}

fn map(
    communes: &[&CommuneComparison],
    structures: &[StructureView],
    closed: &HashSet<String>,
    places: &[NewPlace],
) -> Option<Map> {
    let all = geo::communes();
    let located: Vec<(&CommuneComparison, geo::LatLon)> =
        communes.iter().filter_map(|c| all.by_code(&c.commune_code).map(|g| (*c, g.location))).collect();
    let centre =
        located.first().and_then(|(c, _)| all.by_code(&c.commune_code)).and_then(|c| all.departement(&c.departement));
    let on_map = |p: geo::LatLon| centre.is_none_or(|d| geo::distance_km(d.centre, p) < FAR_KM);
    let existing: Vec<(&StructureView, geo::LatLon)> = structures
        .iter()
        .map(|s| (s, geo::LatLon { lat: s.location.lat, lon: s.location.lon }))
        .filter(|(_, p)| on_map(*p))
        .collect();
    let added: Vec<(&NewPlace, geo::LatLon)> =
        places.iter().filter_map(|p| all.by_code(&p.commune_code).map(|c| (p, c.location))).collect();
    let points: Vec<geo::LatLon> = located
        .iter()
        .map(|(_, p)| *p)
        .chain(existing.iter().map(|(_, p)| *p))
        .chain(added.iter().map(|(_, p)| *p))
        .collect();
    let frame = Frame::around(&points)?;
    let panel = |title: &'static str, x: f64, scenario: bool| {
        let dots = located
            .iter()
            .map(|(c, p)| {
                let m = if scenario { &c.scenario } else { &c.baseline };
                let (cx, cy) = frame.at(*p, x);
                Dot {
                    x: cx,
                    y: cy,
                    r: (3.0 + (c.baseline.referrals as f64).sqrt() * 1.5).min(24.0).round(),
                    class: if m.unplaced > 0 { "tense" } else { "ok" },
                    title: format!(
                        "{} : {} placée{} sur {}, {} sans place",
                        commune_name(&c.commune_code),
                        m.placed,
                        plural(m.placed),
                        m.referrals,
                        m.unplaced
                    ),
                }
            })
            .collect();
        let mut marks: Vec<Mark> = existing
            .iter()
            .filter(|(s, _)| !(scenario && closed.contains(s.id.as_str())))
            .map(|(s, p)| {
                let (mx, my) = frame.at(*p, x);
                Mark { x: mx, y: my, new: false, title: s.name.clone() }
            })
            .collect();
        if scenario {
            marks.extend(added.iter().map(|(n, p)| {
                let (mx, my) = frame.at(*p, x);
                Mark { x: mx, y: my, new: true, title: format!("{} (nouveau lieu)", n.name) }
            }));
        }
        Panel { title, x, dots, places: marks }
    };
    let short = |scenario: bool| {
        located.iter().filter(|(c, _)| if scenario { c.scenario.unplaced > 0 } else { c.baseline.unplaced > 0 }).count()
    };
    let label = format!(
        "Deux cartes du département : à gauche la situation actuelle, à droite le scénario. Chaque point est une commune d'où des personnes ont été orientées, en rouge quand certaines sont restées sans place : {} commune{} actuellement, {} avec le scénario. Les carrés sont les lieux, les losanges les lieux ajoutés. Le tableau « Par commune » donne les mêmes chiffres.",
        short(false),
        plural(short(false)),
        short(true)
    );
    Some(Map {
        panels: vec![panel("Situation actuelle", 0.0, false), panel("Scénario", PANEL_WIDTH + PANEL_GAP, true)],
        width: 2.0 * PANEL_WIDTH + PANEL_GAP,
        height: PANEL_TOP + PANEL_HEIGHT,
        label,
    })
}

/// A commune's figures, as things are and with the scenario.
pub struct CommuneLine {
    pub name: String,
    pub referrals: usize,
    pub placed: (usize, usize),
    pub near: (String, String),
    pub unplaced: (usize, usize),
}

fn commune_line(c: &CommuneComparison) -> CommuneLine {
    CommuneLine {
        name: commune_name(&c.commune_code),
        referrals: c.baseline.referrals,
        placed: (c.baseline.placed, c.scenario.placed),
        near: (near(&c.baseline), near(&c.scenario)),
        unplaced: (c.baseline.unplaced, c.scenario.unplaced),
    }
}

/// A place's referrals and load, as things are and with the scenario.
pub struct LoadLine {
    pub name: String,
    pub placed: (usize, usize),
    pub load: (String, String),
}

/// The places, the busiest first.
fn loads(answer: &SimulationResponse, closed: &HashSet<String>) -> Vec<LoadLine> {
    let mut loads: Vec<_> = answer.structures.iter().collect();
    loads.sort_by(|x, y| {
        y.baseline_load
            .max(y.scenario_load)
            .total_cmp(&x.baseline_load.max(x.scenario_load))
            .then_with(|| x.name.cmp(&y.name))
    });
    loads
        .into_iter()
        .map(|l| {
            let is_closed = l.structure_id.as_ref().is_some_and(|id| closed.contains(id));
            let name = match (&l.structure_id, is_closed) {
                (None, _) => format!("{} (nouveau lieu)", l.name),
                (Some(_), true) => format!("{} (fermé dans le scénario)", l.name),
                (Some(_), false) => l.name.clone(),
            };
            LoadLine {
                name,
                placed: (l.baseline_placed, l.scenario_placed),
                load: (
                    if l.structure_id.is_none() { "—".to_string() } else { percent(l.baseline_load) },
                    if is_closed { "fermé".to_string() } else { percent(l.scenario_load) },
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_read_with_their_sign_and_unit() {
        assert_eq!(signed(3.0, 0, ""), "+3");
        assert_eq!(signed(-1.54, 1, " km"), "-1,5 km");
        assert_eq!(signed(0.04, 1, " km"), "0");
        assert_eq!(points(0.80, 0.84), "+4 points");
        assert_eq!(points(0.80, 0.79), "-1 point");
        assert_eq!(points(0.801, 0.799), "0");
        assert_eq!(both(Some(2.0), None, ""), "—");
    }

    #[test]
    fn the_chart_scales_to_the_largest_figure_and_says_it_in_words() {
        let b = Metrics {
            referrals: 10,
            placed: 8,
            placed_share: 0.8,
            within_30_km_share: 0.5,
            unplaced: 2,
            waitlist_peak: 4,
            ..Metrics::default()
        };
        let s = Metrics { placed: 10, placed_share: 1.0, within_30_km_share: 1.0, ..b.clone() };
        let c = chart(&b, &s);
        assert_eq!(c.groups.len(), 4);
        assert_eq!(c.groups[0].scenario_width, LONGEST_BAR);
        assert_eq!(c.groups[0].baseline_width, 320.0);
        assert!(
            c.label.starts_with(
                "Placées : 8 actuellement, 10 avec le scénario ; Placées à moins de 30 km : 4 actuellement, 10"
            ),
            "{}",
            c.label
        );
    }
}
