//! `an1256 scan` and `an1256 query`: the embedded engine's command-line front.
//! Exit codes follow the scanner convention: 0 no hits, 1 hits, 2 error.

use crate::cli::osquery_log::HostIdentity;
use crate::cli::CliError;
use crate::sql::{display_value, json_value, Engine, QueryResult};
use crate::tables::TableDef;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The hit query exactly as the pack ships it (`an1256_hits` in packs/an1256.conf,
/// compiled in), ordered for people: worst first.
pub fn hit_query() -> Result<String, CliError> {
    let pack = crate::cli::packs::hit_query()?;
    let pack = pack.trim().trim_end_matches(';');
    Ok(format!(
        "SELECT * FROM ({pack}) ORDER BY severity DESC, pid, fd"
    ))
}

/// Output format shared by `scan` and `query`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns (the default).
    Table,
    /// One JSON object per row.
    Json,
    /// osquery's result-log lines (`name`, `hostIdentifier`, `calendarTime`,
    /// `unixTime`, `epoch`, `counter`, `numerics`, `decorations`, `columns`,
    /// `action`), as osqueryd would log the pack's hits (see the osquery options).
    Osquery,
    /// Elastic Common Schema documents, one per line.
    Ecs,
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
    #[command(flatten)]
    pub osquery: crate::cli::osquery_log::OsqueryLogArgs,
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

/// A statement's result, and why it is incomplete (empty when complete).
type Ran = (QueryResult, Vec<String>);

fn run(sql: &str, tables: Vec<Arc<dyn TableDef>>, time_limit: u64) -> Result<Ran, CliError> {
    let mut engine = Engine::new(tables).map_err(CliError::Engine)?;
    engine.set_time_limit(Duration::from_secs(time_limit.max(1)));
    let result = engine.query(sql).map_err(|e| match e {
        rusqlite::Error::SqliteFailure(code, _)
            if code.code == rusqlite::ErrorCode::OperationInterrupted =>
        {
            CliError::Abandoned {
                seconds: time_limit,
            }
        }
        other => CliError::Sql(other),
    })?;
    Ok((result, engine.partial()))
}

/// Says on stderr that the printed result is incomplete (a table call passed the
/// `--time-limit` deadline); the caller then exits 2 although it printed rows.
fn warn_partial(partial: &[String], time_limit: u64) -> bool {
    for note in partial {
        eprintln!("an1256: warning: incomplete result after {time_limit} s: {note}");
    }
    !partial.is_empty()
}

/// Runs the hit query and prints the hits.
pub fn scan(args: &ScanArgs, tables: Vec<Arc<dyn TableDef>>) -> ExitCode {
    let ran = hit_query().and_then(|sql| run(&sql, tables, args.time_limit));
    let (result, partial) = match ran {
        Ok(r) => r,
        Err(e) => {
            eprintln!("an1256: {e}");
            return ExitCode::from(2);
        }
    };
    let format = if args.json { Format::Json } else { args.format };
    let mut out = std::io::stdout().lock();
    let now = u64::try_from(crate::util::time::unix_now()).unwrap_or(0);
    let written = match format {
        Format::Json => write_json_lines(&mut out, &result),
        Format::Table => write_hits_table(&mut out, &result),
        Format::Osquery => {
            let host = HostIdentity::of_this_host();
            if let (_, Some(warning)) =
                crate::cli::osquery_log::host_identifier(&args.osquery, &host)
            {
                eprintln!("an1256: warning: {warning}");
            }
            crate::cli::osquery_log::write_lines(
                &mut out,
                &result,
                &args.osquery,
                &host,
                crate::cli::packs::PACK_NAME,
                crate::cli::packs::HIT_QUERY,
                now,
                &crate::util::time::calendar_time(now),
            )
        }
        Format::Ecs => write_ecs(&mut out, &result, now, &HostIdentity::of_this_host()),
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
    if warn_partial(&partial, args.time_limit) {
        return ExitCode::from(2);
    }
    if hits == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// One ECS document per hit.
pub fn write_ecs(
    out: &mut impl Write,
    (columns, rows): &QueryResult,
    now: u64,
    host: &HostIdentity,
) -> std::io::Result<()> {
    let timestamp = crate::util::time::rfc3339(now);
    for row in rows {
        writeln!(
            out,
            "{}",
            crate::cli::ecs::hit_to_ecs(columns, row, &timestamp, host)
        )?;
    }
    Ok(())
}

/// Runs any SQL and prints the result.
pub fn query(args: &QueryArgs, tables: Vec<Arc<dyn TableDef>>) -> ExitCode {
    let (result, partial) = match run(&args.sql, tables, args.time_limit) {
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
        _ if warn_partial(&partial, args.time_limit) => ExitCode::from(2),
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
    crate::terminal::sanitize(text).into_owned()
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
        "sev", "pid", "process", "subject", "trust", "protocol", "local", "remote", "state",
        "reason",
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
                get(row, "severity"),
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
