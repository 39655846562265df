//! Baseline entries: approve, revoke, update, import, and the rows behind them.

use super::{map_sqlite, rows_by_identity, unix_now, Store, StoreError};
use crate::baseline::identity::{validate_entry, validate_note, EntryKey};
use rusqlite::{params, ErrorCode, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::path::Path;

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

impl Store {
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
}

pub(super) fn entry_by_id(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
) -> rusqlite::Result<Option<Entry>> {
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
pub(super) fn upsert_entry(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::store::tests::{key, SHA};
    use crate::baseline::store::{Observation, ObservationLimits};

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
