//! The pages of a structure without an account (`/reponse/{token}`, issue 23) against the
//! real server: over a real socket, a client that keeps opening links that do not work
//! is slowed down by its own address, or behind the proxy by the address it forwards.

use std::time::Duration;

use reqwest::StatusCode;

use crate::support::TestApp;

#[tokio::test]
async fn a_client_that_keeps_opening_unknown_links_waits_counted_by_its_address_or_the_proxy_s_forwarded_one() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let get = |n: u32, forwarded: Option<&'static str>| {
        // Plausible tokens (43 URL-safe characters), none of them a link.
        let mut request = client.get(format!("{}/reponse/{n:0>43}", app.base)).header("accept", "text/html");
        if let Some(f) = forwarded {
            request = request.header("x-forwarded-for", f);
        }
        request.timeout(Duration::from_secs(10)).send()
    };
    // The server's socket peer is loopback, as the proxy is: the client is the address
    // the proxy forwards, its last entry (the first is whatever the client sent).
    for n in 0..10 {
        let r = get(n, Some("192.0.2.77, 203.0.113.1")).await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert_eq!(r.headers()["x-robots-tag"], "noindex");
    }
    let slowed = get(10, Some("203.0.113.1")).await.unwrap();
    assert_eq!(slowed.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = slowed.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(slowed.text().await.unwrap().contains("Trop de tentatives"));
    // Another client behind the same proxy, and the proxy's own address: not slowed.
    assert_eq!(get(11, Some("203.0.113.2")).await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(get(12, None).await.unwrap().status(), StatusCode::NOT_FOUND);
    // The rest of the site is not slowed down for that client.
    let other = client.get(format!("{}/connexion", app.base)).header("x-forwarded-for", "203.0.113.1");
    assert_eq!(other.send().await.unwrap().status(), StatusCode::OK);
    app.stop().await;
}
