//! The embedded SQLite engine: every `TableDef` as an eponymous rusqlite virtual
//! table, so `an1256 scan` and `an1256 query` run the same SQL osqueryi would,
//! with the same constraint push-down (`=` and `IN` reach `QueryContext`).

use crate::tables::{Op, QueryContext, Row, TableDef, Value, WriteOutcome};
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::vtab::{
    update_module, Context, CreateVTab, Filters, IndexConstraintOp, IndexInfo, Inserts, UpdateVTab,
    Updates, VTab, VTabConnection, VTabCursor, VTabKind,
};
use rusqlite::{ffi, Connection};
use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Column names and rows of one statement's result.
pub type QueryResult = (Vec<String>, Vec<Vec<SqlValue>>);

/// An in-memory SQLite connection with the tables registered.
pub struct Engine {
    conn: Connection,
    time_limit: Option<Duration>,
    calls: Arc<CallState>,
}

/// What every table call of one engine shares: the running statement's deadline,
/// and the notes of calls that passed it.
#[derive(Default)]
struct CallState {
    deadline: std::sync::Mutex<crate::deadline::Deadline>,
    partial: std::sync::Mutex<Vec<String>>,
    /// Results of earlier filter calls in this statement, by table and pushed-down
    /// values. Kept per statement, not per cursor: SQLite reopens a cursor for
    /// every run of a correlated subquery (the pack's first_seen lookups run once
    /// per hit), and a JOIN calls filter once per outer row, often with the same
    /// pid again. Cleared at each statement and on every write.
    memo: std::sync::Mutex<std::collections::HashMap<String, Arc<Vec<Row>>>>,
    /// Set while [`Engine::query`] runs a statement: statements run directly on
    /// the connection memoize nothing (no clear point brackets them).
    memo_enabled: std::sync::atomic::AtomicBool,
}

/// Ends the statement-level memo when a statement finishes, however it ends.
struct MemoScope<'a>(&'a CallState);

impl<'a> MemoScope<'a> {
    fn begin(calls: &'a CallState) -> Self {
        calls.memo().clear();
        calls
            .memo_enabled
            .store(true, std::sync::atomic::Ordering::Release);
        MemoScope(calls)
    }
}

impl Drop for MemoScope<'_> {
    fn drop(&mut self) {
        self.0
            .memo_enabled
            .store(false, std::sync::atomic::Ordering::Release);
        self.0.memo().clear();
    }
}

/// At most this many partial-result notes are kept per statement.
const MAX_PARTIAL_NOTES: usize = 16;

impl CallState {
    fn memo(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Arc<Vec<Row>>>> {
        self.memo.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn deadline(&self) -> crate::deadline::Deadline {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps the first note of each table (a JOIN calls a table once per outer
    /// row: past the deadline every call would say the same).
    fn note_partial(&self, table: &str, note: String) {
        let mut notes = self.partial.lock().unwrap_or_else(|p| p.into_inner());
        let seen = notes.iter().any(|n| {
            n.strip_prefix(table)
                .is_some_and(|rest| rest.starts_with(':'))
        });
        if notes.len() < MAX_PARTIAL_NOTES && !seen {
            notes.push(note);
        }
    }
}

/// How long SQLite may run on after the tables' deadline before it is interrupted:
/// once the deadline passes the tables return quickly (no more fd walks, no
/// hashing), and this grace lets the rows found so far reach the output.
fn interrupt_grace(limit: Duration) -> Duration {
    (limit / 4).clamp(Duration::from_secs(2), Duration::from_secs(30))
}

/// The VFS the engine opens its in-memory database with: SQLite's default VFS
/// whose clock adds this thread's `util::time` shift (zero unless a test set one),
/// so SQL `'now'` and the sampler's timestamps move together in tests.
const CLOCK_VFS: &std::ffi::CStr = c"an1256-clock";

/// SQLite's default VFS, whose clock the shifted one reads.
static BASE_VFS: std::sync::atomic::AtomicPtr<ffi::sqlite3_vfs> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

/// Registers [`CLOCK_VFS`] once; false (use the default VFS) if SQLite has none.
fn clock_vfs_registered() -> bool {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| {
        // SAFETY: sqlite3_vfs_find(NULL) initialises SQLite and returns the default
        // VFS (static, never freed). The copy keeps every method and pAppData (the
        // unix VFS's xOpen reads it), gets its own name and clock, and is leaked:
        // SQLite keeps the pointer for the life of the process.
        unsafe {
            let base = ffi::sqlite3_vfs_find(std::ptr::null());
            if base.is_null() {
                return false;
            }
            BASE_VFS.store(base, std::sync::atomic::Ordering::Release);
            let mut vfs: ffi::sqlite3_vfs = *base;
            vfs.pNext = std::ptr::null_mut();
            vfs.zName = CLOCK_VFS.as_ptr();
            vfs.xCurrentTime = Some(shifted_current_time);
            if vfs.iVersion >= 2 {
                vfs.xCurrentTimeInt64 = Some(shifted_current_time_int64);
            }
            let vfs: &'static mut ffi::sqlite3_vfs = Box::leak(Box::new(vfs));
            ffi::sqlite3_vfs_register(vfs, 0) == ffi::SQLITE_OK
        }
    })
}

/// The default VFS's clock in Julian-day milliseconds, plus this thread's shift.
unsafe extern "C" fn shifted_current_time_int64(
    _vfs: *mut ffi::sqlite3_vfs,
    out: *mut ffi::sqlite3_int64,
) -> std::os::raw::c_int {
    let base = BASE_VFS.load(std::sync::atomic::Ordering::Acquire);
    // SAFETY: base is the default VFS stored before this VFS was registered; out
    // is SQLite's valid output pointer.
    unsafe {
        let Some(current) = base.as_ref().and_then(|b| b.xCurrentTimeInt64) else {
            return ffi::SQLITE_ERROR;
        };
        let rc = current(base, out);
        *out = (*out).saturating_add(crate::util::time::this_thread_shift().saturating_mul(1000));
        rc
    }
}

/// The default VFS's clock in Julian days, plus this thread's shift.
unsafe extern "C" fn shifted_current_time(
    _vfs: *mut ffi::sqlite3_vfs,
    out: *mut f64,
) -> std::os::raw::c_int {
    let base = BASE_VFS.load(std::sync::atomic::Ordering::Acquire);
    // SAFETY: as above.
    unsafe {
        let Some(current) = base.as_ref().and_then(|b| b.xCurrentTime) else {
            return ffi::SQLITE_ERROR;
        };
        let rc = current(base, out);
        *out += crate::util::time::this_thread_shift() as f64 / 86_400.0;
        rc
    }
}

/// The aux data of each registered module.
#[derive(Clone)]
struct Registered {
    table: Arc<dyn TableDef>,
    calls: Arc<CallState>,
}

impl Engine {
    /// Registers every table (as a module of the same name, so `FROM name` works
    /// with no CREATE VIRTUAL TABLE).
    pub fn new(tables: Vec<Arc<dyn TableDef>>) -> rusqlite::Result<Engine> {
        let conn = if clock_vfs_registered() {
            Connection::open_in_memory_with_flags_and_vfs(
                rusqlite::OpenFlags::default(),
                CLOCK_VFS,
            )?
        } else {
            Connection::open_in_memory()?
        };
        let calls = Arc::new(CallState::default());
        for table in tables {
            let name = table.name();
            let aux = Registered {
                table,
                calls: calls.clone(),
            };
            conn.create_module(name, update_module::<TableVTab>(), Some(aux))?;
        }
        Ok(Engine {
            conn,
            time_limit: None,
            calls,
        })
    }

    /// Bounds each statement: table calls stop their loops at `limit` and return
    /// what they found (see [`Engine::partial`]); SQLite itself is interrupted a
    /// short grace later. The clock restarts for each `query`.
    pub fn set_time_limit(&mut self, limit: Duration) {
        self.time_limit = Some(limit);
    }

    /// Runs one SQL statement and collects its result.
    pub fn query(&self, sql: &str) -> rusqlite::Result<QueryResult> {
        self.calls
            .partial
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let _memo = MemoScope::begin(&self.calls);
        if let Some(limit) = self.time_limit {
            *self
                .calls
                .deadline
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = crate::deadline::Deadline::after(limit);
            let interrupt = Instant::now() + limit + interrupt_grace(limit);
            self.conn
                .progress_handler(10_000, Some(move || Instant::now() > interrupt));
        }
        let mut stmt = self.conn.prepare(sql)?;
        let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
        let count = columns.len();
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(count);
            for i in 0..count {
                values.push(row.get::<_, SqlValue>(i)?);
            }
            out.push(values);
        }
        Ok((columns, out))
    }

    /// Why the last statement's result is incomplete: one note per table call that
    /// passed its deadline (empty when the result is complete).
    pub fn partial(&self) -> Vec<String> {
        self.calls
            .partial
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The underlying connection (for tests and the baseline CLI).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// One virtual table over one `TableDef`.
#[repr(C)]
struct TableVTab {
    /// Base class; must be first (rusqlite's contract).
    base: ffi::sqlite3_vtab,
    table: Arc<dyn TableDef>,
    calls: Arc<CallState>,
}

/// Quotes an identifier for the declared schema (names come from our own column
/// definitions, never from user input; quoting is still the right thing).
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The CREATE TABLE statement SQLite needs to learn the columns.
fn declared_schema(table: &dyn TableDef) -> String {
    let columns: Vec<String> = table
        .columns()
        .iter()
        .map(|c| format!("{} {}", quote_identifier(c.name), c.ty.as_str()))
        .collect();
    format!("CREATE TABLE x({})", columns.join(", "))
}

fn module_error(message: impl Into<String>) -> rusqlite::Error {
    rusqlite::Error::ModuleError(message.into())
}

/// Runs table code so that a panic becomes an SQL error instead of unwinding into C.
fn contained<T>(table: &str, f: impl FnOnce() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(_) => Err(module_error(format!(
            "internal error in table {table} (a bug: please report it); the query was abandoned"
        ))),
    }
}

unsafe impl<'vtab> VTab<'vtab> for TableVTab {
    type Aux = Registered;
    type Cursor = TableCursor;

    fn connect(
        _db: &mut VTabConnection,
        aux: Option<&Registered>,
        _args: &[&[u8]],
    ) -> rusqlite::Result<(String, Self)> {
        let Registered { table, calls } = aux
            .cloned()
            .ok_or_else(|| module_error("virtual table registered without its definition"))?;
        Ok((
            declared_schema(table.as_ref()),
            TableVTab {
                base: ffi::sqlite3_vtab::default(),
                table,
                calls,
            },
        ))
    }

    /// Pushes every usable `=` down (SQLite turns `IN (…)` into one filter call per
    /// value). `=` on an INDEX column makes the plan cheap, so a JOIN drives this
    /// table by that column, exactly as osquery's planner does.
    fn best_index(&self, info: &mut IndexInfo) -> rusqlite::Result<()> {
        let columns = self.table.columns();
        let mut pushed: Vec<(usize, usize)> = Vec::new();
        for (i, constraint) in info.constraints().enumerate() {
            if !constraint.is_usable()
                || constraint.operator() != IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_EQ
            {
                continue;
            }
            let Ok(column) = usize::try_from(constraint.column()) else {
                continue; // rowid
            };
            if column < columns.len() {
                pushed.push((i, column));
            }
        }
        let mut names = Vec::with_capacity(pushed.len());
        for (argv, (constraint, column)) in pushed.iter().enumerate() {
            let mut usage = info.constraint_usage(*constraint);
            usage.set_argv_index(c_int::try_from(argv + 1).unwrap_or(c_int::MAX));
            // SQLite re-checks: our push-down may return a superset.
            usage.set_omit(false);
            names.push(columns.get(*column).map(|c| c.name).unwrap_or_default());
        }
        let indexed = pushed
            .iter()
            .any(|(_, column)| columns.get(*column).is_some_and(|c| c.index));
        if indexed {
            info.set_estimated_cost(10.0);
            info.set_estimated_rows(10);
        } else {
            info.set_estimated_cost(1_000_000.0);
            info.set_estimated_rows(10_000);
        }
        info.set_idx_str(&names.join(","));
        Ok(())
    }

    fn open(&'vtab mut self) -> rusqlite::Result<TableCursor> {
        Ok(TableCursor {
            base: ffi::sqlite3_vtab_cursor::default(),
            table: self.table.clone(),
            calls: self.calls.clone(),
            rows: Arc::new(Vec::new()),
            position: 0,
        })
    }
}

impl CreateVTab<'_> for TableVTab {
    const KIND: VTabKind = VTabKind::Eponymous;
}

/// Values of an INSERT/UPDATE in column order (`None` = NULL).
fn row_values(args: &rusqlite::vtab::Values<'_>, skip: usize) -> Vec<Option<Value>> {
    args.iter()
        .skip(skip)
        .map(|v| match v {
            ValueRef::Null => None,
            ValueRef::Integer(i) => Some(Value::Int(i)),
            ValueRef::Real(f) => Some(Value::Text(f.to_string())),
            ValueRef::Text(t) | ValueRef::Blob(t) => {
                Some(Value::Text(String::from_utf8_lossy(t).into_owned()))
            }
        })
        .collect()
}

fn write_result(outcome: WriteOutcome) -> rusqlite::Result<Option<i64>> {
    match outcome {
        WriteOutcome::Success(rowid) => Ok(rowid),
        WriteOutcome::Constraint(msg) => Err(module_error(format!("constraint failed: {msg}"))),
        WriteOutcome::Failure(msg) => Err(module_error(msg)),
    }
}

fn writable(table: &dyn TableDef) -> rusqlite::Result<()> {
    if table.is_writable() {
        Ok(())
    } else {
        Err(module_error(format!("table {} is read-only", table.name())))
    }
}

impl UpdateVTab<'_> for TableVTab {
    fn delete(&mut self, rowid: ValueRef<'_>) -> rusqlite::Result<()> {
        self.calls.memo().clear();
        let table = self.table.clone();
        contained(table.name(), || {
            writable(table.as_ref())?;
            let rowid = rowid
                .as_i64()
                .map_err(|_| module_error("DELETE needs an integer rowid"))?;
            write_result(table.delete(rowid)).map(|_| ())
        })
    }

    fn insert(&mut self, args: &Inserts<'_>) -> rusqlite::Result<i64> {
        self.calls.memo().clear();
        let table = self.table.clone();
        contained(table.name(), || {
            writable(table.as_ref())?;
            // args: [old rowid (NULL), new rowid, column values…]
            let values = row_values(args, 2);
            Ok(write_result(table.insert(&values))?.unwrap_or(0))
        })
    }

    fn update(&mut self, args: &Updates<'_>) -> rusqlite::Result<()> {
        self.calls.memo().clear();
        let table = self.table.clone();
        contained(table.name(), || {
            writable(table.as_ref())?;
            let rowid: i64 = args
                .get(0)
                .map_err(|_| module_error("UPDATE needs an integer rowid"))?;
            let values = row_values(args, 2);
            write_result(table.update(rowid, &values)).map(|_| ())
        })
    }
}

/// Distinct filter results a statement remembers (bounds memory on huge joins).
const MAX_MEMOIZED_FILTERS: usize = 4096;

/// A cursor holds one generate call's rows.
#[repr(C)]
struct TableCursor {
    /// Base class; must be first.
    base: ffi::sqlite3_vtab_cursor,
    table: Arc<dyn TableDef>,
    calls: Arc<CallState>,
    rows: Arc<Vec<Row>>,
    position: usize,
}

/// Builds the query context from the pushed-down `=` values.
fn context_from(idx_str: Option<&str>, args: &Filters<'_>) -> Option<QueryContext> {
    let mut ctx = QueryContext::new();
    let names = idx_str.unwrap_or_default();
    let names = names.split(',').filter(|n| !n.is_empty());
    for (name, value) in names.zip(args.iter()) {
        let expr = match value {
            // `col = NULL` matches nothing.
            ValueRef::Null => return None,
            ValueRef::Integer(i) => i.to_string(),
            ValueRef::Real(f) => f.to_string(),
            ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
        };
        ctx.constraints
            .push(crate::tables::constraints::Constraint {
                column: name.to_owned(),
                op: Op::Equals,
                expr,
            });
    }
    Some(ctx)
}

impl TableCursor {
    fn generate(&self, ctx: &QueryContext) -> rusqlite::Result<Vec<Row>> {
        let table = self.table.clone();
        let ctx = QueryContext {
            deadline: self.calls.deadline(),
            ..ctx.clone()
        };
        let generated = contained(table.name(), || {
            crate::tables::generate_bounded(table.as_ref(), &ctx)
                .map_err(|e| module_error(format!("{}: {e}", table.name())))
        })?;
        if let Some(note) = generated.partial {
            self.calls.note_partial(table.name(), note);
        }
        Ok(generated.rows)
    }

    /// This table's remembered result for `key`.
    fn recall(&self, key: &str) -> Option<Arc<Vec<Row>>> {
        if !self
            .calls
            .memo_enabled
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return None;
        }
        self.calls
            .memo()
            .get(&format!("{} {key}", self.table.name()))
            .cloned()
    }

    fn remember(&self, key: String, rows: Arc<Vec<Row>>) {
        if !self
            .calls
            .memo_enabled
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return;
        }
        let mut memo = self.calls.memo();
        if memo.len() < MAX_MEMOIZED_FILTERS {
            memo.insert(format!("{} {key}", self.table.name()), rows);
        }
    }
}

/// Rows whose columns equal every constraint's value (a superset check is enough:
/// SQLite re-checks each row).
fn filter_rows(
    rows: &[Row],
    columns: &[crate::tables::Column],
    constraints: &[crate::tables::constraints::Constraint],
) -> Vec<Row> {
    let wanted: Vec<(Option<usize>, &str)> = constraints
        .iter()
        .map(|c| {
            (
                crate::tables::column_index(columns, &c.column),
                c.expr.as_str(),
            )
        })
        .collect();
    rows.iter()
        .filter(|row| {
            wanted
                .iter()
                .all(|(index, expr)| match index.and_then(|i| row.get(i)) {
                    Some(Value::Int(v)) => expr.trim().parse::<i64>().ok() == Some(*v),
                    Some(Value::Text(v)) => v == expr,
                    None => true,
                })
        })
        .cloned()
        .collect()
}

unsafe impl VTabCursor for TableCursor {
    fn filter(
        &mut self,
        _idx_num: c_int,
        idx_str: Option<&str>,
        args: &Filters<'_>,
    ) -> rusqlite::Result<()> {
        self.position = 0;
        self.rows = Arc::new(Vec::new());
        let Some(ctx) = context_from(idx_str, args) else {
            return Ok(());
        };
        let key = format!("{:?}", ctx.constraints);
        if let Some(rows) = self.recall(&key) {
            self.rows = rows;
            return Ok(());
        }
        // `col IN (a, b, c)` on a non-INDEX column reaches us as one filter call per
        // value. The first value gets a narrow scan; from the second on, one broad
        // scan without those constraints serves every value, filtered here.
        let columns = self.table.columns();
        let is_index = |name: &str| columns.iter().any(|c| c.name == name && c.index);
        let (indexed, others): (Vec<_>, Vec<_>) = ctx
            .constraints
            .iter()
            .cloned()
            .partition(|c| is_index(&c.column));
        let broad_key = format!("broad {indexed:?}");
        let seen_key = format!("seen {indexed:?}");
        let rows = if others.is_empty() {
            self.generate(&ctx)?
        } else if let Some(broad) = self.recall(&broad_key) {
            filter_rows(&broad, columns, &others)
        } else if self.recall(&seen_key).is_some() {
            let broad = Arc::new(self.generate(&QueryContext {
                constraints: indexed,
                deadline: ctx.deadline,
            })?);
            let rows = filter_rows(&broad, columns, &others);
            self.remember(broad_key, broad);
            rows
        } else {
            self.remember(seen_key, Arc::new(Vec::new()));
            self.generate(&ctx)?
        };
        self.rows = Arc::new(rows);
        self.remember(key, self.rows.clone());
        Ok(())
    }

    fn next(&mut self) -> rusqlite::Result<()> {
        self.position += 1;
        Ok(())
    }

    fn eof(&self) -> bool {
        self.position >= self.rows.len()
    }

    fn column(&self, ctx: &mut Context, i: c_int) -> rusqlite::Result<()> {
        let value = usize::try_from(i)
            .ok()
            .and_then(|i| self.rows.get(self.position).and_then(|row| row.get(i)));
        match value {
            Some(Value::Int(v)) => ctx.set_result(v),
            Some(Value::Text(v)) => ctx.set_result(v),
            // Rows are their table's declared rows: a missing cell is a bug, said so.
            None => Err(module_error(format!(
                "{}: no column {i} in row {}",
                self.table.name(),
                self.position
            ))),
        }
    }

    fn rowid(&self) -> rusqlite::Result<i64> {
        if let Some(name) = self.table.rowid_column() {
            let index = crate::tables::column_index(self.table.columns(), name);
            if let Some(Value::Int(id)) = index.and_then(|i| self.rows.get(self.position)?.get(i)) {
                return Ok(*id);
            }
        }
        Ok(i64::try_from(self.position).unwrap_or(i64::MAX))
    }
}

/// Renders a SQL value as text for table output.
pub fn display_value(value: &SqlValue) -> String {
    match value {
        SqlValue::Null => String::new(),
        SqlValue::Integer(i) => i.to_string(),
        SqlValue::Real(f) => f.to_string(),
        SqlValue::Text(t) => t.clone(),
        SqlValue::Blob(b) => crate::util::hex::hex(b),
    }
}

/// A SQL value as JSON (integers stay numbers).
pub fn json_value(value: &SqlValue) -> serde_json::Value {
    match value {
        SqlValue::Null => serde_json::Value::Null,
        SqlValue::Integer(i) => (*i).into(),
        SqlValue::Real(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        SqlValue::Text(t) => t.clone().into(),
        SqlValue::Blob(b) => crate::util::hex::hex(b).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_now_follows_this_threads_clock_shift() {
        let engine = Engine::new(Vec::new()).unwrap();
        let now = |engine: &Engine| -> i64 {
            engine
                .connection()
                .query_row("SELECT CAST(strftime('%s','now') AS INTEGER)", [], |r| {
                    r.get(0)
                })
                .unwrap()
        };
        let real = crate::util::time::unix_now();
        assert!((now(&engine) - real).abs() <= 5);
        let _later = crate::util::time::shift_this_thread(25 * 3600);
        let shifted = now(&engine);
        assert!(
            (shifted - real - 25 * 3600).abs() <= 5,
            "{shifted} vs {real}"
        );
        assert!((shifted - crate::util::time::unix_now()).abs() <= 5);
    }

    #[test]
    fn a_table_past_the_time_limit_returns_its_rows_marked_partial() {
        let mut engine = Engine::new(vec![Arc::new(crate::tables::slow::Slow)]).unwrap();
        engine.set_time_limit(Duration::from_millis(300));
        let started = Instant::now();
        let (_, rows) = engine.query("SELECT cmdline FROM slow").unwrap();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert!(!rows.is_empty());
        let partial = engine.partial();
        assert_eq!(partial.len(), 1, "{partial:?}");
        assert!(partial[0].contains("slow: deadline passed"), "{partial:?}");
        // The next statement starts a fresh clock and a fresh note list.
        engine.set_time_limit(Duration::from_secs(60));
        engine.query("SELECT 1").unwrap();
        assert!(engine.partial().is_empty());
    }
    use crate::model::{ProcessInfo, SocketInfo, SocketType};
    use crate::platform::FakeHost;

    fn fake() -> Arc<FakeHost> {
        let process = |pid: i32, path: &str| ProcessInfo {
            pid,
            parent: 1,
            path: path.into(),
            argv: vec![path.into()],
            ..Default::default()
        };
        let udp = |pid: i32, port: i32| SocketInfo {
            pid,
            fd: 3,
            socket: 1000 + pid as u64,
            family: 2,
            protocol: 17,
            socket_type: SocketType::Dgram,
            local_address: "127.0.0.1".into(),
            local_port: port,
            remote_address: "0.0.0.0".into(),
            remote_port: 0,
            tcp_state: String::new(),
            net_namespace: String::new(),
        };
        Arc::new(FakeHost {
            processes: vec![
                process(1, "/sbin/init"),
                process(10, "/tmp/a"),
                process(20, "/tmp/b"),
                process(30, "/tmp/c"),
            ],
            sockets: vec![udp(10, 5000), udp(20, 6000)],
            ..Default::default()
        })
    }

    /// Drives every table through the three forms its rows take (typed rows, the
    /// osquery answer, SQLite's `SELECT *`) and checks each against the declared
    /// columns and types, as osquery's `validate_rows` does. Returns rows per table.
    pub(crate) fn validate_rows(
        tables: Vec<Arc<dyn TableDef>>,
    ) -> std::collections::BTreeMap<&'static str, usize> {
        use crate::tables::validate::{check_osquery_row, check_row, check_sql_row};
        use osquery_rust_ng::plugin::OsqueryPlugin;
        let engine = Engine::new(tables.clone()).unwrap();
        let mut counts = std::collections::BTreeMap::new();
        for table in tables {
            let name = table.name();
            let columns = table.columns();
            let rows = table.generate(&QueryContext::new()).unwrap();
            for row in &rows {
                check_row(columns, row).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            let adapter = crate::extension::TableAdapter::new(table.clone());
            let request = [("action", "generate"), ("context", "{}")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            let reply = adapter.handle_call(request);
            let extra: &[&str] = if table.rowid_column().is_some() {
                &["rowid"]
            } else {
                &[]
            };
            for row in reply.response.unwrap_or_default() {
                check_osquery_row(columns, &row, extra)
                    .unwrap_or_else(|e| panic!("{name} (osquery): {e}"));
            }
            let (names, sql_rows) = engine
                .query(&format!("SELECT * FROM {}", quote_identifier(name)))
                .unwrap();
            for row in &sql_rows {
                check_sql_row(columns, &names, row)
                    .unwrap_or_else(|e| panic!("{name} (SQLite): {e}"));
            }
            counts.insert(name, rows.len().min(sql_rows.len()));
        }
        counts
    }

    #[test]
    fn every_table_row_has_its_declared_columns_and_types_over_the_fake_host() {
        let dir = tempfile::tempdir().unwrap();
        let host = fake();
        let settings = crate::settings::Settings::with_db(dir.path().join("b.db"));
        let baseline = Arc::new(crate::baseline::Baseline::new(settings, host.clone()));
        let key = crate::baseline::identity::validate_entry(
            &format!("sha256:{}", "a".repeat(64)),
            "udp",
            53,
        )
        .unwrap();
        baseline.store().unwrap().approve(&key, "test").unwrap();
        baseline.sample();
        let counts = validate_rows(crate::all_tables(host, baseline));
        assert_eq!(counts.len(), 6, "{counts:?}");
        // Every table produced rows: the checks above ran on something.
        assert!(counts.values().all(|n| *n > 0), "{counts:?}");
    }

    #[test]
    fn pid_equality_and_in_are_pushed_down() {
        let host = fake();
        let engine = Engine::new(crate::process_and_socket_tables(host.clone())).unwrap();
        let (_, rows) = engine
            .query("SELECT pid, path FROM process_code_signature WHERE pid IN (10, 30)")
            .unwrap();
        assert_eq!(rows.len(), 2);
        let calls = host.process_calls.lock().unwrap().clone();
        // Only the two asked-for processes (and their parent) were read.
        assert!(calls.iter().all(|p| [10, 30, 1].contains(p)), "{calls:?}");
        assert!(calls.contains(&10) && calls.contains(&30));
    }

    #[test]
    fn join_drives_the_signature_table_by_pid() {
        let host = fake();
        let engine = Engine::new(crate::process_and_socket_tables(host.clone())).unwrap();
        let (columns, rows) = engine
            .query(
                "SELECT s.pid, s.local_port, c.subject_path FROM nonstandard_protocol_sockets s \
                 JOIN process_code_signature c ON c.pid = s.pid WHERE c.subject_trusted = 0 ORDER BY s.pid",
            )
            .unwrap();
        assert_eq!(columns, ["pid", "local_port", "subject_path"]);
        assert_eq!(
            rows,
            vec![
                vec![
                    SqlValue::Integer(10),
                    SqlValue::Integer(5000),
                    SqlValue::Text("/tmp/a".into())
                ],
                vec![
                    SqlValue::Integer(20),
                    SqlValue::Integer(6000),
                    SqlValue::Text("/tmp/b".into())
                ],
            ]
        );
        let calls = host.process_calls.lock().unwrap().clone();
        assert!(
            !calls.contains(&30),
            "process 30 has no socket and must not be read: {calls:?}"
        );
    }

    #[test]
    fn a_join_evaluates_each_pid_once_per_statement() {
        let base = fake();
        let mut sockets = base.sockets.clone();
        for fd in 4..8 {
            let mut s = base.sockets[0].clone();
            s.fd = fd;
            sockets.push(s);
        }
        let host = Arc::new(FakeHost {
            processes: base.processes.clone(),
            sockets,
            ..Default::default()
        });
        let engine = Engine::new(crate::process_and_socket_tables(host.clone())).unwrap();
        let (_, rows) = engine
            .query(
                "SELECT s.fd FROM nonstandard_protocol_sockets s \
                 JOIN process_code_signature c ON c.pid = s.pid WHERE s.pid = 10",
            )
            .unwrap();
        assert_eq!(rows.len(), 5);
        let calls = host.process_calls.lock().unwrap().clone();
        // One read for the socket owner's path, one for its signature row: not one
        // per socket.
        assert_eq!(calls.iter().filter(|p| **p == 10).count(), 2, "{calls:?}");
    }

    #[test]
    fn in_on_a_non_index_column_scans_at_most_twice() {
        let host = fake();
        let engine = Engine::new(crate::process_and_socket_tables(host.clone())).unwrap();
        let (_, rows) = engine
            .query(
                "SELECT pid FROM nonstandard_protocol_sockets \
                 WHERE protocol_name IN ('icmp', 'udp', 'raw', 'udplite', 'icmpv6') ORDER BY pid",
            )
            .unwrap();
        assert_eq!(
            rows,
            vec![vec![SqlValue::Integer(10)], vec![SqlValue::Integer(20)]]
        );
        let queries = host.socket_queries.lock().unwrap().clone();
        assert!(
            queries.len() <= 2,
            "{} scans for one IN list",
            queries.len()
        );
        // A single value still narrows the scan itself.
        let (_, rows) = engine
            .query("SELECT pid FROM nonstandard_protocol_sockets WHERE protocol_name = 'udp'")
            .unwrap();
        assert_eq!(rows.len(), 2);
        let last = host.socket_queries.lock().unwrap().last().cloned().unwrap();
        assert!(last.protocols.udp && !last.protocols.icmp && !last.protocols.tcp);
    }

    #[test]
    fn protocol_name_is_pushed_to_the_socket_scan() {
        let host = fake();
        let engine = Engine::new(crate::process_and_socket_tables(host.clone())).unwrap();
        let (_, rows) = engine
            .query("SELECT * FROM nonstandard_protocol_sockets WHERE protocol_name = 'icmp'")
            .unwrap();
        assert!(rows.is_empty());
        let queries = host.socket_queries.lock().unwrap().clone();
        let last = queries.last().unwrap();
        assert!(last.protocols.icmp && !last.protocols.udp, "{last:?}");
    }

    #[test]
    fn bad_sql_and_writes_to_read_only_tables_are_errors() {
        let engine = Engine::new(crate::process_and_socket_tables(fake())).unwrap();
        let err = engine.query("SELEC 1").unwrap_err().to_string();
        assert!(err.contains("syntax error"), "{err}");
        let err = engine
            .query("SELECT nope FROM process_code_signature")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no such column"), "{err}");
        let err = engine
            .query("INSERT INTO process_code_signature (pid) VALUES (1)")
            .unwrap_err()
            .to_string();
        assert!(err.contains("read-only"), "{err}");
    }

    #[test]
    fn time_limit_interrupts_runaway_queries() {
        let mut engine = Engine::new(crate::process_and_socket_tables(fake())).unwrap();
        engine.set_time_limit(Duration::from_millis(50));
        let err = engine
            .query("WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r")
            .unwrap_err()
            .to_string();
        assert!(err.contains("interrupt"), "{err}");
    }
}
