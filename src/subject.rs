//! The subject AN1256 judges: the executable, or the script behind an interpreter.
//! An Apple-signed or package-owned python running `/tmp/x.py` is judged by
//! `/tmp/x.py`.

use crate::model::{CodeIdentity, ProcessInfo, Trust};
use crate::platform::Host;
use crate::script::{self, ScriptInvocation, ScriptKind};

/// Everything `process_code_signature` says about one process.
#[derive(Clone, Debug)]
pub struct ProcessVerdict {
    pub process: ProcessInfo,
    /// The executable's (or live process's) identity.
    pub identity: CodeIdentity,
    pub script: Option<ScriptInvocation>,
    /// The script file's own identity (kind File only).
    pub script_identity: Option<CodeIdentity>,
    pub subject: Subject,
}

impl ProcessVerdict {
    /// The interpreter name, for a process running a script; empty otherwise.
    pub fn interpreter(&self) -> &'static str {
        self.script.as_ref().map_or("", |s| s.interpreter)
    }

    /// `file`, `inline`, `stdin`, `module` or `interactive`; empty for a binary.
    pub fn script_kind(&self) -> &'static str {
        self.script.as_ref().map_or("", |s| s.kind.as_str())
    }

    /// Whether the script file carries the macOS quarantine attribute.
    pub fn script_quarantined(&self) -> bool {
        self.script_identity.as_ref().is_some_and(|s| s.quarantined)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// `binary` or `script`.
    pub kind: &'static str,
    pub path: String,
    pub trusted: bool,
    /// Stable baseline key (see `baseline_key`).
    pub identity: String,
}

/// The stable baseline key of a binary or script file:
/// `team:<TEAMID>:<signing id>`, `apple:<signing id>`, `package:<pkg>:<path>`, else
/// `sha256:<hex>` (and `path:<path>` as the last resort when the file could not be hashed).
pub fn baseline_key(identity: &CodeIdentity, path: &str) -> String {
    match identity.trust {
        Trust::Apple if !identity.identifier.is_empty() => {
            format!("apple:{}", identity.identifier)
        }
        Trust::DeveloperId | Trust::AppStore
            if !identity.team_identifier.is_empty() && !identity.identifier.is_empty() =>
        {
            format!("team:{}:{}", identity.team_identifier, identity.identifier)
        }
        Trust::Package if !identity.identifier.is_empty() => {
            format!("package:{}:{}", identity.identifier, path)
        }
        _ if !identity.sha256.is_empty() => format!("sha256:{}", identity.sha256),
        _ => format!("path:{path}"),
    }
}

/// Judges one process: its executable, the script it runs, and the subject.
pub fn evaluate(host: &dyn Host, process: ProcessInfo) -> ProcessVerdict {
    let identity = host.process_identity(&process);
    let mut script = script::analyze(&process.path, &process.argv, &process.cwd);
    if let Some(s) = script.as_mut() {
        resolve_module_file(s, &process.cwd);
    }
    // Only absolute paths are looked at: a relative one (cwd unknown) would name a
    // file relative to this extension's own cwd.
    let script_identity = script
        .as_ref()
        .filter(|s| s.kind == ScriptKind::File && s.script_path.starts_with('/'))
        .map(|s| host.file_identity(&s.script_path));
    let subject = subject_of(
        &process,
        &identity,
        script.as_ref(),
        script_identity.as_ref(),
    );
    ProcessVerdict {
        process,
        identity,
        script,
        script_identity,
        subject,
    }
}

/// Python `-m mod` runs `<cwd>/mod.py` (or `<cwd>/mod/__main__.py`) when it exists,
/// because the cwd comes first on `sys.path`: such a module is a script file in the
/// cwd and is judged as one (the module name is kept).
fn resolve_module_file(script: &mut ScriptInvocation, cwd: &str) {
    if script.kind != ScriptKind::Module || !script.module_from_cwd {
        return;
    }
    let found = script::module_candidates(cwd, &script.module)
        .into_iter()
        .find(|candidate| std::fs::metadata(candidate).is_ok_and(|m| m.is_file()));
    if let Some(path) = found {
        script.kind = ScriptKind::File;
        script.script_path = path;
    }
}

/// The subject, from parts already evaluated (pure; unit-tested).
pub fn subject_of(
    process: &ProcessInfo,
    identity: &CodeIdentity,
    script: Option<&ScriptInvocation>,
    script_identity: Option<&CodeIdentity>,
) -> Subject {
    let binary = || Subject {
        kind: "binary",
        path: process.path.clone(),
        trusted: identity.trust.is_trusted(),
        identity: baseline_key(identity, &process.path),
    };
    let Some(script) = script else {
        return binary();
    };
    let interpreter_key = baseline_key(identity, &process.path);
    match script.kind {
        ScriptKind::File => match script_identity {
            Some(si) => Subject {
                kind: "script",
                path: script.script_path.clone(),
                trusted: si.trust.is_trusted(),
                identity: baseline_key(si, &script.script_path),
            },
            None => Subject {
                kind: "script",
                path: script.script_path.clone(),
                trusted: false,
                identity: format!("path:{}", script.script_path),
            },
        },
        // Code on a command line has no provenance at all: never trusted.
        ScriptKind::Inline => Subject {
            kind: "script",
            path: String::new(),
            trusted: false,
            identity: format!("inline:{}:{}", script.interpreter, script.inline_sha256),
        },
        // Code from a pipe cannot be seen: judged untrusted, keyed by interpreter.
        ScriptKind::Stdin => Subject {
            kind: "script",
            path: String::new(),
            trusted: false,
            identity: format!("stdin:{}:{}", script.interpreter, interpreter_key),
        },
        // A module by name (not found as a file next to the process) loads from the
        // interpreter's own library path: judged as the interpreter, keyed by module.
        ScriptKind::Module => Subject {
            kind: "script",
            path: String::new(),
            trusted: identity.trust.is_trusted(),
            identity: format!("module:{}:{}", script.module, interpreter_key),
        },
        ScriptKind::Interactive => binary(),
    }
}
