//! The manager watch: after registering, osquery must list the extension; later,
//! a manager that accepts calls but answers none is hung, and the extension exits.

use super::{ours, registered, ServeError, EXTENSION_NAME};
use osquery_rust_ng::ServerStopHandle;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long osquery has to list the extension after registering it.
const REGISTRATION_CHECK: Duration = Duration::from_secs(3);
/// How often the registration check asks (and the watch wakes up).
const REGISTRATION_POLL: Duration = Duration::from_millis(100);
/// The shortest time an unanswering manager is given before it counts as hung.
const MIN_HANG_LIMIT: Duration = Duration::from_secs(10);
/// How long a stopped server loop may take to return before the process exits.
const HUNG_GRACE: Duration = Duration::from_secs(3);
/// Watches the manager from a thread of its own. `failure` is what [`run`](super::run) returns
/// as the error; `finished` is set once the server loop has returned.
/// - After registering, osquery must list us. If it does not within
///   [`REGISTRATION_CHECK`], it refused the registration (osquery-rust-ng does not
///   look at the answer): say why and stop the server.
/// - Then, every `interval`, the manager must answer. One that accepts calls but
///   has not answered for [`hang_limit`] is hung, and osquery-rust-ng's ping (no
///   timeout) would wait for it forever: say why, stop the server, and exit the
///   process if the server loop has not returned [`HUNG_GRACE`] later.
///
/// A manager that is gone (refused or closed connections) is the ping loop's
/// business: it shuts the extension down cleanly.
pub(super) fn spawn_manager_watch(
    socket: &str,
    interval: Duration,
    stop: ServerStopHandle,
    failure: Arc<Mutex<Option<ServeError>>>,
    finished: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let socket = socket.to_owned();
    std::thread::spawn(move || {
        let fail = |why: ServeError| {
            *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
            stop.stop();
        };
        match registration_confirmed(&socket, &stop) {
            Some(true) => {}
            Some(false) => {
                return fail(ServeError::RegistrationRefused {
                    socket: socket.clone(),
                    name: EXTENSION_NAME,
                    after_s: REGISTRATION_CHECK.as_secs(),
                })
            }
            None => return,
        }
        let limit = hang_limit(interval);
        let mut unanswered_since: Option<Instant> = None;
        // Only a manager unanswering for `limit` leaves this loop; a stopped
        // server (osquery gone, shutdown, signal) ends the watch quietly.
        loop {
            if !sleep_while_running(&stop, interval) {
                return;
            }
            match registered::registered_extensions(&socket) {
                Err(registered::ManagerError::Unanswered(e)) => {
                    log::debug!("{e}");
                    let since = *unanswered_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= limit {
                        break;
                    }
                }
                _ => unanswered_since = None,
            }
        }
        let why = ServeError::ManagerHung {
            socket: socket.clone(),
            after_s: limit.as_secs(),
        };
        log::error!("{why}");
        fail(why);
        let deadline = Instant::now() + HUNG_GRACE;
        while !finished.load(Ordering::Acquire) {
            if Instant::now() >= deadline {
                // The ping loop is stuck in a call that never returns.
                std::process::exit(1);
            }
            std::thread::sleep(REGISTRATION_POLL);
        }
    })
}
/// Whether osquery lists the extension within [`REGISTRATION_CHECK`]: `None` when
/// the server stopped first or the manager could not be asked (then the ping loop
/// decides).
fn registration_confirmed(socket: &str, stop: &ServerStopHandle) -> Option<bool> {
    let deadline = Instant::now() + REGISTRATION_CHECK;
    while stop.is_running() {
        match registered::registered_extensions(socket) {
            Ok(list) if ours(&list).is_some() => return Some(true),
            Ok(_) if Instant::now() >= deadline => return Some(false),
            Err(e) if Instant::now() >= deadline => {
                log::debug!("registration not confirmed: {e}");
                return None;
            }
            _ => std::thread::sleep(REGISTRATION_POLL),
        }
    }
    None
}

/// Sleeps `total` in short steps; false as soon as the server has stopped.
fn sleep_while_running(stop: &ServerStopHandle, total: Duration) -> bool {
    let deadline = Instant::now() + total;
    while Instant::now() < deadline {
        if !stop.is_running() {
            return false;
        }
        std::thread::sleep(REGISTRATION_POLL);
    }
    stop.is_running()
}

/// How long the manager may leave calls unanswered before the extension treats
/// osquery as hung: ten of osquery's ping intervals, at least [`MIN_HANG_LIMIT`].
fn hang_limit(interval: Duration) -> Duration {
    (interval * 10).max(MIN_HANG_LIMIT)
}
