//! `an1256_observations`: what the sampler saw (one row per subject identity,
//! protocol, remote port, scope and address), so sockets that opened and closed
//! between two scheduled queries are still caught (`an1256_hits_recent`).

use super::{Column, Example, QueryContext, Table, TableError, TypedRow};
use crate::baseline::Baseline;
use std::sync::Arc;

pub const NAME: &str = "an1256_observations";

super::table_row! {
    /// One row of `an1256_observations`.
    pub struct ObservationRow, cells ObservationCells {
        identity: TEXT [index] = "Subject identity (process_code_signature.subject_identity)",
        protocol_name: TEXT = "icmp, icmpv6, udp, udplite, raw or socks",
        remote_port: INTEGER = "Remote port (0 when not connected)",
        remote_scope: TEXT = "loopback, private, link_local, multicast, public or unspecified",
        remote_address: TEXT = "Remote address (each remote the subject talks to is a row of its own)",
        pid: BIGINT = "Process of this appearance's first sighting (an appearance ends after 180 s unseen)",
        path: TEXT = "Subject path (the script for interpreters)",
        exe_path: TEXT = "Executable path of that process",
        interpreter: TEXT = "Interpreter name for script subjects",
        subject_kind: TEXT = "binary or script",
        subject_trusted: INTEGER = "1 if the subject was trusted when seen",
        first_seen: BIGINT = "Unix time first seen",
        last_seen: BIGINT = "Unix time last seen",
        count: BIGINT = "Sampler passes that saw it",
        socket_type: TEXT = "dgram, raw or stream (this appearance's first socket)",
        script_kind: TEXT = "file, inline, stdin, module or interactive for script subjects' processes; empty otherwise",
        script_quarantined: INTEGER = "1 if the script carried com.apple.quarantine (macOS; 0 on Linux)",
        reason: TEXT = "Why the socket was non-standard, as nonstandard_protocol_sockets.reason",
        start_time: BIGINT = "Start time (Unix seconds) of the process `pid`; 0 if recorded before an1256 kept it",
    }
}

pub const COLUMNS: &[Column] = <ObservationRow as TypedRow>::COLUMNS;

pub struct An1256Observations {
    baseline: Arc<Baseline>,
}

impl An1256Observations {
    pub fn new(baseline: Arc<Baseline>) -> Self {
        An1256Observations { baseline }
    }
}

impl Table for An1256Observations {
    type Row = ObservationRow;
    const NAME: &'static str = NAME;
    const DESCRIPTION: &'static str =
        "What the an1256 sampler saw: non-standard sockets by subject identity, protocol, remote port, scope and address, with first/last seen (bounded by age and row count).";
    const EXAMPLES: &'static [Example] = &[
        Example {
            title: "Untrusted subjects the sampler saw, latest first",
            sql: "SELECT identity, protocol_name, remote_port, remote_scope, first_seen, last_seen, count FROM an1256_observations WHERE subject_trusted = 0 ORDER BY last_seen DESC;",
        },
    ];

    fn rows(&self, ctx: &QueryContext) -> Result<Vec<ObservationRow>, TableError> {
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
                ObservationRow {
                    identity: o.identity,
                    protocol_name: o.protocol_name,
                    remote_port: o.remote_port,
                    remote_scope: o.remote_scope,
                    remote_address: o.remote_address,
                    pid: o.pid,
                    path: o.path,
                    exe_path: o.exe_path,
                    interpreter: o.interpreter,
                    subject_kind: o.subject_kind,
                    subject_trusted: o.subject_trusted.into(),
                    first_seen: r.first_seen,
                    last_seen: r.last_seen,
                    count: r.count,
                    socket_type: o.socket_type,
                    script_kind: o.script_kind,
                    script_quarantined: o.script_quarantined.into(),
                    reason: o.reason,
                    start_time: o.start_time,
                }
            })
            .collect())
    }
}
