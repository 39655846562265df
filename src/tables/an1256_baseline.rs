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

use super::{
    bigint, indexed, integer, text, Column, QueryContext, Row, TableDef, TableError, Value,
    WriteOutcome,
};
use crate::baseline::identity::{broad_identity_scope, EntryKey};
use crate::baseline::policy::PolicyRow;
use crate::baseline::store::{Entry, Source, StoreError};
use crate::baseline::Baseline;
use std::sync::Arc;

pub const NAME: &str = "an1256_baseline";

pub static COLUMNS: &[Column] = &[
    indexed(text("identity", "Subject identity (process_code_signature.subject_identity format). INDEX: `identity =` also returns matching policy rules")),
    text("protocol_name", "icmp, icmpv6, udp, udplite, raw or socks"),
    integer("remote_port", "Remote port, or -1 for any port"),
    text("source", "learned (sampler, during the learning window), approved (INSERT / an1256 baseline approve) or policy (policy file rule)"),
    bigint("first_seen", "Unix time the entry was created"),
    bigint("last_seen", "Unix time the sampler last saw a matching socket"),
    bigint("seen_count", "Sampler passes that saw a matching socket"),
    text("note", "Free text (policy rows: the rule's reason)"),
    bigint("entry_id", "Row id for UPDATE/DELETE; negative for policy rows"),
    text("rule", "Policy rule name (policy rows only)"),
];

const I_IDENTITY: usize = 0;
const I_PROTOCOL: usize = 1;
const I_PORT: usize = 2;
const I_SOURCE: usize = 3;
const I_NOTE: usize = 7;

pub struct An1256Baseline {
    baseline: Arc<Baseline>,
}

impl An1256Baseline {
    pub fn new(baseline: Arc<Baseline>) -> Self {
        An1256Baseline { baseline }
    }
}

fn entry_row(e: &Entry) -> Row {
    vec![
        e.identity.as_str().into(),
        e.protocol_name.as_str().into(),
        e.remote_port.into(),
        e.source.as_str().into(),
        e.first_seen.into(),
        e.last_seen.into(),
        e.seen_count.into(),
        e.note.as_str().into(),
        e.id.into(),
        "".into(),
    ]
}

fn policy_row(p: &PolicyRow, n: usize) -> Row {
    vec![
        p.identity.as_str().into(),
        p.protocol_name.as_str().into(),
        p.remote_port.into(),
        Source::Policy.as_str().into(),
        0i64.into(),
        0i64.into(),
        0i64.into(),
        p.reason.as_str().into(),
        (-1 - i64::try_from(n).unwrap_or(i64::MAX - 1)).into(),
        p.rule.as_str().into(),
    ]
}

fn text_of(values: &[Option<Value>], i: usize) -> Option<String> {
    match values.get(i).cloned().flatten() {
        Some(Value::Text(t)) => Some(t),
        Some(Value::Int(n)) => Some(n.to_string()),
        None => None,
    }
}

fn int_of(values: &[Option<Value>], i: usize, name: &str) -> Result<Option<i64>, String> {
    match values.get(i).cloned().flatten() {
        None => Ok(None),
        Some(Value::Int(n)) => Ok(Some(n)),
        Some(Value::Text(t)) => t
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{name} {t:?} is not an integer")),
    }
}

/// The key, source and note a write asks for.
fn parse_write(values: &[Option<Value>]) -> Result<(EntryKey, Option<Source>, String), String> {
    let identity = text_of(values, I_IDENTITY).ok_or("identity is required")?;
    let protocol_name = text_of(values, I_PROTOCOL).ok_or("protocol_name is required")?;
    let remote_port = int_of(values, I_PORT, "remote_port")?.unwrap_or(-1);
    let source = match text_of(values, I_SOURCE) {
        None => None,
        Some(s) if s.is_empty() => None,
        Some(s) => match Source::parse(&s) {
            Some(Source::Policy) => {
                return Err(
                    "source `policy` rows come from the policy file; insert `approved` entries"
                        .into(),
                )
            }
            Some(src) => Some(src),
            None => return Err(format!("source {s:?} is not approved or learned")),
        },
    };
    let note = text_of(values, I_NOTE).unwrap_or_default();
    let key = crate::baseline::identity::validate_entry(&identity, &protocol_name, remote_port)?;
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

impl TableDef for An1256Baseline {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "What is normal for this host: learned and approved entries from the baseline store, and policy rules (matched per identity). Writable: INSERT approves, DELETE revokes, UPDATE edits (by rowid)."
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn generate(&self, ctx: &QueryContext) -> Result<Vec<Row>, TableError> {
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
    fn is_writable(&self) -> bool {
        self.baseline.config.osquery_writes
            || self.baseline.audit_source() != crate::baseline::store::AuditSource::Osquery
    }

    fn insert(&self, values: &[Option<Value>]) -> WriteOutcome {
        let (key, source, note) = match parse_write(values) {
            Ok(v) => v,
            Err(m) => return WriteOutcome::Constraint(m),
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
            Err(e) => return WriteOutcome::Failure(e),
        };
        // The store logs and records the change (an1256_baseline_audit).
        match store.approve(&key, &note) {
            Ok(id) => WriteOutcome::Success(Some(id)),
            Err(e) => outcome_of(e),
        }
    }

    fn delete(&self, rowid: i64) -> WriteOutcome {
        if rowid < 0 {
            return WriteOutcome::Constraint(POLICY_WRITE.into());
        }
        let store = match self.baseline.store() {
            Ok(s) => s,
            Err(e) => return WriteOutcome::Failure(e),
        };
        match store.revoke(rowid) {
            Ok(true) => WriteOutcome::Success(None),
            Ok(false) => WriteOutcome::Constraint(format!("no baseline entry with id {rowid}")),
            Err(e) => outcome_of(e),
        }
    }

    fn update(&self, rowid: i64, values: &[Option<Value>]) -> WriteOutcome {
        if rowid < 0 {
            return WriteOutcome::Constraint(POLICY_WRITE.into());
        }
        let (key, source, note) = match parse_write(values) {
            Ok(v) => v,
            Err(m) => return WriteOutcome::Constraint(m),
        };
        if let Some(scope) = broad_identity_scope(&key.identity) {
            return WriteOutcome::Constraint(format!(
                "{} is a broad identity (it covers {scope}); approve it with `an1256 baseline approve --force` on the host",
                key.identity
            ));
        }
        let store = match self.baseline.store() {
            Ok(s) => s,
            Err(e) => return WriteOutcome::Failure(e),
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

    fn rowid_column(&self) -> Option<&'static str> {
        Some("entry_id")
    }
}
