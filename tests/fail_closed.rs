//! Fail closed, end to end: an unprivileged user runs trusted interpreters and
//! binaries in ways that make them run the user's own code (a program on stdin, a
//! module from the user site, loader options and variables), each process holding
//! a UDP socket to TEST-NET (192.0.2.10:53). The real `an1256` binary (private
//! store) must report each as an untrusted subject and a hit, with the reason in
//! `error`; each benign twin stays trusted.

#![cfg(target_os = "linux")]

mod common;

use common::{attacker, is_root, skip, spawn_ready, Attacker, ReadyChild};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Becomes `argv` (by exec, same pid) holding a UDP socket connected to
/// 192.0.2.10:53 and a stdin pipe whose write end it also holds, so a program
/// reading stdin blocks instead of exiting. `stdin_text` is written into that pipe
/// first (a program piped into an interpreter). Prints `pid=` and `ready` before
/// the exec; `exec_of` waits for the exec to land.
const EXEC_HOLDING_UDP: &str = r#"
import json, os, socket, sys
spec = json.loads(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("192.0.2.10", 53))
os.set_inheritable(s.fileno(), True)
r, w = os.pipe()
os.write(w, spec["stdin"].encode())
os.dup2(r, 0)
os.set_inheritable(w, True)
# A clean environment: the test runner's own (LD_LIBRARY_PATH from cargo…) must
# not leak into the twins.
env = {k: os.environ[k] for k in ("HOME", "USER", "LOGNAME") if k in os.environ}
env["PATH"] = "/usr/bin:/bin"
env.update(spec["env"])
if spec.get("cwd"):
    os.chdir(spec["cwd"])
print("pid=%d" % os.getpid())
print("ready", flush=True)
if spec.get("udp_stdout"):
    # For programs that close every other fd at start (ssh): nothing is written.
    os.dup2(s.fileno(), 1)
os.execve(spec.get("exe") or spec["argv"][0], spec["argv"], env)
"#;

/// Runs `argv` as the attacker through `EXEC_HOLDING_UDP` and waits until the
/// process runs `argv[0]` (its `/proc/<pid>/exe` names it).
fn exec_holding_udp(
    user: &Attacker,
    argv: &[&str],
    env: &[(&str, &str)],
    stdin_text: &str,
) -> ReadyChild {
    exec_holding_udp_in(user, "", argv, env, stdin_text)
}

/// `exec_holding_udp` from the directory `cwd` (empty: the user's home).
fn exec_holding_udp_in(
    user: &Attacker,
    cwd: &str,
    argv: &[&str],
    env: &[(&str, &str)],
    stdin_text: &str,
) -> ReadyChild {
    exec_holding_udp_as(user, cwd, argv[0], argv, env, stdin_text)
}

/// `exec_holding_udp_in` running the program `exe` with `argv` as given (so
/// `argv[0]` may be anything, as `exec -a` makes it).
fn exec_holding_udp_as(
    user: &Attacker,
    cwd: &str,
    exe: &str,
    argv: &[&str],
    env: &[(&str, &str)],
    stdin_text: &str,
) -> ReadyChild {
    launch_holding_udp(user, cwd, exe, argv, env, stdin_text, false)
}

/// `exec_holding_udp_as`; with `udp_stdout` the socket is also the program's
/// standard output.
fn launch_holding_udp(
    user: &Attacker,
    cwd: &str,
    exe: &str,
    argv: &[&str],
    env: &[(&str, &str)],
    stdin_text: &str,
    udp_stdout: bool,
) -> ReadyChild {
    let spec = serde_json::json!({
        "udp_stdout": udp_stdout,
        "exe": exe,
        "cwd": cwd,
        "argv": argv,
        "env": env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<std::collections::HashMap<_, _>>(),
        "stdin": stdin_text,
    });
    let mut command = user.command("/usr/bin/python3");
    command
        .arg("-c")
        .arg(EXEC_HOLDING_UDP)
        .arg(spec.to_string())
        .env("PATH", "/usr/bin:/bin");
    let child = spawn_ready(command).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let target = std::fs::canonicalize(exe).expect("canonical program");
    wait_for_exe(child.pid, &target);
    child
}

/// Waits until `/proc/<pid>/exe` is `target` and its argv is settled.
fn wait_for_exe(pid: i32, target: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .as_deref()
            == Some(target)
        {
            // Give the interpreter a moment to load its modules / read its stdin.
            std::thread::sleep(Duration::from_millis(300));
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("process {pid} never became {}", target.display());
}

/// The CLI with a private store and an empty config.
fn an1256(store: &Path, args: &[&str]) -> std::process::Output {
    an1256_via(store, Command::new(env!("CARGO_BIN_EXE_an1256")), args)
}

/// `an1256` run by `command` (the binary itself, or a wrapper such as
/// `/usr/bin/time` with the binary as its last argument).
fn an1256_via(store: &Path, mut command: Command, args: &[&str]) -> std::process::Output {
    let config = store.join("config.json");
    std::fs::write(&config, "{}").expect("write config");
    command
        .args(args)
        .env("AN1256_DB", store.join("an1256.db"))
        .env("AN1256_CONFIG", &config)
        .output()
        .expect("run an1256")
}

fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// What AN1256 says about one process: its `process_code_signature` row, and
/// whether the DESIGN join makes its UDP socket a hit.
struct Judged {
    row: serde_json::Value,
    hit: bool,
}

impl Judged {
    fn text(&self, column: &str) -> String {
        match &self.row[column] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    fn trusted(&self) -> bool {
        self.text("subject_trusted") == "1"
    }
}

fn judge(pid: i32) -> Judged {
    let store = tempfile::tempdir().expect("tempdir");
    judge_run(
        pid,
        store.path(),
        Command::new(env!("CARGO_BIN_EXE_an1256")),
    )
}

/// `judge`, and the CPU time (user + system, seconds) the `an1256` run took,
/// measured from outside by `/usr/bin/time`.
fn judge_timed(pid: i32) -> (Judged, f64) {
    let store = tempfile::tempdir().expect("tempdir");
    let timing = store.path().join("time.txt");
    let mut time = Command::new("/usr/bin/time");
    time.arg("-f")
        .arg("%U %S")
        .arg("-o")
        .arg(&timing)
        .arg(env!("CARGO_BIN_EXE_an1256"));
    let judged = judge_run(pid, store.path(), time);
    let text = std::fs::read_to_string(&timing).expect("/usr/bin/time output");
    let cpu = text
        .split_whitespace()
        .map(|t| t.parse::<f64>().unwrap_or_else(|e| panic!("{e}: {text}")))
        .sum();
    (judged, cpu)
}

fn judge_run(pid: i32, store: &Path, command: Command) -> Judged {
    // An integer, formatted: nothing a process controls reaches the SQL text. One
    // CLI run: the row, and whether the DESIGN join makes its socket a hit.
    let sql = format!(
        "SELECT c.pid, c.interpreter, c.script_kind, c.script_path, c.subject_kind, \
           c.subject_path, c.subject_trusted, c.subject_identity, c.error, \
           (SELECT count(*) FROM nonstandard_protocol_sockets s \
              LEFT JOIN an1256_baseline b ON b.identity = c.subject_identity \
                AND b.protocol_name = s.protocol_name AND b.remote_port IN (-1, s.remote_port) \
            WHERE s.pid = c.pid AND s.remote_address = '192.0.2.10' \
              AND c.subject_trusted = 0 AND b.identity IS NULL) AS hits \
         FROM process_code_signature c WHERE c.pid = {pid}"
    );
    let out = an1256_via(store, command, &["query", &sql, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rows = json_lines(&out.stdout);
    assert_eq!(rows.len(), 1, "one row for {pid}: {rows:?}");
    let row = rows.remove(0);
    let hit = row["hits"].as_i64().unwrap_or(0) > 0;
    Judged { row, hit }
}

/// The benign stdlib module run: `-s` leaves out the user site, which the user can
/// change (a missing one proves nothing: it may have been removed after start).
const WITHOUT_USER_SITE: [&str; 4] = ["/usr/bin/python3", "-s", "-m", "json.tool"];

fn root_or_skip(test: &str) -> bool {
    if !is_root() {
        skip(test, "needs root to create the unprivileged attacker user");
        return false;
    }
    true
}

// ---- item 1: no script operand ----

#[test]
fn a_script_piped_into_bash_is_stdin_and_a_hit() {
    if !root_or_skip("a_script_piped_into_bash_is_stdin_and_a_hit") {
        return;
    }
    let user = attacker("fc-pipe-bash");
    // `cat x.sh | bash`: the program arrives on a pipe; it blocks reading more.
    let child = exec_holding_udp(&user, &["/usr/bin/bash"], &[], "read -r never\n");
    let judged = judge(child.pid);
    assert_eq!(judged.text("script_kind"), "stdin", "{}", judged.row);
    assert!(!judged.trusted(), "{}", judged.row);
    assert!(
        judged
            .text("subject_identity")
            .starts_with("stdin:bash:pipe:"),
        "{}",
        judged.row
    );
    assert!(
        judged.text("error").contains("stdin (pipe)"),
        "{}",
        judged.row
    );
    assert!(judged.hit, "a hit: {}", judged.row);
}

#[test]
fn python_reading_a_file_on_stdin_is_stdin_and_a_hit() {
    if !root_or_skip("python_reading_a_file_on_stdin_is_stdin_and_a_hit") {
        return;
    }
    let user = attacker("fc-py-stdin");
    let program = user.write("x.py", b"import time\ntime.sleep(120)\n", false);
    // `python3 < x.py`, fd 0 a regular file; the UDP socket comes from the wrapper.
    let code = format!(
        "import os,socket\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.connect(('192.0.2.10',53))\n\
         os.set_inheritable(s.fileno(),True)\n\
         fd=os.open({:?},os.O_RDONLY); os.dup2(fd,0)\n\
         print('pid=%d'%os.getpid()); print('ready',flush=True)\n\
         os.execv('/usr/bin/python3',['python3'])\n",
        program.display().to_string()
    );
    let child = spawn_ready(user.python(&code)).unwrap_or_else(|e| panic!("{e}"));
    wait_for_exe(
        child.pid,
        &std::fs::canonicalize("/usr/bin/python3").expect("python3"),
    );
    let judged = judge(child.pid);
    assert_eq!(judged.text("script_kind"), "stdin", "{}", judged.row);
    assert!(
        judged
            .text("subject_identity")
            .starts_with("stdin:python:file:"),
        "{}",
        judged.row
    );
    assert!(!judged.trusted() && judged.hit, "{}", judged.row);
}

/// Benign twin: a person at a terminal. bash on a pty (driven through the pty
/// master by a python parent) holding a UDP socket stays the trusted shell.
#[test]
fn an_interactive_shell_on_a_pty_stays_trusted() {
    if !root_or_skip("an_interactive_shell_on_a_pty_stays_trusted") {
        return;
    }
    let user = attacker("fc-pty-bash");
    let code = r#"
import os, pty, select, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("192.0.2.10", 53))
os.set_inheritable(s.fileno(), True)
pid, master = pty.fork()
if pid == 0:
    os.execve("/usr/bin/bash", ["bash", "--norc", "--noprofile", "-i"], {"PATH": "/usr/bin:/bin", "HOME": os.environ["HOME"], "TERM": "dumb"})
s.close()
print("pid=%d" % pid)
print("ready", flush=True)
end = time.time() + 120
while time.time() < end:
    r, _, _ = select.select([master], [], [], 1)
    if r:
        try:
            os.read(master, 4096)
        except OSError:
            break
"#;
    let child = spawn_ready(user.python(code)).unwrap_or_else(|e| panic!("{e}"));
    let shell = i32::try_from(child.int("pid")).expect("pid");
    wait_for_exe(shell, Path::new("/usr/bin/bash"));
    let judged = judge(shell);
    assert_eq!(judged.text("script_kind"), "interactive", "{}", judged.row);
    assert_eq!(judged.text("subject_kind"), "binary", "{}", judged.row);
    assert!(judged.trusted(), "{}", judged.row);
    assert!(!judged.hit, "{}", judged.row);
}

// ---- item 2: python -m outside the cwd ----

#[test]
fn a_module_from_the_user_site_is_judged_by_its_file() {
    if !root_or_skip("a_module_from_the_user_site_is_judged_by_its_file") {
        return;
    }
    let user = attacker("fc-usersite");
    let module = user.write(
        ".local/lib/python3.11/site-packages/beacon.py",
        b"import sys\nsys.stdin.read()\n",
        false,
    );
    let child = exec_holding_udp(&user, &["/usr/bin/python3", "-m", "beacon"], &[], "");
    let judged = judge(child.pid);
    assert_eq!(
        judged.text("subject_path"),
        module.display().to_string(),
        "{}",
        judged.row
    );
    // The user's own module, in a directory the user can change: its hash is kept
    // but the key is a class (its imports come from the same user site).
    assert!(
        judged
            .text("subject_identity")
            .starts_with("tainted:sha256:"),
        "{}",
        judged.row
    );
    assert!(!judged.trusted() && judged.hit, "{}", judged.row);

    // The same name on PYTHONPATH, outside the cwd.
    let lib = user.write("lib/beacon2.py", b"import sys\nsys.stdin.read()\n", false);
    let child = exec_holding_udp(
        &user,
        &["/usr/bin/python3", "-m", "beacon2"],
        &[("PYTHONPATH", &user.home.join("lib").display().to_string())],
        "",
    );
    let judged = judge(child.pid);
    assert_eq!(
        judged.text("subject_path"),
        lib.display().to_string(),
        "{}",
        judged.row
    );
    assert!(!judged.trusted() && judged.hit, "{}", judged.row);
}

/// Benign twin: `python3 -s -m json.tool` runs the package-owned stdlib file.
#[test]
fn a_stdlib_module_stays_trusted() {
    if !root_or_skip("a_stdlib_module_stays_trusted") {
        return;
    }
    let user = attacker("fc-stdlib-mod");
    // From `/`: the user's home as cwd would be first on sys.path (see
    // `python_user_site_cwd_and_bytecode_prefix_untrust_a_stdlib_module`); `-s`:
    // a user site the user can change, even missing, proves nothing (see
    // `a_user_site_removed_after_start_untrusts_a_stdlib_module`).
    let child = exec_holding_udp_in(
        &user,
        "/",
        &["/usr/bin/python3", "-s", "-m", "json.tool"],
        &[],
        "",
    );
    let judged = judge(child.pid);
    assert_eq!(
        judged.text("subject_path"),
        "/usr/lib/python3.11/json/tool.py",
        "{}",
        judged.row
    );
    assert!(
        judged
            .text("subject_identity")
            .starts_with("package:libpython3.11-stdlib:"),
        "{}",
        judged.row
    );
    assert!(judged.trusted() && !judged.hit, "{}", judged.row);
}

/// `PYTHONPATH` of 60,000 entries (3,906 distinct: short relative names, then `/`
/// repeated), as long as one environment string may be (128 KiB). Before the cap
/// an1256 probed every entry (seven opens per `/`) on each judgement: 5 s wall
/// for one process, and a scan of 24 such processes ran past its deadline.
fn huge_pythonpath() -> String {
    let chars: Vec<char> = ('a'..='z').chain('A'..='Z').chain('0'..='9').collect();
    let mut entries: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
    for a in &chars {
        for b in &chars {
            entries.push(format!("{a}{b}"));
        }
    }
    entries.resize(60_000, "/".to_owned());
    entries.join(":")
}

#[test]
fn a_huge_pythonpath_is_capped_not_searched() {
    if !root_or_skip("a_huge_pythonpath_is_capped_not_searched") {
        return;
    }
    let user = attacker("fc-huge-pypath");
    let pythonpath = huge_pythonpath();
    // `-m`: the module search along sys.path.
    let module = exec_holding_udp_in(
        &user,
        "/",
        &["/usr/bin/python3.11", "-m", "json.tool"],
        &[("PYTHONPATH", &pythonpath)],
        "",
    );
    // A package script: the variable's directories and their sitecustomize probes.
    let script = exec_holding_udp_in(
        &user,
        "/",
        &["/usr/bin/python3.11", "/usr/lib/python3.11/json/tool.py"],
        &[("PYTHONPATH", &pythonpath)],
        "",
    );
    let checks: [(&ReadyChild, &str); 2] = [
        (&module, "distinct entries on sys.path, more than 64"),
        (
            &script,
            "PYTHONPATH: 3907 distinct directories, more than 64",
        ),
    ];
    // What one judgement costs here anyway (the debug binary's start and store):
    // a process with an ordinary environment, this test's own.
    let (_, baseline) = judge_timed(i32::try_from(std::process::id()).expect("pid"));
    for (child, cap) in checks {
        let (judged, cpu) = judge_timed(child.pid);
        eprintln!("an1256 query: {cpu:.2} s CPU (an ordinary process: {baseline:.2} s)");
        // Generous: a loaded CI box; the capped judgement costs what any other
        // does (uncapped it was 3.1 s against 0.7 s).
        let bound = (baseline + 0.8).max(1.5);
        assert!(
            cpu < bound,
            "an1256 took {cpu:.2} s CPU, more than {bound:.2} s"
        );
        assert!(!judged.trusted() && judged.hit, "{}", judged.row);
        let error = judged.text("error");
        assert!(error.contains(cap), "{cap:?} not in {error:.2000}");
        assert!(error.len() < 8 * 1024, "{} bytes of error", error.len());
    }
    let judged = judge(module.pid);
    assert_eq!(judged.text("script_kind"), "module", "{}", judged.row);
    assert_eq!(judged.text("subject_path"), "", "{}", judged.row);
}

/// The twin: a short `PYTHONPATH` of package directories, duplicated, leaves the
/// stdlib module resolved and trusted.
#[test]
fn a_short_pythonpath_of_package_directories_stays_trusted() {
    if !root_or_skip("a_short_pythonpath_of_package_directories_stays_trusted") {
        return;
    }
    let user = attacker("fc-short-pypath");
    let child = exec_holding_udp_in(
        &user,
        "/",
        &["/usr/bin/python3.11", "-s", "-m", "json.tool"],
        &[(
            "PYTHONPATH",
            "/usr/lib/python3/dist-packages:/usr/share/pyshared:/usr/lib/python3/dist-packages",
        )],
        "",
    );
    let (judged, cpu) = judge_timed(child.pid);
    eprintln!("an1256 query: {cpu:.2} s CPU");
    assert_eq!(
        judged.text("subject_path"),
        "/usr/lib/python3.11/json/tool.py",
        "{}",
        judged.row
    );
    assert!(judged.trusted() && !judged.hit, "{}", judged.row);
}

// ---- item 3: code-loading options and variables ----

#[test]
fn perl_modules_from_the_users_directories_untrust_a_package_script() {
    if !root_or_skip("perl_modules_from_the_users_directories_untrust_a_package_script") {
        return;
    }
    let user = attacker("fc-perl-m");
    user.write("lib/Beacon.pm", b"package Beacon;\n1;\n", false);
    let lib = user.home.join("lib").display().to_string();
    let include = format!("-I{lib}");
    let child = exec_holding_udp(
        &user,
        &["/usr/bin/perl", &include, "-MBeacon", "/usr/bin/json_pp"],
        &[],
        "",
    );
    let judged = judge(child.pid);
    assert_eq!(
        judged.text("subject_path"),
        "/usr/bin/json_pp",
        "{}",
        judged.row
    );
    assert!(!judged.trusted() && judged.hit, "{}", judged.row);
    assert!(
        judged
            .text("error")
            .contains(&format!("perl -I puts {lib} on the search path")),
        "{}",
        judged.row
    );
    // The same through the environment.
    let child = exec_holding_udp(
        &user,
        &["/usr/bin/perl", "/usr/bin/json_pp"],
        &[("PERL5OPT", "-MBeacon"), ("PERL5LIB", &lib)],
        "",
    );
    let judged = judge(child.pid);
    assert!(!judged.trusted() && judged.hit, "{}", judged.row);
    assert!(judged.text("error").contains("PERL5LIB"), "{}", judged.row);

    // Benign twin: the package script with no loader options.
    let child = exec_holding_udp(&user, &["/usr/bin/perl", "/usr/bin/json_pp"], &[], "");
    let judged = judge(child.pid);
    assert!(judged.trusted() && !judged.hit, "{}", judged.row);
}

#[test]
fn ld_preload_of_a_users_library_untrusts_a_package_binary() {
    if !root_or_skip("ld_preload_of_a_users_library_untrusts_a_package_binary") {
        return;
    }
    let user = attacker("fc-preload");
    let libz = std::fs::canonicalize("/usr/lib/x86_64-linux-gnu/libz.so.1");
    let Ok(libz) = libz else {
        skip(
            "ld_preload_of_a_users_library_untrusts_a_package_binary",
            "no libz",
        );
        return;
    };
    let hook = user.write(
        "libhook.so",
        &std::fs::read(libz).expect("read libz"),
        false,
    );
    let hook_text = hook.display().to_string();
    let child = exec_holding_udp(&user, &["/usr/bin/cat"], &[("LD_PRELOAD", &hook_text)], "");
    let judged = judge(child.pid);
    assert_eq!(judged.text("subject_kind"), "binary", "{}", judged.row);
    assert!(!judged.trusted() && judged.hit, "{}", judged.row);
    assert!(
        judged
            .text("error")
            .contains(&format!("LD_PRELOAD loads {hook_text} (unsigned)")),
        "{}",
        judged.row
    );
    // Benign twin: the same binary, no preload.
    let child = exec_holding_udp(&user, &["/usr/bin/cat"], &[], "");
    let judged = judge(child.pid);
    assert!(judged.trusted() && !judged.hit, "{}", judged.row);
}

/// The environment /proc shows is the process's own memory: its user (or the
/// preloaded code itself) renames LD_PRELOAD after start, through
/// `/proc/<pid>/mem`, and the variable is gone. The library is still mapped, and
/// the kernel's mappings name it. Twin: the same binary with no preload.
#[test]
fn a_preload_hidden_by_rewriting_the_environment_is_still_mapped() {
    if !root_or_skip("a_preload_hidden_by_rewriting_the_environment_is_still_mapped") {
        return;
    }
    let user = attacker("rt-env-wipe");
    let Ok(libz) = std::fs::canonicalize("/usr/lib/x86_64-linux-gnu/libz.so.1") else {
        skip(
            "a_preload_hidden_by_rewriting_the_environment_is_still_mapped",
            "no libz",
        );
        return;
    };
    let hook = user.write(
        "libhook.so",
        &std::fs::read(libz).expect("read libz"),
        false,
    );
    let hook_text = hook.display().to_string();
    let child = exec_holding_udp(&user, &["/usr/bin/cat"], &[("LD_PRELOAD", &hook_text)], "");
    // Renames the variable in the process's environment memory.
    const RENAME_LD_PRELOAD: &str = r#"
import sys
pid = sys.argv[1]
stat = open("/proc/%s/stat" % pid, "rb").read()
fields = stat[stat.rindex(b")") + 2:].split()
start, end = int(fields[47]), int(fields[48])
with open("/proc/%s/mem" % pid, "r+b", buffering=0) as mem:
    mem.seek(start)
    at = mem.read(end - start).index(b"LD_PRELOAD=")
    mem.seek(start + at)
    mem.write(b"X")
"#;
    let out = user
        .command("/usr/bin/python3")
        .args(["-c", RENAME_LD_PRELOAD, &child.pid.to_string()])
        .output()
        .expect("rewrite the environment");
    assert!(out.status.success(), "{out:?}");
    let environ = std::fs::read(format!("/proc/{}/environ", child.pid)).expect("environ");
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        !environ.contains("LD_PRELOAD=") && environ.contains("XD_PRELOAD="),
        "{environ:?}"
    );
    assert_hit_because(
        &judge(child.pid),
        &format!("{hook_text} is mapped executable into the process (unsigned"),
    );
    // Benign twin: the same binary, no preload.
    let child = exec_holding_udp(&user, &["/usr/bin/cat"], &[], "");
    let judged = judge(child.pid);
    assert!(judged.trusted() && !judged.hit, "{}", judged.row);
}

#[test]
fn bash_env_and_pythonpath_hooks_untrust_package_scripts() {
    if !root_or_skip("bash_env_and_pythonpath_hooks_untrust_package_scripts") {
        return;
    }
    let user = attacker("fc-env-hooks");
    // BASH_ENV runs before the package script (here it blocks reading stdin).
    let env_file = user.write("env.sh", b"read -r never\n", false);
    let env_text = env_file.display().to_string();
    let child = exec_holding_udp(
        &user,
        &["/usr/bin/bash", "/usr/bin/ldd"],
        &[("BASH_ENV", &env_text)],
        "",
    );
    let judged = judge(child.pid);
    assert_eq!(
        judged.text("subject_path"),
        "/usr/bin/ldd",
        "{}",
        judged.row
    );
    assert!(!judged.trusted() && judged.hit, "{}", judged.row);
    assert!(
        judged
            .text("error")
            .contains(&format!("BASH_ENV loads {env_text}")),
        "{}",
        judged.row
    );
    // A sitecustomize on PYTHONPATH runs before the stdlib module.
    let hook = user.write("site/sitecustomize.py", b"pass\n", false);
    let site = user.home.join("site").display().to_string();
    let child = exec_holding_udp(
        &user,
        &["/usr/bin/python3", "-m", "json.tool"],
        &[("PYTHONPATH", &site)],
        "",
    );
    let judged = judge(child.pid);
    assert!(!judged.trusted() && judged.hit, "{}", judged.row);
    assert!(
        judged
            .text("error")
            .contains(&format!("(loads {})", hook.display())),
        "{}",
        judged.row
    );
}

#[test]
fn node_require_of_a_users_file_untrusts_a_package_script() {
    let main = "/usr/lib/node_modules/corepack/dist/corepack.js";
    if !root_or_skip("node_require_of_a_users_file_untrusts_a_package_script") {
        return;
    }
    if !Path::new("/usr/bin/node").exists() || !Path::new(main).exists() {
        skip(
            "node_require_of_a_users_file_untrusts_a_package_script",
            "no node / corepack",
        );
        return;
    }
    let user = attacker("fc-node-r");
    // The hook keeps the process alive whatever the main script does.
    let hook = user.write("hook.js", b"setInterval(() => {}, 1000);\n", false);
    let hook_text = hook.display().to_string();
    let child = exec_holding_udp(&user, &["/usr/bin/node", "-r", &hook_text, main], &[], "");
    let judged = judge(child.pid);
    assert_eq!(judged.text("subject_path"), main, "{}", judged.row);
    assert!(!judged.trusted() && judged.hit, "{}", judged.row);
    assert!(
        judged
            .text("error")
            .contains(&format!("node -r loads {hook_text}")),
        "{}",
        judged.row
    );
}

// ---- item 9: broad identities ----

#[test]
fn broad_identities_are_never_learned_and_need_force() {
    if !root_or_skip("broad_identities_are_never_learned_and_need_force") {
        return;
    }
    let user = attacker("fc-broad");
    let child = exec_holding_udp(&user, &["/usr/bin/bash"], &[], "read -r never\n");
    let identity = judge(child.pid).text("subject_identity");
    assert!(identity.starts_with("stdin:bash:pipe:"), "{identity}");
    let store = tempfile::tempdir().expect("tempdir");
    // A new store is learning: a sampler pass records the socket but learns no class.
    let out = an1256(store.path(), &["baseline", "sample"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = an1256(
        store.path(),
        &[
            "query",
            "SELECT identity FROM an1256_observations",
            "--json",
        ],
    );
    let observed: Vec<String> = json_lines(&out.stdout)
        .iter()
        .map(|r| r["identity"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(observed.contains(&identity), "observed: {observed:?}");
    let out = an1256(store.path(), &["baseline", "list", "--json"]);
    let learned = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!learned.contains(&identity), "never learned: {learned}");
    assert!(judge(child.pid).hit, "still a hit after the learning pass");

    // Approving needs --force, and says what it covers.
    let out = an1256(
        store.path(),
        &["baseline", "approve", &identity, "--protocol", "udp"],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broad identity") && stderr.contains("--force"),
        "{stderr}"
    );
    // Through osquery's INSERT: a constraint failure, never an approval.
    let insert = format!(
        "INSERT INTO an1256_baseline (identity, protocol_name) VALUES ('{identity}', 'udp')"
    );
    let out = an1256(store.path(), &["query", &insert]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("broad identity"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = an1256(
        store.path(),
        &[
            "baseline",
            "approve",
            &identity,
            "--protocol",
            "udp",
            "--force",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("covers every program bash"), "{stdout}");
}

// ---- item 7: policy path rules ----

/// A `path` policy rule allows a root-owned agent run from its directory, but not
/// an implant an unprivileged user bind-mounts over that path inside a user+mount
/// namespace (the same path in `/proc/<pid>/exe`, another file).
#[test]
fn a_path_rule_holds_only_for_the_file_at_that_path_in_the_hosts_namespace() {
    use std::os::unix::fs::PermissionsExt;
    let test = "a_path_rule_holds_only_for_the_file_at_that_path_in_the_hosts_namespace";
    if !root_or_skip(test) {
        return;
    }
    let user = attacker("fc-bindmount");
    let root = tempfile::Builder::new()
        .prefix("an1256-agent-")
        .tempdir()
        .expect("tempdir");
    let bin = root.path().join("agent/bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    for dir in [root.path(), &root.path().join("agent"), bin.as_path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    // The agent: an unsigned copy of python under another name (a binary subject).
    let python = std::fs::canonicalize("/usr/bin/python3").expect("python3");
    let agent = bin.join("agent");
    common::copy_executable(&python, &agent);
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // The implant: other bytes (a different sha256), same behaviour.
    let mut implant_bytes = std::fs::read(&python).expect("read python");
    implant_bytes.extend_from_slice(b"implant");
    let implant = user.write("implant", &implant_bytes, true);

    let store = tempfile::tempdir().expect("store");
    let policy = store.path().join("policy.json");
    std::fs::write(
        &policy,
        serde_json::json!({"version": 1, "rules": [{
            "name": "acme-agent", "path": format!("{}/*", bin.display()),
            "protocols": ["udp"], "reason": "the agent's probes"}]})
        .to_string(),
    )
    .expect("policy");
    let config = serde_json::json!({"policy_path": policy}).to_string();
    let udp = "import socket,os,time\n\
               s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.connect(('192.0.2.10',53))\n\
               print('pid=%d'%os.getpid()); print('ready',flush=True); time.sleep(120)\n";
    let hits = |pid: i32| -> usize {
        let sql = format!(
            "SELECT s.pid FROM nonstandard_protocol_sockets s \
             JOIN process_code_signature c ON c.pid = s.pid \
             LEFT JOIN an1256_baseline b ON b.identity = c.subject_identity \
               AND b.protocol_name = s.protocol_name AND b.remote_port IN (-1, s.remote_port) \
             WHERE s.pid = {pid} AND c.subject_trusted = 0 AND b.identity IS NULL"
        );
        let cfg = store.path().join("config.json");
        std::fs::write(&cfg, &config).expect("config");
        let out = Command::new(env!("CARGO_BIN_EXE_an1256"))
            .args(["query", &sql, "--json"])
            .env("AN1256_DB", store.path().join("an1256.db"))
            .env("AN1256_CONFIG", &cfg)
            .output()
            .expect("run an1256");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json_lines(&out.stdout).len()
    };

    // Benign twin: the agent itself, in the host's namespace.
    let mut command = user.command(&agent);
    command.arg("-c").arg(udp);
    let genuine = spawn_ready(command).unwrap_or_else(|e| panic!("agent: {e}"));
    assert_eq!(
        hits(genuine.pid),
        0,
        "the genuine agent is allowed by its path rule"
    );
    drop(genuine);

    // The implant at the same path, through a bind mount in its own namespace.
    let script = format!(
        "mount --bind {implant} {agent} && exec {agent} -c \"$1\"",
        implant = implant.display(),
        agent = agent.display()
    );
    let mut command = user.command("/usr/bin/unshare");
    command.args(["-Urm", "/bin/sh", "-c", &script, "sh", udp]);
    let child = match spawn_ready(command) {
        Ok(child) => child,
        Err(e) => {
            skip(test, format!("no user+mount namespace here: {e}"));
            return;
        }
    };
    let seen = std::fs::read_link(format!("/proc/{}/exe", child.pid)).expect("exe link");
    assert_eq!(seen, agent, "the implant shows the agent's path");
    assert_eq!(hits(child.pid), 1, "the implant is a hit");
}

// ---- item 6: argv rewritten in place ----

/// A bash script rewrites its own argv (through `/proc/<pid>/mem`, as any process
/// of the same user may) to name a package script. bash still holds the real
/// script on fd 255: argv and reality disagree, so the subject is untrusted.
#[test]
fn argv_rewritten_to_name_a_package_script_is_caught_by_the_held_script_fd() {
    let test = "argv_rewritten_to_name_a_package_script_is_caught_by_the_held_script_fd";
    if !root_or_skip(test) {
        return;
    }
    let user = attacker("fc-argv");
    let rewrite = r#"
import sys
pid = int(sys.argv[1])
fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
start, end = int(fields[45]), int(fields[46])
new = b"bash\0/usr/bin/ldd\0"
new += b"\0" * (end - start - len(new))
with open("/proc/%d/mem" % pid, "r+b", buffering=0) as mem:
    mem.seek(start)
    mem.write(new)
"#;
    user.write("rewrite.py", rewrite.as_bytes(), false);
    let script = user.write(
        "x.sh",
        b"exec 3<>/dev/udp/192.0.2.10/53\n\
          /usr/bin/python3 \"$HOME/rewrite.py\" $$ || exit 1\n\
          echo pid=$$\n\
          echo ready\n\
          sleep 120\n",
        false,
    );
    let mut command = user.command("/usr/bin/bash");
    command
        .arg(&script)
        .env("PATH", "/usr/bin:/bin")
        .env_remove("LD_LIBRARY_PATH");
    let child = spawn_ready(command).unwrap_or_else(|e| panic!("{e}"));
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.pid)).expect("cmdline");
    assert!(
        cmdline.starts_with(b"bash\0/usr/bin/ldd\0"),
        "argv rewritten: {:?}",
        String::from_utf8_lossy(&cmdline)
    );
    let judged = judge(child.pid);
    assert_eq!(judged.text("script_path"), "/usr/bin/ldd", "{}", judged.row);
    assert!(!judged.trusted() && judged.hit, "{}", judged.row);
    assert!(
        judged
            .text("error")
            .contains(&format!("bash runs {} (fd 255)", script.display())),
        "{}",
        judged.row
    );
}

/// Benign twins: package shell scripts run by path, bash (fd 255) and dash (fd >=
/// 10) holding them, stay trusted.
#[test]
fn package_shell_scripts_holding_their_own_file_stay_trusted() {
    if !root_or_skip("package_shell_scripts_holding_their_own_file_stay_trusted") {
        return;
    }
    let user = attacker("fc-argv-twin");
    for shell in ["/usr/bin/bash", "/usr/bin/dash"] {
        // zgrep with no file reads stdin (the idle pipe) through gzip and grep.
        let child = exec_holding_udp(&user, &[shell, "/usr/bin/zgrep", "never"], &[], "");
        let judged = judge(child.pid);
        assert_eq!(
            judged.text("subject_path"),
            "/usr/bin/zgrep",
            "{}",
            judged.row
        );
        assert!(judged.trusted() && !judged.hit, "{shell}: {}", judged.row);
    }
}

// ---- red team: code put into trusted programs that no option names ----

/// Asserts an untrusted hit whose `error` names `why`.
fn assert_hit_because(judged: &Judged, why: &str) {
    assert!(!judged.trusted() && judged.hit, "{}", judged.row);
    assert!(judged.text("error").contains(why), "{why}: {}", judged.row);
}

#[test]
fn exported_functions_and_trace_prompts_untrust_a_package_bash_script() {
    if !root_or_skip("exported_functions_and_trace_prompts_untrust_a_package_bash_script") {
        return;
    }
    let user = attacker("rt-bashfunc");
    // An exported function replaces `test` inside /usr/bin/ldd (it blocks on stdin);
    // it could as well open a UDP socket in the bash process itself.
    let child = exec_holding_udp(
        &user,
        &["/usr/bin/bash", "/usr/bin/ldd"],
        &[("BASH_FUNC_test%%", "() {  read -r never; }")],
        "",
    );
    let judged = judge(child.pid);
    assert_eq!(
        judged.text("subject_path"),
        "/usr/bin/ldd",
        "{}",
        judged.row
    );
    assert_hit_because(&judged, "BASH_FUNC_test%%: an exported function");
    assert!(
        judged
            .text("subject_identity")
            .starts_with("tainted:package:"),
        "{}",
        judged.row
    );
    // SHELLOPTS=xtrace runs PS4's command substitution before every command.
    let child = exec_holding_udp(
        &user,
        &["/usr/bin/bash", "/usr/bin/ldd"],
        &[("SHELLOPTS", "xtrace"), ("PS4", "$(read -r never)")],
        "",
    );
    assert_hit_because(&judge(child.pid), "PS4: a trace prompt");

    // Benign twin: a package bash script (tzselect waits at its menu) with a plain
    // trace prompt stays trusted.
    let child = exec_holding_udp(
        &user,
        &["/usr/bin/bash", "/usr/bin/tzselect"],
        &[("PS4", "+ ")],
        "",
    );
    let judged = judge(child.pid);
    assert_eq!(
        judged.text("subject_path"),
        "/usr/bin/tzselect",
        "{}",
        judged.row
    );
    assert!(judged.trusted() && !judged.hit, "{}", judged.row);
}

#[test]
fn python_user_site_cwd_and_bytecode_prefix_untrust_a_stdlib_module() {
    if !root_or_skip("python_user_site_cwd_and_bytecode_prefix_untrust_a_stdlib_module") {
        return;
    }
    let module = ["/usr/bin/python3", "-m", "json.tool"];
    // `python3 -m json.tool` from a directory holding argparse.py: json.tool imports
    // the user's argparse (which blocks here), not the standard library's.
    let user = attacker("rt-py-cwd");
    let shadow = user.write("work/argparse.py", b"import sys\nsys.stdin.read()\n", false);
    let work = shadow.parent().expect("work dir").display().to_string();
    let child = exec_holding_udp_in(&user, &work, &module, &[], "");
    let judged = judge(child.pid);
    assert_eq!(
        judged.text("subject_path"),
        "/usr/lib/python3.11/json/tool.py",
        "{}",
        judged.row
    );
    assert_hit_because(
        &judged,
        &format!("python -m puts the cwd {work} on sys.path"),
    );

    // A .pth file in the user site runs its import lines in every python start.
    let user = attacker("rt-py-pth");
    user.write(
        ".local/lib/python3.11/site-packages/zz.pth",
        b"import sys; sys.stdin.readline()\n",
        false,
    );
    let child = exec_holding_udp_in(&user, "/", &module, &[], "");
    assert_hit_because(&judge(child.pid), "the user site-packages");

    // Bytecode read from a user tree: a forged .pyc runs instead of the source.
    let user = attacker("rt-py-pyc");
    let prefix = user.home.join("pc").display().to_string();
    std::fs::create_dir_all(&prefix).expect("prefix");
    let child = exec_holding_udp_in(&user, "/", &module, &[("PYTHONPYCACHEPREFIX", &prefix)], "");
    assert_hit_because(
        &judge(child.pid),
        &format!("PYTHONPYCACHEPREFIX puts {prefix}"),
    );
    let child = exec_holding_udp_in(
        &user,
        "/",
        &[
            "/usr/bin/python3",
            "-X",
            &format!("pycache_prefix={prefix}"),
            "-m",
            "json.tool",
        ],
        &[],
        "",
    );
    assert_hit_because(&judge(child.pid), "python -X pycache_prefix");
    // Benign twin: the same user and module from `/` with nothing set, without
    // the user site (`a_stdlib_module_stays_trusted` covers a fresh user too).
    let child = exec_holding_udp_in(&user, "/", &WITHOUT_USER_SITE, &[], "");
    let judged = judge(child.pid);
    assert!(judged.trusted() && !judged.hit, "{}", judged.row);
}

/// A usercustomize runs at python's start and deletes the user site it came
/// from: at scan time nothing is left to find. In the user's own home, the
/// missing directory proves nothing. Twin: the same module under `-s`.
#[test]
fn a_user_site_removed_after_start_untrusts_a_stdlib_module() {
    if !root_or_skip("a_user_site_removed_after_start_untrusts_a_stdlib_module") {
        return;
    }
    let user = attacker("rt-py-gone");
    let local = user.home.join(".local");
    user.write(
        ".local/lib/python3.11/site-packages/usercustomize.py",
        b"import os, shutil, sys\nshutil.rmtree(os.path.expanduser('~/.local'))\nsys.stdin.readline()\n",
        false,
    );
    let child = exec_holding_udp_in(
        &user,
        "/",
        &["/usr/bin/python3", "-m", "json.tool"],
        &[],
        "",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while local.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!local.exists(), "the usercustomize never ran");
    let judged = judge(child.pid);
    assert_eq!(
        judged.text("subject_path"),
        "/usr/lib/python3.11/json/tool.py",
        "{}",
        judged.row
    );
    assert_hit_because(&judged, "may have been removed after python started");
    assert!(
        judged.text("subject_identity").starts_with("tainted:"),
        "{}",
        judged.row
    );
    // Benign twin: `-s` leaves the user site out of sys.path.
    let child = exec_holding_udp_in(&user, "/", &WITHOUT_USER_SITE, &[], "");
    let judged = judge(child.pid);
    assert!(judged.trusted() && !judged.hit, "{}", judged.row);
}

/// Twin of the removed user site: a user whose `~/.local` has held no `lib`
/// since before python started (its ctime, which no user can set back, is
/// older than the start) runs a package module without `-s`: trusted.
#[test]
fn a_user_site_missing_since_before_start_leaves_a_stdlib_module_trusted() {
    if !root_or_skip("a_user_site_missing_since_before_start_leaves_a_stdlib_module_trusted") {
        return;
    }
    let user = attacker("rt-py-never");
    user.write(".local/share/keep", b"", false);
    // Past a clock tick and a coarse timestamp's jiffy.
    std::thread::sleep(Duration::from_millis(100));
    let child = exec_holding_udp_in(
        &user,
        "/",
        &["/usr/bin/python3", "-m", "json.tool"],
        &[],
        "",
    );
    let judged = judge(child.pid);
    assert_eq!(
        judged.text("subject_path"),
        "/usr/lib/python3.11/json/tool.py",
        "{}",
        judged.row
    );
    assert!(judged.trusted() && !judged.hit, "{}", judged.row);
    // Created after the start, then removed: the directory above changed.
    user.write(".local/lib/python3.11/site-packages/keep", b"", false);
    std::fs::remove_dir_all(user.home.join(".local/lib")).expect("remove the user site");
    assert_hit_because(
        &judge(child.pid),
        "may have been removed after python started",
    );
}

#[test]
fn the_perl_debugger_hook_untrusts_a_package_script() {
    if !root_or_skip("the_perl_debugger_hook_untrusts_a_package_script") {
        return;
    }
    let user = attacker("rt-perldb");
    let child = exec_holding_udp(
        &user,
        &["/usr/bin/perl", "-d", "/usr/bin/json_pp"],
        &[("PERL5DB", "BEGIN { my $x = <STDIN>; }")],
        "",
    );
    let judged = judge(child.pid);
    assert_eq!(
        judged.text("subject_path"),
        "/usr/bin/json_pp",
        "{}",
        judged.row
    );
    assert_hit_because(&judged, "perl -d: the debugger runs PERL5DB");
    // Benign twin: the package script with no switches.
    let child = exec_holding_udp(&user, &["/usr/bin/perl", "/usr/bin/json_pp"], &[], "");
    let judged = judge(child.pid);
    assert!(judged.trusted() && !judged.hit, "{}", judged.row);
}

#[test]
fn a_program_run_by_the_dynamic_loader_is_an_unlearned_class() {
    if !root_or_skip("a_program_run_by_the_dynamic_loader_is_an_unlearned_class") {
        return;
    }
    let loader = "/lib64/ld-linux-x86-64.so.2";
    if !Path::new(loader).exists() {
        skip(
            "a_program_run_by_the_dynamic_loader_is_an_unlearned_class",
            "no x86-64 loader",
        );
        return;
    }
    let user = attacker("rt-ldso");
    // ld.so runs any program, an unsigned one included, as the libc6 file.
    let program = user.write(
        "implant",
        &std::fs::read("/usr/bin/cat").expect("cat"),
        true,
    );
    let program = program.display().to_string();
    let child = exec_holding_udp(&user, &[loader, &program], &[], "");
    let judged = judge(child.pid);
    assert_hit_because(&judged, "the dynamic loader runs the program");
    let identity = judged.text("subject_identity");
    assert!(identity.starts_with("tainted:package:libc6:"), "{identity}");
    // A learning pass records it and learns nothing: a class needs a person.
    let store = tempfile::tempdir().expect("tempdir");
    let out = an1256(store.path(), &["baseline", "sample"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = an1256(store.path(), &["baseline", "list", "--json"]);
    let learned = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!learned.contains(&identity), "never learned: {learned}");
    let out = an1256(
        store.path(),
        &["baseline", "approve", &identity, "--protocol", "udp"],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Benign twin: the package program run directly.
    let child = exec_holding_udp(&user, &["/usr/bin/cat"], &[], "");
    let judged = judge(child.pid);
    assert!(judged.trusted() && !judged.hit, "{}", judged.row);
}

#[test]
fn gdb_running_python_is_untrusted() {
    if !root_or_skip("gdb_running_python_is_untrusted") {
        return;
    }
    if !Path::new("/usr/bin/gdb").exists() {
        skip("gdb_running_python_is_untrusted", "no gdb");
        return;
    }
    let user = attacker("rt-gdb");
    let child = exec_holding_udp(
        &user,
        &[
            "/usr/bin/gdb",
            "-nx",
            "-batch",
            "-ex",
            "python import sys; sys.stdin.readline()",
        ],
        &[],
        "",
    );
    assert_hit_because(&judge(child.pid), "gdb runs python");
}

// ---- red team, trusted interpreters loading the user's code ----

#[test]
fn login_shells_reading_the_users_profile_untrust_a_package_script() {
    if !root_or_skip("login_shells_reading_the_users_profile_untrust_a_package_script") {
        return;
    }
    // The profile opens its own UDP socket (bash's /dev/udp) and returns; the
    // package script then runs (tzselect waits at its menu) holding it.
    let user = attacker("rt-login");
    let profile = user.write(".bash_profile", b"exec 7<>/dev/udp/192.0.2.10/53\n", false);
    let profile = profile.display().to_string();
    let tzselect = ["/usr/bin/bash", "-l", "/usr/bin/tzselect"];
    for argv in [
        &tzselect[..],
        &["/usr/bin/bash", "--login", "/usr/bin/tzselect"],
    ] {
        let child = exec_holding_udp(&user, argv, &[], "");
        let judged = judge(child.pid);
        assert_eq!(
            judged.text("subject_path"),
            "/usr/bin/tzselect",
            "{}",
            judged.row
        );
        assert_hit_because(&judged, &format!("bash login shell reads {profile}"));
    }
    // `exec -a -bash bash /usr/bin/tzselect`: a `-` first in argv[0] makes a login
    // shell.
    let child = exec_holding_udp_as(
        &user,
        "",
        "/usr/bin/bash",
        &["-bash", "/usr/bin/tzselect"],
        &[],
        "",
    );
    assert_hit_because(
        &judge(child.pid),
        &format!("bash login shell reads {profile}"),
    );
    // dash (Debian's sh) reads ~/.profile as a login shell (here it blocks there).
    // dash (Debian's sh) reads ~/.profile as a login shell.
    let user = attacker("rt-login-dash");
    let profile = user.write(".profile", b"read never\n", false);
    let profile = profile.display().to_string();
    let child = exec_holding_udp(&user, &["/usr/bin/dash", "-l", "/usr/bin/ldd"], &[], "");
    assert_hit_because(
        &judge(child.pid),
        &format!("dash login shell reads {profile}"),
    );
    let child = exec_holding_udp_as(
        &user,
        "",
        "/usr/bin/dash",
        &["-sh", "/usr/bin/ldd"],
        &[],
        "",
    );
    assert_hit_because(
        &judge(child.pid),
        &format!("dash login shell reads {profile}"),
    );

    // A profile that removes itself once read leaves no file to find: for a user's
    // own home, a missing profile proves nothing either (the home changed since
    // the start).
    let user = attacker("rt-login-none");
    let profile = user.write(".bash_profile", b"rm -f ~/.bash_profile\n", false);
    // Only the removal, not the write, is after the start.
    std::thread::sleep(Duration::from_millis(100));
    let child = exec_holding_udp(
        &user,
        &["/usr/bin/bash", "-l", "/usr/bin/tzselect"],
        &[],
        "",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while profile.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!profile.exists(), "the profile never ran");
    assert_hit_because(&judge(child.pid), "its user may have removed it");
    // Twin: a home that held no profile since before the start (its ctime older).
    let never = attacker("rt-login-never");
    std::thread::sleep(Duration::from_millis(100));
    let child = exec_holding_udp(
        &never,
        &["/usr/bin/bash", "-l", "/usr/bin/tzselect"],
        &[],
        "",
    );
    let judged = judge(child.pid);
    assert!(judged.trusted() && !judged.hit, "{}", judged.row);

    // Benign twin: the same package script, no login shell, stays trusted.
    let child = exec_holding_udp(&user, &["/usr/bin/bash", "/usr/bin/tzselect"], &[], "");
    let judged = judge(child.pid);
    assert_eq!(
        judged.text("subject_path"),
        "/usr/bin/tzselect",
        "{}",
        judged.row
    );
    assert!(judged.trusted() && !judged.hit, "{}", judged.row);
}

/// `bash -i script` is an interactive shell: it reads `~/.bashrc` before the
/// script. With its standard error on the script, bash's fd 255 (the terminal it
/// keeps) is the script too, so the held-script check agrees with argv. Twins:
/// the same run under `--norc`, and without `-i`.
#[test]
fn an_interactive_shell_reading_the_users_bashrc_untrusts_a_package_script() {
    if !root_or_skip("an_interactive_shell_reading_the_users_bashrc_untrusts_a_package_script") {
        return;
    }
    let user = attacker("rt-bashrc");
    let bashrc = user.write(".bashrc", b"exec 7<>/dev/udp/192.0.2.10/53\n", false);
    let bashrc = bashrc.display().to_string();
    let run = |options: &str| {
        let line = format!(
            "exec 2</usr/bin/tzselect; exec -a bash /usr/bin/bash {options} /usr/bin/tzselect"
        );
        exec_holding_udp_as(&user, "", "/usr/bin/bash", &["bash", "-c", &line], &[], "")
    };
    let child = run("-i");
    let judged = judge(child.pid);
    assert_eq!(
        judged.text("subject_path"),
        "/usr/bin/tzselect",
        "{}",
        judged.row
    );
    assert_hit_because(&judged, &format!("bash interactive shell reads {bashrc}"));
    for twin in ["--norc -i", ""] {
        let child = run(twin);
        let judged = judge(child.pid);
        assert_eq!(
            judged.text("subject_path"),
            "/usr/bin/tzselect",
            "{twin}: {}",
            judged.row
        );
        assert!(judged.trusted() && !judged.hit, "{twin}: {}", judged.row);
    }
}

#[test]
fn python_platlibdir_venv_argv0_and_stdlib_runners_untrust_package_code() {
    if !root_or_skip("python_platlibdir_venv_argv0_and_stdlib_runners_untrust_package_code") {
        return;
    }
    let module = ["/usr/bin/python3", "-m", "json.tool"];
    // PYTHONPLATLIBDIR moves the standard library: here into the user's tree (a
    // link to the real one, so json.tool runs and waits on stdin).
    let user = attacker("rt-py-platlib");
    let platlib = user.home.join("pl");
    std::fs::create_dir_all(&platlib).expect("pl");
    std::os::unix::fs::symlink("/usr/lib/python3.11", platlib.join("python3.11")).expect("link");
    let value = format!("..{}", platlib.display());
    let child = exec_holding_udp_in(&user, "/", &module, &[("PYTHONPLATLIBDIR", &value)], "");
    assert_hit_because(
        &judge(child.pid),
        &format!(
            "PYTHONPLATLIBDIR puts {} on the search path",
            platlib.display()
        ),
    );

    // A pyvenv.cfg beside argv[0]'s program: the venv's .pth runs, under -I too.
    let user = attacker("rt-py-venv");
    user.write("venv/pyvenv.cfg", b"home = /usr/bin\n", false);
    user.write(
        "venv/lib/python3.11/site-packages/zz.pth",
        b"import sys; sys.stdin.readline()\n",
        false,
    );
    let venv = user.home.join("venv").display().to_string();
    let fake = format!("{venv}/bin/python3");
    let isolated = ["/usr/bin/python3", "-I", "-m", "json.tool"];
    let mut argv = isolated;
    argv[0] = &fake;
    let child = exec_holding_udp_as(&user, "/", isolated[0], &argv, &[], "");
    assert_hit_because(
        &judge(child.pid),
        &format!("makes python a virtual environment at {venv}"),
    );
    // argv[0] without a slash is looked up in PATH, as CPython does.
    user.write("venv/bin/python3", b"", true);
    argv[0] = "python3";
    let path = format!("{venv}/bin:/usr/bin:/bin");
    let child = exec_holding_udp_as(&user, "/", isolated[0], &argv, &[("PATH", &path)], "");
    assert_hit_because(
        &judge(child.pid),
        &format!("makes python a virtual environment at {venv}"),
    );
    // Benign twin: the same argv[0] with the system PATH.
    let child = exec_holding_udp_as(&user, "/", isolated[0], &argv, &[], "");
    let judged = judge(child.pid);
    assert!(judged.trusted() && !judged.hit, "{}", judged.row);

    // Standard-library runners run the user's code as the package's file.
    let user = attacker("rt-py-runner");
    let script = user.write("x.py", b"import sys\nsys.stdin.readline()\n", false);
    let script = script.display().to_string();
    for runner in ["cProfile", "trace", "pdb"] {
        let argv: Vec<&str> = if runner == "trace" {
            vec!["/usr/bin/python3", "-m", runner, "--count", &script]
        } else {
            vec!["/usr/bin/python3", "-m", runner, &script]
        };
        let child = exec_holding_udp_in(&user, "/", &argv, &[], "");
        let judged = judge(child.pid);
        assert_eq!(
            judged.text("subject_path"),
            format!("/usr/lib/python3.11/{runner}.py"),
            "{}",
            judged.row
        );
        assert_hit_because(&judged, &format!("python's {runner} runs the code"));
    }
    let child = exec_holding_udp_in(
        &user,
        "/",
        &[
            "/usr/bin/python3",
            "/usr/lib/python3.11/timeit.py",
            "-s",
            "import sys; sys.stdin.readline()",
        ],
        &[],
        "",
    );
    assert_hit_because(&judge(child.pid), "python's timeit runs the code");
    // The console fed by a pipe runs what the pipe holds (at a terminal it is a
    // person, as for the REPL).
    let child = exec_holding_udp_in(&user, "/", &["/usr/bin/python3", "-m", "code"], &[], "");
    assert_hit_because(&judge(child.pid), "python's code runs the code");
    // Benign twin: a stdlib module that runs nothing of the user's.
    let child = exec_holding_udp_in(&user, "/", &WITHOUT_USER_SITE, &[], "");
    let judged = judge(child.pid);
    assert!(judged.trusted() && !judged.hit, "{}", judged.row);
}

#[test]
fn node_env_files_and_snapshots_untrust_a_package_script() {
    let main = "/usr/lib/node_modules/corepack/dist/corepack.js";
    if !root_or_skip("node_env_files_and_snapshots_untrust_a_package_script") {
        return;
    }
    if !Path::new("/usr/bin/node").exists() || !Path::new(main).exists() {
        skip(
            "node_env_files_and_snapshots_untrust_a_package_script",
            "no node / corepack",
        );
        return;
    }
    // An env file sets NODE_OPTIONS: the user's hook runs before the package script.
    let user = attacker("rt-node-env");
    let hook = user.write("hook.js", b"setInterval(() => {}, 1000);\n", false);
    let env_file = user.write(
        "app.env",
        format!("NODE_OPTIONS=\"--require {}\"\n", hook.display()).as_bytes(),
        false,
    );
    let env_file = env_file.display().to_string();
    for option in ["--env-file", "--env-file-if-exists"] {
        let flag = format!("{option}={env_file}");
        let child = exec_holding_udp(&user, &["/usr/bin/node", &flag, main], &[], "");
        let judged = judge(child.pid);
        assert_eq!(judged.text("subject_path"), main, "{}", judged.row);
        assert_hit_because(&judged, &format!("node {option} reads {env_file}"));
    }
    // A startup snapshot built by the user: its main function runs, not the script.
    let entry = user.write(
        "entry.js",
        b"require('v8').startupSnapshot.setDeserializeMainFunction(() => setInterval(() => {}, 1000));\n",
        false,
    );
    let blob = user.home.join("snap.blob").display().to_string();
    let built = user
        .command("/usr/bin/node")
        .args(["--snapshot-blob", &blob, "--build-snapshot"])
        .arg(&entry)
        .current_dir(&user.home)
        .output()
        .expect("build snapshot");
    assert!(built.status.success(), "{built:?}");
    let child = exec_holding_udp(
        &user,
        &["/usr/bin/node", "--snapshot-blob", &blob, main],
        &[],
        "",
    );
    assert_hit_because(
        &judge(child.pid),
        &format!("node --snapshot-blob loads {blob}"),
    );
    // Benign twin: an env file of root's that does not exist (nothing is read).
    let child = exec_holding_udp(
        &user,
        &[
            "/usr/bin/node",
            "--env-file-if-exists=/etc/an1256-none.env",
            "-r",
            &hook.display().to_string(),
            main,
        ],
        &[],
        "",
    );
    let judged = judge(child.pid);
    assert!(
        !judged.text("error").contains("--env-file"),
        "{}",
        judged.row
    );
}

#[test]
fn openssl_and_gconv_variables_untrust_a_package_binary() {
    if !root_or_skip("openssl_and_gconv_variables_untrust_a_package_binary") {
        return;
    }
    let user = attacker("rt-ossl-env");
    // The config names a provider module to load into the process.
    let config = user.write(
        "openssl.cnf",
        b"openssl_conf = init\n[init]\nproviders = prov\n[prov]\ndefault = d\nx = x\n\
          [d]\nactivate = 1\n[x]\nmodule = ./x.so\nactivate = 0\n",
        false,
    );
    let config = config.display().to_string();
    let modules = user.home.join("mods");
    std::fs::create_dir_all(&modules).expect("mods");
    let modules = modules.display().to_string();
    // `openssl enc` reads its input from stdin (it waits there).
    let openssl = ["/usr/bin/openssl", "enc", "-base64"];
    let child = exec_holding_udp(&user, &openssl, &[("OPENSSL_CONF", &config)], "");
    assert_hit_because(&judge(child.pid), &format!("OPENSSL_CONF reads {config}"));
    for key in ["OPENSSL_MODULES", "OPENSSL_ENGINES"] {
        let child = exec_holding_udp(&user, &openssl, &[(key, &modules)], "");
        assert_hit_because(&judge(child.pid), &format!("{key} puts {modules}"));
    }
    // iconv loads gconv modules from GCONV_PATH (it waits on stdin).
    let iconv = ["/usr/bin/iconv", "-f", "UTF-8", "-t", "ISO-8859-1"];
    let child = exec_holding_udp(&user, &iconv, &[("GCONV_PATH", &modules)], "");
    assert_hit_because(&judge(child.pid), &format!("GCONV_PATH puts {modules}"));
    // Benign twins: root's config, no gconv path.
    let child = exec_holding_udp(
        &user,
        &openssl,
        &[("OPENSSL_CONF", "/etc/ssl/openssl.cnf")],
        "",
    );
    let judged = judge(child.pid);
    assert!(judged.trusted() && !judged.hit, "{}", judged.row);
    let child = exec_holding_udp(&user, &iconv, &[], "");
    let judged = judge(child.pid);
    assert!(judged.trusted() && !judged.hit, "{}", judged.row);
}

#[test]
fn ssh_provider_libraries_of_the_user_untrust_ssh() {
    if !root_or_skip("ssh_provider_libraries_of_the_user_untrust_ssh") {
        return;
    }
    if !Path::new("/usr/bin/ssh").exists() {
        skip("ssh_provider_libraries_of_the_user_untrust_ssh", "no ssh");
        return;
    }
    let user = attacker("rt-ssh-p11");
    let library = user.write("p11.so", b"\x7fELF", false);
    let library = library.display().to_string();
    // The proxy command never answers: ssh waits for the server's banner, on the
    // loopback only (nothing leaves the host).
    let base = [
        "/usr/bin/ssh",
        "-F",
        "none",
        "-o",
        "ProxyCommand=sleep 120",
        "-o",
        "BatchMode=yes",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter()
            .chain(extra)
            .chain(&["a1256-test@127.0.0.1"])
            .map(|s| s.to_string())
            .collect()
    };
    let cases: [(Vec<String>, &str); 5] = [
        (with(&["-I", &library]), "ssh -I loads"),
        (with(&[&format!("-I{library}")]), "ssh -I loads"),
        (
            with(&[&format!("-oPKCS11Provider={library}")]),
            "ssh -o PKCS11Provider loads",
        ),
        (
            with(&["-o", &format!("pkcs11provider {library}")]),
            "ssh -o PKCS11Provider loads",
        ),
        (
            with(&["-o", &format!("SecurityKeyProvider={library}")]),
            "ssh -o SecurityKeyProvider loads",
        ),
    ];
    // ssh closes every fd above 2 at start: the socket is its stdout.
    let ssh = |argv: &[&str]| launch_holding_udp(&user, "", argv[0], argv, &[], "", true);
    for (argv, why) in &cases {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let child = ssh(&argv);
        let judged = judge(child.pid);
        assert_eq!(
            judged.text("subject_path"),
            "/usr/bin/ssh",
            "{}",
            judged.row
        );
        assert_hit_because(&judged, &format!("{why} {library}"));
    }
    // Benign twins: no provider, and the built-in security-key support.
    for argv in [with(&[]), with(&["-o", "SecurityKeyProvider=internal"])] {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let child = ssh(&argv);
        let judged = judge(child.pid);
        assert!(judged.trusted() && !judged.hit, "{}", judged.row);
    }
    // The same keyword in the user's ~/.ssh/config, for this destination.
    let config = user.write(
        ".ssh/config",
        b"Host elsewhere\n  PKCS11Provider none\nHost 127.0.0.1\n  PKCS11Provider ~/p11.so\n",
        false,
    );
    let plain: Vec<&str> = base
        .iter()
        .copied()
        .filter(|a| !matches!(*a, "-F" | "none"))
        .chain(["a1256-test@127.0.0.1"])
        .collect();
    let child = ssh(&plain);
    assert_hit_because(
        &judge(child.pid),
        &format!("ssh PKCS11Provider in {} loads {library}", config.display()),
    );
    // Benign twin: a block for another host only.
    user.write(
        ".ssh/config",
        b"Host elsewhere\n  PKCS11Provider ~/p11.so\n",
        false,
    );
    let child = ssh(&plain);
    let judged = judge(child.pid);
    assert!(judged.trusted() && !judged.hit, "{}", judged.row);
}

/// ssh reads `~/.ssh/config` at start and loads the provider it names later:
/// the user then removes the file, or makes it unreadable, and the scan finds
/// nothing to judge. Neither proves the file said nothing. Twin: `-F none`.
#[test]
fn an_ssh_config_removed_or_unreadable_after_start_untrusts_ssh() {
    if !root_or_skip("an_ssh_config_removed_or_unreadable_after_start_untrusts_ssh") {
        return;
    }
    if !Path::new("/usr/bin/ssh").exists() {
        skip(
            "an_ssh_config_removed_or_unreadable_after_start_untrusts_ssh",
            "no ssh",
        );
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let user = attacker("rt-ssh-gone");
    user.write("p11.so", b"\x7fELF", false);
    let config = user.write(
        ".ssh/config",
        b"Host 127.0.0.1\n  PKCS11Provider ~/p11.so\n",
        false,
    );
    let moved = user.home.join(".ssh/moved");
    // The proxy command never answers: ssh waits on the loopback only.
    let argv = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut argv = vec![
            "/usr/bin/ssh",
            "-o",
            "ProxyCommand=sleep 120",
            "-o",
            "BatchMode=yes",
        ];
        argv.extend_from_slice(extra);
        argv.push("a1256-test@127.0.0.1");
        argv
    };
    // ssh closes every fd above 2 at start: the socket is its stdout.
    let ssh = |argv: &[&str]| launch_holding_udp(&user, "", argv[0], argv, &[], "", true);
    let child = ssh(&argv(&[]));
    std::fs::rename(&config, &moved).expect("remove the config");
    assert_hit_because(&judge(child.pid), "ssh may have read it at start");
    std::fs::rename(&moved, &config).expect("restore the config");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    assert_hit_because(&judge(child.pid), "cannot be read as the process's user");
    // Benign twin: no user config read at all.
    let child = ssh(&argv(&["-F", "none"]));
    let judged = judge(child.pid);
    assert!(judged.trusted() && !judged.hit, "{}", judged.row);
}

/// Twin of the removed ssh config: a `~/.ssh` that has held no config since
/// before ssh started (its ctime older than the start): trusted without `-F`.
#[test]
fn an_ssh_config_missing_since_before_start_leaves_ssh_trusted() {
    let test = "an_ssh_config_missing_since_before_start_leaves_ssh_trusted";
    if !root_or_skip(test) {
        return;
    }
    if !Path::new("/usr/bin/ssh").exists() {
        skip(test, "no ssh");
        return;
    }
    let user = attacker("rt-ssh-never");
    user.write(".ssh/known_hosts", b"", false);
    std::thread::sleep(Duration::from_millis(100));
    let argv = [
        "/usr/bin/ssh",
        "-o",
        "ProxyCommand=sleep 120",
        "-o",
        "BatchMode=yes",
        "a1256-test@127.0.0.1",
    ];
    let child = launch_holding_udp(&user, "", argv[0], &argv, &[], "", true);
    let judged = judge(child.pid);
    assert!(judged.trusted() && !judged.hit, "{}", judged.row);
    // A config made and removed after the start: the directory changed.
    let config = user.write(".ssh/config", b"Host *\n", false);
    std::fs::remove_file(&config).expect("remove the config");
    assert_hit_because(&judge(child.pid), "ssh may have read it at start");
}

#[test]
fn java_running_the_users_code_is_untrusted() {
    if !root_or_skip("java_running_the_users_code_is_untrusted") {
        return;
    }
    let java = "/usr/lib/jvm/java-17-openjdk-amd64/bin/java";
    if !Path::new(java).exists() || !Path::new("/usr/bin/javac").exists() {
        skip("java_running_the_users_code_is_untrusted", "no JDK 17");
        return;
    }
    let user = attacker("rt-java");
    // The user's program waits on stdin: it is running when judged.
    let source = user.write(
        "B.java",
        b"public class B { public static void main(String[] a) throws Exception { System.in.read(); } }\n",
        false,
    );
    let source = source.display().to_string();
    let classes = user.home.join("c").display().to_string();
    let jar = user.home.join("b.jar").display().to_string();
    let built = user
        .command("/usr/bin/javac")
        .args(["-d", &classes, &source])
        .output()
        .expect("javac");
    assert!(built.status.success(), "{built:?}");
    let built = user
        .command("/usr/bin/jar")
        .args(["cfe", &jar, "B", "-C", &classes, "B.class"])
        .output()
        .expect("jar");
    assert!(built.status.success(), "{built:?}");
    let cases: [(&[&str], String); 3] = [
        (
            &[java, &source],
            format!("java (source file) loads {source}"),
        ),
        (&[java, "-jar", &jar], format!("java -jar loads {jar}")),
        (
            &[java, "-cp", &classes, "B"],
            format!("java class path puts {classes} on the search path"),
        ),
    ];
    for (argv, why) in &cases {
        let child = exec_holding_udp_in(&user, "/", argv, &[], "");
        let judged = judge(child.pid);
        assert_eq!(judged.text("subject_path"), java, "{}", judged.row);
        assert_hit_because(&judged, why);
    }
    // jshell runs the snippets it reads.
    let jshell = "/usr/lib/jvm/java-17-openjdk-amd64/bin/jshell";
    if Path::new(jshell).exists() {
        let child = exec_holding_udp_in(&user, "/", &[jshell, "-q"], &[], "");
        assert_hit_because(&judge(child.pid), "jshell runs the Java code");
    }
    // Benign twin: a package jar's class, the VM paused at start (it waits for a
    // file in the cwd to go).
    let library = "/usr/share/java/commons-io-2.11.0.jar";
    if Path::new(library).exists() {
        let home = user.home.display().to_string();
        let child = exec_holding_udp_in(
            &user,
            &home,
            &[
                java,
                "-XX:+UnlockDiagnosticVMOptions",
                "-XX:+PauseAtStartup",
                "-cp",
                library,
                "org.apache.commons.io.IOUtils",
            ],
            &[],
            "",
        );
        let judged = judge(child.pid);
        assert!(judged.trusted() && !judged.hit, "{}", judged.row);
    }
}

/// The JVM runs the user's native code or classes through options the launcher
/// passes on: an agent named by a path (`-agentlib:./x` is `lib./x.so` from the
/// cwd), a JNI search path, a patched JDK module, an options file. Twin: the
/// package jar's class with none of them stays trusted.
#[test]
fn java_agents_library_paths_patches_and_option_files_untrust_java() {
    if !root_or_skip("java_agents_library_paths_patches_and_option_files_untrust_java") {
        return;
    }
    let java = "/usr/lib/jvm/java-17-openjdk-amd64/bin/java";
    let library = "/usr/share/java/commons-io-2.11.0.jar";
    if !Path::new(java).exists() || !Path::new(library).exists() {
        skip(
            "java_agents_library_paths_patches_and_option_files_untrust_java",
            "no JDK 17 or commons-io",
        );
        return;
    }
    let user = attacker("rt-java-opts");
    let home = user.home.display().to_string();
    // The VM pauses at start until a file in the cwd goes: it is running when judged.
    let paused = |options: &[&str]| -> ReadyChild {
        let mut argv = vec![java];
        argv.extend_from_slice(options);
        argv.extend([
            "-XX:+UnlockDiagnosticVMOptions",
            "-XX:+PauseAtStartup",
            "-cp",
            library,
            "org.apache.commons.io.IOUtils",
        ]);
        exec_holding_udp_in(&user, &home, &argv, &[], "")
    };
    std::fs::create_dir_all(user.home.join("p")).expect("patch dir");
    user.write("opts", b"-Dx=y\n", false);
    let patch = format!("java.base={home}/p");
    let library_path = format!("-Djava.library.path={home}");
    let options_file = format!("-XX:VMOptionsFile={home}/opts");
    let cases: [(&[&str], String); 3] = [
        (
            &["--patch-module", &patch],
            format!("java --patch-module puts {home}/p on the search path"),
        ),
        (
            &[&library_path],
            format!("java -Djava.library.path puts {home} on the search path"),
        ),
        (
            &[&options_file],
            format!("java -XX:VMOptionsFile reads {home}/opts"),
        ),
    ];
    for (options, why) in &cases {
        let child = paused(options);
        let judged = judge(child.pid);
        assert_eq!(judged.text("subject_path"), java, "{}", judged.row);
        assert_hit_because(&judged, why);
    }
    // A native agent from the cwd, which waits on stdin once loaded.
    let agent_dir = user.home.join("lib.");
    std::fs::create_dir_all(&agent_dir).expect("agent dir");
    let source = agent_dir.join("x.c");
    std::fs::write(
        &source,
        "#include <unistd.h>\nint Agent_OnLoad(void *vm, char *o, void *r) { char c; read(0, &c, 1); return 0; }\n",
    )
    .expect("agent source");
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(agent_dir.join("x.so"))
        .arg(&source)
        .status();
    if built.is_ok_and(|s| s.success()) {
        let child = exec_holding_udp_in(
            &user,
            &home,
            &[
                java,
                "-agentlib:./x",
                "-cp",
                library,
                "org.apache.commons.io.IOUtils",
            ],
            &[],
            "",
        );
        assert_hit_because(
            &judge(child.pid),
            &format!("java -agentlib loads {home}/lib./x.so"),
        );
    } else {
        skip("java -agentlib case", "no C compiler");
    }
    let child = paused(&[]);
    let judged = judge(child.pid);
    assert!(judged.trusted() && !judged.hit, "{}", judged.row);
}

/// Every JDK tool is a JVM: `JAVA_TOOL_OPTIONS=-javaagent:~/agent.jar` runs the
/// user's Java code in `jar` (the agent opens its own UDP socket), with no file
/// mapped that a package does not own. Twin: `java` running a package jar's
/// class stays trusted (`java_agents_library_paths_patches_and_option_files_untrust_java`).
#[test]
fn a_jdk_tool_running_the_users_agent_is_untrusted() {
    if !root_or_skip("a_jdk_tool_running_the_users_agent_is_untrusted") {
        return;
    }
    let jdk = "/usr/lib/jvm/java-17-openjdk-amd64/bin";
    if !Path::new(&format!("{jdk}/jar")).exists() || !Path::new(&format!("{jdk}/javac")).exists() {
        skip(
            "a_jdk_tool_running_the_users_agent_is_untrusted",
            "no JDK 17",
        );
        return;
    }
    let user = attacker("rt-jdk-tool");
    let source = user.write(
        "Agent.java",
        b"public class Agent { static Object held;\n\
public static void premain(String a) throws Exception {\n\
java.net.DatagramSocket s = new java.net.DatagramSocket();\n\
s.connect(java.net.InetAddress.getByName(\"192.0.2.10\"), 53); held = s; } }\n",
        false,
    );
    user.write("manifest.txt", b"Premain-Class: Agent\n", false);
    let classes = user.home.join("c").display().to_string();
    let agent = user.home.join("agent.jar").display().to_string();
    let built = user
        .command(format!("{jdk}/javac"))
        .arg("-d")
        .arg(&classes)
        .arg(&source)
        .output()
        .expect("javac");
    assert!(built.status.success(), "{built:?}");
    let built = user
        .command(format!("{jdk}/jar"))
        .args(["cfm", &agent, "manifest.txt", "-C", &classes, "Agent.class"])
        .output()
        .expect("jar");
    assert!(built.status.success(), "{built:?}");
    // `jar t` reads a jar from stdin: it waits there, the agent loaded.
    let tool = format!("{jdk}/jar");
    let options = format!("-javaagent:{agent}");
    let child = exec_holding_udp(&user, &[&tool, "t"], &[("JAVA_TOOL_OPTIONS", &options)], "");
    let judged = judge(child.pid);
    assert_eq!(judged.text("subject_path"), tool, "{}", judged.row);
    assert_hit_because(&judged, "a JDK tool runs in a JVM");
}

// ---- an approved script's hash approves that script only ----

/// The key an approval names must stand for all the code that runs. A root-owned
/// script in a root-only directory, run by the package's python, keeps its hash
/// (`sha256:`): the benign twin. The attacker cannot reuse that approval by
/// giving the script's path to their own `python3.11` (the key pairs both hashes:
/// `script:`), nor by running a copy of it from their home, where they can change
/// the file or add modules beside it after it was read (`tainted:`, a class).
#[test]
fn an_approved_scripts_hash_is_not_reused_by_other_code() {
    if !root_or_skip("an_approved_scripts_hash_is_not_reused_by_other_code") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let user = attacker("fc-reuse");
    std::fs::create_dir_all("/opt").expect("/opt");
    let dir = tempfile::Builder::new()
        .prefix("a1256-approved")
        .tempdir_in("/opt")
        .expect("tempdir in /opt");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let body = b"import time\ntime.sleep(300)\n";
    let script = dir.path().join("ntpcheck.py");
    std::fs::write(&script, body).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let script = script.to_str().expect("utf-8");
    let digest = {
        let out = Command::new("sha256sum")
            .arg(script)
            .output()
            .expect("sha256sum");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    let approved = format!("sha256:{digest}");

    let twin = exec_holding_udp(&user, &["/usr/bin/python3", "-s", script], &[], "");
    let judged = judge(twin.pid);
    assert_eq!(
        judged.text("subject_identity"),
        approved,
        "twin: {:?}",
        judged.row
    );

    let fake = user.unsigned_python_copy("python3.11", "fc-reuse");
    let fake = fake.to_str().expect("utf-8");
    let attack = exec_holding_udp(&user, &[fake, script], &[], "");
    let judged = judge(attack.pid);
    let identity = judged.text("subject_identity");
    assert_ne!(identity, approved);
    assert!(
        identity.contains(&format!("script:{digest}:sha256:")),
        "{identity}"
    );
    assert!(judged.hit && !judged.trusted());

    let copy = user.write("beacon.py", body, false);
    let copy = copy.to_str().expect("utf-8");
    let attack = exec_holding_udp(&user, &["/usr/bin/python3", copy], &[], "");
    let judged = judge(attack.pid);
    assert_eq!(
        judged.text("subject_identity"),
        format!("tainted:{approved}")
    );
    assert!(
        judged
            .text("error")
            .contains("writable by a user other than root"),
        "{:?}",
        judged.row
    );
    assert!(judged.hit);
}

/// A user namespace lets an unprivileged user bind-mount their own file over a
/// root-only script's path, start python on it, and unmount: the path then shows
/// root's file, whose hash an approval names. A process in another user
/// namespace never gets that hash as its key (nor package trust). Twin: the same
/// script run in the host's namespaces keeps `sha256:`.
#[test]
fn a_script_read_through_a_user_namespace_mount_is_not_the_file_at_its_path() {
    if !root_or_skip("a_script_read_through_a_user_namespace_mount_is_not_the_file_at_its_path") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let user = attacker("fc-userns");
    let probe = user
        .command("unshare")
        .args(["-Urm", "true"])
        .status()
        .expect("unshare");
    if !probe.success() {
        return skip("userns", "unprivileged user namespaces are off here");
    }
    let dir = tempfile::Builder::new()
        .prefix("a1256-userns")
        .tempdir_in("/opt")
        .expect("tempdir in /opt");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = dir.path().join("ntp.py");
    std::fs::write(&script, b"import time\ntime.sleep(300)\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let script = script.to_str().expect("utf-8").to_owned();
    let evil = user.write(
        "evil.py",
        b"import os, socket, time\n\
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
s.connect(('192.0.2.10', 53))\n\
print('pid=%d' % os.getpid())\n\
print('ready', flush=True)\n\
time.sleep(300)\n",
        false,
    );
    let mut command = user.command("unshare");
    command.args(["-Urm", "sh", "-c"]).arg(format!(
        "mount --bind {evil} {script} && {{ /usr/bin/python3 {script} & sleep 2; umount {script}; wait; }}",
        evil = evil.display()
    ));
    let child = spawn_ready(command).unwrap_or_else(|e| panic!("userns: {e}"));
    let pid: i32 = child.int("pid") as i32;
    std::thread::sleep(Duration::from_secs(3));
    let judged = judge(pid);
    let identity = judged.text("subject_identity");
    assert!(identity.starts_with("tainted:"), "{}", judged.row);
    assert!(
        judged.text("error").contains("another user namespace"),
        "{}",
        judged.row
    );
    assert!(judged.hit, "{}", judged.row);

    let twin = exec_holding_udp(&user, &["/usr/bin/python3", "-s", &script], &[], "");
    let judged = judge(twin.pid);
    assert!(
        judged.text("subject_identity").starts_with("sha256:"),
        "twin: {}",
        judged.row
    );
}

// ---- a thread with an fd table of its own ----

/// A python thread calls `unshare(CLONE_FILES)` and then opens a UDP socket to
/// 192.0.2.10:53 (`own_table`), or the leader opens it before the thread
/// unshares (the twin: the socket is in both tables). Prints `pid=`, `ready`.
const THREAD_WITH_OWN_FD_TABLE: &str = r#"
import ctypes, os, socket, sys, threading, time
own_table = sys.argv[1] == "own"
libc = ctypes.CDLL(None, use_errno=True)
held = []
if not own_table:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("192.0.2.10", 53))
    held.append(s)
started = threading.Event()
def thread():
    if libc.unshare(0x400) != 0:  # CLONE_FILES
        print("unshare failed", ctypes.get_errno(), flush=True)
        os._exit(1)
    if own_table:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("192.0.2.10", 53))
        held.append(s)
    started.set()
    time.sleep(600)
threading.Thread(target=thread, daemon=True).start()
started.wait()
if own_table:
    # The leader's own table, which /proc/<pid>/fd lists, does not hold it.
    def link(n):
        try:
            return os.readlink(f"/proc/self/fd/{n}")
        except FileNotFoundError:
            return ""
    assert not any(link(n).startswith("socket:") for n in os.listdir("/proc/self/fd"))
print("pid=%d" % os.getpid())
print("ready", flush=True)
time.sleep(600)
"#;

/// Rows of `nonstandard_protocol_sockets` for `pid` to 192.0.2.10, from a full
/// scan (no pid constraint) and from a `pid =` lookup, and whether the DESIGN
/// join makes it a hit.
fn rows_to_test_net(pid: i32) -> (usize, usize, bool) {
    let store = tempfile::tempdir().expect("tempdir");
    let count = |sql: String| {
        let out = an1256(store.path(), &["query", &sql, "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json_lines(&out.stdout)
            .into_iter()
            .filter(|row| row["pid"].as_i64() == Some(i64::from(pid)))
            .count()
    };
    let full = count(
        "SELECT pid, fd FROM nonstandard_protocol_sockets WHERE remote_address = '192.0.2.10'"
            .to_string(),
    );
    let by_pid = count(format!(
        "SELECT pid, fd FROM nonstandard_protocol_sockets \
         WHERE pid = {pid} AND remote_address = '192.0.2.10'"
    ));
    (full, by_pid, judge(pid).hit)
}

#[test]
fn a_socket_held_by_a_thread_with_its_own_fd_table_is_seen() {
    if !root_or_skip("a_socket_held_by_a_thread_with_its_own_fd_table_is_seen") {
        return;
    }
    let user = attacker("fc-own-fd-table");
    let script = user.write("hide.py", THREAD_WITH_OWN_FD_TABLE.as_bytes(), false);
    let start = |mode: &str| {
        let mut command = user.command("/usr/bin/python3");
        command.arg(&script).arg(mode);
        spawn_ready(command).unwrap_or_else(|e| panic!("{mode}: {e:?}"))
    };
    // /proc/<pid>/fd shows the leader's table only: before, neither scan saw it.
    let hidden = start("own");
    let (full, by_pid, hit) = rows_to_test_net(hidden.pid);
    assert_eq!(
        (full, by_pid),
        (1, 1),
        "the thread's socket, once in each scan"
    );
    assert!(hit, "an untrusted script's socket is a hit");
    // The twin: a table the thread copied from the leader lists the same socket
    // twice; it is one row.
    let shared = start("copied");
    assert_eq!(rows_to_test_net(shared.pid).0, 1, "one row, not two");
    assert_eq!(rows_to_test_net(shared.pid).1, 1, "one row, not two");
}

// ---- a socket made before its holder moved to another network namespace ----

/// Connects a UDP socket to 192.0.2.10:53, then (with `move`) enters a user and
/// network namespace of its own: the socket stays in the host's namespace, and
/// its traffic leaves through it. Prints `pid=`, `ready`.
const MOVE_AFTER_CONNECT: &str = r#"
import ctypes, os, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("192.0.2.10", 53))
if sys.argv[1] == "move":
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x10000000 | 0x40000000) != 0:  # CLONE_NEWUSER | CLONE_NEWNET
        print("unshare failed", ctypes.get_errno(), flush=True)
        sys.exit(3)
print("pid=%d" % os.getpid())
print("ready", flush=True)
time.sleep(600)
"#;

/// Red team (F1): sockets were looked up in their holder's current namespace
/// only. A process that moved to an empty one after connecting showed its UDP
/// socket as `unbound`, with no remote (no `remote_address = '192.0.2.10'`
/// match, not a public destination), and its TCP connections vanished. The
/// twin stays where it was: the same row.
#[test]
fn a_socket_made_before_its_holder_changed_namespace_keeps_its_addresses() {
    if !root_or_skip("a_socket_made_before_its_holder_changed_namespace_keeps_its_addresses") {
        return;
    }
    let user = attacker("fc-moved-netns");
    let script = user.write("move.py", MOVE_AFTER_CONNECT.as_bytes(), false);
    let start = |mode: &str| {
        let mut command = user.command("/usr/bin/python3");
        command.arg("-s").arg(&script).arg(mode);
        spawn_ready(command)
    };
    let Ok(moved) = start("move") else {
        return skip(
            "a_socket_made_before_its_holder_changed_namespace_keeps_its_addresses",
            "unprivileged user namespaces are not available",
        );
    };
    let own = std::fs::read_link("/proc/self/ns/net").expect("own netns");
    assert_ne!(
        std::fs::read_link(format!("/proc/{}/ns/net", moved.pid)).expect("its netns"),
        own,
        "it moved"
    );
    let (full, by_pid, hit) = rows_to_test_net(moved.pid);
    assert_eq!(
        (full, by_pid),
        (1, 1),
        "its socket, with its remote, in each scan"
    );
    assert!(hit, "an untrusted script's socket is a hit");
    let stayed = start("stay").expect("twin");
    let (full, by_pid, _) = rows_to_test_net(stayed.pid);
    assert_eq!((full, by_pid), (1, 1), "the twin's socket");
}
