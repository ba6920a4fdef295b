//! `/statistiques`: the open statistics of the reorientation flow, for everyone, signed
//! in or not: the monthly flow as a chart (inline SVG, no script) and the same figures
//! in a table, by département, with statistical secrecy shown as "secret", the files to
//! download and their licence.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use contracts::insights::OpenDataRow;

use crate::WebState;
use crate::error::PageError;
use crate::extract::Visitor;
use crate::views::{Chrome, render};

pub fn routes() -> Router<WebState> {
    Router::new().route("/statistiques", get(show))
}

/// `departement` of the national rows, as the files name them.
const NATIONAL: &str = "France";
/// Months the chart shows (the table shows them all).
const CHART_MONTHS: usize = 12;

const MONTHS_FR: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];
const MONTHS_SHORT: [&str; 12] =
    ["janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."];

/// `2026-11` → (`novembre 2026`, `nov. 26`).
fn month_fr(mois: &str) -> (String, String) {
    let (year, month) = mois.split_once('-').unwrap_or((mois, "0"));
    let i = month.parse::<usize>().ok().and_then(|m| m.checked_sub(1)).filter(|m| *m < 12);
    match i {
        Some(i) => {
            (format!("{} {year}", MONTHS_FR[i]), format!("{} {}", MONTHS_SHORT[i], year.get(2..).unwrap_or(year)))
        }
        None => (mois.to_string(), mois.to_string()),
    }
}

/// A cell as read: the figure, "secret" when statistical secrecy hid it, "—" when there
/// is none (no rate when nothing was offered).
fn cell(value: Option<String>, column: &str, row: &OpenDataRow) -> String {
    match value {
        Some(v) => v,
        None if row.secret.iter().any(|s| s == column) => "secret".to_string(),
        None => "—".to_string(),
    }
}

fn decimal(v: f64, places: usize) -> String {
    format!("{v:.places$}").replace('.', ",")
}

pub struct Line {
    pub month: String,
    pub provisional: bool,
    /// orientations, proposées, acceptées, réorientées, en attente, accompagnements
    /// réalisés, délai médian, taux de réorientation.
    pub cells: Vec<String>,
}

/// One series of the chart: its bars, from the oldest month.
pub struct Series {
    pub name: &'static str,
    pub class: &'static str,
    pub bars: Vec<Bar>,
    pub legend_x: u32,
}

pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub height: f64,
    /// "secret": the value is hidden, no bar.
    pub secret: bool,
}

pub struct Tick {
    pub x: f64,
    /// Every other month a line lower, so that twelve labels never overlap.
    pub y: f64,
    pub label: String,
}

#[derive(askama::Template)]
#[template(path = "statistiques.html")]
struct StatisticsPage {
    chrome: Chrome,
    departements: Vec<(String, String)>,
    selected: String,
    place: String,
    error: Option<String>,
    lines: Vec<Line>,
    series: Vec<Series>,
    ticks: Vec<Tick>,
    /// The chart's scale: (y, label) of its gridlines.
    grid: Vec<(f64, String)>,
    chart_label: String,
    any_secret: bool,
    generated_at: String,
}

const CHART_TOP: f64 = 30.0;
const CHART_BOTTOM: f64 = 250.0;
const CHART_LEFT: f64 = 50.0;
const CHART_WIDTH: f64 = 580.0;

/// A series of the chart: its label, its CSS class, and its figure in a row.
type Pick = (&'static str, &'static str, fn(&OpenDataRow) -> Option<i64>);

fn chart(rows: &[&OpenDataRow]) -> (Vec<Series>, Vec<Tick>, Vec<(f64, String)>) {
    let shown: Vec<&&OpenDataRow> =
        rows.iter().rev().take(CHART_MONTHS).collect::<Vec<_>>().into_iter().rev().collect();
    let pick: [Pick; 3] = [
        ("Orientations", "s1", |r| r.orientations),
        ("Acceptées", "s2", |r| r.acceptees),
        ("Réorientées", "s3", |r| r.reorientees),
    ];
    let max = shown.iter().flat_map(|r| pick.iter().filter_map(|p| (p.2)(r))).max().unwrap_or(0).max(1);
    // A round top for the scale: 1, 2 or 5 × 10^k.
    let mut top = 1i64;
    while top < max {
        top = if top.to_string().starts_with('1') {
            top * 2
        } else if top.to_string().starts_with('2') {
            top / 2 * 5
        } else {
            top * 2
        };
    }
    let scale = (CHART_BOTTOM - CHART_TOP) / top as f64;
    let slot = CHART_WIDTH / CHART_MONTHS as f64;
    let bar = slot / 4.0;
    let series = pick
        .iter()
        .enumerate()
        .map(|(k, (name, class, value))| Series {
            name,
            class,
            legend_x: 50 + k as u32 * 150,
            bars: shown
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let v = value(r);
                    let height = v.unwrap_or(0) as f64 * scale;
                    Bar {
                        x: CHART_LEFT + i as f64 * slot + bar * (k as f64 + 0.5),
                        y: CHART_BOTTOM - height,
                        height,
                        secret: v.is_none()
                            && r.secret.iter().any(|s| {
                                s == if k == 0 {
                                    "orientations"
                                } else if k == 1 {
                                    "acceptees"
                                } else {
                                    "reorientees"
                                }
                            }),
                    }
                })
                .collect(),
        })
        .collect();
    let ticks = shown
        .iter()
        .enumerate()
        .map(|(i, r)| Tick {
            x: CHART_LEFT + i as f64 * slot + slot / 2.0,
            y: if i % 2 == 0 { 270.0 } else { 286.0 },
            label: month_fr(&r.mois).1,
        })
        .collect();
    (series, ticks, grid(top))
}

/// The scale's lines, from 0 to `top` (1, 2 or 5 × 10^k), each at a whole number: four
/// steps where `top` allows, else five, two or one (a scale up to 1 reads 0 and 1, not
/// 0, 0, 0, 0 and 1).
fn grid(top: i64) -> Vec<(f64, String)> {
    let steps = [4, 5, 2, 1].into_iter().find(|s| top % s == 0).unwrap_or(1);
    (0..=steps)
        .map(|g| (CHART_BOTTOM - (CHART_BOTTOM - CHART_TOP) * g as f64 / steps as f64, (top * g / steps).to_string()))
        .collect()
}

async fn show(
    State(state): State<WebState>,
    Visitor(agent): Visitor,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let mut departements: Vec<(String, String)> =
        geo::communes().departements().map(|d| (d.code.clone(), format!("{} – {}", d.code, d.name))).collect();
    departements.sort();
    let asked = q.get("departement").map(String::as_str).filter(|d| !d.is_empty());
    let (selected, error) = match asked {
        None => (NATIONAL.to_string(), None),
        Some(d) if d == NATIONAL || departements.iter().any(|(c, _)| c == d) => (d.to_string(), None),
        Some(_) => (NATIONAL.to_string(), Some("Choisissez un département de la liste.".to_string())),
    };
    let file = state.as_service().open_data(Some(&selected)).await?;
    let rows: Vec<&OpenDataRow> = file.rows.iter().filter(|r| r.departement == selected).collect();
    let place = if selected == NATIONAL {
        "la France entière".to_string()
    } else {
        departements.iter().find(|(c, _)| *c == selected).map(|(_, n)| n.clone()).unwrap_or_else(|| selected.clone())
    };
    let n = |v: Option<i64>| v.map(|v| v.to_string());
    let lines: Vec<Line> = rows
        .iter()
        .rev()
        .map(|r| Line {
            month: month_fr(&r.mois).0,
            provisional: r.provisoire,
            cells: vec![
                cell(n(r.orientations), "orientations", r),
                cell(n(r.proposees), "proposees", r),
                cell(n(r.acceptees), "acceptees", r),
                cell(n(r.reorientees), "reorientees", r),
                cell(n(r.en_attente), "en_attente", r),
                cell(n(r.accompagnements_realises), "accompagnements_realises", r),
                cell(
                    r.delai_acceptation_mediane_jours.map(|d| format!("{} j", decimal(d, 1))),
                    "delai_acceptation_mediane_jours",
                    r,
                ),
                cell(r.taux_reorientation.map(|t| format!("{} %", decimal(t * 100.0, 0))), "taux_reorientation", r),
            ],
        })
        .collect();
    let any_secret = rows.iter().any(|r| !r.secret.is_empty());
    let (series, ticks, grid) = chart(&rows);
    let chart_label = format!(
        "Orientations, acceptées et réorientées par mois pour {place}, sur les {} derniers mois ; les mêmes chiffres sont dans le tableau « Orientations par mois ».",
        ticks.len()
    );
    let title = "Statistiques publiques";
    let chrome = match &agent {
        Some(a) => a.chrome(title, ""),
        None => Chrome::public(title, ""),
    };
    let page = StatisticsPage {
        chrome,
        departements,
        selected,
        place,
        error,
        lines,
        series,
        ticks,
        grid,
        chart_label,
        any_secret,
        generated_at: crate::views::paris(&file.generated_at),
    };
    let status = if page.error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(render(status, &page, agent.is_some()))
}

#[cfg(test)]
mod tests {
    use super::grid;

    #[test]
    fn the_scale_reads_whole_distinct_numbers_whatever_its_top() {
        for (top, labels) in [
            (1, vec!["0", "1"]),
            (2, vec!["0", "1", "2"]),
            (5, vec!["0", "1", "2", "3", "4", "5"]),
            (10, vec!["0", "2", "4", "6", "8", "10"]),
            (20, vec!["0", "5", "10", "15", "20"]),
            (100, vec!["0", "25", "50", "75", "100"]),
        ] {
            let got: Vec<String> = grid(top).into_iter().map(|(_, l)| l).collect();
            assert_eq!(got, labels, "top {top}");
        }
    }
}
