//! The directory: organisations, structures (*lieux de médiation numérique*) and their
//! declared capacity. It publishes `organisation.upserted`, `structure.upserted`,
//! `structure.removed` and `capacity.changed`, and consumes nothing.

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use platform::Config;
use platform::auth::Authenticator;
use sqlx::PgPool;

pub mod domain;
mod http;
pub mod import;
mod store;
mod view;

pub const SCHEMA: &str = "directory";
pub const SERVICE: &str = "directory";

#[derive(Clone)]
pub struct Directory {
    pub pool: PgPool,
    pub auth: Authenticator,
    pub config: Arc<Config>,
}

impl FromRef<Directory> for Authenticator {
    fn from_ref(s: &Directory) -> Self {
        s.auth.clone()
    }
}

/// Creates or upgrades the `directory` schema.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    platform::db::migrate(pool, SCHEMA, sqlx::migrate!("./migrations")).await?;
    bus::schema::migrate(pool, SCHEMA).await?;
    Ok(())
}

pub fn router(state: Directory) -> Router {
    http::router(state)
}

/// This service's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    http::routes().into_openapi()
}

/// Starts the background work: the outbox relay.
pub fn start(ctx: &bus::ServiceContext) -> Directory {
    ctx.spawn_relay(SCHEMA, SERVICE);
    ctx.spawn_housekeeping(SCHEMA);
    Directory { pool: ctx.pool.clone(), auth: ctx.auth.clone(), config: Arc::clone(&ctx.config) }
}

/// The real Charente directory (ANCT, July 2023; see `data/README.md`), for the demo.
pub const SAMPLE_DIRECTORY: &[u8] = include_bytes!("../data/charente-16.json");

/// Creates an organisation with a fixed id unless it exists (the demo's).
pub async fn ensure_organisation(
    pool: &PgPool,
    id: contracts::OrganisationId,
    name: &str,
    kind: contracts::OrganisationKind,
    territory: &str,
) -> anyhow::Result<()> {
    let territory: contracts::Territory = territory.parse()?;
    let mut tx = pool.begin().await?;
    if store::organisation(&mut tx, id).await?.is_none() {
        let draft = domain::organisation::OrganisationDraft { name: name.to_string(), kind, territory, siret: None };
        store::insert_organisation(&mut tx, id, &draft).await?;
        let event = contracts::events::OrganisationUpserted {
            organisation_id: id,
            name: draft.name,
            kind,
            territory: draft.territory,
            siret: None,
        };
        bus::enqueue(&mut tx, SCHEMA, &contracts::Envelope::new(id.to_string(), 1, &event)).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Every structure of a territory (the demo picks its example mediator among them).
pub async fn structures_of(pool: &PgPool, territory: &str) -> anyhow::Result<Vec<contracts::events::Structure>> {
    let mut conn = pool.acquire().await?;
    let filter = store::StructureFilter {
        territories: Some(vec![territory.to_string()]),
        service: None,
        near: None,
        radius_km: 0.0,
        limit: 100_000,
        offset: 0,
    };
    Ok(store::structures(&mut conn, &filter).await?)
}
