//! `an1256 scan` and `an1256 query`: the embedded engine's command-line front.
//! Exit codes follow the scanner convention: 0 no hits, 1 hits, 2 error.

use crate::sql::{display_value, json_value, Engine, QueryResult};
use crate::tables::TableDef;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The hit query exactly as the pack ships it (`an1256_hits` in packs/an1256.conf,
/// compiled in), ordered for people: worst first.
pub fn hit_query() -> Result<String, String> {
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
    /// `unixTime`, `columns`, `action`), as osqueryd would log the pack's hits.
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

fn run(sql: &str, tables: Vec<Arc<dyn TableDef>>, time_limit: u64) -> Result<Ran, String> {
    let mut engine =
        Engine::new(tables).map_err(|e| format!("cannot start the embedded SQLite engine: {e}"))?;
    engine.set_time_limit(Duration::from_secs(time_limit.max(1)));
    let result = engine.query(sql).map_err(|e| match e {
        rusqlite::Error::SqliteFailure(code, _)
            if code.code == rusqlite::ErrorCode::OperationInterrupted =>
        {
            format!("query abandoned after {time_limit} s (raise --time-limit or narrow the query)")
        }
        other => format!("SQL error: {other}"),
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
        Format::Osquery => write_osquery_log(&mut out, &result, &host_name(), now),
        Format::Ecs => write_ecs(&mut out, &result, now),
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

/// This host's name, as osquery's `hostIdentifier` defaults to it.
pub fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(buffer.get(..end).unwrap_or_default()).into_owned()
}

/// osquery's `calendarTime`: `Sat Nov 28 04:21:19 2026 UTC`.
pub fn calendar_time(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap_or(0);
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let weekday = WEEKDAYS
        .get(usize::try_from(days.rem_euclid(7)).unwrap_or(0))
        .unwrap_or(&"Thu");
    let month_name = MONTHS
        .get(usize::try_from(month - 1).unwrap_or(0))
        .unwrap_or(&"Jan");
    format!(
        "{weekday} {month_name} {day:2} {:02}:{:02}:{:02} {year} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// RFC 3339 UTC timestamp (ECS `@timestamp`).
pub fn rfc3339(unix: u64) -> String {
    let cal = calendar_time(unix);
    // Reuse the civil conversion: parse back the pieces we just formatted.
    let parts: Vec<&str> = cal.split_whitespace().collect();
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| parts.get(1) == Some(m))
    .unwrap_or(0)
        + 1;
    format!(
        "{}-{month:02}-{:0>2}T{}Z",
        parts.get(4).unwrap_or(&"1970"),
        parts.get(2).unwrap_or(&"1"),
        parts.get(3).unwrap_or(&"00:00:00")
    )
}

/// osquery result-log lines, one per hit, as a differential pack query logs them
/// (`action: added`; every column value a string, as osquery sends them).
pub fn write_osquery_log(
    out: &mut impl Write,
    (columns, rows): &QueryResult,
    host: &str,
    now: u64,
) -> std::io::Result<()> {
    let calendar = calendar_time(now);
    for row in rows {
        let values: serde_json::Map<String, serde_json::Value> = columns
            .iter()
            .cloned()
            .zip(
                row.iter()
                    .map(|v| serde_json::Value::String(display_value(v))),
            )
            .collect();
        let line = serde_json::json!({
            "name": "pack_an1256_an1256_hits",
            "hostIdentifier": host,
            "calendarTime": calendar,
            "unixTime": now,
            "epoch": 0,
            "counter": 0,
            "numerics": false,
            "columns": values,
            "action": "added",
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// One ECS document per hit.
pub fn write_ecs(
    out: &mut impl Write,
    (columns, rows): &QueryResult,
    now: u64,
) -> std::io::Result<()> {
    let timestamp = rfc3339(now);
    for row in rows {
        writeln!(
            out,
            "{}",
            crate::cli::ecs::hit_to_ecs(columns, row, &timestamp)
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
    fn osquery_result_log_lines_have_osquerys_shape() {
        let mut out = Vec::new();
        let result = (
            vec!["pid".to_string(), "protocol_name".to_string()],
            vec![vec![V::Integer(7), V::Text("udp".into())]],
        );
        write_osquery_log(&mut out, &result, "host1", 1_764_303_679).unwrap();
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(line["name"], "pack_an1256_an1256_hits");
        assert_eq!(line["hostIdentifier"], "host1");
        assert_eq!(line["calendarTime"], "Fri Nov 28 04:21:19 2025 UTC");
        assert_eq!(line["unixTime"], 1_764_303_679u64);
        assert_eq!(line["action"], "added");
        assert_eq!(line["columns"]["pid"], "7");
        assert_eq!(line["columns"]["protocol_name"], "udp");
    }

    #[test]
    fn calendar_and_rfc3339_times() {
        assert_eq!(calendar_time(0), "Thu Jan  1 00:00:00 1970 UTC");
        assert_eq!(calendar_time(951_782_400), "Tue Feb 29 00:00:00 2000 UTC");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_764_303_679), "2025-11-28T04:21:19Z");
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
