//! The row checks of osquery's `validate_rows` (its table integration tests), for
//! our tables: a row has exactly its table's columns, each value of the declared
//! type, in the three forms rows take (typed [`Row`], osquery's text map, SQLite's
//! values). Used by the tests over the fake host and over the real one.

use super::{Column, ColumnType, Row, TableError};
use rusqlite::types::Value as SqlValue;
use std::collections::BTreeMap;

/// A generated row: exactly `columns`, each value of its column's type.
pub fn check_row(columns: &[Column], row: &Row) -> Result<(), TableError> {
    if row.columns() != columns || row.len() != columns.len() {
        return Err(TableError::RowShape(format!(
            "row has {} values for {} columns: {row:?}",
            row.len(),
            columns.len()
        )));
    }
    for (column, value) in columns.iter().zip(row.iter()) {
        if !column.ty.holds(value) {
            return Err(TableError::RowShape(format!(
                "{} is {}, the value is {value:?}",
                column.name,
                column.ty.as_str()
            )));
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
) -> Result<(), TableError> {
    let mut expected: Vec<&str> = columns.iter().map(|c| c.name).collect();
    expected.extend(extra);
    expected.sort_unstable();
    let found: Vec<&str> = row.keys().map(String::as_str).collect();
    if found != expected {
        return Err(TableError::RowShape(format!(
            "keys {found:?}, expected {expected:?}"
        )));
    }
    for column in columns {
        let text = &row[column.name];
        if column.ty != ColumnType::Text && text.parse::<i64>().is_err() {
            return Err(TableError::RowShape(format!(
                "{} is {} but osquery got {text:?}",
                column.name,
                column.ty.as_str()
            )));
        }
    }
    Ok(())
}

/// A `SELECT *` row from the embedded engine: the column names in order, each value
/// SQLite's integer or text as declared (never NULL).
pub fn check_sql_row(
    columns: &[Column],
    names: &[String],
    row: &[SqlValue],
) -> Result<(), TableError> {
    let declared: Vec<&str> = columns.iter().map(|c| c.name).collect();
    if names != declared.as_slice() || row.len() != columns.len() {
        return Err(TableError::RowShape(format!(
            "columns {names:?}, expected {declared:?}"
        )));
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
            return Err(TableError::RowShape(format!(
                "{} is {}, SQLite got {value:?}",
                column.name,
                column.ty.as_str()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{ColumnType, Value};

    static COLUMNS: &[Column] = &[
        Column::new("pid", ColumnType::Integer, "id"),
        Column::new("path", ColumnType::Text, "path"),
    ];

    #[test]
    fn each_check_refuses_a_missing_extra_or_mistyped_cell() {
        let good = Row::declared(COLUMNS, vec![Value::Int(1), "/x".into()]);
        assert!(check_row(COLUMNS, &good).is_ok());
        let mistyped = Row::declared(COLUMNS, vec!["1".into(), "/x".into()]);
        assert!(check_row(COLUMNS, &mistyped).is_err());
        assert!(check_row(&COLUMNS[..1], &good).is_err());

        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(check_osquery_row(COLUMNS, &map(&[("pid", "1"), ("path", "/x")]), &[]).is_ok());
        assert!(check_osquery_row(COLUMNS, &map(&[("pid", "1")]), &[]).is_err());
        assert!(check_osquery_row(COLUMNS, &map(&[("pid", "x"), ("path", "/x")]), &[]).is_err());
        let extra = map(&[("pid", "1"), ("path", "/x"), ("rowid", "1")]);
        assert!(check_osquery_row(COLUMNS, &extra, &[]).is_err());
        assert!(check_osquery_row(COLUMNS, &extra, &["rowid"]).is_ok());

        let names = vec!["pid".to_owned(), "path".to_owned()];
        let sql = |row: Vec<SqlValue>| check_sql_row(COLUMNS, &names, &row);
        assert!(sql(vec![SqlValue::Integer(1), SqlValue::Text("/x".into())]).is_ok());
        assert!(sql(vec![SqlValue::Integer(1), SqlValue::Null]).is_err());
        assert!(sql(vec![SqlValue::Integer(1)]).is_err());
    }
}
