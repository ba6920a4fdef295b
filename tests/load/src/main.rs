//! `aiguillage-load`: drives a running deployment with referrals at a fixed rate (open
//! loop), learns each referral's fate from the bus, reads the backlog and the server's
//! memory, measures what PostgreSQL and RabbitMQ alone can do on the same machine, and
//! prints one JSON report on stdout (progress goes to stderr).

mod appointments;
mod ceilings;
mod events;
mod probe;
mod setup;
mod stats;
mod submit;
mod territory;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use contracts::Role;
use lapin::options::{ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use platform::auth::{Scope, TokenKey};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::events::Tracker;
use crate::setup::Api;
use crate::stats::round1;
use crate::submit::{Schedule, Submitter};
use crate::territory::Territory;

#[derive(Debug, Parser)]
#[command(name = "aiguillage-load", about = "Load generator for a running Aiguillage deployment")]
struct Cli {
    /// The deployment's HTTP base URL.
    #[arg(long, env = "AIGUILLAGE_BASE_URL", default_value = "http://127.0.0.1:8080")]
    base_url: String,
    /// The deployment's database (tokens are signed with its key; backlog and truth).
    #[arg(long, env = "DATABASE_URL", default_value = "postgres:///aiguillage")]
    database_url: String,
    #[arg(long, env = "AMQP_URL", default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp_url: String,
    /// The deployment's broker namespace.
    #[arg(long, env = "AIGUILLAGE_NAMESPACE", default_value = "aiguillage")]
    namespace: String,
    /// The deployment's token secret, when it uses one instead of its database key.
    #[arg(long, env = "AIGUILLAGE_TOKEN_SECRET", hide_env_values = true)]
    token_secret: Option<String>,
    /// Referrals per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// How long to submit (30s, 5m, 10m …).
    #[arg(long, default_value = "30s", value_parser = duration)]
    duration: Duration,
    /// The département the synthetic territory lies in.
    #[arg(long, default_value = "16")]
    territory: String,
    /// How many structures to create.
    #[arg(long, default_value_t = 200)]
    structures: usize,
    /// Total weekly capacity as a multiple of the referrals to submit.
    #[arg(long, default_value_t = 1.2)]
    capacity_factor: f64,
    /// The server process whose memory to sample (default: the one listening on the
    /// base URL's port, else `pgrep -f "aiguillage serve|aiguillage demo"`).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Report every 10 s (stderr, and "soak" in the JSON).
    #[arg(long)]
    soak: bool,
    /// Skip the PostgreSQL and RabbitMQ ceiling measurements.
    #[arg(long)]
    no_ceilings: bool,
    /// Send each submission with an Idempotency-Key, and afterwards look up the ones
    /// answered with an error: those committed anyway (a failover's indeterminate
    /// outcomes) count as created in the consistency check.
    #[arg(long)]
    idempotency_keys: bool,
    /// Every submission about the same person (the same phone number and e-mail address),
    /// as a client retrying without an Idempotency-Key, or a loop, sends them: the
    /// possible-duplicates lookup's hot spot.
    #[arg(long)]
    same_person: bool,
    /// How long each ceiling measurement runs.
    #[arg(long, default_value = "10s", value_parser = duration)]
    ceiling_duration: Duration,
    /// Maximum HTTP requests in flight; ticks beyond it are dropped.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to wait after the last tick for the remaining offered/waitlisted events.
    #[arg(long, default_value = "30s", value_parser = duration)]
    drain_timeout: Duration,
    /// Leave the run's structures accepting referrals afterwards.
    #[arg(long)]
    keep_structures: bool,
    /// Sign up one mediator per structure and one referrer for the organisation (rows in
    /// the accounts schema), so that notifications have someone to tell by e-mail.
    #[arg(long)]
    recipients: bool,
    /// The share of offers (0 to 1) the places accept and set an appointment for, three
    /// days ahead, so that the person is told (an SMS: the generator's people chose the
    /// phone) while intake goes on.
    #[arg(long, default_value_t = 0.0)]
    appointments: f64,
    /// With `--appointments`: the places accept that share of offers but set no
    /// appointment (the baseline beside which appointments and SMS are measured).
    #[arg(long, requires = "appointments")]
    accept_only: bool,
    /// Seed of the synthetic data (default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// Instead of a run: delete the namespace's queues and exchanges, then exit (refused
    /// while a consumer is attached, i.e. a server still runs).
    #[arg(long)]
    cleanup_namespace: bool,
}

fn duration(s: &str) -> Result<Duration, String> {
    platform::config::parse_duration(s)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = if cli.cleanup_namespace { cleanup_namespace(&cli).await } else { run(&cli).await };
    match result {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("aiguillage-load: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Everything a run needs to reach.
struct Deployment {
    pool: PgPool,
    admin: Api,
    key: TokenKey,
    probes: Arc<Connection>,
    namespace: String,
    rss: Option<probe::RssSampler>,
}

async fn run(cli: &Cli) -> anyhow::Result<Value> {
    if !(cli.rate > 0.0 && cli.rate.is_finite()) || cli.concurrency == 0 || cli.structures == 0 {
        bail!("--rate, --concurrency and --structures must be positive");
    }
    let run = chrono::Utc::now().format("%m%d%H%M%S").to_string();
    let seed = cli.seed.unwrap_or_else(rand::random);
    let mut rng = StdRng::seed_from_u64(seed);
    let territory = Arc::new(Territory::new(&cli.territory)?);
    let deployment = connect(cli).await?;
    eprintln!(
        "run {run}: {} referrals/s for {:?} on département {} ({} communes, {} inhabitants), seed {seed}",
        cli.rate,
        cli.duration,
        territory.code,
        territory.len(),
        territory.population()
    );

    // Our own queue first, so that no event of the run is missed.
    let tracker = Tracker::default();
    let (offers, follower) = if cli.appointments > 0.0 {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (counts, task) = appointments::start(
            deployment.admin.clone(),
            deployment.key.clone(),
            cli.appointments,
            !cli.accept_only,
            rx,
        );
        (Some(tx), Some((counts, task)))
    } else {
        (None, None)
    };
    let _events = events::listen(&cli.amqp_url, &cli.namespace, tracker.clone(), offers).await?;

    let organisation = setup::create_organisation(&deployment.admin, &run, &territory.code).await?;
    let referrer = deployment.admin.with_token(setup::token(
        &deployment.key,
        Role::Referrer,
        Scope::Organisation(organisation.into()),
    )?);
    let expected = cli.rate * cli.duration.as_secs_f64();
    let total_capacity = (expected * cli.capacity_factor).ceil() as u64;
    let plans = territory::structures(&mut rng, &territory, &run, cli.structures, total_capacity);
    let setup_started = Instant::now();
    setup::create_structures(&deployment.admin, &plans).await?;
    if cli.recipients {
        let n = setup::create_recipients(&deployment.pool, organisation, &plans).await?;
        eprintln!("{n} agents signed up to be told by e-mail");
    }
    let prefix = format!("load-{run}-");
    let visible_after =
        setup::wait_for_matcher(&deployment.admin, &deployment.pool, &prefix, &plans, Duration::from_secs(120)).await?;
    eprintln!(
        "organisation {organisation}, {} structures (weekly capacity {total_capacity}) created in {:.1} s, \
         matched from {:.1} s",
        plans.len(),
        setup_started.elapsed().as_secs_f64(),
        visible_after.as_secs_f64()
    );

    // Leaked once per run: the scheduler's tasks share it.
    let idempotency_prefix: Option<&'static str> =
        cli.idempotency_keys.then(|| &*Box::leak(format!("load-{run}-submission-").into_boxed_str()));
    let schedule = Schedule {
        rate: cli.rate,
        duration: cli.duration,
        concurrency: cli.concurrency,
        seed: seed ^ 0x5eed,
        idempotency_prefix,
        same_person: cli.same_person,
    };
    let submitter = Submitter::default();
    let reporter = Reporter::start(&deployment, &submitter, &tracker, cli.soak);
    let started = Instant::now();
    let cpu_before = probe::CpuSnapshot::take();
    let db_before = probe::DbActivity::take(&deployment.pool).await;
    let scheduled_for = submitter.run(&referrer, Arc::clone(&territory), &tracker, schedule).await;
    let submit_done = Instant::now();
    let cpu = probe::CpuSnapshot::take().since(&cpu_before);
    eprintln!("submitted for {:.1} s; waiting for the remaining events", scheduled_for.as_secs_f64());
    let drained_after = drain(&tracker, cli.drain_timeout).await;
    let soak = reporter.stop().await;
    let backlog = json!({
        "outbox": probe::outboxes(&deployment.pool).await,
        "queues": probe::queues(&deployment.probes, &deployment.namespace).await,
    });
    let (by_status, waitlist_reasons) = probe::referrals_by_status(&deployment.pool, organisation).await?;
    let hwm = deployment.rss.as_ref().and_then(|r| probe::status_mib(r.pid, "VmHWM"));

    let results = submitter.take_results();
    // What became of the submissions answered with an error: those whose key is stored
    // were committed after all, and count as created (with their events).
    let committed_anyway = match idempotency_prefix {
        Some(_) => probe::committed_anyway(&deployment.pool, &results.indeterminate, &tracker).await?,
        None => 0,
    };
    let events = tracker.summary();
    let c = &submitter.counters;
    let (sent, created, dropped) =
        (c.sent.load(Ordering::Relaxed), c.created.load(Ordering::Relaxed), c.dropped.load(Ordering::Relaxed));
    let last_event = events.last_event_at.unwrap_or(submit_done).max(submit_done);
    let end_to_end_rate = (events.offered + events.waitlisted) as f64 / (last_event - started).as_secs_f64();

    let settled_after = settle(&deployment, Duration::from_secs(180)).await.map(|_| submit_done.elapsed());
    let appointments = match &follower {
        Some((counts, _)) => json!({
            "fraction": cli.appointments,
            "accept_only": cli.accept_only,
            "offers_seen": counts.offers_seen.load(Ordering::Relaxed),
            "accepted": counts.accepted.load(Ordering::Relaxed),
            "appointed": counts.appointed.load(Ordering::Relaxed),
            "errors": counts.errors.load(Ordering::Relaxed),
            "person_messages": appointments::backlog(&deployment.pool, organisation, Duration::from_secs(120)).await,
        }),
        None => Value::Null,
    };
    let db_activity = match (db_before, probe::DbActivity::take(&deployment.pool).await) {
        (Some(before), Some(after)) => after.per_referral(&before, created),
        _ => Value::Null,
    };
    let ceilings = if cli.no_ceilings { Value::Null } else { measure_ceilings(cli, &run, end_to_end_rate).await };
    if !cli.keep_structures {
        let retired = setup::retire_structures(&deployment.admin, &plans).await;
        eprintln!("{retired} of the run's structures no longer accept referrals");
    }

    let mismatches = self_check(created + committed_anyway, &events, &by_status);
    let mut report = json!({
        "run": run,
        "organisation_id": organisation,
        "indeterminate": idempotency_prefix.map(|_| json!({
            "answered_with_an_error": results.indeterminate.len(),
            "committed_anyway": committed_anyway,
        })),
        "target_rate": cli.rate,
        "same_person": cli.same_person,
        "duration_s": cli.duration.as_secs_f64(),
        "structures": plans.len(),
        "weekly_capacity_total": total_capacity,
        "scheduled": sent + dropped,
        "submitted": sent,
        "created_201": created,
        "errors": results.errors,
        "dropped": dropped,
        "offered": events.offered,
        "waitlisted": events.waitlisted,
        "achieved_rate": round1(created as f64 / scheduled_for.as_secs_f64()),
        "end_to_end_rate": round1(end_to_end_rate),
        "submit_latency_ms": stats::summary(results.latencies_ms),
        "submit_to_offered_ms": stats::summary(events.to_offered_ms),
        "submit_to_waitlisted_ms": stats::summary(events.to_waitlisted_ms),
        "unmatched_after_wait": events.pending,
        "drained_after_s": drained_after.map(|d| round1(d.as_secs_f64())),
        "backlog": backlog,
        "backlog_empty_after_s": settled_after.map(|d| round1(d.as_secs_f64())),
        "cpu_while_submitting": cpu,
        "server_rss_mib": {
            "pid": deployment.rss.as_ref().map(|r| r.pid),
            "peak": deployment.rss.as_ref().map(|r| round1(r.peak_mib())),
            "hwm": hwm.map(round1),
        },
        "db": { "referrals_by_status": by_status, "waitlist_reasons": waitlist_reasons, "activity": db_activity },
        "ceilings": ceilings,
        "appointments": appointments,
        "consistent": mismatches.is_empty(),
        "mismatches": mismatches,
    });
    if cli.soak {
        report["soak"] = Value::Array(soak);
    }
    Ok(report)
}

async fn connect(cli: &Cli) -> anyhow::Result<Deployment> {
    let base = cli.base_url.trim_end_matches('/').to_string();
    let url = reqwest::Url::parse(&base).with_context(|| format!("--base-url {base:?}"))?;
    let pool = platform::db::pool(&cli.database_url, 4)?;
    let key = TokenKey::load(&pool, cli.token_secret.as_deref())
        .await
        .with_context(|| format!("reading the token key from {}", cli.database_url))?;
    let client =
        reqwest::Client::builder().pool_max_idle_per_host(cli.concurrency).timeout(Duration::from_secs(30)).build()?;
    let admin = Api { client, base, token: setup::token(&key, Role::Admin, Scope::All)? };
    setup::check_ready(&admin).await?;
    let properties = ConnectionProperties::default().with_connection_name("aiguillage-load probes".into());
    let probes = Connection::connect(&cli.amqp_url, properties).await.context("connecting to RabbitMQ")?;
    let pid = cli.server_pid.or_else(|| {
        let port = url.port_or_known_default()?;
        probe::listener_pid(port).or_else(probe::pgrep_server)
    });
    let rss = match pid {
        Some(pid) => {
            eprintln!("sampling the memory of process {pid}");
            Some(probe::RssSampler::start(pid))
        }
        None => {
            eprintln!("no server process found: memory will not be reported (use --server-pid)");
            None
        }
    };
    Ok(Deployment { pool, admin, key, probes: Arc::new(probes), namespace: cli.namespace.clone(), rss })
}

/// Waits until every created referral has been offered or waitlisted; the time it took
/// after the last tick, or `None` if some never were.
async fn drain(tracker: &Tracker, timeout: Duration) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if tracker.pending() == 0 {
            return Some(start.elapsed());
        }
        if start.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the outboxes and the services' queues are empty (dead letters aside), so
/// that nothing of the run competes with what comes next.
async fn settle(deployment: &Deployment, timeout: Duration) -> Option<()> {
    let start = Instant::now();
    loop {
        let outbox = probe::outboxes(&deployment.pool).await;
        let queues = probe::queues(&deployment.probes, &deployment.namespace).await;
        let waiting = |v: &Value, skip_dlq: bool| -> Option<u64> {
            // Sent e-mails are done, not waiting.
            v.as_object()?
                .iter()
                .filter(|(k, _)| !(k.ends_with("_sent") || skip_dlq && k.ends_with(".dlq")))
                .map(|(_, n)| n.as_u64())
                .sum()
        };
        if waiting(&outbox, false).zip(waiting(&queues, true)).is_some_and(|(a, b)| a + b == 0) {
            return Some(());
        }
        if start.elapsed() > timeout {
            eprintln!("the backlog was not empty {timeout:?} after the run: outbox {outbox} queues {queues}");
            return None;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Our counts against the database's: every created referral is there, and the states
/// the events told us about are the states it holds.
fn self_check(created: u64, events: &events::Summary, by_status: &BTreeMap<String, i64>) -> Vec<String> {
    let db = |s: &str| by_status.get(s).copied().unwrap_or(0) as u64;
    let total: u64 = by_status.values().map(|n| *n as u64).sum();
    let mut mismatches = Vec::new();
    let checks = [
        ("created_201", created, "referrals of the organisation", total),
        // An offer the place accepted (`--appointments`) is in progress by then.
        (
            "offered",
            events.offered,
            "offered, accepted or in progress",
            db("offered") + db("accepted") + db("in_progress"),
        ),
        ("waitlisted", events.waitlisted, "waitlisted", db("waitlisted")),
        ("unmatched_after_wait", events.pending, "submitted", db("submitted")),
    ];
    for (ours, n, theirs, m) in checks {
        if n != m {
            mismatches.push(format!("{ours} = {n} but the database has {m} {theirs}"));
        }
    }
    mismatches
}

async fn measure_ceilings(cli: &Cli, run: &str, end_to_end_rate: f64) -> Value {
    let seconds = cli.ceiling_duration.as_secs().max(1);
    let ratio = |ceiling: Option<f64>| ceiling.filter(|c| *c > 0.0).map(|c| (end_to_end_rate / c * 1e4).round() / 1e4);
    eprintln!("measuring the PostgreSQL ceiling ({seconds} s)");
    let pgbench = ceilings::pgbench_insert_tps(&cli.database_url, run, seconds)
        .await
        .inspect_err(|err| eprintln!("pgbench ceiling failed: {err:#}"))
        .ok();
    eprintln!("measuring the RabbitMQ ceilings ({seconds} s each)");
    let exclusive = ceilings::rabbitmq_confirmed_rate(&cli.amqp_url, "", ceilings::QueueKind::Exclusive, seconds, 256)
        .await
        .inspect_err(|err| eprintln!("RabbitMQ ceiling failed: {err:#}"))
        .ok();
    let quorum_queue = format!("{}.load-ceiling-{run}", cli.namespace);
    let quorum =
        ceilings::rabbitmq_confirmed_rate(&cli.amqp_url, &quorum_queue, ceilings::QueueKind::Quorum, seconds, 256)
            .await
            .inspect_err(|err| eprintln!("RabbitMQ quorum ceiling failed: {err:#}"))
            .ok();
    json!({
        "pgbench_insert_tps": pgbench.map(round1),
        "rabbitmq_confirmed_msgs_per_s": exclusive.map(round1),
        "rabbitmq_quorum_confirmed_msgs_per_s": quorum.map(round1),
        "ratio_to_pgbench": ratio(pgbench),
        "ratio_to_rabbitmq": ratio(exclusive),
        "ratio_to_rabbitmq_quorum": ratio(quorum),
    })
}

/// Progress on stderr every 5 s; in soak mode, a fuller sample every 10 s, also kept
/// for the report.
struct Reporter {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Vec<Value>>,
}

impl Reporter {
    fn start(deployment: &Deployment, submitter: &Submitter, tracker: &Tracker, soak: bool) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let pool = deployment.pool.clone();
        let probes = Arc::clone(&deployment.probes);
        let namespace = deployment.namespace.clone();
        let rss = deployment.rss.clone();
        let counters = Arc::clone(&submitter.counters);
        let submitter = submitter.clone();
        let tracker = tracker.clone();
        let task = tokio::spawn(async move {
            let every = Duration::from_secs(if soak { 10 } else { 5 });
            let start = Instant::now();
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            let mut samples = Vec::new();
            let mut last_created = 0;
            let (mut seen_latencies, mut seen_offers) = (0, 0);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {}
                }
                let created = counters.created.load(Ordering::Relaxed);
                let window_rate = (created - last_created) as f64 / every.as_secs_f64();
                last_created = created;
                let s = tracker.summary();
                let rss_mib = rss.as_ref().map(|r| round1(r.last_mib()));
                eprintln!(
                    "t={:>4.0}s created={created} ({window_rate:.0}/s) in_flight={} dropped={} offered={} \
                     waitlisted={} pending={} rss={}",
                    start.elapsed().as_secs_f64(),
                    counters.in_flight.load(Ordering::Relaxed),
                    counters.dropped.load(Ordering::Relaxed),
                    s.offered,
                    s.waitlisted,
                    s.pending,
                    rss_mib.map_or("?".into(), |m| format!("{m} MiB")),
                );
                if soak {
                    let (latencies, n) = submitter.latencies_since(seen_latencies);
                    let (offers, m) = tracker.offered_since(seen_offers);
                    (seen_latencies, seen_offers) = (n, m);
                    let outbox = probe::outboxes(&pool).await;
                    let queues = probe::queues(&probes, &namespace).await;
                    let (latencies, offers) = (stats::summary(latencies), stats::summary(offers));
                    eprintln!("        submit {latencies} → offered {offers}\n        outbox {outbox} queues {queues}");
                    samples.push(json!({
                        "elapsed_s": round1(start.elapsed().as_secs_f64()),
                        "rss_mib": rss_mib,
                        "outbox": outbox,
                        "queues": queues,
                        "window_rate": round1(window_rate),
                        "window_submit_latency_ms": latencies,
                        "window_submit_to_offered_ms": offers,
                        "offered": s.offered, "waitlisted": s.waitlisted, "pending": s.pending,
                    }));
                }
            }
            samples
        });
        Self { stop, task }
    }

    async fn stop(self) -> Vec<Value> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

/// Deletes the namespace's queues and exchanges (what `aiguillage` declares, plus the
/// ceiling queues this tool may have left).
async fn cleanup_namespace(cli: &Cli) -> anyhow::Result<Value> {
    let ns = &cli.namespace;
    let connection = Connection::connect(&cli.amqp_url, ConnectionProperties::default()).await?;
    let services = ["referrals", "directory", "matcher", "insights", "accounts", "notify"];
    let queues: Vec<String> = services.iter().flat_map(|s| [format!("{ns}.{s}"), format!("{ns}.{s}.dlq")]).collect();
    for queue in &queues {
        let channel = connection.create_channel().await?;
        let passive = QueueDeclareOptions { passive: true, ..Default::default() };
        if let Ok(q) = channel.queue_declare(queue.clone().into(), passive, FieldTable::default()).await
            && q.consumer_count() > 0
        {
            bail!("{queue} has {} consumer(s): stop the server first", q.consumer_count());
        }
    }
    let mut deleted = Vec::new();
    let exchanges: Vec<String> =
        services.iter().map(|s| format!("{ns}.{s}.dlx")).chain([format!("{ns}.events")]).collect();
    for queue in &queues {
        let channel = connection.create_channel().await?;
        if channel.queue_delete(queue.clone().into(), QueueDeleteOptions::default()).await.is_ok() {
            deleted.push(queue.clone());
        }
    }
    for exchange in &exchanges {
        let channel = connection.create_channel().await?;
        if channel.exchange_delete(exchange.clone().into(), ExchangeDeleteOptions::default()).await.is_ok() {
            deleted.push(exchange.clone());
        }
    }
    let _ = connection.close(200, "done".into()).await;
    Ok(json!({ "namespace": ns, "deleted": deleted }))
}
