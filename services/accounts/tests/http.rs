//! The fast tier of accounts: its HTTP rules through the router with `oneshot`, each test
//! on a database of its own (`#[sqlx::test]`), no server and no broker. What the other
//! services may know of an account leaves in the outbox, read here as the relay would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use contracts::{OrganisationId, Role};
use platform::auth::{Claims, Scope};
use platform::testing::{Keys, call, migrate_platform};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

struct App {
    router: axum::Router,
    keys: Keys,
    pool: PgPool,
}

impl App {
    async fn new(pool: PgPool) -> Self {
        migrate_platform(&pool).await;
        accounts::migrate(&pool).await.unwrap();
        let keys = Keys::default();
        let config = Arc::new(platform::Config::from_lookup(|_| None).unwrap());
        let master =
            platform::vault::MasterKey::from_base64(&platform::vault::MasterKey::generate_base64(), "test").unwrap();
        let vault = accounts::open_vault(&pool, master, None).await.unwrap();
        let state = accounts::AccountsState { pool: pool.clone(), auth: keys.authenticator(), config, vault };
        Self { router: accounts::router(state), keys, pool }
    }

    fn service(&self, name: &str) -> String {
        self.keys.0.issue(&Claims::for_service(name, chrono::Duration::minutes(5)))
    }

    fn agent(&self, account: Uuid) -> String {
        self.keys.0.issue(&Claims::for_pending_account(account, chrono::Duration::minutes(5)))
    }

    async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value, http::HeaderMap) {
        call(&self.router, method, path, Some(token), body.as_ref(), &[]).await
    }

    /// Signs an agent in as the web app records it; returns the account.
    async fn sign_in(&self, subject: &str, email: &str) -> Uuid {
        let body = json!({"issuer": "https://provider.example", "subject": subject, "email": email,
                          "given_name": "Claire", "usual_name": "Dubois"});
        let (s, v, _) = self.call("POST", "/api/v1/accounts/sign-ins", &self.service("web"), Some(body)).await;
        assert_eq!(s, 200, "{v}");
        v["account_id"].as_str().unwrap().parse().unwrap()
    }

    /// The events about an account waiting in the outbox, oldest first.
    async fn announced(&self, account: Uuid) -> Vec<Value> {
        sqlx::query_scalar("SELECT envelope FROM accounts.outbox WHERE aggregate_id = $1 ORDER BY created_at, id")
            .bind(account.to_string())
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }
}

#[sqlx::test(migrations = false)]
async fn a_sign_in_announces_the_account_with_its_memberships_and_nothing_personal(pool: PgPool) {
    let app = App::new(pool).await;
    let organisation = OrganisationId::new();
    // Accounts learns the organisation from the directory's event, handed over as the bus would.
    let event = contracts::events::OrganisationUpserted {
        organisation_id: organisation,
        name: "CCAS d'Angoulême".into(),
        kind: contracts::OrganisationKind::SocialService,
        territory: "16".parse().unwrap(),
        siret: None,
    };
    let env = contracts::Envelope::new(organisation.to_string(), 1, &event);
    let mut tx = app.pool.begin().await.unwrap();
    let inbound = <accounts::messaging::Inbound as contracts::EventSet>::decode(&env).unwrap();
    bus::Handler::handle(&accounts::messaging::AccountsHandler, &mut tx, &env, inbound).await.unwrap();
    tx.commit().await.unwrap();
    let admin = app.keys.token(Role::Admin, Scope::All);
    let invite = json!({"email": "claire.dubois@ccas.example",
                        "membership": {"role": "referrer", "organisation_id": organisation}});
    let (s, v, _) = app.call("POST", "/api/v1/accounts/invitations", &admin, Some(invite)).await;
    assert_eq!(s, 201, "{v}");

    let account = app.sign_in("sub-claire", "Claire.Dubois@ccas.example").await;
    let events = app.announced(account).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["type"], "account.upserted");
    assert_eq!(event["sequence"], 1);
    assert_eq!(event["data"]["memberships"][0]["role"], "referrer", "{event}");
    assert_eq!(event["data"]["memberships"][0]["organisation_id"], organisation.to_string());
    assert!(event["data"]["last_signed_in_at"].is_string(), "{event}");
    let text = event.to_string().to_lowercase();
    for personal in ["claire", "dubois", "ccas.example", "provider.example"] {
        assert!(!text.contains(personal), "{personal} on the bus: {event}");
    }

    // Choices announce a new snapshot, with a higher sequence.
    let (s, v, _) =
        app.call("PUT", "/api/v1/me/preferences", &app.agent(account), Some(json!({"offer_received": "never"}))).await;
    assert_eq!(s, 200, "{v}");
    let events = app.announced(account).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["sequence"], 2);
    assert_eq!(events[1]["data"]["preferences"], json!({"offer_received": "never"}), "only what was chosen");
    // A refused change announces nothing.
    let (s, _, _) =
        app.call("PUT", "/api/v1/me/preferences", &app.agent(account), Some(json!({"offer_received": "maybe"}))).await;
    assert_eq!(s, 422);
    assert_eq!(app.announced(account).await.len(), 2);

    // A removed membership: the next snapshot has none.
    let membership = events[1]["data"]["memberships"][0]["membership_id"].as_str().unwrap().to_string();
    let elsewhere = app.keys.token(Role::Coordinator, Scope::Territories(vec!["17".parse().unwrap()]));
    let path = format!("/api/v1/accounts/memberships/{membership}");
    assert_eq!(app.call("DELETE", &path, &elsewhere, None).await.0, 404, "not a coordinator of 16");
    assert_eq!(app.announced(account).await.len(), 2);
    let coordinator = app.keys.token(Role::Coordinator, Scope::Territories(vec!["16".parse().unwrap()]));
    assert_eq!(app.call("DELETE", &path, &coordinator, None).await.0, 204);
    let events = app.announced(account).await;
    assert_eq!((events.len(), &events[2]["sequence"]), (3, &json!(3)));
    assert_eq!(events[2]["data"]["memberships"], json!([]));
}

#[sqlx::test(migrations = false)]
async fn agents_addresses_go_to_aiguillages_services_only_and_never_a_purged_ones(pool: PgPool) {
    let app = App::new(pool).await;
    let claire = app.sign_in("sub-claire", "claire@ccas.example").await;
    let karim = app.sign_in("sub-karim", "karim@lieu.example").await;
    let unknown = Uuid::now_v7();
    let body = json!({"accounts": [claire, karim, unknown]});
    let (s, v, headers) =
        app.call("POST", "/api/v1/accounts/recipients", &app.service("notify"), Some(body.clone())).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(headers["cache-control"], "no-store");
    let mut found: Vec<(String, String)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["account_id"].as_str().unwrap().to_string(), r["email"].as_str().unwrap().to_string()))
        .collect();
    found.sort();
    let mut expected =
        vec![(claire.to_string(), "claire@ccas.example".to_string()), (karim.to_string(), "karim@lieu.example".into())];
    expected.sort();
    assert_eq!(found, expected, "an unknown account is left out");

    // Nobody else may ask: not an agent, not an admin's token.
    for token in [app.agent(claire), app.keys.token(Role::Admin, Scope::All)] {
        let (s, _, _) = app.call("POST", "/api/v1/accounts/recipients", &token, Some(body.clone())).await;
        assert_eq!(s, 403);
    }
    let too_many: Vec<Uuid> = (0..101).map(|_| Uuid::now_v7()).collect();
    let (s, v, _) = app
        .call("POST", "/api/v1/accounts/recipients", &app.service("notify"), Some(json!({"accounts": too_many})))
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["errors"][0]["field"], "accounts");
    let (s, _, _) =
        app.call("POST", "/api/v1/accounts/recipients", &app.service("notify"), Some(json!({"ids": []}))).await;
    assert_eq!(s, 422, "unknown fields are refused");

    // Purged after its retention: no address, and a last announcement that it is gone.
    sqlx::query("UPDATE accounts.accounts SET last_sign_in_at = now() - interval '3 years' WHERE id = $1")
        .bind(karim)
        .execute(&app.pool)
        .await
        .unwrap();
    let report =
        accounts::privacy::purge(&app.pool, std::time::Duration::from_secs(730 * 86_400), false).await.unwrap();
    assert_eq!(report.accounts, 1);
    let (_, v, _) = app.call("POST", "/api/v1/accounts/recipients", &app.service("notify"), Some(body)).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1, "{v}");
    let last = app.announced(karim).await.pop().unwrap();
    assert_eq!(last["type"], "account.removed", "{last}");
}

#[sqlx::test(migrations = false)]
async fn the_accounts_of_a_database_from_before_account_events_are_announced_once(pool: PgPool) {
    let app = App::new(pool).await;
    let claire = app.sign_in("sub-claire", "claire@ccas.example").await;
    // As if the account had been created before these events existed.
    sqlx::query("UPDATE accounts.accounts SET announced_sequence = 0").execute(&app.pool).await.unwrap();
    sqlx::query("DELETE FROM accounts.outbox").execute(&app.pool).await.unwrap();
    assert_eq!(accounts::announce::backlog(&app.pool).await.unwrap(), 1);
    assert_eq!(accounts::announce::backlog(&app.pool).await.unwrap(), 0, "once");
    let events = app.announced(claire).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "account.upserted");
}

#[sqlx::test(migrations = false)]
async fn who_am_i_needs_a_token_and_a_pending_agent_sees_no_membership(pool: PgPool) {
    let app = App::new(pool).await;
    let (s, _, _) = call(&app.router, "GET", "/api/v1/me", None, None, &[]).await;
    assert_eq!(s, 401);
    let lea = app.sign_in("sub-lea", "lea@mjc.example").await;
    let (s, v, headers) = app.call("GET", "/api/v1/me", &app.agent(lea), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["memberships"], json!([]));
    assert_eq!(headers["cache-control"], "no-store");
}
