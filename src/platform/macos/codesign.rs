//! Code-signing evidence -> `trust` verdict. Pure and portable: the Security.framework
//! and `csops` calls live in `security.rs` / `sys.rs`; they fill a [`SigningEvidence`]
//! and [`decide`] answers, so every rule is unit-tested on Linux.
//!
//! Rules (checked against Apple's own code: xnu `cs_blobs.h` / `kern_exec.c`, Security
//! `StaticCode.cpp`, `LWCRHelper.mm`):
//! - "Platform" (`apple`) comes from the kernel for a live process (`CS_PLATFORM_BINARY`
//!   in `csops` or `kSecCodeInfoStatus`), and from a satisfied `anchor apple` for a
//!   file. `kSecCodeInfoPlatformIdentifier` is a byte any signer writes (ad-hoc ones
//!   too) and never makes code `apple`.
//! - No `CS_SIGNED` in the kernel's flags: the process runs unsigned code, whatever
//!   became of its file (deleted, moved).
//! - The file changed on disk since launch (`errSecCSStaticCodeChanged`): the verdict
//!   comes from the kernel's flags and cdhash, never from the new file.
//! - A lookup that failed for a passing reason (errno-range OSStatus, `errSecCSNoSuchCode`)
//!   or a cdhash that changed during the evaluation (exec, pid reuse) gives `unknown`
//!   and is never cached.
//!
//! Order of evaluation (cheapest first, and no more checks than the verdict needs):
//! validity with no requirement -> kernel platform bit / ad-hoc flags (processes) ->
//! `anchor apple` -> App Store -> Developer ID -> TestFlight -> `notarized` (Developer
//! ID code only). Files ask `anchor apple` before looking at ad-hoc flags.

use crate::model::{CodeIdentity, Trust};
use crate::util::hex::hex;

/// Kernel / code-directory flags (xnu `cs_blobs.h`).
pub const CS_VALID: u32 = 0x0000_0001;
pub const CS_ADHOC: u32 = 0x0000_0002;
pub const CS_RESTRICT: u32 = 0x0000_0800;
pub const CS_RUNTIME: u32 = 0x0001_0000;
pub const CS_LINKER_SIGNED: u32 = 0x0002_0000;
pub const CS_PLATFORM_BINARY: u32 = 0x0400_0000;
/// Set at exec only when a signature was loaded (xnu `kern_exec.c`).
pub const CS_SIGNED: u32 = 0x2000_0000;

/// OSStatus codes of the code-signing services (`CSCommon.h`).
pub const ERR_SEC_CS_STATIC_CODE_CHANGED: i32 = -67034;
pub const ERR_SEC_CS_REQ_FAILED: i32 = -67050;
pub const ERR_SEC_CS_SIGNATURE_FAILED: i32 = -67061;
pub const ERR_SEC_CS_UNSIGNED: i32 = -67062;
pub const ERR_SEC_CS_GUEST_INVALID: i32 = -67063;
pub const ERR_SEC_CS_NO_SUCH_CODE: i32 = -67065;
pub const ERR_SEC_CS_STATIC_CODE_NOT_FOUND: i32 = -67068;
/// `errSecErrnoBase`: Security reports a failed system call as 100000 + errno
/// (100003 = ESRCH: the process exited during the lookup).
pub const ERR_SEC_ERRNO_BASE: i32 = 100_000;

/// A status that says "the code went away or changed while we looked", not
/// anything about its signature: the verdict it produces must not be cached.
pub fn is_transient(status: i32) -> bool {
    status >= ERR_SEC_ERRNO_BASE || status == ERR_SEC_CS_NO_SUCH_CODE
}

/// Signed by Apple itself (system software, Apple apps).
pub const REQUIREMENT_APPLE: &str = "anchor apple";
/// App Store, as Apple's own App Store requirement has it (Security `LWCRHelper.mm`):
/// Apple's CA and a leaf marker for the Mac App Store (`6.1.9`), iOS/iPadOS apps
/// (`6.1.3`, run on Apple Silicon) or tvOS apps (`6.1.24`).
pub const REQUIREMENT_APP_STORE: &str = "anchor apple generic and (certificate leaf[field.1.2.840.113635.100.6.1.9] exists or certificate leaf[field.1.2.840.113635.100.6.1.3] exists or certificate leaf[field.1.2.840.113635.100.6.1.24] exists)";
/// Gatekeeper's Developer ID rule: the Developer ID intermediate CA and the
/// "Developer ID Application" leaf marker.
pub const REQUIREMENT_DEVELOPER_ID: &str = "anchor apple generic and certificate 1[field.1.2.840.113635.100.6.2.6] exists and certificate leaf[field.1.2.840.113635.100.6.1.13] exists";
/// TestFlight beta builds: Apple re-signs them with this leaf marker.
pub const REQUIREMENT_TESTFLIGHT: &str =
    "anchor apple generic and certificate leaf[field.1.2.840.113635.100.6.1.25.1] exists";
/// Carries a notarization ticket (stapled or known to the system).
pub const REQUIREMENT_NOTARIZED: &str = "notarized";

/// The requirements the verdict can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Requirement {
    Apple,
    AppStore,
    DeveloperId,
    TestFlight,
    Notarized,
}

impl Requirement {
    pub const ALL: [Requirement; 5] = [
        Requirement::Apple,
        Requirement::AppStore,
        Requirement::DeveloperId,
        Requirement::TestFlight,
        Requirement::Notarized,
    ];

    pub fn text(self) -> &'static str {
        match self {
            Requirement::Apple => REQUIREMENT_APPLE,
            Requirement::AppStore => REQUIREMENT_APP_STORE,
            Requirement::DeveloperId => REQUIREMENT_DEVELOPER_ID,
            Requirement::TestFlight => REQUIREMENT_TESTFLIGHT,
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

/// Everything the kernel and the signing services said about one piece of code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SigningEvidence {
    /// `csops(CS_OPS_STATUS)` of the live process; `None` for files.
    pub kernel_flags: Option<u32>,
    /// `csops(CS_OPS_CDHASH)` before the evaluation (live processes; `None` when
    /// the kernel has none, as for unsigned code).
    pub kernel_cdhash: Option<Vec<u8>>,
    /// The same, read again after the evaluation: a difference means the process
    /// exec'd or its pid was reused while Security.framework looked at it.
    pub kernel_cdhash_after: Option<Vec<u8>>,
    /// OSStatus of the lookup (`SecCodeCopyGuestWithAttributes` /
    /// `SecStaticCodeCreateWithPath`); 0 = found.
    pub lookup: i32,
    /// OSStatus of the validity check with no requirement (0 = valid).
    pub validity: i32,
    /// `kSecCodeInfoFlags`: the code directory's flags.
    pub code_flags: Option<u32>,
    /// `kSecCodeInfoStatus` (dynamic information: the kernel's flags), live
    /// processes only.
    pub dynamic_status: Option<u32>,
    /// `kSecCodeInfoPlatformIdentifier`: written by the signer, never proof of
    /// anything on its own.
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
    pub testflight: Check,
    pub notarized: Check,
}

/// A verdict and whether it may be cached under the code's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub identity: CodeIdentity,
    /// False when the verdict comes from a passing failure (the process exited or
    /// changed mid-lookup, a check could not be evaluated): the next query must
    /// evaluate again rather than inherit it.
    pub cacheable: bool,
}

impl SigningEvidence {
    fn check(&self, requirement: Requirement) -> Check {
        match requirement {
            Requirement::Apple => self.apple,
            Requirement::AppStore => self.app_store,
            Requirement::DeveloperId => self.developer_id,
            Requirement::TestFlight => self.testflight,
            Requirement::Notarized => self.notarized,
        }
    }

    /// Records the outcome of a requirement check.
    pub fn record(&mut self, requirement: Requirement, check: Check) {
        match requirement {
            Requirement::Apple => self.apple = check,
            Requirement::AppStore => self.app_store = check,
            Requirement::DeveloperId => self.developer_id = check,
            Requirement::TestFlight => self.testflight = check,
            Requirement::Notarized => self.notarized = check,
        }
    }

    fn is_process(&self) -> bool {
        self.kernel_flags.is_some()
    }

    /// A live process the kernel loaded no signature for.
    fn kernel_says_unsigned(&self) -> bool {
        self.kernel_flags.is_some_and(|f| f & CS_SIGNED == 0)
    }

    /// Platform code: the kernel's bit for a live process (csops or the dynamic
    /// status, both the kernel's), a satisfied `anchor apple` for a file.
    pub fn is_platform(&self) -> bool {
        if self.is_process() {
            let bit = |f: Option<u32>| f.is_some_and(|f| f & CS_PLATFORM_BINARY != 0);
            bit(self.kernel_flags) || bit(self.dynamic_status)
        } else {
            self.apple == Check::Satisfied
        }
    }

    /// Ad-hoc signed, including the linker's automatic ad-hoc signature.
    pub fn is_adhoc(&self) -> bool {
        let adhoc = |f: Option<u32>| f.is_some_and(|f| f & (CS_ADHOC | CS_LINKER_SIGNED) != 0);
        adhoc(self.code_flags) || adhoc(self.kernel_flags)
    }

    fn cdhash_moved(&self) -> bool {
        self.is_process() && self.kernel_cdhash != self.kernel_cdhash_after
    }
}

/// The next requirement worth checking, or `None` when the verdict is settled.
/// The caller evaluates it, `record`s the outcome and asks again.
pub fn next_requirement(e: &SigningEvidence) -> Option<Requirement> {
    if e.lookup != 0 || e.validity != 0 || e.kernel_says_unsigned() {
        return None;
    }
    if e.is_process() && e.is_platform() {
        return None;
    }
    // A file is platform code only if `anchor apple` holds, asked even of ad-hoc
    // signatures (trust-cache code is ad-hoc signed).
    if !e.is_process() {
        match e.apple {
            Check::Unchecked => return Some(Requirement::Apple),
            Check::Satisfied => return None,
            Check::NotSatisfied | Check::Failed(_) => {}
        }
    }
    if e.is_adhoc() {
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
        (Check::Unchecked, _) => return Some(Requirement::DeveloperId),
        (Check::Satisfied, Check::Unchecked) => return Some(Requirement::Notarized),
        (Check::Satisfied, _) => return None,
        _ => {}
    }
    (e.testflight == Check::Unchecked).then_some(Requirement::TestFlight)
}

/// The identity fields of a verdict, before its trust is known.
fn base_identity(e: &SigningEvidence) -> CodeIdentity {
    CodeIdentity {
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
        platform_binary: 0,
        ..Default::default()
    }
}

fn unsigned(mut id: CodeIdentity) -> CodeIdentity {
    id.trust = Trust::Unsigned;
    id.signed = false;
    id.notarized = 0;
    id.platform_binary = 0;
    id
}

fn cached(identity: CodeIdentity) -> Verdict {
    Verdict {
        identity,
        cacheable: true,
    }
}

fn not_cached(identity: CodeIdentity) -> Verdict {
    Verdict {
        identity,
        cacheable: false,
    }
}

/// The verdict. `sha256` is left empty: the caller hashes the file when the
/// verdict is not trusted.
pub fn decide(e: &SigningEvidence) -> Verdict {
    let id = base_identity(e);
    // No signature was loaded at exec: unsigned, even when the file is gone.
    if e.kernel_says_unsigned() {
        return cached(unsigned(CodeIdentity {
            identifier: String::new(),
            team_identifier: String::new(),
            authority: String::new(),
            cdhash: String::new(),
            ..id
        }));
    }
    if e.cdhash_moved() {
        return not_cached(CodeIdentity {
            trust: Trust::Unknown,
            error: format!(
                "the process exec'd or its pid was reused during the evaluation (kernel cdhash {} before, {} after)",
                e.kernel_cdhash.as_deref().map(hex).unwrap_or_else(|| "none".into()),
                e.kernel_cdhash_after.as_deref().map(hex).unwrap_or_else(|| "none".into()),
            ),
            ..id
        });
    }
    for (step, status) in [("lookup", e.lookup), ("validity check", e.validity)] {
        if status == 0 {
            continue;
        }
        if is_transient(status) {
            return not_cached(CodeIdentity {
                trust: Trust::Unknown,
                error: format!(
                    "the code exited or changed during its {step} (OSStatus {status}); evaluated again next time"
                ),
                ..id
            });
        }
        if let Some(flags) = e.kernel_flags {
            return from_kernel(e, flags, step, status);
        }
        return cached(file_status_verdict(id, step, status));
    }

    let mut id = CodeIdentity { signed: true, ..id };
    if e.is_process() && e.is_platform() {
        id.trust = Trust::Apple;
        id.platform_binary = 1;
        return cached(id);
    }
    if !e.is_process() && e.apple == Check::Satisfied {
        id.trust = Trust::Apple;
        // Apple signed it, so its platform identifier is Apple's word.
        id.platform_binary = i32::from(e.platform_identifier.is_some_and(|p| p != 0));
        return cached(id);
    }
    if e.is_adhoc() {
        id.trust = Trust::Adhoc;
        id.notarized = 0;
        return cached(id);
    }
    id.notarized = match e.notarized {
        Check::Satisfied => 1,
        Check::NotSatisfied => 0,
        Check::Unchecked | Check::Failed(_) => -1,
    };
    if e.apple == Check::Satisfied {
        id.trust = Trust::Apple;
        return cached(id);
    }
    if e.app_store == Check::Satisfied {
        id.trust = Trust::AppStore;
        return cached(id);
    }
    if e.developer_id == Check::Satisfied {
        id.trust = Trust::DeveloperId;
        // A notarization check that could not run says nothing about the trust.
        return cached(id);
    }
    id.trust = Trust::Unknown;
    let failed: Vec<String> = Requirement::ALL
        .iter()
        .filter_map(|&r| match e.check(r) {
            Check::Failed(status) => Some(format!("'{}' gave OSStatus {status}", r.text())),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        id.error = format!("could not evaluate requirements: {}", failed.join("; "));
        return not_cached(id);
    }
    id.error = if e.testflight == Check::Satisfied {
        "TestFlight beta build (leaf 1.2.840.113635.100.6.1.25.1): signed by Apple for testing, not an App Store release; not trusted".to_string()
    } else {
        format!(
            "validly signed, but not by Apple, the App Store or a Developer ID (authority: {})",
            if e.leaf_common_name.is_empty() {
                "none"
            } else {
                &e.leaf_common_name
            }
        )
    };
    cached(id)
}

/// A file whose static check failed for good.
fn file_status_verdict(mut id: CodeIdentity, step: &str, status: i32) -> CodeIdentity {
    match status {
        ERR_SEC_CS_UNSIGNED => unsigned(id),
        ERR_SEC_CS_STATIC_CODE_NOT_FOUND => {
            id.trust = Trust::Unknown;
            id.error = format!("no code found at the path (OSStatus {status})");
            id
        }
        _ if step == "lookup" => {
            id.trust = Trust::Unknown;
            id.error = format!("static code check failed (OSStatus {status})");
            id
        }
        ERR_SEC_CS_SIGNATURE_FAILED => {
            id.trust = Trust::Invalid;
            id.signed = true;
            id.error = format!("invalid: signature does not verify (OSStatus {status})");
            id
        }
        _ => {
            id.trust = Trust::Invalid;
            id.signed = true;
            id.error = format!("invalid: code-signing check failed (OSStatus {status})");
            id
        }
    }
}

/// A live process Security.framework could not judge from its file: what the kernel
/// knows (its flags and cdhash, fixed at exec) decides, and nothing read from the
/// file on disk is reported.
fn from_kernel(e: &SigningEvidence, flags: u32, step: &str, status: i32) -> Verdict {
    let kernel_cdhash = e.kernel_cdhash.as_deref().map(hex).unwrap_or_default();
    let mut id = CodeIdentity {
        cdhash: kernel_cdhash.clone(),
        ..verdict_from_kernel_flags(flags, "")
    };
    let file_changed = matches!(
        status,
        ERR_SEC_CS_STATIC_CODE_CHANGED | ERR_SEC_CS_UNSIGNED | ERR_SEC_CS_STATIC_CODE_NOT_FOUND
    );
    let why = if file_changed {
        format!(
            "changed on disk since launch (or moved or deleted; OSStatus {status} from the {step}): judged by the kernel's flags 0x{flags:x} and cdhash {}",
            if kernel_cdhash.is_empty() { "none" } else { &kernel_cdhash }
        )
    } else if matches!(
        status,
        ERR_SEC_CS_GUEST_INVALID | ERR_SEC_CS_SIGNATURE_FAILED
    ) {
        id.trust = Trust::Invalid;
        id.signed = true;
        format!("invalid: the running code failed its {step} (OSStatus {status})")
    } else {
        format!(
            "Security.framework {step} failed (OSStatus {status}): judged by the kernel's flags 0x{flags:x}"
        )
    };
    id.error = if id.error.is_empty() || id.trust == Trust::Unknown {
        why
    } else {
        format!("{}; {why}", id.error)
    };
    // What the kernel fixed at exec does not change under this key (kernel cdhash
    // and file identity); an `unknown` for any other reason is asked again.
    let cacheable = file_changed || id.trust != Trust::Unknown;
    Verdict {
        identity: id,
        cacheable,
    }
}

/// The verdict from the kernel's flags alone (`why`, when not empty, says why no
/// more could be learned).
pub fn verdict_from_kernel_flags(flags: u32, why: &str) -> CodeIdentity {
    let mut id = CodeIdentity {
        flags: format!("0x{flags:x}"),
        notarized: -1,
        platform_binary: i32::from(flags & CS_PLATFORM_BINARY != 0),
        ..Default::default()
    };
    let valid = flags & CS_VALID != 0;
    let signed = flags & CS_SIGNED != 0;
    let because = |what: &str| {
        if why.is_empty() {
            what.to_string()
        } else {
            format!("{what}; {why}")
        }
    };
    if !signed {
        return unsigned(id);
    }
    id.signed = true;
    if valid && flags & CS_PLATFORM_BINARY != 0 {
        id.trust = Trust::Apple;
    } else if valid && flags & (CS_ADHOC | CS_LINKER_SIGNED) != 0 {
        id.trust = Trust::Adhoc;
        id.notarized = 0;
    } else if !valid {
        id.trust = Trust::Invalid;
        id.error = because("invalid: the kernel marked the running code invalid");
    } else {
        id.trust = Trust::Unknown;
        id.error = because(&format!("kernel code-signing flags only (0x{flags:x})"));
    }
    id
}

/// The innermost app bundle that encloses `path` and the path relative to its
/// `Contents/` directory, as `SecCodeValidateFileResource` names a sealed resource
/// (`Foo.app/Contents/Resources/x.sh` -> (`Foo.app`, `Resources/x.sh`)). `None` for
/// a path outside any `.app`, or one with `.`/`..` components (not canonical: the
/// seal must be asked about the file that runs).
pub fn enclosing_bundle(path: &str) -> Option<(&str, &str)> {
    if !path.starts_with('/') || path.split('/').any(|c| c == "." || c == "..") {
        return None;
    }
    const CONTENTS: &str = ".app/Contents/";
    let at = path.rfind(CONTENTS)?;
    let root = path.get(..at + ".app".len())?;
    let relative = path.get(at + CONTENTS.len()..)?;
    let name = root.rsplit('/').next().unwrap_or_default();
    if name.len() <= ".app".len() || relative.is_empty() || relative.ends_with('/') {
        return None;
    }
    Some((root, relative))
}

/// A script's verdict once the seal of its enclosing bundle was asked about it:
/// sealed (`status` 0) in a trusted bundle, it takes the bundle's trust and identity;
/// otherwise it keeps its own verdict and says why the bundle did not vouch for it.
pub fn sealed_resource_verdict(
    own: CodeIdentity,
    bundle: &CodeIdentity,
    bundle_root: &str,
    status: i32,
) -> CodeIdentity {
    if status == 0 && bundle.trust.is_trusted() {
        return CodeIdentity {
            trust: bundle.trust,
            signed: true,
            identifier: bundle.identifier.clone(),
            team_identifier: bundle.team_identifier.clone(),
            authority: bundle.authority.clone(),
            cdhash: bundle.cdhash.clone(),
            notarized: bundle.notarized,
            platform_binary: 0,
            flags: String::new(),
            error: String::new(),
            ..own
        };
    }
    let why = if status == 0 {
        format!(
            "sealed by {bundle_root}, which is not trusted ({})",
            bundle.trust.as_str()
        )
    } else {
        format!("not sealed by the enclosing bundle {bundle_root} (OSStatus {status})")
    };
    let mut own = own;
    if !own.error.is_empty() {
        own.error.push_str("; ");
    }
    own.error.push_str(&why);
    own
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

    const KERNEL_CDHASH: [u8; 3] = [0xc0, 0xde, 0x01];

    /// A live Developer ID process as csops and Security.framework describe it.
    fn process(kernel_flags: u32) -> SigningEvidence {
        SigningEvidence {
            kernel_flags: Some(kernel_flags),
            kernel_cdhash: Some(KERNEL_CDHASH.to_vec()),
            kernel_cdhash_after: Some(KERNEL_CDHASH.to_vec()),
            identifier: "com.example.tool".into(),
            team_identifier: "ABCDE12345".into(),
            leaf_common_name: "Developer ID Application: Example (ABCDE12345)".into(),
            cdhash: vec![0xab, 0x01],
            code_flags: Some(CS_RUNTIME),
            dynamic_status: Some(kernel_flags),
            ..Default::default()
        }
    }

    fn developer_id_process() -> SigningEvidence {
        process(CS_VALID | CS_SIGNED | CS_RUNTIME)
    }

    /// A file on disk (no kernel flags).
    fn file(code_flags: u32) -> SigningEvidence {
        SigningEvidence {
            identifier: "x".into(),
            code_flags: Some(code_flags),
            cdhash: vec![0x5c],
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

    fn only(satisfied: &'static [Requirement]) -> impl Fn(Requirement) -> Check {
        move |r| {
            if satisfied.contains(&r) {
                Check::Satisfied
            } else {
                Check::NotSatisfied
            }
        }
    }

    fn with(mut e: SigningEvidence, change: impl FnOnce(&mut SigningEvidence)) -> SigningEvidence {
        change(&mut e);
        e
    }

    struct Row {
        case: &'static str,
        evidence: SigningEvidence,
        trust: Trust,
        cacheable: bool,
        /// Must appear in `error` ("" = the error must be empty).
        error: &'static str,
        platform_binary: i32,
    }

    /// One row per finding of issue 12 that the verdict decides (1-6); each runs the
    /// requirement planner with the answers Security.framework would give.
    #[test]
    fn verdict_table() {
        let forged_platform_id = |mut e: SigningEvidence| {
            e.platform_identifier = Some(15);
            e
        };
        let rows = [
            Row {
                case: "1: ad-hoc script with a forged platform identifier (file)",
                evidence: settle(forged_platform_id(file(CS_ADHOC)), only(&[])).0,
                trust: Trust::Adhoc,
                cacheable: true,
                error: "",
                platform_binary: 0,
            },
            Row {
                case: "1: live ad-hoc process with a forged platform identifier",
                evidence: settle(
                    forged_platform_id(process(CS_VALID | CS_SIGNED | CS_ADHOC)),
                    only(&[]),
                )
                .0,
                trust: Trust::Adhoc,
                cacheable: true,
                error: "",
                platform_binary: 0,
            },
            Row {
                case: "1: Developer ID process with a forged platform identifier",
                evidence: settle(
                    forged_platform_id(developer_id_process()),
                    only(&[Requirement::DeveloperId]),
                )
                .0,
                trust: Trust::DeveloperId,
                cacheable: true,
                error: "",
                platform_binary: 0,
            },
            Row {
                case: "1: kernel CS_PLATFORM_BINARY makes a live process apple",
                evidence: settle(process(CS_VALID | CS_SIGNED | CS_PLATFORM_BINARY), |_| {
                    panic!("no requirement needed")
                })
                .0,
                trust: Trust::Apple,
                cacheable: true,
                error: "",
                platform_binary: 1,
            },
            Row {
                case: "1: a file is apple when `anchor apple` is satisfied (ad-hoc trust-cache signature too)",
                evidence: settle(forged_platform_id(file(CS_ADHOC)), only(&[Requirement::Apple])).0,
                trust: Trust::Apple,
                cacheable: true,
                error: "",
                platform_binary: 1,
            },
            Row {
                case: "2: process exited during the lookup (errSecErrnoBase + ESRCH)",
                evidence: with(developer_id_process(), |e| e.lookup = 100_003),
                trust: Trust::Unknown,
                cacheable: false,
                error: "OSStatus 100003",
                platform_binary: 0,
            },
            Row {
                case: "2: errSecCSNoSuchCode during the lookup",
                evidence: with(developer_id_process(), |e| e.lookup = -67065),
                trust: Trust::Unknown,
                cacheable: false,
                error: "OSStatus -67065",
                platform_binary: 0,
            },
            Row {
                case: "2: errno-range status from the validity check",
                evidence: with(developer_id_process(), |e| e.validity = 100_001),
                trust: Trust::Unknown,
                cacheable: false,
                error: "OSStatus 100001",
                platform_binary: 0,
            },
            Row {
                case: "2: a requirement check that failed to run",
                evidence: settle(developer_id_process(), |_| Check::Failed(100_003)).0,
                trust: Trust::Unknown,
                cacheable: false,
                error: "gave OSStatus 100003",
                platform_binary: 0,
            },
            Row {
                case: "2: other lookup failure: kernel flags cannot tell Developer ID",
                evidence: with(developer_id_process(), |e| e.lookup = -67054),
                trust: Trust::Unknown,
                cacheable: false,
                error: "OSStatus -67054",
                platform_binary: 0,
            },
            Row {
                case: "3: kernel cdhash changed during the evaluation (exec / pid reuse)",
                evidence: with(
                    settle(developer_id_process(), only(&[Requirement::DeveloperId])).0,
                    |e| e.kernel_cdhash_after = Some(vec![0xee]),
                ),
                trust: Trust::Unknown,
                cacheable: false,
                error: "pid was reused",
                platform_binary: 0,
            },
            Row {
                case: "3: the process had gone when the cdhash was read again",
                evidence: with(
                    settle(developer_id_process(), only(&[Requirement::DeveloperId])).0,
                    |e| e.kernel_cdhash_after = None,
                ),
                trust: Trust::Unknown,
                cacheable: false,
                error: "none after",
                platform_binary: 0,
            },
            Row {
                case: "4: Developer ID app updated on disk while running",
                evidence: with(developer_id_process(), |e| {
                    e.validity = ERR_SEC_CS_STATIC_CODE_CHANGED;
                    e.identifier = "com.new.file".into();
                }),
                trust: Trust::Unknown,
                cacheable: true,
                error: "changed on disk since launch",
                platform_binary: 0,
            },
            Row {
                case: "4: platform binary replaced on disk while running",
                evidence: with(process(CS_VALID | CS_SIGNED | CS_PLATFORM_BINARY), |e| {
                    e.validity = ERR_SEC_CS_STATIC_CODE_CHANGED
                }),
                trust: Trust::Apple,
                cacheable: true,
                error: "changed on disk since launch",
                platform_binary: 1,
            },
            Row {
                case: "5: deleted unsigned executable (no CS_SIGNED; static code not found)",
                evidence: with(process(0), |e| {
                    e.lookup = ERR_SEC_CS_STATIC_CODE_NOT_FOUND;
                    e.kernel_cdhash = None;
                    e.kernel_cdhash_after = None;
                }),
                trust: Trust::Unsigned,
                cacheable: true,
                error: "",
                platform_binary: 0,
            },
            Row {
                case: "5: no CS_SIGNED wins even over a transient lookup failure",
                evidence: with(process(CS_RUNTIME), |e| e.lookup = 100_003),
                trust: Trust::Unsigned,
                cacheable: true,
                error: "",
                platform_binary: 0,
            },
            Row {
                case: "6: iOS / tvOS App Store app (App Store requirement satisfied)",
                evidence: settle(developer_id_process(), only(&[Requirement::AppStore])).0,
                trust: Trust::AppStore,
                cacheable: true,
                error: "",
                platform_binary: 0,
            },
            Row {
                case: "6: TestFlight beta build",
                evidence: settle(developer_id_process(), only(&[Requirement::TestFlight])).0,
                trust: Trust::Unknown,
                cacheable: true,
                error: "TestFlight beta build",
                platform_binary: 0,
            },
        ];
        for row in rows {
            let Verdict {
                identity,
                cacheable,
            } = decide(&row.evidence);
            let case = row.case;
            assert_eq!(identity.trust, row.trust, "{case}: {identity:?}");
            assert_eq!(cacheable, row.cacheable, "{case}: {identity:?}");
            assert_eq!(
                identity.platform_binary, row.platform_binary,
                "{case}: {identity:?}"
            );
            if row.error.is_empty() {
                assert!(identity.error.is_empty(), "{case}: {}", identity.error);
            } else {
                assert!(
                    identity.error.contains(row.error),
                    "{case}: {}",
                    identity.error
                );
            }
        }
    }

    #[test]
    fn changed_on_disk_reports_the_kernels_code_not_the_new_file() {
        let e = with(developer_id_process(), |e| {
            e.validity = ERR_SEC_CS_STATIC_CODE_CHANGED;
            e.identifier = "com.new.file".into();
            e.team_identifier = "NEWTEAM".into();
            e.leaf_common_name = "Developer ID Application: Someone Else".into();
        });
        let v = decide(&e);
        assert_ne!(v.identity.trust, Trust::Invalid);
        assert_eq!(v.identity.cdhash, "c0de01", "the kernel's cdhash");
        assert!(v.identity.identifier.is_empty() && v.identity.team_identifier.is_empty());
        assert!(v.identity.authority.is_empty());
        assert!(
            v.identity.error.contains("0x20010001"),
            "{}",
            v.identity.error
        );
        assert_eq!(next_requirement(&e), None);
    }

    #[test]
    fn unsigned_process_needs_no_security_framework_answer() {
        let e = process(CS_RUNTIME);
        assert_eq!(next_requirement(&e), None);
        let id = decide(&e).identity;
        assert_eq!(
            (id.trust, id.signed, id.notarized),
            (Trust::Unsigned, false, 0)
        );
        assert!(id.identifier.is_empty() && id.cdhash.is_empty());
        assert_eq!(id.flags, "0x10000");
    }

    #[test]
    fn transient_statuses() {
        for status in [100_000, 100_003, 100_255, 100_300, -67065] {
            assert!(is_transient(status), "{status}");
        }
        for status in [0, -67062, -67061, -67034, -67050, 99_999] {
            assert!(!is_transient(status), "{status}");
        }
    }

    #[test]
    fn requirement_strings_are_the_documented_ones() {
        assert_eq!(Requirement::Apple.text(), "anchor apple");
        assert_eq!(Requirement::Notarized.text(), "notarized");
        for oid in ["6.1.9", "6.1.3", "6.1.24"] {
            let marker = format!("certificate leaf[field.1.2.840.113635.100.{oid}] exists");
            assert!(REQUIREMENT_APP_STORE.contains(&marker), "{oid}");
        }
        assert!(REQUIREMENT_APP_STORE.starts_with("anchor apple generic and ("));
        assert!(REQUIREMENT_TESTFLIGHT.contains("leaf[field.1.2.840.113635.100.6.1.25.1] exists"));
        assert!(REQUIREMENT_DEVELOPER_ID.starts_with("anchor apple generic and "));
        assert!(REQUIREMENT_DEVELOPER_ID
            .contains("certificate 1[field.1.2.840.113635.100.6.2.6] exists"));
        assert!(REQUIREMENT_DEVELOPER_ID
            .contains("certificate leaf[field.1.2.840.113635.100.6.1.13] exists"));
        for r in Requirement::ALL {
            let t = r.text();
            assert_eq!(t.matches('[').count(), t.matches(']').count(), "{t}");
            assert_eq!(t.matches('(').count(), t.matches(')').count(), "{t}");
        }
    }

    #[test]
    fn developer_id_code_is_checked_in_order_and_notarization_read() {
        let (e, asked) = settle(
            developer_id_process(),
            only(&[Requirement::DeveloperId, Requirement::Notarized]),
        );
        assert_eq!(
            asked,
            [
                Requirement::Apple,
                Requirement::AppStore,
                Requirement::DeveloperId,
                Requirement::Notarized
            ]
        );
        let id = decide(&e).identity;
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

        let (e, _) = settle(developer_id_process(), only(&[Requirement::DeveloperId]));
        assert_eq!(decide(&e).identity.notarized, 0);
    }

    #[test]
    fn apple_and_app_store_stop_early() {
        let (e, asked) = settle(developer_id_process(), |_| Check::Satisfied);
        assert_eq!(asked, [Requirement::Apple]);
        assert_eq!(decide(&e).identity.trust, Trust::Apple);

        let (e, asked) = settle(developer_id_process(), only(&[Requirement::AppStore]));
        assert_eq!(asked, [Requirement::Apple, Requirement::AppStore]);
        let id = decide(&e).identity;
        assert_eq!(id.trust, Trust::AppStore);
        assert_eq!(id.notarized, -1);
    }

    #[test]
    fn files_ask_anchor_apple_first_and_ignore_platform_identifiers() {
        // Ad-hoc file: `anchor apple` is asked, then nothing else.
        let (e, asked) = settle(file(CS_ADHOC), only(&[]));
        assert_eq!(asked, [Requirement::Apple]);
        assert_eq!(decide(&e).identity.trust, Trust::Adhoc);
        // Apple-signed file without a platform identifier (an Apple app): apple,
        // not a platform binary.
        let (e, asked) = settle(file(CS_RUNTIME), only(&[Requirement::Apple]));
        assert_eq!(asked, [Requirement::Apple]);
        let id = decide(&e).identity;
        assert_eq!((id.trust, id.platform_binary), (Trust::Apple, 0));
    }

    #[test]
    fn adhoc_including_linker_signed() {
        for (code, kernel) in [
            (Some(CS_ADHOC), None),
            (Some(CS_LINKER_SIGNED | CS_ADHOC), None),
            (Some(CS_LINKER_SIGNED), None),
            (None, Some(CS_VALID | CS_SIGNED | CS_ADHOC)),
        ] {
            let e = SigningEvidence {
                code_flags: code,
                kernel_flags: kernel,
                ..Default::default()
            };
            let (e, _) = settle(e, only(&[]));
            let id = decide(&e).identity;
            assert_eq!(id.trust, Trust::Adhoc, "{code:?} {kernel:?}");
            assert!(id.signed && !id.trust.is_trusted());
            assert_eq!(id.notarized, 0);
        }
    }

    #[test]
    fn file_status_codes_map_to_unsigned_or_invalid() {
        let status = |lookup: i32, validity: i32| {
            decide(&SigningEvidence {
                lookup,
                validity,
                ..file(0)
            })
        };
        let v = status(-67062, 0);
        assert_eq!(
            (v.identity.trust, v.identity.signed, v.cacheable),
            (Trust::Unsigned, false, true)
        );
        let v = status(0, -67061);
        assert_eq!(v.identity.trust, Trust::Invalid);
        assert!(v.identity.error.contains("-67061"), "{}", v.identity.error);
        let v = status(0, -67054);
        assert_eq!(v.identity.trust, Trust::Invalid);
        let v = status(-67068, 0);
        assert_eq!(v.identity.trust, Trust::Unknown);
        let v = status(100_002, 0);
        assert_eq!((v.identity.trust, v.cacheable), (Trust::Unknown, false));
        for (lookup, validity) in [(-67062, 0), (0, -67061), (0, -67034), (-67065, 0)] {
            assert_eq!(
                next_requirement(&SigningEvidence {
                    lookup,
                    validity,
                    ..file(0)
                }),
                None
            );
        }
    }

    #[test]
    fn running_code_the_kernel_or_security_marks_invalid() {
        let v = decide(&with(developer_id_process(), |e| {
            e.validity = ERR_SEC_CS_GUEST_INVALID
        }));
        assert_eq!((v.identity.trust, v.cacheable), (Trust::Invalid, true));
        // Signed at exec, invalidated since (CS_VALID cleared).
        let v = decide(&with(process(CS_SIGNED), |e| e.lookup = -67054));
        assert_eq!(v.identity.trust, Trust::Invalid);
    }

    #[test]
    fn other_anchors_are_unknown_and_say_why() {
        let (e, asked) = settle(developer_id_process(), only(&[]));
        assert_eq!(
            asked,
            [
                Requirement::Apple,
                Requirement::AppStore,
                Requirement::DeveloperId,
                Requirement::TestFlight
            ],
            "notarization is only read for Developer ID code"
        );
        let v = decide(&e);
        assert_eq!((v.identity.trust, v.cacheable), (Trust::Unknown, true));
        assert!(v.identity.signed);
        assert!(
            v.identity.error.contains("not by Apple"),
            "{}",
            v.identity.error
        );
        assert_eq!(Check::from_status(0), Check::Satisfied);
        assert_eq!(Check::from_status(-67050), Check::NotSatisfied);
        assert_eq!(Check::from_status(-1), Check::Failed(-1));
    }

    #[test]
    fn kernel_flags_alone() {
        let id = verdict_from_kernel_flags(CS_VALID | CS_SIGNED | CS_PLATFORM_BINARY, "denied");
        assert_eq!((id.trust, id.platform_binary), (Trust::Apple, 1));
        let id =
            verdict_from_kernel_flags(CS_VALID | CS_SIGNED | CS_ADHOC | CS_LINKER_SIGNED, "denied");
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
        // No CS_SIGNED: the kernel loaded no signature at exec.
        let id = verdict_from_kernel_flags(0, "denied");
        assert_eq!((id.trust, id.signed), (Trust::Unsigned, false));
        // CS_PLATFORM_BINARY without CS_SIGNED cannot happen; never apple without it.
        let id = verdict_from_kernel_flags(CS_VALID | CS_PLATFORM_BINARY, "denied");
        assert_eq!(id.trust, Trust::Unsigned);
    }

    #[test]
    fn enclosing_bundles() {
        for (path, expected) in [
            (
                "/Applications/Foo.app/Contents/Resources/x.sh",
                Some(("/Applications/Foo.app", "Resources/x.sh")),
            ),
            (
                "/Applications/Foo.app/Contents/Helpers/Bar.app/Contents/MacOS/run.py",
                Some((
                    "/Applications/Foo.app/Contents/Helpers/Bar.app",
                    "MacOS/run.py",
                )),
            ),
            ("/tmp/x.sh", None),
            ("/Applications/Foo.app/Info.plist", None),
            ("/Applications/.app/Contents/Resources/x.sh", None),
            (
                "/Applications/Foo.app/Contents/Resources/../../../tmp/x.sh",
                None,
            ),
            ("/Applications/Foo.app/Contents/./Resources/x.sh", None),
            ("Foo.app/Contents/Resources/x.sh", None),
        ] {
            assert_eq!(enclosing_bundle(path), expected, "{path}");
        }
    }

    #[test]
    fn finding_7_a_sealed_script_takes_its_bundles_trust() {
        let script = CodeIdentity {
            trust: Trust::Unsigned,
            notarized: 0,
            sha256: "ab".into(),
            quarantined: true,
            ..Default::default()
        };
        let bundle = CodeIdentity {
            trust: Trust::DeveloperId,
            signed: true,
            identifier: "com.example.foo".into(),
            team_identifier: "ABCDE12345".into(),
            notarized: 1,
            ..Default::default()
        };
        let root = "/Applications/Foo.app";
        let id = sealed_resource_verdict(script.clone(), &bundle, root, 0);
        assert_eq!(id.trust, Trust::DeveloperId);
        assert_eq!(
            (id.identifier.as_str(), id.team_identifier.as_str()),
            ("com.example.foo", "ABCDE12345")
        );
        assert!(id.quarantined && id.error.is_empty());
        // The file differs from what the bundle sealed (errSecCSBadResource).
        let id = sealed_resource_verdict(script.clone(), &bundle, root, -67054);
        assert_eq!(id.trust, Trust::Unsigned);
        assert!(id.error.contains("not sealed") && id.error.contains("-67054"));
        // Sealed by an ad-hoc bundle: no trust to give.
        let adhoc = CodeIdentity {
            trust: Trust::Adhoc,
            ..bundle
        };
        let id = sealed_resource_verdict(script, &adhoc, root, 0);
        assert_eq!(id.trust, Trust::Unsigned);
        assert!(id.error.contains("not trusted (adhoc)"), "{}", id.error);
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
