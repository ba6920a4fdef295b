//! `aiguillage`: migrate, serve, issue tokens, import the directory, run the demo, and
//! look after dead letters.

use std::process::ExitCode;

use aiguillage::{Service, parse_services};
use clap::{Parser, Subcommand};
use contracts::Role;
use platform::Config;
use platform::auth::{Claims, Scope, TokenKey};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// mimalloc instead of glibc's allocator: under load, glibc's malloc and free were about
/// a fifth of this process's CPU samples (per-message JSON, SQL rows, HTTP bodies).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "aiguillage",
    version,
    about = "Routes digital-mediation referrals to the structure that can help, and tracks them until closed."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates the database if it does not exist, then every service's objects (idempotent).
    Migrate,
    /// Runs services until SIGTERM/SIGINT.
    Serve {
        /// `all`, or a comma-separated list of referrals, directory, matcher, insights.
        #[arg(long, default_value = "all", value_parser = parse_services)]
        services: std::vec::Vec<Service>,
        /// Listen address (default: AIGUILLAGE_LISTEN, else 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Bearer tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Imports a Mednum JSON or CSV file into the directory and prints the report.
    Import {
        file: std::path::PathBuf,
        /// Only accept records of these départements (as a coordinator would).
        #[arg(long = "territory")]
        territories: Vec<String>,
    },
    /// Migrates, loads the Charente directory, prints ready-to-use tokens, and serves.
    Demo {
        #[arg(long)]
        listen: Option<String>,
    },
    /// Prints the OpenAPI 3.1 document that `GET /api/v1/openapi.json` serves.
    Openapi,
    /// Dead-lettered messages.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Prints one bearer token, alone on stdout.
    Issue {
        #[arg(long)]
        role: Role,
        #[arg(long)]
        organisation: Option<Uuid>,
        #[arg(long)]
        structure: Option<String>,
        #[arg(long = "territory")]
        territories: Vec<String>,
        /// Validity, such as 30d or 12h.
        #[arg(long, default_value = "90d")]
        ttl: String,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Shows each dead letter's type, id, reason and first failure time.
    List {
        #[arg(long)]
        service: Option<String>,
    },
    /// Puts dead letters back into their service's queue.
    Replay {
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        id: Option<String>,
    },
}

fn main() -> ExitCode {
    platform::telemetry::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(err) => {
            eprintln!("error: could not start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(Cli::parse())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Openapi = cli.command {
        println!("{}", serde_json::to_string_pretty(&aiguillage::openapi::document())?);
        return Ok(());
    }
    let config = Config::from_env()?;
    match cli.command {
        Command::Migrate => {
            let pool = aiguillage::migrate(&config).await?;
            pool.close().await;
            eprintln!("migrated");
            Ok(())
        }
        Command::Serve { services, listen } => {
            let listen = listen.unwrap_or_else(|| config.listen.clone());
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
            let shutdown = CancellationToken::new();
            aiguillage::cancel_on_signals(shutdown.clone());
            aiguillage::run(config, &services, listener, shutdown).await
        }
        Command::Token { command: TokenCommand::Issue { role, organisation, structure, territories, ttl } } => {
            let scope = match role {
                Role::Admin => Scope::All,
                Role::Referrer => Scope::Organisation(
                    organisation.ok_or_else(|| anyhow::anyhow!("--organisation UUID is required for a referrer"))?,
                ),
                Role::Mediator => Scope::Structure(
                    structure.ok_or_else(|| anyhow::anyhow!("--structure ID is required for a mediator"))?,
                ),
                Role::Coordinator => {
                    anyhow::ensure!(
                        !territories.is_empty(),
                        "--territory is required for a coordinator (repeat it for several)"
                    );
                    Scope::Territories(territories)
                }
            };
            let ttl = platform::config::parse_duration(&ttl)
                .ok_or_else(|| anyhow::anyhow!("--ttl: expected a duration such as 30d"))?;
            let claims =
                Claims::new(role, scope, chrono::Duration::from_std(ttl)?).map_err(|e| anyhow::anyhow!("{e}"))?;
            let pool = aiguillage::migrate(&config).await?;
            let key = TokenKey::load(&pool, config.token_secret.as_deref()).await?;
            pool.close().await;
            println!("{}", key.issue(&claims));
            Ok(())
        }
        Command::Import { file, territories } => {
            let bytes = std::fs::read(&file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let pool = aiguillage::migrate(&config).await?;
            let territories = (!territories.is_empty()).then_some(territories);
            let report =
                directory::import::import(&pool, &bytes, None, territories.as_deref(), config.default_weekly_capacity)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            pool.close().await;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Demo { listen } => aiguillage::demo::run(config, listen).await,
        Command::Openapi => Ok(()),
        Command::Dlq { command } => dlq(config, command).await,
    }
}

async fn dlq(config: Config, command: DlqCommand) -> anyhow::Result<()> {
    let topology = aiguillage::topology(&config.namespace);
    let known: Vec<&str> = topology.services.iter().map(|s| s.service).collect();
    let check = |s: &Option<String>| -> anyhow::Result<()> {
        match s {
            Some(s) if !known.contains(&s.as_str()) => {
                anyhow::bail!("unknown service {s}; services with a queue: {}", known.join(", "))
            }
            _ => Ok(()),
        }
    };
    let connection = lapin_connect(&config.amqp_url).await?;
    match command {
        DlqCommand::List { service } => {
            check(&service)?;
            let letters = bus::dlq::list(&connection, &topology, service.as_deref()).await?;
            println!("{}", serde_json::to_string_pretty(&letters)?);
        }
        DlqCommand::Replay { service, id } => {
            check(&service)?;
            let replayed = bus::dlq::replay(&connection, &topology, service.as_deref(), id.as_deref()).await?;
            eprintln!("replayed {} message(s)", replayed.len());
            println!("{}", serde_json::to_string_pretty(&replayed)?);
        }
    }
    Ok(())
}

async fn lapin_connect(url: &str) -> anyhow::Result<bus::Connection> {
    bus::connect(url).await
}
