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
    if hex.len() != N * 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut bytes = [0u8; N];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
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
