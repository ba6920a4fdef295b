//! Looking at the running deployment from outside: its process (memory), its outboxes
//! and queues (backlog), and what its database says about the run's referrals.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lapin::Connection;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

/// The process listening on `port` (any address), found through the socket inodes of
/// `/proc/net/tcp{,6}` and the file descriptors of every process.
pub fn listener_pid(port: u16) -> Option<u32> {
    let mut inodes = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (fields.get(1), fields.get(3), fields.get(9)) else {
                continue;
            };
            let listening = *state == "0A";
            let local_port = local.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            if listening && local_port == Some(port) && *inode != "0" {
                inodes.insert(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let processes = std::fs::read_dir("/proc").ok()?;
    for process in processes.flatten() {
        let Some(pid) = process.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && target.to_str().is_some_and(|t| inodes.contains(t))
            {
                return Some(pid);
            }
        }
    }
    None
}

/// The oldest `aiguillage serve|demo` process, when the listener cannot be found.
pub fn pgrep_server() -> Option<u32> {
    let out = std::process::Command::new("pgrep").args(["-o", "-f", "aiguillage (serve|demo)"]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| l.trim().parse().ok())
}

/// A `kB` field of `/proc/{pid}/status`, in MiB.
pub fn status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The server's resident memory, sampled every second; the peak is kept in KiB.
#[derive(Debug, Clone)]
pub struct RssSampler {
    pub pid: u32,
    peak_kib: Arc<AtomicU64>,
    last_kib: Arc<AtomicU64>,
}

impl RssSampler {
    pub fn start(pid: u32) -> Self {
        let sampler = Self { pid, peak_kib: Arc::new(AtomicU64::new(0)), last_kib: Arc::new(AtomicU64::new(0)) };
        let s = sampler.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(mib) = status_mib(s.pid, "VmRSS") else { break };
                let kib = (mib * 1024.0) as u64;
                s.last_kib.store(kib, Ordering::Relaxed);
                s.peak_kib.fetch_max(kib, Ordering::Relaxed);
            }
        });
        sampler
    }

    pub fn peak_mib(&self) -> f64 {
        self.peak_kib.load(Ordering::Relaxed) as f64 / 1024.0
    }

    pub fn last_mib(&self) -> f64 {
        self.last_kib.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

/// Unpublished events in each service's outbox (insights publishes nothing).
pub async fn outboxes(pool: &PgPool) -> Value {
    async fn count(pool: &PgPool, sql: &'static str) -> Value {
        match sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await {
            Ok(n) => json!(n),
            Err(err) => json!(format!("error: {err}")),
        }
    }
    json!({
        "referrals": count(pool, "SELECT count(*) FROM referrals.outbox").await,
        "matcher": count(pool, "SELECT count(*) FROM matcher.outbox").await,
        "directory": count(pool, "SELECT count(*) FROM directory.outbox").await,
        // E-mails not yet sent (and webhook deliveries not yet made), when notify runs.
        "notify_emails_pending": count(pool, "SELECT count(*) FROM notify.messages WHERE status = 'pending'").await,
        "notify_emails_sent": count(pool, "SELECT count(*) FROM notify.messages WHERE status = 'sent'").await,
        "notify_webhooks_pending": count(pool, "SELECT count(*) FROM notify.webhook_deliveries WHERE status = 'pending'").await,
    })
}

/// Ready messages in the services' queues and dead-letter queues (passive declares;
/// each on its own channel, since a missing queue closes the channel).
pub async fn queues(connection: &Connection, namespace: &str) -> Value {
    let mut out = serde_json::Map::new();
    for service in ["referrals", "matcher", "insights", "notify"] {
        for name in [format!("{namespace}.{service}"), format!("{namespace}.{service}.dlq")] {
            let depth = async {
                let channel = connection.create_channel().await?;
                let passive = QueueDeclareOptions { passive: true, ..Default::default() };
                let q = channel.queue_declare(name.clone().into(), passive, FieldTable::default()).await?;
                let _ = channel.close(200, "probe done".into()).await;
                Ok::<_, lapin::Error>(q.message_count())
            }
            .await;
            out.insert(name, depth.map_or_else(|err| json!(format!("error: {err}")), |d| json!(d)));
        }
    }
    Value::Object(out)
}

/// The run's referrals by status, and the waitlisted ones by reason, as the database
/// has them.
pub async fn referrals_by_status(
    pool: &PgPool,
    organisation: Uuid,
) -> Result<(BTreeMap<String, i64>, BTreeMap<String, i64>), sqlx::Error> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM referrals.referrals WHERE organisation_id = $1 GROUP BY status")
            .bind(organisation)
            .fetch_all(pool)
            .await?;
    let reasons: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT waitlist_reason, count(*) FROM referrals.referrals \
         WHERE organisation_id = $1 AND status = 'waitlisted' GROUP BY waitlist_reason",
    )
    .bind(organisation)
    .fetch_all(pool)
    .await?;
    Ok((
        rows.into_iter().collect(),
        reasons.into_iter().map(|(r, n)| (r.unwrap_or_else(|| "none".into()), n)).collect(),
    ))
}

/// Of the submissions answered with an error, those whose idempotency key is stored: they
/// were committed anyway. Each is given to the tracker as created when it was sent (its
/// events, seen already, then count). Returns how many.
pub async fn committed_anyway(
    pool: &PgPool,
    indeterminate: &[(String, std::time::Instant)],
    tracker: &crate::events::Tracker,
) -> Result<u64, sqlx::Error> {
    let keys: Vec<&str> = indeterminate.iter().map(|(k, _)| k.as_str()).collect();
    let rows: Vec<(String, Uuid)> =
        sqlx::query_as("SELECT key, referral_id FROM referrals.idempotency_keys WHERE key = ANY($1)")
            .bind(&keys)
            .fetch_all(pool)
            .await?;
    let sent: std::collections::HashMap<&str, std::time::Instant> =
        indeterminate.iter().map(|(k, at)| (k.as_str(), *at)).collect();
    for (key, id) in &rows {
        if let Some(at) = sent.get(key.as_str()) {
            tracker.created(*id, *at);
        }
    }
    Ok(rows.len() as u64)
}

/// How many of the run's structures the matcher's read model holds.
pub async fn matcher_structures(pool: &PgPool, prefix: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM matcher.structures WHERE id LIKE $1 || '%' AND NOT removed")
        .bind(prefix)
        .fetch_one(pool)
        .await
}

/// The database's transactions and row changes so far (`pg_stat_database`).
#[derive(Debug, Clone, Copy, Default)]
pub struct DbActivity {
    transactions: i64,
    inserted: i64,
    updated: i64,
    deleted: i64,
}

impl DbActivity {
    pub async fn take(pool: &PgPool) -> Option<Self> {
        let row: (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT xact_commit + xact_rollback, tup_inserted, tup_updated, tup_deleted \
             FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(pool)
        .await
        .ok()?;
        Some(Self { transactions: row.0, inserted: row.1, updated: row.2, deleted: row.3 })
    }

    /// What happened since `earlier`, per referral created in between (the whole
    /// database: other clients count too).
    pub fn per_referral(&self, earlier: &Self, referrals: u64) -> Value {
        let per = |now: i64, then: i64| crate::stats::round1((now - then) as f64 / referrals.max(1) as f64);
        json!({
            "transactions": self.transactions - earlier.transactions,
            "transactions_per_referral": per(self.transactions, earlier.transactions),
            "rows_inserted_per_referral": per(self.inserted, earlier.inserted),
            "rows_updated_per_referral": per(self.updated, earlier.updated),
            "rows_deleted_per_referral": per(self.deleted, earlier.deleted),
        })
    }
}

/// CPU time at one moment: the whole machine, and each command name (`aiguillage`,
/// `postgres`, `beam.smp` …) summed over its processes, in clock ticks.
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    at: std::time::Instant,
    busy: u64,
    total: u64,
    by_command: BTreeMap<String, u64>,
}

impl CpuSnapshot {
    pub fn take() -> Self {
        let (busy, total) = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                let ticks: Vec<u64> =
                    s.lines().next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
                // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
                let total: u64 = ticks.iter().take(8).sum();
                let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
                Some((total - idle, total))
            })
            .unwrap_or((0, 0));
        let mut by_command = BTreeMap::new();
        if let Ok(processes) = std::fs::read_dir("/proc") {
            for process in processes.flatten() {
                if !process.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())) {
                    continue;
                }
                let Ok(stat) = std::fs::read_to_string(process.path().join("stat")) else { continue };
                let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
                let command = stat[open + 1..close].to_string();
                // After the command: state ppid … utime (14th field) stime (15th).
                let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
                let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                *by_command.entry(command).or_default() += ticks(11) + ticks(12);
            }
        }
        Self { at: std::time::Instant::now(), busy, total, by_command }
    }

    /// Since `earlier`: how busy the machine was (% of all cores) and the commands that
    /// used at least 1 % of a core (100 % = one core).
    pub fn since(&self, earlier: &Self) -> Value {
        let seconds = self.at.duration_since(earlier.at).as_secs_f64().max(1e-3);
        let hz = clock_ticks_per_second();
        let mut by_command: Vec<(String, f64)> = self
            .by_command
            .iter()
            .map(|(c, t)| {
                let used = t.saturating_sub(earlier.by_command.get(c).copied().unwrap_or(0));
                (c.clone(), used as f64 / hz / seconds * 100.0)
            })
            .filter(|(_, pct)| *pct >= 1.0)
            .collect();
        by_command.sort_by(|a, b| b.1.total_cmp(&a.1));
        let total = self.total.saturating_sub(earlier.total).max(1) as f64;
        json!({
            "window_s": crate::stats::round1(seconds),
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "machine_busy_pct": crate::stats::round1(self.busy.saturating_sub(earlier.busy) as f64 / total * 100.0),
            "by_command_pct_of_one_core": by_command
                .into_iter()
                .map(|(c, pct)| (c, json!(crate::stats::round1(pct))))
                .collect::<serde_json::Map<_, _>>(),
        })
    }
}

fn clock_ticks_per_second() -> f64 {
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_memory() {
        let rss = status_mib(std::process::id(), "VmRSS").unwrap();
        assert!(rss > 0.1, "{rss}");
        assert!(status_mib(std::process::id(), "VmRS").is_none());
    }

    #[test]
    fn counts_cpu_by_command() {
        let before = CpuSnapshot::take();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        let cpu = CpuSnapshot::take().since(&before);
        std::hint::black_box(x);
        assert!(cpu["machine_busy_pct"].as_f64().unwrap() > 0.0, "{cpu}");
        assert!(!cpu["by_command_pct_of_one_core"].as_object().unwrap().is_empty(), "{cpu}");
    }

    #[test]
    fn finds_the_process_listening_on_a_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(listener_pid(port), Some(std::process::id()));
    }
}
