//! End to end: real interpreters run real scripts; each process is judged through
//! `subject::evaluate` on the native host and through the `process_code_signature`
//! table, and the subject must be the script, not the (package-owned) interpreter.
//!
//! Children sleep (or block on a pipe) until the test has read them, then are killed.
//! A missing interpreter skips its test with a printed reason.

#![cfg(target_os = "linux")]

use an1256::judge::subject;
use an1256::model::ProcessInfo;
use an1256::platform::{self, Host, HostConfig};
use an1256::tables::process_code_signature::{ProcessCodeSignature, COLUMNS};
use an1256::tables::{column_index, QueryContext, TableDef, Value};
use an1256::util::hex::sha256_hex;
use std::collections::HashMap;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The interpreter PATH for children: Debian's own interpreters, never a pyenv shim.
const CHILD_PATH: &str = "/usr/bin:/bin";

/// Kills and reaps the child when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

fn host() -> Arc<dyn Host> {
    Arc::from(platform::native(HostConfig::default()))
}

fn have(path: &str) -> bool {
    if Path::new(path).exists() {
        return true;
    }
    println!("SKIP: {path} is not installed");
    false
}

fn temp_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("an1256-scripts-")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .expect("chmod 0700");
    // /proc reports the cwd canonicalized; compare against the same form.
    let real = dir.path().canonicalize().expect("canonicalize tempdir");
    (dir, real)
}

/// Writes a script owner-only; `executable` adds the owner's execute bit.
fn write_script(path: &Path, body: &str, executable: bool) -> String {
    use std::io::Write;
    let mode = if executable { 0o700 } else { 0o600 };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .expect("create script");
    f.write_all(body.as_bytes()).expect("write script");
    f.sync_all().expect("sync script");
    path.to_str().expect("utf-8 temp path").to_owned()
}

fn spawn(program: &str, args: &[&str], cwd: &Path) -> Running {
    let start = || {
        Command::new(program)
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", CHILD_PATH)
            // A pipe nobody writes to: stdin readers block instead of exiting.
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    };
    // ETXTBSY: a child another test thread forked while this script was being
    // written still holds its write descriptor until that child execs.
    let mut child = start();
    for _ in 0..50 {
        match &child {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
                child = start();
            }
            _ => break,
        }
    }
    Running(child.unwrap_or_else(|e| panic!("spawn {program}: {e}")))
}

/// Reads the process until `ready` holds (an `env` or `#!` child needs a moment to
/// exec its interpreter). Panics with what was last seen after 10 s.
fn wait_for(host: &dyn Host, child: &Running, ready: impl Fn(&ProcessInfo) -> bool) -> ProcessInfo {
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = an1256::model::Pid::try_from(child.pid()).expect("pid");
    let mut last = String::from("never read");
    while Instant::now() < deadline {
        match host.process(pid) {
            Ok(p) if ready(&p) => return p,
            Ok(p) => last = format!("{:?} argv {:?}", p.path, p.argv),
            Err(e) => last = format!("error: {e}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("process {pid} never became ready; last seen: {last}");
}

/// The `process_code_signature` row for one pid, by column name.
fn table_row(host: Arc<dyn Host>, pid: u32) -> HashMap<&'static str, String> {
    let table = ProcessCodeSignature::new(host);
    let rows = table
        .generate(&QueryContext::new().with_equals("pid", pid.to_string()))
        .expect("generate");
    assert_eq!(rows.len(), 1, "exactly one row for pid {pid}");
    let row = &rows[0];
    COLUMNS
        .iter()
        .map(|c| {
            let i = column_index(COLUMNS, c.name).expect("column");
            let text = match &row[i] {
                Value::Int(n) => n.to_string(),
                Value::Text(s) => s.clone(),
            };
            (c.name, text)
        })
        .collect()
}

/// The key of a script in a temporary directory (under `/tmp`, which others can
/// write): hashed, and a class, since the file can change after it was read.
fn changeable_script_identity(sha: &str) -> String {
    format!("tainted:sha256:{sha}")
}

/// What a test expects of the subject, checked on both paths.
struct Expect<'a> {
    interpreter: &'a str,
    script_kind: &'a str,
    script_path: &'a str,
    subject_path: &'a str,
    subject_trusted: bool,
    subject_identity: &'a str,
}

/// Judges the process through `subject::evaluate` and the table, and checks both.
fn judge(
    host: Arc<dyn Host>,
    process: ProcessInfo,
    want: &Expect,
) -> HashMap<&'static str, String> {
    let pid = process.pid;
    let verdict = subject::evaluate(host.as_ref(), process);
    let script = verdict
        .script
        .as_ref()
        .expect("an interpreter with a script");
    assert_eq!(script.interpreter, want.interpreter, "interpreter");
    assert_eq!(script.kind.as_str(), want.script_kind, "script kind");
    assert_eq!(script.script_path, want.script_path, "script path");
    assert_eq!(verdict.subject.kind, "script", "subject kind");
    assert_eq!(verdict.subject.path, want.subject_path, "subject path");
    assert_eq!(
        verdict.subject.trusted, want.subject_trusted,
        "subject trusted"
    );
    assert_eq!(
        verdict.subject.identity, want.subject_identity,
        "subject identity"
    );

    let row = table_row(host, u32::try_from(pid).expect("pid"));
    assert_eq!(row["interpreter"], want.interpreter, "row interpreter");
    assert_eq!(row["script_kind"], want.script_kind, "row script_kind");
    assert_eq!(row["script_path"], want.script_path, "row script_path");
    assert_eq!(row["subject_kind"], "script", "row subject_kind");
    assert_eq!(row["subject_path"], want.subject_path, "row subject_path");
    assert_eq!(
        row["subject_trusted"],
        if want.subject_trusted { "1" } else { "0" },
        "row subject_trusted"
    );
    assert_eq!(
        row["subject_identity"], want.subject_identity,
        "row subject_identity"
    );
    row
}

fn file_sha(path: &str) -> String {
    sha256_hex(&std::fs::read(path).expect("read script"))
}

const PYTHON: &str = "/usr/bin/python3";

#[test]
fn python_script_file_is_the_untrusted_subject() {
    if !have(PYTHON) {
        return;
    }
    let host = host();
    let (_guard, dir) = temp_dir();
    let script = write_script(&dir.join("x.py"), "import time\ntime.sleep(60)\n", false);
    let child = spawn(PYTHON, &[&script], &dir);
    let process = wait_for(host.as_ref(), &child, |p| {
        p.argv.iter().any(|a| a == &script)
    });
    let identity = changeable_script_identity(&file_sha(&script));
    let row = judge(
        host,
        process,
        &Expect {
            interpreter: "python",
            script_kind: "file",
            script_path: &script,
            subject_path: &script,
            subject_trusted: false,
            subject_identity: &identity,
        },
    );
    assert_eq!(row["script_sha256"], file_sha(&script));
    // The interpreter itself is Debian's python: trusted, yet the subject is not.
    assert_eq!(row["trust"], "package", "python3 binary trust");
    assert_eq!(row["trusted"], "1");
}

#[test]
/// A relative operand names the file found from the cwd *now*; python does not keep
/// the script open, so nothing shows it is the file that was started (the process
/// may have changed directory): `unknown`, with no hash to baseline. The display
/// path is still resolved against the cwd.
fn python_relative_script_resolves_against_the_process_cwd() {
    if !have(PYTHON) {
        return;
    }
    let host = host();
    let (_guard, dir) = temp_dir();
    std::fs::create_dir(dir.join("sub")).expect("mkdir");
    let script = write_script(
        &dir.join("sub/rel.py"),
        "import time\ntime.sleep(60)\n",
        false,
    );
    let child = spawn(PYTHON, &["-u", "./sub/../sub/rel.py"], &dir);
    let process = wait_for(host.as_ref(), &child, |p| p.argv.len() == 3);
    let identity = format!("path:{script}");
    let row = judge(
        host,
        process,
        &Expect {
            interpreter: "python",
            script_kind: "file",
            script_path: &script,
            subject_path: &script,
            subject_trusted: false,
            subject_identity: &identity,
        },
    );
    assert_eq!(row["script_trust"], "unknown");
    assert_eq!(row["script_sha256"], "");
    assert!(
        row["error"].contains("relative script path"),
        "{}",
        row["error"]
    );
}

#[test]
fn python_inline_code_is_keyed_by_its_hash() {
    if !have(PYTHON) {
        return;
    }
    let host = host();
    let (_guard, dir) = temp_dir();
    let code = "import time; time.sleep(60)  # an1256 inline";
    let child = spawn(PYTHON, &["-c", code], &dir);
    let process = wait_for(host.as_ref(), &child, |p| p.argv.iter().any(|a| a == code));
    let identity = format!("inline:python:{}", sha256_hex(code.as_bytes()));
    let row = judge(
        host,
        process,
        &Expect {
            interpreter: "python",
            script_kind: "inline",
            script_path: "",
            subject_path: "",
            subject_trusted: false,
            subject_identity: &identity,
        },
    );
    assert_eq!(row["script_sha256"], sha256_hex(code.as_bytes()));
}

#[test]
fn bash_script_file() {
    if !have("/bin/bash") {
        return;
    }
    let host = host();
    let (_guard, dir) = temp_dir();
    // `exit` after sleep keeps bash itself alive (no exec of the last command).
    let script = write_script(&dir.join("job.sh"), "sleep 60\nexit 0\n", false);
    let child = spawn("/bin/bash", &[&script], &dir);
    let process = wait_for(host.as_ref(), &child, |p| {
        p.argv.iter().any(|a| a == &script)
    });
    let identity = changeable_script_identity(&file_sha(&script));
    judge(
        host,
        process,
        &Expect {
            interpreter: "bash",
            script_kind: "file",
            script_path: &script,
            subject_path: &script,
            subject_trusted: false,
            subject_identity: &identity,
        },
    );
}

/// bash keeps its script open (fd 255): a relative operand that resolves to the
/// file it holds is that file, and is hashed as usual.
#[test]
fn bash_relative_script_held_open_is_hashed() {
    if !have("/bin/bash") {
        return;
    }
    let host = host();
    let (_guard, dir) = temp_dir();
    let script = write_script(&dir.join("job.sh"), "sleep 60\nexit 0\n", false);
    let child = spawn("/bin/bash", &["./job.sh"], &dir);
    let process = wait_for(host.as_ref(), &child, |p| {
        p.argv.iter().any(|a| a == "./job.sh")
    });
    // Relative and held open: the walk starts at the cwd (root's 0700 directory),
    // so only root can change the file: its hash is the key.
    let identity = format!("sha256:{}", file_sha(&script));
    judge(
        host,
        process,
        &Expect {
            interpreter: "bash",
            script_kind: "file",
            script_path: &script,
            subject_path: &script,
            subject_trusted: false,
            subject_identity: &identity,
        },
    );
}

#[test]
fn env_python_shebang_script_run_directly() {
    if !have(PYTHON) || !have("/usr/bin/env") {
        return;
    }
    let host = host();
    let (_guard, dir) = temp_dir();
    let script = write_script(
        &dir.join("tool"),
        "#!/usr/bin/env python3\nimport time\ntime.sleep(60)\n",
        true,
    );
    let child = spawn(&script, &["--flag"], &dir);
    // env execs python3 a moment later: wait for the interpreter to be the exe and
    // for its argv to be in place (mid-exec, /proc shows the new exe with no argv).
    let process = wait_for(host.as_ref(), &child, |p| {
        Path::new(&p.path)
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("python"))
            && p.argv.iter().any(|a| a == &script)
    });
    assert_eq!(process.argv.first().map(String::as_str), Some("python3"));
    let identity = changeable_script_identity(&file_sha(&script));
    judge(
        host,
        process,
        &Expect {
            interpreter: "python",
            script_kind: "file",
            script_path: &script,
            subject_path: &script,
            subject_trusted: false,
            subject_identity: &identity,
        },
    );
}

#[test]
fn sh_shebang_script_run_directly() {
    if !have("/bin/sh") {
        return;
    }
    let host = host();
    let (_guard, dir) = temp_dir();
    let script = write_script(&dir.join("job"), "#!/bin/sh\nsleep 60\nexit 0\n", true);
    let child = spawn(&script, &[], &dir);
    let process = wait_for(host.as_ref(), &child, |p| {
        p.argv.iter().any(|a| a == &script)
    });
    assert_eq!(process.argv.first().map(String::as_str), Some("/bin/sh"));
    // /bin/sh is dash on Debian, bash elsewhere: the name follows the executable.
    let interpreter = an1256::judge::script::interpreter_of(&process.path, &process.argv)
        .expect("/bin/sh resolves to a shell");
    assert!(
        ["sh", "dash", "bash"].contains(&interpreter),
        "{interpreter}"
    );
    let identity = changeable_script_identity(&file_sha(&script));
    judge(
        host,
        process,
        &Expect {
            interpreter,
            script_kind: "file",
            script_path: &script,
            subject_path: &script,
            subject_trusted: false,
            subject_identity: &identity,
        },
    );
}

#[test]
fn perl_inline_code() {
    if !have("/usr/bin/perl") {
        return;
    }
    let host = host();
    let (_guard, dir) = temp_dir();
    let code = "sleep 60; # an1256";
    let child = spawn("/usr/bin/perl", &["-w", "-e", code], &dir);
    let process = wait_for(host.as_ref(), &child, |p| p.argv.iter().any(|a| a == code));
    let identity = format!("inline:perl:{}", sha256_hex(code.as_bytes()));
    judge(
        host,
        process,
        &Expect {
            interpreter: "perl",
            script_kind: "inline",
            script_path: "",
            subject_path: "",
            subject_trusted: false,
            subject_identity: &identity,
        },
    );
}

#[test]
fn node_inline_code() {
    if !have("/usr/bin/node") {
        return;
    }
    let host = host();
    let (_guard, dir) = temp_dir();
    let code = "setTimeout(() => {}, 60000) // an1256";
    let child = spawn("/usr/bin/node", &["-e", code], &dir);
    let process = wait_for(host.as_ref(), &child, |p| p.argv.iter().any(|a| a == code));
    let identity = format!("inline:node:{}", sha256_hex(code.as_bytes()));
    judge(
        host,
        process,
        &Expect {
            interpreter: "node",
            script_kind: "inline",
            script_path: "",
            subject_path: "",
            subject_trusted: false,
            subject_identity: &identity,
        },
    );
}

#[test]
fn python_module_in_cwd_is_judged_as_its_file() {
    if !have(PYTHON) {
        return;
    }
    let host = host();
    let (_guard, dir) = temp_dir();
    let module_file = write_script(
        &dir.join("an1256probe.py"),
        "import time\ntime.sleep(60)\n",
        false,
    );
    let child = spawn(PYTHON, &["-m", "an1256probe"], &dir);
    let process = wait_for(host.as_ref(), &child, |p| {
        p.argv.iter().any(|a| a == "an1256probe")
    });
    let identity = changeable_script_identity(&file_sha(&module_file));
    let verdict_module = {
        let v = subject::evaluate(host.as_ref(), process.clone());
        v.script.map(|s| s.module).unwrap_or_default()
    };
    assert_eq!(verdict_module, "an1256probe", "module name kept");
    judge(
        host,
        process,
        &Expect {
            interpreter: "python",
            script_kind: "file",
            script_path: &module_file,
            subject_path: &module_file,
            subject_trusted: false,
            subject_identity: &identity,
        },
    );
}

#[test]
fn python_package_main_in_cwd_is_judged_as_its_file() {
    if !have(PYTHON) {
        return;
    }
    let host = host();
    let (_guard, dir) = temp_dir();
    std::fs::create_dir(dir.join("an1256pkg")).expect("mkdir");
    write_script(&dir.join("an1256pkg/__init__.py"), "", false);
    let main = write_script(
        &dir.join("an1256pkg/__main__.py"),
        "import time\ntime.sleep(60)\n",
        false,
    );
    let child = spawn(PYTHON, &["-m", "an1256pkg"], &dir);
    let process = wait_for(host.as_ref(), &child, |p| {
        p.argv.iter().any(|a| a == "an1256pkg")
    });
    let identity = changeable_script_identity(&file_sha(&main));
    judge(
        host,
        process,
        &Expect {
            interpreter: "python",
            script_kind: "file",
            script_path: &main,
            subject_path: &main,
            subject_trusted: false,
            subject_identity: &identity,
        },
    );
}

/// A standard-library module (not in the cwd) is judged as the file python's path
/// finder runs: the package-owned `http/server.py`, trusted. (`code`, the stdlib
/// console, would run what its stdin sends: never trusted.)
#[test]
fn python_stdlib_module_is_judged_as_its_package_file() {
    let file = "/usr/lib/python3.11/http/server.py";
    if !have(PYTHON) || !have(file) {
        return;
    }
    let host = host();
    // Serves on an ephemeral loopback port until killed.
    // From `/`: a user-writable cwd is first on sys.path for -m and untrusts it.
    let child = spawn(
        PYTHON,
        &["-m", "http.server", "0", "--bind", "127.0.0.1"],
        Path::new("/"),
    );
    let process = wait_for(host.as_ref(), &child, |p| {
        p.argv.iter().any(|a| a == "http.server")
    });
    let row = table_row(host.clone(), child.pid());
    assert_eq!(row["script_kind"], "file");
    assert_eq!(row["script_path"], file);
    assert_eq!(row["subject_kind"], "script");
    assert_eq!(row["subject_path"], file);
    assert_eq!(row["subject_trusted"], "1", "{}", row["error"]);
    assert!(
        row["subject_identity"].starts_with("package:libpython3.11-stdlib:"),
        "{}",
        row["subject_identity"]
    );
    drop(process);
}

/// A script owned by a Debian package, run by the interpreter: trusted, `package`.
#[test]
fn package_owned_python_script_is_trusted() {
    let script = "/usr/lib/python3.11/http/server.py";
    if !have(PYTHON) || !have(script) {
        return;
    }
    let owner = Command::new("dpkg").args(["-S", script]).output();
    match owner {
        Ok(out) if out.status.success() => {}
        _ => {
            println!("SKIP: {script} is not owned by a dpkg package here");
            return;
        }
    }
    let host = host();
    let (_guard, dir) = temp_dir();
    // Serves on an ephemeral loopback port until killed.
    let child = spawn(PYTHON, &[script, "0", "--bind", "127.0.0.1"], &dir);
    let process = wait_for(host.as_ref(), &child, |p| {
        p.argv.iter().any(|a| a == script)
    });
    let verdict = subject::evaluate(host.as_ref(), process);
    assert_eq!(verdict.subject.path, script);
    assert!(verdict.subject.trusted, "{:?}", verdict.script_identity);
    let row = table_row(host, child.pid());
    assert_eq!(row["script_kind"], "file");
    assert_eq!(row["script_path"], script);
    assert_eq!(row["script_trust"], "package");
    assert_eq!(row["subject_trusted"], "1");
    let key = &row["subject_identity"];
    assert!(
        key.starts_with("package:libpython3.11-stdlib") && key.ends_with(&format!(":{script}")),
        "{key}"
    );
    assert_eq!(*key, verdict.subject.identity);
}

/// node's `process.title` overwrites argv: the code's source is gone, so the process
/// must not pass as the trusted node binary.
#[test]
fn rewritten_argv_is_not_the_trusted_interpreter() {
    if !have("/usr/bin/node") {
        return;
    }
    let host = host();
    let (_guard, dir) = temp_dir();
    let code = "process.title = 'an1256worker'; setTimeout(() => {}, 60000)";
    let child = spawn("/usr/bin/node", &["-e", code], &dir);
    let process = wait_for(host.as_ref(), &child, |p| {
        p.argv.first().map(String::as_str) == Some("an1256worker")
    });
    let verdict = subject::evaluate(host.as_ref(), process);
    assert_eq!(
        verdict.script.as_ref().map(|s| s.kind.as_str()),
        Some("stdin")
    );
    assert_eq!(verdict.subject.kind, "script");
    assert!(!verdict.subject.trusted);
    let row = table_row(host, child.pid());
    assert_eq!(row["script_kind"], "stdin");
    assert_eq!(row["subject_trusted"], "0");
    assert_eq!(row["subject_identity"], verdict.subject.identity);
}

/// Any process can write `python3` into its own argv[0]: a non-interpreter stays a
/// binary subject, judged by its own executable.
#[test]
fn spoofed_argv0_does_not_make_an_interpreter() {
    use std::os::unix::process::CommandExt;
    let decoy = "/usr/lib/python3.11/code.py";
    if !have("/usr/bin/tail") || !have(decoy) {
        return;
    }
    let host = host();
    let (_guard, dir) = temp_dir();
    // Read as python's argv this would be "run the trusted package script `decoy`".
    let child = Command::new("/usr/bin/tail")
        .arg0("python3")
        .args(["-f", decoy])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map(Running)
        .expect("spawn sleep");
    let process = wait_for(host.as_ref(), &child, |p| {
        p.argv.first().map(String::as_str) == Some("python3")
    });
    let exe = process.path.clone();
    let verdict = subject::evaluate(host.as_ref(), process);
    assert!(verdict.script.is_none(), "{:?}", verdict.script);
    assert_eq!(verdict.subject.kind, "binary");
    assert_eq!(verdict.subject.path, exe);
    let row = table_row(host, child.pid());
    assert_eq!(row["interpreter"], "");
    assert_eq!(row["script_kind"], "");
    assert_eq!(row["subject_kind"], "binary");
    assert_eq!(row["subject_path"], exe);
}

#[test]
fn bash_inline_command() {
    if !have("/bin/bash") {
        return;
    }
    let host = host();
    let (_guard, dir) = temp_dir();
    // Two commands, so bash cannot exec `sleep` in its own place.
    let code = "sleep 60; true";
    let child = spawn("/bin/bash", &["-e", "-c", code, "name"], &dir);
    let process = wait_for(host.as_ref(), &child, |p| p.argv.iter().any(|a| a == code));
    let identity = format!("inline:bash:{}", sha256_hex(code.as_bytes()));
    judge(
        host,
        process,
        &Expect {
            interpreter: "bash",
            script_kind: "inline",
            script_path: "",
            subject_path: "",
            subject_trusted: false,
            subject_identity: &identity,
        },
    );
}

#[test]
fn shell_reading_stdin_is_untrusted() {
    if !have("/bin/sh") {
        return;
    }
    let host = host();
    let (_guard, dir) = temp_dir();
    // `sh -s` blocks reading the idle stdin pipe.
    let child = spawn("/bin/sh", &["-s", "an1256arg"], &dir);
    let process = wait_for(host.as_ref(), &child, |p| {
        p.argv.iter().any(|a| a == "an1256arg")
    });
    let verdict = subject::evaluate(host.as_ref(), process);
    assert_eq!(
        verdict.script.as_ref().map(|s| s.kind.as_str()),
        Some("stdin")
    );
    assert!(!verdict.subject.trusted);
    let row = table_row(host, child.pid());
    assert_eq!(row["script_kind"], "stdin");
    assert_eq!(row["script_trust"], "unknown");
    assert_eq!(row["subject_trusted"], "0");
    assert!(
        row["subject_identity"].starts_with("stdin:"),
        "{}",
        row["subject_identity"]
    );
    assert_eq!(row["subject_identity"], verdict.subject.identity);
}

#[test]
fn tclsh_script_file() {
    let Some(tclsh) = ["/usr/bin/tclsh", "/usr/bin/tclsh8.6"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        println!("SKIP: tclsh is not installed");
        return;
    };
    let host = host();
    let (_guard, dir) = temp_dir();
    let script = write_script(&dir.join("x.tcl"), "after 60000\n", false);
    let child = spawn(tclsh, &[&script], &dir);
    let process = wait_for(host.as_ref(), &child, |p| {
        p.argv.iter().any(|a| a == &script)
    });
    let identity = changeable_script_identity(&file_sha(&script));
    judge(
        host,
        process,
        &Expect {
            interpreter: "tclsh",
            script_kind: "file",
            script_path: &script,
            subject_path: &script,
            subject_trusted: false,
            subject_identity: &identity,
        },
    );
}
