//! One module per osquery table. Each table declares its columns once (name, type,
//! one line of documentation); the osquery glue (`extension.rs`), the embedded
//! SQLite engine (`sql.rs`) and `an1256 tables` all read those same definitions.

use serde::Serialize;

pub mod an1256_baseline;
pub mod an1256_baseline_audit;
pub mod an1256_info;
pub mod an1256_observations;
pub mod constraints;
pub mod nonstandard_protocol_sockets;
pub mod process_code_signature;

pub use constraints::{Op, QueryContext};

/// Column affinity, as osquery spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Integer,
    BigInt,
}

impl ColumnType {
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Text => "TEXT",
            ColumnType::Integer => "INTEGER",
            ColumnType::BigInt => "BIGINT",
        }
    }
}

/// One column of a table: the single source of truth for its name, type and doc.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
    /// osquery INDEX column: `=` and `IN` constraints are pushed down.
    pub index: bool,
    pub doc: &'static str,
}

/// Shorthand constructors so a table's column list reads like an osquery spec.
pub const fn text(name: &'static str, doc: &'static str) -> Column {
    Column {
        name,
        ty: ColumnType::Text,
        index: false,
        doc,
    }
}
pub const fn integer(name: &'static str, doc: &'static str) -> Column {
    Column {
        name,
        ty: ColumnType::Integer,
        index: false,
        doc,
    }
}
pub const fn bigint(name: &'static str, doc: &'static str) -> Column {
    Column {
        name,
        ty: ColumnType::BigInt,
        index: false,
        doc,
    }
}
pub const fn indexed(column: Column) -> Column {
    Column {
        index: true,
        ..column
    }
}

/// A cell value. osquery ships every value as text; SQLite gets typed values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Int(i64),
    Text(String),
}

impl Value {
    /// The osquery wire form.
    pub fn to_osquery_string(&self) -> String {
        match self {
            Value::Int(i) => i.to_string(),
            Value::Text(s) => s.clone(),
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v.into())
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(v.into())
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(v.into())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

/// A row: values in the table's column order.
pub type Row = Vec<Value>;

/// Why a table call failed; shown to the user by osquery or the CLI.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("bad query context: {0}")]
    BadContext(String),
    #[error("{0}")]
    Failed(String),
    /// Rows were found but some that exist may be missing: served as partial.
    #[error("incomplete: {reason}")]
    Partial { rows: Vec<Row>, reason: String },
}

/// Result of a write to a writable table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Done; for inserts, the new rowid.
    Success(Option<i64>),
    /// The values broke a rule (bad identity, port…): the message says which.
    Constraint(String),
    Failure(String),
}

/// A table that osquery and the embedded engine can both serve.
pub trait TableDef: Send + Sync {
    fn name(&self) -> &'static str;
    /// One paragraph for the generated reference.
    fn description(&self) -> &'static str;
    fn columns(&self) -> &'static [Column];
    fn generate(&self, ctx: &QueryContext) -> Result<Vec<Row>, TableError>;

    /// Writable tables override these; read-only tables refuse.
    fn is_writable(&self) -> bool {
        false
    }
    /// Insert one row given in column order (`None` = NULL/default).
    fn insert(&self, _values: &[Option<Value>]) -> WriteOutcome {
        WriteOutcome::Failure(format!("{} is read-only", self.name()))
    }
    fn delete(&self, _rowid: i64) -> WriteOutcome {
        WriteOutcome::Failure(format!("{} is read-only", self.name()))
    }
    fn update(&self, _rowid: i64, _values: &[Option<Value>]) -> WriteOutcome {
        WriteOutcome::Failure(format!("{} is read-only", self.name()))
    }
    /// The rowid of each generated row, for writable tables (same order as rows).
    fn rowid_column(&self) -> Option<&'static str> {
        None
    }
}

/// Longest text cell any table returns: a hostile process controls its argv (1 MiB
/// and more), and one such cell copied into every joined row blew `scan` up to
/// gigabytes. Longer text keeps its first bytes and says how much was cut.
pub const MAX_TEXT_BYTES: usize = 8 * 1024;

/// `text` cut to at most [`MAX_TEXT_BYTES`] plus a `…[truncated N bytes]` marker
/// (at a character boundary, so the result stays valid UTF-8).
pub fn cap_text(mut text: String) -> String {
    if text.len() <= MAX_TEXT_BYTES {
        return text;
    }
    let mut end = MAX_TEXT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    text.truncate(end);
    text.push_str(&format!("…[truncated {cut} bytes]"));
    text
}

/// What one bounded table call returned.
#[derive(Debug)]
pub struct Generated {
    /// Every text cell capped by [`cap_text`].
    pub rows: Vec<Row>,
    /// Set when the call's deadline passed: the rows are what was found before it,
    /// and this says so (the caller reports it; never silently complete).
    pub partial: Option<String>,
}

/// Runs `table.generate` the way both servers must: under the context's deadline
/// (made the thread's current one, for the loops below the `Host` trait), with
/// every text cell capped.
pub fn generate_bounded(table: &dyn TableDef, ctx: &QueryContext) -> Result<Generated, TableError> {
    let _scope = ctx.deadline.enter();
    let (mut rows, incomplete) = match table.generate(ctx) {
        Ok(rows) => (rows, None),
        Err(TableError::Partial { rows, reason }) => (rows, Some(reason)),
        Err(e) => return Err(e),
    };
    for row in &mut rows {
        for value in row.iter_mut() {
            if let Value::Text(text) = value {
                if text.len() > MAX_TEXT_BYTES {
                    *text = cap_text(std::mem::take(text));
                }
            }
        }
    }
    let partial = if ctx.deadline.expired() {
        Some(format!(
            "{}: deadline passed; {} row(s) found before it are returned, the rest is unknown",
            table.name(),
            rows.len()
        ))
    } else {
        incomplete.map(|reason| format!("{}: {reason}", table.name()))
    };
    Ok(Generated { rows, partial })
}

/// Index of a column by name.
pub fn column_index(columns: &[Column], name: &str) -> Option<usize> {
    columns.iter().position(|c| c.name == name)
}

/// The markdown table reference (`an1256 tables`, and the README's reference).
pub fn reference_markdown(tables: &[std::sync::Arc<dyn TableDef>]) -> String {
    let mut out = String::new();
    for table in tables {
        out.push_str(&format!(
            "### `{}`\n\n{}\n\n",
            table.name(),
            table.description()
        ));
        out.push_str("| column | type | description |\n|---|---|---|\n");
        for c in table.columns() {
            let index = if c.index { " (index)" } else { "" };
            out.push_str(&format!(
                "| `{}` | {}{} | {} |\n",
                c.name,
                c.ty.as_str(),
                index,
                c.doc.replace('|', "\\|")
            ));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_capped_with_a_marker_at_a_char_boundary() {
        assert_eq!(cap_text("short".into()), "short");
        let exact = "a".repeat(MAX_TEXT_BYTES);
        assert_eq!(cap_text(exact.clone()), exact);
        let long = format!("{}é{}", "a".repeat(MAX_TEXT_BYTES - 1), "b".repeat(1000));
        let capped = cap_text(long.clone());
        assert!(capped.starts_with(&"a".repeat(MAX_TEXT_BYTES - 1)));
        assert!(capped.ends_with(&format!(
            "…[truncated {} bytes]",
            long.len() - (MAX_TEXT_BYTES - 1)
        )));
        assert!(capped.len() < MAX_TEXT_BYTES + 40);
    }

    use slow::Slow;

    #[test]
    fn a_call_past_its_deadline_returns_its_rows_marked_partial() {
        let ctx = QueryContext {
            deadline: crate::deadline::Deadline::after(std::time::Duration::from_millis(50)),
            ..Default::default()
        };
        let generated = generate_bounded(&Slow, &ctx).unwrap();
        assert!(!generated.rows.is_empty());
        let note = generated.partial.unwrap();
        assert!(note.contains("slow: deadline passed"), "{note}");
        for row in &generated.rows {
            let Value::Text(t) = &row[0] else { panic!() };
            assert!(t.contains("…[truncated"), "capped");
        }
        // Outside the call the thread has no deadline again.
        assert_eq!(
            crate::deadline::Deadline::current(),
            crate::deadline::Deadline::NONE
        );
    }
}

/// A table whose loop runs until its call's deadline, as the real loops do, for
/// the tests of both servers.
#[cfg(test)]
pub mod slow {
    use super::*;

    pub struct Slow;
    static SLOW_COLUMNS: &[Column] = &[text("cmdline", "argv")];
    impl TableDef for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        fn description(&self) -> &'static str {
            "test"
        }
        fn columns(&self) -> &'static [Column] {
            SLOW_COLUMNS
        }
        /// Emits rows until the current deadline passes (at most 30 s).
        fn generate(&self, _ctx: &QueryContext) -> Result<Vec<Row>, TableError> {
            let started = std::time::Instant::now();
            let mut rows = Vec::new();
            while !crate::deadline::Deadline::current().expired()
                && started.elapsed() < std::time::Duration::from_secs(30)
            {
                rows.push(vec![Value::Text("x".repeat(MAX_TEXT_BYTES * 2))]);
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Ok(rows)
        }
    }
}
