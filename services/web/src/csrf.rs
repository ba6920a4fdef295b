//! Every state-changing form carries the session's synchronizer token, and comes from
//! this site: its `Origin` (or, without one, its `Referer`) is the public URL's origin.
//! Without both it gets 403.

use http::HeaderMap;
use http::header::{ORIGIN, REFERER};

use crate::session::same_secret;

pub fn same_origin(headers: &HeaderMap, origin: &str) -> bool {
    if let Some(o) = headers.get(ORIGIN) {
        return o.to_str().is_ok_and(|o| o == origin);
    }
    headers
        .get(REFERER)
        .and_then(|r| r.to_str().ok())
        .is_some_and(|r| r == origin || r.starts_with(&format!("{origin}/")))
}

/// The form's token is the session's, and the request is same-origin.
pub fn check(headers: &HeaderMap, origin: &str, form_token: Option<&str>, session_token: &str) -> bool {
    same_origin(headers, origin) && form_token.is_some_and(|t| same_secret(t, session_token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(http::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn needs_both_the_token_and_the_origin() {
        let site = "https://aiguillage.example";
        let ok = headers(&[(ORIGIN, site)]);
        assert!(check(&ok, site, Some("t"), "t"));
        assert!(!check(&ok, site, Some("u"), "t"));
        assert!(!check(&ok, site, None, "t"));
        assert!(!check(&headers(&[]), site, Some("t"), "t"));
        assert!(!check(&headers(&[(ORIGIN, "https://evil.example")]), site, Some("t"), "t"));
        assert!(!check(&headers(&[(ORIGIN, "null")]), site, Some("t"), "t"));
        assert!(check(&headers(&[(REFERER, "https://aiguillage.example/compte")]), site, Some("t"), "t"));
        assert!(!check(&headers(&[(REFERER, "https://aiguillage.example.evil.example/")]), site, Some("t"), "t"));
        // An Origin that is wrong is not saved by a good Referer.
        let both = headers(&[(ORIGIN, "https://evil.example"), (REFERER, "https://aiguillage.example/")]);
        assert!(!check(&both, site, Some("t"), "t"));
    }
}
