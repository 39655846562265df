//! `process_code_signature`: one row per running process — who signed what it runs,
//! and, for interpreters, the script behind it.

use super::{
    bigint, indexed, integer, text, Column, QueryContext, Row, TableDef, TableError, Value,
};
use crate::model::{Pid, ProcessInfo};
use crate::platform::{Host, HostError};
use crate::subject::{self, ProcessVerdict};
use std::collections::HashMap;
use std::sync::Arc;

pub const NAME: &str = "process_code_signature";

pub static COLUMNS: &[Column] = &[
    indexed(integer("pid", "Process id (INDEX: `pid =` and `pid IN (…)` read only those processes)")),
    integer("parent", "Parent process id"),
    text("path", "Executable path"),
    text("cmdline", "argv joined by spaces"),
    bigint("uid", "Real user id"),
    text("parent_path", "Parent's executable path"),
    integer("signed", "1 if the executable carries any signature or package provenance (ad-hoc included)"),
    text("trust", "apple, app_store, developer_id, package, adhoc, unsigned, invalid or unknown (see error)"),
    integer("trusted", "1 iff trust is apple, app_store, developer_id or package"),
    text("identifier", "Signing identifier (Linux: owning package name)"),
    text("team_identifier", "Team identifier (empty on Linux)"),
    text("authority", "Leaf certificate common name (Linux: dpkg or rpm)"),
    text("cdhash", "Code directory hash (macOS; empty on Linux)"),
    integer("notarized", "1 if notarized, 0 if not, -1 unknown or not applicable (Linux)"),
    integer("platform_binary", "1 if an Apple platform binary, 0 if not, -1 on Linux"),
    text("flags", "Kernel code-signing flags as hex (macOS; empty on Linux)"),
    text("sha256", "SHA-256 of the executable (always filled when trusted = 0, unless too large: see error)"),
    text("interpreter", "Interpreter name (python, perl, ruby, sh, bash, zsh, node, osascript, php, tclsh, pwsh…) or empty"),
    text("script_kind", "file, inline, stdin, module, interactive, or empty for non-interpreters"),
    text("script_path", "Script file run by the interpreter (absolute)"),
    text("script_sha256", "SHA-256 of the script file, or of the inline code text"),
    text("script_trust", "Trust verdict of the script itself (inline code: unsigned; stdin: unknown)"),
    integer("script_quarantined", "1 if the script carries com.apple.quarantine (macOS; 0 on Linux)"),
    text("subject_kind", "binary or script: what AN1256 judges"),
    text("subject_path", "The executable, or the script for interpreters"),
    integer("subject_trusted", "Trust of the subject (an Apple-signed python running /tmp/x.py is 0)"),
    text("subject_identity", "Stable baseline key: team:<TEAMID>:<id>, apple:<id>, package:<pkg>:<path>, sha256:<hex>, inline:<interpreter>:<sha256>"),
    text("cwd", "Current working directory"),
    bigint("start_time", "Process start time, Unix seconds"),
    text("error", "Why a field could not be filled (permission, vanished, too large…)"),
];

pub struct ProcessCodeSignature {
    host: Arc<dyn Host>,
}

impl ProcessCodeSignature {
    pub fn new(host: Arc<dyn Host>) -> Self {
        ProcessCodeSignature { host }
    }
}

/// Reads the processes a query names (all when unconstrained), skipping the ones
/// that vanish or cannot be read.
pub fn read_processes(
    host: &dyn Host,
    pids: Option<&[i64]>,
) -> Result<Vec<ProcessInfo>, TableError> {
    let pids: Vec<Pid> = match pids {
        Some(list) => list.iter().filter_map(|&p| Pid::try_from(p).ok()).collect(),
        None => host
            .pids()
            .map_err(|e| TableError::Failed(format!("cannot list processes: {e}")))?,
    };
    let mut processes = Vec::with_capacity(pids.len());
    for pid in pids {
        match host.process(pid) {
            Ok(p) => processes.push(p),
            Err(HostError::Vanished(_)) => {}
            Err(e) => log::debug!("skipping process {pid}: {e}"),
        }
    }
    Ok(processes)
}

/// Builds one row from a verdict (no I/O).
pub fn build_row(v: &ProcessVerdict, parent_path: &str) -> Row {
    let p = &v.process;
    let id = &v.identity;
    let (interpreter, kind, script_path, script_sha, script_trust, quarantined) = match &v.script {
        None => ("", "", String::new(), String::new(), "", false),
        Some(s) => {
            let (sha, trust, quarantined) = match (&v.script_identity, s.kind) {
                (Some(si), _) => (si.sha256.clone(), si.trust.as_str(), si.quarantined),
                (None, crate::script::ScriptKind::Inline) => {
                    (s.inline_sha256.clone(), "unsigned", false)
                }
                (None, crate::script::ScriptKind::Module) => {
                    (String::new(), id.trust.as_str(), false)
                }
                (None, crate::script::ScriptKind::Interactive) => (String::new(), "", false),
                (None, _) => (String::new(), "unknown", false),
            };
            (
                s.interpreter,
                s.kind.as_str(),
                s.script_path.clone(),
                sha,
                trust,
                quarantined,
            )
        }
    };
    let mut errors: Vec<&str> = Vec::new();
    for e in [&p.error, &id.error] {
        if !e.is_empty() {
            errors.push(e);
        }
    }
    let script_error = v
        .script_identity
        .as_ref()
        .map(|s| format!("script: {}", s.error));
    if let Some(e) = script_error
        .as_deref()
        .filter(|e| e.len() > "script: ".len())
    {
        errors.push(e);
    }
    vec![
        p.pid.into(),
        p.parent.into(),
        p.path.as_str().into(),
        p.argv.join(" ").into(),
        p.uid.into(),
        parent_path.into(),
        id.signed.into(),
        id.trust.as_str().into(),
        id.trust.is_trusted().into(),
        id.identifier.as_str().into(),
        id.team_identifier.as_str().into(),
        id.authority.as_str().into(),
        id.cdhash.as_str().into(),
        id.notarized.into(),
        id.platform_binary.into(),
        id.flags.as_str().into(),
        id.sha256.as_str().into(),
        interpreter.into(),
        kind.into(),
        script_path.into(),
        script_sha.into(),
        script_trust.into(),
        quarantined.into(),
        v.subject.kind.into(),
        v.subject.path.as_str().into(),
        v.subject.trusted.into(),
        v.subject.identity.as_str().into(),
        p.cwd.as_str().into(),
        p.start_time.into(),
        Value::Text(errors.join("; ")),
    ]
}

impl TableDef for ProcessCodeSignature {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "One row per running process: the code-trust verdict of its executable and, for interpreters, of the script it runs; `subject_*` is what AN1256 judges."
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn generate(&self, ctx: &QueryContext) -> Result<Vec<Row>, TableError> {
        let pids = ctx.equal_integers("pid");
        let processes = read_processes(self.host.as_ref(), pids.as_deref())?;
        // Full scans know every parent already; point lookups ask for the one parent.
        let known: HashMap<Pid, String> = if pids.is_none() {
            processes.iter().map(|p| (p.pid, p.path.clone())).collect()
        } else {
            HashMap::new()
        };
        let mut rows = Vec::with_capacity(processes.len());
        for process in processes {
            let parent_path = match known.get(&process.parent) {
                Some(path) => path.clone(),
                None if process.parent > 0 => self
                    .host
                    .executable_path(process.parent)
                    .unwrap_or_default(),
                None => String::new(),
            };
            let verdict = subject::evaluate(self.host.as_ref(), process);
            rows.push(build_row(&verdict, &parent_path));
        }
        Ok(rows)
    }
}
