//! Severity (0–100) and ATT&CK technique ids for one hit. Pure: the hit queries
//! gather the [`Factors`] from `process_code_signature`, `nonstandard_protocol_sockets`
//! and the baseline, and call [`severity`] and [`attack_techniques`].
//!
//! The factor table is [`SEVERITY_TABLE_MARKDOWN`] (the README includes it); the
//! weights below and that table must agree (a unit test checks).

use crate::util::glob::{self, Dialect};

/// What is known about one hit. Every field defaults to "not present".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Factors {
    /// The subject (binary, or script for interpreters) is not trusted
    /// (`subject_trusted = 0`).
    pub untrusted_subject: bool,
    /// The subject is a script file.
    pub script: bool,
    /// The subject lives in a user-writable or temporary directory
    /// (see [`is_user_writable_or_temp`]).
    pub writable_or_temp_location: bool,
    /// macOS quarantine attribute on the subject (downloaded).
    pub quarantined: bool,
    /// Code given inline (`python -c`, `osascript -e`, `bash -c`…).
    pub inline_code: bool,
    /// The socket is raw (`socket_type = 'raw'`).
    pub raw_socket: bool,
    /// The remote end is public (`remote_scope = 'public'`).
    pub public_destination: bool,
    /// This identity + protocol + port had not been observed on this host more
    /// than 24 hours before the process started.
    pub never_seen_before: bool,
    /// The socket is a SOCKS server (`socks_server` in `reason`).
    pub socks_server: bool,
    /// `protocol_name` of the socket (`icmp`, `udp`, `raw`, `socks`…).
    pub protocol_name: String,
}

/// The hit columns the factors are derived from (names as in the tables).
#[derive(Clone, Copy, Debug, Default)]
pub struct HitColumns<'a> {
    /// `process_code_signature.subject_trusted`.
    pub subject_trusted: bool,
    /// `process_code_signature.subject_kind` (`binary` / `script`).
    pub subject_kind: &'a str,
    /// `process_code_signature.script_kind` (`file`, `inline`, …).
    pub script_kind: &'a str,
    /// `process_code_signature.subject_path`.
    pub subject_path: &'a str,
    /// `process_code_signature.script_quarantined`.
    pub quarantined: bool,
    /// `nonstandard_protocol_sockets.socket_type`.
    pub socket_type: &'a str,
    /// `nonstandard_protocol_sockets.remote_scope`.
    pub remote_scope: &'a str,
    /// `nonstandard_protocol_sockets.reason` (comma list).
    pub reason: &'a str,
    /// `nonstandard_protocol_sockets.protocol_name`.
    pub protocol_name: &'a str,
    /// No observation of identity + protocol + port more than 24 h before the
    /// process started.
    pub never_seen_before: bool,
}

impl Factors {
    /// The factors of a hit, from its columns.
    pub fn from_columns(hit: &HitColumns<'_>) -> Factors {
        let inline_code = hit.script_kind == "inline";
        Factors {
            untrusted_subject: !hit.subject_trusted,
            script: hit.subject_kind == "script" || inline_code,
            writable_or_temp_location: is_user_writable_or_temp(hit.subject_path),
            quarantined: hit.quarantined,
            inline_code,
            raw_socket: hit.socket_type == "raw",
            public_destination: hit.remote_scope == "public",
            never_seen_before: hit.never_seen_before,
            socks_server: hit.reason.split(',').any(|r| r == "socks_server"),
            protocol_name: hit.protocol_name.to_owned(),
        }
    }
}

/// Weight of each factor, as documented in [`SEVERITY_TABLE_MARKDOWN`].
pub const WEIGHT_UNTRUSTED_SUBJECT: u8 = 30;
pub const WEIGHT_WRITABLE_OR_TEMP: u8 = 15;
pub const WEIGHT_QUARANTINED: u8 = 10;
pub const WEIGHT_INLINE_CODE: u8 = 10;
pub const WEIGHT_RAW_SOCKET: u8 = 15;
pub const WEIGHT_PUBLIC_DESTINATION: u8 = 10;
pub const WEIGHT_NEVER_SEEN: u8 = 10;
pub const WEIGHT_SOCKS_SERVER: u8 = 20;

/// The severity table, as markdown, for the README.
pub const SEVERITY_TABLE_MARKDOWN: &str = "\
| factor | points | when |
|---|---|---|
| untrusted subject | 30 | `subject_trusted = 0`: unsigned, ad-hoc, invalid or unknown binary, or a script that is not trusted |
| user-writable or temp location | 15 | the subject is under `/tmp`, `/var/tmp`, `/dev/shm`, `/private/tmp`, `/private/var/tmp`, `/private/var/folders`, `/var/folders`, `/Users/Shared`, `/run/user`, `/root/Downloads`, `/root/Desktop`, or a home's `Downloads`, `Desktop`, `Library/Caches` (SQLite GLOB patterns, e.g. `/home/*/Downloads/*`) |
| quarantined | 10 | macOS `com.apple.quarantine` on the subject (it was downloaded) |
| inline code | 10 | `python -c`, `osascript -e`, `bash -c`…: no file on disk to inspect |
| raw socket | 15 | `socket_type = 'raw'` (crafted packets, needs privilege) |
| public destination | 10 | `remote_scope = 'public'` |
| never seen before | 10 | this identity + protocol + remote port had not been observed on this host (`an1256_observations`) more than 24 hours before the process started: judged against the process's own start, never the clock, so a differential row keeps its score while the socket lives |
| SOCKS server | 20 | `socks_server` in `reason`: the process is a pivot |

The severity is the sum, capped at 100. A hit with no factor scores 0.
";

/// Where anyone or the user can drop code, as SQLite GLOB patterns (`*` matches
/// any run of characters, `/` included). The Rust predicate and the SQL the packs
/// use are both built from this one list.
pub const WRITABLE_OR_TEMP_GLOBS: [&str; 16] = [
    "/tmp/*",
    "/var/tmp/*",
    "/dev/shm/*",
    "/private/tmp/*",
    "/private/var/tmp/*",
    "/private/var/folders/*",
    "/var/folders/*",
    "/Users/Shared/*",
    "/run/user/*",
    "/home/*/Downloads/*",
    "/home/*/Desktop/*",
    "/root/Downloads/*",
    "/root/Desktop/*",
    "/Users/*/Downloads/*",
    "/Users/*/Desktop/*",
    "/Users/*/Library/Caches/*",
];

/// Whether `path` is in a user-writable or temporary directory (see the table).
/// A match adds severity, so an undecided match (a path over the glob's bounds)
/// counts as one.
pub fn is_user_writable_or_temp(path: &str) -> bool {
    WRITABLE_OR_TEMP_GLOBS
        .iter()
        .any(|pattern| glob::matches(Dialect::SqliteStar, pattern, path).unwrap_or(true))
}

/// Hours within which a first observation still counts as "never seen before".
pub const NEW_WITHIN_SECONDS: i64 = 24 * 3600;

/// Where a hit query's factor columns come from: one SQL expression per
/// [`HitColumns`] field, plus the observation key and the process start the
/// "never seen before" factor is judged with.
#[derive(Clone, Copy, Debug)]
pub struct HitSource {
    pub subject_trusted: &'static str,
    pub subject_kind: &'static str,
    pub script_kind: &'static str,
    pub subject_path: &'static str,
    pub script_quarantined: &'static str,
    pub socket_type: &'static str,
    pub remote_scope: &'static str,
    pub reason: &'static str,
    pub protocol_name: &'static str,
    pub identity: &'static str,
    pub remote_port: &'static str,
    pub start_time: &'static str,
}

/// `an1256_hits`: the pack join's aliases `c` (process_code_signature) and `s`
/// (nonstandard_protocol_sockets).
pub const LIVE_HITS: HitSource = HitSource {
    subject_trusted: "c.subject_trusted",
    subject_kind: "c.subject_kind",
    script_kind: "c.script_kind",
    subject_path: "c.subject_path",
    script_quarantined: "c.script_quarantined",
    socket_type: "s.socket_type",
    remote_scope: "s.remote_scope",
    reason: "s.reason",
    protocol_name: "s.protocol_name",
    identity: "c.subject_identity",
    remote_port: "s.remote_port",
    start_time: "c.start_time",
};

/// `an1256_hits_recent`: alias `o` (an1256_observations), which records the same
/// facts for the first sighting of each appearance.
pub const RECENT_HITS: HitSource = HitSource {
    subject_trusted: "o.subject_trusted",
    subject_kind: "o.subject_kind",
    script_kind: "o.script_kind",
    subject_path: "o.path",
    script_quarantined: "o.script_quarantined",
    socket_type: "o.socket_type",
    remote_scope: "o.remote_scope",
    reason: "o.reason",
    protocol_name: "o.protocol_name",
    identity: "o.identity",
    remote_port: "o.remote_port",
    start_time: "o.start_time",
};

/// The earliest observation of the hit's identity + protocol + remote port made
/// before its process started (NULL: none; this process is the first). It depends
/// only on the past of a fixed instant, so it cannot change while the process
/// lives (short of the store pruning a key unseen for `max_age`).
pub fn first_seen_before_start_sql(source: &HitSource) -> String {
    let HitSource {
        identity,
        protocol_name,
        remote_port,
        start_time,
        ..
    } = source;
    format!(
        "(SELECT MIN(earlier.first_seen) FROM an1256_observations earlier \
WHERE earlier.identity = {identity} AND earlier.protocol_name = {protocol_name} \
AND earlier.remote_port = {remote_port} AND earlier.first_seen < {start_time})"
    )
}

/// "Never seen before", judged against the process's own start: no observation
/// of the key more than [`NEW_WITHIN_SECONDS`] before it. No `'now'`: a
/// differential row keeps its severity for as long as the socket lives.
pub fn never_seen_sql(source: &HitSource) -> String {
    let start = source.start_time;
    format!(
        "COALESCE({}, {start}) > {start} - {NEW_WITHIN_SECONDS}",
        first_seen_before_start_sql(source)
    )
}

/// The hit-context columns `an1256_hits` selects: `first_seen_before_start`,
/// `severity`, `attack_techniques`.
pub fn hit_context_sql() -> String {
    format!(
        "{} AS first_seen_before_start, {}",
        first_seen_before_start_sql(&LIVE_HITS),
        sql_columns(&LIVE_HITS, &never_seen_sql(&LIVE_HITS))
    )
}

/// The hit-context columns `an1256_hits_recent` selects next to `o.first_seen`:
/// `severity` and `attack_techniques`, scored exactly as live hits are.
pub fn recent_hit_context_sql() -> String {
    sql_columns(&RECENT_HITS, &never_seen_sql(&RECENT_HITS))
}

/// SQL for the `severity` and `attack_techniques` hit columns over `source`'s
/// columns; `never_seen` is a boolean SQL expression. Runs unchanged in osquery and
/// in the embedded engine; a test checks it against [`severity`] and
/// [`attack_techniques`].
pub fn sql_columns(source: &HitSource, never_seen: &str) -> String {
    let HitSource {
        subject_trusted,
        subject_kind,
        script_kind,
        subject_path,
        script_quarantined,
        socket_type,
        remote_scope,
        reason,
        protocol_name,
        ..
    } = source;
    let writable = WRITABLE_OR_TEMP_GLOBS
        .iter()
        .map(|g| format!("{subject_path} GLOB '{g}'"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let severity = format!(
        "MIN(100, \
(CASE WHEN {subject_trusted} = 0 THEN {WEIGHT_UNTRUSTED_SUBJECT} ELSE 0 END) + \
(CASE WHEN {writable} THEN {WEIGHT_WRITABLE_OR_TEMP} ELSE 0 END) + \
(CASE WHEN {script_quarantined} = 1 THEN {WEIGHT_QUARANTINED} ELSE 0 END) + \
(CASE WHEN {script_kind} = 'inline' THEN {WEIGHT_INLINE_CODE} ELSE 0 END) + \
(CASE WHEN {socket_type} = 'raw' THEN {WEIGHT_RAW_SOCKET} ELSE 0 END) + \
(CASE WHEN {remote_scope} = 'public' THEN {WEIGHT_PUBLIC_DESTINATION} ELSE 0 END) + \
(CASE WHEN {never_seen} THEN {WEIGHT_NEVER_SEEN} ELSE 0 END) + \
(CASE WHEN ',' || {reason} || ',' LIKE '%,socks_server,%' THEN {WEIGHT_SOCKS_SERVER} ELSE 0 END))"
    );
    let techniques = format!(
        "TRIM(\
(CASE WHEN {protocol_name} IN ('icmp','icmpv6','udp','udplite','raw') OR ({protocol_name} <> 'socks' AND {socket_type} = 'raw') THEN 'T1095' \
WHEN {protocol_name} = 'socks' THEN 'T1090' ELSE '' END) || \
(CASE WHEN {subject_kind} = 'script' OR {script_kind} = 'inline' THEN ',T1059' ELSE '' END) || \
(CASE WHEN {script_kind} = 'inline' THEN ',T1027' ELSE '' END), ',')"
    );
    format!("{severity} AS severity, {techniques} AS attack_techniques")
}

/// Severity 0–100: the sum of the weights of the factors present, capped at 100.
pub fn severity(factors: &Factors) -> u8 {
    let weighted = [
        (factors.untrusted_subject, WEIGHT_UNTRUSTED_SUBJECT),
        (factors.writable_or_temp_location, WEIGHT_WRITABLE_OR_TEMP),
        (factors.quarantined, WEIGHT_QUARANTINED),
        (factors.inline_code, WEIGHT_INLINE_CODE),
        (factors.raw_socket, WEIGHT_RAW_SOCKET),
        (factors.public_destination, WEIGHT_PUBLIC_DESTINATION),
        (factors.never_seen_before, WEIGHT_NEVER_SEEN),
        (factors.socks_server, WEIGHT_SOCKS_SERVER),
    ];
    let total: u32 = weighted
        .iter()
        .filter(|(present, _)| *present)
        .map(|(_, weight)| u32::from(*weight))
        .sum();
    u8::try_from(total.min(100)).unwrap_or(100)
}

/// ATT&CK technique ids for a hit, comma-joined in this order:
/// - `T1095` (Non-Application Layer Protocol) for ICMP, ICMPv6, UDP, UDP-Lite and raw;
/// - `T1090` (Proxy) for SOCKS;
/// - `T1059` (Command and Scripting Interpreter) when the subject is a script or inline code;
/// - `T1027` (Obfuscated Files or Information) when the code is inline.
pub fn attack_techniques(factors: &Factors) -> String {
    let mut ids = Vec::new();
    match factors.protocol_name.as_str() {
        "icmp" | "icmpv6" | "udp" | "udplite" | "raw" => ids.push("T1095"),
        "socks" => ids.push("T1090"),
        _ if factors.raw_socket => ids.push("T1095"),
        _ => {}
    }
    if factors.script || factors.inline_code {
        ids.push("T1059");
    }
    if factors.inline_code {
        ids.push("T1027");
    }
    ids.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_factor_scores_zero_and_all_cap_at_100() {
        assert_eq!(severity(&Factors::default()), 0);
        let all = Factors {
            untrusted_subject: true,
            script: true,
            writable_or_temp_location: true,
            quarantined: true,
            inline_code: true,
            raw_socket: true,
            public_destination: true,
            never_seen_before: true,
            socks_server: true,
            protocol_name: "raw".into(),
        };
        assert_eq!(severity(&all), 100);
    }

    #[test]
    fn weights_add_up() {
        let unsigned_udp = Factors {
            untrusted_subject: true,
            public_destination: true,
            protocol_name: "udp".into(),
            ..Default::default()
        };
        assert_eq!(severity(&unsigned_udp), 40);
        let tmp_script_new = Factors {
            untrusted_subject: true,
            script: true,
            writable_or_temp_location: true,
            never_seen_before: true,
            ..Default::default()
        };
        assert_eq!(severity(&tmp_script_new), 55);
        let socks_pivot = Factors {
            untrusted_subject: true,
            socks_server: true,
            ..Default::default()
        };
        assert_eq!(severity(&socks_pivot), 50);
        // A trusted binary's public UDP is low.
        let trusted = Factors {
            public_destination: true,
            ..Default::default()
        };
        assert_eq!(severity(&trusted), 10);
    }

    #[test]
    fn table_documents_every_weight() {
        for (name, weight) in [
            ("untrusted subject", WEIGHT_UNTRUSTED_SUBJECT),
            ("user-writable or temp location", WEIGHT_WRITABLE_OR_TEMP),
            ("quarantined", WEIGHT_QUARANTINED),
            ("inline code", WEIGHT_INLINE_CODE),
            ("raw socket", WEIGHT_RAW_SOCKET),
            ("public destination", WEIGHT_PUBLIC_DESTINATION),
            ("never seen before", WEIGHT_NEVER_SEEN),
            ("SOCKS server", WEIGHT_SOCKS_SERVER),
        ] {
            let row = format!("| {name} | {weight} |");
            assert!(SEVERITY_TABLE_MARKDOWN.contains(&row), "{row}");
        }
        for glob in WRITABLE_OR_TEMP_GLOBS
            .iter()
            .filter(|g| g.matches('*').count() == 1)
        {
            let dir = glob.trim_end_matches("/*");
            assert!(
                SEVERITY_TABLE_MARKDOWN.contains(&format!("`{dir}`")),
                "{dir}"
            );
        }
    }

    /// The SQL columns and the Rust functions agree on every combination of factors.
    #[test]
    fn sql_severity_matches_the_rust_severity() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let live = format!(
            "SELECT {} FROM (SELECT ?1 AS subject_trusted, ?2 AS subject_path, ?3 AS script_quarantined, \
             ?4 AS script_kind, ?5 AS subject_kind) c, (SELECT ?6 AS socket_type, ?7 AS remote_scope, \
             ?8 AS reason, ?9 AS protocol_name) s",
            sql_columns(&LIVE_HITS, "?10")
        );
        let recent = format!(
            "SELECT {} FROM (SELECT ?1 AS subject_trusted, ?2 AS path, ?3 AS script_quarantined, \
             ?4 AS script_kind, ?5 AS subject_kind, ?6 AS socket_type, ?7 AS remote_scope, \
             ?8 AS reason, ?9 AS protocol_name) o",
            sql_columns(&RECENT_HITS, "?10")
        );
        for sql in [live, recent] {
            check_every_combination(&conn, &sql);
        }
    }

    fn check_every_combination(conn: &rusqlite::Connection, sql: &str) {
        let paths = [
            "/tmp/x",
            "/usr/bin/x",
            "/home/u/Downloads/a",
            "/Users/a/Library/Caches/b",
            "",
        ];
        let kinds = [
            ("binary", ""),
            ("script", "file"),
            ("script", "inline"),
            ("binary", "interactive"),
        ];
        let sockets = [
            ("dgram", "public", "udp_socket", "udp"),
            ("raw", "private", "icmp_socket,raw_socket", "icmp"),
            ("raw", "loopback", "raw_socket", "raw"),
            (
                "stream",
                "loopback",
                "socks_local_proxy,socks_server",
                "socks",
            ),
            ("stream", "public", "socks_port", "socks"),
        ];
        let mut checked = 0;
        for trusted in [false, true] {
            for path in paths {
                for quarantined in [false, true] {
                    for (subject_kind, script_kind) in kinds {
                        for (socket_type, scope, reason, protocol) in sockets {
                            for never_seen in [false, true] {
                                let (sev, techniques): (i64, String) = conn
                                    .query_row(
                                        sql,
                                        rusqlite::params![
                                            trusted as i64,
                                            path,
                                            quarantined as i64,
                                            script_kind,
                                            subject_kind,
                                            socket_type,
                                            scope,
                                            reason,
                                            protocol,
                                            never_seen
                                        ],
                                        |r| Ok((r.get(0)?, r.get(1)?)),
                                    )
                                    .unwrap();
                                let factors = Factors::from_columns(&HitColumns {
                                    subject_trusted: trusted,
                                    subject_kind,
                                    script_kind,
                                    subject_path: path,
                                    quarantined,
                                    socket_type,
                                    remote_scope: scope,
                                    reason,
                                    protocol_name: protocol,
                                    never_seen_before: never_seen,
                                });
                                assert_eq!(sev, i64::from(severity(&factors)), "{factors:?}");
                                assert_eq!(techniques, attack_techniques(&factors), "{factors:?}");
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 2 * 5 * 2 * 4 * 5 * 2);
    }

    /// "Never seen before" looks only at observations made before the process
    /// started: what the sampler records while it runs never changes the answer.
    #[test]
    fn never_seen_is_judged_against_the_process_start() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE an1256_observations (identity TEXT, protocol_name TEXT, \
             remote_port INTEGER, first_seen INTEGER);",
        )
        .unwrap();
        let sql = format!(
            "SELECT {} AS new, {} AS before FROM (SELECT 'sha256:a' AS subject_identity, \
             ?1 AS start_time) c, (SELECT 'udp' AS protocol_name, 53 AS remote_port) s",
            never_seen_sql(&LIVE_HITS),
            first_seen_before_start_sql(&LIVE_HITS)
        );
        let judge = |start: i64| -> (bool, Option<i64>) {
            conn.query_row(&sql, [start], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
        };
        let start = 1_000_000;
        assert_eq!(judge(start), (true, None), "no history: new");
        let observe = |first_seen: i64| {
            conn.execute(
                "INSERT INTO an1256_observations VALUES ('sha256:a', 'udp', 53, ?1)",
                [first_seen],
            )
            .unwrap();
        };
        // Seen only since the process started (the sampler saw this process): new,
        // and still new whenever asked.
        observe(start + 15);
        assert_eq!(judge(start), (true, None));
        // Seen 2 h before the start: still new (less than 24 h of history).
        observe(start - 7200);
        assert_eq!(judge(start), (true, Some(start - 7200)));
        // Seen 25 h before the start: known.
        observe(start - 25 * 3600);
        assert_eq!(judge(start), (false, Some(start - 25 * 3600)));
        // Another key does not count.
        let other = judge(start - 30 * 3600);
        assert_eq!(other, (true, None));
    }

    #[test]
    fn writable_locations() {
        for path in [
            "/tmp/x.py",
            "/var/tmp/a/b",
            "/dev/shm/implant",
            "/private/tmp/x",
            "/private/var/folders/ab/T/x",
            "/Users/Shared/x.sh",
            "/Users/alice/Downloads/tool",
            "/home/bob/Downloads/x.py",
            "/home/bob/Desktop/run.sh",
            "/root/Downloads/x",
            "/Users/alice/Library/Caches/x",
            "/run/user/1000/x",
        ] {
            assert!(is_user_writable_or_temp(path), "{path}");
        }
        for path in [
            "/usr/bin/python3",
            "/opt/tool/bin/x",
            "/home/bob/bin/x",
            "/home/bob/Downloadsx/y",
            "/tmpfoo/x",
            "/Users/alice/Documents/x",
            "/home/Downloads",
            "/usr/tmp/x",
            "",
        ] {
            assert!(!is_user_writable_or_temp(path), "{path}");
        }
        // The SQL's GLOB and the Rust dialect agree only on `*`: keep it the one
        // wildcard of the list.
        for pattern in WRITABLE_OR_TEMP_GLOBS {
            assert!(!pattern.contains(['?', '[', ']']), "{pattern}");
        }
        // A path over the glob's bounds scores as writable (the severe side).
        let long = format!("/usr/{}", "a".repeat(glob::MAX_SUBJECT_BYTES));
        assert!(is_user_writable_or_temp(&long));
    }

    #[test]
    fn factors_from_hit_columns() {
        let hit = HitColumns {
            subject_trusted: false,
            subject_kind: "script",
            script_kind: "file",
            subject_path: "/tmp/beacon.py",
            socket_type: "dgram",
            remote_scope: "public",
            reason: "udp_socket",
            protocol_name: "udp",
            never_seen_before: true,
            ..Default::default()
        };
        let f = Factors::from_columns(&hit);
        assert!(f.untrusted_subject && f.script && f.writable_or_temp_location);
        assert!(!f.inline_code && !f.raw_socket && !f.socks_server && !f.quarantined);
        assert_eq!(severity(&f), 30 + 15 + 10 + 10);
        assert_eq!(attack_techniques(&f), "T1095,T1059");

        let pivot = HitColumns {
            subject_trusted: false,
            subject_kind: "binary",
            subject_path: "/usr/local/bin/microsocks",
            socket_type: "stream",
            remote_scope: "unspecified",
            reason: "socks_handshake,socks_server",
            protocol_name: "socks",
            ..Default::default()
        };
        let f = Factors::from_columns(&pivot);
        assert!(f.socks_server && !f.script);
        assert_eq!(severity(&f), 50);
        assert_eq!(attack_techniques(&f), "T1090");

        let inline = HitColumns {
            subject_trusted: true,
            subject_kind: "script",
            script_kind: "inline",
            socket_type: "raw",
            protocol_name: "icmp",
            ..Default::default()
        };
        let f = Factors::from_columns(&inline);
        assert_eq!(severity(&f), 10 + 15);
        assert_eq!(attack_techniques(&f), "T1095,T1059,T1027");
        // "socks_server" must be a whole reason, not a substring.
        let f = Factors::from_columns(&HitColumns {
            reason: "socks_serverish",
            subject_trusted: true,
            ..Default::default()
        });
        assert!(!f.socks_server);
    }

    #[test]
    fn techniques() {
        let f = |protocol: &str, script: bool, inline: bool| {
            attack_techniques(&Factors {
                protocol_name: protocol.into(),
                script,
                inline_code: inline,
                ..Default::default()
            })
        };
        assert_eq!(f("icmp", false, false), "T1095");
        assert_eq!(f("udp", true, false), "T1095,T1059");
        assert_eq!(f("raw", false, true), "T1095,T1059,T1027");
        assert_eq!(f("socks", false, false), "T1090");
        assert_eq!(f("socks", true, true), "T1090,T1059,T1027");
        assert_eq!(f("", false, false), "");
    }
}
