//! The watch of untrusted processes: AN1256 only cares about untrusted subjects,
//! so beside the 15 s sampler pass (which sees the whole host) a thread keeps the
//! set of running untrusted processes and re-checks only their fds every second.
//! A socket that lives 2 s in such a process is recorded in `an1256_observations`
//! (and so reaches `an1256_hits_recent`) however the pack runs fall.
//!
//! New processes are judged at exec through the one observation pipeline
//! (`observe::judge_owner`): from the host's event source where there is one
//! (Linux: the proc connector, every exec on the host; macOS: kqueue on followed
//! pids, with the pid list read every second for new ones), else by listing the
//! pids every second and noticing new pids and changed images. An image is
//! compared by what the kernel set at its exec (the host's `ProcessImage`:
//! executable path and file, start time, address-space layout), so an exec that
//! keeps the executable (`bash` running `bash evil.sh`) is noticed too; a
//! process the host cannot stamp is judged again at every listing, at most
//! [`MAX_UNSTAMPED_PER_TICK`] a second.
//!
//! Every cost is bounded: at most `max_watched` processes are watched (the rest
//! counted in `watch_overflow`; the sampler pass still sees them), at most
//! [`MAX_PENDING`] processes wait for a judgement (past it, and after lost events,
//! a rescan: the pid list and executables compared with what the watch knows, at
//! most once a second), at most [`JUDGEMENTS_PER_TICK`] are judged per second
//! within [`JUDGING_LIMIT`] of wall time, and the re-check stops at
//! [`TICK_WORK_LIMIT`]. The 1 s re-check covers ICMP, UDP, UDP-Lite and raw
//! sockets: telling SOCKS needs the whole host's TCP sockets (the proxy may be
//! another process), which the sampler pass reads every 15 s.

use super::sampler::{observation_key, observation_of, thread_cpu_micros, ObservationKey};
use super::store::{unix_now, Observation, ObservationLimits, Store};
use super::StoreError;
use crate::deadline::Deadline;
use crate::judge::subject::ProcessVerdict;
use crate::model::{Pid, ProtocolSet, SocketQuery};
use crate::observe;
use crate::platform::{EventSourceError, Host, ProcessEvent, ProcessEvents};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the watched processes' fds are re-checked.
pub const TICK: Duration = Duration::from_secs(1);
/// The re-check (and the listing before it) stops after this long.
pub const TICK_WORK_LIMIT: Duration = Duration::from_millis(250);
/// Judging, summed over a tick, stops after this long: with the re-check, the
/// watch works at most half of each second whatever is thrown at it.
pub const JUDGING_LIMIT: Duration = Duration::from_millis(250);
/// Longest one judgement may hold the watch; past it the process is watched
/// without a verdict and judged again (the 15 s pass, with a longer deadline,
/// fills the shared verdict cache for a big file).
pub const JUDGEMENT_LIMIT: Duration = Duration::from_secs(1);
/// Default bound on the watched set (`watch_max_processes`).
pub const DEFAULT_MAX_WATCHED: usize = 1024;
/// Processes waiting for a judgement; past it new ones are dropped and a rescan
/// picks up those still running.
pub const MAX_PENDING: usize = 4096;
/// Judgements per tick: an exec flood costs at most this many process reads a
/// second (the rest wait, or are dropped and picked up by a rescan).
pub const JUDGEMENTS_PER_TICK: usize = 2048;
/// Pids remembered with their executables (to notice new ones and execs when
/// listing); past it new pids are counted in `watch_overflow`.
const MAX_KNOWN: usize = 65_536;
/// Pids followed by a per-pid event source (kqueue).
const MAX_FOLLOWED: usize = 8192;
/// Processes without an image stamp (no randomized layout) judged again per
/// tick, after every new or changed process: a crowd of them (`setarch -R`)
/// costs a bounded few judgements a second and delays nothing else.
pub const MAX_UNSTAMPED_PER_TICK: usize = 64;
/// Watched processes without a verdict judged again per re-check.
const MAX_REJUDGED_PER_TICK: usize = 32;
/// Events read per wait; the rest stay queued in the kernel until the next one.
const MAX_EVENTS_PER_WAIT: usize = 4096;
/// Longest block on the event source: how long a stop request may wait.
const EVENT_WAIT: Duration = Duration::from_millis(200);
/// After a read that found events, the watch lets the next ones gather this
/// long: one wake-up per batch instead of one per event on a busy host (they
/// are judged at the tick anyway). The kernel holds about 500 events meanwhile;
/// past that they are lost, which costs a rescan.
const EVENT_GATHER: Duration = Duration::from_millis(50);
/// An observation the watch recorded is written again at most this often while
/// it lasts (`last_seen` then stays fresh; `an1256_hits_recent` looks 180 s back).
const RECORD_REFRESH_SECS: i64 = 10;
/// Observation keys remembered for the refresh rule.
const MAX_RECORDED_KEYS: usize = 16_384;
/// Observations whose write failed, kept to write at the next ticks (the
/// socket may be gone by then); past it the oldest are given up, and counted.
pub const MAX_UNWRITTEN: usize = 4096;

/// What the 1 s re-check looks for.
pub const WATCHED_PROTOCOLS: ProtocolSet = ProtocolSet {
    icmp: true,
    udp: true,
    udplite: true,
    raw: true,
    tcp: false,
};

/// The watch's state, for `an1256_info`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchStatus {
    /// `proc_connector`, `kqueue`, `polling`; empty when the watch does not run.
    pub source: String,
    /// Why the watch runs degraded (polling) or not at all; empty when healthy.
    pub note: String,
    /// Untrusted processes watched now.
    pub watched: u64,
    /// Processes waiting for a judgement now (at most [`MAX_PENDING`]).
    pub pending: u64,
    /// Processes judged since the start.
    pub judged: u64,
    /// Untrusted processes not watched because the set was full, plus processes
    /// dropped from a full judgement queue.
    pub overflow: u64,
    /// Full rescans (start, lost events, full queue).
    pub rescans: u64,
    /// Times the event source reported lost events.
    pub lost_events: u64,
    /// Ticks whose work hit [`TICK_WORK_LIMIT`].
    pub late_ticks: u64,
    /// Observations the watch recorded.
    pub observations: u64,
    /// Observations whose write failed, held to be written at the next tick.
    pub unwritten: u64,
    /// CPU time of the watch thread since the start.
    pub cpu_ms: i64,
    /// Ticks that panicked (the watch starts afresh and goes on).
    pub panics: u64,
}

/// A watched process: its verdict, or `None` when it could not be judged (it
/// stays watched and is judged again at each re-check: fail closed).
type Watched = Option<ProcessVerdict>;

/// Where a pid waits for its judgement, first to last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Queue {
    /// An event named it (exec, fork of a watched parent).
    Fresh,
    /// A listing found it new or changed.
    Backlog,
    /// A listing could not tell it unchanged.
    Unstamped,
}

/// The watch's state machine; the thread in [`start`] drives it, tests drive it
/// step by step.
pub struct Watch {
    source: Option<Box<dyn ProcessEvents>>,
    max_watched: usize,
    watched: HashMap<Pid, Watched>,
    /// Pids an event named (exec, fork of a watched parent): judged first, so
    /// a backlog from a listing never delays a process that just started.
    fresh: VecDeque<Pid>,
    /// Pids a listing found new or changed.
    backlog: VecDeque<Pid>,
    /// Pids a listing could not tell unchanged (no image stamp): judged last,
    /// [`MAX_UNSTAMPED_PER_TICK`] per tick.
    unstamped: VecDeque<Pid>,
    /// Pids waiting for a judgement, with the queue each waits in (a pid moves
    /// up, never down: stale entries of the queue it left are skipped).
    pending: HashMap<Pid, Queue>,
    /// Untrusted pids judged while the watched set was full: offered again,
    /// oldest first, as slots free (at most `MAX_PENDING`), so filling the set
    /// with decoys does not hide a process for its whole life.
    waiting: VecDeque<Pid>,
    /// Where the next re-check starts in the watched pids (round robin).
    recheck_start: usize,
    /// Every pid listed or judged, with a keyed hash of its image (a changed
    /// image is an exec the events did not tell); `None`: no stamp, never
    /// taken as unchanged.
    known: HashMap<Pid, Option<u64>>,
    /// The key of the image hashes: random per watch, so an attacker cannot
    /// aim for a collision.
    image_hasher: std::collections::hash_map::RandomState,
    /// The next tick lists the processes (start, lost events, full queue).
    rescan_due: bool,
    recorded: HashMap<ObservationKey, i64>,
    /// Observations a failed write left, oldest first (at most [`MAX_UNWRITTEN`]).
    unwritten: VecDeque<Observation>,
    /// Judgements and judging time left in this tick's budget.
    judgements_left: usize,
    unstamped_left: usize,
    judging_left: Duration,
    pub status: WatchStatus,
}

impl Watch {
    /// A watch over `host`'s event source, or polling when it has none. The
    /// first tick judges every running process (a rescan).
    pub fn new(host: &dyn Host, max_watched: usize) -> Watch {
        Watch::over(host.process_events(), max_watched)
    }

    /// A watch that lists the processes every second (`watch_events: false`).
    pub fn polling(max_watched: usize) -> Watch {
        Watch::over(Err(EventSourceError::TurnedOff), max_watched)
    }

    fn over(events: Result<Box<dyn ProcessEvents>, EventSourceError>, max_watched: usize) -> Watch {
        let (source, name, note) = match events {
            Ok(source) if source.reports_every_process() => {
                let name = source.name().to_owned();
                (Some(source), name, String::new())
            }
            Ok(source) => {
                let name = format!("{}+polling", source.name());
                (Some(source), name, String::new())
            }
            Err(why) => (
                None,
                "polling".to_owned(),
                format!("polling the process list every second: {why}"),
            ),
        };
        if !note.is_empty() {
            log::info!("watch of untrusted processes: {note}");
        }
        Watch {
            source,
            max_watched: max_watched.max(1),
            watched: HashMap::new(),
            fresh: VecDeque::new(),
            backlog: VecDeque::new(),
            unstamped: VecDeque::new(),
            pending: HashMap::new(),
            waiting: VecDeque::new(),
            recheck_start: 0,
            known: HashMap::new(),
            image_hasher: Default::default(),
            rescan_due: true,
            recorded: HashMap::new(),
            unwritten: VecDeque::new(),
            judgements_left: JUDGEMENTS_PER_TICK,
            unstamped_left: MAX_UNSTAMPED_PER_TICK,
            judging_left: JUDGING_LIMIT,
            status: WatchStatus {
                source: name,
                note,
                ..Default::default()
            },
        }
    }

    /// Pids watched now, sorted.
    pub fn watched_pids(&self) -> Vec<Pid> {
        let mut pids: Vec<Pid> = self.watched.keys().copied().collect();
        pids.sort_unstable();
        pids
    }

    /// Pids waiting for a judgement.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    fn polls(&self) -> bool {
        self.source
            .as_ref()
            .is_none_or(|s| !s.reports_every_process())
    }

    /// Queues a pid for judgement; a full queue drops it (false) and asks for
    /// a rescan.
    fn enqueue(&mut self, pid: Pid, queue: Queue) -> bool {
        match self.pending.get(&pid) {
            Some(waiting) if *waiting <= queue => return true,
            // Moves up (an exec of a pid a listing queued last): its entry in
            // the lower queue goes stale.
            Some(_) => {}
            None if self.pending.len() >= MAX_PENDING => {
                self.status.overflow += 1;
                self.rescan_due = true;
                return false;
            }
            None => {}
        }
        let pending = &self.pending;
        let deque = match queue {
            Queue::Fresh => &mut self.fresh,
            Queue::Backlog => &mut self.backlog,
            Queue::Unstamped => &mut self.unstamped,
        };
        // Stale entries (exited while pending, or moved up) could grow the deque.
        if deque.len() >= MAX_PENDING * 2 {
            deque.retain(|p| pending.get(p) == Some(&queue));
        }
        deque.push_back(pid);
        self.pending.insert(pid, queue);
        true
    }

    fn forget(&mut self, pid: Pid) {
        self.watched.remove(&pid);
        self.pending.remove(&pid);
        self.known.remove(&pid);
    }

    /// Applies one event.
    pub fn handle(&mut self, event: ProcessEvent) {
        match event {
            // The verdict of the old image no longer holds: a watched process
            // keeps its slot but is judged again before its fds are read.
            ProcessEvent::Exec(pid) => {
                if let Some(verdict) = self.watched.get_mut(&pid) {
                    *verdict = None;
                }
                self.known.remove(&pid);
                self.enqueue(pid, Queue::Fresh);
            }
            // The child runs its parent's image (and holds its fds) until it
            // execs, which is an event of its own: only an untrusted parent's
            // children need a look now.
            ProcessEvent::Fork { parent, child } => {
                if self.watched.contains_key(&parent) {
                    let _ = self.enqueue(child, Queue::Fresh);
                }
            }
            // The kernel reports the main thread's exit with pid == tgid even
            // when other threads live on and hold the sockets: a watched or
            // pending pid is judged again (a gone one is forgotten then), never
            // dropped on the event alone.
            ProcessEvent::Exit(pid) => {
                if self.watched.contains_key(&pid) || self.pending.contains_key(&pid) {
                    self.known.remove(&pid);
                    let _ = self.enqueue(pid, Queue::Fresh);
                } else {
                    self.forget(pid);
                }
            }
            ProcessEvent::Lost => {
                self.status.lost_events += 1;
                self.rescan_due = true;
            }
        }
    }

    /// Waits at most `timeout` for events from the source and applies them.
    /// Without a source it only sleeps (the caller's tick polls). A broken source
    /// is dropped: the watch polls from then on.
    /// Returns how many events were read.
    pub fn wait_for_events(&mut self, timeout: Duration) -> usize {
        let Some(source) = self.source.as_mut() else {
            std::thread::sleep(timeout);
            return 0;
        };
        let mut events = Vec::new();
        if let Err(why) = source.wait(timeout, MAX_EVENTS_PER_WAIT, &mut events) {
            log::warn!("watch: event source failed, polling from now on: {why}");
            self.source = None;
            self.status.source = "polling".into();
            self.status.note = format!("polling the process list every second: {why}");
            self.rescan_due = true;
        }
        let read = events.len();
        for event in events {
            self.handle(event);
        }
        read
    }

    /// A keyed hash of the image `pid` runs now; `None` when it has no stamp
    /// or cannot be read (never taken as unchanged).
    fn image_key(&self, host: &dyn Host, pid: Pid) -> Option<u64> {
        use std::hash::BuildHasher;
        let image = host.process_image(pid).ok()?;
        image.stamp.as_ref()?;
        Some(self.image_hasher.hash_one(&image))
    }

    /// Lists the processes and compares them with what the watch knows: new
    /// pids and pids whose image changed (an exec no event told, even of the
    /// same executable) are queued, pids it cannot tell unchanged (no image
    /// stamp) queued last; gone pids are forgotten. `compare_images` is false
    /// when the source reports the execs of the pids it follows (kqueue).
    /// One readdir plus a few small reads per process: cheap enough for every
    /// second.
    fn list_processes(&mut self, host: &dyn Host, compare_images: bool, deadline: Deadline) {
        self.rescan_due = false;
        self.status.rescans += 1;
        let Ok(pids) = host.pids() else {
            return;
        };
        let alive: HashSet<Pid> = pids.iter().copied().collect();
        self.known.retain(|pid, _| alive.contains(pid));
        self.watched.retain(|pid, _| alive.contains(pid));
        for pid in pids {
            if deadline.expired() {
                // The rest next tick.
                self.rescan_due = true;
                break;
            }
            if self.pending.contains_key(&pid) {
                continue;
            }
            let image = if compare_images {
                self.image_key(host, pid)
            } else {
                None
            };
            let queue = match self.known.get(&pid) {
                Some(_) if !compare_images => continue,
                Some(Some(known)) if image == Some(*known) => continue,
                // Neither then nor now could the image be told: judged again,
                // after everything else (the verdict stands meanwhile).
                Some(None) if image.is_none() => Queue::Unstamped,
                // An exec no event told: the old verdict no longer holds.
                Some(_) => {
                    if let Some(verdict) = self.watched.get_mut(&pid) {
                        *verdict = None;
                    }
                    Queue::Backlog
                }
                None if self.known.len() >= MAX_KNOWN => {
                    self.status.overflow += 1;
                    continue;
                }
                None => {
                    let followable = self.known.len() < MAX_FOLLOWED;
                    if let Some(source) = self.source.as_mut().filter(|_| followable) {
                        if source.follow(pid).is_err() {
                            // Gone already, or beyond the source's bound: the 1 s
                            // listing still sees it.
                            log::debug!("watch: cannot follow {pid}");
                        }
                    }
                    Queue::Backlog
                }
            };
            // Known only once queued: a pid a full queue dropped is new again
            // to the next listing.
            if self.enqueue(pid, queue) {
                self.known.insert(pid, image);
            } else {
                self.known.remove(&pid);
            }
        }
        // A pid the full queue dropped left `rescan_due` set: the next tick lists
        // again and queues it then.
    }

    fn watch(&mut self, pid: Pid, verdict: Watched) {
        if self.watched.len() >= self.max_watched && !self.watched.contains_key(&pid) {
            self.status.overflow += 1;
            if self.waiting.len() < MAX_PENDING && !self.waiting.contains(&pid) {
                self.waiting.push_back(pid);
            }
            return;
        }
        self.watched.insert(pid, verdict);
    }

    /// Queues waiting pids for judgement while the watched set has room.
    fn offer_free_slots(&mut self) {
        let mut room = self.max_watched.saturating_sub(self.watched.len());
        while room > 0 {
            let Some(pid) = self.waiting.pop_front() else {
                break;
            };
            if self.enqueue(pid, Queue::Backlog) {
                room -= 1;
            }
        }
    }

    /// The next pid to judge and the queue it came from: events first, then
    /// listings, then the unstamped within their own per-tick bound.
    fn next_pending(&mut self) -> Option<(Pid, Queue)> {
        if let Some(pid) = self.fresh.pop_front() {
            return Some((pid, Queue::Fresh));
        }
        if let Some(pid) = self.backlog.pop_front() {
            return Some((pid, Queue::Backlog));
        }
        if self.unstamped_left > 0 {
            return self
                .unstamped
                .pop_front()
                .map(|pid| (pid, Queue::Unstamped));
        }
        None
    }

    /// Judges queued processes within the tick's budget ([`JUDGEMENTS_PER_TICK`],
    /// [`JUDGING_LIMIT`]): the untrusted ones are watched, the others dropped.
    pub fn judge_pending(&mut self, host: &dyn Host) {
        self.offer_free_slots();
        if self.pending.is_empty() || self.judging_left.is_zero() {
            return;
        }
        let started = Instant::now();
        // Checked between judgements; each judgement has its own `JUDGEMENT_LIMIT`.
        let deadline = Deadline::after(self.judging_left);
        while self.judgements_left > 0 && !deadline.expired() {
            let Some((pid, queue)) = self.next_pending() else {
                break;
            };
            if self.pending.get(&pid) != Some(&queue) {
                continue; // exited while queued, or moved up
            }
            self.pending.remove(&pid);
            self.judgements_left -= 1;
            if queue == Queue::Unstamped {
                self.unstamped_left = self.unstamped_left.saturating_sub(1);
            }
            self.status.judged += 1;
            // Read before the judgement: an exec in between leaves the old
            // image known, and the next listing judges the new one.
            let image = self.image_key(host, pid);
            match judge_bounded(host, pid) {
                Ok(None) => self.forget(pid),
                Ok(Some(v)) => {
                    if self.known.contains_key(&pid) || self.known.len() < MAX_KNOWN {
                        self.known.insert(pid, image);
                    }
                    if !needs_watching(&v) {
                        self.watched.remove(&pid);
                    } else {
                        self.watch(pid, Some(v));
                    }
                }
                // Unreadable now: watched, judged again at each re-check.
                Err(e) => {
                    log::debug!("watch: cannot judge {pid}: {e}");
                    self.watch(pid, None);
                }
            }
        }
        self.judging_left = self.judging_left.saturating_sub(started.elapsed());
    }

    /// Reads the sockets of the watched processes and returns the observations
    /// due for recording (new, or not written for [`RECORD_REFRESH_SECS`]).
    pub fn recheck(
        &mut self,
        host: &dyn Host,
        socks: &crate::judge::socks::SocksConfig,
        now: i64,
    ) -> Vec<Observation> {
        if self.watched.is_empty() {
            return Vec::new();
        }
        // Owners with no verdict (unreadable, or exec'd since): judge them now,
        // a bounded few per tick, before their fds are read.
        let unjudged: Vec<Pid> = self
            .watched
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(pid, _)| *pid)
            .take(MAX_REJUDGED_PER_TICK)
            .collect();
        for pid in unjudged {
            self.pending.remove(&pid);
            self.status.judged += 1;
            match judge_bounded(host, pid) {
                Ok(None) => self.forget(pid),
                Ok(Some(v)) if !needs_watching(&v) => {
                    self.watched.remove(&pid);
                }
                Ok(Some(v)) => {
                    self.watched.insert(pid, Some(v));
                }
                Err(_) => {}
            }
        }
        // Each tick starts one pid further on: processes with huge fd tables
        // first in the list cannot use up every tick's work limit.
        let mut pids = self.watched_pids();
        self.recheck_start = self.recheck_start.wrapping_add(1);
        if !pids.is_empty() {
            let start = self.recheck_start % pids.len();
            pids.rotate_left(start);
        }
        let query = SocketQuery {
            pids: Some(pids),
            protocols: WATCHED_PROTOCOLS,
        };
        let observed = {
            let _deadline = Deadline::after(TICK_WORK_LIMIT).enter();
            observe::observe_sockets(host, socks, &query)
        };
        // The socket walk read each holder's executable through the dirfd that
        // named its fds: a verdict for another image (an exec whose event was
        // lost, or not handled yet) is judged again before it names the sockets.
        let changed: Vec<Pid> = observed
            .executables
            .iter()
            .filter(|(pid, path)| {
                self.watched
                    .get(pid)
                    .is_some_and(|v| v.as_ref().is_some_and(|v| v.process.path != **path))
            })
            .map(|(pid, _)| *pid)
            .take(MAX_REJUDGED_PER_TICK)
            .collect();
        for pid in changed {
            self.status.judged += 1;
            let verdict = judge_bounded(host, pid).ok().flatten();
            let runs_that = verdict
                .as_ref()
                .is_some_and(|v| observed.executables.get(&pid) == Some(&v.process.path));
            match verdict {
                Some(v) if !needs_watching(&v) => {
                    self.watched.remove(&pid);
                }
                // Still not the image that held the sockets: no verdict, no
                // observation this tick (the next one tries again).
                v => {
                    self.watched.insert(pid, v.filter(|_| runs_that));
                }
            }
        }
        let mut due: HashMap<ObservationKey, Observation> = HashMap::new();
        for o in &observed.sockets {
            let Some(Some(verdict)) = self.watched.get(&o.socket.pid) else {
                continue;
            };
            let observation = observation_of(verdict, &o.socket, &o.class);
            let key = observation_key(&observation);
            let fresh = self
                .recorded
                .get(&key)
                .is_some_and(|at| now.saturating_sub(*at) < RECORD_REFRESH_SECS);
            if !fresh {
                // The first socket of a key gives the details, as in the sampler.
                due.entry(key).or_insert(observation);
            }
        }
        if self.recorded.len() + due.len() > MAX_RECORDED_KEYS {
            self.recorded.clear();
        }
        for key in due.keys() {
            self.recorded.insert(key.clone(), now);
        }
        due.into_values().collect()
    }

    /// One tick's work after the events: poll or rescan as due, judge what is
    /// queued, re-check the watched fds. Returns the observations to record.
    pub fn tick(
        &mut self,
        host: &dyn Host,
        socks: &crate::judge::socks::SocksConfig,
        now: i64,
    ) -> Vec<Observation> {
        let deadline = Deadline::after(TICK_WORK_LIMIT);
        if self.rescan_due || self.polls() {
            // Images tell execs apart unless a per-pid source reports them.
            let compare_images = self.source.is_none() || self.rescan_due;
            self.list_processes(host, compare_images, deadline);
        }
        self.judge_pending(host);
        // Those a failed write left come first: their first sighting's details win.
        let mut observations: Vec<Observation> = self.unwritten.drain(..).collect();
        let held: HashSet<ObservationKey> = observations.iter().map(observation_key).collect();
        observations.extend(
            self.recheck(host, socks, now)
                .into_iter()
                .filter(|o| !held.contains(&observation_key(o))),
        );
        self.status.unwritten = 0;
        if deadline.expired() || self.judging_left.is_zero() {
            self.status.late_ticks += 1;
        }
        self.judgements_left = JUDGEMENTS_PER_TICK;
        self.unstamped_left = MAX_UNSTAMPED_PER_TICK;
        self.judging_left = JUDGING_LIMIT;
        self.status.watched = u64::try_from(self.watched.len()).unwrap_or(u64::MAX);
        self.status.pending = u64::try_from(self.pending.len()).unwrap_or(u64::MAX);
        observations
    }

    /// Between ticks: events as they come. Judging waits for the tick, which
    /// judges and then re-checks at once: a process that exits before it (most
    /// of a busy host's execs: compilers, shell pipelines) costs nothing, and one
    /// that lives on is watched before its fds are first read either way.
    pub fn until(&mut self, end: Instant, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let read = self.wait_for_events(left.min(EVENT_WAIT));
            if read > 0 && read < MAX_EVENTS_PER_WAIT {
                std::thread::sleep(left.min(EVENT_GATHER));
            }
        }
    }
}

/// An untrusted subject is watched; a kernel thread runs no user code (its
/// `PF_KTHREAD` flag is the kernel's, not the process's to set), so it would
/// only take a slot and a re-check a second.
fn needs_watching(verdict: &ProcessVerdict) -> bool {
    !verdict.subject.trusted && !verdict.process.kernel_thread
}

/// `observe::judge_owner` under `JUDGEMENT_LIMIT`: one judgement may not hold
/// the watch longer (a file a FUSE server trickles out would take a minute). A
/// judgement cut short is an error: the process stays watched without a verdict
/// and is judged again, never given the cut verdict.
fn judge_bounded(
    host: &dyn Host,
    pid: Pid,
) -> Result<Option<crate::judge::subject::ProcessVerdict>, crate::platform::HostError> {
    let cut = Deadline::after(JUDGEMENT_LIMIT);
    let judged = {
        let _current = cut.enter();
        observe::judge_owner(host, pid)
    };
    if cut.expired() {
        return Err(crate::platform::HostError::Other(format!(
            "judging process {pid} took longer than {} ms",
            JUDGEMENT_LIMIT.as_millis()
        )));
    }
    judged
}

/// What became of one tick's observations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TickWrite {
    /// Observations written.
    pub written: usize,
    /// Why the write failed (`None`: it did not, or there was nothing to write).
    pub error: Option<String>,
    /// Observations given up: the write failed and more than [`MAX_UNWRITTEN`]
    /// were waiting.
    pub given_up: usize,
}

impl Watch {
    /// Writes a tick's observations to `store` (never learning: only the sampler
    /// pass, which sees the whole host, learns). When the store is unavailable or
    /// the write fails they are kept for the next tick: a socket that lived 2 s
    /// must not vanish because a writer held the store for a moment.
    pub fn write(
        &mut self,
        store: Result<&Store, &StoreError>,
        observations: Vec<Observation>,
        limits: ObservationLimits,
    ) -> TickWrite {
        if observations.is_empty() {
            return TickWrite::default();
        }
        let written = store.map_err(|e| e.to_string()).and_then(|store| {
            store
                .record_pass(&observations, false, unix_now(), limits)
                .map_err(|e| e.to_string())
        });
        let error = match written {
            Ok(write) => {
                let written = write.observations;
                self.status.observations += u64::try_from(written).unwrap_or(u64::MAX);
                return TickWrite {
                    written,
                    ..TickWrite::default()
                };
            }
            Err(error) => error,
        };
        self.unwritten.extend(observations);
        let mut given_up = 0;
        while self.unwritten.len() > MAX_UNWRITTEN {
            if let Some(o) = self.unwritten.pop_front() {
                // Seen again while its socket lasts, then written afresh.
                self.recorded.remove(&observation_key(&o));
                given_up += 1;
            }
        }
        self.status.unwritten = u64::try_from(self.unwritten.len()).unwrap_or(u64::MAX);
        TickWrite {
            written: 0,
            error: Some(error),
            given_up,
        }
    }
}

/// A running watch thread; `stop` (or drop) ends it within about
/// [`EVENT_WAIT`] plus the tick in progress.
pub struct WatchHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl WatchHandle {
    /// Signals the thread and waits at most `limit` for it.
    pub fn stop_within(&mut self, limit: Duration) -> bool {
        self.stop.store(true, Ordering::Relaxed);
        let Some(thread) = self.thread.take() else {
            return true;
        };
        let started = Instant::now();
        while !thread.is_finished() {
            if started.elapsed() >= limit {
                log::warn!("the watch did not stop within {limit:?}; not waiting");
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if thread.join().is_err() {
            log::error!("the watch thread panicked");
        }
        true
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.stop_within(Duration::from_secs(5));
    }
}

/// Starts the watch thread over a baseline context (extension mode, beside the
/// sampler). A tick that panics is counted and the watch starts afresh.
pub fn start(baseline: Arc<super::Baseline>) -> std::io::Result<WatchHandle> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::Builder::new()
        .name("an1256-watch".into())
        .spawn(move || run(&baseline, &stopping))?;
    Ok(WatchHandle {
        stop,
        thread: Some(thread),
    })
}

fn run(baseline: &super::Baseline, stop: &AtomicBool) {
    let host = baseline.host().clone();
    let max_watched = baseline.settings.watch_max_processes;
    let events = baseline.settings.watch_events;
    let fresh_watch = || {
        if events {
            Watch::new(host.as_ref(), max_watched)
        } else {
            Watch::polling(max_watched)
        }
    };
    let mut watch = fresh_watch();
    let cpu_start = thread_cpu_micros();
    let mut panics = 0u64;
    let mut next_tick = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            watch.until(next_tick, stop);
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let observations = watch.tick(host.as_ref(), &baseline.settings.socks, unix_now());
            if !observations.is_empty() {
                let store = baseline.store();
                let count = observations.len();
                let outcome = watch.write(store.as_deref(), observations, baseline.limits());
                if let Some(error) = outcome.error {
                    baseline.observations_unwritten("watch", count, outcome.given_up, &error);
                }
            }
        }));
        if let Err(payload) = outcome {
            panics += 1;
            let what = crate::util::panic_message(payload.as_ref());
            log::error!("watch tick panicked ({panics} so far): {what}; starting afresh");
            watch = fresh_watch();
        }
        watch.status.panics = panics;
        watch.status.cpu_ms = (thread_cpu_micros() - cpu_start) / 1000;
        baseline.set_watch_status(watch.status.clone());
        // A late tick does not make the next one early: ticks never pile up.
        next_tick = (next_tick + TICK).max(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixtures::process;
    use crate::model::{CodeIdentity, SocketInfo, SocketType, Trust};
    use crate::platform::{FakeHost, FakeProcessEvents};

    const TRUSTED: &str = "/usr/bin/trusted";
    const BEACON: &str = "/tmp/beacon";

    fn ping(pid: Pid) -> SocketInfo {
        SocketInfo {
            pid,
            fd: 3,
            socket: 900 + pid as u64,
            family: 2,
            protocol: 1,
            socket_type: SocketType::Dgram,
            local_address: "10.0.0.2".into(),
            local_port: 7,
            remote_address: "192.0.2.9".into(),
            remote_port: 0,
            tcp_state: String::new(),
            net_namespace: "ns1".into(),
        }
    }

    /// `processes` as (pid, path); TRUSTED is package-owned, anything else
    /// unsigned. Every process holds one ping socket.
    fn host(processes: &[(Pid, &str)], events: Option<FakeProcessEvents>) -> FakeHost {
        let mut identities = HashMap::new();
        identities.insert(
            TRUSTED.to_owned(),
            CodeIdentity {
                trust: Trust::Package,
                identifier: "trusted".into(),
                sha256: "a".repeat(64),
                ..Default::default()
            },
        );
        FakeHost {
            processes: processes
                .iter()
                .map(|(pid, path)| process(*pid, path, &[path]))
                .collect(),
            sockets: processes.iter().map(|(pid, _)| ping(*pid)).collect(),
            identities,
            events,
            scan_executables: true,
            ..Default::default()
        }
    }

    fn events(every_process: bool) -> FakeProcessEvents {
        FakeProcessEvents {
            every_process,
            ..Default::default()
        }
    }

    fn push(source: &FakeProcessEvents, batch: Vec<ProcessEvent>) {
        source.batches.lock().unwrap().push_back(batch);
    }

    fn socks() -> crate::judge::socks::SocksConfig {
        Default::default()
    }

    #[test]
    fn untrusted_processes_are_watched_and_their_sockets_recorded_once_per_refresh() {
        let source = events(true);
        let host = host(&[(10, TRUSTED), (11, BEACON)], Some(source.clone()));
        let mut watch = Watch::new(&host, DEFAULT_MAX_WATCHED);
        assert_eq!(
            (watch.status.source.as_str(), watch.status.note.as_str()),
            ("fake", "")
        );
        // The first tick judges every running process.
        let observations = watch.tick(&host, &socks(), 1000);
        assert_eq!(watch.watched_pids(), [11]);
        assert_eq!(observations.len(), 1, "{observations:?}");
        let o = &observations[0];
        assert_eq!(
            (o.pid, o.protocol_name.as_str(), o.path.as_str()),
            (11, "icmp", BEACON)
        );
        assert!(!o.subject_trusted);
        // Only the watched pid's fds are read, ICMP/UDP/raw only.
        let queries = host.socket_queries.lock().unwrap().clone();
        assert_eq!(queries.last().unwrap().pids.as_deref(), Some(&[11][..]));
        assert!(!queries.last().unwrap().protocols.tcp);
        // Written again only after the refresh interval.
        assert!(watch.tick(&host, &socks(), 1001).is_empty());
        assert_eq!(
            watch
                .tick(&host, &socks(), 1000 + RECORD_REFRESH_SECS)
                .len(),
            1
        );
        // Judged once: re-checks reuse the verdict.
        assert_eq!(watch.status.judged, 2);
        // The exit ends the watch of that process once it is seen gone.
        watch.handle(ProcessEvent::Exit(11));
        watch.judge_pending(&super::tests::host(&[(10, TRUSTED)], None));
        assert!(watch.watched_pids().is_empty());
        assert_eq!(watch.status.rescans, 1);
    }

    /// A kernel thread has no executable, so its identity is unknown and never
    /// trusted; it runs no user code, and is not watched. Its twin, an
    /// untrusted process, is.
    #[test]
    fn kernel_threads_are_not_watched() {
        let mut host = host(&[(2, ""), (11, BEACON)], Some(events(true)));
        if let Some(kthread) = host.processes.iter_mut().find(|p| p.pid == 2) {
            kthread.kernel_thread = true;
        }
        let mut watch = Watch::new(&host, DEFAULT_MAX_WATCHED);
        watch.tick(&host, &socks(), 1000);
        assert_eq!(watch.watched_pids(), [11]);
        assert_eq!(watch.status.judged, 2, "both were judged");
    }

    /// A tick's observations whose write fails (the store locked by another
    /// writer past the wait) are kept and written at the next tick, though the
    /// socket is gone by then; the failure is reported with its reason.
    #[test]
    fn observations_a_locked_store_refused_are_written_at_the_next_tick() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("an1256.db");
        let store = Store::open(&path, 0).unwrap();
        store.set_busy_timeout(Duration::from_millis(100)).unwrap();
        let source = events(true);
        let with_beacon = host(&[(10, TRUSTED), (11, BEACON)], Some(source.clone()));
        let mut watch = Watch::new(&with_beacon, DEFAULT_MAX_WATCHED);
        let seen = watch.tick(&with_beacon, &socks(), 1000);
        assert_eq!(seen.len(), 1, "{seen:?}");
        let other = rusqlite::Connection::open(&path).unwrap();
        other.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let limits = ObservationLimits::default();
        let refused = watch.write(Ok(&store), seen.clone(), limits);
        assert_eq!((refused.written, refused.given_up), (0, 0));
        let error = refused.error.expect("the locked store refuses the write");
        assert!(error.contains("locked by another writer"), "{error}");
        assert_eq!(watch.status.unwritten, 1);
        // An unavailable store keeps them too.
        let unavailable = watch.write(
            Err(&StoreError::Invalid("no store".into())),
            Vec::new(),
            limits,
        );
        assert_eq!(unavailable, TickWrite::default(), "nothing new to write");
        other.execute_batch("COMMIT").unwrap();
        // The beacon exited; its observation is still written.
        watch.handle(ProcessEvent::Exit(11));
        let without = host(&[(10, TRUSTED)], Some(source));
        let next = watch.tick(&without, &socks(), 1001);
        assert_eq!(next, seen);
        let written = watch.write(Ok(&store), next, limits);
        assert_eq!((written.written, written.error), (1, None));
        assert_eq!(watch.status.unwritten, 0);
        let stored = store.observations(None).unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].observation.pid, 11);
        assert!(
            watch.tick(&without, &socks(), 1002).is_empty(),
            "written once"
        );
    }

    /// Past MAX_UNWRITTEN held, the oldest are given up and counted.
    #[test]
    fn held_observations_are_bounded_and_the_excess_counted() {
        let source = events(true);
        let host = host(&[(10, TRUSTED)], Some(source));
        let mut watch = Watch::new(&host, DEFAULT_MAX_WATCHED);
        let many: Vec<Observation> = (0..MAX_UNWRITTEN + 5)
            .map(|port| Observation {
                remote_port: i64::try_from(port).unwrap(),
                ..Observation::default()
            })
            .collect();
        let refused = watch.write(
            Err(&StoreError::Invalid("no store".into())),
            many,
            ObservationLimits::default(),
        );
        assert_eq!(refused.given_up, 5);
        assert_eq!(refused.error.as_deref(), Some("no store"));
        assert_eq!(watch.status.unwritten, MAX_UNWRITTEN as u64);
        // The oldest went: the first one held is port 5.
        let next = watch.tick(&host, &socks(), 1000);
        assert_eq!(next.len(), MAX_UNWRITTEN);
        assert_eq!(next[0].remote_port, 5);
    }

    #[test]
    fn execs_are_judged_forks_of_untrusted_parents_followed() {
        let source = events(true);
        let before = host(&[(10, TRUSTED)], Some(source.clone()));
        let mut watch = Watch::new(&before, DEFAULT_MAX_WATCHED);
        watch.tick(&before, &socks(), 1000);
        assert!(watch.watched_pids().is_empty());
        // pid 10 execs the beacon, which forks 12; trusted 13 forks 14.
        let after = host(
            &[(10, BEACON), (12, BEACON), (13, TRUSTED), (14, TRUSTED)],
            Some(source.clone()),
        );
        watch.handle(ProcessEvent::Exec(10));
        watch.judge_pending(&after);
        assert_eq!(
            watch.watched_pids(),
            [10],
            "judged at exec, before the tick"
        );
        watch.handle(ProcessEvent::Fork {
            parent: 10,
            child: 12,
        });
        watch.handle(ProcessEvent::Fork {
            parent: 13,
            child: 14,
        });
        assert_eq!(watch.pending_len(), 1, "only the untrusted parent's child");
        // Events come through the source between ticks.
        push(&source, vec![ProcessEvent::Exec(13)]);
        watch.until(
            Instant::now() + Duration::from_millis(50),
            &AtomicBool::new(false),
        );
        assert_eq!(watch.pending_len(), 2, "judged at the tick, not before");
        watch.judge_pending(&after);
        assert_eq!(watch.watched_pids(), [10, 12]);
        assert!(host_calls(&after).contains(&13), "exec judged");
        // An exec into trusted code ends the watch.
        let trusted_again = host(&[(10, TRUSTED), (12, BEACON)], Some(source));
        watch.handle(ProcessEvent::Exec(10));
        assert!(
            watch.watched[&10].is_none(),
            "the old image's verdict is never used for the new image's sockets"
        );
        watch.tick(&trusted_again, &socks(), 1001);
        assert_eq!(watch.watched_pids(), [12]);
    }

    #[test]
    fn an_untrusted_process_that_found_the_set_full_is_watched_once_a_slot_frees() {
        let source = events(true);
        let all = host(&[(10, BEACON), (11, BEACON), (12, BEACON)], Some(source));
        let mut watch = Watch::new(&all, 2);
        for pid in [10, 11, 12] {
            watch.handle(ProcessEvent::Exec(pid));
        }
        watch.judge_pending(&all);
        assert_eq!(watch.watched_pids(), [10, 11]);
        assert_eq!(watch.status.overflow, 1);
        // A decoy exits: the beacon that found the set full takes its slot.
        let after = host(&[(11, BEACON), (12, BEACON)], None);
        watch.handle(ProcessEvent::Exit(10));
        watch.judge_pending(&after);
        watch.judge_pending(&after);
        assert_eq!(watch.watched_pids(), [11, 12]);
    }

    #[test]
    fn each_recheck_starts_one_watched_pid_further_on() {
        let source = events(true);
        let all = host(&[(10, BEACON), (11, BEACON), (12, BEACON)], Some(source));
        let mut watch = Watch::new(&all, DEFAULT_MAX_WATCHED);
        watch.tick(&all, &socks(), 1000);
        let mut firsts = Vec::new();
        for now in 1001..1004 {
            watch.recheck(&all, &socks(), now);
            let queries = all.socket_queries.lock().unwrap().clone();
            let pids = queries.last().unwrap().pids.clone().unwrap();
            assert_eq!(pids.len(), 3);
            firsts.push(pids[0]);
        }
        firsts.sort_unstable();
        assert_eq!(firsts, [10, 11, 12], "every pid goes first in turn");
    }

    #[test]
    fn an_exit_event_for_a_watched_pid_that_lives_on_keeps_it_watched() {
        let source = events(true);
        let host_now = host(&[(10, BEACON), (11, BEACON)], Some(source));
        let mut watch = Watch::new(&host_now, DEFAULT_MAX_WATCHED);
        watch.handle(ProcessEvent::Exec(10));
        watch.handle(ProcessEvent::Exec(11));
        watch.judge_pending(&host_now);
        assert_eq!(watch.watched_pids(), [10, 11]);
        // The main threads exit (pid == tgid); 10's other threads live on, 11 is gone.
        let after = host(&[(10, BEACON)], None);
        watch.handle(ProcessEvent::Exit(10));
        watch.handle(ProcessEvent::Exit(11));
        watch.judge_pending(&after);
        assert_eq!(
            watch.watched_pids(),
            [10],
            "judged again, not dropped on the event"
        );
    }

    fn host_calls(host: &FakeHost) -> Vec<Pid> {
        host.process_calls.lock().unwrap().clone()
    }

    #[test]
    fn a_flood_of_execs_stays_bounded_and_asks_for_one_rescan() {
        let source = events(true);
        let host = host(&[(11, BEACON)], Some(source));
        let mut watch = Watch::new(&host, DEFAULT_MAX_WATCHED);
        watch.tick(&host, &socks(), 1000);
        assert_eq!(watch.status.rescans, 1);
        // 10,000 short-lived processes exec (none is alive when judged).
        for pid in 100_000..110_000 {
            watch.handle(ProcessEvent::Exec(pid));
        }
        assert_eq!(watch.pending_len(), MAX_PENDING);
        assert_eq!(watch.status.overflow, (10_000 - MAX_PENDING) as u64);
        let judged_before = watch.status.judged;
        watch.tick(&host, &socks(), 1001);
        let judged = (watch.status.judged - judged_before) as usize;
        assert!(
            judged <= JUDGEMENTS_PER_TICK,
            "{judged} judgements in one tick"
        );
        // The dropped ones asked for a listing, which found only pid 11 running.
        assert_eq!(watch.status.rescans, 2);
        assert_eq!(watch.watched_pids(), [11]);
        // The queue drains over the next ticks, each within its budget.
        for now in 1002..1010 {
            watch.tick(&host, &socks(), now);
        }
        assert_eq!(watch.pending_len(), 0);
        assert!(watch.status.judged <= 1 + 9 * JUDGEMENTS_PER_TICK as u64);
        // Lost events ask for a listing too.
        watch.handle(ProcessEvent::Lost);
        assert_eq!(watch.status.lost_events, 1);
        let rescans = watch.status.rescans;
        watch.tick(&host, &socks(), 1011);
        assert_eq!(watch.status.rescans, rescans + 1);
        // A known pid that did not change is not judged again: every judgement
        // after the first was one of the flood's.
        assert!(watch.status.judged <= 1 + MAX_PENDING as u64);
    }

    #[test]
    fn after_lost_events_the_listing_finds_an_exec_no_event_told() {
        let source = events(true);
        let before = host(&[(10, TRUSTED)], Some(source.clone()));
        let mut watch = Watch::new(&before, DEFAULT_MAX_WATCHED);
        watch.tick(&before, &socks(), 1000);
        assert!(watch.watched_pids().is_empty());
        // Without events, the connector's watch does not list the processes.
        let after = host(&[(10, BEACON)], Some(source));
        watch.tick(&after, &socks(), 1001);
        assert!(watch.watched_pids().is_empty());
        // The events were lost: the listing sees pid 10's new executable.
        watch.handle(ProcessEvent::Lost);
        watch.tick(&after, &socks(), 1002);
        assert_eq!(watch.watched_pids(), [10]);
    }

    #[test]
    fn a_verdict_for_another_image_never_names_the_sockets() {
        let source = events(true);
        let before = host(&[(10, BEACON)], Some(source.clone()));
        let mut watch = Watch::new(&before, DEFAULT_MAX_WATCHED);
        watch.tick(&before, &socks(), 1000);
        assert_eq!(watch.watched_pids(), [10]);
        // pid 10 exec'd another untrusted program; the event never came.
        let after = host(&[(10, "/tmp/other")], Some(source));
        let observations = watch.tick(&after, &socks(), 1000 + RECORD_REFRESH_SECS);
        assert_eq!(observations.len(), 1, "{observations:?}");
        assert_eq!(observations[0].exe_path, "/tmp/other");
    }

    #[test]
    fn the_watched_set_is_capped_and_the_rest_counted() {
        let processes: Vec<(Pid, &str)> = (100..150).map(|pid| (pid, BEACON)).collect();
        let host = host(&processes, Some(events(true)));
        let mut watch = Watch::new(&host, 8);
        watch.tick(&host, &socks(), 1000);
        assert_eq!(watch.watched_pids().len(), 8);
        assert_eq!(watch.status.overflow, 42);
        assert_eq!(watch.status.watched, 8);
    }

    #[test]
    fn without_events_the_watch_polls_for_new_pids_and_changed_executables() {
        let first = host(&[(10, TRUSTED)], None);
        let mut watch = Watch::new(&first, DEFAULT_MAX_WATCHED);
        assert_eq!(watch.status.source, "polling");
        assert!(
            watch.status.note.contains("no process event source"),
            "{:?}",
            watch.status
        );
        watch.tick(&first, &socks(), 1000);
        assert!(watch.watched_pids().is_empty());
        // A new pid, and pid 10 exec'd the beacon (same pid, new executable).
        let second = host(&[(10, BEACON), (20, BEACON)], None);
        watch.tick(&second, &socks(), 1001);
        assert_eq!(watch.watched_pids(), [10, 20]);
        // Gone from the list: forgotten.
        let third = host(&[(20, BEACON)], None);
        watch.tick(&third, &socks(), 1002);
        assert_eq!(watch.watched_pids(), [20]);
    }

    #[test]
    fn a_per_pid_source_follows_every_listed_pid() {
        let source = events(false);
        let host = host(&[(10, TRUSTED), (11, BEACON)], Some(source.clone()));
        let mut watch = Watch::new(&host, DEFAULT_MAX_WATCHED);
        assert_eq!(watch.status.source, "fake+polling");
        watch.tick(&host, &socks(), 1000);
        assert_eq!(source.followed.lock().unwrap().as_slice(), &[10, 11]);
        assert_eq!(watch.watched_pids(), [11]);
        // Its exec event re-judges a followed pid without waiting for a listing.
        let after = crate::platform::FakeHost {
            processes: vec![
                process(10, BEACON, &[BEACON]),
                process(11, BEACON, &[BEACON]),
            ],
            ..Default::default()
        };
        push(&source, vec![ProcessEvent::Exec(10)]);
        watch.until(
            Instant::now() + Duration::from_millis(50),
            &AtomicBool::new(false),
        );
        watch.judge_pending(&after);
        assert_eq!(watch.watched_pids(), [10, 11]);
    }

    #[test]
    fn an_unreadable_process_stays_watched_and_is_judged_again() {
        // pid 11 could not be judged when it exec'd (an error, not an exit): it is
        // watched all the same, and the re-check judges it before reading its fds.
        let host = host(&[(11, BEACON)], Some(events(true)));
        let mut watch = Watch::new(&host, DEFAULT_MAX_WATCHED);
        watch.watch(11, None);
        let observations = watch.recheck(&host, &socks(), 1000);
        assert_eq!(watch.watched_pids(), [11]);
        assert_eq!(observations.len(), 1, "judged again at the re-check");
    }

    #[test]
    fn after_lost_events_an_exec_that_keeps_the_executable_is_judged_again() {
        let source = events(true);
        let before = host(&[(10, TRUSTED), (11, TRUSTED)], Some(source.clone()));
        let mut watch = Watch::new(&before, DEFAULT_MAX_WATCHED);
        watch.tick(&before, &socks(), 1000);
        // pid 10 execs its own executable again with another argv (bash ->
        // bash evil.sh); pid 11 runs on unchanged. The events were lost.
        let mut after = host(&[(10, TRUSTED), (11, TRUSTED)], Some(source));
        after.processes[0].argv.push("/tmp/evil.sh".into());
        watch.handle(ProcessEvent::Lost);
        watch.tick(&after, &socks(), 1001);
        assert_eq!(host_calls(&after), [10], "only the changed image");
    }

    #[test]
    fn processes_without_an_image_stamp_are_judged_again_a_bounded_few_a_tick_after_new_ones() {
        let crowd: Vec<(Pid, &str)> = (100..200).map(|pid| (pid, TRUSTED)).collect();
        let mut first = host(&crowd, None);
        first.unstamped = (100..200).collect();
        let mut watch = Watch::new(&first, DEFAULT_MAX_WATCHED);
        watch.tick(&first, &socks(), 1000);
        assert_eq!(host_calls(&first).len(), 100);
        // A new untrusted pid appears: judged first, then at most
        // MAX_UNSTAMPED_PER_TICK of the crowd, which cannot be told unchanged.
        let mut processes = crowd.clone();
        processes.push((300, BEACON));
        let mut second = host(&processes, None);
        second.unstamped = (100..200).collect();
        watch.tick(&second, &socks(), 1001);
        let calls = host_calls(&second);
        assert_eq!(calls.first(), Some(&300));
        assert_eq!(calls.len(), 1 + MAX_UNSTAMPED_PER_TICK);
        assert_eq!(watch.watched_pids(), [300]);
        // The next tick goes on with the rest: every one is judged again.
        watch.tick(&second, &socks(), 1002);
        let calls: HashSet<Pid> = host_calls(&second).into_iter().collect();
        assert!((100..200).all(|pid| calls.contains(&pid)), "{calls:?}");
        // Stamped, unchanged processes are not (the new pid is judged once).
        assert_eq!(host_calls(&second).iter().filter(|p| **p == 300).count(), 1);
    }
}
