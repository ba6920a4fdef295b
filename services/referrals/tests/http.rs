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
    pool: PgPool,
    vault: platform::vault::Vault,
}

impl App {
    async fn new(pool: PgPool) -> Self {
        Self::with(pool, |_| None).await
    }

    /// With these settings (`AIGUILLAGE_…`), the others by default.
    async fn with(pool: PgPool, settings: impl Fn(&str) -> Option<String>) -> Self {
        migrate_platform(&pool).await;
        referrals::migrate(&pool).await.unwrap();
        let keys = Keys::default();
        let config = Arc::new(platform::Config::from_lookup(settings).unwrap());
        let master =
            platform::vault::MasterKey::from_base64(&platform::vault::MasterKey::generate_base64(), "test").unwrap();
        let vault = referrals::open_vault(&pool, master, None).await.unwrap();
        let state = referrals::ReferralsState {
            pool: pool.clone(),
            auth: keys.authenticator(),
            config,
            vault: vault.clone(),
            broker: None,
        };
        Self { router: referrals::router(state), keys, pool, vault }
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

/// A person submitted again and again (a client retrying without an Idempotency-Key, a
/// loop): each submission still lists the organisation's ten newest open referrals about
/// them, newest first, each once, and never another organisation's nor a closed or
/// cancelled one. The lookup reads only the person's `DUPLICATES_LOOKBACK` newest
/// referrals by phone and by e-mail, so that its cost does not grow with them: an open
/// referral older than that many of the person's is no longer listed.
#[sqlx::test(migrations = false)]
async fn a_person_submitted_again_and_again_lists_the_ten_newest_open_referrals(pool: PgPool) {
    let app = App::new(pool.clone()).await;
    let (org, other_org) = (OrganisationId::new(), OrganisationId::new());
    let (referrer, other) = (app.referrer(org), app.referrer(other_org));
    let person = |phone: &str| {
        let mut body = referral();
        body["person"]["phone"] = json!(phone);
        body["person"]["email"] = json!("camille.essai@example.org");
        body
    };
    let submit = |token: String, body: Value| {
        let app = &app;
        async move {
            let (s, created) = app.post("/api/v1/referrals", &token, body).await;
            assert_eq!(s, 201, "{created}");
            created
        }
    };
    let lookback = usize::try_from(referrals::DUPLICATES_LOOKBACK).unwrap();
    // More than the lookback, one in seven by e-mail only (another phone number).
    let mut ours = Vec::new();
    for n in 0..lookback + 100 {
        let phone = if n % 7 == 3 { "07 51 23 45 67" } else { "06 12 34 56 78" };
        ours.push(submit(referrer.clone(), person(phone)).await["id"].as_str().unwrap().to_string());
    }
    // Among the newest: two cancelled by the referrer, three closed (nothing is offered
    // here, so the database closes them), and other organisations' newer ones.
    let ended: Vec<String> = [1, 4, 5, 8, 12].iter().map(|k| ours[ours.len() - k].clone()).collect();
    for id in &ended[..2] {
        let (s, v) = app.post(&format!("/api/v1/referrals/{id}/cancel"), &referrer, json!({})).await;
        assert_eq!(s, 200, "{v}");
    }
    sqlx::query("UPDATE referrals.referrals SET status = 'closed' WHERE id = ANY($1::uuid[])")
        .bind(&ended[2..])
        .execute(&pool)
        .await
        .unwrap();
    for _ in 0..5 {
        submit(other.clone(), person("06 12 34 56 78")).await;
    }
    let again = submit(referrer.clone(), person("06 12 34 56 78")).await;
    let expected: Vec<&String> = ours.iter().rev().filter(|id| !ended.contains(id)).take(10).collect();
    assert_eq!(again["possible_duplicates"], json!(expected), "{again}");
    // Found by e-mail alone too.
    let by_email = submit(referrer.clone(), person("07 62 98 76 54")).await;
    let expected: Vec<&str> = std::iter::once(again["id"].as_str().unwrap())
        .chain(expected.into_iter().take(9).map(String::as_str))
        .collect();
    assert_eq!(by_email["possible_duplicates"], json!(expected), "{by_email}");

    // The bound: another person's one open referral here, then `lookback - 1` of theirs
    // elsewhere. It is among their `lookback` newest, and found.
    let lone = || {
        let mut body = referral();
        body["person"]["phone"] = json!("06 98 76 54 32");
        body
    };
    let first = submit(referrer.clone(), lone()).await;
    for _ in 0..lookback - 1 {
        submit(other.clone(), lone()).await;
    }
    let within = submit(referrer.clone(), lone()).await;
    assert_eq!(within["possible_duplicates"], json!([first["id"]]), "{within}");
    // One more of theirs (cancelled) and it is the `lookback + 1`-th newest: not listed.
    let id = within["id"].as_str().unwrap();
    assert_eq!(app.post(&format!("/api/v1/referrals/{id}/cancel"), &referrer, json!({})).await.0, 200);
    let past = submit(referrer.clone(), lone()).await;
    assert_eq!(past["possible_duplicates"], json!([]), "{past}");
}

// Answer links (issue 23): a structure without an account answers through the link of an
// e-mail. The offers are made by handing `match.proposed` to the consumer, as the bus would.

mod answer_links {
    use std::time::Duration;

    use bus::Handler;
    use chrono::Utc;
    use contracts::events::MatchProposed;
    use contracts::{Envelope, EventSet, ReferralId};
    use platform::auth::Claims;
    use referrals::messaging::{Inbound, ReferralsHandler};
    use sha2::{Digest, Sha256};
    use uuid::Uuid;

    use super::*;

    impl App {
        pub(crate) fn service(&self, name: &str) -> String {
            self.keys.0.issue(&Claims::for_service(name, chrono::Duration::hours(1)))
        }

        pub(crate) fn mediator(&self, structure: &str) -> String {
            self.keys.token(Role::Mediator, Scope::Structure(structure.parse().unwrap()))
        }

        /// A referral submitted by a new organisation: its id and the referrer's token.
        pub(crate) async fn submitted(&self) -> (String, String) {
            let referrer = self.referrer(OrganisationId::new());
            let (s, created) = self.post("/api/v1/referrals", &referrer, referral()).await;
            assert_eq!(s, 201, "{created}");
            (created["id"].as_str().unwrap().to_string(), referrer)
        }

        /// The matcher proposes `structure`: the referral is offered to it.
        pub(crate) async fn offer(&self, id: &str, structure: &str) {
            let uuid = Uuid::parse_str(id).unwrap();
            let (round, sequence): (i32, i64) =
                sqlx::query_as("SELECT round, match_sequence FROM referrals.referrals WHERE id = $1")
                    .bind(uuid)
                    .fetch_one(&self.pool)
                    .await
                    .unwrap();
            let m = MatchProposed {
                referral_id: ReferralId::from(uuid),
                round: round as u32,
                structure_id: structure.parse().unwrap(),
                structure_name: format!("Lieu {structure}"),
                attempt: 1,
                score: 1.0,
                distance_km: 2.0,
                explanation: vec![],
                reasons: vec![],
                reservation_id: Uuid::now_v7(),
                proposed_at: Utc::now(),
            };
            let env = Envelope::new(id, sequence + 1, &m);
            let event = Inbound::decode(&env).unwrap();
            let mut tx = self.pool.begin().await.unwrap();
            ReferralsHandler { offer_ttl: Duration::from_secs(3600) }.handle(&mut tx, &env, event).await.unwrap();
            tx.commit().await.unwrap();
            let (s, r) = self.get(&format!("/api/v1/referrals/{id}"), &self.keys.token(Role::Admin, Scope::All)).await;
            assert_eq!((s, r["status"].as_str()), (200, Some("offered")), "{r}");
        }

        /// A link for `structure` (as notify asks for one): its token.
        pub(crate) async fn mint(&self, id: &str, structure: &str) -> String {
            let body = json!({"referral_id": id, "structure_id": structure});
            let (s, minted) = self.post("/api/v1/answer-links", &self.service("notify"), body).await;
            assert_eq!(s, 201, "{minted}");
            minted["token"].as_str().unwrap().to_string()
        }

        /// Opens a link (as the web app does).
        pub(crate) async fn exchange(&self, token: &str) -> (u16, Value) {
            let (s, v, _) = self.exchange_with_headers(token).await;
            (s, v)
        }

        pub(crate) async fn exchange_with_headers(&self, token: &str) -> (u16, Value, axum::http::HeaderMap) {
            let body = json!({ "token": token });
            call(&self.router, "POST", "/api/v1/answer-links/exchange", Some(&self.service("web")), Some(&body), &[])
                .await
        }

        /// The bearer token of an open link.
        pub(crate) async fn session(&self, token: &str) -> String {
            let (s, session) = self.exchange(token).await;
            assert_eq!(s, 200, "{session}");
            session["access_token"].as_str().unwrap().to_string()
        }

        pub(crate) async fn sql(&self, statement: &'static str, id: &str) {
            sqlx::query(statement).bind(Uuid::parse_str(id).unwrap()).execute(&self.pool).await.unwrap();
        }

        /// The events of a referral in the outbox, in order: (type, data).
        pub(crate) async fn events(&self, id: &str) -> Vec<(String, Value)> {
            let rows: Vec<(String, Value)> = sqlx::query_as(
                "SELECT event_type, envelope->'data' FROM referrals.outbox WHERE aggregate_id = $1
                 ORDER BY (envelope->>'sequence')::bigint",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .unwrap();
            rows
        }
    }

    #[sqlx::test(migrations = false)]
    async fn a_link_is_made_for_notify_only_while_the_structure_can_answer_and_keeps_only_a_hash(pool: PgPool) {
        let app = App::new(pool.clone()).await;
        let (id, _) = app.submitted().await;
        let body = json!({"referral_id": id, "structure_id": "lieu-a"});
        // Only the notifications service.
        for token in [app.service("web"), app.mediator("lieu-a"), app.keys.token(Role::Admin, Scope::All)] {
            let (s, problem) = app.post("/api/v1/answer-links", &token, body.clone()).await;
            assert_eq!(s, 403, "{problem}");
        }
        let notify = app.service("notify");
        // Not offered to anyone yet: nothing to answer.
        let (s, problem) = app.post("/api/v1/answer-links", &notify, body.clone()).await;
        assert_eq!(s, 409, "{problem}");
        assert!(problem["detail"].as_str().unwrap().contains("submitted"), "{problem}");
        let unknown = json!({"referral_id": Uuid::now_v7(), "structure_id": "lieu-a"});
        assert_eq!(app.post("/api/v1/answer-links", &notify, unknown).await.0, 404);
        let (s, problem) = app.post("/api/v1/answer-links", &notify, json!({"referral_id": id})).await;
        assert_eq!((s, fields(&problem)), (422, vec!["structure_id".to_string()]), "{problem}");

        app.offer(&id, "lieu-a").await;
        // Another structure has nothing to answer.
        let other = json!({"referral_id": id, "structure_id": "lieu-b"});
        assert_eq!(app.post("/api/v1/answer-links", &notify, other).await.0, 409);
        let (s, minted, headers) =
            call(&app.router, "POST", "/api/v1/answer-links", Some(&notify), Some(&body), &[]).await;
        assert_eq!(s, 201, "{minted}");
        assert_eq!(headers["cache-control"], "no-store");
        let token = minted["token"].as_str().unwrap().to_string();
        assert_eq!(minted["path"], format!("/reponse/{token}"));
        // At least 128 random bits, URL-safe.
        assert!(
            token.len() >= 22 && token.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
            "{token}"
        );
        // Only its hash is kept: no column holds the token.
        let rows: Vec<(Vec<u8>, String)> =
            sqlx::query_as("SELECT token_hash, row_to_json(l)::text FROM referrals.answer_links l")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, Sha256::digest(token.as_bytes()).to_vec());
        assert!(!rows[0].1.contains(&token), "the token is stored: {}", rows[0].1);

        // A new link replaces the structure's earlier one.
        let newer = app.mint(&id, "lieu-a").await;
        assert_ne!(newer, token);
        let (s, problem, headers) = app.exchange_with_headers(&token).await;
        assert_eq!(s, 410, "{problem}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(problem["renewable"], false, "offered, not accepted: nothing to renew");
        assert_eq!(app.exchange(&newer).await.0, 200);
    }

    #[sqlx::test(migrations = false)]
    async fn a_link_opens_the_offer_then_the_follow_up_until_its_ttl_after_the_last_use(pool: PgPool) {
        let app = App::with(pool.clone(), |k| (k == "AIGUILLAGE_ANSWER_LINK_TTL").then(|| "1h".to_string())).await;
        let (id, _) = app.submitted().await;
        app.offer(&id, "lieu-a").await;
        let token = app.mint(&id, "lieu-a").await;
        // Only the web app opens links; an unknown token says nothing more.
        let (s, _) = app.post("/api/v1/answer-links/exchange", &app.service("notify"), json!({ "token": token })).await;
        assert_eq!(s, 403);
        for unknown in ["", "x", &format!("{token}x"), &token[1..]] {
            let (s, problem) = app.exchange(unknown).await;
            assert_eq!(s, 404, "{problem}");
            assert_eq!((problem["detail"].as_str(), problem.get("errors")), (Some("no such resource"), None));
        }

        let (s, session, headers) = app.exchange_with_headers(&token).await;
        assert_eq!(s, 200, "{session}");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!((session["stage"].as_str(), session["referral_id"].as_str()), (Some("offer"), Some(id.as_str())));
        assert_eq!(
            (session["structure_id"].as_str(), session["structure_name"].as_str()),
            (Some("lieu-a"), Some("Lieu lieu-a"))
        );
        let csrf: String =
            sqlx::query_scalar("SELECT csrf FROM referrals.answer_links").fetch_one(&pool).await.unwrap();
        assert_eq!(session["csrf"], csrf);
        assert!(csrf.len() >= 22 && csrf != token);
        // Opening the offer is not a use.
        let used: Option<chrono::DateTime<Utc>> =
            sqlx::query_scalar("SELECT last_used_at FROM referrals.answer_links").fetch_one(&pool).await.unwrap();
        assert_eq!(used, None);

        let access = session["access_token"].as_str().unwrap();
        let (s, accepted) = app.post(&format!("/api/v1/referrals/{id}/accept"), access, json!({})).await;
        assert_eq!((s, accepted["status"].as_str()), (200, Some("accepted")), "{accepted}");

        // Now the follow-up, and each opening is a use.
        let (s, session) = app.exchange(&token).await;
        assert_eq!((s, session["stage"].as_str()), (200, Some("follow_up")), "{session}");
        let used: Option<chrono::DateTime<Utc>> =
            sqlx::query_scalar("SELECT last_used_at FROM referrals.answer_links").fetch_one(&pool).await.unwrap();
        assert!(used.is_some_and(|u| Utc::now() - u < chrono::Duration::minutes(1)), "{used:?}");
        // Made and accepted hours ago, used half an hour ago: still open (TTL 1h after the last use).
        app.sql("UPDATE referrals.referrals SET accepted_at = now() - interval '2 hours' WHERE id = $1", &id).await;
        app.sql(
            "UPDATE referrals.answer_links SET last_used_at = now() - interval '30 minutes',
                created_at = now() - interval '3 hours'
             WHERE referral_id = $1",
            &id,
        )
        .await;
        assert_eq!(app.exchange(&token).await.1["stage"], "follow_up");
        // Unused for longer than the TTL: ended, and renewable (the structure holds the referral).
        app.sql(
            "UPDATE referrals.answer_links SET last_used_at = now() - interval '61 minutes' WHERE referral_id = $1",
            &id,
        )
        .await;
        let (s, problem) = app.exchange(&token).await;
        assert_eq!((s, &problem["renewable"]), (410, &json!(true)), "{problem}");
        // Made and accepted longer ago than the TTL, never used since: ended too.
        app.sql("UPDATE referrals.answer_links SET last_used_at = NULL WHERE referral_id = $1", &id).await;
        assert_eq!(app.exchange(&token).await.0, 410);

        // A fresh link (as sent on request) opens the follow-up at once, though the
        // acceptance is older than the TTL.
        let fresh = app.mint(&id, "lieu-a").await;
        // A closed referral: ended, not renewable.
        let access = app.session(&fresh).await;
        let (s, closed) =
            app.post(&format!("/api/v1/referrals/{id}/close"), &access, json!({"outcome": "completed"})).await;
        assert_eq!(s, 200, "{closed}");
        let (s, problem) = app.exchange(&fresh).await;
        assert_eq!((s, &problem["renewable"]), (410, &json!(false)), "{problem}");
        assert_eq!(
            app.post(
                "/api/v1/answer-links",
                &app.service("notify"),
                json!({"referral_id": id, "structure_id": "lieu-a"})
            )
            .await
            .0,
            409
        );

        // A declined offer (and a cancelled referral) end the link too.
        let (other, _) = app.submitted().await;
        app.offer(&other, "lieu-a").await;
        let token = app.mint(&other, "lieu-a").await;
        let (s, _) = app
            .post(
                &format!("/api/v1/referrals/{other}/decline"),
                &app.mediator("lieu-a"),
                json!({"reason": "no_capacity"}),
            )
            .await;
        assert_eq!(s, 200);
        let (s, problem) = app.exchange(&token).await;
        assert_eq!((s, &problem["renewable"]), (410, &json!(false)), "{problem}");
    }

    #[sqlx::test(migrations = false)]
    async fn a_fresh_link_is_asked_for_once_an_hour_and_only_for_a_held_referral(pool: PgPool) {
        let app = App::new(pool.clone()).await;
        let (id, _) = app.submitted().await;
        app.offer(&id, "lieu-a").await;
        let token = app.mint(&id, "lieu-a").await;
        let web = app.service("web");
        let renew = |token: &str| json!({ "token": token });
        assert_eq!(app.post("/api/v1/answer-links/renewals", &app.service("notify"), renew(&token)).await.0, 403);
        assert_eq!(app.post("/api/v1/answer-links/renewals", &web, renew("unknown")).await.0, 404);
        // Offered, not accepted: nothing to renew.
        let (s, problem) = app.post("/api/v1/answer-links/renewals", &web, renew(&token)).await;
        assert_eq!((s, &problem["renewable"]), (410, &json!(false)), "{problem}");

        let (s, _) = app.post(&format!("/api/v1/referrals/{id}/accept"), &app.mediator("lieu-a"), json!({})).await;
        assert_eq!(s, 200);
        let (s, body, _) =
            call(&app.router, "POST", "/api/v1/answer-links/renewals", Some(&web), Some(&renew(&token)), &[]).await;
        assert_eq!(s, 202, "{body}");
        let events = app.events(&id).await;
        let (kind, data) = events.last().unwrap();
        assert_eq!(kind, "referral.answer_link_requested");
        assert_eq!((data["referral_id"].as_str(), data["structure_id"].as_str()), (Some(id.as_str()), Some("lieu-a")));
        assert!(!data.to_string().contains(&token), "no token on the bus");
        // Its sequence follows the referral's other events.
        let sequences: Vec<i64> = sqlx::query_scalar(
            "SELECT (envelope->>'sequence')::bigint FROM referrals.outbox WHERE aggregate_id = $1 ORDER BY 1",
        )
        .bind(&id)
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(sequences, (1..=sequences.len() as i64).collect::<Vec<_>>());

        // Again within the hour, through this link or another of the structure's: 429.
        let (s, problem, headers) =
            call(&app.router, "POST", "/api/v1/answer-links/renewals", Some(&web), Some(&renew(&token)), &[]).await;
        assert_eq!(s, 429, "{problem}");
        let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((3500..=3600).contains(&wait), "{wait}");
        let newer = app.mint(&id, "lieu-a").await;
        assert_eq!(app.post("/api/v1/answer-links/renewals", &web, renew(&newer)).await.0, 429);
        assert_eq!(app.events(&id).await.len(), events.len(), "no second request");
        // An hour later, again.
        app.sql(
            "UPDATE referrals.answer_links SET renewal_requested_at = renewal_requested_at - interval '1 hour'
             WHERE referral_id = $1",
            &id,
        )
        .await;
        assert_eq!(app.post("/api/v1/answer-links/renewals", &web, renew(&token)).await.0, 202);
        // Closed: no more.
        let (s, _) = app
            .post(&format!("/api/v1/referrals/{id}/close"), &app.mediator("lieu-a"), json!({"outcome": "completed"}))
            .await;
        assert_eq!(s, 200);
        let (s, problem) = app.post("/api/v1/answer-links/renewals", &web, renew(&newer)).await;
        assert_eq!((s, &problem["renewable"]), (410, &json!(false)), "{problem}");
    }

    #[sqlx::test(migrations = false)]
    async fn a_link_reaches_its_referral_only_as_a_mediator_of_its_structure_would(pool: PgPool) {
        let app = App::new(pool.clone()).await;
        let (id, referrer) = app.submitted().await;
        let (other, _) = app.submitted().await;
        app.offer(&id, "lieu-a").await;
        app.offer(&other, "lieu-a").await;
        let access = app.session(&app.mint(&id, "lieu-a").await).await;

        // Before acceptance: the referral, never the person.
        let (s, seen) = app.get(&format!("/api/v1/referrals/{id}"), &access).await;
        assert_eq!(s, 200, "{seen}");
        assert!(seen.get("person").is_none() && seen.get("note").is_none(), "{seen}");
        // Another referral offered to the same structure: not found, read or answered.
        assert_eq!(app.get(&format!("/api/v1/referrals/{other}"), &access).await.0, 404);
        assert_eq!(app.post(&format!("/api/v1/referrals/{other}/accept"), &access, json!({})).await.0, 404);
        assert_eq!(
            app.post(&format!("/api/v1/referrals/{other}/decline"), &access, json!({"reason": "other"})).await.0,
            404
        );
        // Nothing else, not even on its own referral.
        assert_eq!(app.get("/api/v1/referrals", &access).await.0, 403);
        assert_eq!(app.post("/api/v1/referrals", &access, referral()).await.0, 403);
        assert_eq!(app.post(&format!("/api/v1/referrals/{id}/cancel"), &access, json!({})).await.0, 403);
        assert_eq!(app.post(&format!("/api/v1/referrals/{id}/reroute"), &access, json!({})).await.0, 403);
        assert_eq!(app.get(&format!("/api/v1/referrals/{id}/personal-data"), &access).await.0, 403);
        let (s, _, _) =
            call(&app.router, "DELETE", &format!("/api/v1/referrals/{id}/personal-data"), Some(&access), None, &[])
                .await;
        assert_eq!(s, 403);
        let (s, _, _) =
            call(&app.router, "PATCH", &format!("/api/v1/referrals/{id}/person"), Some(&access), Some(&json!({})), &[])
                .await;
        assert_eq!(s, 403);
        assert_eq!(app.get("/api/v1/audit", &access).await.0, 403);
        let withdrawal = json!({"structure_id": "lieu-a", "reason": "structure_unreachable"});
        assert_eq!(app.post(&format!("/api/v1/referrals/{id}/withdraw"), &access, withdrawal).await.0, 403);
        for path in ["/api/v1/answer-links", "/api/v1/answer-links/exchange", "/api/v1/answer-links/renewals"] {
            assert_eq!(app.post(path, &access, json!({"token": "x"})).await.0, 403, "{path}");
        }
        // Contact before acceptance: the state does not allow it.
        assert_eq!(app.post(&format!("/api/v1/referrals/{id}/contact"), &access, json!({})).await.0, 409);

        let (s, accepted) = app.post(&format!("/api/v1/referrals/{id}/accept"), &access, json!({})).await;
        assert_eq!(s, 200, "{accepted}");
        // Accepted by its structure: the person, as its mediators see them.
        let (_, seen) = app.get(&format!("/api/v1/referrals/{id}"), &access).await;
        assert_eq!(seen["person"]["first_name"], "Camille", "{seen}");
        let (s, contacted) = app.post(&format!("/api/v1/referrals/{id}/contact"), &access, json!({})).await;
        assert_eq!((s, contacted["status"].as_str()), (200, Some("in_progress")), "{contacted}");

        // The history says how, and the audit who.
        let (_, seen) = app.get(&format!("/api/v1/referrals/{id}"), &referrer).await;
        let history = seen["history"].as_array().unwrap();
        let step = |status: &str| history.iter().find(|h| h["status"] == status).unwrap().clone();
        for status in ["accepted", "contacted"] {
            let h = step(status);
            assert_eq!((&h["via"], &h["actor"]), (&json!("answer_link"), &json!("answer_link:lieu-a")), "{h}");
        }
        assert_eq!(step("contacted")["detail"]["kind"], "first_contact", "the other facts stay");
        assert!(step("contacted")["detail"].get("via").is_none());
        assert!(step("offered").get("via").is_none());
        let dpo = app.keys.token(Role::Dpo, Scope::Dpo);
        let (_, audit) = app.get(&format!("/api/v1/audit?referral_id={id}"), &dpo).await;
        let by_link: Vec<&str> = audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["actor"] == "answer_link:lieu-a")
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(by_link, vec!["accept", "read", "contact"], "{audit}");
        // The event says how the offer was answered.
        let events = app.events(&id).await;
        let (_, data) = events.iter().find(|(t, _)| t == "referral.accepted").unwrap();
        assert_eq!(data["via"], "answer_link");
    }

    #[sqlx::test(migrations = false)]
    async fn two_acceptances_at_once_give_one_acceptance_and_one_conflict(pool: PgPool) {
        let app = App::new(pool.clone()).await;
        let (id, _) = app.submitted().await;
        app.offer(&id, "lieu-a").await;
        let token = app.mint(&id, "lieu-a").await;
        let (first, second) = (app.session(&token).await, app.session(&token).await);
        let path = format!("/api/v1/referrals/{id}/accept");
        let mediator = app.mediator("lieu-a");
        let (a, b, c) = tokio::join!(
            app.post(&path, &first, json!({})),
            app.post(&path, &second, json!({})),
            app.post(&path, &mediator, json!({})),
        );
        let mut statuses = vec![a.0, b.0, c.0];
        statuses.sort_unstable();
        assert_eq!(statuses, vec![200, 409, 409], "{a:?} {b:?} {c:?}");
        let accepted: i64 = sqlx::query_scalar("SELECT count(*) FROM referrals.history WHERE step = 'accepted'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(accepted, 1);
    }

    #[sqlx::test(migrations = false)]
    async fn notify_withdraws_an_offer_for_an_unreachable_structure_and_nobody_else_gives_that_reason(pool: PgPool) {
        let app = App::new(pool.clone()).await;
        let (id, _) = app.submitted().await;
        app.offer(&id, "lieu-a").await;
        let path = format!("/api/v1/referrals/{id}/withdraw");
        let body = json!({"structure_id": "lieu-a", "reason": "structure_unreachable"});
        for token in [app.service("web"), app.mediator("lieu-a"), app.keys.token(Role::Admin, Scope::All)] {
            assert_eq!(app.post(&path, &token, body.clone()).await.0, 403);
        }
        let notify = app.service("notify");
        for reason in ["no_capacity", "lost"] {
            let (s, problem) = app.post(&path, &notify, json!({"structure_id": "lieu-a", "reason": reason})).await;
            assert_eq!((s, fields(&problem)), (422, vec!["reason".to_string()]), "{problem}");
        }
        assert_eq!(
            app.post(&format!("/api/v1/referrals/{}/withdraw", Uuid::now_v7()), &notify, body.clone()).await.0,
            404
        );
        // Not that structure's offer: nothing to withdraw.
        let (s, problem) =
            app.post(&path, &notify, json!({"structure_id": "lieu-b", "reason": "structure_unreachable"})).await;
        assert_eq!(s, 409, "{problem}");

        // A structure never gives that reason itself, nor does admin.
        let decline = format!("/api/v1/referrals/{id}/decline");
        let unreachable = json!({"reason": "structure_unreachable"});
        for token in [app.mediator("lieu-a"), app.keys.token(Role::Admin, Scope::All)] {
            let (s, problem) = app.post(&decline, &token, unreachable.clone()).await;
            assert_eq!((s, fields(&problem)), (422, vec!["reason".to_string()]), "{problem}");
        }
        let access = app.session(&app.mint(&id, "lieu-a").await).await;
        assert_eq!(app.post(&decline, &access, unreachable).await.0, 422);

        let (s, withdrawn) = app.post(&path, &notify, body.clone()).await;
        assert_eq!((s, withdrawn["status"].as_str()), (200, Some("submitted")), "{withdrawn}");
        let last = withdrawn["history"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            (&last["status"], &last["reason"], &last["actor"]),
            (&json!("declined"), &json!("structure_unreachable"), &json!("service:notify")),
            "{last}"
        );
        assert!(last.get("via").is_none());
        let events = app.events(&id).await;
        let (kind, data) = events.last().unwrap();
        assert_eq!((kind.as_str(), &data["reason"]), ("referral.declined", &json!("structure_unreachable")));
        assert!(data.get("via").is_none(), "nobody answered: {data}");
        // The offer moved on: nothing left to withdraw.
        let (s, problem) = app.post(&path, &notify, body.clone()).await;
        assert_eq!(s, 409, "{problem}");
        app.offer(&id, "lieu-b").await;
        assert_eq!(app.post(&path, &notify, body).await.0, 409);
    }

    #[sqlx::test(migrations = false)]
    async fn erasing_the_person_ends_the_referrals_links(pool: PgPool) {
        let app = App::new(pool.clone()).await;
        let (id, referrer) = app.submitted().await;
        app.offer(&id, "lieu-a").await;
        let token = app.mint(&id, "lieu-a").await;
        let (s, _, _) =
            call(&app.router, "DELETE", &format!("/api/v1/referrals/{id}/personal-data"), Some(&referrer), None, &[])
                .await;
        assert_eq!(s, 204);
        let links: i64 =
            sqlx::query_scalar("SELECT count(*) FROM referrals.answer_links").fetch_one(&pool).await.unwrap();
        assert_eq!(links, 0);
        assert_eq!(app.exchange(&token).await.0, 404);
        // And the retention purge, for another.
        let (other, _) = app.submitted().await;
        app.offer(&other, "lieu-a").await;
        app.mint(&other, "lieu-a").await;
        app.sql("UPDATE referrals.referrals SET updated_at = now() - interval '3 years' WHERE id = $1", &other).await;
        referrals::privacy::purge(&pool, Duration::from_secs(730 * 86_400), false).await.unwrap();
        let links: i64 =
            sqlx::query_scalar("SELECT count(*) FROM referrals.answer_links").fetch_one(&pool).await.unwrap();
        assert_eq!(links, 0);
    }
}

// Appointments (issue 24): the accepting structure sets, moves and cancels one, and records
// whether the person came; the messages to the person are queued beside their record. The
// sender is stepped here with SMS and e-mail off (every message then fails, and the
// referrer is told); the real providers are in the end-to-end suite.

mod appointments {
    use chrono::{Duration, Utc};
    use referrals::person_messages::{self, Senders};
    use uuid::Uuid;

    use super::*;

    /// An accepted referral at `lieu-a`: its id, the referrer's and the mediator's tokens.
    async fn accepted(app: &App) -> (String, String, String) {
        let (id, referrer) = app.submitted().await;
        app.offer(&id, "lieu-a").await;
        let mediator = app.mediator("lieu-a");
        let (s, r) = app.post(&format!("/api/v1/referrals/{id}/accept"), &mediator, json!({})).await;
        assert_eq!(s, 200, "{r}");
        (id, referrer, mediator)
    }

    async fn put(app: &App, id: &str, token: &str, body: Value) -> (u16, Value) {
        let (s, v, _) =
            call(&app.router, "PUT", &format!("/api/v1/referrals/{id}/appointment"), Some(token), Some(&body), &[])
                .await;
        (s, v)
    }

    fn in_days(days: i64) -> String {
        (Utc::now() + Duration::days(days)).to_rfc3339()
    }

    /// (kind, channel, status, has a sealed recipient) of the referral's messages, oldest first.
    async fn messages(app: &App, id: &str) -> Vec<(String, String, String, bool)> {
        sqlx::query_as(
            "SELECT kind, channel, status, recipient IS NOT NULL FROM referrals.person_messages
             WHERE referral_id = $1 ORDER BY version, due_at",
        )
        .bind(Uuid::parse_str(id).unwrap())
        .fetch_all(&app.pool)
        .await
        .unwrap()
    }

    fn m(kind: &str, channel: &str, status: &str, sealed: bool) -> (String, String, String, bool) {
        (kind.into(), channel.into(), status.into(), sealed)
    }

    #[sqlx::test(migrations = false)]
    async fn an_appointment_tells_the_person_by_sms_and_reminds_them_and_a_move_drops_the_old_reminder(pool: PgPool) {
        let app = App::new(pool.clone()).await;
        let (id, referrer, mediator) = accepted(&app).await;
        let at = in_days(5);
        let (s, r) = put(&app, &id, &mediator, json!({"at": at, "duration_minutes": 60, "place": "Salle 2"})).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["status"], "in_progress");
        assert_eq!(r["appointment"]["duration_minutes"], 60);
        assert_eq!(r["appointment"]["place"], "Salle 2");
        assert_eq!(r["appointment"]["attended"], Value::Null);
        let notice = r["appointment"]["notice"].as_array().unwrap();
        assert_eq!(notice.len(), 2, "{r}");
        assert_eq!((notice[0]["channel"].as_str(), notice[0]["kind"].as_str()), (Some("sms"), Some("set")));
        assert_eq!(notice[0]["status"], "queued");
        assert_eq!(notice[1]["kind"], "reminder");
        // The referrer sees it too; a coordinator does not.
        let (_, seen) = app.get(&format!("/api/v1/referrals/{id}"), &referrer).await;
        assert_eq!(seen["appointment"]["duration_minutes"], 60);
        let coordinator = app.keys.token(Role::Coordinator, Scope::Territories(vec!["16".parse().unwrap()]));
        let (_, seen) = app.get(&format!("/api/v1/referrals/{id}"), &coordinator).await;
        assert!(seen.get("appointment").is_none(), "{seen}");
        // The number waits sealed, never in clear.
        assert_eq!(
            messages(&app, &id).await,
            vec![m("set", "sms", "queued", true), m("reminder", "sms", "queued", true)]
        );
        let clear: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM referrals.person_messages WHERE position('612345678' in encode(recipient, 'escape')) > 0",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(clear, 0);

        // Moved before anything went: the person is told once, of the new time, as a first
        // message; the old reminder is gone.
        let (s, r) = put(&app, &id, &mediator, json!({"at": in_days(6), "duration_minutes": 45})).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(
            messages(&app, &id).await,
            vec![m("set", "sms", "queued", true), m("reminder", "sms", "queued", true)]
        );
        let versions: Vec<i32> = sqlx::query_scalar("SELECT version FROM referrals.person_messages ORDER BY due_at")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(versions, vec![2, 2]);

        // SMS is off here: the message fails at once, its number is deleted, and the failure
        // is announced once.
        let sent = person_messages::send_due(&pool, &app.vault, &Senders::default()).await.unwrap();
        assert_eq!(sent, 1, "only the message due now; the reminder waits");
        assert_eq!(
            messages(&app, &id).await,
            vec![m("set", "sms", "failed", false), m("reminder", "sms", "queued", true)]
        );
        assert_eq!(person_messages::announce_failures(&pool).await.unwrap(), 1);
        assert_eq!(person_messages::announce_failures(&pool).await.unwrap(), 0);
        let failures: Vec<Value> = app
            .events(&id)
            .await
            .into_iter()
            .filter(|(t, _)| t == "referral.person_notice_failed")
            .map(|(_, d)| d)
            .collect();
        assert_eq!(failures.len(), 1);
        assert_eq!((failures[0]["channel"].as_str(), failures[0]["notice"].as_str()), (Some("sms"), Some("set")));
        // No event carries the number or the room.
        for (_, data) in app.events(&id).await {
            let text = data.to_string();
            assert!(!text.contains("612345678") && !text.contains("Salle 2"), "{text}");
        }
        let (_, r) = app.get(&format!("/api/v1/referrals/{id}"), &referrer).await;
        assert_eq!(r["appointment"]["notice"][0]["status"], "failed", "{r}");
    }

    #[sqlx::test(migrations = false)]
    async fn bad_appointments_are_refused_naming_the_field_and_change_nothing(pool: PgPool) {
        let app = App::new(pool.clone()).await;
        let (id, _, mediator) = accepted(&app).await;
        let past = (Utc::now() - Duration::hours(1)).to_rfc3339();
        for (body, field) in [
            (json!({"at": past, "duration_minutes": 60}), "at"),
            (json!({"at": in_days(400), "duration_minutes": 60}), "at"),
            (json!({"at": in_days(2), "duration_minutes": 4}), "duration_minutes"),
            (json!({"at": in_days(2), "duration_minutes": 481}), "duration_minutes"),
            (json!({"at": in_days(2), "duration_minutes": 60, "place": "x".repeat(201)}), "place"),
            (json!({"at": "mardi", "duration_minutes": 60}), "at"),
            (json!({"duration_minutes": 60}), "at"),
            (json!({"at": in_days(2), "duration_minutes": 60, "person": "x"}), "person"),
        ] {
            let (s, problem) = put(&app, &id, &mediator, body.clone()).await;
            assert_eq!((s, fields(&problem)), (422, vec![field.to_string()]), "{body}: {problem}");
        }
        assert!(messages(&app, &id).await.is_empty());
        // Another structure does not see it; a referral not accepted has no appointment.
        let (s, _) = put(&app, &id, &app.mediator("lieu-b"), json!({"at": in_days(2), "duration_minutes": 60})).await;
        assert_eq!(s, 404);
        let (other, _) = app.submitted().await;
        app.offer(&other, "lieu-a").await;
        let (s, problem) = put(&app, &other, &mediator, json!({"at": in_days(2), "duration_minutes": 60})).await;
        assert_eq!(s, 409, "{problem}");
        assert!(problem["detail"].as_str().unwrap().contains("offered"), "{problem}");
        // Nothing to cancel, no attendance to record.
        let path = format!("/api/v1/referrals/{id}/appointment");
        assert_eq!(call(&app.router, "DELETE", &path, Some(&mediator), None, &[]).await.0, 409);
        let attendance = format!("/api/v1/referrals/{id}/appointment/attendance");
        assert_eq!(app.post(&attendance, &mediator, json!({"attended": true})).await.0, 409);
    }

    #[sqlx::test(migrations = false)]
    async fn attendance_is_recorded_once_the_time_has_passed_and_a_no_show_can_be_set_again_or_closed(pool: PgPool) {
        let app = App::new(pool.clone()).await;
        let (id, _, mediator) = accepted(&app).await;
        let (s, _) = put(&app, &id, &mediator, json!({"at": in_days(3), "duration_minutes": 60})).await;
        assert_eq!(s, 200);
        let attendance = format!("/api/v1/referrals/{id}/appointment/attendance");
        let (s, problem) = app.post(&attendance, &mediator, json!({"attended": false})).await;
        assert_eq!(s, 409, "not before its time: {problem}");
        let (s, problem) = app.post(&attendance, &mediator, json!({"attended": "non"})).await;
        assert_eq!((s, fields(&problem)), (422, vec!["attended".to_string()]));
        // The time passes.
        app.sql("UPDATE referrals.appointments SET at = now() - interval '1 hour' WHERE referral_id = $1", &id).await;
        let (s, r) = app.post(&attendance, &mediator, json!({"attended": false})).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["appointment"]["attended"], false);
        // Once only; the reminder that waited is gone.
        assert_eq!(app.post(&attendance, &mediator, json!({"attended": true})).await.0, 409);
        assert!(messages(&app, &id).await.iter().all(|(kind, ..)| kind != "reminder"));
        // A new appointment after the no-show: a new one, not a move.
        let (s, r) = put(&app, &id, &mediator, json!({"at": in_days(4), "duration_minutes": 30})).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["appointment"]["attended"], Value::Null);
        let set: Vec<Value> = app
            .events(&id)
            .await
            .into_iter()
            .filter(|(t, _)| t == "referral.appointment_set")
            .map(|(_, d)| d)
            .collect();
        assert_eq!(set.len(), 2);
        assert_eq!((set[1]["version"].as_u64(), set[1]["rescheduled"].as_bool()), (Some(2), Some(false)));
        let recorded: Vec<Value> = app
            .events(&id)
            .await
            .into_iter()
            .filter(|(t, _)| t == "referral.attendance_recorded")
            .map(|(_, d)| d)
            .collect();
        assert_eq!(recorded[0]["attended"], false);
        // Closed as a no-show: nothing left waits.
        let (s, r) = app.post(&format!("/api/v1/referrals/{id}/close"), &mediator, json!({"outcome": "no_show"})).await;
        assert_eq!(s, 200, "{r}");
        assert!(messages(&app, &id).await.iter().all(|(_, _, status, _)| status != "queued"));
        let history: Vec<&str> =
            r["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
        assert!(history.contains(&"attendance_recorded") && history.contains(&"appointment_set"), "{history:?}");
    }

    #[sqlx::test(migrations = false)]
    async fn a_cancellation_tells_a_person_who_was_told_and_nobody_else(pool: PgPool) {
        let app = App::new(pool.clone()).await;
        let (id, referrer, mediator) = accepted(&app).await;
        let path = format!("/api/v1/referrals/{id}/appointment");
        let (s, _) = put(&app, &id, &mediator, json!({"at": in_days(3), "duration_minutes": 60})).await;
        assert_eq!(s, 200);
        // Cancelled before the SMS went: it never goes, and there is no news to give.
        let (s, r, _) = call(&app.router, "DELETE", &path, Some(&mediator), None, &[]).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["appointment"], Value::Null);
        assert!(messages(&app, &id).await.is_empty());
        // Set again, told (the message went), then cancelled: the person is told.
        let (s, _) = put(&app, &id, &mediator, json!({"at": in_days(3), "duration_minutes": 60})).await;
        assert_eq!(s, 200);
        app.sql("UPDATE referrals.person_messages SET status = 'sent', recipient = NULL WHERE referral_id = $1 AND kind = 'set'", &id).await;
        let (s, _, _) = call(&app.router, "DELETE", &path, Some(&mediator), None, &[]).await;
        assert_eq!(s, 200);
        let kinds: Vec<String> = messages(&app, &id).await.into_iter().map(|(k, _, s, _)| format!("{k}:{s}")).collect();
        assert_eq!(kinds, vec!["set:sent", "cancelled:queued"]);
        let types: Vec<String> = app.events(&id).await.into_iter().map(|(t, _)| t).collect();
        assert_eq!(types.iter().filter(|t| *t == "referral.appointment_cancelled").count(), 2);
        // Erasing the person drops what still waits, with its sealed number.
        let erase = format!("/api/v1/referrals/{id}/personal-data");
        assert_eq!(call(&app.router, "DELETE", &erase, Some(&referrer), None, &[]).await.0, 204);
        assert!(messages(&app, &id).await.iter().all(|(_, _, status, sealed)| status != "queued" && !sealed));
    }

    #[sqlx::test(migrations = false)]
    async fn a_person_told_by_their_referrer_gets_no_message_of_ours(pool: PgPool) {
        let app = App::new(pool.clone()).await;
        let referrer = app.referrer(OrganisationId::new());
        let mut body = referral();
        body["person"]["contact_preference"] = json!("via_referrer");
        let (s, created) = app.post("/api/v1/referrals", &referrer, body).await;
        assert_eq!(s, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_string();
        app.offer(&id, "lieu-a").await;
        let mediator = app.mediator("lieu-a");
        assert_eq!(app.post(&format!("/api/v1/referrals/{id}/accept"), &mediator, json!({})).await.0, 200);
        let (s, r) = put(&app, &id, &mediator, json!({"at": in_days(5), "duration_minutes": 60})).await;
        assert_eq!(s, 200, "{r}");
        // The referrer is told (by notify, from the event): no reminder, nothing sealed.
        assert_eq!(messages(&app, &id).await, vec![m("set", "referrer", "sent", false)]);
        let set: Vec<Value> = app
            .events(&id)
            .await
            .into_iter()
            .filter(|(t, _)| t == "referral.appointment_set")
            .map(|(_, d)| d)
            .collect();
        assert_eq!(set[0]["channel"], "referrer");
        assert_eq!(person_messages::send_due(&pool, &app.vault, &Senders::default()).await.unwrap(), 0);
    }
}
