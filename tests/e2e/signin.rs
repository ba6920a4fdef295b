//! Signing in through the web app with a real OpenID provider (deploy/dev/oidc): the whole
//! flow, every forged or replayed answer, key rotation, userinfo as a JWT, sign-out,
//! session fixation, CSRF, open redirects, and a membership removed during a session.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::support::TestApp;
use crate::support::oidc::{Agent, CAMILLE, CLAIRE, KARIM, LEA, NewAgent, OidcClient, OidcProvider, Tamper};

/// A server whose web app signs in with `client` of `oidc`.
pub async fn server(oidc: &OidcProvider, client: &OidcClient) -> TestApp {
    let (issuer, id, secret) = (oidc.issuer().to_string(), client.id.clone(), client.secret.clone());
    TestApp::spawn_with(move |c| {
        c.oidc = vec![
            ("AIGUILLAGE_OIDC_ISSUER".into(), issuer),
            ("AIGUILLAGE_OIDC_CLIENT_ID".into(), id),
            ("AIGUILLAGE_OIDC_CLIENT_SECRET".into(), secret),
        ];
    })
    .await
}

/// A browser: a cookie jar, and redirects left to the test.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

pub fn location(r: &reqwest::Response) -> String {
    r.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers().get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect()
}

/// The session cookie a response sets (not a clearing one), if any.
fn session_set(r: &reqwest::Response) -> Option<String> {
    set_cookies(r).into_iter().find(|c| c.starts_with("aiguillage_session=") && !c.starts_with("aiguillage_session=;"))
}

/// Starts a sign-in at `/auth/login?next=…`, signs `agent` in at the provider, and returns
/// the relying party's answer to the callback (not followed).
pub async fn sign_in(
    app: &TestApp,
    oidc: &OidcProvider,
    browser: &reqwest::Client,
    agent: &Agent,
    next: &str,
) -> reqwest::Response {
    let login = browser.get(format!("{}/auth/login?next={next}", app.base)).send().await.unwrap();
    assert_eq!(login.status(), StatusCode::FOUND, "{}", login.text().await.unwrap());
    let authorize = location(&login);
    assert!(authorize.starts_with(oidc.issuer()), "{authorize}");
    let callback = oidc.sign_in(browser, &authorize, agent).await.unwrap();
    assert!(callback.as_str().starts_with(&format!("{}/auth/callback", app.base)), "{callback}");
    browser.get(callback).send().await.unwrap()
}

/// The page's HTML, with the apostrophes askama escapes put back.
pub async fn text(r: reqwest::Response) -> String {
    r.text().await.unwrap().replace("&#39;", "'")
}

pub async fn page(app: &TestApp, browser: &reqwest::Client, path: &str) -> (StatusCode, String, String) {
    let r = browser.get(format!("{}{path}", app.base)).header("accept", "text/html").send().await.unwrap();
    let (status, loc) = (r.status(), location(&r));
    (status, loc, text(r).await)
}

/// Posts a form as the browser does from one of the site's pages (its `Origin`):
/// `target` is a path of the site, or the whole URL of one. The form carries its own
/// CSRF token (see [`csrf_of`]).
pub async fn submit<F: serde::Serialize + ?Sized>(
    app: &TestApp,
    browser: &reqwest::Client,
    target: &str,
    form: &F,
) -> reqwest::Response {
    let url = if target.starts_with("http") { target.to_string() } else { format!("{}{target}", app.base) };
    browser.post(url).header("origin", &app.base).form(form).send().await.unwrap()
}

/// The form token of the page's sign-out form.
pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form with a CSRF token");
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

pub async fn grant(app: &TestApp, args: &[&str]) {
    let (ok, out, err) = app.sandbox.cli(&[&["account", "grant"], args].concat()).await;
    assert!(ok, "{out}{err}");
}

#[tokio::test]
async fn an_invited_agent_signs_in_sees_their_space_and_signs_out_at_the_provider() {
    let oidc = OidcProvider::start().await;
    let app = server(&oidc, oidc.client()).await;
    let organisation = app.organisation("16").await;
    grant(
        &app,
        &[
            "--email",
            "Claire.Dubois@ccas-angouleme.example",
            "--role",
            "referrer",
            "--organisation",
            &organisation.to_string(),
        ],
    )
    .await;
    let browser = browser();

    // Not signed in: the home page sends to /connexion with where to come back.
    let (status, loc, _) = page(&app, &browser, "/compte").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(loc, "/connexion?next=%2Fcompte");
    let (status, _, html) = page(&app, &browser, "/connexion?next=%2Fcompte").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("S'identifier avec ProConnect") && html.contains("href=\"/auth/login?next=%2Fcompte\""));

    // The authorization request follows ProConnect's rules (the strict provider refuses others).
    let login = browser.get(format!("{}/auth/login?next=/compte", app.base)).send().await.unwrap();
    let flow_cookie = set_cookies(&login).into_iter().find(|c| c.starts_with("aiguillage_signin=")).unwrap();
    assert!(flow_cookie.contains("HttpOnly") && flow_cookie.contains("SameSite=Lax"), "{flow_cookie}");
    let authorize = reqwest::Url::parse(&location(&login)).unwrap();
    let params: std::collections::HashMap<String, String> = authorize.query_pairs().into_owned().collect();
    assert!(params["state"].len() >= 32 && params["nonce"].len() >= 32);
    assert_eq!(params["client_id"], oidc.client().id);
    assert_eq!(params["redirect_uri"], format!("{}/auth/callback", app.base));
    let callback = oidc.sign_in(&browser, authorize.as_str(), &Agent::Demo(CLAIRE)).await.unwrap();
    let done = browser.get(callback).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&done), "/compte");
    let cookie = session_set(&done).expect("a session cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http here: {cookie}");

    // Signed in: the header names the agent and the space; nothing is cached.
    let r = browser.get(format!("{}/compte", app.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let html = text(r).await;
    assert!(html.contains("Claire Dubois"), "{html}");
    assert!(html.contains("Prescription — "), "{html}");
    assert!(html.contains("<h1>Mon compte</h1>"));
    assert!(!html.contains("Changer d'espace"), "one membership only");

    // The audit has the sign-in.
    let (s, audit) = app.get("/api/v1/accounts/audit", &app.admin).await;
    assert_eq!(s, 200, "{audit}");
    assert!(audit.to_string().contains("\"sign_in\""), "{audit}");

    // Sign-out needs the form's token; then the provider ends its session and sends back.
    let csrf = csrf_of(&html);
    let out = submit(&app, &browser, "/deconnexion", &[("csrf", csrf.as_str())]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let end_session = location(&out);
    let end = reqwest::Url::parse(&end_session).unwrap();
    let end_params: std::collections::HashMap<String, String> = end.query_pairs().into_owned().collect();
    assert!(end_params.contains_key("id_token_hint") && end_params["state"].len() >= 32);
    assert_eq!(end_params["post_logout_redirect_uri"], format!("{}/connexion", app.base));
    let back = oidc.follow(&browser, &end_session).await.unwrap();
    assert!(back.as_str().starts_with(&format!("{}/connexion", app.base)), "{back}");
    let (status, loc, _) = page(&app, &browser, "/compte").await;
    assert_eq!((status, loc.as_str()), (StatusCode::SEE_OTHER, "/connexion?next=%2Fcompte"));
    let (_, audit) = app.get("/api/v1/accounts/audit", &app.admin).await;
    assert!(audit.to_string().contains("\"sign_out\""), "{audit}");
    app.stop().await;
}

#[tokio::test]
async fn every_forged_or_replayed_answer_is_refused_with_a_french_page_and_no_session() {
    let oidc = OidcProvider::start().await;
    let app = server(&oidc, oidc.client()).await;

    // A wrong state.
    let b = browser();
    let login = b.get(format!("{}/auth/login", app.base)).send().await.unwrap();
    let callback = oidc.sign_in(&b, &location(&login), &Agent::Demo(KARIM)).await.unwrap();
    let mut forged = callback.clone();
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" { "x".repeat(43) } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    let r = b.get(forged).send().await.unwrap();
    assert_refused(r, "state_unknown").await;
    // That burnt this browser's sign-in: the real callback comes too late.
    assert_refused(b.get(callback).send().await.unwrap(), "state_other_browser").await;
    // Replayed: a state is used once.
    let b = browser();
    let login = b.get(format!("{}/auth/login", app.base)).send().await.unwrap();
    let callback = oidc.sign_in(&b, &location(&login), &Agent::Demo(KARIM)).await.unwrap();
    assert_eq!(b.get(callback.clone()).send().await.unwrap().status(), StatusCode::SEE_OTHER);
    assert_refused(b.get(callback).send().await.unwrap(), "state_unknown").await;

    // The callback in another browser than the one that started the sign-in.
    let (starter, thief) = (browser(), browser());
    let login = starter.get(format!("{}/auth/login", app.base)).send().await.unwrap();
    let callback = oidc.sign_in(&starter, &location(&login), &Agent::Demo(KARIM)).await.unwrap();
    assert_refused(thief.get(callback).send().await.unwrap(), "state_other_browser").await;

    // A replayed code: a new sign-in's state with the code of one already exchanged.
    let b = browser();
    let login = b.get(format!("{}/auth/login", app.base)).send().await.unwrap();
    let first = oidc.sign_in(&b, &location(&login), &Agent::Demo(KARIM)).await.unwrap();
    let code = first.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    assert_eq!(b.get(first).send().await.unwrap().status(), StatusCode::SEE_OTHER);
    let login = b.get(format!("{}/auth/login", app.base)).send().await.unwrap();
    let second = oidc.sign_in(&b, &location(&login), &Agent::Demo(KARIM)).await.unwrap();
    let pairs: Vec<(String, String)> = second
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "code" { code.clone() } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    let mut replayed = second.clone();
    replayed.query_pairs_mut().clear().extend_pairs(pairs);
    assert_refused(b.get(replayed).send().await.unwrap(), "token_exchange").await;

    // Tokens the provider signs (or not) with something wrong in them.
    for (mode, reason) in [
        (Tamper::WrongNonce, "nonce_mismatch"),
        (Tamper::Expired, "id_token_expired"),
        (Tamper::WrongAudience, "wrong_audience"),
        (Tamper::WrongIssuer, "wrong_issuer"),
        (Tamper::AlgNone, "bad_signature"),
        (Tamper::Hs256WithPublicKey, "bad_signature"),
        (Tamper::UnknownKid, "bad_signature"),
        (Tamper::BadSignature, "bad_signature"),
    ] {
        oidc.tamper(mode).await;
        let b = browser();
        let r = sign_in(&app, &oidc, &b, &Agent::Demo(KARIM), "/").await;
        assert_refused(r, reason).await;
        oidc.reset().await;
    }

    // The provider says no (the agent cancelled).
    let b = browser();
    let login = b.get(format!("{}/auth/login", app.base)).send().await.unwrap();
    let mut denied = reqwest::Url::parse(&format!("{}/auth/callback", app.base)).unwrap();
    let state = reqwest::Url::parse(&location(&login))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    denied.query_pairs_mut().append_pair("error", "access_denied").append_pair("state", &state);
    assert_refused(b.get(denied).send().await.unwrap(), "provider_error").await;

    // Each failure is in the audit, with its code and no personal value.
    let (_, audit) = app.get("/api/v1/accounts/audit?limit=100", &app.admin).await;
    let text = audit.to_string();
    for reason in
        ["state_unknown", "nonce_mismatch", "id_token_expired", "wrong_audience", "wrong_issuer", "bad_signature"]
    {
        assert!(text.contains(reason), "{reason} not audited: {text}");
    }
    assert!(!text.contains("karim.benali"), "no e-mail in the audit: {text}");
    app.stop().await;
}

async fn assert_refused(r: reqwest::Response, reason: &str) {
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{reason}");
    assert!(session_set(&r).is_none(), "{reason}: no session may be left behind");
    let html = text(r).await;
    assert!(html.contains("<html lang=\"fr\">") && html.contains("La connexion n'a pas abouti"), "{html}");
    assert!(html.contains("href=\"/connexion\""), "a way back: {html}");
    assert!(html.contains(reason), "{reason}: {html}");
}

#[tokio::test]
async fn keys_rotate_at_the_provider_and_userinfo_may_be_a_signed_jwt() {
    let oidc = OidcProvider::start().await;
    // userinfo as an RS256 JWT.
    let app = server(&oidc, oidc.jwt_client()).await;
    let b = browser();
    let r = sign_in(&app, &oidc, &b, &Agent::Demo(CAMILLE), "/").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
    let (_, _, html) = page(&app, &b, "/compte").await;
    assert!(html.contains("Camille Lefèvre") && html.contains("13002603200016"), "{html}");

    // The provider signs with a new key and drops the old one: the JWKS is fetched again.
    oidc.rotate_key_dropping_old().await;
    let b = browser();
    let r = sign_in(&app, &oidc, &b, &Agent::Demo(CAMILLE), "/").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());

    // A forged userinfo JWT is refused like a forged ID token.
    for mode in [Tamper::WrongSub, Tamper::WrongAudience, Tamper::AlgNone, Tamper::BadSignature] {
        oidc.tamper_userinfo(mode).await;
        let b = browser();
        assert_refused(sign_in(&app, &oidc, &b, &Agent::Demo(CAMILLE), "/").await, "userinfo").await;
        oidc.reset().await;
    }
    app.stop().await;

    // ProConnect's defaults: ES256 ID tokens and ES256 userinfo.
    let app = server(&oidc, oidc.es256_client()).await;
    let b = browser();
    let r = sign_in(&app, &oidc, &b, &Agent::Demo(CAMILLE), "/").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
    app.stop().await;
}

#[tokio::test]
async fn sessions_cannot_be_fixed_forms_need_their_token_and_next_stays_on_the_site() {
    let oidc = OidcProvider::start().await;
    let app = server(&oidc, oidc.client()).await;
    let organisation = app.organisation("16").await;
    let o = organisation.to_string();
    grant(
        &app,
        &["--email", "karim.benali@regie-urbaine-angouleme.example", "--role", "referrer", "--organisation", &o],
    )
    .await;
    grant(
        &app,
        &["--email", "karim.benali@regie-urbaine-angouleme.example", "--role", "coordinator", "--territory", "16"],
    )
    .await;

    // A session id planted before sign-in is not the one after.
    let planted = "aiguillage_session=planted-by-an-attacker-0123456789abcdef";
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    jar.add_cookie_str(&format!("{planted}; Path=/"), &app.base.parse().unwrap());
    let b =
        reqwest::Client::builder().cookie_provider(jar).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = b.get(format!("{}/auth/login?next=//evil.example/x", app.base)).send().await.unwrap();
    let callback = oidc.sign_in(&b, &location(&login), &Agent::Demo(KARIM)).await.unwrap();
    let done = b.get(callback).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&done), "/", "an open redirect in next goes home");
    let cookie = session_set(&done).unwrap();
    assert!(!cookie.contains("planted-by-an-attacker"), "{cookie}");
    let r = browser().get(format!("{}/compte", app.base)).header(COOKIE, planted).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the planted id is no session");
    assert!(location(&r).starts_with("/connexion"));

    for next in ["https://evil.example/", "/\\evil.example", "%2F%2Fevil.example"] {
        let b2 = browser();
        let r = sign_in(&app, &oidc, &b2, &Agent::Demo(KARIM), next).await;
        assert_eq!(location(&r), "/", "{next}");
    }

    // Two memberships: "Changer d'espace", and the switch needs the token too.
    let (_, _, html) = page(&app, &b, "/").await;
    assert!(html.contains("Changer d'espace"), "{html}");
    let csrf = csrf_of(&html);
    let (_, compte) = (0, page(&app, &b, "/compte").await.2);
    let other = compte
        .split("name=\"membership\" value=\"")
        .nth(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .expect("a membership to switch to");
    let post = |body: Vec<(&'static str, String)>, origin: Option<&str>| {
        let mut r = b.post(format!("{}/espace", app.base)).form(&body);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    let missing = post(vec![("membership", other.clone())], Some(&app.base)).await.unwrap();
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    let wrong = post(vec![("membership", other.clone()), ("csrf", "x".repeat(43))], Some(&app.base)).await.unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let cross =
        post(vec![("membership", other.clone()), ("csrf", csrf.clone())], Some("https://evil.example")).await.unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    let no_origin = post(vec![("membership", other.clone()), ("csrf", csrf.clone())], None).await.unwrap();
    assert_eq!(no_origin.status(), StatusCode::FORBIDDEN);
    let ok = post(vec![("membership", other), ("csrf", csrf.clone())], Some(&app.base)).await.unwrap();
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let (_, _, html) = page(&app, &b, "/").await;
    assert!(html.contains("Coordination — "), "{html}");
    // Sign-out without its token is refused too, and the session lives on.
    let out = b.post(format!("{}/deconnexion", app.base)).header("origin", &app.base).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::FORBIDDEN);
    assert_eq!(page(&app, &b, "/compte").await.0, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_agent_waits_asks_for_their_siret_s_place_and_loses_a_removed_membership() {
    let oidc = OidcProvider::start().await;
    let app = server(&oidc, oidc.client()).await;
    // Léa's employer's SIRET is a known organisation's.
    let (s, org) = app
        .post(
            "/api/v1/organisations",
            &app.admin,
            json!({"name": "MJC Mosaïque", "kind": "partner", "territory": "16", "siret": "38973354400073"}),
        )
        .await;
    assert_eq!(s, 201, "{org}");
    let org_id = org["id"].as_str().unwrap().to_string();
    crate::accounts::until_place(&app, &org_id).await;

    let b = browser();
    let r = sign_in(&app, &oidc, &b, &Agent::Demo(LEA), "/").await;
    assert_eq!(location(&r), "/");
    let (status, _, html) = page(&app, &b, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<h1>Votre compte est en attente de validation</h1>"), "{html}");
    assert!(
        html.contains("Lieux de votre employeur (SIRET)") && html.contains(&format!("organisation:{org_id}")),
        "{html}"
    );
    let csrf = csrf_of(&html);

    // No choice: a French message beside the field.
    let r = submit(&app, &b, "/compte/demandes", &[("csrf", csrf.as_str()), ("place", "")]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = text(r).await;
    assert!(
        html.contains("id=\"place-error\"") && html.contains("Choisissez une organisation ou une structure"),
        "{html}"
    );

    let place = format!("organisation:{org_id}");
    let r = submit(
        &app,
        &b,
        "/compte/demandes",
        &[("csrf", csrf.as_str()), ("place", place.as_str()), ("message", "Je suis animatrice à la MJC.")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
    let (_, _, html) = page(&app, &b, &location(&r)).await;
    assert!(html.contains("Votre demande d'accès a été envoyée") && html.contains("MJC Mosaïque"), "{html}");
    // Asking twice says so beside the field.
    let r = submit(&app, &b, "/compte/demandes", &[("csrf", csrf.as_str()), ("place", place.as_str())]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // An admin approves: the next page is the space.
    let (_, requests) = app.get("/api/v1/accounts/requests", &app.admin).await;
    let id = requests["items"][0]["id"].as_str().unwrap().to_string();
    let (s, v) = app.post(&format!("/api/v1/accounts/requests/{id}/approve"), &app.admin, json!({})).await;
    assert_eq!(s, 200, "{v}");
    let (_, _, html) = page(&app, &b, "/").await;
    assert!(html.contains("Prescription — MJC Mosaïque"), "{html}");

    // Removed during the session: the very next page has no space any more.
    let (ok, out, err) = app.sandbox.cli(&["account", "revoke", "--email", "lea.fontaine@mjc-mosaique.example"]).await;
    assert!(ok, "{out}{err}");
    let (_, _, html) = page(&app, &b, "/").await;
    assert!(html.contains("<h1>Votre compte est en attente de validation</h1>"), "{html}");
    assert!(!html.contains("Prescription — MJC Mosaïque"), "{html}");
    app.stop().await;
}

#[tokio::test]
async fn a_new_identity_signs_in_and_waits_for_a_membership() {
    let oidc = OidcProvider::start().await;
    let app = server(&oidc, oidc.client()).await;
    let b = browser();
    let agent = NewAgent::new("nina.nouvelle@example.org").with_siret("12345678901234");
    let r = sign_in(&app, &oidc, &b, &Agent::New(agent), "/compte").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, _, html) = page(&app, &b, "/compte").await;
    assert!(html.contains("Nina Nouvelle") && html.contains("Votre compte est en attente"), "{html}");
    app.stop().await;
}
