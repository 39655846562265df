//! `an1256_baseline_audit`: every write to the baseline (INSERT, UPDATE, DELETE
//! through osquery or the embedded engine; approve, revoke, import and learn from
//! the CLI), with who made it and the entry before and after. Read-only.

use super::{Column, Example, QueryContext, Table, TableError, TypedRow};
use crate::baseline::store::MAX_AUDIT_ROWS;
use crate::baseline::Baseline;
use std::sync::Arc;

pub const NAME: &str = "an1256_baseline_audit";

super::table_row! {
    /// One row of `an1256_baseline_audit`.
    pub struct AuditRow, cells AuditCells {
        id: BIGINT = "Audit record id (increasing)",
        time: BIGINT = "Unix time of the write",
        source: TEXT = "Who wrote: osquery (extension mode) or cli",
        action: TEXT = "approve (INSERT / baseline approve), update, revoke (DELETE / baseline revoke), import, learn",
        entry_id: BIGINT = "an1256_baseline.entry_id of the entry (0 for learn)",
        before: TEXT = "The entry before the write, as JSON (empty when it did not exist)",
        after: TEXT = "The entry after the write, as JSON (empty when it was removed)",
    }
}

pub const COLUMNS: &[Column] = <AuditRow as TypedRow>::COLUMNS;

pub struct An1256BaselineAudit {
    baseline: Arc<Baseline>,
}

impl An1256BaselineAudit {
    pub fn new(baseline: Arc<Baseline>) -> Self {
        An1256BaselineAudit { baseline }
    }
}

impl Table for An1256BaselineAudit {
    type Row = AuditRow;
    const NAME: &'static str = NAME;
    const DESCRIPTION: &'static str =
        "The audit trail of the baseline: one row per change to an an1256_baseline entry or the learning window, with its source (osquery or cli) and the entry before and after (newest first; the last 100,000 kept).";
    const EXAMPLES: &'static [Example] = &[
        Example {
            title: "The last 20 changes to the baseline",
            sql: "SELECT datetime(time, 'unixepoch') AS at, source, action, entry_id, before, after FROM an1256_baseline_audit ORDER BY id DESC LIMIT 20;",
        },
    ];

    fn rows(&self, _ctx: &QueryContext) -> Result<Vec<AuditRow>, TableError> {
        // Without the store there is nothing to show; an1256_info says why.
        let Ok(store) = self.baseline.store() else {
            return Ok(Vec::new());
        };
        let rows = match store.audit_rows(MAX_AUDIT_ROWS) {
            Ok(rows) => rows,
            Err(e) => {
                self.baseline.store_trouble(&e);
                return Ok(Vec::new());
            }
        };
        Ok(rows
            .into_iter()
            .map(|r| AuditRow {
                id: r.id,
                time: r.time,
                source: r.source,
                action: r.action,
                entry_id: r.entry_id,
                before: r.before,
                after: r.after,
            })
            .collect())
    }
}
