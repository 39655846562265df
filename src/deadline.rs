//! Deadlines that Rust loops check. SQLite's progress handler only interrupts the
//! SQL engine between rows; the fd walk, SOCKS classification, hashing and config
//! reads run inside one table call, so they check a [`Deadline`] themselves and stop
//! early, returning what they found. The caller that set the deadline then reports
//! the result as partial.
//!
//! A deadline travels explicitly in `QueryContext` and `SocketQuery`; for code deep
//! below the `Host` trait (hashing, config reads) the table entry point also makes it
//! the thread's *current* deadline ([`Deadline::enter`]), and threads spawned for a
//! call copy it ([`Deadline::current`]).

use std::cell::Cell;
use std::time::{Duration, Instant};

/// A point in time after which work should stop; `Deadline::NONE` never passes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deadline {
    at: Option<Instant>,
}

thread_local! {
    static CURRENT: Cell<Deadline> = const { Cell::new(Deadline::NONE) };
}

impl Deadline {
    /// No deadline.
    pub const NONE: Deadline = Deadline { at: None };

    /// `limit` from now.
    pub fn after(limit: Duration) -> Deadline {
        Deadline {
            at: Instant::now().checked_add(limit),
        }
    }

    /// True once the deadline has passed.
    pub fn expired(self) -> bool {
        self.at.is_some_and(|at| Instant::now() >= at)
    }

    /// Time left (`None` for no deadline; zero once passed).
    pub fn remaining(self) -> Option<Duration> {
        self.at
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// The earlier of two deadlines.
    pub fn min(self, other: Deadline) -> Deadline {
        match (self.at, other.at) {
            (Some(a), Some(b)) => Deadline { at: Some(a.min(b)) },
            (Some(_), None) => self,
            (None, _) => other,
        }
    }

    /// The deadline of the table call running on this thread (`NONE` outside one).
    pub fn current() -> Deadline {
        CURRENT.with(Cell::get)
    }

    /// Makes this the thread's current deadline until the guard drops (then the
    /// previous one is back, so nested calls restore correctly).
    pub fn enter(self) -> DeadlineScope {
        let previous = CURRENT.with(|c| c.replace(self));
        DeadlineScope { previous }
    }
}

/// Restores the previous current deadline on drop.
#[must_use = "the deadline is current only while the scope lives"]
pub struct DeadlineScope {
    previous: Deadline,
}

impl Drop for DeadlineScope {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_never_expires_and_past_deadlines_do() {
        assert!(!Deadline::NONE.expired());
        assert_eq!(Deadline::NONE.remaining(), None);
        let past = Deadline::after(Duration::ZERO);
        assert!(past.expired());
        assert_eq!(past.remaining(), Some(Duration::ZERO));
        let future = Deadline::after(Duration::from_secs(60));
        assert!(!future.expired());
        assert_eq!(future.min(past), past);
        assert_eq!(Deadline::NONE.min(future), future);
    }

    #[test]
    fn entered_deadline_is_current_until_the_scope_ends() {
        assert_eq!(Deadline::current(), Deadline::NONE);
        let outer = Deadline::after(Duration::from_secs(60));
        {
            let _outer = outer.enter();
            assert_eq!(Deadline::current(), outer);
            {
                let _inner = Deadline::after(Duration::ZERO).enter();
                assert!(Deadline::current().expired());
            }
            assert_eq!(Deadline::current(), outer);
            // Other threads start with none.
            std::thread::spawn(|| assert_eq!(Deadline::current(), Deadline::NONE))
                .join()
                .unwrap();
        }
        assert_eq!(Deadline::current(), Deadline::NONE);
    }
}
