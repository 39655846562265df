//! `an1256_observations`: what the sampler saw (one row per subject identity,
//! protocol, remote port and scope), so sockets that opened and closed between
//! two scheduled queries are still caught (`an1256_hits_recent`).

use super::{bigint, indexed, integer, text, Column, QueryContext, Row, TableDef, TableError};
use crate::baseline::Baseline;
use std::sync::Arc;

pub const NAME: &str = "an1256_observations";

pub static COLUMNS: &[Column] = &[
    indexed(text(
        "identity",
        "Subject identity (process_code_signature.subject_identity)",
    )),
    text("protocol_name", "icmp, icmpv6, udp, udplite, raw or socks"),
    integer("remote_port", "Remote port (0 when not connected)"),
    text(
        "remote_scope",
        "loopback, private, link_local, multicast, public or unspecified",
    ),
    text("remote_address", "Remote address of this appearance's first sighting (an appearance ends after 180 s unseen)"),
    bigint("pid", "Process of this appearance's first sighting"),
    text("path", "Subject path (the script for interpreters)"),
    text("exe_path", "Executable path of that process"),
    text("interpreter", "Interpreter name for script subjects"),
    text("subject_kind", "binary or script"),
    integer("subject_trusted", "1 if the subject was trusted when seen"),
    bigint("first_seen", "Unix time first seen"),
    bigint("last_seen", "Unix time last seen"),
    bigint("count", "Sampler passes that saw it"),
    text("socket_type", "dgram, raw or stream (this appearance's first socket)"),
    text("script_kind", "file, inline, stdin, module or interactive for script subjects' processes; empty otherwise"),
    integer("script_quarantined", "1 if the script carried com.apple.quarantine (macOS; 0 on Linux)"),
    text("reason", "Why the socket was non-standard, as nonstandard_protocol_sockets.reason"),
    bigint("start_time", "Start time (Unix seconds) of the process `pid`; 0 if recorded before an1256 kept it"),
];

pub struct An1256Observations {
    baseline: Arc<Baseline>,
}

impl An1256Observations {
    pub fn new(baseline: Arc<Baseline>) -> Self {
        An1256Observations { baseline }
    }
}

impl TableDef for An1256Observations {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "What the an1256 sampler saw: non-standard sockets by subject identity, protocol, remote port and scope, with first/last seen (bounded by age and row count)."
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn generate(&self, ctx: &QueryContext) -> Result<Vec<Row>, TableError> {
        // Without the store there is nothing to show, but the query (the pack's
        // hit query reads first_seen here) goes on: an1256_info says why.
        let Ok(store) = self.baseline.store() else {
            return Ok(Vec::new());
        };
        let identities = ctx.equal_texts("identity");
        let rows = match store.observations(identities.as_deref()) {
            Ok(rows) => rows,
            Err(e) => {
                self.baseline.store_trouble(&e);
                return Ok(Vec::new());
            }
        };
        Ok(rows
            .into_iter()
            .map(|r| {
                let o = r.observation;
                vec![
                    o.identity.into(),
                    o.protocol_name.into(),
                    o.remote_port.into(),
                    o.remote_scope.into(),
                    o.remote_address.into(),
                    o.pid.into(),
                    o.path.into(),
                    o.exe_path.into(),
                    o.interpreter.into(),
                    o.subject_kind.into(),
                    o.subject_trusted.into(),
                    r.first_seen.into(),
                    r.last_seen.into(),
                    r.count.into(),
                    o.socket_type.into(),
                    o.script_kind.into(),
                    o.script_quarantined.into(),
                    o.reason.into(),
                    o.start_time.into(),
                ]
            })
            .collect())
    }
}
