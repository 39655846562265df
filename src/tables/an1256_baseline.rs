//! `an1256_baseline`: what is normal for this host. Stored entries (`learned`,
//! `approved`) plus policy rules (`policy`), writable through osquery and the
//! embedded engine: `INSERT` approves, `DELETE` revokes, `UPDATE` edits by rowid.
//!
//! Policy rules are matched, not stored: a query that constrains `identity`
//! (`identity = …`, which is what the pack's LEFT JOIN pushes down for each
//! socket) gets, besides stored entries, one `policy` row per (protocol, port) of
//! every rule matching that identity. A full scan lists policy rows for the
//! identities the sampler has observed. Policy rows have negative `entry_id`s
//! and cannot be written (edit the policy file).

use super::{int, Column, Example, QueryContext, Table, TableError, TypedRow, WriteOutcome};
use crate::baseline::identity::{broad_identity_scope, EntryKey};
use crate::baseline::policy::PolicyRow;
use crate::baseline::store::{Entry, Source, StoreError};
use crate::baseline::Baseline;
use std::sync::Arc;

pub const NAME: &str = "an1256_baseline";

super::table_row! {
    /// One row of `an1256_baseline`: a stored entry or a matching policy rule.
    pub struct BaselineRow, cells BaselineCells {
        identity: TEXT [index] = "Subject identity (process_code_signature.subject_identity format). INDEX: `identity =` also returns matching policy rules",
        protocol_name: TEXT = "icmp, icmpv6, udp, udplite, raw or socks",
        remote_port: INTEGER = "Remote port, or -1 for any port",
        source: TEXT = "learned (sampler, during the learning window), approved (INSERT / an1256 baseline approve) or policy (policy file rule)",
        first_seen: BIGINT = "Unix time the entry was created",
        last_seen: BIGINT = "Unix time the sampler last saw a matching socket",
        seen_count: BIGINT = "Sampler passes that saw a matching socket",
        note: TEXT = "Free text (policy rows: the rule's reason)",
        entry_id: BIGINT = "Row id for UPDATE/DELETE; negative for policy rows",
        rule: TEXT = "Policy rule name (policy rows only)",
    }
}

pub const COLUMNS: &[Column] = <BaselineRow as TypedRow>::COLUMNS;

pub struct An1256Baseline {
    baseline: Arc<Baseline>,
}

impl An1256Baseline {
    pub fn new(baseline: Arc<Baseline>) -> Self {
        An1256Baseline { baseline }
    }
}

fn entry_row(e: &Entry) -> BaselineRow {
    BaselineRow {
        identity: e.identity.clone(),
        protocol_name: e.protocol_name.clone(),
        remote_port: e.remote_port,
        source: e.source.as_str().into(),
        first_seen: e.first_seen,
        last_seen: e.last_seen,
        seen_count: e.seen_count,
        note: e.note.clone(),
        entry_id: e.id,
        rule: String::new(),
    }
}

fn policy_row(p: &PolicyRow, n: usize) -> BaselineRow {
    BaselineRow {
        identity: p.identity.clone(),
        protocol_name: p.protocol_name.clone(),
        remote_port: p.remote_port,
        source: Source::Policy.as_str().into(),
        first_seen: 0,
        last_seen: 0,
        seen_count: 0,
        note: p.reason.clone(),
        entry_id: -1 - int(n).min(i64::MAX - 1),
        rule: p.rule.clone(),
    }
}

/// The key, source and note a write asks for.
fn parse_write(cells: BaselineCells) -> Result<(EntryKey, Option<Source>, String), TableError> {
    let identity = cells
        .identity
        .ok_or(TableError::Required { column: "identity" })?;
    let protocol_name = cells.protocol_name.ok_or(TableError::Required {
        column: "protocol_name",
    })?;
    let remote_port = cells.remote_port.unwrap_or(-1);
    let source = match cells.source {
        None => None,
        Some(s) if s.is_empty() => None,
        Some(s) => match Source::parse(&s) {
            Some(Source::Policy) => return Err(TableError::PolicySourceWrite),
            Some(src) => Some(src),
            None => return Err(TableError::UnknownSource { value: s }),
        },
    };
    let note = cells.note.unwrap_or_default();
    let key = crate::baseline::identity::validate_entry(&identity, &protocol_name, remote_port)
        .map_err(TableError::InvalidEntry)?;
    Ok((key, source, note))
}

fn outcome_of(e: StoreError) -> WriteOutcome {
    match e {
        StoreError::Invalid(m) => WriteOutcome::Constraint(m),
        StoreError::NotFound(id) => {
            WriteOutcome::Constraint(format!("no baseline entry with id {id}"))
        }
        other => WriteOutcome::Failure(other.to_string()),
    }
}

const POLICY_WRITE: &str =
    "policy rows come from the policy file (see an1256_info.policy_path); edit that file instead";

impl Table for An1256Baseline {
    type Row = BaselineRow;
    const NAME: &'static str = NAME;
    const DESCRIPTION: &'static str =
        "What is normal for this host: learned and approved entries from the baseline store, and policy rules (matched per identity). Writable: INSERT approves, DELETE revokes, UPDATE edits (by rowid).";
    const EXAMPLES: &'static [Example] = &[
        Example {
            title: "What this host allows, and where each entry comes from",
            sql: "SELECT identity, protocol_name, remote_port, source, note, entry_id FROM an1256_baseline;",
        },
        Example {
            title: "Approve one identity for DNS over UDP (writes are audited in an1256_baseline_audit)",
            sql: "INSERT INTO an1256_baseline (identity, protocol_name, remote_port, note) VALUES ('sha256:<hex>', 'udp', 53, 'resolver');",
        },
    ];

    fn rows(&self, ctx: &QueryContext) -> Result<Vec<BaselineRow>, TableError> {
        let identities = ctx.equal_texts("identity");
        let mut rows = Vec::new();
        match self.baseline.store() {
            // Without stored entries nothing is allowed but policy: fail closed.
            Ok(store) => match store.entries(identities.as_deref()) {
                Ok(entries) => rows.extend(entries.iter().map(entry_row)),
                Err(e) => self.baseline.store_trouble(&e),
            },
            // Policy rows still answer; an1256_info reports the store error.
            // (logged once by Baseline::store, not once per joined row).
            Err(e) => log::debug!("{NAME}: {e}"),
        }
        let policy_rows = match &identities {
            Some(list) => list
                .iter()
                .flat_map(|id| self.baseline.policy_rows(id))
                .collect(),
            None => self.baseline.policy_rows_for_observed(),
        };
        rows.extend(
            policy_rows
                .iter()
                .enumerate()
                .map(|(n, p)| policy_row(p, n)),
        );
        Ok(rows)
    }

    /// Read-only from osquery when the config says `osquery_writes: false`.
    fn writable(&self) -> bool {
        self.baseline.settings.osquery_writes
            || self.baseline.audit_source() != crate::baseline::store::AuditSource::Osquery
    }

    fn insert_cells(&self, cells: BaselineCells) -> WriteOutcome {
        let (key, source, note) = match parse_write(cells) {
            Ok(v) => v,
            Err(e) => return WriteOutcome::Constraint(e.to_string()),
        };
        if let Some(scope) = broad_identity_scope(&key.identity) {
            return WriteOutcome::Constraint(format!(
                "{} is a broad identity (it covers {scope}); approve it with `an1256 baseline approve --force` on the host",
                key.identity
            ));
        }
        if source == Some(Source::Learned) {
            return WriteOutcome::Constraint(
                "INSERT adds approved entries; learned entries come from the sampler".into(),
            );
        }
        let store = match self.baseline.store() {
            Ok(s) => s,
            Err(e) => return outcome_of(e),
        };
        // The store logs and records the change (an1256_baseline_audit).
        match store.approve(&key, &note) {
            Ok(id) => WriteOutcome::Success(Some(id)),
            Err(e) => outcome_of(e),
        }
    }

    fn delete_rowid(&self, rowid: i64) -> WriteOutcome {
        if rowid < 0 {
            return WriteOutcome::Constraint(POLICY_WRITE.into());
        }
        let store = match self.baseline.store() {
            Ok(s) => s,
            Err(e) => return outcome_of(e),
        };
        match store.revoke(rowid) {
            Ok(true) => WriteOutcome::Success(None),
            Ok(false) => WriteOutcome::Constraint(format!("no baseline entry with id {rowid}")),
            Err(e) => outcome_of(e),
        }
    }

    fn update_cells(&self, rowid: i64, cells: BaselineCells) -> WriteOutcome {
        if rowid < 0 {
            return WriteOutcome::Constraint(POLICY_WRITE.into());
        }
        let (key, source, note) = match parse_write(cells) {
            Ok(v) => v,
            Err(e) => return WriteOutcome::Constraint(e.to_string()),
        };
        if let Some(scope) = broad_identity_scope(&key.identity) {
            return WriteOutcome::Constraint(format!(
                "{} is a broad identity (it covers {scope}); approve it with `an1256 baseline approve --force` on the host",
                key.identity
            ));
        }
        let store = match self.baseline.store() {
            Ok(s) => s,
            Err(e) => return outcome_of(e),
        };
        let source = match source {
            Some(s) => s,
            None => match store.entry(rowid) {
                Ok(Some(e)) => e.source,
                Ok(None) => {
                    return WriteOutcome::Constraint(format!("no baseline entry with id {rowid}"))
                }
                Err(e) => return outcome_of(e),
            },
        };
        match store.update(rowid, &key, source, &note) {
            Ok(()) => WriteOutcome::Success(Some(rowid)),
            Err(e) => outcome_of(e),
        }
    }

    fn rowid_name(&self) -> Option<&'static str> {
        Some("entry_id")
    }
}
