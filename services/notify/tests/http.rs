//! The fast tier of notify: its HTTP rules through the router with `oneshot`, and its
//! consumer stepped by hand (event by event, in a transaction), each test on a database of
//! its own (`#[sqlx::test]`). No server, no broker: what needs them is in the end-to-end
//! suite (tests/e2e/notifications.rs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use bus::Handler;
use chrono::Utc;
use contracts::events::*;
use contracts::{DeliveryMode, Envelope, EventData, EventSet, MessageKind, OrganisationId, ReferralId, Role};
use notify::messaging::{Inbound, Notifier};
use platform::auth::Scope;
use platform::testing::{Keys, call, migrate_platform};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

struct App {
    router: axum::Router,
    keys: Keys,
    pool: PgPool,
    notifier: Notifier,
}

impl App {
    async fn new(pool: PgPool) -> Self {
        migrate_platform(&pool).await;
        notify::migrate(&pool).await.unwrap();
        let keys = Keys::default();
        let config = platform::Config::from_lookup(|k| match k {
            "AIGUILLAGE_PUBLIC_URL" => Some("https://aiguillage.example".into()),
            _ => None,
        })
        .unwrap();
        let settings = Arc::new(notify::Settings::from_config(&config));
        let state = notify::NotifyState { pool: pool.clone(), auth: keys.authenticator(), settings: settings.clone() };
        Self { router: notify::router(state), keys, pool, notifier: Notifier { settings } }
    }

    async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let (s, v, _) = call(&self.router, method, path, Some(token), body.as_ref(), &[]).await;
        (s, v)
    }

    /// Hands one event to the consumer, as the bus would, in a transaction of its own.
    async fn deliver<E: EventData>(&self, aggregate: &str, sequence: i64, data: &E) {
        let env = Envelope::new(aggregate, sequence, data);
        let event = Inbound::decode(&env).unwrap();
        let mut tx = self.pool.begin().await.unwrap();
        self.notifier.handle(&mut tx, &env, event).await.unwrap();
        tx.commit().await.unwrap();
    }

    async fn structure(&self, id: &str, territory: &str, email: Option<&str>) {
        let structure: Structure = serde_json::from_value(json!({
            "id": id, "name": format!("Lieu {id}"), "services": ["aide_demarches_administratives"],
            "modes": ["individual"], "languages": ["fr"], "other_languages": false, "accessibility": [],
            "address": {"commune": "Angoulême", "commune_code": "16015"}, "location": {"lat": 45.65, "lon": 0.16},
            "territory": territory, "opening_hours": null, "weekly_capacity": 5, "accepting": true,
            "contact": {"email": email, "phone": "+33545000000"}, "updated_at": Utc::now()
        }))
        .unwrap();
        self.deliver(id, 1, &StructureUpserted { structure }).await;
    }

    async fn agent(
        &self,
        account: Uuid,
        sequence: i64,
        memberships: Vec<AccountMembership>,
        chosen: &[(MessageKind, DeliveryMode)],
    ) {
        self.agent_seen(account, sequence, memberships, chosen, Utc::now()).await;
    }

    /// An agent who last signed in at `last_signed_in_at`.
    async fn agent_seen(
        &self,
        account: Uuid,
        sequence: i64,
        memberships: Vec<AccountMembership>,
        chosen: &[(MessageKind, DeliveryMode)],
        last_signed_in_at: chrono::DateTime<Utc>,
    ) {
        let event = AccountUpserted {
            account_id: account,
            memberships,
            preferences: chosen.iter().copied().collect::<BTreeMap<_, _>>(),
            last_signed_in_at: Some(last_signed_in_at),
        };
        self.deliver(&account.to_string(), sequence, &event).await;
    }

    async fn messages_to(&self, account: Uuid) -> Vec<(String, String)> {
        sqlx::query_as("SELECT kind, status FROM notify.messages WHERE account_id = $1 ORDER BY created_at")
            .bind(account)
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }
}

fn mediator_of(structure: &str) -> AccountMembership {
    AccountMembership {
        membership_id: Uuid::now_v7(),
        role: Role::Mediator,
        organisation_id: None,
        structure_id: Some(structure.parse().unwrap()),
        territories: vec![],
    }
}

fn submitted(referral: ReferralId, organisation: OrganisationId) -> ReferralSubmitted {
    serde_json::from_value(json!({
        "referral_id": referral, "organisation_id": organisation, "submitted_at": Utc::now(),
        "commune_code": "16015", "territory": "16", "location": {"lat": 45.65, "lon": 0.16},
        "needs": ["aide_demarches_administratives"], "modes": ["in_person"], "languages": ["fr"],
        "accessibility": [], "urgency": "normal", "deadline": null, "max_distance_km": 30.0
    }))
    .unwrap()
}

fn offered(referral: ReferralId, structure: &str) -> ReferralOffered {
    serde_json::from_value(json!({
        "referral_id": referral, "structure_id": structure, "attempt": 1, "offered_at": Utc::now(),
        "expires_at": Utc::now() + chrono::Duration::hours(72), "score": 1.0, "distance_km": 1.0,
        "explanation": [], "reservation_id": Uuid::now_v7()
    }))
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn an_offer_is_told_to_the_mediators_notify_learnt_from_accounts_events_as_each_chose(pool: PgPool) {
    let app = App::new(pool).await;
    app.structure("lieu-a", "16", None).await;
    let (now, never, later) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    app.agent(now, 1, vec![mediator_of("lieu-a")], &[]).await;
    app.agent(never, 1, vec![mediator_of("lieu-a")], &[(MessageKind::OfferReceived, DeliveryMode::Never)]).await;
    app.agent(later, 1, vec![mediator_of("lieu-a")], &[(MessageKind::OfferReceived, DeliveryMode::Daily)]).await;
    let referral = ReferralId::new();
    app.deliver(&referral.to_string(), 1, &submitted(referral, OrganisationId::new())).await;
    app.deliver(&referral.to_string(), 2, &offered(referral, "lieu-a")).await;
    assert_eq!(app.messages_to(now).await, vec![("offer_received".into(), "pending".into())]);
    assert_eq!(app.messages_to(never).await, vec![], "never means never");
    assert_eq!(app.messages_to(later).await, vec![("offer_received".into(), "held".into())], "for the daily digest");
}

#[sqlx::test(migrations = false)]
async fn an_older_snapshot_of_an_account_never_undoes_a_newer_one_and_a_removed_account_is_told_nothing(pool: PgPool) {
    let app = App::new(pool).await;
    app.structure("lieu-a", "16", None).await;
    app.structure("lieu-b", "16", None).await;
    let agent = Uuid::now_v7();
    // The newer snapshot (moved to lieu-b) arrives before the older one.
    app.agent(agent, 2, vec![mediator_of("lieu-b")], &[]).await;
    app.agent(agent, 1, vec![mediator_of("lieu-a")], &[]).await;
    let mut conn = app.pool.acquire().await.unwrap();
    assert_eq!(notify::agents::mediators(&mut conn, &"lieu-a".parse().unwrap()).await.unwrap(), Vec::<Uuid>::new());
    assert_eq!(notify::agents::mediators(&mut conn, &"lieu-b".parse().unwrap()).await.unwrap(), vec![agent]);
    drop(conn);
    app.deliver(&agent.to_string(), 3, &AccountRemoved { account_id: agent, removed_at: Utc::now() }).await;
    let mut conn = app.pool.acquire().await.unwrap();
    assert_eq!(notify::agents::mediators(&mut conn, &"lieu-b".parse().unwrap()).await.unwrap(), Vec::<Uuid>::new());
    let modes = notify::agents::modes(&mut conn, &[agent], MessageKind::ReferralUpdate).await.unwrap();
    assert_eq!(modes[&agent], DeliveryMode::Never, "a purged account is told nothing");
}

#[sqlx::test(migrations = false)]
async fn a_structure_with_no_mediator_is_listed_to_its_coordinators_only(pool: PgPool) {
    let app = App::new(pool).await;
    app.structure("lieu-seul", "16", Some("contact@lieu.example")).await;
    app.structure("lieu-suivi", "16", None).await;
    app.structure("lieu-ailleurs", "17", None).await;
    app.agent(Uuid::now_v7(), 1, vec![mediator_of("lieu-suivi")], &[]).await;
    let coordinator = app.keys.token(Role::Coordinator, Scope::Territories(vec!["16".parse().unwrap()]));
    let (s, v) = app.call("GET", "/api/v1/notifications/unreached-structures", &coordinator, None).await;
    assert_eq!(s, 200, "{v}");
    let ids: Vec<&str> = v["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["lieu-seul"], "{v}");
    assert_eq!(v["items"][0]["has_contact_email"], true);
    let (s, _) = app.call("GET", "/api/v1/notifications/unreached-structures?territory=17", &coordinator, None).await;
    assert_eq!(s, 404, "another département is not the caller's");
    let (s, v) = app.call("GET", "/api/v1/notifications/unreached-structures?territory=1x7", &coordinator, None).await;
    assert_eq!(s, 422, "{v}");
    assert!(v.to_string().contains("territory"), "{v}");
    let referrer = app.keys.token(Role::Referrer, Scope::Organisation(OrganisationId::new()));
    let (s, _) = app.call("GET", "/api/v1/notifications/unreached-structures", &referrer, None).await;
    assert_eq!(s, 403);
}

#[sqlx::test(migrations = false)]
async fn webhooks_follow_the_callers_scope_and_refuse_what_they_cannot_deliver(pool: PgPool) {
    let app = App::new(pool).await;
    let mine = app.keys.token(Role::Referrer, Scope::Organisation(OrganisationId::new()));
    let theirs = app.keys.token(Role::Referrer, Scope::Organisation(OrganisationId::new()));
    let body = json!({"url": "https://hooks.example/aiguillage", "events": ["referral.closed"]});
    let (s, created) = app.call("POST", "/api/v1/webhooks", &mine, Some(body)).await;
    assert_eq!(s, 201, "{created}");
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"), "{created}");
    assert_eq!(created["scope"], "organisation");
    let id = created["id"].as_str().unwrap();
    let (s, list) = app.call("GET", "/api/v1/webhooks", &theirs, None).await;
    assert_eq!((s, list["items"].as_array().unwrap().len()), (200, 0), "another organisation sees none: {list}");
    let (s, list) = app.call("GET", "/api/v1/webhooks", &mine, None).await;
    assert_eq!(s, 200);
    assert_eq!(list["items"][0]["id"], id);
    assert!(list["items"][0].get("secret").is_none(), "the secret is shown once: {list}");
    assert_eq!(app.call("DELETE", &format!("/api/v1/webhooks/{id}"), &theirs, None).await.0, 404);
    assert_eq!(app.call("DELETE", &format!("/api/v1/webhooks/{id}"), &mine, None).await.0, 204);

    for (body, field) in [
        (json!({"url": "http://127.0.0.1:9/hook", "events": ["referral.closed"]}), "url"),
        (json!({"url": "http://10.1.2.3/hook", "events": ["referral.closed"]}), "url"),
        (json!({"url": "https://user:pw@hooks.example/", "events": ["referral.closed"]}), "url"),
        (json!({"url": "ftp://hooks.example/", "events": ["referral.closed"]}), "url"),
        (json!({"url": "https://hooks.example/", "events": ["account.upserted"]}), "events"),
        (json!({"url": "https://hooks.example/", "events": []}), "events"),
    ] {
        let (s, v) = app.call("POST", "/api/v1/webhooks", &mine, Some(body.clone())).await;
        assert_eq!(s, 422, "{body}: {v}");
        assert!(v["errors"].to_string().contains(field), "{body} names {field}: {v}");
    }
    let (s, _) = app.call("POST", "/api/v1/webhooks", &mine, Some(json!({"url": "https://h.example/", "x": 1}))).await;
    assert_eq!(s, 422, "unknown fields are refused");
    let dpo = app.keys.token(Role::Dpo, Scope::Dpo);
    assert_eq!(app.call("GET", "/api/v1/webhooks", &dpo, None).await.0, 403);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM notify.webhooks").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 1, "only the one created, deleted since");
}

#[sqlx::test(migrations = false)]
async fn refused_e_mails_are_listed_to_admins_only(pool: PgPool) {
    let app = App::new(pool).await;
    let admin = app.keys.token(Role::Admin, Scope::All);
    let (s, v) = app.call("GET", "/api/v1/notifications/failures", &admin, None).await;
    assert_eq!((s, v["items"].clone()), (200, json!([])), "{v}");
    let coordinator = app.keys.token(Role::Coordinator, Scope::Territories(vec!["16".parse().unwrap()]));
    assert_eq!(app.call("GET", "/api/v1/notifications/failures", &coordinator, None).await.0, 403);
}

/// The messages to a structure's public address: (kind, address, text).
async fn to_addresses(pool: &PgPool) -> Vec<(String, String, String)> {
    sqlx::query_as("SELECT kind, address, body_text FROM notify.messages WHERE address IS NOT NULL ORDER BY created_at")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn an_offer_to_a_place_no_active_mediator_answers_for_goes_to_its_public_address_with_a_link_to_come(
    pool: PgPool,
) {
    let app = App::new(pool).await;
    app.structure("lieu-seul", "16", Some("contact@lieu-seul.example")).await;
    app.structure("lieu-suivi", "16", Some("contact@lieu-suivi.example")).await;
    app.structure("lieu-oublie", "16", Some("contact@lieu-oublie.example")).await;
    app.structure("lieu-muet", "16", None).await;
    app.agent(Uuid::now_v7(), 1, vec![mediator_of("lieu-suivi")], &[]).await;
    // A mediator who has not signed in for 100 days does not count as active.
    let asleep = Uuid::now_v7();
    app.agent_seen(asleep, 1, vec![mediator_of("lieu-oublie")], &[], Utc::now() - chrono::Duration::days(100)).await;
    for structure in ["lieu-seul", "lieu-suivi", "lieu-oublie", "lieu-muet"] {
        let referral = ReferralId::new();
        app.deliver(&referral.to_string(), 1, &submitted(referral, OrganisationId::new())).await;
        app.deliver(&referral.to_string(), 2, &offered(referral, structure)).await;
    }
    let sent = to_addresses(&app.pool).await;
    let to: Vec<(&str, &str)> = sent.iter().map(|(k, a, _)| (k.as_str(), a.as_str())).collect();
    assert_eq!(
        to,
        [("answer_link_offer", "contact@lieu-seul.example"), ("answer_link_offer", "contact@lieu-oublie.example")],
        "an active mediator answers for lieu-suivi; lieu-muet has no address"
    );
    for (_, _, text) in &sent {
        assert!(text.contains(notify::render::ANSWER_LINK), "the link is made when the e-mail goes: {text}");
        assert!(!text.contains("/reponse/"), "no token is ever stored: {text}");
        assert!(text.contains("Créer un compte pour votre structure"), "{text}");
    }
    // The mediator who slept is still told, on their pages.
    assert_eq!(app.messages_to(asleep).await, vec![("offer_received".into(), "pending".into())]);
}

#[sqlx::test(migrations = false)]
async fn a_place_whose_address_bounced_gets_no_link_until_the_directory_gives_another(pool: PgPool) {
    let app = App::new(pool).await;
    app.structure("lieu-seul", "16", Some("ancienne@lieu.example")).await;
    let mut conn = app.pool.acquire().await.unwrap();
    notify::store::bounced(&mut conn, &"lieu-seul".parse().unwrap(), None).await.unwrap();
    drop(conn);
    let referral = ReferralId::new();
    app.deliver(&referral.to_string(), 1, &submitted(referral, OrganisationId::new())).await;
    app.deliver(&referral.to_string(), 2, &offered(referral, "lieu-seul")).await;
    assert_eq!(to_addresses(&app.pool).await.len(), 0, "an address that refused mail for good");
    let coordinator = app.keys.token(Role::Coordinator, Scope::Territories(vec!["16".parse().unwrap()]));
    let (_, v) = app.call("GET", "/api/v1/notifications/unreached-structures", &coordinator, None).await;
    assert_eq!(v["items"][0]["reachable_by_email"], false, "{v}");
    assert!(v["items"][0]["bounced_at"].is_string(), "{v}");
    assert_eq!(v["items"][0]["phone"], "+33545000000", "coordinators can call it");

    // The directory gives a new address (a later record): it takes mail again.
    let structure: Structure = serde_json::from_value(json!({
        "id": "lieu-seul", "name": "Lieu lieu-seul", "services": ["aide_demarches_administratives"],
        "modes": ["individual"], "languages": ["fr"], "other_languages": false, "accessibility": [],
        "address": {"commune": "Angoulême", "commune_code": "16015"}, "location": {"lat": 45.65, "lon": 0.16},
        "territory": "16", "opening_hours": null, "weekly_capacity": 5, "accepting": true,
        "contact": {"email": "nouvelle@lieu.example"}, "updated_at": Utc::now()
    }))
    .unwrap();
    app.deliver("lieu-seul", 2, &StructureUpserted { structure }).await;
    let next = ReferralId::new();
    app.deliver(&next.to_string(), 1, &submitted(next, OrganisationId::new())).await;
    app.deliver(&next.to_string(), 2, &offered(next, "lieu-seul")).await;
    let sent = to_addresses(&app.pool).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1, "nouvelle@lieu.example");
}

#[sqlx::test(migrations = false)]
async fn a_structure_asking_for_a_new_link_gets_one_at_its_public_address(pool: PgPool) {
    let app = App::new(pool).await;
    app.structure("lieu-seul", "16", Some("contact@lieu-seul.example")).await;
    let referral = ReferralId::new();
    app.deliver(&referral.to_string(), 1, &submitted(referral, OrganisationId::new())).await;
    let asked = ReferralAnswerLinkRequested {
        referral_id: referral,
        structure_id: "lieu-seul".parse().unwrap(),
        requested_at: Utc::now(),
    };
    app.deliver(&referral.to_string(), 5, &asked).await;
    let sent = to_addresses(&app.pool).await;
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].0.as_str(), sent[0].1.as_str()), ("answer_link_renewal", "contact@lieu-seul.example"));
}

fn referrer_of(organisation: OrganisationId) -> AccountMembership {
    AccountMembership {
        membership_id: Uuid::now_v7(),
        role: Role::Referrer,
        organisation_id: Some(organisation),
        structure_id: None,
        territories: vec![],
    }
}

fn appointment_set(referral: ReferralId, channel: contracts::NoticeChannel) -> ReferralAppointmentSet {
    ReferralAppointmentSet {
        referral_id: referral,
        structure_id: "lieu-a".parse().unwrap(),
        version: 1,
        at: Utc::now() + chrono::Duration::days(3),
        duration_minutes: 60,
        channel,
        rescheduled: false,
        set_at: Utc::now(),
    }
}

/// The subjects of the messages to an account, oldest first.
async fn subjects_to(pool: &PgPool, account: Uuid) -> Vec<String> {
    sqlx::query_scalar("SELECT subject FROM notify.messages WHERE account_id = $1 ORDER BY created_at")
        .bind(account)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn the_referrer_tells_a_person_who_chose_so_and_learns_when_a_message_to_the_person_failed(pool: PgPool) {
    let app = App::new(pool).await;
    app.structure("lieu-a", "16", None).await;
    let organisation = OrganisationId::new();
    let referrer = Uuid::now_v7();
    app.agent(referrer, 1, vec![referrer_of(organisation)], &[]).await;
    let (by_referrer, by_sms) = (ReferralId::new(), ReferralId::new());
    for referral in [by_referrer, by_sms] {
        app.deliver(&referral.to_string(), 1, &submitted(referral, organisation)).await;
    }
    app.deliver(&by_referrer.to_string(), 5, &appointment_set(by_referrer, contracts::NoticeChannel::Referrer)).await;
    app.deliver(&by_sms.to_string(), 5, &appointment_set(by_sms, contracts::NoticeChannel::Sms)).await;
    assert_eq!(subjects_to(&app.pool, referrer).await, ["Rendez-vous fixé : à prévenir"], "the person told by SMS");
    let text: String = sqlx::query_scalar("SELECT body_text FROM notify.messages WHERE account_id = $1")
        .bind(referrer)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(text.contains(&format!("/orientations/{by_referrer}/fiche")), "the slip to hand over: {text}");
    assert!(text.contains("Lieu lieu-a"), "{text}");

    let failed = ReferralPersonNoticeFailed {
        referral_id: by_sms,
        channel: contracts::NoticeChannel::Sms,
        notice: contracts::AppointmentNotice::Set,
        failed_at: Utc::now(),
    };
    app.deliver(&by_sms.to_string(), 6, &failed).await;
    let subjects = subjects_to(&app.pool, referrer).await;
    assert_eq!(subjects.last().map(String::as_str), Some("SMS non distribué : prévenez la personne"), "{subjects:?}");
    // And no webhook sees the failure (it is about the person).
    let hooks: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notify.webhook_deliveries").fetch_one(&app.pool).await.unwrap();
    assert_eq!(hooks, 0);
}
