//! One module per osquery table. Each table declares its row once with
//! [`table_row!`]: the row struct, its `COLUMNS` (name, type, doc, flags), the
//! conversion to the untyped [`Row`] both servers consume (the osquery glue in
//! `extension/`, the embedded SQLite engine in `sql.rs`), and the parse of a
//! write's values back into typed cells. `an1256 tables` and the reference pages
//! in docs/tables/ read the same declarations.

use serde::Serialize;
use std::collections::BTreeMap;

/// Declares a table's row once: the row struct (one typed field per column), the
/// write cells struct (the same fields, each optional), and their [`TypedRow`]
/// impl with the `COLUMNS` list. Column types read like an osquery spec: `TEXT` is a
/// `String`, `INTEGER` and `BIGINT` are `i64`; `[index]` marks an INDEX column.
///
/// ```ignore
/// table_row! {
///     /// One row of `example`.
///     pub struct ExampleRow, cells ExampleCells {
///         pid: INTEGER [index] = "Process id",
///         path: TEXT = "Executable path",
///     }
/// }
/// ```
macro_rules! table_row {
    (
        $(#[$meta:meta])*
        $vis:vis struct $row:ident, cells $cells:ident {
            $( $field:ident : $ty:ident $([$($flag:ident),+])? = $doc:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        $vis struct $row {
            $( #[doc = $doc] pub $field: $crate::tables::column_rust_type!($ty), )+
        }

        /// The values of an INSERT or UPDATE, typed; `None` where the write gave NULL.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        $vis struct $cells {
            $( #[doc = $doc] pub $field: Option<$crate::tables::column_rust_type!($ty)>, )+
        }

        impl $crate::tables::TypedRow for $row {
            const COLUMNS: &'static [$crate::tables::Column] = &[
                $(
                    $crate::tables::Column::new(
                        stringify!($field),
                        $crate::tables::column_type!($ty),
                        $doc,
                    ) $($(.$flag())+)?,
                )+
            ];
            type Cells = $cells;

            fn into_row(self) -> $crate::tables::Row {
                $crate::tables::Row::declared(
                    Self::COLUMNS,
                    vec![$($crate::tables::Value::from(self.$field)),+],
                )
            }

            fn parse_cells(
                values: &[Option<$crate::tables::Value>],
            ) -> Result<$cells, $crate::tables::TableError> {
                $crate::tables::check_cell_count(Self::COLUMNS, values)?;
                let mut cells = values.iter();
                Ok($cells {
                    $(
                        $field: $crate::tables::CellValue::parse(
                            cells.next().cloned().flatten(),
                            stringify!($field),
                        )?,
                    )+
                })
            }
        }
    };
}
pub(crate) use table_row;

/// The Rust type of a column type named in [`table_row!`].
macro_rules! column_rust_type {
    (TEXT) => {
        String
    };
    (INTEGER) => {
        i64
    };
    (BIGINT) => {
        i64
    };
}
pub(crate) use column_rust_type;

/// The [`ColumnType`] of a column type named in [`table_row!`].
macro_rules! column_type {
    (TEXT) => {
        $crate::tables::ColumnType::Text
    };
    (INTEGER) => {
        $crate::tables::ColumnType::Integer
    };
    (BIGINT) => {
        $crate::tables::ColumnType::BigInt
    };
}
pub(crate) use column_type;

pub mod an1256_baseline;
pub mod an1256_baseline_audit;
pub mod an1256_info;
pub mod an1256_observations;
pub mod constraints;
pub mod nonstandard_protocol_sockets;
pub mod process_code_signature;
pub mod validate;

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

    /// Whether `value` is of this type (INTEGER and BIGINT hold an i64).
    pub fn holds(self, value: &Value) -> bool {
        matches!(
            (self, value),
            (ColumnType::Text, Value::Text(_))
                | (ColumnType::Integer | ColumnType::BigInt, Value::Int(_))
        )
    }
}

/// One column of a table: the single source of truth for its name, type and doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
    /// osquery INDEX column: `=` and `IN` constraints are pushed down.
    pub index: bool,
    pub doc: &'static str,
}

impl Column {
    pub const fn new(name: &'static str, ty: ColumnType, doc: &'static str) -> Column {
        Column {
            name,
            ty,
            index: false,
            doc,
        }
    }

    /// Marks an INDEX column (`[index]` in [`table_row!`]).
    pub const fn index(self) -> Column {
        Column {
            index: true,
            ..self
        }
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

/// Saturating conversion to a column integer, for counts and ids held in wider or
/// unsigned types.
pub fn int(v: impl TryInto<i64>) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

/// A row a table returned: exactly its table's columns, in order. Only
/// [`TypedRow::into_row`] (written by [`table_row!`]) makes one, so a short or
/// long row cannot exist; it derefs to its values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    columns: &'static [Column],
    values: Box<[Value]>,
}

impl Row {
    /// Used by [`table_row!`] only: `values` has one value per column, by construction.
    #[doc(hidden)]
    pub fn declared(columns: &'static [Column], values: Vec<Value>) -> Row {
        debug_assert_eq!(columns.len(), values.len());
        Row {
            columns,
            values: values.into_boxed_slice(),
        }
    }

    /// The columns this row was declared with.
    pub fn columns(&self) -> &'static [Column] {
        self.columns
    }

    /// The value of column `name`, if the table has one.
    pub fn cell(&self, name: &str) -> Option<&Value> {
        column_index(self.columns, name).and_then(|i| self.values.get(i))
    }

    /// The row as osquery ships it: every column, by name, as text.
    pub fn to_osquery(&self) -> BTreeMap<String, String> {
        self.columns
            .iter()
            .zip(self.values.iter())
            .map(|(column, value)| (column.name.to_owned(), value.to_osquery_string()))
            .collect()
    }
}

impl std::ops::Deref for Row {
    type Target = [Value];
    fn deref(&self) -> &[Value] {
        &self.values
    }
}

/// A table's row type, declared by [`table_row!`].
pub trait TypedRow: Send + 'static {
    /// The table's columns, in row order.
    const COLUMNS: &'static [Column];
    /// A write's values, typed.
    type Cells;
    fn into_row(self) -> Row;
    /// Parses an INSERT/UPDATE's values (one per column, in column order): a missing
    /// or extra value, or a value not of its column's type, is an error.
    fn parse_cells(values: &[Option<Value>]) -> Result<Self::Cells, TableError>;
}

/// A write names every column: a different count is an error, never a NULL.
pub fn check_cell_count(columns: &[Column], values: &[Option<Value>]) -> Result<(), TableError> {
    if values.len() == columns.len() {
        Ok(())
    } else {
        Err(TableError::WrongValueCount {
            got: values.len(),
            expected: columns.len(),
        })
    }
}

/// A column's Rust type, parsed from a written value.
pub trait CellValue: Sized {
    fn parse(value: Option<Value>, column: &str) -> Result<Option<Self>, TableError>;
}

impl CellValue for String {
    fn parse(value: Option<Value>, _column: &str) -> Result<Option<String>, TableError> {
        Ok(value.map(|v| v.to_osquery_string()))
    }
}

impl CellValue for i64 {
    fn parse(value: Option<Value>, column: &str) -> Result<Option<i64>, TableError> {
        match value {
            None => Ok(None),
            Some(Value::Int(n)) => Ok(Some(n)),
            Some(Value::Text(t)) => {
                t.trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| TableError::NotInteger {
                        column: column.to_owned(),
                        value: t,
                    })
            }
        }
    }
}

/// Why a table call failed; shown to the user by osquery or the CLI.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// osquery's query context has not the shape it should: says which part.
    #[error("bad query context: {0}")]
    BadContext(String),
    /// osquery's query context is not JSON at all.
    #[error("bad query context: query context is not JSON ({0})")]
    ContextNotJson(#[source] serde_json::Error),
    #[error("{0}")]
    Failed(String),
    /// Rows were found but some that exist may be missing: served as partial.
    #[error("incomplete: {reason}")]
    Partial { rows: Vec<Row>, reason: String },
    /// A write named a different number of values than the table has columns.
    #[error("{got} values for {expected} columns")]
    WrongValueCount { got: usize, expected: usize },
    /// A written value is not of its INTEGER column's type.
    #[error("{column} {value:?} is not an integer")]
    NotInteger { column: String, value: String },
    /// A write left out a value the table needs.
    #[error("{column} is required")]
    Required { column: &'static str },
    /// A write asked for `source = 'policy'`, which only the policy file gives.
    #[error("source `policy` rows come from the policy file; insert `approved` entries")]
    PolicySourceWrite,
    /// A write named a source that is neither `approved` nor `learned`.
    #[error("source {value:?} is not approved or learned")]
    UnknownSource { value: String },
    /// A row does not have its table's columns and types (`validate` checks).
    #[error("{0}")]
    RowShape(String),
    /// A written baseline entry breaks a store rule (identity, protocol, port).
    #[error(transparent)]
    InvalidEntry(crate::baseline::StoreError),
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

/// The write cells of table `T`.
pub type CellsOf<T> = <<T as Table>::Row as TypedRow>::Cells;

/// A table, typed: each table module implements this; [`TableDef`] (what the two
/// servers hold) follows from it, so a table's rows are always its declared rows.
pub trait Table: Send + Sync {
    type Row: TypedRow;
    const NAME: &'static str;
    /// One paragraph for the generated reference.
    const DESCRIPTION: &'static str;
    /// Example queries for the reference page (osqueryi, Fleet live query, a pack).
    const EXAMPLES: &'static [Example] = &[];

    fn rows(&self, ctx: &QueryContext) -> Result<Vec<Self::Row>, TableError>;

    /// Writable tables override these; read-only tables refuse.
    fn writable(&self) -> bool {
        false
    }
    fn insert_cells(&self, _cells: CellsOf<Self>) -> WriteOutcome {
        WriteOutcome::Failure(format!("{} is read-only", Self::NAME))
    }
    fn update_cells(&self, _rowid: i64, _cells: CellsOf<Self>) -> WriteOutcome {
        WriteOutcome::Failure(format!("{} is read-only", Self::NAME))
    }
    fn delete_rowid(&self, _rowid: i64) -> WriteOutcome {
        WriteOutcome::Failure(format!("{} is read-only", Self::NAME))
    }
    /// The column holding each row's rowid, for writable tables.
    fn rowid_name(&self) -> Option<&'static str> {
        None
    }
}

/// One example query of a table's reference page.
#[derive(Clone, Copy, Debug)]
pub struct Example {
    /// What the query answers.
    pub title: &'static str,
    pub sql: &'static str,
}

/// A table that osquery and the embedded engine can both serve (object-safe; every
/// [`Table`] is one).
pub trait TableDef: Send + Sync {
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    fn examples(&self) -> &'static [Example];
    fn columns(&self) -> &'static [Column];
    fn generate(&self, ctx: &QueryContext) -> Result<Vec<Row>, TableError>;
    fn is_writable(&self) -> bool;
    /// Insert one row given in column order (`None` = NULL/default).
    fn insert(&self, values: &[Option<Value>]) -> WriteOutcome;
    fn delete(&self, rowid: i64) -> WriteOutcome;
    fn update(&self, rowid: i64, values: &[Option<Value>]) -> WriteOutcome;
    /// The rowid of each generated row, for writable tables (same order as rows).
    fn rowid_column(&self) -> Option<&'static str>;
}

impl<T: Table> TableDef for T {
    fn name(&self) -> &'static str {
        T::NAME
    }
    fn description(&self) -> &'static str {
        T::DESCRIPTION
    }
    fn examples(&self) -> &'static [Example] {
        T::EXAMPLES
    }
    fn columns(&self) -> &'static [Column] {
        T::Row::COLUMNS
    }
    fn generate(&self, ctx: &QueryContext) -> Result<Vec<Row>, TableError> {
        Ok(self
            .rows(ctx)?
            .into_iter()
            .map(TypedRow::into_row)
            .collect())
    }
    fn is_writable(&self) -> bool {
        self.writable()
    }
    fn insert(&self, values: &[Option<Value>]) -> WriteOutcome {
        match T::Row::parse_cells(values) {
            Ok(cells) => self.insert_cells(cells),
            Err(e) => WriteOutcome::Constraint(e.to_string()),
        }
    }
    fn delete(&self, rowid: i64) -> WriteOutcome {
        self.delete_rowid(rowid)
    }
    fn update(&self, rowid: i64, values: &[Option<Value>]) -> WriteOutcome {
        match T::Row::parse_cells(values) {
            Ok(cells) => self.update_cells(rowid, cells),
            Err(e) => WriteOutcome::Constraint(e.to_string()),
        }
    }
    fn rowid_column(&self) -> Option<&'static str> {
        self.rowid_name()
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
        for value in row.values.iter_mut() {
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
    table_row! {
        pub struct SlowRow, cells SlowCells {
            cmdline: TEXT = "argv",
        }
    }
    impl Table for Slow {
        type Row = SlowRow;
        const NAME: &'static str = "slow";
        const DESCRIPTION: &'static str = "test";
        /// Emits rows until the current deadline passes (at most 30 s).
        fn rows(&self, _ctx: &QueryContext) -> Result<Vec<SlowRow>, TableError> {
            let started = std::time::Instant::now();
            let mut rows = Vec::new();
            while !crate::deadline::Deadline::current().expired()
                && started.elapsed() < std::time::Duration::from_secs(30)
            {
                rows.push(SlowRow {
                    cmdline: "x".repeat(MAX_TEXT_BYTES * 2),
                });
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Ok(rows)
        }
    }
}
