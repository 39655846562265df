//! `an1256`: osquery extension mode (osquery's own argv) and standalone subcommands.

use an1256::platform::{self, HostConfig};
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
    /// dpkg database root (tests point this at a fixture).
    #[arg(long, value_name = "DIR", global = true, env = "AN1256_DPKG_ROOT")]
    dpkg_root: Option<PathBuf>,
    /// rpm database directory, holding rpmdb.sqlite (consulted when it exists).
    #[arg(long, value_name = "DIR", global = true, env = "AN1256_RPM_ROOT")]
    rpm_root: Option<PathBuf>,
    /// Files larger than this many bytes are not hashed.
    #[arg(long, value_name = "BYTES", global = true, default_value_t = 256 * 1024 * 1024)]
    max_hash_bytes: u64,
    /// Remote ports that mark a TCP connection as SOCKS (comma list; replaces the
    /// default 1080,1081,1085,1086,9050,9150,7890,7891,10808,10809,2080).
    #[arg(long, value_name = "LIST", global = true, env = "AN1256_SOCKS_PORTS")]
    socks_ports: Option<String>,
    /// Confirm loopback SOCKS candidates with a SOCKS5 greeting (never sent off-host).
    #[arg(long, global = true)]
    socks_handshake_probe: bool,
    /// Baseline store (SQLite file). Default: /var/lib/an1256/an1256.db (Linux root),
    /// /var/db/an1256/an1256.db (macOS root), else $XDG_STATE_HOME/an1256/an1256.db.
    #[arg(long, value_name = "PATH", global = true, env = "AN1256_DB")]
    db: Option<PathBuf>,
    /// an1256 config file (JSON: db_path, policy_path, sample_interval_secs,
    /// learning, observation_max_age_days, observation_max_rows, learned_max_age_days,
    /// socks_ports, socks_handshake_probe, osquery_writes; see packs/POLICY.md).
    #[arg(long, value_name = "PATH", global = true, env = "AN1256_CONFIG")]
    config: Option<PathBuf>,
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
        /// Another generated reference instead: socks (SOCKS signals), severity
        /// (severity factors), ecs (ECS mapping).
        #[arg(long, value_parser = ["tables", "socks", "severity", "ecs"], default_value = "tables")]
        section: String,
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
    let mut config = HostConfig {
        max_hash_bytes: cli.max_hash_bytes,
        ..HostConfig::default()
    };
    if let Some(root) = &cli.dpkg_root {
        config.dpkg_root = root.clone();
    }
    if let Some(root) = &cli.rpm_root {
        config.rpm_root = root.clone();
    }
    let host: Arc<dyn platform::Host> = Arc::from(platform::native(config));
    let baseline_config = match an1256::baseline::config::BaselineConfig::resolve(
        cli.db.as_deref(),
        cli.config.as_deref(),
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("an1256: {e}");
            return ExitCode::from(2);
        }
    };
    let mut baseline_config = baseline_config;
    if let Some(list) = &cli.socks_ports {
        match an1256::judge::socks::parse_port_list(list) {
            Ok(ports) => baseline_config.socks.ports = ports,
            Err(e) => {
                eprintln!("an1256: --socks-ports: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if cli.socks_handshake_probe {
        baseline_config.socks.handshake_probe = true;
    }
    let mut baseline = an1256::baseline::Baseline::new(baseline_config, host.clone());
    if cli.socket.is_some() {
        baseline = baseline.serving_osquery();
    }
    let baseline = Arc::new(baseline);
    let tables = an1256::all_tables_with(host, baseline.clone());
    match (&cli.socket, cli.command) {
        (Some(socket), None) => {
            let args = an1256::extension::ExtensionArgs {
                socket: socket.clone(),
                timeout: cli.timeout,
                interval: cli.interval,
                verbose: cli.verbose,
            };
            // The 1 s watch of untrusted processes runs beside the 15 s sampler.
            let mut watch = if baseline.config.watch {
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
        (Some(_), Some(_)) => {
            eprintln!("an1256: --socket starts extension mode and takes no subcommand");
            ExitCode::from(2)
        }
        (None, Some(Command::Scan(args))) => an1256::cli::scan::scan(&args, tables),
        (None, Some(Command::Query(args))) => an1256::cli::scan::query(&args, tables),
        (None, Some(Command::Baseline(args))) => an1256::cli::baseline::run(&args, &baseline),
        (None, Some(Command::Tables { section })) => {
            match section.as_str() {
                "socks" => print!("{}", an1256::judge::socks::SIGNALS_TABLE_MARKDOWN),
                "severity" => print!("{}", an1256::judge::severity::SEVERITY_TABLE_MARKDOWN),
                "ecs" => print!("{}", an1256::cli::ecs::mapping_markdown()),
                _ => print!("{}", an1256::tables::reference_markdown(&tables)),
            }
            ExitCode::SUCCESS
        }
        (None, None) => {
            eprintln!(
                "an1256: nothing to do. Try `an1256 scan` (hits on this host), `an1256 query \"SQL\"`, \
                 `an1256 tables`, or run it from osquery with --socket."
            );
            ExitCode::from(2)
        }
    }
}
