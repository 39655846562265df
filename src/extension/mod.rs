//! osquery extension mode: serves every [`TableDef`] over osquery's Thrift
//! extension protocol (osquery-rust-ng does the transport, registration and the
//! ping loop; this module connects, registers and runs the server).
//!
//! - `adapter`: each table as an osquery table plugin ([`TableAdapter`]);
//! - `watch`: the manager watch (registration confirmed, a hung osquery exits us);
//! - `registered`: the small Thrift client that lists the manager's extensions.
//!
//! Logging is set up by `crate::logging`.

mod adapter;
mod error;
mod registered;
mod watch;

pub use adapter::{TableAdapter, CALL_TIME_LIMIT};
pub use error::ServeError;
use watch::spawn_manager_watch;

use crate::tables::TableDef;
use osquery_rust_ng::Server;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The name osquery lists the extension under (`osquery_extensions.name`).
pub const EXTENSION_NAME: &str = "an1256";

/// How often to retry while waiting for osquery's manager socket.
const CONNECT_RETRY: Duration = Duration::from_millis(100);

/// osquery's extension argv.
#[derive(Clone, Debug)]
pub struct ExtensionArgs {
    pub socket: PathBuf,
    pub timeout: u64,
    pub interval: u64,
    pub verbose: bool,
}

/// Registers the tables with osquery's manager and serves them until osquery goes
/// away (a failed ping), osquery asks the extension to shut down, or a
/// SIGTERM/SIGINT arrives. Returns `Ok` on any of those clean shutdowns.
pub fn run(args: &ExtensionArgs, tables: Vec<Arc<dyn TableDef>>) -> Result<(), ServeError> {
    // main() set logging up already; this keeps `run` usable on its own.
    crate::logging::init(crate::logging::level_for(true, args.verbose));
    let socket = args
        .socket
        .to_str()
        .ok_or_else(|| ServeError::SocketPathNotUtf8 {
            path: args.socket.clone(),
        })?;
    let mut server = connect_to_manager(socket, Duration::from_secs(args.timeout))?;
    refuse_duplicate(socket)?;
    for table in tables {
        log::debug!("registering table {}", table.name());
        server.register_plugin(TableAdapter::new(table));
    }
    let failure = Arc::new(Mutex::new(None));
    let finished = Arc::new(AtomicBool::new(false));
    let watch = spawn_manager_watch(
        socket,
        Duration::from_secs(args.interval.max(1)),
        server.get_stop_handle(),
        failure.clone(),
        finished.clone(),
    );
    // osquery-rust-ng pings the manager every 500 ms whatever --interval says;
    // osquery's own --interval only paces osquery's pings of us.
    log::info!(
        "{EXTENSION_NAME} {} serving on {socket}.<uuid> (osquery interval {} s)",
        env!("CARGO_PKG_VERSION"),
        args.interval
    );
    let served = server
        .run_with_signal_handling()
        .map_err(|source| ServeError::Protocol {
            socket: socket.to_owned(),
            source,
        });
    finished.store(true, Ordering::Release);
    let _ = watch.join();
    served?;
    if let Some(why) = failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(why);
    }
    log::info!("{EXTENSION_NAME} stopped");
    Ok(())
}

/// Refuses to start when osquery already lists an extension of our name: osquery
/// would refuse the registration anyway, and the running copy keeps serving.
fn refuse_duplicate(socket: &str) -> Result<(), ServeError> {
    match registered::registered_extensions(socket) {
        Ok(list) => match ours(&list) {
            Some(other) => Err(ServeError::Duplicate {
                socket: socket.to_owned(),
                name: EXTENSION_NAME,
                uuid: other.uuid,
            }),
            None => Ok(()),
        },
        // The check is a courtesy: registration itself still decides.
        Err(e) => {
            log::debug!("{e}");
            Ok(())
        }
    }
}
/// The registration of an extension named as ours, if osquery lists one.
fn ours(list: &[registered::Registered]) -> Option<&registered::Registered> {
    list.iter().find(|e| e.name == EXTENSION_NAME)
}
/// Connects to the manager socket, retrying until `timeout`: osquery may start the
/// extension before its manager listens (`Server::new` fails until then).
fn connect_to_manager(socket: &str, timeout: Duration) -> Result<Server<TableAdapter>, ServeError> {
    let deadline = Instant::now() + timeout;
    loop {
        match Server::new(Some(EXTENSION_NAME), socket) {
            // The crate version, so osquery_extensions.version tells releases apart.
            Ok(server) => return Ok(server.with_version(env!("CARGO_PKG_VERSION"))),
            Err(e) => {
                if Instant::now() >= deadline {
                    let socket = socket.to_owned();
                    let waited_s = timeout.as_secs();
                    return Err(if Path::new(&socket).exists() {
                        ServeError::ManagerNotAccepting {
                            socket,
                            waited_s,
                            source: e,
                        }
                    } else {
                        ServeError::ManagerAbsent { socket, waited_s }
                    });
                }
                log::debug!("manager socket {socket} not ready yet: {e}");
                std::thread::sleep(CONNECT_RETRY);
            }
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_manager_socket_fails_after_the_timeout_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("never.em");
        let started = Instant::now();
        let err = connect_to_manager(socket.to_str().unwrap(), Duration::from_millis(300))
            .err()
            .unwrap()
            .to_string();
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(err.contains("did not appear within"), "{err}");
        assert!(err.contains("--extensions_socket"), "{err}");
    }

    #[test]
    fn stale_manager_socket_fails_with_the_connect_error() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("stale.em");
        // A socket file nobody listens on any more: connect() is refused.
        drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
        assert!(socket.exists());
        let err = connect_to_manager(socket.to_str().unwrap(), Duration::from_millis(200))
            .err()
            .unwrap();
        // The connect error is kept as the source, not only in the text.
        assert!(std::error::Error::source(&err).is_some(), "{err}");
        let err = err.to_string();
        assert!(err.contains("did not accept connections within"), "{err}");
        assert!(err.contains("refused"), "{err}");
    }
}
