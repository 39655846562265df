//! Observations: what each sampler pass saw, one row per appearance of a
//! (subject, protocol, remote) (its first sighting's details), learning from them
//! and pruning them.

use super::entries::{upsert_entry, Source};
use super::{map_sqlite, rows_by_identity, ObservationLimits, Store, StoreError};
use crate::baseline::identity::validate_entry;
use rusqlite::params;
use serde::Serialize;

/// Sightings of one observation key (identity, protocol, remote port, scope and
/// address) closer together than this belong to one appearance, whose details
/// (pid, socket type, reason…) stay those of its first sighting:
/// `an1256_hits_recent` (a differential query over the last
/// `APPEARANCE_GAP_SECS`) then logs each appearance once. A later sighting starts
/// a new appearance with fresh details. A new remote address is a new key, so it
/// is logged too, not hidden behind the first remote.
pub const APPEARANCE_GAP_SECS: i64 = 180;

/// What the sampler saw for one (identity, protocol, port, scope, address) in one
/// pass.
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

impl Store {
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
            // Cached statements: the watch writes a pass every second, and
            // parsing these again each time was ~6% of the idle extension's CPU.
            let mut learned_total: i64 = tx
                .prepare_cached("SELECT count(*) FROM entries WHERE source = 'learned'")
                .and_then(|mut count| count.query_row([], |r| r.get(0)))
                .map_err(wrap)?;
            {
                let mut upsert = tx
                    .prepare_cached(
                        "INSERT INTO observations (identity, protocol_name, remote_port, remote_scope, remote_address,
                             pid, path, exe_path, interpreter, subject_kind, subject_trusted, first_seen, last_seen, count,
                             socket_type, script_kind, script_quarantined, reason, start_time)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, 1, ?13, ?14, ?15, ?16, ?17)
                         ON CONFLICT (identity, protocol_name, remote_port, remote_scope, remote_address) DO UPDATE SET
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
                    let broad = crate::baseline::identity::broad_identity_scope(&o.identity).is_some();
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
                .prepare_cached("DELETE FROM observations WHERE last_seen < ?1")
                .and_then(|mut aged| aged.execute(params![now.saturating_sub(limits.max_age_secs)]))
                .map_err(wrap)?;
            let excess = tx
                .prepare_cached(
                    "DELETE FROM observations WHERE id IN
                       (SELECT id FROM observations ORDER BY last_seen DESC, id DESC LIMIT -1 OFFSET ?1)",
                )
                .and_then(|mut excess| excess.execute(params![limits.max_rows.max(0)]))
                .map_err(wrap)?;
            result.pruned = aged + excess;
            if limits.max_learned_age_secs > 0 {
                result.expired = tx
                    .prepare_cached("DELETE FROM entries WHERE source = 'learned' AND last_seen < ?1")
                    .and_then(|mut expired| {
                        expired.execute(params![now.saturating_sub(limits.max_learned_age_secs)])
                    })
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::store::tests::{key, udp_to, SHA};

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
            remote_address: "192.0.2.1".into(),
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

    /// A subject that talks to a second remote (same protocol, port and scope) while
    /// its first appearance lasts gets a row of its own, first seen when it was:
    /// the first remote does not mask it. Sightings of either remote after that add
    /// no rows.
    #[test]
    fn a_new_remote_is_its_own_row_and_not_masked_by_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("an1256.db"), 0).unwrap();
        let to = |address: &str| Observation {
            remote_address: address.into(),
            pid: 100,
            start_time: 50,
            ..udp_to(53, false)
        };
        let limits = ObservationLimits::default();
        store
            .record_pass(&[to("192.0.2.1")], false, 100, limits)
            .unwrap();
        store
            .record_pass(&[to("192.0.2.2")], false, 115, limits)
            .unwrap();
        store
            .record_pass(&[to("192.0.2.1"), to("192.0.2.2")], false, 130, limits)
            .unwrap();
        let rows: Vec<(String, i64, i64, i64)> = store
            .observations(None)
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    r.observation.remote_address,
                    r.first_seen,
                    r.last_seen,
                    r.count,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("192.0.2.1".to_owned(), 100, 130, 2),
                ("192.0.2.2".to_owned(), 115, 130, 2)
            ]
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
}
