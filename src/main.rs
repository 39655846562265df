//! `an1256`: osquery extension mode (osquery's own argv) and standalone subcommands.

use an1256::baseline::Baseline;
use an1256::platform;
use an1256::settings::{Settings, SettingsArgs};
use an1256::tables::TableDef;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// AN1256: unsigned binaries or scripts opening ICMP, UDP, raw or SOCKS traffic
/// outside the host's baseline.
///
/// With --socket it runs as an osquery extension (osquery passes --socket,
/// --timeout, --interval and --verbose itself). Otherwise use a subcommand.
#[derive(Parser, Debug)]
#[command(name = "an1256", version, about, long_about = None)]
struct Cli {
    /// osquery extension manager socket (extension mode).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Seconds to wait for the manager socket to appear (extension mode).
    #[arg(long, default_value_t = 3)]
    timeout: u64,
    /// Seconds between osquery health checks (extension mode).
    #[arg(long, default_value_t = 3)]
    interval: u64,
    /// Log more (osquery passes this when it runs verbose).
    #[arg(long)]
    verbose: bool,
    #[command(flatten)]
    settings: SettingsArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the AN1256 hit query on this host (no osquery needed) and print the hits.
    Scan(an1256::cli::scan::ScanArgs),
    /// Run any SQL over the tables through the embedded SQLite engine.
    Query(an1256::cli::scan::QueryArgs),
    /// Print the table reference (markdown), generated from the registered columns.
    Tables {
        /// Another generated reference instead: index (the tables, linking their
        /// pages in docs/tables/), socks (SOCKS signals), severity (severity
        /// factors), ecs (ECS mapping).
        #[arg(long, value_parser = ["tables", "index", "socks", "severity", "ecs"], default_value = "tables")]
        section: String,
        /// Write one reference page per table (columns, types, docs, example
        /// queries) into DIR instead (scripts/update-readme: docs/tables).
        #[arg(long, value_name = "DIR")]
        pages: Option<std::path::PathBuf>,
    },
    /// Manage the host baseline: list, approve, revoke, import, export, learn.
    Baseline(an1256::cli::baseline::BaselineArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before anything can log: the sampler thread, a store recovery, an audit record.
    an1256::logging::init(an1256::logging::level_for(
        cli.socket.is_some(),
        cli.verbose,
    ));
    let settings = match Settings::resolve(&cli.settings) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("an1256: {e}");
            return ExitCode::from(2);
        }
    };
    match (cli.socket, cli.command) {
        (Some(socket), None) => extension(
            settings,
            an1256::extension::ExtensionArgs {
                socket,
                timeout: cli.timeout,
                interval: cli.interval,
                verbose: cli.verbose,
            },
        ),
        (Some(_), Some(_)) => {
            eprintln!("an1256: --socket starts extension mode and takes no subcommand");
            ExitCode::from(2)
        }
        (None, Some(Command::Scan(args))) => an1256::cli::scan::scan(&args, wire(settings).1),
        (None, Some(Command::Query(args))) => an1256::cli::scan::query(&args, wire(settings).1),
        (None, Some(Command::Baseline(args))) => {
            an1256::cli::baseline::run(&args, &wire(settings).0)
        }
        (None, Some(Command::Tables { section, pages })) => tables(&section, pages, settings),
        (None, None) => {
            eprintln!(
                "an1256: nothing to do. Try `an1256 scan` (hits on this host), `an1256 query \"SQL\"`, \
                 `an1256 tables`, or run it from osquery with --socket."
            );
            ExitCode::from(2)
        }
    }
}

/// The host backend, the baseline context and every table, from the settings.
fn wire(settings: Settings) -> (Arc<Baseline>, Vec<Arc<dyn TableDef>>) {
    let host: Arc<dyn platform::Host> = Arc::from(platform::native(settings.host.clone()));
    let baseline = Arc::new(Baseline::new(settings, host.clone()));
    let tables = an1256::all_tables(host, baseline.clone());
    (baseline, tables)
}

/// Extension mode: serve osquery and run the baseline sampler beside it.
fn extension(settings: Settings, args: an1256::extension::ExtensionArgs) -> ExitCode {
    platform::prepare_for_serving();
    // Scans every few seconds: per-process facts are worth keeping between them.
    let host: Arc<dyn platform::Host> = Arc::from(platform::native(platform::HostConfig {
        remember_process_facts: true,
        ..settings.host.clone()
    }));
    // Writes from osquery are audited as such and obey `osquery_writes`.
    let baseline = Arc::new(Baseline::new(settings, host.clone()).serving_osquery());
    let tables = an1256::all_tables(host, baseline.clone());
    // The 1 s watch of untrusted processes runs beside the 15 s sampler.
    let mut watch = if baseline.settings.watch {
        match an1256::baseline::watch::start(baseline.clone()) {
            Ok(handle) => Some(handle),
            Err(e) => {
                eprintln!("an1256: cannot start the watch of untrusted processes: {e}");
                None
            }
        }
    } else {
        baseline.set_watch_status(an1256::baseline::watch::WatchStatus {
            note: "off (\"watch\": false in the config file)".into(),
            ..Default::default()
        });
        None
    };
    let mut sampler = match an1256::baseline::sampler::start(baseline) {
        Ok(handle) => Some(handle),
        Err(e) => {
            eprintln!("an1256: cannot start the baseline sampler: {e}");
            None
        }
    };
    let result = an1256::extension::run(&args, tables);
    if let Some(handle) = watch.as_mut() {
        handle.stop_within(std::time::Duration::from_secs(1));
    }
    if let Some(handle) = sampler.as_mut() {
        handle.stop_within(std::time::Duration::from_secs(1));
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("an1256: {e}");
            ExitCode::from(1)
        }
    }
}

/// `an1256 tables`: a generated reference.
fn tables(section: &str, pages: Option<std::path::PathBuf>, settings: Settings) -> ExitCode {
    if let Some(dir) = pages {
        return match an1256::cli::docs::write_pages(&wire(settings).1, &dir) {
            Ok(written) => {
                eprintln!(
                    "an1256: wrote {} table pages in {}",
                    written.len(),
                    dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("an1256: cannot write table pages in {}: {e}", dir.display());
                ExitCode::from(2)
            }
        };
    }
    match section {
        "index" => print!("{}", an1256::cli::docs::index(&wire(settings).1)),
        "socks" => print!("{}", an1256::judge::socks::SIGNALS_TABLE_MARKDOWN),
        "severity" => print!("{}", an1256::judge::severity::SEVERITY_TABLE_MARKDOWN),
        "ecs" => print!("{}", an1256::cli::ecs::mapping_markdown()),
        _ => print!("{}", an1256::tables::reference_markdown(&wire(settings).1)),
    }
    ExitCode::SUCCESS
}
