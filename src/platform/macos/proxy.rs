//! The system-wide SOCKS proxy (System Settings > Network > Proxies), read from
//! SCDynamicStore so the SOCKS classifier can match connections to it. The value
//! parsing is pure and portable; only the store lookup is macOS code.

/// A configured and enabled SOCKS proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocksProxy {
    pub host: String,
    pub port: u16,
}

/// Port macOS uses when `SOCKSPort` is missing.
pub const DEFAULT_SOCKS_PORT: u16 = 1080;

/// The proxy from the dictionary's `SOCKSEnable`, `SOCKSProxy` and `SOCKSPort`
/// values; `None` unless enabled with a host.
pub fn socks_proxy_from(
    enable: Option<i64>,
    host: Option<&str>,
    port: Option<i64>,
) -> Option<SocksProxy> {
    if enable.unwrap_or(0) == 0 {
        return None;
    }
    let host = host.map(str::trim).filter(|h| !h.is_empty())?;
    let port = match port {
        None => DEFAULT_SOCKS_PORT,
        Some(p) => u16::try_from(p).ok().filter(|&p| p != 0)?,
    };
    Some(SocksProxy {
        host: host.to_string(),
        port,
    })
}

/// The system SOCKS proxy, if one is configured and enabled (always `None` off macOS).
#[cfg(not(target_os = "macos"))]
pub fn system_socks_proxy() -> Option<SocksProxy> {
    None
}

/// The system SOCKS proxy, if one is configured and enabled.
#[cfg(target_os = "macos")]
pub fn system_socks_proxy() -> Option<SocksProxy> {
    use core_foundation::number::CFNumber;
    use core_foundation::string::CFString;
    use system_configuration::dynamic_store::SCDynamicStoreBuilder;

    let store = SCDynamicStoreBuilder::new("an1256").build()?;
    let proxies = store.get_proxies()?;
    let number = |key: &'static str| -> Option<i64> {
        proxies
            .find(CFString::from_static_string(key))
            .and_then(|v| v.downcast::<CFNumber>())
            .and_then(|n| n.to_i64())
    };
    let host = proxies
        .find(CFString::from_static_string("SOCKSProxy"))
        .and_then(|v| v.downcast::<CFString>())
        .map(|s| s.to_string());
    socks_proxy_from(number("SOCKSEnable"), host.as_deref(), number("SOCKSPort"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_proxy_with_port() {
        assert_eq!(
            socks_proxy_from(Some(1), Some("127.0.0.1"), Some(9050)),
            Some(SocksProxy {
                host: "127.0.0.1".into(),
                port: 9050
            })
        );
        assert_eq!(
            socks_proxy_from(Some(1), Some(" proxy.corp "), None).map(|p| (p.host, p.port)),
            Some(("proxy.corp".to_string(), 1080))
        );
    }

    #[test]
    fn disabled_empty_or_bad_values_give_none() {
        assert_eq!(
            socks_proxy_from(Some(0), Some("127.0.0.1"), Some(1080)),
            None
        );
        assert_eq!(socks_proxy_from(None, Some("127.0.0.1"), Some(1080)), None);
        assert_eq!(socks_proxy_from(Some(1), Some("  "), Some(1080)), None);
        assert_eq!(socks_proxy_from(Some(1), None, Some(1080)), None);
        assert_eq!(socks_proxy_from(Some(1), Some("h"), Some(70000)), None);
        assert_eq!(socks_proxy_from(Some(1), Some("h"), Some(-1)), None);
        assert_eq!(socks_proxy_from(Some(1), Some("h"), Some(0)), None);
    }
}
