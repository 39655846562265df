//! Baseline settings: where the store and the policy live, how often the sampler
//! runs, how long learning lasts, how many observations are kept.
//!
//! The store path is chosen by precedence: `--db` > `AN1256_DB` > the config file's
//! `db_path` > the platform default (`/var/db/an1256/an1256.db` on macOS and
//! `/var/lib/an1256/an1256.db` on Linux when root; `$XDG_STATE_HOME/an1256/an1256.db`
//! or `~/.local/state/an1256/an1256.db` otherwise). osquery passes an extension only
//! its own flags, so the environment and the config file are how a deployment
//! configures the extension.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Config file read when neither `--config` nor `AN1256_CONFIG` names one.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/an1256/config.json";
/// Policy file read when the config file names none.
pub const DEFAULT_POLICY_PATH: &str = "/etc/an1256/policy.json";
/// Largest config file read.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The config file (JSON). Every field is optional.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub db_path: Option<PathBuf>,
    pub policy_path: Option<PathBuf>,
    /// Also apply the built-in `packs/policy-default.json` rules (default true).
    pub builtin_policy: Option<bool>,
    pub sample_interval_secs: Option<u64>,
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
}

/// Resolved settings.
#[derive(Clone, Debug, PartialEq)]
pub struct BaselineConfig {
    pub db_path: PathBuf,
    pub policy_path: PathBuf,
    /// True when the policy path was named explicitly (a missing file is then an error).
    pub policy_path_explicit: bool,
    pub builtin_policy: bool,
    pub sample_interval: Duration,
    pub learning_secs: i64,
    pub observation_max_age_secs: i64,
    pub observation_max_rows: i64,
    /// Learned entries unseen this long are dropped; 0 keeps them forever.
    pub learned_max_age_secs: i64,
    /// The config file actually read, if any.
    pub config_path: Option<PathBuf>,
    /// SOCKS classifier settings (port list, handshake probe).
    pub socks: crate::judge::socks::SocksConfig,
    /// osquery may INSERT/UPDATE/DELETE `an1256_baseline`.
    pub osquery_writes: bool,
    /// The 1 s watch of untrusted processes runs in extension mode.
    pub watch: bool,
    /// Bound on the watched set (the rest is counted in `watch_overflow`).
    pub watch_max_processes: usize,
}

impl BaselineConfig {
    /// Defaults with an explicit store path (tests, embedding).
    pub fn with_db(db_path: PathBuf) -> Self {
        let limits = super::store::ObservationLimits::default();
        BaselineConfig {
            db_path,
            policy_path: PathBuf::from(DEFAULT_POLICY_PATH),
            policy_path_explicit: false,
            builtin_policy: true,
            sample_interval: Duration::from_secs(15),
            learning_secs: 7 * 86_400,
            observation_max_age_secs: limits.max_age_secs,
            observation_max_rows: limits.max_rows,
            learned_max_age_secs: limits.max_learned_age_secs,
            config_path: None,
            socks: crate::judge::socks::SocksConfig::default(),
            osquery_writes: true,
            watch: true,
            watch_max_processes: super::watch::DEFAULT_MAX_WATCHED,
        }
    }

    /// Resolves the settings: `db_flag` is `--db` (clap already folds in
    /// `AN1256_DB`), `config_flag` is `--config` / `AN1256_CONFIG`.
    pub fn resolve(
        db_flag: Option<&Path>,
        config_flag: Option<&Path>,
    ) -> Result<BaselineConfig, String> {
        let (file, config_path) = match config_flag {
            Some(path) => (read_config(path)?, Some(path.to_owned())),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => (
                read_config(Path::new(DEFAULT_CONFIG_PATH))?,
                Some(PathBuf::from(DEFAULT_CONFIG_PATH)),
            ),
            None => (ConfigFile::default(), None),
        };
        let env_db = std::env::var_os("AN1256_DB")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let db_path = db_flag
            .map(Path::to_owned)
            .or(env_db)
            .or(file.db_path.clone())
            .map_or_else(default_db_path, Ok)?;
        let mut config = BaselineConfig::with_db(db_path);
        config.config_path = config_path;
        if let Some(p) = file.policy_path {
            config.policy_path = p;
            config.policy_path_explicit = true;
        }
        if let Some(b) = file.builtin_policy {
            config.builtin_policy = b;
        }
        if let Some(s) = file.sample_interval_secs {
            if s == 0 {
                return Err("config: sample_interval_secs must be at least 1".into());
            }
            config.sample_interval = Duration::from_secs(s);
        }
        if let Some(l) = &file.learning {
            config.learning_secs =
                parse_duration(l).map_err(|e| format!("config: learning: {e}"))?;
        }
        if let Some(d) = file.observation_max_age_days {
            config.observation_max_age_secs =
                i64::try_from(d.saturating_mul(86_400)).unwrap_or(i64::MAX);
        }
        if let Some(r) = file.observation_max_rows {
            config.observation_max_rows = i64::try_from(r).unwrap_or(i64::MAX);
        }
        if let Some(d) = file.learned_max_age_days {
            config.learned_max_age_secs =
                i64::try_from(d.saturating_mul(86_400)).unwrap_or(i64::MAX);
        }
        if let Some(ports) = file.socks_ports {
            config.socks.ports = ports;
        }
        if let Some(probe) = file.socks_handshake_probe {
            config.socks.handshake_probe = probe;
        }
        if let Some(writes) = file.osquery_writes {
            config.osquery_writes = writes;
        }
        if let Some(watch) = file.watch {
            config.watch = watch;
        }
        if let Some(max) = file.watch_max_processes {
            if max == 0 {
                return Err("config: watch_max_processes must be at least 1 (set \"watch\": false to turn the watch off)".into());
            }
            config.watch_max_processes = max;
        }
        Ok(config)
    }
}

fn read_config(path: &Path) -> Result<ConfigFile, String> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("the config file {} is not valid: {e}", path.display()))
}

/// The platform default store path.
pub fn default_db_path() -> Result<PathBuf, String> {
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
        None => Err("no store path: set --db, AN1256_DB, or HOME".into()),
    }
}

/// Parses `3d`, `12h`, `30m`, `45s`, `2w` or plain seconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 3d, 12h, 30m or 3600"))?;
    let unit = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {text:?}; use s, m, h, d or w"
            ))
        }
    };
    n.checked_mul(unit)
        .ok_or_else(|| format!("duration {text:?} is too large"))
}

/// Parses a point in time: a Unix time (10+ digits), or a duration from `now`.
pub fn parse_until(text: &str, now: i64) -> Result<i64, String> {
    let t = text.trim();
    if t.len() >= 10 && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().map_err(|_| format!("{t:?} is not a Unix time"));
    }
    Ok(now.saturating_add(parse_duration(t)?))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn precedence_flag_over_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.json");
        std::fs::write(
            &cfg,
            r#"{"db_path": "/from/config.db", "policy_path": "/p.json", "sample_interval_secs": 5, "learning": "1d"}"#,
        )
        .unwrap();
        let c = BaselineConfig::resolve(Some(Path::new("/flag.db")), Some(&cfg)).unwrap();
        assert_eq!(c.db_path, PathBuf::from("/flag.db"));
        assert_eq!(c.policy_path, PathBuf::from("/p.json"));
        assert!(c.policy_path_explicit);
        assert_eq!((c.sample_interval.as_secs(), c.learning_secs), (5, 86_400));
        // AN1256_DB is read by clap into db_flag in the binary; the config file is
        // next in line.
        if std::env::var_os("AN1256_DB").is_none() {
            let c = BaselineConfig::resolve(None, Some(&cfg)).unwrap();
            assert_eq!(c.db_path, PathBuf::from("/from/config.db"));
        }
        std::fs::write(&cfg, r#"{"unknown_key": 1}"#).unwrap();
        assert!(BaselineConfig::resolve(None, Some(&cfg))
            .unwrap_err()
            .contains("unknown_key"));
    }

    #[test]
    fn socks_settings_from_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.json");
        std::fs::write(
            &cfg,
            r#"{"socks_ports": [1080, 4444], "socks_handshake_probe": true}"#,
        )
        .unwrap();
        let c = BaselineConfig::resolve(Some(Path::new("/flag.db")), Some(&cfg)).unwrap();
        assert_eq!(c.socks.ports, vec![1080, 4444]);
        assert!(c.socks.handshake_probe);
        std::fs::write(&cfg, "{}").unwrap();
        let c = BaselineConfig::resolve(Some(Path::new("/flag.db")), Some(&cfg)).unwrap();
        assert_eq!(c.socks, crate::judge::socks::SocksConfig::default());
        std::fs::write(&cfg, r#"{"socks_ports": [70000]}"#).unwrap();
        assert!(BaselineConfig::resolve(None, Some(&cfg)).is_err());
    }
}
