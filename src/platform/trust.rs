//! Trust verdicts and the cache that makes them cheap: a verdict is computed once per
//! file identity (device, inode, size, mtime, ctime) and reused until the file
//! changes. Hashing is bounded by a size cap.

use crate::model::CodeIdentity;
use crate::util::hex::hex;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;

/// What identifies one version of a file: if any of these change, the verdict is
/// recomputed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl FileId {
    /// From `std::fs::Metadata` (Unix).
    pub fn from_metadata(meta: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }
}

/// Entries kept before the cache starts over; a host runs far fewer distinct
/// executables and scripts than this.
pub const DEFAULT_CACHE_ENTRIES: usize = 16_384;

/// A bounded, thread-safe verdict cache keyed by file identity (or any other key).
pub struct TrustCache<K = FileId> {
    entries: Mutex<HashMap<K, CodeIdentity>>,
    capacity: usize,
    stats: Mutex<CacheStats>,
}

/// Hit and miss counts, to prove that a second query evaluates nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

impl<K: std::hash::Hash + Eq + Clone> TrustCache<K> {
    pub fn new(capacity: usize) -> Self {
        TrustCache {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            stats: Mutex::new(CacheStats::default()),
        }
    }

    /// The cached verdict, or `compute()`'s, stored for next time. `compute` runs
    /// without the lock held, so slow hashing never blocks other lookups.
    pub fn get_or_insert_with(
        &self,
        key: K,
        compute: impl FnOnce() -> CodeIdentity,
    ) -> CodeIdentity {
        if let Some(found) = self.lock_entries().get(&key).cloned() {
            self.count(true);
            return found;
        }
        self.count(false);
        let value = compute();
        if crate::deadline::Deadline::current().expired() {
            // Possibly cut short by the deadline (an `unknown` that says so): a
            // later call, with time, decides for good.
            return value;
        }
        let mut entries = self.lock_entries();
        if entries.len() >= self.capacity {
            // Simple and bounded: a full cache starts over rather than tracking LRU.
            entries.clear();
        }
        entries.insert(key, value.clone());
        value
    }

    /// Like `get_or_insert_with`, but stores the computed verdict only when
    /// `compute` says it may be cached (a verdict from a passing failure is not).
    pub fn get_or_insert_if(
        &self,
        key: K,
        compute: impl FnOnce() -> (CodeIdentity, bool),
    ) -> CodeIdentity {
        if let Some(found) = self.lock_entries().get(&key).cloned() {
            self.count(true);
            return found;
        }
        self.count(false);
        let (value, cacheable) = compute();
        if cacheable {
            let mut entries = self.lock_entries();
            if entries.len() >= self.capacity {
                entries.clear();
            }
            entries.insert(key, value.clone());
        }
        value
    }

    /// The cached verdict, if any (counted as a hit or a miss).
    pub fn get(&self, key: &K) -> Option<CodeIdentity> {
        let found = self.lock_entries().get(key).cloned();
        self.count(found.is_some());
        found
    }

    /// Stores a verdict (the cache starts over when full).
    pub fn insert(&self, key: K, value: CodeIdentity) {
        let mut entries = self.lock_entries();
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(key, value);
    }

    /// Forgets one entry (a verdict that turned out to be transient).
    pub fn remove(&self, key: &K) {
        self.lock_entries().remove(key);
    }

    pub fn stats(&self) -> CacheStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.lock_entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock_entries(&self) -> std::sync::MutexGuard<'_, HashMap<K, CodeIdentity>> {
        // A panic while holding the lock leaves a usable map: recover it.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn count(&self, hit: bool) {
        if let Ok(mut s) = self.stats.lock() {
            if hit {
                s.hits += 1;
            } else {
                s.misses += 1;
            }
        }
    }
}

/// Apparent size minus allocated size above which a file is looked at for holes.
pub const SPARSE_SLACK_BYTES: u64 = 1024 * 1024;

/// Why a file is not hashed because it is mostly holes: a file whose holes
/// (`SEEK_HOLE`) exceed `SPARSE_SLACK_BYTES` is suspicious by itself (an executable
/// or script padded to make hashing expensive) and its holes are never read as data.
/// `None` for an ordinary file.
pub fn sparse_reason(apparent: u64, allocated: u64, hole_bytes: u64) -> Option<String> {
    (hole_bytes > SPARSE_SLACK_BYTES).then(|| {
        format!(
            "not hashed: sparse file ({apparent} bytes apparent, {allocated} allocated, {hole_bytes} in holes)"
        )
    })
}

/// What one uid may spend on hashing in one window (a pass of the scanner, the
/// sampler or a query).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetLimits {
    pub bytes: u64,
    pub time: std::time::Duration,
    pub window: std::time::Duration,
}

impl Default for BudgetLimits {
    fn default() -> Self {
        BudgetLimits {
            bytes: 1024 * 1024 * 1024,
            time: std::time::Duration::from_secs(10),
            window: std::time::Duration::from_secs(60),
        }
    }
}

/// Hashing spent by one uid since `since`.
#[derive(Clone, Copy, Debug)]
struct Spent {
    since: std::time::Instant,
    bytes: u64,
    time: std::time::Duration,
}

/// A hashing budget per uid and per window: one user's files cannot make the
/// scanner hash without end (their subjects go `unknown` instead), and cannot spend
/// another user's budget.
pub struct HashBudget {
    limits: BudgetLimits,
    spent: Mutex<HashMap<u32, Spent>>,
}

/// Most uids tracked before the budget table starts over.
const MAX_BUDGET_UIDS: usize = 65_536;

impl HashBudget {
    pub fn new(limits: BudgetLimits) -> Self {
        HashBudget {
            limits,
            spent: Mutex::new(HashMap::new()),
        }
    }

    fn with_spent<T>(
        &self,
        uid: u32,
        now: std::time::Instant,
        f: impl FnOnce(&mut Spent) -> T,
    ) -> T {
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        if spent.len() >= MAX_BUDGET_UIDS && !spent.contains_key(&uid) {
            spent.clear();
        }
        let entry = spent.entry(uid).or_insert(Spent {
            since: now,
            bytes: 0,
            time: std::time::Duration::ZERO,
        });
        if now.saturating_duration_since(entry.since) >= self.limits.window {
            *entry = Spent {
                since: now,
                bytes: 0,
                time: std::time::Duration::ZERO,
            };
        }
        f(entry)
    }

    /// Reserves `bytes` of hashing for `uid` now, or says why not.
    pub fn reserve(&self, uid: u32, bytes: u64, now: std::time::Instant) -> Result<(), HashError> {
        let limits = self.limits;
        self.with_spent(uid, now, |spent| {
            if spent.time >= limits.time || spent.bytes.saturating_add(bytes) > limits.bytes {
                return Err(HashError::BudgetSpent {
                    uid,
                    spent_bytes: spent.bytes,
                    spent_ms: spent.time.as_millis(),
                    limits,
                });
            }
            spent.bytes = spent.bytes.saturating_add(bytes);
            Ok(())
        })
    }

    /// Adds the time a hash took to `uid`'s spending.
    pub fn record_time(&self, uid: u32, took: std::time::Duration, now: std::time::Instant) {
        self.with_spent(uid, now, |spent| {
            spent.time = spent.time.saturating_add(took)
        });
    }
}

/// How often the same file (device, inode) may be hashed within `REHASH_INTERVAL`:
/// a file that changes once is judged again at once (a tampered file is `invalid`),
/// but a `touch` loop cannot make the scanner re-hash it on every pass.
pub const MAX_HASHES_PER_INTERVAL: u32 = 2;
/// The window of `MAX_HASHES_PER_INTERVAL`.
pub const REHASH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// How often each file (device, inode) was hashed in its current window, bounded.
#[derive(Default)]
pub struct RehashLimiter {
    hashes: Mutex<HashMap<(u64, u64), (std::time::Instant, u32)>>,
}

impl RehashLimiter {
    /// Whether `file` may be hashed now (and counts the hash when it may): at most
    /// `MAX_HASHES_PER_INTERVAL` times per `interval`.
    pub fn allow(
        &self,
        file: (u64, u64),
        now: std::time::Instant,
        interval: std::time::Duration,
    ) -> Result<(), HashError> {
        let mut hashes = self.hashes.lock().unwrap_or_else(|p| p.into_inner());
        if hashes.len() >= DEFAULT_CACHE_ENTRIES && !hashes.contains_key(&file) {
            hashes.clear();
        }
        let entry = hashes.entry(file).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= interval {
            *entry = (now, 0);
        }
        if entry.1 >= MAX_HASHES_PER_INTERVAL {
            return Err(HashError::RehashLimited {
                hashes: entry.1,
                window_secs: interval.as_secs(),
            });
        }
        entry.1 += 1;
        Ok(())
    }
}

/// Digests of one read pass over a file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileDigests {
    pub sha256: String,
    /// Only when asked for (dpkg records MD5).
    pub md5: Option<String>,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("not hashed: file is {size} bytes, over the {limit}-byte cap (raise max_hash_bytes)")]
    TooLarge { size: u64, limit: u64 },
    #[error("not hashed: {0}")]
    Io(#[from] std::io::Error),
    #[error("not hashed: the query's deadline passed while hashing")]
    DeadlinePassed,
    /// One uid's files took the hashing this window allows.
    #[error("not hashed: uid {uid}'s hashing budget is spent ({spent_bytes} bytes, {spent_ms} ms of {} bytes, {} ms per {} s)", limits.bytes, limits.time.as_millis(), limits.window.as_secs())]
    BudgetSpent {
        uid: u32,
        spent_bytes: u64,
        spent_ms: u128,
        limits: BudgetLimits,
    },
    /// A file that keeps changing is not re-hashed on every pass.
    #[error("not hashed: the file changed again after it was hashed {hashes} times in {window_secs} s; re-hashing is limited")]
    RehashLimited { hashes: u32, window_secs: u64 },
}

/// Hashes an open file in one pass: SHA-256 always, MD5 when `with_md5`. Refuses
/// files whose size (as stat says, and as read) exceeds `limit`.
pub fn hash_reader(
    reader: &mut impl Read,
    size_hint: u64,
    limit: u64,
    with_md5: bool,
) -> Result<FileDigests, HashError> {
    if size_hint > limit {
        return Err(HashError::TooLarge {
            size: size_hint,
            limit,
        });
    }
    let mut sha = Sha256::new();
    let mut md5 = with_md5.then(md5::Md5::new);
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total: u64 = 0;
    let deadline = crate::deadline::Deadline::current();
    loop {
        if deadline.expired() {
            return Err(HashError::DeadlinePassed);
        }
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        total += n as u64;
        if total > limit {
            // The file grew after stat: still bounded.
            return Err(HashError::TooLarge { size: total, limit });
        }
        let chunk = buffer.get(..n).unwrap_or_default();
        sha.update(chunk);
        if let Some(m) = md5.as_mut() {
            md5::Digest::update(m, chunk);
        }
    }
    Ok(FileDigests {
        sha256: hex(&sha.finalize()),
        md5: md5.map(|m| hex(&md5::Digest::finalize(m))),
        bytes: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::Trust;

    #[test]
    fn hashes_match_known_vectors() {
        let d = hash_reader(&mut &b"abc"[..], 3, 10, true).unwrap();
        assert_eq!(
            d.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.md5.as_deref(), Some("900150983cd24fb0d6963f7d28e17f72"));
        assert_eq!(d.bytes, 3);
        assert_eq!(crate::util::hex::sha256_hex(b"abc"), d.sha256);
    }

    #[test]
    fn hashing_is_capped_by_stat_and_by_read() {
        assert!(matches!(
            hash_reader(&mut &b"abcdef"[..], 6, 5, false),
            Err(HashError::TooLarge { size: 6, limit: 5 })
        ));
        // stat said small, the file said more: still refused
        assert!(matches!(
            hash_reader(&mut &b"abcdef"[..], 1, 5, false),
            Err(HashError::TooLarge { .. })
        ));
        let msg = hash_reader(&mut &b"abcdef"[..], 6, 5, false)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("max_hash_bytes"), "{msg}");
    }

    #[test]
    fn sparse_files_are_flagged_by_their_holes() {
        assert!(sparse_reason(200 << 20, 7 << 20, 193 << 20).is_some());
        assert_eq!(sparse_reason(4096, 4096, 0), None);
        assert_eq!(sparse_reason(10 << 20, 9 << 20, SPARSE_SLACK_BYTES), None);
        let why = sparse_reason(200, 100, 2 << 20).unwrap();
        assert!(why.contains("sparse"), "{why}");
    }

    #[test]
    fn the_hashing_budget_is_per_uid_and_per_window() {
        use std::time::{Duration, Instant};
        let budget = HashBudget::new(BudgetLimits {
            bytes: 100,
            time: Duration::from_millis(50),
            window: Duration::from_secs(60),
        });
        let t0 = Instant::now();
        assert!(budget.reserve(1000, 60, t0).is_ok());
        let over = budget.reserve(1000, 60, t0).unwrap_err();
        assert!(
            matches!(over, HashError::BudgetSpent { uid: 1000, .. }),
            "{over}"
        );
        assert!(over.to_string().contains("uid 1000"), "{over}");
        assert!(
            budget.reserve(1001, 60, t0).is_ok(),
            "another uid has its own"
        );
        assert!(budget.reserve(1000, 40, t0).is_ok(), "what is left");
        // Time spent closes the budget too.
        budget.record_time(1001, Duration::from_millis(50), t0);
        assert!(budget.reserve(1001, 1, t0).is_err());
        // A new window starts over.
        let later = t0 + Duration::from_secs(61);
        assert!(budget.reserve(1000, 100, later).is_ok());
        assert!(budget.reserve(1001, 100, later).is_ok());
    }

    #[test]
    fn rehashing_one_file_is_rate_limited() {
        use std::time::{Duration, Instant};
        let limiter = RehashLimiter::default();
        let t0 = Instant::now();
        let interval = Duration::from_secs(60);
        let at = |secs| t0 + Duration::from_secs(secs);
        assert!(limiter.allow((1, 2), t0, interval).is_ok());
        assert!(limiter.allow((1, 2), at(5), interval).is_ok(), "one change");
        let limited = limiter.allow((1, 2), at(10), interval).unwrap_err();
        assert!(
            limited.to_string().contains("re-hashing is limited"),
            "{limited}"
        );
        assert!(
            limiter.allow((1, 3), at(10), interval).is_ok(),
            "another file"
        );
        assert!(
            limiter.allow((1, 2), at(61), interval).is_ok(),
            "a new window"
        );
    }

    #[test]
    fn cache_computes_once_per_identity_and_stays_bounded() {
        let cache: TrustCache<u32> = TrustCache::new(2);
        let mut computed = 0;
        for _ in 0..3 {
            let v = cache.get_or_insert_with(1, || {
                computed += 1;
                CodeIdentity {
                    trust: Trust::Package,
                    ..Default::default()
                }
            });
            assert_eq!(v.trust, Trust::Package);
        }
        assert_eq!(computed, 1);
        assert_eq!(cache.stats(), CacheStats { hits: 2, misses: 1 });
        cache.get_or_insert_with(2, CodeIdentity::default);
        cache.get_or_insert_with(3, CodeIdentity::default);
        assert!(cache.len() <= 2);
    }

    #[test]
    fn verdicts_marked_not_cacheable_are_computed_again() {
        let cache: TrustCache<u32> = TrustCache::new(4);
        let mut computed = 0;
        for _ in 0..2 {
            cache.get_or_insert_if(7, || {
                computed += 1;
                (CodeIdentity::unknown("process exited mid-lookup"), false)
            });
        }
        assert_eq!((computed, cache.len()), (2, 0));
        for _ in 0..2 {
            cache.get_or_insert_if(8, || {
                computed += 1;
                (CodeIdentity::default(), true)
            });
        }
        assert_eq!((computed, cache.len()), (3, 1));
    }
}
