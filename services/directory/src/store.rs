//! SQL for the `directory` schema.

use chrono::{DateTime, Utc};
use contracts::events::{Address, Point, Structure, StructureContact};
use contracts::{OrganisationId, OrganisationKind, StructureId, Territory};
use platform::row::{Columns, RowError};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::organisation::OrganisationDraft;
use crate::domain::structure::StructureDraft;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Organisation {
    pub id: OrganisationId,
    pub name: String,
    pub kind: OrganisationKind,
    pub territory: Territory,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub siret: Option<String>,
    pub created_at: DateTime<Utc>,
}

struct OrganisationRow {
    id: Uuid,
    name: String,
    kind: String,
    territory: String,
    siret: Option<String>,
    created_at: DateTime<Utc>,
}

impl TryFrom<OrganisationRow> for Organisation {
    type Error = RowError;

    fn try_from(r: OrganisationRow) -> Result<Self, RowError> {
        let c = Columns::of("directory.organisations", r.id);
        Ok(Organisation {
            id: r.id.into(),
            name: r.name,
            kind: c.parse("kind", &r.kind)?,
            territory: c.parse("territory", &r.territory)?,
            siret: r.siret,
            created_at: r.created_at,
        })
    }
}

struct StructureRow {
    id: String,
    name: String,
    services: Vec<String>,
    modes: Vec<String>,
    languages: Vec<String>,
    other_languages: bool,
    accessibility: Vec<String>,
    street: Option<String>,
    postcode: Option<String>,
    commune: Option<String>,
    commune_code: Option<String>,
    lat: f64,
    lon: f64,
    territory: String,
    opening_hours: Option<String>,
    weekly_capacity: i32,
    accepting: bool,
    phone: Option<String>,
    email: Option<String>,
    website: Option<String>,
    source: Option<String>,
    fees: Vec<String>,
    labels: Vec<String>,
    pivot: Option<String>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<StructureRow> for Structure {
    type Error = RowError;

    fn try_from(r: StructureRow) -> Result<Self, RowError> {
        let c = Columns::of("directory.structures", &r.id);
        Ok(Structure {
            id: c.parse("id", &r.id)?,
            name: r.name,
            services: c.non_empty_set("services", &r.services)?,
            modes: c.set("modes", &r.modes)?,
            languages: c.set("languages", &r.languages)?,
            other_languages: r.other_languages,
            accessibility: c.set("accessibility", &r.accessibility)?,
            address: Address {
                street: r.street,
                postcode: r.postcode,
                commune: r.commune,
                commune_code: r.commune_code,
            },
            location: Point { lat: r.lat, lon: r.lon },
            territory: c.parse("territory", &r.territory)?,
            opening_hours: r.opening_hours,
            weekly_capacity: c.int("weekly_capacity", r.weekly_capacity)?,
            accepting: r.accepting,
            contact: StructureContact { phone: r.phone, email: r.email, website: r.website },
            source: r.source,
            fees: r.fees,
            labels: r.labels,
            siret: r.pivot,
            updated_at: r.updated_at,
        })
    }
}

fn structure_of(row: StructureRow) -> sqlx::Result<Structure> {
    Ok(Structure::try_from(row)?)
}

fn slugs<T: std::fmt::Display>(values: &[T]) -> Vec<String> {
    values.iter().map(ToString::to_string).collect()
}

pub async fn insert_organisation(
    conn: &mut PgConnection,
    id: OrganisationId,
    o: &OrganisationDraft,
) -> sqlx::Result<Organisation> {
    let row = sqlx::query!(
        "INSERT INTO directory.organisations (id, name, kind, territory, siret) VALUES ($1, $2, $3, $4, $5)
         RETURNING created_at",
        id.as_uuid(),
        o.name,
        o.kind.slug(),
        o.territory.as_str(),
        o.siret
    )
    .fetch_one(conn)
    .await?;
    Ok(Organisation {
        id,
        name: o.name.clone(),
        kind: o.kind,
        territory: o.territory.clone(),
        siret: o.siret.clone(),
        created_at: row.created_at,
    })
}

pub async fn organisation(conn: &mut PgConnection, id: OrganisationId) -> sqlx::Result<Option<Organisation>> {
    let row = sqlx::query_as!(
        OrganisationRow,
        "SELECT id, name, kind, territory, siret, created_at FROM directory.organisations WHERE id = $1",
        id.as_uuid()
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Organisation::try_from).transpose()?)
}

pub async fn organisations(conn: &mut PgConnection, limit: i64, offset: i64) -> sqlx::Result<Vec<Organisation>> {
    let rows = sqlx::query_as!(
        OrganisationRow,
        "SELECT id, name, kind, territory, siret, created_at FROM directory.organisations
         ORDER BY created_at, id LIMIT $1 OFFSET $2",
        limit,
        offset
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Organisation::try_from).collect::<Result<_, _>>()?)
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
    Unchanged,
}

/// Inserts or updates a structure. An update that changes nothing writes nothing and
/// reports `Unchanged`, so re-importing a file publishes no events. Capacity and
/// `accepting` are only changed when the draft carries them.
pub async fn upsert_structure(
    conn: &mut PgConnection,
    s: &StructureDraft,
    default_capacity: u32,
) -> sqlx::Result<(Upserted, Option<Structure>)> {
    let capacity = s.weekly_capacity.map(|c| c as i32);
    let row = sqlx::query!(
        r#"
        INSERT INTO directory.structures AS s (
            id, name, services, modes, languages, other_languages, accessibility,
            street, postcode, commune, commune_code, lat, lon, territory, opening_hours,
            weekly_capacity, accepting, phone, email, website, source, fees, labels, pivot)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                COALESCE($16::int, $17::int), COALESCE($18::bool, true), $19, $20, $21, $22, $23, $24, $25)
        ON CONFLICT (id) DO UPDATE SET
            name = EXCLUDED.name, services = EXCLUDED.services, modes = EXCLUDED.modes,
            languages = EXCLUDED.languages, other_languages = EXCLUDED.other_languages,
            accessibility = EXCLUDED.accessibility, street = EXCLUDED.street,
            postcode = EXCLUDED.postcode, commune = EXCLUDED.commune,
            commune_code = EXCLUDED.commune_code, lat = EXCLUDED.lat, lon = EXCLUDED.lon,
            territory = EXCLUDED.territory, opening_hours = EXCLUDED.opening_hours,
            weekly_capacity = COALESCE($16::int, s.weekly_capacity),
            accepting = COALESCE($18::bool, s.accepting),
            phone = EXCLUDED.phone, email = EXCLUDED.email, website = EXCLUDED.website,
            source = EXCLUDED.source, fees = EXCLUDED.fees, labels = EXCLUDED.labels,
            pivot = EXCLUDED.pivot, updated_at = now()
        WHERE (s.name, s.services, s.modes, s.languages, s.other_languages, s.accessibility,
               s.street, s.postcode, s.commune, s.commune_code, s.lat, s.lon, s.territory,
               s.opening_hours, s.weekly_capacity, s.accepting, s.phone, s.email, s.website,
               s.source, s.fees, s.labels, s.pivot)
          IS DISTINCT FROM
              (EXCLUDED.name, EXCLUDED.services, EXCLUDED.modes, EXCLUDED.languages,
               EXCLUDED.other_languages, EXCLUDED.accessibility, EXCLUDED.street,
               EXCLUDED.postcode, EXCLUDED.commune, EXCLUDED.commune_code, EXCLUDED.lat,
               EXCLUDED.lon, EXCLUDED.territory, EXCLUDED.opening_hours,
               COALESCE($16::int, s.weekly_capacity), COALESCE($18::bool, s.accepting), EXCLUDED.phone,
               EXCLUDED.email, EXCLUDED.website, EXCLUDED.source, EXCLUDED.fees,
               EXCLUDED.labels, EXCLUDED.pivot)
        RETURNING (xmax = 0) AS "created!", id, name, services, modes, languages, other_languages,
                  accessibility, street, postcode, commune, commune_code, lat, lon, territory,
                  opening_hours, weekly_capacity, accepting, phone, email, website, source,
                  fees, labels, pivot, updated_at
        "#,
        s.id,
        s.name,
        &slugs(&s.services),
        &slugs(&s.modes),
        &slugs(&s.languages),
        s.other_languages,
        &slugs(&s.accessibility),
        s.address.street,
        s.address.postcode,
        s.address.commune,
        s.address.commune_code,
        s.location.lat,
        s.location.lon,
        s.territory,
        s.opening_hours,
        capacity,
        default_capacity as i32,
        s.accepting,
        s.contact.phone,
        s.contact.email,
        s.contact.website,
        s.source,
        &s.fees,
        &s.labels,
        s.pivot,
    )
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        None => (Upserted::Unchanged, None),
        Some(r) => {
            let kind = if r.created { Upserted::Created } else { Upserted::Updated };
            let structure = StructureRow {
                id: r.id,
                name: r.name,
                services: r.services,
                modes: r.modes,
                languages: r.languages,
                other_languages: r.other_languages,
                accessibility: r.accessibility,
                street: r.street,
                postcode: r.postcode,
                commune: r.commune,
                commune_code: r.commune_code,
                lat: r.lat,
                lon: r.lon,
                territory: r.territory,
                opening_hours: r.opening_hours,
                weekly_capacity: r.weekly_capacity,
                accepting: r.accepting,
                phone: r.phone,
                email: r.email,
                website: r.website,
                source: r.source,
                fees: r.fees,
                labels: r.labels,
                pivot: r.pivot,
                updated_at: r.updated_at,
            };
            (kind, Some(structure.try_into()?))
        }
    })
}

pub async fn structure(conn: &mut PgConnection, id: &StructureId) -> sqlx::Result<Option<Structure>> {
    let row = sqlx::query_as!(
        StructureRow,
        "SELECT id, name, services, modes, languages, other_languages, accessibility, street, postcode, commune,
                commune_code, lat, lon, territory, opening_hours, weekly_capacity, accepting, phone, email, website,
                source, fees, labels, pivot, updated_at
         FROM directory.structures WHERE id = $1",
        id.as_str()
    )
    .fetch_optional(conn)
    .await?;
    row.map(structure_of).transpose()
}

/// The territory a structure is in, locked for the rest of the transaction.
pub async fn structure_territory_for_update(
    conn: &mut PgConnection,
    id: &StructureId,
) -> sqlx::Result<Option<Territory>> {
    sqlx::query_scalar!(
        r#"SELECT territory AS "territory: Territory" FROM directory.structures WHERE id = $1 FOR UPDATE"#,
        id.as_str()
    )
    .fetch_optional(conn)
    .await
}

pub struct StructureFilter {
    pub territories: Option<Vec<String>>,
    pub service: Option<String>,
    pub near: Option<Point>,
    pub radius_km: f64,
    pub limit: i64,
    pub offset: i64,
}

/// Structures matching the filter; by distance when `near` is given, else by id.
pub async fn structures(conn: &mut PgConnection, f: &StructureFilter) -> sqlx::Result<Vec<Structure>> {
    let (lat, lon) = f.near.map(|p| (Some(p.lat), Some(p.lon))).unwrap_or((None, None));
    let rows = sqlx::query_as!(
        StructureRow,
        r#"
        SELECT id, name, services, modes, languages, other_languages, accessibility, street, postcode, commune,
               commune_code, lat, lon, territory, opening_hours, weekly_capacity, accepting, phone, email, website,
               source, fees, labels, pivot, updated_at
        FROM directory.structures,
             LATERAL (SELECT CASE WHEN $3::float8 IS NULL THEN 0 ELSE
                 12742.0176 * asin(sqrt(power(sin(radians(lat - $3) / 2), 2)
                 + cos(radians($3)) * cos(radians(lat)) * power(sin(radians(lon - $4) / 2), 2))) END AS km) d
        WHERE ($1::text[] IS NULL OR territory = ANY($1))
          AND ($2::text IS NULL OR $2 = ANY(services))
          AND ($3::float8 IS NULL OR d.km <= $5)
        ORDER BY d.km, id
        LIMIT $6 OFFSET $7
        "#,
        f.territories.as_deref(),
        f.service,
        lat,
        lon,
        f.radius_km,
        f.limit,
        f.offset
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(structure_of).collect()
}

pub struct CapacityUpdate {
    pub weekly_capacity: Option<u32>,
    pub accepting: Option<bool>,
}

pub async fn update_capacity(
    conn: &mut PgConnection,
    id: &StructureId,
    c: &CapacityUpdate,
) -> sqlx::Result<Option<Structure>> {
    let row = sqlx::query_as!(
        StructureRow,
        r#"
        UPDATE directory.structures
        SET weekly_capacity = COALESCE($2::int, weekly_capacity), accepting = COALESCE($3::bool, accepting), updated_at = now()
        WHERE id = $1
        RETURNING id, name, services, modes, languages, other_languages, accessibility, street, postcode, commune,
                  commune_code, lat, lon, territory, opening_hours, weekly_capacity, accepting, phone, email, website,
                  source, fees, labels, pivot, updated_at
        "#,
        id.as_str(),
        c.weekly_capacity.map(|v| v as i32),
        c.accepting
    )
    .fetch_optional(conn)
    .await?;
    row.map(structure_of).transpose()
}

/// Sets a structure's opening hours; returns it when they changed.
pub async fn update_opening_hours(
    conn: &mut PgConnection,
    id: &StructureId,
    hours: Option<&str>,
) -> sqlx::Result<Option<Structure>> {
    let done = sqlx::query!(
        "UPDATE directory.structures SET opening_hours = $2, updated_at = now()
         WHERE id = $1 AND opening_hours IS DISTINCT FROM $2",
        id.as_str(),
        hours
    )
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    structure(conn, id).await
}

pub async fn delete_structure(conn: &mut PgConnection, id: &StructureId) -> sqlx::Result<bool> {
    let done = sqlx::query!("DELETE FROM directory.structures WHERE id = $1", id.as_str()).execute(conn).await?;
    Ok(done.rows_affected() > 0)
}

/// Records an `Idempotency-Key`, or returns the resource and request hash it was first
/// used with.
pub async fn claim_idempotency_key(
    conn: &mut PgConnection,
    scope: &str,
    key: &str,
    request_hash: &str,
    resource_id: &str,
) -> sqlx::Result<Option<(String, String)>> {
    let inserted = sqlx::query!(
        "INSERT INTO directory.idempotency_keys (scope, key, request_hash, resource_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (scope, key) DO NOTHING",
        scope,
        key,
        request_hash,
        resource_id
    )
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(None);
    }
    let row = sqlx::query!(
        "SELECT request_hash, resource_id FROM directory.idempotency_keys WHERE scope = $1 AND key = $2",
        scope,
        key
    )
    .fetch_one(conn)
    .await?;
    Ok(Some((row.request_hash, row.resource_id)))
}
