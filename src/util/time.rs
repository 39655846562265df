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
/// `seconds` ahead until the returned guard drops. Tests only (`fake-host`).
#[cfg(any(test, feature = "fake-host"))]
#[must_use = "the shift ends when the guard drops"]
pub fn shift_this_thread(seconds: i64) -> ClockShift {
    let previous = SHIFT_SECS.with(|s| s.replace(seconds));
    ClockShift { previous }
}

/// Restores the previous shift when dropped.
#[cfg(any(test, feature = "fake-host"))]
pub struct ClockShift {
    previous: i64,
}

#[cfg(any(test, feature = "fake-host"))]
impl Drop for ClockShift {
    fn drop(&mut self) {
        SHIFT_SECS.with(|s| s.set(self.previous));
    }
}

/// osquery's `calendarTime`: `Sat Nov 28 04:21:19 2026 UTC`.
pub fn calendar_time(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap_or(0);
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let weekday = WEEKDAYS
        .get(usize::try_from(days.rem_euclid(7)).unwrap_or(0))
        .unwrap_or(&"Thu");
    let month_name = MONTHS
        .get(usize::try_from(month - 1).unwrap_or(0))
        .unwrap_or(&"Jan");
    format!(
        "{weekday} {month_name} {day:2} {:02}:{:02}:{:02} {year} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// RFC 3339 UTC timestamp (ECS `@timestamp`).
pub fn rfc3339(unix: u64) -> String {
    let cal = calendar_time(unix);
    // Reuse the civil conversion: parse back the pieces we just formatted.
    let parts: Vec<&str> = cal.split_whitespace().collect();
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| parts.get(1) == Some(m))
    .unwrap_or(0)
        + 1;
    format!(
        "{}-{month:02}-{:0>2}T{}Z",
        parts.get(4).unwrap_or(&"1970"),
        parts.get(2).unwrap_or(&"1"),
        parts.get(3).unwrap_or(&"00:00:00")
    )
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

    #[test]
    fn calendar_and_rfc3339_times() {
        assert_eq!(calendar_time(0), "Thu Jan  1 00:00:00 1970 UTC");
        assert_eq!(calendar_time(951_782_400), "Tue Feb 29 00:00:00 2000 UTC");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_764_303_679), "2025-11-28T04:21:19Z");
    }
}
