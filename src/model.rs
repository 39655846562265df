//! Plain row types shared by every layer. No OS code lives here: the platform
//! backends fill these structs, the classifier and the tables read them.

use serde::Serialize;
use std::collections::HashMap;

/// A process id as the kernel reports it.
pub type Pid = i32;

/// What the backend could read about one running process.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProcessInfo {
    pub pid: Pid,
    pub parent: Pid,
    /// Process name as `ps` and osquery's `processes.name` show it (Linux: `comm`,
    /// which the process may change; macOS: the executable's file name).
    pub name: String,
    /// Executable path (Linux: `/proc/<pid>/exe` target, " (deleted)" suffix removed).
    /// Empty for kernel threads or when unreadable (see `error`).
    pub path: String,
    /// argv as the process set it (Linux: `/proc/<pid>/cmdline`), decoded as UTF-8
    /// for display (invalid bytes replaced: never resolve a path from these).
    pub argv: Vec<String>,
    /// The same argv as raw bytes, where the backend has them (Linux); empty
    /// otherwise. Paths are resolved from these.
    #[serde(skip)]
    pub argv_raw: Vec<Vec<u8>>,
    /// argv was longer than the backend reads and was cut (`error` says so): what
    /// it names cannot be known.
    pub argv_truncated: bool,
    /// Real uid.
    pub uid: i64,
    /// Effective uid; `None` when it could not be read.
    pub euid: Option<i64>,
    /// Current working directory, used to resolve relative script paths. Empty if unreadable.
    pub cwd: String,
    /// Start time, seconds since the Unix epoch (0 if unknown).
    pub start_time: i64,
    /// Linux network namespace inode as text; empty on macOS.
    pub net_namespace: String,
    /// True when the executable was deleted or replaced after exec.
    pub exe_deleted: bool,
    /// A kernel thread (Linux `PF_KTHREAD`, which no process can set): it runs
    /// no user code, so there is no subject to watch.
    #[serde(skip)]
    pub kernel_thread: bool,
    /// Why a field could not be filled (permission, vanished…); empty when all is well.
    pub error: String,
}

/// The control group a process is in (Linux), and the container id its path names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControlGroup {
    /// The cgroup v2 path (`0::` line), else the v1 `name=systemd` one, else the
    /// first other hierarchy's, whichever is first not the root `/` (hybrid hosts).
    /// Empty where there are none (macOS).
    pub path: String,
    /// The 64-hex container id a path component names (`docker-<id>.scope`,
    /// `/docker/<id>`, `cri-containerd-`, `crio-`, `libpod-`, kubepods `<id>`), or
    /// empty. A name, not proof: a user with a delegated cgroup chooses its names.
    pub container_id: String,
}

impl ControlGroup {
    /// Parses `/proc/<pid>/cgroup` text (`hierarchy:controllers:path` lines).
    pub fn parse(text: &str) -> ControlGroup {
        let lines: Vec<(&str, &str)> = text
            .lines()
            .filter_map(|line| {
                let mut parts = line.splitn(3, ':');
                let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                Some((controllers, path))
            })
            .collect();
        // Hybrid hosts leave some hierarchies at the root: the first specific path.
        let specific = |(_, path): &&(&str, &str)| *path != "/";
        let path = lines
            .iter()
            .filter(specific)
            .find(|(controllers, _)| controllers.is_empty())
            .or_else(|| {
                lines
                    .iter()
                    .filter(specific)
                    .find(|(c, _)| *c == "name=systemd")
            })
            .or_else(|| lines.iter().find(specific))
            .or_else(|| lines.first())
            .map(|(_, path)| path.to_string())
            .unwrap_or_default();
        let container_id = lines
            .iter()
            .find_map(|(_, path)| container_id_in(path))
            .unwrap_or_default()
            .to_owned();
        ControlGroup { path, container_id }
    }
}

/// The last path component naming a 64-hex container id, prefix and `.scope` removed.
fn container_id_in(path: &str) -> Option<&str> {
    const PREFIXES: &[&str] = &[
        "docker-",
        "cri-containerd-",
        "crio-",
        "libpod-",
        "containerd-",
    ];
    path.rsplit('/').find_map(|component| {
        let component = component.strip_suffix(".scope").unwrap_or(component);
        let id = PREFIXES
            .iter()
            .find_map(|p| component.strip_prefix(p))
            .unwrap_or(component);
        (id.len() == 64
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then_some(id)
    })
}

/// The kernel's socket type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum SocketType {
    Dgram,
    Raw,
    Stream,
}

impl SocketType {
    pub fn as_str(self) -> &'static str {
        match self {
            SocketType::Dgram => "dgram",
            SocketType::Raw => "raw",
            SocketType::Stream => "stream",
        }
    }
}

/// IP protocol numbers (IANA; the same on every OS).
pub const IPPROTO_ICMP: i32 = 1;
pub const IPPROTO_TCP: i32 = 6;
pub const IPPROTO_UDP: i32 = 17;
pub const IPPROTO_ICMPV6: i32 = 58;
pub const IPPROTO_UDPLITE: i32 = 136;

/// IPv4 / IPv6 as osquery reports them (Linux numbering, also on macOS).
pub const FAMILY_INET: i32 = 2;
pub const FAMILY_INET6: i32 = 10;

/// One inet socket held by one process (a socket shared after fork gives one
/// `SocketInfo` per holder).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SocketInfo {
    pub pid: Pid,
    pub fd: i64,
    /// Kernel socket id: inode on Linux, `soi_so` on macOS.
    pub socket: u64,
    /// `FAMILY_INET` or `FAMILY_INET6`.
    pub family: i32,
    /// IP protocol number (1, 58, 17, 136, 255, 0, 6…). For raw sockets the
    /// protocol given to socket(2).
    pub protocol: i32,
    pub socket_type: SocketType,
    /// Addresses in textual form (`0.0.0.0`, `::`, `127.0.0.1`, `fe80::1`); v4-mapped
    /// IPv6 addresses are unmapped by the backend.
    pub local_address: String,
    pub local_port: i32,
    pub remote_address: String,
    pub remote_port: i32,
    /// TCP state name (`ESTABLISHED`, `LISTEN`…) for stream sockets; empty otherwise.
    pub tcp_state: String,
    /// Linux network namespace inode as text; empty on macOS.
    pub net_namespace: String,
}

/// Which kinds of socket a scan must look at. `protocol_name =` constraints are
/// turned into this before any fd is walked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtocolSet {
    pub icmp: bool,
    pub udp: bool,
    pub udplite: bool,
    pub raw: bool,
    /// TCP sockets, needed only by the SOCKS classifier.
    pub tcp: bool,
}

impl ProtocolSet {
    pub const ALL: ProtocolSet = ProtocolSet {
        icmp: true,
        udp: true,
        udplite: true,
        raw: true,
        tcp: true,
    };
    pub const NONE: ProtocolSet = ProtocolSet {
        icmp: false,
        udp: false,
        udplite: false,
        raw: false,
        tcp: false,
    };

    pub fn is_empty(&self) -> bool {
        *self == ProtocolSet::NONE
    }

    /// Whether a scan restricted to this set must keep `socket`. A raw socket is
    /// kept when raw is wanted, or when the name its protocol gives is wanted (a
    /// raw ICMP socket is an `icmp` row).
    pub fn wants(&self, socket: &SocketInfo) -> bool {
        self.wants_kind(socket.socket_type, socket.protocol)
    }

    /// [`ProtocolSet::wants`] for a socket of this type and protocol.
    pub fn wants_kind(&self, socket_type: SocketType, protocol: i32) -> bool {
        if socket_type == SocketType::Raw && self.raw {
            return true;
        }
        match protocol {
            IPPROTO_ICMP | IPPROTO_ICMPV6 => self.icmp,
            IPPROTO_UDP => self.udp,
            IPPROTO_UDPLITE => self.udplite,
            IPPROTO_TCP if socket_type == SocketType::Stream => self.tcp,
            _ => socket_type == SocketType::Raw && self.raw,
        }
    }
}

/// What a socket scan should cover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketQuery {
    /// Only these processes; `None` means every process.
    pub pids: Option<Vec<Pid>>,
    pub protocols: ProtocolSet,
}

/// The result of a socket scan: what was found and what could not be read.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SocketScan {
    pub sockets: Vec<SocketInfo>,
    /// Processes skipped because they vanished or could not be read.
    pub skipped_processes: usize,
    /// Human-readable notes on what went wrong (bounded; for logs, not rows).
    pub errors: Vec<String>,
    /// Executable paths of socket holders, read during the walk where the backend
    /// can (Linux: through the same held `/proc/<pid>` directory as the fds, so the
    /// path belongs to the process that held them). A missing pid is looked up
    /// with `Host::executable_path`.
    pub executables: HashMap<Pid, String>,
    /// Why sockets that exist may be missing (a socket table over its size cap, the
    /// deadline passed): the table reports the result as partial, never complete.
    pub incomplete: Vec<String>,
    /// Every TCP socket of each network namespace whose whole TCP tables a scan
    /// of given pids read (owners not looked up), by namespace: what
    /// `Host::namespace_tcp_sockets` would read again. Empty for full scans and
    /// where the backend does not read whole tables.
    pub namespace_tcp: HashMap<String, Vec<SocketInfo>>,
    /// The environments of processes holding a TCP connection, read during the
    /// walk through the same held `/proc/<pid>` directory as their fds (the SOCKS
    /// check asks for each of them; `Host::environment` is then not called
    /// again). A missing pid is read as before. Never serialized: an
    /// environment holds secrets.
    #[serde(skip)]
    pub environments: HashMap<Pid, ScannedEnvironment>,
    /// Whether each process holding a TCP connection maps a SOCKS library
    /// (libproxychains, libtorsocks, libtsocks) executable, as one kernel pass
    /// over every process's mappings saw it during the scan. A missing pid (not
    /// walked whole, or no such pass here) is walked with
    /// `Host::mapped_libraries`.
    #[serde(skip)]
    pub socks_libraries: HashMap<Pid, bool>,
}

/// What a socket scan learnt of the processes holding TCP connections, for the
/// SOCKS check (`SocketScan::environments`, `SocketScan::socks_libraries`), so
/// that it is not asked of the host again.
#[derive(Clone, Debug, Default)]
pub struct ScannedHolders {
    pub environments: HashMap<Pid, ScannedEnvironment>,
    pub socks_libraries: HashMap<Pid, bool>,
}

/// Variables whose value may name a SOCKS proxy, in the order they are reported.
pub const PROXY_VARIABLES: [&str; 8] = [
    "ALL_PROXY",
    "all_proxy",
    "socks_proxy",
    "SOCKS_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
];

/// Variables that preload libraries into every process started with them.
pub const PRELOAD_VARIABLES: [&str; 2] = ["LD_PRELOAD", "DYLD_INSERT_LIBRARIES"];

/// The variable proxychains' launcher passes its config path in.
pub const PROXYCHAINS_CONF_VARIABLE: &str = "PROXYCHAINS_CONF_FILE";

/// The environment variables the SOCKS check reads: proxy URLs, preloaded
/// libraries and proxychains' config file. All a scan keeps of a socket
/// holder's environment (`ScannedEnvironment`).
pub const SOCKS_ENVIRONMENT_VARIABLES: [&str; 11] = {
    let mut all = [""; 11];
    let mut i = 0;
    while i < PROXY_VARIABLES.len() {
        all[i] = PROXY_VARIABLES[i];
        i += 1;
    }
    all[8] = PRELOAD_VARIABLES[0];
    all[9] = PRELOAD_VARIABLES[1];
    all[10] = PROXYCHAINS_CONF_VARIABLE;
    all
};

/// Whether a `KEY=value` environment entry sets one of `names`.
pub fn sets_one_of(entry: &[u8], names: &[&str]) -> bool {
    names.iter().any(|name| {
        entry
            .strip_prefix(name.as_bytes())
            .is_some_and(|rest| rest.first() == Some(&b'='))
    })
}

/// A socket holder's environment as the scan read it: only the variables in
/// [`SOCKS_ENVIRONMENT_VARIABLES`], in the order the process has them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScannedEnvironment {
    /// `None`: not read whole (cut at the read limit, unreadable for a reason
    /// other than the process's exit, or over the scan's budget for kept
    /// variables), so a proxy variable cannot be ruled out.
    pub variables: Option<Vec<String>>,
}

/// Code-trust verdict, as `process_code_signature.trust` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub enum Trust {
    /// Platform binary / Apple anchor.
    Apple,
    AppStore,
    DeveloperId,
    /// Linux: owned by an installed dpkg/rpm package and its digest matches.
    Package,
    Adhoc,
    Unsigned,
    /// Signature or package digest fails.
    Invalid,
    /// Could not evaluate (see the `error` column).
    #[default]
    Unknown,
}

impl Trust {
    pub fn as_str(self) -> &'static str {
        match self {
            Trust::Apple => "apple",
            Trust::AppStore => "app_store",
            Trust::DeveloperId => "developer_id",
            Trust::Package => "package",
            Trust::Adhoc => "adhoc",
            Trust::Unsigned => "unsigned",
            Trust::Invalid => "invalid",
            Trust::Unknown => "unknown",
        }
    }

    /// `trusted = 1` iff apple, app_store, developer_id or package.
    pub fn is_trusted(self) -> bool {
        matches!(
            self,
            Trust::Apple | Trust::AppStore | Trust::DeveloperId | Trust::Package
        )
    }
}

/// Code identity of one executable or script file (or of running code on macOS).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CodeIdentity {
    pub trust: Trust,
    /// Carries any signature or package provenance (ad-hoc included).
    pub signed: bool,
    /// Signing identifier (Linux: package name).
    pub identifier: String,
    /// Team identifier (empty on Linux).
    pub team_identifier: String,
    /// Leaf certificate CN (Linux: `dpkg` or `rpm`).
    pub authority: String,
    /// macOS cdhash, hex; empty on Linux.
    pub cdhash: String,
    /// 1/0 on macOS, -1 where unknown or not applicable.
    pub notarized: i32,
    /// 1/0 on macOS, -1 on Linux.
    pub platform_binary: i32,
    /// macOS code-signing flags as `0x…`; empty on Linux.
    pub flags: String,
    /// SHA-256 of the file, hex; filled at least whenever the verdict is not trusted
    /// (empty when the file was too large or unreadable: see `error`).
    pub sha256: String,
    /// macOS `com.apple.quarantine` present.
    pub quarantined: bool,
    /// Quarantine agent (the app that downloaded the file), macOS only.
    pub quarantine_agent: String,
    pub error: String,
    /// Scripts: why the file's hash need not name the code that ran (a user other
    /// than root can change the file or a directory on its path, the path goes
    /// through a symlink, or the path could not be checked); empty when only root
    /// can change either.
    pub changeable: String,
}

impl CodeIdentity {
    /// An identity for a file or process that could not be evaluated.
    pub fn unknown(error: impl Into<String>) -> Self {
        CodeIdentity {
            trust: Trust::Unknown,
            notarized: -1,
            platform_binary: -1,
            error: error.into(),
            ..Default::default()
        }
    }
}

/// Sockets and processes for unit tests, in one shared namespace `ns1`.
#[cfg(test)]
pub mod fixtures {
    use super::*;

    /// A process whose argv is given whole (`argv[0]` need not be the path).
    pub fn process(pid: Pid, path: &str, argv: &[&str]) -> ProcessInfo {
        ProcessInfo {
            pid,
            path: path.into(),
            argv: argv.iter().map(|a| a.to_string()).collect(),
            net_namespace: "ns1".into(),
            ..Default::default()
        }
    }

    /// A TCP socket (`state` as the kernel names it: `LISTEN`, `ESTABLISHED`…).
    pub fn tcp(
        pid: Pid,
        fd: i64,
        local: (&str, i32),
        remote: (&str, i32),
        state: &str,
    ) -> SocketInfo {
        SocketInfo {
            pid,
            fd,
            socket: (pid as u64) * 100 + fd as u64,
            family: if local.0.contains(':') {
                FAMILY_INET6
            } else {
                FAMILY_INET
            },
            protocol: IPPROTO_TCP,
            socket_type: SocketType::Stream,
            local_address: local.0.into(),
            local_port: local.1,
            remote_address: remote.0.into(),
            remote_port: remote.1,
            tcp_state: state.into(),
            net_namespace: "ns1".into(),
        }
    }
}
/// What feeds an interpreter's standard input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StdinSource {
    /// A terminal (tty or pty slave): a person may be typing.
    Terminal,
    Pipe,
    /// A regular file (`python3 < x.py`) or a directory.
    File,
    Socket,
    /// A character or block device that is no terminal (`/dev/null`, `/dev/zero`).
    Device,
    /// fd 0 is closed.
    Closed,
    /// Could not be read.
    #[default]
    Unknown,
}

impl StdinSource {
    pub fn as_str(self) -> &'static str {
        match self {
            StdinSource::Terminal => "terminal",
            StdinSource::Pipe => "pipe",
            StdinSource::File => "file",
            StdinSource::Socket => "socket",
            StdinSource::Device => "device",
            StdinSource::Closed => "closed",
            StdinSource::Unknown => "unknown",
        }
    }

    /// Every value `as_str` produces (for validating `stdin:` identities).
    pub const NAMES: &'static [&'static str] = &[
        "terminal", "pipe", "file", "socket", "device", "closed", "unknown",
    ];
}

/// Classifies fd 0 from its `stat` (mode and device number, Linux encoding). Only a
/// terminal device counts as a terminal: `/dev/null` and `/dev/ptmx` are devices.
pub fn stdin_source_of(mode: u32, rdev: u64) -> StdinSource {
    const S_IFMT: u32 = 0o170_000;
    match mode & S_IFMT {
        0o010_000 => StdinSource::Pipe,
        0o140_000 => StdinSource::Socket,
        0o100_000 | 0o040_000 => StdinSource::File,
        0o020_000 if is_terminal_device(rdev) => StdinSource::Terminal,
        0o020_000 | 0o060_000 => StdinSource::Device,
        _ => StdinSource::Unknown,
    }
}

/// Linux terminal majors (Documentation/admin-guide/devices.txt): BSD pty slaves
/// (3), virtual consoles and serial ports (4), `/dev/tty` and `/dev/console` (5:0,
/// 5:1; 5:2 is the pty master multiplexer), Unix98 pty slaves (136-143), ACM and USB
/// serial (166, 188), low-density serial (204).
fn is_terminal_device(rdev: u64) -> bool {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    match major {
        3 | 4 | 136..=143 | 166 | 188 | 204 => true,
        5 => minor <= 1,
        _ => false,
    }
}

/// A regular file a process holds open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenFile {
    pub fd: i64,
    pub dev: u64,
    pub ino: u64,
    /// The kernel's name for it (for messages).
    pub path: String,
}

/// What a path is, as a probe of the process's file system answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathKind {
    Missing,
    File,
    Dir,
    /// A device, FIFO, socket…
    Other,
    /// Could not be told (permission, I/O error).
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_is_a_terminal_only_for_tty_devices() {
        let chr = 0o020_000;
        let dev = |major: u64, minor: u64| (major << 8) | minor;
        assert_eq!(stdin_source_of(chr, dev(136, 3)), StdinSource::Terminal);
        assert_eq!(stdin_source_of(chr, dev(4, 1)), StdinSource::Terminal);
        assert_eq!(stdin_source_of(chr, dev(5, 0)), StdinSource::Terminal);
        // /dev/null, /dev/zero, /dev/ptmx, /dev/urandom: devices, not terminals.
        for (major, minor) in [(1, 3), (1, 5), (5, 2), (1, 9)] {
            assert_eq!(stdin_source_of(chr, dev(major, minor)), StdinSource::Device);
        }
        assert_eq!(stdin_source_of(0o010_644, 0), StdinSource::Pipe);
        assert_eq!(stdin_source_of(0o140_777, 0), StdinSource::Socket);
        assert_eq!(stdin_source_of(0o100_644, 0), StdinSource::File);
        assert_eq!(stdin_source_of(0o060_660, dev(8, 0)), StdinSource::Device);
        assert_eq!(stdin_source_of(0, 0), StdinSource::Unknown);
        // A pty slave with a large minor (new encoding).
        let big_minor: u64 = (136 << 8) | (0x12 << 20) | 0x34;
        assert_eq!(stdin_source_of(chr, big_minor), StdinSource::Terminal);
    }

    #[test]
    fn control_groups_name_their_path_and_container_id() {
        let id = "0123456789abcdef".repeat(4);
        // cgroup v2, docker's systemd driver.
        let v2 = ControlGroup::parse(&format!("0::/system.slice/docker-{id}.scope\n"));
        assert_eq!(v2.path, format!("/system.slice/docker-{id}.scope"));
        assert_eq!(v2.container_id, id);
        // Hybrid v1: the unified line at the root, the systemd hierarchy specific.
        let v1 = ControlGroup::parse(&format!(
            "12:pids:/docker/{id}\n1:name=systemd:/docker/{id}\n0::/\n"
        ));
        assert_eq!(v1.path, format!("/docker/{id}"));
        assert_eq!(v1.container_id, id);
        // Kubernetes with containerd, CRI-O and podman.
        for path in [
            format!("/kubepods.slice/kubepods-pod1.slice/cri-containerd-{id}.scope"),
            format!("/kubepods/besteffort/pod1/{id}"),
            format!("/machine.slice/libpod-{id}.scope/container"),
            format!("/crio-{id}.scope"),
        ] {
            let cgroup = ControlGroup::parse(&format!("0::{path}\n"));
            assert_eq!(
                (cgroup.path.as_str(), cgroup.container_id.as_str()),
                (path.as_str(), id.as_str())
            );
        }
        // No container: a user session; a short or non-hex id is no id.
        let session = ControlGroup::parse("0::/user.slice/user-1000.slice/session-2.scope\n");
        assert_eq!(session.path, "/user.slice/user-1000.slice/session-2.scope");
        assert_eq!(session.container_id, "");
        let fake = ControlGroup::parse(&format!("0::/docker-{}.scope\n", "g".repeat(64)));
        assert_eq!(fake.container_id, "");
        assert_eq!(ControlGroup::parse("0::/\n").path, "/");
        assert_eq!(ControlGroup::parse("garbage"), ControlGroup::default());
    }
}
