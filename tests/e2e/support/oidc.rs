//! The development OpenID provider (`deploy/dev/oidc`, ProConnect-like, built on the npm
//! package `oidc-provider`) as a child process of the test: its own port, its own data
//! directory (keys) under the system temp dir, and its test controls on, so a test can
//! rotate the signing key or have the next ID token tampered with. It is killed on drop.
//!
//! The provider needs its npm packages: `source deploy/dev/oidc/env.sh && ensure_oidc_provider`
//! (`.ci/run` does it through `deploy/dev/services.sh`).
//!
//! The "browser" the helpers take is the test's `reqwest::Client`, built with a cookie
//! store and without following redirects, so the callback URL comes back to the test:
//!
//! ```ignore
//! let browser = reqwest::Client::builder()
//!     .cookie_store(true) // reqwest feature "cookies"
//!     .redirect(reqwest::redirect::Policy::none())
//!     .build()?;
//! let login = server.get("/auth/login").send().await?; // 302 to the provider
//! let callback = oidc.sign_in(&browser, location(&login), &Agent::Demo(CLAIRE)).await?;
//! let done = browser.get(callback).send().await?; // back to the relying party
//! ```
//!
//! Every client is registered for loopback redirect URIs on any port (a "native" client,
//! RFC 8252 section 7.3): `http://127.0.0.1{path}` and `http://localhost{path}` for each
//! path of [`OidcOptions`], so the relying party may pick its port after the provider starts.

use std::fs::{self, File};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};
use uuid::Uuid;

/// The ids of the demo agents of `deploy/dev/oidc/agents.json`.
pub const CLAIRE: &str = "claire"; // referrer, CCAS d'Angoulême, SIRET 26160011800010
pub const KARIM: &str = "karim"; // mediator, Association Régie Urbaine, SIRET 40262787100054
pub const SOPHIE: &str = "sophie"; // coordinator of 16, Département de la Charente
pub const CAMILLE: &str = "camille"; // admin, acr eidas2
pub const NADIA: &str = "nadia"; // data protection officer
pub const LEA: &str = "lea"; // no membership, MJC Mosaïque (a SIRET shared by 3 places)

const START_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_HOPS: usize = 12;

fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/dev/oidc")
}

/// A client registered at the provider.
#[derive(Clone, Debug)]
pub struct OidcClient {
    pub id: String,
    pub secret: String,
    /// `client_secret_post` or `client_secret_basic`: the provider accepts only that one.
    pub auth_method: &'static str,
    /// The algorithm of its ID tokens.
    pub id_token_alg: &'static str,
    /// Userinfo answers `application/jwt` signed with this algorithm, else JSON.
    pub userinfo_jwt_alg: Option<&'static str>,
}

/// How the provider is started.
#[derive(Clone, Debug)]
pub struct OidcOptions {
    /// Paths of the relying party's redirect URIs.
    pub redirect_paths: Vec<String>,
    /// Paths of its post-logout redirect URIs.
    pub post_logout_paths: Vec<String>,
    /// The issuer's path: "" gives `http://127.0.0.1:PORT`, "/api/v2" an issuer shaped
    /// like ProConnect's (`https://…/api/v2`).
    pub issuer_path: String,
    /// ProConnect's rules on /authorize and /session/end (state and nonce of 32+ characters,
    /// no extra parameter, id_token_hint, state and post_logout_redirect_uri at logout).
    pub strict: bool,
}

impl Default for OidcOptions {
    fn default() -> Self {
        Self {
            redirect_paths: vec!["/auth/callback".to_string()],
            post_logout_paths: vec!["/".to_string(), "/connexion".to_string()],
            issuer_path: String::new(),
            strict: true,
        }
    }
}

/// Who signs in on the provider's login page.
#[derive(Clone, Debug)]
pub enum Agent {
    /// A demo agent by id ([`CLAIRE`], [`KARIM`], ...): the list "Agent".
    Demo(&'static str),
    /// A demo agent, or a new identity signed in before, by e-mail (any case).
    Email(String),
    /// An identity of the test's choosing.
    New(NewAgent),
}

/// An identity that is not in `agents.json`. `sub` must differ from the demo agents'.
#[derive(Clone, Debug)]
pub struct NewAgent {
    pub sub: String,
    pub email: String,
    pub given_name: String,
    pub usual_name: String,
    /// 14 digits; `None` leaves the `siret` claim out.
    pub siret: Option<String>,
    /// e.g. "eidas2"; the provider's default is "eidas1".
    pub acr: Option<String>,
}

impl NewAgent {
    /// A fresh identity (random `sub`) with that e-mail and no SIRET.
    pub fn new(email: &str) -> Self {
        Self {
            sub: format!("test-{}", Uuid::now_v7().simple()),
            email: email.to_string(),
            given_name: "Nina".to_string(),
            usual_name: "Nouvelle".to_string(),
            siret: None,
            acr: None,
        }
    }

    pub fn with_siret(mut self, siret: &str) -> Self {
        self.siret = Some(siret.to_string());
        self
    }
}

impl Agent {
    /// The login form's fields (see deploy/dev/oidc/README.md).
    fn form(&self) -> String {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        match self {
            Agent::Demo(id) => pairs.push(("agent", id)),
            Agent::Email(email) => pairs.push(("email", email)),
            Agent::New(a) => {
                pairs.extend([
                    ("sub", a.sub.as_str()),
                    ("email", a.email.as_str()),
                    ("given_name", a.given_name.as_str()),
                    ("usual_name", a.usual_name.as_str()),
                ]);
                if let Some(siret) = &a.siret {
                    pairs.push(("siret", siret));
                }
                if let Some(acr) = &a.acr {
                    pairs.push(("acr", acr));
                }
            }
        }
        form_urlencoded(&pairs)
    }
}

/// `application/x-www-form-urlencoded` without reqwest's "form" feature.
fn form_urlencoded(pairs: &[(&str, &str)]) -> String {
    let mut url = Url::parse("http://form.invalid/").expect("static URL");
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or_default().to_string()
}

/// What a tampered token gets wrong. Tampering happens on the provider's token (or userinfo)
/// response, so the relying party receives it through the normal flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tamper {
    /// Validly signed, with another nonce.
    WrongNonce,
    /// Validly signed, `exp` half an hour ago.
    Expired,
    /// Validly signed, for another client.
    WrongAudience,
    /// Validly signed, another `iss`.
    WrongIssuer,
    /// Validly signed, another `sub` (for userinfo: not the ID token's).
    WrongSub,
    /// Unsigned, header `alg: none`.
    AlgNone,
    /// HS256 with the provider's RSA public key (PEM) as the HMAC secret, published `kid`.
    Hs256WithPublicKey,
    /// Signed by a key that is not in the JWKS, with a `kid` that is not either.
    UnknownKid,
    /// Signed by a key that is not in the JWKS, under the published `kid`.
    BadSignature,
}

impl Tamper {
    pub fn as_str(self) -> &'static str {
        match self {
            Tamper::WrongNonce => "wrong_nonce",
            Tamper::Expired => "expired",
            Tamper::WrongAudience => "wrong_audience",
            Tamper::WrongIssuer => "wrong_issuer",
            Tamper::WrongSub => "wrong_sub",
            Tamper::AlgNone => "alg_none",
            Tamper::Hs256WithPublicKey => "hs256_with_public_key",
            Tamper::UnknownKid => "unknown_kid",
            Tamper::BadSignature => "bad_signature",
        }
    }
}

/// Why the browser did not get back to the relying party.
#[derive(Debug)]
pub enum SignInError {
    Http(reqwest::Error),
    /// The provider answered with a page instead of a redirect (e.g. 400 when the relying
    /// party broke one of ProConnect's rules, or when the form named no known agent).
    Provider {
        status: StatusCode,
        url: String,
        body: String,
    },
    /// The given client follows redirects; build it with `redirect::Policy::none()`.
    ClientFollowsRedirects,
    /// The login page came back after the form was posted.
    LoginShownAgain(String),
    /// A redirect without a usable Location.
    BadRedirect(String),
    TooManyRedirects,
}

impl std::fmt::Display for SignInError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignInError::Http(e) => write!(f, "HTTP error: {e}"),
            SignInError::Provider { status, url, body } => write!(f, "the provider answered {status} at {url}: {body}"),
            SignInError::ClientFollowsRedirects => {
                write!(f, "the client follows redirects; use redirect::Policy::none()")
            }
            SignInError::LoginShownAgain(url) => write!(f, "the login page came back after signing in ({url})"),
            SignInError::BadRedirect(url) => write!(f, "a redirect without a valid Location from {url}"),
            SignInError::TooManyRedirects => write!(f, "too many redirects"),
        }
    }
}

impl std::error::Error for SignInError {}

impl From<reqwest::Error> for SignInError {
    fn from(e: reqwest::Error) -> Self {
        SignInError::Http(e)
    }
}

/// A running development provider.
pub struct OidcProvider {
    child: Child,
    issuer: String,
    base: Url,
    data_dir: PathBuf,
    http: reqwest::Client,
    clients: Vec<OidcClient>,
}

impl OidcProvider {
    pub async fn start() -> Self {
        Self::start_with(OidcOptions::default()).await
    }

    pub async fn start_with(options: OidcOptions) -> Self {
        let dir = provider_dir();
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "the development OpenID provider is not installed: run \
             `source deploy/dev/oidc/env.sh && ensure_oidc_provider`"
        );
        let data_dir = std::env::temp_dir().join(format!("aiguillage-oidc-{}", Uuid::now_v7().simple()));
        fs::create_dir_all(&data_dir).expect("create the provider's data directory");
        let log = File::create(data_dir.join("provider.log")).expect("create the provider's log");

        let secret = || format!("{}{}", Uuid::now_v7().simple(), Uuid::now_v7().simple());
        let clients = vec![
            OidcClient {
                id: "aiguillage-test".to_string(),
                secret: secret(),
                auth_method: "client_secret_post",
                id_token_alg: "RS256",
                userinfo_jwt_alg: None,
            },
            OidcClient {
                id: "aiguillage-test-jwt".to_string(),
                secret: secret(),
                auth_method: "client_secret_basic",
                id_token_alg: "RS256",
                userinfo_jwt_alg: Some("RS256"),
            },
            // ProConnect's defaults: ES256 and a signed userinfo.
            OidcClient {
                id: "aiguillage-test-es256".to_string(),
                secret: secret(),
                auth_method: "client_secret_post",
                id_token_alg: "ES256",
                userinfo_jwt_alg: Some("ES256"),
            },
        ];
        let loopback = |paths: &[String]| -> Vec<String> {
            paths.iter().flat_map(|p| [format!("http://127.0.0.1{p}"), format!("http://localhost{p}")]).collect()
        };
        let metadata: Vec<Value> = clients
            .iter()
            .map(|c| {
                let mut m = json!({
                    "client_id": c.id,
                    "client_secret": c.secret,
                    "client_name": "Aiguillage (tests)",
                    "application_type": "native",
                    "redirect_uris": loopback(&options.redirect_paths),
                    "post_logout_redirect_uris": loopback(&options.post_logout_paths),
                    "token_endpoint_auth_method": c.auth_method,
                    "id_token_signed_response_alg": c.id_token_alg,
                });
                if let Some(alg) = c.userinfo_jwt_alg {
                    m["userinfo_signed_response_alg"] = json!(alg);
                }
                m
            })
            .collect();

        let node = std::env::var("OIDC_NODE").unwrap_or_else(|_| "node".to_string());
        let mut command = Command::new(node);
        command
            .arg(dir.join("server.mjs"))
            .current_dir(&dir)
            .env("OIDC_PORT", "0")
            .env("OIDC_DATA_DIR", &data_dir)
            .env("OIDC_CLIENTS", Value::Array(metadata).to_string())
            .env("OIDC_ISSUER_PATH", &options.issuer_path)
            .env("OIDC_STRICT", if options.strict { "1" } else { "0" })
            .env("OIDC_TEST_CONTROLS", "1")
            .env_remove("OIDC_CLIENTS_FILE")
            .env_remove("OIDC_AGENTS_FILE")
            .env_remove("OIDC_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log);
        let mut child = command.spawn().expect("start node (set OIDC_NODE if it is not on PATH)");

        let deadline = Instant::now() + START_TIMEOUT;
        let ready_file = data_dir.join("ready.json");
        let read_log = || fs::read_to_string(data_dir.join("provider.log")).unwrap_or_default();
        let issuer = loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the OpenID provider exited ({status}):\n{}", read_log());
            }
            if let Some(issuer) = fs::read(&ready_file)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| v["issuer"].as_str().map(str::to_string))
            {
                break issuer;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the OpenID provider did not start within {START_TIMEOUT:?}:\n{}", read_log());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };

        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client");
        let discovery = format!("{issuer}/.well-known/openid-configuration");
        loop {
            if let Ok(resp) = http.get(&discovery).send().await
                && resp.status() == StatusCode::OK
            {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the OpenID provider's discovery did not answer at {discovery}:\n{}", read_log());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }

        let mut base = Url::parse(&issuer).expect("issuer URL");
        base.set_path("/");
        Self { child, issuer, base, data_dir, http, clients }
    }

    /// The issuer, for `AIGUILLAGE_OIDC_ISSUER`; no trailing slash.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `client_secret_post`, RS256 ID tokens, userinfo as JSON.
    pub fn client(&self) -> &OidcClient {
        &self.clients[0]
    }

    /// `client_secret_basic`, RS256 ID tokens, userinfo as a JWT signed RS256.
    pub fn jwt_client(&self) -> &OidcClient {
        &self.clients[1]
    }

    /// `client_secret_post`, ES256 ID tokens and userinfo JWT: ProConnect's defaults.
    pub fn es256_client(&self) -> &OidcClient {
        &self.clients[2]
    }

    /// The provider's output so far (for a failing assertion's message).
    pub fn log(&self) -> String {
        fs::read_to_string(self.data_dir.join("provider.log")).unwrap_or_default()
    }

    async fn control(&self, action: &str, body: Option<Value>) -> Value {
        let url = self.base.join(&format!("__test/{action}")).expect("control URL");
        let request = match body {
            Some(body) => self.http.post(url).json(&body),
            None => self.http.get(url),
        };
        let resp = request.send().await.expect("reach the provider's test controls");
        let status = resp.status();
        let value: Value = resp.json().await.expect("test control answer");
        assert!(status.is_success(), "test control {action}: {status} {value}");
        value
    }

    /// Current test state: `tamper`, `signing_kids` ({"RS256": kid, "ES256": kid}),
    /// `published_kids`.
    pub async fn state(&self) -> Value {
        self.control("state", None).await
    }

    /// New signing keys (new `kid`s) sign from now on; the old ones stay in the JWKS.
    /// Returns the new RS256 `kid`.
    pub async fn rotate_key(&self) -> String {
        let state = self.control("rotate-key", Some(json!({ "keep_old": true }))).await;
        state["signing_kids"]["RS256"].as_str().unwrap_or_default().to_string()
    }

    /// Like [`rotate_key`](Self::rotate_key), and the old keys leave the JWKS.
    pub async fn rotate_key_dropping_old(&self) -> String {
        let state = self.control("rotate-key", Some(json!({ "keep_old": false }))).await;
        state["signing_kids"]["RS256"].as_str().unwrap_or_default().to_string()
    }

    /// The next ID token issued (by any client) comes out tampered.
    pub async fn tamper(&self, mode: Tamper) {
        self.tamper_next(mode, "id_token", 1).await;
    }

    /// The next userinfo JWT (a client with `userinfo_jwt_alg`) comes out tampered.
    pub async fn tamper_userinfo(&self, mode: Tamper) {
        assert_ne!(mode, Tamper::WrongNonce, "a userinfo response has no nonce");
        self.tamper_next(mode, "userinfo", 1).await;
    }

    /// The next `count` tokens of `target` ("id_token" or "userinfo") come out tampered.
    pub async fn tamper_next(&self, mode: Tamper, target: &str, count: u32) {
        self.control("tamper", Some(json!({ "mode": mode.as_str(), "target": target, "count": count }))).await;
    }

    /// No more tampering.
    pub async fn reset(&self) {
        self.control("reset", Some(json!({}))).await;
    }

    fn is_provider(&self, url: &Url) -> bool {
        url.origin() == self.base.origin()
    }

    /// From an authorization URL (the relying party's redirect), through the provider's
    /// login page (posted for `agent`) or its single sign-on, to the URL the provider sends
    /// the browser back to: the relying party's callback, not followed. A callback may
    /// carry `error=access_denied` (a cancelled sign-in, an unmet `acr`).
    pub async fn sign_in(
        &self,
        browser: &reqwest::Client,
        authorization_url: &str,
        agent: &Agent,
    ) -> Result<Url, SignInError> {
        let mut url =
            Url::parse(authorization_url).map_err(|_| SignInError::BadRedirect(authorization_url.to_string()))?;
        let mut submitted = false;
        for _ in 0..MAX_HOPS {
            if !self.is_provider(&url) {
                return Ok(url);
            }
            let resp = browser.get(url.clone()).send().await?;
            if resp.url() != &url {
                return Err(SignInError::ClientFollowsRedirects);
            }
            if resp.status().is_redirection() {
                url = location(&url, &resp)?;
                continue;
            }
            let status = resp.status();
            let body = resp.text().await?;
            if status != StatusCode::OK || !url.path().contains("/interaction/") {
                return Err(SignInError::Provider { status, url: url.to_string(), body });
            }
            if submitted {
                return Err(SignInError::LoginShownAgain(url.to_string()));
            }
            let action = Url::parse(&format!("{}/login", url.as_str().trim_end_matches('/')))
                .map_err(|_| SignInError::BadRedirect(url.to_string()))?;
            let resp = browser
                .post(action.clone())
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(agent.form())
                .send()
                .await?;
            submitted = true;
            if !resp.status().is_redirection() {
                let status = resp.status();
                return Err(SignInError::Provider { status, url: action.to_string(), body: resp.text().await? });
            }
            url = location(&action, &resp)?;
        }
        Err(SignInError::TooManyRedirects)
    }

    /// Follows the provider's redirects from `url` (e.g. the relying party's redirect to
    /// `end_session_endpoint`) to the first URL off the provider: after a logout, the
    /// `post_logout_redirect_uri` with its `state`.
    pub async fn follow(&self, browser: &reqwest::Client, url: &str) -> Result<Url, SignInError> {
        let mut url = Url::parse(url).map_err(|_| SignInError::BadRedirect(url.to_string()))?;
        for _ in 0..MAX_HOPS {
            if !self.is_provider(&url) {
                return Ok(url);
            }
            let resp = browser.get(url.clone()).send().await?;
            if resp.url() != &url {
                return Err(SignInError::ClientFollowsRedirects);
            }
            if !resp.status().is_redirection() {
                let status = resp.status();
                return Err(SignInError::Provider { status, url: url.to_string(), body: resp.text().await? });
            }
            url = location(&url, &resp)?;
        }
        Err(SignInError::TooManyRedirects)
    }
}

fn location(from: &Url, resp: &reqwest::Response) -> Result<Url, SignInError> {
    resp.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| from.join(v).ok())
        .ok_or_else(|| SignInError::BadRedirect(from.to_string()))
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.data_dir);
    }
}
