//! SOCKS detection against real programs: OpenSSH dynamic forwarding through a
//! local sshd, microsocks with curl, a client configured by `ALL_PROXY`,
//! proxychains4, an unsigned copy of a SOCKS server, false-positive baits, and
//! the handshake probe. Everything listens on 127.0.0.1 only, on ports chosen by
//! binding port 0. A missing program is a skip (printed), not a pass.
#![cfg(target_os = "linux")]

mod common;

use an1256::judge::socks::probe::{probe_socks5, ProbeOutcome};
use an1256::judge::socks::SocksConfig;
use an1256::model::{ProtocolSet, SocketQuery};
use an1256::platform::linux::LinuxHost;
use an1256::platform::{Host, HostConfig};
use an1256::tables::QueryContext;
use common::{python, skip, spawn_ready, which};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a program may take to connect or start listening.
const SETTLE: Duration = Duration::from_secs(20);

use common::NamedRow;

/// A child process killed and reaped on drop.
struct Running(Child);

impl Running {
    fn spawn(mut command: Command) -> std::io::Result<Running> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command.spawn().map(Running)
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).expect("pid fits i32")
    }

    /// Its stderr so far, when it exited early (for failure messages).
    fn exited_stderr(&mut self) -> Option<String> {
        match self.0.try_wait() {
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut e) = self.0.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                Some(format!("{status}: {err}"))
            }
            _ => None,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port free on 127.0.0.1 right now (bound to port 0, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A TCP server on 127.0.0.1 that accepts connections and holds them open,
/// never answering: clients stay connected while the test reads the table.
struct HoldServer {
    port: u16,
}

impl HoldServer {
    fn start() -> HoldServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind hold server");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        HoldServer { port }
    }
}

fn host() -> Arc<LinuxHost> {
    Arc::new(LinuxHost::new(HostConfig::default()))
}

fn rows(host: &Arc<LinuxHost>, config: &SocksConfig, pid: i32) -> Vec<NamedRow> {
    common::socket_rows_in(
        host,
        config,
        &QueryContext::new().with_equals("pid", pid.to_string()),
    )
}

/// Polls the table for `pid` until `accept` finds a row, or the deadline passes.
fn wait_for_row(
    host: &Arc<LinuxHost>,
    config: &SocksConfig,
    pid: i32,
    what: &str,
    accept: impl Fn(&NamedRow) -> bool,
) -> NamedRow {
    let deadline = Instant::now() + SETTLE;
    loop {
        let found = rows(host, config, pid);
        if let Some(row) = found.iter().find(|r| accept(r)) {
            return row.clone();
        }
        if Instant::now() > deadline {
            let tcp: Vec<_> = tcp_sockets(host, pid);
            panic!("no row {what} for pid {pid}; rows {found:#?}; its TCP sockets {tcp:#?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// TCP sockets the host sees for `pid` (to show a socket exists but is no row).
fn tcp_sockets(host: &Arc<LinuxHost>, pid: i32) -> Vec<an1256::model::SocketInfo> {
    host.sockets(&SocketQuery {
        pids: Some(vec![pid]),
        protocols: ProtocolSet {
            tcp: true,
            ..ProtocolSet::NONE
        },
    })
    .sockets
}

/// Waits until something accepts connections on 127.0.0.1:port.
fn wait_listening(port: u16, child: &mut Running) -> Result<(), String> {
    let deadline = Instant::now() + SETTLE;
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    while Instant::now() < deadline {
        if let Some(err) = child.exited_stderr() {
            return Err(err);
        }
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("nothing listening on {port} after {SETTLE:?}"))
}

fn has_reason(row: &NamedRow, reason: &str) -> bool {
    row["reason"].split(',').any(|r| r == reason)
}

fn is_client_to(row: &NamedRow, port: u16) -> bool {
    row["remote_port"] == port.to_string() && row["state"] == "ESTABLISHED"
}

fn assert_server_row(row: &NamedRow, port: u16) {
    assert_eq!(row["protocol_name"], "socks");
    assert_eq!(row["protocol"], "6");
    assert_eq!(row["socket_type"], "stream");
    assert_eq!(row["state"], "LISTEN");
    assert_eq!(row["local_port"], port.to_string());
    assert!(has_reason(row, "socks_server"), "{row:?}");
}

/// Starts microsocks (or a copy of it at `binary`) on 127.0.0.1:`port`.
fn start_microsocks(binary: &Path, port: u16) -> Result<Running, String> {
    let mut command = Command::new(binary);
    command.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
    let mut child = Running::spawn(command).map_err(|e| e.to_string())?;
    wait_listening(port, &mut child)?;
    Ok(child)
}

/// `curl` fetching from the hold server, with extra arguments/environment.
fn curl(args: &[&str], env: &[(&str, String)], hold: &HoldServer) -> Running {
    let mut command = Command::new("curl");
    command
        .args(["-s", "--max-time", "120"])
        .args(args)
        .arg(format!("http://127.0.0.1:{}/", hold.port))
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY");
    for (k, v) in env {
        command.env(k, v);
    }
    Running::spawn(command).expect("spawn curl")
}

fn microsocks_or_skip(test: &str) -> Option<PathBuf> {
    let found = which("microsocks");
    if found.is_none() {
        skip(
            test,
            "microsocks is not installed (apt-get install microsocks)",
        );
    }
    if which("curl").is_none() {
        skip(test, "curl is not installed");
        return None;
    }
    found
}

#[test]
fn microsocks_server_and_curl_client() {
    let Some(microsocks) = microsocks_or_skip("microsocks_server_and_curl_client") else {
        return;
    };
    let host = host();
    let config = SocksConfig::default();
    let hold = HoldServer::start();
    let port = free_port();
    let server = start_microsocks(&microsocks, port).expect("microsocks");
    let client = curl(&["--socks5", &format!("127.0.0.1:{port}")], &[], &hold);

    let row = wait_for_row(&host, &config, client.pid(), "to microsocks", |r| {
        is_client_to(r, port)
    });
    assert_eq!(row["protocol_name"], "socks");
    assert_eq!(row["reason"], "socks_local_proxy", "{row:?}");
    assert_eq!(row["remote_scope"], "loopback");
    assert!(row["path"].ends_with("/curl"), "{row:?}");

    let listener = wait_for_row(&host, &config, server.pid(), "listener", |r| {
        r["state"] == "LISTEN"
    });
    assert_server_row(&listener, port);
    // The accepted connection and microsocks's own connection to the hold
    // server carry no SOCKS evidence: no rows beyond the listener.
    let all = rows(&host, &config, server.pid());
    assert_eq!(all.len(), 1, "{all:#?}");
    assert!(tcp_sockets(&host, server.pid()).len() >= 3);
}

#[test]
fn all_proxy_environment_client() {
    let Some(microsocks) = microsocks_or_skip("all_proxy_environment_client") else {
        return;
    };
    let host = host();
    let config = SocksConfig::default();
    let hold = HoldServer::start();
    let port = free_port();
    let _server = start_microsocks(&microsocks, port).expect("microsocks");
    let client = curl(
        &[],
        &[("ALL_PROXY", format!("socks5h://127.0.0.1:{port}"))],
        &hold,
    );
    let row = wait_for_row(&host, &config, client.pid(), "to the proxy", |r| {
        is_client_to(r, port)
    });
    assert_eq!(
        row["reason"], "socks_env_proxy,socks_local_proxy",
        "{row:?}"
    );
}

#[test]
fn bait_with_proxy_variable_connecting_directly_is_no_row() {
    let host = host();
    let config = SocksConfig::default();
    let hold = HoldServer::start();
    let proxy_port = free_port();
    let mut command = python(
        "import socket,sys,time\n\
         s=socket.create_connection(('127.0.0.1',int(sys.argv[1])))\n\
         print('ready',flush=True)\n\
         time.sleep(120)\n",
    );
    command
        .arg(hold.port.to_string())
        .env("ALL_PROXY", format!("socks5h://127.0.0.1:{proxy_port}"))
        .env("https_proxy", format!("socks5://localhost:{proxy_port}"));
    let bait = match spawn_ready(command) {
        Ok(child) => child,
        Err(e) => return skip("bait", format!("python3 failed: {e}")),
    };
    // The connection is there and seen by the host…
    let seen = tcp_sockets(&host, bait.pid);
    assert!(
        seen.iter()
            .any(|s| s.remote_port == i32::from(hold.port) && s.tcp_state == "ESTABLISHED"),
        "{seen:#?}"
    );
    // …but it goes elsewhere than the proxy: not SOCKS.
    let found = rows(&host, &config, bait.pid);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn plain_tcp_to_non_socks_port_is_no_row() {
    let host = host();
    let config = SocksConfig::default();
    let hold = HoldServer::start();
    let mut command = python(
        "import socket,sys,time\n\
         s=socket.create_connection(('127.0.0.1',int(sys.argv[1])))\n\
         print('ready',flush=True)\n\
         time.sleep(120)\n",
    );
    command.arg(hold.port.to_string());
    let client = match spawn_ready(command) {
        Ok(child) => child,
        Err(e) => return skip("plain", format!("python3 failed: {e}")),
    };
    let seen = tcp_sockets(&host, client.pid);
    assert!(
        seen.iter().any(|s| s.remote_port == i32::from(hold.port)),
        "{seen:#?}"
    );
    assert!(rows(&host, &config, client.pid).is_empty());
    // With that port declared a SOCKS port, the same connection is a row.
    let declared = SocksConfig {
        ports: vec![hold.port],
        ..SocksConfig::default()
    };
    let found = rows(&host, &declared, client.pid);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["reason"], "socks_port");
}

fn microsocks_and_proxychains_or_skip(test: &str) -> Option<(PathBuf, PathBuf)> {
    let microsocks = microsocks_or_skip(test)?;
    let Some(proxychains) = which("proxychains4") else {
        skip(test, "proxychains4 is not installed");
        return None;
    };
    Some((microsocks, proxychains))
}

/// `proxychains4 -f <dir>/proxychains.conf curl …` through the SOCKS5 proxy on
/// 127.0.0.1:`port` (the config written first). proxychains4 execs curl: same pid.
fn proxychains_curl(proxychains: &Path, dir: &Path, port: u16, hold: &HoldServer) -> Running {
    let conf = dir.join("proxychains.conf");
    std::fs::write(
        &conf,
        format!("strict_chain\nquiet_mode\ntcp_connect_time_out 8000\n[ProxyList]\nsocks5 127.0.0.1 {port}\n"),
    )
    .expect("write conf");
    let mut command = Command::new(proxychains);
    command
        .arg("-q")
        .arg("-f")
        .arg(&conf)
        .args(["curl", "-s", "--max-time", "120"])
        .arg(format!("http://127.0.0.1:{}/", hold.port));
    Running::spawn(command).expect("proxychains4")
}

/// proxychains4 wrapping curl through a SOCKS5 server: microsocks itself, then an
/// unknown program (a renamed copy). Either way the wrapped client is
/// `socks_local_proxy,socks_preload` (known server, or a target its own proxychains
/// config names) and a full scan labels the listener `socks_server` — for the
/// renamed copy, a pivot no name list knows, found through its client.
#[test]
fn proxychains_wrapped_clients_and_their_targets() {
    let Some((microsocks, proxychains)) =
        microsocks_and_proxychains_or_skip("proxychains_wrapped_clients_and_their_targets")
    else {
        return;
    };
    let host = host();
    let config = SocksConfig::default();
    let hold = HoldServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["microsocks", "svc-helper"] {
        let binary = dir.path().join(name);
        common::copy_executable(&microsocks, &binary);
        let port = free_port();
        let server = start_microsocks(&binary, port).expect("microsocks copy");
        if name == "svc-helper" {
            // Unknown by name: a scan of the server alone finds no SOCKS evidence.
            let alone = rows(&host, &config, server.pid());
            assert!(alone.is_empty(), "{alone:?}");
        }
        let client = proxychains_curl(&proxychains, dir.path(), port, &hold);
        let row = wait_for_row(&host, &config, client.pid(), "through proxychains", |r| {
            is_client_to(r, port)
        });
        assert_eq!(
            row["reason"], "socks_local_proxy,socks_preload",
            "{name}: {row:?}"
        );

        let server_pid = server.pid().to_string();
        let deadline = Instant::now() + SETTLE;
        let listener = loop {
            let all = common::socket_rows_in(&host, &config, &QueryContext::new());
            if let Some(row) = all
                .iter()
                .find(|r| r["pid"] == server_pid && r["state"] == "LISTEN")
            {
                break row.clone();
            }
            assert!(Instant::now() < deadline, "{name}: no listener row");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_server_row(&listener, port);
        assert_eq!(listener["reason"], "socks_server", "{name}");
        assert_eq!(Path::new(&listener["path"]), binary.as_path());
    }
}

#[test]
fn unsigned_copy_of_a_socks_server_is_a_server_row() {
    let Some(microsocks) = microsocks_or_skip("unsigned_copy") else {
        return;
    };
    let host = host();
    let config = SocksConfig::default();
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("microsocks");
    common::copy_executable(&microsocks, &copy);
    let port = free_port();
    let server = start_microsocks(&copy, port).expect("copied microsocks");
    let row = wait_for_row(&host, &config, server.pid(), "listener", |r| {
        r["state"] == "LISTEN"
    });
    assert_server_row(&row, port);
    assert_eq!(row["reason"], "socks_server");
    assert_eq!(Path::new(&row["path"]), copy.as_path());
    // Not a package file: the subject is untrusted.
    let process = host.process(server.pid()).expect("process");
    assert!(!host.process_identity(&process).trust.is_trusted());
}

/// A local sshd with its own keys on a free port; `ssh` with -D through it.
struct SshFixture {
    dir: tempfile::TempDir,
    port: u16,
    _sshd: Running,
}

fn start_sshd(test: &str) -> Option<SshFixture> {
    let (Some(sshd), Some(keygen)) = (which("sshd"), which("ssh-keygen")) else {
        skip(test, "openssh-server is not installed");
        return None;
    };
    if which("ssh").is_none() {
        skip(test, "openssh-client is not installed");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    for key in ["host_key", "id"] {
        let status = Command::new(&keygen)
            .args(["-q", "-t", "ed25519", "-N", "", "-f", &path(key)])
            .status()
            .expect("ssh-keygen");
        assert!(status.success());
    }
    std::fs::copy(path("id.pub"), path("authorized_keys")).expect("authorized_keys");
    if common::is_root() && !Path::new("/run/sshd").is_dir() {
        // The privilege-separation directory the Debian package normally creates.
        if let Err(e) = std::fs::create_dir_all("/run/sshd") {
            skip(test, format!("cannot create /run/sshd: {e}"));
            return None;
        }
    }
    let port = free_port();
    std::fs::write(
        path("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\n\
             AuthorizedKeysFile {}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin yes\n\
             AllowTcpForwarding yes\n",
            path("host_key"),
            path("sshd.pid"),
            path("authorized_keys"),
        ),
    )
    .expect("sshd_config");
    let mut command = Command::new(sshd);
    command.args(["-D", "-e", "-f", &path("sshd_config")]);
    let mut child = Running::spawn(command).expect("sshd");
    if let Err(e) = wait_listening(port, &mut child) {
        skip(test, format!("sshd did not start: {e}"));
        return None;
    }
    Some(SshFixture {
        dir,
        port,
        _sshd: child,
    })
}

fn user_name() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            if common::is_root() {
                "root".into()
            } else {
                "nobody".into()
            }
        })
}

/// `ssh -N` to the fixture's sshd with `extra` options; waits for `socks_port`.
fn start_ssh(
    fixture: &SshFixture,
    extra: &[String],
    destination: &str,
    socks_port: u16,
) -> Running {
    let id = fixture.dir.path().join("id");
    let mut command = Command::new("ssh");
    command
        .arg("-N")
        .arg("-i")
        .arg(&id)
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args(["-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes"])
        .args(["-p", &fixture.port.to_string()])
        .args(extra)
        .arg(destination);
    let mut child = Running::spawn(command).expect("ssh");
    wait_listening(socks_port, &mut child).expect("ssh dynamic forward listening");
    child
}

fn assert_ssh_socks(fixture: &SshFixture, ssh: &Running, socks_port: u16) {
    let host = host();
    let config = SocksConfig::default();
    let hold = HoldServer::start();
    let client = curl(
        &["--socks5", &format!("127.0.0.1:{socks_port}")],
        &[],
        &hold,
    );
    let row = wait_for_row(&host, &config, client.pid(), "through ssh -D", |r| {
        is_client_to(r, socks_port)
    });
    assert_eq!(row["reason"], "socks_local_proxy", "{row:?}");
    let listener = wait_for_row(&host, &config, ssh.pid(), "ssh listener", |r| {
        r["state"] == "LISTEN" && r["local_port"] == socks_port.to_string()
    });
    assert_server_row(&listener, socks_port);
    assert!(listener["path"].ends_with("/ssh"), "{listener:?}");
    // ssh's own connection to sshd is not SOCKS.
    let ssh_rows = rows(&host, &config, ssh.pid());
    assert!(
        ssh_rows
            .iter()
            .all(|r| r["remote_port"] != fixture.port.to_string()),
        "{ssh_rows:#?}"
    );
}

#[test]
fn ssh_dynamic_forward_on_the_command_line() {
    let Some(fixture) = start_sshd("ssh_dynamic_forward_on_the_command_line") else {
        return;
    };
    let socks_port = free_port();
    let ssh = start_ssh(
        &fixture,
        &["-D".into(), format!("127.0.0.1:{socks_port}")],
        &format!("{}@127.0.0.1", user_name()),
        socks_port,
    );
    assert_ssh_socks(&fixture, &ssh, socks_port);
}

#[test]
fn ssh_dynamic_forward_from_its_config_file() {
    let Some(fixture) = start_sshd("ssh_dynamic_forward_from_its_config_file") else {
        return;
    };
    let socks_port = free_port();
    let config = fixture.dir.path().join("ssh_config");
    // The forward sits in an included file, as under Debian's ssh_config.d.
    let included = fixture.dir.path().join("conf.d");
    std::fs::create_dir(&included).expect("conf.d");
    std::fs::write(
        included.join("pivot.conf"),
        format!("DynamicForward 127.0.0.1:{socks_port}\n"),
    )
    .expect("included config");
    std::fs::write(
        &config,
        format!(
            "Host unrelated\n    DynamicForward 127.0.0.1:{}\nHost pivot\n    HostName 127.0.0.1\n    User {}\n    Include {}/*.conf\n",
            free_port(),
            user_name(),
            included.display()
        ),
    )
    .expect("ssh_config");
    let ssh = start_ssh(
        &fixture,
        &["-F".into(), config.to_string_lossy().into_owned()],
        "pivot",
        socks_port,
    );
    assert_ssh_socks(&fixture, &ssh, socks_port);
}

#[test]
fn handshake_probe_confirms_microsocks_and_gives_up_on_a_silent_listener() {
    let Some(microsocks) = microsocks_or_skip("handshake_probe") else {
        return;
    };
    let port = free_port();
    let server = start_microsocks(&microsocks, port).expect("microsocks");
    let timeout = Duration::from_millis(300);
    assert_eq!(
        probe_socks5(SocketAddr::from(([127, 0, 0, 1], port)), timeout),
        ProbeOutcome::Socks5
    );

    // A listener that accepts and never answers: the probe returns, bounded by
    // its connect/write/read timeouts (generous bound: this is not a benchmark).
    let mut command = python(
        "import socket,time\n\
         s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(8)\n\
         print('port=%d'%s.getsockname()[1]); print('ready',flush=True)\n\
         held=[]\n\
         while True:\n    c,_=s.accept(); held.append(c)\n",
    );
    command.env_remove("PYTHONSTARTUP");
    let silent = spawn_ready(command).expect("silent listener");
    let silent_port = u16::try_from(silent.int("port")).expect("port");
    let started = Instant::now();
    assert_eq!(
        probe_socks5(SocketAddr::from(([127, 0, 0, 1], silent_port)), timeout),
        ProbeOutcome::NoAnswer
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Never toward a non-loopback address.
    assert_eq!(
        probe_socks5(SocketAddr::from(([192, 0, 2, 1], port)), timeout),
        ProbeOutcome::RefusedNotLoopback
    );

    // Through the table: a renamed copy of microsocks (unknown program) on a
    // port declared SOCKS is a server by its port, confirmed by the probe; the
    // silent listener on a declared port is a server by its port only; the known
    // microsocks (on an undeclared port) gets the probe's reason and its own.
    let dir = tempfile::tempdir().expect("tempdir");
    let renamed = dir.path().join("helper");
    common::copy_executable(&microsocks, &renamed);
    let renamed_port = free_port();
    let unknown = start_microsocks(&renamed, renamed_port).expect("renamed microsocks");
    let host = host();
    let probing = SocksConfig {
        ports: vec![renamed_port, silent_port],
        handshake_probe: true,
        ..SocksConfig::default()
    };
    let row = wait_for_row(&host, &probing, unknown.pid(), "confirmed", |r| {
        r["state"] == "LISTEN"
    });
    assert_eq!(row["reason"], "socks_port,socks_handshake,socks_server");
    let silent_rows = rows(&host, &probing, silent.pid);
    assert_eq!(silent_rows.len(), 1, "{silent_rows:?}");
    assert_eq!(silent_rows[0]["reason"], "socks_port,socks_server");
    let row = wait_for_row(&host, &probing, server.pid(), "known", |r| {
        r["state"] == "LISTEN"
    });
    assert_eq!(row["reason"], "socks_handshake,socks_server");
    // Without the probe the unknown program is nothing.
    assert!(rows(&host, &SocksConfig::default(), unknown.pid()).is_empty());

    // A client through the known server gets socks_handshake too.
    let hold = HoldServer::start();
    let client = curl(&["--socks5", &format!("127.0.0.1:{port}")], &[], &hold);
    let row = wait_for_row(&host, &probing, client.pid(), "confirmed client", |r| {
        is_client_to(r, port)
    });
    assert_eq!(row["reason"], "socks_local_proxy,socks_handshake");
}

#[test]
fn full_scan_without_constraints_finds_server_and_client() {
    let Some(microsocks) = microsocks_or_skip("full_scan") else {
        return;
    };
    let host = host();
    let hold = HoldServer::start();
    let port = free_port();
    let server = start_microsocks(&microsocks, port).expect("microsocks");
    let client = curl(&["--socks5", &format!("127.0.0.1:{port}")], &[], &hold);
    let config = SocksConfig::default();
    let deadline = Instant::now() + SETTLE;
    for context in [
        QueryContext::new(),
        QueryContext::new().with_equals("protocol_name", "socks"),
    ] {
        loop {
            let rows = common::socket_rows_in(&host, &config, &context);
            let server_row = rows
                .iter()
                .any(|r| r["pid"] == server.pid().to_string() && r["reason"] == "socks_server");
            let client_row = rows.iter().any(|r| {
                r["pid"] == client.pid().to_string()
                    && is_client_to(r, port)
                    && r["reason"] == "socks_local_proxy"
            });
            if server_row && client_row {
                // Plain TCP never becomes a row: every TCP row has a SOCKS reason.
                for row in rows.iter().filter(|r| r["protocol"] == "6") {
                    assert_eq!(row["protocol_name"], "socks", "{row:?}");
                    assert!(row["reason"].starts_with("socks_"), "{row:?}");
                }
                break;
            }
            assert!(Instant::now() < deadline, "rows never appeared: {rows:#?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A proxy variable far into a large environment (past the reader's first
/// chunks) is found: the environment is read to its end, not to the first
/// chunk. One past the 1 MiB read limit cannot be ruled out: the connection is
/// reported as `socks_env_truncated`. The benign twin, the same large
/// environment without the variable, is no row.
#[test]
fn a_proxy_variable_deep_in_a_large_environment_is_found() {
    const TEST: &str = "a_proxy_variable_deep_in_a_large_environment_is_found";
    if !common::is_root() {
        return skip(TEST, "needs root (attacker user)");
    }
    let user = common::attacker("env-deep");
    let host = host();
    let config = SocksConfig::default();
    let hold = HoldServer::start();
    // Keys sort before ALL_PROXY: the command's environment is ordered by name.
    let client = |fillers: usize, proxy: bool| {
        let mut command = user.python(
            "import socket,sys,time\n\
             s=socket.create_connection(('127.0.0.1',int(sys.argv[1])))\n\
             print('ready',flush=True)\n\
             time.sleep(120)\n",
        );
        command.arg(hold.port.to_string());
        for i in 0..fillers {
            command.env(format!("AAA_FILLER_{i:02}"), "F".repeat(100_000));
        }
        if proxy {
            command.env("ALL_PROXY", format!("socks5://127.0.0.1:{}", hold.port));
        }
        spawn_ready(command).expect("client starts")
    };
    let reasons = |pid: i32| -> Vec<String> {
        rows(&host, &config, pid)
            .iter()
            .filter(|r| is_client_to(r, hold.port))
            .map(|r| r["reason"].clone())
            .collect()
    };

    let deep = client(4, true);
    assert_eq!(reasons(deep.pid), vec!["socks_env_proxy"]);

    let cut = client(11, true);
    assert_eq!(reasons(cut.pid), vec!["socks_env_truncated"]);

    let twin = client(4, false);
    assert!(
        tcp_sockets(&host, twin.pid)
            .iter()
            .any(|s| s.remote_port == i32::from(hold.port)),
        "the twin's connection is seen"
    );
    assert_eq!(reasons(twin.pid), Vec::<String>::new());
}

/// Red team (medium): a page of the environment area the kernel cannot copy
/// (the process made it PROT_NONE after start) makes a `/proc/<pid>/environ`
/// read return nothing, or end early past its first read, and the environment
/// was judged whole and clean: a client connected to the SOCKS proxy its
/// `ALL_PROXY` names was no row. An environment shorter than the area `stat`
/// gives is now unknown (`socks_env_truncated`): an empty read (small area)
/// and a read cut after 16 KiB (`ALL_PROXY` last, on the hidden page). The
/// twin, the same unprivileged client with its environment readable and no
/// proxy variable, is no row.
#[test]
fn an_environment_the_kernel_cannot_read_whole_is_never_clean() {
    const TEST: &str = "an_environment_the_kernel_cannot_read_whole_is_never_clean";
    if !common::is_root() {
        return skip(TEST, "needs root (attacker user)");
    }
    let host = host();
    let config = SocksConfig::default();
    let hold = HoldServer::start();
    let port = hold.port;
    // Connects to the port, then (with `hide`) makes the environment area's
    // last page unreadable: python copied its environment at start. Under 16
    // KiB of environment the read comes back empty; past it, cut after 16 KiB.
    let client = "import ctypes, socket, sys, time\n\
        port, hide = int(sys.argv[1]), sys.argv[2] == 'hide'\n\
        text = open('/proc/self/stat').read()\n\
        fields = text[text.rindex(')') + 2:].split()\n\
        start, end = int(fields[47]), int(fields[48])\n\
        s = socket.create_connection(('127.0.0.1', port))\n\
        if hide:\n\
        \x20   libc = ctypes.CDLL(None, use_errno=True)\n\
        \x20   page = (end - 1) & ~4095\n\
        \x20   if libc.mprotect(ctypes.c_void_p(page), 4096, 0) != 0:\n\
        \x20       print('error=mprotect', ctypes.get_errno(), flush=True)\n\
        \x20       sys.exit(1)\n\
        print('ready', flush=True)\n\
        time.sleep(120)\n";
    let user = common::attacker("hidden-environ");
    let start = |padding: usize, proxy: bool, hide: bool| {
        // `env` keeps the order given: ALL_PROXY last, on the area's last page.
        let mut command = user.command("env");
        command.args(["-i", "PATH=/usr/bin:/bin"]);
        if padding > 0 {
            command.arg(format!("PAD={}", "x".repeat(padding)));
        }
        if proxy {
            command.arg(format!("ALL_PROXY=socks5h://127.0.0.1:{port}"));
        }
        command.args(["python3", "-c", client, &port.to_string()]);
        command.arg(if hide { "hide" } else { "show" });
        spawn_ready(command).expect("client")
    };
    // 8,000 bytes of padding: the hidden last page then holds environment
    // strings only, never the argv, auxv or first stack frames below them
    // (where a page boundary falls moves with the randomized stack top).
    let hidden_small = start(8_000, true, true);
    let hidden_past_first_read = start(20_000, true, true);
    let twin = start(20_000, false, false);
    for (child, what) in [
        (&hidden_small, "an environment read empty"),
        (
            &hidden_past_first_read,
            "an environment cut after its first read",
        ),
    ] {
        let row = wait_for_row(&host, &config, child.pid, what, |r| is_client_to(r, port));
        assert!(has_reason(&row, "socks_env_truncated"), "{what}: {row:?}");
    }
    // The same as a full scan sees it.
    let all = common::socket_rows_in(&host, &config, &QueryContext::new());
    for child in [&hidden_small, &hidden_past_first_read] {
        assert!(
            all.iter().any(|r| r["pid"] == child.pid.to_string()
                && is_client_to(r, port)
                && has_reason(r, "socks_env_truncated")),
            "full scan, pid {}",
            child.pid
        );
    }
    assert_quiet_twin(&host, &config, &all, twin.pid, port);
}

/// Red team (medium, round 2): a process preloaded with a SOCKS library may
/// rename `LD_PRELOAD` in its environment area once its loader ran (or move
/// the area with `PR_SET_MM_MAP`, unprivileged); the mapping walk was skipped
/// for an environment naming no preload, so the library went unseen. The
/// mappings are now walked whatever the environment says: `socks_preload`.
/// The twin, the same unprivileged client scrubbing the same variable with no
/// such library loaded, is no row.
#[test]
fn a_preload_scrubbed_from_the_environment_is_still_seen_in_the_mappings() {
    const TEST: &str = "a_preload_scrubbed_from_the_environment_is_still_seen_in_the_mappings";
    if !common::is_root() {
        return skip(TEST, "needs root (attacker user)");
    }
    let Some(library) = libz() else {
        return skip(TEST, "no libz.so.1 to preload");
    };
    let host = host();
    let config = SocksConfig::default();
    let hold = HoldServer::start();
    let port = hold.port;
    let user = common::attacker("scrubbed-preload");
    // Any library will do as the preload: the check goes by its file name.
    let bytes = std::fs::read(library).expect("libz");
    let socks_library = user.write("libproxychains.so.4", &bytes, false);
    let plain_library = user.write("libplain.so.1", &bytes, false);
    // Renames LD_PRELOAD in place (same length, every page readable), then
    // connects and holds the connection.
    let client = "import ctypes, socket, sys, time\n\
        text = open('/proc/self/stat').read()\n\
        fields = text[text.rindex(')') + 2:].split()\n\
        start, end = int(fields[47]), int(fields[48])\n\
        area = ctypes.string_at(start, end - start)\n\
        at = area.find(b'LD_PRELOAD=')\n\
        if at < 0:\n\
        \x20   print('error=no LD_PRELOAD', flush=True)\n\
        \x20   sys.exit(1)\n\
        ctypes.memmove(start + at, b'XD', 2)\n\
        s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n\
        print('ready', flush=True)\n\
        time.sleep(120)\n";
    let start = |preload: &std::path::Path| {
        let mut command = user.command("python3");
        command
            .env("LD_PRELOAD", preload)
            .args(["-c", client, &port.to_string()]);
        spawn_ready(command).expect("client")
    };
    let scrubbed = start(&socks_library);
    let twin = start(&plain_library);
    let environ = std::fs::read(format!("/proc/{}/environ", scrubbed.pid)).expect("environ");
    assert!(
        !environ.windows(11).any(|w| w == b"LD_PRELOAD="),
        "the environment no longer names it"
    );
    let row = wait_for_row(&host, &config, scrubbed.pid, "to the port", |r| {
        is_client_to(r, port)
    });
    assert!(has_reason(&row, "socks_preload"), "{row:?}");
    let all = common::socket_rows_in(&host, &config, &QueryContext::new());
    assert!(
        all.iter()
            .any(|r| r["pid"] == scrubbed.pid.to_string() && has_reason(r, "socks_preload")),
        "full scan"
    );
    assert_quiet_twin(&host, &config, &all, twin.pid, port);
}

/// A system library to copy under a SOCKS library's name (the check goes by
/// the file's name), if this host has one.
fn libz() -> Option<&'static str> {
    [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/aarch64-linux-gnu/libz.so.1",
        "/usr/lib/aarch64-linux-gnu/libz.so.1",
    ]
    .into_iter()
    .find(|l| Path::new(l).exists())
}

/// A benign twin connected to `port`: the host sees its connection, and it is
/// no row, neither by `pid =` nor in the full scan's rows `all`.
fn assert_quiet_twin(
    host: &Arc<LinuxHost>,
    config: &SocksConfig,
    all: &[NamedRow],
    twin: i32,
    port: u16,
) {
    let seen = tcp_sockets(host, twin);
    assert!(
        seen.iter().any(|s| s.remote_port == i32::from(port)),
        "{seen:#?}"
    );
    assert!(rows(host, config, twin).is_empty(), "the twin");
    assert!(
        !all.iter().any(|r| r["pid"] == twin.to_string()),
        "the twin in the full scan"
    );
}

/// The kernel's library pass (what a one-shot full scan asks when many TCP
/// clients hold connections) against the mapping walk, name by name, with
/// unprivileged clients preloading one library each: the SOCKS names (one too
/// long for the dentry's inline name, so read from outside it) are found, the
/// near misses (a letter short, a letter before) are not, both as the walk says.
/// Every process the pass answered for agrees with its walk. A client whose
/// leader exited is not answered for (its leader has no mappings of its own to
/// walk): the judge walks it, and still finds its preload. So are two whose
/// file's own name is not the one `maps` prints last (red team): a memfd named
/// `x/libproxychains.so`, and a plain library bind-mounted (in a user
/// namespace) onto `libproxychains.so.4`.
#[test]
fn the_library_pass_and_the_mapping_walk_agree_name_by_name() {
    use an1256::judge::socks::proxy::is_socks_preload_library;
    use an1256::platform::linux::sockets::{self, LibraryPassUse};
    const TEST: &str = "the_library_pass_and_the_mapping_walk_agree_name_by_name";
    if !common::is_root() {
        return skip(TEST, "needs root (attacker user, the BPF iterator)");
    }
    let Some(library) = libz() else {
        return skip(TEST, "no libz.so.1 to preload");
    };
    let host = host();
    let hold = HoldServer::start();
    let user = common::attacker("library-pass");
    let bytes = std::fs::read(library).expect("libz");
    let long = format!("libproxychains{}.so", "-long".repeat(12));
    let names: Vec<(String, bool)> = [
        ("libproxychains.so.4", true),
        ("libtorsocks.so", true),
        ("libtsocks.so.0", true),
        (long.as_str(), true),
        ("libproxychain.so", false),
        ("libtorsock.so", false),
        ("libtsock.so", false),
        ("xlibproxychains.so", false),
        ("libplain.so.1", false),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_string(), s))
    .collect();
    let client = "import socket, sys, time\n\
        s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n\
        print('ready', flush=True)\n\
        time.sleep(120)\n";
    // The leader exits; a thread holds the connection.
    let leaderless = "import ctypes, socket, sys, threading, time\n\
        def hold():\n\
        \x20   s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n\
        \x20   print('ready', flush=True)\n\
        \x20   time.sleep(120)\n\
        threading.Thread(target=hold).start()\n\
        time.sleep(1)\n\
        ctypes.CDLL(None).syscall(60, 0)\n";
    let start = |name: &str, code: &str| {
        let path = user.write(name, &bytes, false);
        let mut command = user.command("python3");
        command
            .env("LD_PRELOAD", &path)
            .args(["-c", code, &hold.port.to_string()]);
        spawn_ready(command).expect("client")
    };
    let clients: Vec<_> = names
        .iter()
        .map(|(name, socks)| (start(name, client), name.clone(), *socks))
        .collect();
    let without_leader = start("libproxychains.so.3", leaderless);
    let plain = user.write("plain.so", &bytes, false);
    let memfd = {
        let code = "import ctypes, os, socket, sys, time\n\
            fd = os.memfd_create('x/libproxychains.so', 0)\n\
            os.write(fd, open(sys.argv[2], 'rb').read())\n\
            ctypes.CDLL('/proc/self/fd/%d' % fd)\n\
            s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n\
            print('ready', flush=True)\n\
            time.sleep(120)\n";
        let mut command = user.command("python3");
        command.args([
            "-c",
            code,
            &hold.port.to_string(),
            &plain.display().to_string(),
        ]);
        spawn_ready(command).expect("memfd client")
    };
    // A file bind-mounted onto a SOCKS library's name, where this host lets
    // an unprivileged user make a mount namespace.
    let bound = {
        let target = user.write("bound/libproxychains.so.4", b"", false);
        let code = "import ctypes, socket, sys, time\n\
            ctypes.CDLL(sys.argv[2])\n\
            s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n\
            print('ready', flush=True)\n\
            time.sleep(120)\n";
        let script = format!(
            "mount --bind {} {} && exec python3 -c \"$0\" {} {}",
            plain.display(),
            target.display(),
            hold.port,
            target.display()
        );
        let mut probe = user.command("unshare");
        probe.args(["-Urm", "true"]);
        let can = probe.status().is_ok_and(|s| s.success());
        if can {
            let mut command = user.command("unshare");
            command.args(["-Urm", "sh", "-c", &script, code]);
            Some(spawn_ready(command).expect("bind-mounted client"))
        } else {
            eprintln!(
                "{TEST}: no unprivileged mount namespace here: the bind-mount case is not run"
            );
            None
        }
    };
    let deadline = Instant::now() + SETTLE;
    while std::fs::read_to_string(format!("/proc/{}/stat", without_leader.pid))
        .map_or(true, |stat| !stat.contains(") Z "))
    {
        assert!(Instant::now() < deadline, "the leader never exited");
        std::thread::sleep(Duration::from_millis(20));
    }
    let query = SocketQuery {
        pids: None,
        protocols: ProtocolSet {
            tcp: true,
            ..ProtocolSet::NONE
        },
    };
    let scan = sockets::scan(&query, true, true, LibraryPassUse::Always);
    if scan.socks_libraries.is_empty() {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut parts = release.trim().split(['.', '-']);
        let version: (u32, u32) = (
            parts.next().and_then(|p| p.parse().ok()).unwrap_or(0),
            parts.next().and_then(|p| p.parse().ok()).unwrap_or(0),
        );
        assert!(version < (6, 7), "a 6.7+ kernel runs the library pass");
        return skip(TEST, "no library pass on this kernel");
    }
    let walk = |pid: i32| {
        host.mapped_libraries(pid)
            .map(|libs| libs.iter().any(|l| is_socks_preload_library(l)))
    };
    for (child, name, socks) in &clients {
        assert_eq!(
            scan.socks_libraries.get(&child.pid),
            Some(socks),
            "{name}: the pass"
        );
        assert_eq!(walk(child.pid).ok(), Some(*socks), "{name}: the walk");
    }
    let mut compared = 0;
    for (&pid, &found) in &scan.socks_libraries {
        if let Ok(walked) = walk(pid) {
            assert_eq!(found, walked, "process {pid}");
            compared += 1;
        }
    }
    assert!(compared >= clients.len());
    assert!(
        !scan.socks_libraries.contains_key(&without_leader.pid),
        "a process whose leader exited is left to the walk"
    );
    assert!(scan.sockets.iter().any(|s| s.pid == without_leader.pid));
    let reasons = an1256::judge::socks::socks_reasons_with_tables(
        host.as_ref(),
        &SocksConfig::default(),
        &scan.sockets,
        None,
        &scan.namespace_tcp,
        &scan.executables,
        an1256::model::ScannedHolders {
            environments: scan.environments.clone(),
            socks_libraries: scan.socks_libraries.clone(),
        },
    );
    let reasons_of = |pid: i32| -> Vec<&'static str> {
        scan.sockets
            .iter()
            .filter(|s| s.pid == pid && s.remote_port == i32::from(hold.port))
            .filter_map(|s| reasons.get(&an1256::judge::socks::socket_key(s)))
            .flatten()
            .copied()
            .collect()
    };
    assert!(
        reasons_of(without_leader.pid).contains(&"socks_preload"),
        "{:?}",
        reasons_of(without_leader.pid)
    );
    for (what, client) in [("memfd", Some(&memfd)), ("bind mount", bound.as_ref())] {
        let Some(client) = client else { continue };
        assert_eq!(walk(client.pid).ok(), Some(true), "{what}: the walk");
        assert_ne!(
            scan.socks_libraries.get(&client.pid),
            Some(&false),
            "{what}: the pass must leave it to the walk"
        );
        assert!(
            reasons_of(client.pid).contains(&"socks_preload"),
            "{what}: {:?}",
            reasons_of(client.pid)
        );
    }
    for (child, name, socks) in &clients {
        assert_eq!(
            reasons_of(child.pid).contains(&"socks_preload"),
            *socks,
            "{name}: {:?}",
            reasons_of(child.pid)
        );
    }
}

/// A one-shot full scan remembers (in root's `/run/an1256`) each process the
/// library pass walked whole and found no SOCKS library in, under its start,
/// exec count and the kernel's count of mmap write locks, and does not walk it
/// again while all three are the same. An unprivileged client that loads
/// `libproxychains.so.4` with `dlopen` after such a walk, or execs itself with
/// it preloaded, moves a count: the next pass walks it and finds the library.
/// The twin, an idle client, is not walked again (it is said unchanged) and
/// stays clean.
#[test]
fn a_library_loaded_after_a_remembered_walk_is_found_at_the_next_pass() {
    use an1256::platform::linux::{fd_iterator, library_pass};
    const TEST: &str = "a_library_loaded_after_a_remembered_walk_is_found_at_the_next_pass";
    if !common::is_root() {
        return skip(TEST, "needs root (attacker user, the BPF iterator)");
    }
    let Some(library) = libz() else {
        return skip(TEST, "no libz.so.1 to load");
    };
    let Ok(iterator) = fd_iterator::shared() else {
        return skip(TEST, "no fd iterator here");
    };
    let remembers = iterator
        .layout()
        .libraries
        .is_some_and(|l| l.image_change.is_some());
    if !remembers {
        return skip(
            TEST,
            "no library pass, or no counts of change, on this kernel",
        );
    }
    let hold = HoldServer::start();
    let user = common::attacker("remembered-walk");
    let bytes = std::fs::read(library).expect("libz");
    let socks_library = user.write("libproxychains.so.4", &bytes, false);
    // Connects, says ready, then waits for its trigger file: `load` dlopens
    // the library, `exec` execs this same script with it preloaded.
    let client = "import ctypes, os, socket, sys, time\n\
        s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n\
        print('ready', flush=True)\n\
        trigger, library, done = sys.argv[2], sys.argv[3], sys.argv[4]\n\
        while not os.path.exists(trigger):\n\
        \x20   time.sleep(0.01)\n\
        how = open(trigger).read().strip()\n\
        if how == 'load':\n\
        \x20   ctypes.CDLL(library)\n\
        \x20   open(done, 'w').close()\n\
        \x20   time.sleep(120)\n\
        elif how == 'exec':\n\
        \x20   env = dict(os.environ, LD_PRELOAD=library)\n\
        \x20   os.execve(sys.executable, [sys.executable, '-c', 'import time; open(' + repr(done) + ', \"w\").close(); time.sleep(120)'], env)\n";
    let start = |tag: &str| {
        let trigger = user.home.join(format!("{tag}.trigger"));
        let done = user.home.join(format!("{tag}.done"));
        let mut command = user.command("python3");
        command.args([
            "-c",
            client,
            &hold.port.to_string(),
            &trigger.to_string_lossy(),
            &socks_library.to_string_lossy(),
            &done.to_string_lossy(),
        ]);
        (spawn_ready(command).expect("client"), trigger, done)
    };
    let (loader, load_trigger, load_done) = start("load");
    let (execer, exec_trigger, exec_done) = start("exec");
    let (twin, _, _) = start("twin");
    let pass = || {
        library_pass::pass(iterator, an1256::deadline::Deadline::after(SETTLE))
            .expect("a 6.7+ kernel runs the library pass")
            .expect("the pass reads")
            .processes
    };
    let walk_of = |walks: &std::collections::HashMap<u32, library_pass::LibraryWalk>, pid: i32| {
        *walks
            .get(&u32::try_from(pid).expect("pid"))
            .unwrap_or_else(|| panic!("process {pid} is in the pass"))
    };
    // Other tests' passes rewrite the file too: a few passes may be needed
    // before all three are relied on.
    let mut relied_on = false;
    for _ in 0..10 {
        let walks = pass();
        let clients = [loader.pid, execer.pid, twin.pid].map(|pid| walk_of(&walks, pid));
        for walk in &clients {
            assert_eq!(walk.socks_library, Some(false), "{walk:?}");
        }
        if clients.iter().all(|w| w.unchanged) {
            relied_on = true;
            break;
        }
    }
    assert!(relied_on, "unchanged clients are not walked again");
    for (trigger, how, done) in [
        (&load_trigger, "load", &load_done),
        (&exec_trigger, "exec", &exec_done),
    ] {
        std::fs::write(trigger, how).expect("trigger");
        let waited = Instant::now();
        while !done.exists() {
            assert!(waited.elapsed() < SETTLE, "the client did not {how}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let walks = pass();
    for (pid, what) in [(loader.pid, "dlopen"), (execer.pid, "exec with LD_PRELOAD")] {
        let walk = walk_of(&walks, pid);
        assert!(!walk.unchanged, "{what}: walked again");
        assert_eq!(walk.socks_library, Some(true), "{what}: {walk:?}");
    }
    let twin_walk = walk_of(&walks, twin.pid);
    assert_eq!(twin_walk.socks_library, Some(false), "the twin");
}
