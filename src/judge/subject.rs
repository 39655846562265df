//! The subject AN1256 judges: the executable, or the script behind an interpreter.
//! An Apple-signed or package-owned python running `/tmp/x.py` is judged by
//! `/tmp/x.py`.

use super::JudgeError;
use crate::judge::script::{
    self, CodeLoad, LoadTarget, PathKind, ScriptInvocation, ScriptKind, StdinSource,
};
use crate::model::{CodeIdentity, ProcessInfo, Trust};
use crate::platform::Host;

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
    /// Why the subject is untrusted beyond its file's own verdict (code from stdin,
    /// an unresolved module, code-loading options or variables); empty otherwise.
    pub error: String,
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

/// The process's environment, read at most once and only when a check needs it.
struct LazyEnvironment<'a> {
    host: &'a dyn Host,
    pid: crate::model::Pid,
    value: Option<Result<Vec<String>, JudgeError>>,
}

impl LazyEnvironment<'_> {
    fn get(&mut self) -> Result<&[String], JudgeError> {
        let (host, pid) = (self.host, self.pid);
        self.value
            .get_or_insert_with(|| {
                host.environment(pid).map_err(|cause| JudgeError::Host {
                    what: "environment",
                    cause,
                })
            })
            .as_deref()
            .map_err(Clone::clone)
    }
}

/// Judges one process: its executable, the script it runs, and the subject.
pub fn evaluate(host: &dyn Host, process: ProcessInfo) -> ProcessVerdict {
    let identity = host.process_identity(&process);
    let mut script = script::analyze(&process.path, &process.argv, &process.cwd);
    let mut env = LazyEnvironment {
        host,
        pid: process.pid,
        value: None,
    };
    let mut module_error = String::new();
    if let Some(s) = script.as_mut() {
        if process.argv_truncated {
            // argv was cut: the script operand may be in the part not read. The code
            // cannot be seen, as for an unreadable argv.
            *s = ScriptInvocation {
                interpreter: s.interpreter,
                kind: ScriptKind::Stdin,
                ..Default::default()
            };
        }
        // With no script operand the code comes from stdin unless a person is at a
        // terminal: `cat x.sh | bash` and `python3 < x.py` are not REPLs.
        if matches!(s.kind, ScriptKind::Interactive | ScriptKind::Stdin)
            || (s.interpreter == "python" && s.python.inspect)
        {
            s.stdin = host.stdin_source(process.pid);
            if s.kind == ScriptKind::Interactive && s.stdin != StdinSource::Terminal {
                s.kind = ScriptKind::Stdin;
            }
        }
        if s.kind == ScriptKind::Module {
            if let Err(e) = resolve_module_file(host, &process, s, &mut env) {
                module_error = e.to_string();
            }
        }
    }
    // The backend resolves the operand as the process would (its root, its cwd, its
    // raw argv bytes); `None` when there is nothing it can look at.
    let script_identity = script
        .as_ref()
        .filter(|s| s.kind == ScriptKind::File)
        .and_then(|s| {
            let operand = if s.script_operand.is_empty() {
                &s.script_path
            } else {
                &s.script_operand
            };
            host.script_identity(&process, operand, &s.script_path)
        });
    let mut subject = subject_of(
        &process,
        &identity,
        script.as_ref(),
        script_identity.as_ref(),
    );
    if !module_error.is_empty() {
        subject.trusted = false;
        subject.error = format!("python -m: {module_error}");
    }
    // A trusted program that runs other code in its own process (ld.so, valgrind,
    // qemu-user, gdb): what runs is not the file that was judged.
    if subject.trusted && script.is_none() {
        if let Some(why) = script::in_process_runner(&process.path) {
            subject.trusted = false;
            subject.error = format!("{}: {why}", process.path);
        }
    }
    // A standard-library runner (`python3 -m cProfile x.py`) runs the code in its
    // arguments as the package's file.
    if subject.trusted {
        let runner = script
            .as_ref()
            .filter(|s| s.kind == ScriptKind::File && s.interpreter == "python")
            .and_then(|s| script::python_code_runner(&s.script_path))
            // The console runs what a person types at a terminal, like the REPL.
            .filter(|r| *r != "code" || host.stdin_source(process.pid) != StdinSource::Terminal);
        if let Some(runner) = runner {
            subject.trusted = false;
            subject.error = format!(
                "python's {runner} runs the code named in its arguments or its input in this process"
            );
        }
    }
    let judged_trusted = subject.trusted;
    // What else runs in a trusted subject: loader options and variables, and
    // whether argv's script is the one the process holds.
    if subject.trusted {
        let mut problems = code_load_problems(host, &process, script.as_ref(), &mut env);
        if let Some(s) = script.as_ref().filter(|s| s.kind == ScriptKind::File) {
            problems.extend(argv_problem(host, &process, s));
        }
        problems.extend(mapped_code_problem(host, &process));
        if !problems.is_empty() {
            subject.trusted = false;
            subject.error = problems.join("; ");
        }
    }
    // An untrusted subject's key is what an approval (or learning) names: it must
    // stand for all the code that runs. Other code loaded into the process, a
    // script that is not the one the process holds, or a script whose file or
    // directories another user can change since it was read, and the key names a
    // class instead (approved only with --force, never learned).
    if !judged_trusted && !class_key(&subject.identity) {
        let mut problems = code_load_problems(host, &process, script.as_ref(), &mut env);
        if let Some(s) = script.as_ref().filter(|s| s.kind == ScriptKind::File) {
            problems.extend(argv_problem(host, &process, s));
            if let Some(changeable) = script_identity
                .as_ref()
                .map(|si| si.changeable.as_str())
                .filter(|c| !c.is_empty())
            {
                problems.push(format!(
                    "the script's hash need not name the code that ran: {changeable}"
                ));
            }
        }
        if !problems.is_empty() {
            if !subject.error.is_empty() {
                problems.insert(0, std::mem::take(&mut subject.error));
            }
            subject.error = problems.join("; ");
            subject.identity = format!("tainted:{}", subject.identity);
        }
    }
    // Untrusted although its file is trusted: the trusted file's key would approve
    // (or learn) every run of it with any code put into it. Keyed as a class.
    if !subject.trusted && trusted_file_key(&subject.identity) {
        subject.identity = format!("tainted:{}", subject.identity);
    }
    ProcessVerdict {
        process,
        identity,
        script,
        script_identity,
        subject,
    }
}

/// Native code mapped into a non-root process that is not the host's package
/// code: a library preloaded or loaded from the user's files. Its own code can
/// rewrite the argv and environment that named it (the process owns that memory),
/// not the kernel's mappings. Root's processes are not checked: an unprivileged
/// user cannot write into them. The first untrusted file found is enough.
fn mapped_code_problem(host: &dyn Host, process: &ProcessInfo) -> Option<String> {
    if process.uid == 0 {
        return None;
    }
    let paths = match host.mapped_code(process.pid)? {
        Ok(paths) => paths,
        Err(e) => {
            return Some(format!(
                "cannot judge the code mapped into the process: {e}"
            ))
        }
    };
    paths
        .iter()
        .filter(|path| !script::in_package_location(path))
        .find_map(|path| {
            let id = host.file_identity(path);
            (!id.trust.is_trusted()).then(|| {
                let detail = if id.error.is_empty() {
                    String::new()
                } else {
                    format!(": {}", id.error)
                };
                format!(
                    "{path} is mapped executable into the process ({}{detail})",
                    id.trust.as_str()
                )
            })
        })
}

/// argv's script against what the process holds open (see
/// `script::argv_disagreement`); errors reading either side fail closed, a
/// platform that cannot list open files skips the check.
fn argv_problem(host: &dyn Host, process: &ProcessInfo, s: &ScriptInvocation) -> Option<String> {
    let open = match host.open_regular_files(process.pid)? {
        Ok(open) => open,
        Err(e) => return Some(format!("cannot cross-check argv with the open files: {e}")),
    };
    let key = match host.script_file_key(process, &s.script_path)? {
        Ok(key) => key,
        Err(e) => return Some(format!("cannot cross-check argv's script: {e}")),
    };
    script::argv_disagreement(s.interpreter, &process.path, &s.script_path, key, &open)
        .map(|why| format!("argv disagrees with the process: {why}"))
}

/// Whether a baseline key already names a class of code rather than one piece.
fn class_key(identity: &str) -> bool {
    ["path:", "stdin:", "module:", "tainted:"]
        .iter()
        .any(|kind| identity.starts_with(kind))
}

/// The key of code run by an untrusted interpreter binary: the code's hash with
/// the interpreter's key, so the binary never inherits the code's approval (an
/// attacker's `python3` given an approved script's path runs its own code).
fn with_interpreter(code_sha256: &str, interpreter_key: &str) -> String {
    format!("script:{code_sha256}:{interpreter_key}")
}

/// Whether a baseline key names a trusted file (package, Apple, Developer ID).
fn trusted_file_key(identity: &str) -> bool {
    ["package:", "apple:", "team:"]
        .iter()
        .any(|kind| identity.starts_with(kind))
}

/// Python `-m mod`: the file python's path finder runs, searched along `sys.path`
/// as the process would build it (its cwd, environment and home). Found: the module
/// is a script file and is judged as one (the module name is kept). `Err`: why the
/// module cannot be judged; it then stays a `module` subject, untrusted.
fn resolve_module_file(
    host: &dyn Host,
    process: &ProcessInfo,
    script: &mut ScriptInvocation,
    env: &mut LazyEnvironment,
) -> Result<(), JudgeError> {
    if script.interpreter != "python" {
        return Err(JudgeError::ModulesNotResolved {
            interpreter: script.interpreter.to_owned(),
        });
    }
    let env = env.get()?;
    let home = host.home_directory(process.uid);
    let mut flags = script.python;
    flags.safe_path |= !script.module_from_cwd;
    let path =
        script::python_module_path(&process.path, &process.cwd, env, home.as_deref(), &flags)?;
    let version = script::python_version(&process.path).unwrap_or_default();
    let probe = |p: &str| host.path_kind(process.pid, p);
    let (file, _) = script::resolve_python_module(&path, version, &script.module, &probe)?;
    script.kind = ScriptKind::File;
    script.script_path = file;
    Ok(())
}

/// Everything the command line and the environment make the process load besides
/// its program, judged: a file must be trusted itself, a search directory must be
/// package-owned, a module name must resolve only through package-owned
/// directories. One line per problem, naming the option or variable and the file.
fn code_load_problems(
    host: &dyn Host,
    process: &ProcessInfo,
    script: Option<&ScriptInvocation>,
    env: &mut LazyEnvironment,
) -> Vec<String> {
    let env = match env.get() {
        Ok(env) => env,
        Err(e) => return vec![e.to_string()],
    };
    let interpreter = script.map_or("", |s| s.interpreter);
    let python = script.map(|s| s.python).unwrap_or_default();
    let mut loads: Vec<CodeLoad> = script.map(|s| s.loads.clone()).unwrap_or_default();
    if script.is_none() {
        loads.extend(script::program_loads(&process.path, &process.argv, env));
        if process.path.rsplit('/').next() == Some("ssh") {
            let (providers, unread) = super::socks::ssh_config_providers(host, process);
            loads.extend(providers.into_iter().map(|(place, library)| CodeLoad {
                via: format!("ssh {place}"),
                target: LoadTarget::File(library),
            }));
            loads.extend(unread.into_iter().map(|why| CodeLoad {
                via: "ssh config".into(),
                target: LoadTarget::Code(why),
            }));
        }
    }
    loads.extend(script::environment_loads(interpreter, env, &python));
    // A person at a terminal types what runs: the profile they read adds nothing.
    let runs_code = script.is_some_and(|s| s.kind != ScriptKind::Interactive);
    let mut problems = Vec::new();
    for load in &loads {
        if let Some(problem) = judge_load(host, process, interpreter, env, load, runs_code) {
            problems.push(problem);
        }
    }
    if interpreter == "python" {
        if let Some(s) = script {
            if script::python_inspects(env, &python) && s.stdin != StdinSource::Terminal {
                problems.push(format!(
                    "python -i / PYTHONINSPECT: more code is read from stdin ({})",
                    s.stdin.as_str()
                ));
            }
        }
        if let Some(s) = script {
            problems.extend(user_site_hooks(host, process, s, env, &python));
        }
        problems.extend(python_venv(host, process, env));
    }
    problems
}

/// A `pyvenv.cfg` next to (or above) the program CPython takes argv[0] for makes
/// that tree a virtual environment: its site-packages (`.pth` lines included) load,
/// under `-I` too. argv[0] is the process's to choose (`exec -a ~/v/bin/python3`),
/// so the file is looked for in the process's root, from its cwd and `PATH`.
fn python_venv(host: &dyn Host, process: &ProcessInfo, env: &[String]) -> Option<String> {
    let argv0 = process.argv.first().map_or("", String::as_str);
    let candidates = match script::python_program_candidates(argv0, &process.cwd, env) {
        Ok(candidates) => candidates,
        Err(e) => {
            return Some(format!(
                "cannot tell which program argv[0] {argv0:?} names: {e}"
            ))
        }
    };
    let slash = argv0.contains('/');
    if slash && !argv0.starts_with('/') {
        // Resolved against the cwd it had at start, which may have changed since.
        return Some(format!(
            "argv[0] {argv0:?} is relative: where python looked for a pyvenv.cfg at start is not known"
        ));
    }
    // A pyvenv.cfg (or a program of that name on PATH) in a directory a user can
    // change may have been there at start and removed since: its absence now
    // proves nothing.
    let changeable = |dir: &str| -> Option<String> {
        let why = host.path_changeable(process.pid, dir);
        (!why.is_empty()).then_some(why)
    };
    for program in candidates {
        if !slash {
            // PATH search: the first entry holding a file of that name is the program.
            match host.path_kind(process.pid, &program) {
                PathKind::File => {}
                PathKind::Unknown => {
                    return Some(format!(
                        "cannot tell whether {program} exists (argv[0] via PATH)"
                    ))
                }
                _ => {
                    let dir = script::pyvenv_dirs(&program)[0].clone();
                    if let Some(why) = changeable(&dir) {
                        return Some(format!(
                            "argv[0] {argv0:?} via PATH: {dir} comes first and can change ({why}), so a program there may have been the one started"
                        ));
                    }
                    continue;
                }
            }
        }
        let mut removed: Option<String> = None;
        for dir in script::pyvenv_dirs(&program) {
            let cfg = format!("{}/pyvenv.cfg", dir.trim_end_matches('/'));
            match host.path_kind(process.pid, &cfg) {
                PathKind::Missing => {
                    if !script::in_package_location(&dir) && removed.is_none() {
                        removed = changeable(&dir).map(|why| {
                            format!(
                                "argv[0] {argv0:?}: {dir} can change ({why}), so a pyvenv.cfg there may have been read at start and removed"
                            )
                        });
                    }
                }
                _ if script::in_package_location(&dir) => {}
                PathKind::Unknown => {
                    return Some(format!(
                        "cannot tell whether {cfg} exists (argv[0] {argv0:?})"
                    ))
                }
                _ => {
                    return Some(format!(
                        "argv[0] {argv0:?} makes python a virtual environment at {dir} \
                         ({cfg}): its site-packages load"
                    ))
                }
            }
        }
        return removed;
    }
    None
}

fn judge_load(
    host: &dyn Host,
    process: &ProcessInfo,
    interpreter: &str,
    env: &[String],
    load: &CodeLoad,
    runs_code: bool,
) -> Option<String> {
    let via = &load.via;
    let absolute = |p: &str| -> Option<String> {
        if p.starts_with('/') {
            Some(p.to_owned())
        } else if process.cwd.starts_with('/') {
            Some(format!("{}/{}", process.cwd.trim_end_matches('/'), p))
        } else {
            None
        }
    };
    match &load.target {
        LoadTarget::File(path) => {
            let Some(path) = absolute(path) else {
                return Some(format!("{via} loads {path:?}, relative to an unknown cwd"));
            };
            let id = host.file_identity(&path);
            if id.trust.is_trusted() {
                return None;
            }
            let detail = if id.error.is_empty() {
                String::new()
            } else {
                format!(": {}", id.error)
            };
            Some(format!(
                "{via} loads {path} ({}{detail})",
                id.trust.as_str()
            ))
        }
        LoadTarget::Dir(dir) => {
            let Some(dir) = absolute(dir) else {
                return Some(format!(
                    "{via} searches {dir:?}, relative to an unknown cwd"
                ));
            };
            if script::in_package_location(&dir) {
                return None;
            }
            let mut problem =
                format!("{via} puts {dir} on the search path, outside package-owned locations");
            if via == "PYTHONPATH" {
                for hook in ["sitecustomize.py", "usercustomize.py"] {
                    let file = format!("{}/{hook}", dir.trim_end_matches('/'));
                    if host.path_kind(process.pid, &file) == PathKind::File {
                        problem.push_str(&format!(" (loads {file})"));
                    }
                }
            }
            Some(problem)
        }
        LoadTarget::Code(what) => Some(format!("{via}: {what}")),
        LoadTarget::Config(path) => {
            let Some(path) = absolute(path) else {
                return Some(format!("{via} reads {path:?}, relative to an unknown cwd"));
            };
            let roots = path.strip_prefix("/etc/").is_some_and(|rest| {
                !rest
                    .split('/')
                    .any(|p| p.is_empty() || p == "." || p == "..")
            });
            if roots || script::in_package_location(&path) {
                return None;
            }
            match host.path_kind(process.pid, &path) {
                PathKind::Missing => None,
                PathKind::Unknown => Some(format!(
                    "{via} reads {path} when it exists: cannot tell whether it does"
                )),
                _ => Some(format!(
                    "{via} reads {path}, outside root's locations: it can name code to load"
                )),
            }
        }
        LoadTarget::HomeFile(name) => {
            // As the shell expands `~`: `$HOME`, else the passwd entry.
            let home = env
                .iter()
                .find_map(|e| e.strip_prefix("HOME="))
                .filter(|h| !h.is_empty())
                .map(str::to_owned)
                .or_else(|| host.home_directory(process.uid));
            let Some(home) = home.filter(|h| h.starts_with('/')) else {
                return Some(format!(
                    "{via} reads ~/{name}: the home directory is unknown"
                ));
            };
            let path = format!("{}/{name}", home.trim_end_matches('/'));
            match host.path_kind(process.pid, &path) {
                // The user's own home: the file may have been read at start and
                // removed since, so its absence now proves nothing, unless the
                // directory above has not changed since the start.
                PathKind::Missing
                    if process.uid != 0
                        && runs_code
                        && !host.missing_since_start(process.pid, &path) =>
                {
                    Some(format!(
                    "{via} reads {path} when it exists: absent now, but its user may have removed it after it was read"
                ))
                }
                PathKind::Missing => None,
                PathKind::Unknown => Some(format!(
                    "{via} reads {path} when it exists: cannot tell whether it does"
                )),
                // Never a package's file: whoever owns the home writes it.
                _ => Some(format!(
                    "{via} reads {path}, outside package-owned locations"
                )),
            }
        }
        LoadTarget::Module(name) => {
            let bare_library = via.starts_with("LD_") || via.starts_with("DYLD_");
            // ld.so and perl search only system directories for a bare name (the
            // search-path variables are judged on their own).
            if bare_library || interpreter == "perl" || name.starts_with("node:") {
                return None;
            }
            Some(match interpreter {
                "node" => format!("{via} {name}: resolved through node_modules from the cwd"),
                "ruby" => {
                    format!("{via} {name}: RubyGems may load it from the user's gem directories")
                }
                _ => format!("{via} {name}: cannot tell which file it loads"),
            })
        }
    }
}

/// User-writable directories on python's `sys.path`. The user site-packages runs
/// its `*.pth` import lines and `usercustomize.py` at every start and comes before
/// the system's site directories, so any module a package script imports can be
/// the user's. `python -m` puts the cwd first, ahead of the standard library: a
/// `argparse.py` there runs inside `python3 -m json.tool`.
fn user_site_hooks(
    host: &dyn Host,
    process: &ProcessInfo,
    script: &ScriptInvocation,
    env: &[String],
    python: &script::PythonFlags,
) -> Vec<String> {
    let home = host.home_directory(process.uid);
    let mut flags = *python;
    // The cwd is on sys.path for `-m` (and a REPL); a script's own directory is
    // judged with the script.
    flags.safe_path |= script.module.is_empty() || !script.module_from_cwd;
    let path =
        match script::python_module_path(&process.path, &process.cwd, env, home.as_deref(), &flags)
        {
            Ok(path) => path,
            Err(e) => return vec![format!("cannot tell python's sys.path: {e}")],
        };
    let mut problems = Vec::new();
    for dir in path
        .iter()
        .filter(|d| matches!(d.origin, "user site-packages" | "the cwd"))
        // `/` is root's on every host (a private root is caught by the module file's
        // own check: it is not the host's file).
        .filter(|d| d.dir != "/" && !script::in_package_location(&d.dir))
    {
        let (what, effect) = if dir.origin == "the cwd" {
            (
                "python -m puts the cwd",
                "its modules run in place of the standard library's",
            )
        } else {
            (
                "the user site-packages",
                "its .pth files and usercustomize run at start, its modules before the system's",
            )
        };
        match host.path_kind(process.pid, &dir.dir) {
            // Read at start and removed since (a usercustomize can delete its own
            // tree): where a user can change the directories, absence proves
            // nothing, unless the directory above has not changed since the start.
            PathKind::Missing if dir.origin == "user site-packages" => {
                let why = host.path_changeable(process.pid, &dir.dir);
                if !why.is_empty() && !host.missing_since_start(process.pid, &dir.dir) {
                    problems.push(format!(
                        "{what} {} is absent now, but {why}: it may have been removed after python started ({effect})",
                        dir.dir
                    ));
                }
            }
            PathKind::Missing => {}
            PathKind::Dir => problems.push(format!("{what} {} on sys.path: {effect}", dir.dir)),
            _ => problems.push(format!("cannot tell whether {} exists", dir.dir)),
        }
    }
    problems
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
        error: String::new(),
    };
    let Some(script) = script else {
        return binary();
    };
    let interpreter_key = baseline_key(identity, &process.path);
    // A trusted script run by an untrusted interpreter binary is not trusted code.
    let interpreter_error = || {
        format!(
            "the interpreter {} is not trusted ({})",
            process.path,
            identity.trust.as_str()
        )
    };
    let script_subject = |path: &str, trusted: bool, key: String, error: String| Subject {
        kind: "script",
        path: path.to_owned(),
        trusted,
        identity: key,
        error,
    };
    match script.kind {
        ScriptKind::File => match script_identity {
            Some(si) => {
                let interpreter_ok = identity.trust.is_trusted();
                let error = if si.trust.is_trusted() && !interpreter_ok {
                    interpreter_error()
                } else {
                    String::new()
                };
                let key = baseline_key(si, &script.script_path);
                let key = if !interpreter_ok && key.starts_with("sha256:") {
                    with_interpreter(&si.sha256, &interpreter_key)
                } else {
                    key
                };
                script_subject(
                    &script.script_path,
                    si.trust.is_trusted() && interpreter_ok,
                    key,
                    error,
                )
            }
            None => script_subject(
                &script.script_path,
                false,
                format!("path:{}", script.script_path),
                String::new(),
            ),
        },
        // Code on a command line has no provenance at all: never trusted.
        ScriptKind::Inline => script_subject(
            "",
            false,
            if identity.trust.is_trusted() {
                format!("inline:{}:{}", script.interpreter, script.inline_sha256)
            } else {
                with_interpreter(&script.inline_sha256, &interpreter_key)
            },
            String::new(),
        ),
        // Code from a pipe, a file or a socket on stdin cannot be seen: untrusted,
        // keyed by the interpreter and what feeds it (a class: never learned).
        ScriptKind::Stdin => script_subject(
            "",
            false,
            format!(
                "stdin:{}:{}:{interpreter_key}",
                script.interpreter,
                script.stdin.as_str()
            ),
            format!(
                "the code is read from stdin ({}) and cannot be seen",
                script.stdin.as_str()
            ),
        ),
        // A module that could not be resolved to a file (see `evaluate`).
        ScriptKind::Module => script_subject(
            "",
            false,
            format!("module:{}:{}", script.module, interpreter_key),
            format!("python -m {}: not resolved to a file", script.module),
        ),
        ScriptKind::Interactive => binary(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::script::StdinSource;
    use crate::model::Trust;
    use crate::platform::FakeHost;

    fn package(name: &str) -> CodeIdentity {
        CodeIdentity {
            trust: Trust::Package,
            identifier: name.into(),
            authority: "dpkg".into(),
            ..Default::default()
        }
    }

    fn process(pid: i32, exe: &str, argv: &[&str]) -> ProcessInfo {
        ProcessInfo {
            pid,
            path: exe.into(),
            argv: argv.iter().map(|a| a.to_string()).collect(),
            cwd: "/home/u".into(),
            uid: 1000,
            ..Default::default()
        }
    }

    fn host() -> FakeHost {
        let mut host = FakeHost::default();
        for (path, pkg) in [
            ("/usr/bin/python3.11", "python3.11-minimal"),
            ("/usr/bin/bash", "bash"),
            ("/usr/bin/perl", "perl-base"),
            ("/usr/bin/node", "nodejs"),
            ("/usr/lib/python3.11/json/tool.py", "libpython3.11-stdlib"),
            ("/usr/lib/x86_64-linux-gnu/libz.so.1", "zlib1g"),
        ] {
            host.identities.insert(path.into(), package(pkg));
        }
        for (path, kind) in [
            ("/home/u", PathKind::Dir),
            ("/usr/lib/python3.11", PathKind::Dir),
            ("/usr/lib/python3.11/json", PathKind::Dir),
            ("/usr/lib/python3.11/json/__init__.py", PathKind::File),
            ("/usr/lib/python3.11/json/tool.py", PathKind::File),
            ("/home/u/.local/lib/python3.11/site-packages", PathKind::Dir),
            (
                "/home/u/.local/lib/python3.11/site-packages/beacon.py",
                PathKind::File,
            ),
        ] {
            host.path_kinds.insert(path.into(), kind);
        }
        host
    }

    #[test]
    fn no_script_operand_is_a_repl_only_on_a_terminal() {
        let mut host = host();
        host.stdin.insert(1, StdinSource::Terminal);
        host.stdin.insert(2, StdinSource::Pipe);
        host.stdin.insert(3, StdinSource::File);
        let repl = evaluate(&host, process(1, "/usr/bin/python3.11", &["python3"]));
        assert_eq!(repl.script_kind(), "interactive");
        assert!(repl.subject.trusted, "{:?}", repl.subject);
        assert_eq!(repl.subject.kind, "binary");
        for (pid, exe, argv, want) in [
            (
                2,
                "/usr/bin/bash",
                "bash",
                "stdin:bash:pipe:package:bash:/usr/bin/bash",
            ),
            (
                3,
                "/usr/bin/python3.11",
                "python3",
                "stdin:python:file:package:python3.11-minimal:/usr/bin/python3.11",
            ),
            // Unknown stdin (no entry): never a REPL.
            (
                4,
                "/usr/bin/bash",
                "bash",
                "stdin:bash:unknown:package:bash:/usr/bin/bash",
            ),
        ] {
            let v = evaluate(&host, process(pid, exe, &[argv]));
            assert_eq!(v.script_kind(), "stdin", "{pid}");
            assert!(!v.subject.trusted, "{pid}");
            assert_eq!(v.subject.identity, want);
            assert!(v.subject.error.contains("stdin"), "{:?}", v.subject.error);
            assert!(crate::baseline::identity::validate_identity(&v.subject.identity).is_ok());
            assert!(crate::baseline::identity::broad_identity_scope(&v.subject.identity).is_some());
        }
    }

    /// An approved script's hash must not approve other code: run by an untrusted
    /// interpreter binary (the attacker's own `python3` given the script's path)
    /// the key pairs both hashes; loaded with other code, or from a file another
    /// user can change after it was read, the key is a class. Twins: the same
    /// script under the package's python, from a root-only path, keeps its hash.
    #[test]
    fn an_untrusted_scripts_key_names_all_the_code_that_runs() {
        let mut host = host();
        let script = "/opt/acme/ntpcheck.py";
        let sha = format!("{:064x}", script.len());
        let v = evaluate(
            &host,
            process(1, "/usr/bin/python3.11", &["python3", script]),
        );
        assert_eq!(v.subject.identity, format!("sha256:{sha}"), "twin");
        assert!(v.subject.error.is_empty(), "{}", v.subject.error);

        let fake = "/home/u/bin/python3.11";
        let v = evaluate(&host, process(2, fake, &["python3", script]));
        let want = format!("script:{sha}:sha256:{:064x}", fake.len());
        assert_eq!(v.subject.identity, want, "{}", v.subject.error);
        assert!(!v.subject.trusted);
        assert!(crate::baseline::identity::validate_identity(&want).is_ok());
        assert!(crate::baseline::identity::broad_identity_scope(&want).is_none());
        let inline = evaluate(&host, process(2, fake, &["python3", "-c", "pass"]));
        assert!(
            inline.subject.identity.starts_with("script:"),
            "{}",
            inline.subject.identity
        );

        host.environments
            .insert(3, vec!["PYTHONPATH=/home/u/ac2".into()]);
        let v = evaluate(
            &host,
            process(3, "/usr/bin/python3.11", &["python3", script]),
        );
        assert_eq!(v.subject.identity, format!("tainted:sha256:{sha}"));
        assert!(
            v.subject.error.contains("PYTHONPATH"),
            "{}",
            v.subject.error
        );

        host.changeable.insert(
            "/home/u/ntpcheck.py".into(),
            "directory /home/u on the script's path is writable by a user other than root".into(),
        );
        let v = evaluate(
            &host,
            process(
                4,
                "/usr/bin/python3.11",
                &["python3", "/home/u/ntpcheck.py"],
            ),
        );
        assert!(
            v.subject.identity.starts_with("tainted:sha256:"),
            "{}",
            v.subject.identity
        );
        assert!(
            v.subject.error.contains("need not name"),
            "{}",
            v.subject.error
        );
        assert!(crate::baseline::identity::broad_identity_scope(&v.subject.identity).is_some());

        // An unsigned binary with a preloaded library: its hash is not all its code.
        host.environments
            .insert(5, vec!["LD_PRELOAD=/home/u/evil.so".into()]);
        let v = evaluate(&host, process(5, "/home/u/bin/beacon", &["beacon"]));
        assert!(
            v.subject.identity.starts_with("tainted:sha256:"),
            "{}",
            v.subject.identity
        );
        let v = evaluate(&host, process(6, "/home/u/bin/beacon", &["beacon"]));
        assert!(
            v.subject.identity.starts_with("sha256:"),
            "twin: {}",
            v.subject.identity
        );
    }

    /// argv[0] `./python3` was resolved against the cwd python had at start, which
    /// the process may have left (a `.pth` line can chdir): the venv it named is
    /// not known, so a package script is not trusted.
    #[test]
    fn a_relative_argv0_hides_no_venv() {
        let host = host();
        let v = evaluate(
            &host,
            process(
                1,
                "/usr/bin/python3.11",
                &["./python3", "-I", "/usr/lib/python3.11/json/tool.py"],
            ),
        );
        assert!(!v.subject.trusted);
        assert!(
            v.subject.error.contains("is relative"),
            "{}",
            v.subject.error
        );
    }

    /// A usercustomize can delete the user site after python read it: missing
    /// where its user can change the directories, it proves nothing. Twins: a
    /// root-only home, and `-s`.
    #[test]
    fn a_user_site_missing_where_its_user_can_change_it_proves_nothing() {
        let mut host = host();
        let site = "/home/u/.local/lib/python3.11/site-packages";
        host.path_kinds.remove(site);
        host.environments.insert(1, vec!["HOME=/home/u".into()]);
        let run = |host: &FakeHost, argv: &[&str]| {
            evaluate(host, process(1, "/usr/bin/python3.11", argv)).subject
        };
        let tool = "/usr/lib/python3.11/json/tool.py";
        let twin = run(&host, &["python3", tool]);
        assert!(twin.trusted, "root-only: {}", twin.error);
        host.changeable.insert(
            site.into(),
            "/home/u is writable by a user other than root".into(),
        );
        let v = run(&host, &["python3", tool]);
        assert!(!v.trusted);
        assert!(
            v.error.contains(&format!(
                "the user site-packages {site} is absent now, but /home/u is writable"
            )),
            "{}",
            v.error
        );
        assert!(v.identity.starts_with("tainted:package:"), "{}", v.identity);
        let twin = run(&host, &["python3", "-s", tool]);
        assert!(twin.trusted, "-s: {}", twin.error);
        // Missing since before python started (the directory above unchanged).
        host.missing_at_start.insert(site.into());
        let twin = run(&host, &["python3", tool]);
        assert!(twin.trusted, "missing at start: {}", twin.error);
    }

    /// A library the environment no longer names (its code rewrote the variable)
    /// is still mapped: a non-root process's executable mappings outside package
    /// locations must be trusted files. Twins: package libraries only, and root's
    /// process (which no unprivileged user can write into).
    #[test]
    fn native_code_mapped_from_the_users_files_untrusts_the_subject() {
        let mut host = host();
        let libc = "/usr/lib/x86_64-linux-gnu/libc.so.6";
        let exe = "/usr/bin/sleep";
        host.identities.insert(exe.into(), package("coreutils"));
        host.code_mappings.insert(1, vec![exe.into(), libc.into()]);
        let v = evaluate(&host, process(1, exe, &["sleep", "300"]));
        assert!(v.subject.trusted, "{}", v.subject.error);
        host.code_mappings
            .insert(1, vec![exe.into(), "/home/u/wipe.so".into(), libc.into()]);
        let v = evaluate(&host, process(1, exe, &["sleep", "300"]));
        assert!(!v.subject.trusted);
        assert!(
            v.subject
                .error
                .contains("/home/u/wipe.so is mapped executable into the process (unsigned"),
            "{}",
            v.subject.error
        );
        assert!(v.subject.identity.starts_with("tainted:package:"));
        let root = ProcessInfo {
            uid: 0,
            ..process(1, exe, &["sleep", "300"])
        };
        assert!(evaluate(&host, root).subject.trusted);
    }

    #[test]
    fn loader_options_and_variables_outside_packages_untrust_the_subject() {
        let mut host = host();
        host.stdin.insert(1, StdinSource::Terminal);
        host.environments
            .insert(1, vec!["LD_PRELOAD=/tmp/hook.so".into()]);
        let v = evaluate(&host, process(1, "/usr/bin/bash", &["-bash"]));
        assert!(!v.subject.trusted);
        assert!(
            v.subject
                .error
                .contains("LD_PRELOAD loads /tmp/hook.so (unsigned)"),
            "{}",
            v.subject.error
        );
        // Benign twins: a package library, a bare name, no variables at all.
        for env in [
            vec!["LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libz.so.1".to_owned()],
            vec!["LD_PRELOAD=libz.so.1".to_owned(), "HOME=/home/u".to_owned()],
            vec![],
        ] {
            host.environments.insert(1, env.clone());
            let v = evaluate(&host, process(1, "/usr/bin/bash", &["-bash"]));
            assert!(v.subject.trusted, "{env:?}: {}", v.subject.error);
        }
        host.stdin.insert(5, StdinSource::Terminal);
        host.identities
            .insert("/usr/share/perl5/x.pl".into(), package("perl-modules"));
        let ok = evaluate(
            &host,
            process(
                5,
                "/usr/bin/perl",
                &["perl", "-MPOSIX", "/usr/share/perl5/x.pl"],
            ),
        )
        .subject;
        assert!(ok.trusted, "{}", ok.error);
        let bad = evaluate(
            &host,
            process(
                5,
                "/usr/bin/perl",
                &["perl", "-I/home/u/lib", "-MEvil", "/usr/share/perl5/x.pl"],
            ),
        )
        .subject;
        assert!(!bad.trusted);
        assert!(
            bad.error
                .contains("perl -I puts /home/u/lib on the search path"),
            "{}",
            bad.error
        );
        host.identities
            .insert("/usr/share/nodejs/x.js".into(), package("node-x"));
        let node = evaluate(
            &host,
            process(
                6,
                "/usr/bin/node",
                &["node", "--import", "./hook.mjs", "/usr/share/nodejs/x.js"],
            ),
        )
        .subject;
        assert!(!node.trusted);
        assert!(
            node.error
                .contains("node --import loads /home/u/./hook.mjs"),
            "{}",
            node.error
        );
        let node = evaluate(
            &host,
            process(6, "/usr/bin/node", &["node", "/usr/share/nodejs/x.js"]),
        )
        .subject;
        assert!(node.trusted, "{}", node.error);
    }

    #[test]
    fn python_modules_are_judged_by_the_file_they_resolve_to() {
        let mut host = host();
        host.environments.insert(7, vec!["HOME=/home/u".into()]);
        let v = evaluate(
            &host,
            process(7, "/usr/bin/python3.11", &["python3", "-m", "json.tool"]),
        );
        assert_eq!(v.script_kind(), "file");
        assert_eq!(v.subject.path, "/usr/lib/python3.11/json/tool.py");
        // The cwd (first on sys.path for -m) and the user site both exist and come
        // before the standard library / the system site: their modules would run.
        assert!(!v.subject.trusted);
        for why in [
            "python -m puts the cwd /home/u on sys.path",
            "the user site-packages /home/u/.local/lib/python3.11/site-packages on sys.path",
        ] {
            assert!(v.subject.error.contains(why), "{}", v.subject.error);
        }
        assert_eq!(
            v.subject.identity,
            "tainted:package:libpython3.11-stdlib:/usr/lib/python3.11/json/tool.py"
        );
        assert!(crate::baseline::identity::validate_identity(&v.subject.identity).is_ok());
        assert!(crate::baseline::identity::broad_identity_scope(&v.subject.identity).is_some());
        // Benign twin: -I (no cwd, no user site, no PYTHON* variables).
        let v = evaluate(
            &host,
            process(
                7,
                "/usr/bin/python3.11",
                &["python3", "-I", "-m", "json.tool"],
            ),
        );
        assert!(v.subject.trusted, "{}", v.subject.error);
        assert_eq!(
            v.subject.identity,
            "package:libpython3.11-stdlib:/usr/lib/python3.11/json/tool.py"
        );
        let v = evaluate(
            &host,
            process(7, "/usr/bin/python3.11", &["python3", "-m", "beacon"]),
        );
        assert_eq!(
            v.subject.path,
            "/home/u/.local/lib/python3.11/site-packages/beacon.py"
        );
        assert!(!v.subject.trusted);
        // Its imports may come from the same user-writable directories: the hash
        // does not stand for the code that runs, so the key is a class.
        assert!(
            v.subject.identity.starts_with("tainted:sha256:"),
            "{}",
            v.subject.identity
        );
        assert!(
            v.subject.error.contains("user site-packages"),
            "{}",
            v.subject.error
        );
        // -s: no user site, so the module is nowhere: a module subject, untrusted.
        let v = evaluate(
            &host,
            process(7, "/usr/bin/python3.11", &["python3", "-s", "-m", "beacon"]),
        );
        assert_eq!(v.script_kind(), "module");
        assert!(!v.subject.trusted);
        assert!(
            v.subject.error.contains("not on sys.path"),
            "{}",
            v.subject.error
        );
        // PYTHONPATH outside packages untrusts even a stdlib module.
        host.environments.insert(
            8,
            vec!["HOME=/home/u".into(), "PYTHONPATH=/home/u/lib".into()],
        );
        host.path_kinds
            .insert("/home/u/lib/sitecustomize.py".into(), PathKind::File);
        let v = evaluate(
            &host,
            process(8, "/usr/bin/python3.11", &["python3", "-m", "json.tool"]),
        );
        assert!(!v.subject.trusted);
        assert!(
            v.subject
                .error
                .contains("(loads /home/u/lib/sitecustomize.py)"),
            "{}",
            v.subject.error
        );
        // A usercustomize in the user site runs in every python process.
        host.path_kinds.insert(
            "/home/u/.local/lib/python3.11/site-packages/usercustomize.py".into(),
            PathKind::File,
        );
        let v = evaluate(
            &host,
            process(7, "/usr/bin/python3.11", &["python3", "-m", "json.tool"]),
        );
        assert!(!v.subject.trusted);
        assert!(
            v.subject.error.contains("usercustomize run at start"),
            "{}",
            v.subject.error
        );
        let v = evaluate(
            &host,
            process(
                7,
                "/usr/bin/python3.11",
                &["python3", "-sP", "-m", "json.tool"],
            ),
        );
        assert!(
            v.subject.trusted,
            "-s: no user site, -P: no cwd: {}",
            v.subject.error
        );
    }

    #[test]
    fn a_package_script_run_by_an_untrusted_interpreter_is_untrusted() {
        let host = host();
        let v = evaluate(
            &host,
            process(
                9,
                "/tmp/python3.11",
                &["python3", "/usr/lib/python3.11/json/tool.py"],
            ),
        );
        assert_eq!(v.subject.path, "/usr/lib/python3.11/json/tool.py");
        assert!(!v.subject.trusted);
        assert!(
            v.subject.error.contains("interpreter /tmp/python3.11"),
            "{}",
            v.subject.error
        );
    }
}

#[cfg(test)]
mod argv_tests {
    use super::*;
    use crate::judge::script::OpenFile;
    use crate::model::Trust;
    use crate::platform::FakeHost;

    #[test]
    fn argv_is_refuted_by_the_held_script_and_unlisted_files_fail_closed() {
        let mut host = FakeHost::default();
        for path in ["/usr/bin/bash", "/usr/bin/ldd"] {
            host.identities.insert(
                path.into(),
                CodeIdentity {
                    trust: Trust::Package,
                    identifier: "p".into(),
                    ..Default::default()
                },
            );
        }
        let process = ProcessInfo {
            pid: 4,
            path: "/usr/bin/bash".into(),
            argv: vec!["bash".into(), "/usr/bin/ldd".into()],
            cwd: "/".into(),
            ..Default::default()
        };
        // No listing available (another platform): the check is skipped.
        assert!(evaluate(&host, process.clone()).subject.trusted);
        host.file_keys.insert("/usr/bin/ldd".into(), (1, 7));
        let held = |ino| OpenFile {
            fd: 255,
            dev: 1,
            ino,
            path: "/x".into(),
        };
        host.open_files.insert(4, vec![held(7)]);
        assert!(evaluate(&host, process.clone()).subject.trusted);
        host.open_files.insert(4, vec![held(8)]);
        let v = evaluate(&host, process);
        assert!(!v.subject.trusted);
        assert!(
            v.subject.error.contains("argv disagrees"),
            "{}",
            v.subject.error
        );
    }
}
