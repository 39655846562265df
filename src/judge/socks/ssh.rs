//! OpenSSH client argv and `ssh_config` parsing: which ports an `ssh` process
//! serves as a SOCKS proxy (dynamic forwarding). Pure: the caller reads files.
//!
//! Forms understood: `-D 1080`, `-D1080`, `-D 127.0.0.1:1080`, `-D [::1]:1080`,
//! `-D *:1080`, `-o DynamicForward=1080`, `-oDynamicForward=1080`,
//! `-o "DynamicForward 1080"`, and `DynamicForward` lines in the config files ssh
//! reads (`-F file`, else `~/.ssh/config` then `/etc/ssh/ssh_config`).
//!
//! `Include` is followed where it applies (top level, or inside a matching block):
//! relative paths are under `~/.ssh` for user configs (`~/.ssh/config`, `-F file`)
//! and `/etc/ssh` for the system one, `~` is the owner's home, and `*`/`?` globs in
//! the file name expand in sorted order (the caller bounds depth and file count).
//!
//! Limits (documented in the README): in config files only lines outside any block,
//! `Host` blocks whose patterns match the destination as typed on the command line
//! (`*`/`?` globs, `!` negation) and `Match all` are honoured; other `Match` blocks
//! are skipped, globs in `Include` directory components are not expanded, and
//! `HostName` aliasing is not followed.

use crate::util::glob::{self, Dialect};

/// One dynamic forward: where ssh listens for SOCKS clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DynamicForward {
    /// Bind address as written (`127.0.0.1`, `::1`, `*`, `localhost`), if any.
    pub bind: Option<String>,
    pub port: u16,
}

/// What an ssh client's argv says about SOCKS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SshArgs {
    pub dynamic_forwards: Vec<DynamicForward>,
    /// `-F file` (`none` means no config file at all).
    pub config_file: Option<String>,
    /// Destination host as typed (user and port removed, lower-cased).
    pub destination: Option<String>,
    /// Libraries ssh loads into itself, with the option naming each: `-I`,
    /// `-o PKCS11Provider`, `-o SecurityKeyProvider` (`none`/`internal` left out).
    pub providers: Vec<(&'static str, String)>,
}

/// Options of ssh(1) that take an argument (OpenSSH 9 getopt string).
const OPTIONS_WITH_ARGUMENT: &str = "BbcDEeFIiJLlmOoPpQRSWw";

/// Parses `[bind:]port` / `[v6]:port`.
pub fn parse_dynamic_forward(spec: &str) -> Option<DynamicForward> {
    let spec = spec.trim();
    let (bind, port) = if let Some(rest) = spec.strip_prefix('[') {
        let (bind, after) = rest.split_once(']')?;
        (Some(bind), after.strip_prefix(':')?)
    } else {
        match spec.rsplit_once(':') {
            Some((bind, port)) => (Some(bind), port),
            None => (None, spec),
        }
    };
    let port: u16 = port.parse().ok()?;
    if port == 0 || bind.is_some_and(str::is_empty) {
        return None;
    }
    Some(DynamicForward {
        bind: bind.map(str::to_owned),
        port,
    })
}

/// Splits a config line or `-o` value into keyword and argument
/// (`Key Value`, `Key=Value`, `Key = Value`).
fn keyword_and_value(line: &str) -> Option<(String, &str)> {
    let line = line.trim();
    let end = line.find(|c: char| c.is_whitespace() || c == '=')?;
    let (key, rest) = line.split_at(end);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
    let rest = rest.trim_matches('"');
    Some((key.to_ascii_lowercase(), rest))
}

fn destination_host(arg: &str) -> String {
    if let Some(uri) = arg.strip_prefix("ssh://") {
        let authority = uri.split('/').next().unwrap_or(uri);
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = if let Some(v6) = host.strip_prefix('[') {
            v6.split(']').next().unwrap_or(v6)
        } else {
            host.split(':').next().unwrap_or(host)
        };
        return host.to_ascii_lowercase();
    }
    arg.rsplit_once('@')
        .map_or(arg, |(_, h)| h)
        .to_ascii_lowercase()
}

/// Parses an ssh client's argv (argv[0] included). Options after the destination
/// are honoured as OpenSSH does; the first word after that starts the remote command.
pub fn parse_ssh_argv(argv: &[String]) -> SshArgs {
    let mut out = SshArgs::default();
    let mut options_done = false;
    let mut words = argv.iter().skip(1);
    while let Some(word) = words.next() {
        if !options_done && word == "--" {
            options_done = true;
            continue;
        }
        let is_option = !options_done && word.len() > 1 && word.starts_with('-');
        if !is_option {
            if out.destination.is_some() {
                break; // the remote command
            }
            out.destination = Some(destination_host(word));
            continue;
        }
        for (i, c) in word[1..].char_indices() {
            if !OPTIONS_WITH_ARGUMENT.contains(c) {
                continue;
            }
            let attached = &word[1 + i + c.len_utf8()..];
            let value = if attached.is_empty() {
                match words.next() {
                    Some(v) => v.as_str(),
                    None => "",
                }
            } else {
                attached
            };
            match c {
                'D' => out.dynamic_forwards.extend(parse_dynamic_forward(value)),
                'F' => out.config_file = Some(value.to_owned()),
                'I' => out.providers.push(("ssh -I", value.to_owned())),
                'o' => {
                    if let Some((key, v)) = keyword_and_value(value) {
                        let library =
                            !v.eq_ignore_ascii_case("none") && !v.eq_ignore_ascii_case("internal");
                        match key.as_str() {
                            "dynamicforward" => {
                                out.dynamic_forwards.extend(parse_dynamic_forward(v))
                            }
                            "pkcs11provider" if library => {
                                out.providers.push(("ssh -o PKCS11Provider", v.to_owned()))
                            }
                            "securitykeyprovider" if library => out
                                .providers
                                .push(("ssh -o SecurityKeyProvider", v.to_owned())),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
            break;
        }
    }
    out
}

/// Whether a `Host` line's patterns select `destination` (a negated match wins).
pub fn host_line_matches(patterns: &str, destination: Option<&str>) -> bool {
    let mut matched = false;
    for pattern in patterns.split([' ', '\t', ',']).filter(|p| !p.is_empty()) {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern),
        };
        let hit = match destination {
            // Undecided (over the glob's bounds): the block is taken to apply (a
            // pattern selects, a negated one does not exclude), so its
            // DynamicForward counts and a SOCKS listener is reported, not missed.
            Some(d) => glob::matches(Dialect::Ssh, pattern, d).unwrap_or(!negated),
            // Destination unknown: only a catch-all can be assumed to apply.
            None => pattern == "*",
        };
        if hit && negated {
            return false;
        }
        matched |= hit;
    }
    matched
}

/// What one config file says that applies to a destination.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigFindings {
    pub forwards: Vec<DynamicForward>,
    /// `Include` arguments, as written, in order (each may be a glob).
    pub includes: Vec<String>,
    /// `PKCS11Provider` / `SecurityKeyProvider` libraries (keyword, value as
    /// written) in blocks that apply or may apply (any `Match`).
    pub providers: Vec<(&'static str, String)>,
}

/// `DynamicForward` entries and `Include`s of one config file that apply to
/// `destination`.
pub fn read_config(text: &str, destination: Option<&str>) -> ConfigFindings {
    let mut applies = true;
    // A `Match` block other than `all` may apply: a library it names counts.
    let mut may_apply = true;
    let mut found = ConfigFindings::default();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let Some((key, value)) = keyword_and_value(line) else {
            continue;
        };
        let library =
            !value.eq_ignore_ascii_case("none") && !value.eq_ignore_ascii_case("internal");
        match key.as_str() {
            "host" => {
                applies = host_line_matches(value, destination);
                may_apply = applies;
            }
            "match" => {
                applies = value.eq_ignore_ascii_case("all");
                may_apply = true;
            }
            "pkcs11provider" if may_apply && library => {
                found.providers.push(("PKCS11Provider", value.to_owned()))
            }
            "securitykeyprovider" if may_apply && library => found
                .providers
                .push(("SecurityKeyProvider", value.to_owned())),
            "dynamicforward" if applies => found.forwards.extend(parse_dynamic_forward(value)),
            "include" if applies => found.includes.extend(
                value
                    .split_whitespace()
                    .map(|word| word.trim_matches('"').to_owned()),
            ),
            _ => {}
        }
    }
    found
}

/// The path an `Include` argument names: `~/` is `home`; a relative path is under
/// `~/.ssh` (user config) or `/etc/ssh` (system config). `None` when `~` is needed
/// but the home is unknown.
pub fn include_path(argument: &str, home: Option<&str>, user_config: bool) -> Option<String> {
    let home = home
        .filter(|h| !h.is_empty())
        .map(|h| h.trim_end_matches('/'));
    if argument.starts_with('/') {
        Some(argument.to_owned())
    } else if let Some(rest) = argument.strip_prefix("~/") {
        Some(format!("{}/{rest}", home?))
    } else if user_config {
        Some(format!("{}/.ssh/{argument}", home?))
    } else {
        Some(format!("/etc/ssh/{argument}"))
    }
}

/// Whether a path's file name is a glob (`*` or `?`).
pub fn has_glob(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|name| name.contains(['*', '?']))
}

/// The system-wide client config.
pub const SYSTEM_CONFIG: &str = "/etc/ssh/ssh_config";

/// Config files ssh would read for these args, in order; `home` is the owner's home.
pub fn config_paths(args: &SshArgs, home: Option<&str>, cwd: &str) -> Vec<String> {
    match args.config_file.as_deref() {
        Some("none") => Vec::new(),
        Some(file) if file.starts_with('/') => vec![file.to_owned()],
        Some(file) if file.starts_with("~/") => home
            .map(|h| vec![format!("{}/{}", h.trim_end_matches('/'), &file[2..])])
            .unwrap_or_default(),
        Some(file) if !cwd.is_empty() => vec![format!("{}/{}", cwd.trim_end_matches('/'), file)],
        Some(_) => Vec::new(),
        None => {
            let mut paths = Vec::new();
            if let Some(home) = home.filter(|h| !h.is_empty()) {
                paths.push(format!("{}/.ssh/config", home.trim_end_matches('/')));
            }
            paths.push(SYSTEM_CONFIG.to_owned());
            paths
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    fn ports(args: &SshArgs) -> Vec<u16> {
        args.dynamic_forwards.iter().map(|f| f.port).collect()
    }

    #[test]
    fn dash_d_forms() {
        assert_eq!(
            ports(&parse_ssh_argv(&argv(&["ssh", "-D", "1080", "host"]))),
            [1080]
        );
        let a = parse_ssh_argv(&argv(&["ssh", "-D127.0.0.1:1081", "-N", "me@host"]));
        assert_eq!(
            a.dynamic_forwards,
            [DynamicForward {
                bind: Some("127.0.0.1".into()),
                port: 1081
            }]
        );
        assert_eq!(a.destination.as_deref(), Some("host"));
        let a = parse_ssh_argv(&argv(&["ssh", "-D", "[::1]:1082", "host"]));
        assert_eq!(
            a.dynamic_forwards,
            [DynamicForward {
                bind: Some("::1".into()),
                port: 1082
            }]
        );
        // Bundled flags: -ND 1083, -fNqD1084.
        assert_eq!(
            ports(&parse_ssh_argv(&argv(&["ssh", "-ND", "1083", "h"]))),
            [1083]
        );
        assert_eq!(
            ports(&parse_ssh_argv(&argv(&["ssh", "-fNqD1084", "h"]))),
            [1084]
        );
        // -o forms.
        assert_eq!(
            ports(&parse_ssh_argv(&argv(&[
                "ssh",
                "-oDynamicForward=1085",
                "h"
            ]))),
            [1085]
        );
        assert_eq!(
            ports(&parse_ssh_argv(&argv(&[
                "ssh",
                "-o",
                "DynamicForward 1086",
                "h"
            ]))),
            [1086]
        );
        assert_eq!(
            ports(&parse_ssh_argv(&argv(&[
                "ssh",
                "-o",
                "dynamicforward = *:1087",
                "h"
            ]))),
            [1087]
        );
        // Options after the destination count; the remote command does not.
        assert_eq!(
            ports(&parse_ssh_argv(&argv(&["ssh", "host", "-D", "1088"]))),
            [1088]
        );
        assert!(parse_ssh_argv(&argv(&["ssh", "host", "ls", "-D", "1089"]))
            .dynamic_forwards
            .is_empty());
        // -L and -p take arguments that are not SOCKS ports.
        let a = parse_ssh_argv(&argv(&[
            "ssh",
            "-L",
            "8080:localhost:80",
            "-p",
            "2222",
            "host",
        ]));
        assert!(a.dynamic_forwards.is_empty());
        assert_eq!(a.destination.as_deref(), Some("host"));
        // Garbage.
        assert!(parse_ssh_argv(&argv(&["ssh", "-D", "notaport", "h"]))
            .dynamic_forwards
            .is_empty());
        assert!(parse_ssh_argv(&argv(&["ssh", "-D"]))
            .dynamic_forwards
            .is_empty());
        assert!(parse_ssh_argv(&argv(&["ssh", "-D", "0", "h"]))
            .dynamic_forwards
            .is_empty());
        assert!(parse_ssh_argv(&argv(&[])).dynamic_forwards.is_empty());
    }

    #[test]
    fn destinations_and_config_file() {
        let a = parse_ssh_argv(&argv(&[
            "ssh",
            "-F",
            "/tmp/cfg",
            "ssh://u@Jump.Example:2222",
        ]));
        assert_eq!(a.config_file.as_deref(), Some("/tmp/cfg"));
        assert_eq!(a.destination.as_deref(), Some("jump.example"));
        let a = parse_ssh_argv(&argv(&["ssh", "-Fcfg", "--", "-weird"]));
        assert_eq!(a.config_file.as_deref(), Some("cfg"));
        assert_eq!(a.destination.as_deref(), Some("-weird"));
        assert_eq!(config_paths(&a, Some("/root"), "/work"), ["/work/cfg"]);
        let none = parse_ssh_argv(&argv(&["ssh", "-F", "none", "h"]));
        assert!(config_paths(&none, Some("/root"), "/").is_empty());
        let plain = parse_ssh_argv(&argv(&["ssh", "h"]));
        assert_eq!(
            config_paths(&plain, Some("/home/u/"), "/"),
            ["/home/u/.ssh/config", "/etc/ssh/ssh_config"]
        );
        assert_eq!(config_paths(&plain, None, "/"), ["/etc/ssh/ssh_config"]);
    }

    #[test]
    fn config_files() {
        let text = "\
# global
DynamicForward 1080
Host jump bastion-*
    DynamicForward=127.0.0.1:1081   # comment
Host *.internal !secret.internal
    DynamicForward [::1]:1082
Host *
    dynamicforward 1083
Match host other exec \"true\"
    DynamicForward 1084
Match all
    DynamicForward 1085
";
        let ports = |dest: Option<&str>| -> Vec<u16> {
            read_config(text, dest)
                .forwards
                .iter()
                .map(|f| f.port)
                .collect()
        };
        assert_eq!(ports(Some("jump")), [1080, 1081, 1083, 1085]);
        assert_eq!(ports(Some("bastion-7")), [1080, 1081, 1083, 1085]);
        assert_eq!(ports(Some("db.internal")), [1080, 1082, 1083, 1085]);
        assert_eq!(ports(Some("secret.internal")), [1080, 1083, 1085]);
        assert_eq!(ports(None), [1080, 1083, 1085]);
        assert!(read_config("Host *\n  Port 22\n", Some("x"))
            .forwards
            .is_empty());
    }

    #[test]
    fn includes_where_they_apply() {
        let text = "Include top.conf\nHost other\n  Include other.conf\nHost pivot\n  Include conf.d/*.conf ~/x\n  DynamicForward 1080\n";
        let found = read_config(text, Some("pivot"));
        assert_eq!(found.includes, vec!["top.conf", "conf.d/*.conf", "~/x"]);
        assert_eq!(found.forwards.len(), 1);
        assert_eq!(read_config(text, None).includes, vec!["top.conf"]);
        assert_eq!(
            include_path("conf.d/*", Some("/home/u/"), true).as_deref(),
            Some("/home/u/.ssh/conf.d/*")
        );
        assert_eq!(
            include_path("ssh_config.d/*.conf", None, false).as_deref(),
            Some("/etc/ssh/ssh_config.d/*.conf")
        );
        assert_eq!(
            include_path("~/y", Some("/root"), false).as_deref(),
            Some("/root/y")
        );
        assert_eq!(include_path("/abs", None, true).as_deref(), Some("/abs"));
        assert_eq!(include_path("rel", None, true), None);
        assert!(has_glob("/etc/ssh/ssh_config.d/*.conf"));
        assert!(!has_glob("/etc/ssh/conf?.d/x"));
    }

    #[test]
    fn globs() {
        assert!(host_line_matches("bastion-? *.corp", Some("BASTION-1")));
        assert!(!host_line_matches("bastion-?", Some("bastion-12")));
        assert!(host_line_matches("*.corp", Some("a.b.corp")));
        assert!(!host_line_matches("*.corp", Some("corp")));
        assert!(host_line_matches("a b,c", Some("c")));
        // Over the glob's bounds the block applies: a pattern selects, a negated
        // one does not exclude.
        let long = "a".repeat(crate::util::glob::MAX_SUBJECT_BYTES + 1);
        assert!(host_line_matches("x*", Some(&long)));
        assert!(host_line_matches("* !x*", Some(&long)));
        // Thousands of stars cost linear time (the old matcher was exponential).
        let stars = format!("{}x !{}y", "*".repeat(5000), "*?".repeat(2500));
        assert!(!host_line_matches(&stars, Some(&"a".repeat(60))));
        assert!(!host_line_matches("* !c", Some("c")));
        assert!(!host_line_matches("!c", Some("d")));
    }

    #[test]
    fn provider_libraries_in_configs_that_may_apply() {
        let text = "PKCS11Provider /a.so\nHost other\n  PKCS11Provider /b.so\n\
                    Host pivot\n  SecurityKeyProvider internal\n  pkcs11provider /c.so\n\
                    Match exec true\n  SecurityKeyProvider /d.so\n";
        let found = read_config(text, Some("pivot"));
        assert_eq!(
            found.providers,
            [
                ("PKCS11Provider", "/a.so".to_owned()),
                ("PKCS11Provider", "/c.so".to_owned()),
                ("SecurityKeyProvider", "/d.so".to_owned()),
            ]
        );
        assert!(read_config("PKCS11Provider none\n", None)
            .providers
            .is_empty());
    }
}
