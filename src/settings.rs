//! The application's settings, resolved in one place.
//!
//! Precedence, lowest first: built-in defaults, the config file (`--config` >
//! `AN1256_CONFIG` > `/etc/an1256/config.json` when it exists), the environment
//! (`AN1256_DB`, `AN1256_DPKG_ROOT`, `AN1256_RPM_ROOT`, `AN1256_SOCKS_PORTS`,
//! `AN1256_FD_ITERATOR`), then
//! the command line. osquery passes an extension only its own flags, so the
//! environment and the config file are how a deployment configures the extension.
//!
//! The store path, when nothing names it, is the platform default:
//! `/var/db/an1256/an1256.db` on macOS and `/var/lib/an1256/an1256.db` on Linux when
//! root; `$XDG_STATE_HOME/an1256/an1256.db` or `~/.local/state/an1256/an1256.db`
//! otherwise.

use crate::judge::socks::SocksConfig;
use crate::platform::HostConfig;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Config file read when neither `--config` nor `AN1256_CONFIG` names one.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/an1256/config.json";
/// Policy file read when the config file names none.
pub const DEFAULT_POLICY_PATH: &str = "/etc/an1256/policy.json";
/// Largest config file read.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// Bounds of `sample_interval_secs`.
const MIN_SAMPLE_INTERVAL_SECS: f64 = 0.01;
const MAX_SAMPLE_INTERVAL_SECS: f64 = 86_400.0;

/// Why the settings cannot be resolved. `Display` says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read the config file {path}: {reason} (fix it, or name another with --config or AN1256_CONFIG)")]
    ConfigUnreadable { path: String, reason: String },
    #[error("the config file {path} is not valid: {reason}")]
    ConfigInvalid { path: String, reason: String },
    /// One setting has a value it cannot take; `setting` names where it came from.
    #[error("{setting}: {problem}")]
    Invalid {
        setting: &'static str,
        problem: BadValue,
    },
    #[error("no store path: set --db, AN1256_DB, db_path in the config file, or HOME")]
    NoStorePath,
}

/// A value that does not parse as what it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not {expected}")]
pub struct BadValue {
    pub value: String,
    pub expected: String,
}

impl BadValue {
    fn new(value: &str, expected: impl Into<String>) -> BadValue {
        BadValue {
            value: value.to_owned(),
            expected: expected.into(),
        }
    }
}

/// The settings the command line can give (global options of every mode).
/// clap folds each option's environment variable in.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SettingsArgs {
    /// dpkg database root (tests point this at a fixture).
    #[arg(long, value_name = "DIR", global = true, env = "AN1256_DPKG_ROOT")]
    pub dpkg_root: Option<PathBuf>,
    /// rpm database directory, holding rpmdb.sqlite (consulted when it exists).
    #[arg(long, value_name = "DIR", global = true, env = "AN1256_RPM_ROOT")]
    pub rpm_root: Option<PathBuf>,
    /// Files larger than this many bytes are not hashed [default: 268435456].
    #[arg(long, value_name = "BYTES", global = true)]
    pub max_hash_bytes: Option<u64>,
    /// Remote ports that mark a TCP connection as SOCKS (comma list; replaces the
    /// default 1080,1081,1085,1086,9050,9150,7890,7891,10808,10809,2080).
    #[arg(long, value_name = "LIST", global = true, env = "AN1256_SOCKS_PORTS")]
    pub socks_ports: Option<String>,
    /// Confirm loopback SOCKS candidates with a SOCKS5 greeting (never sent off-host).
    #[arg(long, global = true)]
    pub socks_handshake_probe: bool,
    /// Linux, root: full socket scans take socket fds from a BPF task_file
    /// iterator instead of walking every /proc/<pid>/fd (default true).
    #[arg(long, value_name = "BOOL", global = true, env = "AN1256_FD_ITERATOR")]
    pub fd_iterator: Option<bool>,
    /// Baseline store (SQLite file). Default: /var/lib/an1256/an1256.db (Linux root),
    /// /var/db/an1256/an1256.db (macOS root), else $XDG_STATE_HOME/an1256/an1256.db.
    #[arg(long, value_name = "PATH", global = true, env = "AN1256_DB")]
    pub db: Option<PathBuf>,
    /// an1256 config file (JSON: db_path, policy_path, sample_interval_secs,
    /// learning, observation_max_age_days, observation_max_rows, learned_max_age_days,
    /// socks_ports, socks_handshake_probe, osquery_writes, watch, watch_events,
    /// fd_iterator; see packs/POLICY.md).
    #[arg(long, value_name = "PATH", global = true, env = "AN1256_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The config file (JSON). Every field is optional.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub db_path: Option<PathBuf>,
    pub policy_path: Option<PathBuf>,
    /// Also apply the built-in `packs/policy-default.json` rules (default true).
    pub builtin_policy: Option<bool>,
    /// Seconds between sampler passes; fractions are for benchmarks
    /// (`bench/resident.py` runs a day of passes in minutes).
    pub sample_interval_secs: Option<f64>,
    /// Learning window of a new store, e.g. `7d`, `12h`, or seconds.
    pub learning: Option<String>,
    pub observation_max_age_days: Option<u64>,
    pub observation_max_rows: Option<u64>,
    /// Learned entries not seen for this many days are dropped (0: never).
    pub learned_max_age_days: Option<u64>,
    /// Remote ports that mark a TCP connection `socks_port` (replaces the default list).
    pub socks_ports: Option<Vec<u16>>,
    /// Send the SOCKS5 greeting to loopback listeners that are already SOCKS
    /// candidates (default false).
    pub socks_handshake_probe: Option<bool>,
    /// Let osquery write `an1256_baseline` (default true). False makes the table
    /// read-only from osquery (writes answer `readonly`), for fleets where
    /// live-query users must not silence detections; the CLI still writes.
    pub osquery_writes: Option<bool>,
    /// Watch untrusted processes every second beside the sampler (default true).
    pub watch: Option<bool>,
    /// At most this many untrusted processes are watched (default 1024).
    pub watch_max_processes: Option<usize>,
    /// The watch subscribes to the host's exec events (default true); false:
    /// it lists the processes every second instead.
    pub watch_events: Option<bool>,
    /// Linux: full socket scans use the BPF fd iterator where it is exact
    /// (default true); false: always walk `/proc/<pid>/fd`.
    pub fd_iterator: Option<bool>,
}

/// Bounds on the observation table, applied on every pass, and on learning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObservationLimits {
    pub max_age_secs: i64,
    pub max_rows: i64,
    /// Learning stops adding entries beyond this many learned entries (a port
    /// scanner running during the learning window must not flood the baseline).
    pub max_learned: i64,
    /// Learned entries not seen for this long are dropped, so the baseline does
    /// not keep vouching for behaviour the host stopped showing; 0 never drops.
    /// Approved entries are never aged.
    pub max_learned_age_secs: i64,
}

impl Default for ObservationLimits {
    fn default() -> Self {
        ObservationLimits {
            max_age_secs: 30 * 86_400,
            max_rows: 100_000,
            max_learned: 10_000,
            max_learned_age_secs: 90 * 86_400,
        }
    }
}

/// Every setting of the application, resolved.
#[derive(Clone, Debug)]
pub struct Settings {
    /// What the OS backend honours (hash size cap, package databases, budgets).
    pub host: HostConfig,
    /// SOCKS classifier settings (port list, handshake probe).
    pub socks: SocksConfig,
    pub db_path: PathBuf,
    pub policy_path: PathBuf,
    /// True when the policy path was named explicitly (a missing file is then an error).
    pub policy_path_explicit: bool,
    pub builtin_policy: bool,
    pub sample_interval: Duration,
    pub learning_secs: i64,
    /// What the observation store keeps, and how long learned entries last.
    pub limits: ObservationLimits,
    /// The config file actually read, if any.
    pub config_path: Option<PathBuf>,
    /// osquery may INSERT/UPDATE/DELETE `an1256_baseline`.
    pub osquery_writes: bool,
    /// The 1 s watch of untrusted processes runs in extension mode.
    pub watch: bool,
    /// Bound on the watched set (the rest is counted in `watch_overflow`).
    pub watch_max_processes: usize,
    /// The watch uses the host's exec events (else it polls).
    pub watch_events: bool,
}

impl Settings {
    /// Defaults with an explicit store path (tests, embedding).
    pub fn with_db(db_path: PathBuf) -> Self {
        Settings {
            host: HostConfig::default(),
            socks: SocksConfig::default(),
            db_path,
            policy_path: PathBuf::from(DEFAULT_POLICY_PATH),
            policy_path_explicit: false,
            builtin_policy: true,
            sample_interval: Duration::from_secs(15),
            learning_secs: 7 * 86_400,
            limits: ObservationLimits::default(),
            config_path: None,
            osquery_writes: true,
            watch: true,
            watch_max_processes: crate::baseline::watch::DEFAULT_MAX_WATCHED,
            watch_events: true,
        }
    }

    /// Resolves every setting from the command line (with its environment
    /// variables folded in by clap), the config file and the defaults.
    pub fn resolve(args: &SettingsArgs) -> Result<Settings, SettingsError> {
        let (file, config_path) = match &args.config {
            Some(path) => (read_config(path)?, Some(path.to_owned())),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => (
                read_config(Path::new(DEFAULT_CONFIG_PATH))?,
                Some(PathBuf::from(DEFAULT_CONFIG_PATH)),
            ),
            None => (ConfigFile::default(), None),
        };
        let db_path = match args.db.clone().or(file.db_path.clone()) {
            Some(path) => path,
            None => default_db_path()?,
        };
        let mut settings = Settings::with_db(db_path);
        settings.config_path = config_path;
        settings.apply_file(file)?;
        settings.apply_args(args)?;
        Ok(settings)
    }

    fn apply_file(&mut self, file: ConfigFile) -> Result<(), SettingsError> {
        let days = |d: u64| i64::try_from(d.saturating_mul(86_400)).unwrap_or(i64::MAX);
        if let Some(p) = file.policy_path {
            self.policy_path = p;
            self.policy_path_explicit = true;
        }
        if let Some(b) = file.builtin_policy {
            self.builtin_policy = b;
        }
        if let Some(s) = file.sample_interval_secs {
            if !(MIN_SAMPLE_INTERVAL_SECS..=MAX_SAMPLE_INTERVAL_SECS).contains(&s) {
                return Err(SettingsError::Invalid {
                    setting: "config: sample_interval_secs",
                    problem: BadValue::new(&s.to_string(), "between 0.01 and 86400 (a day)"),
                });
            }
            self.sample_interval = Duration::from_secs_f64(s);
        }
        if let Some(l) = &file.learning {
            self.learning_secs = parse_duration(l).map_err(|problem| SettingsError::Invalid {
                setting: "config: learning",
                problem,
            })?;
        }
        if let Some(d) = file.observation_max_age_days {
            self.limits.max_age_secs = days(d);
        }
        if let Some(r) = file.observation_max_rows {
            self.limits.max_rows = i64::try_from(r).unwrap_or(i64::MAX);
        }
        if let Some(d) = file.learned_max_age_days {
            self.limits.max_learned_age_secs = days(d);
        }
        if let Some(ports) = file.socks_ports {
            self.socks.ports = ports;
        }
        if let Some(probe) = file.socks_handshake_probe {
            self.socks.handshake_probe = probe;
        }
        if let Some(writes) = file.osquery_writes {
            self.osquery_writes = writes;
        }
        if let Some(watch) = file.watch {
            self.watch = watch;
        }
        if let Some(events) = file.watch_events {
            self.watch_events = events;
        }
        if let Some(iterator) = file.fd_iterator {
            self.host.fd_iterator = iterator;
        }
        if let Some(max) = file.watch_max_processes {
            if max == 0 {
                return Err(SettingsError::Invalid {
                    setting: "config: watch_max_processes",
                    problem: BadValue::new(
                        "0",
                        "at least 1 (set \"watch\": false to turn the watch off)",
                    ),
                });
            }
            self.watch_max_processes = max;
        }
        Ok(())
    }

    fn apply_args(&mut self, args: &SettingsArgs) -> Result<(), SettingsError> {
        if let Some(bytes) = args.max_hash_bytes {
            self.host.max_hash_bytes = bytes;
        }
        if let Some(root) = &args.dpkg_root {
            self.host.dpkg_root = root.clone();
        }
        if let Some(root) = &args.rpm_root {
            self.host.rpm_root = root.clone();
        }
        if let Some(list) = &args.socks_ports {
            self.socks.ports = parse_port_list(list).map_err(|problem| SettingsError::Invalid {
                setting: "--socks-ports",
                problem,
            })?;
        }
        if args.socks_handshake_probe {
            self.socks.handshake_probe = true;
        }
        if let Some(iterator) = args.fd_iterator {
            self.host.fd_iterator = iterator;
        }
        Ok(())
    }
}

fn read_config(path: &Path) -> Result<ConfigFile, SettingsError> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| SettingsError::ConfigUnreadable {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES)
        .read_to_string(&mut text)
        .map_err(unreadable)?;
    serde_json::from_str(&text).map_err(|e| SettingsError::ConfigInvalid {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// The platform default store path.
pub fn default_db_path() -> Result<PathBuf, SettingsError> {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        return Ok(PathBuf::from(if cfg!(target_os = "macos") {
            "/var/db/an1256/an1256.db"
        } else {
            "/var/lib/an1256/an1256.db"
        }));
    }
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(state).join("an1256/an1256.db"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/state/an1256/an1256.db")),
        None => Err(SettingsError::NoStorePath),
    }
}

/// Parses a port list (`1080,9050, 7890`) as a configuration flag would give it.
pub fn parse_port_list(text: &str) -> Result<Vec<u16>, BadValue> {
    let mut ports = Vec::new();
    for word in text.split([',', ' ']).filter(|w| !w.is_empty()) {
        match word.parse::<u16>() {
            Ok(port) if port != 0 => {
                if !ports.contains(&port) {
                    ports.push(port);
                }
            }
            _ => return Err(BadValue::new(word, "a TCP port (1-65535)")),
        }
    }
    Ok(ports)
}

/// Parses `3d`, `12h`, `30m`, `45s`, `2w` or plain seconds.
pub fn parse_duration(text: &str) -> Result<i64, BadValue> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: i64 = digits
        .parse()
        .map_err(|_| BadValue::new(text, "a duration like 3d, 12h, 30m or 3600"))?;
    let unit = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(BadValue::new(
                text,
                "a duration in s, m, h, d or w (like 3d, 12h, 30m or 3600)",
            ))
        }
    };
    n.checked_mul(unit)
        .ok_or_else(|| BadValue::new(text, "a duration that fits in 64 bits of seconds"))
}

/// Parses a point in time: a Unix time (10+ digits), or a duration from `now`.
pub fn parse_until(text: &str, now: i64) -> Result<i64, BadValue> {
    let t = text.trim();
    if t.len() >= 10 && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().map_err(|_| BadValue::new(t, "a Unix time"));
    }
    Ok(now.saturating_add(parse_duration(t)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(db: Option<&str>, config: &Path) -> SettingsArgs {
        SettingsArgs {
            db: db.map(PathBuf::from),
            config: Some(config.to_owned()),
            ..SettingsArgs::default()
        }
    }

    #[test]
    fn durations_and_times() {
        assert_eq!(parse_duration("3d"), Ok(3 * 86_400));
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("2w"), Ok(14 * 86_400));
        assert!(parse_duration("3y").is_err());
        assert!(parse_duration("abc").is_err());
        assert_eq!(parse_until("1800000000", 5), Ok(1_800_000_000));
        assert_eq!(parse_until("1h", 100), Ok(3700));
    }

    #[test]
    fn port_lists() {
        assert_eq!(
            parse_port_list("1080, 9050,1080 7890"),
            Ok(vec![1080, 9050, 7890])
        );
        assert!(parse_port_list("1080,x").is_err());
        assert!(parse_port_list("0").is_err());
        assert_eq!(parse_port_list(""), Ok(vec![]));
    }

    #[test]
    fn precedence_flag_over_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.json");
        std::fs::write(
            &cfg,
            r#"{"db_path": "/from/config.db", "policy_path": "/p.json", "sample_interval_secs": 5, "learning": "1d"}"#,
        )
        .unwrap();
        let c = Settings::resolve(&args(Some("/flag.db"), &cfg)).unwrap();
        assert_eq!(c.db_path, PathBuf::from("/flag.db"));
        assert_eq!(c.policy_path, PathBuf::from("/p.json"));
        assert!(c.policy_path_explicit);
        assert_eq!((c.sample_interval.as_secs(), c.learning_secs), (5, 86_400));
        // AN1256_DB is folded into `db` by clap in the binary; the config file is
        // next in line.
        let c = Settings::resolve(&args(None, &cfg)).unwrap();
        assert_eq!(c.db_path, PathBuf::from("/from/config.db"));
        std::fs::write(&cfg, r#"{"unknown_key": 1}"#).unwrap();
        let err = Settings::resolve(&args(None, &cfg)).unwrap_err();
        assert!(matches!(err, SettingsError::ConfigInvalid { .. }), "{err}");
        assert!(err.to_string().contains("unknown_key"), "{err}");
        let missing = Settings::resolve(&args(None, &dir.path().join("none.json"))).unwrap_err();
        assert!(
            matches!(missing, SettingsError::ConfigUnreadable { .. }),
            "{missing}"
        );
    }

    #[test]
    fn socks_and_host_settings_from_the_file_and_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.json");
        std::fs::write(
            &cfg,
            r#"{"socks_ports": [1080, 4444], "socks_handshake_probe": true}"#,
        )
        .unwrap();
        let c = Settings::resolve(&args(Some("/flag.db"), &cfg)).unwrap();
        assert_eq!(c.socks.ports, vec![1080, 4444]);
        assert!(c.socks.handshake_probe);
        // The command line wins over the file.
        let mut over = args(Some("/flag.db"), &cfg);
        over.socks_ports = Some("9999".into());
        over.max_hash_bytes = Some(10);
        over.dpkg_root = Some(PathBuf::from("/fixture/dpkg"));
        let c = Settings::resolve(&over).unwrap();
        assert_eq!(c.socks.ports, vec![9999]);
        assert_eq!(c.host.max_hash_bytes, 10);
        assert_eq!(c.host.dpkg_root, PathBuf::from("/fixture/dpkg"));
        over.socks_ports = Some("99999".into());
        let err = Settings::resolve(&over).unwrap_err();
        assert!(err.to_string().starts_with("--socks-ports: "), "{err}");
        std::fs::write(&cfg, "{}").unwrap();
        let c = Settings::resolve(&args(Some("/flag.db"), &cfg)).unwrap();
        assert_eq!(c.socks, SocksConfig::default());
        assert!(c.host.fd_iterator, "the fd iterator is on by default");
        std::fs::write(&cfg, r#"{"fd_iterator": false}"#).unwrap();
        assert!(
            !Settings::resolve(&args(None, &cfg))
                .unwrap()
                .host
                .fd_iterator
        );
        let mut on = args(None, &cfg);
        on.fd_iterator = Some(true);
        assert!(
            Settings::resolve(&on).unwrap().host.fd_iterator,
            "flag over file"
        );
        std::fs::write(&cfg, "{}").unwrap();
        assert_eq!(c.host.max_hash_bytes, HostConfig::default().max_hash_bytes);
        std::fs::write(&cfg, r#"{"socks_ports": [70000]}"#).unwrap();
        assert!(Settings::resolve(&args(None, &cfg)).is_err());
    }
}
