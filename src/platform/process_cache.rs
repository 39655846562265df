//! Per-process facts kept across scans (extension mode: sampler passes and pack
//! runs). A fact read from one process image must never answer for another: a
//! pid is reused after an exit, and an exec keeps the pid *and* the start time.
//! So every entry is keyed by a [`ProcessStamp`] (pid, start time, the
//! executable file and the kernel's layout of the address space, which an exec
//! lays out anew) and is used only while the stamp read now equals it, and for
//! at most a bounded age. A platform that cannot stamp a process (or a process
//! whose layout the kernel did not randomize: `setarch -R` lets an exec of the
//! same file land in the old layout) caches nothing. Exec, exit and lost events
//! drop entries at once ([`ForgetProcesses`]).

use crate::model::Pid;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What tells one process image from another under the same pid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProcessStamp {
    pub pid: Pid,
    /// Start time in clock ticks since boot: differs after pid reuse.
    pub start_ticks: u64,
    /// The running executable's (device, inode) as the kernel holds it: an
    /// exec of another file never matches.
    pub executable: (u64, u64),
    /// Where the kernel put the image's code, data, heap, stack, arguments and
    /// environment (Linux `stat` fields 26-28 and 45-51). An exec builds a new
    /// layout; with address-space randomization (required for a stamp) it
    /// differs from the old one.
    pub layout: [u64; 10],
}

/// What an event source calls so that no fact outlives the image it was read
/// from: at every exec and exit, and for everything when events were lost.
pub trait ForgetProcesses: Send + Sync {
    fn forget(&self, pid: Pid);
    fn forget_all(&self);
}

/// Facts by process, each valid for the image its stamp names. Bounded in
/// entries and age.
pub struct ProcessCache<V> {
    entries: Mutex<HashMap<Pid, (ProcessStamp, Instant, V)>>,
    max_entries: usize,
    max_age: Duration,
}

impl<V: Clone> ProcessCache<V> {
    pub fn new(max_entries: usize, max_age: Duration) -> Self {
        ProcessCache {
            entries: Mutex::new(HashMap::new()),
            max_entries,
            max_age,
        }
    }

    /// The fact stored for this very image, if still young enough.
    pub fn get(&self, stamp: &ProcessStamp) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(&stamp.pid)
            .filter(|(stored, at, _)| stored == stamp && at.elapsed() < self.max_age)
            .map(|(_, _, value)| value.clone())
    }

    /// Stores a fact read from the image `stamp` names (replacing the pid's
    /// previous entry). When full, entries past their age go first, then all.
    pub fn insert(&self, stamp: ProcessStamp, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.max_entries && !entries.contains_key(&stamp.pid) {
            entries.retain(|_, (_, at, _)| at.elapsed() < self.max_age);
            if entries.len() >= self.max_entries {
                entries.clear();
            }
        }
        entries.insert(stamp.pid, (stamp, Instant::now(), value));
    }

    /// Drops what is known of `pid` (it exec'd or exited).
    pub fn forget(&self, pid: Pid) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&pid);
    }

    /// Drops every entry (events were lost: any pid may have exec'd).
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<V: Clone + Send> ForgetProcesses for ProcessCache<V> {
    fn forget(&self, pid: Pid) {
        ProcessCache::forget(self, pid);
    }

    fn forget_all(&self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(pid: Pid, start_ticks: u64, stack: u64) -> ProcessStamp {
        let mut layout = [0x5555_0000; 10];
        layout[2] = stack;
        ProcessStamp {
            pid,
            start_ticks,
            executable: (2049, 77),
            layout,
        }
    }

    #[test]
    fn a_fact_answers_only_for_its_own_image() {
        let cache = ProcessCache::new(4, Duration::from_secs(60));
        cache.insert(stamp(10, 500, 0x7ffd_0000), "libproxychains");
        assert_eq!(
            cache.get(&stamp(10, 500, 0x7ffd_0000)),
            Some("libproxychains")
        );
        // pid reused: another start time.
        assert_eq!(cache.get(&stamp(10, 900, 0x7ffd_0000)), None);
        // exec: same pid and start time, a new layout.
        assert_eq!(cache.get(&stamp(10, 500, 0x7ffc_1000)), None);
        // exec of another file into the same layout.
        let other_file = ProcessStamp {
            executable: (2049, 78),
            ..stamp(10, 500, 0x7ffd_0000)
        };
        assert_eq!(cache.get(&other_file), None);
        cache.forget(10);
        assert_eq!(cache.get(&stamp(10, 500, 0x7ffd_0000)), None);
        cache.insert(stamp(11, 500, 1), "x");
        ForgetProcesses::forget_all(&cache);
        assert!(cache.is_empty());
    }

    #[test]
    fn entries_are_bounded_in_number_and_age() {
        let cache = ProcessCache::new(2, Duration::from_secs(60));
        for pid in 1..=5 {
            cache.insert(stamp(pid, 1, 1), pid);
            assert!(cache.len() <= 2);
        }
        assert_eq!(cache.get(&stamp(5, 1, 1)), Some(5));
        let aged = ProcessCache::new(2, Duration::ZERO);
        aged.insert(stamp(1, 1, 1), 1);
        assert_eq!(aged.get(&stamp(1, 1, 1)), None, "past its age");
    }
}
