//! Parser for the `sysctl(KERN_PROCARGS2)` buffer of a macOS process. Pure and
//! portable so its byte-level edge cases are tested on every OS.
//!
//! Layout (xnu `sysctl_procargsx`): a native-endian `int argc`, the executable path
//! NUL-terminated, NUL padding up to pointer alignment, then `argc` NUL-terminated
//! argv strings, then the environment strings, ended by an empty string (after it
//! come the kernel's "apple" strings, which are not the environment).

/// What a process was started with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcArgs {
    /// The path the kernel exec'd (not argv\[0\]).
    pub exec_path: String,
    pub argv: Vec<String>,
    /// `KEY=value` strings.
    pub env: Vec<String>,
    /// The buffer ended before argc arguments (or the end of the environment) were
    /// read: what is here is a prefix.
    pub truncated: bool,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ProcArgsError {
    #[error("procargs buffer of {0} bytes is too short to hold argc")]
    TooShort(usize),
    #[error("procargs argc {argc} is impossible (buffer of {len} bytes)")]
    BadArgc { argc: i32, len: usize },
}

/// Largest argc believed (each argument needs a pointer and a NUL within ARG_MAX).
pub const MAX_ARGC: usize = 1 << 20;

/// Most environment strings kept: the buffer is already bounded by `KERN_ARGMAX`,
/// this bounds the row size when a process packs it with tiny strings.
pub const MAX_ENV_STRINGS: usize = 4096;

/// Parses a `KERN_PROCARGS2` buffer (exactly the bytes the sysctl returned).
pub fn parse(buf: &[u8]) -> Result<ProcArgs, ProcArgsError> {
    let (argc_bytes, rest) = match buf.split_first_chunk::<4>() {
        Some(split) => split,
        None => return Err(ProcArgsError::TooShort(buf.len())),
    };
    let argc = i32::from_ne_bytes(*argc_bytes);
    // ARG_MAX (1 MiB) bounds a real argc far below MAX_ARGC; larger is garbage. A
    // smaller argc than the buffer can hold is a truncated buffer, read as a prefix.
    let argc_len = usize::try_from(argc)
        .ok()
        .filter(|&n| n <= MAX_ARGC)
        .ok_or(ProcArgsError::BadArgc {
            argc,
            len: buf.len(),
        })?;

    let mut out = ProcArgs::default();
    let mut cursor = Cursor { rest };
    match cursor.next_string() {
        Some((path, terminated)) => {
            out.exec_path = path;
            if !terminated {
                out.truncated = true;
                return Ok(out);
            }
        }
        None => {
            out.truncated = argc_len > 0;
            return Ok(out);
        }
    }
    cursor.skip_nuls();

    for _ in 0..argc_len {
        match cursor.next_string() {
            Some((arg, terminated)) => {
                out.argv.push(arg);
                if !terminated {
                    out.truncated = true;
                    return Ok(out);
                }
            }
            None => {
                out.truncated = true;
                return Ok(out);
            }
        }
    }

    while out.env.len() < MAX_ENV_STRINGS {
        match cursor.next_string() {
            // The empty string ends the environment; the apple strings follow.
            Some((var, true)) if var.is_empty() => break,
            Some((var, terminated)) => {
                out.env.push(var);
                if !terminated {
                    out.truncated = true;
                    break;
                }
            }
            None => break,
        }
    }
    Ok(out)
}

struct Cursor<'a> {
    rest: &'a [u8],
}

impl Cursor<'_> {
    /// The next string and whether a NUL ended it; `None` at the end of the buffer.
    fn next_string(&mut self) -> Option<(String, bool)> {
        if self.rest.is_empty() {
            return None;
        }
        let (bytes, terminated, rest) = match self.rest.iter().position(|&b| b == 0) {
            Some(end) => (
                self.rest.get(..end).unwrap_or_default(),
                true,
                self.rest.get(end + 1..).unwrap_or_default(),
            ),
            None => (self.rest, false, &[][..]),
        };
        self.rest = rest;
        Some((String::from_utf8_lossy(bytes).into_owned(), terminated))
    }

    fn skip_nuls(&mut self) {
        let skip = self.rest.iter().take_while(|&&b| b == 0).count();
        self.rest = self.rest.get(skip..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a buffer the way xnu lays it out.
    fn buffer(argc: i32, exec_path: &str, pad: usize, strings: &[&str]) -> Vec<u8> {
        let mut b = argc.to_ne_bytes().to_vec();
        b.extend_from_slice(exec_path.as_bytes());
        b.push(0);
        b.extend(std::iter::repeat_n(0u8, pad));
        for s in strings {
            b.extend_from_slice(s.as_bytes());
            b.push(0);
        }
        b
    }

    #[test]
    fn parses_argv_env_and_stops_before_apple_strings() {
        let b = buffer(
            3,
            "/usr/bin/python3",
            5,
            &[
                "python3",
                "-c",
                "print(1)",
                "HOME=/Users/a",
                "ALL_PROXY=socks5://127.0.0.1:1080",
                "",
                "executable_path=/usr/bin/python3",
                "ptr_munge=",
            ],
        );
        let p = parse(&b).unwrap();
        assert_eq!(p.exec_path, "/usr/bin/python3");
        assert_eq!(p.argv, ["python3", "-c", "print(1)"]);
        assert_eq!(
            p.env,
            ["HOME=/Users/a", "ALL_PROXY=socks5://127.0.0.1:1080"]
        );
        assert!(!p.truncated);
    }

    #[test]
    fn empty_arguments_are_kept_in_place() {
        // `prog "" x`: an empty argv entry must not end argv early.
        let b = buffer(3, "/bin/prog", 0, &["prog", "", "x", "A=1", ""]);
        let p = parse(&b).unwrap();
        assert_eq!(p.argv, ["prog", "", "x"]);
        assert_eq!(p.env, ["A=1"]);
    }

    #[test]
    fn no_padding_and_no_environment() {
        let b = buffer(1, "/bin/sh", 0, &["sh", ""]);
        let p = parse(&b).unwrap();
        assert_eq!(p.argv, ["sh"]);
        assert!(p.env.is_empty());
        // No terminating empty string at all: still fine.
        let b = buffer(1, "/bin/sh", 3, &["sh"]);
        let p = parse(&b).unwrap();
        assert_eq!(p.argv, ["sh"]);
        assert!(p.env.is_empty() && !p.truncated);
    }

    #[test]
    fn truncated_buffers_give_a_marked_prefix() {
        let full = buffer(
            3,
            "/usr/bin/perl",
            2,
            &["perl", "-e", "connect()", "X=1", ""],
        );
        // Cut inside the third argument.
        let cut = full.len() - "onnect()".len() - "X=1".len() - 3;
        let p = parse(&full[..cut]).unwrap();
        assert_eq!(p.argv, ["perl", "-e", "c"]);
        assert!(p.truncated);
        // Cut right after the second argument's NUL: argc not reached.
        let cut = 4 + "/usr/bin/perl".len() + 1 + 2 + "perl".len() + 1 + "-e".len() + 1;
        let p = parse(&full[..cut]).unwrap();
        assert_eq!(p.argv, ["perl", "-e"]);
        assert!(p.truncated);
        // Cut inside the executable path.
        let p = parse(&full[..8]).unwrap();
        assert_eq!(p.exec_path, "/usr");
        assert!(p.argv.is_empty() && p.truncated);
        // Only argc.
        let p = parse(&full[..4]).unwrap();
        assert!(p.exec_path.is_empty() && p.truncated);
    }

    #[test]
    fn garbage_is_rejected_or_bounded() {
        assert_eq!(parse(&[]), Err(ProcArgsError::TooShort(0)));
        assert_eq!(parse(&[1, 0, 0]), Err(ProcArgsError::TooShort(3)));
        let mut b = (-5i32).to_ne_bytes().to_vec();
        b.extend_from_slice(b"/bin/x\0x\0");
        assert!(matches!(
            parse(&b),
            Err(ProcArgsError::BadArgc { argc: -5, .. })
        ));
        let mut b = i32::MAX.to_ne_bytes().to_vec();
        b.extend_from_slice(b"/bin/x\0x\0");
        assert!(matches!(parse(&b), Err(ProcArgsError::BadArgc { .. })));
        // Invalid UTF-8 survives as replacement characters, not a panic.
        let mut b = 1i32.to_ne_bytes().to_vec();
        b.extend_from_slice(b"/bin/\xff\0\xfe\xfd\0");
        let p = parse(&b).unwrap();
        assert_eq!(p.exec_path, "/bin/\u{fffd}");
        assert_eq!(p.argv, ["\u{fffd}\u{fffd}"]);
    }

    #[test]
    fn environment_is_bounded() {
        let mut strings = vec!["a"];
        strings.extend(std::iter::repeat_n("V=1", MAX_ENV_STRINGS + 10));
        let b = buffer(1, "/bin/a", 0, &strings);
        let p = parse(&b).unwrap();
        assert_eq!(p.env.len(), MAX_ENV_STRINGS);
    }
}
