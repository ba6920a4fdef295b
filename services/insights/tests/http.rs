//! The fast tier: the insights API's access rules and parameter checks, through the
//! router with `oneshot`, and its projection fed events by hand, each test on a database
//! of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use contracts::Role;
use platform::auth::Scope;
use platform::testing::{Keys, call, migrate_platform};
use sqlx::PgPool;

/// The insights router on a migrated database, and the keys its tokens are signed with.
async fn app(pool: &PgPool) -> (axum::Router, Keys) {
    migrate_platform(pool).await;
    insights::migrate(pool).await.unwrap();
    let keys = Keys::default();
    let config = Arc::new(platform::Config::from_lookup(|_| None).unwrap());
    let state = insights::InsightsState { pool: pool.clone(), auth: keys.authenticator(), config };
    (insights::router(state), keys)
}

#[sqlx::test(migrations = false)]
async fn only_coordinators_of_the_territory_and_admins_read_it(pool: PgPool) {
    let (router, keys) = app(&pool).await;
    let coordinator = keys.token(Role::Coordinator, Scope::Territories(vec!["16".parse().unwrap()]));
    let admin = keys.token(Role::Admin, Scope::All);
    let referrer = keys.token(Role::Referrer, Scope::Organisation(contracts::OrganisationId::new()));
    let mediator = keys.token(Role::Mediator, Scope::Structure("lieu".parse().unwrap()));
    for path in ["/api/v1/insights/queues?territory=16", "/api/v1/insights/funnel?territory=16"] {
        assert_eq!(call(&router, "GET", path, Some(&coordinator), None, &[]).await.0, 200, "{path}");
        assert_eq!(call(&router, "GET", path, Some(&admin), None, &[]).await.0, 200, "{path}");
        assert_eq!(call(&router, "GET", path, Some(&referrer), None, &[]).await.0, 403, "{path}");
        assert_eq!(call(&router, "GET", path, Some(&mediator), None, &[]).await.0, 403, "{path}");
        let elsewhere = path.replace("=16", "=17");
        assert_eq!(call(&router, "GET", &elsewhere, Some(&coordinator), None, &[]).await.0, 404, "{elsewhere}");
    }
    let (s, problem, _) =
        call(&router, "GET", "/api/v1/insights/funnel?territory=16&from=hier", Some(&coordinator), None, &[]).await;
    assert_eq!(s, 422, "{problem}");
    assert!(problem.to_string().contains("from"), "{problem}");
    let (s, _, headers) =
        call(&router, "GET", "/api/v1/insights/export.csv?territory=16", Some(&coordinator), None, &[]).await;
    assert_eq!(s, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/csv"));
}

/// Hands one event to the projection, as the bus would, in a transaction of its own.
async fn deliver<E: contracts::EventData>(pool: &PgPool, aggregate: &str, sequence: i64, data: &E) {
    use bus::Handler;
    use contracts::EventSet;
    let env = contracts::Envelope::new(aggregate, sequence, data);
    let event = insights::projection::Inbound::decode(&env).unwrap();
    let mut tx = pool.begin().await.unwrap();
    insights::projection::Projector.handle(&mut tx, &env, event).await.unwrap();
    tx.commit().await.unwrap();
}

#[sqlx::test(migrations = false)]
async fn the_funnel_says_how_offers_were_answered_and_how_many_were_withdrawn_as_unreachable(pool: PgPool) {
    use chrono::Utc;
    use contracts::events::{ReferralAccepted, ReferralDeclined, ReferralOffered, ReferralSubmitted};
    use contracts::{AnsweredVia, DeclineReason, ReferralId};
    use serde_json::json;
    let (router, keys) = app(&pool).await;
    let coordinator = keys.token(Role::Coordinator, Scope::Territories(vec!["16".parse().unwrap()]));

    let organisation = contracts::OrganisationId::new();
    // Four referrals: accepted by a signed-in mediator, through an answer link, by an
    // acceptance of an earlier version (no `via`), and one withdrawn twice as
    // unreachable before a structure declined it for lack of room.
    let vias = [Some(AnsweredVia::Account), Some(AnsweredVia::AnswerLink), None];
    let mut referrals = Vec::new();
    for _ in 0..4 {
        let referral = ReferralId::new();
        let submitted: ReferralSubmitted = serde_json::from_value(json!({
            "referral_id": referral, "organisation_id": organisation, "submitted_at": Utc::now(),
            "commune_code": "16015", "territory": "16", "location": {"lat": 45.65, "lon": 0.16},
            "needs": ["aide_demarches_administratives"], "modes": ["in_person"], "languages": ["fr"],
            "accessibility": [], "urgency": "normal", "deadline": null, "max_distance_km": 30.0
        }))
        .unwrap();
        deliver(&pool, &referral.to_string(), 1, &submitted).await;
        referrals.push(referral);
    }
    let offer = |referral: ReferralId, structure: &str| -> ReferralOffered {
        serde_json::from_value(json!({
            "referral_id": referral, "structure_id": structure, "attempt": 1, "offered_at": Utc::now(),
            "expires_at": Utc::now() + chrono::Duration::hours(72), "score": 1.0, "distance_km": 1.0,
            "explanation": [], "reservation_id": uuid::Uuid::now_v7()
        }))
        .unwrap()
    };
    for (referral, via) in referrals.iter().zip(vias) {
        let offered = offer(*referral, "lieu");
        deliver(&pool, &referral.to_string(), 2, &offered).await;
        let accepted = ReferralAccepted {
            referral_id: *referral,
            structure_id: offered.structure_id.clone(),
            reservation_id: offered.reservation_id,
            accepted_at: Utc::now(),
            via,
        };
        deliver(&pool, &referral.to_string(), 3, &accepted).await;
    }
    let withdrawn = referrals[3];
    let mut sequence = 2;
    for (structure, reason) in [
        ("muet", DeclineReason::StructureUnreachable),
        ("muet-bis", DeclineReason::StructureUnreachable),
        ("plein", DeclineReason::NoCapacity),
    ] {
        let offered = offer(withdrawn, structure);
        deliver(&pool, &withdrawn.to_string(), sequence, &offered).await;
        let declined = ReferralDeclined {
            referral_id: withdrawn,
            structure_id: offered.structure_id,
            reason,
            attempt: 1,
            reservation_id: offered.reservation_id,
            declined_at: Utc::now(),
            via: (reason != DeclineReason::StructureUnreachable).then_some(AnsweredVia::Account),
        };
        deliver(&pool, &withdrawn.to_string(), sequence + 1, &declined).await;
        sequence += 2;
    }

    let (s, funnel, _) =
        call(&router, "GET", "/api/v1/insights/funnel?territory=16", Some(&coordinator), None, &[]).await;
    assert_eq!(s, 200, "{funnel}");
    assert_eq!(funnel["accepted"], 3, "{funnel}");
    assert_eq!(funnel["answered_via"], json!({"account": 1, "answer_link": 1}), "{funnel}");
    assert_eq!(funnel["withdrawn_unreachable"], 2, "{funnel}");
    assert_eq!(funnel["declines"], json!({"structure_unreachable": 2, "no_capacity": 1}), "{funnel}");
    assert_eq!(funnel["offered"], 4, "the existing fields stay");
    // The web app reads it back through contracts' type.
    let view: contracts::insights::FunnelView = serde_json::from_value(funnel).unwrap();
    assert_eq!(view.funnel.answered_via.answer_link, 1);

    // Another territory's coordinator counts none of it.
    let (s, other, _) = call(
        &router,
        "GET",
        "/api/v1/insights/funnel?territory=17",
        Some(&keys.token(Role::Coordinator, Scope::Territories(vec!["17".parse().unwrap()]))),
        None,
        &[],
    )
    .await;
    assert_eq!(s, 200, "{other}");
    assert_eq!(other["answered_via"], json!({"account": 0, "answer_link": 0}));
    assert_eq!(other["withdrawn_unreachable"], 0);
}
