//! `an1256_baseline_audit`: every write to the baseline (INSERT, UPDATE, DELETE
//! through osquery or the embedded engine; approve, revoke, import and learn from
//! the CLI), with who made it and the entry before and after. Read-only.

use super::{bigint, text, Column, QueryContext, Row, TableDef, TableError};
use crate::baseline::store::MAX_AUDIT_ROWS;
use crate::baseline::Baseline;
use std::sync::Arc;

pub const NAME: &str = "an1256_baseline_audit";

pub static COLUMNS: &[Column] = &[
    bigint("id", "Audit record id (increasing)"),
    bigint("time", "Unix time of the write"),
    text("source", "Who wrote: osquery (extension mode) or cli"),
    text(
        "action",
        "approve (INSERT / baseline approve), update, revoke (DELETE / baseline revoke), import, learn",
    ),
    bigint("entry_id", "an1256_baseline.entry_id of the entry (0 for learn)"),
    text("before", "The entry before the write, as JSON (empty when it did not exist)"),
    text("after", "The entry after the write, as JSON (empty when it was removed)"),
];

pub struct An1256BaselineAudit {
    baseline: Arc<Baseline>,
}

impl An1256BaselineAudit {
    pub fn new(baseline: Arc<Baseline>) -> Self {
        An1256BaselineAudit { baseline }
    }
}

impl TableDef for An1256BaselineAudit {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "The audit trail of the baseline: one row per change to an an1256_baseline entry or the learning window, with its source (osquery or cli) and the entry before and after (newest first; the last 100,000 kept)."
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn generate(&self, _ctx: &QueryContext) -> Result<Vec<Row>, TableError> {
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
            .map(|r| {
                vec![
                    r.id.into(),
                    r.time.into(),
                    r.source.into(),
                    r.action.into(),
                    r.entry_id.into(),
                    r.before.into(),
                    r.after.into(),
                ]
            })
            .collect())
    }
}
