//! Constraint push-down in one place. osquery sends a JSON query context; the
//! embedded engine builds the same `QueryContext` from SQLite's xBestIndex. Tables
//! ask only two questions: "which values must this column equal?" and nothing else.

use super::TableError;
use serde_json::Value as Json;

/// osquery's constraint operators (the numbers are osquery's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Equals,
    GreaterThan,
    LessThanOrEquals,
    LessThan,
    GreaterThanOrEquals,
    Match,
    Like,
    Glob,
    Regexp,
    /// Anything else osquery may add; never used for push-down.
    Other(i64),
}

impl Op {
    pub fn from_osquery(code: i64) -> Op {
        match code {
            2 => Op::Equals,
            4 => Op::GreaterThan,
            8 => Op::LessThanOrEquals,
            16 => Op::LessThan,
            32 => Op::GreaterThanOrEquals,
            64 => Op::Match,
            65 => Op::Like,
            66 => Op::Glob,
            67 => Op::Regexp,
            other => Op::Other(other),
        }
    }
}

/// One `column op value` term of the WHERE clause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constraint {
    pub column: String,
    pub op: Op,
    pub expr: String,
}

/// The constraints of one generate call. Empty = full scan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryContext {
    pub constraints: Vec<Constraint>,
    /// When the call must stop and return what it found (see [`crate::deadline`]).
    pub deadline: crate::deadline::Deadline,
}

impl QueryContext {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `column = expr`.
    pub fn with_equals(mut self, column: &str, expr: impl Into<String>) -> Self {
        self.constraints.push(Constraint {
            column: column.to_owned(),
            op: Op::Equals,
            expr: expr.into(),
        });
        self
    }

    /// Parses osquery's context JSON:
    /// `{"constraints":[{"name":"pid","affinity":"INTEGER","list":[{"op":2,"expr":"1"}]}]}`.
    /// Unknown keys are ignored; a structure that is not this is an error.
    pub fn from_osquery_json(text: &str) -> Result<QueryContext, TableError> {
        if text.trim().is_empty() {
            return Ok(QueryContext::default());
        }
        let json: Json = serde_json::from_str(text).map_err(TableError::ContextNotJson)?;
        let Some(object) = json.as_object() else {
            return Err(TableError::BadContext(
                "query context is not a JSON object".into(),
            ));
        };
        let mut ctx = QueryContext::default();
        let Some(list) = object.get("constraints") else {
            return Ok(ctx);
        };
        let Some(list) = list.as_array() else {
            return Err(TableError::BadContext(
                "query context `constraints` is not an array".into(),
            ));
        };
        for entry in list {
            let name = entry.get("name").and_then(Json::as_str).ok_or_else(|| {
                TableError::BadContext("a constraint has no `name` string".into())
            })?;
            let Some(terms) = entry.get("list") else {
                continue;
            };
            // osquery sends "" instead of [] for a column with no constraints.
            if terms.as_str().is_some() {
                continue;
            }
            let terms = terms.as_array().ok_or_else(|| {
                TableError::BadContext(format!("constraint list of `{name}` is not an array"))
            })?;
            for term in terms {
                let op = match term.get("op") {
                    Some(Json::Number(n)) => n.as_i64(),
                    Some(Json::String(s)) => s.parse().ok(),
                    _ => None,
                }
                .ok_or_else(|| {
                    TableError::BadContext(format!("constraint on `{name}` has no numeric `op`"))
                })?;
                let expr = match term.get("expr") {
                    Some(Json::String(s)) => s.clone(),
                    Some(Json::Number(n)) => n.to_string(),
                    _ => {
                        return Err(TableError::BadContext(format!(
                            "constraint on `{name}` has no `expr`"
                        )))
                    }
                };
                ctx.constraints.push(Constraint {
                    column: name.to_owned(),
                    op: Op::from_osquery(op),
                    expr,
                });
            }
        }
        Ok(ctx)
    }

    /// The set of values `column` must equal (`=` and `IN`), or `None` when the
    /// column is unconstrained by equality. Several `=` terms are a union: osquery
    /// sends `IN (…)` that way, and SQLite re-checks every row anyway.
    pub fn equal_texts(&self, column: &str) -> Option<Vec<String>> {
        let values: Vec<String> = self
            .constraints
            .iter()
            .filter(|c| c.column == column && c.op == Op::Equals)
            .map(|c| c.expr.clone())
            .collect();
        (!values.is_empty()).then_some(values)
    }

    /// Like `equal_texts`, for integer columns. A value that is not an integer can
    /// match no row, so it is dropped (and an all-invalid list gives `Some([])`).
    pub fn equal_integers(&self, column: &str) -> Option<Vec<i64>> {
        let texts = self.equal_texts(column)?;
        let mut values: Vec<i64> = texts
            .iter()
            .filter_map(|t| t.trim().parse::<i64>().ok())
            .collect();
        values.sort_unstable();
        values.dedup();
        Some(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_osquery_context_with_in_list() {
        let ctx = QueryContext::from_osquery_json(
            r#"{"constraints":[{"name":"pid","list":[{"op":2,"expr":"10"},{"op":2,"expr":"7"},{"op":4,"expr":"1"}],"affinity":"INTEGER"},{"name":"path","list":"","affinity":"TEXT"}]}"#,
        )
        .unwrap();
        assert_eq!(ctx.equal_integers("pid"), Some(vec![7, 10]));
        assert_eq!(ctx.equal_texts("path"), None);
        assert_eq!(ctx.constraints.len(), 3);
        assert_eq!(ctx.constraints[2].op, Op::GreaterThan);
    }

    #[test]
    fn empty_context_is_full_scan() {
        assert_eq!(
            QueryContext::from_osquery_json("").unwrap(),
            QueryContext::default()
        );
        assert_eq!(
            QueryContext::from_osquery_json("{}").unwrap(),
            QueryContext::default()
        );
    }

    #[test]
    fn malformed_contexts_are_errors_not_panics() {
        for bad in [
            "{",
            "[1,2]",
            r#"{"constraints":5}"#,
            r#"{"constraints":[{"list":[]}]}"#,
            r#"{"constraints":[{"name":"pid","list":[{"op":"x","expr":"1"}]}]}"#,
            r#"{"constraints":[{"name":"pid","list":[{"op":2}]}]}"#,
            r#"{"constraints":[{"name":"pid","list":{"op":2}}]}"#,
        ] {
            assert!(QueryContext::from_osquery_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn non_integer_pid_matches_nothing() {
        let ctx = QueryContext::new().with_equals("pid", "abc");
        assert_eq!(ctx.equal_integers("pid"), Some(vec![]));
    }
}
