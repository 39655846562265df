//! The machine formats of `an1256 scan` over real hits: a real unsigned binary,
//! run by an unprivileged user, holding a real UDP socket.
//! - `--format osquery` lines carry exactly osquery's result-log fields, with the
//!   types osquery gives them (osquery/core/query.cpp: addLegacyFieldsAndDecorations,
//!   serializeQueryLogItem, serializeQueryLogItemAsEvents), decorations included.
//! - `--format ecs` documents: every field is an ECS field of the right type with an
//!   allowed value (tests/data/ecs_fields_9.4.0.json, trimmed from ECS's published
//!   ecs_flat.yml) or a declared `an1256.*` field; and packs/elastic/an1256-rule.json
//!   names only fields those documents carry.

mod common;

use an1256::cli::ecs::{elastic_severity, CUSTOM_FIELDS, ECS_VERSION};
use common::{attacker, is_root, skip, spawn_ready, Attacker, ReadyChild};
use serde_json::{Map, Value};
use std::path::Path;
use std::process::Command;

/// A private baseline store and config for the CLI, so tests never touch the
/// host's real one.
struct Store {
    dir: tempfile::TempDir,
}

impl Store {
    fn new() -> Store {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("config.json"), "{}").expect("write config");
        Store { dir }
    }

    /// Runs `an1256 ARGS`: (exit code, stdout, stderr).
    fn an1256(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_an1256"))
            .args(args)
            .env("AN1256_DB", self.dir.path().join("an1256.db"))
            .env("AN1256_CONFIG", self.dir.path().join("config.json"))
            .output()
            .expect("run an1256");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs `an1256 scan ARGS`: (exit code, stdout lines as JSON, stderr).
    fn scan(&self, args: &[&str]) -> (Option<i32>, Vec<Value>, String) {
        let mut all = vec!["scan"];
        all.extend_from_slice(args);
        let (code, stdout, stderr) = self.an1256(&all);
        let lines = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
            .collect();
        (code, lines, stderr)
    }
}

/// The host UUID osquery-style output should carry: /etc/machine-id as 8-4-4-4-12.
fn machine_uuid() -> Option<String> {
    let id = std::fs::read_to_string("/etc/machine-id").ok()?;
    let id = id.trim().to_ascii_uppercase();
    (id.len() == 32).then(|| {
        format!(
            "{}-{}-{}-{}-{}",
            &id[0..8],
            &id[8..12],
            &id[12..16],
            &id[16..20],
            &id[20..32]
        )
    })
}

/// One result-log line checked against osquery's serializer: the legacy fields
/// with their JSON types, optional decorations (an object of strings), and then
/// either an event (`columns` + `action` added/removed/snapshot) or a batch
/// (`diffResults` with `removed`/`added` row arrays) or a snapshot (`snapshot`
/// rows + `action: snapshot`). No other key. Rows hold strings unless `numerics`.
fn check_osquery_result_line(line: &Value) {
    let object = line.as_object().expect("a line is a JSON object");
    let string = |key: &str| {
        assert!(object[key].is_string(), "{key} is a string: {line}");
    };
    string("name");
    string("hostIdentifier");
    string("calendarTime");
    for key in ["unixTime", "epoch", "counter"] {
        assert!(object[key].is_u64(), "{key} is an unsigned integer: {line}");
    }
    let numerics = object["numerics"].as_bool().expect("numerics is a boolean");
    // calendarTime is asctime with a UTC suffix: "Sat Nov 28 04:34:39 2026 UTC".
    let calendar = object["calendarTime"].as_str().unwrap_or_default();
    let parts: Vec<&str> = calendar.split_whitespace().collect();
    assert_eq!(parts.len(), 6, "{calendar}");
    assert_eq!(parts[5], "UTC", "{calendar}");
    let check_row = |row: &Value| {
        for (column, value) in row.as_object().expect("a row is an object") {
            assert!(
                value.is_string() || (numerics && value.is_number()),
                "column {column} is {value} (numerics {numerics})"
            );
        }
    };
    let mut allowed = vec![
        "name",
        "hostIdentifier",
        "calendarTime",
        "unixTime",
        "epoch",
        "counter",
        "numerics",
    ];
    if let Some(decorations) = object.get("decorations") {
        allowed.push("decorations");
        for (key, value) in decorations.as_object().expect("decorations is an object") {
            assert!(value.is_string(), "decoration {key} is a string");
        }
    }
    if let Some(columns) = object.get("columns") {
        allowed.extend(["columns", "action"]);
        check_row(columns);
        let action = object["action"].as_str().expect("action");
        assert!(
            ["added", "removed", "snapshot"].contains(&action),
            "{action}"
        );
    } else if let Some(diff) = object.get("diffResults") {
        allowed.push("diffResults");
        for key in ["removed", "added"] {
            diff[key]
                .as_array()
                .expect("diff rows")
                .iter()
                .for_each(check_row);
        }
    } else {
        allowed.extend(["snapshot", "action"]);
        object["snapshot"]
            .as_array()
            .expect("snapshot rows")
            .iter()
            .for_each(check_row);
        assert_eq!(object["action"], "snapshot");
    }
    for key in object.keys() {
        assert!(
            allowed.contains(&key.as_str()),
            "{key} is not an osquery result-log field (decorations_top_level was not asked for): {line}"
        );
    }
}

#[test]
fn osquery_format_lines_are_osquery_result_log_lines_with_decorations() {
    if !is_root() {
        skip("osquery format", "needs root to run the attacker's process");
        return;
    }
    let user = attacker("osqlog");
    let binary = user.unsigned_python_copy("beacon", "an1256-osquery-format");
    let child = user.udp_holder(&binary, 4791);
    let uuid = machine_uuid().expect("this Debian host has /etc/machine-id");
    let hostname = String::from_utf8(Command::new("hostname").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_owned();

    let store = Store::new();
    let (code, lines, stderr) = store.scan(&["--format", "osquery", "--host-identifier", "uuid"]);
    assert_eq!(code, Some(1), "hits exit 1: {stderr}");
    for line in &lines {
        check_osquery_result_line(line);
    }
    let hit = lines
        .iter()
        .find(|l| l["columns"]["pid"].as_str() == Some(child.pid.to_string().as_str()))
        .unwrap_or_else(|| panic!("no line for pid {}: {lines:?}", child.pid));
    assert_eq!(hit["name"], "pack_an1256_an1256_hits");
    assert_eq!(hit["hostIdentifier"], uuid.as_str());
    assert_eq!(
        hit["decorations"],
        serde_json::json!({"host_uuid": uuid, "hostname": hostname})
    );
    assert_eq!(hit["action"], "added");
    assert_eq!(hit["counter"], 0);
    assert_eq!(hit["columns"]["path"], binary.to_str().unwrap());
    assert_eq!(hit["columns"]["remote_port"], "4791");

    // Fleet's naming, numerics, decorations at the top level, a snapshot line.
    let (_, lines, stderr) = store.scan(&[
        "--format",
        "osquery",
        "--query-naming",
        "fleet",
        "--numerics",
        "--log-shape",
        "snapshot",
        "--decorations",
        "hostname",
    ]);
    assert_eq!(lines.len(), 1, "one snapshot line: {stderr}");
    check_osquery_result_line(&lines[0]);
    assert_eq!(lines[0]["name"], "pack/Global/an1256_hits");
    assert_eq!(lines[0]["hostIdentifier"], hostname.as_str());
    assert_eq!(
        lines[0]["decorations"],
        serde_json::json!({"hostname": hostname})
    );
    let row = lines[0]["snapshot"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["pid"] == child.pid)
        .unwrap_or_else(|| panic!("no snapshot row for pid {}", child.pid));
    assert_eq!(row["remote_port"], 4791);
}

/// The benign twin: the same binary and socket, approved in the host baseline,
/// gives no line; a snapshot line is still written (an empty-or-not snapshot is
/// what a snapshot query logs), under the requested pack delimiter.
#[test]
fn an_approved_process_gives_no_line() {
    if !is_root() {
        skip(
            "osquery format twin",
            "needs root to run the attacker's process",
        );
        return;
    }
    let user = attacker("osqlog-twin");
    let binary = user.unsigned_python_copy("beacon", "an1256-osquery-format-twin");
    let child = user.udp_holder(&binary, 4792);
    let store = Store::new();
    let pid = child.pid.to_string();
    let (_, lines, _) = store.scan(&["--format", "osquery"]);
    assert!(
        lines.iter().any(|l| l["columns"]["pid"] == pid.as_str()),
        "before approval the process is a hit"
    );
    let (code, _, stderr) = store.an1256(&["baseline", "approve", "--pid", &pid, "--note", "twin"]);
    assert_eq!(code, Some(0), "approve: {stderr}");
    let (_, lines, stderr) = store.scan(&["--format", "osquery"]);
    for line in &lines {
        check_osquery_result_line(line);
        assert_ne!(
            line["columns"]["pid"],
            pid.as_str(),
            "approved, yet logged: {stderr}"
        );
    }
    let (_, lines, _) = store.scan(&[
        "--format",
        "osquery",
        "--log-shape",
        "snapshot",
        "--pack-delimiter",
        "/",
    ]);
    assert_eq!(lines.len(), 1);
    check_osquery_result_line(&lines[0]);
    assert_eq!(lines[0]["name"], "pack/an1256/an1256_hits");
    assert!(!lines[0]["snapshot"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["pid"] == pid.as_str()));
}

/// ECS's field definitions for the fields an1256 may emit (name -> definition).
fn ecs_definitions() -> Map<String, Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/ecs_fields_9.4.0.json"
    );
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("vendored ECS fields"))
            .expect("ECS fields JSON");
    assert_eq!(
        doc["_source"]["version"], ECS_VERSION,
        "the vendored definitions are the version the documents claim"
    );
    doc["fields"].as_object().expect("fields").clone()
}

/// Leaf fields of a document by dotted name (arrays are leaves).
fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&name, child, out);
            }
        }
        other => out.push((prefix.to_owned(), other.clone())),
    }
}

/// RFC 3339 / ISO 8601 UTC as Elasticsearch's default date format reads it.
fn is_iso8601(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && (text.ends_with('Z') || text.ends_with("+00:00"))
}

/// One value against an ECS (or Elasticsearch mapping) type.
fn check_type(field: &str, kind: &str, value: &Value) {
    let ok = match kind {
        "keyword" | "constant_keyword" | "wildcard" | "match_only_text" | "text" => {
            value.as_str().is_some_and(|s| !s.is_empty())
        }
        "long" | "integer" | "short" | "byte" | "unsigned_long" => value.is_i64() || value.is_u64(),
        "float" | "double" | "scaled_float" | "half_float" => value.is_number(),
        "boolean" => value.is_boolean(),
        "date" => value.as_str().is_some_and(is_iso8601),
        "ip" => value
            .as_str()
            .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok()),
        other => panic!("{field}: type {other} is not checked here"),
    };
    assert!(ok, "{field} = {value} is not a valid {kind}");
}

/// Every field of an ECS document: ECS name, type, array-ness, allowed and
/// expected values, categorization pairs; or a declared an1256.* field. Returns
/// the document's field names.
fn check_ecs_document(doc: &Value, definitions: &Map<String, Value>) -> Vec<String> {
    let mut fields = Vec::new();
    flatten("", doc, &mut fields);
    for (name, value) in &fields {
        if name.starts_with("an1256.") {
            let (_, kind, _) = CUSTOM_FIELDS
                .iter()
                .find(|(f, _, _)| f == name)
                .unwrap_or_else(|| panic!("{name} is not declared in CUSTOM_FIELDS"));
            check_type(name, kind, value);
            continue;
        }
        let definition = definitions.get(name).unwrap_or_else(|| {
            panic!("{name} is not an ECS {ECS_VERSION} field (or not in the vendored copy)")
        });
        let kind = definition["type"].as_str().expect("type");
        let values: Vec<&Value> = match value {
            Value::Array(items) => {
                let array = definition["normalize"]
                    .as_array()
                    .is_some_and(|n| n.iter().any(|x| x == "array"));
                assert!(
                    array,
                    "{name} is an array but ECS does not normalize it to one"
                );
                assert!(!items.is_empty(), "{name} is an empty array");
                items.iter().collect()
            }
            single => vec![single],
        };
        for v in values {
            check_type(name, kind, v);
            if let Some(allowed) = definition["allowed_values"].as_array() {
                assert!(
                    allowed.iter().any(|a| a["name"] == *v),
                    "{name} = {v} is not an allowed value"
                );
            }
            if let Some(expected) = definition["expected_values"].as_array() {
                assert!(
                    expected.contains(v),
                    "{name} = {v} is not an expected value"
                );
            }
        }
    }
    // ECS categorization: each event.type is expected for every event.category.
    let categories = definitions["event.category"]["allowed_values"]
        .as_array()
        .unwrap();
    for category in doc["event"]["category"].as_array().expect("event.category") {
        let expected = categories
            .iter()
            .find(|c| c["name"] == *category)
            .and_then(|c| c["expected_event_types"].as_array())
            .expect("expected event types");
        for kind in doc["event"]["type"].as_array().expect("event.type") {
            assert!(
                expected.contains(kind),
                "event.type {kind} is not expected with category {category}"
            );
        }
    }
    fields.into_iter().map(|(name, _)| name).collect()
}

/// An unsigned binary holding: a UDP socket connected to 127.0.0.1:`port`, a UDP
/// socket bound to loopback and never connected, and, where the kernel lets this
/// user, an ICMP ping socket (`icmp=ok`, else `icmp=<errno>`).
fn three_socket_holder(user: &Attacker, binary: &Path, port: u16) -> ReadyChild {
    let code = format!(
        "import socket,time\n\
a=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
a.connect(('127.0.0.1',{port}))\n\
b=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
b.bind(('127.0.0.1',0))\n\
print('bound=%d' % b.getsockname()[1])\n\
try:\n    c=socket.socket(socket.AF_INET,socket.SOCK_DGRAM,socket.IPPROTO_ICMP)\n    c.connect(('127.0.0.1',0))\n    print('icmp=ok')\n\
except OSError as e:\n    print('icmp=%s' % e.errno)\n\
print('ready', flush=True)\n\
time.sleep(300)\n"
    );
    let mut command = user.command(binary);
    command.arg("-c").arg(code);
    spawn_ready(command).unwrap_or_else(|e| panic!("socket holder: {e}"))
}

#[test]
fn ecs_documents_of_real_hits_are_valid_ecs_and_feed_the_elastic_rule() {
    if !is_root() {
        skip("ecs format", "needs root to run the attacker's process");
        return;
    }
    let definitions = ecs_definitions();
    let user = attacker("ecsdocs");
    let binary = user.unsigned_python_copy("beacon", "an1256-ecs-format");
    let child = three_socket_holder(&user, &binary, 4793);
    let icmp = child.value("icmp") == Some("ok");
    if !icmp {
        skip(
            "ecs format: ICMP part",
            format!(
                "no ping socket for this user: errno {:?}",
                child.value("icmp")
            ),
        );
    }
    let store = Store::new();
    let (code, docs, stderr) = store.scan(&["--format", "ecs"]);
    assert_eq!(code, Some(1), "hits exit 1: {stderr}");
    let mut emitted = std::collections::BTreeSet::new();
    for doc in &docs {
        emitted.extend(check_ecs_document(doc, &definitions));
    }
    let ours: Vec<&Value> = docs
        .iter()
        .filter(|d| d["process"]["pid"] == child.pid)
        .collect();
    assert_eq!(ours.len(), if icmp { 3 } else { 2 }, "{ours:?}");
    for doc in &ours {
        assert_eq!(doc["ecs"]["version"], ECS_VERSION);
        assert_eq!(doc["event"]["kind"], "alert");
        assert_eq!(doc["event"]["dataset"], "an1256.hits");
        assert_eq!(doc["process"]["executable"], binary.to_str().unwrap());
        assert_eq!(doc["process"]["name"], "beacon");
        assert_eq!(doc["process"]["args"][0], binary.to_str().unwrap());
        assert_eq!(doc["process"]["args"][1], "-c");
        assert_eq!(
            doc["process"]["working_directory"],
            user.home.to_str().unwrap()
        );
        assert_eq!(doc["process"]["code_signature"]["exists"], false);
        assert_eq!(doc["process"]["code_signature"]["trusted"], false);
        assert_eq!(doc["process"]["code_signature"]["status"], "unsigned");
        assert!(doc["process"]["parent"]["name"].is_string());
        assert_eq!(doc["user"]["name"], user.name.as_str());
        assert_eq!(doc["user"]["id"], user.uid.to_string());
        let severity = doc["an1256"]["severity"].as_i64().unwrap();
        assert_eq!(doc["event"]["severity"], elastic_severity(severity).0);
        assert_eq!(doc["event"]["risk_score"].as_f64(), Some(severity as f64));
        let message = doc["message"].as_str().unwrap();
        assert!(
            message.contains(&format!(
                "unsigned binary {} (pid {})",
                binary.display(),
                child.pid
            )),
            "{message}"
        );
        assert_eq!(
            doc["threat"]["technique"]["name"][0],
            "Non-Application Layer Protocol"
        );
        assert_eq!(doc["threat"]["tactic"]["name"][0], "Command and Control");
        assert!(doc["host"]["id"].is_string() && doc["host"]["name"].is_string());
        // process.start is the process's own start, not 1970 nor now.
        let start = doc["process"]["start"].as_str().unwrap();
        assert!(start.starts_with("20"), "{start}");
    }
    let by = |transport: &str, direction: &str| {
        ours.iter()
            .find(|d| {
                d["network"]["transport"] == transport && d["network"]["direction"] == direction
            })
            .unwrap_or_else(|| panic!("no {transport} {direction} document: {ours:?}"))
    };
    let connected = by("udp", "egress");
    assert_eq!(connected["network"]["iana_number"], "17");
    assert_eq!(connected["destination"]["ip"], "127.0.0.1");
    assert_eq!(connected["destination"]["port"], 4793);
    assert_eq!(connected["source"]["ip"], "127.0.0.1");
    let bound = by("udp", "unknown");
    assert!(
        bound.get("source").is_none() && bound.get("destination").is_none(),
        "{bound}"
    );
    assert_eq!(bound["an1256"]["socket"]["local_port"], child.int("bound"));
    if icmp {
        let ping = by("icmp", "egress");
        assert_eq!(ping["network"]["iana_number"], "1");
        assert!(
            ping["destination"].get("port").is_none() && ping["source"].get("port").is_none(),
            "{ping}"
        );
        assert!(ping["an1256"]["socket"]["icmp_id"].is_u64(), "{ping}");
    }

    // The Elastic rule names only fields these documents carry, with ECS's types,
    // and maps exactly the severities the documents use.
    let rule_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packs/elastic/an1256-rule.json"
    );
    let rule: Value = serde_json::from_str(&std::fs::read_to_string(rule_path).unwrap())
        .expect("the rule is JSON");
    let mut named: Vec<String> = vec![rule["rule_name_override"].as_str().unwrap().to_owned()];
    for mapping in ["risk_score_mapping", "severity_mapping"] {
        for m in rule[mapping].as_array().unwrap() {
            named.push(m["field"].as_str().unwrap().to_owned());
            assert_eq!(m["operator"], "equals");
        }
    }
    for required in rule["required_fields"].as_array().unwrap() {
        let name = required["name"].as_str().unwrap();
        assert_eq!(
            required["type"], definitions[name]["type"],
            "{name}: required_fields type"
        );
        named.push(name.to_owned());
    }
    let query = rule["query"].as_str().unwrap();
    for term in query.split(" and ") {
        let (field, value) = term.split_once(':').expect("field:value");
        named.push(field.to_owned());
        assert!(
            ours.iter().all(|d| {
                let mut leaves = Vec::new();
                flatten("", d, &mut leaves);
                leaves.iter().any(|(n, v)| n == field && v == value)
            }),
            "the rule's {term} does not match the documents"
        );
    }
    for field in &named {
        assert!(
            emitted.contains(field),
            "the rule names {field}, which no document carries"
        );
        assert!(
            definitions.contains_key(field),
            "the rule names {field}, which is not ECS"
        );
    }
    let mapped: Vec<(i64, String)> = rule["severity_mapping"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["value"].as_str().unwrap().parse().unwrap(),
                m["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for score in 0..=100 {
        let (value, name) = elastic_severity(score);
        assert!(
            mapped.contains(&(value, name.to_owned())),
            "severity {score} -> {value} {name} is not mapped"
        );
    }
    let techniques: Vec<&str> = rule["threat"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| {
            t["technique"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["id"].as_str().unwrap())
        })
        .collect();
    assert_eq!(techniques, ["T1095", "T1090", "T1059", "T1027"]);

    // The benign twin: approved, the same process gives no document.
    let pid = child.pid.to_string();
    let (code, _, stderr) = store.an1256(&["baseline", "approve", "--pid", &pid, "--note", "twin"]);
    assert_eq!(code, Some(0), "approve: {stderr}");
    let (_, docs, _) = store.scan(&["--format", "ecs"]);
    assert!(
        !docs.iter().any(|d| d["process"]["pid"] == child.pid),
        "approved, yet alerted"
    );
}
