//! `/territoire/offre-et-demande`: supply against demand by commune, as a map (SVG
//! drawn on the server) and a table with the same figures.

use axum::http::StatusCode;
use axum::response::Response;
use contracts::insights::CommuneSupply;

use crate::error::PageError;
use crate::extract::{Coordinators, SignedIn};
use crate::views::{Chrome, render};

pub struct SupplyRow {
    pub commune: String,
    pub referrals: i64,
    pub per_week: String,
    pub capacity: i64,
    pub ratio: String,
    pub tense: bool,
}

pub struct Dot {
    pub x: f64,
    pub y: f64,
    pub r: f64,
    pub class: &'static str,
    pub title: String,
}

#[derive(askama::Template)]
#[template(path = "offre_demande.html")]
struct SupplyView {
    chrome: Chrome,
    radius: String,
    total: usize,
    shown: usize,
    rows: Vec<SupplyRow>,
    dots: Vec<Dot>,
}

pub async fn show(coordinator: SignedIn<Coordinators>) -> Result<Response, PageError> {
    let s = coordinator.api.supply_demand().await?;
    let communes = geo::communes();
    let located: Vec<(&CommuneSupply, geo::LatLon)> =
        s.items.iter().filter_map(|i| communes.by_code(&i.commune_code).map(|c| (i, c.location))).collect();
    // An equirectangular projection of the communes' box, in a 600 × 400 frame.
    let (mut lat0, mut lat1, mut lon0, mut lon1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (_, p) in &located {
        lat0 = lat0.min(p.lat);
        lat1 = lat1.max(p.lat);
        lon0 = lon0.min(p.lon);
        lon1 = lon1.max(p.lon);
    }
    let (dlat, dlon) = ((lat1 - lat0).max(0.05), (lon1 - lon0).max(0.05));
    let dots = located
        .iter()
        .map(|(i, p)| Dot {
            x: (20.0 + (p.lon - lon0) / dlon * 560.0).round(),
            y: (20.0 + (lat1 - p.lat) / dlat * 360.0).round(),
            r: (4.0 + (i.referrals as f64).sqrt() * 1.5).min(30.0).round(),
            class: match i.ratio {
                None => "none",
                Some(r) if r > 1.0 => "tense",
                Some(_) => "ok",
            },
            title: format!(
                "{} : {} orientation(s), {} place(s) par semaine à proximité",
                i.commune.clone().unwrap_or_else(|| i.commune_code.clone()),
                i.referrals,
                i.capacity_within_radius
            ),
        })
        .collect();
    let shown = s.items.len().min(100);
    let rows = s
        .items
        .iter()
        .take(100)
        .map(|i| SupplyRow {
            commune: i
                .commune
                .clone()
                .map(|c| format!("{c} ({})", i.commune_code))
                .unwrap_or_else(|| i.commune_code.clone()),
            referrals: i.referrals,
            per_week: format!("{:.2}", i.referrals_per_week).replace('.', ","),
            capacity: i.capacity_within_radius,
            ratio: i.ratio.map(|r| format!("{r:.2}").replace('.', ",")).unwrap_or_else(|| "aucune place".into()),
            tense: i.ratio.is_none_or(|r| r > 1.0),
        })
        .collect();
    let view = SupplyView {
        chrome: coordinator.chrome("Offre et demande", "offre"),
        radius: format!("{}", s.radius_km),
        total: s.items.len(),
        shown,
        rows,
        dots,
    };
    Ok(render(StatusCode::OK, &view, true))
}
