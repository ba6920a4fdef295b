//! HTTP: organisations, structures, capacity and imports.

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json as AxumJson, Router};
use contracts::api::{CapacityRequest, OrganisationRequest, StructureRequest};
use contracts::events::{CapacityChanged, OrganisationUpserted, Point, Structure, StructureRemoved, StructureUpserted};
use contracts::{Envelope, Need, OrganisationId, Role, StructureId};
use platform::ApiError;
use platform::auth::{Caller, Scope};
use platform::idempotency::{FingerprintedJson, IdempotencyKey};
use platform::json::{Json, Query};
use serde::Deserialize;
use sqlx::PgConnection;

use crate::domain::organisation::parse_organisation;
use crate::domain::structure::{parse_structure, valid_structure_id};
use crate::store::{self, CapacityUpdate, StructureFilter, Upserted};
use crate::{Directory, SCHEMA, import};

pub fn router(state: Directory) -> Router {
    Router::new()
        .route("/api/v1/organisations", post(create_organisation).get(list_organisations))
        .route("/api/v1/organisations/{id}", get(get_organisation))
        .route("/api/v1/structures", get(list_structures))
        .route("/api/v1/structures/import", post(import_structures))
        .route("/api/v1/structures/{id}", put(put_structure).get(get_structure).delete(delete_structure))
        .route("/api/v1/structures/{id}/capacity", put(put_capacity))
        .with_state(state)
}

fn created(location: String, body: impl serde::Serialize) -> Response {
    (StatusCode::CREATED, [(header::LOCATION, location)], AxumJson(body)).into_response()
}

async fn create_organisation(
    State(state): State<Directory>,
    caller: Caller,
    IdempotencyKey(key): IdempotencyKey,
    body: FingerprintedJson<OrganisationRequest>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin])?;
    let draft = parse_organisation(&body.value).map_err(ApiError::validation)?;
    let mut tx = state.pool.begin().await?;
    let id = OrganisationId::new();
    if let Some(key) = &key
        && let Some((hash, existing)) =
            store::claim_idempotency_key(&mut tx, "organisations", key, &body.fingerprint, &id.to_string()).await?
    {
        tx.rollback().await?;
        if hash != body.fingerprint {
            return Err(ApiError::conflict("this Idempotency-Key was used with a different body"));
        }
        let existing: OrganisationId = existing.parse().map_err(ApiError::internal)?;
        let mut conn = state.pool.acquire().await?;
        let org = store::organisation(&mut conn, existing).await?.ok_or_else(ApiError::not_found)?;
        return Ok(created(format!("/api/v1/organisations/{}", org.id), org));
    }
    let org = store::insert_organisation(&mut tx, id, &draft).await?;
    let event = OrganisationUpserted {
        organisation_id: org.id,
        name: org.name.clone(),
        kind: org.kind,
        territory: org.territory.clone(),
        siret: org.siret.clone(),
    };
    bus::enqueue(&mut tx, SCHEMA, &Envelope::new(org.id.to_string(), 1, &event)).await?;
    tx.commit().await?;
    tracing::info!(organisation_id = %org.id, territory = %org.territory, "organisation created");
    Ok(created(format!("/api/v1/organisations/{}", org.id), org))
}

async fn get_organisation(
    State(state): State<Directory>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: OrganisationId = id.parse().map_err(|_| ApiError::not_found())?;
    let visible = caller.is_admin() || caller.organisation() == Some(id);
    if !visible {
        return Err(ApiError::not_found());
    }
    let mut conn = state.pool.acquire().await?;
    let org = store::organisation(&mut conn, id).await?.ok_or_else(ApiError::not_found)?;
    Ok(AxumJson(org).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    limit: Option<i64>,
    cursor: Option<String>,
}

fn page(limit: Option<i64>, cursor: Option<&str>) -> Result<(i64, i64), ApiError> {
    let limit = limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "must be between 1 and 500"));
    }
    let offset = match cursor {
        None | Some("") => 0,
        Some(c) => c
            .parse::<i64>()
            .ok()
            .filter(|o| *o >= 0)
            .ok_or_else(|| ApiError::invalid_field("cursor", "is not a cursor this API returned"))?,
    };
    Ok((limit, offset))
}

fn next_cursor(len: usize, limit: i64, offset: i64) -> Option<String> {
    (len as i64 == limit).then(|| (offset + limit).to_string())
}

async fn list_organisations(
    State(state): State<Directory>,
    caller: Caller,
    Query(q): Query<Page>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin])?;
    let (limit, offset) = page(q.limit, q.cursor.as_deref())?;
    let mut conn = state.pool.acquire().await?;
    let items = store::organisations(&mut conn, limit, offset).await?;
    let next = next_cursor(items.len(), limit, offset);
    Ok(AxumJson(serde_json::json!({ "items": items, "next_cursor": next })).into_response())
}

/// Admin may change any structure; a coordinator those of their territories (others
/// answer 404, as if they did not exist).
fn may_edit(caller: &Caller, territory: &str) -> Result<(), ApiError> {
    caller.require(&[Role::Admin, Role::Coordinator])?;
    if caller.covers_territory(territory) { Ok(()) } else { Err(ApiError::not_found()) }
}

async fn publish_structure(conn: &mut PgConnection, s: &Structure) -> Result<(), sqlx::Error> {
    let sequence = s.updated_at.timestamp_micros();
    let event = StructureUpserted { structure: s.clone() };
    bus::enqueue(conn, SCHEMA, &Envelope::new(s.id.clone(), sequence, &event)).await
}

async fn put_structure(
    State(state): State<Directory>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<StructureRequest>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin, Role::Coordinator])?;
    let draft = parse_structure(&id, &req, geo::communes()).map_err(ApiError::validation)?;
    let mut tx = state.pool.begin().await?;
    if let Some(current) = store::structure_territory_for_update(&mut tx, &id).await? {
        may_edit(&caller, &current)?;
    }
    may_edit(&caller, &draft.territory)?;
    let (outcome, changed) = store::upsert_structure(&mut tx, &draft, state.config.default_weekly_capacity).await?;
    if let Some(s) = &changed {
        publish_structure(&mut tx, s).await?;
    }
    tx.commit().await?;
    let mut conn = state.pool.acquire().await?;
    let structure = match changed {
        Some(s) => s,
        None => store::structure(&mut conn, &id).await?.ok_or_else(ApiError::not_found)?,
    };
    tracing::info!(structure_id = %id, outcome = ?outcome, "structure saved");
    let status = if outcome == Upserted::Created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, [(header::LOCATION, format!("/api/v1/structures/{id}"))], AxumJson(structure)).into_response())
}

async fn get_structure(
    State(state): State<Directory>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if !valid_structure_id(&id) {
        return Err(ApiError::not_found());
    }
    let mut conn = state.pool.acquire().await?;
    let s = store::structure(&mut conn, &id).await?.ok_or_else(ApiError::not_found)?;
    Ok(AxumJson(s).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StructureQuery {
    territory: Option<String>,
    service: Option<String>,
    near: Option<String>,
    radius_km: Option<f64>,
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn list_structures(
    State(state): State<Directory>,
    _caller: Caller,
    Query(q): Query<StructureQuery>,
) -> Result<Response, ApiError> {
    let (limit, offset) = page(q.limit, q.cursor.as_deref())?;
    if let Some(s) = &q.service {
        s.parse::<Need>().map_err(|e| ApiError::invalid_field("service", e.to_string()))?;
    }
    let near = match &q.near {
        None => None,
        Some(raw) => {
            let parsed = raw
                .split_once(',')
                .and_then(|(a, b)| Some((a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?)));
            let point = parsed.and_then(|(lat, lon)| geo::LatLon::new(lat, lon));
            Some(
                point
                    .map(|p| Point { lat: p.lat, lon: p.lon })
                    .ok_or_else(|| ApiError::invalid_field("near", "expected lat,lon in decimal degrees"))?,
            )
        }
    };
    let radius_km = q.radius_km.unwrap_or(state.config.max_distance_km);
    if !(radius_km.is_finite() && radius_km > 0.0 && radius_km <= 2000.0) {
        return Err(ApiError::invalid_field("radius_km", "must be between 0 and 2000"));
    }
    let filter = StructureFilter {
        territories: q.territory.map(|t| vec![t]),
        service: q.service,
        near,
        radius_km,
        limit,
        offset,
    };
    let mut conn = state.pool.acquire().await?;
    let items = store::structures(&mut conn, &filter).await?;
    let next = next_cursor(items.len(), limit, offset);
    Ok(AxumJson(serde_json::json!({ "items": items, "next_cursor": next })).into_response())
}

async fn put_capacity(
    State(state): State<Directory>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<CapacityRequest>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin, Role::Coordinator, Role::Mediator])?;
    let weekly_capacity = match req.weekly_capacity {
        Some(c) if !(0..=crate::domain::structure::MAX_WEEKLY_CAPACITY).contains(&c) => {
            return Err(ApiError::invalid_field("weekly_capacity", "must be between 0 and 10000"));
        }
        other => other.map(|c| c as u32),
    };
    if weekly_capacity.is_none() && req.accepting.is_none() {
        return Err(ApiError::validation(vec![
            contracts::FieldError::new("weekly_capacity", "give weekly_capacity, accepting, or both"),
            contracts::FieldError::new("accepting", "give weekly_capacity, accepting, or both"),
        ]));
    }
    if !valid_structure_id(&id) {
        return Err(ApiError::not_found());
    }
    let mut tx = state.pool.begin().await?;
    let territory = store::structure_territory_for_update(&mut tx, &id).await?.ok_or_else(ApiError::not_found)?;
    let allowed = match &caller.scope {
        Scope::All => true,
        Scope::Territories(t) => t.iter().any(|t| *t == territory),
        Scope::Structure(s) => *s == id,
        Scope::Organisation(_) | Scope::Pending | Scope::Service(_) => false,
    };
    if !allowed {
        return Err(ApiError::not_found());
    }
    let s = store::update_capacity(&mut tx, &id, &CapacityUpdate { weekly_capacity, accepting: req.accepting })
        .await?
        .ok_or_else(ApiError::not_found)?;
    let event = CapacityChanged {
        structure_id: s.id.clone(),
        weekly_capacity: s.weekly_capacity,
        accepting: s.accepting,
        changed_at: s.updated_at,
    };
    bus::enqueue(&mut tx, SCHEMA, &Envelope::new(s.id.clone(), s.updated_at.timestamp_micros(), &event)).await?;
    tx.commit().await?;
    tracing::info!(structure_id = %id, weekly_capacity = s.weekly_capacity, accepting = s.accepting, "capacity changed");
    Ok(AxumJson(s).into_response())
}

async fn delete_structure(
    State(state): State<Directory>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin, Role::Coordinator])?;
    let mut tx = state.pool.begin().await?;
    let territory = store::structure_territory_for_update(&mut tx, &id).await?.ok_or_else(ApiError::not_found)?;
    may_edit(&caller, &territory)?;
    store::delete_structure(&mut tx, &id).await?;
    let sequence = chrono::Utc::now().timestamp_micros();
    let structure_id: StructureId = id.parse().map_err(|_| ApiError::not_found())?;
    bus::enqueue(&mut tx, SCHEMA, &Envelope::new(id.clone(), sequence, &StructureRemoved { structure_id })).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn import_structures(State(state): State<Directory>, caller: Caller, req: Request) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin, Role::Coordinator])?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    let bytes = platform::json::read_body(req, import::MAX_IMPORT_BYTES).await?;
    let format = match content_type.as_deref() {
        Some("application/json") => Some(crate::domain::mednum::Format::Json),
        Some("text/csv") | Some("application/csv") => Some(crate::domain::mednum::Format::Csv),
        _ => None,
    };
    let territories: Option<Vec<String>> = caller.territories().map(|t| t.iter().map(ToString::to_string).collect());
    let report =
        import::import(&state.pool, &bytes, format, territories.as_deref(), state.config.default_weekly_capacity)
            .await?;
    Ok(AxumJson(report).into_response())
}
