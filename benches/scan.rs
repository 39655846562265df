//! `cargo bench`: in-process figures on a busy host (starts bench/fixture.py):
//! full socket scan, `pid =` lookups, process_code_signature cold and warm, the hit
//! query through the embedded engine, and `ss -uapn` timed in the same run for a
//! ratio, then paired CPU ratios of the full scan against `ss -uapn`/`ss -tapn` on
//! the standard and TCP-heavy fixtures. Prints medians; asserts nothing about
//! time (figures go in the README).

use an1256::platform::{native, HostConfig};
use an1256::tables::QueryContext;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times.get(times.len() / 2).copied().unwrap_or(f64::NAN)
}

/// CPU time (user + system) this process has used, all threads, in ms.
fn own_cpu_ms() -> f64 {
    // SAFETY: getrusage fills a plain struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}

/// CPU time (user + system) of one run of `program args`, in ms (wait4).
fn command_cpu_ms(program: &str, args: &[&str]) -> f64 {
    let Ok(mut child) = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return f64::NAN;
    };
    let Ok(pid) = i32::try_from(child.id()) else {
        return f64::NAN;
    };
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 on our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointers; the child is ours and not yet reaped.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if reaped != pid {
        let _ = child.wait();
        return f64::NAN;
    }
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}

/// Paired CPU ratios, in process as the extension runs it: per round one full
/// scan (this process's CPU, all threads) against one `ss -uapn` and one
/// `ss -tapn` (their CPU); the median of per-round ratios.
fn paired_full_scan(profile: &str, rounds: usize, sockets: &Arc<dyn an1256::tables::TableDef>) {
    let all = QueryContext::new();
    let mut scan = Vec::new();
    let (mut udp, mut tcp) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let before = own_cpu_ms();
        let _ = sockets.generate(&all);
        let ours = own_cpu_ms() - before;
        scan.push(ours);
        udp.push(ours / command_cpu_ms("ss", &["-uapn"]));
        tcp.push(ours / command_cpu_ms("ss", &["-tapn"]));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    println!(
        "{profile}: full scan in process {:6.2} ms CPU; paired vs ss -uapn {:.2}, vs ss -tapn {:.2} (median of {rounds})",
        median(scan),
        median(udp),
        median(tcp)
    );
}

fn main() {
    let mut fixture = match Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/bench/fixture.py"))
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench: cannot start bench/fixture.py ({e}); is python3 installed?");
            return;
        }
    };
    let mut line = String::new();
    if let Some(out) = fixture.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let pids: Vec<i64> = line
        .trim()
        .trim_start_matches("ready ")
        .split(',')
        .filter_map(|p| p.parse().ok())
        .collect();
    let Some(&one) = pids.first() else {
        eprintln!("bench: fixture did not start");
        stop(&mut fixture);
        return;
    };

    // As the extension runs: per-process facts kept across calls.
    let host: Arc<dyn an1256::platform::Host> = Arc::from(native(HostConfig {
        remember_process_facts: true,
        ..HostConfig::default()
    }));
    let Ok(store_dir) = tempfile::tempdir() else {
        eprintln!("bench: no temp dir");
        stop(&mut fixture);
        return;
    };
    let baseline = Arc::new(an1256::baseline::Baseline::new(
        an1256::settings::Settings::with_db(store_dir.path().join("bench.db")),
        host.clone(),
    ));
    let tables = an1256::all_tables(host, baseline);
    let find = |name: &str| tables.iter().find(|t| t.name() == name).cloned();
    let (Some(sockets), Some(signatures)) = (
        find("nonstandard_protocol_sockets"),
        find("process_code_signature"),
    ) else {
        eprintln!("bench: tables missing");
        stop(&mut fixture);
        return;
    };
    let all = QueryContext::new();
    let by_pid = QueryContext::new().with_equals("pid", one.to_string());
    let rows = sockets.generate(&all).map(|r| r.len()).unwrap_or(0);
    println!(
        "fixture: {} processes; full scan sees {rows} rows",
        pids.len()
    );

    let full = median_ms(31, || {
        let _ = sockets.generate(&all);
    });
    let ss = median_ms(31, || {
        let _ = Command::new("ss")
            .arg("-uapn")
            .stdout(Stdio::null())
            .status();
    });
    let pid = median_ms(101, || {
        let _ = sockets.generate(&by_pid);
    });
    let cold = {
        let t = Instant::now();
        let _ = signatures.generate(&all);
        t.elapsed().as_secs_f64() * 1000.0
    };
    let warm = median_ms(11, || {
        let _ = signatures.generate(&all);
    });
    let sig_pid = median_ms(101, || {
        let _ = signatures.generate(&by_pid);
    });
    let engine = an1256::sql::Engine::new(tables.clone());
    let hit_sql = an1256::cli::scan::hit_query().unwrap_or_default();
    let hits = match &engine {
        Ok(e) => match e.query(&hit_sql) {
            Ok((_, rows)) => {
                println!("hit query: {} hits", rows.len());
                median_ms(11, || {
                    let _ = e.query(&hit_sql);
                })
            }
            Err(err) => {
                println!("hit query failed: {err}");
                f64::NAN
            }
        },
        Err(_) => f64::NAN,
    };
    // The extension's sampler, warm (its trust cache filled by the first pass).
    let sampler = tempfile::tempdir().ok().and_then(|dir| {
        let store = an1256::baseline::store::Store::open(&dir.path().join("bench.db"), 0).ok()?;
        let host = native(HostConfig {
            remember_process_facts: true,
            ..HostConfig::default()
        });
        let limits = an1256::settings::ObservationLimits::default();
        let _ = an1256::baseline::sampler::sample_once(
            host.as_ref(),
            &store,
            limits,
            &Default::default(),
            false,
        );
        let mut passes: Vec<(i64, i64)> = (0..5)
            .map(|_| {
                let r = an1256::baseline::sampler::sample_once(
                    host.as_ref(),
                    &store,
                    limits,
                    &Default::default(),
                    false,
                );
                (r.wall_ms, r.cpu_ms)
            })
            .collect();
        passes.sort_unstable();
        passes.get(passes.len() / 2).copied()
    });
    println!("nonstandard_protocol_sockets full scan   {full:8.2} ms (median of 31)");
    println!(
        "ss -uapn (same run)                      {ss:8.2} ms  -> ratio {:.2} (target <= 0.6)",
        full / ss
    );
    println!("nonstandard_protocol_sockets pid =       {pid:8.3} ms (target <= 2)");
    println!("process_code_signature all, cold cache   {cold:8.2} ms");
    println!("process_code_signature all, warm cache   {warm:8.2} ms (target < 50)");
    println!("process_code_signature pid =, warm       {sig_pid:8.3} ms");
    println!("hit query through the embedded engine    {hits:8.2} ms");
    #[cfg(target_os = "linux")]
    match std::fs::read("/sys/kernel/btf/vmlinux") {
        // What each CLI run pays before its first iterator pass (warm here).
        Ok(blob) => {
            let parse = median_ms(31, || {
                let _ = an1256::platform::linux::fd_iterator::parse_layout(&blob);
            });
            println!("kernel BTF parse_layout (vmlinux), warm   {parse:8.3} ms");
        }
        Err(e) => println!("kernel BTF parse_layout: /sys/kernel/btf/vmlinux: {e}"),
    }
    match sampler {
        Some((wall, cpu)) => {
            println!("sampler pass, warm (median of 5)         {wall:5} ms wall, {cpu} ms CPU")
        }
        None => println!("sampler pass: could not open a store in a temp dir"),
    }
    paired_full_scan("standard", 31, &sockets);
    stop(&mut fixture);
    // The TCP-heavy fixture: 500 processes x 20 TCP connections.
    let tcp_heavy = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/bench/fixture.py"))
        .args(["--profile", "tcp-heavy"])
        .stdout(Stdio::piped())
        .spawn();
    if let Ok(mut fixture) = tcp_heavy {
        let mut line = String::new();
        if let Some(out) = fixture.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        if line.starts_with("ready") {
            paired_full_scan("tcp-heavy", 21, &sockets);
        } else {
            println!("tcp-heavy: the fixture did not start");
        }
        stop(&mut fixture);
    }
}

/// SIGTERM lets the fixture kill its children (SIGKILL would orphan them).
fn stop(fixture: &mut std::process::Child) {
    if let Ok(pid) = i32::try_from(fixture.id()) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let _ = fixture.wait();
}
