//! The schema: `user_version` migrations, forward only.

use super::{map_sqlite, StoreError, BUSY_TIMEOUT};
use rusqlite::{Connection, TransactionBehavior};
use std::path::Path;

/// The schema this build writes. Each step of `MIGRATIONS` moves `user_version`
/// up by one; a store with a newer version is refused, never downgraded.
pub(super) const MIGRATIONS: &[&str] = &[
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
    // 4 -> 5: the remote address is part of the key, so a subject that later talks
    // to a new remote gets a row (and an an1256_hits_recent line) of its own instead
    // of hiding behind its first remote. SQLite cannot change a UNIQUE constraint in
    // place: the table is rebuilt, rows kept.
    "CREATE TABLE observations_v5 (
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
        socket_type TEXT NOT NULL DEFAULT '',
        script_kind TEXT NOT NULL DEFAULT '',
        script_quarantined INTEGER NOT NULL DEFAULT 0,
        reason TEXT NOT NULL DEFAULT '',
        start_time INTEGER NOT NULL DEFAULT 0,
        UNIQUE (identity, protocol_name, remote_port, remote_scope, remote_address)
    );
    INSERT INTO observations_v5 (id, identity, protocol_name, remote_port, remote_scope,
        remote_address, pid, path, exe_path, interpreter, subject_kind, subject_trusted,
        first_seen, last_seen, count, socket_type, script_kind, script_quarantined, reason,
        start_time)
    SELECT id, identity, protocol_name, remote_port, remote_scope, remote_address, pid, path,
        exe_path, interpreter, subject_kind, subject_trusted, first_seen, last_seen, count,
        socket_type, script_kind, script_quarantined, reason, start_time
    FROM observations;
    DROP TABLE observations;
    ALTER TABLE observations_v5 RENAME TO observations;
    CREATE INDEX observations_last_seen ON observations (last_seen);",
];

/// Applies the forward migrations `user_version` has not seen, each in its own
/// transaction.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::store::{Observation, ObservationLimits, Store, APPEARANCE_GAP_SECS};
    use std::os::unix::fs::PermissionsExt;

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
}
