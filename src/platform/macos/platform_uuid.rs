//! The IOPlatformUUID: the hardware UUID osquery reports as `system_info.uuid`.

use core_foundation::base::{CFType, TCFType};
use core_foundation::string::{CFString, CFStringRef};
use core_foundation_sys::base::{kCFAllocatorDefault, CFAllocatorRef, CFTypeRef};
use core_foundation_sys::dictionary::CFMutableDictionaryRef;
use std::os::raw::c_char;

/// `io_object_t` (a mach port name).
type IoObject = u32;
/// `kIOMainPortDefault` (MACH_PORT_NULL).
const IO_MAIN_PORT_DEFAULT: u32 = 0;

#[link(name = "IOKit", kind = "framework")]
extern "C" {
    fn IOServiceMatching(name: *const c_char) -> CFMutableDictionaryRef;
    fn IOServiceGetMatchingService(main_port: u32, matching: CFMutableDictionaryRef) -> IoObject;
    fn IORegistryEntryCreateCFProperty(
        entry: IoObject,
        key: CFStringRef,
        allocator: CFAllocatorRef,
        options: u32,
    ) -> CFTypeRef;
    fn IOObjectRelease(object: IoObject) -> i32;
}

/// Which step of reading the IOPlatformUUID failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlatformUuidError {
    #[error("IOServiceMatching(IOPlatformExpertDevice) failed")]
    NoMatchingDictionary,
    #[error("no IOPlatformExpertDevice in the I/O registry")]
    NoPlatformExpert,
    #[error("IOPlatformExpertDevice has no IOPlatformUUID")]
    NoUuidProperty,
    #[error("IOPlatformUUID is not a string")]
    NotAString,
}

/// The `IOPlatformUUID` property of `IOPlatformExpertDevice`.
pub fn platform_uuid() -> Result<String, PlatformUuidError> {
    // SAFETY: IOServiceMatching returns a dictionary that IOServiceGetMatchingService
    // consumes; the service is released once read; the property follows the create
    // rule and is wrapped (and released) by CFType.
    unsafe {
        let matching = IOServiceMatching(c"IOPlatformExpertDevice".as_ptr());
        if matching.is_null() {
            return Err(PlatformUuidError::NoMatchingDictionary);
        }
        let service = IOServiceGetMatchingService(IO_MAIN_PORT_DEFAULT, matching);
        if service == 0 {
            return Err(PlatformUuidError::NoPlatformExpert);
        }
        let key = CFString::from_static_string("IOPlatformUUID");
        let value = IORegistryEntryCreateCFProperty(
            service,
            key.as_concrete_TypeRef(),
            kCFAllocatorDefault,
            0,
        );
        IOObjectRelease(service);
        if value.is_null() {
            return Err(PlatformUuidError::NoUuidProperty);
        }
        CFType::wrap_under_create_rule(value)
            .downcast::<CFString>()
            .map(|s| s.to_string())
            .ok_or(PlatformUuidError::NotAString)
    }
}
