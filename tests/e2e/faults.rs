//! Issue 5: break it on purpose. Each scenario injects one fault into the real services
//! (a killed process, a cut connection, a restarted or blocked broker, an unreachable
//! database, poison), then checks every acknowledged operation, Jepsen-style:
//! lost = 0, duplicated effects = 0, unexpected = 0, outboxes drained, and the
//! dead-letter queues hold exactly the injected poison.

use std::time::Duration;

use serde_json::Value;

use crate::crash::{Server, free_port};
use crate::support::*;

/// What the clients were told, to compare with what the system did.
struct Ledger {
    /// Referrals that got a 201.
    acknowledged: Vec<String>,
    /// Submissions attempted (a 201 may be lost with the process that was sending it).
    attempted: usize,
    /// How many 201s so far, live: fault injectors strike when the burst is under way,
    /// never after a fixed time.
    progress: std::sync::Arc<tokio::sync::watch::Sender<usize>>,
}

impl Default for Ledger {
    fn default() -> Self {
        Self { acknowledged: vec![], attempted: 0, progress: std::sync::Arc::new(tokio::sync::watch::channel(0).0) }
    }
}

impl Ledger {
    /// Follows the burst's 201s (see [`acknowledged`]).
    fn progress(&self) -> tokio::sync::watch::Receiver<usize> {
        self.progress.subscribe()
    }
}

/// Waits until the burst followed by `progress` has had `n` submissions acknowledged.
async fn acknowledged(progress: &mut tokio::sync::watch::Receiver<usize>, n: usize) {
    tokio::time::timeout(Duration::from_secs(60), progress.wait_for(|done| *done >= n))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {n} acknowledged submissions"))
        .expect("the burst is running");
}

/// Waits until the server's `/readyz` answers `status` (503: it has noticed an outage).
async fn until_ready_is(base: &str, status: u16) {
    let client = reqwest::Client::new();
    eventually(&format!("/readyz to answer {status}"), Duration::from_secs(60), || async {
        let r = client.get(format!("{base}/readyz")).timeout(Duration::from_secs(5)).send().await.ok()?;
        (r.status().as_u16() == status).then_some(())
    })
    .await;
}

/// A deployment to inject faults into: a database, a namespace, an organisation and
/// three structures with room for everything the scenario submits.
struct Scenario {
    sandbox: Sandbox,
    admin: String,
    referrer: String,
    client: reqwest::Client,
}

impl Scenario {
    async fn new() -> Self {
        Self::on(Sandbox::new().await).await
    }

    async fn with(adjust: impl FnOnce(&mut platform::Config)) -> Self {
        Self::on(Sandbox::with(adjust).await).await
    }

    async fn exclusive() -> Self {
        Self::on(Sandbox::exclusive().await).await
    }

    async fn on(sandbox: Sandbox) -> Self {
        let key = sandbox.key().await;
        let token =
            |role, scope| key.issue(&platform::auth::Claims::new(role, scope, chrono::Duration::hours(2)).unwrap());
        let admin = token(contracts::Role::Admin, platform::auth::Scope::All);
        let organisation = uuid::Uuid::now_v7();
        let referrer = token(contracts::Role::Referrer, platform::auth::Scope::Organisation(organisation.into()));
        Self { sandbox, admin, referrer, client: reqwest::Client::new() }
    }

    /// Creates the structures through `base` and waits until the matcher has them.
    async fn directory(&self, base: &str) {
        for (id, lat) in [("a", 45.65), ("b", 45.66), ("c", 45.67)] {
            let r = self
                .client
                .put(format!("{base}/api/v1/structures/{id}"))
                .bearer_auth(&self.admin)
                .json(&structure(id, lat, 0.15, &[AIDE], 500))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
        }
        let pool = self.sandbox.pool().await;
        eventually("the matcher to know the structures", Duration::from_secs(30), || async {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM matcher.structures").fetch_one(&pool).await.ok()?;
            (n == 3).then_some(())
        })
        .await;
        pool.close().await;
    }

    /// Submits `n` referrals from `clients` concurrent clients, recording what was
    /// acknowledged. Failures (the server may be dying) are not errors.
    async fn burst(&self, base: &str, n: usize, clients: usize, ledger: &mut Ledger) {
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (client, base, referrer) = (self.client.clone(), base.to_string(), self.referrer.clone());
            let progress = std::sync::Arc::clone(&ledger.progress);
            let per_client = n / clients;
            tasks.push(tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for _ in 0..per_client {
                    let sent = client
                        .post(format!("{base}/api/v1/referrals"))
                        .bearer_auth(&referrer)
                        .timeout(Duration::from_secs(10))
                        .json(&referral())
                        .send()
                        .await;
                    if let Ok(r) = sent
                        && r.status() == 201
                        && let Ok(v) = r.json::<Value>().await
                    {
                        acknowledged.push(v["id"].as_str().unwrap_or_default().to_string());
                        progress.send_modify(|done| *done += 1);
                    }
                }
                acknowledged
            }));
        }
        ledger.attempted += n / clients * clients;
        for t in tasks {
            ledger.acknowledged.extend(t.await.unwrap());
        }
    }

    /// The Jepsen-style check, once the system has settled.
    async fn check(&self, ledger: &Ledger, poison: &[(&str, usize)]) {
        assert!(!ledger.acknowledged.is_empty(), "the scenario acknowledged nothing");
        let pool = self.sandbox.pool().await;
        let settled =
            eventually("every referral to settle and the outboxes to drain", Duration::from_secs(90), || async {
                let (total, unsettled, backlog): (i64, i64, i64) = sqlx::query_as(
                    "SELECT (SELECT count(*) FROM referrals.referrals),
                        (SELECT count(*) FROM referrals.referrals WHERE status NOT IN ('offered', 'waitlisted')),
                        (SELECT count(*) FROM referrals.outbox) + (SELECT count(*) FROM matcher.outbox)
                          + (SELECT count(*) FROM directory.outbox)",
                )
                .fetch_one(&pool)
                .await
                .ok()?;
                let facts: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM insights.referrals WHERE status IN ('offered', 'waitlisted')",
                )
                .fetch_one(&pool)
                .await
                .ok()?;
                (unsettled == 0 && backlog == 0 && facts == total).then_some(total)
            })
            .await;

        let stored: Vec<String> =
            sqlx::query_scalar("SELECT id::text FROM referrals.referrals").fetch_all(&pool).await.unwrap();
        let lost: Vec<&String> = ledger.acknowledged.iter().filter(|id| !stored.contains(id)).collect();
        assert!(lost.is_empty(), "lost acknowledged referrals: {lost:?}");
        let unexpected = settled - ledger.attempted as i64;
        assert!(unexpected <= 0, "{unexpected} referrals nobody submitted");

        // Duplicated effects: one submission, at most one offer, one reservation and one
        // fact per referral, each event processed once by each consumer.
        let duplicates: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM (SELECT referral_id FROM referrals.history WHERE step IN ('submitted', 'offered')
                                           GROUP BY referral_id, step HAVING count(*) > 1) d)
                  + (SELECT count(*) FROM referrals.referrals WHERE attempts > 1)
                  + (SELECT count(*) FROM (SELECT referral_id FROM matcher.reservations GROUP BY referral_id HAVING count(*) > 1) r)
                  + (SELECT count(*) FROM insights.referrals WHERE offers > 1)",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(duplicates, 0, "duplicated effects");
        let (offered, held, used): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM referrals.referrals WHERE status = 'offered'),
                    (SELECT count(*) FROM matcher.reservations WHERE state = 'held'),
                    (SELECT COALESCE(sum(used), 0)::bigint FROM matcher.capacity_usage)",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!((offered, held), (held, used), "offers, reservations and capacity used disagree");
        pool.close().await;

        let conn = bus::connect(&self.sandbox.servers.amqp_url).await.unwrap();
        let topology = aiguillage::topology(&self.sandbox.namespace);
        let letters = bus::dlq::list(&conn, &topology, None).await.unwrap();
        for s in ["referrals", "matcher", "insights"] {
            let expected = poison.iter().find(|(x, _)| *x == s).map(|(_, n)| *n).unwrap_or(0);
            let got = letters.iter().filter(|l| l.service == s).count();
            assert_eq!(got, expected, "dead letters of {s}: {letters:?}");
        }
        let _ = conn.close(200, "checked".into()).await;
    }
}

/// Runs the real binary with a fault armed, until the fault kills it.
async fn run_until_fault(scenario: &Scenario, fault: &str) -> Ledger {
    let port = free_port();
    let mut server = Server::start(&scenario.sandbox, port, &[]).await;
    scenario.directory(&server.base).await;
    server.terminate().await;
    let mut faulty = Server::start(&scenario.sandbox, port, &[("AIGUILLAGE_FAULTS", fault.to_string())]).await;
    let mut ledger = Ledger::default();
    scenario.burst(&faulty.base, 40, 4, &mut ledger).await;
    faulty.wait_for_death(Duration::from_secs(30)).await;
    // Whatever it left half-done, a clean restart finishes.
    let mut server = Server::start(&scenario.sandbox, port, &[]).await;
    scenario.burst(&server.base, 8, 2, &mut ledger).await;
    scenario.check(&ledger, &[]).await;
    server.terminate().await;
    ledger
}

#[tokio::test]
async fn f01_crash_after_commit_before_publish() {
    let scenario = Scenario::new().await;
    run_until_fault(&scenario, "relay.before_publish@3").await;
    scenario.sandbox.destroy().await;
}

#[tokio::test]
async fn f02_relay_dies_after_the_confirm_before_marking_the_row_sent() {
    let scenario = Scenario::new().await;
    run_until_fault(&scenario, "relay.after_confirm@3").await;
    scenario.sandbox.destroy().await;
}

#[tokio::test]
async fn f03_an_unroutable_publish_is_a_failure_and_is_retried_until_routable() {
    use lapin::options::{QueueBindOptions, QueueDeclareOptions};
    let sandbox = Sandbox::new().await;
    let pool = sandbox.pool().await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let topology = bus::Topology::new(sandbox.namespace.clone(), Vec::new());
    let broker = bus::Broker::start(&amqp_url(), topology.clone(), "f03", shutdown.clone());
    let relay = bus::Relay::new(pool.clone(), broker.clone(), "referrals", "referrals");
    let conn = broker.connection().await.unwrap();
    let channel = bus::outbox::open_confirm_channel(&conn).await.unwrap();

    let event = contracts::events::StructureRemoved { structure_id: "nowhere".parse().unwrap() };
    let envelope = contracts::Envelope::new("x", 1, &event);
    let mut tx = pool.begin().await.unwrap();
    bus::enqueue(&mut tx, "referrals", &envelope).await.unwrap();
    tx.commit().await.unwrap();
    // Nothing is bound to structure.removed in this namespace: the broker returns it.
    assert_eq!(relay.publish_pending(&channel).await.unwrap(), 1);
    let (left, error): (i64, Option<String>) =
        sqlx::query_as("SELECT count(*), max(last_error) FROM referrals.outbox").fetch_one(&pool).await.unwrap();
    assert_eq!(left, 1, "an unroutable event stays in the outbox");
    assert!(error.unwrap_or_default().contains("unroutable"));

    // Once something listens, the retry publishes it.
    let queue = channel
        .queue_declare("".into(), QueueDeclareOptions { exclusive: true, ..Default::default() }, Default::default())
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.name().clone(),
            topology.exchange().into(),
            "structure.removed".into(),
            QueueBindOptions::default(),
            Default::default(),
        )
        .await
        .unwrap();
    sqlx::query("UPDATE referrals.outbox SET claimed_until = NULL").execute(&pool).await.unwrap();
    assert_eq!(relay.publish_pending(&channel).await.unwrap(), 1);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM referrals.outbox").fetch_one(&pool).await.unwrap();
    assert_eq!(left, 0);
    let got = channel
        .basic_get(queue.name().clone(), lapin::options::BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .unwrap();
    let body: contracts::Envelope = serde_json::from_slice(&got.delivery.data).unwrap();
    assert_eq!(body.id, envelope.id);
    assert_eq!(got.delivery.properties.message_id().as_ref().unwrap().as_str(), envelope.id.to_string());
    shutdown.cancel();
    pool.close().await;
    sandbox.destroy().await;
}

#[tokio::test]
async fn f04_connection_cut_with_confirms_in_flight() {
    let proxy = proxy::Proxy::start("127.0.0.1:5672").await;
    let url = proxy.amqp_url();
    let scenario = Scenario::with(|c| c.amqp_url = url).await;
    let app = TestApp::start(scenario.sandbox.alias()).await;
    scenario.directory(&app.base).await;
    let mut ledger = Ledger::default();
    // Four cuts, each once more submissions went through, each lasting until the server
    // has noticed it.
    let mut progress = ledger.progress();
    let cutter = async {
        for round in 1..=4 {
            acknowledged(&mut progress, round * 10).await;
            proxy.cut();
            until_ready_is(&app.base, 503).await;
            proxy.restore();
        }
    };
    tokio::join!(scenario.burst(&app.base, 60, 6, &mut ledger), cutter);
    proxy.restore();
    scenario.check(&ledger, &[]).await;
    app.stop().await;
}

#[tokio::test]
async fn f05_broker_restart() {
    let scenario = Scenario::exclusive().await;
    let app = TestApp::start(scenario.sandbox.alias()).await;
    scenario.directory(&app.base).await;
    let mut ledger = Ledger::default();
    let mut progress = ledger.progress();
    // Stopped once the burst is under way, started again once the server has noticed.
    let restart = async {
        acknowledged(&mut progress, 10).await;
        let _restore = BrokerRestore;
        rabbitmqctl(&["stop_app"]);
        until_ready_is(&app.base, 503).await;
        rabbitmqctl(&["start_app"]);
        rabbitmqctl(&["await_startup"]);
    };
    tokio::join!(scenario.burst(&app.base, 60, 6, &mut ledger), restart);
    app.wait_ready().await;
    scenario.check(&ledger, &[]).await;
    app.stop().await;
}

#[tokio::test]
async fn f06_consumer_crash_before_its_commit() {
    let scenario = Scenario::new().await;
    run_until_fault(&scenario, "consumer.before_commit@5").await;
    scenario.sandbox.destroy().await;
}

#[tokio::test]
async fn f07_consumer_crash_between_commit_and_ack() {
    let scenario = Scenario::new().await;
    run_until_fault(&scenario, "consumer.after_commit@5").await;
    scenario.sandbox.destroy().await;
}

#[tokio::test]
async fn f08_poison_goes_to_the_dead_letter_queue_and_the_rest_keeps_flowing() {
    use lapin::BasicProperties;
    use lapin::options::BasicPublishOptions;
    let scenario = Scenario::new().await;
    let app = TestApp::start(scenario.sandbox.alias()).await;
    scenario.directory(&app.base).await;
    let mut ledger = Ledger::default();
    scenario.burst(&app.base, 10, 2, &mut ledger).await;

    let conn = bus::connect(&amqp_url()).await.unwrap();
    let channel = bus::outbox::open_confirm_channel(&conn).await.unwrap();
    let exchange = format!("{}.events", scenario.sandbox.namespace);
    let future_version = {
        let mut e = contracts::Envelope::new(
            uuid::Uuid::now_v7().to_string(),
            1,
            &contracts::events::StructureRemoved { structure_id: "x".parse().unwrap() },
        );
        e.event_type = "referral.submitted".into();
        e.version = 99;
        serde_json::to_vec(&e).unwrap()
    };
    let poison: [(&str, Vec<u8>); 2] =
        [("bad-json", b"{ this is not json".to_vec()), ("future-version", future_version)];
    for (id, body) in &poison {
        let props = BasicProperties::default().with_message_id((*id).into()).with_type("referral.submitted".into());
        let confirm = channel
            .basic_publish(
                exchange.clone().into(),
                "referral.submitted".into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .unwrap();
        confirm.await.unwrap();
    }
    // The rest keeps flowing.
    scenario.burst(&app.base, 10, 2, &mut ledger).await;
    // referral.submitted goes to matcher and insights: two poison messages each.
    scenario.check(&ledger, &[("matcher", 2), ("insights", 2)]).await;

    let topology = aiguillage::topology(&scenario.sandbox.namespace);
    let letters = bus::dlq::list(&conn, &topology, Some("matcher")).await.unwrap();
    let bad = letters.iter().find(|l| l.message_id == "bad-json").unwrap();
    assert!(bad.reason.contains("unparseable"), "{bad:?}");
    assert!(bad.first_failed_at.is_some());
    let future = letters.iter().find(|l| l.message_id == "future-version").unwrap();
    assert!(future.reason.contains("version 99"), "{future:?}");
    assert_eq!(future.event_type, "referral.submitted");

    // The CLI shows the same, without payloads.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_aiguillage"))
        .args(["dlq", "list", "--service", "insights"])
        .env("AIGUILLAGE_NAMESPACE", &scenario.sandbox.namespace)
        .env("AMQP_URL", amqp_url())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("this is not json"));

    // Replaying poison puts it back where it fails again; replaying twice moves nothing more.
    let replay = |id: &'static str| {
        let ns = scenario.sandbox.namespace.clone();
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_aiguillage"))
                .args(["dlq", "replay", "--service", "matcher", "--id", id])
                .env("AIGUILLAGE_NAMESPACE", ns)
                .env("AMQP_URL", amqp_url())
                .output()
                .await
                .unwrap();
            assert!(out.status.success());
            serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap().len()
        }
    };
    assert_eq!(replay("bad-json").await, 1);
    let back = eventually("the replayed poison to come back", Duration::from_secs(20), || async {
        let l = bus::dlq::list(&conn, &topology, Some("matcher")).await.ok()?;
        (l.len() == 2).then_some(l)
    })
    .await;
    assert!(back.iter().any(|l| l.message_id == "bad-json"));
    let _ = conn.close(200, "done".into()).await;
    app.stop().await;
}

/// A consumer that finds a backlog handles it several messages per transaction (the
/// insights projection batches). A poison message inside a batch rolls the batch back;
/// its neighbours are then handled one by one and committed once each, and only the
/// poison is dead-lettered.
#[tokio::test]
async fn f08b_poison_inside_a_batch_spoils_nothing_else() {
    use contracts::events::OrganisationUpserted;
    use lapin::BasicProperties;
    use lapin::options::BasicPublishOptions;
    const GOOD: usize = 40;
    let sandbox = Sandbox::new().await;
    // The queues exist before any consumer: the backlog is there when it starts.
    let conn = bus::connect(&amqp_url()).await.unwrap();
    let topology = aiguillage::topology(&sandbox.namespace);
    topology.declare(&conn).await.unwrap();
    let channel = bus::outbox::open_confirm_channel(&conn).await.unwrap();
    let exchange = format!("{}.events", sandbox.namespace);
    let mut ids = Vec::new();
    for n in 0..=GOOD {
        let organisation_id = uuid::Uuid::now_v7();
        let event = OrganisationUpserted {
            organisation_id: organisation_id.into(),
            name: format!("Organisation {n}"),
            kind: contracts::OrganisationKind::SocialService,
            territory: "16".parse().unwrap(),
            siret: None,
        };
        let mut envelope = contracts::Envelope::new(organisation_id.to_string(), 1, &event);
        if n == GOOD / 2 {
            envelope.version = 99;
        } else {
            ids.push(organisation_id);
        }
        let props = BasicProperties::default()
            .with_message_id(envelope.id.to_string().into())
            .with_type("organisation.upserted".into());
        let body = serde_json::to_vec(&envelope).unwrap();
        let confirm = channel
            .basic_publish(
                exchange.clone().into(),
                "organisation.upserted".into(),
                BasicPublishOptions::default(),
                &body,
                props,
            )
            .await
            .unwrap();
        confirm.await.unwrap();
    }

    let app = TestApp::start(sandbox.alias()).await;
    let pool = sandbox.pool().await;
    let letters = eventually("the poison in the insights dead-letter queue", Duration::from_secs(30), || async {
        let letters = bus::dlq::list(&conn, &topology, Some("insights")).await.unwrap();
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(letters[0].reason.contains("version 99"), "{letters:?}");
    let projected: i64 = eventually("every good organisation projected", Duration::from_secs(30), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM insights.organisations WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_one(&pool)
            .await
            .unwrap();
        (n == GOOD as i64).then_some(n)
    })
    .await;
    assert_eq!(projected, GOOD as i64);
    // Each good message recorded exactly once; some shared a transaction (rows written
    // by one transaction carry its start time).
    let (recorded, transactions): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT received_at) FROM insights.inbox \
         WHERE consumer = 'insights' AND event_type = 'organisation.upserted'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(recorded, GOOD as i64);
    assert!(transactions < recorded, "{recorded} messages in {transactions} transactions: no batch was formed");
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn f09_database_unreachable_while_consuming() {
    let db_proxy = proxy::Proxy::start("127.0.0.1:5432").await;
    let port = db_proxy.port;
    let scenario = Scenario::new().await;
    let database = scenario.sandbox.database.clone();
    let mut sandbox = scenario.sandbox.alias();
    sandbox.config.database_url = format!("postgres://{}@127.0.0.1:{port}/{database}", os_user());
    let app = TestApp::start(sandbox).await;
    scenario.directory(&app.base).await;
    let mut ledger = Ledger::default();
    scenario.burst(&app.base, 30, 3, &mut ledger).await;
    db_proxy.cut();
    // While the database is away (until the server has noticed), consumers hold their
    // messages and back off.
    until_ready_is(&app.base, 503).await;
    db_proxy.restore();
    scenario.burst(&app.base, 10, 2, &mut ledger).await;
    scenario.check(&ledger, &[]).await;
    app.stop().await;
}

#[tokio::test]
async fn f10_concurrent_duplicate_posts_with_one_idempotency_key() {
    let scenario = Scenario::new().await;
    let app = TestApp::start(scenario.sandbox.alias()).await;
    scenario.directory(&app.base).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let req = scenario
            .client
            .post(format!("{}/api/v1/referrals", app.base))
            .bearer_auth(&scenario.referrer)
            .header("Idempotency-Key", "same-key")
            .json(&referral());
        tasks.push(tokio::spawn(async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap()["id"].as_str().unwrap_or_default().to_string())
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        let (status, id) = t.await.unwrap();
        assert_eq!(status, 201);
        ids.push(id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one referral for one key");
    let ledger = Ledger { acknowledged: ids, attempted: 1, ..Ledger::default() };
    scenario.check(&ledger, &[]).await;
    app.stop().await;
}

#[tokio::test]
async fn f11_competing_matchers_and_f14_two_relays_at_once() {
    let scenario = Scenario::new().await;
    let (p1, p2) = (free_port(), free_port());
    let mut one = Server::start(&scenario.sandbox, p1, &[]).await;
    let mut two = Server::start(&scenario.sandbox, p2, &[]).await;
    scenario.directory(&one.base).await;
    let mut ledger = Ledger::default();
    let (mut l1, mut l2) = (Ledger::default(), Ledger::default());
    tokio::join!(scenario.burst(&one.base, 40, 4, &mut l1), scenario.burst(&two.base, 40, 4, &mut l2));
    ledger.acknowledged.extend(l1.acknowledged.into_iter().chain(l2.acknowledged));
    ledger.attempted = l1.attempted + l2.attempted;
    scenario.check(&ledger, &[]).await;
    one.terminate().await;
    two.terminate().await;
    scenario.sandbox.destroy().await;
}

#[tokio::test]
async fn f12_a_memory_alarm_makes_readyz_and_intake_answer_503_with_retry_after_then_both_recover() {
    let scenario = Scenario::exclusive().await;
    let app = TestApp::start(scenario.sandbox.alias()).await;
    scenario.directory(&app.base).await;
    let _restore = BrokerRestore;
    let mut ledger = Ledger::default();
    rabbitmqctl(&["set_vm_memory_high_watermark", "0"]);
    // RabbitMQ blocks a connection when it next publishes: the submissions before that
    // are taken (their events wait in the outbox), then intake is refused, never left
    // hanging, and `/readyz` says why.
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let refused = loop {
        assert!(std::time::Instant::now() < deadline, "intake was never refused while the broker was blocked");
        scenario.burst(&app.base, 1, 1, &mut ledger).await;
        let r = client
            .post(format!("{}/api/v1/referrals", app.base))
            .bearer_auth(&scenario.referrer)
            .timeout(Duration::from_secs(5))
            .json(&referral())
            .send()
            .await
            .expect("an answer, not a hang");
        if r.status() == 503 {
            break (r.headers().get("retry-after").cloned(), r.headers()["content-type"].clone());
        }
        assert_eq!(r.status(), 201, "taken, or refused with 503");
        ledger.attempted += 1;
        if let Ok(v) = r.json::<Value>().await {
            ledger.acknowledged.push(v["id"].as_str().unwrap_or_default().to_string());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(refused.0.is_some_and(|v| v.to_str().unwrap().parse::<u64>().unwrap() > 0), "503 with Retry-After");
    assert_eq!(refused.1, "application/problem+json");
    let (status, body) = readyz(&app.base).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("alarm"), "/readyz names the cause: {body}");
    let pool = scenario.sandbox.pool().await;
    let waiting: i64 = sqlx::query_scalar("SELECT count(*) FROM referrals.outbox").fetch_one(&pool).await.unwrap();
    assert!(waiting > 0, "a blocked broker confirms nothing, so events wait in the outbox");
    pool.close().await;

    rabbitmqctl(&["set_vm_memory_high_watermark", "0.4"]);
    eventually("/readyz to recover with the broker", Duration::from_secs(30), || async {
        (readyz(&app.base).await.0 == 200).then_some(())
    })
    .await;
    scenario.burst(&app.base, 5, 1, &mut ledger).await;
    scenario.check(&ledger, &[]).await;
    app.stop().await;
}

async fn readyz(base: &str) -> (u16, String) {
    let r = reqwest::get(format!("{base}/readyz")).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[tokio::test]
async fn f13_sigterm_mid_processing_finishes_in_flight_work() {
    let scenario = Scenario::new().await;
    let port = free_port();
    let mut server = Server::start(&scenario.sandbox, port, &[]).await;
    scenario.directory(&server.base).await;
    let mut ledger = Ledger::default();
    let base = server.base.clone();
    let mut progress = ledger.progress();
    let terminate = async {
        acknowledged(&mut progress, 15).await;
        server.terminate().await
    };
    let (_, status) = tokio::join!(scenario.burst(&base, 60, 6, &mut ledger), terminate);
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let mut server = Server::start(&scenario.sandbox, port, &[]).await;
    scenario.check(&ledger, &[]).await;
    server.terminate().await;
    scenario.sandbox.destroy().await;
}

fn os_user() -> String {
    std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "root".to_string())
}

fn rabbitmqctl(args: &[&str]) {
    let status = std::process::Command::new("rabbitmqctl")
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("rabbitmqctl");
    assert!(status.success(), "rabbitmqctl {args:?}");
}

/// Puts the shared broker back the way every other test expects it, even when a test
/// fails halfway.
struct BrokerRestore;

impl Drop for BrokerRestore {
    fn drop(&mut self) {
        let ctl = |args: &[&str]| {
            let _ = std::process::Command::new("rabbitmqctl").args(args).stdout(std::process::Stdio::null()).status();
        };
        ctl(&["set_vm_memory_high_watermark", "0.4"]);
        ctl(&["start_app"]);
        ctl(&["await_startup"]);
    }
}

/// The local clusters of `deploy/cluster`: three RabbitMQ nodes, and a PostgreSQL primary
/// with a synchronous standby under pg_auto_failover. Started by the test (the scripts
/// install what they lack), stopped when dropped, a failed test's included.
struct Clusters {
    servers: Servers,
}

impl Clusters {
    async fn start() -> Self {
        let (rabbit, postgres) = tokio::join!(cluster("rabbitmq.sh", &["start"]), cluster("postgres.sh", &["start"]));
        let value = |line: String, name: &str| {
            line.trim()
                .strip_prefix(&format!("{name}="))
                .unwrap_or_else(|| panic!("{name}=… expected: {line}"))
                .to_string()
        };
        let (amqp, database) = (value(rabbit, "AMQP_URL"), value(postgres, "DATABASE_URL"));
        assert_eq!(amqp.split(',').count(), 3, "three broker nodes: {amqp}");
        Self { servers: Servers::from_urls(&database, &amqp) }
    }
}

impl Drop for Clusters {
    fn drop(&mut self) {
        for script in ["rabbitmq.sh", "postgres.sh"] {
            let _ = std::process::Command::new(cluster_script(script)).arg("stop").output();
        }
    }
}

fn cluster_script(script: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/cluster").join(script)
}

/// Runs a cluster script and returns what it printed on stdout.
async fn cluster(script: &str, args: &[&str]) -> String {
    let out = tokio::process::Command::new(cluster_script(script)).args(args).output().await.unwrap();
    assert!(out.status.success(), "{script} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Each submission's answer, in order: what a client saw through the faults.
#[derive(Default)]
struct Answers {
    created: Vec<String>,
    /// 503s, and whether each said when to retry.
    unavailable: usize,
    unavailable_without_retry_after: usize,
    /// Anything else: a 5xx other than 503, a dropped connection, a timeout.
    other: Vec<String>,
    /// Tries sent again to another replica after a refused or dropped connection.
    moved: usize,
    attempted: usize,
}

/// Submits one referral after another until `stop`, as a client that honours
/// `Retry-After` would (it waits that long, then sends a new submission).
async fn submit_until(base: &str, referrer: &str, stop: tokio_util::sync::CancellationToken) -> Answers {
    let client = reqwest::Client::new();
    let mut answers = Answers::default();
    while !stop.is_cancelled() {
        answers.attempted += 1;
        let sent = client
            .post(format!("{base}/api/v1/referrals"))
            .bearer_auth(referrer)
            .timeout(Duration::from_secs(15))
            .json(&referral())
            .send()
            .await;
        match sent {
            Ok(r) if r.status() == 201 => {
                let v: Value = r.json().await.unwrap();
                answers.created.push(v["id"].as_str().unwrap().to_string());
            }
            Ok(r) if r.status() == 503 => {
                answers.unavailable += 1;
                let wait = r.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                if wait.is_none() {
                    answers.unavailable_without_retry_after += 1;
                }
                tokio::time::sleep(Duration::from_secs(wait.unwrap_or(1))).await;
            }
            Ok(r) => answers.other.push(format!("{}", r.status())),
            Err(err) => answers.other.push(format!("{err}")),
        }
    }
    answers
}

/// Issue 27, in CI's time: the server on the clusters, submitting throughout while the
/// RabbitMQ node it is connected to is killed (`kill -9`) and restarted, the node that
/// then leads the queues is cut off from the others and healed, and then the
/// PostgreSQL primary is killed, the standby promoted, and the old primary brought back
/// as a standby. Every referral answered 201 is offered or waitlisted exactly once; while
/// the primary is away the submissions answer 503 with `Retry-After`, never anything
/// else. The full version (100 referrals/s for two minutes per fault) is
/// `tests/load/bench/cluster-faults.sh`.
#[tokio::test(flavor = "multi_thread")]
async fn f15_broker_nodes_lost_or_cut_off_and_the_database_primary_lost_while_submitting() {
    // What the server does through the faults, on stderr when asked (it is the whole
    // process's subscriber: every test's logs would follow).
    if std::env::var_os("AIGUILLAGE_TEST_LOG").is_some() {
        platform::telemetry::init();
    }
    let clusters = Clusters::start().await;
    let scenario = Scenario::on(Sandbox::on_servers(clusters.servers.clone()).await).await;
    let app = TestApp::start(scenario.sandbox.alias()).await;
    scenario.directory(&app.base).await;

    let stop = tokio_util::sync::CancellationToken::new();
    let submitters: Vec<_> = (0..3)
        .map(|_| {
            let (base, referrer, stop) = (app.base.clone(), scenario.referrer.clone(), stop.clone());
            tokio::spawn(async move { submit_until(&base, &referrer, stop).await })
        })
        .collect();
    let pool = scenario.sandbox.pool().await;
    let count = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM referrals.referrals WHERE status IN ('offered', 'waitlisted')",
        )
        .fetch_one(&pool)
        .await
        .ok()
    };
    let more_than = async |n: i64, what: &str| {
        eventually(what, Duration::from_secs(120), || async { count().await.filter(|c| *c >= n) }).await
    };

    let started = std::time::Instant::now();
    let before = more_than(20, "referrals to flow through the clusters").await;
    // The server's first node is node 1 (it tries the URIs in order).
    cluster("rabbitmq.sh", &["kill", "1"]).await;
    let killed = started.elapsed();
    more_than(before + 20, "referrals to flow again on the other broker nodes").await;
    eprintln!(
        "f15: broker node 1 killed at {killed:?}, 20 more referrals offered {:?} later",
        started.elapsed() - killed
    );
    cluster("rabbitmq.sh", &["start-node", "1"]).await;

    // The node that now leads most queues is cut off from the other two. With
    // pause_minority it pauses once it notices (its AMQP port closes), the majority
    // elects new leaders, and the server's connections move to the nodes still serving.
    let leaders = cluster("rabbitmq.sh", &["leader"]).await;
    let leader = leaders.lines().next().expect("a node leads the queues").trim().to_string();
    let port: u16 = format!("570{leader}").parse().unwrap();
    let cut = started.elapsed();
    cluster("rabbitmq.sh", &["partition", &leader]).await;
    eventually("the node cut off to pause", Duration::from_secs(60), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err().then_some(())
    })
    .await;
    let paused = started.elapsed();
    let now = count().await.unwrap_or(0);
    let flowed = more_than(now + 20, "referrals to flow with a node cut off").await;
    eprintln!(
        "f15: node {leader}, leading the queues, cut off at {cut:?}, paused {:?} later, 20 more referrals offered {:?} after that",
        paused - cut,
        started.elapsed() - paused
    );
    cluster("rabbitmq.sh", &["heal"]).await;
    more_than(flowed + 10, "referrals to flow with the three nodes together again").await;

    let primary = cluster("postgres.sh", &["primary"]).await.trim().to_string();
    let killed = started.elapsed();
    let old_primary = cluster("postgres.sh", &["kill-primary"]).await.trim().to_string();
    // The monitor promotes the standby (about 50 s with pg_auto_failover's defaults).
    eventually("the standby to be promoted", Duration::from_secs(180), || async {
        let out = tokio::process::Command::new(cluster_script("postgres.sh")).arg("primary").output().await.ok()?;
        let now = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !now.is_empty() && now != primary).then_some(())
    })
    .await;
    let promoted_at = started.elapsed();
    let now = eventually("the promoted primary to answer", Duration::from_secs(30), count).await;
    let promoted = more_than(now + 20, "referrals to flow again on the promoted standby").await;
    eprintln!(
        "f15: primary on port {primary} ({old_primary}) killed at {killed:?}, standby promoted {:?} later, \
         20 more referrals offered {:?} after that",
        promoted_at - killed,
        started.elapsed() - promoted_at
    );
    cluster("postgres.sh", &["restart-node", &old_primary]).await;
    more_than(promoted + 10, "referrals to flow with the old primary back as a standby").await;
    stop.cancel();

    let mut ledger = Ledger::default();
    let mut unavailable = (0, 0);
    let mut other = Vec::new();
    for s in submitters {
        let a = s.await.unwrap();
        ledger.acknowledged.extend(a.created);
        ledger.attempted += a.attempted;
        unavailable.0 += a.unavailable;
        unavailable.1 += a.unavailable_without_retry_after;
        other.extend(a.other);
    }
    eprintln!(
        "f15: {} submissions, {} created, {} answered 503 (all with Retry-After: {}), other failures: {other:?}",
        ledger.attempted,
        ledger.acknowledged.len(),
        unavailable.0,
        unavailable.1 == 0
    );
    assert_eq!(unavailable.1, 0, "every 503 says when to retry");
    assert!(other.is_empty(), "the failover window answers 503, nothing else: {other:?}");
    pool.close().await;
    scenario.check(&ledger, &[]).await;
    app.stop().await;
    scenario.sandbox.destroy().await;
    drop(clusters);
}

/// Submits one referral after another until `stop`, as a client behind a load balancer
/// (or the proxy itself) does: each submission carries its own `Idempotency-Key` and goes
/// to one of the `replicas` in turn, and to the next one, with the same key, when a
/// replica refuses the connection, drops it or answers 503. A submission is given up
/// only after 30 s.
async fn submit_balanced(
    replicas: Vec<String>,
    referrer: String,
    stop: tokio_util::sync::CancellationToken,
) -> Answers {
    let client = reqwest::Client::new();
    let mut answers = Answers::default();
    let mut next = 0usize;
    while !stop.is_cancelled() {
        answers.attempted += 1;
        let key = uuid::Uuid::now_v7().to_string();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            next += 1;
            let base = &replicas[next % replicas.len()];
            let sent = client
                .post(format!("{base}/api/v1/referrals"))
                .bearer_auth(&referrer)
                .header("Idempotency-Key", &key)
                .timeout(Duration::from_secs(15))
                .json(&referral())
                .send()
                .await;
            let retry = match sent {
                Ok(r) if r.status() == 201 => {
                    let v: Value = r.json().await.unwrap();
                    answers.created.push(v["id"].as_str().unwrap().to_string());
                    break;
                }
                Ok(r) if r.status() == 503 => {
                    answers.unavailable += 1;
                    if r.headers().get("retry-after").is_none() {
                        answers.unavailable_without_retry_after += 1;
                    }
                    format!("503 from {base}")
                }
                Ok(r) => {
                    answers.other.push(format!("{} from {base}", r.status()));
                    break;
                }
                Err(err) => {
                    answers.moved += 1;
                    format!("{err}")
                }
            };
            if tokio::time::Instant::now() > deadline {
                answers.other.push(format!("given up after 30 s: {retry}"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    answers
}

/// Issue 27: a rolling restart under load. Two replicas of each of the seven services but
/// notify, which handles its queue in order and runs as one (as in deploy/), each its own
/// process of the real binary (notify and web reach the API through the deployment's
/// proxy, as in a split deployment). While referrals are submitted
/// throughout, one replica at a time is sent SIGTERM, must exit cleanly, and is started
/// again and ready before the next, and referrals must keep flowing. Nothing
/// acknowledged is lost, nothing is doubled, and no submission ends in anything but 201.
#[tokio::test(flavor = "multi_thread")]
async fn f16_a_rolling_restart_of_every_service_under_load_loses_and_doubles_nothing() {
    use crate::split::SERVICES;
    // Fourteen processes with the proxy: the database and the broker to themselves
    // (max_connections is shared with every other test).
    let scenario = Scenario::exclusive().await;
    let dir = std::env::temp_dir().join(format!("aiguillage-rolling-{}", scenario.sandbox.namespace));
    std::fs::create_dir_all(&dir).unwrap();
    let ports: Vec<Vec<u16>> =
        SERVICES.iter().map(|s| (0..if *s == "notify" { 1 } else { 2 }).map(|_| free_port()).collect()).collect();
    let proxy_port = free_port();
    let first: Vec<u16> = ports.iter().map(|p| p[0]).collect();
    let _proxy = crate::split::proxy(proxy_port, &first, &dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("caddy");
    let env = |service: &str| {
        let mut env = vec![("AIGUILLAGE_DB_POOL_SIZE", "3".to_string())];
        if matches!(service, "notify" | "web") {
            env.push(("AIGUILLAGE_API_URL", format!("http://127.0.0.1:{proxy_port}/")));
        }
        env
    };
    let mut replicas = Vec::new();
    for (service, ports) in SERVICES.iter().zip(&ports) {
        let mut two = Vec::new();
        for port in ports {
            two.push(Server::start_services(&scenario.sandbox, *port, service, &env(service)).await);
        }
        replicas.push(two);
    }
    let referrals: Vec<String> =
        replicas[SERVICES.iter().position(|s| *s == "referrals").unwrap()].iter().map(|r| r.base.clone()).collect();
    scenario.directory(&replicas[SERVICES.iter().position(|s| *s == "directory").unwrap()][0].base).await;

    let stop = tokio_util::sync::CancellationToken::new();
    let submitters: Vec<_> = (0..3)
        .map(|_| tokio::spawn(submit_balanced(referrals.clone(), scenario.referrer.clone(), stop.clone())))
        .collect();
    let pool = scenario.sandbox.pool().await;
    let count = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM referrals.referrals WHERE status IN ('offered', 'waitlisted')",
        )
        .fetch_one(&pool)
        .await
        .ok()
    };
    let more_than = async |n: i64, what: &str| {
        eventually(what, Duration::from_secs(60), || async { count().await.filter(|c| *c >= n) }).await
    };
    let mut flowed = more_than(10, "referrals to flow through the thirteen services' processes").await;
    for (i, service) in SERVICES.iter().enumerate() {
        for r in 0..ports[i].len() {
            let status = replicas[i][r].terminate().await;
            assert!(status.success(), "{service} replica {r} after SIGTERM: {status}");
            replicas[i][r] = Server::start_services(&scenario.sandbox, ports[i][r], service, &env(service)).await;
            flowed = more_than(flowed + 5, &format!("referrals to flow after {service} replica {r} restarted")).await;
        }
    }
    stop.cancel();

    let mut ledger = Ledger::default();
    let (mut unavailable, mut without_retry_after, mut moved, mut other) = (0, 0, 0, Vec::new());
    for s in submitters {
        let a = s.await.unwrap();
        ledger.acknowledged.extend(a.created);
        ledger.attempted += a.attempted;
        unavailable += a.unavailable;
        without_retry_after += a.unavailable_without_retry_after;
        moved += a.moved;
        other.extend(a.other);
    }
    eprintln!(
        "f16: {} submissions through 13 restarts, {} created, {unavailable} answers 503 and {moved} refused \
         or dropped connections (each sent again to the other replica with its key)",
        ledger.attempted,
        ledger.acknowledged.len()
    );
    assert!(other.is_empty(), "every submission ends in 201: {other:?}");
    assert_eq!(without_retry_after, 0, "every 503 says when to retry");
    pool.close().await;
    scenario.check(&ledger, &[]).await;
    for two in &mut replicas {
        for r in two {
            r.terminate().await;
        }
    }
    scenario.sandbox.destroy().await;
    let _ = std::fs::remove_dir_all(&dir);
}
