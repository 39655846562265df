//! Small helpers with no OS policy and no knowledge of an1256's domain: the
//! bottom layer, importable from everywhere.

pub mod base64;
pub mod glob;
pub mod hex;
pub mod time;

/// The text of a panic payload (`&str` or `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}
