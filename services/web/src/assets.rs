//! The files pages load, all from this binary (nothing from another host): the DSFR
//! (`/static/dsfr/<version>/…`, as npm installed it, see `build.rs`) and the project's
//! own stylesheet and script (`/static/<name>.<content hash>.<ext>`). Their paths change
//! whenever their content does, so they are cached for a year as immutable.

use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// `AIGUILLAGE_STATE_BRAND`: the operator says the service is a State entity's, entitled
/// to the DSFR's "République française" block and the Marianne font. Off by default.
static STATE_BRAND: AtomicBool = AtomicBool::new(false);

pub(crate) fn set_state_brand(on: bool) {
    STATE_BRAND.store(on, Ordering::Relaxed);
}

pub(crate) fn state_brand() -> bool {
    STATE_BRAND.load(Ordering::Relaxed)
}

pub(crate) fn dsfr_css_href() -> String {
    format!("/static/dsfr/{DSFR_VERSION}/dsfr.min.css")
}

pub(crate) fn own_css_href() -> String {
    format!("/static/{}", OWN_CSS.0)
}

pub(crate) fn own_js_href() -> String {
    format!("/static/{}", OWN_JS.0)
}

/// The slip's "Imprimer" button.
pub(crate) fn print_js_href() -> String {
    format!("/static/{}", PRINT_JS.0)
}

pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/static/dsfr/{version}/{*path}", get(dsfr)).route("/static/{name}", get(own))
}

async fn dsfr(Path((version, path)): Path<(String, String)>, headers: HeaderMap) -> Response {
    if version != DSFR_VERSION {
        return StatusCode::NOT_FOUND.into_response();
    }
    match DSFR_FILES.iter().find(|f| f.0 == path) {
        Some(&(_, kind, bytes, gz)) => serve(&headers, kind, bytes, gz),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn own(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match [&OWN_CSS, &OWN_JS, &PRINT_JS].into_iter().find(|f| f.0 == name) {
        Some(&(_, kind, bytes, gz)) => serve(&headers, kind, bytes, gz),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn serve(headers: &HeaderMap, kind: &'static str, bytes: &'static [u8], gz: &'static [u8]) -> Response {
    let gzip = !gz.is_empty() && accepts_gzip(headers);
    let mut response = if gzip { gz.into_response() } else { bytes.into_response() };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    if !gz.is_empty() {
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// `Accept-Encoding` lists gzip without refusing it (`gzip;q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
        |coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| p.strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()) == Some(0.0));
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn gzip_only_when_accepted() {
        assert!(accepts_gzip(&with("gzip, deflate, br")));
        assert!(accepts_gzip(&with("br;q=1.0, gzip;q=0.8")));
        assert!(accepts_gzip(&with("*")));
        assert!(!accepts_gzip(&with("gzip;q=0")));
        assert!(!accepts_gzip(&with("br")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn the_dsfr_stylesheet_and_what_it_refers_to_are_embedded() {
        let css = DSFR_FILES.iter().find(|f| f.0 == "dsfr.min.css").expect("dsfr.min.css");
        let text = std::str::from_utf8(css.2).unwrap();
        for reference in text.split("url(").skip(1) {
            let target = reference[..reference.find(')').unwrap()].trim_matches(|c| c == '"' || c == '\'');
            if !target.starts_with("data:") {
                assert!(DSFR_FILES.iter().any(|f| f.0 == target), "{target} is not embedded");
            }
        }
        assert!(DSFR_FILES.iter().any(|f| f.0.starts_with("fonts/Marianne")), "the State brand's font");
        assert!(!css.3.is_empty() && css.3.len() < css.2.len() / 4, "gzip shrinks the stylesheet");
    }

    #[test]
    fn own_files_are_named_by_their_content() {
        assert!(OWN_CSS.0.starts_with("aiguillage.") && OWN_CSS.0.ends_with(".css") && OWN_CSS.0.len() > 20);
        assert!(OWN_JS.0.starts_with("orientation.") && OWN_JS.0.ends_with(".js"));
        assert!(PRINT_JS.0.starts_with("fiche.") && PRINT_JS.0.ends_with(".js"));
    }
}
