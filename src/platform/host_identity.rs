//! Who this host is, for the osquery result-log `hostIdentifier` and decorations
//! and for ECS `host.*`: its name, and a stable UUID (Linux: `/etc/machine-id`;
//! macOS: the IOPlatformUUID).

/// This host as the outputs name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostIdentity {
    /// `gethostname` (empty when unreadable).
    pub name: String,
    /// The host UUID, or why there is none.
    pub uuid: Result<String, HostUuidError>,
}

#[cfg(test)]
impl HostIdentity {
    /// A fixed identity for tests of what carries it (result logs, ECS).
    pub fn example() -> HostIdentity {
        HostIdentity {
            name: "vm".into(),
            uuid: Ok("4C4C4544-003A-4A10-804C-B3C04F4B4D32".into()),
        }
    }
}

/// Why this host has no UUID to report.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostUuidError {
    #[error("cannot read {0}")]
    Unreadable(&'static str),
    #[error("{path}: {why}")]
    BadMachineId {
        path: &'static str,
        #[source]
        why: MachineIdError,
    },
    /// macOS: the I/O registry has no usable IOPlatformUUID.
    #[cfg(target_os = "macos")]
    #[error(transparent)]
    NoPlatformUuid(#[from] super::macos::PlatformUuidError),
    #[error("IOPlatformUUID {0:?} is not a UUID")]
    BadPlatformUuid(String),
    #[error("no host UUID source on this system")]
    Unsupported,
}

/// What is wrong with a machine-id file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MachineIdError {
    #[error("not text")]
    NotText,
    #[error("not 32 hexadecimal digits")]
    NotHexDigits,
    #[error("not a UUID")]
    NotUuid,
}

impl HostIdentity {
    /// Reads this host's name and UUID.
    pub fn of_this_host() -> HostIdentity {
        HostIdentity {
            name: host_name(),
            uuid: host_uuid(),
        }
    }
}

/// Largest machine-id file read (the real one is 33 bytes).
#[cfg(target_os = "linux")]
const MAX_MACHINE_ID_BYTES: u64 = 256;

/// This host's name (`gethostname`), as osquery's `hostIdentifier` defaults to it;
/// empty when it cannot be read.
pub fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(buffer.get(..end).unwrap_or_default()).into_owned()
}

/// This host's UUID, upper-case `8-4-4-4-12` hex (the form osquery's `host_uuid`
/// decoration has on macOS), or why it cannot be had.
#[cfg(target_os = "linux")]
pub fn host_uuid() -> Result<String, HostUuidError> {
    let path = "/etc/machine-id";
    let bytes = super::read_regular_file(path, MAX_MACHINE_ID_BYTES)
        .ok_or(HostUuidError::Unreadable(path))?;
    uuid_from_machine_id(&bytes).map_err(|why| HostUuidError::BadMachineId { path, why })
}

/// This host's UUID: the IOPlatformUUID of the platform expert device.
#[cfg(target_os = "macos")]
pub fn host_uuid() -> Result<String, HostUuidError> {
    let uuid = super::macos::platform_uuid()?;
    canonical_uuid(&uuid).ok_or(HostUuidError::BadPlatformUuid(uuid))
}

/// No host UUID source on other systems.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub fn host_uuid() -> Result<String, HostUuidError> {
    Err(HostUuidError::Unsupported)
}

/// The machine-id file's 32 hex digits (one line) as a UUID.
pub fn uuid_from_machine_id(bytes: &[u8]) -> Result<String, MachineIdError> {
    let text = std::str::from_utf8(bytes).map_err(|_| MachineIdError::NotText)?;
    let id = text.strip_suffix('\n').unwrap_or(text);
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(MachineIdError::NotHexDigits);
    }
    canonical_uuid(id).ok_or(MachineIdError::NotUuid)
}

/// 32 hex digits, with or without the four dashes, as upper-case `8-4-4-4-12`.
pub fn canonical_uuid(text: &str) -> Option<String> {
    let digits: String = text.chars().filter(|c| *c != '-').collect();
    if digits.len() != 32 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let dashes: Vec<usize> = text.match_indices('-').map(|(i, _)| i).collect();
    if !dashes.is_empty() && (text.len() != 36 || dashes != [8, 13, 18, 23]) {
        return None;
    }
    let upper = digits.to_ascii_uppercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        upper.get(0..8)?,
        upper.get(8..12)?,
        upper.get(12..16)?,
        upper.get(16..20)?,
        upper.get(20..32)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_ids_become_uuids_and_garbage_does_not() {
        assert_eq!(
            uuid_from_machine_id(b"4c4c4544003a4a10804cb3c04f4b4d32\n").unwrap(),
            "4C4C4544-003A-4A10-804C-B3C04F4B4D32"
        );
        for bad in [
            &b""[..],
            b"\n",
            b"uninitialized\n",
            b"4c4c4544003a4a10804cb3c04f4b4d3\n",
            b"4c4c4544003a4a10804cb3c04f4b4d32\n\n",
            b"4c4c4544-003a-4a10-804c-b3c04f4b4d32\n",
            b"\xff\xfe",
        ] {
            assert!(uuid_from_machine_id(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            canonical_uuid("4740d59f-699e-5b29-960b-979aaf9bbeeb").as_deref(),
            Some("4740D59F-699E-5B29-960B-979AAF9BBEEB")
        );
        assert_eq!(canonical_uuid("4740d59f-699e5b29-960b-979aaf9bbeeb-"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_hosts_uuid_is_its_machine_id() {
        let Ok(id) = std::fs::read_to_string("/etc/machine-id") else {
            return;
        };
        let uuid = host_uuid().unwrap();
        assert_eq!(uuid.replace('-', ""), id.trim().to_ascii_uppercase());
        assert!(!host_name().is_empty());
    }
}
