//! The baseline store: one SQLite file (WAL, `busy_timeout`, `user_version`
//! migrations) holding baseline entries, observations, meta values and recovery
//! events. Created 0600 in a 0700 directory without following symlinks; a corrupt
//! file is renamed aside (never deleted) and a fresh store starts. Every write is
//! one `BEGIN IMMEDIATE` transaction, so concurrent writers (threads or processes,
//! each with its own connection) serialise instead of losing updates.
//!
//! This file: the `Store` type, opening (read-write, else read-only), the write
//! and read paths and the audited write. By concern: `schema` (migrations),
//! `hardening` (the file, its directory and companions), `entries`,
//! `observations`, `meta` (meta values, recoveries, the audit trail).

mod entries;
mod hardening;
mod meta;
mod observations;
mod schema;

use entries::entry_by_id;
use hardening::{move_aside, prepare_file, FileId};
use rusqlite::{params, Connection, ErrorCode, OpenFlags, TransactionBehavior};
use schema::{migrate, MIGRATIONS};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

pub use entries::{Entry, Source};
pub use meta::{AuditRow, AuditSource, RecoveryEvent, StoreSummary, MAX_AUDIT_ROWS};
pub use observations::{Observation, ObservationRow, PassWrite, APPEARANCE_GAP_SECS};

/// How long a writer waits for another writer before answering `Locked`.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a read (and opening) waits for a lock holder: a busy store must not
/// hold a query up, detection goes on without it.
pub const READ_BUSY_TIMEOUT: Duration = Duration::from_millis(300);

pub use super::StoreError;

pub use crate::settings::ObservationLimits;

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
        let (conn, file_id, corrupt) = match open_checked_settled(path) {
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
        // Every statement the store runs stays parsed (rusqlite keeps 16).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
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

    pub fn path(&self) -> &Path {
        &self.path
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
}

/// Prepared statements kept per connection: more than the store's distinct
/// `prepare_cached` statements (~20), so the watch's and the sampler's writes
/// never evict each other's.
const STATEMENT_CACHE: usize = 64;
/// Audit records of one write logged one by one (the rest are counted).
const MAX_AUDIT_LOG_LINES: usize = 20;

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

/// `open_checked`, asking again before believing a store corrupt: moving a store
/// aside loses every entry for the host, so one bad look is not enough. (The
/// corruption once seen amid concurrent writers was real: `prepare_file` used to
/// close a descriptor of the file, dropping this process's SQLite locks; see
/// `hardening::prepare_file`.)
fn open_checked_settled(path: &Path) -> Result<Connection, OpenFailure> {
    const ATTEMPTS: u32 = 4;
    let mut attempt = 1;
    loop {
        match open_checked(path) {
            Err(OpenFailure::Corrupt(reason)) if attempt < ATTEMPTS => {
                log::warn!(
                    "baseline store {} looked corrupt ({reason}); checking again before moving it aside",
                    path.display()
                );
                std::thread::sleep(Duration::from_millis(250 * u64::from(attempt)));
                attempt += 1;
            }
            other => return other,
        }
    }
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
    use crate::baseline::identity::EntryKey;

    pub(super) fn key(identity: &str, proto: &str, port: i64) -> EntryKey {
        EntryKey {
            identity: identity.into(),
            protocol_name: proto.into(),
            remote_port: port,
        }
    }

    pub(super) const SHA: &str =
        "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    /// A sighting of the `SHA` binary sending UDP to a public `port`.
    pub(super) fn udp_to(port: i64, trusted: bool) -> Observation {
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
}
