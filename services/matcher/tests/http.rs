//! The fast tier of the matcher: its consumer stepped by hand (event by event, each in a
//! transaction, as the bus would), the waitlist worker stepped likewise, and what the
//! candidates endpoint and the preview answer, through the router with `oneshot`. Each
//! test has a database of its own (`#[sqlx::test]`); no server, no broker.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bus::Handler;
use chrono::{DateTime, Utc};
use contracts::events::*;
use contracts::{DeclineReason, Envelope, EventData, EventSet, OrganisationId, ReferralId, Role};
use matcher::messaging::{Inbound, MatcherHandler};
use matcher::routing::Matcher;
use platform::auth::Scope;
use platform::testing::{Keys, call, migrate_platform};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

const NINETY_DAYS: Duration = Duration::from_secs(90 * 86_400);

struct App {
    router: axum::Router,
    pool: PgPool,
    matcher: Arc<Matcher>,
    referrer: String,
    organisation: OrganisationId,
}

impl App {
    async fn new(pool: PgPool) -> Self {
        migrate_platform(&pool).await;
        matcher::migrate(&pool).await.unwrap();
        let keys = Keys::default();
        let config = Arc::new(platform::Config::from_lookup(|_| None).unwrap());
        assert_eq!(config.mediator_active_within, NINETY_DAYS, "the default window");
        let matcher = Arc::new(Matcher::from_config(&config));
        let state = matcher::MatcherState {
            pool: pool.clone(),
            auth: keys.authenticator(),
            config,
            matcher: Arc::clone(&matcher),
            periods: Arc::default(),
            simulation_worker: None,
        };
        let organisation = OrganisationId::new();
        let referrer = keys.token(Role::Referrer, Scope::Organisation(organisation));
        Self { router: matcher::router(state), pool, matcher, referrer, organisation }
    }

    /// Hands one event to the consumer, as the bus would, in a transaction of its own.
    async fn deliver<E: EventData>(&self, aggregate: &str, sequence: i64, data: &E) {
        let env = Envelope::new(aggregate, sequence, data);
        let event = Inbound::decode(&env).unwrap();
        let mut tx = self.pool.begin().await.unwrap();
        MatcherHandler { matcher: Arc::clone(&self.matcher) }.handle(&mut tx, &env, event).await.unwrap();
        tx.commit().await.unwrap();
    }

    /// A structure near Angoulême offering help with paperwork, as the directory announces
    /// it at `at` (its change time, and the event's sequence).
    async fn structure(&self, id: &str, lat: f64, email: Option<&str>, phone: Option<&str>, at: DateTime<Utc>) {
        let structure: Structure = serde_json::from_value(json!({
            "id": id, "name": format!("Lieu {id}"), "services": ["aide_demarches_administratives"],
            "modes": ["individual"], "languages": ["fr"], "other_languages": false, "accessibility": [],
            "address": {"commune": "Angoulême", "commune_code": "16015"}, "location": {"lat": lat, "lon": 0.16},
            "territory": "16", "opening_hours": null, "weekly_capacity": 5, "accepting": true,
            "contact": {"email": email, "phone": phone}, "updated_at": at
        }))
        .unwrap();
        self.deliver(id, at.timestamp_micros(), &StructureUpserted { structure }).await;
    }

    /// An account as accounts announces it: mediator of `structures`, last signed in `at`.
    async fn account(&self, account: Uuid, sequence: i64, structures: &[&str], at: Option<DateTime<Utc>>) {
        let memberships = structures
            .iter()
            .map(|s| AccountMembership {
                membership_id: Uuid::now_v7(),
                role: Role::Mediator,
                organisation_id: None,
                structure_id: Some(s.parse().unwrap()),
                territories: vec![],
            })
            .collect();
        let event = AccountUpserted {
            account_id: account,
            memberships,
            preferences: Default::default(),
            last_signed_in_at: at,
        };
        self.deliver(&account.to_string(), sequence, &event).await;
    }

    /// Submits a referral from Angoulême for help with paperwork; the matcher routes it.
    async fn submit(&self) -> ReferralId {
        let referral = ReferralId::new();
        let event: ReferralSubmitted = serde_json::from_value(json!({
            "referral_id": referral, "organisation_id": self.organisation, "submitted_at": Utc::now(),
            "commune_code": "16015", "territory": "16", "location": {"lat": 45.65, "lon": 0.16},
            "needs": ["aide_demarches_administratives"], "modes": ["in_person"], "languages": ["fr"],
            "accessibility": [], "urgency": "normal", "deadline": null, "max_distance_km": 30.0
        }))
        .unwrap();
        self.deliver(&referral.to_string(), 1, &event).await;
        referral
    }

    /// Where the referral stands in matching: its state and the structure offered it.
    async fn routed(&self, referral: ReferralId) -> (String, Option<String>) {
        sqlx::query_as("SELECT state, current_structure FROM matcher.profiles WHERE referral_id = $1")
            .bind(referral.as_uuid())
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    async fn reservation(&self, referral: ReferralId) -> Uuid {
        sqlx::query_scalar("SELECT current_reservation FROM matcher.profiles WHERE referral_id = $1")
            .bind(referral.as_uuid())
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Answers every pending re-match request, as the waitlist worker does.
    async fn drain_waitlist(&self) {
        while matcher::worker::step(&self.pool, &self.matcher).await.unwrap() {}
    }

    async fn preview(&self) -> Value {
        let body = json!({"commune_code": "16015", "needs": ["aide_demarches_administratives"]});
        let (s, v, _) =
            call(&self.router, "POST", "/api/v1/match/preview", Some(&self.referrer), Some(&body), &[]).await;
        assert_eq!(s, 200, "{v}");
        v
    }

    async fn candidates(&self, referral: ReferralId) -> Value {
        let path = format!("/api/v1/referrals/{referral}/candidates");
        let (s, v, _) = call(&self.router, "GET", &path, Some(&self.referrer), None, &[]).await;
        assert_eq!(s, 200, "{v}");
        v
    }
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array().unwrap().iter().map(|c| c["structure_id"].as_str().unwrap()).collect()
}

fn excluded<'a>(assessment: &'a Value, id: &str) -> Option<&'a Value> {
    assessment["excluded"].as_array().unwrap().iter().find(|e| e["structure_id"] == id)
}

fn codes(e: &Value) -> Vec<&str> {
    e["reasons"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect()
}

fn ago(days: i64) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::days(days)
}

#[sqlx::test(migrations = false)]
async fn a_place_nobody_can_answer_is_listed_unreachable_with_its_phone_and_never_offered(pool: PgPool) {
    let app = App::new(pool).await;
    let now = Utc::now();
    app.structure("silent", 45.651, None, Some("05 45 00 00 01"), now).await;
    app.structure("mail", 45.700, Some("accueil@mail.example"), Some("05 45 00 00 02"), now).await;

    let preview = app.preview().await;
    assert_eq!(ids(&preview["candidates"]), ["mail"], "{preview}");
    let silent = excluded(&preview, "silent").expect("the nearer place is listed");
    assert_eq!(codes(silent), ["unreachable"], "{silent}");
    assert_eq!(silent["reasons"][0]["message"], "no active mediator and no public e-mail address that takes mail");
    assert_eq!(silent["phone"], "05 45 00 00 01", "it can still be called");

    let referral = app.submit().await;
    assert_eq!(app.routed(referral).await, ("proposed".into(), Some("mail".into())), "the farther place, by e-mail");
    let candidates = app.candidates(referral).await;
    assert_eq!(ids(&candidates["candidates"]), ["mail"]);
    assert_eq!(excluded(&candidates, "silent").unwrap()["phone"], "05 45 00 00 01");

    // Nobody anywhere: the referral waits, and the place is still listed with its phone.
    app.structure("mail", 45.700, None, None, now + chrono::Duration::seconds(1)).await;
    let second = app.submit().await;
    assert_eq!(app.routed(second).await, ("waitlisted".into(), None));
    let candidates = app.candidates(second).await;
    assert_eq!(ids(&candidates["candidates"]), Vec::<&str>::new());
    let mail = excluded(&candidates, "mail").unwrap();
    assert_eq!(codes(mail), ["unreachable"]);
    assert!(mail.get("phone").is_none(), "no phone in the directory, no field: {mail}");
}

#[sqlx::test(migrations = false)]
async fn a_mediator_who_signs_in_makes_the_place_reachable_and_moves_the_waitlist(pool: PgPool) {
    let app = App::new(pool).await;
    app.structure("silent", 45.651, None, Some("05 45 00 00 01"), Utc::now()).await;
    let referral = app.submit().await;
    assert_eq!(app.routed(referral).await.0, "waitlisted");

    // A mediator who last signed in 91 days ago does not count.
    let karim = Uuid::now_v7();
    app.account(karim, 1, &["silent"], Some(ago(91))).await;
    app.drain_waitlist().await;
    assert_eq!(app.routed(referral).await.0, "waitlisted");
    assert_eq!(codes(excluded(&app.preview().await, "silent").unwrap()), ["unreachable"]);

    // Signing in makes the place reachable: the waiting referral goes there, as when
    // capacity appears.
    app.account(karim, 2, &["silent"], Some(Utc::now() - chrono::Duration::minutes(1))).await;
    app.drain_waitlist().await;
    assert_eq!(app.routed(referral).await, ("proposed".into(), Some("silent".into())));
    let preview = app.preview().await;
    assert_eq!(ids(&preview["candidates"]), ["silent"], "{preview}");

    // An older announcement (redelivered late) changes nothing.
    app.account(karim, 1, &[], Some(ago(200))).await;
    assert_eq!(ids(&app.preview().await["candidates"]), ["silent"]);

    // Time passes: the same sign-in, under a window shorter than its age, no longer
    // counts once the periodic refresh runs (as it does every hour).
    let later = Matcher::new(3).with_active_within(Duration::from_secs(1));
    matcher::worker::refresh_reachability(&app.pool, &later).await.unwrap();
    assert_eq!(codes(excluded(&app.preview().await, "silent").unwrap()), ["unreachable"]);
    matcher::worker::refresh_reachability(&app.pool, &app.matcher).await.unwrap();
    assert_eq!(ids(&app.preview().await["candidates"]), ["silent"], "90 days again");

    // A mediator who leaves, or an account purged: nobody again.
    app.account(karim, 3, &[], Some(Utc::now())).await;
    assert_eq!(codes(excluded(&app.preview().await, "silent").unwrap()), ["unreachable"]);
    app.account(karim, 4, &["silent"], Some(Utc::now())).await;
    assert_eq!(ids(&app.preview().await["candidates"]), ["silent"]);
    let removed = AccountRemoved { account_id: karim, removed_at: Utc::now() };
    app.deliver(&karim.to_string(), 5, &removed).await;
    assert_eq!(codes(excluded(&app.preview().await, "silent").unwrap()), ["unreachable"]);
    app.account(karim, 4, &["silent"], Some(Utc::now())).await;
    assert_eq!(codes(excluded(&app.preview().await, "silent").unwrap()), ["unreachable"], "older than the removal");
}

#[sqlx::test(migrations = false)]
async fn a_bounced_address_makes_the_place_unreachable_until_it_changes_or_a_mediator_signs_in(pool: PgPool) {
    let app = App::new(pool).await;
    let t0 = Utc::now() - chrono::Duration::minutes(10);
    app.structure("mail", 45.651, Some("accueil@mail.example"), Some("05 45 00 00 02"), t0).await;
    let first = app.submit().await;
    assert_eq!(app.routed(first).await, ("proposed".into(), Some("mail".into())));

    // Notify withdrew the offer: the address refused its e-mail for good.
    let withdrawn = ReferralDeclined {
        referral_id: first,
        structure_id: "mail".parse().unwrap(),
        reason: DeclineReason::StructureUnreachable,
        attempt: 1,
        reservation_id: app.reservation(first).await,
        declined_at: Utc::now(),
        via: None,
    };
    app.deliver(&first.to_string(), 2, &withdrawn).await;
    assert_eq!(app.routed(first).await.0, "waitlisted", "re-matched at once: nowhere else to go");
    let preview = app.preview().await;
    let mail = excluded(&preview, "mail").unwrap();
    assert_eq!(codes(mail), ["unreachable"], "{mail}");
    assert_eq!(mail["phone"], "05 45 00 00 02");
    let second = app.submit().await;
    assert_eq!(app.routed(second).await.0, "waitlisted");

    // The directory announces the same address again (another field changed): still bounced.
    app.structure(
        "mail",
        45.651,
        Some(" Accueil@mail.example "),
        Some("05 45 00 00 02"),
        t0 + chrono::Duration::minutes(1),
    )
    .await;
    app.drain_waitlist().await;
    assert_eq!(app.routed(second).await.0, "waitlisted");

    // A new address: reachable again, and the waiting referral is offered there (the
    // first one already tried it).
    let t2 = Utc::now();
    app.structure("mail", 45.651, Some("contact@mail.example"), Some("05 45 00 00 02"), t2).await;
    app.drain_waitlist().await;
    assert_eq!(app.routed(second).await, ("proposed".into(), Some("mail".into())));
    assert_eq!(app.routed(first).await.0, "waitlisted");

    // A bounce reported for before the new address was given is about the old one.
    let late = ReferralDeclined {
        referral_id: second,
        reservation_id: app.reservation(second).await,
        declined_at: t2 - chrono::Duration::seconds(30),
        ..withdrawn.clone()
    };
    app.deliver(&second.to_string(), 2, &late).await;
    assert_eq!(ids(&app.preview().await["candidates"]), ["mail"]);

    // It bounces too; then a mediator signs in: their account answers, and the bounce is
    // forgotten, so the address counts again once they lapse.
    let third = app.submit().await;
    let bounced = ReferralDeclined {
        referral_id: third,
        reservation_id: app.reservation(third).await,
        declined_at: Utc::now(),
        ..withdrawn
    };
    app.deliver(&third.to_string(), 2, &bounced).await;
    assert_eq!(codes(excluded(&app.preview().await, "mail").unwrap()), ["unreachable"]);
    app.account(Uuid::now_v7(), 1, &["mail"], Some(Utc::now() - chrono::Duration::minutes(1))).await;
    assert_eq!(ids(&app.preview().await["candidates"]), ["mail"]);
    let since: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT unreachable_since FROM matcher.structures WHERE id = 'mail'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(since, None);
    let later = Matcher::new(3).with_active_within(Duration::from_secs(1));
    matcher::worker::refresh_reachability(&app.pool, &later).await.unwrap();
    assert_eq!(ids(&app.preview().await["candidates"]), ["mail"], "by e-mail again");
}

#[sqlx::test(migrations = false)]
async fn a_place_the_directory_has_not_announced_since_the_rule_began_is_offered_as_before(pool: PgPool) {
    let app = App::new(pool).await;
    app.structure("legacy", 45.651, None, None, Utc::now()).await;
    // As a row from before the migration reads: contact unknown, reachable.
    sqlx::query("UPDATE matcher.structures SET contact_known = false").execute(&app.pool).await.unwrap();
    matcher::worker::refresh_reachability(&app.pool, &app.matcher).await.unwrap();
    assert_eq!(ids(&app.preview().await["candidates"]), ["legacy"]);
    let referral = app.submit().await;
    assert_eq!(app.routed(referral).await, ("proposed".into(), Some("legacy".into())));
}
