//! `an1256 baseline list | approve | revoke | import | export | learn | sample`.
//! Exit codes: 0 done, 1 nothing matched (revoke), 2 error (the message says
//! what to do).

use crate::baseline::identity::{broad_identity_scope, validate_entry};
use crate::baseline::store::{unix_now, Entry, Source};
use crate::baseline::Baseline;
use crate::cli::CliError;
use crate::model::{Pid, ProtocolSet, SocketQuery};
use crate::observe;
use crate::settings::parse_until;
use crate::terminal::sanitize;
use clap::{Args, Subcommand};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Largest import file read.
const MAX_IMPORT_BYTES: u64 = 64 * 1024 * 1024;
/// Most entries one import takes.
pub const MAX_IMPORT_ENTRIES: usize = 100_000;
/// Export document format tag.
pub const EXPORT_FORMAT: &str = "an1256-baseline";

#[derive(Args, Debug)]
pub struct BaselineArgs {
    #[command(subcommand)]
    pub command: BaselineCommand,
}

#[derive(Subcommand, Debug)]
pub enum BaselineCommand {
    /// List stored entries (learned and approved) and the policy status.
    List {
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        /// Only entries from this source (learned or approved).
        #[arg(long)]
        source: Option<String>,
    },
    /// Approve a subject identity for some protocols (and optionally a port), or
    /// everything a running process does now (--pid).
    Approve {
        /// Identity as in process_code_signature.subject_identity.
        identity: Option<String>,
        /// Approve the subject of this running process, for the protocols its
        /// sockets use now (unless --protocol is given).
        #[arg(long, conflicts_with = "identity")]
        pid: Option<i32>,
        /// Protocol name (icmp, icmpv6, udp, udplite, raw, socks); repeatable.
        #[arg(long = "protocol", value_name = "NAME")]
        protocols: Vec<String>,
        /// Remote port; -1 (default) allows any port.
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        port: i64,
        /// Why this is approved (shown in an1256_baseline.note).
        #[arg(long, default_value = "")]
        note: String,
        /// Approve a broad identity (stdin:, module:, path:), which covers a class
        /// of code rather than one program.
        #[arg(long)]
        force: bool,
    },
    /// Revoke an entry by id, or the entries of an identity.
    Revoke {
        /// Entry id (an1256_baseline.entry_id).
        id: Option<i64>,
        #[arg(long, conflicts_with = "id")]
        identity: Option<String>,
        #[arg(long = "protocol", requires = "identity")]
        protocol: Option<String>,
        #[arg(long, requires = "identity", allow_negative_numbers = true)]
        port: Option<i64>,
    },
    /// Import entries from a JSON export (all or nothing). `-` reads stdin.
    Import {
        file: PathBuf,
        /// Accept broad identities (stdin:, module:, path:) in the file.
        #[arg(long)]
        force: bool,
    },
    /// Export stored entries as JSON (to stdout, or a file created 0600).
    Export {
        file: Option<PathBuf>,
        /// Only this source (learned or approved).
        #[arg(long)]
        source: Option<String>,
    },
    /// Show, extend or stop the learning window.
    Learn {
        /// End of learning: a Unix time or a duration from now (3d, 12h, 3600).
        #[arg(long, conflicts_with = "stop")]
        until: Option<String>,
        /// Stop learning now.
        #[arg(long)]
        stop: bool,
    },
    /// Run one sampler pass now and print what it recorded.
    Sample,
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("an1256 baseline: {}", sanitize(&message.to_string()));
    ExitCode::from(2)
}

/// Refuses broad identities (a class of code, not one program) unless `force`.
fn check_broad<'a>(identities: impl Iterator<Item = &'a str>, force: bool) -> Result<(), CliError> {
    if force {
        return Ok(());
    }
    for identity in identities {
        if let Some(scope) = broad_identity_scope(identity) {
            return Err(CliError::Usage(format!(
                "{identity} is a broad identity: approving it allows {scope}. Give --force to approve it anyway"
            )));
        }
    }
    Ok(())
}

fn parse_source(text: Option<&str>) -> Result<Option<Source>, CliError> {
    match text {
        None => Ok(None),
        Some(t) => match Source::parse(t) {
            Some(Source::Policy) | None => Err(CliError::Usage(format!(
                "--source {t:?}: stored entries are `learned` or `approved`"
            ))),
            some => Ok(some),
        },
    }
}

/// Runs one `an1256 baseline` command.
pub fn run(args: &BaselineArgs, baseline: &Baseline) -> ExitCode {
    let store = match baseline.store() {
        Ok(s) => s,
        Err(e) => {
            return fail(format!(
                "{e}\n(choose another store with --db or AN1256_DB)"
            ))
        }
    };
    let mut out = std::io::stdout().lock();
    match &args.command {
        BaselineCommand::List { json, source } => {
            let source = match parse_source(source.as_deref()) {
                Ok(s) => s,
                Err(e) => return fail(e),
            };
            let entries = match store.entries(None) {
                Ok(e) => e,
                Err(e) => return fail(e),
            };
            let entries = entries
                .into_iter()
                .filter(|e| source.is_none_or(|s| e.source == s));
            if *json {
                for e in entries {
                    let mut v = serde_json::to_value(&e).unwrap_or_default();
                    v["entry_id"] = e.id.into();
                    let _ = writeln!(out, "{v}");
                }
            } else {
                let _ = writeln!(
                    out,
                    "{:>6}  {:<8}  {:<8}  {:>5}  {:>6}  {:<}",
                    "id", "source", "protocol", "port", "seen", "identity  (note)"
                );
                for e in entries {
                    // Stored text may predate the write checks: escape it all.
                    let note = if e.note.is_empty() {
                        String::new()
                    } else {
                        format!("  ({})", sanitize(&e.note))
                    };
                    let _ = writeln!(
                        out,
                        "{:>6}  {:<8}  {:<8}  {:>5}  {:>6}  {}{note}",
                        e.id,
                        e.source.as_str(),
                        sanitize(&e.protocol_name),
                        e.remote_port,
                        e.seen_count,
                        sanitize(&e.identity)
                    );
                }
                let status = baseline.policy.status();
                let _ = writeln!(
                    out,
                    "policy: {} rules from {}{}",
                    status.rules,
                    sanitize(&status.path),
                    if status.error.is_empty() {
                        String::new()
                    } else {
                        format!(" (error: {})", sanitize(&status.error))
                    }
                );
                if let Ok(until) = store.learning_until() {
                    let _ = writeln!(out, "{}", learning_line(until));
                }
            }
            ExitCode::SUCCESS
        }
        BaselineCommand::Approve {
            identity,
            pid,
            protocols,
            port,
            note,
            force,
        } => {
            let targets: Vec<(String, String, i64)> = match (identity, pid) {
                (Some(identity), None) => {
                    if protocols.is_empty() {
                        return fail(
                            "give at least one --protocol (icmp, icmpv6, udp, udplite, raw, socks)",
                        );
                    }
                    protocols
                        .iter()
                        .map(|p| (identity.clone(), p.clone(), *port))
                        .collect()
                }
                (None, Some(pid)) => {
                    match approve_targets_for_pid(baseline, *pid, protocols, *port) {
                        Ok(t) => t,
                        Err(e) => return fail(e),
                    }
                }
                _ => return fail("give an identity or --pid <pid>"),
            };
            // Validate everything before writing anything.
            for (identity, protocol, port) in &targets {
                if let Err(e) = validate_entry(identity, protocol, *port) {
                    return fail(e);
                }
            }
            if let Err(e) = check_broad(targets.iter().map(|t| t.0.as_str()), *force) {
                return fail(e);
            }
            for identity in targets.iter().map(|t| &t.0).collect::<BTreeSet<_>>() {
                if let Some(scope) = broad_identity_scope(identity) {
                    let _ = writeln!(out, "note: {identity} covers {scope}");
                }
            }
            let entries: Vec<Entry> = targets
                .iter()
                .map(|(identity, protocol, port)| Entry {
                    id: 0,
                    identity: identity.clone(),
                    protocol_name: protocol.clone(),
                    remote_port: *port,
                    source: Source::Approved,
                    first_seen: 0,
                    last_seen: 0,
                    seen_count: 0,
                    note: note.clone(),
                })
                .collect();
            match store.approve_all(&entries) {
                Ok(_) => {
                    for (identity, protocol, port) in &targets {
                        let _ = writeln!(out, "approved {identity} {protocol} port {port}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        BaselineCommand::Revoke {
            id,
            identity,
            protocol,
            port,
        } => {
            let removed = match (id, identity) {
                (Some(id), None) => store.revoke(*id).map(usize::from),
                (None, Some(identity)) => {
                    store.revoke_matching(identity, protocol.as_deref(), *port)
                }
                _ => return fail("give an entry id or --identity <identity>"),
            };
            match removed {
                Ok(0) => {
                    eprintln!("an1256 baseline: no stored entry matched (policy rows are edited in the policy file; `an1256 baseline list` shows ids)");
                    ExitCode::from(1)
                }
                Ok(n) => {
                    let _ = writeln!(out, "revoked {n} entr{}", if n == 1 { "y" } else { "ies" });
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        BaselineCommand::Import { file, force } => {
            let entries = match read_import(file) {
                Ok(e) => e,
                Err(e) => return fail(format!("{}: {e}", file.display())),
            };
            if let Err(e) = check_broad(entries.iter().map(|e| e.identity.as_str()), *force) {
                return fail(format!("{}: {e}; nothing was imported", file.display()));
            }
            match store.import(&entries) {
                Ok(n) => {
                    let _ = writeln!(out, "imported {n} entries into {}", store.path().display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(format!("{e}; nothing was imported")),
            }
        }
        BaselineCommand::Export { file, source } => {
            let source = match parse_source(source.as_deref()) {
                Ok(s) => s,
                Err(e) => return fail(e),
            };
            let entries: Vec<Entry> = match store.entries(None) {
                Ok(e) => e
                    .into_iter()
                    .filter(|e| source.is_none_or(|s| e.source == s))
                    .collect(),
                Err(e) => return fail(e),
            };
            let doc = export_document(&entries);
            let text = match serde_json::to_string_pretty(&doc) {
                Ok(t) => t + "\n",
                Err(e) => return fail(e),
            };
            match file {
                None => {
                    let _ = out.write_all(text.as_bytes());
                    ExitCode::SUCCESS
                }
                Some(path) => match write_private(path, text.as_bytes()) {
                    Ok(()) => {
                        eprintln!("exported {} entries to {}", entries.len(), path.display());
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(e),
                },
            }
        }
        BaselineCommand::Learn { until, stop } => {
            let now = unix_now();
            let new_until = match (until, stop) {
                (_, true) => Some(0),
                (Some(text), false) => match parse_until(text, now) {
                    Ok(t) => Some(t),
                    Err(e) => return fail(e),
                },
                (None, false) => None,
            };
            if let Some(t) = new_until {
                if let Err(e) = store.set_learning_until(t) {
                    return fail(e);
                }
            }
            match store.learning_until() {
                Ok(t) => {
                    let _ = writeln!(out, "{}", learning_line(t));
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        BaselineCommand::Sample => match baseline.sample() {
            Some(r) => {
                let _ = writeln!(
                    out,
                    "sampled {} sockets of {} processes: {} observations, {} learned, {} pruned, {} expired, {} skipped; {} ms wall, {} ms cpu{}",
                    r.sockets,
                    r.processes,
                    r.write.observations,
                    r.write.learned,
                    r.write.pruned,
                    r.write.expired,
                    r.skipped,
                    r.wall_ms,
                    r.cpu_ms,
                    if r.errors.is_empty() { String::new() } else { format!("; errors: {}", r.errors.join("; ")) }
                );
                ExitCode::SUCCESS
            }
            None => fail("the store is unavailable"),
        },
    }
}

fn learning_line(until: i64) -> String {
    let now = unix_now();
    if until > now {
        format!(
            "learning: on until {until} ({} h from now)",
            (until - now + 1799) / 3600
        )
    } else {
        "learning: off (start again with `an1256 baseline learn --until 3d`)".into()
    }
}

/// The subject of a running process and the protocols its sockets use now, as
/// the socket table would report them (SOCKS included).
fn approve_targets_for_pid(
    baseline: &Baseline,
    pid: Pid,
    protocols: &[String],
    port: i64,
) -> Result<Vec<(String, String, i64)>, CliError> {
    let host = baseline.host().as_ref();
    let verdict = observe::judge_owner(host, pid)
        .map_err(|e| CliError::Usage(e.to_string()))?
        .ok_or_else(|| {
            CliError::Usage(format!(
                "process {pid} is not running (or cannot be read; try as root)"
            ))
        })?;
    let identity = verdict.subject.identity;
    let names: BTreeSet<String> = if protocols.is_empty() {
        let query = SocketQuery {
            pids: Some(vec![pid]),
            protocols: ProtocolSet::ALL,
        };
        observe::observe_sockets(host, &baseline.settings.socks, &query)
            .sockets
            .iter()
            .map(|o| o.class.protocol_name.to_owned())
            .collect()
    } else {
        protocols.iter().cloned().collect()
    };
    if names.is_empty() {
        return Err(CliError::Usage(format!(
            "process {pid} ({identity}) holds no ICMP, UDP, raw or SOCKS socket now; give --protocol"
        )));
    }
    Ok(names
        .into_iter()
        .map(|p| (identity.clone(), p, port))
        .collect())
}

/// The export document.
pub fn export_document(entries: &[Entry]) -> serde_json::Value {
    serde_json::json!({
        "format": EXPORT_FORMAT,
        "version": 1,
        "exported_at": unix_now(),
        "entries": entries,
    })
}

/// Entries of an export document (or a bare array of entries).
pub fn parse_export(text: &str) -> Result<Vec<Entry>, CliError> {
    read_export(text.as_bytes())
}

/// Entries of an export document read from `reader` one entry at a time: the
/// document is never held whole, as text or as a JSON tree (an import costs about
/// the size of its entries, not many times the file).
pub fn read_export(reader: impl Read) -> Result<Vec<Entry>, CliError> {
    use serde::de::DeserializeSeed;
    let mut json = serde_json::Deserializer::from_reader(std::io::BufReader::new(reader));
    let entries = import::Document.deserialize(&mut json).map_err(|e| {
        CliError::BadDocument(match e.classify() {
            serde_json::error::Category::Io => e.to_string(),
            serde_json::error::Category::Data => format!("bad entry: {e}"),
            _ => format!("not JSON ({e})"),
        })
    })?;
    json.end()
        .map_err(|e| CliError::BadDocument(format!("not JSON (trailing data: {e})")))?;
    Ok(entries)
}

/// The import file (`-`: stdin), at most `MAX_IMPORT_BYTES`, parsed as it is read.
fn read_import(file: &PathBuf) -> Result<Vec<Entry>, CliError> {
    if file.as_os_str() == "-" {
        return read_export(import::Capped::new(std::io::stdin().lock()));
    }
    let opened = std::fs::File::open(file).map_err(|cause| CliError::File {
        action: "read",
        path: file.display().to_string(),
        cause,
    })?;
    read_export(import::Capped::new(opened))
}

/// Streaming import: a serde visitor over the export document, and a reader
/// that refuses input beyond `MAX_IMPORT_BYTES`.
mod import {
    use super::{Entry, EXPORT_FORMAT, MAX_IMPORT_BYTES, MAX_IMPORT_ENTRIES};
    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::io::Read;

    /// The whole document: an export object or a bare list of entries.
    pub struct Document;

    impl<'de> DeserializeSeed<'de> for Document {
        type Value = Vec<Entry>;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<Entry>, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Document {
        type Value = Vec<Entry>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an export object or a list of entries")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<Entry>, A::Error> {
            collect(seq)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<Entry>, A::Error> {
            let mut entries = None;
            while let Some(key) = map.next_key::<String>()? {
                match key.as_str() {
                    "format" => {
                        let format: String = map.next_value()?;
                        if format != EXPORT_FORMAT {
                            return Err(de::Error::custom(format!(
                                "format {format:?} is not {EXPORT_FORMAT:?}"
                            )));
                        }
                    }
                    "entries" if entries.is_none() => {
                        entries = Some(map.next_value_seed(EntryList)?);
                    }
                    "entries" => return Err(de::Error::custom("two `entries` lists")),
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            entries.ok_or_else(|| {
                de::Error::custom(
                    "no `entries` list (expected the output of `an1256 baseline export`)",
                )
            })
        }
    }

    struct EntryList;

    impl<'de> DeserializeSeed<'de> for EntryList {
        type Value = Vec<Entry>;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<Entry>, D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for EntryList {
        type Value = Vec<Entry>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of entries")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<Entry>, A::Error> {
            collect(seq)
        }
    }

    fn collect<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Vec<Entry>, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = seq.next_element::<Entry>()? {
            if entries.len() >= MAX_IMPORT_ENTRIES {
                return Err(de::Error::custom(format!(
                    "more than {MAX_IMPORT_ENTRIES} entries; split the file"
                )));
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    /// Reads at most `MAX_IMPORT_BYTES`, then fails rather than truncating.
    pub struct Capped<R> {
        inner: R,
        limit: u64,
        left: u64,
    }

    impl<R: Read> Capped<R> {
        pub fn new(inner: R) -> Self {
            Capped::with_limit(inner, MAX_IMPORT_BYTES)
        }

        pub fn with_limit(inner: R, limit: u64) -> Self {
            Capped {
                inner,
                limit,
                left: limit,
            }
        }
    }

    impl<R: Read> Read for Capped<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.left == 0 {
                let mut probe = [0u8; 1];
                return match self.inner.read(&mut probe)? {
                    0 => Ok(0),
                    _ => Err(std::io::Error::other(format!(
                        "the file is larger than {} bytes; split it",
                        self.limit
                    ))),
                };
            }
            let limit = usize::try_from(self.left)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let n = self.inner.read(&mut buf[..limit])?;
            self.left = self.left.saturating_sub(n as u64);
            Ok(n)
        }
    }
}

/// Writes a new file 0600 without following a symlink at its path.
fn write_private(path: &PathBuf, bytes: &[u8]) -> Result<(), CliError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .and_then(|mut file| file.write_all(bytes))
        .map_err(|cause| CliError::File {
            action: "write",
            path: path.display().to_string(),
            cause,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_parses_back() {
        let e = Entry {
            id: 5,
            identity: format!("sha256:{}", "b".repeat(64)),
            protocol_name: "udp".into(),
            remote_port: 53,
            source: Source::Learned,
            first_seen: 10,
            last_seen: 20,
            seen_count: 3,
            note: "n".into(),
        };
        let doc = export_document(std::slice::from_ref(&e));
        let back = parse_export(&doc.to_string()).unwrap();
        assert_eq!(back, vec![Entry { id: 0, ..e }]);
        assert!(parse_export(r#"{"format":"other","entries":[]}"#).is_err());
        assert!(parse_export("[{\"identity\": 1}]").is_err());
        // Minimal hand-written entries default to approved / any port.
        // Unknown top-level keys are skipped; a second entries list is refused.
        let doc = r#"{"note":{"x":[1,2]},"format":"an1256-baseline","entries":[]}"#;
        assert_eq!(parse_export(doc).unwrap(), vec![]);
        assert!(parse_export(r#"{"entries":[],"entries":[]}"#).is_err());
        assert!(parse_export(r#"{"format":"an1256-baseline"}"#)
            .unwrap_err()
            .to_string()
            .contains("no `entries` list"));
        assert!(parse_export("[] []")
            .unwrap_err()
            .to_string()
            .contains("trailing"));
        let min = parse_export(r#"[{"identity":"apple:x","protocol_name":"icmp"}]"#).unwrap();
        assert_eq!((min[0].source, min[0].remote_port), (Source::Approved, -1));
    }

    #[test]
    fn import_is_bounded_in_entries_and_bytes() {
        let entry = r#"{"identity":"apple:x","protocol_name":"icmp"}"#;
        let list = |n: usize| format!("[{}]", vec![entry; n].join(","));
        assert_eq!(
            parse_export(&list(MAX_IMPORT_ENTRIES)).unwrap().len(),
            MAX_IMPORT_ENTRIES
        );
        let err = parse_export(&list(MAX_IMPORT_ENTRIES + 1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than 100000 entries"), "{err}");
        // Whitespace past the byte cap: refused, not silently truncated.
        let padded = std::io::repeat(b' ').take(2000);
        let err = read_export(import::Capped::with_limit(b"[]".chain(padded), 1024))
            .unwrap_err()
            .to_string();
        assert!(err.contains("larger than 1024 bytes"), "{err}");
        let fits = std::io::repeat(b' ').take(1000);
        assert!(read_export(import::Capped::with_limit(b"[]".chain(fits), 1024)).is_ok());
    }
}
