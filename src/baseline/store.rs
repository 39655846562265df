//! The baseline store: one SQLite file (WAL, `busy_timeout`, `user_version`
//! migrations) holding baseline entries, observations, meta values and recovery
//! events. Created 0600 in a 0700 directory without following symlinks; a corrupt
//! file is renamed aside (never deleted) and a fresh store starts. Every write is
//! one `BEGIN IMMEDIATE` transaction, so concurrent writers (threads or processes,
//! each with its own connection) serialise instead of losing updates.

use super::identity::{validate_entry, validate_note, EntryKey};
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// How long a writer waits for another writer before answering `Locked`.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a read (and opening) waits for a lock holder: a busy store must not
/// hold a query up, detection goes on without it.
pub const READ_BUSY_TIMEOUT: Duration = Duration::from_millis(300);

/// The schema this build writes. Each step of `MIGRATIONS` moves `user_version`
/// up by one; a store with a newer version is refused, never downgraded.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1
    "CREATE TABLE entries (
        id INTEGER PRIMARY KEY,
        identity TEXT NOT NULL,
        protocol_name TEXT NOT NULL,
        remote_port INTEGER NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('learned', 'approved')),
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        seen_count INTEGER NOT NULL DEFAULT 0,
        note TEXT NOT NULL DEFAULT '',
        UNIQUE (identity, protocol_name, remote_port)
    );
    CREATE TABLE observations (
        id INTEGER PRIMARY KEY,
        identity TEXT NOT NULL,
        protocol_name TEXT NOT NULL,
        remote_port INTEGER NOT NULL,
        remote_scope TEXT NOT NULL,
        remote_address TEXT NOT NULL DEFAULT '',
        pid INTEGER NOT NULL DEFAULT 0,
        path TEXT NOT NULL DEFAULT '',
        exe_path TEXT NOT NULL DEFAULT '',
        interpreter TEXT NOT NULL DEFAULT '',
        subject_kind TEXT NOT NULL DEFAULT '',
        subject_trusted INTEGER NOT NULL DEFAULT 0,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        count INTEGER NOT NULL DEFAULT 1,
        UNIQUE (identity, protocol_name, remote_port, remote_scope)
    );
    CREATE INDEX observations_last_seen ON observations (last_seen);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE recoveries (
        id INTEGER PRIMARY KEY,
        time INTEGER NOT NULL,
        moved_to TEXT NOT NULL,
        reason TEXT NOT NULL
    );",
    // 1 -> 2: what an1256_hits_recent needs to score severity like an1256_hits.
    "ALTER TABLE observations ADD COLUMN socket_type TEXT NOT NULL DEFAULT '';
    ALTER TABLE observations ADD COLUMN script_kind TEXT NOT NULL DEFAULT '';
    ALTER TABLE observations ADD COLUMN script_quarantined INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE observations ADD COLUMN reason TEXT NOT NULL DEFAULT '';",
    // 2 -> 3: the audit trail of baseline writes (an1256_baseline_audit).
    "CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        time INTEGER NOT NULL,
        source TEXT NOT NULL,
        action TEXT NOT NULL,
        entry_id INTEGER NOT NULL DEFAULT 0,
        before TEXT NOT NULL DEFAULT '',
        after TEXT NOT NULL DEFAULT ''
    );",
    // 3 -> 4: the start time of the process an observation's details come from, so
    // an1256_hits_recent scores "new" against that process, not against the clock.
    "ALTER TABLE observations ADD COLUMN start_time INTEGER NOT NULL DEFAULT 0;",
];

/// Sightings of one observation key closer together than this belong to one
/// appearance, whose details (pid, addresses, socket type, reason…) stay those of
/// its first sighting: `an1256_hits_recent` (a differential query over the last
/// `APPEARANCE_GAP_SECS`) then logs each appearance once. A later sighting starts
/// a new appearance with fresh details.
pub const APPEARANCE_GAP_SECS: i64 = 180;

/// Audit records kept (the oldest beyond this are pruned on each audited write).
pub const MAX_AUDIT_ROWS: i64 = 100_000;
/// Audit records of one write logged one by one (the rest are counted).
const MAX_AUDIT_LOG_LINES: usize = 20;

/// Who made a baseline write (`an1256_baseline_audit.source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditSource {
    /// The CLI (`an1256 baseline …`, `an1256 query` writes).
    Cli,
    /// osquery (INSERT/UPDATE/DELETE on an1256_baseline in extension mode).
    Osquery,
}

impl AuditSource {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditSource::Cli => "cli",
            AuditSource::Osquery => "osquery",
        }
    }
}

/// One audit record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditRow {
    pub id: i64,
    pub time: i64,
    pub source: String,
    pub action: String,
    pub entry_id: i64,
    /// The entry before the write, as JSON (empty when there was none).
    pub before: String,
    /// The entry after the write, as JSON (empty when it is gone).
    pub after: String,
}

pub use super::StoreError;

/// Where a baseline entry comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Learned,
    Approved,
    Policy,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Learned => "learned",
            Source::Approved => "approved",
            Source::Policy => "policy",
        }
    }

    pub fn parse(text: &str) -> Option<Source> {
        match text {
            "learned" => Some(Source::Learned),
            "approved" => Some(Source::Approved),
            "policy" => Some(Source::Policy),
            _ => None,
        }
    }
}

/// One stored baseline entry (also the export/import format).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(default, skip_serializing)]
    pub id: i64,
    pub identity: String,
    pub protocol_name: String,
    #[serde(default = "any_port")]
    pub remote_port: i64,
    #[serde(default = "approved")]
    pub source: Source,
    #[serde(default)]
    pub first_seen: i64,
    #[serde(default)]
    pub last_seen: i64,
    #[serde(default)]
    pub seen_count: i64,
    #[serde(default)]
    pub note: String,
}

fn any_port() -> i64 {
    -1
}
fn approved() -> Source {
    Source::Approved
}

/// What the sampler saw for one (identity, protocol, port, scope) in one pass.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Observation {
    pub identity: String,
    pub protocol_name: String,
    pub remote_port: i64,
    pub remote_scope: String,
    pub remote_address: String,
    pub pid: i64,
    /// The subject's path (script path for scripts).
    pub path: String,
    pub exe_path: String,
    pub interpreter: String,
    pub subject_kind: String,
    pub subject_trusted: bool,
    /// The socket's type: dgram, raw or stream (severity: raw sockets).
    pub socket_type: String,
    /// The script invocation kind of the subject's process (severity: inline code).
    pub script_kind: String,
    /// The script carried the macOS quarantine attribute (severity).
    pub script_quarantined: bool,
    /// The socket's `reason` list (severity: SOCKS servers).
    pub reason: String,
    /// Start time (Unix seconds) of the process `pid`.
    pub start_time: i64,
}

/// A stored observation row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObservationRow {
    pub id: i64,
    #[serde(flatten)]
    pub observation: Observation,
    pub first_seen: i64,
    pub last_seen: i64,
    pub count: i64,
}

pub use crate::settings::ObservationLimits;

/// What one recorded pass changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassWrite {
    pub observations: usize,
    pub learned: usize,
    /// Not learned because `max_learned` was reached.
    pub learning_capped: usize,
    pub pruned: usize,
    /// Learned entries dropped for not being seen within `max_learned_age_secs`.
    pub expired: usize,
}

/// A corrupt store that was moved aside.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecoveryEvent {
    pub time: i64,
    pub moved_to: String,
    pub reason: String,
}

/// Counts and meta values for `an1256_info`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreSummary {
    pub created_at: i64,
    pub learning_until: i64,
    pub entries: i64,
    pub learned_entries: i64,
    pub approved_entries: i64,
    pub observations: i64,
    pub last_sample_time: i64,
    pub last_sample_duration_ms: i64,
    pub last_sample_cpu_ms: i64,
    pub last_sample_errors: i64,
    pub sampler_errors: i64,
    pub last_sample_error: String,
    pub recoveries: Vec<RecoveryEvent>,
}

pub use crate::util::time::unix_now;

/// An open store. One connection behind a mutex: the tables, the sampler and the
/// CLI of one process share it; other processes open their own.
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// Why the store is open read-only (`None`: read-write).
    read_only: Option<String>,
    /// How long a write waits for another writer, in ms (`BUSY_TIMEOUT`).
    write_timeout_ms: std::sync::atomic::AtomicU64,
    /// The file opened (device, inode), to notice it deleted or replaced.
    file_id: FileId,
    /// Who this process writes for, in the audit trail.
    audit_source: Mutex<AuditSource>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store at `path`. A corrupt or non-SQLite
    /// file is renamed to `<name>.corrupt-<unixtime>` and a fresh store starts;
    /// the event is logged and kept in the new store's `recoveries`.
    /// `default_learning_secs` sets `learning_until` for a new store.
    ///
    /// A store that cannot be opened for writing (read-only file system, full
    /// disk, a file we may not write) is opened read-only instead, so lookups
    /// still answer; `read_only()` says why.
    pub fn open(path: &Path, default_learning_secs: i64) -> Result<Store, StoreError> {
        let error = match Store::open_read_write(path, default_learning_secs) {
            Ok(store) => return Ok(store),
            Err(e @ (StoreError::UnsafePath { .. } | StoreError::NewerSchema { .. })) => {
                return Err(e)
            }
            Err(e) => e,
        };
        let why = error.to_string();
        match Store::open_read_only(path, &why) {
            Ok(store) => {
                log::warn!(
                    "baseline store {}: opened read-only, since it cannot be written: {why}",
                    path.display()
                );
                Ok(store)
            }
            Err(also) => {
                log::debug!("read-only open of {} failed too: {also}", path.display());
                Err(error)
            }
        }
    }

    /// Why this store is open read-only (`None` when it can be written).
    pub fn read_only(&self) -> Option<&str> {
        self.read_only.as_deref()
    }

    fn open_read_write(path: &Path, default_learning_secs: i64) -> Result<Store, StoreError> {
        let file_id = prepare_file(path, true)?;
        let (conn, file_id, corrupt) = match open_checked(path) {
            Ok(conn) => (conn, file_id, None),
            Err(OpenFailure::Corrupt(reason)) => {
                let moved_to = move_aside(path, file_id)?;
                let file_id = prepare_file(path, true)?;
                let conn = open_checked(path).map_err(|e| match e {
                    OpenFailure::Corrupt(r) => sqlite_error(path, r),
                    OpenFailure::Other(e) => e,
                })?;
                (conn, file_id, Some((moved_to, reason)))
            }
            Err(OpenFailure::Other(e)) => return Err(e),
        };
        let mut store = Store::from_conn(conn, path)?;
        store.file_id = file_id;
        let fresh = store.init_meta()?;
        store.settle_learning(fresh, corrupt, default_learning_secs)?;
        Ok(store)
    }

    /// Reconciles the store with its state file (`state::read_state`): a first
    /// install opens the learning window; a store rebuilt after corruption or
    /// deletion never does, and the loss of its entries is recorded and logged.
    fn settle_learning(
        &self,
        fresh: bool,
        corrupt: Option<(PathBuf, String)>,
        default_learning_secs: i64,
    ) -> Result<(), StoreError> {
        use super::state::{read_state, write_state, LearningState};
        let now = unix_now();
        let path = self.path.display().to_string();
        let write = |state: &LearningState| write_state(&self.path, state);
        let lost = "its approved and learned entries are not in the fresh store (export them from the moved copy with `an1256 --db <copy> baseline export` and `baseline import` them)";
        let state = match read_state(&self.path) {
            Ok(state) => state,
            Err(why) => {
                // Unreadable: learning stays off (learning_until() fails closed).
                log::error!("baseline store {path}: {why}; learning is off until `an1256 baseline learn` rewrites it");
                return match corrupt {
                    Some((moved_to, reason)) => self.record_recovery(
                        &moved_to.display().to_string(),
                        &format!("{reason}; {lost}"),
                    ),
                    None => Ok(()),
                };
            }
        };
        let (event, kept) = match (state, fresh, corrupt) {
            (Some(_), false, None) => return Ok(()),
            (None, false, None) => {
                // A store from before state files: its own window carries over.
                let installed_at = self.meta_int("created_at")?.unwrap_or(now);
                let learning_until = self.meta_int("learning_until")?.unwrap_or(0);
                return write(&LearningState {
                    installed_at,
                    learning_until,
                });
            }
            (None, true, None) => {
                return write(&LearningState {
                    installed_at: now,
                    learning_until: now.saturating_add(default_learning_secs),
                })
            }
            (Some(state), _, corrupt) => (corrupt, state),
            (None, _, corrupt) => {
                let state = LearningState {
                    installed_at: now,
                    learning_until: 0,
                };
                write(&state)?;
                (corrupt, state)
            }
        };
        let learning = if kept.learning_until > now {
            format!("learning stays as it was (until {})", kept.learning_until)
        } else {
            "learning stays off".to_owned()
        };
        let (moved_to, reason) = match event {
            Some((moved_to, reason)) => (
                moved_to.display().to_string(),
                format!("corrupt ({reason}); {lost}; {learning}"),
            ),
            None => (
                "(missing)".to_owned(),
                format!(
                    "the store file was missing (deleted?) although this host's baseline was installed at {}: a fresh store started without its approved and learned entries; {learning}",
                    kept.installed_at
                ),
            ),
        };
        log::error!("baseline store {path} recovered: {reason}");
        self.record_recovery(&moved_to, &reason)
    }

    fn record_recovery(&self, moved_to: &str, reason: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO recoveries (time, moved_to, reason) VALUES (?1, ?2, ?3)",
                params![unix_now(), moved_to, reason],
            )
            .map_err(|e| self.err(e))?;
            Ok(())
        })
    }

    /// The store file was deleted or replaced since it was opened.
    pub fn replaced(&self) -> bool {
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) => (meta.dev(), meta.ino()) != self.file_id,
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        }
    }

    /// Opens an existing store for reading only. A WAL store on a read-only or
    /// full file system may have no `-shm` to share: then the main file is read
    /// as immutable (changes still in the WAL are not seen).
    fn open_read_only(path: &Path, why: &str) -> Result<Store, StoreError> {
        let file_id = prepare_file(path, false)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let checked = |conn: Connection| -> rusqlite::Result<(Connection, String, i64)> {
            conn.busy_timeout(READ_BUSY_TIMEOUT)?;
            let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
            let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            Ok((conn, check, version))
        };
        let attempt = Connection::open_with_flags(path, flags).and_then(checked);
        let (conn, check, version) = match attempt {
            Ok(opened) => opened,
            Err(e) if is_busy(&e) => return Err(map_sqlite(path, e)),
            Err(_) => {
                Connection::open_with_flags(immutable_uri(path), flags | OpenFlags::SQLITE_OPEN_URI)
                    .and_then(checked)
                    .map_err(|e| map_sqlite(path, e))?
            }
        };
        if check != "ok" {
            return Err(sqlite_error(
                path,
                format!("corrupt (quick_check: {check})"),
            ));
        }
        let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
        if version > known {
            return Err(StoreError::NewerSchema {
                path: path.display().to_string(),
                found: version,
                known,
            });
        }
        if version < known {
            return Err(sqlite_error(
                path,
                format!("schema version {version} needs an upgrade to {known}, which a read-only store cannot take"),
            ));
        }
        let mut store = Store::with_conn(conn, path, Some(why.to_owned()));
        store.file_id = file_id;
        Ok(store)
    }

    fn with_conn(conn: Connection, path: &Path, read_only: Option<String>) -> Store {
        Store {
            conn: Mutex::new(conn),
            path: path.to_owned(),
            read_only,
            write_timeout_ms: std::sync::atomic::AtomicU64::new(
                u64::try_from(BUSY_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
            ),
            file_id: (0, 0),
            audit_source: Mutex::new(AuditSource::Cli),
        }
    }

    fn from_conn(mut conn: Connection, path: &Path) -> Result<Store, StoreError> {
        migrate(&mut conn, path)?;
        Ok(Store::with_conn(conn, path, None))
    }

    /// Marks a new store with its creation time; `true` when it was new. An
    /// existing store is left unwritten: another process holding the write lock
    /// must not keep us from reading.
    fn init_meta(&self) -> Result<bool, StoreError> {
        if self.meta_int("created_at")?.is_some() {
            return Ok(false);
        }
        self.write(|tx| {
            let created = tx
                .execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('created_at', ?1)",
                    params![unix_now().to_string()],
                )
                .map_err(|e| self.err(e))?;
            Ok(created > 0)
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Who later writes are audited as (default `Cli`).
    pub fn set_audit_source(&self, source: AuditSource) {
        *self.audit_source.lock().unwrap_or_else(|p| p.into_inner()) = source;
    }

    /// Runs `f` in one write transaction with an audit trail: each change `f`
    /// records is stored in `audit` in the same transaction and logged at WARN
    /// once the transaction has committed.
    fn write_audited<T>(
        &self,
        action: &str,
        f: impl FnOnce(&rusqlite::Transaction<'_>, &mut Audit) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let source = *self.audit_source.lock().unwrap_or_else(|p| p.into_inner());
        let (value, audit) = self.write(|tx| {
            let mut audit = Audit {
                time: unix_now(),
                source: source.as_str(),
                action: action.to_owned(),
                ..Audit::default()
            };
            let value = f(tx, &mut audit)?;
            if audit.count > 0 {
                tx.execute(
                    "DELETE FROM audit WHERE id <= (SELECT max(id) FROM audit) - ?1",
                    params![MAX_AUDIT_ROWS],
                )
                .map_err(|e| self.err(e))?;
            }
            Ok((value, audit))
        })?;
        for line in &audit.shown {
            log::warn!("baseline {action} by {}: {line}", source.as_str());
        }
        if audit.count > audit.shown.len() {
            log::warn!(
                "baseline {action} by {}: {} more changes, in an1256_baseline_audit",
                source.as_str(),
                audit.count - audit.shown.len()
            );
        }
        Ok(value)
    }

    /// The audit trail, newest first (at most `limit` records).
    pub fn audit_rows(&self, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, time, source, action, entry_id, before, after
                 FROM audit ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![limit], |r| {
                Ok(AuditRow {
                    id: r.get(0)?,
                    time: r.get(1)?,
                    source: r.get(2)?,
                    action: r.get(3)?,
                    entry_id: r.get(4)?,
                    before: r.get(5)?,
                    after: r.get(6)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Changes how long a write waits for another writer (default `BUSY_TIMEOUT`).
    pub fn set_busy_timeout(&self, timeout: Duration) -> Result<(), StoreError> {
        self.write_timeout_ms.store(
            u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(())
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        map_sqlite(&self.path, e)
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction (commit on Ok).
    fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(why) = &self.read_only {
            return Err(StoreError::ReadOnly {
                path: self.path.display().to_string(),
                why: why.clone(),
            });
        }
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let wait = self
            .write_timeout_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        conn.busy_timeout(Duration::from_millis(wait))
            .map_err(|e| map_sqlite(&self.path, e))?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| map_sqlite(&self.path, e))?;
        let value = f(&tx)?;
        tx.commit().map_err(|e| map_sqlite(&self.path, e))?;
        Ok(value)
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.busy_timeout(READ_BUSY_TIMEOUT)
            .map_err(|e| self.err(e))?;
        f(&conn).map_err(|e| self.err(e))
    }

    /// Entries, all or those with one of `identities`.
    pub fn entries(&self, identities: Option<&[String]>) -> Result<Vec<Entry>, StoreError> {
        self.read(|conn| {
            rows_by_identity(
                conn,
                "SELECT id, identity, protocol_name, remote_port, source, first_seen, last_seen, seen_count, note
                 FROM entries WHERE ?1 IS NULL OR identity = ?1 ORDER BY id",
                identities,
                entry_from_row,
            )
        })
    }

    pub fn entry(&self, id: i64) -> Result<Option<Entry>, StoreError> {
        self.read(|conn| {
            conn.query_row(
                "SELECT id, identity, protocol_name, remote_port, source, first_seen, last_seen, seen_count, note
                 FROM entries WHERE id = ?1",
                params![id],
                entry_from_row,
            )
            .optional()
        })
    }

    /// Adds (or turns into `approved`) the entry for a key; returns its id.
    pub fn approve(&self, key: &EntryKey, note: &str) -> Result<i64, StoreError> {
        let key = validate_entry(&key.identity, &key.protocol_name, key.remote_port)?;
        validate_note(note)?;
        self.write_audited("approve", |tx, audit| {
            let before = entry_by_key(tx, &key).map_err(|e| self.err(e))?;
            let id = upsert_entry(tx, &key, Source::Approved, note, unix_now(), 0)?;
            audit
                .change(tx, id, before.as_ref())
                .map_err(|e| self.err(e))?;
            Ok(id)
        })
    }

    /// Deletes one entry by id; `Ok(false)` when there was none.
    pub fn revoke(&self, id: i64) -> Result<bool, StoreError> {
        self.write_audited("revoke", |tx, audit| {
            let before = entry_by_id(tx, id).map_err(|e| self.err(e))?;
            let n = tx
                .execute("DELETE FROM entries WHERE id = ?1", params![id])
                .map_err(|e| self.err(e))?;
            audit
                .change(tx, id, before.as_ref())
                .map_err(|e| self.err(e))?;
            Ok(n > 0)
        })
    }

    /// Deletes entries of an identity, optionally only one protocol / port.
    pub fn revoke_matching(
        &self,
        identity: &str,
        protocol_name: Option<&str>,
        remote_port: Option<i64>,
    ) -> Result<usize, StoreError> {
        self.write_audited("revoke", |tx, audit| {
            let ids: Vec<i64> = tx
                .prepare_cached(
                    "SELECT id FROM entries WHERE identity = ?1
                       AND (?2 IS NULL OR protocol_name = ?2)
                       AND (?3 IS NULL OR remote_port = ?3)",
                )
                .and_then(|mut stmt| {
                    stmt.query_map(params![identity, protocol_name, remote_port], |r| r.get(0))?
                        .collect()
                })
                .map_err(|e| self.err(e))?;
            for id in &ids {
                let before = entry_by_id(tx, *id).map_err(|e| self.err(e))?;
                tx.execute("DELETE FROM entries WHERE id = ?1", params![id])
                    .map_err(|e| self.err(e))?;
                audit
                    .change(tx, *id, before.as_ref())
                    .map_err(|e| self.err(e))?;
            }
            Ok(ids.len())
        })
    }

    /// Rewrites one entry's key, source and note.
    pub fn update(
        &self,
        id: i64,
        key: &EntryKey,
        source: Source,
        note: &str,
    ) -> Result<(), StoreError> {
        let key = validate_entry(&key.identity, &key.protocol_name, key.remote_port)?;
        validate_note(note)?;
        if source == Source::Policy {
            return Err(StoreError::Invalid(
                "source `policy` belongs to the policy file; stored entries are `approved` or `learned`".into(),
            ));
        }
        self.write_audited("update", |tx, audit| {
            let before = entry_by_id(tx, id).map_err(|e| self.err(e))?;
            let n = tx
                .execute(
                    "UPDATE entries SET identity = ?2, protocol_name = ?3, remote_port = ?4, source = ?5, note = ?6
                     WHERE id = ?1",
                    params![id, key.identity, key.protocol_name, key.remote_port, source.as_str(), note],
                )
                .map_err(|e| match e.sqlite_error_code() {
                    Some(ErrorCode::ConstraintViolation) => StoreError::Invalid(format!(
                        "another entry already has identity {}, protocol {}, port {}",
                        key.identity, key.protocol_name, key.remote_port
                    )),
                    _ => self.err(e),
                })?;
            if n == 0 {
                return Err(StoreError::NotFound(id));
            }
            audit.change(tx, id, before.as_ref()).map_err(|e| self.err(e))?;
            Ok(())
        })
    }

    /// Imports entries all-or-nothing: every entry is validated first, then all
    /// are upserted in one transaction. Returns how many were written.
    pub fn import(&self, entries: &[Entry]) -> Result<usize, StoreError> {
        self.upsert_all(entries, "import")
    }

    /// Approves several entries all-or-nothing (`baseline approve` of several
    /// protocols); audited as `approve`.
    pub fn approve_all(&self, entries: &[Entry]) -> Result<usize, StoreError> {
        self.upsert_all(entries, "approve")
    }

    fn upsert_all(&self, entries: &[Entry], action: &str) -> Result<usize, StoreError> {
        let mut checked = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let key = validate_entry(&e.identity, &e.protocol_name, e.remote_port)
                .and_then(|key| validate_note(&e.note).map(|()| key))
                .map_err(|why| {
                    StoreError::Invalid(format!("entry {} ({}): {why}", i + 1, e.identity))
                })?;
            if e.source == Source::Policy {
                return Err(StoreError::Invalid(format!(
                    "entry {} ({}): source `policy` cannot be imported; policy rules live in the policy file",
                    i + 1,
                    e.identity
                )));
            }
            checked.push((key, e));
        }
        let now = unix_now();
        self.write_audited(action, |tx, audit| {
            for (key, e) in &checked {
                let first = if e.first_seen > 0 { e.first_seen } else { now };
                let before = entry_by_key(tx, key).map_err(|e| self.err(e))?;
                let id = upsert_entry(tx, key, e.source, &e.note, first, e.seen_count)?;
                audit
                    .change(tx, id, before.as_ref())
                    .map_err(|e| self.err(e))?;
            }
            Ok(checked.len())
        })
    }

    /// Records one sampler pass in one transaction: upserts observations, turns
    /// untrusted ones into `learned` entries when `learn`, counts sightings of
    /// existing entries, prunes observations beyond `limits`.
    pub fn record_pass(
        &self,
        observations: &[Observation],
        learn: bool,
        now: i64,
        limits: ObservationLimits,
    ) -> Result<PassWrite, StoreError> {
        self.write(|tx| {
            let mut result = PassWrite::default();
            let wrap = |e| map_sqlite(&self.path, e);
            let mut learned_total: i64 = tx
                .query_row(
                    "SELECT count(*) FROM entries WHERE source = 'learned'",
                    [],
                    |r| r.get(0),
                )
                .map_err(wrap)?;
            {
                let mut upsert = tx
                    .prepare_cached(
                        "INSERT INTO observations (identity, protocol_name, remote_port, remote_scope, remote_address,
                             pid, path, exe_path, interpreter, subject_kind, subject_trusted, first_seen, last_seen, count,
                             socket_type, script_kind, script_quarantined, reason, start_time)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, 1, ?13, ?14, ?15, ?16, ?17)
                         ON CONFLICT (identity, protocol_name, remote_port, remote_scope) DO UPDATE SET
                             remote_address = CASE WHEN last_seen < excluded.last_seen - ?18 THEN excluded.remote_address ELSE remote_address END,
                             pid = CASE WHEN last_seen < excluded.last_seen - ?18 THEN excluded.pid ELSE pid END,
                             path = CASE WHEN last_seen < excluded.last_seen - ?18 THEN excluded.path ELSE path END,
                             exe_path = CASE WHEN last_seen < excluded.last_seen - ?18 THEN excluded.exe_path ELSE exe_path END,
                             interpreter = CASE WHEN last_seen < excluded.last_seen - ?18 THEN excluded.interpreter ELSE interpreter END,
                             subject_kind = CASE WHEN last_seen < excluded.last_seen - ?18 THEN excluded.subject_kind ELSE subject_kind END,
                             subject_trusted = CASE WHEN last_seen < excluded.last_seen - ?18 THEN excluded.subject_trusted ELSE subject_trusted END,
                             socket_type = CASE WHEN last_seen < excluded.last_seen - ?18 THEN excluded.socket_type ELSE socket_type END,
                             script_kind = CASE WHEN last_seen < excluded.last_seen - ?18 THEN excluded.script_kind ELSE script_kind END,
                             script_quarantined = CASE WHEN last_seen < excluded.last_seen - ?18 THEN excluded.script_quarantined ELSE script_quarantined END,
                             reason = CASE WHEN last_seen < excluded.last_seen - ?18 THEN excluded.reason ELSE reason END,
                             start_time = CASE WHEN last_seen < excluded.last_seen - ?18 THEN excluded.start_time ELSE start_time END,
                             last_seen = excluded.last_seen, count = count + 1",
                    )
                    .map_err(wrap)?;
                let mut touch = tx
                    .prepare_cached(
                        "UPDATE entries SET last_seen = ?4, seen_count = seen_count + 1
                         WHERE identity = ?1 AND protocol_name = ?2 AND remote_port IN (-1, ?3)",
                    )
                    .map_err(wrap)?;
                for o in observations {
                    upsert
                        .execute(params![
                            o.identity,
                            o.protocol_name,
                            o.remote_port,
                            o.remote_scope,
                            o.remote_address,
                            o.pid,
                            o.path,
                            o.exe_path,
                            o.interpreter,
                            o.subject_kind,
                            o.subject_trusted,
                            now,
                            o.socket_type,
                            o.script_kind,
                            o.script_quarantined,
                            o.reason,
                            o.start_time,
                            APPEARANCE_GAP_SECS
                        ])
                        .map_err(wrap)?;
                    result.observations += 1;
                    if o.subject_trusted {
                        continue;
                    }
                    let touched = touch
                        .execute(params![o.identity, o.protocol_name, o.remote_port, now])
                        .map_err(wrap)?;
                    // A broad identity (stdin:, module:, path:) is a class of code:
                    // only a person may approve it.
                    let broad = super::identity::broad_identity_scope(&o.identity).is_some();
                    if learn && touched == 0 && !broad {
                        if learned_total >= limits.max_learned {
                            result.learning_capped += 1;
                            continue;
                        }
                        // Sampler identities come from `subject`; validate anyway so a
                        // malformed one never enters the baseline.
                        if let Ok(key) =
                            validate_entry(&o.identity, &o.protocol_name, o.remote_port)
                        {
                            upsert_entry(tx, &key, Source::Learned, "", now, 1)?;
                            result.learned += 1;
                            learned_total += 1;
                        }
                    }
                }
            }
            let aged = tx
                .execute(
                    "DELETE FROM observations WHERE last_seen < ?1",
                    params![now.saturating_sub(limits.max_age_secs)],
                )
                .map_err(wrap)?;
            let excess = tx
                .execute(
                    "DELETE FROM observations WHERE id IN
                       (SELECT id FROM observations ORDER BY last_seen DESC, id DESC LIMIT -1 OFFSET ?1)",
                    params![limits.max_rows.max(0)],
                )
                .map_err(wrap)?;
            result.pruned = aged + excess;
            if limits.max_learned_age_secs > 0 {
                result.expired = tx
                    .execute(
                        "DELETE FROM entries WHERE source = 'learned' AND last_seen < ?1",
                        params![now.saturating_sub(limits.max_learned_age_secs)],
                    )
                    .map_err(wrap)?;
            }
            Ok(result)
        })
    }

    /// Observations, all or those of some identities.
    pub fn observations(
        &self,
        identities: Option<&[String]>,
    ) -> Result<Vec<ObservationRow>, StoreError> {
        self.read(|conn| {
            rows_by_identity(
                conn,
                "SELECT id, identity, protocol_name, remote_port, remote_scope, remote_address, pid, path,
                        exe_path, interpreter, subject_kind, subject_trusted, first_seen, last_seen, count,
                        socket_type, script_kind, script_quarantined, reason, start_time
                 FROM observations WHERE ?1 IS NULL OR identity = ?1 ORDER BY id",
                identities,
                |r| {
                    Ok(ObservationRow {
                        id: r.get(0)?,
                        observation: Observation {
                            identity: r.get(1)?,
                            protocol_name: r.get(2)?,
                            remote_port: r.get(3)?,
                            remote_scope: r.get(4)?,
                            remote_address: r.get(5)?,
                            pid: r.get(6)?,
                            path: r.get(7)?,
                            exe_path: r.get(8)?,
                            interpreter: r.get(9)?,
                            subject_kind: r.get(10)?,
                            subject_trusted: r.get(11)?,
                            socket_type: r.get(15)?,
                            script_kind: r.get(16)?,
                            script_quarantined: r.get(17)?,
                            reason: r.get(18)?,
                            start_time: r.get(19)?,
                        },
                        first_seen: r.get(12)?,
                        last_seen: r.get(13)?,
                        count: r.get(14)?,
                    })
                },
            )
        })
    }

    /// Distinct identities in the observations (at most `limit`).
    pub fn observed_identities(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT DISTINCT identity FROM observations ORDER BY identity LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![limit], |r| r.get(0))?;
            rows.collect()
        })
    }

    /// Sets the end of the learning window (0 stops learning now).
    /// Kept in the state file beside the store, which a rebuilt store cannot reset.
    pub fn set_learning_until(&self, until: i64) -> Result<(), StoreError> {
        if let Some(why) = &self.read_only {
            return Err(StoreError::ReadOnly {
                path: self.path.display().to_string(),
                why: why.clone(),
            });
        }
        let installed_at = super::state::read_state(&self.path)
            .ok()
            .flatten()
            .map_or_else(unix_now, |s| s.installed_at);
        let state = super::state::LearningState {
            installed_at,
            learning_until: until,
        };
        let old = self.learning_until().unwrap_or(0);
        super::state::write_state(&self.path, &state)?;
        self.write_audited("learn", |tx, audit| {
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('learning_until', ?1)",
                params![until.to_string()],
            )
            .map_err(|e| self.err(e))?;
            audit
                .record(
                    tx,
                    0,
                    serde_json::json!({ "learning_until": old }).to_string(),
                    serde_json::json!({ "learning_until": until }).to_string(),
                )
                .map_err(|e| self.err(e))
        })
    }

    /// The end of the learning window, from the state file; 0 (not learning)
    /// when it is missing, an error when it cannot be trusted.
    pub fn learning_until(&self) -> Result<i64, StoreError> {
        Ok(super::state::read_state(&self.path)?.map_or(0, |s| s.learning_until))
    }

    /// Records the cost and outcome of one sampler pass.
    pub fn record_sample_stats(
        &self,
        time: i64,
        duration_ms: i64,
        cpu_ms: i64,
        errors: i64,
        error_text: &str,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            let mut set = tx
                .prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")
                .map_err(|e| self.err(e))?;
            for (key, value) in [
                ("last_sample_time", time.to_string()),
                ("last_sample_duration_ms", duration_ms.to_string()),
                ("last_sample_cpu_ms", cpu_ms.to_string()),
                ("last_sample_errors", errors.to_string()),
                ("last_sample_error", error_text.to_owned()),
            ] {
                set.execute(params![key, value]).map_err(|e| self.err(e))?;
            }
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('sampler_errors', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + ?1",
                params![errors],
            )
            .map_err(|e| self.err(e))?;
            Ok(())
        })
    }

    fn meta_int(&self, key: &str) -> Result<Option<i64>, StoreError> {
        let text: Option<String> = self.read(|conn| {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
        })?;
        Ok(text.and_then(|t| t.trim().parse().ok()))
    }

    /// Counts and meta values for `an1256_info`.
    pub fn summary(&self) -> Result<StoreSummary, StoreError> {
        let learning_until = self.learning_until().unwrap_or(0);
        self.read(|conn| {
            let meta = |key: &str| -> rusqlite::Result<String> {
                Ok(conn
                    .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                        r.get::<_, String>(0)
                    })
                    .optional()?
                    .unwrap_or_default())
            };
            let int =
                |key: &str| -> rusqlite::Result<i64> { Ok(meta(key)?.trim().parse().unwrap_or(0)) };
            let count =
                |sql: &str| -> rusqlite::Result<i64> { conn.query_row(sql, [], |r| r.get(0)) };
            let mut stmt =
                conn.prepare_cached("SELECT time, moved_to, reason FROM recoveries ORDER BY id")?;
            let recoveries = stmt
                .query_map([], |r| {
                    Ok(RecoveryEvent {
                        time: r.get(0)?,
                        moved_to: r.get(1)?,
                        reason: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(StoreSummary {
                created_at: int("created_at")?,
                learning_until,
                entries: count("SELECT count(*) FROM entries")?,
                learned_entries: count("SELECT count(*) FROM entries WHERE source = 'learned'")?,
                approved_entries: count("SELECT count(*) FROM entries WHERE source = 'approved'")?,
                observations: count("SELECT count(*) FROM observations")?,
                last_sample_time: int("last_sample_time")?,
                last_sample_duration_ms: int("last_sample_duration_ms")?,
                last_sample_cpu_ms: int("last_sample_cpu_ms")?,
                last_sample_errors: int("last_sample_errors")?,
                sampler_errors: int("sampler_errors")?,
                last_sample_error: meta("last_sample_error")?,
                recoveries,
            })
        })
    }
}

/// One audited write in progress: each change is stored as it happens (so a
/// large import holds no copy of its records); the first few are kept to log
/// once the transaction has committed.
#[derive(Default)]
struct Audit {
    time: i64,
    source: &'static str,
    action: String,
    count: usize,
    shown: Vec<String>,
}

impl Audit {
    /// Records entry `id` as it is now in `tx`, against how it was `before`.
    fn change(
        &mut self,
        tx: &rusqlite::Transaction<'_>,
        id: i64,
        before: Option<&Entry>,
    ) -> rusqlite::Result<()> {
        let after = entry_by_id(tx, id)?;
        if after.as_ref() == before {
            return Ok(());
        }
        let json = |e: Option<&Entry>| {
            e.and_then(|e| serde_json::to_string(e).ok())
                .unwrap_or_default()
        };
        self.record(tx, id, json(before), json(after.as_ref()))
    }

    /// Stores one change (JSON texts, empty for none).
    fn record(
        &mut self,
        tx: &rusqlite::Transaction<'_>,
        id: i64,
        before: String,
        after: String,
    ) -> rusqlite::Result<()> {
        tx.prepare_cached(
            "INSERT INTO audit (time, source, action, entry_id, before, after)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            self.time,
            self.source,
            self.action,
            id,
            before,
            after
        ])?;
        self.count += 1;
        if self.shown.len() < MAX_AUDIT_LOG_LINES {
            let show = |t: String| if t.is_empty() { "(none)".to_owned() } else { t };
            self.shown
                .push(format!("entry {id}: {} -> {}", show(before), show(after)));
        }
        Ok(())
    }
}

fn entry_by_id(tx: &rusqlite::Transaction<'_>, id: i64) -> rusqlite::Result<Option<Entry>> {
    tx.prepare_cached(
        "SELECT id, identity, protocol_name, remote_port, source, first_seen, last_seen, seen_count, note
         FROM entries WHERE id = ?1",
    )?
        .query_row(params![id], entry_from_row)
        .optional()
}

fn entry_by_key(tx: &rusqlite::Transaction<'_>, key: &EntryKey) -> rusqlite::Result<Option<Entry>> {
    tx.prepare_cached(
        "SELECT id, identity, protocol_name, remote_port, source, first_seen, last_seen, seen_count, note
         FROM entries WHERE identity = ?1 AND protocol_name = ?2 AND remote_port = ?3",
    )?
    .query_row(
        params![key.identity, key.protocol_name, key.remote_port],
        entry_from_row,
    )
    .optional()
}

fn entry_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    let source: String = r.get(4)?;
    Ok(Entry {
        id: r.get(0)?,
        identity: r.get(1)?,
        protocol_name: r.get(2)?,
        remote_port: r.get(3)?,
        source: Source::parse(&source).unwrap_or(Source::Learned),
        first_seen: r.get(5)?,
        last_seen: r.get(6)?,
        seen_count: r.get(7)?,
        note: r.get(8)?,
    })
}

/// Inserts an entry or updates the existing one with the same key. An approval
/// turns a learned entry into an approved one; learning never demotes one.
fn upsert_entry(
    tx: &rusqlite::Transaction<'_>,
    key: &EntryKey,
    source: Source,
    note: &str,
    now: i64,
    seen_count: i64,
) -> Result<i64, StoreError> {
    let path = tx.path().map(str::to_owned).unwrap_or_default();
    let wrap = |e| map_sqlite(Path::new(&path), e);
    tx.prepare_cached(
        "INSERT INTO entries (identity, protocol_name, remote_port, source, first_seen, last_seen, seen_count, note)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)
         ON CONFLICT (identity, protocol_name, remote_port) DO UPDATE SET
             source = CASE WHEN excluded.source = 'approved' THEN 'approved' ELSE source END,
             note = CASE WHEN excluded.note <> '' THEN excluded.note ELSE note END,
             last_seen = max(last_seen, excluded.last_seen)",
    )
    .map_err(wrap)?
    .execute(params![
        key.identity,
        key.protocol_name,
        key.remote_port,
        source.as_str(),
        now,
        seen_count,
        note
    ])
    .map_err(wrap)?;
    tx.query_row(
        "SELECT id FROM entries WHERE identity = ?1 AND protocol_name = ?2 AND remote_port = ?3",
        params![key.identity, key.protocol_name, key.remote_port],
        |r| r.get(0),
    )
    .map_err(wrap)
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

fn map_sqlite(path: &Path, e: rusqlite::Error) -> StoreError {
    // The message names the default wait; `set_busy_timeout` only shortens tests.
    if is_busy(&e) {
        return StoreError::Locked {
            path: path.display().to_string(),
        };
    }
    sqlite_error(path, e.to_string())
}

/// `file:<path>?immutable=1`, the path percent-encoded where URIs need it.
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    uri
}

fn sqlite_error(path: &Path, message: String) -> StoreError {
    StoreError::Sqlite {
        path: path.display().to_string(),
        message,
    }
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        message: format!("{what}: {e}"),
    }
}

fn unsafe_path(path: &Path, why: impl Into<String>) -> StoreError {
    StoreError::UnsafePath {
        path: path.display().to_string(),
        why: why.into(),
    }
}

enum OpenFailure {
    Corrupt(String),
    Other(StoreError),
}

/// Opens with SQLite's own no-symlink flag, sets WAL and the busy timeout, and
/// runs `PRAGMA quick_check`.
fn open_checked(path: &Path) -> Result<Connection, OpenFailure> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let classify = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            OpenFailure::Corrupt(e.to_string())
        }
        _ => OpenFailure::Other(map_sqlite(path, e)),
    };
    let conn = Connection::open_with_flags(path, flags).map_err(classify)?;
    conn.busy_timeout(READ_BUSY_TIMEOUT).map_err(classify)?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(classify)?;
    if check != "ok" {
        return Err(OpenFailure::Corrupt(format!("quick_check: {check}")));
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(classify)?;
    if !mode.eq_ignore_ascii_case("wal") {
        log::warn!(
            "baseline store {} is in journal mode {mode}, not WAL",
            path.display()
        );
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(classify)?;
    Ok(conn)
}

/// Applies the forward migrations `user_version` has not seen, each in its own
/// transaction.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    // Up to date (the usual case): no write lock taken, so a busy store still opens.
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| map_sqlite(path, e))?;
    if current == known {
        return Ok(());
    }
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| map_sqlite(path, e))?;
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| map_sqlite(path, e))?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| map_sqlite(path, e))?;
        if version > known {
            return Err(StoreError::NewerSchema {
                path: path.display().to_string(),
                found: version,
                known,
            });
        }
        let Some(step) = usize::try_from(version)
            .ok()
            .and_then(|v| MIGRATIONS.get(v))
        else {
            return Ok(());
        };
        tx.execute_batch(step).map_err(|e| map_sqlite(path, e))?;
        // PRAGMA takes no bound parameters; the value is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {}", version + 1))
            .map_err(|e| map_sqlite(path, e))?;
        tx.commit().map_err(|e| map_sqlite(path, e))?;
    }
}

/// Device and inode of the store file, to rename aside only the file we checked.
type FileId = (u64, u64);

/// Verifies the store's directory from `/` down (see `state::verify_dir`),
/// creating it 0700 when `writable`, then opens (creating 0600 when `writable`)
/// the file relative to that verified directory without following a symlink,
/// and checks its ownership and that of its `-wal`/`-shm` companions. Returns
/// the file's identity. With `writable` false nothing is created or changed.
fn prepare_file(path: &Path, writable: bool) -> Result<FileId, StoreError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let Some(name) = path.file_name() else {
        return Err(unsafe_path(path, "the path names no file"));
    };
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let verified = super::state::verify_dir(&dir, writable).map_err(|e| match e {
        StoreError::UnsafePath { why, .. } => unsafe_path(path, why),
        other => other,
    })?;
    let c_name = CString::new(name.as_bytes())
        .map_err(|_| unsafe_path(path, "the path contains a NUL byte"))?;
    let access = if writable {
        libc::O_RDWR | libc::O_CREAT
    } else {
        libc::O_RDONLY
    };
    // SAFETY: the dir fd is open, c_name NUL-terminated; the fd is owned below.
    let fd = unsafe {
        libc::openat(
            std::os::fd::AsRawFd::as_raw_fd(&verified.fd),
            c_name.as_ptr(),
            access | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600 as libc::c_uint,
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ELOOP) {
            return Err(unsafe_path(path, "it is a symlink"));
        }
        return Err(io_error(path, "cannot open the store file", e));
    }
    // SAFETY: fd is a file descriptor we own from here on.
    let file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let meta = file
        .metadata()
        .map_err(|e| io_error(path, "cannot inspect the store file", e))?;
    if !meta.is_file() {
        return Err(unsafe_path(path, "it is not a regular file"));
    }
    if meta.uid() != euid {
        return Err(unsafe_path(
            path,
            format!("it is owned by uid {}, not by us ({euid})", meta.uid()),
        ));
    }
    if writable && meta.mode() & 0o077 != 0 {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io_error(path, "cannot set the store file to mode 0600", e))?;
    }
    // SQLite opens these by name: one planted by someone else would let them
    // read what we write or feed us frames.
    for suffix in ["-wal", "-shm"] {
        let mut side = name.to_owned();
        side.push(suffix);
        let st = super::state::stat_at(&verified.fd, &side)
            .map_err(|e| io_error(path, "cannot inspect the store's companion files", e))?;
        if let Some(st) = st {
            if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_uid != meta.uid() {
                return Err(unsafe_path(
                    path,
                    format!(
                        "its {} file is not a regular file owned by the store's owner (uid {}, owner {}); remove it after finding out who made it",
                        side.to_string_lossy(),
                        st.st_uid,
                        meta.uid()
                    ),
                ));
            }
        }
    }
    Ok((meta.dev(), meta.ino()))
}

/// Renames a corrupt store (and its WAL/SHM files) to `<name>.corrupt-<unixtime>`.
fn move_aside(path: &Path, checked: FileId) -> Result<PathBuf, StoreError> {
    let now = unix_now();
    let with_suffix = |p: &Path, n: u32| {
        let mut name = p.as_os_str().to_owned();
        name.push(format!(".corrupt-{now}"));
        if n > 0 {
            name.push(format!(".{n}"));
        }
        PathBuf::from(name)
    };
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| io_error(path, "cannot inspect the corrupt store", e))?;
    if (meta.dev(), meta.ino()) != checked {
        // Another process already moved it aside and started a fresh store.
        return Err(sqlite_error(
            path,
            "the store was replaced while it was being checked; retry".into(),
        ));
    }
    let mut n = 0;
    let target = loop {
        let candidate = with_suffix(path, n);
        if !candidate.exists() {
            break candidate;
        }
        n += 1;
        if n > 100 {
            return Err(sqlite_error(
                path,
                "too many corrupt copies beside it".into(),
            ));
        }
    };
    std::fs::rename(path, &target)
        .map_err(|e| io_error(path, "cannot move the corrupt store aside", e))?;
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let side = PathBuf::from(side);
        if side.exists() {
            let mut to = target.as_os_str().to_owned();
            to.push(suffix);
            if let Err(e) = std::fs::rename(&side, PathBuf::from(to)) {
                log::warn!("cannot move {} aside: {e}", side.display());
            }
        }
    }
    Ok(target)
}

/// Runs `sql` (whose `?1` is an identity, or NULL for all rows) once for all rows
/// or once per identity, collecting the mapped rows.
fn rows_by_identity<T>(
    conn: &Connection,
    sql: &str,
    identities: Option<&[String]>,
    map: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut out = Vec::new();
    let all: [Option<&str>; 1] = [None];
    let keys: Vec<Option<&str>> = match identities {
        None => all.to_vec(),
        Some(list) => list.iter().map(|i| Some(i.as_str())).collect(),
    };
    for key in keys {
        for row in stmt.query_map(params![key], &map)? {
            out.push(row?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn key(identity: &str, proto: &str, port: i64) -> EntryKey {
        EntryKey {
            identity: identity.into(),
            protocol_name: proto.into(),
            remote_port: port,
        }
    }

    const SHA: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    /// A sighting of the `SHA` binary sending UDP to a public `port`.
    fn udp_to(port: i64, trusted: bool) -> Observation {
        Observation {
            identity: SHA.into(),
            protocol_name: "udp".into(),
            remote_port: port,
            remote_scope: "public".into(),
            pid: 1,
            subject_kind: "binary".into(),
            subject_trusted: trusted,
            ..Default::default()
        }
    }

    #[test]
    fn creates_private_files_and_migrates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/an1256.db");
        let store = Store::open(&path, 3600).unwrap();
        let dir_mode = std::fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777;
        let file_mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!((dir_mode, file_mode), (0o700, 0o600));
        let s = store.summary().unwrap();
        assert!(s.created_at > 0 && s.learning_until >= s.created_at + 3600);
        let version: i64 = store
            .read(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let mode: String = store
            .read(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    /// A store written by the first schema keeps its rows through the migration;
    /// the new observation columns start empty.
    #[test]
    fn version_1_store_migrates_keeping_observations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("an1256.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO observations (identity, protocol_name, remote_port, remote_scope,
                 first_seen, last_seen) VALUES ('path:/tmp/x', 'udp', 53, 'public', 5, 6);",
        )
        .unwrap();
        drop(conn);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let store = Store::open(&path, 0).unwrap();
        let rows = store.observations(None).unwrap();
        assert_eq!(rows.len(), 1);
        let o = &rows[0].observation;
        assert_eq!((o.identity.as_str(), o.remote_port), ("path:/tmp/x", 53));
        assert_eq!((o.socket_type.as_str(), o.script_kind.as_str()), ("", ""));
        assert!(!o.script_quarantined && o.reason.is_empty());
        assert_eq!((rows[0].first_seen, rows[0].last_seen), (5, 6));
        // The new columns are written from the next appearance on.
        let seen = Observation {
            socket_type: "raw".into(),
            script_kind: "inline".into(),
            reason: "icmp_socket,raw_socket".into(),
            start_time: 1000,
            ..o.clone()
        };
        let later = 6 + APPEARANCE_GAP_SECS + 1;
        store
            .record_pass(
                std::slice::from_ref(&seen),
                false,
                later,
                ObservationLimits::default(),
            )
            .unwrap();
        assert_eq!(store.observations(None).unwrap()[0].observation, seen);
    }

    /// Within one appearance an observation keeps its first sighting's details (so
    /// a differential query over it does not log it again); after a gap longer than
    /// APPEARANCE_GAP_SECS the next sighting's details replace them.
    #[test]
    fn an_appearance_keeps_its_first_sightings_details() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("an1256.db"), 0).unwrap();
        let first = Observation {
            remote_address: "192.0.2.1".into(),
            pid: 100,
            start_time: 50,
            ..udp_to(53, false)
        };
        let second = Observation {
            remote_address: "192.0.2.2".into(),
            pid: 200,
            start_time: 90,
            socket_type: "raw".into(),
            ..udp_to(53, false)
        };
        let limits = ObservationLimits::default();
        let stored = |store: &Store| store.observations(None).unwrap().remove(0);
        store
            .record_pass(std::slice::from_ref(&first), false, 100, limits)
            .unwrap();
        store
            .record_pass(std::slice::from_ref(&second), false, 115, limits)
            .unwrap();
        store
            .record_pass(
                std::slice::from_ref(&second),
                false,
                100 + APPEARANCE_GAP_SECS,
                limits,
            )
            .unwrap();
        let row = stored(&store);
        assert_eq!(row.observation, first);
        assert_eq!(
            (row.first_seen, row.last_seen, row.count),
            (100, 100 + APPEARANCE_GAP_SECS, 3)
        );
        let reappeared = 100 + 3 * APPEARANCE_GAP_SECS;
        store
            .record_pass(std::slice::from_ref(&second), false, reappeared, limits)
            .unwrap();
        let row = stored(&store);
        assert_eq!(row.observation, second);
        assert_eq!((row.first_seen, row.last_seen), (100, reappeared));
    }

    #[test]
    fn refuses_symlinked_store_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere.db");
        std::fs::write(&target, b"").unwrap();
        let link = dir.path().join("an1256.db");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = Store::open(&link, 0).unwrap_err();
        assert!(matches!(err, StoreError::UnsafePath { .. }), "{err}");
        assert!(err.to_string().contains("symlink"));
    }

    #[test]
    fn refuses_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("an1256.db");
        drop(Store::open(&path, 0).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        drop(conn);
        let err = Store::open(&path, 0).unwrap_err();
        assert!(
            matches!(err, StoreError::NewerSchema { found: 99, .. }),
            "{err}"
        );
    }

    #[test]
    fn approve_upserts_and_learning_never_demotes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a.db"), 0).unwrap();
        let obs = Observation {
            identity: SHA.into(),
            protocol_name: "udp".into(),
            remote_port: 53,
            remote_scope: "public".into(),
            remote_address: "8.8.8.8".into(),
            pid: 10,
            path: "/tmp/x".into(),
            exe_path: "/tmp/x".into(),
            interpreter: String::new(),
            subject_kind: "binary".into(),
            subject_trusted: false,
            ..Default::default()
        };
        let w = store
            .record_pass(
                std::slice::from_ref(&obs),
                true,
                100,
                ObservationLimits::default(),
            )
            .unwrap();
        assert_eq!((w.observations, w.learned), (1, 1));
        let entries = store.entries(None).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].source, Source::Learned);
        let id = store.approve(&key(SHA, "udp", 53), "ok").unwrap();
        assert_eq!(id, entries[0].id);
        let w = store
            .record_pass(
                std::slice::from_ref(&obs),
                true,
                200,
                ObservationLimits::default(),
            )
            .unwrap();
        assert_eq!(w.learned, 0, "an entry already covers it");
        let e = store.entry(id).unwrap().unwrap();
        assert_eq!(
            (e.source, e.note.as_str(), e.last_seen),
            (Source::Approved, "ok", 200)
        );
        assert_eq!(e.seen_count, 2);
        let o = store.observations(None).unwrap();
        assert_eq!(
            (o.len(), o[0].count, o[0].first_seen, o[0].last_seen),
            (1, 2, 100, 200)
        );
    }

    #[test]
    fn prunes_by_age_and_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a.db"), 0).unwrap();
        let make = |port: i64| udp_to(port, true);
        let limits = ObservationLimits {
            max_age_secs: 1000,
            max_rows: 3,
            max_learned: 10,
            ..ObservationLimits::default()
        };
        store.record_pass(&[make(1)], false, 10, limits).unwrap();
        let batch: Vec<_> = (2..6).map(make).collect();
        let w = store.record_pass(&batch, false, 5000, limits).unwrap();
        // port 1 aged out, then one more beyond 3 rows.
        assert_eq!(w.pruned, 2);
        let ports: Vec<i64> = store
            .observations(None)
            .unwrap()
            .iter()
            .map(|o| o.observation.remote_port)
            .collect();
        assert_eq!(ports.len(), 3);
        assert!(!ports.contains(&1));
    }

    #[test]
    fn learning_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a.db"), 0).unwrap();
        let batch: Vec<Observation> = (1..=5).map(|port| udp_to(port, false)).collect();
        let limits = ObservationLimits {
            max_learned: 3,
            ..ObservationLimits::default()
        };
        let w = store.record_pass(&batch, true, 100, limits).unwrap();
        assert_eq!((w.learned, w.learning_capped, w.observations), (3, 2, 5));
        assert_eq!(store.entries(None).unwrap().len(), 3);
        assert_eq!(store.observed_identities(10).unwrap(), vec![SHA.to_owned()]);
    }

    /// Learned entries the host stopped using expire; one seen again, and every
    /// approved entry, stay.
    #[test]
    fn learned_entries_expire_when_unseen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a.db"), 0).unwrap();
        let seen = |port: i64| udp_to(port, false);
        let limits = ObservationLimits {
            max_learned_age_secs: 1000,
            ..ObservationLimits::default()
        };
        store.approve(&key(SHA, "icmp", -1), "kept").unwrap();
        let w = store
            .record_pass(&[seen(53), seen(123)], true, 100, limits)
            .unwrap();
        assert_eq!(w.learned, 2);
        // Port 123 is seen again later; port 53 is not.
        store.record_pass(&[seen(123)], false, 900, limits).unwrap();
        let w = store.record_pass(&[], false, 1500, limits).unwrap();
        assert_eq!(w.expired, 1);
        let mut left: Vec<(String, i64)> = store
            .entries(None)
            .unwrap()
            .into_iter()
            .map(|e| (e.protocol_name, e.remote_port))
            .collect();
        left.sort();
        assert_eq!(left, vec![("icmp".into(), -1), ("udp".into(), 123)]);
        // 0 never expires anything.
        let keep = ObservationLimits {
            max_learned_age_secs: 0,
            ..ObservationLimits::default()
        };
        let w = store.record_pass(&[], false, 1_000_000, keep).unwrap();
        assert_eq!((w.expired, store.entries(None).unwrap().len()), (0, 2));
    }

    #[test]
    fn import_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a.db"), 0).unwrap();
        let good = Entry {
            id: 0,
            identity: SHA.into(),
            protocol_name: "icmp".into(),
            remote_port: -1,
            source: Source::Approved,
            first_seen: 0,
            last_seen: 0,
            seen_count: 0,
            note: "ping".into(),
        };
        let bad = Entry {
            protocol_name: "tcp".into(),
            ..good.clone()
        };
        let err = store.import(&[good.clone(), bad]).unwrap_err();
        assert!(err.to_string().contains("entry 2"), "{err}");
        assert!(store.entries(None).unwrap().is_empty());
        assert_eq!(store.import(&[good]).unwrap(), 1);
        assert_eq!(store.entries(None).unwrap().len(), 1);
    }

    #[test]
    fn a_locked_store_answers_a_clear_error_after_the_busy_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let store = Store::open(&path, 0).unwrap();
        store.set_busy_timeout(Duration::from_millis(300)).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let started = std::time::Instant::now();
        let err = store.approve(&key(SHA, "udp", 1), "").unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("locked by another writer"));
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        other.execute_batch("COMMIT").unwrap();
        store.approve(&key(SHA, "udp", 1), "").unwrap();
    }

    #[test]
    fn update_conflict_is_a_validation_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a.db"), 0).unwrap();
        let a = store.approve(&key(SHA, "udp", 53), "").unwrap();
        store.approve(&key(SHA, "udp", 123), "").unwrap();
        let err = store
            .update(a, &key(SHA, "udp", 123), Source::Approved, "")
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        assert!(matches!(
            store.update(999, &key(SHA, "udp", 1), Source::Approved, ""),
            Err(StoreError::NotFound(999))
        ));
        assert!(store.revoke(a).unwrap());
        assert!(!store.revoke(a).unwrap());
    }
}
