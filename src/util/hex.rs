//! Hex text of bytes and digests.

use sha2::{Digest, Sha256};

/// SHA-256 of a byte string, hex (inline code, test fixtures).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The `N` bytes a hex digest string spells (package databases record digests as
/// hex); `None` unless it is exactly `2 * N` hex digits.
pub fn unhex<const N: usize>(hex: &str) -> Option<[u8; N]> {
    // A plain table-free decode: the dpkg index decodes ~130k digests per CLI run.
    fn nibble(digit: u8) -> Option<u8> {
        match digit {
            b'0'..=b'9' => Some(digit - b'0'),
            b'a'..=b'f' => Some(digit - b'a' + 10),
            b'A'..=b'F' => Some(digit - b'A' + 10),
            _ => None,
        }
    }
    let digits = hex.as_bytes();
    if digits.len() != N * 2 {
        return None;
    }
    let mut bytes = [0u8; N];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        let [high, low] = pair else { return None };
        *byte = (nibble(*high)? << 4) | nibble(*low)?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhex_takes_exactly_the_digits_of_n_bytes() {
        assert_eq!(unhex::<2>("0aFf"), Some([0x0a, 0xff]));
        assert_eq!(unhex::<2>("0aF"), None);
        assert_eq!(unhex::<2>("0aFff0"), None);
        assert_eq!(
            unhex::<2>("+a0f"),
            None,
            "from_str_radix alone takes a sign"
        );
        assert_eq!(unhex::<2>("0aé"), None);
        assert_eq!(unhex(&hex(&[1u8, 2, 254])), Some([1u8, 2, 254]));
    }
}
