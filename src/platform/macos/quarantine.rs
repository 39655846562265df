//! Parser for the `com.apple.quarantine` extended attribute that browsers, mail
//! clients and AirDrop set on what they download. Pure and portable.
//!
//! Value: `flags;hex-time;agent;UUID`, e.g.
//! `0083;65a1b2c3;Safari;0B3C6E2A-8D1F-4C55-9E0B-2A1C3D4E5F60`. `flags` and the time
//! are hex; the agent (the downloading app) is what an analyst wants to see.

/// Name of the attribute.
pub const QUARANTINE_XATTR: &str = "com.apple.quarantine";

/// One parsed quarantine attribute. Fields that do not parse are `None`/empty:
/// the attribute's presence alone already means "quarantined".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Quarantine {
    pub flags: Option<u32>,
    /// Seconds since the Unix epoch.
    pub timestamp: Option<i64>,
    /// The app that downloaded the file (`Safari`, `Google Chrome`, `curl`…).
    pub agent: String,
    /// Event UUID in the quarantine events database.
    pub event_id: String,
}

/// Longest value read; real ones are well under 100 bytes.
pub const MAX_QUARANTINE_BYTES: usize = 1024;

/// Parses the raw attribute value (a trailing NUL, if any, is ignored).
pub fn parse(value: &[u8]) -> Quarantine {
    let value = value.get(..MAX_QUARANTINE_BYTES).unwrap_or(value);
    let text = String::from_utf8_lossy(value);
    let text = text.trim_end_matches(['\0', '\n', ' ']);
    let mut fields = text.splitn(4, ';');
    let flags = fields
        .next()
        .and_then(|f| u32::from_str_radix(f.trim(), 16).ok());
    let timestamp = fields
        .next()
        .and_then(|t| i64::from_str_radix(t.trim(), 16).ok());
    let agent = fields.next().unwrap_or_default().to_string();
    let event_id = fields.next().unwrap_or_default().to_string();
    Quarantine {
        flags,
        timestamp,
        agent,
        event_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_browser_download() {
        let q = parse(b"0083;65a1b2c3;Safari;0B3C6E2A-8D1F-4C55-9E0B-2A1C3D4E5F60");
        assert_eq!(q.flags, Some(0x83));
        assert_eq!(q.timestamp, Some(0x65a1_b2c3));
        assert_eq!(q.agent, "Safari");
        assert_eq!(q.event_id, "0B3C6E2A-8D1F-4C55-9E0B-2A1C3D4E5F60");
    }

    #[test]
    fn agent_with_spaces_and_missing_uuid() {
        let q = parse(b"0081;5f000000;Google Chrome;\0");
        assert_eq!(q.agent, "Google Chrome");
        assert_eq!(q.event_id, "");
        let q = parse(b"0001;5f000000;curl");
        assert_eq!((q.flags, q.agent.as_str()), (Some(1), "curl"));
        assert_eq!(q.event_id, "");
    }

    #[test]
    fn garbage_keeps_what_it_can() {
        let q = parse(b"zz;not-hex;;");
        assert_eq!(q.flags, None);
        assert_eq!(q.timestamp, None);
        assert_eq!(q.agent, "");
        assert_eq!(parse(b""), Quarantine::default());
        // A semicolon inside the last field stays in the last field.
        let q = parse(b"0002;0;Agent;id;extra");
        assert_eq!(q.event_id, "id;extra");
        // Oversized values are cut, not read whole.
        let mut long = b"0002;0;".to_vec();
        long.extend(std::iter::repeat_n(b'A', 5000));
        assert_eq!(parse(&long).agent.len(), MAX_QUARANTINE_BYTES - 7);
    }
}
