//! Elastic Common Schema documents for hits (`an1256 scan --format ecs`).
//!
//! Valid against ECS [`ECS_VERSION`] (every field's name, type and allowed values;
//! `tests/result_formats.rs` checks real hits against the vendored definitions in
//! `tests/data/`), and shaped for Elastic Security: `event.kind: alert` with a
//! `message`, `event.severity` on the scale Elastic's "External Alerts" rule maps
//! (21 low, 47 medium, 73 high, 99 critical) and `event.risk_score`, so that rule, or
//! `packs/elastic/an1256-rule.json`, names and grades each alert. Empty and unknown
//! values are left out, never sent as "" or null. What ECS has no field for lives
//! under `an1256.*` ([`CUSTOM_FIELDS`]).

use crate::platform::host_identity::HostIdentity;
use rusqlite::types::Value as SqlValue;
use serde_json::{Map, Value as Json};

/// The ECS version the documents follow (`ecs.version`).
pub const ECS_VERSION: &str = "9.4.0";

/// `event.dataset` of hit documents.
pub const DATASET: &str = "an1256.hits";

/// Fields outside ECS, with their type as an index template would map them.
pub const CUSTOM_FIELDS: &[(&str, &str, &str)] = &[
    (
        "an1256.severity",
        "long",
        "severity 0–100 (see Severity and ATT&CK)",
    ),
    (
        "an1256.subject.identity",
        "keyword",
        "subject_identity: the baseline key",
    ),
    (
        "an1256.subject.kind",
        "keyword",
        "subject_kind: binary or script",
    ),
    ("an1256.subject.path", "keyword", "subject_path"),
    ("an1256.subject.trusted", "boolean", "subject_trusted"),
    ("an1256.interpreter", "keyword", "interpreter"),
    ("an1256.script.kind", "keyword", "script_kind"),
    ("an1256.script.trust", "keyword", "script_trust"),
    (
        "an1256.script.sha256",
        "keyword",
        "script_sha256 of inline code (a script file's is file.hash.sha256)",
    ),
    (
        "an1256.protocol_name",
        "keyword",
        "protocol_name: icmp, icmpv6, udp, udplite, raw, socks",
    ),
    ("an1256.remote_scope", "keyword", "remote_scope"),
    ("an1256.socket.state", "keyword", "state"),
    ("an1256.socket.type", "keyword", "socket_type"),
    ("an1256.socket.fd", "long", "fd"),
    ("an1256.socket.id", "keyword", "socket (kernel socket id)"),
    (
        "an1256.socket.local_address",
        "ip",
        "local_address when the direction is unknown (no source/destination then)",
    ),
    (
        "an1256.socket.local_port",
        "long",
        "local_port when the direction is unknown",
    ),
    (
        "an1256.socket.icmp_id",
        "long",
        "the ICMP echo identifier a ping socket holds in its local port",
    ),
    ("an1256.net_namespace", "keyword", "net_namespace"),
    (
        "an1256.first_seen_before_start",
        "date",
        "first_seen_before_start",
    ),
    (
        "an1256.grandparent.executable",
        "keyword",
        "grandparent_path",
    ),
    (
        "an1256.grandparent.command_line",
        "keyword",
        "grandparent_cmdline",
    ),
    (
        "an1256.responsible.executable",
        "keyword",
        "responsible_path (macOS)",
    ),
];

/// The Elastic severity for a 0–100 score: the `event.severity` values the External
/// Alerts rule maps to low / medium / high / critical.
pub fn elastic_severity(score: i64) -> (i64, &'static str) {
    match score {
        s if s >= 80 => (99, "critical"),
        s if s >= 60 => (73, "high"),
        s if s >= 40 => (47, "medium"),
        _ => (21, "low"),
    }
}

/// ATT&CK technique id -> (name, tactic id, tactic name).
const TECHNIQUES: &[(&str, &str, &str, &str)] = &[
    (
        "T1095",
        "Non-Application Layer Protocol",
        "TA0011",
        "Command and Control",
    ),
    ("T1090", "Proxy", "TA0011", "Command and Control"),
    (
        "T1059",
        "Command and Scripting Interpreter",
        "TA0002",
        "Execution",
    ),
    (
        "T1027",
        "Obfuscated Files or Information",
        "TA0005",
        "Defense Evasion",
    ),
];

/// IANA protocol number -> ECS `network.transport` keyword (IANA's lower-case names).
const IANA_TRANSPORTS: &[(i64, &str)] = &[
    (1, "icmp"),
    (2, "igmp"),
    (4, "ipv4"),
    (6, "tcp"),
    (17, "udp"),
    (41, "ipv6"),
    (47, "gre"),
    (50, "esp"),
    (51, "ah"),
    (58, "ipv6-icmp"),
    (89, "ospf"),
    (103, "pim"),
    (112, "vrrp"),
    (132, "sctp"),
    (136, "udplite"),
];

/// ECS `network.transport` for an IANA protocol number (None when IANA has no
/// keyword we know: the number still goes to `network.iana_number`).
pub fn network_transport(iana_number: i64) -> Option<&'static str> {
    IANA_TRANSPORTS
        .iter()
        .find(|(n, _)| *n == iana_number)
        .map(|(_, name)| *name)
}

/// The IANA number of a hit's protocol: the `protocol` column, or, when a query
/// does not select it, what `protocol_name` implies.
fn iana_number(hit: &Hit<'_>) -> Option<i64> {
    let from_name = match hit.text("protocol_name")? {
        "icmp" => Some(1),
        "icmpv6" => Some(58),
        "udp" => Some(17),
        "udplite" => Some(136),
        "socks" => Some(6),
        _ => None,
    };
    match (hit.int("protocol"), hit.text("protocol_name")) {
        // SOCKS rides on TCP whatever the column says.
        (_, Some("socks")) => Some(6),
        (Some(n), _) if (0..=255).contains(&n) => Some(n),
        _ => from_name,
    }
}

/// One hit row, read by column name.
struct Hit<'a> {
    columns: &'a [String],
    row: &'a [SqlValue],
}

impl<'a> Hit<'a> {
    fn value(&self, name: &str) -> Option<&'a SqlValue> {
        let i = self.columns.iter().position(|c| c == name)?;
        self.row.get(i)
    }

    /// A non-empty text value.
    fn text(&self, name: &str) -> Option<&'a str> {
        match self.value(name)? {
            SqlValue::Text(t) if !t.is_empty() => Some(t.as_str()),
            _ => None,
        }
    }

    /// An integer value (integers, or text holding one).
    fn int(&self, name: &str) -> Option<i64> {
        match self.value(name)? {
            SqlValue::Integer(i) => Some(*i),
            SqlValue::Text(t) => t.trim().parse().ok(),
            _ => None,
        }
    }

    /// A 0/1 column as a boolean.
    fn flag(&self, name: &str) -> Option<bool> {
        match self.int(name)? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
}

/// Inserts `value` at a dotted path (objects created on the way).
fn put(root: &mut Map<String, Json>, path: &str, value: Json) {
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

/// Inserts a text value unless it is absent or empty.
fn put_text(root: &mut Map<String, Json>, path: &str, value: Option<&str>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        put(root, path, v.into());
    }
}

/// The last path component (ECS `*.name` of a process or file).
fn base_name(path: &str) -> Option<&str> {
    path.rsplit('/').next().filter(|n| !n.is_empty())
}

/// Unix seconds as ISO 8601 / RFC 3339 UTC (ECS `date`); None for 0 or less
/// (unknown), so 1970 is never claimed.
pub fn iso8601(unix: i64) -> Option<String> {
    let unix = u64::try_from(unix).ok().filter(|u| *u > 0)?;
    Some(crate::util::time::rfc3339(unix))
}

/// An address that names a peer (not empty, not a wildcard).
fn peer_address(address: Option<&str>) -> Option<&str> {
    address.filter(|a| !matches!(*a, "0.0.0.0" | "::" | "*" | "::ffff:0.0.0.0"))
}

/// Which way the socket points, as ECS `network.direction` from the host's view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The process talks to a peer it named (a connected socket, a SOCKS client).
    Egress,
    /// The process serves others (a SOCKS server).
    Ingress,
    /// Bound or unbound with no peer: it may send anywhere or listen; ECS says
    /// `unknown`, and source/destination are left out rather than guessed.
    Unknown,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Egress => "egress",
            Direction::Ingress => "ingress",
            Direction::Unknown => "unknown",
        }
    }
}

fn direction(hit: &Hit<'_>) -> Direction {
    let socks_server = hit
        .text("reason")
        .is_some_and(|r| r.split(',').any(|x| x == "socks_server"));
    let has_peer = peer_address(hit.text("remote_address")).is_some()
        && hit.text("remote_scope") != Some("unspecified");
    match (socks_server, has_peer) {
        (true, _) => Direction::Ingress,
        (false, true) => Direction::Egress,
        (false, false) => Direction::Unknown,
    }
}

/// Whether a protocol's "port" columns are ports (ICMP keeps its echo id there,
/// raw sockets their protocol number).
fn has_ports(iana: Option<i64>) -> bool {
    matches!(iana, Some(6 | 17 | 136 | 132))
}

/// A person's one-line account of the hit (`message`; the alert's name under the
/// External Alerts rule's `rule_name_override`).
fn message(hit: &Hit<'_>, severity: i64) -> String {
    let subject = hit
        .text("subject_path")
        .or_else(|| hit.text("path"))
        .unwrap_or("?");
    let interpreter = hit.text("interpreter").unwrap_or("an interpreter");
    let what = match (hit.text("subject_kind"), hit.text("script_kind")) {
        (Some("script"), _) => format!("untrusted script {subject} run by {interpreter}"),
        (_, Some("inline")) => format!("inline {interpreter} code"),
        (_, Some(kind @ ("stdin" | "module" | "interactive"))) => {
            format!("{interpreter} {kind} code")
        }
        _ => {
            let trust = match hit.text("trust") {
                Some("unsigned") => "unsigned",
                Some("invalid") => "modified",
                Some("adhoc") => "ad-hoc signed",
                Some("unknown") | None => "unverifiable",
                Some(_) => "untrusted",
            };
            format!("{trust} binary {subject}")
        }
    };
    let protocol = match hit.text("protocol_name") {
        Some("icmp") => "ICMP",
        Some("icmpv6") => "ICMPv6",
        Some("udp") => "UDP",
        Some("udplite") => "UDP-Lite",
        Some("socks") => "SOCKS",
        _ => "raw IP",
    };
    let endpoint = |address: Option<&str>, port: Option<i64>| -> String {
        let address = address.unwrap_or("?");
        match port.filter(|p| *p > 0 && has_ports(iana_number(hit))) {
            Some(p) if address.contains(':') => format!("[{address}]:{p}"),
            Some(p) => format!("{address}:{p}"),
            None => address.to_owned(),
        }
    };
    let socket = match direction(hit) {
        Direction::Egress => format!(
            "to {}",
            endpoint(hit.text("remote_address"), hit.int("remote_port"))
        ),
        Direction::Ingress => format!(
            "serving on {}",
            endpoint(hit.text("local_address"), hit.int("local_port"))
        ),
        Direction::Unknown => match hit.text("state") {
            Some("unbound") => "not bound yet".to_owned(),
            _ => format!(
                "bound to {}",
                endpoint(hit.text("local_address"), hit.int("local_port"))
            ),
        },
    };
    let pid = hit
        .int("pid")
        .map_or_else(|| "?".to_owned(), |p| p.to_string());
    format!(
        "AN1256: {what} (pid {pid}) holds a {protocol} socket {socket} outside the host baseline (severity {severity})"
    )
}

/// One hit as an ECS document. `timestamp` is RFC 3339; `host` names this host.
pub fn hit_to_ecs(
    columns: &[String],
    row: &[SqlValue],
    timestamp: &str,
    host: &HostIdentity,
) -> Json {
    let hit = Hit { columns, row };
    let mut doc = Map::new();
    let d = &mut doc;
    put(d, "@timestamp", timestamp.into());
    put(d, "ecs.version", ECS_VERSION.into());
    let score = hit.int("severity").unwrap_or(0).clamp(0, 100);
    let (elastic, _) = elastic_severity(score);
    put(d, "message", message(&hit, score).into());

    put(d, "event.kind", "alert".into());
    put(
        d,
        "event.category",
        serde_json::json!(["network", "process", "intrusion_detection"]),
    );
    put(d, "event.type", serde_json::json!(["info"]));
    put(d, "event.module", "an1256".into());
    put(d, "event.dataset", DATASET.into());
    put(d, "event.severity", elastic.into());
    put(d, "event.risk_score", Json::from(score as f64));
    put_text(d, "event.reason", hit.text("reason"));
    put(d, "rule.id", "AN1256".into());
    put(
        d,
        "rule.name",
        "Unsigned binary or script using a non-standard protocol outside the baseline".into(),
    );

    put_text(d, "host.name", Some(&host.name));
    put_text(d, "host.hostname", Some(&host.name));
    put_text(d, "host.id", host.uuid.as_deref().ok());
    let os_type = if cfg!(target_os = "macos") {
        "macos"
    } else {
        "linux"
    };
    put(d, "host.os.type", os_type.into());
    put(d, "host.architecture", std::env::consts::ARCH.into());

    // ECS user.id is a keyword: the uid as text.
    if let Some(uid) = hit.int("uid") {
        put(d, "user.id", uid.to_string().into());
    }
    put_text(d, "user.name", hit.text("username"));

    process_fields(&hit, d);
    script_fields(&hit, d);
    network_fields(&hit, d);
    threat_fields(&hit, d);

    put(d, "an1256.severity", score.into());
    put_text(d, "an1256.subject.identity", hit.text("subject_identity"));
    put_text(d, "an1256.subject.kind", hit.text("subject_kind"));
    put_text(d, "an1256.subject.path", hit.text("subject_path"));
    if let Some(trusted) = hit.flag("subject_trusted") {
        put(d, "an1256.subject.trusted", trusted.into());
    }
    put_text(d, "an1256.interpreter", hit.text("interpreter"));
    put_text(d, "an1256.protocol_name", hit.text("protocol_name"));
    put_text(d, "an1256.remote_scope", hit.text("remote_scope"));
    put_text(d, "an1256.socket.state", hit.text("state"));
    put_text(d, "an1256.socket.type", hit.text("socket_type"));
    if let Some(fd) = hit.int("fd").filter(|fd| *fd >= 0) {
        put(d, "an1256.socket.fd", fd.into());
    }
    if let Some(id) = hit.int("socket").filter(|id| *id > 0) {
        put(d, "an1256.socket.id", id.to_string().into());
    }
    put_text(d, "an1256.net_namespace", hit.text("net_namespace"));
    if let Some(first) = hit.int("first_seen_before_start").and_then(iso8601) {
        put(d, "an1256.first_seen_before_start", first.into());
    }
    put_text(
        d,
        "an1256.grandparent.executable",
        hit.text("grandparent_path"),
    );
    put_text(
        d,
        "an1256.grandparent.command_line",
        hit.text("grandparent_cmdline"),
    );
    put_text(
        d,
        "an1256.responsible.executable",
        hit.text("responsible_path"),
    );
    Json::Object(doc)
}

/// `process.*`, `package.*`: the process holding the socket and its parent.
fn process_fields(hit: &Hit<'_>, d: &mut Map<String, Json>) {
    if let Some(pid) = hit.int("pid") {
        put(d, "process.pid", pid.into());
    }
    let executable = hit.text("path");
    put_text(d, "process.executable", executable);
    put_text(d, "process.name", executable.and_then(base_name));
    put_text(d, "process.command_line", hit.text("cmdline"));
    // argv as the process has it; a cell cut at the size cap is not JSON any more,
    // and then args are left out rather than guessed from the space-joined cmdline.
    if let Some(args) = hit
        .text("argv")
        .and_then(|a| serde_json::from_str::<Vec<String>>(a).ok())
        .filter(|a| !a.is_empty())
    {
        put(d, "process.args_count", (args.len() as i64).into());
        put(d, "process.args", args.into());
    }
    put_text(d, "process.working_directory", hit.text("cwd"));
    if let Some(start) = hit.int("start_time").and_then(iso8601) {
        put(d, "process.start", start.into());
    }
    put_text(d, "process.hash.sha256", hit.text("sha256"));
    if let Some(signed) = hit.flag("signed") {
        put(d, "process.code_signature.exists", signed.into());
    }
    if let Some(trusted) = hit.flag("trusted") {
        put(d, "process.code_signature.trusted", trusted.into());
    }
    put_text(d, "process.code_signature.status", hit.text("trust"));
    match hit.text("authority") {
        // Linux: the owning package, not a signer.
        Some(manager @ ("dpkg" | "rpm")) => {
            put_text(d, "package.name", hit.text("identifier"));
            put(d, "package.type", manager.into());
        }
        authority => {
            put_text(
                d,
                "process.code_signature.signing_id",
                hit.text("identifier"),
            );
            put_text(
                d,
                "process.code_signature.team_id",
                hit.text("team_identifier"),
            );
            put_text(d, "process.code_signature.subject_name", authority);
        }
    }
    if let Some(parent) = hit.int("parent").filter(|p| *p > 0) {
        put(d, "process.parent.pid", parent.into());
    }
    let parent = hit.text("parent_path");
    put_text(d, "process.parent.executable", parent);
    put_text(d, "process.parent.name", parent.and_then(base_name));
    put_text(d, "process.parent.command_line", hit.text("parent_cmdline"));
}

/// `file.*` for a script file; inline code has no file, only a digest.
fn script_fields(hit: &Hit<'_>, d: &mut Map<String, Json>) {
    put_text(d, "an1256.script.kind", hit.text("script_kind"));
    put_text(d, "an1256.script.trust", hit.text("script_trust"));
    match hit.text("script_path") {
        Some(path) => {
            put(d, "file.path", path.into());
            put_text(d, "file.name", base_name(path));
            put_text(d, "file.hash.sha256", hit.text("script_sha256"));
        }
        None => put_text(d, "an1256.script.sha256", hit.text("script_sha256")),
    }
}

/// `network.*`, and `source`/`destination` only where the direction is known.
fn network_fields(hit: &Hit<'_>, d: &mut Map<String, Json>) {
    let iana = iana_number(hit);
    if let Some(n) = iana {
        put(d, "network.iana_number", n.to_string().into());
        if let Some(transport) = network_transport(n) {
            put(d, "network.transport", transport.into());
        }
    }
    if hit.text("protocol_name") == Some("socks") {
        put(d, "network.protocol", "socks".into());
    }
    match hit.int("family") {
        Some(2) => put(d, "network.type", "ipv4".into()),
        Some(10) => put(d, "network.type", "ipv6".into()),
        _ => {}
    }
    let direction = direction(hit);
    put(d, "network.direction", direction.as_str().into());
    let ports = has_ports(iana);
    let port = |name: &str| hit.int(name).filter(|p| ports && *p > 0);
    let local = (peer_address(hit.text("local_address")), port("local_port"));
    let remote = (
        peer_address(hit.text("remote_address")),
        port("remote_port"),
    );
    let mut endpoint =
        |ip_field: &str, port_field: &str, (address, port): (Option<&str>, Option<i64>)| {
            if let Some(address) = address {
                put(d, ip_field, address.into());
                if let Some(port) = port {
                    put(d, port_field, port.into());
                }
            }
        };
    match direction {
        Direction::Egress => {
            endpoint("source.ip", "source.port", local);
            endpoint("destination.ip", "destination.port", remote);
        }
        Direction::Ingress => {
            endpoint("source.ip", "source.port", remote);
            endpoint("destination.ip", "destination.port", local);
        }
        Direction::Unknown => endpoint(
            "an1256.socket.local_address",
            "an1256.socket.local_port",
            local,
        ),
    }
    if matches!(iana, Some(1 | 58)) {
        if let Some(id) = hit.int("local_port").filter(|id| *id > 0) {
            put(d, "an1256.socket.icmp_id", id.into());
        }
    }
}

/// `threat.*`: ATT&CK techniques with their names, tactics and references.
fn threat_fields(hit: &Hit<'_>, d: &mut Map<String, Json>) {
    let ids: Vec<&str> = hit
        .text("attack_techniques")
        .map(|t| t.split(',').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    let known: Vec<&(&str, &str, &str, &str)> = ids
        .iter()
        .filter_map(|id| TECHNIQUES.iter().find(|t| t.0 == *id))
        .collect();
    if known.is_empty() {
        return;
    }
    put(d, "threat.framework", "MITRE ATT&CK".into());
    let technique = |f: fn(&(&str, &str, &str, &str)) -> String| -> Json {
        known.iter().map(|t| f(t)).collect::<Vec<String>>().into()
    };
    put(d, "threat.technique.id", technique(|t| t.0.to_owned()));
    put(d, "threat.technique.name", technique(|t| t.1.to_owned()));
    put(
        d,
        "threat.technique.reference",
        technique(|t| format!("https://attack.mitre.org/techniques/{}/", t.0)),
    );
    let mut tactics: Vec<(&str, &str)> = Vec::new();
    for t in &known {
        if !tactics.contains(&(t.2, t.3)) {
            tactics.push((t.2, t.3));
        }
    }
    let tactic = |f: fn(&(&str, &str)) -> String| -> Json {
        tactics.iter().map(f).collect::<Vec<String>>().into()
    };
    put(d, "threat.tactic.id", tactic(|t| t.0.to_owned()));
    put(d, "threat.tactic.name", tactic(|t| t.1.to_owned()));
    put(
        d,
        "threat.tactic.reference",
        tactic(|t| format!("https://attack.mitre.org/tactics/{}/", t.0)),
    );
}

/// Where each ECS field comes from, as a markdown table (README).
pub fn mapping_markdown() -> String {
    let rows: &[(&str, &str)] = &[
        ("`@timestamp`", "scan time"),
        ("`ecs.version`", ECS_VERSION),
        ("`message`", "one line: what runs, its pid, protocol, peer or local endpoint, severity (the alert's name under `rule_name_override: message`)"),
        ("`event.kind` / `category` / `type`", "`alert` / `[network, process, intrusion_detection]` / `[info]`"),
        ("`event.module` / `event.dataset`", "`an1256` / `an1256.hits`"),
        ("`event.severity`", "`severity` banded as Elastic's External Alerts rule maps it: 21 low (< 40), 47 medium (40–59), 73 high (60–79), 99 critical (≥ 80)"),
        ("`event.risk_score`, `an1256.severity`", "`severity` (0–100)"),
        ("`event.reason`", "`reason`"),
        ("`rule.id` / `rule.name`", "`AN1256` / the analytic's name"),
        ("`host.name`, `host.hostname`, `host.id`, `host.os.type`, `host.architecture`", "this host (id: /etc/machine-id or IOPlatformUUID)"),
        ("`user.id` / `user.name`", "`uid` (as text) / `username`"),
        ("`process.pid`, `executable`, `name`, `command_line`, `args`, `args_count`, `working_directory`", "`pid`, `path` (and its base name), `cmdline`, `argv`, `cwd`"),
        ("`process.start`", "`start_time` as ISO 8601"),
        ("`process.hash.sha256`", "`sha256`"),
        ("`process.code_signature.exists` / `process.code_signature.trusted` / `process.code_signature.status`", "`signed` / `trusted` as booleans / `trust` (on Linux, package provenance stands for a signature)"),
        ("`process.code_signature.signing_id` / `process.code_signature.team_id` / `process.code_signature.subject_name`", "`identifier` / `team_identifier` / `authority` (macOS)"),
        ("`package.name` / `package.type`", "`identifier` / `authority` when that is `dpkg` or `rpm` (Linux)"),
        ("`process.parent.pid`, `executable`, `name`, `command_line`", "`parent`, `parent_path` (and its base name), `parent_cmdline`"),
        ("`file.path`, `file.name`, `file.hash.sha256`", "the script file: `script_path`, `script_sha256`"),
        ("`network.iana_number` / `network.transport`", "`protocol` / its IANA keyword (`icmp`, `ipv6-icmp`, `udp`, `udplite`, `tcp` for SOCKS…)"),
        ("`network.type`", "`family`: `ipv4` / `ipv6`"),
        ("`network.protocol`", "`socks` for SOCKS"),
        ("`network.direction`", "`egress` (a peer: source = local, destination = remote), `ingress` (a SOCKS server: the reverse), `unknown` (no peer: no source/destination; the local end is `an1256.socket.local_address`/`local_port`)"),
        ("`source.*` / `destination.*` `.ip`, `.port`", "endpoints by direction; ports only for UDP, UDP-Lite, TCP (an ICMP socket's local port is its echo id: `an1256.socket.icmp_id`)"),
        ("`threat.framework`, `threat.technique.id`/`name`/`reference`, `threat.tactic.id`/`name`/`reference`", "`attack_techniques`, with ATT&CK names, tactics and URLs"),
    ];
    let mut out = String::from("| ECS field | from |\n|---|---|\n");
    for (field, from) in rows {
        out.push_str(&format!("| {field} | {from} |\n"));
    }
    out.push_str(
        "\nFields ECS has no place for (`an1256.*`):\n\n| field | type | from |\n|---|---|---|\n",
    );
    for (field, kind, from) in CUSTOM_FIELDS {
        out.push_str(&format!("| `{field}` | {kind} | {from} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostIdentity {
        HostIdentity::example()
    }

    fn doc(pairs: &[(&str, SqlValue)]) -> Json {
        let columns: Vec<String> = pairs.iter().map(|(c, _)| c.to_string()).collect();
        let row: Vec<SqlValue> = pairs.iter().map(|(_, v)| v.clone()).collect();
        hit_to_ecs(&columns, &row, "2026-11-28T00:00:00Z", &host())
    }

    fn t(s: &str) -> SqlValue {
        SqlValue::Text(s.into())
    }

    fn i(n: i64) -> SqlValue {
        SqlValue::Integer(n)
    }

    #[test]
    fn a_connected_udp_hit_is_egress_with_booleans_dates_and_names() {
        let d = doc(&[
            ("pid", i(42)),
            ("path", t("/tmp/x/beacon")),
            ("argv", t(r#"["/tmp/x/beacon","-c","a b"]"#)),
            ("cmdline", t("/tmp/x/beacon -c a b")),
            ("start_time", i(1_795_840_472)),
            ("signed", i(0)),
            ("trusted", i(0)),
            ("trust", t("unsigned")),
            ("identifier", t("")),
            ("protocol_name", t("udp")),
            ("protocol", i(17)),
            ("family", i(2)),
            ("local_address", t("192.0.2.2")),
            ("local_port", i(36131)),
            ("remote_address", t("192.0.2.10")),
            ("remote_port", i(53)),
            ("remote_scope", t("public")),
            ("state", t("connected")),
            ("uid", i(1000)),
            ("severity", i(65)),
            ("attack_techniques", t("T1095")),
        ]);
        assert_eq!(d["process"]["code_signature"]["exists"], false);
        assert_eq!(d["process"]["code_signature"]["trusted"], false);
        assert_eq!(d["process"]["start"], "2026-11-28T04:34:32Z");
        assert_eq!(d["process"]["name"], "beacon");
        assert_eq!(
            d["process"]["args"],
            serde_json::json!(["/tmp/x/beacon", "-c", "a b"])
        );
        assert_eq!(d["process"]["args_count"], 3);
        assert!(
            d["process"]["code_signature"].get("signing_id").is_none(),
            "empty strings are left out"
        );
        assert_eq!(d["user"]["id"], "1000");
        assert_eq!(d["network"]["direction"], "egress");
        assert_eq!(d["network"]["transport"], "udp");
        assert_eq!(d["network"]["iana_number"], "17");
        assert_eq!(d["source"]["port"], 36131);
        assert_eq!(d["destination"]["ip"], "192.0.2.10");
        assert_eq!(d["event"]["severity"], 73);
        assert_eq!(d["event"]["risk_score"], 65.0);
        assert_eq!(d["ecs"]["version"], ECS_VERSION);
        assert_eq!(
            d["threat"]["technique"]["name"],
            serde_json::json!(["Non-Application Layer Protocol"])
        );
        assert_eq!(d["threat"]["tactic"]["id"], serde_json::json!(["TA0011"]));
        assert_eq!(d["host"]["id"], "4C4C4544-003A-4A10-804C-B3C04F4B4D32");
        let message = d["message"].as_str().unwrap();
        assert!(
            message.contains("unsigned binary /tmp/x/beacon (pid 42)"),
            "{message}"
        );
        assert!(message.contains("UDP socket to 192.0.2.10:53"), "{message}");
    }

    #[test]
    fn ping_and_unconnected_sockets_have_no_guessed_endpoints() {
        let ping = doc(&[
            ("protocol_name", t("icmp")),
            ("local_address", t("0.0.0.0")),
            ("local_port", i(4242)),
            ("remote_address", t("0.0.0.0")),
            ("remote_port", i(0)),
            ("remote_scope", t("unspecified")),
            ("state", t("bound")),
            ("start_time", i(0)),
        ]);
        assert_eq!(ping["network"]["direction"], "unknown");
        assert!(ping.get("source").is_none() && ping.get("destination").is_none());
        assert_eq!(ping["an1256"]["socket"]["icmp_id"], 4242);
        assert!(
            ping["an1256"]["socket"].get("local_port").is_none(),
            "an echo id is no port"
        );
        assert!(
            ping.get("process").and_then(|p| p.get("start")).is_none(),
            "start 0 is unknown, not 1970"
        );
        let connected_ping = doc(&[
            ("protocol_name", t("icmpv6")),
            ("protocol", i(58)),
            ("remote_address", t("2001:db8::1")),
            ("remote_port", i(0)),
            ("remote_scope", t("public")),
        ]);
        assert_eq!(connected_ping["network"]["transport"], "ipv6-icmp");
        assert_eq!(connected_ping["destination"]["ip"], "2001:db8::1");
        assert!(connected_ping["destination"].get("port").is_none());
        let raw = doc(&[
            ("protocol_name", t("raw")),
            ("protocol", i(255)),
            ("local_port", i(255)),
        ]);
        assert_eq!(raw["network"]["iana_number"], "255");
        assert!(
            raw["network"].get("transport").is_none(),
            "255 has no IANA keyword"
        );
        let bound_udp = doc(&[
            ("protocol_name", t("udp")),
            ("protocol", i(17)),
            ("local_address", t("127.0.0.1")),
            ("local_port", i(5000)),
            ("remote_address", t("0.0.0.0")),
            ("remote_scope", t("unspecified")),
        ]);
        assert_eq!(bound_udp["an1256"]["socket"]["local_address"], "127.0.0.1");
        assert_eq!(bound_udp["an1256"]["socket"]["local_port"], 5000);
        let server = doc(&[
            ("protocol_name", t("socks")),
            ("protocol", i(6)),
            ("reason", t("socks_local_proxy,socks_server")),
            ("local_address", t("127.0.0.1")),
            ("local_port", i(1080)),
            ("remote_address", t("127.0.0.1")),
            ("remote_port", i(50000)),
            ("remote_scope", t("loopback")),
        ]);
        assert_eq!(server["network"]["direction"], "ingress");
        assert_eq!(server["destination"]["port"], 1080);
        assert_eq!(server["source"]["port"], 50000);
        assert_eq!(server["network"]["protocol"], "socks");
        assert_eq!(server["network"]["transport"], "tcp");
    }

    #[test]
    fn linux_packages_are_packages_not_signers() {
        let d = doc(&[
            ("identifier", t("python3.11-minimal")),
            ("authority", t("dpkg")),
            ("signed", i(1)),
            ("trusted", i(1)),
            ("subject_kind", t("script")),
            ("script_kind", t("file")),
            ("script_path", t("/tmp/x.py")),
            ("script_sha256", t("ab")),
        ]);
        assert_eq!(d["package"]["name"], "python3.11-minimal");
        assert_eq!(d["package"]["type"], "dpkg");
        assert!(d["process"]["code_signature"].get("signing_id").is_none());
        assert!(d["process"]["code_signature"].get("subject_name").is_none());
        assert_eq!(d["file"]["name"], "x.py");
        let inline = doc(&[("script_kind", t("inline")), ("script_sha256", t("cd"))]);
        assert!(inline.get("file").is_none());
        assert_eq!(inline["an1256"]["script"]["sha256"], "cd");
    }

    #[test]
    fn severity_bands_are_the_external_alerts_values() {
        assert_eq!(elastic_severity(0), (21, "low"));
        assert_eq!(elastic_severity(39), (21, "low"));
        assert_eq!(elastic_severity(40), (47, "medium"));
        assert_eq!(elastic_severity(60), (73, "high"));
        assert_eq!(elastic_severity(80), (99, "critical"));
        assert_eq!(elastic_severity(100), (99, "critical"));
        assert!(mapping_markdown().contains("`process.code_signature.team_id`"));
        assert!(mapping_markdown().contains("`an1256.socket.icmp_id`"));
    }
}
