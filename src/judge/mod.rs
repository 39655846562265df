//! The judge layer: decisions over `Host` facts. Which file a process runs
//! (`script`, `subject`), what its sockets are (`classify`, `socks`) and how
//! bad a hit is (`severity`). OS access goes through `platform::Host`.

pub mod classify;
pub mod script;
pub mod severity;
pub mod socks;
pub mod subject;
