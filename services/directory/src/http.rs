//! HTTP: organisations, structures, capacity and imports.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json as AxumJson, Router};
use contracts::api::{CapacityRequest, OrganisationRequest, StructureRequest};
use contracts::events::{CapacityChanged, OrganisationUpserted, Point, Structure, StructureRemoved, StructureUpserted};
use contracts::{Envelope, Need, OrganisationId, StructureId};
use platform::ApiError;
use platform::auth::roles::{Admins, Coordinators, StructureKeepers};
use platform::auth::{Authorized, Caller, Scope};
use platform::idempotency::{FingerprintedJson, IdempotencyKey};
use platform::json::{Json, Query};
use platform::path::Path;
use platform::problem::responses::{Authenticated, Forbidden, IdempotencyConflict, InvalidQuery, JsonBody, NotFound};
use serde::Deserialize;
use sqlx::PgConnection;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::domain::organisation::parse_organisation;
use crate::domain::structure::parse_structure;
use crate::import::ImportReport;
use crate::store::{self, CapacityUpdate, StructureFilter, Upserted};
use crate::view::{CommuneList, OrganisationPage, OrganisationView, StructurePage, StructureView};
use crate::{Directory, SCHEMA, import};

/// The routes with their OpenAPI operations: one list, so the document cannot describe a
/// route the router does not serve.
pub fn routes() -> OpenApiRouter<Directory> {
    OpenApiRouter::new()
        .routes(routes!(create_organisation, list_organisations))
        .routes(routes!(get_organisation))
        .routes(routes!(list_structures))
        .routes(routes!(import_structures))
        .routes(routes!(put_structure, get_structure, delete_structure))
        .routes(routes!(put_capacity))
        .routes(routes!(search_communes))
}

pub fn router(state: Directory) -> Router {
    routes().split_for_parts().0.with_state(state)
}

/// `{id}` of an organisation. Anything but a UUID answers 404.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct OrganisationPath {
    id: Uuid,
}

/// `{id}` of a structure: taken from the source data.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct StructurePath {
    /// 1 to 200 letters, digits, `-`, `_`, `.`, `:` or `@`.
    #[param(pattern = "^[A-Za-z0-9._:@-]{1,200}$")]
    id: String,
}

/// `Idempotency-Key`: the same key with the same body returns the first response; with
/// another body, 409.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct IdempotencyHeader {
    #[param(rename = "Idempotency-Key", nullable = false, min_length = 1, max_length = 255, pattern = "^[!-~]+$")]
    idempotency_key: Option<String>,
}

fn created(location: String, body: impl serde::Serialize) -> Response {
    (StatusCode::CREATED, [(header::LOCATION, location)], AxumJson(body)).into_response()
}

/// Create an organisation (admin).
#[utoipa::path(
    post,
    path = "/api/v1/organisations",
    operation_id = "createOrganisation",
    tag = "directory",
    params(IdempotencyHeader),
    request_body = contracts::api::OrganisationRequest,
    responses(
        (status = 201, description = "Created", body = OrganisationView,
            headers(("Location" = String, description = "`/api/v1/organisations/{id}`")),
            links(("GetOrganisation" = (operation_id = "getOrganisation", parameters(("id" = "$response.body#/id")))))),
        Authenticated, Forbidden, IdempotencyConflict, JsonBody,
    )
)]
async fn create_organisation(
    State(state): State<Directory>,
    _admin: Authorized<Admins>,
    IdempotencyKey(key): IdempotencyKey,
    body: FingerprintedJson<OrganisationRequest>,
) -> Result<Response, ApiError> {
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
        return Ok(created(format!("/api/v1/organisations/{}", org.id), OrganisationView::from(org)));
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
    Ok(created(format!("/api/v1/organisations/{}", org.id), OrganisationView::from(org)))
}

/// An organisation (admin; its referrers).
#[utoipa::path(
    get,
    path = "/api/v1/organisations/{id}",
    operation_id = "getOrganisation",
    tag = "directory",
    params(OrganisationPath),
    responses((status = 200, description = "The organisation", body = OrganisationView), Authenticated, NotFound)
)]
async fn get_organisation(
    State(state): State<Directory>,
    caller: Caller,
    Path(id): Path<OrganisationId>,
) -> Result<Response, ApiError> {
    let visible = caller.is_admin() || caller.organisation() == Some(id);
    if !visible {
        return Err(ApiError::not_found());
    }
    let mut conn = state.pool.acquire().await?;
    let org = store::organisation(&mut conn, id).await?.ok_or_else(ApiError::not_found)?;
    Ok(AxumJson(OrganisationView::from(org)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Page {
    /// Default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^(\\+?[0-9]{1,18})?$")]
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

/// Organisations (admin).
#[utoipa::path(
    get,
    path = "/api/v1/organisations",
    operation_id = "listOrganisations",
    tag = "directory",
    params(Page),
    responses((status = 200, description = "A page of organisations", body = OrganisationPage), Authenticated, Forbidden, InvalidQuery)
)]
async fn list_organisations(
    State(state): State<Directory>,
    _admin: Authorized<Admins>,
    Query(q): Query<Page>,
) -> Result<Response, ApiError> {
    let (limit, offset) = page(q.limit, q.cursor.as_deref())?;
    let mut conn = state.pool.acquire().await?;
    let items: Vec<OrganisationView> =
        store::organisations(&mut conn, limit, offset).await?.into_iter().map(Into::into).collect();
    let next_cursor = next_cursor(items.len(), limit, offset);
    Ok(AxumJson(OrganisationPage { items, next_cursor }).into_response())
}

/// Admin may change any structure; a coordinator those of their territories (others
/// answer 404, as if they did not exist).
fn may_edit(caller: &Authorized<Coordinators>, territory: &str) -> Result<(), ApiError> {
    if caller.covers_territory(territory) { Ok(()) } else { Err(ApiError::not_found()) }
}

async fn publish_structure(conn: &mut PgConnection, s: &Structure) -> Result<(), sqlx::Error> {
    let sequence = s.updated_at.timestamp_micros();
    let event = StructureUpserted { structure: s.clone() };
    bus::enqueue(conn, SCHEMA, &Envelope::new(s.id.clone(), sequence, &event)).await
}

/// Create or replace a structure (admin; coordinator of its territory).
#[utoipa::path(
    put,
    path = "/api/v1/structures/{id}",
    operation_id = "putStructure",
    tag = "directory",
    params(StructurePath),
    request_body = contracts::api::StructureRequest,
    responses(
        (status = 200, description = "Replaced (or unchanged)", body = StructureView,
            headers(("Location" = String, description = "`/api/v1/structures/{id}`"))),
        (status = 201, description = "Created", body = StructureView,
            headers(("Location" = String, description = "`/api/v1/structures/{id}`")),
            links(
                ("GetStructure" = (operation_id = "getStructure", parameters(("id" = "$request.path.id")))),
                ("PutCapacity" = (operation_id = "putCapacity", parameters(("id" = "$request.path.id")))),
                ("StructureReport" = (operation_id = "getStructureReport", parameters(("id" = "$request.path.id")))),
            )),
        Authenticated, Forbidden, NotFound, JsonBody,
    )
)]
async fn put_structure(
    State(state): State<Directory>,
    caller: Authorized<Coordinators>,
    Path(id): Path<StructureId>,
    Json(req): Json<StructureRequest>,
) -> Result<Response, ApiError> {
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
    let body = AxumJson(StructureView::from(structure));
    Ok((status, [(header::LOCATION, format!("/api/v1/structures/{id}"))], body).into_response())
}

/// A structure (any caller).
#[utoipa::path(
    get,
    path = "/api/v1/structures/{id}",
    operation_id = "getStructure",
    tag = "directory",
    params(StructurePath),
    responses((status = 200, description = "The structure", body = StructureView), Authenticated, NotFound)
)]
async fn get_structure(
    State(state): State<Directory>,
    _caller: Caller,
    Path(id): Path<StructureId>,
) -> Result<Response, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let s = store::structure(&mut conn, &id).await?.ok_or_else(ApiError::not_found)?;
    Ok(AxumJson(StructureView::from(s)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct StructureQuery {
    /// A département code.
    #[param(schema_with = contracts::api::schema::query_text)]
    territory: Option<String>,
    /// Only structures offering this service.
    #[param(value_type = Option<Need>)]
    service: Option<String>,
    /// `lat,lon` in decimal degrees: the nearest first, within `radius_km`.
    #[param(
        pattern = "^ *-?(90(\\.0+)?|[1-8]?[0-9](\\.[0-9]+)?) *, *-?(180(\\.0+)?|(1[0-7][0-9]|[1-9]?[0-9])(\\.[0-9]+)?) *$"
    )]
    near: Option<String>,
    /// Default: `AIGUILLAGE_MAX_DISTANCE_KM`.
    #[param(exclusive_minimum = 0.0, maximum = 2000.0)]
    radius_km: Option<f64>,
    /// Default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^(\\+?[0-9]{1,18})?$")]
    cursor: Option<String>,
}

/// Structures, by distance when `near` is given, else by id (any caller).
#[utoipa::path(
    get,
    path = "/api/v1/structures",
    operation_id = "listStructures",
    tag = "directory",
    params(StructureQuery),
    responses((status = 200, description = "A page of structures", body = StructurePage), Authenticated, InvalidQuery)
)]
async fn list_structures(
    State(state): State<Directory>,
    _caller: Caller,
    Query(q): Query<StructureQuery>,
) -> Result<Response, ApiError> {
    let (limit, offset) = page(q.limit, q.cursor.as_deref())?;
    if q.territory.as_deref().is_some_and(contracts::validate::has_control_characters) {
        return Err(ApiError::invalid_field("territory", "contains control characters"));
    }
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
    let items: Vec<StructureView> = store::structures(&mut conn, &filter).await?.into_iter().map(Into::into).collect();
    let next_cursor = next_cursor(items.len(), limit, offset);
    Ok(AxumJson(StructurePage { items, next_cursor }).into_response())
}

/// Declare weekly capacity (admin; coordinator of its territory; its mediators).
#[utoipa::path(
    put,
    path = "/api/v1/structures/{id}/capacity",
    operation_id = "putCapacity",
    tag = "directory",
    params(StructurePath),
    request_body = contracts::api::CapacityRequest,
    responses((status = 200, description = "The structure", body = StructureView), Authenticated, Forbidden, NotFound, JsonBody)
)]
async fn put_capacity(
    State(state): State<Directory>,
    caller: Authorized<StructureKeepers>,
    Path(id): Path<StructureId>,
    Json(req): Json<CapacityRequest>,
) -> Result<Response, ApiError> {
    let weekly_capacity = match req.weekly_capacity {
        Some(c) if !(0..=crate::domain::structure::MAX_WEEKLY_CAPACITY).contains(&c) => {
            return Err(ApiError::invalid_field("weekly_capacity", "must be between 0 and 10000"));
        }
        other => other.map(|c| c as u32),
    };
    let opening_hours = match req.opening_hours.as_deref().map(str::trim) {
        None => None,
        Some("") => Some(None),
        Some(hours) => {
            let mut e = contracts::validate::Errors::new();
            let hours = e.text("opening_hours", Some(hours), 500, false);
            if let Some(h) = &hours
                && let Err(err) = contracts::opening_hours::OpeningHours::parse(h)
            {
                e.add("opening_hours", format!("not a valid OpenStreetMap opening_hours value: {err}"));
            }
            e.finish(|| ()).map_err(ApiError::validation)?;
            Some(hours)
        }
    };
    if weekly_capacity.is_none() && req.accepting.is_none() && opening_hours.is_none() {
        return Err(ApiError::validation(vec![
            contracts::FieldError::new("weekly_capacity", "give weekly_capacity, accepting, or both"),
            contracts::FieldError::new("accepting", "give weekly_capacity, accepting, or both"),
        ]));
    }
    let mut tx = state.pool.begin().await?;
    let territory = store::structure_territory_for_update(&mut tx, &id).await?.ok_or_else(ApiError::not_found)?;
    let allowed = match &caller.scope {
        Scope::All => true,
        Scope::Territories(t) => t.contains(&territory),
        Scope::Structure(s) => *s == id,
        Scope::Organisation(_) | Scope::Pending | Scope::Service(_) | Scope::Dpo | Scope::AnswerLink { .. } => false,
    };
    if !allowed {
        return Err(ApiError::not_found());
    }
    if let Some(hours) = &opening_hours
        && let Some(changed) = store::update_opening_hours(&mut tx, &id, hours.as_deref()).await?
    {
        publish_structure(&mut tx, &changed).await?;
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
    Ok(AxumJson(StructureView::from(s)).into_response())
}

/// Remove a structure (admin; coordinator of its territory).
#[utoipa::path(
    delete,
    path = "/api/v1/structures/{id}",
    operation_id = "deleteStructure",
    tag = "directory",
    params(StructurePath),
    responses((status = 204, description = "Removed"), Authenticated, Forbidden, NotFound)
)]
async fn delete_structure(
    State(state): State<Directory>,
    caller: Authorized<Coordinators>,
    Path(id): Path<StructureId>,
) -> Result<Response, ApiError> {
    let mut tx = state.pool.begin().await?;
    let territory = store::structure_territory_for_update(&mut tx, &id).await?.ok_or_else(ApiError::not_found)?;
    may_edit(&caller, &territory)?;
    store::delete_structure(&mut tx, &id).await?;
    let sequence = chrono::Utc::now().timestamp_micros();
    bus::enqueue(&mut tx, SCHEMA, &Envelope::new(id.clone(), sequence, &StructureRemoved { structure_id: id })).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A Mednum JSON file: an array of records, or an export holding one (under `data`,
/// `lieux` …).
struct MednumJson;

impl utoipa::PartialSchema for MednumJson {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Array, Type::Object]))
            .description(Some(
                "A Mednum array of records, or an export holding one (under `data`, `lieux` …); or data·inclusion v1 as `{\"structures\": [...], \"services\": [...]}`",
            ))
            .into()
    }
}

impl utoipa::ToSchema for MednumJson {}

/// A CSV file with a header line: not empty.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, min_length = 1, pattern = "[^\\s\\uFEFF]")]
#[allow(dead_code)]
struct CsvFile(String);

/// Import a Mednum file (JSON or CSV), or data·inclusion v1 structures and services
/// together as one JSON object, up to 50 MiB (admin; coordinator: records outside their
/// territories are rejected).
#[utoipa::path(
    post,
    path = "/api/v1/structures/import",
    operation_id = "importStructures",
    tag = "directory",
    request_body(
        description = "A Mednum file (a JSON array of records, or CSV with a header line), or `{\"structures\": [...], \"services\": [...]}` of data·inclusion v1",
        content(
            (inline(MednumJson) = "application/json"),
            (inline(CsvFile) = "text/csv"),
        )
    ),
    responses(
        (status = 200, description = "What happened to each record", body = ImportReport),
        (status = 413, description = "The file is over 50 MiB", body = platform::ApiError,
            content_type = "application/problem+json"),
        (status = 422, description = "Neither a Mednum file nor a data·inclusion pair", body = platform::ApiError,
            content_type = "application/problem+json"),
        Authenticated, Forbidden,
    )
)]
async fn import_structures(
    State(state): State<Directory>,
    caller: Authorized<Coordinators>,
    req: Request,
) -> Result<Response, ApiError> {
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct CommuneQuery {
    /// What was typed: a name (accents and case ignored), a postcode or an INSEE code, or
    /// their start (`angou`, `16`).
    /// Not blank (the pattern is `contracts::api::schema::NOT_BLANK`).
    #[param(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$"
    )]
    q: String,
    /// Default 10.
    #[param(minimum = 1, maximum = 50)]
    limit: Option<usize>,
}

/// Communes matching what someone typed, best first: for the referral form's suggestions.
/// Public reference data, open without a token; it holds nothing about anyone.
#[utoipa::path(
    get,
    path = "/api/v1/communes",
    operation_id = "searchCommunes",
    tag = "directory",
    security(()),
    params(CommuneQuery),
    responses((status = 200, description = "The communes found, possibly none", body = CommuneList), InvalidQuery)
)]
async fn search_communes(Query(q): Query<CommuneQuery>) -> Result<Response, ApiError> {
    let text = q.q.trim();
    if text.is_empty() || q.q.chars().count() > 100 {
        return Err(ApiError::invalid_field("q", "must be 1 to 100 characters"));
    }
    if contracts::validate::has_control_characters(&q.q) {
        return Err(ApiError::invalid_field("q", "contains control characters"));
    }
    let limit = q.limit.unwrap_or(10);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "must be between 1 and 50"));
    }
    let communes = geo::communes().search(text, limit).into_iter().map(Into::into).collect();
    let mut response = AxumJson(CommuneList { communes }).into_response();
    // The table changes with the binary only.
    response.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("public, max-age=3600"));
    Ok(response)
}

#[cfg(test)]
mod commune_search_tests {
    #[test]
    fn the_documented_query_is_required_and_not_blank_as_the_handler_checks() {
        let doc = serde_json::to_value(super::routes().into_openapi()).unwrap_or_default();
        let params = doc["paths"]["/api/v1/communes"]["get"]["parameters"].as_array().cloned().unwrap_or_default();
        let q = params.iter().find(|p| p["name"] == "q").cloned().unwrap_or_default();
        assert_eq!(q["required"], true, "{q}");
        assert_eq!(q["schema"]["pattern"], contracts::api::schema::NOT_BLANK, "{q}");
        assert_eq!((q["schema"]["minLength"].as_u64(), q["schema"]["maxLength"].as_u64()), (Some(1), Some(100)));
        assert_eq!(
            doc["paths"]["/api/v1/communes"]["get"]["security"],
            serde_json::json!([{}]),
            "open without a token"
        );
    }
}
