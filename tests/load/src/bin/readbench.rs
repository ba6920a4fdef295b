//! `aiguillage-readbench`: times repeated GETs of pages or API reads against a running
//! deployment and prints, per path, the median, p90, p99 and maximum server round trip
//! and the size of the body. It measures; it asserts nothing (performance is never a
//! test assertion on these machines).
//!
//! ```sh
//! aiguillage-readbench --base http://127.0.0.1:8080 --bearer "$ADMIN" --requests 200 \
//!     /api/v1/referrals?limit=500 /api/v1/insights/queues?territory=16
//! aiguillage-readbench --cookie "aiguillage_session=…" /orientations /territoire
//! ```

use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser)]
#[command(name = "aiguillage-readbench", about = "Times repeated GETs and prints latency percentiles and body sizes.")]
struct Cli {
    #[arg(long, env = "AIGUILLAGE_BASE_URL", default_value = "http://127.0.0.1:8080")]
    base: String,
    /// `Authorization: Bearer` token.
    #[arg(long, env = "AIGUILLAGE_TOKEN", hide_env_values = true)]
    bearer: Option<String>,
    /// A `Cookie` header (a web session).
    #[arg(long, hide_env_values = true)]
    cookie: Option<String>,
    /// Timed requests per path, after a few untimed warm-up ones.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Paths to read, each timed on its own.
    #[arg(required = true)]
    paths: Vec<String>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * (sorted.len().saturating_sub(1)) as f64).round() as usize;
    sorted.get(rank).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    println!("path\tstatus\tp50_ms\tp90_ms\tp99_ms\tmax_ms\tbytes");
    for path in &cli.paths {
        let url = format!("{}{path}", cli.base.trim_end_matches('/'));
        let request = || {
            let mut r = client.get(&url);
            if let Some(t) = &cli.bearer {
                r = r.bearer_auth(t);
            }
            if let Some(c) = &cli.cookie {
                r = r.header(reqwest::header::COOKIE, c);
            }
            r
        };
        let mut status = 0;
        let mut bytes = 0;
        for _ in 0..cli.warmup {
            let response = request().send().await?;
            status = response.status().as_u16();
            bytes = response.bytes().await?.len();
        }
        let mut times = Vec::with_capacity(cli.requests);
        for _ in 0..cli.requests {
            let started = Instant::now();
            let response = request().send().await?;
            status = response.status().as_u16();
            bytes = response.bytes().await?.len();
            times.push(started.elapsed());
        }
        times.sort();
        println!(
            "{path}\t{status}\t{}\t{}\t{}\t{}\t{bytes}",
            ms(percentile(&times, 50.0)),
            ms(percentile(&times, 90.0)),
            ms(percentile(&times, 99.0)),
            ms(times.last().copied().unwrap_or_default()),
        );
    }
    Ok(())
}
