//! Known SOCKS servers, recognised by the executable's basename and the
//! program's argv grammar — never by argv[0], never by running anything. Pure: ssh config files are read by the caller.
//!
//! | program | listeners labelled SOCKS |
//! |---|---|
//! | `ssh` | the ports of `-D`, `-o DynamicForward`, `DynamicForward` in its config |
//! | `tor` | every listener except its control ports (`ControlPort` in argv, 9051) |
//! | `microsocks`, `danted`, `sockd`, `3proxy`, `redsocks` | every listener |
//! | `gost` | ports of `-L socks…://` services and of scheme-less (`auto`) services |
//! | `chisel` | client mode: the local ports of `socks` remotes (`socks`, `1081:socks`, `127.0.0.1:1081:socks`; default 1080) |
//!
//! Limits: torrc and 3proxy.cfg are not parsed (3proxy may also serve HTTP on
//! its listeners); a chisel *server* started with `--reverse` serving `R:socks`
//! is not recognised (its argv says nothing of SOCKS). `redsocks` is a
//! transparent redirector into a SOCKS proxy: its listener is the entry to the
//! pivot, so it is labelled too.

use crate::judge::socks::ssh::{parse_ssh_argv, SshArgs};
use crate::model::ProcessInfo;

/// Which listening ports of a known server speak SOCKS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocksPorts {
    Any,
    Only(Vec<u16>),
    AnyExcept(Vec<u16>),
}

impl SocksPorts {
    pub fn contains(&self, port: i32) -> bool {
        let Ok(port) = u16::try_from(port) else {
            return false;
        };
        match self {
            SocksPorts::Any => true,
            SocksPorts::Only(ports) => ports.contains(&port),
            SocksPorts::AnyExcept(ports) => !ports.contains(&port),
        }
    }
}

/// A process recognised as a SOCKS server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownServer {
    /// `ssh`, `tor`, `microsocks`, …
    pub program: &'static str,
    pub ports: SocksPorts,
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// True when `process` (only `path` and `argv` are looked at) runs a program
/// [`known_server`] may recognise: the cheap test before a full process read.
pub fn may_be_known_server(process: &ProcessInfo) -> bool {
    program_of(process).is_some()
}

/// The program name a process is recognised by: the basename of its executable as
/// the kernel names it (`/proc/<pid>/exe`, symlinks resolved), never argv[0],
/// which a process sets as it likes (`exec -a ssh python3 …`).
fn program_of(process: &ProcessInfo) -> Option<&'static str> {
    const PROGRAMS: [&str; 10] = [
        "ssh",
        "tor",
        "microsocks",
        "danted",
        "sockd",
        "3proxy",
        "redsocks",
        "gost",
        "chisel",
        "dante-server",
    ];
    let name = basename(&process.path);
    PROGRAMS.into_iter().find(|p| *p == name)
}

/// Recognises a SOCKS server. `ssh_config_forwards` returns the `DynamicForward`
/// ports from the config files an ssh process reads (the caller does the I/O).
pub fn known_server(
    process: &ProcessInfo,
    ssh_config_forwards: impl FnOnce(&SshArgs) -> Vec<u16>,
) -> Option<KnownServer> {
    let program = program_of(process)?;
    let ports = match program {
        "ssh" => {
            let args = parse_ssh_argv(&process.argv);
            let mut ports: Vec<u16> = args.dynamic_forwards.iter().map(|f| f.port).collect();
            ports.extend(ssh_config_forwards(&args));
            if ports.is_empty() {
                return None;
            }
            SocksPorts::Only(ports)
        }
        "tor" => {
            let mut control = vec![9051];
            control.extend(option_values(&process.argv, "controlport").filter_map(port_of));
            SocksPorts::AnyExcept(control)
        }
        "gost" => {
            let ports: Vec<u16> = option_values(&process.argv, "l")
                .filter(|spec| gost_service_is_socks(spec))
                .filter_map(port_of)
                .collect();
            if ports.is_empty() {
                return None;
            }
            SocksPorts::Only(ports)
        }
        "chisel" => {
            if process.argv.get(1).map(String::as_str) != Some("client") {
                return None;
            }
            let ports: Vec<u16> = process
                .argv
                .iter()
                .skip(2)
                .filter_map(|remote| chisel_socks_port(remote))
                .collect();
            if ports.is_empty() {
                return None;
            }
            SocksPorts::Only(ports)
        }
        _ => SocksPorts::Any,
    };
    Some(KnownServer { program, ports })
}

/// Values of `-name v`, `-name=v`, `--name v`, `--name=v` and (tor style)
/// `Name v` in argv; `name` is matched case-insensitively.
fn option_values<'a>(argv: &'a [String], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let mut out = Vec::new();
    let mut i = 1;
    while i < argv.len() {
        let word = argv[i].trim_start_matches('-');
        let dashed = argv[i].starts_with('-');
        let (key, attached) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word, None),
        };
        if key.eq_ignore_ascii_case(name) && (dashed || name.len() > 1) {
            match attached {
                Some(v) => out.push(v),
                None => {
                    if let Some(v) = argv.get(i + 1) {
                        out.push(v.as_str());
                        i += 1;
                    }
                }
            }
        }
        i += 1;
    }
    out.into_iter()
}

/// The port at the end of `[scheme://][user@]host:port[?…]`, or a bare port.
fn port_of(spec: &str) -> Option<u16> {
    let rest = spec.split_once("://").map_or(spec, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let port = authority.rsplit(':').next().unwrap_or(authority);
    port.parse().ok().filter(|p| *p != 0)
}

/// gost `-L` services that accept SOCKS: socks/socks4/socks4a/socks5/socks5h
/// schemes (alone or as `socks5+tls`), and scheme-less or `auto` (HTTP + SOCKS).
fn gost_service_is_socks(spec: &str) -> bool {
    let Some((scheme, _)) = spec.split_once("://") else {
        return true;
    };
    let scheme = scheme.to_ascii_lowercase();
    let handler = scheme.split('+').next().unwrap_or("");
    handler.is_empty() || handler == "auto" || handler.starts_with("socks")
}

/// The local port of a chisel client `socks` remote, if `remote` is one.
fn chisel_socks_port(remote: &str) -> Option<u16> {
    if remote.starts_with("R:") {
        return None; // served by the chisel server, not this process
    }
    let head = remote.strip_suffix("socks")?;
    if head.is_empty() {
        return Some(1080);
    }
    let head = head.strip_suffix(':')?;
    head.rsplit(':').next()?.parse().ok().filter(|p| *p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(path: &str, argv: &[&str]) -> ProcessInfo {
        ProcessInfo {
            pid: 7,
            path: path.into(),
            argv: argv.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        }
    }

    fn known(path: &str, argv: &[&str]) -> Option<KnownServer> {
        known_server(&process(path, argv), |_| Vec::new())
    }

    #[test]
    fn ssh_needs_a_dynamic_forward() {
        let s = known("/usr/bin/ssh", &["ssh", "-N", "-D", "1080", "host"]).unwrap();
        assert_eq!(s.program, "ssh");
        assert!(s.ports.contains(1080) && !s.ports.contains(22));
        assert_eq!(
            known("/usr/bin/ssh", &["ssh", "-L", "8080:x:80", "host"]),
            None
        );
        // Forwards from the config files the caller read.
        let s = known_server(&process("/usr/bin/ssh", &["ssh", "host"]), |args| {
            assert_eq!(args.destination.as_deref(), Some("host"));
            vec![1090]
        })
        .unwrap();
        assert_eq!(s.ports, SocksPorts::Only(vec![1090]));
        // sshd is not ssh.
        assert_eq!(known("/usr/sbin/sshd", &["sshd", "-D"]), None);
    }

    #[test]
    fn by_basename_of_the_executable_never_argv0() {
        assert_eq!(
            known("/tmp/x/microsocks", &["./microsocks", "-p", "1"])
                .unwrap()
                .ports,
            SocksPorts::Any
        );
        // argv[0] is whatever the process wrote there.
        assert_eq!(known("/opt/bin/sockd-real", &["sockd"]), None);
        assert_eq!(
            known("/usr/bin/python3.11", &["ssh", "-D", "1080", "-N", "u@h"]),
            None
        );
        assert_eq!(
            known("/usr/sbin/sockd", &["anything"]).unwrap().program,
            "sockd"
        );
        assert_eq!(known("/usr/sbin/danted", &[]).unwrap().program, "danted");
        assert_eq!(
            known("/usr/bin/3proxy", &["3proxy", "/etc/3proxy.cfg"])
                .unwrap()
                .ports,
            SocksPorts::Any
        );
        assert_eq!(known("/usr/bin/curl", &["curl", "--socks5", "x"]), None);
        assert_eq!(known("/usr/bin/microsocks-not", &["microsocks-not"]), None);
    }

    #[test]
    fn tor_control_ports_excluded() {
        let s = known(
            "/usr/bin/tor",
            &["tor", "--ControlPort", "9999", "SocksPort", "9150"],
        )
        .unwrap();
        assert!(s.ports.contains(9050) && s.ports.contains(9150));
        assert!(!s.ports.contains(9051) && !s.ports.contains(9999));
    }

    #[test]
    fn gost_services() {
        let s = known(
            "/usr/local/bin/gost",
            &[
                "gost",
                "-L",
                "socks5://:1080",
                "-L=http://:8080",
                "-L",
                ":8888",
                "-L",
                "socks5+tls://u:p@0.0.0.0:1443?x=1",
            ],
        )
        .unwrap();
        assert_eq!(s.ports, SocksPorts::Only(vec![1080, 8888, 1443]));
        assert_eq!(
            known("/usr/local/bin/gost", &["gost", "-L", "http://:8080"]),
            None
        );
    }

    #[test]
    fn chisel_clients() {
        let s = known(
            "/usr/bin/chisel",
            &[
                "chisel",
                "client",
                "srv:8080",
                "socks",
                "5000:socks",
                "127.0.0.1:5001:socks",
                "R:socks",
                "3000:db:5432",
            ],
        )
        .unwrap();
        assert_eq!(s.ports, SocksPorts::Only(vec![1080, 5000, 5001]));
        assert_eq!(
            known(
                "/usr/bin/chisel",
                &["chisel", "server", "--socks5", "--reverse"]
            ),
            None
        );
        assert_eq!(
            known(
                "/usr/bin/chisel",
                &["chisel", "client", "srv", "8000:db:80"]
            ),
            None
        );
    }

    #[test]
    fn ports_of_specs() {
        assert_eq!(port_of("socks5://user:pw@[::1]:1080?x"), Some(1080));
        assert_eq!(port_of(":8888"), Some(8888));
        assert_eq!(port_of("9051"), Some(9051));
        assert_eq!(port_of("socks5://host"), None);
        assert!(!SocksPorts::Any.contains(-1) && !SocksPorts::Any.contains(70000));
    }
}
