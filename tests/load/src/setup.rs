//! Preparing the run over HTTP: tokens, an organisation of referrers, and the synthetic
//! structures, then waiting until the matcher can offer them.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use contracts::Role;
use futures::StreamExt;
use platform::auth::{Claims, Scope, TokenKey};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::probe;
use crate::territory::StructurePlan;

/// The deployment's HTTP API with one bearer token.
#[derive(Debug, Clone)]
pub struct Api {
    pub client: Client,
    pub base: String,
    pub token: String,
}

impl Api {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn with_token(&self, token: String) -> Self {
        Self { token, ..self.clone() }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<(StatusCode, Value)> {
        let response = request.bearer_auth(&self.token).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(StatusCode, Value)> {
        self.send(self.client.post(self.url(path)).json(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<(StatusCode, Value)> {
        self.send(self.client.put(self.url(path)).json(body)).await
    }
}

/// Signs a token with the deployment's key (`AIGUILLAGE_TOKEN_SECRET`, or the one kept
/// in its database).
pub fn token(key: &TokenKey, role: Role, scope: Scope) -> anyhow::Result<String> {
    let claims = Claims::new(role, scope, chrono::Duration::hours(24)).context("building token claims")?;
    Ok(key.issue(&claims))
}

pub async fn check_ready(api: &Api) -> anyhow::Result<()> {
    let response = api
        .client
        .get(api.url("/readyz"))
        .send()
        .await
        .with_context(|| format!("no server answers at {} (start `aiguillage serve` first)", api.base))?;
    if !response.status().is_success() {
        bail!("{}/readyz answered {}: the deployment is not ready", api.base, response.status());
    }
    Ok(())
}

pub async fn create_organisation(admin: &Api, run: &str, territory: &str) -> anyhow::Result<Uuid> {
    let body = json!({"name": format!("Charge {run}"), "kind": "social_service", "territory": territory});
    let (status, created) = admin.post("/api/v1/organisations", &body).await?;
    if status != StatusCode::CREATED {
        bail!("POST /api/v1/organisations answered {status}: {created}");
    }
    created["id"].as_str().and_then(|id| Uuid::parse_str(id).ok()).context("the organisation has no id")
}

/// Creates the structures, 16 requests at a time.
pub async fn create_structures(admin: &Api, plans: &[StructurePlan]) -> anyhow::Result<()> {
    let mut puts = futures::stream::iter(plans)
        .map(|plan| async move {
            let result = admin.put(&format!("/api/v1/structures/{}", plan.id), &plan.body).await;
            (plan, result)
        })
        .buffer_unordered(16);
    while let Some((plan, result)) = puts.next().await {
        let (status, body) = result.with_context(|| format!("PUT structure {}", plan.id))?;
        if !status.is_success() {
            bail!("PUT /api/v1/structures/{} answered {status}: {body}", plan.id);
        }
    }
    Ok(())
}

/// Waits until the matcher's read model holds every structure and a preview at the
/// first one's commune proposes one of them.
pub async fn wait_for_matcher(
    admin: &Api,
    pool: &PgPool,
    prefix: &str,
    plans: &[StructurePlan],
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let deadline = start + timeout;
    loop {
        let known = probe::matcher_structures(pool, prefix).await?;
        if known >= plans.len() as i64 {
            break;
        }
        if Instant::now() > deadline {
            bail!("after {timeout:?} the matcher knows {known} of {} structures", plans.len());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let Some(first) = plans.first() else { return Ok(start.elapsed()) };
    let preview = json!({"commune_code": first.commune_code, "needs": first.services, "limit": 5});
    loop {
        let (status, body) = admin.post("/api/v1/match/preview", &preview).await?;
        let proposes_ours = body["candidates"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["structure_id"].as_str().is_some_and(|id| id.starts_with(prefix))));
        if status.is_success() && proposes_ours {
            return Ok(start.elapsed());
        }
        if Instant::now() > deadline {
            bail!("the matcher's preview never proposed the run's structures: {status} {body}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stops the run's structures accepting, so later runs on the same database are not
/// matched to them. Returns how many were retired.
pub async fn retire_structures(admin: &Api, plans: &[StructurePlan]) -> usize {
    let body = json!({"accepting": false});
    futures::stream::iter(plans)
        .map(|plan| {
            let body = &body;
            async move { admin.put(&format!("/api/v1/structures/{}/capacity", plan.id), body).await }
        })
        .buffer_unordered(16)
        .filter(|r| std::future::ready(matches!(r, Ok((s, _)) if s.is_success())))
        .count()
        .await
}

/// One mediator account per structure and one referrer for the organisation, written
/// straight into the accounts schema (as signing in and an approval would leave them),
/// so that the notifications service has agents to e-mail. Returns how many. Their
/// addresses are sealed like a sign-in's, so this needs the server's master key
/// (`AIGUILLAGE_MASTER_KEY` or `AIGUILLAGE_MASTER_KEY_FILE`).
pub async fn create_recipients(
    pool: &sqlx::PgPool,
    organisation: uuid::Uuid,
    plans: &[StructurePlan],
) -> anyhow::Result<usize> {
    let (master, previous) = platform::vault::MasterKey::from_env(|k| std::env::var(k).ok())
        .context("--recipients writes sealed addresses: give the server's master key")?;
    let vault = accounts::open_vault(pool, master, previous).await?;
    let mut tx = pool.begin().await?;
    add_agent(&mut tx, &vault, accounts::domain::Grant::Referrer(organisation.into())).await?;
    for plan in plans {
        add_agent(&mut tx, &vault, accounts::domain::Grant::Mediator(plan.id.parse()?)).await?;
    }
    tx.commit().await?;
    Ok(plans.len() + 1)
}

async fn add_agent(
    conn: &mut sqlx::PgConnection,
    vault: &platform::vault::Vault,
    grant: accounts::domain::Grant,
) -> sqlx::Result<()> {
    let email = format!("{}-{}@load.example", grant.role().slug(), uuid::Uuid::now_v7().simple());
    accounts::service::create_agent(conn, vault, "load", &email, &grant, "load").await?;
    Ok(())
}
