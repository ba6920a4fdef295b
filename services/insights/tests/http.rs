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

/// Events to build one referral's appointments with.
mod appointment {
    use chrono::{DateTime, Utc};
    use contracts::events::{ReferralAppointmentCancelled, ReferralAppointmentSet, ReferralAttendanceRecorded};
    use contracts::{NoticeChannel, ReferralId};

    pub fn set(referral: ReferralId, place: &str, version: u32, at: DateTime<Utc>) -> ReferralAppointmentSet {
        ReferralAppointmentSet {
            referral_id: referral,
            structure_id: place.parse().unwrap(),
            version,
            at,
            duration_minutes: 45,
            channel: NoticeChannel::Sms,
            rescheduled: version > 1,
            set_at: Utc::now(),
        }
    }

    pub fn cancel(referral: ReferralId, place: &str, version: u32) -> ReferralAppointmentCancelled {
        ReferralAppointmentCancelled {
            referral_id: referral,
            structure_id: place.parse().unwrap(),
            version,
            channel: NoticeChannel::Sms,
            cancelled_at: Utc::now(),
        }
    }

    pub fn attendance(
        referral: ReferralId,
        place: &str,
        version: u32,
        at: DateTime<Utc>,
        attended: bool,
    ) -> ReferralAttendanceRecorded {
        ReferralAttendanceRecorded {
            referral_id: referral,
            structure_id: place.parse().unwrap(),
            version,
            appointment_at: at,
            attended,
            recorded_at: at + chrono::Duration::hours(2),
        }
    }
}

/// One of the projection's events, to deliver in any order.
enum Fed {
    Submitted(contracts::events::ReferralSubmitted),
    Set(contracts::events::ReferralAppointmentSet),
    Cancelled(contracts::events::ReferralAppointmentCancelled),
    Attendance(contracts::events::ReferralAttendanceRecorded),
}

async fn feed(pool: &PgPool, referral: contracts::ReferralId, sequence: i64, event: &Fed) {
    let aggregate = referral.to_string();
    match event {
        Fed::Submitted(e) => deliver(pool, &aggregate, sequence, e).await,
        Fed::Set(e) => deliver(pool, &aggregate, sequence, e).await,
        Fed::Cancelled(e) => deliver(pool, &aggregate, sequence, e).await,
        Fed::Attendance(e) => deliver(pool, &aggregate, sequence, e).await,
    }
}

fn submitted(
    referral: contracts::ReferralId,
    territory: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> contracts::events::ReferralSubmitted {
    serde_json::from_value(serde_json::json!({
        "referral_id": referral, "organisation_id": contracts::OrganisationId::new(), "submitted_at": at,
        "commune_code": if territory == "16" { "16015" } else { "17300" }, "territory": territory,
        "location": {"lat": 45.65, "lon": 0.16},
        "needs": ["aide_demarches_administratives"], "modes": ["in_person"], "languages": ["fr"],
        "accessibility": [], "urgency": "normal", "deadline": null, "max_distance_km": 30.0
    }))
    .unwrap()
}

async fn place(pool: &PgPool, id: &str, name: &str) {
    let structure: contracts::events::Structure = serde_json::from_value(serde_json::json!({
        "id": id, "name": name, "services": ["aide_demarches_administratives"],
        "modes": ["individual"], "languages": ["fr"], "other_languages": false, "accessibility": [],
        "address": {"commune": "Angoulême", "commune_code": "16015"}, "location": {"lat": 45.65, "lon": 0.16},
        "territory": "16", "opening_hours": null, "weekly_capacity": 5, "accepting": true,
        "contact": {"phone": "+33545000000"}, "updated_at": chrono::Utc::now()
    }))
    .unwrap();
    deliver(pool, id, 1, &contracts::events::StructureUpserted { structure }).await;
}

/// Each referral's events, in the order they happened (sequence 1, 2, …).
fn scene(
    territory16: &[contracts::ReferralId; 4],
    elsewhere: contracts::ReferralId,
    base: chrono::DateTime<chrono::Utc>,
) -> Vec<(contracts::ReferralId, Vec<Fed>)> {
    use appointment::{attendance, cancel, set};
    let day = chrono::Duration::days(1);
    let [moved, cancelled, missed, set_again] = *territory16;
    vec![
        // Set, moved, and the person came to the new time: counted once, as attended.
        (
            moved,
            vec![
                Fed::Submitted(submitted(moved, "16", base)),
                Fed::Set(set(moved, "lieu-a", 1, base + day * 2)),
                Fed::Set(set(moved, "lieu-a", 2, base + day * 3)),
                Fed::Attendance(attendance(moved, "lieu-a", 2, base + day * 3, true)),
            ],
        ),
        // Set, then cancelled: not an appointment.
        (
            cancelled,
            vec![
                Fed::Submitted(submitted(cancelled, "16", base)),
                Fed::Set(set(cancelled, "lieu-a", 1, base + day * 2)),
                Fed::Cancelled(cancel(cancelled, "lieu-a", 2)),
            ],
        ),
        // The person did not come; a new appointment was set, not yet held.
        (
            missed,
            vec![
                Fed::Submitted(submitted(missed, "16", base)),
                Fed::Set(set(missed, "lieu-a", 1, base + day)),
                Fed::Attendance(attendance(missed, "lieu-a", 1, base + day, false)),
                Fed::Set(set(missed, "lieu-a", 2, base + day * 6)),
            ],
        ),
        // Set, cancelled, set again elsewhere in time: an appointment, nothing recorded.
        (
            set_again,
            vec![
                Fed::Submitted(submitted(set_again, "16", base)),
                Fed::Set(set(set_again, "lieu-b", 1, base + day * 2)),
                Fed::Cancelled(cancel(set_again, "lieu-b", 2)),
                Fed::Set(set(set_again, "lieu-b", 3, base + day * 5)),
            ],
        ),
        // Another territory's, which the coordinator of 16 does not count.
        (
            elsewhere,
            vec![
                Fed::Submitted(submitted(elsewhere, "17", base)),
                Fed::Set(set(elsewhere, "lieu-c", 1, base + day)),
                Fed::Attendance(attendance(elsewhere, "lieu-c", 1, base + day, false)),
            ],
        ),
    ]
}

#[sqlx::test(migrations = false)]
async fn the_funnel_counts_appointments_attendance_and_no_shows_whatever_the_order_and_replays(pool: PgPool) {
    use contracts::ReferralId;
    use serde_json::json;
    let (router, keys) = app(&pool).await;
    let coordinator = keys.token(Role::Coordinator, Scope::Territories(vec!["16".parse().unwrap()]));
    place(&pool, "lieu-a", "Médiathèque Alpha").await;
    place(&pool, "lieu-b", "Centre social Bêta").await;

    let base = chrono::Utc::now() - chrono::Duration::days(20);
    let referrals = [ReferralId::new(), ReferralId::new(), ReferralId::new(), ReferralId::new()];
    let elsewhere = ReferralId::new();
    for (i, (referral, events)) in scene(&referrals, elsewhere, base).into_iter().enumerate() {
        let numbered: Vec<(i64, Fed)> = events.into_iter().enumerate().map(|(n, e)| (n as i64 + 1, e)).collect();
        // Every other referral's events arrive backwards (the appointment's before its
        // submission); each appointment event arrives twice.
        let order: Vec<&(i64, Fed)> =
            if i % 2 == 0 { numbered.iter().collect() } else { numbered.iter().rev().collect() };
        for (sequence, event) in order {
            feed(&pool, referral, *sequence, event).await;
            if !matches!(event, Fed::Submitted(_)) {
                feed(&pool, referral, *sequence, event).await;
            }
        }
    }

    let (s, funnel, _) =
        call(&router, "GET", "/api/v1/insights/funnel?territory=16", Some(&coordinator), None, &[]).await;
    assert_eq!(s, 200, "{funnel}");
    assert_eq!(funnel["submitted"], 4, "{funnel}");
    // Moved once, missed then set again, cancelled then set again; the cancelled one is not.
    assert_eq!(funnel["appointments"], 3, "{funnel}");
    assert_eq!(funnel["attended"], 1, "{funnel}");
    assert_eq!(funnel["attendance_recorded"], 2, "{funnel}");
    assert_eq!(funnel["no_shows"], 1, "{funnel}");
    assert_eq!(funnel["no_show_rate"], 0.5, "{funnel}");
    // An appointment, even cancelled, put the follow-up under way.
    assert_eq!(funnel["in_progress"], 4, "{funnel}");
    // From submission to the first appointment kept or held: 3 days (moved), 1 day (missed,
    // then another), 5 days (set again): p50 3 days, p90 between 3 and 5 as Postgres
    // interpolates.
    let day = 86_400;
    assert_eq!(funnel["time_to_appointment_seconds"]["p50"], 3 * day, "{funnel}");
    assert_eq!(funnel["time_to_appointment_seconds"]["p90"], 3 * day + 8 * (2 * day) / 10, "{funnel}");
    assert_eq!(
        funnel["attendance_by_territory"],
        json!([{"territory": "16", "appointments": 3, "attended": 1, "attendance_recorded": 2, "no_shows": 1,
                "no_show_rate": 0.5}]),
        "{funnel}"
    );
    assert_eq!(
        funnel["attendance_by_structure"],
        json!([
            {"structure_id": "lieu-b", "name": "Centre social Bêta", "territory": "16", "appointments": 1,
             "attended": 0, "attendance_recorded": 0, "no_shows": 0, "no_show_rate": null},
            {"structure_id": "lieu-a", "name": "Médiathèque Alpha", "territory": "16", "appointments": 2,
             "attended": 1, "attendance_recorded": 2, "no_shows": 1, "no_show_rate": 0.5},
        ]),
        "{funnel}"
    );
    // The existing fields stay, and the web app reads the answer back.
    assert_eq!(funnel["offers_per_referral"], 0.0, "{funnel}");
    let view: contracts::insights::FunnelView = serde_json::from_value(funnel).unwrap();
    assert_eq!(view.funnel.no_show_rate, Some(0.5));

    // Admin sees both territories; 17's no-show is in its own line.
    let (s, all, _) =
        call(&router, "GET", "/api/v1/insights/funnel", Some(&keys.token(Role::Admin, Scope::All)), None, &[]).await;
    assert_eq!(s, 200, "{all}");
    assert_eq!((all["appointments"].as_i64(), all["no_shows"].as_i64()), (Some(4), Some(2)), "{all}");
    assert_eq!(all["attendance_by_territory"][1]["territory"], "17", "{all}");
    assert_eq!(all["attendance_by_territory"][1]["no_show_rate"], 1.0, "{all}");

    // A correction of an attendance (a higher version) replaces it, and replaying the
    // first record afterwards does not undo it.
    let [moved, ..] = referrals;
    let corrected = appointment::attendance(moved, "lieu-a", 3, base + chrono::Duration::days(3), false);
    deliver(&pool, &moved.to_string(), 5, &corrected).await;
    let first = appointment::attendance(moved, "lieu-a", 2, base + chrono::Duration::days(3), true);
    deliver(&pool, &moved.to_string(), 4, &first).await;
    let (_, funnel, _) =
        call(&router, "GET", "/api/v1/insights/funnel?territory=16", Some(&coordinator), None, &[]).await;
    assert_eq!((funnel["attended"].as_i64(), funnel["no_shows"].as_i64()), (Some(0), Some(2)), "{funnel}");
    assert_eq!(funnel["attendance_recorded"], 2, "one record per appointment: {funnel}");
    assert_eq!(funnel["no_show_rate"], 1.0, "{funnel}");
}

#[sqlx::test(migrations = false)]
async fn without_attendance_recorded_the_no_show_rate_is_null_not_zero(pool: PgPool) {
    use contracts::ReferralId;
    let (router, keys) = app(&pool).await;
    let coordinator = keys.token(Role::Coordinator, Scope::Territories(vec!["16".parse().unwrap()]));
    let (s, empty, _) =
        call(&router, "GET", "/api/v1/insights/funnel?territory=16", Some(&coordinator), None, &[]).await;
    assert_eq!(s, 200, "{empty}");
    assert_eq!((empty["appointments"].as_i64(), empty["attended"].as_i64()), (Some(0), Some(0)), "{empty}");
    assert!(empty["no_show_rate"].is_null(), "{empty}");
    assert!(empty["time_to_appointment_seconds"]["p50"].is_null(), "{empty}");
    assert_eq!(empty["attendance_by_structure"], serde_json::json!([]), "{empty}");

    let referral = ReferralId::new();
    let now = chrono::Utc::now();
    deliver(&pool, &referral.to_string(), 1, &submitted(referral, "16", now)).await;
    deliver(&pool, &referral.to_string(), 2, &appointment::set(referral, "lieu-a", 1, now + chrono::Duration::days(2)))
        .await;
    let (_, funnel, _) =
        call(&router, "GET", "/api/v1/insights/funnel?territory=16", Some(&coordinator), None, &[]).await;
    assert_eq!(funnel["appointments"], 1, "{funnel}");
    assert_eq!(funnel["attendance_recorded"], 0, "{funnel}");
    assert!(funnel["no_show_rate"].is_null(), "{funnel}");
    assert!(funnel["attendance_by_structure"][0]["no_show_rate"].is_null(), "{funnel}");
    assert_eq!(funnel["time_to_appointment_seconds"]["p50"], 2 * 86_400, "{funnel}");
}

#[sqlx::test(migrations = false)]
async fn the_monthly_report_and_the_export_count_the_month_s_appointments_and_no_shows(pool: PgPool) {
    use chrono::TimeZone;
    use contracts::ReferralId;
    let (router, keys) = app(&pool).await;
    let coordinator = keys.token(Role::Coordinator, Scope::Territories(vec!["16".parse().unwrap()]));
    place(&pool, "lieu-a", "Médiathèque Alpha").await;
    // Appointments in November 2026 (Paris), one in December.
    let nov = |d: u32, h: u32| chrono::Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap();
    let submitted_at = nov(2, 9);
    let [came, missed, moved, cancelled, december] =
        [ReferralId::new(), ReferralId::new(), ReferralId::new(), ReferralId::new(), ReferralId::new()];
    for r in [came, missed, moved, cancelled, december] {
        deliver(&pool, &r.to_string(), 1, &submitted(r, "16", submitted_at)).await;
    }
    let a = |r: ReferralId, seq: i64| (r.to_string(), seq);
    let (id, s) = a(came, 2);
    deliver(&pool, &id, s, &appointment::set(came, "lieu-a", 1, nov(10, 9))).await;
    deliver(&pool, &id, s + 1, &appointment::attendance(came, "lieu-a", 1, nov(10, 9), true)).await;
    let (id, s) = a(missed, 2);
    // The attendance arrives before the appointment it is about.
    deliver(&pool, &id, s + 1, &appointment::attendance(missed, "lieu-a", 1, nov(12, 14), false)).await;
    deliver(&pool, &id, s, &appointment::set(missed, "lieu-a", 1, nov(12, 14))).await;
    let (id, s) = a(moved, 2);
    deliver(&pool, &id, s, &appointment::set(moved, "lieu-a", 1, nov(20, 9))).await;
    deliver(&pool, &id, s + 1, &appointment::set(moved, "lieu-a", 2, nov(27, 9))).await;
    let (id, s) = a(cancelled, 2);
    deliver(&pool, &id, s + 1, &appointment::cancel(cancelled, "lieu-a", 2)).await;
    deliver(&pool, &id, s, &appointment::set(cancelled, "lieu-a", 1, nov(25, 9))).await;
    let (id, s) = a(december, 2);
    // 30 November 23:00 UTC is 1 December, midnight, in Paris.
    deliver(&pool, &id, s, &appointment::set(december, "lieu-a", 1, nov(30, 23))).await;

    let (s, report, _) =
        call(&router, "GET", "/api/v1/insights/structures/lieu-a/report?month=2026-11", Some(&coordinator), None, &[])
            .await;
    assert_eq!(s, 200, "{report}");
    let r = &report["report"];
    // Came, missed, moved (once): the cancelled one is not, and 1 December 00:00 in Paris
    // is December's.
    assert_eq!(r["appointments"], 3, "{report}");
    assert_eq!(r["attendance_recorded"], 2, "{report}");
    assert_eq!(r["attended"], 1, "{report}");
    assert_eq!(r["no_shows"], 1, "{report}");
    assert_eq!(r["no_show_rate"], 0.5, "{report}");
    assert_eq!(r["received"], 0, "the existing fields stay: {report}");

    let (s, csv, _) = call(
        &router,
        "GET",
        "/api/v1/insights/structures/lieu-a/report?month=2026-11&format=csv",
        Some(&coordinator),
        None,
        &[],
    )
    .await;
    assert_eq!(s, 200);
    let csv = csv.as_str().map(str::to_string).unwrap_or_else(|| csv.to_string());
    for line in [",appointments,,3", ",no_shows,,1", ",no_show_rate,,0.5"] {
        assert!(csv.contains(line), "{line} in {csv}");
    }
    // December: one appointment, nothing recorded, the rate's cell empty.
    let (_, december_csv, _) = call(
        &router,
        "GET",
        "/api/v1/insights/structures/lieu-a/report?month=2026-12&format=csv",
        Some(&coordinator),
        None,
        &[],
    )
    .await;
    let december_csv = december_csv.as_str().map(str::to_string).unwrap_or_else(|| december_csv.to_string());
    assert!(december_csv.contains(",appointments,,1"), "{december_csv}");
    assert!(december_csv.lines().any(|l| l.ends_with(",no_show_rate,,")), "{december_csv}");

    // The export: the delay until the appointment, and how many were attended and missed.
    let (s, export, _) =
        call(&router, "GET", "/api/v1/insights/export.csv?territory=16", Some(&coordinator), None, &[]).await;
    assert_eq!(s, 200);
    let export = export.as_str().map(str::to_string).unwrap_or_else(|| export.to_string());
    let header = export.lines().next().unwrap();
    assert!(header.ends_with(",seconds_to_appointment,appointments_attended,appointments_missed"), "{header}");
    let tails: Vec<String> =
        export.lines().skip(1).map(|l| l.rsplitn(4, ',').take(3).collect::<Vec<_>>().join("|")).collect();
    let came_delay = (nov(10, 9) - submitted_at).num_seconds();
    assert!(tails.contains(&format!("0|1|{came_delay}")), "{tails:?}");
    let missed_delay = (nov(12, 14) - submitted_at).num_seconds();
    assert!(tails.contains(&format!("1|0|{missed_delay}")), "{tails:?}");
    // Cancelled: no delay, nothing recorded.
    assert!(tails.contains(&"0|0|".to_string()), "{tails:?}");
}

/// The life of one referral for the open statistics, delivered in order.
struct Life {
    territory: &'static str,
    submitted_at: chrono::DateTime<chrono::Utc>,
    /// The places it was offered to, in order, each declined but the last.
    offers: Vec<&'static str>,
    /// Accepted by the last place, this long after submission.
    accepted_after: Option<chrono::Duration>,
    completed: bool,
    /// Waitlisted this long after submission, then offered again this long after that
    /// (or still waiting).
    waitlisted: Option<(chrono::Duration, Option<chrono::Duration>)>,
}

async fn live(pool: &PgPool, life: &Life) -> contracts::ReferralId {
    use contracts::events::{ReferralAccepted, ReferralClosed, ReferralDeclined, ReferralOffered, ReferralWaitlisted};
    use contracts::{DeclineReason, Outcome, ReferralId, WaitlistReason};
    use serde_json::json;
    let referral = ReferralId::new();
    let aggregate = referral.to_string();
    let mut seq = 1;
    deliver(pool, &aggregate, seq, &submitted(referral, life.territory, life.submitted_at)).await;
    let mut at = life.submitted_at;
    let offer = |structure: &str, at: chrono::DateTime<chrono::Utc>| -> ReferralOffered {
        serde_json::from_value(json!({
            "referral_id": referral, "structure_id": structure, "attempt": 1, "offered_at": at,
            "expires_at": at + chrono::Duration::hours(72), "score": 1.0, "distance_km": 1.0,
            "explanation": [], "reservation_id": uuid::Uuid::now_v7()
        }))
        .unwrap()
    };
    if let Some((after, then)) = life.waitlisted {
        at += after;
        seq += 1;
        let w = ReferralWaitlisted {
            referral_id: referral,
            reason: WaitlistReason::NoCapacity,
            escalated: false,
            waitlisted_at: at,
        };
        deliver(pool, &aggregate, seq, &w).await;
        match then {
            Some(then) => at += then,
            None => return referral,
        }
    }
    for (i, place) in life.offers.iter().enumerate() {
        at += chrono::Duration::minutes(10);
        let offered = offer(place, at);
        seq += 1;
        deliver(pool, &aggregate, seq, &offered).await;
        seq += 1;
        if i + 1 < life.offers.len() {
            let declined = ReferralDeclined {
                referral_id: referral,
                structure_id: offered.structure_id,
                reason: DeclineReason::NoCapacity,
                attempt: 1,
                reservation_id: offered.reservation_id,
                declined_at: at,
                via: None,
            };
            deliver(pool, &aggregate, seq, &declined).await;
        } else if let Some(after) = life.accepted_after {
            let accepted = ReferralAccepted {
                referral_id: referral,
                structure_id: offered.structure_id.clone(),
                reservation_id: offered.reservation_id,
                accepted_at: life.submitted_at + after,
                via: None,
            };
            deliver(pool, &aggregate, seq, &accepted).await;
            if life.completed {
                seq += 1;
                let closed = ReferralClosed {
                    referral_id: referral,
                    structure_id: offered.structure_id,
                    outcome: Outcome::Completed,
                    closed_at: life.submitted_at + after + chrono::Duration::days(3),
                };
                deliver(pool, &aggregate, seq, &closed).await;
            }
        }
    }
    referral
}

/// The first instant of the Paris month `months` before the current one.
fn month_start(months: u32) -> chrono::DateTime<chrono::Utc> {
    let now = insights::open_data::paris_month(chrono::Utc::now());
    insights::open_data::paris_month_start(now - chrono::Months::new(months))
}

#[sqlx::test(migrations = false)]
async fn the_open_statistics_equal_the_funnel_where_nothing_is_hidden_and_hide_small_counts(pool: PgPool) {
    use chrono::Duration;
    let (router, keys) = app(&pool).await;
    let admin = keys.token(Role::Admin, Scope::All);
    let ended = month_start(2);
    let current = month_start(0);
    let mut ids = Vec::new();
    // Two months ago: 200 referrals in 16, of all kinds; 3 in 17; 12 in 86 (whose cells
    // protect 17's by secondary suppression).
    for i in 0..200i32 {
        let life = Life {
            territory: "16",
            submitted_at: ended + Duration::hours(i64::from(i)),
            offers: match i % 5 {
                0 => vec![],
                1 => vec!["lieu-a", "lieu-b"],
                2 => vec!["lieu-a", "lieu-a"],
                _ => vec!["lieu-a"],
            },
            accepted_after: (i % 5 != 0).then(|| Duration::hours(i64::from(6 + i % 40))),
            completed: i % 3 == 0,
            // Waiting at the month's end, offered in the current month: counted waiting.
            waitlisted: (i % 5 == 0 && i < 100).then(|| (Duration::hours(1), (i < 50).then(|| Duration::days(40)))),
        };
        ids.push(
            live(
                &pool,
                &Life {
                    offers: if life.waitlisted.is_some_and(|w| w.1.is_some()) {
                        vec!["lieu-c"]
                    } else {
                        life.offers.clone()
                    },
                    ..life
                },
            )
            .await,
        );
    }
    for i in 0..3 {
        let life = Life {
            territory: "17",
            submitted_at: ended + Duration::days(i),
            offers: vec!["lieu-d"],
            accepted_after: Some(Duration::hours(5)),
            completed: false,
            waitlisted: None,
        };
        ids.push(live(&pool, &life).await);
    }
    for i in 0..12 {
        let life = Life {
            territory: "86",
            submitted_at: ended + Duration::days(i),
            offers: vec!["lieu-e"],
            accepted_after: Some(Duration::hours(30)),
            completed: false,
            waitlisted: None,
        };
        ids.push(live(&pool, &life).await);
    }
    // This month: 14 in 16, six of them waiting now.
    for i in 0..14 {
        let life = Life {
            territory: "16",
            submitted_at: current + Duration::minutes(i),
            offers: if i < 6 { vec![] } else { vec!["lieu-a"] },
            accepted_after: (i >= 6).then(|| Duration::minutes(30)),
            completed: false,
            waitlisted: (i < 6).then_some((Duration::minutes(1), None)),
        };
        ids.push(live(&pool, &life).await);
    }

    // No sign-in.
    let (s, file, headers) = call(&router, "GET", "/api/v1/open-data/referrals.json", None, None, &[]).await;
    assert_eq!(s, 200, "{file}");
    assert_eq!(headers["cache-control"], "public, max-age=3600");
    assert_eq!(file["licence"], "Licence Ouverte 2.0");
    assert_eq!(file["schema"], "/api/v1/open-data/schema.json");
    let text = file.to_string();
    for id in &ids {
        assert!(!text.contains(&id.to_string()), "no referral id");
    }
    assert!(!text.contains("lieu-"), "no structure");
    let rows: Vec<contracts::insights::OpenDataRow> = serde_json::from_value(file["rows"].clone()).unwrap();
    let month =
        |start: chrono::DateTime<chrono::Utc>| insights::open_data::paris_month(start).format("%Y-%m").to_string();
    let row =
        |d: &str, m: &str| rows.iter().find(|r| r.departement == d && r.mois == m).unwrap_or_else(|| panic!("{d} {m}"));
    // Every month from the first to the current has a national row; only the current is provisional.
    let national: Vec<(&str, bool)> =
        rows.iter().filter(|r| r.departement == "France").map(|r| (r.mois.as_str(), r.provisoire)).collect();
    assert_eq!(
        national,
        vec![(month(ended).as_str(), false), (month(month_start(1)).as_str(), false), (month(current).as_str(), true)]
    );
    assert!(rows.iter().all(|r| r.mois.len() == 7), "months, never days");

    // 17's 3 referrals: hidden, and so are 86's cells beside them (secondary suppression),
    // while 16's 200 and the national row are whole.
    let (e, small, other, big) =
        (month(ended), row("17", &month(ended)), row("86", &month(ended)), row("16", &month(ended)));
    assert_eq!((small.orientations, small.proposees, small.acceptees), (None, None, None));
    assert_eq!(small.reorientees, Some(0));
    assert!(
        small.secret.contains(&"orientations".to_string())
            && small.secret.contains(&"delai_acceptation_mediane_jours".to_string()),
        "{:?}",
        small.secret
    );
    assert_eq!((other.orientations, other.acceptees), (None, None), "86's cells protect 17's");
    assert!(big.secret.is_empty(), "{:?}", big.secret);
    assert_eq!(row("France", &e).orientations, Some(215));
    assert!(row("France", &e).secret.is_empty());

    // Where nothing is hidden, the figures are the funnel's for that département and month.
    let funnel = |territory: Option<&str>, from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>| {
        let router = router.clone();
        let admin = admin.clone();
        let territory = territory.map(|t| format!("&territory={t}")).unwrap_or_default();
        async move {
            let path = format!(
                "/api/v1/insights/funnel?from={}&to={}{territory}",
                from.to_rfc3339().replace('+', "%2B"),
                to.to_rfc3339().replace('+', "%2B")
            );
            let (s, f, _) = call(&router, "GET", &path, Some(&admin), None, &[]).await;
            assert_eq!(s, 200, "{f}");
            serde_json::from_value::<contracts::insights::FunnelView>(f).unwrap().funnel
        }
    };
    let mut compared = 0;
    for r in rows.iter().filter(|r| r.secret.is_empty()) {
        let start = insights::open_data::paris_month_start(
            chrono::NaiveDate::parse_from_str(&format!("{}-01", r.mois), "%Y-%m-%d").unwrap(),
        );
        let end = insights::open_data::paris_month_start(
            chrono::NaiveDate::parse_from_str(&format!("{}-01", r.mois), "%Y-%m-%d").unwrap() + chrono::Months::new(1),
        );
        let f = funnel((r.departement != "France").then_some(r.departement.as_str()), start, end).await;
        let what = format!("{} {}", r.departement, r.mois);
        assert_eq!(r.orientations, Some(f.submitted), "{what}");
        assert_eq!(r.proposees, Some(f.offered), "{what}");
        assert_eq!(r.acceptees, Some(f.accepted), "{what}");
        assert_eq!(r.accompagnements_realises, Some(f.outcomes.get("completed").copied().unwrap_or(0)), "{what}");
        assert_eq!(
            r.delai_acceptation_mediane_jours,
            insights::open_data::days(f.time_to_accept_seconds.p50.map(|s| s as f64)),
            "{what}"
        );
        if r.provisoire {
            assert_eq!(r.en_attente, Some(f.waitlisted_now), "{what}: the current month waits now");
        }
        compared += 1;
    }
    assert!(compared >= 4, "16 and France, two months, at least: {compared}");
    // Offered to two places (not twice the same): 40 of 16's; waiting at the month's end:
    // 20, 10 of whom were offered a place since.
    assert_eq!(big.reorientees, Some(40));
    assert_eq!(big.taux_reorientation, Some((40.0f64 / big.proposees.unwrap() as f64 * 100.0).round() / 100.0));
    assert_eq!(big.en_attente, Some(20));
    let now16 = row("16", &month(current));
    assert!(now16.provisoire);
    assert_eq!(now16.en_attente, Some(6));
    assert!(now16.secret.is_empty(), "{:?}", now16.secret);

    // The CSV says the same, a hidden cell empty; a département's rows alone.
    let (s, _, headers) = call(&router, "GET", "/api/v1/open-data/referrals.csv?departement=17", None, None, &[]).await;
    assert_eq!(s, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/csv"));
    let (_, one, _) = call(&router, "GET", "/api/v1/open-data/referrals.json?departement=17", None, None, &[]).await;
    let one: Vec<contracts::insights::OpenDataRow> = serde_json::from_value(one["rows"].clone()).unwrap();
    assert_eq!(one, vec![small.clone()]);
}

#[sqlx::test(migrations = false)]
async fn the_open_files_are_public_cacheable_and_name_a_bad_departement(pool: PgPool) {
    let (router, _) = app(&pool).await;
    for path in ["/api/v1/open-data/referrals.csv", "/api/v1/open-data/referrals.json", "/api/v1/open-data/schema.json"]
    {
        let (s, _, headers) = call(&router, "GET", path, None, None, &[]).await;
        assert_eq!(s, 200, "{path}");
        assert_eq!(headers["cache-control"], "public, max-age=3600", "{path}");
        let etag = headers["etag"].to_str().unwrap().to_string();
        assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
        let (s, _, again) = call(&router, "GET", path, None, None, &[("if-none-match", etag.as_str())]).await;
        assert_eq!(s, 304, "{path}");
        assert_eq!(again["etag"].to_str().unwrap(), etag);
        let (s, _, _) = call(&router, "GET", path, None, None, &[("if-none-match", "\"autre\"")]).await;
        assert_eq!(s, 200, "{path}");
    }
    let (s, schema, _) = call(&router, "GET", "/api/v1/open-data/schema.json", None, None, &[]).await;
    assert_eq!(s, 200);
    assert_eq!(schema["licenses"][0]["name"], "etalab-2.0");
    let names: Vec<&str> = schema["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, insights::open_data::HEADER);
    assert!(
        schema["fields"].as_array().unwrap().iter().all(|f| f["description"].as_str().is_some_and(|d| d.len() > 20))
    );
    for bad in ["99", "Charente", "16%0A"] {
        let (s, problem, _) =
            call(&router, "GET", &format!("/api/v1/open-data/referrals.csv?departement={bad}"), None, None, &[]).await;
        assert_eq!(s, 422, "{bad}: {problem}");
        assert!(problem.to_string().contains("departement"), "{problem}");
    }
}
