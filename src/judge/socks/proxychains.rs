//! proxychains' targets: the SOCKS proxies a proxychains-wrapped process is
//! configured to go through. Pure: the caller reads the file.
//!
//! Which file a process uses, as proxychains-ng's library looks for it:
//! `PROXYCHAINS_CONF_FILE` (the `proxychains4` launcher always sets it, from `-f`
//! or its own search), else `./proxychains.conf` in the process's working
//! directory, `~/.proxychains/proxychains.conf`, `/etc/proxychains4.conf` (Debian's
//! name) and `/etc/proxychains.conf`; the first that exists wins.
//!
//! In the file, the `[ProxyList]` section lists one proxy a line:
//! `type host port [user pass]`; `socks4` and `socks5` proxies are SOCKS
//! (`http` and `raw` are not).

use super::proxy::{lookup, ProxyEndpoint};

/// The environment variable the launcher passes the config path in.
pub const CONF_FILE_VARIABLE: &str = crate::model::PROXYCHAINS_CONF_VARIABLE;

/// Candidate config paths, in proxychains' order (the first readable one applies).
pub fn config_paths(environment: &[String], home: Option<&str>, cwd: &str) -> Vec<String> {
    if let Some(path) = lookup(environment, CONF_FILE_VARIABLE).filter(|p| !p.is_empty()) {
        return vec![if path.starts_with('/') || cwd.is_empty() {
            path.to_owned()
        } else {
            format!("{}/{path}", cwd.trim_end_matches('/'))
        }];
    }
    let mut paths = Vec::new();
    if !cwd.is_empty() {
        paths.push(format!("{}/proxychains.conf", cwd.trim_end_matches('/')));
    }
    if let Some(home) = home.filter(|h| !h.is_empty()) {
        paths.push(format!(
            "{}/.proxychains/proxychains.conf",
            home.trim_end_matches('/')
        ));
    }
    paths.push("/etc/proxychains4.conf".to_owned());
    paths.push("/etc/proxychains.conf".to_owned());
    paths
}

/// The `socks4`/`socks5` proxies of a proxychains config's `[ProxyList]`.
pub fn socks_proxies_in_config(text: &str) -> Vec<ProxyEndpoint> {
    let mut in_list = false;
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.starts_with('[') {
            in_list = line.eq_ignore_ascii_case("[ProxyList]");
            continue;
        }
        if !in_list {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(kind), Some(host), Some(port)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        if !matches!(kind.to_ascii_lowercase().as_str(), "socks4" | "socks5") {
            continue;
        }
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        found.push(ProxyEndpoint {
            host: host.trim_matches(['[', ']']).to_ascii_lowercase(),
            port,
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(host: &str, port: u16) -> ProxyEndpoint {
        ProxyEndpoint {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn proxy_list_socks_entries_only() {
        let text = "\
strict_chain
# socks5 10.0.0.1 1111   (a comment, and before the list anyway)
socks5 10.9.9.9 9999
[ProxyList]
socks5  127.0.0.1 4444   user secret
socks4 192.0.2.7 1080 # trailing comment
http 127.0.0.1 8080
raw 127.0.0.1 9000
socks5 localhost notaport
socks5 [::1] 7000
Socks5 PROXY.example 1081
";
        assert_eq!(
            socks_proxies_in_config(text),
            vec![
                ep("127.0.0.1", 4444),
                ep("192.0.2.7", 1080),
                ep("::1", 7000),
                ep("proxy.example", 1081),
            ]
        );
        assert!(socks_proxies_in_config("socks5 127.0.0.1 1080\n").is_empty());
        assert!(socks_proxies_in_config("[ProxyList]\n[Other]\nsocks5 1.2.3.4 5\n").is_empty());
    }

    #[test]
    fn config_search_order() {
        let env = vec![format!("{CONF_FILE_VARIABLE}=/opt/pc.conf")];
        assert_eq!(
            config_paths(&env, Some("/home/u"), "/w"),
            vec!["/opt/pc.conf"]
        );
        let relative = vec![format!("{CONF_FILE_VARIABLE}=pc.conf")];
        assert_eq!(config_paths(&relative, None, "/w/"), vec!["/w/pc.conf"]);
        assert_eq!(
            config_paths(&[], Some("/home/u"), "/w"),
            vec![
                "/w/proxychains.conf",
                "/home/u/.proxychains/proxychains.conf",
                "/etc/proxychains4.conf",
                "/etc/proxychains.conf",
            ]
        );
        let empty = vec![format!("{CONF_FILE_VARIABLE}=")];
        assert_eq!(config_paths(&empty, None, "").len(), 2);
    }
}
