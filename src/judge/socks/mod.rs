//! The SOCKS classifier. SOCKS is not a socket protocol: it is inferred, per TCP
//! socket, from evidence gathered without executing anything:
//!
//! | reason | evidence |
//! |---|---|
//! | `socks_port` | the remote port is in the SOCKS port list ([`DEFAULT_SOCKS_PORTS`], configurable) |
//! | `socks_env_proxy` | the owner's environment names a `socks4/4a/5/5h://host:port` proxy in `ALL_PROXY`, `all_proxy`, `socks_proxy`, `SOCKS_PROXY`, `https_proxy`, `HTTPS_PROXY`, `http_proxy` or `HTTP_PROXY`, and the connection goes to that endpoint (names other than `localhost` are never resolved: they match by port, see [`proxy`]) |
//! | `socks_env_truncated` | the owner's environment was cut at the read limit, withheld by the kernel (macOS `CS_RESTRICT`), or not readable whole (Linux: a page unmapped or made unreadable), or its proxy variables were past the scan's budget for kept ones (Linux: 4 MiB per user, 16 MiB in all, per scan worker): `socks_env_proxy` cannot be ruled out, so the connection is reported |
//! | `socks_system_proxy` | the connection goes to the macOS system SOCKS proxy |
//! | `socks_local_proxy` | the remote end is a listener in the same network namespace owned by a known SOCKS server on a SOCKS port ([`servers`]: `ssh -D`, tor, microsocks, danted, 3proxy, gost, chisel, redsocks), or one of the proxychains-wrapped client's own configured SOCKS proxies ([`proxychains`]) |
//! | `socks_preload` | libproxychains / libtorsocks / libtsocks is mapped in the process, or `LD_PRELOAD` / `DYLD_INSERT_LIBRARIES` names it |
//! | `socks_preload_unknown` | the owner's mapped files could not be read whole (over the read limit, or unreadable for a reason other than its exit or a non-root scanner): `socks_preload` cannot be ruled out, so the connection is reported |
//! | `socks_handshake` | (opt-in) the loopback listener at the remote end answered a SOCKS5 greeting |
//! | `socks_server` | on a LISTEN socket: its port is in the SOCKS port list (with `socks_port`), the owner is a known SOCKS server on that port, a local client reaches it as its SOCKS proxy by its proxy environment or its proxychains config (full scans), or the listener answered the SOCKS5 greeting |
//!
//! Reasons are listed in that order. A client socket needs at least one of the
//! reasons above `socks_handshake` (the probe only confirms candidates); a TCP socket without any
//! reason is not a row. Listening sockets only ever get `socks_handshake` and
//! `socks_server`; accepted server-side connections get nothing.
//!
//! The handshake probe is off by default. When enabled it is sent only to
//! loopback listeners in the scanner's own network namespace that are already
//! candidates (known server, SOCKS port, or the target of a client with another
//! SOCKS reason), at most [`SocksConfig::max_probes`] per scan, each step bounded
//! by [`SocksConfig::probe_timeout`].

mod config_files;
pub mod probe;
pub mod proxy;
pub mod proxychains;
pub mod servers;
pub mod ssh;

use crate::model::{
    sets_one_of, Pid, ProcessInfo, ScannedEnvironment, ScannedHolders, SocketInfo, SocketType,
    IPPROTO_TCP, SOCKS_ENVIRONMENT_VARIABLES,
};
use crate::platform::{Host, HostError};
use config_files::{read_config, SshConfigReader};
use probe::{probe_socks5, ProbeOutcome};
use proxy::{endpoint_matches, ProxyEndpoint};
use servers::{known_server, may_be_known_server, KnownServer};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Remote ports that mark a connection as SOCKS: the SOCKS default (1080) and its
/// neighbours, tor (9050, 9150), Clash (7890, 7891), v2ray (10808, 10809), sing-box (2080).
pub const DEFAULT_SOCKS_PORTS: [u16; 11] = [
    1080, 1081, 1085, 1086, 9050, 9150, 7890, 7891, 10808, 10809, 2080,
];

/// The SOCKS signals, as markdown, for the README (same content as this module's doc).
pub const SIGNALS_TABLE_MARKDOWN: &str = "\
| reason | evidence |
|---|---|
| `socks_port` | the remote port is in the SOCKS port list (default 1080, 1081, 1085, 1086, 9050, 9150, 7890, 7891, 10808, 10809, 2080; configurable) |
| `socks_env_proxy` | the owner's environment sets `ALL_PROXY`, `all_proxy`, `socks_proxy`, `SOCKS_PROXY`, `https_proxy`, `HTTPS_PROXY`, `http_proxy` or `HTTP_PROXY` to `socks4://`, `socks4a://`, `socks5://` or `socks5h://[user@]host:port` and the connection goes to that endpoint. IP literals are compared as addresses, `localhost` means any loopback address, other names are never resolved and match by port |
| `socks_env_truncated` | the owner's environment is longer than the 1 MiB read limit and was cut, or the kernel withholds it (macOS `CS_RESTRICT` processes, even from root), or a page of it could not be read (Linux: the process unmapped it or made it unreadable, so `/proc/<pid>/environ` gives less than the area `stat` names), or its proxy variables came past the scan's budget for kept ones (Linux: 4 MiB per user and 16 MiB in all per scan worker, against many processes with huge proxy variables), so a proxy variable may be in the part not read: the `socks_env_proxy` signal is unknown, and any TCP connection of that process is reported rather than judged clean |
| `socks_system_proxy` | the connection goes to the macOS system SOCKS proxy (network settings) |
| `socks_local_proxy` | the remote end is a listener in the same network namespace owned by a known SOCKS server, on its SOCKS port: `ssh -D` / `-o DynamicForward` / `DynamicForward` in its ssh_config, tor, microsocks, danted/sockd, 3proxy, gost (`-L socks5://…`), chisel client `socks` remotes, redsocks — recognised by the executable's name (`/proc/<pid>/exe`, never argv[0]) and the program's argv grammar, never by running anything. Also: a proxychains-wrapped client (`socks_preload`) connected to a local listener that its own proxychains config (`PROXYCHAINS_CONF_FILE`, `./proxychains.conf`, `~/.proxychains/proxychains.conf`, `/etc/proxychains4.conf`, `/etc/proxychains.conf`) lists as a `socks4`/`socks5` proxy, whatever program owns the listener |
| `socks_preload` | libproxychains, libtorsocks or libtsocks is mapped in the process, or `LD_PRELOAD` / `DYLD_INSERT_LIBRARIES` names it |
| `socks_preload_unknown` | the owner's mapped files could not be read whole (the `maps` fallback is longer than its 16 MiB read limit, or the read failed for a reason other than the process's exit or a non-root scanner), and its environment names no SOCKS preload: `socks_preload` cannot be ruled out, so any TCP connection of that process is reported rather than judged clean |
| `socks_handshake` | opt-in: the loopback listener answered the SOCKS5 greeting `05 01 00` with `05 xx`. Sent only to loopback listeners in the scanner's network namespace that are already candidates, at most 16 per scan, each step bounded (300 ms by default); never to another address |
| `socks_server` | on a LISTEN socket: its port is in the SOCKS port list (then with `socks_port`, whatever program owns it), the owner is a known SOCKS server on that port, a local client reaches it as its SOCKS proxy by its proxy environment (`socks_env_proxy`) or as one of its proxychains-configured SOCKS proxies (seen by full scans: a `pid =` query of the server alone does not look at other processes' clients), or the listener answered the handshake probe |
";

pub const REASON_PORT: &str = "socks_port";
pub const REASON_ENV_PROXY: &str = "socks_env_proxy";
pub const REASON_ENV_TRUNCATED: &str = "socks_env_truncated";
pub const REASON_SYSTEM_PROXY: &str = "socks_system_proxy";
pub const REASON_LOCAL_PROXY: &str = "socks_local_proxy";
pub const REASON_PRELOAD: &str = "socks_preload";
pub const REASON_PRELOAD_UNKNOWN: &str = "socks_preload_unknown";
/// Whether a SOCKS library is preloaded into a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Preload {
    Yes,
    No,
    /// Its mapped files could not be read whole.
    Unknown,
}

pub const REASON_HANDSHAKE: &str = "socks_handshake";
pub const REASON_SERVER: &str = "socks_server";

pub use config_files::{ssh_config_providers, MAX_SSH_CONFIG_BYTES};

/// How the SOCKS classifier behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocksConfig {
    /// Remote ports that give `socks_port`.
    pub ports: Vec<u16>,
    /// Send the SOCKS5 greeting to loopback candidates (off by default).
    pub handshake_probe: bool,
    /// Bound on each step (connect, write, read) of one probe.
    pub probe_timeout: Duration,
    /// Most probes sent in one scan.
    pub max_probes: usize,
}

impl Default for SocksConfig {
    fn default() -> Self {
        SocksConfig {
            ports: DEFAULT_SOCKS_PORTS.to_vec(),
            handshake_probe: false,
            probe_timeout: probe::DEFAULT_PROBE_TIMEOUT,
            max_probes: 16,
        }
    }
}

/// Identifies one socket of one holder.
pub type SocketKey = (Pid, i64, u64);

/// The key of a socket in the map [`socks_reasons`] returns.
pub fn socket_key(socket: &SocketInfo) -> SocketKey {
    (socket.pid, socket.fd, socket.socket)
}

fn is_tcp(socket: &SocketInfo) -> bool {
    socket.protocol == IPPROTO_TCP && socket.socket_type == SocketType::Stream
}

fn is_listener(socket: &SocketInfo) -> bool {
    socket.tcp_state == "LISTEN"
}

fn parse_ip(address: &str) -> Option<IpAddr> {
    address.parse::<IpAddr>().ok().map(proxy::canonical_ip)
}

/// One scan's worth of SOCKS judgement, with per-process caches.
struct Classifier<'a> {
    host: &'a dyn Host,
    config: &'a SocksConfig,
    processes: HashMap<Pid, Option<ProcessInfo>>,
    servers: HashMap<Pid, Option<KnownServer>>,
    environments: HashMap<Pid, Vec<String>>,
    /// Environments the socket scan read (`SocketScan::environments`), taken
    /// on first use.
    scanned_environments: HashMap<Pid, ScannedEnvironment>,
    environment_proxies: HashMap<Pid, Vec<ProxyEndpoint>>,
    /// Processes whose environment was cut at the read limit.
    truncated_environments: HashSet<Pid>,
    preloads: HashMap<Pid, Preload>,
    /// Whether each holder maps a SOCKS library, as the socket scan's kernel
    /// pass saw it (`SocketScan::socks_libraries`); a missing pid is walked.
    scanned_libraries: HashMap<Pid, bool>,
    /// What the client loop asks of each process, gathered once (one lookup
    /// per connection: a busy process holds thousands).
    client_facts: HashMap<Pid, ClientFacts>,
    /// Executable paths the socket scan read through the directory that named
    /// each holder's fds (`SocketScan::executables`).
    executables: &'a HashMap<Pid, String>,
    proxychains: HashMap<Pid, Vec<ProxyEndpoint>>,
    system_proxy: Option<Option<ProxyEndpoint>>,
    own_namespace: Option<String>,
    probes: HashMap<SocketAddr, ProbeOutcome>,
}

/// A process's SOCKS facts every one of its connections is judged by.
struct ClientFacts {
    proxies: Vec<ProxyEndpoint>,
    environment_truncated: bool,
    preload: Preload,
}

impl<'a> Classifier<'a> {
    /// For one connection: whether it goes to a proxy its owner's environment
    /// names, whether that environment was cut, and its owner's preload.
    fn client_signals(&mut self, client: &SocketInfo) -> (bool, bool, Preload) {
        let signals = |facts: &ClientFacts| {
            (
                facts
                    .proxies
                    .iter()
                    .any(|p| endpoint_matches(p, &client.remote_address, client.remote_port)),
                facts.environment_truncated,
                facts.preload,
            )
        };
        if let Some(facts) = self.client_facts.get(&client.pid) {
            return signals(facts);
        }
        let facts = ClientFacts {
            proxies: self.environment_proxies(client.pid).to_vec(),
            environment_truncated: self.environment_truncated(client.pid),
            preload: self.preloads_socks(client.pid),
        };
        let found = signals(&facts);
        self.client_facts.insert(client.pid, facts);
        found
    }

    fn process(&mut self, pid: Pid) -> Option<&ProcessInfo> {
        let host = self.host;
        self.processes
            .entry(pid)
            .or_insert_with(|| host.process(pid).ok())
            .as_ref()
    }

    fn server(&mut self, pid: Pid) -> Option<KnownServer> {
        if let Some(known) = self.servers.get(&pid) {
            return known.clone();
        }
        let host = self.host;
        // Most listeners belong to ordinary daemons: path and argv rule them out
        // without the full process read (unless this scan already did it).
        // The executable's name alone decides (the scan's read of it, else one
        // readlink); argv is read only for the few that may be servers.
        let by_path = |path: String| {
            may_be_known_server(&ProcessInfo {
                pid,
                path,
                ..Default::default()
            })
        };
        let candidate = match (self.processes.get(&pid), self.executables.get(&pid)) {
            (Some(read), _) => read.as_ref().is_some_and(may_be_known_server),
            (None, Some(path)) => by_path(path.clone()),
            (None, None) => host.executable_path(pid).is_ok_and(by_path),
        };
        if !candidate {
            self.servers.insert(pid, None);
            return None;
        }
        let known = self.process(pid).cloned().and_then(|process| {
            known_server(&process, |args| {
                let home = host.home_directory(process.uid);
                let mut reader = SshConfigReader::new(
                    host,
                    &process,
                    home.as_deref(),
                    args.destination.as_deref(),
                );
                reader.read_all(args);
                reader.ports
            })
        });
        self.servers.insert(pid, known.clone());
        known
    }

    /// The environment of `pid`: the scan's read, else the host's.
    fn environment(&mut self, pid: Pid) -> &[String] {
        if !self.environments.contains_key(&pid) {
            if let Some(scanned) = self.scanned_environments.remove(&pid) {
                let environment = scanned.variables.unwrap_or_else(|| {
                    // Fail closed, as for a read here: the signal is unknown.
                    self.truncated_environments.insert(pid);
                    Vec::new()
                });
                self.environments.insert(pid, environment);
                return self
                    .environments
                    .get(&pid)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
            }
            let environment = match self.host.environment(pid) {
                // Kept as the scan keeps it: the check's variables only.
                Ok(mut environment) => {
                    environment.retain(|entry| {
                        sets_one_of(entry.as_bytes(), &SOCKS_ENVIRONMENT_VARIABLES)
                    });
                    environment
                }
                // Gone, or not ours to read (a non-root CLI): nothing to judge.
                Err(HostError::Vanished(_) | HostError::PermissionDenied(_)) => Vec::new(),
                // Cut, withheld by the kernel, or unreadable: a proxy variable
                // cannot be ruled out, so the signal is unknown, never clean.
                Err(_) => {
                    self.truncated_environments.insert(pid);
                    Vec::new()
                }
            };
            self.environments.insert(pid, environment);
        }
        self.environments
            .get(&pid)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The SOCKS proxies `pid`'s environment names (parsed once per process).
    fn environment_proxies(&mut self, pid: Pid) -> &[ProxyEndpoint] {
        if !self.environment_proxies.contains_key(&pid) {
            let found = proxy::socks_proxies_in_environment(self.environment(pid));
            self.environment_proxies.insert(pid, found);
        }
        self.environment_proxies
            .get(&pid)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Whether `pid`'s environment was cut, so its proxy variables are unknown.
    fn environment_truncated(&mut self, pid: Pid) -> bool {
        self.environment(pid);
        self.truncated_environments.contains(&pid)
    }

    fn preloads_socks(&mut self, pid: Pid) -> Preload {
        if let Some(known) = self.preloads.get(&pid) {
            return *known;
        }
        // The mappings are walked whatever the environment says: a process may
        // rewrite its environment area, or move it (PR_SET_MM_MAP, unprivileged),
        // once its loader ran, so a missing LD_PRELOAD proves nothing; the
        // mappings are the kernel's record of the code that runs.
        let found = if proxy::environment_preloads_socks(self.environment(pid)) {
            Preload::Yes
        } else if let Some(mapped) = self.scanned_libraries.get(&pid) {
            if *mapped {
                Preload::Yes
            } else {
                Preload::No
            }
        } else {
            match self.host.mapped_libraries(pid) {
                Ok(libs) if libs.iter().any(|l| proxy::is_socks_preload_library(l)) => Preload::Yes,
                Ok(_) => Preload::No,
                // Gone, or not ours to read (a non-root CLI): nothing to judge.
                Err(HostError::Vanished(_) | HostError::PermissionDenied(_)) => Preload::No,
                // Cut or unreadable: a preloaded library cannot be ruled out.
                Err(_) => Preload::Unknown,
            }
        };
        self.preloads.insert(pid, found);
        found
    }

    /// The SOCKS proxies in the proxychains config `pid` uses (first readable
    /// file in proxychains' search order).
    fn proxychains_targets(&mut self, pid: Pid) -> &[ProxyEndpoint] {
        if !self.proxychains.contains_key(&pid) {
            let process = self.process(pid).cloned();
            let home = process
                .as_ref()
                .and_then(|p| self.host.home_directory(p.uid));
            let cwd = process.as_ref().map(|p| p.cwd.clone()).unwrap_or_default();
            let environment = self.environment(pid).to_vec();
            let host = self.host;
            let targets = process
                .as_ref()
                .and_then(|process| {
                    proxychains::config_paths(&environment, home.as_deref(), &cwd)
                        .iter()
                        .find_map(|path| read_config(host, process, path))
                })
                .map(|text| proxychains::socks_proxies_in_config(&text))
                .unwrap_or_default();
            self.proxychains.insert(pid, targets);
        }
        self.proxychains
            .get(&pid)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    fn system_proxy(&mut self) -> Option<ProxyEndpoint> {
        let host = self.host;
        self.system_proxy
            .get_or_insert_with(|| {
                host.system_socks_proxy().and_then(|(h, port)| {
                    proxy::parse_host_port(&format!(
                        "{}:{port}",
                        if h.contains(':') && !h.starts_with('[') {
                            format!("[{h}]")
                        } else {
                            h
                        }
                    ))
                })
            })
            .clone()
    }

    fn own_namespace(&mut self) -> String {
        let host = self.host;
        self.own_namespace
            .get_or_insert_with(|| {
                i32::try_from(std::process::id())
                    .ok()
                    .and_then(|pid| host.process(pid).ok())
                    .map(|p| p.net_namespace)
                    .unwrap_or_else(|| "unknown".into())
            })
            .clone()
    }

    /// Probes a loopback address once per scan, within the probe budget.
    fn probe(&mut self, address: SocketAddr) -> ProbeOutcome {
        if let Some(outcome) = self.probes.get(&address) {
            return *outcome;
        }
        if !address.ip().is_loopback() {
            return ProbeOutcome::RefusedNotLoopback;
        }
        if self.probes.len() >= self.config.max_probes {
            return ProbeOutcome::NoAnswer;
        }
        let outcome = probe_socks5(address, self.config.probe_timeout);
        self.probes.insert(address, outcome);
        outcome
    }

    /// The loopback address at which this scanner can reach `listener`, if any.
    fn probe_address(&mut self, listener: &SocketInfo) -> Option<SocketAddr> {
        if listener.net_namespace != self.own_namespace() {
            return None;
        }
        let port = u16::try_from(listener.local_port).ok()?;
        let ip = match parse_ip(&listener.local_address)? {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip if ip.is_loopback() => ip,
            _ => return None,
        };
        Some(SocketAddr::new(ip, port))
    }
}

/// A listening socket by network namespace, local address and port.
type ListenerKey = (String, String, i32);

fn listener_key(listener: &SocketInfo) -> ListenerKey {
    (
        listener.net_namespace.clone(),
        listener.local_address.clone(),
        listener.local_port,
    )
}

/// A listener with its local address parsed once.
type ParsedListener<'l> = (&'l SocketInfo, Option<IpAddr>);

/// Listeners by network namespace and port: a client is matched against the few
/// on its remote port, not every listener (a busy server has thousands of
/// connections and hundreds of listeners).
struct Listeners<'l> {
    by_port: HashMap<(&'l str, i32), Vec<ParsedListener<'l>>>,
}

impl<'l> Listeners<'l> {
    fn new(listeners: impl IntoIterator<Item = &'l SocketInfo>) -> Self {
        let mut by_port: HashMap<(&str, i32), Vec<ParsedListener>> = HashMap::new();
        for listener in listeners {
            by_port
                .entry((listener.net_namespace.as_str(), listener.local_port))
                .or_default()
                .push((listener, parse_ip(&listener.local_address)));
        }
        Listeners { by_port }
    }

    /// Every listener that accepts a connection to the remote end of `client`
    /// (same netns, port, and address or wildcard on a local address).
    /// `is_local` says whether an address in a namespace is one of the host's.
    fn reached_by(
        &self,
        client: &SocketInfo,
        is_local: &dyn Fn(&str, IpAddr) -> bool,
    ) -> Vec<&'l SocketInfo> {
        let Some(candidates) = self
            .by_port
            .get(&(client.net_namespace.as_str(), client.remote_port))
        else {
            return Vec::new();
        };
        let Some(remote) = parse_ip(&client.remote_address) else {
            return Vec::new();
        };
        let remote_is_local =
            remote.is_loopback() || is_local(client.net_namespace.as_str(), remote);
        if !remote_is_local {
            return Vec::new();
        }
        candidates
            .iter()
            .filter(|(_, local)| match local {
                Some(ip) if ip.is_unspecified() => {
                    // A v4 wildcard takes only v4; a v6 wildcard usually takes both.
                    !(ip.is_ipv4() && remote.is_ipv6())
                }
                Some(ip) => *ip == remote,
                None => false,
            })
            .map(|(listener, _)| *listener)
            .collect()
    }
}

/// The host's own addresses, by network namespace, from the local ends of
/// `sockets` (wildcards left out).
fn local_addresses_of<'s>(
    sockets: impl Iterator<Item = &'s SocketInfo>,
) -> HashSet<(&'s str, IpAddr)> {
    sockets
        .filter_map(|s| Some((s.net_namespace.as_str(), parse_ip(&s.local_address)?)))
        .filter(|(_, ip)| !ip.is_unspecified())
        .collect()
}

/// The host's local addresses seen in the clients' network namespaces (from
/// every TCP socket there, `tcp` included), when every listener a client can
/// reach is one `tcp` holds: then a `pid =` scan needs no walk of every
/// process's fds to find the owners of its clients' listeners. A namespace's
/// TCP sockets come from `known` (the scan's own read of its tables), else are
/// read. `None` when some client may reach another process's listener, or a
/// namespace's table cannot be read.
fn ownerless_view(
    host: &dyn Host,
    tcp: &[&SocketInfo],
    clients: &[&SocketInfo],
    known: &HashMap<String, Vec<SocketInfo>>,
) -> Option<HashSet<(String, IpAddr)>> {
    let held: HashSet<u64> = tcp.iter().map(|s| s.socket).collect();
    let mut namespaces: HashSet<&str> = HashSet::new();
    let mut fetched: Vec<(&str, Vec<SocketInfo>)> = Vec::new();
    for client in clients {
        let namespace = client.net_namespace.as_str();
        if namespaces.insert(namespace) && !known.contains_key(namespace) {
            fetched.push((namespace, host.namespace_tcp_sockets(client.pid)?));
        }
    }
    let held = &held;
    let tables = namespaces
        .iter()
        .filter_map(|ns| Some((*ns, known.get(*ns)?.as_slice())))
        .chain(fetched.iter().map(|(ns, table)| (*ns, table.as_slice())));
    // Inode 0: no owner at all (TIME_WAIT), as a walk would not see it.
    let others: Vec<&SocketInfo> = tables
        .flat_map(|(namespace, table)| {
            table.iter().filter(move |s| {
                s.net_namespace == namespace && s.socket != 0 && !held.contains(&s.socket)
            })
        })
        .collect();
    let local = local_addresses_of(others.iter().copied().chain(tcp.iter().copied()));
    let foreign_listeners = Listeners::new(others.iter().copied().filter(|s| is_listener(s)));
    let reaches_foreign = clients.iter().any(|client| {
        !foreign_listeners
            .reached_by(client, &|namespace, ip| local.contains(&(namespace, ip)))
            .is_empty()
    });
    (!reaches_foreign).then(|| {
        local
            .into_iter()
            .map(|(namespace, ip)| (namespace.to_owned(), ip))
            .collect()
    })
}

/// SOCKS reasons for the TCP sockets in `scanned`, keyed by [`socket_key`];
/// sockets without a reason are absent. `whole_host_tcp` gives every TCP socket
/// on the host when `scanned` covers only some processes (a client's proxy may
/// belong to another process); it is called at most once, only when needed.
pub fn socks_reasons(
    host: &dyn Host,
    config: &SocksConfig,
    scanned: &[SocketInfo],
    whole_host_tcp: Option<&dyn Fn() -> Vec<SocketInfo>>,
) -> HashMap<SocketKey, Vec<&'static str>> {
    socks_reasons_with_tables(
        host,
        config,
        scanned,
        whole_host_tcp,
        &HashMap::new(),
        &HashMap::new(),
        ScannedHolders::default(),
    )
}

/// [`socks_reasons`], given the whole TCP tables of network namespaces the scan
/// already read (`SocketScan::namespace_tcp`), which are then not read again,
/// and the holders' executable paths it read through the directory that named
/// their fds (`SocketScan::executables`), which are then not read again either,
/// nor the environments it read or the mapped SOCKS libraries its kernel pass
/// found (`ScannedHolders`).
pub fn socks_reasons_with_tables(
    host: &dyn Host,
    config: &SocksConfig,
    scanned: &[SocketInfo],
    whole_host_tcp: Option<&dyn Fn() -> Vec<SocketInfo>>,
    namespace_tcp: &HashMap<String, Vec<SocketInfo>>,
    executables: &HashMap<Pid, String>,
    holders: ScannedHolders,
) -> HashMap<SocketKey, Vec<&'static str>> {
    let mut out: HashMap<SocketKey, Vec<&'static str>> = HashMap::new();
    let tcp: Vec<&SocketInfo> = scanned.iter().filter(|s| is_tcp(s)).collect();
    if tcp.is_empty() {
        return out;
    }
    let clients: Vec<&SocketInfo> = tcp
        .iter()
        .copied()
        .filter(|s| !is_listener(s) && s.remote_port != 0)
        .collect();
    // Only a connection to this host can end at another process's listener: to
    // loopback, or to the address the connection itself uses locally. (A
    // `pid =` scan of a client talking to another of the host's addresses misses
    // `socks_local_proxy`; a full scan does not.)
    let needs_whole_host = clients.iter().any(|c| {
        parse_ip(&c.remote_address).is_some_and(|remote| {
            remote.is_loopback() || parse_ip(&c.local_address) == Some(remote)
        })
    });
    // The sockets that name this host's addresses, and the listeners clients may
    // reach (with their owners).
    let mut ownerless_addresses: HashSet<(String, IpAddr)> = HashSet::new();
    // Every TCP socket on the host, when a client may reach another process's
    // listener that the scan did not see.
    let universe: Option<Vec<SocketInfo>> = match whole_host_tcp {
        Some(all) if needs_whole_host => {
            match ownerless_view(host, &tcp, &clients, namespace_tcp) {
                Some(addresses) => {
                    ownerless_addresses = addresses;
                    None
                }
                None => Some(all().into_iter().filter(is_tcp).collect()),
            }
        }
        _ => None,
    };
    let listeners: Vec<&SocketInfo> = match &universe {
        Some(all) => all.iter().filter(|s| is_listener(s)).collect(),
        None => tcp.iter().copied().filter(|s| is_listener(s)).collect(),
    };
    // Worked out on first need: only a client to an address other than
    // loopback asks (every TCP socket's local address is parsed for it).
    let local_addresses: std::cell::OnceCell<HashSet<(&str, IpAddr)>> = std::cell::OnceCell::new();
    let is_local = |namespace: &str, ip: IpAddr| {
        local_addresses
            .get_or_init(|| {
                let mut local =
                    local_addresses_of(universe.iter().flatten().chain(tcp.iter().copied()));
                local.extend(ownerless_addresses.iter().map(|(n, ip)| (n.as_str(), *ip)));
                local
            })
            .contains(&(namespace, ip))
    };
    let listener_index = Listeners::new(listeners.iter().copied());

    let mut c = Classifier {
        host,
        config,
        processes: HashMap::new(),
        servers: HashMap::new(),
        environments: HashMap::new(),
        scanned_environments: holders.environments,
        environment_proxies: HashMap::new(),
        truncated_environments: HashSet::new(),
        preloads: HashMap::new(),
        scanned_libraries: holders.socks_libraries,
        client_facts: HashMap::new(),
        executables,
        proxychains: HashMap::new(),
        system_proxy: None,
        own_namespace: None,
        probes: HashMap::new(),
    };
    // Listeners a client with other evidence points at: probe candidates.
    let mut targeted: HashSet<ListenerKey> = HashSet::new();
    // Listeners that clients reach as their SOCKS proxy by a client-side signal
    // (environment proxy, SOCKS preload, proxychains config): servers whatever
    // program owns them.
    let mut proxychains_listeners: HashSet<ListenerKey> = HashSet::new();
    let deadline = crate::deadline::Deadline::current();

    for client in &clients {
        if deadline.expired() {
            break;
        }
        let mut reasons = Vec::new();
        if u16::try_from(client.remote_port).is_ok_and(|p| config.ports.contains(&p)) {
            reasons.push(REASON_PORT);
        }
        let (to_env_proxy, environment_truncated, preload) = c.client_signals(client);
        if to_env_proxy {
            reasons.push(REASON_ENV_PROXY);
        } else if environment_truncated {
            // Fail closed: the proxy variable may be in the part not read.
            reasons.push(REASON_ENV_TRUNCATED);
        }
        if c.system_proxy()
            .is_some_and(|p| endpoint_matches(&p, &client.remote_address, client.remote_port))
        {
            reasons.push(REASON_SYSTEM_PROXY);
        }
        let ends = listener_index.reached_by(client, &is_local);
        let preloaded = preload == Preload::Yes;
        // A local listener the wrapped client's proxychains config names as SOCKS.
        let to_proxychains_target = preloaded
            && !ends.is_empty()
            && c.proxychains_targets(client.pid)
                .iter()
                .any(|p| endpoint_matches(p, &client.remote_address, client.remote_port));
        if to_proxychains_target || to_env_proxy {
            proxychains_listeners.extend(ends.iter().map(|l| listener_key(l)));
        }
        if to_proxychains_target
            || ends.iter().any(|l| {
                c.server(l.pid)
                    .is_some_and(|server| server.ports.contains(l.local_port))
            })
        {
            reasons.push(REASON_LOCAL_PROXY);
        }
        match preload {
            Preload::Yes => reasons.push(REASON_PRELOAD),
            // Fail closed: the library may be in the part not read.
            Preload::Unknown => reasons.push(REASON_PRELOAD_UNKNOWN),
            Preload::No => {}
        }
        if reasons.is_empty() {
            continue;
        }
        targeted.extend(ends.iter().map(|end| listener_key(end)));
        if config.handshake_probe {
            let confirmed = ends.first().is_some_and(|end| {
                parse_ip(&client.remote_address).is_some_and(|ip| ip.is_loopback())
                    && c.probe_address(end).is_some()
                    && u16::try_from(client.remote_port).is_ok_and(|port| {
                        parse_ip(&client.remote_address).is_some_and(|ip| {
                            c.probe(SocketAddr::new(ip, port)) == ProbeOutcome::Socks5
                        })
                    })
            });
            if confirmed {
                reasons.push(REASON_HANDSHAKE);
            }
        }
        out.insert(socket_key(client), reasons);
    }

    for listener in tcp.iter().copied().filter(|s| is_listener(s)) {
        if deadline.expired() {
            break;
        }
        // A listener on a SOCKS port serves SOCKS whatever its program is called.
        let on_socks_port =
            u16::try_from(listener.local_port).is_ok_and(|p| config.ports.contains(&p));
        let known = on_socks_port
            || proxychains_listeners.contains(&listener_key(listener))
            || c.server(listener.pid)
                .is_some_and(|server| server.ports.contains(listener.local_port));
        let mut reasons = Vec::new();
        if on_socks_port {
            reasons.push(REASON_PORT);
        }
        if config.handshake_probe {
            let candidate = known
                || u16::try_from(listener.local_port).is_ok_and(|p| config.ports.contains(&p))
                || targeted.contains(&listener_key(listener));
            if candidate {
                if let Some(address) = c.probe_address(listener) {
                    if c.probe(address) == ProbeOutcome::Socks5 {
                        reasons.push(REASON_HANDSHAKE);
                    }
                }
            }
        }
        if known || !reasons.is_empty() {
            reasons.push(REASON_SERVER);
            out.insert(socket_key(listener), reasons);
        }
    }
    out
}

#[cfg(test)]
// The tests fill a fake host step by step, scenario by scenario.
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;
    use crate::platform::FakeHost;

    use crate::model::fixtures::{process, tcp};

    /// Process `pid`'s established connection (fd 3) to 203.0.113.5:443.
    fn https_connection(pid: Pid) -> SocketInfo {
        tcp(
            pid,
            3,
            ("10.0.0.2", 40000 + pid),
            ("203.0.113.5", 443),
            "ESTABLISHED",
        )
    }

    fn reasons_of(map: &HashMap<SocketKey, Vec<&'static str>>, socket: &SocketInfo) -> String {
        map.get(&socket_key(socket))
            .map(|r| r.join(","))
            .unwrap_or_default()
    }

    /// A cut or withheld environment may hide the proxy variable: the connection is reported
    /// (`socks_env_truncated`), never judged clean; the same connection of a process
    /// whose environment was read whole is no row.
    #[test]
    fn a_truncated_environment_is_not_clean() {
        let mut host = FakeHost::default();
        host.processes = vec![
            process(10, "/usr/bin/curl", &["curl"]),
            process(11, "/usr/bin/curl", &["curl"]),
        ];
        host.environment_errors.insert(
            10,
            HostError::Truncated {
                pid: 10,
                what: "environ",
                limit: 1 << 20,
            },
        );
        let cut = tcp(
            10,
            3,
            ("10.0.0.2", 40000),
            ("203.0.113.5", 443),
            "ESTABLISHED",
        );
        let whole = tcp(
            11,
            3,
            ("10.0.0.2", 40001),
            ("203.0.113.5", 443),
            "ESTABLISHED",
        );
        host.processes.push(process(12, "/usr/bin/curl", &["curl"]));
        host.environment_errors.insert(
            12,
            HostError::Withheld {
                pid: 12,
                what: "environment",
            },
        );
        let withheld = tcp(
            12,
            3,
            ("10.0.0.2", 40002),
            ("203.0.113.5", 443),
            "ESTABLISHED",
        );
        let scanned = vec![cut.clone(), whole.clone(), withheld.clone()];
        let map = socks_reasons(&host, &SocksConfig::default(), &scanned, None);
        assert_eq!(reasons_of(&map, &cut), REASON_ENV_TRUNCATED);
        assert_eq!(reasons_of(&map, &withheld), REASON_ENV_TRUNCATED);
        assert_eq!(reasons_of(&map, &whole), "");
    }

    /// Mapped files that could not be read whole may hide a SOCKS library: the
    /// connection is reported (`socks_preload_unknown`). Twins: a process that
    /// exited, one read whole, and one whose environment already names the
    /// The environments the socket scan read are judged as the host's would
    /// be, and the host is not asked for them: a proxy variable naming the
    /// endpoint is `socks_env_proxy`, an environment the scan could not read
    /// whole is `socks_env_truncated` (never clean); a client the scan read
    /// nothing of is read from the host, as before.
    #[test]
    fn environments_the_scan_read_are_judged_without_asking_the_host() {
        let mut host = FakeHost::default();
        for pid in 20..=22 {
            host.processes
                .push(process(pid, "/usr/bin/curl", &["curl"]));
        }
        // What the host would say now: nothing for 20 and 21; a proxy for 22.
        host.environments
            .insert(22, vec!["ALL_PROXY=socks5://203.0.113.5:443".into()]);
        let scanned: Vec<SocketInfo> = (20..=22).map(https_connection).collect();
        let read_by_the_scan = HashMap::from([
            (
                20,
                ScannedEnvironment {
                    variables: Some(vec!["all_proxy=socks5h://203.0.113.5:443".into()]),
                },
            ),
            (21, ScannedEnvironment { variables: None }),
        ]);
        let map = socks_reasons_with_tables(
            &host,
            &SocksConfig::default(),
            &scanned,
            None,
            &HashMap::new(),
            &HashMap::new(),
            ScannedHolders {
                environments: read_by_the_scan,
                ..ScannedHolders::default()
            },
        );
        assert_eq!(reasons_of(&map, &scanned[0]), REASON_ENV_PROXY);
        assert_eq!(reasons_of(&map, &scanned[1]), REASON_ENV_TRUNCATED);
        assert_eq!(
            reasons_of(&map, &scanned[2]),
            REASON_ENV_PROXY,
            "the host's"
        );
        // Without the scan's reads, the host's (empty) environments are clean.
        let map = socks_reasons(&host, &SocksConfig::default(), &scanned, None);
        assert_eq!(reasons_of(&map, &scanned[0]), "");
        assert_eq!(reasons_of(&map, &scanned[1]), "");
    }

    /// library (then it is `socks_preload`, known).
    #[test]
    fn an_unreadable_library_list_is_not_clean() {
        let mut host = FakeHost::default();
        let cut = HostError::Truncated {
            pid: 0,
            what: "maps",
            limit: 16 << 20,
        };
        for pid in 10..=13 {
            host.processes
                .push(process(pid, "/usr/bin/curl", &["curl"]));
        }
        host.library_errors.insert(10, cut.clone());
        host.library_errors.insert(11, HostError::Vanished(11));
        host.library_errors.insert(13, cut);
        host.environments.insert(
            13,
            vec!["LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libproxychains.so.4".into()],
        );
        let scanned: Vec<SocketInfo> = (10..=13).map(https_connection).collect();
        let map = socks_reasons(&host, &SocksConfig::default(), &scanned, None);
        assert_eq!(reasons_of(&map, &scanned[0]), REASON_PRELOAD_UNKNOWN);
        assert_eq!(reasons_of(&map, &scanned[1]), "", "exited");
        assert_eq!(reasons_of(&map, &scanned[2]), "", "read whole");
        assert_eq!(reasons_of(&map, &scanned[3]), REASON_PRELOAD);
    }

    /// Red team: a process may rewrite or move its environment area once its
    /// loader ran (LD_PRELOAD renamed in place, or PR_SET_MM_MAP to a clean
    /// copy), so the mappings are walked whatever the environment says: a
    /// mapped libproxychains is `socks_preload` with no preload variable in
    /// sight, a walk that cannot finish is unknown, never clean.
    #[test]
    fn mappings_are_walked_whatever_the_environment_says() {
        let mut host = FakeHost::default();
        let cut = HostError::Truncated {
            pid: 0,
            what: "maps",
            limit: 16 << 20,
        };
        let proxychains = vec!["/usr/lib/x86_64-linux-gnu/libproxychains.so.4".to_string()];
        for pid in 40..=45 {
            host.processes
                .push(process(pid, "/usr/bin/curl", &["curl"]));
            host.libraries.insert(pid, proxychains.clone());
        }
        // 40: nothing names a preload, and the walk cannot finish.
        host.library_errors.insert(40, cut);
        // 41: LD_PRELOAD names another file (it may load proxychains).
        host.environments
            .insert(41, vec!["LD_PRELOAD=/home/u/libz.so.1".into()]);
        // 42: nothing named at all.
        // 43: an environment read in part.
        host.environment_errors.insert(
            43,
            HostError::Truncated {
                pid: 43,
                what: "environ",
                limit: 1,
            },
        );
        // 44: an empty LD_PRELOAD is still set.
        host.environments.insert(44, vec!["LD_PRELOAD=".into()]);
        // 45: an environment scrubbed of its LD_PRELOAD.
        host.environments
            .insert(45, vec!["XD_PRELOAD=libproxychains.so.4".into()]);
        let scanned: Vec<SocketInfo> = (40..=45).map(https_connection).collect();
        let map = socks_reasons(&host, &SocksConfig::default(), &scanned, None);
        assert_eq!(reasons_of(&map, &scanned[0]), REASON_PRELOAD_UNKNOWN);
        for socket in &scanned[1..] {
            assert!(
                reasons_of(&map, socket).contains(REASON_PRELOAD),
                "{}: {}",
                socket.pid,
                reasons_of(&map, socket)
            );
        }
        // Without a SOCKS library mapped, a clean environment is no row.
        host.libraries.insert(45, vec!["/usr/lib/libz.so.1".into()]);
        let map = socks_reasons(&host, &SocksConfig::default(), &scanned[5..], None);
        assert!(map.is_empty(), "{map:?}");
    }

    /// What the scan's kernel pass found of a holder's mapped libraries is
    /// judged without a walk (the host's walk, faked to say otherwise, is not
    /// asked); a holder it left out is walked; a preload variable still counts
    /// where the pass found no library.
    #[test]
    fn libraries_the_scan_found_are_judged_without_a_walk() {
        let mut host = FakeHost::default();
        let proxychains = vec!["/usr/lib/x86_64-linux-gnu/libproxychains.so.4".to_string()];
        for pid in 50..=53 {
            host.processes
                .push(process(pid, "/usr/bin/curl", &["curl"]));
        }
        // 50: the pass found none; the walk would find one.
        host.libraries.insert(50, proxychains.clone());
        // 51: the pass found one; the walk would find none.
        host.libraries.insert(51, vec!["/usr/lib/libz.so.1".into()]);
        // 52: left out of the pass: walked.
        host.libraries.insert(52, proxychains);
        // 53: the pass found none, but LD_PRELOAD names one.
        host.environments
            .insert(53, vec!["LD_PRELOAD=/usr/lib/libtorsocks.so".into()]);
        let scanned: Vec<SocketInfo> = (50..=53).map(https_connection).collect();
        let map = socks_reasons_with_tables(
            &host,
            &SocksConfig::default(),
            &scanned,
            None,
            &HashMap::new(),
            &HashMap::new(),
            ScannedHolders {
                socks_libraries: HashMap::from([(50, false), (51, true), (53, false)]),
                ..ScannedHolders::default()
            },
        );
        assert_eq!(reasons_of(&map, &scanned[0]), "");
        assert_eq!(reasons_of(&map, &scanned[1]), REASON_PRELOAD);
        assert_eq!(reasons_of(&map, &scanned[2]), REASON_PRELOAD);
        assert_eq!(reasons_of(&map, &scanned[3]), REASON_PRELOAD);
    }

    /// Each process is read once for its environment and once for its
    /// mappings, however many connections it holds.
    #[test]
    fn each_process_is_read_once_however_many_connections_it_holds() {
        let mut host = FakeHost::default();
        let proxychains = vec!["/usr/lib/x86_64-linux-gnu/libproxychains.so.4".to_string()];
        let mut scanned = Vec::new();
        for pid in 50..=52 {
            host.processes
                .push(process(pid, "/usr/bin/curl", &["curl"]));
            if pid == 52 {
                host.libraries.insert(pid, proxychains.clone());
            }
            for fd in 3..=5 {
                scanned.push(tcp(
                    pid,
                    fd,
                    ("10.0.0.2", 40000 + pid * 10 + fd as i32),
                    ("203.0.113.5", 443),
                    "ESTABLISHED",
                ));
            }
        }
        let map = socks_reasons(&host, &SocksConfig::default(), &scanned, None);
        let environment_reads = host.environment_reads.lock().expect("reads").clone();
        assert_eq!(environment_reads, vec![50, 51, 52], "once per process");
        let library_reads = host.library_reads.lock().expect("reads").clone();
        assert_eq!(library_reads, vec![50, 51, 52], "once per process");
        for socket in &scanned {
            let expected = if socket.pid == 52 { REASON_PRELOAD } else { "" };
            assert_eq!(reasons_of(&map, socket), expected, "{}", socket.pid);
        }
    }

    /// A client to one of the host's own addresses (not loopback) reaches a
    /// local listener on the wildcard; one to another host's address does not.
    #[test]
    fn a_client_to_the_hosts_own_address_reaches_its_listener() {
        let mut host = FakeHost::default();
        host.processes
            .push(process(70, "/usr/bin/microsocks", &["microsocks"]));
        host.processes.push(process(71, "/usr/bin/curl", &["curl"]));
        let listener = tcp(70, 3, ("0.0.0.0", 8000), ("0.0.0.0", 0), "LISTEN");
        let accepted = tcp(
            70,
            4,
            ("192.0.2.10", 8000),
            ("192.0.2.10", 40000),
            "ESTABLISHED",
        );
        let local = tcp(
            71,
            3,
            ("192.0.2.10", 40000),
            ("192.0.2.10", 8000),
            "ESTABLISHED",
        );
        let remote = tcp(
            71,
            4,
            ("192.0.2.10", 40001),
            ("198.51.100.7", 8000),
            "ESTABLISHED",
        );
        let scanned = vec![listener.clone(), accepted, local.clone(), remote.clone()];
        let map = socks_reasons(&host, &SocksConfig::default(), &scanned, None);
        assert_eq!(reasons_of(&map, &local), REASON_LOCAL_PROXY);
        assert_eq!(reasons_of(&map, &remote), "", "another host's address");
        assert_eq!(reasons_of(&map, &listener), REASON_SERVER);
    }

    /// A listener's owner is ruled out as a SOCKS server by the executable the
    /// socket scan read (through the directory that named its fds), not by a
    /// read of its own; without one it is read.
    #[test]
    fn a_listeners_owner_is_judged_by_the_executable_the_scan_read() {
        let mut host = FakeHost::default();
        host.processes
            .push(process(60, "/usr/bin/python3", &["python3"]));
        let listener = tcp(60, 3, ("127.0.0.1", 8000), ("0.0.0.0", 0), "LISTEN");
        let client = tcp(
            60,
            4,
            ("127.0.0.1", 40000),
            ("127.0.0.1", 8000),
            "ESTABLISHED",
        );
        let scanned = vec![listener.clone(), client.clone()];
        let executables = HashMap::from([(60, "/usr/bin/python3".to_string())]);
        let map = socks_reasons_with_tables(
            &host,
            &SocksConfig::default(),
            &scanned,
            None,
            &HashMap::new(),
            &executables,
            ScannedHolders::default(),
        );
        assert!(map.is_empty(), "{map:?}");
        let calls = host.process_calls.lock().expect("calls").clone();
        assert!(calls.is_empty(), "read again: {calls:?}");

        // Without the scan's read, the executable is read (the fake: `process`).
        socks_reasons(&host, &SocksConfig::default(), &scanned, None);
        let calls = host.process_calls.lock().expect("calls").clone();
        assert_eq!(calls, vec![60]);

        // The scan's read names a SOCKS server: it is one, and argv is read.
        let executables = HashMap::from([(60, "/usr/bin/microsocks".to_string())]);
        host.processes[0] = process(60, "/usr/bin/microsocks", &["microsocks", "-p", "8000"]);
        let map = socks_reasons_with_tables(
            &host,
            &SocksConfig::default(),
            &scanned,
            None,
            &HashMap::new(),
            &executables,
            ScannedHolders::default(),
        );
        assert_eq!(reasons_of(&map, &client), REASON_LOCAL_PROXY);
        assert_eq!(reasons_of(&map, &listener), REASON_SERVER);
    }

    #[test]
    fn signals_table_names_every_reason() {
        for reason in [
            REASON_PORT,
            REASON_ENV_PROXY,
            REASON_ENV_TRUNCATED,
            REASON_SYSTEM_PROXY,
            REASON_LOCAL_PROXY,
            REASON_PRELOAD,
            REASON_PRELOAD_UNKNOWN,
            REASON_HANDSHAKE,
            REASON_SERVER,
        ] {
            assert!(
                SIGNALS_TABLE_MARKDOWN.contains(&format!("| `{reason}` |")),
                "{reason}"
            );
        }
        for port in DEFAULT_SOCKS_PORTS {
            assert!(SIGNALS_TABLE_MARKDOWN.contains(&port.to_string()), "{port}");
        }
    }

    #[test]
    fn default_socks_config() {
        assert_eq!(SocksConfig::default().ports, DEFAULT_SOCKS_PORTS);
        assert!(!SocksConfig::default().handshake_probe);
    }

    #[test]
    fn passwd_homes() {
        let text =
            "root:x:0:0:root:/root:/bin/bash\nbob:x:1000:1000::/home/bob:/bin/sh\nbad:line\n";
        assert_eq!(
            crate::platform::home_from_passwd(text, 1000).as_deref(),
            Some("/home/bob")
        );
        assert_eq!(
            crate::platform::home_from_passwd(text, 0).as_deref(),
            Some("/root")
        );
        assert_eq!(crate::platform::home_from_passwd(text, 5), None);
    }

    /// A proxychains-wrapped client reaching a listener of an unknown program that
    /// its config names as a SOCKS proxy: the client gets `socks_local_proxy` and
    /// the listener `socks_server`. A second wrapped client whose config does not
    /// name the listener it talks to makes nothing of it.
    #[test]
    fn proxychains_targets_make_local_proxies_and_servers() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("pc.conf");
        std::fs::write(&conf, "strict_chain\n[ProxyList]\nsocks5 127.0.0.1 41000\n").unwrap();
        let mut host = FakeHost::default();
        host.processes = vec![
            process(20, "/tmp/.cache/svc-helper", &["svc-helper"]),
            process(21, "/usr/bin/curl", &["curl", "http://x"]),
            process(22, "/usr/bin/app", &["app"]),
            process(23, "/usr/bin/daemon", &["daemon"]),
        ];
        let preload = vec!["/usr/lib/x86_64-linux-gnu/libproxychains.so.4".to_string()];
        host.libraries.insert(21, preload.clone());
        host.libraries.insert(22, preload);
        host.environments.insert(
            21,
            vec![format!("PROXYCHAINS_CONF_FILE={}", conf.display())],
        );
        host.environments.insert(
            22,
            vec![format!(
                "PROXYCHAINS_CONF_FILE={}",
                dir.path().join("none").display()
            )],
        );
        let implant = tcp(20, 3, ("127.0.0.1", 41000), ("0.0.0.0", 0), "LISTEN");
        let client = tcp(
            21,
            3,
            ("127.0.0.1", 50010),
            ("127.0.0.1", 41000),
            "ESTABLISHED",
        );
        let daemon = tcp(23, 3, ("127.0.0.1", 42000), ("0.0.0.0", 0), "LISTEN");
        let other = tcp(
            22,
            3,
            ("127.0.0.1", 50011),
            ("127.0.0.1", 42000),
            "ESTABLISHED",
        );
        host.sockets = vec![
            implant.clone(),
            client.clone(),
            daemon.clone(),
            other.clone(),
        ];
        let scanned = host.sockets.clone();
        let map = socks_reasons(&host, &SocksConfig::default(), &scanned, None);
        assert_eq!(reasons_of(&map, &client), "socks_local_proxy,socks_preload");
        assert_eq!(reasons_of(&map, &implant), "socks_server");
        assert_eq!(reasons_of(&map, &other), "socks_preload");
        assert_eq!(reasons_of(&map, &daemon), "", "not a configured proxy");
    }

    /// ssh -D listener, a curl through it, a bait with a proxy variable that
    /// connects elsewhere, a plain HTTPS connection, and the sshd side.
    #[test]
    fn clients_and_servers() {
        let mut host = FakeHost::default();
        host.processes = vec![
            process(
                10,
                "/usr/bin/ssh",
                &["ssh", "-N", "-D", "127.0.0.1:40001", "u@h"],
            ),
            process(
                11,
                "/usr/bin/curl",
                &["curl", "--socks5", "127.0.0.1:40001", "http://x"],
            ),
            process(12, "/usr/bin/python3", &["python3", "bait.py"]),
            process(13, "/usr/bin/curl", &["curl", "https://example.org"]),
            process(14, "/tmp/x/microsocks", &["./microsocks", "-p", "40002"]),
            process(15, "/usr/bin/wget", &["wget", "x"]),
            process(16, "/usr/bin/nc", &["nc", "-l", "1080"]),
            process(17, "/usr/bin/app", &["app"]),
        ];
        host.environments
            .insert(12, vec!["ALL_PROXY=socks5h://127.0.0.1:40002".into()]);
        host.environments
            .insert(15, vec!["ALL_PROXY=socks5h://127.0.0.1:40002".into()]);
        host.libraries.insert(
            17,
            vec!["/usr/lib/x86_64-linux-gnu/libproxychains.so.4".into()],
        );
        let ssh_listen = tcp(10, 3, ("127.0.0.1", 40001), ("0.0.0.0", 0), "LISTEN");
        let ssh_other_listen = tcp(10, 4, ("127.0.0.1", 40005), ("0.0.0.0", 0), "LISTEN");
        let ssh_out = tcp(10, 5, ("10.0.0.2", 50000), ("10.0.0.9", 22), "ESTABLISHED");
        let curl = tcp(
            11,
            3,
            ("127.0.0.1", 50001),
            ("127.0.0.1", 40001),
            "ESTABLISHED",
        );
        let ssh_accepted = tcp(
            10,
            6,
            ("127.0.0.1", 40001),
            ("127.0.0.1", 50001),
            "ESTABLISHED",
        );
        let bait = tcp(
            12,
            3,
            ("10.0.0.2", 50002),
            ("93.184.216.34", 443),
            "ESTABLISHED",
        );
        let plain = tcp(
            13,
            3,
            ("10.0.0.2", 50003),
            ("93.184.216.34", 443),
            "ESTABLISHED",
        );
        let microsocks = tcp(14, 3, ("0.0.0.0", 40002), ("0.0.0.0", 0), "LISTEN");
        let wget = tcp(
            15,
            3,
            ("127.0.0.1", 50004),
            ("127.0.0.1", 40002),
            "ESTABLISHED",
        );
        let nc_listen = tcp(16, 3, ("0.0.0.0", 1080), ("0.0.0.0", 0), "LISTEN");
        let to_nc = tcp(
            13,
            4,
            ("10.0.0.2", 50005),
            ("10.0.0.2", 1080),
            "ESTABLISHED",
        );
        let preloaded = tcp(17, 3, ("10.0.0.2", 50006), ("10.0.0.7", 3128), "SYN_SENT");
        host.sockets = vec![
            ssh_listen.clone(),
            ssh_other_listen.clone(),
            ssh_out.clone(),
            curl.clone(),
            ssh_accepted.clone(),
            bait.clone(),
            plain.clone(),
            microsocks.clone(),
            wget.clone(),
            nc_listen.clone(),
            to_nc.clone(),
            preloaded.clone(),
        ];
        let scanned = host.sockets.clone();
        let map = socks_reasons(&host, &SocksConfig::default(), &scanned, None);
        assert_eq!(reasons_of(&map, &ssh_listen), "socks_server");
        assert_eq!(reasons_of(&map, &ssh_other_listen), "", "not a -D port");
        assert_eq!(reasons_of(&map, &ssh_out), "");
        assert_eq!(reasons_of(&map, &curl), "socks_local_proxy");
        assert_eq!(reasons_of(&map, &ssh_accepted), "");
        assert_eq!(
            reasons_of(&map, &bait),
            "",
            "proxy variable but direct connection"
        );
        assert_eq!(reasons_of(&map, &plain), "");
        assert_eq!(reasons_of(&map, &microsocks), "socks_server");
        assert_eq!(reasons_of(&map, &wget), "socks_env_proxy,socks_local_proxy");
        assert_eq!(
            reasons_of(&map, &nc_listen),
            "socks_port,socks_server",
            "a listener on a SOCKS port is a server whatever program owns it"
        );
        assert_eq!(
            reasons_of(&map, &ssh_other_listen),
            "",
            "a listener on another port stays quiet"
        );
        assert_eq!(
            reasons_of(&map, &to_nc),
            "socks_port",
            "local address, port in list"
        );
        assert_eq!(reasons_of(&map, &preloaded), "socks_preload");

        // A `pid =` scan of the client still finds the proxy's owner.
        let only_curl = vec![curl.clone()];
        let all = host.sockets.clone();
        let whole = move || all.clone();
        let map = socks_reasons(&host, &SocksConfig::default(), &only_curl, Some(&whole));
        assert_eq!(reasons_of(&map, &curl), "socks_local_proxy");
        assert_eq!(map.len(), 1);
        // A process talking only to other hosts needs no whole-host scan.
        let calls = std::cell::Cell::new(0);
        let counted = || {
            calls.set(calls.get() + 1);
            Vec::new()
        };
        let only_plain = vec![plain.clone()];
        let map = socks_reasons(&host, &SocksConfig::default(), &only_plain, Some(&counted));
        assert!(map.is_empty());
        assert_eq!(calls.get(), 0);
        let map = socks_reasons(&host, &SocksConfig::default(), &only_curl, Some(&counted));
        assert_eq!(calls.get(), 1);
        assert!(
            map.is_empty(),
            "the (empty) whole-host view has no listener"
        );
    }

    /// A `pid =` scan hands over the namespace's TCP tables it read: the SOCKS
    /// check reads them not again, and still sees another process's listener.
    #[test]
    fn the_scans_own_tcp_tables_are_not_read_again() {
        // No processes: a namespace read through the host would fail (and then
        // the whole host would be asked for).
        let host = FakeHost::default();
        let listen = tcp(30, 3, ("127.0.0.1", 1080), ("0.0.0.0", 0), "LISTEN");
        let client = tcp(
            30,
            4,
            ("127.0.0.1", 40000),
            ("127.0.0.1", 1080),
            "ESTABLISHED",
        );
        let scanned = vec![listen.clone(), client.clone()];
        let unrelated = tcp(
            31,
            5,
            ("10.0.0.2", 40001),
            ("203.0.113.9", 443),
            "ESTABLISHED",
        );
        let as_table = |sockets: &[&SocketInfo]| {
            sockets
                .iter()
                .map(|s| SocketInfo {
                    pid: 0,
                    fd: -1,
                    ..(*s).clone()
                })
                .collect::<Vec<_>>()
        };
        let calls = std::cell::Cell::new(0);
        let counted = || {
            calls.set(calls.get() + 1);
            Vec::new()
        };
        let known = HashMap::from([("ns1".to_string(), as_table(&[&listen, &client, &unrelated]))]);
        let map = socks_reasons_with_tables(
            &host,
            &SocksConfig::default(),
            &scanned,
            Some(&counted),
            &known,
            &HashMap::new(),
            ScannedHolders::default(),
        );
        assert_eq!(calls.get(), 0, "only its own listener is reachable");
        assert_eq!(reasons_of(&map, &client), REASON_PORT);
        // Another process listening on the same port (SO_REUSEPORT): its owner
        // must be found, so the whole host is asked.
        let twin = tcp(32, 3, ("0.0.0.0", 1080), ("0.0.0.0", 0), "LISTEN");
        let known = HashMap::from([("ns1".to_string(), as_table(&[&listen, &client, &twin]))]);
        socks_reasons_with_tables(
            &host,
            &SocksConfig::default(),
            &scanned,
            Some(&counted),
            &known,
            &HashMap::new(),
            ScannedHolders::default(),
        );
        assert_eq!(calls.get(), 1);
        // Without the scan's tables the host is asked for the namespace (here it
        // cannot answer: the whole host is asked).
        socks_reasons(&host, &SocksConfig::default(), &scanned, Some(&counted));
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn namespaces_and_wildcards() {
        let mut host = FakeHost::default();
        host.processes = vec![
            process(20, "/usr/bin/microsocks", &["microsocks"]),
            process(21, "/usr/bin/curl", &["curl"]),
        ];
        let listen_v4 = tcp(20, 3, ("0.0.0.0", 40010), ("0.0.0.0", 0), "LISTEN");
        let mut other_ns = tcp(
            21,
            3,
            ("127.0.0.1", 50000),
            ("127.0.0.1", 40010),
            "ESTABLISHED",
        );
        other_ns.net_namespace = "ns2".into();
        let v6_client = tcp(21, 4, ("::1", 50001), ("::1", 40010), "ESTABLISHED");
        let v4_client = tcp(
            21,
            5,
            ("127.0.0.1", 50002),
            ("127.0.0.1", 40010),
            "ESTABLISHED",
        );
        host.sockets = vec![
            listen_v4.clone(),
            other_ns.clone(),
            v6_client.clone(),
            v4_client.clone(),
        ];
        let scanned = host.sockets.clone();
        let map = socks_reasons(&host, &SocksConfig::default(), &scanned, None);
        assert_eq!(reasons_of(&map, &other_ns), "", "another netns's loopback");
        assert_eq!(
            reasons_of(&map, &v6_client),
            "",
            "v4 wildcard does not take v6"
        );
        assert_eq!(reasons_of(&map, &v4_client), "socks_local_proxy");
    }

    #[test]
    fn system_proxy_and_env_preload() {
        let mut host = FakeHost::default();
        host.processes = vec![
            process(30, "/usr/bin/app", &["app"]),
            process(31, "/usr/bin/app", &["app"]),
        ];
        host.system_proxy = Some(("::1".into(), 4444));
        host.environments.insert(
            31,
            vec!["LD_PRELOAD=/usr/lib/torsocks/libtorsocks.so".into()],
        );
        let to_system = tcp(30, 3, ("::1", 50000), ("::1", 4444), "ESTABLISHED");
        let elsewhere = tcp(30, 4, ("::1", 50001), ("::1", 4445), "ESTABLISHED");
        let torsocks = tcp(
            31,
            3,
            ("10.0.0.2", 50002),
            ("10.0.0.3", 9050),
            "ESTABLISHED",
        );
        host.sockets = vec![to_system.clone(), elsewhere.clone(), torsocks.clone()];
        let scanned = host.sockets.clone();
        let map = socks_reasons(&host, &SocksConfig::default(), &scanned, None);
        assert_eq!(reasons_of(&map, &to_system), "socks_system_proxy");
        assert_eq!(reasons_of(&map, &elsewhere), "");
        assert_eq!(reasons_of(&map, &torsocks), "socks_port,socks_preload");
        // A custom port list replaces the default.
        let config = SocksConfig {
            ports: vec![4445],
            ..Default::default()
        };
        let map = socks_reasons(&host, &config, &scanned, None);
        assert_eq!(reasons_of(&map, &elsewhere), "socks_port");
        assert_eq!(reasons_of(&map, &torsocks), "socks_preload");
    }

    #[test]
    fn ssh_config_dynamic_forward() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ssh_config");
        std::fs::write(
            &config,
            "Host other\n  DynamicForward 40021\nHost jump\n  DynamicForward 40020\n",
        )
        .unwrap();
        let config = config.to_string_lossy().into_owned();
        let mut host = FakeHost::default();
        host.processes = vec![
            process(40, "/usr/bin/ssh", &["ssh", "-F", &config, "-N", "jump"]),
            process(41, "/usr/bin/curl", &["curl"]),
        ];
        let listen = tcp(40, 3, ("127.0.0.1", 40020), ("0.0.0.0", 0), "LISTEN");
        let client = tcp(
            41,
            3,
            ("127.0.0.1", 50000),
            ("127.0.0.1", 40020),
            "ESTABLISHED",
        );
        host.sockets = vec![listen.clone(), client.clone()];
        let scanned = host.sockets.clone();
        let map = socks_reasons(&host, &SocksConfig::default(), &scanned, None);
        assert_eq!(reasons_of(&map, &listen), "socks_server");
        assert_eq!(reasons_of(&map, &client), "socks_local_proxy");
    }
}
