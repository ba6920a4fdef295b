//! The one binary's library: runs any set of services in one process behind one HTTP
//! listener (`serve --services all`, the default and the demo), or a single service in a
//! split deployment. Tests start the same code in-process.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use bus::{Broker, ServiceContext, Topology};
use platform::Config;
use platform::auth::{Authenticator, KeyRing};
use platform::health::{Database, Dependency};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub mod demo;
pub mod openapi;

/// The services this binary can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Referrals,
    Directory,
    Matcher,
    Insights,
    Accounts,
    /// E-mails, reminders, digests and webhooks.
    Notify,
    /// The pages and sign-in.
    Web,
}

impl Service {
    pub const ALL: [Service; 7] = [
        Service::Referrals,
        Service::Directory,
        Service::Matcher,
        Service::Insights,
        Service::Accounts,
        Service::Notify,
        Service::Web,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::Referrals => referrals::SERVICE,
            Service::Directory => directory::SERVICE,
            Service::Matcher => matcher::SERVICE,
            Service::Insights => insights::SERVICE,
            Service::Accounts => accounts::SERVICE,
            Service::Notify => notify::SERVICE,
            Service::Web => web::SERVICE,
        }
    }
}

impl FromStr for Service {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Service::ALL.into_iter().find(|x| x.name() == s.trim()).ok_or_else(|| {
            format!(
                "unknown service {s:?}; expected all, referrals, directory, matcher, insights, accounts, notify or web"
            )
        })
    }
}

/// Parses `all` or a comma-separated list.
pub fn parse_services(s: &str) -> Result<Vec<Service>, String> {
    if s.trim() == "all" {
        return Ok(Service::ALL.to_vec());
    }
    let mut services =
        s.split(',').filter(|p| !p.trim().is_empty()).map(Service::from_str).collect::<Result<Vec<_>, _>>()?;
    services.sort();
    services.dedup();
    if services.is_empty() {
        return Err("no service given".to_string());
    }
    Ok(services)
}

/// Every queue of the deployment. Every process declares all of them, so events are
/// routable whichever services run where.
pub fn topology(namespace: &str) -> Topology {
    Topology::new(
        namespace,
        vec![referrals::queue(), matcher::queue(), insights::queue(), accounts::queue(), notify::queue()],
    )
}

/// Creates the database if needed, then every schema. Idempotent.
pub async fn migrate(config: &Config) -> anyhow::Result<PgPool> {
    platform::db::create_database_if_missing(&config.database_url)
        .await
        .context("could not reach or create the database")?;
    let pool = platform::db::connect(&config.database_url, 4).await?;
    migrate_pool(&pool).await?;
    Ok(pool)
}

pub async fn migrate_pool(pool: &PgPool) -> anyhow::Result<()> {
    migrate_services(pool, &Service::ALL).await
}

/// The platform's objects, then the schemas of these services only: a service's database
/// role reaches its own schema and nothing else.
pub async fn migrate_services(pool: &PgPool, services: &[Service]) -> anyhow::Result<()> {
    platform::db::migrate_platform(pool).await?;
    for service in services {
        match service {
            Service::Directory => directory::migrate(pool).await?,
            Service::Matcher => matcher::migrate(pool).await?,
            Service::Referrals => referrals::migrate(pool).await?,
            Service::Insights => insights::migrate(pool).await?,
            Service::Accounts => accounts::migrate(pool).await?,
            Service::Notify => notify::migrate(pool).await?,
            Service::Web => web::migrate(pool).await?,
        }
    }
    Ok(())
}

/// Waits for the database and migrates the schemas of `services`, retrying with backoff,
/// so a process started before PostgreSQL comes up once it does.
async fn migrate_when_ready(
    config: &Config,
    pool: &PgPool,
    services: &[Service],
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut wait = Duration::from_millis(200);
    loop {
        let result = async {
            platform::db::create_database_if_missing(&config.database_url).await?;
            migrate_services(pool, services).await
        }
        .await;
        match result {
            Ok(()) => return Ok(()),
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), retry_in_ms = wait.as_millis() as u64, "database not ready");
                tokio::select! {
                    _ = shutdown.cancelled() => anyhow::bail!("shut down before the database was ready"),
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Runs `services` until `shutdown` is cancelled, then stops taking work, lets in-flight
/// requests and messages finish, and returns.
pub async fn run(
    config: Config,
    services: &[Service],
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // In the order of [`Service::ALL`]: accounts starts before notify, which calls it.
    let mut services = services.to_vec();
    services.sort();
    services.dedup();
    // A process that holds personal data cannot read or write it without the master key:
    // it refuses to start. (The matcher, the directory, insights, notify and web hold none:
    // notify asks accounts' API for an agent's address at send time.)
    let keys = if services.iter().any(|s| matches!(s, Service::Referrals | Service::Accounts)) {
        Some(config.master_keys()?)
    } else {
        None
    };
    // Links in e-mails and the sign-in's redirect name this site: without a configured
    // public URL, the address this process actually listens on (a port chosen by the
    // system included).
    let mut config = config;
    if config.public_url.is_none() {
        config.public_url = Some(format!("http://{}", listener.local_addr()?));
    }
    let config = Arc::new(config);
    let pool = platform::db::pool(&config.database_url, config.db_pool_size)?;
    migrate_when_ready(&config, &pool, &services, &shutdown).await?;
    let referrals_vault = match (&keys, services.contains(&Service::Referrals)) {
        (Some((master, previous)), true) => Some(
            referrals::open_vault(&pool, master.clone(), previous.clone()).await.context("the referrals' data keys")?,
        ),
        _ => None,
    };
    let accounts_vault = match (&keys, services.contains(&Service::Accounts)) {
        (Some((master, previous)), true) => Some(
            accounts::open_vault(&pool, master.clone(), previous.clone()).await.context("the accounts' data keys")?,
        ),
        _ => None,
    };
    let auth = Authenticator::new(KeyRing::load(&pool, config.token_secret.as_deref()).await?);
    let names: Vec<&str> = services.iter().map(|s| s.name()).collect();
    let broker = Broker::start(
        &config.amqp_url,
        topology(&config.namespace),
        &format!("aiguillage {}", names.join(",")),
        shutdown.clone(),
    );
    let tasks = TaskTracker::new();
    let ctx = ServiceContext {
        pool: pool.clone(),
        broker: Arc::clone(&broker),
        config: Arc::clone(&config),
        auth: auth.clone(),
        shutdown: shutdown.clone(),
        tasks: tasks.clone(),
    };
    tasks.spawn(auth.clone().keep_fresh(
        pool.clone(),
        config.token_secret.clone(),
        config.auth_refresh,
        shutdown.clone(),
    ));
    platform::metrics::metrics().add_collector(Arc::new(bus::dlq::DeadLetterCollector { broker: Arc::clone(&broker) }));

    let dependencies: Vec<Arc<dyn Dependency>> =
        vec![Arc::new(Database(pool.clone())), Arc::new(bus::broker::BrokerDependency(Arc::clone(&broker)))];
    let api_url = match &config.api_url {
        Some(url) => Some(url.parse::<url::Url>().map_err(|e| anyhow::anyhow!("invalid AIGUILLAGE_API_URL: {e}"))?),
        None => None,
    };
    // Accounts' and referrals' APIs, for notify: in process when they run here, else
    // through the deployment's base URL.
    let mut accounts_api: Option<platform::client::ApiClient> =
        api_url.clone().map(platform::client::ApiClient::remote);
    let mut referrals_api = accounts_api.clone();
    let mut router = Router::new().merge(platform::health::router(dependencies)).merge(openapi::router());
    for service in &services {
        router = match service {
            Service::Referrals => match &referrals_vault {
                Some(vault) => {
                    let referrals = referrals::router(referrals::start(&ctx, vault.clone()));
                    referrals_api = Some(platform::client::ApiClient::Local(platform::http::finish(referrals.clone())));
                    router.merge(referrals)
                }
                None => router,
            },
            Service::Directory => router.merge(directory::router(directory::start(&ctx))),
            Service::Matcher => router.merge(matcher::router(matcher::start(&ctx))),
            Service::Insights => router.merge(insights::router(insights::start(&ctx))),
            Service::Accounts => match &accounts_vault {
                Some(vault) => {
                    let accounts = accounts::router(accounts::start(&ctx, vault.clone()));
                    accounts_api = Some(platform::client::ApiClient::Local(platform::http::finish(accounts.clone())));
                    router.merge(accounts)
                }
                None => router,
            },
            Service::Notify => {
                let needs = "notify asks accounts (agents' addresses) and referrals (answer links) when an e-mail goes: \
                             run them in this process, or set AIGUILLAGE_API_URL";
                let accounts = accounts_api.clone().context(needs)?;
                let referrals = referrals_api.clone().context(needs)?;
                router.merge(notify::router(notify::start(&ctx, accounts, referrals)?))
            }
            Service::Web => router,
        };
    }
    let api = platform::http::finish(router);
    let router = if services.contains(&Service::Web) {
        let web_config = web::WebConfig::from_config(&config, listener.local_addr()?)?;
        // In process when this process serves the API, else through its public base URL.
        let client = match &api_url {
            Some(url) => web::api::remote(url.clone()),
            None => web::Api::Local(api.clone()),
        };
        web::router(web::start(&ctx, client, web_config), api)
    } else {
        api
    };
    tracing::info!(address = %listener.local_addr()?, services = ?names, namespace = %config.namespace, "serving");
    platform::http::serve(listener, router, shutdown.clone()).await?;

    // HTTP has drained; consumers finish and ack what they hold, relays their batch.
    shutdown.cancel();
    tasks.close();
    if tokio::time::timeout(Duration::from_secs(30), tasks.wait()).await.is_err() {
        tracing::warn!("background work did not stop within 30 s");
    }
    broker.close().await;
    pool.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Cancels `token` on SIGTERM or SIGINT.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate => {}
        }
        tracing::info!("signal received: shutting down gracefully");
        token.cancel();
    });
}

/// The API paths each service serves (its part of the OpenAPI document): what a proxy in
/// front of a split deployment routes to it.
pub fn api_paths(service: Service) -> Vec<String> {
    let doc = match service {
        Service::Referrals => referrals::openapi(),
        Service::Directory => directory::openapi(),
        Service::Matcher => matcher::openapi(),
        Service::Insights => insights::openapi(),
        Service::Accounts => accounts::openapi(),
        Service::Notify => notify::openapi(),
        Service::Web => return vec![],
    };
    doc.paths.paths.keys().cloned().collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod proxy_routes {
    //! `deploy/proxy/Caddyfile` routes every API path of every service to that service,
    //! and everything that is not the API to the web app.

    use super::*;

    /// A `handle @name` block of the Caddyfile: its path patterns, the ones it excludes,
    /// and the service it proxies to (`None`: it answers itself).
    #[derive(Debug)]
    struct Route {
        paths: Vec<String>,
        not_paths: Vec<String>,
        upstream: Option<String>,
    }

    /// Caddy's path matcher: a trailing `*` is a prefix; elsewhere `*` stays in a segment.
    fn matches(pattern: &str, path: &str) -> bool {
        if let Some(prefix) = pattern.strip_suffix('*').filter(|p| !p.contains('*')) {
            return path.starts_with(prefix);
        }
        let (p, s): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
        p.len() == s.len() && p.iter().zip(&s).all(|(p, s)| *p == "*" || p == s)
    }

    /// The `handle` blocks in the order Caddy tries them (named matchers keep the file's
    /// order; the bare `handle` comes last).
    fn routes(caddyfile: &str) -> Vec<Route> {
        let mut matchers: std::collections::HashMap<String, (Vec<String>, Vec<String>)> = Default::default();
        let mut routes = vec![];
        let lines: Vec<&str> = caddyfile.lines().map(str::trim).collect();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [name, "path", paths @ ..] if name.starts_with('@') => {
                    matchers.insert(name.to_string(), (paths.iter().map(|p| p.to_string()).collect(), vec![]));
                }
                [name, "{"] if name.starts_with('@') => {
                    let (mut paths, mut not) = (vec![], vec![]);
                    i += 1;
                    while lines[i] != "}" {
                        let w: Vec<&str> = lines[i].split_whitespace().collect();
                        match w.as_slice() {
                            ["path", p @ ..] => paths.extend(p.iter().map(|p| p.to_string())),
                            ["not", "path", p @ ..] => not.extend(p.iter().map(|p| p.to_string())),
                            _ => {}
                        }
                        i += 1;
                    }
                    matchers.insert(name.to_string(), (paths, not));
                }
                ["handle", rest @ ..] => {
                    let upstream = lines[i + 1..]
                        .iter()
                        .take_while(|l| **l != "}")
                        .find_map(|l| l.strip_prefix("import upstream {$AIGUILLAGE_"))
                        .and_then(|r| r.split('_').next())
                        .map(|s| s.to_lowercase());
                    let (paths, not_paths) = match rest {
                        [name, "{"] => matchers.get(*name).cloned().unwrap_or_default(),
                        _ => (vec!["*".to_string()], vec![]),
                    };
                    routes.push(Route { paths, not_paths, upstream });
                }
                _ => {}
            }
            i += 1;
        }
        routes
    }

    fn route<'a>(routes: &'a [Route], path: &str) -> Option<&'a Route> {
        routes.iter().find(|r| {
            r.paths.iter().any(|p| p == "*" || matches(p, path)) && !r.not_paths.iter().any(|p| matches(p, path))
        })
    }

    #[test]
    fn the_proxy_sends_every_api_path_to_the_service_that_serves_it() {
        let caddyfile = include_str!("../../../deploy/proxy/Caddyfile");
        let routes = routes(caddyfile);
        assert!(routes.len() > 10, "{routes:?}");
        for service in Service::ALL {
            for path in api_paths(service) {
                let concrete = path.replace("{id}", "x1");
                let to = route(&routes, &concrete).and_then(|r| r.upstream.as_deref());
                assert_eq!(to, Some(service.name()), "{path} (as {concrete})");
            }
        }
        for page in
            ["/", "/connexion", "/auth/callback", "/orientations/x1", "/territoire/entonnoir", "/static/dsfr.css"]
        {
            let to = route(&routes, page).and_then(|r| r.upstream.as_deref());
            assert_eq!(to, Some("web"), "{page}");
        }
        for service in Service::ALL {
            let probe = format!("/readyz/{}", service.name());
            assert_eq!(route(&routes, &probe).and_then(|r| r.upstream.as_deref()), Some(service.name()), "{probe}");
        }
        assert!(route(&routes, "/api/v1/unknown").is_some_and(|r| r.upstream.is_none()), "an unknown API path: 404");
    }
}
