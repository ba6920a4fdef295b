//! What if (`POST /api/v1/simulations`): checks the request, loads the period's matching
//! profiles and first offers from the matcher's own tables (never the person: the
//! profile holds none), then replays them twice, as things are and with the changes, in
//! the pure [`crate::domain::simulate`], one at a time per server.
//!
//! A served binary replays in a worker process of its own ([`worker`]): its own session,
//! hence its own scheduling group, at the lowest CPU weight, so that simulations never
//! hold up intake. A lowered thread would not do: where the kernel groups processes by
//! session (autogroup, or systemd's cgroups), the CPU is shared between groups first, and
//! a busy simulation thread keeps the server's whole group busy against PostgreSQL's and
//! RabbitMQ's. Embedded in another program (the tests), a simulation runs on a thread.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Europe::Paris;
use contracts::events::Point;
use contracts::simulation::{
    CommuneComparison, Fidelity, OptimumView, SavedScenario, SimulationRequest, SimulationResponse, StructureLoad,
};
use contracts::validate::Errors;
use contracts::{Language, Need, StructureMode, Territory};
use platform::ApiError;
use sqlx::PgConnection;
use tokio::sync::Semaphore;

use crate::domain::engine::Demand;
use crate::domain::index::IndexedStructure;
use crate::domain::simulate::{self, Arrival, Change, Replay};

/// A period may span at most this many days.
pub const MAX_DAYS: i64 = 366;
/// A request may carry at most this many changes.
pub const MAX_CHANGES: usize = 50;

/// Simulations run one at a time per server (each uses one core at most), at the lowest
/// priority: on a 2-core machine, intake keeps the other core and takes this one back
/// whenever it needs it.
static RUNNING: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(1));

/// The niceness of a simulation: the lowest priority, so that the scheduler gives intake
/// the core whenever both want it.
const SIMULATION_NICENESS: i32 = 19;

/// Lowers the calling thread's priority (Linux: `setpriority` with a thread id changes
/// that thread only). Elsewhere, or when refused, the simulation runs at normal priority.
fn lower_own_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), SIMULATION_NICENESS) {
        tracing::warn!(error = %e, "a simulation runs at normal priority");
    }
}

/// Moves the calling process, a worker started for one simulation, out of the server's
/// scheduling group: a session of its own (Linux then gives it an autogroup of its own),
/// that group at the lowest weight, and the process at the lowest priority. Each step
/// that is refused leaves the worker a little less in the background, never stopped.
fn leave_the_foreground() {
    #[cfg(target_os = "linux")]
    {
        if let Err(e) = rustix::process::setsid() {
            tracing::warn!(error = %e, "a simulation worker shares the server's session");
        }
        // The autogroup's own niceness (sched(7)); absent when autogroup is off.
        let _ = std::fs::write("/proc/self/autogroup", SIMULATION_NICENESS.to_string());
        if let Err(e) = rustix::process::setpriority_process(None, SIMULATION_NICENESS) {
            tracing::warn!(error = %e, "a simulation worker runs at normal priority");
        }
    }
}

/// A checked request.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Parsed {
    pub territory: Territory,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub seed: u64,
    pub changes: Vec<Change>,
}

fn paris_midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_local_timezone(Paris).earliest())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
}

/// Checks the request against the structures known: each problem named by its field.
pub fn parse(req: &SimulationRequest, structures: &[IndexedStructure]) -> Result<Parsed, ApiError> {
    let mut e = Errors::new();
    let territory = match req.territory.as_deref().map(str::parse::<Territory>) {
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => {
            e.add("territory", "unknown département code");
            None
        }
        None => {
            e.add("territory", "required");
            None
        }
    };
    let mut day = |field: &str, value: Option<&str>| match value.map(|v| NaiveDate::parse_from_str(v, "%Y-%m-%d")) {
        Some(Ok(d)) => Some(d),
        Some(Err(_)) => {
            e.add(field, "expected a date, YYYY-MM-DD");
            None
        }
        None => {
            e.add(field, "required");
            None
        }
    };
    let from = day("from", req.from.as_deref());
    let to = day("to", req.to.as_deref());
    if let (Some(from), Some(to)) = (from, to) {
        if to < from {
            e.add("to", "must not be before from");
        } else if (to - from).num_days() + 1 > MAX_DAYS {
            e.add("to", format!("the period may span at most {MAX_DAYS} days"));
        }
    }
    if req.seed.is_some_and(|seed| !(0..=i64::from(i32::MAX)).contains(&seed)) {
        e.add("seed", "must be between 0 and 2147483647");
    }
    if req.changes.len() > MAX_CHANGES {
        e.add("changes", format!("at most {MAX_CHANGES} changes"));
    }
    let known: HashSet<&str> = structures.iter().map(|s| s.id.as_str()).collect();
    let mut changes = Vec::new();
    for (i, c) in req.changes.iter().enumerate().take(MAX_CHANGES) {
        let at = |name: &str| format!("changes[{i}].{name}");
        let capacity = |e: &mut Errors, field: String, v: Option<i64>| match v {
            Some(n) if (0..=10_000).contains(&n) => Some(n as u32),
            Some(_) => {
                e.add(&field, "must be between 0 and 10000");
                None
            }
            None => None,
        };
        if let Some(new) = &c.new_structure {
            let commune = new.commune_code.as_deref().and_then(|code| geo::communes().by_code(code));
            let location = match (commune, &territory) {
                (None, _) => {
                    e.add(at("new_structure.commune_code"), "unknown commune");
                    None
                }
                (Some(c), Some(t)) if c.departement != t.as_str() => {
                    e.add(at("new_structure.commune_code"), "outside the territory");
                    None
                }
                (Some(c), _) => Some(Point { lat: c.location.lat, lon: c.location.lon }),
            };
            let services: Vec<Need> = e.list(&at("new_structure.services"), new.services.as_deref(), true);
            let mut modes: Vec<StructureMode> = e.list(&at("new_structure.modes"), new.modes.as_deref(), false);
            if modes.is_empty() {
                modes.push(StructureMode::Individual);
            }
            let mut languages: Vec<Language> = e.list(&at("new_structure.languages"), new.languages.as_deref(), false);
            if languages.is_empty() {
                languages.push(Language::french());
            }
            let weekly = capacity(&mut e, at("new_structure.weekly_capacity"), new.weekly_capacity);
            if new.weekly_capacity.is_none() {
                e.add(at("new_structure.weekly_capacity"), "required");
            }
            let name = new.name.as_deref().map(str::trim).filter(|n| !n.is_empty()).unwrap_or("Nouveau lieu");
            if let (Some(location), Some(weekly), Some(t)) = (location, weekly, &territory) {
                changes.push(Change::New(Box::new(IndexedStructure {
                    id: format!("simulation-{}", i + 1).parse().map_err(|_| ApiError::internal("a structure id"))?,
                    name: name.chars().take(200).collect(),
                    territory: t.clone(),
                    location,
                    services,
                    modes,
                    languages,
                    other_languages: false,
                    accessibility: Vec::new(),
                    weekly_capacity: weekly,
                    accepting: true,
                    opening_hours: None,
                    reachable: true,
                    phone: None,
                })));
            }
            continue;
        }
        let Some(id) = c.structure_id.as_deref() else {
            e.add(at("structure_id"), "required, or new_structure");
            continue;
        };
        if !known.contains(id) {
            e.add(at("structure_id"), "unknown structure");
            continue;
        }
        match (c.closed, c.weekly_capacity) {
            (Some(true), _) => changes.push(Change::Closed { structure_id: id.to_string() }),
            (_, Some(v)) => {
                if let Some(weekly) = capacity(&mut e, at("weekly_capacity"), Some(v)) {
                    changes.push(Change::Capacity { structure_id: id.to_string(), weekly_capacity: weekly });
                }
            }
            _ => e.add(at("weekly_capacity"), "give weekly_capacity, or closed: true"),
        }
    }
    let checked = e.finish(|| ());
    match (checked, territory, from, to) {
        (Ok(()), Some(territory), Some(from), Some(to)) => {
            Ok(Parsed { territory, from, to, seed: req.seed.unwrap_or(1) as u64, changes })
        }
        (Err(errors), ..) => Err(ApiError::validation(errors)),
        _ => Err(ApiError::internal("a checked request without its fields")),
    }
}

/// The period's referrals of the territory, with their first offer.
pub async fn arrivals(conn: &mut PgConnection, p: &Parsed) -> sqlx::Result<Vec<Arrival>> {
    let (start, end) = (paris_midnight(p.from), paris_midnight(p.to + chrono::Duration::days(1)));
    type Row = (
        uuid::Uuid,
        Option<String>,
        f64,
        f64,
        Vec<String>,
        Vec<String>,
        Vec<String>,
        Vec<String>,
        String,
        Option<NaiveDate>,
        f64,
        DateTime<Utc>,
        Option<String>,
        Option<String>,
    );
    // Each profile with the structure of its first reservation and what became of it.
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT p.referral_id, p.commune_code, p.lat, p.lon, p.needs, p.modes, p.languages, p.accessibility,
                p.urgency, p.deadline, p.max_distance_km, p.submitted_at, r.structure_id, r.state
         FROM matcher.profiles p
         LEFT JOIN LATERAL (SELECT structure_id, state FROM matcher.reservations
                            WHERE referral_id = p.referral_id ORDER BY created_at, id LIMIT 1) r ON true
         WHERE p.territory = $1 AND p.submitted_at >= $2 AND p.submitted_at < $3 AND p.needs IS NOT NULL
           AND p.lat IS NOT NULL AND p.lon IS NOT NULL AND p.modes IS NOT NULL AND p.languages IS NOT NULL
           AND p.accessibility IS NOT NULL AND p.urgency IS NOT NULL AND p.max_distance_km IS NOT NULL",
    )
    .bind(p.territory.as_str())
    .bind(start)
    .bind(end)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Arrival {
            referral_id: r.0,
            commune_code: r.1,
            demand: Demand {
                location: Point { lat: r.2, lon: r.3 },
                needs: vocabulary(&r.4),
                modes: vocabulary(&r.5),
                languages: vocabulary(&r.6),
                accessibility: vocabulary(&r.7),
                urgency: r.8.parse().unwrap_or(contracts::Urgency::Normal),
                max_distance_km: r.10,
            },
            deadline: r.9,
            at: r.11,
            recorded_first_offer: r.12.map(|s| (s, r.13.as_deref() == Some("consumed"))),
        })
        .collect())
}

/// The values a profile's column holds that still parse (a vocabulary may have lost one).
fn vocabulary<T: std::str::FromStr>(values: &[String]) -> Vec<T> {
    values.iter().filter_map(|v| v.parse().ok()).collect()
}

/// Each structure's share of offers accepted, over its settled reservations of the
/// period, and the share over all of them (for structures with none, and new ones).
pub async fn acceptance(conn: &mut PgConnection, p: &Parsed) -> sqlx::Result<(HashMap<String, f64>, f64)> {
    let (start, end) = (paris_midnight(p.from), paris_midnight(p.to + chrono::Duration::days(1)));
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT structure_id, count(*) FILTER (WHERE state = 'consumed'), count(*)
         FROM matcher.reservations
         WHERE state IN ('consumed', 'released') AND created_at >= $1 AND created_at < $2
         GROUP BY structure_id",
    )
    .bind(start)
    .bind(end)
    .fetch_all(conn)
    .await?;
    let (accepted, settled) = rows.iter().fold((0, 0), |(a, s), r| (a + r.1, s + r.2));
    let overall = if settled > 0 { accepted as f64 / settled as f64 } else { 1.0 };
    Ok((rows.into_iter().map(|(id, a, s)| (id, a as f64 / s.max(1) as f64)).collect(), overall))
}

/// A period's profiles and acceptance rates, as loaded.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Period {
    arrivals: Vec<Arrival>,
    acceptance: HashMap<String, f64>,
    overall: f64,
}

/// How long a loaded period is reused, and how many are kept.
const PERIOD_KEPT_FOR: Duration = Duration::from_secs(600);
const PERIODS_KEPT: usize = 2;

/// A period ready to replay: as loaded, for a replay in this process, or already written
/// as a worker reads it (JSON), once for all the simulations that reuse it, so that a
/// simulation costs the server no more than its request and structures.
pub enum Prepared {
    InProcess(Period),
    ForWorker(Box<[u8]>),
}

/// A period loaded: its key (territory, from, to), when, and what.
type Kept = (String, Instant, Arc<Prepared>);

/// The periods a server loaded last: a coordinator tries one scenario after another on
/// the same period, and loading a département's year (100,000 profiles) takes PostgreSQL
/// seconds that intake would otherwise wait for. Each is reused for ten minutes; the
/// referrals of a period that includes today are then at most ten minutes behind.
#[derive(Default)]
pub struct Periods(Mutex<Vec<Kept>>);

/// The caller's turn: one simulation at a time per process, its loading included.
pub async fn turn() -> Result<tokio::sync::SemaphorePermit<'static>, ApiError> {
    RUNNING.acquire().await.map_err(|_| ApiError::internal("the simulation pool is closed"))
}

/// The period's profiles and acceptance rates, prepared for a worker process when there
/// is one: loaded again only after [`PERIOD_KEPT_FOR`].
pub async fn period(
    periods: &Periods,
    conn: &mut PgConnection,
    p: &Parsed,
    for_worker: bool,
) -> Result<Arc<Prepared>, ApiError> {
    let key = format!("{}/{}/{}", p.territory.as_str(), p.from, p.to);
    let fresh = |at: &Instant| at.elapsed() < PERIOD_KEPT_FOR;
    if let Ok(mut kept) = periods.0.lock() {
        kept.retain(|(_, at, _)| fresh(at));
        if let Some((_, _, period)) = kept.iter().find(|(k, _, _)| *k == key) {
            return Ok(Arc::clone(period));
        }
    }
    let arrivals = arrivals(&mut *conn, p).await?;
    let (acceptance, overall) = acceptance(&mut *conn, p).await?;
    let period = Period { arrivals, acceptance, overall };
    let period = Arc::new(if for_worker {
        let json = tokio::task::spawn_blocking(move || serde_json::to_vec(&period))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
        Prepared::ForWorker(json.into_boxed_slice())
    } else {
        Prepared::InProcess(period)
    });
    if let Ok(mut kept) = periods.0.lock() {
        kept.retain(|(k, at, _)| fresh(at) && *k != key);
        kept.push((key, Instant::now(), Arc::clone(&period)));
        let extra = kept.len().saturating_sub(PERIODS_KEPT);
        kept.drain(..extra);
    }
    Ok(period)
}

/// What a worker process is given besides the period: everything else a simulation
/// reads, and nothing live. The job is this object with the prepared period's JSON as its
/// last field, `period`.
#[derive(serde::Serialize)]
struct JobHead<'a> {
    parsed: &'a Parsed,
    structures: &'a [IndexedStructure],
    max_attempts: u32,
}

/// A job, as the worker reads it.
#[derive(serde::Deserialize)]
struct OwnedJob {
    parsed: Parsed,
    structures: Vec<IndexedStructure>,
    period: Period,
    max_attempts: u32,
}

/// The argument that makes the served binary a simulation worker (`aiguillage
/// simulation-worker`, hidden from its help).
pub const WORKER_COMMAND: &str = "simulation-worker";

/// A simulation worker's whole life: leaves the foreground, reads one job (JSON) from
/// `input`, replays it and writes the answer (JSON) to `output`.
pub fn worker(input: impl std::io::Read, output: impl std::io::Write) -> anyhow::Result<()> {
    leave_the_foreground();
    let job: OwnedJob = serde_json::from_reader(std::io::BufReader::new(input))?;
    let answer = replay_both(job.parsed, job.structures, &job.period, job.max_attempts);
    let mut output = std::io::BufWriter::new(output);
    serde_json::to_writer(&mut output, &answer)?;
    std::io::Write::flush(&mut output)?;
    Ok(())
}

/// Runs both replays: in a worker process started from `program` when there is one, else
/// on a thread of their own. The caller holds its [`turn`].
pub async fn run(
    program: Option<&std::path::Path>,
    p: Parsed,
    structures: Vec<IndexedStructure>,
    period: Arc<Prepared>,
    max_attempts: u32,
) -> Result<SimulationResponse, ApiError> {
    match (program, &*period) {
        (Some(program), Prepared::ForWorker(_)) => run_in_worker(program, p, structures, period, max_attempts).await,
        (None, Prepared::InProcess(_)) => run_on_thread(p, structures, period, max_attempts).await,
        _ => Err(ApiError::internal("a period prepared for another way of replaying")),
    }
}

/// Both replays in a worker process: the job down its stdin, the answer up its stdout.
/// The worker is killed if the request goes away (the client hung up, the server stops).
async fn run_in_worker(
    program: &std::path::Path,
    p: Parsed,
    structures: Vec<IndexedStructure>,
    period: Arc<Prepared>,
    max_attempts: u32,
) -> Result<SimulationResponse, ApiError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let failed =
        |what: &str, e: &dyn std::fmt::Display| ApiError::internal(format!("the simulation worker: {what}: {e}"));
    let Prepared::ForWorker(period_json) = &*period else {
        return Err(ApiError::internal("a period prepared for a replay in process"));
    };
    // `{"parsed":…,"structures":…,"max_attempts":…` then `,"period":` and the period.
    let mut head = serde_json::to_vec(&JobHead { parsed: &p, structures: &structures, max_attempts })
        .map_err(|e| failed("the job", &e))?;
    if head.pop() != Some(b'}') {
        return Err(ApiError::internal("the simulation job is not a JSON object"));
    }
    head.extend_from_slice(br#","period":"#);
    let mut child = tokio::process::Command::new(program)
        .arg(WORKER_COMMAND)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed("could not start", &e))?;
    let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(ApiError::internal("the simulation worker has no pipes"));
    };
    let send = async move {
        stdin.write_all(&head).await?;
        stdin.write_all(period_json).await?;
        stdin.write_all(b"}").await?;
        stdin.shutdown().await
    };
    let mut answer = Vec::new();
    let (sent, read) = tokio::join!(send, stdout.read_to_end(&mut answer));
    sent.map_err(|e| failed("the job was not taken", &e))?;
    read.map_err(|e| failed("no answer", &e))?;
    let status = child.wait().await.map_err(|e| failed("lost", &e))?;
    if !status.success() {
        return Err(failed("stopped", &status));
    }
    serde_json::from_slice(&answer).map_err(|e| failed("an unreadable answer", &e))
}

/// Both replays on a thread of their own, at the lowest priority.
async fn run_on_thread(
    p: Parsed,
    structures: Vec<IndexedStructure>,
    period: Arc<Prepared>,
    max_attempts: u32,
) -> Result<SimulationResponse, ApiError> {
    let (answer, answered) = tokio::sync::oneshot::channel();
    // A thread of its own rather than tokio's blocking pool, whose threads are reused
    // for other work: its priority is lowered for the simulation only, and it ends with it.
    std::thread::Builder::new()
        .name("simulation".to_string())
        .spawn(move || {
            lower_own_priority();
            if let Prepared::InProcess(period) = &*period {
                let _ = answer.send(replay_both(p, structures, period, max_attempts));
            }
        })
        .map_err(|_| ApiError::internal("no thread for the simulation"))?;
    answered.await.map_err(|_| ApiError::internal("the simulation stopped"))
}

/// Both replays, their optima and the answer: pure computation.
fn replay_both(p: Parsed, structures: Vec<IndexedStructure>, period: &Period, max_attempts: u32) -> SimulationResponse {
    let started = std::time::Instant::now();
    let arrivals = &period.arrivals;
    let replay = Replay {
        arrivals,
        acceptance: &period.acceptance,
        default_acceptance: period.overall,
        seed: p.seed,
        max_attempts,
    };
    let changed = simulate::apply(&structures, &p.changes);
    let baseline = simulate::run(structures.clone(), &replay);
    let weeks = weeks(p.from, p.to);
    let optimum_baseline = simulate::optimum(&structures, arrivals, weeks);
    // With no change the scenario is the baseline (a replay is deterministic): half
    // the work for the question "how close is the replay to what happened?".
    let (scenario, optimum_scenario) = if p.changes.is_empty() {
        (baseline.clone(), optimum_baseline)
    } else {
        (simulate::run(changed.clone(), &replay), simulate::optimum(&changed, arrivals, weeks))
    };
    let fidelity = simulate::fidelity(arrivals, &baseline);
    respond(
        &p,
        &structures,
        &changed,
        &baseline,
        &scenario,
        weeks,
        fidelity,
        optimum_baseline,
        optimum_scenario,
        started,
    )
}

/// ISO weeks touched by the period (each brings its capacity).
fn weeks(from: NaiveDate, to: NaiveDate) -> u32 {
    let days = (to - from).num_days().max(0) as u32 + 1;
    days.div_ceil(7).max(1)
}

#[allow(clippy::too_many_arguments)]
fn respond(
    p: &Parsed,
    original: &[IndexedStructure],
    changed: &[IndexedStructure],
    baseline: &simulate::Run,
    scenario: &simulate::Run,
    weeks: u32,
    fidelity: simulate::Fidelity,
    optimum_baseline: Option<simulate::Optimum>,
    optimum_scenario: Option<simulate::Optimum>,
    started: std::time::Instant,
) -> SimulationResponse {
    let communes = baseline
        .communes
        .iter()
        .map(|(code, b)| CommuneComparison {
            commune_code: code.clone(),
            commune_name: geo::communes().by_code(code).map(|c| c.name.clone()),
            baseline: b.clone(),
            scenario: scenario.communes.get(code).cloned().unwrap_or_default(),
        })
        .collect();
    let load = |placed: usize, weekly: u32| {
        let places = f64::from(weekly) * f64::from(weeks);
        if places > 0.0 { ((placed as f64 / places) * 1000.0).round() / 1000.0 } else { 0.0 }
    };
    // The territory's structures, and any other that took referrals in either run.
    let mut structures: BTreeMap<String, StructureLoad> = BTreeMap::new();
    let original: HashMap<&str, &IndexedStructure> = original.iter().map(|o| (o.id.as_str(), o)).collect();
    for s in changed {
        let id = s.id.to_string();
        let in_territory = s.territory == p.territory;
        let (b, sc) = (baseline.placed_at.get(&id).copied(), scenario.placed_at.get(&id).copied());
        if !(in_territory || b.is_some() || sc.is_some()) {
            continue;
        }
        let before = original.get(s.id.as_str()).copied();
        let places = |s: &IndexedStructure| if s.accepting { s.weekly_capacity } else { 0 };
        structures.insert(
            id.clone(),
            StructureLoad {
                structure_id: before.is_some().then(|| id.clone()),
                name: s.name.clone(),
                baseline_placed: b.unwrap_or(0),
                scenario_placed: sc.unwrap_or(0),
                baseline_load: before.map_or(0.0, |o| load(b.unwrap_or(0), places(o))),
                scenario_load: load(sc.unwrap_or(0), places(s)),
            },
        );
    }
    SimulationResponse {
        territory: p.territory.to_string(),
        from: p.from.to_string(),
        to: p.to.to_string(),
        seed: p.seed,
        baseline: baseline.metrics.clone(),
        scenario: scenario.metrics.clone(),
        communes,
        structures: structures.into_values().collect(),
        fidelity: Fidelity {
            compared: fidelity.compared,
            same_first_offer: fidelity.same_first_offer,
            share: fidelity.share,
        },
        optimum_baseline: optimum_baseline.map(optimum_view),
        optimum_scenario: optimum_scenario.map(optimum_view),
        elapsed_ms: started.elapsed().as_millis() as u64,
        assumptions: vec![
            "Each offer is answered at once: it never holds a place while pending.".into(),
            "Each structure accepts with its acceptance rate over the period; new structures with the territory's."
                .into(),
            "Structures are as they are today, before the changes.".into(),
        ],
    }
}

fn optimum_view(o: simulate::Optimum) -> OptimumView {
    OptimumView { placed: o.placed, placed_share: o.placed_share, distance_km_mean: o.distance_km_mean }
}

/// Saves `request` under `name` for the territory, replacing a scenario of that name.
pub async fn save(
    conn: &mut PgConnection,
    territory: &str,
    name: &str,
    request: &SimulationRequest,
) -> Result<SavedScenario, ApiError> {
    let body = serde_json::to_value(request).map_err(ApiError::internal)?;
    let (id, saved_at): (uuid::Uuid, DateTime<Utc>) = sqlx::query_as(
        "INSERT INTO matcher.simulation_scenarios (id, territory, name, request) VALUES ($1, $2, $3, $4)
         ON CONFLICT (territory, name) DO UPDATE SET request = excluded.request, saved_at = now()
         RETURNING id, saved_at",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(territory)
    .bind(name)
    .bind(&body)
    .fetch_one(conn)
    .await?;
    Ok(SavedScenario {
        id,
        territory: territory.to_string(),
        name: name.to_string(),
        request: request.clone(),
        saved_at,
    })
}

/// The territory's scenarios, newest first.
pub async fn saved(conn: &mut PgConnection, territory: &str) -> Result<Vec<SavedScenario>, ApiError> {
    let rows: Vec<(uuid::Uuid, String, serde_json::Value, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, name, request, saved_at FROM matcher.simulation_scenarios
         WHERE territory = $1 ORDER BY saved_at DESC, id",
    )
    .bind(territory)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(id, name, request, saved_at)| {
            let request = serde_json::from_value(request).map_err(ApiError::internal)?;
            Ok(SavedScenario { id, territory: territory.to_string(), name, request, saved_at })
        })
        .collect()
}
