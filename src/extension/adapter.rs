//! osquery extension mode: serves every [`TableDef`] over osquery's Thrift
//! extension protocol (osquery-rust-ng does the transport, registration and the
//! ping loop; this module adapts our tables to it).
//!
//! Each table becomes one [`TableAdapter`], an osquery-rust-ng `OsqueryPlugin`
//! written here rather than the crate's `ReadOnlyTable`/`Table` wrappers because
//! those cannot carry what osquery needs from us: the crate's `Table` drops the
//! message of a `constraint` outcome, sends no status message on writes, and holds
//! writable tables behind a `Mutex` (every `generate` serialised, and a panic
//! would poison it). The adapter answers every call with an explicit status code
//! (0 OK, 1 error) and a message, and never lets a panic cross the Thrift boundary.

use super::ServeError;
use crate::tables::{Column, QueryContext, TableDef, Value, WriteOutcome};
use osquery_rust_ng::plugin::{ColumnOptions, OsqueryPlugin, Registry};
use osquery_rust_ng::{
    ExtensionPluginRequest, ExtensionPluginResponse, ExtensionResponse, ExtensionStatus,
};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one table call may run before its loops stop and it answers with what
/// it found, said incomplete (osquery's own `--thrift_timeout` is 300 s; a scheduled
/// pack query runs every 60 s).
pub const CALL_TIME_LIMIT: Duration = Duration::from_secs(60);
/// Rows of a partial answer written to the log (each cell is capped already).
const MAX_LOGGED_PARTIAL_ROWS: usize = 20;
/// One of our tables as an osquery table plugin.
#[derive(Clone)]
pub struct TableAdapter {
    table: Arc<dyn TableDef>,
    call_limit: Duration,
}

impl TableAdapter {
    pub fn new(table: Arc<dyn TableDef>) -> Self {
        Self::with_call_limit(table, CALL_TIME_LIMIT)
    }

    /// An adapter whose generate calls stop after `call_limit`.
    pub fn with_call_limit(table: Arc<dyn TableDef>, call_limit: Duration) -> Self {
        TableAdapter { table, call_limit }
    }

    /// Answers one call; `handle_call` wraps this so a panic becomes a failure.
    fn dispatch(&self, request: &ExtensionPluginRequest) -> ExtensionResponse {
        match request.get("action").map(String::as_str) {
            Some("columns") => ok(column_routes(self.table.columns())),
            Some("generate") => self.generate(request),
            Some("insert") => self.insert(request),
            Some("update") => self.update(request),
            Some("delete") => self.delete(request),
            Some(other) => failure(format!(
                "table {} does not support action {other:?}",
                self.table.name()
            )),
            None => failure(format!(
                "request to table {} has no action",
                self.table.name()
            )),
        }
    }

    fn generate(&self, request: &ExtensionPluginRequest) -> ExtensionResponse {
        let context = request.get("context").map(String::as_str).unwrap_or("");
        let mut ctx = match QueryContext::from_osquery_json(context) {
            Ok(ctx) => ctx,
            // The error's text begins "bad query context: ".
            Err(e) => return failure(format!("{}: {e}", self.table.name())),
        };
        ctx.deadline = crate::deadline::Deadline::after(self.call_limit);
        let generated = match crate::tables::generate_bounded(self.table.as_ref(), &ctx) {
            Ok(generated) => generated,
            Err(e) => return failure(format!("{}: {e}", self.table.name())),
        };
        let rows = generated.rows;
        let columns = self.table.columns();
        let rowid_index = self
            .table
            .rowid_column()
            .and_then(|name| crate::tables::column_index(columns, name));
        let mut answer = ExtensionPluginResponse::with_capacity(rows.len());
        for row in rows {
            // Every column by name: a row is its table's declared row, never short.
            let mut map = row.to_osquery();
            // osquery reads a writable extension table's row ids from a `rowid` key.
            if let Some(value) = rowid_index.and_then(|i| row.get(i)) {
                map.insert("rowid".to_owned(), value.to_osquery_string());
            }
            answer.push(map);
        }
        if let Some(note) = generated.partial {
            // Answered with its rows and status 0: osquery drops every row of a
            // failed call, so a failure would let any user who can make a scan
            // partial (a socket in flight, a holder that keeps moving) blank the
            // hit query for the whole host. Partial is said here, in the
            // status message, and by the sampler in `an1256_info`.
            log::warn!("{note} (answered with the rows found; the first follow)");
            for row in answer.iter().take(MAX_LOGGED_PARTIAL_ROWS) {
                log::warn!(
                    "partial {} row: {}",
                    self.table.name(),
                    serde_json::to_string(row).unwrap_or_default()
                );
            }
            return response(0, format!("incomplete: {note}"), answer);
        }
        ok(answer)
    }

    fn insert(&self, request: &ExtensionPluginRequest) -> ExtensionResponse {
        if !self.table.is_writable() {
            return self.readonly();
        }
        match self.values(request) {
            Ok(values) => write_response(self.table.insert(&values)),
            Err(e) => write_response(WriteOutcome::Failure(e.to_string())),
        }
    }

    fn update(&self, request: &ExtensionPluginRequest) -> ExtensionResponse {
        if !self.table.is_writable() {
            return self.readonly();
        }
        let outcome = self
            .rowid(request)
            .and_then(|rowid| Ok((rowid, self.values(request)?)))
            .map_or_else(
                |e| WriteOutcome::Failure(e.to_string()),
                |(rowid, values)| self.table.update(rowid, &values),
            );
        write_response(outcome)
    }

    fn delete(&self, request: &ExtensionPluginRequest) -> ExtensionResponse {
        if !self.table.is_writable() {
            return self.readonly();
        }
        let outcome = self.rowid(request).map_or_else(
            |e| WriteOutcome::Failure(e.to_string()),
            |rowid| self.table.delete(rowid),
        );
        write_response(outcome)
    }

    fn readonly(&self) -> ExtensionResponse {
        let mut row = BTreeMap::new();
        row.insert("status".to_owned(), "readonly".to_owned());
        row.insert(
            "message".to_owned(),
            format!("table {} is read-only", self.table.name()),
        );
        response(
            1,
            format!("table {} is read-only", self.table.name()),
            vec![row],
        )
    }

    /// The `id` of an update or delete.
    fn rowid(&self, request: &ExtensionPluginRequest) -> Result<i64, ServeError> {
        let table = || self.table.name().to_owned();
        let id = request
            .get("id")
            .ok_or_else(|| ServeError::NoRowId { table: table() })?;
        id.trim().parse().map_err(|_| ServeError::BadRowId {
            table: table(),
            id: id.clone(),
        })
    }

    /// The `json_value_array` of an insert or update: one value per column, in
    /// column order.
    fn values(&self, request: &ExtensionPluginRequest) -> Result<Vec<Option<Value>>, ServeError> {
        let table = || self.table.name().to_owned();
        let text = request
            .get("json_value_array")
            .ok_or_else(|| ServeError::NoValues { table: table() })?;
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|source| ServeError::ValuesNotJson {
                table: table(),
                source,
            })?;
        let array = json
            .as_array()
            .ok_or_else(|| ServeError::ValuesNotArray { table: table() })?;
        let expected = self.table.columns().len();
        if array.len() != expected {
            return Err(ServeError::WrongValueCount {
                table: table(),
                got: array.len(),
                expected,
            });
        }
        array.iter().map(json_to_value).collect()
    }
}

/// One JSON cell of a write to a table value (`null` = NULL/default).
fn json_to_value(json: &serde_json::Value) -> Result<Option<Value>, ServeError> {
    match json {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) => Ok(Some(Value::Text(s.clone()))),
        serde_json::Value::Bool(b) => Ok(Some(Value::Int((*b).into()))),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Ok(Some(Value::Int(i))),
            // No table has a REAL column: keep the text rather than round.
            None => Ok(Some(Value::Text(n.to_string()))),
        },
        other => Err(ServeError::UnsupportedValue {
            value: other.clone(),
        }),
    }
}

impl OsqueryPlugin for TableAdapter {
    fn name(&self) -> String {
        self.table.name().to_owned()
    }

    fn registry(&self) -> Registry {
        Registry::Table
    }

    fn routes(&self) -> ExtensionPluginResponse {
        column_routes(self.table.columns())
    }

    fn ping(&self) -> ExtensionStatus {
        ExtensionStatus::new(0, "OK".to_owned(), None)
    }

    fn handle_call(&self, request: ExtensionPluginRequest) -> ExtensionResponse {
        let started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| self.dispatch(&request)));
        let reply = result.unwrap_or_else(|payload| {
            let what = crate::util::panic_message(payload.as_ref());
            log::error!("table {} panicked: {what}", self.table.name());
            failure(format!(
                "table {} failed internally (panic: {what})",
                self.table.name()
            ))
        });
        log::debug!(
            "{} {:?}: status {:?}, {} rows, {} ms",
            self.table.name(),
            request.get("action"),
            reply.status.as_ref().and_then(|s| s.code),
            reply.response.as_ref().map_or(0, Vec::len),
            started.elapsed().as_millis()
        );
        reply
    }

    fn shutdown(&self) {
        log::debug!("table {} shutting down", self.table.name());
    }
}

/// The `columns` reply: one `{id: column, name, type, op}` entry per column,
/// `op` being osquery's ColumnOptions bits (INDEX for index columns).
fn column_routes(columns: &[Column]) -> ExtensionPluginResponse {
    columns
        .iter()
        .map(|column| {
            let options = if column.index {
                ColumnOptions::INDEX
            } else {
                ColumnOptions::DEFAULT
            };
            let mut route = BTreeMap::new();
            route.insert("id".to_owned(), "column".to_owned());
            route.insert("name".to_owned(), column.name.to_owned());
            route.insert("type".to_owned(), column.ty.as_str().to_owned());
            route.insert("op".to_owned(), options.bits().to_string());
            route
        })
        .collect()
}

/// A write reply: one row whose `status` osquery's xUpdate reads (`id` for the
/// new row of an insert, `message` for constraint and failure).
fn write_response(outcome: WriteOutcome) -> ExtensionResponse {
    let mut row = BTreeMap::new();
    let (code, message) = match outcome {
        WriteOutcome::Success(id) => {
            row.insert("status".to_owned(), "success".to_owned());
            if let Some(id) = id {
                row.insert("id".to_owned(), id.to_string());
            }
            (0, "OK".to_owned())
        }
        WriteOutcome::Constraint(message) => {
            row.insert("status".to_owned(), "constraint".to_owned());
            row.insert("message".to_owned(), message.clone());
            (1, message)
        }
        WriteOutcome::Failure(message) => {
            row.insert("status".to_owned(), "failure".to_owned());
            row.insert("message".to_owned(), message.clone());
            (1, message)
        }
    };
    response(code, message, vec![row])
}

fn ok(rows: ExtensionPluginResponse) -> ExtensionResponse {
    response(0, "OK".to_owned(), rows)
}

fn failure(message: String) -> ExtensionResponse {
    log::warn!("{message}");
    response(1, message, Vec::new())
}

fn response(code: i32, message: String, rows: ExtensionPluginResponse) -> ExtensionResponse {
    ExtensionResponse::new(ExtensionStatus::new(code, message, None), rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ProcessInfo, SocketInfo, SocketType};
    use crate::platform::FakeHost;
    use crate::tables::{Table, TableError};

    fn fake_host() -> FakeHost {
        let process = |pid: i32, path: &str| ProcessInfo {
            pid,
            parent: 1,
            path: path.to_owned(),
            argv: vec![path.to_owned()],
            ..Default::default()
        };
        let udp = |pid: i32, port: i32| SocketInfo {
            pid,
            fd: 3,
            socket: 1000 + u64::try_from(pid).unwrap(),
            family: crate::model::FAMILY_INET,
            protocol: 17,
            socket_type: SocketType::Dgram,
            local_address: "127.0.0.1".to_owned(),
            local_port: port,
            remote_address: "0.0.0.0".to_owned(),
            remote_port: 0,
            tcp_state: String::new(),
            net_namespace: "4026531840".to_owned(),
        };
        FakeHost {
            processes: vec![process(100, "/tmp/beacon"), process(200, "/usr/bin/dig")],
            sockets: vec![udp(100, 5353), udp(200, 4444)],
            ..Default::default()
        }
    }

    fn adapters(host: FakeHost) -> Vec<TableAdapter> {
        crate::process_and_socket_tables(Arc::new(host))
            .into_iter()
            .map(TableAdapter::new)
            .collect()
    }

    fn adapter(name: &str) -> TableAdapter {
        adapters(fake_host())
            .into_iter()
            .find(|a| a.name() == name)
            .unwrap()
    }

    fn request(pairs: &[(&str, &str)]) -> ExtensionPluginRequest {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn code(reply: &ExtensionResponse) -> i32 {
        reply.status.as_ref().unwrap().code.unwrap()
    }

    fn message(reply: &ExtensionResponse) -> String {
        reply.status.as_ref().unwrap().message.clone().unwrap()
    }

    fn rows(reply: &ExtensionResponse) -> &Vec<BTreeMap<String, String>> {
        reply.response.as_ref().unwrap()
    }

    const PID_100: &str = r#"{"constraints":[{"name":"pid","affinity":"INTEGER","list":[{"op":2,"expr":"100"}]},{"name":"fd","affinity":"INTEGER","list":""}]}"#;

    #[test]
    fn columns_reply_lists_every_column_with_type_and_index_option() {
        for adapter in adapters(fake_host()) {
            let reply = adapter.handle_call(request(&[("action", "columns")]));
            assert_eq!(code(&reply), 0);
            assert_eq!(message(&reply), "OK");
            let columns = adapter.table.columns();
            assert_eq!(rows(&reply).len(), columns.len());
            for (route, column) in rows(&reply).iter().zip(columns) {
                assert_eq!(route["id"], "column");
                assert_eq!(route["name"], column.name);
                assert_eq!(route["type"], column.ty.as_str());
                assert_eq!(route["op"], if column.index { "1" } else { "0" });
            }
            assert_eq!(rows(&reply)[0]["name"], "pid");
            assert_eq!(rows(&reply)[0]["op"], "1", "pid is an INDEX column");
            assert_eq!(adapter.routes(), *rows(&reply));
        }
    }

    #[test]
    fn generate_with_pid_constraint_returns_exactly_that_process_rows() {
        let reply = adapter("nonstandard_protocol_sockets")
            .handle_call(request(&[("action", "generate"), ("context", PID_100)]));
        assert_eq!(code(&reply), 0, "{}", message(&reply));
        let sockets = rows(&reply);
        assert_eq!(sockets.len(), 1);
        assert_eq!(sockets[0]["pid"], "100");
        assert_eq!(sockets[0]["protocol_name"], "udp");
        assert_eq!(sockets[0]["local_port"], "5353");
        assert_eq!(sockets[0]["path"], "/tmp/beacon");
        assert_eq!(
            sockets[0].len(),
            crate::tables::nonstandard_protocol_sockets::COLUMNS.len()
        );

        let reply = adapter("process_code_signature")
            .handle_call(request(&[("action", "generate"), ("context", PID_100)]));
        assert_eq!(code(&reply), 0, "{}", message(&reply));
        let signatures = rows(&reply);
        assert_eq!(signatures.len(), 1);
        assert_eq!(signatures[0]["pid"], "100");
        assert_eq!(signatures[0]["path"], "/tmp/beacon");
    }

    #[test]
    fn generate_pushes_the_pid_constraint_down_to_the_host() {
        let host = Arc::new(fake_host());
        let table = crate::process_and_socket_tables(host.clone())
            .into_iter()
            .find(|t| t.name() == "nonstandard_protocol_sockets")
            .unwrap();
        let reply = TableAdapter::new(table)
            .handle_call(request(&[("action", "generate"), ("context", PID_100)]));
        assert_eq!(code(&reply), 0);
        let queries = host.socket_queries.lock().unwrap();
        assert_eq!(queries.len(), 1);
        assert_eq!(queries[0].pids, Some(vec![100]));
    }

    #[test]
    fn generate_without_context_is_a_full_scan() {
        let reply =
            adapter("nonstandard_protocol_sockets").handle_call(request(&[("action", "generate")]));
        assert_eq!(code(&reply), 0);
        let mut pids: Vec<&str> = rows(&reply).iter().map(|r| r["pid"].as_str()).collect();
        pids.sort_unstable();
        assert_eq!(pids, ["100", "200"]);
    }

    #[test]
    fn malformed_context_is_a_failure_status_not_a_panic() {
        for bad in [
            "{",
            r#"{"constraints":5}"#,
            r#"{"constraints":[{"name":"pid","list":[{"op":2}]}]}"#,
        ] {
            let reply = adapter("nonstandard_protocol_sockets")
                .handle_call(request(&[("action", "generate"), ("context", bad)]));
            assert_eq!(code(&reply), 1, "{bad}");
            assert!(
                message(&reply).contains("bad query context"),
                "{}",
                message(&reply)
            );
            assert!(rows(&reply).is_empty());
        }
    }

    #[test]
    fn unknown_or_missing_action_is_a_failure() {
        let a = adapter("process_code_signature");
        let reply = a.handle_call(request(&[("action", "explode")]));
        assert_eq!(code(&reply), 1);
        assert!(message(&reply).contains("explode"));
        let reply = a.handle_call(request(&[]));
        assert_eq!(code(&reply), 1);
        assert!(message(&reply).contains("no action"));
    }

    #[test]
    fn writes_to_a_read_only_table_answer_readonly() {
        let a = adapter("nonstandard_protocol_sockets");
        for action in ["insert", "update", "delete"] {
            let reply = a.handle_call(request(&[
                ("action", action),
                ("id", "1"),
                ("json_value_array", "[]"),
            ]));
            assert_eq!(code(&reply), 1);
            assert_eq!(rows(&reply).len(), 1);
            assert_eq!(rows(&reply)[0]["status"], "readonly");
            assert!(message(&reply).contains("read-only"));
        }
    }

    /// A table that panics in generate and records writes, for the paths the real
    /// tables (read-only, well-behaved) cannot reach.
    struct Misbehaving;

    crate::tables::table_row! {
        struct MisbehavingRow, cells MisbehavingCells {
            id: INTEGER = "row id",
            name: TEXT = "a name",
        }
    }

    impl Table for Misbehaving {
        type Row = MisbehavingRow;
        const NAME: &'static str = "misbehaving";
        const DESCRIPTION: &'static str = "test table";
        fn rows(&self, ctx: &QueryContext) -> Result<Vec<MisbehavingRow>, TableError> {
            match ctx.equal_texts("name").as_deref() {
                Some([name]) if name == "error" => Err(TableError::Failed("disk on fire".into())),
                Some([name]) if name == "rows" => Ok(vec![MisbehavingRow {
                    id: 7,
                    name: "seven".into(),
                }]),
                _ => panic!("table bug"),
            }
        }
        fn writable(&self) -> bool {
            true
        }
        fn insert_cells(&self, cells: MisbehavingCells) -> WriteOutcome {
            match cells.name.as_deref() {
                Some("ok") => WriteOutcome::Success(Some(42)),
                Some(name) => WriteOutcome::Constraint(format!("bad name {name}")),
                None => WriteOutcome::Failure("name is required".into()),
            }
        }
        fn update_cells(&self, rowid: i64, cells: MisbehavingCells) -> WriteOutcome {
            if rowid == 42 && cells.id == Some(42) {
                WriteOutcome::Success(None)
            } else {
                WriteOutcome::Failure(format!("no row {rowid}"))
            }
        }
        fn delete_rowid(&self, rowid: i64) -> WriteOutcome {
            if rowid == 42 {
                WriteOutcome::Success(None)
            } else {
                WriteOutcome::Failure(format!("no row {rowid}"))
            }
        }
        fn rowid_name(&self) -> Option<&'static str> {
            Some("id")
        }
    }

    fn misbehaving() -> TableAdapter {
        TableAdapter::new(Arc::new(Misbehaving))
    }

    fn name_is(value: &str) -> String {
        format!(r#"{{"constraints":[{{"name":"name","list":[{{"op":2,"expr":"{value}"}}]}}]}}"#)
    }

    #[test]
    fn a_generate_past_its_deadline_answers_the_rows_found_and_says_it_is_incomplete() {
        let adapter = TableAdapter::with_call_limit(
            Arc::new(crate::tables::slow::Slow),
            Duration::from_millis(200),
        );
        let started = Instant::now();
        let reply = adapter.handle_call(request(&[("action", "generate"), ("context", "")]));
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(
            code(&reply),
            0,
            "rows of a failed call are dropped by osquery"
        );
        assert!(
            message(&reply).starts_with("incomplete: ")
                && message(&reply).contains("deadline passed"),
            "{}",
            message(&reply)
        );
        assert!(!rows(&reply).is_empty(), "the rows found are kept");
        assert!(rows(&reply)[0]["cmdline"].contains("…[truncated "));
    }

    #[test]
    fn a_panicking_generate_becomes_a_failure_status() {
        let reply = misbehaving().handle_call(request(&[("action", "generate"), ("context", "")]));
        assert_eq!(code(&reply), 1);
        assert!(
            message(&reply).contains("panic: table bug"),
            "{}",
            message(&reply)
        );
        assert!(rows(&reply).is_empty());
        // The adapter still answers afterwards.
        let reply = misbehaving().handle_call(request(&[("action", "columns")]));
        assert_eq!(code(&reply), 0);
    }

    #[test]
    fn a_table_error_becomes_a_failure_status_with_its_message() {
        let reply = misbehaving().handle_call(request(&[
            ("action", "generate"),
            ("context", &name_is("error")),
        ]));
        assert_eq!(code(&reply), 1);
        assert_eq!(message(&reply), "misbehaving: disk on fire");
    }

    #[test]
    fn writable_tables_rows_carry_a_rowid() {
        let reply = misbehaving().handle_call(request(&[
            ("action", "generate"),
            ("context", &name_is("rows")),
        ]));
        assert_eq!(code(&reply), 0);
        assert_eq!(rows(&reply)[0]["rowid"], "7");
        assert_eq!(rows(&reply)[0]["name"], "seven");
    }

    #[test]
    fn insert_update_delete_map_outcomes_to_osquery_statuses() {
        let t = misbehaving();
        let reply = t.handle_call(request(&[
            ("action", "insert"),
            ("auto_rowid", "true"),
            ("json_value_array", r#"[null,"ok"]"#),
        ]));
        assert_eq!(
            (code(&reply), rows(&reply)[0]["status"].as_str()),
            (0, "success")
        );
        assert_eq!(rows(&reply)[0]["id"], "42");

        let reply = t.handle_call(request(&[
            ("action", "insert"),
            ("json_value_array", r#"[null,"evil"]"#),
        ]));
        assert_eq!(
            (code(&reply), rows(&reply)[0]["status"].as_str()),
            (1, "constraint")
        );
        assert_eq!(rows(&reply)[0]["message"], "bad name evil");
        assert_eq!(message(&reply), "bad name evil");

        let reply = t.handle_call(request(&[
            ("action", "insert"),
            ("json_value_array", "[null,null]"),
        ]));
        assert_eq!(
            (code(&reply), rows(&reply)[0]["status"].as_str()),
            (1, "failure")
        );
        assert_eq!(rows(&reply)[0]["message"], "name is required");

        for bad in ["[1]", "[1,\"ok\",3]", "{", r#"{"a":1}"#, r#"[1,[2]]"#] {
            let reply = t.handle_call(request(&[("action", "insert"), ("json_value_array", bad)]));
            assert_eq!(rows(&reply)[0]["status"], "failure", "{bad}");
            assert_eq!(code(&reply), 1);
        }
        // A value not of its column's type is refused by the typed parse.
        let reply = t.handle_call(request(&[
            ("action", "insert"),
            ("json_value_array", r#"["seven","ok"]"#),
        ]));
        assert_eq!(rows(&reply)[0]["status"], "constraint");
        assert_eq!(
            rows(&reply)[0]["message"],
            r#"id "seven" is not an integer"#
        );

        let reply = t.handle_call(request(&[
            ("action", "update"),
            ("id", "42"),
            ("json_value_array", r#"[42,"x"]"#),
        ]));
        assert_eq!(
            (code(&reply), rows(&reply)[0]["status"].as_str()),
            (0, "success")
        );
        assert!(!rows(&reply)[0].contains_key("id"));
        let reply = t.handle_call(request(&[
            ("action", "update"),
            ("id", "x"),
            ("json_value_array", r#"[42,"x"]"#),
        ]));
        assert_eq!(rows(&reply)[0]["status"], "failure");

        let reply = t.handle_call(request(&[("action", "delete"), ("id", "42")]));
        assert_eq!(
            (code(&reply), rows(&reply)[0]["status"].as_str()),
            (0, "success")
        );
        let reply = t.handle_call(request(&[("action", "delete"), ("id", "9")]));
        assert_eq!(rows(&reply)[0]["message"], "no row 9");
        let reply = t.handle_call(request(&[("action", "delete")]));
        assert_eq!(rows(&reply)[0]["status"], "failure");
    }
}
