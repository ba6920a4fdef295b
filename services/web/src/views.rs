//! The pages' templates (`templates/`, checked at compile time by askama) and what
//! every page carries: the header's agent and space, the CSRF token of its forms.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// The header and the title.
pub struct Chrome {
    pub title: String,
    /// Which item of the menu is this page's.
    pub section: &'static str,
    pub agent: Option<AgentChrome>,
}

pub struct AgentChrome {
    pub name: String,
    /// The active membership, in words.
    pub space: Option<String>,
    /// More than one membership: "Changer d'espace".
    pub several: bool,
    pub csrf: String,
    /// The active space's pages: (href, text, section).
    pub nav: Vec<(&'static str, &'static str, &'static str)>,
}

impl Chrome {
    pub fn public(title: &str, section: &'static str) -> Self {
        Self { title: title.to_string(), section, agent: None }
    }

    /// The "République française" block and Marianne (`AIGUILLAGE_STATE_BRAND`).
    pub fn state_brand(&self) -> bool {
        crate::assets::state_brand()
    }

    pub fn dsfr_css(&self) -> String {
        crate::assets::dsfr_css_href()
    }

    pub fn dsfr_version(&self) -> &'static str {
        crate::assets::DSFR_VERSION
    }

    pub fn own_css(&self) -> String {
        crate::assets::own_css_href()
    }

    /// The referral form's enhancements.
    pub fn own_js(&self) -> String {
        crate::assets::own_js_href()
    }
}

/// A time as people read it in France.
pub fn paris(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&chrono_tz::Europe::Paris).format("%d/%m/%Y à %H:%M").to_string()
}

/// A time of a referral: only its month once the person's data is removed and the date
/// with it cut to the month (the purge keeps no more), else as [`paris`] shows it.
pub fn referral_time(t: &chrono::DateTime<chrono::Utc>, removed: bool) -> String {
    use chrono::{Datelike, Timelike};
    let month_start = t.day() == 1 && t.num_seconds_from_midnight() == 0 && t.nanosecond() == 0;
    if removed && month_start { contracts::explain::month_year_fr(*t) } else { paris(t) }
}

/// A referral's short reference, as the person's slip and the follow-up show it, so
/// that the place can tell which referral a slip is about: `AIG-4F2A-91C3`, the last
/// (random) eight hex digits of its id.
pub fn short_reference(id: contracts::ReferralId) -> String {
    let hex: String = id.to_string().chars().filter(char::is_ascii_hexdigit).collect();
    let tail = hex[hex.len().saturating_sub(8)..].to_ascii_uppercase();
    format!("AIG-{}-{}", &tail[..4.min(tail.len())], &tail[4.min(tail.len())..])
}

/// "Angoulême (16015)", or the code when it is not a known commune.
pub fn commune_name(code: &str) -> String {
    geo::communes().by_code(code).map(|c| format!("{} ({})", c.name, code)).unwrap_or_else(|| code.to_string())
}

/// Renders `page` with `status`. Pages of a signed-in agent show personal data (at
/// least the agent's name): nobody caches them.
pub fn render<T: Template>(status: StatusCode, page: &T, signed_in: bool) -> Response {
    match page.render() {
        Ok(html) => {
            let mut response = (status, Html(html)).into_response();
            if signed_in {
                response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
            response
        }
        Err(err) => {
            tracing::error!(error = %err, "a page could not be rendered");
            (StatusCode::INTERNAL_SERVER_ERROR, Html("<!doctype html><html lang=\"fr\"><title>Erreur — Aiguillage</title><h1>Une erreur est survenue</h1><p><a href=\"/\">Revenir à l'accueil</a></p></html>"))
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "connexion.html")]
pub struct Connexion {
    pub chrome: Chrome,
    pub enabled: bool,
    pub login_href: String,
    pub signed_out: bool,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub chrome: Chrome,
    pub heading: String,
    pub message: String,
    pub reference: Option<String>,
    pub back_to_sign_in: bool,
}

#[derive(Template)]
#[template(path = "home.html")]
pub struct Home {
    pub chrome: Chrome,
    pub given_name: String,
    pub space: String,
    /// (href, text)
    pub links: Vec<(String, String)>,
}

pub struct MembershipItem {
    pub id: String,
    pub role: String,
    pub label: String,
    pub active: bool,
}

pub struct PlaceOption {
    pub value: String,
    pub text: String,
}

#[derive(Template)]
#[template(path = "compte.html")]
pub struct Compte {
    pub chrome: Chrome,
    pub csrf: String,
    pub done: Option<String>,
    pub name: String,
    pub email: String,
    pub siret: Option<String>,
    pub memberships: Vec<MembershipItem>,
    /// (what, when)
    pub requests: Vec<(String, String)>,
    pub query: String,
    pub search_error: Option<String>,
    /// Groups of options: (legend, options).
    pub places: Vec<(String, Vec<PlaceOption>)>,
    pub has_siret_matches: bool,
    pub chosen: String,
    pub place_error: Option<String>,
    pub message: String,
    pub message_error: Option<String>,
}

#[derive(Template)]
#[template(path = "info.html")]
pub struct Info {
    pub chrome: Chrome,
    pub heading: String,
    pub body: &'static str,
}

#[cfg(test)]
mod time_tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_removed_referral_shows_only_the_month_it_keeps() {
        let month_start = chrono::Utc.with_ymd_and_hms(2024, 8, 1, 0, 0, 0).unwrap();
        assert_eq!(referral_time(&month_start, true), "août 2024");
        // Held data, or a time that was not cut: the exact time, in Paris.
        assert_eq!(referral_time(&month_start, false), "01/08/2024 à 02:00");
        let exact = chrono::Utc.with_ymd_and_hms(2024, 8, 1, 0, 0, 5).unwrap();
        assert_eq!(referral_time(&exact, true), "01/08/2024 à 02:00");
        let december = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        assert_eq!(referral_time(&december, true), "décembre 2026");
    }
}
