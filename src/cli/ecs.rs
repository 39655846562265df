//! Elastic Common Schema mapping of hit rows (`an1256 scan --format ecs`). One
//! table, `ECS_FIELDS`, says which hit column lands in which ECS field; the README
//! prints it. Columns a query does not select are simply absent.

use crate::sql::json_value;
use rusqlite::types::Value as SqlValue;
use serde_json::{Map, Value as Json};

/// (hit column, ECS field). Nested fields are dotted paths.
pub const ECS_FIELDS: &[(&str, &str)] = &[
    ("pid", "process.pid"),
    ("path", "process.executable"),
    ("cmdline", "process.command_line"),
    ("uid", "user.id"),
    ("username", "user.name"),
    ("start_time", "process.start"),
    ("parent", "process.parent.pid"),
    ("parent_path", "process.parent.executable"),
    ("parent_cmdline", "process.parent.command_line"),
    ("signed", "process.code_signature.exists"),
    ("trusted", "process.code_signature.trusted"),
    ("trust", "process.code_signature.status"),
    ("identifier", "process.code_signature.signing_id"),
    ("team_identifier", "process.code_signature.team_id"),
    ("authority", "process.code_signature.subject_name"),
    ("sha256", "process.hash.sha256"),
    ("script_path", "file.path"),
    ("script_sha256", "file.hash.sha256"),
    ("local_address", "source.ip"),
    ("local_port", "source.port"),
    ("remote_address", "destination.ip"),
    ("remote_port", "destination.port"),
    ("severity", "event.risk_score"),
    ("subject_identity", "an1256.subject.identity"),
    ("subject_kind", "an1256.subject.kind"),
    ("subject_path", "an1256.subject.path"),
    ("subject_trusted", "an1256.subject.trusted"),
    ("interpreter", "an1256.interpreter"),
    ("script_kind", "an1256.script.kind"),
    ("script_trust", "an1256.script.trust"),
    ("reason", "an1256.reason"),
    ("state", "an1256.socket.state"),
    ("remote_scope", "an1256.remote_scope"),
    ("socket_type", "an1256.socket.type"),
    ("fd", "an1256.socket.fd"),
    ("socket", "an1256.socket.id"),
    ("net_namespace", "an1256.net_namespace"),
    ("first_seen", "an1256.first_seen"),
    ("grandparent_path", "an1256.grandparent.executable"),
    ("grandparent_cmdline", "an1256.grandparent.command_line"),
    ("responsible_path", "an1256.responsible.executable"),
];

/// ECS `network.transport` for a protocol name (IANA keyword, lower case).
pub fn network_transport(protocol_name: &str) -> &'static str {
    match protocol_name {
        "icmp" => "icmp",
        "icmpv6" => "ipv6-icmp",
        "udp" => "udp",
        "udplite" => "udplite",
        "socks" => "tcp",
        _ => "raw",
    }
}

/// Inserts `value` at a dotted path.
fn insert_path(root: &mut Map<String, Json>, path: &str, value: Json) {
    let mut parts = path.split('.').peekable();
    let mut node = root;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            node.insert(part.to_owned(), value);
            return;
        }
        let child = node
            .entry(part.to_owned())
            .or_insert_with(|| Json::Object(Map::new()));
        if !child.is_object() {
            *child = Json::Object(Map::new());
        }
        let Json::Object(next) = child else { return };
        node = next;
    }
}

/// One hit as an ECS document. `timestamp` is RFC 3339.
pub fn hit_to_ecs(columns: &[String], row: &[SqlValue], timestamp: &str) -> Json {
    let get = |name: &str| {
        columns
            .iter()
            .position(|c| c == name)
            .and_then(|i| row.get(i))
    };
    let mut doc = Map::new();
    insert_path(&mut doc, "@timestamp", timestamp.into());
    insert_path(&mut doc, "event.kind", "alert".into());
    insert_path(
        &mut doc,
        "event.category",
        serde_json::json!(["network", "process"]),
    );
    insert_path(&mut doc, "event.module", "an1256".into());
    insert_path(&mut doc, "rule.id", "AN1256".into());
    insert_path(
        &mut doc,
        "rule.name",
        "Unsigned binary or script using a non-standard protocol outside the baseline".into(),
    );
    for (column, field) in ECS_FIELDS {
        if let Some(value) = get(column) {
            if *value != SqlValue::Null {
                insert_path(&mut doc, field, json_value(value));
            }
        }
    }
    if let Some(SqlValue::Text(name)) = get("protocol_name") {
        insert_path(
            &mut doc,
            "network.transport",
            network_transport(name).into(),
        );
        if name == "socks" {
            insert_path(&mut doc, "network.protocol", "socks".into());
        }
    }
    if let Some(SqlValue::Integer(family)) = get("family") {
        let kind = if *family == i64::from(crate::model::FAMILY_INET6) {
            "ipv6"
        } else {
            "ipv4"
        };
        insert_path(&mut doc, "network.type", kind.into());
    }
    if let Some(SqlValue::Text(ids)) = get("attack_techniques") {
        let ids: Vec<Json> = ids
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.into())
            .collect();
        if !ids.is_empty() {
            insert_path(&mut doc, "threat.framework", "MITRE ATT&CK".into());
            insert_path(&mut doc, "threat.technique.id", Json::Array(ids));
        }
    }
    Json::Object(doc)
}

/// The mapping as a markdown table (README).
pub fn mapping_markdown() -> String {
    let mut out = String::from("| hit column | ECS field |\n|---|---|\n");
    for (column, field) in ECS_FIELDS {
        out.push_str(&format!("| `{column}` | `{field}` |\n"));
    }
    out.push_str("| `protocol_name` | `network.transport` (icmpv6 → `ipv6-icmp`, socks → `tcp` + `network.protocol: socks`) |\n");
    out.push_str("| `family` | `network.type` (`ipv4` / `ipv6`) |\n");
    out.push_str("| `attack_techniques` | `threat.technique.id` (array), `threat.framework` |\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hit_maps_to_nested_ecs_fields() {
        let columns: Vec<String> = [
            "pid",
            "path",
            "sha256",
            "trusted",
            "protocol_name",
            "family",
            "remote_address",
            "remote_port",
            "attack_techniques",
            "script_path",
            "severity",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let row = vec![
            SqlValue::Integer(42),
            SqlValue::Text("/tmp/x".into()),
            SqlValue::Text("ab".into()),
            SqlValue::Integer(0),
            SqlValue::Text("icmpv6".into()),
            SqlValue::Integer(10),
            SqlValue::Text("2001:db8::1".into()),
            SqlValue::Integer(0),
            SqlValue::Text("T1095,T1059".into()),
            SqlValue::Null,
            SqlValue::Integer(70),
        ];
        let doc = hit_to_ecs(&columns, &row, "2026-11-28T00:00:00Z");
        assert_eq!(doc["process"]["pid"], 42);
        assert_eq!(doc["process"]["executable"], "/tmp/x");
        assert_eq!(doc["process"]["hash"]["sha256"], "ab");
        assert_eq!(doc["process"]["code_signature"]["trusted"], 0);
        assert_eq!(doc["network"]["transport"], "ipv6-icmp");
        assert_eq!(doc["network"]["type"], "ipv6");
        assert_eq!(doc["destination"]["ip"], "2001:db8::1");
        assert_eq!(
            doc["threat"]["technique"]["id"],
            serde_json::json!(["T1095", "T1059"])
        );
        assert_eq!(doc["event"]["risk_score"], 70);
        assert_eq!(doc["@timestamp"], "2026-11-28T00:00:00Z");
        // NULL columns are left out rather than sent as null.
        assert!(doc.get("file").is_none());
    }

    #[test]
    fn transports_use_iana_keywords() {
        assert_eq!(network_transport("icmp"), "icmp");
        assert_eq!(network_transport("icmpv6"), "ipv6-icmp");
        assert_eq!(network_transport("socks"), "tcp");
        assert_eq!(network_transport("raw"), "raw");
        assert!(mapping_markdown().contains("`process.code_signature.team_id`"));
    }
}
