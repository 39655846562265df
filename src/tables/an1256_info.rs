//! `an1256_info`: one row about the extension itself — store, learning window,
//! sampler cost and errors, store recoveries, policy status. Fleet admins query
//! it to see which hosts are still learning or unhealthy.

use super::{bigint, integer, text, Column, QueryContext, Row, TableDef, TableError};
use crate::baseline::store::unix_now;
use crate::baseline::Baseline;
use std::sync::Arc;

pub const NAME: &str = "an1256_info";

pub static COLUMNS: &[Column] = &[
    text("version", "an1256 version"),
    text("platform", "linux or darwin"),
    text("db_path", "Baseline store path"),
    text(
        "store_error",
        "Why the store is unavailable (empty when healthy)",
    ),
    bigint("created_at", "Unix time the store was created"),
    bigint(
        "learning_until",
        "Unix time learning ends (0: never learned / stopped)",
    ),
    integer("learning", "1 while the learning window is open"),
    bigint("entries", "Stored baseline entries (learned + approved)"),
    bigint("learned_entries", "Entries from learning"),
    bigint("approved_entries", "Approved entries"),
    bigint("observations", "Rows in an1256_observations"),
    bigint("last_sample_time", "Unix time of the last sampler pass"),
    bigint("last_sample_duration_ms", "Wall time of the last pass"),
    bigint(
        "last_sample_cpu_ms",
        "CPU time of the last pass (sampler thread)",
    ),
    bigint("last_sample_errors", "Errors in the last pass"),
    bigint("sampler_errors", "Errors over all passes"),
    text("last_sample_error", "Errors of the last pass"),
    integer(
        "sample_interval",
        "Seconds between sampler passes (extension mode)",
    ),
    integer("store_recovered", "Corrupt stores moved aside so far"),
    text(
        "recovery_events",
        "Each recovery: time, where the corrupt file went, why (`;`-separated)",
    ),
    text(
        "policy_path",
        "Policy sources (built-in rules, then the file)",
    ),
    text(
        "policy_error",
        "Why the policy file was not (re)loaded; the last good rules stay in force",
    ),
    integer("policy_rules", "Policy rules in force"),
    bigint(
        "sampler_panics",
        "Sampler passes that panicked since the extension started (the sampler goes on; last_sample_error says why)",
    ),
];

pub struct An1256Info {
    baseline: Arc<Baseline>,
}

impl An1256Info {
    pub fn new(baseline: Arc<Baseline>) -> Self {
        An1256Info { baseline }
    }
}

impl TableDef for An1256Info {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "One row of an1256 health: version, store path, learning window, entry and observation counts, sampler cost and errors, store recoveries, policy status."
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn generate(&self, _ctx: &QueryContext) -> Result<Vec<Row>, TableError> {
        let b = &self.baseline;
        let (summary, store_error) = match b.store().and_then(|s| {
            let summary = s.summary().map_err(|e| e.to_string())?;
            let note = s.read_only().map(|why| format!("read-only: {why}"));
            Ok((summary, note.unwrap_or_default()))
        }) {
            Ok(found) => found,
            Err(e) => (Default::default(), e),
        };
        let policy = b.policy.status();
        let learning = summary.learning_until > unix_now();
        let events: Vec<String> = summary
            .recoveries
            .iter()
            .map(|r| format!("{} moved to {} ({})", r.time, r.moved_to, r.reason))
            .collect();
        Ok(vec![vec![
            env!("CARGO_PKG_VERSION").into(),
            b.host().platform().into(),
            b.config.db_path.display().to_string().into(),
            store_error.into(),
            summary.created_at.into(),
            summary.learning_until.into(),
            learning.into(),
            summary.entries.into(),
            summary.learned_entries.into(),
            summary.approved_entries.into(),
            summary.observations.into(),
            summary.last_sample_time.into(),
            summary.last_sample_duration_ms.into(),
            summary.last_sample_cpu_ms.into(),
            summary.last_sample_errors.into(),
            summary.sampler_errors.into(),
            summary.last_sample_error.into(),
            b.config.sample_interval.as_secs().into(),
            summary
                .recoveries
                .len()
                .try_into()
                .unwrap_or(i64::MAX)
                .into(),
            events.join("; ").into(),
            policy.path.into(),
            policy.error.into(),
            policy.rules.try_into().unwrap_or(i64::MAX).into(),
            b.sampler_panics().into(),
        ]])
    }
}
