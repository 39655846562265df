//! The row checks of osquery's `validate_rows` (its table integration tests), for
//! our tables: a row has exactly its table's columns, each value of the declared
//! type, in the three forms rows take (typed [`Row`], osquery's text map, SQLite's
//! values). Used by the tests over the fake host and over the real one.

use super::{Column, ColumnType, Row};
use rusqlite::types::Value as SqlValue;
use std::collections::BTreeMap;

/// A generated row: exactly `columns`, each value of its column's type.
pub fn check_row(columns: &[Column], row: &Row) -> Result<(), String> {
    if row.columns() != columns || row.len() != columns.len() {
        return Err(format!(
            "row has {} values for {} columns: {row:?}",
            row.len(),
            columns.len()
        ));
    }
    for (column, value) in columns.iter().zip(row.iter()) {
        if !column.ty.holds(value) {
            return Err(format!(
                "{} is {}, the value is {value:?}",
                column.name,
                column.ty.as_str()
            ));
        }
    }
    Ok(())
}

/// A row as osquery receives it: every column by name (plus `extra` keys such as
/// `rowid`), no other key; INTEGER and BIGINT cells parse as i64.
pub fn check_osquery_row(
    columns: &[Column],
    row: &BTreeMap<String, String>,
    extra: &[&str],
) -> Result<(), String> {
    let mut expected: Vec<&str> = columns.iter().map(|c| c.name).collect();
    expected.extend(extra);
    expected.sort_unstable();
    let found: Vec<&str> = row.keys().map(String::as_str).collect();
    if found != expected {
        return Err(format!("keys {found:?}, expected {expected:?}"));
    }
    for column in columns {
        let text = &row[column.name];
        if column.ty != ColumnType::Text && text.parse::<i64>().is_err() {
            return Err(format!(
                "{} is {} but osquery got {text:?}",
                column.name,
                column.ty.as_str()
            ));
        }
    }
    Ok(())
}

/// A `SELECT *` row from the embedded engine: the column names in order, each value
/// SQLite's integer or text as declared (never NULL).
pub fn check_sql_row(columns: &[Column], names: &[String], row: &[SqlValue]) -> Result<(), String> {
    let declared: Vec<&str> = columns.iter().map(|c| c.name).collect();
    if names != declared.as_slice() || row.len() != columns.len() {
        return Err(format!("columns {names:?}, expected {declared:?}"));
    }
    for (column, value) in columns.iter().zip(row) {
        let fits = matches!(
            (column.ty, value),
            (ColumnType::Text, SqlValue::Text(_))
                | (
                    ColumnType::Integer | ColumnType::BigInt,
                    SqlValue::Integer(_)
                )
        );
        if !fits {
            return Err(format!(
                "{} is {}, SQLite got {value:?}",
                column.name,
                column.ty.as_str()
            ));
        }
    }
    Ok(())
}
