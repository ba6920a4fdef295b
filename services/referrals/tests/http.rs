//! The fast tier: the referrals API's rules that need only PostgreSQL, through the router
//! with `oneshot`, each test on a database of its own (`#[sqlx::test]`), no server and no
//! broker. What needs the broker (matching, offers) is in the end-to-end suite.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use contracts::{OrganisationId, Role};
use platform::auth::Scope;
use platform::testing::{Keys, call, migrate_platform};
use serde_json::{Value, json};
use sqlx::PgPool;

struct App {
    router: Router,
    keys: Keys,
}

impl App {
    async fn new(pool: PgPool) -> Self {
        migrate_platform(&pool).await;
        referrals::migrate(&pool).await.unwrap();
        let keys = Keys::default();
        let config = Arc::new(platform::Config::from_lookup(|_| None).unwrap());
        let master =
            platform::vault::MasterKey::from_base64(&platform::vault::MasterKey::generate_base64(), "test").unwrap();
        let vault = referrals::open_vault(&pool, master, None).await.unwrap();
        let state = referrals::ReferralsState { pool, auth: keys.authenticator(), config, vault };
        Self { router: referrals::router(state), keys }
    }

    fn referrer(&self, org: OrganisationId) -> String {
        self.keys.token(Role::Referrer, Scope::Organisation(org))
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let (s, v, _) = call(&self.router, "POST", path, Some(token), Some(&body), &[]).await;
        (s, v)
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let (s, v, _) = call(&self.router, "GET", path, Some(token), None, &[]).await;
        (s, v)
    }
}

fn referral() -> Value {
    json!({
        "person": {"first_name": "Camille", "last_name": "Essai", "phone": "06 12 34 56 78",
                   "contact_preference": "phone", "commune_code": "16015"},
        "needs": ["aide_demarches_administratives"],
        "consent": {"obtained": true, "method": "oral"}
    })
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|e| e.iter().map(|e| e["field"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[sqlx::test(migrations = false)]
async fn bad_input_names_every_bad_field_and_stores_nothing(pool: PgPool) {
    let app = App::new(pool.clone()).await;
    let referrer = app.referrer(OrganisationId::new());
    let body = json!({
        "person": {"first_name": "", "last_name": "B.", "phone": "12", "commune_code": "99999"},
        "needs": ["teleportation"], "max_distance_km": -3,
        "consent": {"obtained": false}
    });
    let (s, problem) = app.post("/api/v1/referrals", &referrer, body).await;
    assert_eq!(s, 422, "{problem}");
    let named = fields(&problem);
    for field in
        ["person.first_name", "person.phone", "person.commune_code", "needs[0]", "max_distance_km", "consent.obtained"]
    {
        assert!(named.iter().any(|f| f == field), "{field} in {named:?}");
    }
    let (s, _) = app.post("/api/v1/referrals", &referrer, json!({"unknown": 1})).await;
    assert_eq!(s, 422);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM referrals.referrals").fetch_one(&pool).await.unwrap();
    assert_eq!(stored, 0, "a refused referral leaves nothing behind");
}

#[sqlx::test(migrations = false)]
async fn a_referral_outside_the_callers_scope_is_not_found(pool: PgPool) {
    let app = App::new(pool).await;
    let mine = app.referrer(OrganisationId::new());
    let (s, created) = app.post("/api/v1/referrals", &mine, referral()).await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/v1/referrals/{id}");
    assert_eq!(app.get(&path, &mine).await.0, 200);
    let other = app.referrer(OrganisationId::new());
    assert_eq!(app.get(&path, &other).await.0, 404);
    let mediator = app.keys.token(Role::Mediator, Scope::Structure("elsewhere".parse().unwrap()));
    assert_eq!(app.get(&path, &mediator).await.0, 404);
    let coordinator = app.keys.token(Role::Coordinator, Scope::Territories(vec!["17".parse().unwrap()]));
    assert_eq!(app.get(&path, &coordinator).await.0, 404);
    assert_eq!(app.get("/api/v1/referrals/not-a-uuid", &mine).await.0, 404);
    // The list shows only the caller's own.
    let (_, list) = app.get("/api/v1/referrals", &other).await;
    assert_eq!(list["items"], json!([]));
    let (_, list) = app.get("/api/v1/referrals", &mine).await;
    assert_eq!(list["items"][0]["id"], id);
}

#[sqlx::test(migrations = false)]
async fn a_role_that_may_never_call_an_endpoint_is_forbidden(pool: PgPool) {
    let app = App::new(pool).await;
    let mediator = app.keys.token(Role::Mediator, Scope::Structure("lieu".parse().unwrap()));
    let coordinator = app.keys.token(Role::Coordinator, Scope::Territories(vec!["16".parse().unwrap()]));
    for token in [&mediator, &coordinator] {
        let (s, v) = app.post("/api/v1/referrals", token, referral()).await;
        assert_eq!(s, 403, "{v}");
    }
    let (s, _, _) = call(&app.router, "GET", "/api/v1/referrals", None, None, &[]).await;
    assert_eq!(s, 401);
    let (s, _, _) = call(&app.router, "GET", "/api/v1/referrals", Some("not.a.token"), None, &[]).await;
    assert_eq!(s, 401);
}

#[sqlx::test(migrations = false)]
async fn an_idempotency_key_returns_the_first_answer_and_refuses_another_body(pool: PgPool) {
    let app = App::new(pool.clone()).await;
    let referrer = app.referrer(OrganisationId::new());
    let key = [("idempotency-key", "form-42")];
    let (s1, first, _) = call(&app.router, "POST", "/api/v1/referrals", Some(&referrer), Some(&referral()), &key).await;
    let (s2, again, _) = call(&app.router, "POST", "/api/v1/referrals", Some(&referrer), Some(&referral()), &key).await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(first["id"], again["id"]);
    let mut other = referral();
    other["needs"] = json!(["utilisation_securisee"]);
    let (s3, problem, _) = call(&app.router, "POST", "/api/v1/referrals", Some(&referrer), Some(&other), &key).await;
    assert_eq!(s3, 409, "{problem}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM referrals.referrals").fetch_one(&pool).await.unwrap();
    assert_eq!(stored, 1);
}

#[sqlx::test(migrations = false)]
async fn a_transition_the_status_does_not_allow_is_a_conflict_naming_the_status(pool: PgPool) {
    let app = App::new(pool).await;
    let org = OrganisationId::new();
    let referrer = app.referrer(org);
    let (_, created) = app.post("/api/v1/referrals", &referrer, referral()).await;
    let id = created["id"].as_str().unwrap();
    let admin = app.keys.token(Role::Admin, Scope::All);
    // Nothing was offered (no matcher here): it cannot be accepted or closed.
    let (s, problem) = app.post(&format!("/api/v1/referrals/{id}/accept"), &admin, json!({})).await;
    assert_eq!(s, 409, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("submitted"), "{problem}");
    let (s, _) = app.post(&format!("/api/v1/referrals/{id}/close"), &admin, json!({"outcome": "completed"})).await;
    assert_eq!(s, 409);
    let (s, cancelled) =
        app.post(&format!("/api/v1/referrals/{id}/cancel"), &referrer, json!({"reason": "doublon"})).await;
    assert_eq!((s, cancelled["status"].as_str()), (200, Some("cancelled")), "{cancelled}");
    let (s, problem) = app.post(&format!("/api/v1/referrals/{id}/cancel"), &referrer, json!({})).await;
    assert_eq!(s, 409, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("cancelled"), "{problem}");
    // A bad field in a transition is a 422 before any state is read.
    let (s, problem) = app.post(&format!("/api/v1/referrals/{id}/close"), &admin, json!({"outcome": "triomphe"})).await;
    assert_eq!(s, 422, "{problem}");
    assert_eq!(fields(&problem), vec!["outcome"]);
}

#[sqlx::test(migrations = false)]
async fn a_correction_with_a_control_character_is_refused_naming_the_field_and_changes_nothing(pool: PgPool) {
    let app = App::new(pool.clone()).await;
    let org = OrganisationId::new();
    let referrer = app.referrer(org);
    let (_, created) = app.post("/api/v1/referrals", &referrer, referral()).await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/v1/referrals/{id}/person");
    for (field, value) in [("email", "k\u{7}@example.org"), ("phone", "06 12\u{1}34 56 78"), ("note", "a\u{0}b")] {
        let body = json!({ field: value });
        let (s, problem, _) = call(&app.router, "PATCH", &path, Some(&referrer), Some(&body), &[]).await;
        assert_eq!(s, 422, "{field}: {problem}");
        assert_eq!(fields(&problem), vec![field.to_string()], "{problem}");
    }
    let (s, held) = app.get(&format!("/api/v1/referrals/{id}/personal-data"), &referrer).await;
    assert_eq!(s, 200, "{held}");
    assert_eq!(held["referral"]["person"]["phone"], "+33612345678", "{held}");
}

#[sqlx::test(migrations = false)]
async fn a_daily_job_is_claimed_once_a_day_whichever_replica_asks(pool: PgPool) {
    migrate_platform(&pool).await;
    referrals::migrate(&pool).await.unwrap();
    // Two replicas asking at once: one claim between them.
    let (a, b) = tokio::join!(
        platform::jobs::claim_daily(&pool, "referrals", "retention_purge"),
        platform::jobs::claim_daily(&pool, "referrals", "retention_purge"),
    );
    assert_eq!([a.unwrap(), b.unwrap()].iter().filter(|c| **c).count(), 1);
    assert!(!platform::jobs::claim_daily(&pool, "referrals", "retention_purge").await.unwrap(), "not twice a day");
    // Another job has a day of its own.
    assert!(platform::jobs::claim_daily(&pool, "referrals", "other_job").await.unwrap());
    // A day later, it is due again.
    sqlx::query("UPDATE referrals.jobs SET last_run_at = now() - interval '25 hours' WHERE name = 'retention_purge'")
        .execute(&pool)
        .await
        .unwrap();
    assert!(platform::jobs::claim_daily(&pool, "referrals", "retention_purge").await.unwrap());
}

#[sqlx::test(migrations = false)]
async fn a_malformed_id_is_refused_before_any_sql_with_a_problem_naming_it(pool: PgPool) {
    let app = App::new(pool.clone()).await;
    let referrer = app.referrer(OrganisationId::new());
    // With the database gone, only a refusal that never reaches it can still answer 404.
    pool.close().await;
    for (method, path) in [
        ("GET", "/api/v1/referrals/not-a-uuid"),
        ("POST", "/api/v1/referrals/not-a-uuid/cancel"),
        ("DELETE", "/api/v1/referrals/0193f0c2-0000-7000-8000-00000000000g/personal-data"),
    ] {
        let (s, problem, headers) = call(&app.router, method, path, Some(&referrer), None, &[]).await;
        assert_eq!(s, 404, "{method} {path}: {problem}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(problem["errors"][0]["field"], "id", "{problem}");
        assert!(problem["errors"][0]["message"].as_str().unwrap().contains("is not a referral id"), "{problem}");
    }
    // Authentication still comes first.
    let (s, _, _) = call(&app.router, "GET", "/api/v1/referrals/not-a-uuid", None, None, &[]).await;
    assert_eq!(s, 401);
}

#[sqlx::test(migrations = false)]
async fn the_audit_says_who_did_what_and_refuses_an_entry_no_version_wrote(pool: PgPool) {
    let app = App::new(pool.clone()).await;
    let org = OrganisationId::new();
    let referrer = app.referrer(org);
    let (_, created) = app.post("/api/v1/referrals", &referrer, referral()).await;
    let dpo = app.keys.token(Role::Dpo, Scope::Dpo);
    let (s, page) = app.get("/api/v1/audit", &dpo).await;
    assert_eq!(s, 200, "{page}");
    let entry = &page["items"][0];
    assert_eq!((&entry["action"], &entry["referral_id"]), (&json!("submit"), &created["id"]), "{entry}");
    let actor: contracts::Actor = entry["actor"].as_str().unwrap().parse().unwrap();
    let contracts::Actor::Referrer(o, contracts::audit::Principal::Token(token)) = actor else {
        panic!("a referrer's token submitted it: {entry}");
    };
    assert_eq!(o, org);
    // The agent filter finds what that token did, and nothing for another.
    let (_, mine) = app.get(&format!("/api/v1/audit?agent={token}"), &dpo).await;
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(1), "{mine}");
    let (_, none) = app.get(&format!("/api/v1/audit?agent={}", uuid::Uuid::now_v7()), &dpo).await;
    assert_eq!(none["items"], json!([]));

    sqlx::query("INSERT INTO referrals.audit (actor, principal, action) VALUES ('t', 't', 'read')")
        .execute(&pool)
        .await
        .unwrap();
    let (s, problem) = app.get("/api/v1/audit", &dpo).await;
    assert_eq!(s, 500, "an actor no version wrote is not shown as something else: {problem}");
    assert_eq!(problem["detail"], "an unexpected error occurred");
}
