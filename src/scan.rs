//! `an1256 scan` and `an1256 query`: the embedded engine's command-line front.
//! (Being written.)

use crate::tables::TableDef;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    /// The SQL to run.
    pub sql: String,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn scan(_args: &ScanArgs, _tables: Vec<Arc<dyn TableDef>>) -> ExitCode {
    ExitCode::from(2)
}

pub fn query(_args: &QueryArgs, _tables: Vec<Arc<dyn TableDef>>) -> ExitCode {
    ExitCode::from(2)
}
