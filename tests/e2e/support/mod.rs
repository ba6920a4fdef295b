//! Test support: each test gets its own database and its own broker namespace, a real
//! server (in-process, or the real binary when a test kills it), and tokens for every
//! role. Nothing is mocked: PostgreSQL and RabbitMQ are the machine's.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod capture;
pub mod oidc;
pub mod proxy;
pub mod sms;
pub mod smtp;

use std::future::Future;
use std::time::{Duration, Instant};

use contracts::Role;
use platform::Config;
use platform::auth::{Claims, Scope, TokenKey};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const AIDE: &str = "aide_demarches_administratives";

/// The server of the machine's PostgreSQL, as a URL without a database.
pub fn postgres_base() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://%2Fvar%2Frun%2Fpostgresql".to_string())
}

pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", &Uuid::now_v7().simple().to_string()[20..])
}

/// Polls `f` until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every queue on the machine's broker, with its name, type and arguments (JSON, from
/// `rabbitmqctl list_queues`).
pub fn broker_queues() -> Value {
    let out = std::process::Command::new("rabbitmqctl")
        .args(["list_queues", "--quiet", "--formatter", "json", "name", "type", "arguments"])
        .output()
        .expect("rabbitmqctl");
    serde_json::from_slice(&out.stdout).unwrap_or(json!([]))
}

/// Tests share the machine's broker. Most only need it up (shared); the few that stop or
/// block it take it exclusively, so they never disturb the others.
static BROKER: std::sync::LazyLock<std::sync::Arc<tokio::sync::RwLock<()>>> =
    std::sync::LazyLock::new(|| std::sync::Arc::new(tokio::sync::RwLock::new(())));

pub enum BrokerUse {
    Shared(tokio::sync::OwnedRwLockReadGuard<()>),
    Exclusive(tokio::sync::OwnedRwLockWriteGuard<()>),
    /// Another sandbox value holds the guard for these same resources.
    Borrowed,
}

/// A database and a namespace of one's own.
pub struct Sandbox {
    pub database: String,
    pub namespace: String,
    /// The servers they live on: the machine's, or the local clusters' (`on_servers`).
    pub servers: Servers,
    pub config: Config,
    pub broker_use: BrokerUse,
    /// Whether dropping it removes the database and the namespace (not for an alias).
    owned: bool,
    /// The sandbox's master key, base64 (`AIGUILLAGE_MASTER_KEY` of the binary's runs).
    pub master_key: String,
}

impl Sandbox {
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(adjust: impl FnOnce(&mut Config)) -> Self {
        let guard = BrokerUse::Shared(std::sync::Arc::clone(&BROKER).read_owned().await);
        Self::create(adjust, guard, Servers::machine()).await
    }

    /// On other servers than the machine's (the local clusters of `deploy/cluster`),
    /// which the machine's broker guard has nothing to do with.
    pub async fn on_servers(servers: Servers) -> Self {
        Self::create(|_| {}, BrokerUse::Borrowed, servers).await
    }

    /// For a test that stops or blocks the shared broker: it waits for every other test
    /// to finish with the broker, and no other starts until it is done.
    pub async fn exclusive() -> Self {
        let guard = BrokerUse::Exclusive(std::sync::Arc::clone(&BROKER).write_owned().await);
        Self::create(|_| {}, guard, Servers::machine()).await
    }

    /// The same database and namespace, for a second handle (the guard stays with `self`).
    pub fn alias(&self) -> Self {
        Self {
            database: self.database.clone(),
            namespace: self.namespace.clone(),
            servers: self.servers.clone(),
            config: self.config.clone(),
            broker_use: BrokerUse::Borrowed,
            owned: false,
            master_key: self.master_key.clone(),
        }
    }

    async fn create(adjust: impl FnOnce(&mut Config), broker_use: BrokerUse, servers: Servers) -> Self {
        let database = unique("aig_test_");
        let namespace = unique("t");
        let database_url = servers.database_url(&database);
        let amqp = servers.amqp_url.clone();
        // Each sandbox has a master key of its own, as each deployment does.
        let master_key = platform::vault::MasterKey::generate_base64();
        let mut config = Config::from_lookup(|k| match k {
            "DATABASE_URL" => Some(database_url.clone()),
            "AMQP_URL" => Some(amqp.clone()),
            "AIGUILLAGE_NAMESPACE" => Some(namespace.clone()),
            "AIGUILLAGE_DB_POOL_SIZE" => Some("6".to_string()),
            // Revocations and key rotations reach the server in a second, not twenty.
            "AIGUILLAGE_AUTH_REFRESH" => Some("1s".to_string()),
            "AIGUILLAGE_MASTER_KEY" => Some(master_key.clone()),
            _ => None,
        })
        .unwrap();
        // Simulations run in the binary's worker process, as a served binary's do.
        config.simulation_worker = Some(env!("CARGO_BIN_EXE_aiguillage").into());
        adjust(&mut config);
        aiguillage::migrate(&config).await.unwrap().close().await;
        Self { database, namespace, servers, config, broker_use, owned: true, master_key }
    }

    pub async fn pool(&self) -> sqlx::PgPool {
        platform::db::connect(&self.config.database_url, 2).await.unwrap()
    }

    pub async fn key(&self) -> TokenKey {
        let pool = self.pool().await;
        let key = TokenKey::load(&pool, None).await.unwrap();
        pool.close().await;
        key
    }

    /// Drops the database and every queue and exchange of the namespace. A sandbox that
    /// is dropped without this (a failing test) cleans up in `Drop`.
    pub async fn destroy(mut self) {
        remove(&self.database, &self.namespace, &self.servers).await;
        self.owned = false;
        self.broker_use = BrokerUse::Borrowed;
    }
}

/// Where a sandbox's database and namespace live.
#[derive(Debug, Clone)]
pub struct Servers {
    /// A PostgreSQL URL without a database: one server, or several (`h1:p1,h2:p2`), with
    /// its query (`?target_session_attrs=read-write`) kept apart.
    pub postgres_base: String,
    pub postgres_query: String,
    pub amqp_url: String,
}

impl Servers {
    pub fn machine() -> Self {
        Self { postgres_base: postgres_base(), postgres_query: String::new(), amqp_url: amqp_url() }
    }

    /// From a `DATABASE_URL` naming some database (its name is replaced per sandbox).
    pub fn from_urls(database_url: &str, amqp_url: &str) -> Self {
        let (url, query) = database_url.split_once('?').map_or((database_url, ""), |(u, q)| (u, q));
        let scheme_end = url.find("://").map_or(0, |i| i + 3);
        let base = match url[scheme_end..].find('/') {
            Some(slash) => &url[..scheme_end + slash],
            None => url,
        };
        let postgres_query = if query.is_empty() { String::new() } else { format!("?{query}") };
        Self { postgres_base: base.to_string(), postgres_query, amqp_url: amqp_url.to_string() }
    }

    pub fn database_url(&self, database: &str) -> String {
        format!("{}/{database}{}", self.postgres_base, self.postgres_query)
    }
}

async fn remove(database: &str, namespace: &str, servers: &Servers) {
    if let Ok(conn) = bus::connect(&servers.amqp_url).await {
        if let Ok(channel) = conn.create_channel().await {
            let _ = aiguillage::topology(namespace).delete(&channel).await;
        }
        let _ = conn.close(200, "test done".into()).await;
    }
    let admin = platform::db::pool(&servers.database_url("postgres"), 1).unwrap();
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)")))
        .execute(&admin)
        .await;
    admin.close().await;
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let (database, namespace, servers) = (self.database.clone(), self.namespace.clone(), self.servers.clone());
        // A runtime of its own: this may run while a test's runtime is unwinding.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(remove(&database, &namespace, &servers));
            }
        })
        .join();
    }
}

/// A running server and a client for it.
pub struct TestApp {
    pub sandbox: Sandbox,
    pub base: String,
    pub client: reqwest::Client,
    pub key: TokenKey,
    pub admin: String,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let sandbox = Sandbox::with(adjust).await;
        Self::start(sandbox).await
    }

    /// Starts every service in this process on a fresh port.
    pub async fn start(sandbox: Sandbox) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(aiguillage::run(
            sandbox.config.clone(),
            &aiguillage::Service::ALL,
            listener,
            shutdown.clone(),
        ));
        let key = sandbox.key().await;
        let admin = key.issue(&Claims::new(Role::Admin, Scope::All, chrono::Duration::hours(1)).unwrap());
        let app = Self { sandbox, base, client: reqwest::Client::new(), key, admin, shutdown, task: Some(task) };
        app.wait_ready().await;
        app
    }

    /// A deployment that runs elsewhere (other processes, behind a proxy at `base`),
    /// driven like a server of this process. Its processes are the caller's to stop.
    pub fn external(sandbox: Sandbox, base: String, key: TokenKey) -> Self {
        let admin = key.issue(&Claims::new(Role::Admin, Scope::All, chrono::Duration::hours(1)).unwrap());
        Self {
            sandbox,
            base,
            client: reqwest::Client::new(),
            key,
            admin,
            shutdown: CancellationToken::new(),
            task: None,
        }
    }

    pub async fn wait_ready(&self) {
        eventually("/readyz", Duration::from_secs(30), || async {
            let r = self.client.get(format!("{}/readyz", self.base)).send().await.ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
    }

    pub fn token(&self, role: Role, scope: Scope) -> String {
        self.key.issue(&Claims::new(role, scope, chrono::Duration::hours(1)).unwrap())
    }

    pub fn referrer(&self, organisation: Uuid) -> String {
        self.token(Role::Referrer, Scope::Organisation(organisation.into()))
    }

    pub fn mediator(&self, structure: &str) -> String {
        self.token(Role::Mediator, Scope::Structure(structure.parse().unwrap()))
    }

    pub fn coordinator(&self, territories: &[&str]) -> String {
        self.token(Role::Coordinator, Scope::Territories(territories.iter().map(|t| t.parse().unwrap()).collect()))
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value, headers)
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let (s, v, _) = self.request(reqwest::Method::GET, path, Some(token), None).await;
        (s, v)
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let (s, v, _) = self.request(reqwest::Method::POST, path, Some(token), Some(&body)).await;
        (s, v)
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let (s, v, _) = self.request(reqwest::Method::PUT, path, Some(token), Some(&body)).await;
        (s, v)
    }

    pub async fn organisation(&self, territory: &str) -> Uuid {
        let (s, org) = self
            .post(
                "/api/v1/organisations",
                &self.admin,
                json!({"name": "CCAS test", "kind": "social_service", "territory": territory}),
            )
            .await;
        assert_eq!(s, 201, "{org}");
        org["id"].as_str().unwrap().parse().unwrap()
    }

    /// Creates or replaces a structure, and waits until the matcher has it.
    pub async fn structure(&self, id: &str, body: Value) {
        let (s, v) = self.put(&format!("/api/v1/structures/{id}"), &self.admin, body).await;
        assert!(s == 200 || s == 201, "PUT structure {id}: {s} {v}");
        self.until_matcher_has(id).await;
    }

    /// Waits until the matcher's read model agrees with the directory about a structure.
    pub async fn until_matcher_has(&self, id: &str) {
        let pool = self.sandbox.pool().await;
        eventually(&format!("the matcher to know {id}"), Duration::from_secs(20), || async {
            let same: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM matcher.structures m JOIN directory.structures d USING (id)
                 WHERE id = $1 AND m.weekly_capacity = d.weekly_capacity AND m.accepting = d.accepting
                   AND m.lat = d.lat AND m.lon = d.lon AND m.services = d.services)",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .ok()?;
            same.then_some(())
        })
        .await;
        pool.close().await;
    }

    pub async fn submit(&self, referrer: &str, body: Value) -> String {
        let (s, v) = self.post("/api/v1/referrals", referrer, body).await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    /// Posts a transition (`accept`, `decline` …) that must succeed.
    pub async fn step(&self, id: &str, step: &str, token: &str, body: Value) -> Value {
        let (s, v) = self.post(&format!("/api/v1/referrals/{id}/{step}"), token, body).await;
        assert_eq!(s, 200, "{step}: {v}");
        v
    }

    /// Waits until the referral reaches `status`, and returns it.
    pub async fn until_status(&self, id: &str, token: &str, status: &str) -> Value {
        eventually(&format!("referral {id} to be {status}"), Duration::from_secs(20), || async {
            let (s, v) = self.get(&format!("/api/v1/referrals/{id}"), token).await;
            (s == 200 && v["status"] == status).then_some(v)
        })
        .await
    }

    /// Waits until the referral has been offered `attempts` times and is in `status`.
    pub async fn until_attempt(&self, id: &str, token: &str, attempts: i64, status: &str) -> Value {
        eventually(
            &format!("referral {id} to be {status} after {attempts} offers"),
            Duration::from_secs(20),
            || async {
                let (s, v) = self.get(&format!("/api/v1/referrals/{id}"), token).await;
                (s == 200 && v["status"] == status && v["attempts"] == attempts).then_some(v)
            },
        )
        .await
    }

    /// Stops the server gracefully and removes the database and namespace.
    pub async fn stop(self) {
        self.halt().await.destroy().await;
    }

    /// Stops the server gracefully and gives its sandbox back, database and namespace
    /// kept (a replica replaced by another).
    pub async fn halt(mut self) -> Sandbox {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(40), task).await;
        }
        self.sandbox
    }
}

/// A structure near Angoulême, as the API takes it.
pub fn structure(name: &str, lat: f64, lon: f64, services: &[&str], capacity: u32) -> Value {
    json!({
        "name": name, "services": services, "modes": ["individual"], "languages": ["fr"], "other_languages": false,
        "accessibility": [],
        "address": {"street": "1 rue X", "postcode": "16000", "commune": "Angoulême", "commune_code": "16015"},
        "location": {"lat": lat, "lon": lon}, "opening_hours": "Mo-Fr 09:00-12:00",
        "weekly_capacity": capacity, "accepting": true,
        "contact": {"phone": "+33545000000", "email": "lieu@example.org"}
    })
}

/// A referral from Angoulême (16015) for administrative help.
pub fn referral() -> Value {
    json!({
        "person": {"first_name": "Camille", "last_name": "Essai", "phone": "+33612345678", "email": null,
                   "contact_preference": "phone", "commune_code": "16015", "languages": ["fr"], "accessibility": []},
        "needs": [AIDE], "modes": ["in_person"], "urgency": "normal", "note": "Dossier CAF.",
        "consent": {"obtained": true, "method": "oral", "at": "2026-11-28T09:55:00Z"}
    })
}

/// Merges `patch` into `base` (objects recursively; anything else replaces).
pub fn merged(mut base: Value, patch: Value) -> Value {
    fn merge(a: &mut Value, b: Value) {
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }
    merge(&mut base, patch);
    base
}

impl Sandbox {
    /// Runs the real binary's command line against this sandbox's database and namespace,
    /// and returns (success, stdout, stderr).
    pub async fn cli(&self, args: &[&str]) -> (bool, String, String) {
        self.cli_with(args, &[]).await
    }

    /// [`Sandbox::cli`] with more (or other) environment variables.
    pub async fn cli_with(&self, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_aiguillage"))
            .args(args)
            .env("DATABASE_URL", &self.config.database_url)
            .env("AMQP_URL", &self.config.amqp_url)
            .env("AIGUILLAGE_NAMESPACE", &self.namespace)
            .env("AIGUILLAGE_MASTER_KEY", &self.master_key)
            .env_remove("AIGUILLAGE_MASTER_KEY_FILE")
            .env_remove("AIGUILLAGE_MASTER_KEY_PREVIOUS")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .output()
            .await
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl TestApp {
    /// A token of Aiguillage's web app (what records sign-ins).
    pub fn web_service(&self) -> String {
        self.key.issue(&Claims::for_service("web", chrono::Duration::minutes(5)))
    }

    /// A token for a signed-in agent: with one of their memberships, or pending.
    pub fn agent(&self, account: Uuid, membership: Option<(Uuid, Role, Scope)>) -> String {
        let ttl = chrono::Duration::minutes(5);
        match membership {
            None => self.key.issue(&Claims::for_pending_account(account, ttl)),
            Some((id, role, scope)) => self.key.issue(&Claims::for_membership(account, id, role, scope, ttl).unwrap()),
        }
    }

    /// Records a verified sign-in as the web app does, and returns the account id.
    pub async fn sign_in_agent(&self, subject: &str, email: &str, siret: Option<&str>) -> Uuid {
        let body = json!({"issuer": "http://127.0.0.1:1/test", "subject": subject, "email": email,
                          "given_name": "Claire", "usual_name": "Dubois", "siret": siret});
        let (s, v) = self.post("/api/v1/accounts/sign-ins", &self.web_service(), body).await;
        assert_eq!(s, 200, "{v}");
        v["account_id"].as_str().unwrap().parse().unwrap()
    }
}

/// Runs `deploy/postgres/roles.sql` on the sandbox's database, as the machine's superuser.
/// Roles belong to the whole server: two runs at once could race on them, so the tests
/// of this process take turns.
pub async fn apply_roles_sql(sandbox: &Sandbox) {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let roles = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/postgres/roles.sql");
    let out = tokio::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &format!("{}/postgres", postgres_base()), "-f", roles])
        .args(["-v", &format!("dbname={}", sandbox.database)])
        .output()
        .await
        .expect("psql");
    assert!(
        out.status.success(),
        "roles.sql: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
