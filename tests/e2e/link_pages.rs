//! The pages of issue 23 against the real server, as a browser without JavaScript uses
//! them: a place without an account answers its e-mail's offer on the link's page and the
//! referrer sees it accepted; a waitlisted referral's page lists the places nearby that
//! only a phone call reaches, and the coordinator sees them as unreachable; over a real
//! socket, a client that keeps opening links that do not work is slowed down by its own
//! address, or behind the proxy by the address it forwards.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::signin::{browser, csrf_of, grant, location, page, sign_in, submit};
use crate::support::oidc::{Agent, CLAIRE, OidcProvider, SOPHIE};
use crate::support::smtp::SmtpServer;
use crate::support::*;

/// A server whose web app signs in with the provider, and whose e-mails go to `smtp`.
async fn server(oidc: &OidcProvider, smtp: Option<&SmtpServer>) -> TestApp {
    let client = oidc.client();
    let (issuer, id, secret) = (oidc.issuer().to_string(), client.id.clone(), client.secret.clone());
    let smtp = smtp.map(SmtpServer::url);
    TestApp::spawn_with(move |c| {
        c.oidc = vec![
            ("AIGUILLAGE_OIDC_ISSUER".into(), issuer),
            ("AIGUILLAGE_OIDC_CLIENT_ID".into(), id),
            ("AIGUILLAGE_OIDC_CLIENT_SECRET".into(), secret),
        ];
        c.smtp_url = smtp;
    })
    .await
}

fn place(name: &str, lat: f64, email: Option<&str>) -> Value {
    merged(structure(name, lat, 0.1550, &[AIDE], 5), json!({"contact": {"email": email, "phone": "05 45 00 01 11"}}))
}

/// The referral's page as Claire, referrer of `org`, reads it once signed in.
async fn referral_page(app: &TestApp, oidc: &OidcProvider, org: uuid::Uuid, id: &str) -> String {
    let org = org.to_string();
    grant(app, &["--email", "claire.dubois@ccas-angouleme.example", "--role", "referrer", "--organisation", &org])
        .await;
    let claire = browser();
    sign_in(app, oidc, &claire, &Agent::Demo(CLAIRE), "/").await;
    let (status, _, html) = page(app, &claire, &format!("/orientations/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    html
}

#[tokio::test]
async fn a_place_answers_its_e_mail_s_offer_on_the_link_s_page_and_the_referrer_sees_it_accepted() {
    let smtp = SmtpServer::start(&[]).await;
    let oidc = OidcProvider::start().await;
    let app = server(&oidc, Some(&smtp)).await;
    let org = app.organisation("16").await;
    app.structure("lieu-sans-compte", place("Lieu Sans Compte", 45.6500, Some("accueil@sans-compte.example"))).await;
    let referrer = app.referrer(org);
    let id = app.submit(&referrer, referral()).await;
    app.until_status(&id, &referrer, "offered").await;
    let mail = eventually("the offer's e-mail", Duration::from_secs(60), || async {
        smtp.messages().into_iter().find(|m| m.rcpt_tos.iter().any(|r| r == "accueil@sans-compte.example"))
    })
    .await;
    // The link's path (the e-mail's host is AIGUILLAGE_PUBLIC_URL's, which this test
    // server does not set).
    let text = mail.text();
    let at = text.find("/reponse/").unwrap_or_else(|| panic!("no link in {text}"));
    let path: String =
        text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_')).collect();

    // The page, as the desk opens it from the e-mail: no session, no cookie.
    let desk = browser();
    let (status, _, html) = page(&app, &desk, &path).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Pour <strong>Lieu Sans Compte</strong>"), "{html}");
    assert!(!html.contains("Essai") && !html.contains("+33612345678"), "no identity before acceptance");
    let accepted = submit(&app, &desk, &format!("{path}/acceptation"), &[("csrf", csrf_of(&html))]).await;
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&accepted), format!("{path}?acceptee=1"));
    let (status, _, html) = page(&app, &desk, &location(&accepted)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Suivi de Camille Essai") && html.contains("tel:+33612345678"), "{html}");
    // The history says how it was answered.
    let (_, r) = app.get(&format!("/api/v1/referrals/{id}"), &app.admin).await;
    let step = r["history"].as_array().unwrap().iter().find(|h| h["status"] == "accepted").cloned().unwrap();
    assert_eq!(step["via"], "answer_link", "{r}");

    // The referrer's page names the place that took the person on.
    let html = referral_page(&app, &oidc, org, &id).await;
    assert!(html.contains("Accueillie par Lieu Sans Compte"), "{html}");
    app.stop().await;
}

#[tokio::test]
async fn a_waitlisted_referral_lists_the_places_a_phone_call_reaches_and_the_coordinator_sees_them_unreachable() {
    let oidc = OidcProvider::start().await;
    let app = server(&oidc, None).await;
    let org = app.organisation("16").await;
    // No mediator, no address: never offered, but it has a phone.
    app.structure("lieu-injoignable", place("Lieu Injoignable", 45.6500, None)).await;
    let referrer = app.referrer(org);
    let id = app.submit(&referrer, referral()).await;
    app.until_status(&id, &referrer, "waitlisted").await;

    let html = referral_page(&app, &oidc, org, &id).await;
    let at = html.find("Lieux proches joignables par téléphone").unwrap_or_else(|| panic!("the section: {html}"));
    let section = &html[at..at + html[at..].find("</section>").unwrap()];
    assert!(section.contains("<strong>Lieu Injoignable</strong>"), "{section}");
    assert!(section.contains(r#"<a href="tel:+33545000111">"#), "{section}");

    grant(
        &app,
        &["--email", "sophie.martin@departement-charente.example", "--role", "coordinator", "--territory", "16"],
    )
    .await;
    let sophie = browser();
    sign_in(&app, &oidc, &sophie, &Agent::Demo(SOPHIE), "/territoire").await;
    let html = eventually("notify to know the place", Duration::from_secs(20), || async {
        let (status, _, html) = page(&app, &sophie, "/territoire").await;
        (status == StatusCode::OK && html.contains("Structures injoignables (1)")).then_some(html)
    })
    .await;
    let at = html.find("Structures injoignables (1)").unwrap();
    let table = &html[at..];
    assert!(table.contains("Lieu Injoignable") && table.contains("+33545000111"), "{table}");
    assert!(table.contains("Aucune adresse e-mail publique"), "{table}");
    app.stop().await;
}

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
