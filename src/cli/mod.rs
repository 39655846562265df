//! The cli layer: the standalone commands and their output formats. `scan`
//! runs the embedded engine, so this layer sits on serve.

pub mod baseline;
pub mod docs;
pub mod ecs;
pub mod osquery_log;
pub mod packs;
pub mod scan;

/// The cli layer's error: why a command could not run. `Display` says what to
/// do; `main` prints it and exits 2.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The pack compiled into the binary is broken: a build defect.
    #[error("packs/an1256.conf does not parse: {0}")]
    PackUnparsable(String),
    #[error("packs/an1256.conf has no {0} query")]
    PackQueryMissing(&'static str),
    #[error("cannot start the embedded SQLite engine: {0}")]
    Engine(#[source] rusqlite::Error),
    #[error("query abandoned after {seconds} s (raise --time-limit or narrow the query)")]
    Abandoned { seconds: u64 },
    #[error("SQL error: {0}")]
    Sql(#[source] rusqlite::Error),
    /// A command-line value that cannot be used.
    #[error("{0}")]
    Usage(String),
    /// A file the command reads or writes.
    #[error("cannot {action} {path}: {cause}")]
    File {
        action: &'static str,
        path: String,
        cause: std::io::Error,
    },
    /// A baseline export document that cannot be imported.
    #[error("{0}")]
    BadDocument(String),
    #[error(transparent)]
    Store(#[from] crate::baseline::StoreError),
}
