//! Code-signing evidence -> `trust` verdict. Pure and portable: the Security.framework
//! and `csops` calls live in `security.rs`; they fill a [`SigningEvidence`] and this
//! module decides, so every mapping rule is unit-tested on Linux.
//!
//! Order of evaluation (cheapest first, and no more checks than the verdict needs):
//! validity with no requirement -> platform bit / ad-hoc flags -> `anchor apple` ->
//! App Store -> Developer ID -> `notarized` (Developer ID code only).

use crate::model::{CodeIdentity, Trust};
use crate::trust::hex;

/// Kernel / code-directory flags (xnu `cs_blobs.h`).
pub const CS_VALID: u32 = 0x0000_0001;
pub const CS_ADHOC: u32 = 0x0000_0002;
pub const CS_RUNTIME: u32 = 0x0001_0000;
pub const CS_LINKER_SIGNED: u32 = 0x0002_0000;
pub const CS_PLATFORM_BINARY: u32 = 0x0400_0000;
pub const CS_SIGNED: u32 = 0x2000_0000;

/// OSStatus codes of the code-signing services (`CSCommon.h`).
pub const ERR_SEC_CS_STATIC_CODE_CHANGED: i32 = -67034;
pub const ERR_SEC_CS_REQ_FAILED: i32 = -67050;
pub const ERR_SEC_CS_SIGNATURE_FAILED: i32 = -67061;
pub const ERR_SEC_CS_UNSIGNED: i32 = -67062;
pub const ERR_SEC_CS_GUEST_INVALID: i32 = -67063;
pub const ERR_SEC_CS_NO_SUCH_CODE: i32 = -67065;
pub const ERR_SEC_CS_STATIC_CODE_NOT_FOUND: i32 = -67068;

/// Signed by Apple itself (system software, Apple apps).
pub const REQUIREMENT_APPLE: &str = "anchor apple";
/// Mac App Store: Apple's CA and the "Mac App Store" leaf marker OID.
pub const REQUIREMENT_APP_STORE: &str =
    "anchor apple generic and certificate leaf[field.1.2.840.113635.100.6.1.9] exists";
/// Gatekeeper's Developer ID rule: the Developer ID intermediate CA and the
/// "Developer ID Application" leaf marker.
pub const REQUIREMENT_DEVELOPER_ID: &str = "anchor apple generic and certificate 1[field.1.2.840.113635.100.6.2.6] exists and certificate leaf[field.1.2.840.113635.100.6.1.13] exists";
/// Carries a notarization ticket (stapled or known to the system).
pub const REQUIREMENT_NOTARIZED: &str = "notarized";

/// The requirements the verdict can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Requirement {
    Apple,
    AppStore,
    DeveloperId,
    Notarized,
}

impl Requirement {
    pub const ALL: [Requirement; 4] = [
        Requirement::Apple,
        Requirement::AppStore,
        Requirement::DeveloperId,
        Requirement::Notarized,
    ];

    pub fn text(self) -> &'static str {
        match self {
            Requirement::Apple => REQUIREMENT_APPLE,
            Requirement::AppStore => REQUIREMENT_APP_STORE,
            Requirement::DeveloperId => REQUIREMENT_DEVELOPER_ID,
            Requirement::Notarized => REQUIREMENT_NOTARIZED,
        }
    }
}

/// Outcome of one requirement check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Check {
    #[default]
    Unchecked,
    Satisfied,
    /// errSecCSReqFailed: the code is validly signed but does not satisfy it.
    NotSatisfied,
    /// Any other OSStatus: could not tell.
    Failed(i32),
}

impl Check {
    /// From the OSStatus a `check_validity` call returned.
    pub fn from_status(status: i32) -> Check {
        match status {
            0 => Check::Satisfied,
            ERR_SEC_CS_REQ_FAILED => Check::NotSatisfied,
            other => Check::Failed(other),
        }
    }
}

/// Everything the signing services said about one piece of code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SigningEvidence {
    /// `csops(CS_OPS_STATUS)` of the live process; `None` for files.
    pub kernel_flags: Option<u32>,
    /// OSStatus of the validity check with no requirement (0 = valid).
    pub validity: i32,
    /// `kSecCodeInfoFlags`: the code directory's flags.
    pub code_flags: Option<u32>,
    /// `kSecCodeInfoStatus` (dynamic information), live processes only.
    pub dynamic_status: Option<u32>,
    /// `kSecCodeInfoPlatformIdentifier`, present (non-zero) on platform code.
    pub platform_identifier: Option<i64>,
    pub identifier: String,
    pub team_identifier: String,
    /// Common name of the leaf certificate (`Developer ID Application: X (TEAM)`).
    pub leaf_common_name: String,
    /// `kSecCodeInfoUnique`.
    pub cdhash: Vec<u8>,
    pub apple: Check,
    pub app_store: Check,
    pub developer_id: Check,
    pub notarized: Check,
}

impl SigningEvidence {
    fn check(&self, requirement: Requirement) -> Check {
        match requirement {
            Requirement::Apple => self.apple,
            Requirement::AppStore => self.app_store,
            Requirement::DeveloperId => self.developer_id,
            Requirement::Notarized => self.notarized,
        }
    }

    /// Records the outcome of a requirement check.
    pub fn record(&mut self, requirement: Requirement, check: Check) {
        match requirement {
            Requirement::Apple => self.apple = check,
            Requirement::AppStore => self.app_store = check,
            Requirement::DeveloperId => self.developer_id = check,
            Requirement::Notarized => self.notarized = check,
        }
    }

    /// The platform bit from the kernel, the dynamic status, or a platform identifier.
    pub fn is_platform(&self) -> bool {
        let bit = |f: Option<u32>| f.is_some_and(|f| f & CS_PLATFORM_BINARY != 0);
        bit(self.kernel_flags)
            || bit(self.dynamic_status)
            || self.platform_identifier.is_some_and(|p| p != 0)
    }

    /// Ad-hoc signed, including the linker's automatic ad-hoc signature.
    pub fn is_adhoc(&self) -> bool {
        let adhoc = |f: Option<u32>| f.is_some_and(|f| f & (CS_ADHOC | CS_LINKER_SIGNED) != 0);
        adhoc(self.code_flags) || adhoc(self.kernel_flags)
    }
}

/// The next requirement worth checking, or `None` when the verdict is settled.
/// The caller evaluates it, `record`s the outcome and asks again.
pub fn next_requirement(e: &SigningEvidence) -> Option<Requirement> {
    if e.validity != 0 || e.is_platform() || e.is_adhoc() {
        return None;
    }
    for requirement in [Requirement::Apple, Requirement::AppStore] {
        match e.check(requirement) {
            Check::Unchecked => return Some(requirement),
            Check::Satisfied => return None,
            Check::NotSatisfied | Check::Failed(_) => {}
        }
    }
    match (e.developer_id, e.notarized) {
        (Check::Unchecked, _) => Some(Requirement::DeveloperId),
        (Check::Satisfied, Check::Unchecked) => Some(Requirement::Notarized),
        _ => None,
    }
}

/// The verdict. `sha256` is left empty: the caller hashes the file when the
/// verdict is not trusted.
pub fn verdict(e: &SigningEvidence) -> CodeIdentity {
    let mut id = CodeIdentity {
        identifier: e.identifier.clone(),
        team_identifier: e.team_identifier.clone(),
        authority: e.leaf_common_name.clone(),
        cdhash: hex(&e.cdhash),
        flags: e
            .kernel_flags
            .or(e.code_flags)
            .map(|f| format!("0x{f:x}"))
            .unwrap_or_default(),
        notarized: -1,
        platform_binary: i32::from(e.is_platform()),
        ..Default::default()
    };
    match e.validity {
        0 => {}
        ERR_SEC_CS_UNSIGNED => {
            id.trust = Trust::Unsigned;
            id.notarized = 0;
            id.platform_binary = 0;
            return id;
        }
        ERR_SEC_CS_NO_SUCH_CODE | ERR_SEC_CS_STATIC_CODE_NOT_FOUND => {
            id.trust = Trust::Unknown;
            id.error = format!(
                "code vanished before it could be checked (OSStatus {})",
                e.validity
            );
            return id;
        }
        ERR_SEC_CS_STATIC_CODE_CHANGED => {
            id.trust = Trust::Invalid;
            id.signed = true;
            id.error = format!(
                "invalid: the executable changed on disk since the process was launched (OSStatus {ERR_SEC_CS_STATIC_CODE_CHANGED})"
            );
            return id;
        }
        ERR_SEC_CS_SIGNATURE_FAILED => {
            id.trust = Trust::Invalid;
            id.signed = true;
            id.error = format!(
                "invalid: signature does not verify (OSStatus {ERR_SEC_CS_SIGNATURE_FAILED})"
            );
            return id;
        }
        ERR_SEC_CS_GUEST_INVALID => {
            id.trust = Trust::Invalid;
            id.signed = true;
            id.error = format!(
                "invalid: the kernel marked the running code invalid (OSStatus {ERR_SEC_CS_GUEST_INVALID})"
            );
            return id;
        }
        other => {
            id.trust = Trust::Invalid;
            id.signed = true;
            id.error = format!("invalid: code-signing check failed (OSStatus {other})");
            return id;
        }
    }

    id.signed = true;
    if e.is_platform() {
        id.trust = Trust::Apple;
        return id;
    }
    if e.is_adhoc() {
        id.trust = Trust::Adhoc;
        id.notarized = 0;
        return id;
    }
    id.notarized = match e.notarized {
        Check::Satisfied => 1,
        Check::NotSatisfied => 0,
        Check::Unchecked | Check::Failed(_) => -1,
    };
    if e.apple == Check::Satisfied {
        id.trust = Trust::Apple;
    } else if e.app_store == Check::Satisfied {
        id.trust = Trust::AppStore;
    } else if e.developer_id == Check::Satisfied {
        id.trust = Trust::DeveloperId;
    } else {
        id.trust = Trust::Unknown;
        let failed: Vec<String> = Requirement::ALL
            .iter()
            .filter_map(|&r| match e.check(r) {
                Check::Failed(status) => Some(format!("'{}' gave OSStatus {status}", r.text())),
                _ => None,
            })
            .collect();
        id.error =
            if failed.is_empty() {
                format!(
                "validly signed, but not by Apple, the App Store or a Developer ID (authority: {})",
                if e.leaf_common_name.is_empty() { "none" } else { &e.leaf_common_name }
            )
            } else {
                format!("could not evaluate requirements: {}", failed.join("; "))
            };
    }
    id
}

/// The verdict from the kernel's flags alone, when Security.framework could not
/// look at the process (`why` says why).
pub fn verdict_from_kernel_flags(flags: u32, why: &str) -> CodeIdentity {
    let mut id = CodeIdentity {
        flags: format!("0x{flags:x}"),
        notarized: -1,
        platform_binary: i32::from(flags & CS_PLATFORM_BINARY != 0),
        ..Default::default()
    };
    let valid = flags & CS_VALID != 0;
    if valid && flags & CS_PLATFORM_BINARY != 0 {
        id.trust = Trust::Apple;
        id.signed = true;
    } else if valid && flags & (CS_ADHOC | CS_LINKER_SIGNED) != 0 {
        id.trust = Trust::Adhoc;
        id.signed = true;
        id.notarized = 0;
    } else if !valid && flags & CS_SIGNED != 0 {
        id.trust = Trust::Invalid;
        id.signed = true;
        id.error = format!("invalid: the kernel marked the running code invalid; {why}");
    } else {
        id.trust = Trust::Unknown;
        id.signed = valid;
        id.error = format!("kernel code-signing flags only (0x{flags:x}); {why}");
    }
    id
}

/// Mach-O (thin or universal) by its first four bytes: scripts are not, so their
/// signature can only live in `com.apple.cs.*` extended attributes.
pub fn is_mach_o(header: &[u8]) -> bool {
    const MAGICS: [u32; 6] = [
        0xfeed_face, // MH_MAGIC
        0xfeed_facf, // MH_MAGIC_64
        0xcefa_edfe, // MH_CIGAM
        0xcffa_edfe, // MH_CIGAM_64
        0xcafe_babe, // FAT_MAGIC (big-endian on disk)
        0xcafe_babf, // FAT_MAGIC_64
    ];
    header
        .first_chunk::<4>()
        .is_some_and(|m| MAGICS.contains(&u32::from_be_bytes(*m)))
}

/// Extended attribute holding a detached code directory (signed scripts and other
/// non-Mach-O files).
pub const CODE_DIRECTORY_XATTR: &str = "com.apple.cs.CodeDirectory";

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> SigningEvidence {
        SigningEvidence {
            identifier: "com.example.tool".into(),
            team_identifier: "ABCDE12345".into(),
            leaf_common_name: "Developer ID Application: Example (ABCDE12345)".into(),
            cdhash: vec![0xab, 0x01],
            code_flags: Some(CS_RUNTIME),
            kernel_flags: Some(CS_VALID | CS_SIGNED | CS_RUNTIME),
            ..Default::default()
        }
    }

    /// Runs the planner to completion with given answers, as `security.rs` does.
    fn settle(
        mut e: SigningEvidence,
        answer: impl Fn(Requirement) -> Check,
    ) -> (SigningEvidence, Vec<Requirement>) {
        let mut asked = Vec::new();
        while let Some(r) = next_requirement(&e) {
            assert!(!asked.contains(&r), "asked {r:?} twice");
            asked.push(r);
            e.record(r, answer(r));
        }
        (e, asked)
    }

    #[test]
    fn requirement_strings_are_the_documented_ones() {
        assert_eq!(Requirement::Apple.text(), "anchor apple");
        assert_eq!(Requirement::Notarized.text(), "notarized");
        // Mac App Store leaf marker and Developer ID intermediate + leaf markers.
        assert!(REQUIREMENT_APP_STORE.contains("leaf[field.1.2.840.113635.100.6.1.9] exists"));
        assert!(REQUIREMENT_DEVELOPER_ID.starts_with("anchor apple generic and "));
        assert!(REQUIREMENT_DEVELOPER_ID
            .contains("certificate 1[field.1.2.840.113635.100.6.2.6] exists"));
        assert!(REQUIREMENT_DEVELOPER_ID
            .contains("certificate leaf[field.1.2.840.113635.100.6.1.13] exists"));
        for r in Requirement::ALL {
            let t = r.text();
            assert_eq!(t.matches('[').count(), t.matches(']').count(), "{t}");
        }
    }

    #[test]
    fn developer_id_code_is_checked_in_order_and_notarization_read() {
        let (e, asked) = settle(valid(), |r| match r {
            Requirement::DeveloperId | Requirement::Notarized => Check::Satisfied,
            _ => Check::NotSatisfied,
        });
        assert_eq!(
            asked,
            [
                Requirement::Apple,
                Requirement::AppStore,
                Requirement::DeveloperId,
                Requirement::Notarized
            ]
        );
        let id = verdict(&e);
        assert_eq!(id.trust, Trust::DeveloperId);
        assert!(id.signed && id.trust.is_trusted());
        assert_eq!(id.notarized, 1);
        assert_eq!(id.platform_binary, 0);
        assert_eq!(id.cdhash, "ab01");
        assert_eq!(
            id.flags, "0x20010001",
            "kernel flags win over code-directory flags"
        );
        assert_eq!(
            id.authority,
            "Developer ID Application: Example (ABCDE12345)"
        );
        assert!(id.error.is_empty());

        let (e, _) = settle(valid(), |r| match r {
            Requirement::DeveloperId => Check::Satisfied,
            _ => Check::NotSatisfied,
        });
        assert_eq!(verdict(&e).notarized, 0);
    }

    #[test]
    fn apple_and_app_store_stop_early() {
        let (e, asked) = settle(valid(), |_| Check::Satisfied);
        assert_eq!(asked, [Requirement::Apple]);
        assert_eq!(verdict(&e).trust, Trust::Apple);

        let (e, asked) = settle(valid(), |r| {
            if r == Requirement::AppStore {
                Check::Satisfied
            } else {
                Check::NotSatisfied
            }
        });
        assert_eq!(asked, [Requirement::Apple, Requirement::AppStore]);
        let id = verdict(&e);
        assert_eq!(id.trust, Trust::AppStore);
        assert_eq!(id.notarized, -1);
    }

    #[test]
    fn platform_bit_means_apple_without_any_requirement_check() {
        for e in [
            SigningEvidence {
                kernel_flags: Some(CS_VALID | CS_PLATFORM_BINARY),
                ..Default::default()
            },
            SigningEvidence {
                dynamic_status: Some(CS_VALID | CS_PLATFORM_BINARY),
                ..Default::default()
            },
            SigningEvidence {
                platform_identifier: Some(13),
                ..Default::default()
            },
        ] {
            let (e, asked) = settle(e, |_| panic!("no requirement needed"));
            assert!(asked.is_empty());
            let id = verdict(&e);
            assert_eq!(id.trust, Trust::Apple);
            assert_eq!(id.platform_binary, 1);
        }
        // Platform wins over ad-hoc: trust-cache binaries carry ad-hoc signatures.
        let e = SigningEvidence {
            kernel_flags: Some(CS_VALID | CS_ADHOC | CS_PLATFORM_BINARY),
            ..Default::default()
        };
        assert_eq!(verdict(&e).trust, Trust::Apple);
    }

    #[test]
    fn adhoc_including_linker_signed() {
        for (code, kernel) in [
            (Some(CS_ADHOC), None),
            (Some(CS_LINKER_SIGNED | CS_ADHOC), None),
            (Some(CS_LINKER_SIGNED), None),
            (None, Some(CS_VALID | CS_ADHOC)),
        ] {
            let e = SigningEvidence {
                code_flags: code,
                kernel_flags: kernel,
                ..Default::default()
            };
            assert_eq!(next_requirement(&e), None);
            let id = verdict(&e);
            assert_eq!(id.trust, Trust::Adhoc, "{code:?} {kernel:?}");
            assert!(id.signed && !id.trust.is_trusted());
            assert_eq!(id.notarized, 0);
        }
    }

    #[test]
    fn status_codes_map_to_unsigned_invalid_or_unknown() {
        let with = |validity| SigningEvidence {
            validity,
            ..valid()
        };
        let id = verdict(&with(-67062));
        assert_eq!(
            (id.trust, id.signed, id.notarized),
            (Trust::Unsigned, false, 0)
        );
        assert!(id.error.is_empty());

        let id = verdict(&with(-67061));
        assert_eq!(id.trust, Trust::Invalid);
        assert!(id.signed && id.error.contains("-67061"), "{}", id.error);

        let id = verdict(&with(-67034));
        assert_eq!(id.trust, Trust::Invalid);
        assert!(
            id.error
                .contains("changed on disk since the process was launched"),
            "{}",
            id.error
        );
        assert!(id.error.contains("-67034"));

        let id = verdict(&with(-67063));
        assert_eq!(id.trust, Trust::Invalid);
        let id = verdict(&with(-67054));
        assert_eq!(id.trust, Trust::Invalid);
        assert!(id.error.contains("-67054"));

        let id = verdict(&with(-67065));
        assert_eq!(id.trust, Trust::Unknown);
        assert!(id.error.contains("vanished"));

        for status in [-67062, -67061, -67034, -67065] {
            assert_eq!(
                next_requirement(&with(status)),
                None,
                "no requirement checks after {status}"
            );
        }
    }

    #[test]
    fn other_anchors_and_evaluation_failures_are_unknown_and_say_why() {
        let (e, asked) = settle(valid(), |_| Check::NotSatisfied);
        assert_eq!(
            asked.len(),
            3,
            "notarization is only read for Developer ID code"
        );
        let id = verdict(&e);
        assert_eq!(id.trust, Trust::Unknown);
        assert!(id.signed);
        assert!(id.error.contains("not by Apple"), "{}", id.error);

        let (e, _) = settle(valid(), |_| Check::Failed(-67052));
        let id = verdict(&e);
        assert_eq!(id.trust, Trust::Unknown);
        assert!(id.error.contains("OSStatus -67052"), "{}", id.error);
        assert_eq!(Check::from_status(0), Check::Satisfied);
        assert_eq!(Check::from_status(-67050), Check::NotSatisfied);
        assert_eq!(Check::from_status(-1), Check::Failed(-1));
    }

    #[test]
    fn kernel_flags_alone() {
        let id = verdict_from_kernel_flags(CS_VALID | CS_PLATFORM_BINARY, "denied");
        assert_eq!((id.trust, id.platform_binary), (Trust::Apple, 1));
        let id = verdict_from_kernel_flags(CS_VALID | CS_ADHOC | CS_LINKER_SIGNED, "denied");
        assert_eq!(id.trust, Trust::Adhoc);
        let id = verdict_from_kernel_flags(CS_SIGNED, "denied");
        assert_eq!(id.trust, Trust::Invalid);
        let id = verdict_from_kernel_flags(CS_VALID | CS_SIGNED | CS_RUNTIME, "denied");
        assert_eq!(id.trust, Trust::Unknown);
        assert!(
            id.error.contains("denied") && id.error.contains("0x20010001"),
            "{}",
            id.error
        );
        assert!(id.signed);
        let id = verdict_from_kernel_flags(0, "denied");
        assert_eq!(id.trust, Trust::Unknown);
        assert!(!id.signed);
    }

    #[test]
    fn mach_o_magic() {
        assert!(is_mach_o(&[0xcf, 0xfa, 0xed, 0xfe, 7, 0]));
        assert!(is_mach_o(&[0xca, 0xfe, 0xba, 0xbe]));
        assert!(is_mach_o(&[0xfe, 0xed, 0xfa, 0xcf]));
        assert!(!is_mach_o(b"#!/bin/sh\n"));
        assert!(!is_mach_o(b"\x7fELF"));
        assert!(!is_mach_o(&[0xcf, 0xfa]));
    }
}
