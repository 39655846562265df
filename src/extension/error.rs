//! The serve layer's errors: why the extension could not start or stopped
//! serving, and why osquery's write request to a table was malformed.

use std::path::PathBuf;

/// Why serving failed, or why a write request from osquery was malformed. Each
/// message says what to check next where a user can act.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("osquery's extension socket path {} is not valid UTF-8", .path.display())]
    SocketPathNotUtf8 { path: PathBuf },
    #[error(
        "osquery's extension socket {socket} did not accept connections within {waited_s} s \
         ({source}); is osqueryd running with --extensions_socket?"
    )]
    ManagerNotAccepting {
        socket: String,
        waited_s: u64,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "osquery's extension socket {socket} did not appear within {waited_s} s; is osqueryd \
         running with --extensions_socket?"
    )]
    ManagerAbsent { socket: String, waited_s: u64 },
    #[error(
        "osquery at {socket} already has an {name} extension registered (uuid {uuid}); not \
         starting a second copy. Look for it with `SELECT * FROM osquery_extensions`, and list \
         an1256.ext once in --extensions_autoload or extensions.load"
    )]
    Duplicate {
        socket: String,
        name: &'static str,
        uuid: i64,
    },
    #[error(
        "osquery at {socket} refused to register {name} (it is not in the manager's extension \
         list {after_s} s later); run with --verbose and check osquery's log: a table name \
         another extension already registers is the usual cause"
    )]
    RegistrationRefused {
        socket: String,
        name: &'static str,
        after_s: u64,
    },
    #[error(
        "osquery's manager at {socket} has accepted calls but answered none for {after_s} s; \
         treating osquery as hung and exiting (osquery restarts autoloaded extensions)"
    )]
    ManagerHung { socket: String, after_s: u64 },
    #[error("osquery extension protocol error on {socket}: {source}")]
    Protocol {
        socket: String,
        #[source]
        source: thrift::Error,
    },
    // A write request (insert, update, delete) from osquery that cannot be
    // applied: answered to osquery as a `failure` with this message.
    #[error("{table}: write request has no id")]
    NoRowId { table: String },
    #[error("{table}: row id {id:?} is not an integer")]
    BadRowId { table: String, id: String },
    #[error("{table}: write request has no json_value_array")]
    NoValues { table: String },
    #[error("{table}: json_value_array is not JSON ({source})")]
    ValuesNotJson {
        table: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{table}: json_value_array is not an array")]
    ValuesNotArray { table: String },
    #[error("{table}: json_value_array has {got} values, the table has {expected} columns")]
    WrongValueCount {
        table: String,
        got: usize,
        expected: usize,
    },
    #[error("unsupported value in json_value_array: {value}")]
    UnsupportedValue { value: serde_json::Value },
}
