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
use contracts::{OrganisationId, Role, StructureId};
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
                "/territoire/import",
                "/admin/structures",
                "/admin/structures/nouvelle",
                "/admin/structures/mediatheque-mansle/modifier",
                "/admin/comptes",
            ],
        ),
        (&admin, &["/admin/organisations", "/journal"]),
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
