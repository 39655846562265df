//! Text bound for a terminal. Notes, identities, command lines and paths come
//! from users (or from whatever a process wrote into its argv): printed raw,
//! control characters and escape sequences could rewrite the operator's screen,
//! and bidi controls could make `/tmp/evil` read as something else.

use std::borrow::Cow;

/// Unicode bidirectional formatting characters (embeddings, overrides, isolates,
/// marks): they reorder how the text around them is displayed.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Characters never printed as-is: C0 and C1 controls (ESC included), DEL and
/// bidi controls.
fn is_unsafe(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// `text` with every unsafe character shown as Rust's visible escape (`\u{1b}`,
/// `\u{202e}`, `\n`), so one value stays one line and shows what it holds.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !is_unsafe(c) {
            out.push(c);
            continue;
        }
        out.extend(c.escape_default());
    }
    Cow::Owned(out)
}

/// Text refused because it holds a bidi control.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} contains the bidi control U+{:04X}, which would disguise it on screen; remove it", *.control as u32)]
pub struct BidiControl {
    pub what: &'static str,
    pub control: char,
}

/// Refuses text holding bidi controls (identities and notes on write).
pub fn reject_bidi(what: &'static str, text: &str) -> Result<(), BidiControl> {
    match text.chars().find(|c| is_bidi_control(*c)) {
        Some(control) => Err(BidiControl { what, control }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_bidi_and_keeps_plain_text() {
        assert!(matches!(sanitize("plain note é"), Cow::Borrowed(_)));
        assert_eq!(
            sanitize("a\x1b[2Jb\u{202e}c\td\u{9b}"),
            "a\\u{1b}[2Jb\\u{202e}c\\td\\u{9b}"
        );
        assert!(reject_bidi("note", "fine").is_ok());
        let err = reject_bidi("note", "x\u{2067}y").unwrap_err();
        assert!(err.to_string().contains("U+2067"), "{err}");
    }
}
