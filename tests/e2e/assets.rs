//! What pages load, and the commune search behind the referral form's suggestions: every
//! asset comes from this binary with a year-long immutable cache (the DSFR under its
//! version, the project's files under their content hash), gzip-compressed when asked;
//! nothing is loaded from another host; the commune search is public and refuses bad
//! queries with a problem naming the parameter.

use reqwest::StatusCode;
use reqwest::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE};

use crate::support::TestApp;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The `href`/`src` values of `<link>` and `<script>` in a page.
fn assets_of(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for tag in html.split('<').filter(|t| t.starts_with("link ") || t.starts_with("script ")) {
        for attr in ["href=\"", "src=\""] {
            if let Some(at) = tag.find(attr) {
                let rest = &tag[at + attr.len()..];
                found.push(rest[..rest.find('"').unwrap()].to_string());
            }
        }
    }
    found
}

#[tokio::test]
async fn pages_load_only_this_binarys_assets_and_they_are_cached_for_a_year() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    let html = client.get(format!("{}/connexion", app.base)).send().await.unwrap().text().await.unwrap();
    let assets = assets_of(&html);
    assert!(assets.iter().any(|a| a.starts_with("/static/dsfr/") && a.ends_with("/dsfr.min.css")), "{assets:?}");
    assert!(assets.iter().any(|a| a.starts_with("/static/aiguillage.") && a.ends_with(".css")), "{assets:?}");
    assert!(assets.iter().all(|a| a.starts_with('/') && !a.starts_with("//")), "only this host: {assets:?}");
    assert!(!html.contains("fr-logo"), "no State brand unless the operator says so");
    assert!(html.contains("fr-header") && html.contains("fr-footer"), "DSFR components");

    let dsfr = assets.iter().find(|a| a.ends_with("/dsfr.min.css")).unwrap();
    let plain = client.get(format!("{}{dsfr}", app.base)).header(ACCEPT_ENCODING, "identity").send().await.unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(plain.headers()[CACHE_CONTROL], IMMUTABLE);
    assert_eq!(plain.headers()[CONTENT_TYPE], "text/css; charset=utf-8");
    assert!(plain.headers().get(CONTENT_ENCODING).is_none());
    let css = plain.text().await.unwrap();
    assert!(css.contains(".fr-header"), "the DSFR's stylesheet");

    let gz = client.get(format!("{}{dsfr}", app.base)).header(ACCEPT_ENCODING, "gzip, br").send().await.unwrap();
    assert_eq!(gz.headers()[CONTENT_ENCODING], "gzip");
    assert_eq!(gz.headers()[CACHE_CONTROL], IMMUTABLE);
    let bytes = gz.bytes().await.unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "a gzip stream");
    assert!(bytes.len() < css.len() / 4, "{} compressed of {}", bytes.len(), css.len());

    // A file the stylesheet names, relative to it: an icon.
    let icon_at = css.find("url(icons/").expect("the stylesheet names its icons") + "url(".len();
    let icon = &css[icon_at..icon_at + css[icon_at..].find(')').unwrap()];
    let dir = &dsfr[..dsfr.rfind('/').unwrap()];
    let r = client.get(format!("{}{dir}/{icon}", app.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{icon}");
    assert_eq!(r.headers()[CONTENT_TYPE], "image/svg+xml");
    assert_eq!(r.headers()[CACHE_CONTROL], IMMUTABLE);

    let own = assets.iter().find(|a| a.starts_with("/static/aiguillage.")).unwrap();
    let r = client.get(format!("{}{own}", app.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[CACHE_CONTROL], IMMUTABLE);

    // Another version, another hash, a file that is not there, a path outside: 404.
    for missing in [
        "/static/dsfr/0.0.1/dsfr.min.css".to_string(),
        format!("{dir}/nothing.css"),
        format!("{dir}/../../aiguillage.css"),
        "/static/aiguillage.000000000000.css".to_string(),
        "/static/aiguillage.css".to_string(),
    ] {
        let r = client.get(format!("{}{missing}", app.base)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{missing}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_commune_search_finds_angouleme_by_name_or_postcode_without_a_token() {
    let app = TestApp::spawn().await;
    for q in ["Angoul%C3%AAme", "angouleme", "16000", "ANGOU"] {
        let (status, body, headers) =
            app.request(reqwest::Method::GET, &format!("/api/v1/communes?q={q}"), None, None).await;
        assert_eq!(status, 200, "{q}: {body}");
        let first = &body["communes"][0];
        assert_eq!(first["code"], "16015", "{q}: {body}");
        assert_eq!(first["name"], "Angoulême");
        assert_eq!(first["departement"], "16");
        assert!(first["postcodes"].as_array().unwrap().iter().any(|p| p == "16000"));
        assert!(headers[CACHE_CONTROL].to_str().unwrap().starts_with("public"));
    }
    let (status, body, _) = app.request(reqwest::Method::GET, "/api/v1/communes?q=16&limit=3", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["communes"].as_array().unwrap().len(), 3);
    let (status, body, _) = app.request(reqwest::Method::GET, "/api/v1/communes?q=Nullepartville", None, None).await;
    assert_eq!((status, body["communes"].as_array().unwrap().len()), (200, 0));

    let long = "a".repeat(101);
    for (query, field) in [
        ("".to_string(), "q"),
        ("q=".to_string(), "q"),
        ("q=%20%20".to_string(), "q"),
        (format!("q={long}"), "q"),
        ("q=a%00b".to_string(), "q"),
        ("q=angou%0B".to_string(), "q"),
        ("q=angou&limit=0".to_string(), "limit"),
        ("q=angou&limit=51".to_string(), "limit"),
        ("q=angou&limit=dix".to_string(), "limit"),
        ("q=angou&other=1".to_string(), "other"),
    ] {
        let (status, body, headers) =
            app.request(reqwest::Method::GET, &format!("/api/v1/communes?{query}"), None, None).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(headers[CONTENT_TYPE], "application/problem+json", "{query}");
        let named = body["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["field"].as_str().is_some_and(|f| f.contains(field)));
        assert!(named, "{query}: the problem names {field}: {body}");
    }
    app.stop().await;
}
