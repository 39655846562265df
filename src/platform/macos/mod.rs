//! macOS backend: libproc sockets with their true protocols, Security.framework
//! trust of the live process, csops, procargs, quarantine, the system SOCKS proxy.
//!
//! The pure parts (procargs, quarantine, signing verdicts, socket-info conversion,
//! proxy values) compile on every OS and are unit-tested on Linux; the modules that
//! call into the system are macOS-only and type-checked here by `scripts/check-macos`.

pub mod codesign;
pub mod procargs;
pub mod proxy;
pub mod quarantine;
pub mod sockinfo;
pub mod stdin;

#[cfg(target_os = "macos")]
mod host;
#[cfg(target_os = "macos")]
mod platform_uuid;
#[cfg(target_os = "macos")]
pub mod proc_events;
#[cfg(target_os = "macos")]
pub mod security;
#[cfg(target_os = "macos")]
mod sockets;
#[cfg(target_os = "macos")]
mod sys;

#[cfg(target_os = "macos")]
pub use host::MacHost;
#[cfg(target_os = "macos")]
pub use platform_uuid::{platform_uuid, PlatformUuidError};
pub use proxy::{system_socks_proxy, SocksProxy};
#[cfg(target_os = "macos")]
pub use sys::home_directory;
