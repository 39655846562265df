//! THE observation pipeline: socket query -> socket scan -> SOCKS reasons ->
//! classification -> judged owner. The socket table, the sampler and
//! `baseline approve --pid` all see a host through these two functions, so what
//! one reports the others record and approve.

use crate::judge::classify::{self, Classification};
use crate::judge::socks::{self, SocksConfig};
use crate::judge::subject::{self, ProcessVerdict};
use crate::model::{Pid, ScannedHolders, SocketInfo, SocketQuery};
use crate::platform::{self, Host};
use std::collections::HashMap;

/// One socket that is AN1256's business, with why.
#[derive(Clone, Debug)]
pub struct ObservedSocket {
    pub socket: SocketInfo,
    pub class: Classification,
}

/// The classified sockets of one scan and what the scan could not read.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub sockets: Vec<ObservedSocket>,
    /// Sockets the backend listed, before classification (plain TCP included).
    pub scanned: usize,
    /// Processes the scan skipped (vanished or unreadable).
    pub skipped_processes: usize,
    /// What went wrong, for logs (bounded by the backend).
    pub errors: Vec<String>,
    /// Executable paths the backend read during the walk (see `SocketScan`).
    pub executables: HashMap<Pid, String>,
    /// Why sockets may be missing (see `SocketScan::incomplete`): never complete.
    pub incomplete: Vec<String>,
}

/// Scans the sockets `query` names and keeps those with a reason to be a row:
/// ICMP, UDP, UDP-Lite, raw, or TCP with SOCKS evidence. A `pid =` scan that
/// includes TCP still looks at the whole host's TCP sockets when a client's proxy
/// may belong to another process.
pub fn observe_sockets(host: &dyn Host, socks: &SocksConfig, query: &SocketQuery) -> Observed {
    if query.protocols.is_empty() || query.pids.as_ref().is_some_and(Vec::is_empty) {
        return Observed::default();
    }
    let mut scan = host.sockets(query);
    if scan.skipped_processes > 0 {
        log::debug!("socket scan skipped {} processes", scan.skipped_processes);
    }
    let socks_reasons = if query.protocols.tcp {
        let whole_host_tcp = || host.host_tcp_sockets();
        let whole_host_tcp: Option<&dyn Fn() -> Vec<SocketInfo>> = match query.pids {
            Some(_) => Some(&whole_host_tcp),
            None => None,
        };
        socks::socks_reasons_with_tables(
            host,
            socks,
            &scan.sockets,
            whole_host_tcp,
            &scan.namespace_tcp,
            &scan.executables,
            ScannedHolders {
                environments: std::mem::take(&mut scan.environments),
                socks_libraries: std::mem::take(&mut scan.socks_libraries),
            },
        )
    } else {
        HashMap::new()
    };
    let scanned = scan.sockets.len();
    let sockets = scan
        .sockets
        .into_iter()
        .filter_map(|socket| {
            let reasons = socks_reasons
                .get(&socks::socket_key(&socket))
                .map(Vec::as_slice)
                .unwrap_or_default();
            let class = classify::classify(&socket, reasons)?;
            Some(ObservedSocket { socket, class })
        })
        .collect();
    let sockets = cap_per_process(sockets);
    Observed {
        sockets,
        scanned,
        skipped_processes: scan.skipped_processes,
        errors: scan.errors,
        executables: scan.executables,
        incomplete: scan.incomplete,
    }
}

/// Judges the process that owns a socket: its executable, the script it runs and
/// the subject AN1256 keys the baseline by. `Ok(None)` when it exited.
pub fn judge_owner(
    host: &dyn Host,
    pid: Pid,
) -> Result<Option<ProcessVerdict>, platform::HostError> {
    let process = platform::read_processes(host, Some(&[pid]))?.pop();
    Ok(process.map(|p| subject::evaluate(host, p)))
}

/// Owners judged once per pass, however many sockets they hold.
#[derive(Default)]
pub struct Owners {
    verdicts: HashMap<Pid, Option<ProcessVerdict>>,
}

impl Owners {
    /// The owner's verdict (judged on first use); `None` when it exited or could
    /// not be read.
    pub fn judge(&mut self, host: &dyn Host, pid: Pid) -> Option<&ProcessVerdict> {
        self.verdicts
            .entry(pid)
            .or_insert_with(|| judge_owner(host, pid).ok().flatten())
            .as_ref()
    }

    /// Owners judged, and owners that could not be.
    pub fn counts(&self) -> (usize, usize) {
        let judged = self.verdicts.values().filter(|v| v.is_some()).count();
        (judged, self.verdicts.len() - judged)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::fixtures::{process, tcp};
    use crate::model::ProtocolSet;
    use crate::platform::FakeHost;

    /// A client (pid 2) connected to a SOCKS server (pid 1) it does not own, and
    /// to a web server (no SOCKS signal).
    pub(crate) fn proxied_client() -> FakeHost {
        FakeHost {
            processes: vec![
                process(1, "/usr/bin/microsocks", &["/usr/bin/microsocks"]),
                process(2, "/usr/bin/curl", &["/usr/bin/curl"]),
            ],
            sockets: vec![
                tcp(1, 3, ("127.0.0.1", 40000), ("0.0.0.0", 0), "LISTEN"),
                tcp(
                    2,
                    3,
                    ("127.0.0.1", 50000),
                    ("127.0.0.1", 40000),
                    "ESTABLISHED",
                ),
                tcp(
                    2,
                    4,
                    ("127.0.0.1", 50001),
                    ("93.184.216.34", 443),
                    "ESTABLISHED",
                ),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn a_pid_scan_sees_its_proxy_in_another_process() {
        let host = proxied_client();
        let query = SocketQuery {
            pids: Some(vec![2]),
            protocols: ProtocolSet::ALL,
        };
        let observed = observe_sockets(&host, &SocksConfig::default(), &query);
        let names: Vec<_> = observed
            .sockets
            .iter()
            .map(|o| (o.socket.pid, o.class.protocol_name, o.class.reason()))
            .collect();
        assert_eq!(names, [(2, "socks", "socks_local_proxy".to_string())]);
        let queries = host.socket_queries.lock().unwrap();
        assert_eq!(queries.len(), 2, "the pid scan, then whole-host TCP");
        assert_eq!(queries[1].pids, None);
    }

    /// A client of its own listener (a worker talking to itself over loopback):
    /// the namespace's socket table shows no other listener it can reach, so the
    /// `pid =` scan walks no other process; the result is the full scan's.
    #[test]
    fn a_pid_scan_reaching_only_its_own_listener_walks_no_other_process() {
        let mut host = proxied_client();
        // pid 2 no longer talks to pid 1's server, only to itself and the web.
        host.sockets.retain(|s| !(s.pid == 2 && s.fd == 3));
        host.sockets
            .push(tcp(2, 5, ("127.0.0.1", 1080), ("0.0.0.0", 0), "LISTEN"));
        host.sockets.push(tcp(
            2,
            6,
            ("127.0.0.1", 50002),
            ("127.0.0.1", 1080),
            "ESTABLISHED",
        ));
        let by_pid = SocketQuery {
            pids: Some(vec![2]),
            protocols: ProtocolSet::ALL,
        };
        let rows = |observed: Observed| -> Vec<(i64, String)> {
            observed
                .sockets
                .iter()
                .filter(|o| o.socket.pid == 2)
                .map(|o| (o.socket.fd, o.class.reason()))
                .collect()
        };
        let pid_rows = rows(observe_sockets(&host, &SocksConfig::default(), &by_pid));
        assert_eq!(
            host.socket_queries.lock().unwrap().len(),
            1,
            "no whole-host walk"
        );
        let full = SocketQuery {
            pids: None,
            protocols: ProtocolSet::ALL,
        };
        let full_rows = rows(observe_sockets(&host, &SocksConfig::default(), &full));
        assert_eq!(pid_rows, full_rows);
        assert_eq!(
            pid_rows,
            [
                (5, "socks_port,socks_server".to_string()),
                (6, "socks_port".to_string())
            ]
        );
    }

    #[test]
    fn empty_queries_scan_nothing_and_owners_are_judged_once() {
        let host = proxied_client();
        for query in [
            SocketQuery {
                pids: Some(vec![]),
                protocols: ProtocolSet::ALL,
            },
            SocketQuery {
                pids: None,
                protocols: ProtocolSet::NONE,
            },
        ] {
            assert!(observe_sockets(&host, &SocksConfig::default(), &query)
                .sockets
                .is_empty());
        }
        assert!(host.socket_queries.lock().unwrap().is_empty());
        let mut owners = Owners::default();
        for _ in 0..3 {
            let verdict = owners.judge(&host, 2).unwrap();
            assert_eq!(verdict.subject.path, "/usr/bin/curl");
        }
        assert!(owners.judge(&host, 99).is_none());
        assert_eq!(owners.counts(), (1, 1));
        assert_eq!(host.process_calls.lock().unwrap().as_slice(), &[2, 99]);
    }
}

/// Sockets kept per process: one process holding thousands of sockets must not
/// multiply the work of every consumer (rows, joins, observations recorded).
pub const MAX_SOCKETS_PER_PROCESS: usize = 64;

/// Keeps the first [`MAX_SOCKETS_PER_PROCESS`] sockets of each pid and replaces the
/// rest with one summary per (pid, protocol_name): `fd` -1, `socket` 0, no
/// endpoints, state `omitted:<count>`, the widest `remote_scope` of the omitted
/// ones, and their reasons plus `rows_omitted`. A summary joins its owner like any
/// socket, so an untrusted owner stays a hit (and a SOCKS server keeps its
/// severity).
pub fn cap_per_process(sockets: Vec<ObservedSocket>) -> Vec<ObservedSocket> {
    fn scope_rank(scope: &str) -> u8 {
        match scope {
            "public" => 5,
            "multicast" => 4,
            "private" => 3,
            "link_local" => 2,
            "loopback" => 1,
            _ => 0,
        }
    }
    let mut kept_per_pid: HashMap<Pid, usize> = HashMap::new();
    let mut out = Vec::with_capacity(sockets.len().min(4096));
    let mut summaries: Vec<(ObservedSocket, usize)> = Vec::new();
    for observed in sockets {
        let kept = kept_per_pid.entry(observed.socket.pid).or_default();
        if *kept < MAX_SOCKETS_PER_PROCESS {
            *kept += 1;
            out.push(observed);
            continue;
        }
        let ObservedSocket { socket, class } = observed;
        if let Some((summary, count)) = summaries.iter_mut().find(|(s, _)| {
            s.socket.pid == socket.pid && s.class.protocol_name == class.protocol_name
        }) {
            *count += 1;
            for reason in class.reasons {
                if !summary.class.reasons.contains(&reason) {
                    let at = summary.class.reasons.len().saturating_sub(1);
                    summary.class.reasons.insert(at, reason);
                }
            }
            if scope_rank(class.remote_scope) > scope_rank(summary.class.remote_scope) {
                summary.class.remote_scope = class.remote_scope;
            }
            continue;
        }
        let mut class = class;
        class.reasons.push("rows_omitted");
        let unspecified = String::new();
        let socket = SocketInfo {
            fd: -1,
            socket: 0,
            local_address: unspecified.clone(),
            local_port: 0,
            remote_address: unspecified,
            remote_port: 0,
            ..socket
        };
        summaries.push((ObservedSocket { socket, class }, 1));
    }
    if summaries.is_empty() {
        return out;
    }
    for (mut summary, count) in summaries {
        summary.class.state = format!("omitted:{count}");
        out.push(summary);
    }
    // Each summary right after its owner's sockets (stable: fd order kept).
    out.sort_by_key(|o| o.socket.pid);
    out
}

#[cfg(test)]
mod cap_tests {
    use super::*;
    use crate::model::SocketType;

    fn observed(pid: Pid, fd: i64, protocol: i32, remote: &str) -> ObservedSocket {
        let socket = SocketInfo {
            pid,
            fd,
            socket: 1000 + fd as u64,
            family: 2,
            protocol,
            socket_type: SocketType::Dgram,
            local_address: "10.0.0.1".into(),
            local_port: 4000,
            remote_address: remote.into(),
            remote_port: 53,
            tcp_state: String::new(),
            net_namespace: "ns".into(),
        };
        let class = classify::classify(&socket, &[]).unwrap();
        ObservedSocket { socket, class }
    }

    #[test]
    fn sockets_past_the_cap_become_one_summary_per_protocol() {
        let mut sockets = Vec::new();
        for fd in 0..(MAX_SOCKETS_PER_PROCESS as i64 + 100) {
            let remote = if fd == 150 { "192.0.2.1" } else { "10.0.0.2" };
            let protocol = if fd % 2 == 0 { 17 } else { 1 };
            sockets.push(observed(10, fd, protocol, remote));
        }
        sockets.push(observed(11, 3, 17, "127.0.0.1"));
        let capped = cap_per_process(sockets);
        assert_eq!(capped.len(), MAX_SOCKETS_PER_PROCESS + 2 + 1);
        let summaries: Vec<&ObservedSocket> = capped.iter().filter(|o| o.socket.fd == -1).collect();
        assert_eq!(summaries.len(), 2);
        let udp = summaries
            .iter()
            .find(|o| o.class.protocol_name == "udp")
            .unwrap();
        assert_eq!(udp.socket.pid, 10);
        assert_eq!(udp.class.state, "omitted:50");
        assert_eq!(udp.class.reason(), "udp_socket,rows_omitted");
        assert_eq!(udp.class.remote_scope, "public");
        assert_eq!(
            (udp.socket.remote_address.as_str(), udp.socket.remote_port),
            ("", 0)
        );
        let icmp = summaries
            .iter()
            .find(|o| o.class.protocol_name == "icmp")
            .unwrap();
        assert_eq!(icmp.class.state, "omitted:50");
        assert_eq!(icmp.class.remote_scope, "private");
        // The next process keeps its own socket, after pid 10's summaries.
        let last = capped.last().unwrap();
        assert_eq!((last.socket.pid, last.socket.fd), (11, 3));
    }

    #[test]
    fn sockets_within_the_cap_are_untouched() {
        let sockets: Vec<ObservedSocket> = (0..MAX_SOCKETS_PER_PROCESS as i64)
            .map(|fd| observed(10, fd, 17, "192.0.2.1"))
            .collect();
        let capped = cap_per_process(sockets);
        assert_eq!(capped.len(), MAX_SOCKETS_PER_PROCESS);
        assert!(capped.iter().all(|o| o.socket.fd >= 0));
    }
}
