//! One module per osquery table. Each table declares its columns once (name, type,
//! one line of documentation); the osquery glue (`extension.rs`), the embedded
//! SQLite engine (`sql.rs`) and `an1256 tables` all read those same definitions.

use serde::Serialize;

pub mod an1256_baseline;
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
