//! Security.framework: the live process's signature by pid
//! (`SecCodeCopyGuestWithAttributes`) and a file's static signature
//! (`SecStaticCodeCreateWithPath`, resources never validated). Fills a
//! [`SigningEvidence`]; `codesign.rs` turns it into a verdict.
//!
//! `SecCodeCopySigningInformation` and the `kSecCodeInfo*` keys are not wrapped by
//! security-framework 3.x, so they are declared here.

use super::codesign::{self, Check, SigningEvidence};
use crate::model::Pid;
use core_foundation::array::CFArray;
use core_foundation::base::{CFType, TCFType};
use core_foundation::data::CFData;
use core_foundation::dictionary::{CFDictionary, CFDictionaryRef};
use core_foundation::number::CFNumber;
use core_foundation::string::{CFString, CFStringRef};
use core_foundation::url::CFURL;
use security_framework::certificate::SecCertificate;
use security_framework::os::macos::code_signing::{
    Flags, GuestAttributes, SecCode, SecRequirement, SecStaticCode,
};
use security_framework_sys::code_signing::{
    SecCodeCheckValidity, SecStaticCodeCheckValidity, SecStaticCodeRef,
};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

#[link(name = "Security", kind = "framework")]
extern "C" {
    static kSecCodeInfoIdentifier: CFStringRef;
    static kSecCodeInfoTeamIdentifier: CFStringRef;
    static kSecCodeInfoCertificates: CFStringRef;
    static kSecCodeInfoUnique: CFStringRef;
    static kSecCodeInfoFlags: CFStringRef;
    static kSecCodeInfoStatus: CFStringRef;
    static kSecCodeInfoPlatformIdentifier: CFStringRef;

    fn SecCodeValidateFileResource(
        code: SecStaticCodeRef,
        relative_path: CFStringRef,
        file_data: core_foundation::data::CFDataRef,
        flags: u32,
    ) -> i32;

    fn SecCodeCopySigningInformation(
        code: SecStaticCodeRef,
        flags: u32,
        information: *mut CFDictionaryRef,
    ) -> i32;
}

/// `SecCSFlags` for `SecCodeCopySigningInformation`.
const K_SEC_CS_SIGNING_INFORMATION: u32 = 1 << 1;
const K_SEC_CS_DYNAMIC_INFORMATION: u32 = 1 << 3;
/// `kSecCSDoNotValidateResources`: what keeps static checks of big bundles fast.
const K_SEC_CS_DO_NOT_VALIDATE_RESOURCES: u32 = 1 << 2;

/// Counts one Security.framework validation call (validity or requirement check)
/// in the caller's counter, so tests can prove a cached second query makes none.
fn count_validation(calls: &AtomicU64) {
    calls.fetch_add(1, Ordering::Relaxed);
}

/// Evidence for a running process, looked up by its audit token when the caller has
/// one (that very process, never a later holder of the pid), else by pid. Lookup
/// failures are recorded in `lookup`; `codesign::decide` says what they mean.
pub fn process_evidence(
    pid: Pid,
    audit_token: Option<&[u8]>,
    kernel_flags: u32,
    kernel_cdhash: Option<Vec<u8>>,
    calls: &AtomicU64,
) -> SigningEvidence {
    let mut evidence = SigningEvidence {
        kernel_flags: Some(kernel_flags),
        kernel_cdhash,
        ..Default::default()
    };
    let mut attributes = GuestAttributes::new();
    match audit_token {
        Some(token) => {
            // The dictionary retains the data.
            let token = CFData::from_buffer(token);
            attributes.set_audit_token(token.as_concrete_TypeRef());
        }
        None => attributes.set_pid(pid),
    }
    let code = match SecCode::copy_guest_with_attribues(None, &attributes, Flags::NONE) {
        Ok(code) => code,
        Err(e) => {
            evidence.lookup = e.code();
            return evidence;
        }
    };
    count_validation(calls);
    // SAFETY: a live SecCodeRef; a null requirement means "validity only".
    evidence.validity =
        unsafe { SecCodeCheckValidity(code.as_concrete_TypeRef(), 0, std::ptr::null_mut()) };
    // A SecCodeRef is accepted wherever a SecStaticCodeRef is (Apple's docs);
    // dynamic information needs the SecCode itself.
    fill_signing_information(
        &mut evidence,
        code.as_concrete_TypeRef().cast(),
        K_SEC_CS_SIGNING_INFORMATION | K_SEC_CS_DYNAMIC_INFORMATION,
    );
    while let Some(requirement) = codesign::next_requirement(&evidence) {
        let check = match SecRequirement::from_str(requirement.text()) {
            Ok(compiled) => {
                count_validation(calls);
                match code.check_validity(Flags::NONE, &compiled) {
                    Ok(()) => Check::Satisfied,
                    Err(e) => Check::from_status(e.code()),
                }
            }
            Err(e) => Check::Failed(e.code()),
        };
        evidence.record(requirement, check);
    }
    evidence
}

/// Evidence for a file on disk (scripts: the signature may live in xattrs).
pub fn file_evidence(path: &str, calls: &AtomicU64) -> SigningEvidence {
    let mut evidence = SigningEvidence::default();
    let Some(url) = CFURL::from_path(path, false) else {
        evidence.lookup = codesign::ERR_SEC_CS_STATIC_CODE_NOT_FOUND;
        return evidence;
    };
    let code = match SecStaticCode::from_path(&url, Flags::NONE) {
        Ok(code) => code,
        Err(e) => {
            evidence.lookup = e.code();
            return evidence;
        }
    };
    count_validation(calls);
    // SAFETY: a live SecStaticCodeRef; a null requirement means "validity only".
    evidence.validity = unsafe {
        SecStaticCodeCheckValidity(
            code.as_concrete_TypeRef(),
            K_SEC_CS_DO_NOT_VALIDATE_RESOURCES,
            std::ptr::null_mut(),
        )
    };
    fill_signing_information(
        &mut evidence,
        code.as_concrete_TypeRef(),
        K_SEC_CS_SIGNING_INFORMATION,
    );
    while let Some(requirement) = codesign::next_requirement(&evidence) {
        let check = match SecRequirement::from_str(requirement.text()) {
            Ok(compiled) => {
                count_validation(calls);
                match code.check_validity(Flags::DO_NOT_VALIDATE_RESOURCES, &compiled) {
                    Ok(()) => Check::Satisfied,
                    Err(e) => Check::from_status(e.code()),
                }
            }
            Err(e) => Check::Failed(e.code()),
        };
        evidence.record(requirement, check);
    }
    evidence
}

/// Whether `data` is exactly what the bundle at `bundle_root` sealed as `relative`
/// (a path under its `Contents/`): the OSStatus of `SecCodeValidateFileResource`
/// (0 = sealed and unchanged).
pub fn validate_bundle_resource(
    bundle_root: &str,
    relative: &str,
    data: &[u8],
    calls: &AtomicU64,
) -> i32 {
    let Some(url) = CFURL::from_path(bundle_root, true) else {
        return codesign::ERR_SEC_CS_STATIC_CODE_NOT_FOUND;
    };
    let code = match SecStaticCode::from_path(&url, Flags::NONE) {
        Ok(code) => code,
        Err(e) => return e.code(),
    };
    let relative = CFString::new(relative);
    let data = CFData::from_buffer(data);
    count_validation(calls);
    // SAFETY: live CF objects owned above; flags must be 0.
    unsafe {
        SecCodeValidateFileResource(
            code.as_concrete_TypeRef(),
            relative.as_concrete_TypeRef(),
            data.as_concrete_TypeRef(),
            0,
        )
    }
}

/// Copies identifier, team, leaf CN, cdhash, flags, status and platform identifier
/// out of `SecCodeCopySigningInformation`'s dictionary. Missing keys stay empty.
fn fill_signing_information(evidence: &mut SigningEvidence, code: SecStaticCodeRef, flags: u32) {
    let mut info: CFDictionaryRef = std::ptr::null();
    // SAFETY: `code` is a live code object; `info` receives a +1 dictionary.
    let status = unsafe { SecCodeCopySigningInformation(code, flags, &mut info) };
    if status != 0 || info.is_null() {
        return;
    }
    // SAFETY: create rule: we own the dictionary returned above.
    let info: CFDictionary<CFString, CFType> =
        unsafe { CFDictionary::wrap_under_create_rule(info) };
    // SAFETY: the kSecCodeInfo* keys are immutable CFStrings exported by Security.
    let key = |k: CFStringRef| unsafe { CFString::wrap_under_get_rule(k) };
    let value = |k: CFStringRef| info.find(key(k)).map(|v| v.clone());

    let string = |k| {
        value(k)
            .and_then(|v| v.downcast::<CFString>())
            .map(|s| s.to_string())
    };
    let number = |k| {
        value(k)
            .and_then(|v| v.downcast::<CFNumber>())
            .and_then(|n| n.to_i64())
    };

    // SAFETY (all key reads below): see `key`.
    unsafe {
        evidence.identifier = string(kSecCodeInfoIdentifier).unwrap_or_default();
        evidence.team_identifier = string(kSecCodeInfoTeamIdentifier).unwrap_or_default();
        evidence.code_flags = number(kSecCodeInfoFlags).and_then(|f| u32::try_from(f).ok());
        evidence.dynamic_status = number(kSecCodeInfoStatus).and_then(|f| u32::try_from(f).ok());
        evidence.platform_identifier = number(kSecCodeInfoPlatformIdentifier);
        evidence.cdhash = value(kSecCodeInfoUnique)
            .and_then(|v| v.downcast::<CFData>())
            .map(|d| d.bytes().to_vec())
            .unwrap_or_default();
        evidence.leaf_common_name = value(kSecCodeInfoCertificates)
            .and_then(|v| v.downcast::<CFArray>())
            .and_then(|chain| {
                let leaf = *chain.get(0)?;
                if leaf.is_null() {
                    return None;
                }
                // The leaf comes first; the array keeps it alive while we read it.
                CFType::wrap_under_get_rule(leaf)
                    .downcast::<SecCertificate>()
                    .map(|certificate| certificate.subject_summary())
            })
            .unwrap_or_default();
    }
}
