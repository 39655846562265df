//! The sampler: one pass reads the sockets of every process, classifies them,
//! judges each owner once, and records observations (and, while learning,
//! `learned` entries) in one store transaction. In extension mode a thread runs a
//! pass every `sample_interval` and stops as soon as it is told to (a channel
//! with a timeout, not a sleep).

use super::store::{unix_now, Observation, PassWrite, Store};
use crate::deadline::Deadline;
use crate::judge::classify::Classification;
use crate::judge::subject::ProcessVerdict;
use crate::model::{ProtocolSet, SocketInfo, SocketQuery};
use crate::observe::{self, ObservedSocket};
use crate::platform::Host;
use crate::settings::ObservationLimits;
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The cost and outcome of one pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    pub time: i64,
    pub sockets: usize,
    pub processes: usize,
    /// Owners that exited or could not be read during the pass.
    pub skipped: usize,
    pub write: PassWrite,
    pub learning: bool,
    pub wall_ms: i64,
    pub cpu_ms: i64,
    pub errors: Vec<String>,
    /// Why the pass's observations could not be written (`None`: they were).
    pub write_error: Option<String>,
    /// What was seen, for policy matching of path-less identities.
    pub observations: Vec<Observation>,
    /// (identity, executable path) of binary subjects that verifiably ran from that
    /// path in this pass (`Host::executable_is_at`): what policy `path` rules match.
    pub verified_executables: Vec<(String, String)>,
}

/// A pass stops its loops after this long (two default intervals), records what it
/// found and reports itself partial: a host that makes the walk slow must not make
/// the sampler fall silent.
pub const PASS_TIME_LIMIT: Duration = Duration::from_secs(30);

/// The observation one socket of a judged owner gives.
pub fn observation_of(
    v: &ProcessVerdict,
    socket: &SocketInfo,
    class: &Classification,
) -> Observation {
    Observation {
        identity: v.subject.identity.clone(),
        protocol_name: class.protocol_name.to_owned(),
        remote_port: i64::from(socket.remote_port),
        remote_scope: class.remote_scope.to_owned(),
        remote_address: socket.remote_address.clone(),
        pid: i64::from(socket.pid),
        path: v.subject.path.clone(),
        exe_path: v.process.path.clone(),
        interpreter: v.interpreter().to_owned(),
        subject_kind: v.subject.kind.to_owned(),
        subject_trusted: v.subject.trusted,
        socket_type: socket.socket_type.as_str().to_owned(),
        script_kind: v.script_kind().to_owned(),
        script_quarantined: v.script_quarantined(),
        reason: class.reason(),
        start_time: v.process.start_time,
    }
}

/// What the store keys an observation by: (identity, protocol, remote port, scope,
/// remote address).
pub type ObservationKey = (String, String, i64, String, String);

pub fn observation_key(o: &Observation) -> ObservationKey {
    (
        o.identity.clone(),
        o.protocol_name.clone(),
        o.remote_port,
        o.remote_scope.clone(),
        o.remote_address.clone(),
    )
}

/// CPU time of the calling thread, in microseconds (`CLOCK_THREAD_CPUTIME_ID`
/// exists on Linux and macOS).
// time_t / c_long are i64 on the 64-bit targets, narrower elsewhere.
#[allow(clippy::useless_conversion)]
pub fn thread_cpu_micros() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    i64::from(ts.tv_sec)
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(ts.tv_nsec) / 1000)
}

/// Runs one pass and records it (stats included) in the store. `may_learn`:
/// whether this pass may turn observations into `learned` entries while the
/// learning window is open (the extension's sampler and `an1256 baseline sample`
/// may; a pass a policy lookup triggers to learn a subject's path may not).
pub fn sample_once(
    host: &dyn Host,
    store: &Store,
    limits: ObservationLimits,
    socks: &crate::judge::socks::SocksConfig,
    may_learn: bool,
) -> PassReport {
    let started = Instant::now();
    let cpu_start = thread_cpu_micros();
    let now = unix_now();
    let mut report = PassReport {
        time: now,
        ..Default::default()
    };
    // Same coverage as `nonstandard_protocol_sockets` unconstrained: TCP too, so
    // SOCKS use between two scheduled queries is observed as well.
    let query = SocketQuery {
        pids: None,
        protocols: ProtocolSet::ALL,
    };
    // Every loop below (fd walk, SOCKS, judging) stops at the deadline; what was
    // found by then is recorded and the pass says it is partial.
    let deadline = Deadline::current().min(Deadline::after(PASS_TIME_LIMIT));
    let _deadline = deadline.enter();
    let observed = observe::observe_sockets(host, socks, &query);
    report.sockets = observed.scanned;
    report.skipped = observed.skipped_processes;
    report
        .errors
        .extend(observed.errors.iter().take(5).cloned());
    report
        .errors
        .extend(observed.incomplete.iter().take(3).cloned());

    let mut owners = observe::Owners::default();
    // One observation per key per pass (the first socket seen gives the details, as
    // the store keeps an appearance's first sighting).
    let mut observations: BTreeMap<ObservationKey, Observation> = BTreeMap::new();
    let mut located = std::collections::HashSet::new();
    for ObservedSocket { socket, class } in &observed.sockets {
        if deadline.expired() {
            break;
        }
        let Some(v) = owners.judge(host, socket.pid) else {
            continue;
        };
        if v.subject.kind == "binary" && located.insert(socket.pid) {
            if let Ok(true) = host.executable_is_at(socket.pid, &v.process.path) {
                report
                    .verified_executables
                    .push((v.subject.identity.clone(), v.process.path.clone()));
            }
        }
        let o = observation_of(v, socket, class);
        observations.entry(observation_key(&o)).or_insert(o);
    }
    if deadline.expired() {
        report.errors.push(format!(
            "the pass stopped at its {}s deadline: observations are partial",
            PASS_TIME_LIMIT.as_secs()
        ));
    }
    let (judged, unreadable) = owners.counts();
    report.processes = judged;
    report.skipped += unreadable;
    report.observations = observations.into_values().collect();

    let learning = match store.learning_until() {
        Ok(until) => may_learn && now < until,
        Err(e) => {
            report.errors.push(e.to_string());
            false
        }
    };
    report.learning = learning;
    match store.record_pass(&report.observations, learning, now, limits) {
        Ok(write) => {
            if write.learning_capped > 0 {
                report.errors.push(format!(
                    "learning capped at {} entries: {} observations not learned",
                    limits.max_learned, write.learning_capped
                ));
            }
            report.write = write;
        }
        Err(e) => {
            report.errors.push(e.to_string());
            report.write_error = Some(e.to_string());
        }
    }
    report.wall_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    report.cpu_ms = (thread_cpu_micros() - cpu_start) / 1000;
    let error_text = report.errors.join("; ");
    if let Err(e) = store.record_sample_stats(
        now,
        report.wall_ms,
        report.cpu_ms,
        i64::try_from(report.errors.len()).unwrap_or(i64::MAX),
        &error_text,
    ) {
        log::warn!("cannot record sampler stats: {e}");
    }
    log::debug!(
        "sampler pass: {} sockets, {} processes, {} observations, {} learned, {} pruned, {} expired, {} ms wall, {} ms cpu",
        report.sockets,
        report.processes,
        report.write.observations,
        report.write.learned,
        report.write.pruned,
        report.write.expired,
        report.wall_ms,
        report.cpu_ms
    );
    report
}

/// A running sampler thread. `stop` (or drop) ends it promptly.
pub struct SamplerHandle {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SamplerHandle {
    /// Starts a thread running `pass` now and then every `interval`.
    pub fn spawn(
        interval: Duration,
        pass: impl Fn() + Send + 'static,
    ) -> std::io::Result<SamplerHandle> {
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("an1256-sampler".into())
            .spawn(move || loop {
                pass();
                match rx.recv_timeout(interval) {
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    // A stop message, or the handle was dropped.
                    _ => break,
                }
            })?;
        Ok(SamplerHandle {
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    /// Signals the thread and waits for the pass in progress (if any) to finish.
    pub fn stop(&mut self) {
        self.stop_within(Duration::MAX);
    }

    /// Signals the thread and waits at most `limit` for a pass in progress: an
    /// extension that osquery asked to exit must not linger. A pass still running
    /// is left to the process exit (its transaction never commits, so the store
    /// stays consistent). Returns whether the thread finished.
    pub fn stop_within(&mut self, limit: Duration) -> bool {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let Some(thread) = self.thread.take() else {
            return true;
        };
        let started = Instant::now();
        while !thread.is_finished() {
            if started.elapsed() >= limit {
                log::warn!(
                    "the sampler pass in progress did not finish within {limit:?}; not waiting"
                );
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if thread.join().is_err() {
            log::error!("the sampler thread panicked");
        }
        true
    }
}

impl Drop for SamplerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the sampler over a baseline context.
pub fn start(baseline: Arc<super::Baseline>) -> std::io::Result<SamplerHandle> {
    start_with(baseline, |b| {
        b.sample();
    })
}

/// Starts a sampler thread running `pass` every `sample_interval`, each pass under
/// `catch_unwind`: a panic is counted (`an1256_info.sampler_panics`) and the
/// thread goes on. Tests inject a panicking pass here; the binary has no hook.
pub fn start_with(
    baseline: Arc<super::Baseline>,
    pass: impl Fn(&super::Baseline) + Send + 'static,
) -> std::io::Result<SamplerHandle> {
    let interval = baseline.settings.sample_interval;
    SamplerHandle::spawn(interval, move || {
        baseline.run_guarded(|| pass(&baseline));
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn thread_stops_promptly_without_waiting_for_the_interval() {
        let passes = Arc::new(AtomicUsize::new(0));
        let counter = passes.clone();
        let mut handle = SamplerHandle::spawn(Duration::from_secs(3600), move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while passes.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        let t = Instant::now();
        handle.stop();
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "stop waited for the interval"
        );
        assert_eq!(passes.load(Ordering::SeqCst), 1);
    }

    use crate::model::{ProcessInfo, SocketInfo, SocketType};
    use crate::platform::FakeHost;

    fn udp(pid: i32, fd: i64, port: i32) -> SocketInfo {
        SocketInfo {
            pid,
            fd,
            socket: 100 + fd as u64,
            family: 2,
            protocol: 17,
            socket_type: SocketType::Dgram,
            local_address: "10.0.0.2".into(),
            local_port: 40000,
            remote_address: "192.0.2.7".into(),
            remote_port: port,
            tcp_state: String::new(),
            net_namespace: String::new(),
        }
    }

    /// A host where pid 42 runs /tmp/beacon with `sockets`.
    fn beacon_host(sockets: Vec<SocketInfo>) -> FakeHost {
        FakeHost {
            processes: vec![ProcessInfo {
                pid: 42,
                path: "/tmp/beacon".into(),
                argv: vec!["/tmp/beacon".into()],
                ..Default::default()
            }],
            sockets,
            ..Default::default()
        }
    }

    #[test]
    fn a_pass_judges_each_owner_once_and_learns_only_untrusted_subjects() {
        // Two sockets of pid 42 (same key twice, one other port) and one of a
        // process that exits before it is judged.
        let host = beacon_host(vec![
            udp(42, 3, 53),
            udp(42, 4, 53),
            udp(42, 5, 123),
            udp(77, 3, 53),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db"), 3600).unwrap();
        let report = sample_once(
            &host,
            &store,
            ObservationLimits::default(),
            &Default::default(),
            true,
        );
        assert_eq!(host.process_calls.lock().unwrap().as_slice(), &[42, 77]);
        assert_eq!(
            (report.sockets, report.processes, report.skipped),
            (4, 1, 1)
        );
        assert_eq!(report.observations.len(), 2, "one per key per pass");
        assert_eq!(report.write.learned, 2);
        let entries = store.entries(None).unwrap();
        let ports: Vec<i64> = entries.iter().map(|e| e.remote_port).collect();
        assert_eq!(ports, vec![53, 123]);
        assert!(entries.iter().all(|e| e.identity.starts_with("sha256:")));
        // A pass that may not learn records observations only.
        let store2 = Store::open(&dir.path().join("t.db"), 3600).unwrap();
        let report = sample_once(
            &host,
            &store2,
            ObservationLimits::default(),
            &Default::default(),
            false,
        );
        assert!(!report.learning && report.write.learned == 0);
        assert!(store2.entries(None).unwrap().is_empty());
        assert_eq!(store2.observations(None).unwrap().len(), 2);
        let summary = store.summary().unwrap();
        assert!(summary.last_sample_time > 0);
    }

    /// A pass that panics is counted in an1256_info and the thread goes on to run
    /// (and record) the next passes.
    #[test]
    fn a_panicking_pass_is_counted_and_the_sampler_goes_on() {
        use crate::tables::{an1256_info, column_index, TableDef, Value};
        let dir = tempfile::tempdir().unwrap();
        let mut settings = crate::settings::Settings::with_db(dir.path().join("s.db"));
        settings.sample_interval = Duration::from_millis(20);
        let baseline = Arc::new(super::super::Baseline::new(
            settings,
            Arc::new(FakeHost::default()),
        ));
        let passes = Arc::new(AtomicUsize::new(0));
        let counter = passes.clone();
        let mut handle = start_with(baseline.clone(), move |b| {
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("injected sampler failure");
            }
            b.sample();
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while passes.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        handle.stop();
        assert!(
            passes.load(Ordering::SeqCst) >= 3,
            "the sampler stopped after the panic"
        );
        let info = an1256_info::An1256Info::new(baseline.clone());
        let row = info.generate(&Default::default()).unwrap().remove(0);
        let get = |name: &str| row[column_index(an1256_info::COLUMNS, name).unwrap()].clone();
        assert_eq!(get("sampler_panics"), Value::Int(1));
        assert!(matches!(get("sampler_errors"), Value::Int(n) if n >= 1));
        assert!(matches!(get("last_sample_time"), Value::Int(t) if t > 0));
    }

    /// A pass whose write the store refuses (locked by another writer past the
    /// wait) is counted in an1256_info with its reason and its observations as
    /// lost: never shown as a pass that saw nothing.
    #[test]
    fn a_pass_the_store_refuses_is_counted_as_lost_not_as_nothing_seen() {
        use crate::tables::{an1256_info, column_index, TableDef, Value};
        let host = beacon_host(vec![udp(42, 3, 53), udp(42, 4, 123)]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let baseline = Arc::new(super::super::Baseline::new(
            crate::settings::Settings::with_db(path.clone()),
            Arc::new(host),
        ));
        let store = baseline.store().unwrap();
        store.set_busy_timeout(Duration::from_millis(100)).unwrap();
        let other = rusqlite::Connection::open(&path).unwrap();
        other.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let report = baseline.sample().expect("the store opened");
        other.execute_batch("COMMIT").unwrap();
        assert_eq!(report.observations.len(), 2);
        let why = report.write_error.expect("the write was refused");
        assert!(why.contains("locked by another writer"), "{why}");
        assert!(store.observations(None).unwrap().is_empty());
        let info = an1256_info::An1256Info::new(baseline.clone());
        let row = info.generate(&Default::default()).unwrap().remove(0);
        let get = |name: &str| row[column_index(an1256_info::COLUMNS, name).unwrap()].clone();
        assert_eq!(get("failed_observation_writes"), Value::Int(1));
        assert_eq!(get("lost_observations"), Value::Int(2));
        assert!(
            matches!(get("last_observation_write_error"), Value::Text(t) if t.starts_with("sampler: ") && t.contains("locked")),
            "{:?}",
            get("last_observation_write_error")
        );
        // The next pass writes.
        let report = baseline.sample().unwrap();
        assert_eq!(report.write_error, None);
        assert_eq!(store.observations(None).unwrap().len(), 2);
    }

    /// A pass whose deadline has passed stops judging, records nothing it did not
    /// finish, and says it is partial.
    #[test]
    fn a_pass_past_its_deadline_stops_and_says_so() {
        let host = beacon_host(vec![udp(42, 3, 53)]);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db"), 0).unwrap();
        let report = {
            let _expired = Deadline::after(Duration::ZERO).enter();
            sample_once(
                &host,
                &store,
                ObservationLimits::default(),
                &Default::default(),
                false,
            )
        };
        assert!(
            host.process_calls.lock().unwrap().is_empty(),
            "judged past the deadline"
        );
        assert!(report.observations.is_empty());
        assert!(
            report.errors.iter().any(|e| e.contains("deadline")),
            "{:?}",
            report.errors
        );
        // The same pass without the deadline records the socket.
        let report = sample_once(
            &host,
            &store,
            ObservationLimits::default(),
            &Default::default(),
            false,
        );
        assert_eq!(report.observations.len(), 1, "{:?}", report.errors);
    }

    #[test]
    fn cpu_clock_advances() {
        let a = thread_cpu_micros();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(thread_cpu_micros() > a);
    }
}
