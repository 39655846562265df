//! Wall-clock time as the store and the outputs record it.
//!
//! Tests that must see the pack "a day later" shift the calling thread's clock with
//! [`shift_this_thread`]. Only code linked into the process can call it: no flag,
//! environment variable or config key reaches it, so nobody can fake a production
//! host's clock through an1256.

use std::cell::Cell;

thread_local! {
    static SHIFT_SECS: Cell<i64> = const { Cell::new(0) };
}

/// Seconds since the Unix epoch (0 if the clock is before it), plus this thread's
/// shift (zero unless a test set one).
pub fn unix_now() -> i64 {
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    real.saturating_add(this_thread_shift())
}

/// This thread's clock shift in seconds (what [`shift_this_thread`] set).
pub fn this_thread_shift() -> i64 {
    SHIFT_SECS.with(Cell::get)
}

/// Moves this thread's clock (`unix_now` and the embedded engine's SQL `'now'`)
/// `seconds` ahead until the returned guard drops.
#[must_use = "the shift ends when the guard drops"]
pub fn shift_this_thread(seconds: i64) -> ClockShift {
    let previous = SHIFT_SECS.with(|s| s.replace(seconds));
    ClockShift { previous }
}

/// Restores the previous shift when dropped.
pub struct ClockShift {
    previous: i64,
}

impl Drop for ClockShift {
    fn drop(&mut self) {
        SHIFT_SECS.with(|s| s.set(self.previous));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shift_moves_this_thread_only_and_ends_with_its_guard() {
        let before = unix_now();
        {
            let _later = shift_this_thread(25 * 3600);
            let shifted = unix_now();
            assert!(shifted >= before + 25 * 3600 && shifted <= before + 25 * 3600 + 60);
            let other = std::thread::spawn(unix_now).join().unwrap();
            assert!(other < before + 3600, "another thread keeps the real clock");
        }
        assert!(unix_now() < before + 3600);
    }
}
