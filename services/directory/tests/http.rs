//! The fast tier: the directory API's rules that need only PostgreSQL, through the router
//! with `oneshot`, each test on a database of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use contracts::Role;
use platform::auth::Scope;
use platform::testing::{Keys, call, migrate_platform};
use serde_json::{Value, json};
use sqlx::PgPool;

async fn app(pool: PgPool) -> (Router, Keys) {
    migrate_platform(&pool).await;
    directory::migrate(&pool).await.unwrap();
    let keys = Keys::default();
    let config = Arc::new(platform::Config::from_lookup(|_| None).unwrap());
    let state = directory::Directory { pool, auth: keys.authenticator(), config };
    (directory::router(state), keys)
}

fn structure() -> Value {
    json!({
        "name": "France services Mansle", "services": ["aide_demarches_administratives"],
        "modes": ["individual"], "languages": ["fr"], "accessibility": [],
        "address": {"street": "21 Rue Martin", "postcode": "16230", "commune": "Mansle", "commune_code": "16206"},
        "opening_hours": "Mo-Fr 10:00-12:00; PH off", "weekly_capacity": 5, "accepting": true,
        "contact": {"phone": "05 45 20 72 08", "email": "mansle@france-services.example"}
    })
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|e| e.iter().map(|e| e["field"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[sqlx::test(migrations = false)]
async fn a_structure_with_bad_fields_is_refused_naming_each(pool: PgPool) {
    let (router, keys) = app(pool.clone()).await;
    let admin = keys.token(Role::Admin, Scope::All);
    let mut bad = structure();
    bad["services"] = json!(["teleportation"]);
    bad["opening_hours"] = json!("Mo-Fr 9h-12h tous les jours");
    bad["weekly_capacity"] = json!(-1);
    bad["contact"]["email"] = json!("pas une adresse");
    let (s, problem, _) = call(&router, "PUT", "/api/v1/structures/mansle", Some(&admin), Some(&bad), &[]).await;
    assert_eq!(s, 422, "{problem}");
    let named = fields(&problem);
    for field in ["services[0]", "opening_hours", "weekly_capacity", "contact.email"] {
        assert!(named.iter().any(|f| f == field), "{field} in {named:?}");
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM directory.structures").fetch_one(&pool).await.unwrap();
    assert_eq!(stored, 0);
    let (s, created, _) =
        call(&router, "PUT", "/api/v1/structures/mansle", Some(&admin), Some(&structure()), &[]).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["territory"], "16");
    assert_eq!(created["contact"]["phone"], "+33545207208");
}

#[sqlx::test(migrations = false)]
async fn roles_and_territories_bound_who_edits_what(pool: PgPool) {
    let (router, keys) = app(pool).await;
    let admin = keys.token(Role::Admin, Scope::All);
    call(&router, "PUT", "/api/v1/structures/mansle", Some(&admin), Some(&structure()), &[]).await;
    let referrer = keys.token(Role::Referrer, Scope::Organisation(contracts::OrganisationId::new()));
    let (s, _, _) = call(&router, "PUT", "/api/v1/structures/mansle", Some(&referrer), Some(&structure()), &[]).await;
    assert_eq!(s, 403);
    let elsewhere = keys.token(Role::Coordinator, Scope::Territories(vec!["17".parse().unwrap()]));
    let (s, _, _) = call(&router, "DELETE", "/api/v1/structures/mansle", Some(&elsewhere), None, &[]).await;
    assert_eq!(s, 404, "a structure outside the coordinator's territory does not exist for them");
    let capacity = json!({"weekly_capacity": 8});
    let other = keys.token(Role::Mediator, Scope::Structure("another".parse().unwrap()));
    let (s, _, _) =
        call(&router, "PUT", "/api/v1/structures/mansle/capacity", Some(&other), Some(&capacity), &[]).await;
    assert_eq!(s, 404);
    let own = keys.token(Role::Mediator, Scope::Structure("mansle".parse().unwrap()));
    let (s, v, _) = call(&router, "PUT", "/api/v1/structures/mansle/capacity", Some(&own), Some(&capacity), &[]).await;
    assert_eq!((s, v["weekly_capacity"].as_i64()), (200, Some(8)), "{v}");
    let (s, _, _) =
        call(&router, "POST", "/api/v1/organisations", Some(&own), Some(&json!({"name": "x", "territory": "16"})), &[])
            .await;
    assert_eq!(s, 403);
}

#[sqlx::test(migrations = false)]
async fn an_organisation_is_created_once_per_idempotency_key_and_seen_only_by_its_own(pool: PgPool) {
    let (router, keys) = app(pool).await;
    let admin = keys.token(Role::Admin, Scope::All);
    let body =
        json!({"name": "CCAS d'Angoulême", "kind": "social_service", "territory": "16", "siret": "26160011800010"});
    let key = [("idempotency-key", "ccas-16")];
    let (s1, a, _) = call(&router, "POST", "/api/v1/organisations", Some(&admin), Some(&body), &key).await;
    let (s2, b, _) = call(&router, "POST", "/api/v1/organisations", Some(&admin), Some(&body), &key).await;
    assert_eq!((s1, s2), (201, 201), "{a} {b}");
    assert_eq!(a["id"], b["id"]);
    let (s3, _, _) = call(
        &router,
        "POST",
        "/api/v1/organisations",
        Some(&admin),
        Some(&json!({"name": "Autre", "territory": "16"})),
        &key,
    )
    .await;
    assert_eq!(s3, 409);
    let id = a["id"].as_str().unwrap();
    let own = keys.token(Role::Referrer, Scope::Organisation(id.parse().unwrap()));
    let other = keys.token(Role::Referrer, Scope::Organisation(contracts::OrganisationId::new()));
    let path = format!("/api/v1/organisations/{id}");
    assert_eq!(call(&router, "GET", &path, Some(&own), None, &[]).await.0, 200);
    assert_eq!(call(&router, "GET", &path, Some(&other), None, &[]).await.0, 404);
    let (s, problem, _) = call(
        &router,
        "POST",
        "/api/v1/organisations",
        Some(&admin),
        Some(&json!({"name": "", "territory": "00", "siret": "12"})),
        &[],
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(fields(&problem), vec!["name", "territory", "siret"]);
}
