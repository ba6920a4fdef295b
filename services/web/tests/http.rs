//! The fast tier of the web app: its pages through the router with `oneshot`, against the
//! real API routers of the services they call (accounts, directory, referrals, matcher,
//! insights) in process, each test on a database of its own (`#[sqlx::test]`). No broker
//! and no server: what needs events to flow is in the end-to-end suite.
//!
//! Signing in as a role: the accounts API records the agent (as the web app does at the
//! provider's return), the operator's grant gives the membership, and a session row is
//! created through the web app's own session module.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use contracts::events::MatchProposed;
use contracts::{Envelope, OrganisationId, ReferralId, Role, StructureId};
use platform::auth::{Claims, Scope};
use platform::testing::{Keys, call, migrate_platform};
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt;
use uuid::Uuid;

/// The site's origin, as forms must come from it.
const SITE: &str = "http://aiguillage.test";

struct App {
    pool: PgPool,
    keys: Keys,
    /// The API alone, to set the scene.
    api: Router,
    /// The web app, with the API behind it.
    web: Router,
    accounts_vault: platform::vault::Vault,
}

/// A signed-in browser: its session cookie and the session's form token.
struct Browser {
    cookie: String,
    csrf: String,
}

/// A page as the browser gets it.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    html: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
}

/// The services' configuration: the defaults, but for `settings`.
fn config(settings: &[(&str, &str)]) -> Arc<platform::Config> {
    let lookup = |key: &str| settings.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string());
    Arc::new(platform::Config::from_lookup(lookup).unwrap())
}

impl App {
    async fn new(pool: PgPool) -> Self {
        Self::configured(pool, &[]).await
    }

    async fn configured(pool: PgPool, settings: &[(&str, &str)]) -> Self {
        migrate_platform(&pool).await;
        referrals::migrate(&pool).await.unwrap();
        directory::migrate(&pool).await.unwrap();
        accounts::migrate(&pool).await.unwrap();
        matcher::migrate(&pool).await.unwrap();
        insights::migrate(&pool).await.unwrap();
        web::migrate(&pool).await.unwrap();
        let keys = Keys::default();
        let master = platform::vault::MasterKey::generate_base64();
        let key = || platform::vault::MasterKey::from_base64(&master, "test").unwrap();
        let referrals_vault = referrals::open_vault(&pool, key(), None).await.unwrap();
        let accounts_vault = accounts::open_vault(&pool, key(), None).await.unwrap();
        let (auth, config) = (keys.authenticator(), config(settings));
        let api = Router::new()
            .merge(referrals::router(referrals::ReferralsState {
                pool: pool.clone(),
                auth: auth.clone(),
                config: config.clone(),
                vault: referrals_vault,
                broker: None,
            }))
            .merge(directory::router(directory::Directory {
                pool: pool.clone(),
                auth: auth.clone(),
                config: config.clone(),
            }))
            .merge(accounts::router(accounts::AccountsState {
                pool: pool.clone(),
                auth: auth.clone(),
                config: config.clone(),
                vault: accounts_vault.clone(),
            }))
            .merge(matcher::router(matcher::MatcherState {
                pool: pool.clone(),
                auth: auth.clone(),
                config: config.clone(),
                matcher: Arc::new(matcher::routing::Matcher::new(config.max_attempts)),
                periods: Arc::default(),
                simulation_worker: None,
            }))
            .merge(insights::router(insights::InsightsState { pool: pool.clone(), auth: auth.clone(), config }));
        let api = platform::http::finish(api);
        let web = web::router(
            web::WebState::new(pool.clone(), auth, web::Api::Local(api.clone()), web_config()),
            api.clone(),
        );
        Self { pool, keys, api, web, accounts_vault }
    }

    fn admin(&self) -> String {
        self.keys.token(Role::Admin, Scope::All)
    }

    /// An API call to set the scene; it must succeed.
    async fn api(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, answer, _) = call(&self.api, method, path, Some(&self.admin()), Some(&body), &[]).await;
        assert!((200..300).contains(&status), "{method} {path}: {status} {answer}");
        answer
    }

    async fn organisation(&self) -> OrganisationId {
        let org = self.api("POST", "/api/v1/organisations", json!({"name": "CCAS", "territory": "16"})).await;
        org["id"].as_str().unwrap().parse().unwrap()
    }

    async fn structure(&self, id: &str) -> StructureId {
        let body = json!({
            "name": "Médiathèque de Mansle", "services": ["aide_demarches_administratives"],
            "address": {"street": "21 Rue Martin", "postcode": "16230", "commune": "Mansle"},
            "weekly_capacity": 5, "accepting": true, "siret": "26160011800010",
        });
        self.api("PUT", &format!("/api/v1/structures/{id}"), body).await;
        id.parse().unwrap()
    }

    /// An agent signed in with one membership: the accounts API records them, the
    /// operator grants the membership, and the session is created as the sign-in does.
    async fn sign_in(&self, grant: accounts::domain::Grant) -> Browser {
        let email = format!("agent-{}@exemple.fr", Uuid::now_v7());
        let service = self.keys.0.issue(&Claims::for_service("web", chrono::Duration::minutes(5)));
        let body = json!({"issuer": "https://proconnect.test", "subject": Uuid::now_v7(), "email": email, "given_name": "Camille"});
        let (status, signed, _) =
            call(&self.api, "POST", "/api/v1/accounts/sign-ins", Some(&service), Some(&body), &[]).await;
        assert_eq!(status, 200, "{signed}");
        let account: Uuid = signed["account_id"].as_str().unwrap().parse().unwrap();
        let granted =
            accounts::service::grant_by_email(&self.pool, &self.accounts_vault, &email, &grant, "operator:cli")
                .await
                .unwrap();
        let accounts::service::Granted::Now { membership_id, .. } = granted else { panic!("{email} has signed in") };
        let cookie = web::session::create(&self.pool, account, membership_id, "id-token", Duration::from_secs(3600))
            .await
            .unwrap();
        let session = web::session::touch(&self.pool, &cookie, Duration::from_secs(3600)).await.unwrap().unwrap();
        Browser { cookie, csrf: session.csrf }
    }

    async fn send(&self, request: Request<Body>) -> Page {
        let response = self.web.clone().oneshot(request).await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        Page { status, headers, html: String::from_utf8_lossy(&bytes).into_owned() }
    }

    async fn get(&self, browser: Option<&Browser>, path: &str) -> Page {
        let mut request = Request::get(path).header(header::ACCEPT, "text/html");
        if let Some(b) = browser {
            request = request.header(header::COOKIE, format!("aiguillage_session={}", b.cookie));
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    /// A form as a browser posts it from the site: the Origin, the session's token.
    async fn post_form(&self, browser: &Browser, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut form = vec![("csrf", browser.csrf.as_str())];
        form.extend_from_slice(fields);
        self.post_raw(Some(&browser.cookie), path, &form, Some(SITE)).await
    }

    /// A form as anyone may post it: any fields, any origin, any cookie.
    async fn post_raw(&self, cookie: Option<&str>, path: &str, fields: &[(&str, &str)], origin: Option<&str>) -> Page {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            request = request.header(header::COOKIE, format!("aiguillage_session={c}"));
        }
        if let Some(o) = origin {
            request = request.header(header::ORIGIN, o);
        }
        self.send(request.body(Body::from(body)).unwrap()).await
    }

    async fn stored(&self, id: &StructureId) -> Value {
        let path = format!("/api/v1/structures/{id}");
        call(&self.api, "GET", &path, Some(&self.admin()), None, &[]).await.1
    }

    async fn accepting(&self, id: &StructureId) -> bool {
        self.stored(id).await["accepting"].as_bool().unwrap()
    }

    fn service(&self, name: &str) -> String {
        self.keys.0.issue(&Claims::for_service(name, chrono::Duration::minutes(5)))
    }

    /// A referral of `org` offered to `place`, as the matcher's proposal makes it: no
    /// broker here, so the referrals service's handler is given the event.
    async fn offered(&self, org: OrganisationId, place: &StructureId) -> ReferralId {
        self.offered_as(org, place, "phone", None).await
    }

    /// The same, the person told by `preference`, with the referrer's `note`.
    async fn offered_as(
        &self,
        org: OrganisationId,
        place: &StructureId,
        preference: &str,
        note: Option<&str>,
    ) -> ReferralId {
        let referrer = self.keys.token(Role::Referrer, Scope::Organisation(org));
        let body = json!({
            "person": {"first_name": "Inès", "last_name": "Lambert", "phone": "06 12 34 56 78",
                       "email": "ines.lambert@exemple.fr",
                       "contact_preference": preference, "commune_code": "16015"},
            "needs": ["aide_demarches_administratives", "insertion_professionnelle"], "urgency": "urgent",
            "consent": {"obtained": true, "method": "oral"}, "note": note
        });
        let (status, r, _) = call(&self.api, "POST", "/api/v1/referrals", Some(&referrer), Some(&body), &[]).await;
        assert_eq!(status, 201, "{r}");
        let id: ReferralId = r["id"].as_str().unwrap().parse().unwrap();
        let proposed = MatchProposed {
            referral_id: id,
            round: 0,
            structure_id: place.clone(),
            structure_name: "Médiathèque de Mansle".into(),
            attempt: 1,
            score: 0.9,
            distance_km: 3.2,
            explanation: vec![],
            reasons: vec![],
            reservation_id: Uuid::now_v7(),
            proposed_at: chrono::Utc::now(),
        };
        let envelope = Envelope::new(id.to_string(), 1, &proposed);
        let handler = referrals::messaging::ReferralsHandler { offer_ttl: Duration::from_secs(72 * 3600) };
        let mut tx = self.pool.begin().await.unwrap();
        let event = referrals::messaging::Inbound::MatchProposed(proposed);
        bus::Handler::handle(&handler, &mut tx, &envelope, event).await.unwrap();
        tx.commit().await.unwrap();
        id
    }

    /// A referral offered to a place, and the link of its e-mail.
    async fn offered_link(&self) -> Offer {
        let org = self.organisation().await;
        let place = self.structure("mediatheque-mansle").await;
        let id = self.offered(org, &place).await;
        let token = self.link(id, &place).await;
        Offer { path: format!("/reponse/{token}"), org, place, id, token }
    }

    /// A link for `place` to answer `referral`, as the notifications service asks for
    /// one when it sends the e-mail.
    async fn link(&self, referral: ReferralId, place: &StructureId) -> String {
        let body = json!({"referral_id": referral, "structure_id": place});
        let notify = self.service("notify");
        let (status, minted, _) =
            call(&self.api, "POST", "/api/v1/answer-links", Some(&notify), Some(&body), &[]).await;
        assert_eq!(status, 201, "{minted}");
        minted["token"].as_str().unwrap().to_string()
    }

    /// The referral as its referrer organisation reads it.
    async fn referral(&self, id: ReferralId) -> Value {
        call(&self.api, "GET", &format!("/api/v1/referrals/{id}"), Some(&self.admin()), None, &[]).await.1
    }

    /// A page of an answer link, from a browser at `peer` (the socket's address),
    /// behind a proxy when `forwarded_for` is given.
    async fn visit(&self, path: &str, peer: &str, forwarded_for: Option<&str>) -> Page {
        let mut request = Request::get(path).header(header::ACCEPT, "text/html");
        if let Some(f) = forwarded_for {
            request = request.header("x-forwarded-for", f);
        }
        let mut request = request.body(Body::empty()).unwrap();
        let peer: std::net::SocketAddr = format!("{peer}:40000").parse().unwrap();
        request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        self.send(request).await
    }
}

/// A referral offered to a place, and the link its e-mail would carry.
struct Offer {
    org: OrganisationId,
    place: StructureId,
    id: ReferralId,
    token: String,
    /// The link's page, `/reponse/{token}`.
    path: String,
}

/// The form token of a page.
fn csrf_in(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).unwrap_or_else(|| panic!("no form token: {html}")) + 19;
    html[at..].split('"').next().unwrap().to_string()
}

/// What every answer of `/reponse/...` carries, and never the token in the title.
fn link_headers(page: &Page, token: &str) {
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(page.headers[header::REFERRER_POLICY], "same-origin");
    assert_eq!(page.headers["x-robots-tag"], "noindex");
    let title = page.html.split("<title>").nth(1).map(|t| t.split("</title>").next().unwrap()).unwrap_or_default();
    assert!(!title.contains(token), "the token in the title: {title}");
}

fn web_config() -> web::WebConfig {
    web::WebConfig {
        public_url: SITE.parse().unwrap(),
        oidc: None,
        session_idle: Duration::from_secs(3600),
        session_max: Duration::from_secs(3600),
        state_brand: false,
    }
}

fn coordinator() -> accounts::domain::Grant {
    accounts::domain::Grant::Coordinator(vec!["16".parse().unwrap()])
}

#[sqlx::test(migrations = false)]
async fn each_role_opens_its_pages_and_gets_404_on_another_s(pool: PgPool) {
    let app = App::new(pool).await;
    let org = app.organisation().await;
    let place = app.structure("mediatheque-mansle").await;
    let referrer = app.sign_in(accounts::domain::Grant::Referrer(org)).await;
    let mediator = app.sign_in(accounts::domain::Grant::Mediator(place)).await;
    let coordinator = app.sign_in(coordinator()).await;
    let admin = app.sign_in(accounts::domain::Grant::Admin).await;
    let dpo = app.sign_in(accounts::domain::Grant::Dpo).await;
    let pages: [(&Browser, &[&str]); 5] = [
        (&referrer, &["/", "/orientations", "/orientations/nouvelle", "/compte", "/compte/notifications"]),
        (&mediator, &["/propositions", "/suivis", "/ma-structure"]),
        (
            &coordinator,
            &[
                "/territoire",
                "/territoire/entonnoir",
                "/territoire/offre-et-demande",
                "/territoire/simulation",
                "/territoire/import",
                "/admin/structures",
                "/admin/structures/nouvelle",
                "/admin/structures/mediatheque-mansle/modifier",
                "/admin/comptes",
            ],
        ),
        (
            &admin,
            &["/admin/organisations", "/journal", "/territoire/simulation", "/territoire/simulation?departement=16"],
        ),
        (&dpo, &["/journal"]),
    ];
    for (browser, paths) in pages {
        for path in paths {
            let page = app.get(Some(browser), path).await;
            assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.html);
            assert_eq!(page.headers[header::CACHE_CONTROL], "no-store", "{path}");
        }
    }
    for (browser, path) in [
        (&mediator, "/orientations"),
        (&mediator, "/territoire"),
        (&mediator, "/journal"),
        (&referrer, "/propositions"),
        (&referrer, "/ma-structure"),
        (&referrer, "/admin/comptes"),
        (&coordinator, "/orientations/nouvelle"),
        (&coordinator, "/admin/organisations"),
        (&dpo, "/territoire"),
    ] {
        let page = app.get(Some(browser), path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(page.html.contains("Page introuvable"), "{path}: {}", page.html);
    }
    // Without a session, a page sends to sign-in and comes back.
    let page = app.get(None, "/propositions").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/connexion?next=%2Fpropositions");
    // A path id that is not one is a page that does not exist.
    assert_eq!(app.get(Some(&mediator), "/suivis/pas-un-id").await.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrations = false)]
async fn a_form_with_a_bad_field_answers_422_with_the_french_message_beside_it(pool: PgPool) {
    let app = App::new(pool).await;
    let place = app.structure("mediatheque-mansle").await;
    let mediator = app.sign_in(accounts::domain::Grant::Mediator(place)).await;
    let page = app.post_form(&mediator, "/ma-structure", &[("capacity", "huit"), ("accepting", "oui")]).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.html.contains(
            r#"<p class="fr-error-text" id="capacity-error">Indiquez un nombre de places entre 0 et 10 000.</p>"#
        ),
        "{}",
        page.html
    );
    assert!(page.html.contains(r#"aria-describedby="capacity-hint capacity-error""#), "{}", page.html);
    assert!(page.html.contains("<title>Erreur : ma structure"), "{}", page.html);

    let org = app.organisation().await;
    let referrer = app.sign_in(accounts::domain::Grant::Referrer(org)).await;
    let fields = [("first_name", ""), ("last_name", "Essai"), ("phone", "06 12 34 56 78"), ("commune", "16000")];
    let page = app.post_form(&referrer, "/orientations/nouvelle", &fields).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    for (field, message) in [
        ("first_name", "Indiquez le prénom de la personne (200 caractères au plus)."),
        ("consent", "L'orientation ne peut être envoyée qu'avec le consentement de la personne."),
        ("needs", "Cochez au moins un besoin."),
    ] {
        let beside = format!(r#"id="{field}-error">{}</p>"#, message.replace('\'', "&#39;"));
        assert!(page.html.contains(&beside), "{field}: {}", page.html);
    }
}

#[sqlx::test(migrations = false)]
async fn a_form_without_the_session_s_token_or_from_another_site_is_refused(pool: PgPool) {
    let app = App::new(pool).await;
    let place = app.structure("mediatheque-mansle").await;
    let mediator = app.sign_in(accounts::domain::Grant::Mediator(place.clone())).await;
    let cookie = Some(mediator.cookie.as_str());
    let token = mediator.csrf.as_str();
    // Each would close the place: (case, session cookie, form token, Origin).
    let cases = [
        ("no token", cookie, None, Some(SITE)),
        ("another token", cookie, Some("x"), Some(SITE)),
        ("another site", cookie, Some(token), Some("https://evil.example")),
        ("an opaque origin", cookie, Some(token), Some("null")),
        ("no origin", cookie, Some(token), None),
        ("no session", None, Some(token), Some(SITE)),
    ];
    for (case, cookie, csrf, origin) in cases {
        let mut fields = vec![("capacity", "0")];
        fields.extend(csrf.map(|t| ("csrf", t)));
        let page = app.post_raw(cookie, "/ma-structure", &fields, origin).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{case}");
        assert!(page.html.contains("Action refusée"), "{case}: {}", page.html);
    }
    assert!(app.accepting(&place).await, "nothing was saved");
    let page = app.post_form(&mediator, "/ma-structure", &[("capacity", "3")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    assert_eq!(page.location(), "/ma-structure?enregistre=1");
}

#[sqlx::test(migrations = false)]
async fn saving_a_closed_place_s_form_keeps_it_closed_and_what_it_does_not_show(pool: PgPool) {
    let app = App::new(pool).await;
    let place = app.structure("mediatheque-mansle").await;
    app.api("PUT", "/api/v1/structures/mediatheque-mansle/capacity", json!({"weekly_capacity": 5, "accepting": false}))
        .await;
    assert!(!app.accepting(&place).await);

    // The coordinator's form shows it closed; saved as shown (an unticked box is not
    // posted), it stays closed.
    let coordinator = app.sign_in(coordinator()).await;
    let form = app.get(Some(&coordinator), "/admin/structures/mediatheque-mansle/modifier").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.html);
    assert!(
        form.html.contains(r#"name="accepting""#) && !form.html.contains(r#"value="oui" checked"#),
        "{}",
        form.html
    );
    let fields = [
        ("name", "Médiathèque de Mansle"),
        ("services", "aide_demarches_administratives"),
        ("street", "21 Rue Martin"),
        ("postcode", "16230"),
        ("commune", "Mansle"),
        ("capacity", "5"),
    ];
    let saved = app.post_form(&coordinator, "/admin/structures/mediatheque-mansle/modifier", &fields).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    assert!(!app.accepting(&place).await, "the coordinator's form reopened a closed place");
    assert_eq!(app.stored(&place).await["siret"], "26160011800010", "what the form does not show is kept");

    // The mediator's week: the box unticked, as shown, keeps it closed too.
    let mediator = app.sign_in(accounts::domain::Grant::Mediator(place.clone())).await;
    let week = app.get(Some(&mediator), "/ma-structure").await;
    assert!(!week.html.contains(" checked"), "{}", week.html);
    let saved = app.post_form(&mediator, "/ma-structure", &[("capacity", "5")]).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    assert!(!app.accepting(&place).await, "the mediator's form reopened a closed place");
}

#[sqlx::test(migrations = false)]
async fn where_a_referral_could_go_is_said_within_the_configured_radius(pool: PgPool) {
    // Not the 30 km the page once assumed when the answer had no radius.
    let app = App::configured(pool, &[("AIGUILLAGE_MAX_DISTANCE_KM", "12")]).await;
    let org = app.organisation().await;
    let referrer = app.sign_in(accounts::domain::Grant::Referrer(org)).await;
    let fields = [("commune", "16000"), ("needs", "aide_demarches_administratives"), ("apercu", "1")];
    let page = app.post_form(&referrer, "/orientations/nouvelle", &fields).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert!(page.html.contains("Aucun lieu possible à moins de 12 km"), "{}", page.html);
}

/// A stand-in for the API that answers a structure without its `accepting`.
fn api_without_accepting(account: Uuid, membership: Uuid) -> Router {
    use axum::routing::get;
    let me = json!({
        "kind": "agent", "account_id": account, "memberships": [{"id": membership, "role": "coordinator",
        "territories": ["16"], "label": "Charente"}], "active": membership, "requests": []
    });
    let structure = json!({
        "id": "mediatheque-mansle", "name": "Médiathèque de Mansle", "services": ["aide_demarches_administratives"],
        "modes": ["individual"], "languages": ["fr"], "other_languages": false, "accessibility": [],
        "address": {"street": null, "postcode": "16230", "commune": "Mansle", "commune_code": "16206"},
        "location": {"lat": 45.87, "lon": 0.17}, "territory": "16", "opening_hours": null, "weekly_capacity": 0,
        "contact": {"phone": null, "email": null}, "source": "api", "fees": [], "labels": [],
        "updated_at": "2026-11-28T09:55:00Z"
    });
    Router::new()
        .route("/api/v1/me", get(move || async move { axum::Json(me) }))
        .route("/api/v1/structures/{id}", get(move || async move { axum::Json(structure) }))
}

#[sqlx::test(migrations = false)]
async fn an_answer_without_a_field_the_page_needs_is_an_error_not_a_guess(pool: PgPool) {
    migrate_platform(&pool).await;
    web::migrate(&pool).await.unwrap();
    let (account, membership) = (Uuid::now_v7(), Uuid::now_v7());
    let api = api_without_accepting(account, membership);
    let keys = Keys::default();
    let state = web::WebState::new(pool.clone(), keys.authenticator(), web::Api::Local(api.clone()), web_config());
    let web = web::router(state, api);
    let cookie =
        web::session::create(&pool, account, Some(membership), "id-token", Duration::from_secs(60)).await.unwrap();
    // The form that put the record back with `accepting: true` when the answer had none.
    let request = Request::get("/admin/structures/mediatheque-mansle/modifier")
        .header(header::COOKIE, format!("aiguillage_session={cookie}"))
        .body(Body::empty())
        .unwrap();
    let response = web.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "a place is not shown open by default");
}

// ------------------------------------------------------------------ answer links

#[sqlx::test(migrations = false)]
async fn an_answer_link_shows_the_offer_without_the_person_then_one_acceptance_and_the_follow_up(pool: PgPool) {
    let app = App::new(pool).await;
    let Offer { id, token, path, .. } = app.offered_link().await;

    let page = app.get(None, &path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    link_headers(&page, &token);
    for words in [
        "<title>Proposition — Aiguillage</title>",
        "Pour <strong>Médiathèque de Mansle</strong>",
        "Aide aux démarches administratives",
        "Urgente",
        ">Accepter</button>",
        ">Refuser</button>",
        "Motif du refus",
        "Commentaire",
        r#"href="/connexion?next=/compte">Créer un compte pour votre structure</a>"#,
    ] {
        assert!(page.html.contains(words), "{words}: {}", page.html);
    }
    assert!(!page.html.contains("Lambert") && !page.html.contains("06 12"), "no identity before acceptance");
    assert!(!page.html.contains("Lieu injoignable"), "a structure does not say it is unreachable");
    let csrf = csrf_in(&page.html);

    // Two clicks at once: one acceptance, and neither answer is an error.
    let (accept, fields) = (format!("{path}/acceptation"), [("csrf", csrf.as_str())]);
    let accept = || app.post_raw(None, &accept, &fields, Some(SITE));
    let (a, b) = tokio::join!(accept(), accept());
    let mut locations = [a.location().to_string(), b.location().to_string()];
    locations.sort();
    assert_eq!((a.status, b.status), (StatusCode::SEE_OTHER, StatusCode::SEE_OTHER), "{} {}", a.html, b.html);
    assert_eq!(locations, [path.clone(), format!("{path}?acceptee=1")]);
    let r = app.referral(id).await;
    assert_eq!(r["status"], "accepted", "{r}");
    let accepted: Vec<&Value> = r["history"].as_array().unwrap().iter().filter(|h| h["status"] == "accepted").collect();
    assert_eq!(accepted.len(), 1, "{r}");

    // The follow-up: the person's contact details, a contact, a closing; the form the
    // same link's page had is still bound to it.
    let page = app.get(None, &format!("{path}?acceptee=1")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    link_headers(&page, &token);
    for words in [
        "<title>Suivi — Aiguillage</title>",
        "Suivi de Inès Lambert",
        r#"Téléphone : <a href="tel:+33612345678">+33612345678</a>"#,
        "Proposition acceptée",
        "Type de contact",
        ">Enregistrer un contact</button>",
        "Résultat",
        ">Clôturer</button>",
        "Créer un compte pour votre structure",
    ] {
        assert!(page.html.contains(words), "{words}: {}", page.html);
    }
    let csrf = csrf_in(&page.html);
    let contact =
        app.post_raw(None, &format!("{path}/contact"), &[("csrf", &csrf), ("kind", "first_contact")], Some(SITE)).await;
    assert_eq!((contact.status, contact.location()), (StatusCode::SEE_OTHER, format!("{path}?contact=1").as_str()));
    link_headers(&contact, &token);
    // Refusing an accepted referral: the API says 409, the page shows where it is.
    let late = app.post_raw(None, &format!("{path}/refus"), &[("csrf", &csrf), ("reason", "other")], Some(SITE)).await;
    assert_eq!((late.status, late.location()), (StatusCode::SEE_OTHER, path.as_str()), "{}", late.html);

    // Closing without an outcome: 422, the message beside the field, the comment kept.
    let page =
        app.post_raw(None, &format!("{path}/cloture"), &[("csrf", &csrf), ("comment", "Vue mardi")], Some(SITE)).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", page.html);
    link_headers(&page, &token);
    assert!(page.html.contains("<title>Erreur : suivi — Aiguillage</title>"), "{}", page.html);
    assert!(
        page.html.contains(
            r#"<p class="fr-error-text" id="outcome-error">Choisissez le résultat de l&#39;accompagnement.</p>"#
        ),
        "{}",
        page.html
    );
    assert!(page.html.contains(">Vue mardi</textarea>"), "{}", page.html);
    let fields = [("csrf", csrf.as_str()), ("outcome", "completed"), ("comment", "Vue mardi")];
    let closed = app.post_raw(None, &format!("{path}/cloture"), &fields, Some(SITE)).await;
    assert_eq!((closed.status, closed.location()), (StatusCode::SEE_OTHER, "/reponse/cloturee"), "{}", closed.html);
    let r = app.referral(id).await;
    assert_eq!((&r["status"], &r["outcome"]), (&json!("closed"), &json!("completed")), "{r}");
    let thanks = app.get(None, "/reponse/cloturee").await;
    assert_eq!(thanks.status, StatusCode::OK);
    link_headers(&thanks, &token);
    assert!(thanks.html.contains("L&#39;orientation est clôturée"), "{}", thanks.html);

    // Closed: the link has ended for good.
    let page = app.get(None, &path).await;
    assert_eq!(page.status, StatusCode::GONE, "{}", page.html);
    assert!(page.html.contains("<h1>Ce lien n&#39;est plus valable</h1>"), "{}", page.html);
    assert!(!page.html.contains("Recevoir un nouveau lien"), "{}", page.html);
}

#[sqlx::test(migrations = false)]
async fn a_refusal_through_a_link_needs_a_reason_beside_its_field_then_ends_the_link(pool: PgPool) {
    let app = App::new(pool).await;
    let Offer { id, token, path, .. } = app.offered_link().await;
    let csrf = csrf_in(&app.get(None, &path).await.html);

    let page = app
        .post_raw(None, &format!("{path}/refus"), &[("csrf", &csrf), ("comment", "Fermé en août")], Some(SITE))
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", page.html);
    link_headers(&page, &token);
    assert!(page.html.contains("<title>Erreur : proposition — Aiguillage</title>"), "{}", page.html);
    assert!(page.html.contains(r#"<p class="fr-error-text" id="reason-error">Choisissez le motif du refus.</p>"#));
    assert!(page.html.contains(r#"aria-describedby="reason-error""#), "{}", page.html);
    assert!(page.html.contains(">Fermé en août</textarea>"), "{}", page.html);
    // A reason no structure gives itself is no reason.
    let fields = [("csrf", csrf.as_str()), ("reason", "structure_unreachable")];
    let page = app.post_raw(None, &format!("{path}/refus"), &fields, Some(SITE)).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", page.html);

    let fields = [("csrf", csrf.as_str()), ("reason", "no_capacity"), ("comment", "Fermé en août")];
    let page = app.post_raw(None, &format!("{path}/refus"), &fields, Some(SITE)).await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/reponse/refusee"), "{}", page.html);
    let r = app.referral(id).await;
    let declined = r["history"].as_array().unwrap().iter().find(|h| h["status"] == "declined").cloned();
    assert_eq!(declined.as_ref().map(|h| &h["reason"]), Some(&json!("no_capacity")), "{r}");
    let thanks = app.get(None, "/reponse/refusee").await;
    assert_eq!(thanks.status, StatusCode::OK);
    assert!(thanks.html.contains("La proposition est refusée"), "{}", thanks.html);

    // The offer has ended: 410, nothing to renew, and the forms of the old page refused.
    let page = app.get(None, &path).await;
    assert_eq!(page.status, StatusCode::GONE, "{}", page.html);
    link_headers(&page, &token);
    assert!(page.html.contains("<title>Lien plus valable — Aiguillage</title>"), "{}", page.html);
    assert!(!page.html.contains("Recevoir un nouveau lien"), "{}", page.html);
    let again = app.post_raw(None, &format!("{path}/acceptation"), &[("csrf", &csrf)], Some(SITE)).await;
    assert_eq!(again.status, StatusCode::GONE, "{}", again.html);
    assert_eq!(app.referral(id).await["status"], r["status"], "nothing changed");
}

#[sqlx::test(migrations = false)]
async fn a_link_s_form_needs_this_site_s_origin_and_the_link_s_own_token(pool: PgPool) {
    let app = App::new(pool).await;
    let Offer { org, place, id, token, path } = app.offered_link().await;
    let csrf = csrf_in(&app.get(None, &path).await.html);
    let path = format!("{path}/acceptation");
    // Another link's token (another referral), as another page of the site holds it.
    let other = app.offered(org, &place).await;
    let other_token = app.link(other, &place).await;
    let other_csrf = csrf_in(&app.get(None, &format!("/reponse/{other_token}")).await.html);
    assert_ne!(csrf, other_csrf);
    // A signed-in mediator's session token is not the link's either.
    let mediator = app.sign_in(accounts::domain::Grant::Mediator(place.clone())).await;
    let cases = [
        ("no token", None, Some(SITE)),
        ("another link's token", Some(other_csrf.as_str()), Some(SITE)),
        ("a session's token", Some(mediator.csrf.as_str()), Some(SITE)),
        ("another site", Some(csrf.as_str()), Some("https://evil.example")),
        ("an opaque origin", Some(csrf.as_str()), Some("null")),
        ("no origin", Some(csrf.as_str()), None),
    ];
    for (case, form_token, origin) in cases {
        let fields: Vec<(&str, &str)> = form_token.map(|t| ("csrf", t)).into_iter().collect();
        let page = app.post_raw(None, &path, &fields, origin).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{case}: {}", page.html);
        link_headers(&page, &token);
        assert!(page.html.contains("Action refusée"), "{case}: {}", page.html);
    }
    assert_eq!(app.referral(id).await["status"], "offered", "nothing was accepted");
    // The link's token from this site: accepted.
    let page = app.post_raw(None, &path, &[("csrf", &csrf)], Some(SITE)).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    assert_eq!(app.referral(id).await["status"], "accepted");
    // A link opens its own referral only: the other one is still offered.
    assert_eq!(app.referral(other).await["status"], "offered");
}

#[sqlx::test(migrations = false)]
async fn an_expired_follow_up_link_is_410_with_a_new_link_once_an_hour_from_this_site(pool: PgPool) {
    let app = App::new(pool).await;
    let Offer { id, token, path, .. } = app.offered_link().await;
    let csrf = csrf_in(&app.get(None, &path).await.html);
    let accepted = app.post_raw(None, &format!("{path}/acceptation"), &[("csrf", &csrf)], Some(SITE)).await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER);
    // Nine days without use (AIGUILLAGE_ANSWER_LINK_TTL is 8 days).
    sqlx::query("UPDATE referrals.referrals SET accepted_at = now() - interval '9 days' WHERE id = $1")
        .bind(id.as_uuid())
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE referrals.answer_links SET created_at = now() - interval '9 days', last_used_at = now() - interval '9 days'")
        .execute(&app.pool)
        .await
        .unwrap();

    let page = app.get(None, &path).await;
    assert_eq!(page.status, StatusCode::GONE, "{}", page.html);
    link_headers(&page, &token);
    assert!(page.html.contains("<h1>Ce lien n&#39;est plus valable</h1>"), "{}", page.html);
    assert!(page.html.contains("expiré"), "{}", page.html);
    assert!(
        page.html.contains(&format!(r#"<form method="post" action="{path}/nouveau-lien">"#))
            && page.html.contains(">Recevoir un nouveau lien</button>"),
        "{}",
        page.html
    );
    assert!(!page.html.contains("Lambert"), "nothing of the person on an ended link's page");

    let renew = format!("{path}/nouveau-lien");
    for origin in [None, Some("https://evil.example"), Some("null")] {
        let page = app.post_raw(None, &renew, &[], origin).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{origin:?}");
    }
    let page = app.post_raw(None, &renew, &[], Some(SITE)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    link_headers(&page, &token);
    assert!(page.html.contains("Un nouveau lien a été envoyé à l&#39;adresse de la structure"), "{}", page.html);
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM referrals.outbox WHERE event_type = 'referral.answer_link_requested'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(events, 1);
    let page = app.post_raw(None, &renew, &[], Some(SITE)).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.html);
    assert!(page.html.contains("Un lien a déjà été envoyé il y a moins d&#39;une heure"), "{}", page.html);
}

#[sqlx::test(migrations = false)]
async fn an_unknown_token_is_one_404_and_a_client_s_tenth_failure_in_a_minute_slows_it_down(pool: PgPool) {
    let app = App::new(pool).await;
    let Offer { token, .. } = app.offered_link().await;

    // Unknown, malformed, too short: the same page, which says nothing of why.
    let unknown = "x".repeat(43);
    let pages = [
        app.visit(&format!("/reponse/{unknown}"), "198.51.100.1", None).await,
        app.visit("/reponse/pas*un*jeton", "198.51.100.1", None).await,
        app.visit("/reponse/abc", "198.51.100.1", None).await,
    ];
    for page in &pages {
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.html);
        link_headers(page, &unknown);
        assert_eq!(page.html, pages[0].html);
        assert!(page.html.contains("<title>Lien introuvable — Aiguillage</title>"), "{}", page.html);
    }
    assert!(!pages[0].html.contains(&unknown));
    // A form posted to an unknown link: the same 404.
    let post = app.post_raw(None, &format!("/reponse/{unknown}/acceptation"), &[("csrf", "x")], Some(SITE)).await;
    assert_eq!(post.status, StatusCode::NOT_FOUND);

    // Ten failures in a minute from one client: then 429, even for a good link.
    for _ in 0..7 {
        assert_eq!(app.visit(&format!("/reponse/{unknown}"), "198.51.100.1", None).await.status, StatusCode::NOT_FOUND);
    }
    let slowed = app.visit(&format!("/reponse/{token}"), "198.51.100.1", None).await;
    assert_eq!(slowed.status, StatusCode::TOO_MANY_REQUESTS, "{}", slowed.html);
    link_headers(&slowed, &token);
    let wait: u64 = slowed.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(slowed.html.contains("Trop de tentatives"), "{}", slowed.html);
    // Another client is not slowed down.
    assert_eq!(app.visit(&format!("/reponse/{token}"), "198.51.100.2", None).await.status, StatusCode::OK);
    // Behind the proxy (a private peer), the client is the address it forwards; a
    // public peer's forwarded address is not believed.
    for _ in 0..10 {
        let page = app.visit(&format!("/reponse/{unknown}"), "10.0.0.5", Some("203.0.113.9")).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND);
    }
    let good = format!("/reponse/{token}");
    let behind = |forwarded| app.visit(&good, "10.0.0.5", Some(forwarded));
    assert_eq!(behind("203.0.113.9").await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(behind("203.0.113.10").await.status, StatusCode::OK);
    let spoofed = app.visit(&format!("/reponse/{token}"), "198.51.100.3", Some("203.0.113.9")).await;
    assert_eq!(spoofed.status, StatusCode::OK);
}

// ------------------------------------------------------------------ appointments (issue 24)

impl App {
    /// A referral of `org` that `place` accepted, as its mediator does through the API.
    async fn accepted(
        &self,
        org: OrganisationId,
        place: &StructureId,
        preference: &str,
        note: Option<&str>,
    ) -> ReferralId {
        let id = self.offered_as(org, place, preference, note).await;
        let mediator = self.keys.token(Role::Mediator, Scope::Structure(place.clone()));
        let path = format!("/api/v1/referrals/{id}/accept");
        let (status, r, _) = call(&self.api, "POST", &path, Some(&mediator), Some(&json!({})), &[]).await;
        assert_eq!(status, 200, "{r}");
        id
    }

    /// The place, with what the slip says of it: its opening hours and its phone.
    async fn place_with_hours(&self, id: &str) -> StructureId {
        let body = json!({
            "name": "Médiathèque de Mansle", "services": ["aide_demarches_administratives"],
            "address": {"street": "21 Rue Martin", "postcode": "16230", "commune": "Mansle"},
            "opening_hours": "Mo-Fr 09:00-12:00,14:00-17:30; Sa 09:00-12:00; PH off",
            "contact": {"phone": "05 45 20 30 40", "email": "mediatheque@mansle.example"},
            "weekly_capacity": 5, "accepting": true, "siret": "26160011800010",
        });
        self.api("PUT", &format!("/api/v1/structures/{id}"), body).await;
        id.parse().unwrap()
    }
}

/// A day a few days ahead, as a date field sends it, and that day at `time` in Paris.
fn days_ahead(days: i64, time: &str) -> (String, chrono::DateTime<chrono::Utc>) {
    use chrono::TimeZone;
    let day = (chrono::Utc::now() + chrono::Duration::days(days)).with_timezone(&chrono_tz::Europe::Paris).date_naive();
    let at = chrono_tz::Europe::Paris
        .from_local_datetime(&day.and_time(chrono::NaiveTime::parse_from_str(time, "%H:%M").unwrap()))
        .earliest()
        .unwrap()
        .with_timezone(&chrono::Utc);
    (day.format("%Y-%m-%d").to_string(), at)
}

/// The appointment of a referral, as the API gives it.
async fn appointment_of(app: &App, id: ReferralId) -> Value {
    app.referral(id).await["appointment"].clone()
}

/// An error of the appointment form, beside its field.
fn beside(html: &str, field: &str, message: &str) -> bool {
    html.contains(&format!(r#"<p class="fr-error-text" id="{field}-error">{}</p>"#, message.replace('\'', "&#39;")))
        && (html.contains(&format!(r#"aria-describedby="{field}-error""#))
            || html.contains(&format!(r#"aria-describedby="{field}-hint {field}-error""#)))
}

#[sqlx::test(migrations = false)]
async fn a_mediator_sets_moves_and_cancels_the_appointment_with_errors_beside_their_fields(pool: PgPool) {
    let app = App::new(pool).await;
    let org = app.organisation().await;
    let place = app.structure("mediatheque-mansle").await;
    let id = app.accepted(org, &place, "phone", None).await;
    let mediator = app.sign_in(accounts::domain::Grant::Mediator(place.clone())).await;
    let page_path = format!("/suivis/{id}");
    let form_path = format!("/suivis/{id}/rendez-vous");

    let page = app.get(Some(&mediator), &page_path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    for words in [
        r#"<h2 id="rendez-vous-titre">Rendez-vous</h2>"#,
        "Aucun rendez-vous n'est fixé",
        r#"<label class="fr-label" for="rdv-date">Date du rendez-vous</label>"#,
        r#"<label class="fr-label" for="rdv-time">Heure</label>"#,
        r#"<label class="fr-label" for="rdv-duration">Durée</label>"#,
        r#"<option value="60" selected>1 h</option>"#,
        r#"<option value="90">1 h 30</option>"#,
        "Lieu du rendez-vous (facultatif)",
        ">Fixer le rendez-vous</button>",
        &format!(r#"<a href="/orientations/{id}/fiche">Fiche à remettre à la personne</a>"#),
    ] {
        assert!(page.html.contains(words), "{words}: {}", page.html);
    }
    assert!(!page.html.contains("Annuler le rendez-vous"), "nothing to cancel");

    // A moment already past, and a form with nothing: 422, each message beside its
    // field, what was typed kept; nothing reaches the API.
    let (yesterday, _) = days_ahead(-1, "09:30");
    let fields = [("date", yesterday.as_str()), ("time", "09:30"), ("duration", "45"), ("place", "Salle 2")];
    let page = app.post_form(&mediator, &form_path, &fields).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", page.html);
    assert!(page.html.contains("<title>Erreur : suivi"), "{}", page.html);
    assert!(beside(&page.html, "rdv-date", "Ce moment est passé : choisissez une date et une heure à venir."));
    assert!(page.html.contains(&format!(r#"value="{yesterday}""#)), "{}", page.html);
    assert!(page.html.contains(r#"<option value="45" selected>45 min</option>"#), "{}", page.html);
    assert!(page.html.contains(r#"value="Salle 2""#), "{}", page.html);
    let page = app.post_form(&mediator, &form_path, &[("duration", "60")]).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", page.html);
    assert!(beside(&page.html, "rdv-date", "Indiquez la date du rendez-vous."), "{}", page.html);
    assert!(beside(&page.html, "rdv-time", "Indiquez l'heure du rendez-vous."), "{}", page.html);
    let (day, at) = days_ahead(3, "09:30");
    let long = "s".repeat(201);
    let fields = [("date", day.as_str()), ("time", "09:30"), ("duration", "600"), ("place", long.as_str())];
    let page = app.post_form(&mediator, &form_path, &fields).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", page.html);
    assert!(beside(&page.html, "rdv-duration", "Choisissez une durée de la liste."), "{}", page.html);
    assert!(beside(&page.html, "rdv-place", "Indiquez un lieu de 200 caractères au plus."), "{}", page.html);
    assert_eq!(appointment_of(&app, id).await, Value::Null, "nothing was set");

    // Set: Paris wall time reaches the API as that instant.
    let fields = [("date", day.as_str()), ("time", "09:30"), ("duration", "90"), ("place", "Salle 2")];
    let set = app.post_form(&mediator, &form_path, &fields).await;
    assert_eq!((set.status, set.location()), (StatusCode::SEE_OTHER, format!("{page_path}?rendez-vous=1").as_str()));
    let a = appointment_of(&app, id).await;
    assert_eq!(a["at"].as_str().unwrap().parse::<chrono::DateTime<chrono::Utc>>().unwrap(), at, "{a}");
    assert_eq!((&a["duration_minutes"], &a["place"]), (&json!(90), &json!("Salle 2")), "{a}");
    let page = app.get(Some(&mediator), &format!("{page_path}?rendez-vous=1")).await;
    let when = contracts::explain::date_time_fr(at.with_timezone(&chrono_tz::Europe::Paris).naive_local());
    for words in [
        "Le rendez-vous est fixé.".to_string(),
        format!("Rendez-vous fixé le <strong>{when}</strong>, pour 1 h 30, Salle 2."),
        ">Annuler le rendez-vous</button>".into(),
        "Déplacer le rendez-vous".into(),
        format!(r#"value="{day}""#),
        r#"value="09:30""#.into(),
        r#"<option value="90" selected>1 h 30</option>"#.into(),
    ] {
        assert!(page.html.contains(&words), "{words}: {}", page.html);
    }
    assert!(!page.html.contains("La personne est venue"), "not before its time");

    // Moved: the same button, another time.
    let (later, moved_at) = days_ahead(4, "14:00");
    let fields = [("date", later.as_str()), ("time", "14:00"), ("duration", "60"), ("place", "")];
    let moved = app.post_form(&mediator, &form_path, &fields).await;
    assert_eq!(moved.status, StatusCode::SEE_OTHER, "{}", moved.html);
    let a = appointment_of(&app, id).await;
    assert_eq!(a["at"].as_str().unwrap().parse::<chrono::DateTime<chrono::Utc>>().unwrap(), moved_at, "{a}");
    assert_eq!(a["place"], Value::Null, "{a}");

    // Cancelled; cancelling again (409 from the API) shows the page as it is.
    let cancel = format!("/suivis/{id}/rendez-vous/annulation");
    let cancelled = app.post_form(&mediator, &cancel, &[]).await;
    assert_eq!(
        (cancelled.status, cancelled.location()),
        (StatusCode::SEE_OTHER, format!("{page_path}?rendez-vous-annule=1").as_str())
    );
    assert_eq!(appointment_of(&app, id).await, Value::Null);
    let again = app.post_form(&mediator, &cancel, &[]).await;
    assert_eq!((again.status, again.location()), (StatusCode::SEE_OTHER, page_path.as_str()), "{}", again.html);
    let page = app.get(Some(&mediator), &page_path).await;
    assert!(page.html.contains("Aucun rendez-vous n'est fixé"), "{}", page.html);
    // Without the session's token: refused, as every form.
    let forged = app.post_raw(Some(&mediator.cookie), &form_path, &fields, Some(SITE)).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
}

#[sqlx::test(migrations = false)]
async fn an_answer_link_sets_the_appointment_as_the_follow_up_does(pool: PgPool) {
    let app = App::new(pool).await;
    let Offer { id, token, path, .. } = app.offered_link().await;
    let csrf = csrf_in(&app.get(None, &path).await.html);
    let accepted = app.post_raw(None, &format!("{path}/acceptation"), &[("csrf", &csrf)], Some(SITE)).await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{}", accepted.html);
    let page = app.get(None, &path).await;
    assert!(page.html.contains(">Fixer le rendez-vous</button>"), "{}", page.html);
    assert!(
        page.html.contains(&format!(r#"<a href="{path}/fiche">Fiche à remettre à la personne</a>"#)),
        "{}",
        page.html
    );
    // The slip, for the structure without an account: nothing but where, when, what to bring.
    let slip = app.get(None, &format!("{path}/fiche")).await;
    assert_eq!(slip.status, StatusCode::OK, "{}", slip.html);
    link_headers(&slip, &token);
    assert!(slip.html.contains("Le lieu vous appellera pour fixer un rendez-vous."), "{}", slip.html);
    assert!(slip.html.contains("21 Rue Martin, 16230 Mansle"), "{}", slip.html);
    assert!(!slip.html.contains("Lambert") && !slip.html.contains("06 12"), "{}", slip.html);
    let csrf = csrf_in(&page.html);

    let form = format!("{path}/rendez-vous");
    let fields = [("csrf", csrf.as_str()), ("date", "2020-01-06"), ("time", "10:00"), ("duration", "60")];
    let page = app.post_raw(None, &form, &fields, Some(SITE)).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", page.html);
    link_headers(&page, &token);
    assert!(beside(&page.html, "rdv-date", "Ce moment est passé : choisissez une date et une heure à venir."));

    let (day, at) = days_ahead(2, "10:00");
    let fields = [("csrf", csrf.as_str()), ("date", day.as_str()), ("time", "10:00"), ("duration", "30")];
    let set = app.post_raw(None, &form, &fields, Some(SITE)).await;
    assert_eq!((set.status, set.location()), (StatusCode::SEE_OTHER, format!("{path}?rendez-vous=1").as_str()));
    link_headers(&set, &token);
    let a = appointment_of(&app, id).await;
    assert_eq!(a["at"].as_str().unwrap().parse::<chrono::DateTime<chrono::Utc>>().unwrap(), at, "{a}");
    let page = app.get(None, &path).await;
    assert!(page.html.contains(">Annuler le rendez-vous</button>"), "{}", page.html);
    assert!(page.html.contains("pour 30 min."), "{}", page.html);

    let cancelled = app.post_raw(None, &format!("{path}/rendez-vous/annulation"), &[("csrf", &csrf)], Some(SITE)).await;
    assert_eq!(cancelled.location(), format!("{path}?rendez-vous-annule=1"), "{}", cancelled.html);
    assert_eq!(appointment_of(&app, id).await, Value::Null);
    // Another site's form: refused.
    let forged = app.post_raw(None, &form, &fields, Some("https://evil.example")).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
}

#[sqlx::test(migrations = false)]
async fn the_slip_says_where_when_and_what_to_bring_and_nothing_else(pool: PgPool) {
    let app = App::new(pool).await;
    let org = app.organisation().await;
    let place = app.place_with_hours("mediatheque-mansle").await;
    let note = "Travaille de nuit, ne pas appeler le matin";
    let id = app.accepted(org, &place, "via_referrer", Some(note)).await;
    let referrer = app.sign_in(accounts::domain::Grant::Referrer(org)).await;
    let slip_path = format!("/orientations/{id}/fiche");

    // The referrer's page: the appointment not yet set, the slip to hand over.
    let page = app.get(Some(&referrer), &format!("/orientations/{id}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    for words in [
        r#"<h2 id="rendez-vous">Rendez-vous</h2>"#.to_string(),
        "Le lieu n'a pas encore fixé de rendez-vous".into(),
        "La personne a choisi d'être prévenue par vous".into(),
        format!(r#"<a class="fr-link" href="{slip_path}">Fiche à remettre à la personne</a>"#),
    ] {
        assert!(page.html.contains(&words), "{words}: {}", page.html);
    }

    let slip = app.get(Some(&referrer), &slip_path).await;
    assert_eq!(slip.status, StatusCode::OK, "{}", slip.html);
    assert_eq!(slip.headers[header::CACHE_CONTROL], "no-store");
    for words in [
        "<title>Fiche à remettre à la personne — Aiguillage</title>",
        "Médiathèque de Mansle",
        "21 Rue Martin, 16230 Mansle",
        "Du lundi au vendredi : de 9 h à 12 h et de 14 h à 17 h 30",
        "Fermé les jours fériés",
        r#"<a href="tel:+33545203040" class="aig-slip__phone">05 45 20 30 40</a>"#,
        "Le lieu vous appellera pour fixer un rendez-vous.",
        "Une pièce d&#39;identité",
        "Votre CV",
        "Les courriers que vous avez reçus",
        ">Imprimer</button>",
    ] {
        assert!(slip.html.contains(words), "{words}: {}", slip.html);
    }
    let reference = web_reference(id);
    assert!(slip.html.contains(&format!("Référence : <strong>{reference}</strong>")), "{}", slip.html);
    for private in ["Travaille de nuit", "Inès", "Lambert", "06 12", "+33612", "ines.lambert", "mediatheque@"] {
        assert!(!slip.html.contains(private), "{private} on the slip: {}", slip.html);
    }

    // With an appointment: the day and time in words, the room.
    let mediator = app.sign_in(accounts::domain::Grant::Mediator(place.clone())).await;
    let (day, at) = days_ahead(5, "09:30");
    let fields = [("date", day.as_str()), ("time", "09:30"), ("duration", "60"), ("place", "Salle 2")];
    let set = app.post_form(&mediator, &format!("/suivis/{id}/rendez-vous"), &fields).await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.html);
    let when = contracts::explain::date_time_fr(at.with_timezone(&chrono_tz::Europe::Paris).naive_local());
    let slip = app.get(Some(&referrer), &slip_path).await;
    let mut day_words = when.chars();
    let capitalised: String = day_words.next().unwrap().to_uppercase().chain(day_words).collect();
    for words in [
        format!(r#"<p class="aig-slip__when">{capitalised}</p>"#),
        "Le rendez-vous dure environ 1 h.".into(),
        "Sur place, demandez : <strong>Salle 2</strong>".into(),
    ] {
        assert!(slip.html.contains(&words), "{words}: {}", slip.html);
    }
    assert!(!slip.html.contains("Travaille de nuit"));
    // The referrer's page: when, and that the person is theirs to tell.
    let page = app.get(Some(&referrer), &format!("/orientations/{id}")).await;
    assert!(page.html.contains(&format!("Rendez-vous fixé le <strong>{when}</strong>, pour 1 h, Salle 2.")));
    // The accepting structure's mediator prints it too, and sees its reference.
    let theirs = app.get(Some(&mediator), &slip_path).await;
    assert_eq!(theirs.status, StatusCode::OK, "{}", theirs.html);
    let follow = app.get(Some(&mediator), &format!("/suivis/{id}")).await;
    assert!(follow.html.contains(&reference), "{}", follow.html);

    // Nobody else: another organisation's referrer, another place's mediator, a
    // coordinator of the territory.
    let other_org = app.organisation().await;
    let other_place = app.structure("mjc-ruffec").await;
    for grant in
        [accounts::domain::Grant::Referrer(other_org), accounts::domain::Grant::Mediator(other_place), coordinator()]
    {
        let stranger = app.sign_in(grant).await;
        let page = app.get(Some(&stranger), &slip_path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.html);
        assert!(!page.html.contains("Médiathèque de Mansle"), "{}", page.html);
    }
    // Before a place accepts: no slip to print.
    let waiting = app.offered(org, &place).await;
    let page = app.get(Some(&referrer), &format!("/orientations/{waiting}/fiche")).await;
    assert_eq!(page.status, StatusCode::CONFLICT, "{}", page.html);
    assert!(page.html.contains("Pas de fiche pour cette orientation"), "{}", page.html);
}

/// The slip's reference of a referral: the last eight hex digits of its id.
fn web_reference(id: ReferralId) -> String {
    let hex: String = id.to_string().replace('-', "").to_uppercase();
    format!("AIG-{}-{}", &hex[24..28], &hex[28..])
}

#[sqlx::test(migrations = false)]
async fn once_its_time_has_passed_the_mediator_says_the_person_did_not_come_and_closing_offers_no_show(pool: PgPool) {
    let app = App::new(pool).await;
    let org = app.organisation().await;
    let place = app.structure("mediatheque-mansle").await;
    let id = app.accepted(org, &place, "phone", None).await;
    let mediator = app.sign_in(accounts::domain::Grant::Mediator(place.clone())).await;
    let page_path = format!("/suivis/{id}");
    let (day, _) = days_ahead(2, "11:00");
    let fields = [("date", day.as_str()), ("time", "11:00"), ("duration", "45")];
    let set = app.post_form(&mediator, &format!("{page_path}/rendez-vous"), &fields).await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.html);
    // How the person is told: the SMS the API queued (no provider here).
    let page = app.get(Some(&mediator), &page_path).await;
    let told =
        page.html.split("Comment la personne est prévenue : <strong>").nth(1).map(|t| t.split('<').next().unwrap());
    assert!(
        matches!(told, Some("SMS en cours d&#39;envoi" | "SMS non distribué" | "Prévenue par SMS")),
        "{told:?}: {}",
        page.html
    );

    // Before its time: no question, and an attendance posted anyway is refused (409),
    // back to the page.
    assert!(!page.html.contains("La personne est venue"), "{}", page.html);
    let attendance = format!("{page_path}/rendez-vous/presence");
    let early = app.post_form(&mediator, &attendance, &[("attended", "non")]).await;
    assert_eq!((early.status, early.location()), (StatusCode::SEE_OTHER, page_path.as_str()), "{}", early.html);
    assert_eq!(appointment_of(&app, id).await["attended"], Value::Null);

    // Its time has passed.
    sqlx::query("UPDATE referrals.appointments SET at = now() - interval '2 hours' WHERE referral_id = $1")
        .bind(Uuid::parse_str(&id.to_string()).unwrap())
        .execute(&app.pool)
        .await
        .unwrap();
    let page = app.get(Some(&mediator), &page_path).await;
    for words in [">La personne est venue</button>", ">La personne n'est pas venue</button>", "Rendez-vous du <strong>"]
    {
        assert!(page.html.contains(words), "{words}: {}", page.html);
    }
    assert!(!page.html.contains("Annuler le rendez-vous"), "{}", page.html);
    assert!(page.html.contains(r#"<option value="60" selected>1 h</option>"#), "a new appointment starts blank");

    let missed = app.post_form(&mediator, &attendance, &[("attended", "non")]).await;
    assert_eq!(
        (missed.status, missed.location()),
        (StatusCode::SEE_OTHER, format!("{page_path}?presence=1").as_str()),
        "{}",
        missed.html
    );
    assert_eq!(appointment_of(&app, id).await["attended"], json!(false));
    let page = app.get(Some(&mediator), &page_path).await;
    for words in [
        "La personne n'est pas venue. Fixez un nouveau rendez-vous",
        r#"<option value="no_show" selected>Absent au rendez-vous</option>"#,
        ">Fixer le rendez-vous</button>",
        "Fixer un nouveau rendez-vous",
    ] {
        assert!(page.html.contains(words), "{words}: {}", page.html);
    }
    assert!(!page.html.contains(">La personne est venue</button>"), "said once");
    // The referrer reads it too.
    let referrer = app.sign_in(accounts::domain::Grant::Referrer(org)).await;
    let theirs = app.get(Some(&referrer), &format!("/orientations/{id}")).await;
    assert!(theirs.html.contains("La personne n'est pas venue au rendez-vous."), "{}", theirs.html);
    // Closed with the outcome chosen for it.
    let closed = app.post_form(&mediator, &format!("{page_path}/cloture"), &[("outcome", "no_show")]).await;
    assert_eq!(closed.status, StatusCode::SEE_OTHER, "{}", closed.html);
    assert_eq!(app.referral(id).await["outcome"], "no_show");
}

/// Hands one event to the insights projection, as the bus would.
async fn to_insights<E: contracts::EventData>(pool: &PgPool, aggregate: &str, sequence: i64, data: &E) {
    use contracts::EventSet;
    let envelope = Envelope::new(aggregate, sequence, data);
    let event = insights::projection::Inbound::decode(&envelope).unwrap();
    let mut tx = pool.begin().await.unwrap();
    bus::Handler::handle(&insights::projection::Projector, &mut tx, &envelope, event).await.unwrap();
    tx.commit().await.unwrap();
}

#[sqlx::test(migrations = false)]
async fn the_coordinator_sees_appointments_and_the_no_show_rate_by_territory_and_place(pool: PgPool) {
    use contracts::events::{
        ReferralAppointmentSet, ReferralAttendanceRecorded, ReferralSubmitted, Structure, StructureUpserted,
    };
    let app = App::new(pool.clone()).await;
    let coordinator = app.sign_in(coordinator()).await;
    let now = chrono::Utc::now();
    for (id, name) in [("mediatheque-mansle", "Médiathèque de Mansle"), ("ccas-ruffec", "CCAS de Ruffec")] {
        let structure: Structure = serde_json::from_value(json!({
            "id": id, "name": name, "services": ["aide_demarches_administratives"],
            "modes": ["individual"], "languages": ["fr"], "other_languages": false, "accessibility": [],
            "address": {"commune": "Mansle", "commune_code": "16206"}, "location": {"lat": 45.87, "lon": 0.18},
            "territory": "16", "opening_hours": null, "weekly_capacity": 5, "accepting": true,
            "contact": {}, "updated_at": now
        }))
        .unwrap();
        to_insights(&pool, id, 1, &StructureUpserted { structure }).await;
    }
    // At Mansle: one person came, one did not (the rate: 1 of 2); at Ruffec an appointment
    // with nothing recorded yet (no rate: "—", never 0 %).
    let submitted_at = now - chrono::Duration::days(10);
    for (place, attended) in
        [("mediatheque-mansle", Some(true)), ("mediatheque-mansle", Some(false)), ("ccas-ruffec", None)]
    {
        let referral = ReferralId::new();
        let submitted: ReferralSubmitted = serde_json::from_value(json!({
            "referral_id": referral, "organisation_id": OrganisationId::new(), "submitted_at": submitted_at,
            "commune_code": "16206", "territory": "16", "location": {"lat": 45.87, "lon": 0.18},
            "needs": ["aide_demarches_administratives"], "modes": ["in_person"], "languages": ["fr"],
            "accessibility": [], "urgency": "normal", "deadline": null, "max_distance_km": 30.0
        }))
        .unwrap();
        let aggregate = referral.to_string();
        to_insights(&pool, &aggregate, 1, &submitted).await;
        let at = submitted_at + chrono::Duration::days(2);
        let set = ReferralAppointmentSet {
            referral_id: referral,
            structure_id: place.parse().unwrap(),
            version: 1,
            at,
            duration_minutes: 30,
            channel: contracts::NoticeChannel::Sms,
            rescheduled: false,
            set_at: submitted_at + chrono::Duration::days(1),
        };
        to_insights(&pool, &aggregate, 2, &set).await;
        if let Some(attended) = attended {
            let record = ReferralAttendanceRecorded {
                referral_id: referral,
                structure_id: place.parse().unwrap(),
                version: 1,
                appointment_at: at,
                attended,
                recorded_at: at + chrono::Duration::hours(1),
            };
            to_insights(&pool, &aggregate, 3, &record).await;
        }
    }

    let page = app.get(Some(&coordinator), "/territoire/entonnoir").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let html = &page.html;
    for step in ["<th scope=\"row\">Rendez-vous fixé</th><td>3</td>", "<th scope=\"row\">Venue</th><td>1</td>"] {
        assert!(html.contains(step), "{step}: {html}");
    }
    assert!(html.contains("<th scope=\"row\">Jusqu&#39;au rendez-vous</th><td>2 j 0 h</td>"), "{html}");
    assert!(html.contains("<dt>Taux d&#39;absence</dt><dd>50 % (1 sur 2)</dd>"), "{html}");
    let by_territory = html.split("<caption>Taux d'absence par territoire</caption>").nth(1).expect(html);
    let by_territory = by_territory.split("</table>").next().unwrap();
    assert!(
        by_territory.contains("Charente (16)</th><td>3</td><td>1</td><td>2</td><td>50 % (1 sur 2)</td>"),
        "{by_territory}"
    );
    let by_place = html.split("<caption>Taux d'absence par lieu</caption>").nth(1).expect(html);
    let by_place = by_place.split("</table>").next().unwrap();
    assert!(
        by_place.contains(
            "<a href=\"/territoire/structures/mediatheque-mansle/rapport\">Médiathèque de Mansle</a></th><td>2</td><td>1</td><td>2</td><td>50 % (1 sur 2)</td>"
        ),
        "{by_place}"
    );
    assert!(by_place.contains("CCAS de Ruffec</a></th><td>1</td><td>0</td><td>0</td><td>—</td>"), "{by_place}");

    // The place's monthly report (the month of the appointments) says the same.
    let month = (submitted_at + chrono::Duration::days(2)).with_timezone(&chrono_tz::Europe::Paris).format("%Y-%m");
    let report =
        app.get(Some(&coordinator), &format!("/territoire/structures/mediatheque-mansle/rapport?mois={month}")).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.html);
    assert!(
        report.html.contains("<th scope=\"row\">Taux d&#39;absence</th><td>50 % (1 sur 2)</td>"),
        "{}",
        report.html
    );
    let ruffec = app.get(Some(&coordinator), &format!("/territoire/structures/ccas-ruffec/rapport?mois={month}")).await;
    assert!(ruffec.html.contains("<th scope=\"row\">Taux d&#39;absence</th><td>—</td>"), "{}", ruffec.html);
}

#[sqlx::test(migrations = false)]
async fn the_public_statistics_need_no_sign_in_and_show_secret_where_counts_are_small(pool: PgPool) {
    use contracts::events::ReferralSubmitted;
    let app = App::new(pool.clone()).await;
    // This month: 3 referrals in 17 (hidden), 7 in 16 (hidden beside them, else the
    // national 10 minus 7 would give the 3 back).
    for (territory, n) in [("17", 3), ("16", 7)] {
        for _ in 0..n {
            let referral = ReferralId::new();
            let submitted: ReferralSubmitted = serde_json::from_value(json!({
                "referral_id": referral, "organisation_id": OrganisationId::new(), "submitted_at": chrono::Utc::now(),
                "commune_code": if territory == "16" { "16015" } else { "17300" }, "territory": territory,
                "location": {"lat": 45.65, "lon": 0.16}, "needs": ["aide_demarches_administratives"],
                "modes": ["in_person"], "languages": ["fr"], "accessibility": [], "urgency": "normal",
                "deadline": null, "max_distance_km": 30.0
            }))
            .unwrap();
            to_insights(&pool, &referral.to_string(), 1, &submitted).await;
        }
    }
    let page = app.get(None, "/statistiques").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert!(page.headers.get(header::CACHE_CONTROL).is_none_or(|v| v != "no-store"), "nothing personal");
    for needed in [
        "<caption>Orientations par mois</caption>",
        "<label class=\"fr-label\" for=\"departement\">Département</label>",
        ">Afficher</button>",
        ">Télécharger (CSV)</a>",
        ">Télécharger (JSON)</a>",
        "Licence Ouverte 2.0",
        "<svg viewBox",
        "(provisoire)</th><td>10</td>",
    ] {
        assert!(page.html.contains(needed), "{needed}");
    }
    let small = app.get(None, "/statistiques?departement=17").await;
    assert_eq!(small.status, StatusCode::OK);
    assert!(small.html.contains("(provisoire)</th><td>secret</td>"), "{}", small.html);
    assert!(small.html.contains("par secret statistique, aucun effectif de 1 à 4"));
    assert!(small.html.contains("<option value=\"17\" selected>"));
    let beside = app.get(None, "/statistiques?departement=16").await;
    assert!(beside.html.contains("(provisoire)</th><td>secret</td>"), "16's 7 protect 17's 3");
    let bad = app.get(None, "/statistiques?departement=Charente").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.html.contains("id=\"departement-error\">Choisissez un département de la liste.</p>"), "{}", bad.html);
    // Linked from the sign-in page and every page's footer.
    let sign_in = app.get(None, "/connexion").await;
    assert!(sign_in.html.contains("<a href=\"/statistiques\">Statistiques publiques</a>"), "{}", sign_in.html);
    assert!(page.html.contains("fr-footer__bottom-link\" href=\"/statistiques\">Statistiques publiques</a>"));
}

#[sqlx::test(migrations = false)]
async fn the_simulation_keeps_the_scenario_in_the_form_and_brings_the_api_s_refusals_beside_their_fields(pool: PgPool) {
    let app = App::new(pool).await;
    app.structure("mediatheque-mansle").await;
    let coordinator = app.sign_in(coordinator()).await;
    let page = app.get(Some(&coordinator), "/territoire/simulation").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
    for needed in [
        "<a class=\"fr-nav__link\" href=\"/territoire/simulation\" aria-current=\"page\">Simulation</a>",
        "<label class=\"fr-label\" for=\"du\">Du</label>",
        "<label class=\"fr-label\" for=\"au\">Au</label>",
        "for=\"lieu-0-capacite\">Places par semaine</label>",
        "name=\"capacite:mediatheque-mansle\" type=\"text\" inputmode=\"numeric\" value=\"5\"",
        "<label class=\"fr-label\" for=\"commune_nouveau\">Commune du nouveau lieu</label>",
        ">Ajouter un lieu</button>",
        ">Simuler</button>",
    ] {
        assert!(page.html.contains(needed), "{needed}: {}", page.html);
    }
    let period = [("departement", "16"), ("du", "2026-01-01"), ("au", "2026-03-31")];
    let with = |more: &[(&'static str, &'static str)]| {
        let mut fields = period.to_vec();
        fields.extend_from_slice(more);
        fields
    };

    // "Ajouter un lieu" without JavaScript: the page again, the place in a hidden field.
    let place = [("services_nouveau", "aide_demarches_administratives"), ("capacite_nouveau", "8"), ("ajouter", "1")];
    let added = app
        .post_form(
            &coordinator,
            "/territoire/simulation",
            &[with(&place), vec![("commune_nouveau", "Cognac")]].concat(),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.html);
    let kept = "16102|8|aide_demarches_administratives|Nouveau lieu à Cognac";
    assert!(added.html.contains(&format!("name=\"nouveau\" value=\"{kept}\"")), "{}", added.html);
    assert!(added.html.contains("Lieu ajouté au scénario : Nouveau lieu à Cognac"), "{}", added.html);
    let outside = app
        .post_form(&coordinator, "/territoire/simulation", &[with(&place), vec![("commune_nouveau", "86000")]].concat())
        .await;
    assert_eq!(outside.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        outside.html.contains("id=\"commune_nouveau-error\">Poitiers n&#39;est pas dans le département simulé (16)"),
        "{}",
        outside.html
    );

    // A change the API refuses (the matcher has not heard of the place without a broker,
    // and a negative number is not a capacity): beside the place's line, in the summary.
    let refused = app
        .post_form(
            &coordinator,
            "/territoire/simulation",
            &with(&[("capacite:mediatheque-mansle", "-3"), ("nouveau", kept), ("simuler", "1")]),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.html);
    assert!(
        refused.html.contains("aria-describedby=\"lieu-0-nom lieu-0-capacite-error\" aria-invalid=\"true\""),
        "{}",
        refused.html
    );
    assert!(refused.html.contains("<li><a href=\"#lieu-0-capacite\">"), "{}", refused.html);
    assert!(refused.html.contains(&format!("value=\"{kept}\"")), "the new place is kept");
    assert!(refused.html.contains("<title>Erreur : simulation"));

    // A period the API finds too long: beside "Au".
    let long = [("departement", "16"), ("du", "2024-01-01"), ("au", "2026-03-31"), ("simuler", "1")];
    let long = app.post_form(&coordinator, "/territoire/simulation", &long).await;
    assert_eq!(long.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", long.html);
    assert!(long.html.contains("id=\"au-error\">La période compte au plus 366 jours"), "{}", long.html);

    // Nothing to replay, nothing changed: the results, empty but whole.
    let done = app.post_form(&coordinator, "/territoire/simulation", &with(&[("simuler", "1")])).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.html);
    for needed in [
        "<caption>Comparaison</caption>",
        "<th scope=\"row\">Placées à moins de 30 km</th>",
        "Aucune orientation du département n&#39;a été envoyée du 01/01/2026 au 31/03/2026",
        "role=\"img\" aria-label=\"Placées : 0 actuellement, 0 avec le scénario",
    ] {
        assert!(done.html.contains(needed), "{needed}: {}", done.html);
    }

    // Another territory's coordinator: no such page.
    let elsewhere = app.sign_in(accounts::domain::Grant::Coordinator(vec!["86".parse().unwrap()])).await;
    assert_eq!(app.get(Some(&elsewhere), "/territoire/simulation?departement=16").await.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrations = false)]
async fn a_scenario_is_saved_under_a_name_listed_and_run_again(pool: PgPool) {
    let app = App::new(pool).await;
    app.structure("mediatheque-mansle").await;
    let coordinator = app.sign_in(coordinator()).await;
    let page = app.get(Some(&coordinator), "/territoire/simulation").await;
    for needed in [
        "<h2 id=\"scenarios-titre\">Scénarios enregistrés</h2>",
        "Aucun scénario enregistré pour ce département.",
        "<label class=\"fr-label\" for=\"nom_scenario\">Nom du scénario</label>",
        ">Enregistrer le scénario</button>",
    ] {
        assert!(page.html.contains(needed), "{needed}: {}", page.html);
    }
    let period = [("departement", "16"), ("du", "2026-01-01"), ("au", "2026-03-31")];
    let with = |more: &[(&'static str, &'static str)]| {
        let mut fields = period.to_vec();
        fields.extend_from_slice(more);
        fields
    };
    let kept = "16102|8|aide_demarches_administratives|Permanence de Cognac";

    // No name, then one too long: beside "Nom du scénario", what was typed kept.
    let unnamed =
        app.post_form(&coordinator, "/territoire/simulation", &with(&[("nouveau", kept), ("enregistrer", "1")])).await;
    assert_eq!(unnamed.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", unnamed.html);
    assert!(unnamed.html.contains("id=\"nom_scenario-error\">Indiquez le nom du scénario"), "{}", unnamed.html);
    assert!(
        unnamed.html.contains("Le scénario n&#39;a pas été enregistré. Corrigez le champ suivant"),
        "{}",
        unnamed.html
    );
    assert!(unnamed.html.contains(&format!("value=\"{kept}\"")), "the new place is kept");
    let long = "x".repeat(121);
    let mut fields: Vec<(&str, &str)> = period.to_vec();
    fields.extend([("nom_scenario", long.as_str()), ("enregistrer", "1")]);
    let too_long = app.post_form(&coordinator, "/territoire/simulation", &fields).await;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(too_long.html.contains("id=\"nom_scenario-error\">Le nom du scénario compte au plus 120 caractères"));

    // A change the API refuses (the matcher has not heard of the place without a broker):
    // beside the place's line, as "Simuler" puts it.
    let refused = app
        .post_form(
            &coordinator,
            "/territoire/simulation",
            &with(&[("capacite:mediatheque-mansle", "7"), ("nom_scenario", "Mansle à 7"), ("enregistrer", "1")]),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.html);
    assert!(refused.html.contains("aria-describedby=\"lieu-0-nom lieu-0-capacite-error\""), "{}", refused.html);
    assert!(refused.html.contains("Aucun scénario enregistré pour ce département."), "nothing saved");

    // A new place only: saved, said, listed.
    let saved = app
        .post_form(
            &coordinator,
            "/territoire/simulation",
            &with(&[("nouveau", kept), ("nom_scenario", "  Cognac\tà 8 "), ("enregistrer", "1")]),
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.html);
    for needed in [
        "role=\"status\" id=\"scenario-enregistre\"><p>Scénario « Cognac à 8 » enregistré",
        "<p><strong>Cognac à 8</strong></p>",
        "Période du 01/01/2026 au 31/03/2026, 1 changement. Enregistré le ",
        "Rejouer<span class=\"fr-sr-only\"> « Cognac à 8 »</span></button>",
    ] {
        assert!(saved.html.contains(needed), "{needed}: {}", saved.html);
    }
    let id =
        saved.html.split("name=\"rejouer\" value=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_string();

    // "Rejouer": the form holds the scenario again, and its results are shown.
    let replay = [("departement", "16"), ("rejouer", id.as_str())];
    let replayed = app.post_form(&coordinator, "/territoire/simulation", &replay).await;
    assert_eq!(replayed.status, StatusCode::OK, "{}", replayed.html);
    for needed in [
        "Résultats du scénario enregistré « Cognac à 8 »",
        "<caption>Comparaison</caption>",
        "id=\"du\" name=\"du\" type=\"date\" value=\"2026-01-01\"",
        "id=\"au\" name=\"au\" type=\"date\" value=\"2026-03-31\"",
        &format!("name=\"nouveau\" value=\"{kept}\""),
        "id=\"nom_scenario\" name=\"nom_scenario\" type=\"text\" value=\"Cognac à 8\"",
    ] {
        assert!(replayed.html.contains(needed), "{needed}: {}", replayed.html);
    }

    // A scenario that is no longer there: said, the form as it opens.
    let gone = [("departement", "16"), ("rejouer", "01890000-0000-7000-8000-000000000000")];
    let gone = app.post_form(&coordinator, "/territoire/simulation", &gone).await;
    assert_eq!(gone.status, StatusCode::OK, "{}", gone.html);
    assert!(gone.html.contains("Ce scénario n&#39;est plus enregistré"), "{}", gone.html);
    assert!(!gone.html.contains("<caption>Comparaison</caption>"));
}
