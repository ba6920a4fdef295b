//! The published language's ids, codes and vocabularies as PostgreSQL columns (contracts'
//! `sqlx` feature, which platform enables): each is written as it is on the wire and read
//! back through its own parser, so a stored value that is not one fails the read, naming
//! what was expected, and never becomes a default.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use contracts::audit::Principal;
use contracts::{Actor, AuditAction, Need, ReferralId, ReferralStatus, StructureId, Territory};
use sqlx::PgPool;

/// The error of reading `sql` (one text or text[] value) as `T`.
async fn decode_error<T>(pool: &PgPool, sql: &'static str) -> String
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin + std::fmt::Debug,
{
    let err = sqlx::query_scalar::<_, T>(sql).fetch_one(pool).await.expect_err(sql);
    assert!(platform::row::is_corrupt(&err), "{sql}: {err:?} should read as corruption");
    err.to_string()
}

#[sqlx::test(migrations = false)]
async fn values_read_back_as_they_were_written(pool: PgPool) {
    let id = ReferralId::new();
    let structure: StructureId = "lieu:16 é".parse().unwrap();
    let needs = vec![Need::AideDemarchesAdministratives, Need::AccesInternetMateriel];
    let actor = Actor::Mediator(structure.clone(), Principal::Account(uuid::Uuid::now_v7()));
    let row: (ReferralId, StructureId, Vec<Need>, ReferralStatus, Actor, AuditAction, String) =
        sqlx::query_as("SELECT $1, $2, $3, $4, $5, $6, $5::text")
            .bind(id)
            .bind(&structure)
            .bind(&needs)
            .bind(ReferralStatus::InProgress)
            .bind(&actor)
            .bind(AuditAction::KeysRotated)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(row.0, id);
    assert_eq!(row.1, structure);
    assert_eq!(row.2, needs);
    assert_eq!(row.3, ReferralStatus::InProgress);
    assert_eq!(row.4, actor);
    assert_eq!(row.5, AuditAction::KeysRotated);
    // Stored as the string of the wire, nothing else.
    assert_eq!(row.6, actor.to_string());
    let status: String =
        sqlx::query_scalar("SELECT $1::text").bind(ReferralStatus::InProgress).fetch_one(&pool).await.unwrap();
    assert_eq!(status, "in_progress");
}

#[sqlx::test(migrations = false)]
async fn a_stored_value_that_is_not_one_fails_the_read_naming_what_was_expected(pool: PgPool) {
    let err = decode_error::<Territory>(&pool, "SELECT '1600'::text").await;
    assert!(err.contains("`1600` is not a département code"), "{err}");
    let err = decode_error::<StructureId>(&pool, "SELECT ' lieu'::text").await;
    assert!(err.contains("is not a structure id"), "{err}");
    let err = decode_error::<ReferralStatus>(&pool, "SELECT 'lost'::text").await;
    assert!(err.contains("unknown value `lost`"), "{err}");
    // One bad element fails the whole list: an empty or shorter list of needs would
    // match other structures.
    let err = decode_error::<Vec<Need>>(&pool, "SELECT ARRAY['aide_demarches_administratives', 'teleportation']").await;
    assert!(err.contains("unknown value `teleportation`"), "{err}");
    let err = decode_error::<Actor>(&pool, "SELECT 't'::text").await;
    assert!(err.contains("`t` is not an actor"), "{err}");
    let err = decode_error::<AuditAction>(&pool, "SELECT 'x'::text").await;
    assert!(err.contains("unknown value `x`"), "{err}");
}

#[sqlx::test(migrations = false)]
async fn an_id_is_a_uuid_column_and_nothing_else(pool: PgPool) {
    // A uuid column read as a code, or a text column as an id, is refused by type.
    let err = sqlx::query_scalar::<_, ReferralId>("SELECT 'not-a-uuid'::text").fetch_one(&pool).await.unwrap_err();
    assert!(matches!(err, sqlx::Error::ColumnDecode { .. }), "{err:?}");
    let err = sqlx::query_scalar::<_, Territory>("SELECT gen_random_uuid()").fetch_one(&pool).await.unwrap_err();
    assert!(matches!(err, sqlx::Error::ColumnDecode { .. }), "{err:?}");
    let ids: Vec<ReferralId> = sqlx::query_scalar("SELECT unnest($1::uuid[])")
        .bind(vec![ReferralId::new(), ReferralId::new()])
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
}
