//! The 1 s watch of untrusted processes on the real host: the watch and the
//! sampler run as in extension mode (threads over the native backend), real
//! processes started after them open real ICMP sockets for 2 s, and the pack's
//! `an1256_hits_recent` runs through the embedded SQLite engine. Root only (the
//! proc connector and the attacker users need it).

mod common;

use an1256::baseline::{sampler, watch, Baseline};
use an1256::cli::packs::{hit_query, pack_queries};
use an1256::platform::{self, HostConfig};
use an1256::settings::Settings;
use an1256::sql::Engine;
use common::{attacker, copy_executable, is_root, skip, spawn_ready};
use rusqlite::types::Value as SqlValue;
use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Row = HashMap<String, SqlValue>;

/// A baseline over the native host with its store in `dir`; the sampler's
/// interval is an hour, so after its first pass (before any test process starts)
/// only the watch can record what the test processes do.
fn baseline_in(dir: &Path, max_watched: usize) -> Arc<Baseline> {
    let mut settings = Settings::with_db(dir.join("store/an1256.db"));
    settings.policy_path = dir.join("policy.json");
    settings.learning_secs = 0;
    settings.sample_interval = Duration::from_secs(3600);
    settings.watch_max_processes = max_watched;
    let host: Arc<dyn platform::Host> = Arc::from(platform::native(HostConfig::default()));
    Arc::new(Baseline::new(settings, host))
}

fn engine(baseline: &Arc<Baseline>) -> Engine {
    Engine::new(an1256::all_tables(
        baseline.host().clone(),
        baseline.clone(),
    ))
    .expect("engine")
}

fn run(engine: &Engine, sql: &str) -> Vec<Row> {
    let (columns, rows) = engine
        .query(sql)
        .unwrap_or_else(|e| panic!("query failed: {e}\n{sql}"));
    rows.into_iter()
        .map(|r| columns.iter().cloned().zip(r).collect())
        .collect()
}

fn int(row: &Row, key: &str) -> i64 {
    match row.get(key) {
        Some(SqlValue::Integer(i)) => *i,
        other => panic!("{key} is not an integer: {other:?}"),
    }
}

fn text(row: &Row, key: &str) -> String {
    match row.get(key) {
        Some(SqlValue::Text(t)) => t.clone(),
        other => panic!("{key} is not text: {other:?}"),
    }
}

fn info(engine: &Engine) -> Row {
    run(engine, "SELECT * FROM an1256_info").remove(0)
}

/// Starts the sampler and the watch as extension mode does, and waits until the
/// watch has judged the processes already running (its first rescan).
fn start_watching(
    baseline: &Arc<Baseline>,
    engine: &Engine,
) -> (sampler::SamplerHandle, watch::WatchHandle) {
    start_watching_with(baseline, engine, "proc_connector")
}

/// `start_watching`, checking the event source the watch chose.
fn start_watching_with(
    baseline: &Arc<Baseline>,
    engine: &Engine,
    source: &str,
) -> (sampler::SamplerHandle, watch::WatchHandle) {
    let sampler = sampler::start(baseline.clone()).expect("sampler");
    let watch = watch::start(baseline.clone()).expect("watch");
    let started = Instant::now();
    loop {
        let row = info(engine);
        if int(&row, "watch_rescans") >= 1 && int(&row, "watch_pending") == 0 {
            assert_eq!(text(&row, "watch_source"), source, "{row:?}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the watch never finished its first rescan: {row:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (sampler, watch)
}

/// Opens an ICMP socket (a ping socket, or UDP where ping sockets are not allowed),
/// prints `ready`, sends for 2 s, closes it and exits.
const BURST: &str = r#"
import socket, sys, time
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    kind, payload = "icmp", b"\x08\x00\x00\x00\x00\x00\x00\x01"
except PermissionError:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    kind, payload = "udp", b"beacon"
s.connect(("127.0.0.1", 9))
print("kind=" + kind)
print("ready", flush=True)
end = time.monotonic() + 2
while time.monotonic() < end:
    try:
        s.send(payload)
    except OSError:
        pass
    time.sleep(0.2)
s.close()
"#;

/// The watch's observations of one pid in `an1256_hits_recent`.
fn recent_hits_of(engine: &Engine, pid: u32) -> Vec<Row> {
    let queries = pack_queries().expect("pack");
    run(engine, &queries["an1256_hits_recent"].query)
        .into_iter()
        .filter(|r| int(r, "pid") == i64::from(pid))
        .collect()
}

/// Issue 14's target: a socket that lives 2 s, held by an untrusted script started
/// after the extension, appears in `an1256_hits_recent`. Its benign twin, a
/// package-owned `ping` sending ICMP for 2 s at the same time, is not a hit.
#[test]
fn a_two_second_icmp_burst_of_an_untrusted_script_is_caught_and_ping_is_not() {
    if !is_root() {
        return skip("watch burst", "needs root (proc connector, attacker user)");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let baseline = baseline_in(dir.path(), watch::DEFAULT_MAX_WATCHED);
    let engine = engine(&baseline);
    let (_sampler, _watch) = start_watching(&baseline, &engine);
    let user = attacker("watch-burst");
    let script = user.write("beacon.py", BURST.as_bytes(), false);
    let ping = common::which("ping");

    // Both start after the watch; both hold an ICMP socket for about 2 s.
    // In a clean environment: cargo's LD_LIBRARY_PATH would rightly taint it.
    let mut twin = ping.as_ref().map(|ping| {
        user.command(ping)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &user.home)
            .args(["-n", "-c", "5", "-i", "0.4", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ping")
    });
    let mut command = user.command("/usr/bin/python3");
    command.arg(&script);
    let mut beacon = spawn_ready(command).expect("beacon script");
    let kind = beacon.value("kind").unwrap_or_default().to_owned();
    let pid = u32::try_from(beacon.pid).expect("pid");
    // The twin, while it runs, is what the watch judged it: trusted.
    if let Some(child) = twin.as_ref() {
        let sql = format!(
            "SELECT subject_trusted, trust, error FROM process_code_signature WHERE pid = {}",
            child.id()
        );
        for row in run(&engine, &sql) {
            assert_eq!(int(&row, "subject_trusted"), 1, "ping: {row:?}");
        }
    }
    // The burst is over after 2 s; give the script a moment to close and exit.
    std::thread::sleep(Duration::from_millis(3000));
    let live = run(&engine, &hit_query().expect("hit query"));
    assert!(
        live.iter().all(|r| int(r, "pid") != i64::from(pid)),
        "the socket should be closed by now: {live:?}"
    );

    let rows = recent_hits_of(&engine, pid);
    assert!(
        !rows.is_empty(),
        "the 2 s burst of pid {pid} was not caught; watch: {:?}; observations: {:?}",
        info(&engine),
        run(
            &engine,
            "SELECT pid, identity, protocol_name FROM an1256_observations"
        )
    );
    // One row per (identity, protocol, port, scope): the script's.
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(text(row, "protocol_name"), kind, "{row:?}");
    assert_eq!(text(row, "subject_kind"), "script", "{row:?}");
    assert_eq!(
        text(row, "subject_path"),
        script.display().to_string(),
        "{row:?}"
    );
    assert_eq!(text(row, "path"), "/usr/bin/python3.11", "{row:?}");
    assert!(int(row, "severity") >= 30, "{row:?}");
    let status = info(&engine);
    assert!(int(&status, "watch_observations") >= 1, "{status:?}");
    assert!(int(&status, "watch_judged") >= 2, "{status:?}");
    beacon.kill();

    match (ping, twin.as_mut()) {
        (Some(_), Some(child)) => {
            let ping_pid = child.id();
            let output = child.wait().expect("wait for ping");
            assert!(output.success(), "ping failed: {output:?}");
            let rows = recent_hits_of(&engine, ping_pid);
            assert!(
                rows.is_empty(),
                "a package-owned ping is not a hit: {rows:?}"
            );
            let observed = run(
                &engine,
                "SELECT pid, identity FROM an1256_observations WHERE subject_trusted = 0",
            );
            assert!(
                observed
                    .iter()
                    .all(|r| int(r, "pid") != i64::from(ping_pid)),
                "{observed:?}"
            );
        }
        _ => skip("watch burst twin", "ping (iputils-ping) is not installed"),
    }
}

/// 2,000 short-lived untrusted execs and more long-lived untrusted processes than
/// the watched set holds: the set stays at its bound, the rest is counted, and the
/// hit queries still answer.
#[test]
fn a_flood_of_execs_leaves_the_watch_bounded_and_the_hit_query_answering() {
    if !is_root() {
        return skip("watch flood", "needs root (proc connector, attacker user)");
    }
    const MAX_WATCHED: usize = 8;
    const SLEEPERS: usize = 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let baseline = baseline_in(dir.path(), MAX_WATCHED);
    let engine = engine(&baseline);
    let (_sampler, _watch) = start_watching(&baseline, &engine);
    let user = attacker("watch-flood");
    // Unsigned copies: every exec of them is an untrusted process.
    for (from, to) in [("/usr/bin/sleep", "sleeper"), ("/usr/bin/true", "blip")] {
        let copy = user.home.join(to);
        copy_executable(from, &copy);
        std::os::unix::fs::chown(&copy, Some(user.uid), Some(user.gid)).expect("chown");
    }
    let mut sleepers: Vec<std::process::Child> = (0..SLEEPERS)
        .map(|_| {
            user.command(user.home.join("sleeper"))
                .arg("120")
                .spawn()
                .expect("spawn sleeper")
        })
        .collect();
    let started = Instant::now();
    let flood = user
        .command("/bin/sh")
        .arg("-c")
        .arg("i=0; while [ $i -lt 2000 ]; do ./blip; i=$((i+1)); done")
        .status()
        .expect("run the flood");
    assert!(flood.success(), "{flood:?}");
    eprintln!("2,000 execs in {:?}", started.elapsed());
    // Two ticks for the watch to catch up.
    std::thread::sleep(Duration::from_secs(3));
    let status = info(&engine);
    eprintln!("watch after the flood: {status:?}");
    assert!(
        int(&status, "watch_processes") <= MAX_WATCHED as i64,
        "{status:?}"
    );
    assert!(
        int(&status, "watch_overflow") >= (SLEEPERS - MAX_WATCHED) as i64,
        "{status:?}"
    );
    assert!(int(&status, "watch_pending") <= 4096, "{status:?}");
    assert!(
        int(&status, "watch_judged") >= SLEEPERS as i64,
        "{status:?}"
    );

    let started = Instant::now();
    let hits = engine.query(&hit_query().expect("hit query"));
    assert!(hits.is_ok(), "{hits:?}");
    let queries = pack_queries().expect("pack");
    let recent = engine.query(&queries["an1256_hits_recent"].query);
    assert!(recent.is_ok(), "{recent:?}");
    eprintln!("hit queries answered in {:?}", started.elapsed());
    for sleeper in &mut sleepers {
        let _ = sleeper.kill();
        let _ = sleeper.wait();
    }
    // Other untrusted processes of this host (this test binary among them) may
    // hold watched slots too: the bound holds whatever they are.
    let status = info(&engine);
    assert!(
        int(&status, "watch_processes") <= MAX_WATCHED as i64,
        "{status:?}"
    );
}

/// Spawns threads that exit at once, in a loop, from three processes (a thread
/// flood: proc connector fork and exit events of threads).
const THREAD_FLOOD: &str = r#"
import os, threading, time
for _ in range(2):
    if os.fork() == 0:
        break
os.write(1, b"ready\n")  # one write: the three processes' lines never mix
end = time.monotonic() + 120
def nothing():
    pass
while time.monotonic() < end:
    t = threading.Thread(target=nothing)
    t.start()
    t.join()
"#;

/// Red-team finding 10: an attacker floods the proc connector with thread
/// events (creation and exit of threads). The watch must still see an untrusted
/// UDP holder that appears meanwhile, and its CPU (the thread's kernel CPU
/// clock) stays bounded. The flooding process, which holds no socket, is not observed.
#[test]
fn a_thread_flood_neither_blinds_the_watch_nor_burns_its_cpu() {
    if !is_root() {
        return skip(
            "watch thread flood",
            "needs root (proc connector, attacker user)",
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let baseline = baseline_in(dir.path(), watch::DEFAULT_MAX_WATCHED);
    let engine = engine(&baseline);
    let (_sampler, _watch) = start_watching(&baseline, &engine);
    let user = attacker("watch-threads");
    let holder_binary = user.unsigned_python_copy("holder", "watch-threads");
    let mut flood_command = user.command("/usr/bin/python3");
    flood_command.args(["-c", THREAD_FLOOD]);
    let flood = spawn_ready(flood_command).expect("thread flood");
    // The kernel's CPU clock of this watch's own thread (other tests of this
    // file run watch threads of the same name at the same time).
    let watch_cpu = |engine: &Engine| int(&info(engine), "watch_cpu_ms") as f64 / 1000.0;
    let cpu_before = watch_cpu(&engine);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let holder = user.udp_holder(&holder_binary, 9);
    let holder_pid = i64::from(holder.pid);
    let observed = loop {
        let rows = run(
            &engine,
            "SELECT pid, protocol_name FROM an1256_observations WHERE subject_trusted = 0",
        );
        if rows.iter().any(|r| int(r, "pid") == holder_pid) {
            break Some(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(40) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // Let the flood go on for the rest of a fixed window.
    let window = Duration::from_secs(8);
    if let Some(left) = window.checked_sub(started.elapsed()) {
        std::thread::sleep(left);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = watch_cpu(&engine) - cpu_before;
    let status = info(&engine);
    eprintln!(
        "thread flood: holder observed after {observed:?}; watch CPU {cpu:.2} s over {elapsed:.1} s \
         ({:.1}%); {status:?}",
        100.0 * cpu / elapsed
    );
    let flooder_rows = run(
        &engine,
        &format!(
            "SELECT pid FROM an1256_observations WHERE pid = {}",
            flood.pid
        ),
    );
    drop(flood);
    drop(holder);
    assert!(
        observed.is_some(),
        "the UDP holder {holder_pid} was not observed during the thread flood: {status:?}"
    );
    assert!(flooder_rows.is_empty(), "{flooder_rows:?}");
    // Generous: the watch works at most half of each second by design, and
    // the thread events are filtered in the kernel.
    assert!(
        cpu / elapsed < 0.15,
        "the watch spent {cpu:.2} s of CPU in {elapsed:.1} s of thread flood"
    );
}

/// Red-team finding 2: when the watch polls (no exec events: here forced with
/// `watch_events: false`; the same listing runs after lost events), an exec
/// that keeps the executable (`bash -c '…; exec bash script.sh'`) is an exec
/// all the same: the script is judged and its UDP socket recorded under the
/// script, not under the verdict of the `bash -c` image it replaced. Its
/// benign twin, the same shape exec'ing a package-owned `ping`, is not recorded.
#[test]
fn a_polling_watch_judges_again_an_exec_that_keeps_the_executable() {
    if !is_root() {
        return skip("watch polling exec", "needs root (attacker user)");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = Settings::with_db(dir.path().join("store/an1256.db"));
    settings.policy_path = dir.path().join("policy.json");
    settings.learning_secs = 0;
    settings.sample_interval = Duration::from_secs(3600);
    settings.watch_events = false;
    let host: Arc<dyn platform::Host> = Arc::from(platform::native(HostConfig::default()));
    let baseline = Arc::new(Baseline::new(settings, host));
    let engine = engine(&baseline);
    let (_sampler, _watch) = start_watching_with(&baseline, &engine, "polling");
    let user = attacker("watch-poll-exec");
    let script = user.write(
        "script.sh",
        b"exec 3<>/dev/udp/127.0.0.1/9\n\
          i=0; while [ $i -lt 40 ]; do echo beacon >&3 2>/dev/null; sleep 0.2; i=$((i+1)); done\n",
        false,
    );
    // Long enough as `bash -c` for a listing or two to judge that image first.
    let mut attack = user.command("/bin/bash");
    attack.args(["-c", "sleep 2.5; exec /bin/bash script.sh"]);
    let mut attack = attack.spawn().expect("bash -c");
    let ping = common::which("ping");
    let mut twin = ping.as_ref().map(|ping| {
        let mut twin = user.command("/bin/bash");
        twin.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &user.home)
            .args(["-c"])
            .arg(format!(
                "sleep 2.5; exec {} -n -c 12 -i 0.3 127.0.0.1 >/dev/null",
                ping.display()
            ));
        twin.spawn().expect("twin")
    });
    let pid = i64::from(attack.id());
    let started = Instant::now();
    let rows = loop {
        let rows: Vec<Row> = run(
            &engine,
            "SELECT pid, path, protocol_name, identity FROM an1256_observations",
        )
        .into_iter()
        .filter(|r| int(r, "pid") == pid && text(r, "path") == script.display().to_string())
        .collect();
        if !rows.is_empty() || started.elapsed() > Duration::from_secs(9) {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let all = run(
        &engine,
        "SELECT pid, path, protocol_name, identity FROM an1256_observations",
    );
    let _ = attack.kill();
    let _ = attack.wait();
    assert!(
        !rows.is_empty(),
        "the UDP socket of {} (pid {pid}) was not recorded under the script: {all:?}; {:?}",
        script.display(),
        info(&engine)
    );
    assert_eq!(text(&rows[0], "protocol_name"), "udp", "{rows:?}");
    match (ping, twin.as_mut()) {
        (Some(_), Some(child)) => {
            let twin_pid = i64::from(child.id());
            let status = child.wait().expect("wait for ping");
            assert!(status.success(), "ping failed: {status:?}");
            let observed = run(
                &engine,
                "SELECT pid, identity, protocol_name FROM an1256_observations",
            );
            assert!(
                observed
                    .iter()
                    .all(|r| int(r, "pid") != twin_pid || text(r, "protocol_name") != "icmp"),
                "the package-owned ping's socket was recorded: {observed:?}"
            );
        }
        _ => skip(
            "watch polling exec twin",
            "ping (iputils-ping) is not installed",
        ),
    }
}
