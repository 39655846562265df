//! `nonstandard_protocol_sockets`: one row per (process, socket) using ICMP, UDP,
//! raw IP or SOCKS.

use super::{bigint, indexed, integer, text, Column, QueryContext, Row, TableDef, TableError};
use crate::classify;
use crate::model::{Pid, ProtocolSet, SocketQuery};
use crate::observe::{self, ObservedSocket};
use crate::platform::Host;
use crate::socks::SocksConfig;
use std::sync::Arc;

pub const NAME: &str = "nonstandard_protocol_sockets";

pub static COLUMNS: &[Column] = &[
    indexed(integer("pid", "Owning process id (INDEX: `pid =` reads only that process's fds)")),
    integer("fd", "File descriptor number in the owner"),
    bigint("socket", "Kernel socket id (inode on Linux)"),
    integer("family", "2 (IPv4) or 10 (IPv6), as osquery reports"),
    integer("protocol", "IP protocol number: 1, 58, 17, 136, 255, 0…; 6 for SOCKS over TCP"),
    text("protocol_name", "icmp, icmpv6, udp, udplite (from the IP protocol, whatever the socket type), raw (other protocols on raw sockets), socks"),
    text("socket_type", "dgram, raw or stream"),
    text("local_address", "Local address"),
    integer("local_port", "Local port (0 for raw sockets)"),
    text("remote_address", "Remote address (unspecified when not connected)"),
    integer("remote_port", "Remote port"),
    text("state", "TCP state, or bound / connected / unbound for datagram and raw sockets"),
    text("remote_scope", "loopback, private, link_local, multicast, public or unspecified"),
    text("reason", "Why the row is here, comma list: icmp_socket, udp_socket, raw_socket, socks_*"),
    text("path", "Owner's executable path"),
    text("net_namespace", "Linux network namespace inode (empty on macOS)"),
];

pub struct NonstandardProtocolSockets {
    host: Arc<dyn Host>,
    socks: SocksConfig,
}

impl NonstandardProtocolSockets {
    /// The table with the default SOCKS settings (default port list, no probe).
    pub fn new(host: Arc<dyn Host>) -> Self {
        Self::with_socks_config(host, SocksConfig::default())
    }

    /// The table with explicit SOCKS settings (port list, handshake probe).
    pub fn with_socks_config(host: Arc<dyn Host>, socks: SocksConfig) -> Self {
        NonstandardProtocolSockets { host, socks }
    }
}

/// The socket scan a query context asks for: `pid =` limits processes,
/// `protocol_name =` limits the socket tables read.
pub fn socket_query(ctx: &QueryContext) -> SocketQuery {
    let pids = ctx.equal_integers("pid").map(|list| {
        list.into_iter()
            .filter_map(|p| Pid::try_from(p).ok())
            .collect()
    });
    let protocols = match ctx.equal_texts("protocol_name") {
        Some(names) => classify::protocols_for_names(&names),
        // Every kind, TCP included: the SOCKS classifier turns TCP sockets with
        // SOCKS evidence into rows.
        None => ProtocolSet::ALL,
    };
    SocketQuery { pids, protocols }
}

impl TableDef for NonstandardProtocolSockets {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "One row per (process, socket) speaking ICMP, UDP, UDP-Lite, raw IP, or SOCKS over TCP — including the ICMP and raw sockets osquery's process_open_sockets cannot label."
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn generate(&self, ctx: &QueryContext) -> Result<Vec<Row>, TableError> {
        let host = self.host.as_ref();
        let mut observed = observe::observe_sockets(host, &self.socks, &socket_query(ctx));
        let mut rows = Vec::with_capacity(observed.sockets.len());
        for ObservedSocket { socket, class } in &observed.sockets {
            let path = observed
                .executables
                .entry(socket.pid)
                .or_insert_with(|| host.executable_path(socket.pid).unwrap_or_default())
                .clone();
            rows.push(vec![
                socket.pid.into(),
                socket.fd.into(),
                socket.socket.into(),
                socket.family.into(),
                socket.protocol.into(),
                class.protocol_name.into(),
                socket.socket_type.as_str().into(),
                socket.local_address.as_str().into(),
                socket.local_port.into(),
                socket.remote_address.as_str().into(),
                socket.remote_port.into(),
                class.state.clone().into(),
                class.remote_scope.into(),
                class.reason().into(),
                path.into(),
                socket.net_namespace.as_str().into(),
            ]);
        }
        let rows = cap_rows_per_process(rows);
        if observed.incomplete.is_empty() {
            Ok(rows)
        } else {
            Err(TableError::Partial {
                rows,
                reason: observed.incomplete.join("; "),
            })
        }
    }
}

/// Rows kept per process: one process holding thousands of sockets must not
/// multiply its (joined) cells into gigabytes of output.
pub const MAX_ROWS_PER_PROCESS: usize = 64;

/// Keeps the first [`MAX_ROWS_PER_PROCESS`] rows of each pid (rows arrive ordered
/// by pid, fd) and replaces the rest with one summary row per protocol_name: `fd`
/// -1, `socket` 0, `state` `omitted:<count>`, no endpoints, `remote_scope` the
/// widest of the omitted rows, `reason` every omitted reason plus `rows_omitted`.
/// A summary row joins its owner like any other row, so an untrusted owner stays
/// a hit (and a SOCKS server keeps its severity).
pub fn cap_rows_per_process(rows: Vec<Row>) -> Vec<Row> {
    use crate::tables::Value;
    let column = |name| super::column_index(COLUMNS, name).unwrap_or(0);
    let (pid, fd, socket, protocol_name) = (
        column("pid"),
        column("fd"),
        column("socket"),
        column("protocol_name"),
    );
    let (local_address, local_port, remote_address, remote_port) = (
        column("local_address"),
        column("local_port"),
        column("remote_address"),
        column("remote_port"),
    );
    let (state, remote_scope, reason) = (column("state"), column("remote_scope"), column("reason"));
    let text = |row: &Row, i: usize| match row.get(i) {
        Some(Value::Text(t)) => t.clone(),
        _ => String::new(),
    };
    let scope_rank = |scope: &str| match scope {
        "public" => 5,
        "multicast" => 4,
        "private" => 3,
        "link_local" => 2,
        "loopback" => 1,
        _ => 0,
    };
    let mut out = Vec::with_capacity(rows.len().min(4096));
    // Per current pid: rows kept, and the summaries being built (by protocol_name).
    let mut current: Option<Value> = None;
    let mut kept = 0usize;
    let mut summaries: Vec<(Row, usize, Vec<String>)> = Vec::new();
    let flush = |out: &mut Vec<Row>, summaries: &mut Vec<(Row, usize, Vec<String>)>| {
        for (mut row, count, reasons) in summaries.drain(..) {
            if let Some(cell) = row.get_mut(state) {
                *cell = format!("omitted:{count}").into();
            }
            if let Some(cell) = row.get_mut(reason) {
                *cell = reasons.join(",").into();
            }
            out.push(row);
        }
    };
    for row in rows {
        let owner = row.get(pid).cloned();
        if owner != current {
            flush(&mut out, &mut summaries);
            current = owner;
            kept = 0;
        }
        if kept < MAX_ROWS_PER_PROCESS {
            kept += 1;
            out.push(row);
            continue;
        }
        let name = text(&row, protocol_name);
        let reasons: Vec<String> = text(&row, reason)
            .split(',')
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect();
        let scope = text(&row, remote_scope);
        if let Some((summary, count, all)) = summaries
            .iter_mut()
            .find(|(r, _, _)| text(r, protocol_name) == name)
        {
            *count += 1;
            for r in reasons {
                if !all.contains(&r) {
                    all.insert(all.len() - 1, r);
                }
            }
            if scope_rank(&scope) > scope_rank(&text(summary, remote_scope)) {
                if let Some(cell) = summary.get_mut(remote_scope) {
                    *cell = scope.into();
                }
            }
            continue;
        }
        let mut summary = row;
        for (i, value) in [
            (fd, Value::Int(-1)),
            (socket, Value::Int(0)),
            (local_address, Value::from("")),
            (local_port, Value::Int(0)),
            (remote_address, Value::from("")),
            (remote_port, Value::Int(0)),
        ] {
            if let Some(cell) = summary.get_mut(i) {
                *cell = value;
            }
        }
        let mut all = reasons;
        all.push("rows_omitted".to_owned());
        summaries.push((summary, 1, all));
    }
    flush(&mut out, &mut summaries);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::FakeHost;

    fn fake() -> Arc<FakeHost> {
        Arc::new(crate::observe::tests::proxied_client())
    }

    fn reasons(rows: &[Row]) -> Vec<(i64, String)> {
        let fd = COLUMNS.iter().position(|c| c.name == "fd").unwrap();
        let reason = COLUMNS.iter().position(|c| c.name == "reason").unwrap();
        rows.iter()
            .map(|r| match (&r[fd], &r[reason]) {
                (crate::tables::Value::Int(fd), crate::tables::Value::Text(reason)) => {
                    (*fd, reason.clone())
                }
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn tcp_sockets_are_rows_only_with_socks_evidence() {
        let host = fake();
        let table = NonstandardProtocolSockets::new(host.clone());
        let all = table.generate(&QueryContext::new()).unwrap();
        assert_eq!(
            reasons(&all),
            [
                (3, "socks_server".to_string()),
                (3, "socks_local_proxy".to_string())
            ]
        );
        // `pid =` on the client still finds the proxy owned by another process.
        let client = table
            .generate(&QueryContext::new().with_equals("pid", "2"))
            .unwrap();
        assert_eq!(reasons(&client), [(3, "socks_local_proxy".to_string())]);
        // Datagram-only queries never scan TCP.
        host.socket_queries.lock().unwrap().clear();
        let udp = table
            .generate(&QueryContext::new().with_equals("protocol_name", "udp"))
            .unwrap();
        assert!(udp.is_empty());
        let queries = host.socket_queries.lock().unwrap();
        assert!(queries.iter().all(|q| !q.protocols.tcp), "{queries:?}");
    }
}

#[cfg(test)]
mod cap_tests {
    use super::*;
    use crate::tables::Value;

    fn row(pid: i64, fd: i64, protocol: &str, scope: &str, reason: &str) -> Row {
        let mut row: Row = COLUMNS
            .iter()
            .map(|c| match c.ty {
                crate::tables::ColumnType::Text => Value::from("x"),
                _ => Value::Int(7),
            })
            .collect();
        let mut set = |name, value: Value| {
            row[crate::tables::column_index(COLUMNS, name).unwrap()] = value;
        };
        set("pid", pid.into());
        set("fd", fd.into());
        set("protocol_name", protocol.into());
        set("remote_scope", scope.into());
        set("reason", reason.into());
        row
    }

    fn cell(row: &Row, name: &str) -> Value {
        row[crate::tables::column_index(COLUMNS, name).unwrap()].clone()
    }

    #[test]
    fn rows_past_the_cap_become_one_summary_row_per_protocol() {
        let mut rows = Vec::new();
        for fd in 0..(MAX_ROWS_PER_PROCESS as i64 + 100) {
            let scope = if fd == 150 { "public" } else { "private" };
            let protocol = if fd % 2 == 0 { "udp" } else { "icmp" };
            let reason = if protocol == "udp" {
                "udp_socket"
            } else {
                "icmp_socket"
            };
            rows.push(row(10, fd, protocol, scope, reason));
        }
        rows.push(row(11, 3, "udp", "loopback", "udp_socket"));
        let capped = cap_rows_per_process(rows);
        assert_eq!(capped.len(), MAX_ROWS_PER_PROCESS + 2 + 1);
        let summaries: Vec<&Row> = capped
            .iter()
            .filter(|r| cell(r, "fd") == Value::Int(-1))
            .collect();
        assert_eq!(summaries.len(), 2);
        let udp = summaries
            .iter()
            .find(|r| cell(r, "protocol_name") == Value::from("udp"))
            .unwrap();
        assert_eq!(cell(udp, "state"), Value::from("omitted:50"));
        assert_eq!(cell(udp, "reason"), Value::from("udp_socket,rows_omitted"));
        assert_eq!(cell(udp, "pid"), Value::Int(10));
        assert_eq!(cell(udp, "remote_scope"), Value::from("public"));
        assert_eq!(cell(udp, "remote_address"), Value::from(""));
        let icmp = summaries
            .iter()
            .find(|r| cell(r, "protocol_name") == Value::from("icmp"))
            .unwrap();
        assert_eq!(cell(icmp, "state"), Value::from("omitted:50"));
        assert_eq!(cell(icmp, "remote_scope"), Value::from("private"));
        // The next process keeps its own rows.
        assert_eq!(cell(capped.last().unwrap(), "pid"), Value::Int(11));
        assert_eq!(cell(capped.last().unwrap(), "fd"), Value::Int(3));
    }

    #[test]
    fn rows_within_the_cap_are_untouched() {
        let rows: Vec<Row> = (0..MAX_ROWS_PER_PROCESS as i64)
            .map(|fd| row(10, fd, "udp", "public", "udp_socket"))
            .collect();
        assert_eq!(cap_rows_per_process(rows.clone()), rows);
    }
}
