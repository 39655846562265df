//! Proxy URLs (`socks5h://user@host:1080`) and the environment variables that carry
//! them, and matching a proxy endpoint against a connection's remote end. Pure.
//!
//! Matching rule for the proxy host:
//! - an IP literal matches that address (IPv4-mapped IPv6 unmapped);
//! - `localhost` (and `localhost.`/`*.localhost`) matches any loopback address;
//! - any other name is never resolved (no DNS from a scanner running as root on
//!   every host): it matches a connection to the proxy's port on any address. The
//!   process is configured for a SOCKS proxy on that port and talks to that port,
//!   which is the evidence we need; a direct connection elsewhere (another port)
//!   never matches.

use std::net::IpAddr;

/// The variables the check reads are the model's: the scan keeps exactly those.
pub use crate::model::{PRELOAD_VARIABLES, PROXY_VARIABLES};

/// Default port when a SOCKS URL names none.
pub const DEFAULT_SOCKS_PORT: u16 = 1080;

/// Where a proxy is: host as written (lower-cased, brackets removed) and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyEndpoint {
    pub host: String,
    pub port: u16,
}

/// Parses `socks4://`, `socks4a://`, `socks5://` or `socks5h://[user[:pass]@]host[:port][/]`.
/// Other schemes (http://…) are not SOCKS: `None`.
pub fn parse_socks_url(value: &str) -> Option<ProxyEndpoint> {
    let value = value.trim();
    let (scheme, rest) = value.split_once("://")?;
    if !matches!(
        scheme.to_ascii_lowercase().as_str(),
        "socks" | "socks4" | "socks4a" | "socks5" | "socks5h"
    ) {
        return None;
    }
    parse_host_port(rest)
}

/// Parses `[user[:pass]@]host[:port][/path]`, host possibly a bracketed IPv6.
pub fn parse_host_port(authority: &str) -> Option<ProxyEndpoint> {
    let authority = authority.split(['/', '?', '#']).next().unwrap_or("");
    // user:pass may itself contain '@' only percent-encoded; the last '@' ends it.
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => DEFAULT_SOCKS_PORT,
            None => return None,
        };
        (host, port)
    } else {
        match hostport.rsplit_once(':') {
            // A bare IPv6 literal without brackets is ambiguous: take it whole.
            Some((h, _)) if h.contains(':') => (hostport, DEFAULT_SOCKS_PORT),
            Some((h, p)) => (h, p.parse().ok()?),
            None => (hostport, DEFAULT_SOCKS_PORT),
        }
    };
    if host.is_empty() || port == 0 {
        return None;
    }
    Some(ProxyEndpoint {
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// Every SOCKS proxy the environment (`KEY=value` strings) names, deduplicated.
/// `socks_proxy`/`SOCKS_PROXY` may omit the scheme (`host:port`), as several tools
/// accept; the other variables must say `socks…://`.
pub fn socks_proxies_in_environment(environment: &[String]) -> Vec<ProxyEndpoint> {
    let mut found: Vec<ProxyEndpoint> = Vec::new();
    for name in PROXY_VARIABLES {
        let Some(value) = lookup(environment, name) else {
            continue;
        };
        let parsed = parse_socks_url(value).or_else(|| {
            (name.eq_ignore_ascii_case("socks_proxy") && !value.contains("://"))
                .then(|| parse_host_port(value))
                .flatten()
        });
        if let Some(endpoint) = parsed {
            if !found.contains(&endpoint) {
                found.push(endpoint);
            }
        }
    }
    found
}

/// The value of `name` in a `KEY=value` environment (first occurrence, as getenv).
pub fn lookup<'a>(environment: &'a [String], name: &str) -> Option<&'a str> {
    // `name` holds no '=': an entry starting with `name=` has exactly that key.
    environment.iter().find_map(|entry| {
        entry
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
    })
}

/// Library basenames that route a process's connections through SOCKS.
pub fn is_socks_preload_library(path: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    base.starts_with("libproxychains")
        || base.starts_with("libtorsocks")
        || base.starts_with("libtsocks")
}

/// Whether `LD_PRELOAD` / `DYLD_INSERT_LIBRARIES` name a SOCKS library.
pub fn environment_preloads_socks(environment: &[String]) -> bool {
    PRELOAD_VARIABLES.iter().any(|name| {
        lookup(environment, name).is_some_and(|value| {
            value
                .split([':', ' '])
                .filter(|p| !p.is_empty())
                .any(is_socks_preload_library)
        })
    })
}

/// Unmaps `::ffff:a.b.c.d` so one address has one form.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn is_localhost_name(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    host == "localhost" || host.ends_with(".localhost")
}

/// Whether a connection to `remote_address:remote_port` goes to `proxy` (see the
/// module doc for the rule on names).
pub fn endpoint_matches(proxy: &ProxyEndpoint, remote_address: &str, remote_port: i32) -> bool {
    if i32::from(proxy.port) != remote_port {
        return false;
    }
    let Ok(remote) = remote_address.parse::<IpAddr>().map(canonical_ip) else {
        return false;
    };
    if let Ok(ip) = proxy.host.parse::<IpAddr>() {
        return canonical_ip(ip) == remote;
    }
    if is_localhost_name(&proxy.host) {
        return remote.is_loopback();
    }
    // A name we will not resolve: the port is the evidence (see module doc).
    !remote.is_unspecified()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(host: &str, port: u16) -> Option<ProxyEndpoint> {
        Some(ProxyEndpoint {
            host: host.into(),
            port,
        })
    }

    #[test]
    fn socks_urls() {
        assert_eq!(
            parse_socks_url("socks5h://127.0.0.1:9050"),
            ep("127.0.0.1", 9050)
        );
        assert_eq!(
            parse_socks_url("socks5://user:pw@Proxy.Corp:1081/"),
            ep("proxy.corp", 1081)
        );
        assert_eq!(parse_socks_url("SOCKS4a://[::1]:1085"), ep("::1", 1085));
        assert_eq!(parse_socks_url("socks4://[::1]"), ep("::1", 1080));
        assert_eq!(parse_socks_url("socks5://localhost"), ep("localhost", 1080));
        assert_eq!(parse_socks_url(" socks5://a@b@host:7 "), ep("host", 7));
        assert_eq!(parse_socks_url("http://127.0.0.1:1080"), None);
        assert_eq!(parse_socks_url("https://proxy:3128"), None);
        assert_eq!(parse_socks_url("127.0.0.1:1080"), None);
        assert_eq!(parse_socks_url("socks5://host:notaport"), None);
        assert_eq!(parse_socks_url("socks5://host:0"), None);
        assert_eq!(parse_socks_url("socks5://host:70000"), None);
        assert_eq!(parse_socks_url("socks5://:1080"), None);
        assert_eq!(parse_socks_url("socks5://[::1"), None);
    }

    /// The scan keeps only `SOCKS_ENVIRONMENT_VARIABLES` of an environment: a
    /// variable the check reads but the scan drops would always look unset.
    #[test]
    fn the_scan_keeps_every_variable_the_check_reads() {
        use crate::model::{sets_one_of, SOCKS_ENVIRONMENT_VARIABLES};
        let read = PROXY_VARIABLES
            .iter()
            .chain(&PRELOAD_VARIABLES)
            .chain(&[super::super::proxychains::CONF_FILE_VARIABLE]);
        for name in read {
            assert!(SOCKS_ENVIRONMENT_VARIABLES.contains(name), "{name}");
            assert!(sets_one_of(
                format!("{name}=x").as_bytes(),
                &SOCKS_ENVIRONMENT_VARIABLES
            ));
            assert!(sets_one_of(
                format!("{name}=").as_bytes(),
                &SOCKS_ENVIRONMENT_VARIABLES
            ));
            assert!(!sets_one_of(name.as_bytes(), &SOCKS_ENVIRONMENT_VARIABLES));
            assert!(!sets_one_of(
                format!("{name}X=x").as_bytes(),
                &SOCKS_ENVIRONMENT_VARIABLES
            ));
            assert!(!sets_one_of(
                format!("X{name}=x").as_bytes(),
                &SOCKS_ENVIRONMENT_VARIABLES
            ));
        }
    }

    #[test]
    fn environment_variables() {
        let env: Vec<String> = [
            "PATH=/usr/bin",
            "http_proxy=http://web:3128",
            "https_proxy=socks5h://127.0.0.1:9050",
            "ALL_PROXY=socks5://127.0.0.1:9050",
            "SOCKS_PROXY=10.0.0.1:1086",
            "all_proxy=not a url",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            socks_proxies_in_environment(&env),
            vec![
                ProxyEndpoint {
                    host: "127.0.0.1".into(),
                    port: 9050
                },
                ProxyEndpoint {
                    host: "10.0.0.1".into(),
                    port: 1086
                },
            ]
        );
        // Only socks_proxy may omit the scheme.
        let env = vec!["ALL_PROXY=127.0.0.1:1080".to_string()];
        assert!(socks_proxies_in_environment(&env).is_empty());
        assert!(socks_proxies_in_environment(&[]).is_empty());
        // First occurrence wins, like getenv.
        let env = vec![
            "ALL_PROXY=socks5://a:1".to_string(),
            "ALL_PROXY=socks5://b:2".to_string(),
        ];
        assert_eq!(
            socks_proxies_in_environment(&env),
            vec![ProxyEndpoint {
                host: "a".into(),
                port: 1
            }]
        );
    }

    #[test]
    fn preload_libraries() {
        assert!(is_socks_preload_library(
            "/usr/lib/x86_64-linux-gnu/libproxychains.so.4"
        ));
        assert!(is_socks_preload_library("/usr/lib/torsocks/libtorsocks.so"));
        assert!(is_socks_preload_library("libtsocks.so.1.8"));
        assert!(!is_socks_preload_library("/usr/lib/libc.so.6"));
        assert!(!is_socks_preload_library("/opt/libproxychains/libc.so"));
        let env = vec!["LD_PRELOAD=/lib/a.so /usr/lib/libtorsocks.so".to_string()];
        assert!(environment_preloads_socks(&env));
        let env = vec!["DYLD_INSERT_LIBRARIES=/opt/x.dylib:/opt/libproxychains4.dylib".to_string()];
        assert!(environment_preloads_socks(&env));
        let env = vec![
            "LD_PRELOAD=/lib/libfaketime.so".to_string(),
            "X=libtorsocks".to_string(),
        ];
        assert!(!environment_preloads_socks(&env));
    }

    #[test]
    fn matching_endpoints() {
        let ip = ProxyEndpoint {
            host: "127.0.0.1".into(),
            port: 9050,
        };
        assert!(endpoint_matches(&ip, "127.0.0.1", 9050));
        assert!(endpoint_matches(&ip, "::ffff:127.0.0.1", 9050));
        assert!(!endpoint_matches(&ip, "127.0.0.2", 9050));
        assert!(!endpoint_matches(&ip, "127.0.0.1", 443));
        let v6 = ProxyEndpoint {
            host: "::1".into(),
            port: 1080,
        };
        assert!(endpoint_matches(&v6, "::1", 1080));
        assert!(!endpoint_matches(&v6, "127.0.0.1", 1080));
        let local = ProxyEndpoint {
            host: "localhost".into(),
            port: 1080,
        };
        assert!(endpoint_matches(&local, "127.0.0.1", 1080));
        assert!(endpoint_matches(&local, "127.5.0.1", 1080));
        assert!(endpoint_matches(&local, "::1", 1080));
        assert!(!endpoint_matches(&local, "10.0.0.1", 1080));
        // Names are never resolved: the port decides.
        let name = ProxyEndpoint {
            host: "proxy.corp".into(),
            port: 1086,
        };
        assert!(endpoint_matches(&name, "10.9.9.9", 1086));
        assert!(!endpoint_matches(&name, "10.9.9.9", 443));
        assert!(!endpoint_matches(&name, "0.0.0.0", 1086));
        assert!(!endpoint_matches(&name, "garbage", 1086));
    }
}
