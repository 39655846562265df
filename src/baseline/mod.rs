//! The per-host baseline: what is normal for this host, and what was seen.
//!
//! - [`store`]: the SQLite file (entries, observations, meta, recoveries);
//! - [`identity`]: validation of baseline keys;
//! - [`policy`]: organisation-wide allowlist rules, hot-reloaded;
//! - [`sampler`]: the pass that turns live sockets into observations and, while
//!   learning, into `learned` entries;
//! - [`packs`]: the shipped query packs (the hit query `an1256 scan` runs);
//! - [`cli`]: `an1256 baseline list|approve|revoke|import|export|learn`.
//!
//! [`Baseline`] ties them together for the tables: it never fails to build (a
//! store that cannot be opened is reported in `an1256_info` and retried), so the
//! socket and process tables keep serving whatever happens to the store.

pub mod identity;
pub mod policy;
pub mod sampler;
pub mod state;
pub mod store;
pub mod watch;

use crate::platform::Host;
use crate::settings::ObservationLimits;
use crate::settings::Settings;
use policy::{Policy, PolicyRow, SubjectFacts};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::Store;

/// The baseline layer's error: why a store call, a key or a note failed.
/// `Display` tells the user what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the baseline store {path} is locked by another writer (waited up to {} ms to read, {} s to write); retry in a moment, or look for a stuck an1256 or sqlite3 process", store::READ_BUSY_TIMEOUT.as_millis(), store::BUSY_TIMEOUT.as_secs())]
    Locked { path: String },
    #[error("the baseline store {path} is open read-only ({why}); nothing is written until that is fixed")]
    ReadOnly { path: String, why: String },
    #[error("refusing the baseline store path {path}: {why}")]
    UnsafePath { path: String, why: String },
    #[error("the baseline store {path} has schema version {found}, newer than this an1256 understands ({known}); upgrade an1256 or point --db elsewhere")]
    NewerSchema {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("no baseline entry with id {0}")]
    NotFound(i64),
    /// The policy file (or the built-in policy) cannot be used; the last good
    /// rules stay in force.
    #[error("policy {file}: {why}")]
    Policy { file: String, why: String },
    #[error("baseline store {path}: {message}")]
    Sqlite { path: String, message: String },
    #[error("baseline store {path}: {message}")]
    Io { path: String, message: String },
}

/// How often a store that failed to open is tried again.
const STORE_RETRY: Duration = Duration::from_secs(30);
/// How often a policy lookup may trigger a sampler pass to learn a subject's path.
const SIGHTING_REFRESH: Duration = Duration::from_secs(2);
/// Subjects remembered from sampler passes (for path/interpreter policy rules).
const MAX_SIGHTINGS: usize = 10_000;

enum StoreSlot {
    /// Not opened yet: nothing touches the disk until a table or the sampler
    /// needs the store (`an1256 tables`, a failed start).
    Unopened,
    Open(Arc<Store>),
    Failed {
        error: StoreError,
        at: Instant,
    },
}

/// The baseline context shared by the tables, the sampler and the CLI.
pub struct Baseline {
    /// The application's settings (store path, policy, sampler, SOCKS).
    pub settings: Settings,
    host: Arc<dyn Host>,
    store: Mutex<StoreSlot>,
    pub policy: Policy,
    sightings: Mutex<HashMap<String, SubjectFacts>>,
    last_refresh: Mutex<Option<Instant>>,
    /// Identities the latest sampler pass saw: a lookup of one of them needs no new
    /// pass to locate it (that pass already verified, or failed to verify, where it
    /// runs from).
    latest_pass: Mutex<std::collections::HashSet<String>>,
    /// Sampler passes that panicked since this process started.
    sampler_panics: AtomicU64,
    /// Who this process's baseline writes are audited as.
    audit_source: store::AuditSource,
    /// The watch of untrusted processes, as its thread last reported it.
    watch_status: Mutex<watch::WatchStatus>,
    /// Failed writes of observations since this process started.
    unwritten: Mutex<UnwrittenObservations>,
}

/// Writes of observations (sampler passes, watch ticks) that failed since the
/// process started, for `an1256_info`: an observation missing from the store
/// must not look like nothing seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnwrittenObservations {
    /// Writes that failed.
    pub failed_writes: u64,
    /// Observations given up after a failed write (a sampler pass's are not
    /// written again; the watch gives up only past `watch::MAX_UNWRITTEN`).
    pub given_up: u64,
    /// Who failed last, and why.
    pub last_error: String,
    /// When a failure was last logged (a store that stays unwritable would
    /// otherwise log each watch tick).
    logged_at: Option<Instant>,
}

/// Failed writes of observations are logged at most this often (all counted).
const UNWRITTEN_LOG_INTERVAL: Duration = Duration::from_secs(60);

impl Baseline {
    /// Loads the policy; the store is opened on first use (its errors are kept
    /// and reported in `an1256_info`, not returned).
    pub fn new(settings: Settings, host: Arc<dyn Host>) -> Baseline {
        let store = StoreSlot::Unopened;
        let policy = Policy::new(
            host.clone(),
            settings.policy_path.clone(),
            settings.policy_path_explicit,
            settings.builtin_policy,
            platform_name(host.as_ref()),
        );
        Baseline {
            settings,
            host,
            store: Mutex::new(store),
            policy,
            sightings: Mutex::new(HashMap::new()),
            last_refresh: Mutex::new(None),
            latest_pass: Mutex::new(std::collections::HashSet::new()),
            sampler_panics: AtomicU64::new(0),
            audit_source: store::AuditSource::Cli,
            watch_status: Mutex::new(watch::WatchStatus::default()),
            unwritten: Mutex::new(UnwrittenObservations::default()),
        }
    }

    /// This process serves osquery (extension mode): its table writes are
    /// audited as `osquery` and obey `osquery_writes`.
    pub fn serving_osquery(mut self) -> Baseline {
        self.audit_source = store::AuditSource::Osquery;
        self
    }

    /// Who this process's baseline writes are audited as.
    pub fn audit_source(&self) -> store::AuditSource {
        self.audit_source
    }

    /// Runs one sampler pass, catching a panic: it is counted, logged and
    /// recorded as the last pass's error, and the caller goes on.
    pub fn run_guarded(&self, pass: impl FnOnce()) {
        let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(pass)) else {
            return;
        };
        let what = crate::util::panic_message(payload.as_ref());
        let total = self.sampler_panics.fetch_add(1, Ordering::Relaxed) + 1;
        log::error!("sampler pass panicked ({total} so far): {what}; the sampler goes on");
        if let Ok(store) = self.store() {
            let error = format!("sampler pass panicked: {what}");
            if let Err(e) = store.record_sample_stats(store::unix_now(), 0, 0, 1, &error) {
                log::warn!("cannot record the sampler panic: {e}");
            }
        }
    }

    /// The watch of untrusted processes as its thread last reported it (default:
    /// not running).
    pub fn watch_status(&self) -> watch::WatchStatus {
        self.watch_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_watch_status(&self, status: watch::WatchStatus) {
        *self.watch_status.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }

    /// A write of `count` observations by `writer` (sampler, watch) failed with
    /// `error`, and `given_up` of them will not be written: logged and counted.
    pub fn observations_unwritten(&self, writer: &str, count: usize, given_up: usize, error: &str) {
        let fate = if given_up == 0 && count > 0 {
            "they are kept to write at the next tick".to_owned()
        } else {
            format!("{given_up} of them are lost")
        };
        let mut unwritten = self.unwritten.lock().unwrap_or_else(|p| p.into_inner());
        unwritten.failed_writes += 1;
        unwritten.given_up = unwritten
            .given_up
            .saturating_add(u64::try_from(given_up).unwrap_or(u64::MAX));
        unwritten.last_error = format!("{writer}: {error}");
        let line = format!(
            "{writer}: cannot write {count} observations to the baseline store ({fate}): {error}; {} failed writes, {} observations lost so far (an1256_info)",
            unwritten.failed_writes, unwritten.given_up
        );
        if unwritten
            .logged_at
            .is_none_or(|at| at.elapsed() >= UNWRITTEN_LOG_INTERVAL)
        {
            unwritten.logged_at = Some(Instant::now());
            log::error!("{line}");
        } else {
            log::debug!("{line}");
        }
    }

    /// Failed writes of observations since this process started.
    pub fn unwritten_observations(&self) -> UnwrittenObservations {
        self.unwritten
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sampler passes that panicked since this process started.
    pub fn sampler_panics(&self) -> u64 {
        self.sampler_panics.load(Ordering::Relaxed)
    }

    /// The store, or why it is unavailable (re-opened at most every 30 s).
    pub fn store(&self) -> Result<Arc<Store>, StoreError> {
        let mut slot = self.store.lock().unwrap_or_else(|p| p.into_inner());
        match &*slot {
            StoreSlot::Open(s) if s.replaced() => {
                // Deleted (or swapped) under us: writes would go to an unlinked
                // file. Reopen; the rebuilt store records the loss.
                log::error!(
                    "the baseline store {} was deleted or replaced while open; reopening it",
                    s.path().display()
                );
                *slot = StoreSlot::Unopened;
                drop(slot);
                self.store()
            }
            StoreSlot::Open(s) => Ok(s.clone()),
            StoreSlot::Failed { error, at } if at.elapsed() < STORE_RETRY => Err(error.clone()),
            StoreSlot::Failed { .. } | StoreSlot::Unopened => {
                match Store::open(&self.settings.db_path, self.settings.learning_secs) {
                    Ok(s) => {
                        s.set_audit_source(self.audit_source);
                        let s = Arc::new(s);
                        *slot = StoreSlot::Open(s.clone());
                        Ok(s)
                    }
                    Err(e) => {
                        log::error!("{e}");
                        *slot = StoreSlot::Failed {
                            error: e.clone(),
                            at: Instant::now(),
                        };
                        Err(e)
                    }
                }
            }
        }
    }

    /// A read from the store failed (locked past the read timeout, I/O error):
    /// the store is set aside until the next retry, so the rest of the query goes
    /// on without waiting on it again; the error is logged once and shown in
    /// `an1256_info.store_error`.
    pub fn store_trouble(&self, error: &store::StoreError) {
        use store::StoreError::{Io, Locked, Sqlite};
        if !matches!(error, Locked { .. } | Sqlite { .. } | Io { .. }) {
            return;
        }
        log::warn!("going on without the baseline store: {error}");
        let mut slot = self.store.lock().unwrap_or_else(|p| p.into_inner());
        *slot = StoreSlot::Failed {
            error: error.clone(),
            at: Instant::now(),
        };
    }

    pub fn host(&self) -> &Arc<dyn Host> {
        &self.host
    }

    pub fn limits(&self) -> ObservationLimits {
        self.settings.limits
    }

    /// Runs one sampler pass (learning while the window is open); `None` when
    /// the store is unavailable.
    pub fn sample(&self) -> Option<sampler::PassReport> {
        self.sample_with(true)
    }

    fn sample_with(&self, may_learn: bool) -> Option<sampler::PassReport> {
        let store = match self.store() {
            Ok(s) => s,
            Err(e) => {
                log::warn!("sampler skipped: {e}");
                return None;
            }
        };
        let report = sampler::sample_once(
            self.host.as_ref(),
            &store,
            self.limits(),
            &self.settings.socks,
            may_learn,
        );
        if let Some(error) = &report.write_error {
            let seen = report.observations.len();
            // The next pass sees again the sockets that last; not the others.
            self.observations_unwritten("sampler", seen, seen, error);
        }
        let mut sightings = self.sightings.lock().unwrap_or_else(|p| p.into_inner());
        if sightings.len() > MAX_SIGHTINGS {
            sightings.clear();
        }
        for o in &report.observations {
            sightings
                .entry(o.identity.clone())
                .or_insert_with(|| SubjectFacts::from_identity(&o.identity))
                .add(&o.subject_kind, &o.path, &o.interpreter);
        }
        // A verified location holds for this pass only: never a lasting property
        // of the identity (the process may be gone, the file replaced).
        for facts in sightings.values_mut() {
            facts.verified_paths.clear();
        }
        for (identity, path) in &report.verified_executables {
            sightings
                .entry(identity.clone())
                .or_insert_with(|| SubjectFacts::from_identity(identity))
                .add_verified(path);
        }
        drop(sightings);
        *self.latest_pass.lock().unwrap_or_else(|p| p.into_inner()) = report
            .observations
            .iter()
            .map(|o| o.identity.clone())
            .collect();
        Some(report)
    }

    /// What is known of an identity: the identity itself, plus, when some rule
    /// needs a path or interpreter, what sampler passes and observations saw.
    fn facts_for(&self, identity: &str, allow_refresh: bool) -> SubjectFacts {
        let mut facts = SubjectFacts::from_identity(identity);
        let needs_location = self.policy.rules().rules.iter().any(|r| r.path.is_some());
        let known = |facts: &mut SubjectFacts| {
            let sightings = self.sightings.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(seen) = sightings.get(identity) {
                facts.add(&seen.kind, "", "");
                for p in &seen.paths {
                    facts.add("", p, "");
                }
                for i in &seen.interpreters {
                    facts.add("", "", i);
                }
                for p in &seen.verified_paths {
                    facts.add_verified(p);
                }
                return true;
            }
            false
        };
        let seen = known(&mut facts);
        // Without a verified location a path rule cannot hold: look again (below),
        // unless the latest pass already looked at this identity.
        let located_lately = || {
            self.latest_pass
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(identity)
        };
        if seen
            && (!needs_location
                || !facts.verified_paths.is_empty()
                || facts.kind == "script"
                || located_lately())
        {
            return facts;
        }
        if let (false, Ok(store)) = (seen, self.store()) {
            if let Ok(rows) = store.observations(Some(&[identity.to_owned()])) {
                for row in rows.iter().take(32) {
                    let o = &row.observation;
                    facts.add(&o.subject_kind, &o.path, &o.interpreter);
                }
                // Stored observations name paths but never verify them: with a
                // path rule in force, a fresh pass must locate the subject.
                if !rows.is_empty() && !needs_location {
                    return facts;
                }
            }
        }
        if allow_refresh {
            let mut last = self.last_refresh.lock().unwrap_or_else(|p| p.into_inner());
            let due = last.is_none_or(|t| t.elapsed() >= SIGHTING_REFRESH);
            if due {
                *last = Some(Instant::now());
                drop(last);
                if !self.locating_could_help() {
                    return facts;
                }
                // A subject that opened its socket after the last pass: one pass
                // (rate-limited) tells us its path. It records observations but
                // never learns: a query must not change what it is judging.
                self.sample_with(false);
                known(&mut facts);
            }
        }
        facts
    }

    /// Whether a locating pass could tell a rule something: always for rules on
    /// interpreters or scripts; for `path` rules only when some process runs an
    /// executable whose path one of them matches (a pass verifies only those
    /// paths). The built-in `/snap/...` rules usually match nothing, and a pass
    /// (every socket, every owner judged) is the dearest part of a CLI `scan`.
    fn locating_could_help(&self) -> bool {
        let rules = self.policy.rules();
        if rules
            .rules
            .iter()
            .any(|r| r.interpreter.is_some() || r.script.is_some())
        {
            return true;
        }
        let patterns: Vec<&str> = rules
            .rules
            .iter()
            .filter_map(|r| r.path.as_deref())
            .collect();
        if patterns.is_empty() {
            return false;
        }
        let Ok(pids) = self.host.pids() else {
            return true;
        };
        pids.into_iter().any(|pid| {
            self.host
                .executable_path(pid)
                .is_ok_and(|path| patterns.iter().any(|g| policy::glob_match(g, &path)))
        })
    }

    /// Policy rows for an identity (what `an1256_baseline` shows with
    /// `source = policy` when a query asks about that identity).
    pub fn policy_rows(&self, identity: &str) -> Vec<PolicyRow> {
        let rules = self.policy.rules();
        if rules.rules.is_empty() {
            return Vec::new();
        }
        let facts = if rules.needs_sightings() {
            self.facts_for(identity, true)
        } else {
            SubjectFacts::from_identity(identity)
        };
        rules.rows_for(&facts)
    }

    /// Policy rows for every identity observed (full scans of `an1256_baseline`).
    pub fn policy_rows_for_observed(&self) -> Vec<PolicyRow> {
        let rules = self.policy.rules();
        if rules.rules.is_empty() {
            return Vec::new();
        }
        let identities = match self.store() {
            Ok(store) => store
                .observed_identities(MAX_SIGHTINGS as i64)
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        identities
            .iter()
            .flat_map(|id| rules.rows_for(&self.facts_for(id, false)))
            .collect()
    }
}

/// `linux` / `darwin` for policy platform filters (the fake host counts as the
/// OS the tests run on).
fn platform_name(host: &dyn Host) -> &'static str {
    match host.platform() {
        "darwin" => "darwin",
        "linux" => "linux",
        _ if cfg!(target_os = "macos") => "darwin",
        _ => "linux",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::FakeHost;

    /// A query about an identity the sampler has not seen runs a locating pass only
    /// when a `path` rule could hold: some running executable matches one.
    #[test]
    fn a_locating_pass_runs_only_when_a_path_rule_can_match_a_running_executable() {
        use crate::model::fixtures::process;
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.json");
        std::fs::write(
            &policy,
            r#"{"version": 1, "rules": [{"name": "agent", "path": "/opt/agent/bin/*", "protocols": ["udp"], "reason": "r"}]}"#,
        )
        .unwrap();
        let identity = format!("sha256:{}", "d".repeat(64));
        for (exe, passes) in [("/usr/bin/curl", 0), ("/opt/agent/bin/agentd", 1)] {
            let host = Arc::new(FakeHost {
                processes: vec![process(7, exe, &[exe])],
                ..Default::default()
            });
            let mut config = Settings::with_db(dir.path().join(format!("{passes}.db")));
            config.policy_path = policy.clone();
            config.policy_path_explicit = true;
            config.builtin_policy = false;
            let baseline = Baseline::new(config, host.clone());
            assert!(baseline.policy_rows(&identity).is_empty());
            assert_eq!(
                host.socket_queries.lock().unwrap().len(),
                passes,
                "locating passes with {exe} running"
            );
        }
    }

    /// A store file deleted while the extension holds it open is noticed on the
    /// next use: reopened, the loss recorded, and learning not reopened.
    #[test]
    fn a_store_deleted_while_open_is_reopened_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("an1256.db");
        let mut settings = Settings::with_db(db.clone());
        settings.learning_secs = 0;
        let baseline = Baseline::new(settings, Arc::new(FakeHost::default()));
        let first = baseline.store().unwrap();
        let key =
            identity::validate_entry(&format!("sha256:{}", "c".repeat(64)), "udp", -1).unwrap();
        first.approve(&key, "").unwrap();
        assert!(!first.replaced());
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        assert!(first.replaced());
        let second = baseline.store().unwrap();
        assert!(!Arc::ptr_eq(&first, &second), "not reopened");
        let summary = second.summary().unwrap();
        assert_eq!((summary.entries, summary.recoveries.len()), (0, 1));
        assert!(summary.recoveries[0].reason.contains("missing"));
        assert!(
            summary.learning_until <= store::unix_now(),
            "learning reopened"
        );
    }
}
