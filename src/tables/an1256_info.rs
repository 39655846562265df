//! `an1256_info`: one row about the extension itself — store, learning window,
//! sampler cost and errors, store recoveries, policy status. Fleet admins query
//! it to see which hosts are still learning or unhealthy.

use super::{int, Column, Example, QueryContext, Table, TableError, TypedRow};
use crate::baseline::store::unix_now;
use crate::baseline::Baseline;
use std::sync::Arc;

pub const NAME: &str = "an1256_info";

super::table_row! {
    /// The one row of `an1256_info`.
    pub struct InfoRow, cells InfoCells {
        version: TEXT = "an1256 version",
        platform: TEXT = "linux or darwin",
        db_path: TEXT = "Baseline store path",
        store_error: TEXT = "Why the store is unavailable (empty when healthy)",
        created_at: BIGINT = "Unix time the store was created",
        learning_until: BIGINT = "Unix time learning ends (0: never learned / stopped)",
        learning: INTEGER = "1 while the learning window is open",
        entries: BIGINT = "Stored baseline entries (learned + approved)",
        learned_entries: BIGINT = "Entries from learning",
        approved_entries: BIGINT = "Approved entries",
        observations: BIGINT = "Rows in an1256_observations",
        last_sample_time: BIGINT = "Unix time of the last sampler pass",
        last_sample_duration_ms: BIGINT = "Wall time of the last pass",
        last_sample_cpu_ms: BIGINT = "CPU time of the last pass (sampler thread)",
        last_sample_errors: BIGINT = "Errors in the last pass",
        sampler_errors: BIGINT = "Errors over all passes",
        last_sample_error: TEXT = "Errors of the last pass",
        sample_interval: INTEGER = "Seconds between sampler passes (extension mode)",
        store_recovered: INTEGER = "Corrupt stores moved aside so far",
        recovery_events: TEXT = "Each recovery: time, where the corrupt file went, why (`;`-separated)",
        policy_path: TEXT = "Policy sources (built-in rules, then the file)",
        policy_error: TEXT = "Why the policy file was not (re)loaded; the last good rules stay in force",
        policy_rules: INTEGER = "Policy rules in force",
        sampler_panics: BIGINT = "Sampler passes that panicked since the extension started (the sampler goes on; last_sample_error says why)",
        watch_source: TEXT = "How the 1 s watch of untrusted processes learns of new processes: proc_connector (Linux, root), kqueue+polling (macOS), polling; empty when it does not run (scan, query)",
        watch_note: TEXT = "Why the watch polls instead of using events, or is off (empty when not degraded)",
        watch_processes: BIGINT = "Untrusted processes watched now",
        watch_pending: BIGINT = "Processes waiting for the watch's judgement (bounded)",
        watch_judged: BIGINT = "Processes the watch judged since it started",
        watch_overflow: BIGINT = "Processes the watch could not take (watched set or judgement queue full); the 15 s sampler pass still sees them",
        watch_rescans: BIGINT = "Listings of every process (start, lost events, full queue; every second when polling)",
        watch_lost_events: BIGINT = "Times the event source dropped events",
        watch_observations: BIGINT = "Observations the watch recorded",
        watch_cpu_ms: BIGINT = "CPU time of the watch thread since it started",
        watch_unwritten: BIGINT = "Observations of the watch whose write failed, held to be written at its next tick",
        failed_observation_writes: BIGINT = "Writes of observations (sampler passes, watch ticks) that failed since the extension started: store locked past its wait, unavailable, read-only, I/O",
        lost_observations: BIGINT = "Observations given up after a failed write (missing from an1256_observations and from learning): a failed sampler pass's, and the watch's past 4096 held",
        last_observation_write_error: TEXT = "Who failed to write observations last, and why",
        send_ledger: TEXT = "Linux: `running` when full scans give a socket sent on by a process they did not find holding it to that process (the kernel records each user's datagram sends), else why not; empty in one-shot modes and on macOS",
    }
}

pub const COLUMNS: &[Column] = <InfoRow as TypedRow>::COLUMNS;

pub struct An1256Info {
    baseline: Arc<Baseline>,
}

impl An1256Info {
    pub fn new(baseline: Arc<Baseline>) -> Self {
        An1256Info { baseline }
    }
}

impl Table for An1256Info {
    type Row = InfoRow;
    const NAME: &'static str = NAME;
    const DESCRIPTION: &'static str =
        "One row of an1256 health: version, store path, learning window, entry and observation counts, sampler cost and errors, store recoveries, policy status.";
    const EXAMPLES: &'static [Example] = &[
        Example {
            title: "Is the extension healthy, and still learning?",
            sql: "SELECT version, learning, learning_until, entries, store_error, last_sample_error, policy_error FROM an1256_info;",
        },
    ];

    fn rows(&self, _ctx: &QueryContext) -> Result<Vec<InfoRow>, TableError> {
        let b = &self.baseline;
        let (summary, store_error) = match b.store().and_then(|s| {
            let summary = s.summary()?;
            let note = s.read_only().map(|why| format!("read-only: {why}"));
            Ok((summary, note.unwrap_or_default()))
        }) {
            Ok(found) => found,
            Err(e) => (Default::default(), e.to_string()),
        };
        let policy = b.policy.status();
        let watch = b.watch_status();
        let unwritten = b.unwritten_observations();
        let learning = summary.learning_until > unix_now();
        let events: Vec<String> = summary
            .recoveries
            .iter()
            .map(|r| format!("{} moved to {} ({})", r.time, r.moved_to, r.reason))
            .collect();
        Ok(vec![InfoRow {
            version: env!("CARGO_PKG_VERSION").into(),
            platform: b.host().platform().into(),
            db_path: b.settings.db_path.display().to_string(),
            store_error,
            created_at: summary.created_at,
            learning_until: summary.learning_until,
            learning: learning.into(),
            entries: summary.entries,
            learned_entries: summary.learned_entries,
            approved_entries: summary.approved_entries,
            observations: summary.observations,
            last_sample_time: summary.last_sample_time,
            last_sample_duration_ms: summary.last_sample_duration_ms,
            last_sample_cpu_ms: summary.last_sample_cpu_ms,
            last_sample_errors: summary.last_sample_errors,
            sampler_errors: summary.sampler_errors,
            last_sample_error: summary.last_sample_error,
            sample_interval: int(b.settings.sample_interval.as_secs()),
            store_recovered: int(summary.recoveries.len()),
            recovery_events: events.join("; "),
            policy_path: policy.path,
            policy_error: policy.error,
            policy_rules: int(policy.rules),
            sampler_panics: int(b.sampler_panics()),
            watch_source: watch.source,
            watch_note: watch.note,
            watch_processes: int(watch.watched),
            watch_pending: int(watch.pending),
            watch_judged: int(watch.judged),
            watch_overflow: int(watch.overflow),
            watch_rescans: int(watch.rescans),
            watch_lost_events: int(watch.lost_events),
            watch_observations: int(watch.observations),
            watch_cpu_ms: watch.cpu_ms,
            watch_unwritten: int(watch.unwritten),
            failed_observation_writes: int(unwritten.failed_writes),
            lost_observations: int(unwritten.given_up),
            last_observation_write_error: unwritten.last_error,
            send_ledger: b.host().send_ledger_status(),
        }])
    }
}
