//! `an1256 scan` and `an1256 query`: the embedded engine's command-line front.
//! Exit codes follow the scanner convention: 0 no hits, 1 hits, 2 error.

use crate::sql::{display_value, json_value, Engine, QueryResult};
use crate::tables::TableDef;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The AN1256 hit query: untrusted subjects holding non-standard sockets.
pub const HIT_QUERY: &str = "SELECT s.pid, c.path, c.cmdline, c.uid, c.parent_path, \
 c.trust, c.interpreter, c.script_kind, c.script_trust, c.subject_kind, c.subject_path, c.subject_identity, \
 c.sha256, c.script_sha256, s.protocol_name, s.socket_type, s.local_address, s.local_port, \
 s.remote_address, s.remote_port, s.state, s.remote_scope, s.reason, s.fd, s.socket, s.net_namespace \
 FROM nonstandard_protocol_sockets s \
 JOIN process_code_signature c ON c.pid = s.pid \
 WHERE c.subject_trusted = 0 \
 ORDER BY s.pid, s.fd";

/// Output format shared by `scan` and `query`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns (the default).
    Table,
    /// One JSON object per row.
    Json,
}

#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    /// Print JSON lines instead of a table (same as --format json).
    #[arg(long)]
    pub json: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Abandon the query after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub time_limit: u64,
}

#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    /// The SQL to run (one statement).
    pub sql: String,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Abandon the query after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub time_limit: u64,
}

fn run(sql: &str, tables: Vec<Arc<dyn TableDef>>, time_limit: u64) -> Result<QueryResult, String> {
    let mut engine =
        Engine::new(tables).map_err(|e| format!("cannot start the embedded SQLite engine: {e}"))?;
    engine.set_time_limit(Duration::from_secs(time_limit.max(1)));
    engine.query(sql).map_err(|e| match e {
        rusqlite::Error::SqliteFailure(code, _)
            if code.code == rusqlite::ErrorCode::OperationInterrupted =>
        {
            format!("query abandoned after {time_limit} s (raise --time-limit or narrow the query)")
        }
        other => format!("SQL error: {other}"),
    })
}

/// Runs the hit query and prints the hits.
pub fn scan(args: &ScanArgs, tables: Vec<Arc<dyn TableDef>>) -> ExitCode {
    let result = match run(HIT_QUERY, tables, args.time_limit) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("an1256: {e}");
            return ExitCode::from(2);
        }
    };
    let json = args.json || args.format == Format::Json;
    let mut out = std::io::stdout().lock();
    let written = if json {
        write_json_lines(&mut out, &result)
    } else {
        write_hits_table(&mut out, &result)
    };
    if let Err(e) = written {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("an1256: cannot write output: {e}");
            return ExitCode::from(2);
        }
    }
    let hits = result.1.len();
    if std::io::stderr().is_terminal() {
        eprintln!("{hits} hit(s)");
    }
    if hits == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Runs any SQL and prints the result.
pub fn query(args: &QueryArgs, tables: Vec<Arc<dyn TableDef>>) -> ExitCode {
    let result = match run(&args.sql, tables, args.time_limit) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("an1256: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        write_json_lines(&mut out, &result)
    } else {
        write_table(
            &mut out,
            &result.0,
            &result
                .1
                .iter()
                .map(|r| r.iter().map(display_value).collect())
                .collect::<Vec<Vec<String>>>(),
        )
    };
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("an1256: cannot write output: {e}");
            ExitCode::from(2)
        }
        _ => ExitCode::SUCCESS,
    }
}

/// One JSON object per row, keys in column order.
pub fn write_json_lines(
    out: &mut impl Write,
    (columns, rows): &QueryResult,
) -> std::io::Result<()> {
    for row in rows {
        let object: serde_json::Map<String, serde_json::Value> = columns
            .iter()
            .cloned()
            .zip(row.iter().map(json_value))
            .collect();
        writeln!(out, "{}", serde_json::Value::Object(object))?;
    }
    Ok(())
}

/// Aligned columns; control characters are escaped so a hostile cmdline cannot
/// rewrite the analyst's terminal.
pub fn write_table(
    out: &mut impl Write,
    columns: &[String],
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| printable(c)).collect())
        .collect();
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    writeln!(out, "{}", line(columns))?;
    writeln!(
        out,
        "{}",
        line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>())
    )?;
    for row in &rows {
        writeln!(out, "{}", line(row))?;
    }
    Ok(())
}

/// Escapes control characters.
pub fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| -> Vec<char> {
            if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// The analyst's view of hits: who, what they are, what they opened.
fn write_hits_table(out: &mut impl Write, (columns, rows): &QueryResult) -> std::io::Result<()> {
    let get = |row: &[rusqlite::types::Value], name: &str| -> String {
        columns
            .iter()
            .position(|c| c == name)
            .and_then(|i| row.get(i))
            .map(display_value)
            .unwrap_or_default()
    };
    let header: Vec<String> = [
        "pid", "process", "subject", "trust", "protocol", "local", "remote", "state", "reason",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let is_script = get(row, "subject_kind") == "script";
            let subject = match get(row, "subject_path") {
                path if !path.is_empty() => format!("{} {path}", get(row, "subject_kind")),
                _ => format!("{} {}", get(row, "interpreter"), get(row, "script_kind")),
            };
            let trust = if is_script {
                get(row, "script_trust")
            } else {
                get(row, "trust")
            };
            vec![
                get(row, "pid"),
                get(row, "path"),
                subject,
                trust,
                format!("{}/{}", get(row, "protocol_name"), get(row, "socket_type")),
                format!("{}:{}", get(row, "local_address"), get(row, "local_port")),
                format!(
                    "{}:{} ({})",
                    get(row, "remote_address"),
                    get(row, "remote_port"),
                    get(row, "remote_scope")
                ),
                get(row, "state"),
                get(row, "reason"),
            ]
        })
        .collect();
    if cells.is_empty() {
        return writeln!(
            out,
            "no hits: no untrusted binary or script holds an ICMP, UDP, raw or SOCKS socket"
        );
    }
    write_table(out, &header, &cells)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::types::Value as V;

    #[test]
    fn table_output_is_aligned_and_escapes_control_characters() {
        let mut out = Vec::new();
        write_table(
            &mut out,
            &["a".into(), "bb".into()],
            &[
                vec!["xyz".into(), "1".into()],
                vec!["q\u{1b}[2J".into(), "22".into()],
            ],
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "a           bb\n----------  --\nxyz         1\nq\\u{1b}[2J  22\n"
        );
    }

    #[test]
    fn json_lines_keep_column_order_and_types() {
        let mut out = Vec::new();
        let result = (
            vec!["pid".to_string(), "path".to_string(), "n".to_string()],
            vec![vec![V::Integer(7), V::Text("/tmp/x".into()), V::Null]],
        );
        write_json_lines(&mut out, &result).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"pid\":7,\"path\":\"/tmp/x\",\"n\":null}\n"
        );
    }
}
