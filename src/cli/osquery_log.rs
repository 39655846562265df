//! `an1256 scan --format osquery`: hits as osqueryd's results log would carry them,
//! so a pipeline that parses osquery result lines (Fleet, Filebeat/Elastic Agent's
//! osquery integration, Vector, Fluent Bit…) takes them unchanged.
//!
//! Field set and order follow osquery's serializer (osquery/core/query.cpp:
//! `addLegacyFieldsAndDecorations`, `serializeQueryLogItem`,
//! `serializeQueryLogItemAsEvents`): `name`, `hostIdentifier`, `calendarTime`,
//! `unixTime`, `epoch`, `counter`, `numerics`, `decorations` (or decorations at the
//! top level), then `columns` + `action` (event lines), `diffResults` (batch) or
//! `snapshot` + `action: snapshot`.

pub use crate::platform::host_identity::HostIdentity;
use crate::sql::{display_value, QueryResult};
use rusqlite::types::Value as SqlValue;
use serde_json::{Map, Value as Json};
use std::io::Write;

/// What `hostIdentifier` carries (osquery `--host_identifier`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostIdentifier {
    /// The host name (osquery's default).
    Hostname,
    /// The host UUID (Linux: /etc/machine-id; macOS: IOPlatformUUID).
    Uuid,
}

/// One decoration (osquery decorator query columns; Fleet's default decorators
/// give `host_uuid` and `hostname`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoration {
    /// `host_uuid`: the host UUID.
    #[value(name = "host_uuid")]
    HostUuid,
    /// `hostname`: the host name.
    #[value(name = "hostname")]
    Hostname,
    /// No decorations at all.
    #[value(name = "none")]
    None,
}

/// How the scheduled query is named in `name`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryNaming {
    /// osqueryd's pack naming: `pack<delimiter>an1256<delimiter>an1256_hits`.
    Osquery,
    /// Fleet's naming of a global query: `pack/Global/an1256_hits`.
    Fleet,
}

/// The shape of the lines.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogShape {
    /// One line per hit with `columns` and `action: added` (osqueryd's default,
    /// `--logger_event_type`, for a differential query).
    Event,
    /// One line with `diffResults: {removed: [], added: [...]}` (osqueryd with
    /// `--logger_event_type=false`); nothing when there is no hit.
    Batch,
    /// One line with the `snapshot` array and `action: snapshot` (a snapshot query),
    /// written even when there is no hit.
    Snapshot,
}

/// `--format osquery` options, named after the osquery flags they mirror.
#[derive(clap::Args, Clone, Debug)]
pub struct OsqueryLogArgs {
    /// `hostIdentifier`: the host name (osquery's default) or the host UUID
    /// (osquery --host_identifier uuid).
    #[arg(long, value_enum, default_value_t = HostIdentifier::Hostname)]
    pub host_identifier: HostIdentifier,
    /// Decorations, comma-separated: host_uuid, hostname (Fleet's default
    /// decorators), or none.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Decoration::HostUuid, Decoration::Hostname])]
    pub decorations: Vec<Decoration>,
    /// Decorations as top-level fields (osquery --decorations_top_level).
    #[arg(long)]
    pub decorations_top_level: bool,
    /// `name`: osquery's pack naming or Fleet's `pack/Global/<query>`.
    #[arg(long, value_enum, default_value_t = QueryNaming::Osquery)]
    pub query_naming: QueryNaming,
    /// The delimiter of osquery pack query names (osquery --pack_delimiter).
    #[arg(long, default_value = "_")]
    pub pack_delimiter: String,
    /// Line shape: event (a line per hit), batch (diffResults) or snapshot.
    #[arg(long, value_enum, default_value_t = LogShape::Event)]
    pub log_shape: LogShape,
    /// Integer columns as JSON numbers (osquery --logger_numerics); strings by default.
    #[arg(long)]
    pub numerics: bool,
    /// `counter`: 0 marks a differential query's initial results, which some
    /// pipelines drop; a one-shot scan is an initial result.
    #[arg(long, default_value_t = 0)]
    pub counter: u64,
    /// `epoch` (osquery --schedule_epoch).
    #[arg(long, default_value_t = 0)]
    pub epoch: u64,
}

impl Default for OsqueryLogArgs {
    fn default() -> Self {
        OsqueryLogArgs {
            host_identifier: HostIdentifier::Hostname,
            decorations: vec![Decoration::HostUuid, Decoration::Hostname],
            decorations_top_level: false,
            query_naming: QueryNaming::Osquery,
            pack_delimiter: "_".into(),
            log_shape: LogShape::Event,
            numerics: false,
            counter: 0,
            epoch: 0,
        }
    }
}

/// The scheduled query's `name`.
pub fn query_name(args: &OsqueryLogArgs, pack: &str, query: &str) -> String {
    match args.query_naming {
        QueryNaming::Osquery => {
            let d = &args.pack_delimiter;
            format!("pack{d}{pack}{d}{query}")
        }
        QueryNaming::Fleet => format!("pack/Global/{query}"),
    }
}

/// The `hostIdentifier` value, and a warning when the UUID asked for is missing
/// (then the host name stands in, as a pipeline needs some identifier).
pub fn host_identifier(args: &OsqueryLogArgs, host: &HostIdentity) -> (String, Option<String>) {
    match (args.host_identifier, &host.uuid) {
        (HostIdentifier::Hostname, _) => (host.name.clone(), None),
        (HostIdentifier::Uuid, Ok(uuid)) => (uuid.clone(), None),
        (HostIdentifier::Uuid, Err(why)) => (
            host.name.clone(),
            Some(format!(
                "no host UUID ({why}); hostIdentifier is the host name"
            )),
        ),
    }
}

/// The decorations, keys sorted as osquery's `std::map` sorts them; a missing
/// UUID is left out rather than sent empty.
pub fn decorations(args: &OsqueryLogArgs, host: &HostIdentity) -> Map<String, Json> {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if args.decorations.contains(&Decoration::None) {
        return Map::new();
    }
    for decoration in &args.decorations {
        match decoration {
            Decoration::HostUuid => {
                if let Ok(uuid) = &host.uuid {
                    pairs.push(("host_uuid", uuid.clone()));
                }
            }
            Decoration::Hostname => pairs.push(("hostname", host.name.clone())),
            Decoration::None => {}
        }
    }
    pairs.sort();
    pairs.dedup();
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Json::String(v)))
        .collect()
}

/// One row as osquery logs it: every value a string (NULL as ""), or integers as
/// numbers with `numerics`.
fn row_object(columns: &[String], row: &[SqlValue], numerics: bool) -> Map<String, Json> {
    columns
        .iter()
        .cloned()
        .zip(row.iter().map(|v| {
            match v {
                SqlValue::Integer(i) if numerics => Json::from(*i),
                SqlValue::Real(f) if numerics => serde_json::Number::from_f64(*f)
                    .map(Json::Number)
                    .unwrap_or_else(|| Json::String(display_value(v))),
                other => Json::String(display_value(other)),
            }
        }))
        .collect()
}

/// Writes the hits of query `query` of pack `pack` as osquery result-log lines.
#[allow(clippy::too_many_arguments)]
pub fn write_lines(
    out: &mut impl Write,
    (columns, rows): &QueryResult,
    args: &OsqueryLogArgs,
    host: &HostIdentity,
    pack: &str,
    query: &str,
    now: u64,
    calendar_time: &str,
) -> std::io::Result<()> {
    let (identifier, _) = host_identifier(args, host);
    let decorations = decorations(args, host);
    let common = |line: &mut Map<String, Json>| {
        line.insert("name".into(), query_name(args, pack, query).into());
        line.insert("hostIdentifier".into(), identifier.clone().into());
        line.insert("calendarTime".into(), calendar_time.into());
        line.insert("unixTime".into(), now.into());
        line.insert("epoch".into(), args.epoch.into());
        line.insert("counter".into(), args.counter.into());
        line.insert("numerics".into(), args.numerics.into());
        if !decorations.is_empty() {
            if args.decorations_top_level {
                line.extend(decorations.clone());
            } else {
                line.insert("decorations".into(), Json::Object(decorations.clone()));
            }
        }
    };
    let objects: Vec<Json> = rows
        .iter()
        .map(|row| Json::Object(row_object(columns, row, args.numerics)))
        .collect();
    match args.log_shape {
        LogShape::Event => {
            for object in objects {
                let mut line = Map::new();
                common(&mut line);
                line.insert("columns".into(), object);
                line.insert("action".into(), "added".into());
                writeln!(out, "{}", Json::Object(line))?;
            }
        }
        LogShape::Batch => {
            if objects.is_empty() {
                return Ok(());
            }
            let mut line = Map::new();
            line.insert(
                "diffResults".into(),
                serde_json::json!({"removed": [], "added": objects}),
            );
            common(&mut line);
            writeln!(out, "{}", Json::Object(line))?;
        }
        LogShape::Snapshot => {
            let mut line = Map::new();
            line.insert("snapshot".into(), Json::Array(objects));
            line.insert("action".into(), "snapshot".into());
            common(&mut line);
            writeln!(out, "{}", Json::Object(line))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostIdentity {
        HostIdentity::example()
    }

    fn lines(args: &OsqueryLogArgs, host: &HostIdentity, rows: usize) -> Vec<Json> {
        let result = (
            vec![
                "pid".to_string(),
                "protocol_name".to_string(),
                "first_seen_before_start".to_string(),
            ],
            (0..rows)
                .map(|i| {
                    vec![
                        SqlValue::Integer(7 + i as i64),
                        SqlValue::Text("udp".into()),
                        SqlValue::Null,
                    ]
                })
                .collect(),
        );
        let mut out = Vec::new();
        write_lines(
            &mut out,
            &result,
            args,
            host,
            "an1256",
            "an1256_hits",
            1_764_303_679,
            "Fri Nov 28 04:21:19 2025 UTC",
        )
        .unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn event_lines_carry_osquerys_fields_in_its_order() {
        let got = lines(&OsqueryLogArgs::default(), &host(), 2);
        assert_eq!(got.len(), 2);
        let keys: Vec<&str> = got[0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "name",
                "hostIdentifier",
                "calendarTime",
                "unixTime",
                "epoch",
                "counter",
                "numerics",
                "decorations",
                "columns",
                "action"
            ]
        );
        assert_eq!(got[0]["name"], "pack_an1256_an1256_hits");
        assert_eq!(got[0]["hostIdentifier"], "vm");
        assert_eq!(
            got[0]["decorations"],
            serde_json::json!({"host_uuid": "4C4C4544-003A-4A10-804C-B3C04F4B4D32", "hostname": "vm"})
        );
        assert_eq!(
            got[1]["columns"],
            serde_json::json!({"pid": "8", "protocol_name": "udp", "first_seen_before_start": ""})
        );
        assert_eq!(got[0]["action"], "added");
        assert_eq!(
            (got[0]["counter"].as_u64(), got[0]["numerics"].as_bool()),
            (Some(0), Some(false))
        );
    }

    #[test]
    fn options_mirror_osquerys_flags() {
        let args = OsqueryLogArgs {
            host_identifier: HostIdentifier::Uuid,
            decorations: vec![Decoration::Hostname],
            decorations_top_level: true,
            numerics: true,
            counter: 3,
            epoch: 9,
            ..Default::default()
        };
        let got = lines(&args, &host(), 1);
        assert_eq!(
            got[0]["hostIdentifier"],
            "4C4C4544-003A-4A10-804C-B3C04F4B4D32"
        );
        assert_eq!(got[0]["hostname"], "vm");
        assert!(got[0].get("decorations").is_none());
        assert_eq!(got[0]["columns"]["pid"], 7);
        assert_eq!(
            (got[0]["counter"].as_u64(), got[0]["epoch"].as_u64()),
            (Some(3), Some(9))
        );

        let fleet = OsqueryLogArgs {
            query_naming: QueryNaming::Fleet,
            decorations: vec![Decoration::None],
            ..Default::default()
        };
        let got = lines(&fleet, &host(), 1);
        assert_eq!(got[0]["name"], "pack/Global/an1256_hits");
        assert!(got[0].get("decorations").is_none());
        let slash = OsqueryLogArgs {
            pack_delimiter: "/".into(),
            ..Default::default()
        };
        assert_eq!(
            query_name(&slash, "an1256", "an1256_hits"),
            "pack/an1256/an1256_hits"
        );
    }

    #[test]
    fn batch_and_snapshot_shapes() {
        let batch = OsqueryLogArgs {
            log_shape: LogShape::Batch,
            ..Default::default()
        };
        let got = lines(&batch, &host(), 2);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["diffResults"]["removed"], serde_json::json!([]));
        assert_eq!(got[0]["diffResults"]["added"].as_array().unwrap().len(), 2);
        assert!(got[0].get("action").is_none());
        assert!(lines(&batch, &host(), 0).is_empty());

        let snapshot = OsqueryLogArgs {
            log_shape: LogShape::Snapshot,
            ..Default::default()
        };
        let got = lines(&snapshot, &host(), 0);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["snapshot"], serde_json::json!([]));
        assert_eq!(got[0]["action"], "snapshot");
    }

    #[test]
    fn a_missing_uuid_is_left_out_and_the_host_name_identifies() {
        let no_uuid = HostIdentity {
            name: "vm".into(),
            uuid: Err(crate::platform::host_identity::HostUuidError::Unreadable(
                "/etc/machine-id",
            )),
        };
        let args = OsqueryLogArgs {
            host_identifier: HostIdentifier::Uuid,
            ..Default::default()
        };
        let (identifier, warning) = host_identifier(&args, &no_uuid);
        assert_eq!(identifier, "vm");
        assert!(warning.unwrap().contains("machine-id"));
        let got = lines(&args, &no_uuid, 1);
        assert_eq!(got[0]["decorations"], serde_json::json!({"hostname": "vm"}));
    }
}
