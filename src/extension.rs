//! osquery extension mode: serves the tables over osquery's Thrift protocol.
//! (Being written.)

use crate::tables::TableDef;
use std::path::PathBuf;
use std::sync::Arc;

/// osquery's extension argv.
#[derive(Clone, Debug)]
pub struct ExtensionArgs {
    pub socket: PathBuf,
    pub timeout: u64,
    pub interval: u64,
    pub verbose: bool,
}

/// Registers the tables with osquery's manager and serves them until osquery goes
/// away, shuts the extension down, or a SIGTERM/SIGINT arrives.
pub fn run(_args: &ExtensionArgs, _tables: Vec<Arc<dyn TableDef>>) -> Result<(), String> {
    Err("extension mode is not yet implemented".into())
}
