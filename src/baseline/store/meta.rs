//! Meta values (creation time, learning window, sampler stats), recoveries and
//! the audit trail.

use super::{unix_now, Store, StoreError};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// Audit records kept (the oldest beyond this are pruned on each audited write).
pub const MAX_AUDIT_ROWS: i64 = 100_000;

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

impl Store {
    /// Marks a new store with its creation time; `true` when it was new. An
    /// existing store is left unwritten: another process holding the write lock
    /// must not keep us from reading.
    pub(super) fn init_meta(&self) -> Result<bool, StoreError> {
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

    /// Who later writes are audited as (default `Cli`).
    pub fn set_audit_source(&self, source: AuditSource) {
        *self.audit_source.lock().unwrap_or_else(|p| p.into_inner()) = source;
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

    /// Sets the end of the learning window (0 stops learning now).
    /// Kept in the state file beside the store, which a rebuilt store cannot reset.
    pub fn set_learning_until(&self, until: i64) -> Result<(), StoreError> {
        if let Some(why) = &self.read_only {
            return Err(StoreError::ReadOnly {
                path: self.path.display().to_string(),
                why: why.clone(),
            });
        }
        let installed_at = crate::baseline::state::read_state(&self.path)
            .ok()
            .flatten()
            .map_or_else(unix_now, |s| s.installed_at);
        let state = crate::baseline::state::LearningState {
            installed_at,
            learning_until: until,
        };
        let old = self.learning_until().unwrap_or(0);
        crate::baseline::state::write_state(&self.path, &state)?;
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
        Ok(crate::baseline::state::read_state(&self.path)?.map_or(0, |s| s.learning_until))
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

    pub(super) fn meta_int(&self, key: &str) -> Result<Option<i64>, StoreError> {
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
