//! Parser for the `sysctl(KERN_PROCARGS2)` reply of a macOS process. Pure and
//! portable so its byte-level edge cases are tested on every OS.
//!
//! Layout of the argument area (xnu `kern_exec.c`: `exec_save_path`,
//! `exec_extract_strings`, `exec_add_apple_strings`; `kern_sysctl.c`:
//! `sysctl_procargsx`), after a native-endian `int argc` the sysctl puts first:
//! - the executable path, NUL-terminated, then NUL padding to a multiple of 8:
//!   exactly `(8 - (len + 1) % 8) % 8` bytes, so an empty `argv[0]` right after it
//!   is still a string of its own;
//! - `argc` NUL-terminated argv strings, then the environment strings;
//! - NUL padding that ends argv + environment on an 8-byte boundary (none when it
//!   already ends on one), then the kernel's "apple" strings (`pfz=` first, then
//!   `stack_guard=`, `malloc_entropy=`, `ptr_munge=`, `main_stack=`,
//!   `executable_file=`, …), which are not the environment.
//!
//! The sysctl returns the *tail* of the area when the caller's buffer is smaller, and
//! nothing after argv when the kernel withholds a `CS_RESTRICT` process's environment.

/// What a process was started with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcArgs {
    /// The path the kernel exec'd (not argv\[0\]).
    pub exec_path: String,
    pub argv: Vec<String>,
    /// `KEY=value` strings.
    pub env: Vec<String>,
    /// The buffer ended before argc arguments were read: what is here is a prefix.
    pub truncated: bool,
    /// The kernel may have returned only the tail of a larger area (or the layout is
    /// not the kernel's): argv and environment are empty and nothing can be said.
    pub unreliable: bool,
    /// Nothing followed argv: the kernel withheld the environment (a `CS_RESTRICT`
    /// process with SIP on).
    pub env_withheld: bool,
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

/// Prefixes of the kernel's apple strings (xnu `kern_exec.c`), which follow the
/// environment.
pub const APPLE_KEYS: [&str; 22] = [
    "pfz=",
    "stack_guard=",
    "malloc_entropy=",
    "ptr_munge=",
    "main_stack=",
    "executable_file=",
    "dyld_file=",
    "executable_cdhash=",
    "executable_boothash=",
    "th_port=",
    "arm64e_abi=",
    "MallocNanoZone=",
    "MallocExperiment=",
    "HardenedRuntime=",
    "dyld_flags=",
    "subsystem_root_path=",
    "ptrauth_disabled=",
    "vm_force_4k_pages=",
    "hardened_heap=",
    "dyld_hw_tpro=",
    "executable_path=",
    "libmalloc_experiment=",
];

/// The first apple string the kernel writes, always (`exec_add_apple_strings`).
const FIRST_APPLE_KEY: &str = "pfz=";

/// Where the argument area is 8-byte aligned (64-bit processes).
const AREA_ALIGNMENT: usize = 8;

/// Bytes the buffer for `KERN_PROCARGS2` needs so that a reply shorter than it is
/// known to be the whole area: `needed` (the size the sysctl reported for
/// `oldp = NULL`) plus room to spare, at most what the kernel accepts (`argmax` + the
/// argc word). `None` when the area cannot be returned whole at all.
pub fn buffer_capacity(needed: usize, argmax: usize) -> Option<usize> {
    let accepted = argmax.checked_add(std::mem::size_of::<i32>())?;
    if needed >= accepted {
        return None;
    }
    Some(needed.saturating_add(AREA_ALIGNMENT).min(accepted))
}

/// Parses the sysctl's reply into a buffer of `capacity` bytes. A reply that filled
/// the buffer may be the tail of a larger area (the area grew between the size query
/// and the read): it is marked unreliable, never parsed.
pub fn parse_reply(reply: &[u8], capacity: usize) -> Result<ProcArgs, ProcArgsError> {
    if reply.len() >= capacity {
        return Ok(ProcArgs {
            unreliable: true,
            ..Default::default()
        });
    }
    parse(reply)
}

/// Root reads every process's arguments; anyone else only those of processes with
/// the same effective uid (`sysctl_procargsx` compares `kauth_cred_getuid`, the
/// effective uid, of both sides).
pub fn may_read_arguments(scanner_euid: u32, target_euid: u32) -> bool {
    scanner_euid == 0 || scanner_euid == target_euid
}

/// Parses a whole `KERN_PROCARGS2` area (exactly the bytes the sysctl returned).
pub fn parse(buf: &[u8]) -> Result<ProcArgs, ProcArgsError> {
    let (argc_bytes, area) = match buf.split_first_chunk::<4>() {
        Some(split) => split,
        None => return Err(ProcArgsError::TooShort(buf.len())),
    };
    let argc = i32::from_ne_bytes(*argc_bytes);
    // ARG_MAX (1 MiB) bounds a real argc far below MAX_ARGC; larger is garbage.
    let argc_len = usize::try_from(argc)
        .ok()
        .filter(|&n| n <= MAX_ARGC)
        .ok_or(ProcArgsError::BadArgc {
            argc,
            len: buf.len(),
        })?;

    let mut out = ProcArgs::default();
    let mut cursor = Cursor { area, at: 0 };
    match cursor.next_string() {
        Some((path, true)) => out.exec_path = path,
        Some((path, false)) => {
            out.exec_path = path;
            out.truncated = true;
            return Ok(out);
        }
        None => {
            out.truncated = argc_len > 0;
            return Ok(out);
        }
    }
    // Exactly the alignment padding: an empty argv[0] may follow it.
    let padding = (AREA_ALIGNMENT - cursor.at % AREA_ALIGNMENT) % AREA_ALIGNMENT;
    match cursor.skip_padding(padding) {
        Padding::Skipped => {}
        Padding::Ended => {
            out.truncated = argc_len > 0;
            return Ok(out);
        }
        Padding::NotZero => {
            out.exec_path.clear();
            out.unreliable = true;
            return Ok(out);
        }
    }

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

    if cursor.at >= area.len() {
        out.env_withheld = true;
        return Ok(out);
    }
    let env_end = apple_strings_start(area, cursor.at).unwrap_or(area.len());
    let mut env = Cursor {
        area: area.get(..env_end).unwrap_or_default(),
        at: cursor.at,
    };
    while out.env.len() < MAX_ENV_STRINGS {
        match env.next_string() {
            // Padding (and any empty string) is not a variable and ends nothing.
            Some((var, _)) if var.is_empty() => {}
            Some((var, _)) => out.env.push(var),
            None => break,
        }
    }
    Ok(out)
}

/// Offset of the first apple string at or after `from`: the last 8-aligned string
/// that starts with `pfz=` (the kernel writes it first, after every environment
/// string, so a variable named `pfz` cannot hide the variables after it), else the
/// first aligned string that starts with any apple key.
fn apple_strings_start(area: &[u8], from: usize) -> Option<usize> {
    let mut last_pfz = None;
    let mut first_key = None;
    let mut cursor = Cursor { area, at: from };
    loop {
        let start = cursor.at;
        let Some(bytes) = cursor.next_bytes() else {
            break;
        };
        if start % AREA_ALIGNMENT != 0 {
            continue;
        }
        if bytes.starts_with(FIRST_APPLE_KEY.as_bytes()) {
            last_pfz = Some(start);
        }
        if first_key.is_none() && APPLE_KEYS.iter().any(|k| bytes.starts_with(k.as_bytes())) {
            first_key = Some(start);
        }
    }
    last_pfz.or(first_key)
}

enum Padding {
    Skipped,
    /// The buffer ended inside the padding.
    Ended,
    /// A padding byte was not NUL: not the kernel's layout.
    NotZero,
}

struct Cursor<'a> {
    area: &'a [u8],
    /// Offset in `area` (which starts at the executable path).
    at: usize,
}

impl<'a> Cursor<'a> {
    /// The next string's bytes (without its NUL); `None` at the end of the area.
    fn next_bytes(&mut self) -> Option<&'a [u8]> {
        let rest = self.area.get(self.at..).filter(|r| !r.is_empty())?;
        let end = rest.iter().position(|&b| b == 0);
        let bytes = rest.get(..end.unwrap_or(rest.len())).unwrap_or_default();
        self.at += bytes.len() + usize::from(end.is_some());
        Some(bytes)
    }

    /// The next string and whether a NUL ended it; `None` at the end of the area.
    fn next_string(&mut self) -> Option<(String, bool)> {
        let before = self.at;
        let bytes = self.next_bytes()?;
        let terminated = self.at > before + bytes.len();
        Some((String::from_utf8_lossy(bytes).into_owned(), terminated))
    }

    fn skip_padding(&mut self, padding: usize) -> Padding {
        let Some(bytes) = self.area.get(self.at..self.at + padding) else {
            self.at = self.area.len();
            return Padding::Ended;
        };
        if bytes.iter().any(|&b| b != 0) {
            return Padding::NotZero;
        }
        self.at += padding;
        Padding::Skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APPLE: [&str; 5] = [
        "pfz=0x7ffffff6b000",
        "stack_guard=0x2a9c1c5fb2d8a00",
        "malloc_entropy=0x5c2f7a1e0e0c8e9f,0x4c0b7c9e1f2a3b4c",
        "ptr_munge=0x8ad3e8f00c1b0000",
        "executable_file=0x1a01000004,0x3b3f5",
    ];

    fn pad_to_8(b: &mut Vec<u8>, area_start: usize) {
        while (b.len() - area_start) % 8 != 0 {
            b.push(0);
        }
    }

    /// The area the way xnu writes it (`exec_save_path`, `exec_extract_strings`,
    /// `exec_add_apple_strings`), with argc in front as `sysctl_procargsx` puts it.
    fn area(exec_path: &str, argv: &[&str], env: &[&str], apple: &[&str]) -> Vec<u8> {
        let argc = i32::try_from(argv.len()).unwrap();
        let mut b = argc.to_ne_bytes().to_vec();
        let start = b.len();
        b.extend_from_slice(exec_path.as_bytes());
        b.push(0);
        pad_to_8(&mut b, start);
        for s in argv.iter().chain(env) {
            b.extend_from_slice(s.as_bytes());
            b.push(0);
        }
        pad_to_8(&mut b, start);
        for s in apple {
            b.extend_from_slice(s.as_bytes());
            b.push(0);
        }
        pad_to_8(&mut b, start);
        b
    }

    /// What `sysctl_procargsx` copies out into a buffer of `capacity` bytes: the
    /// whole area, or (buffer too small) its tail, argc first either way.
    fn kernel_reply(full: &[u8], capacity: usize) -> Vec<u8> {
        let (argc, strings) = full.split_at(4);
        let buflen = capacity - 4;
        let copied = if buflen >= strings.len() {
            strings
        } else {
            &strings[strings.len() - buflen..]
        };
        [argc, copied].concat()
    }

    #[test]
    fn parses_argv_env_and_stops_before_apple_strings() {
        let b = area(
            "/usr/bin/python3",
            &["python3", "-c", "print(1)"],
            &["HOME=/Users/a", "ALL_PROXY=socks5://127.0.0.1:1080"],
            &APPLE,
        );
        let p = parse(&b).unwrap();
        assert_eq!(p.exec_path, "/usr/bin/python3");
        assert_eq!(p.argv, ["python3", "-c", "print(1)"]);
        assert_eq!(
            p.env,
            ["HOME=/Users/a", "ALL_PROXY=socks5://127.0.0.1:1080"]
        );
        assert!(!p.truncated && !p.unreliable && !p.env_withheld);
    }

    #[test]
    fn empty_argv0_survives_the_path_padding() {
        // Every padding length 0..=7 after the path, with an empty argv[0].
        for len in 1..=16 {
            let path = format!("/{}", "p".repeat(len - 1));
            assert_eq!((8 - (len + 1) % 8) % 8, (8 - (path.len() + 1) % 8) % 8);
            let b = area(&path, &["", "-x", ""], &["A=1"], &APPLE);
            let p = parse(&b).unwrap();
            assert_eq!(p.exec_path, path);
            assert_eq!(p.argv, ["", "-x", ""], "path of {len} bytes");
            assert_eq!(p.env, ["A=1"], "path of {len} bytes");
        }
    }

    #[test]
    fn apple_strings_never_leak_into_the_environment_on_an_8_byte_boundary() {
        // argv + env ending exactly on an 8-byte boundary: no NUL separates the
        // environment from the apple strings.
        for extra in 0..8 {
            let var = format!("V={}", "v".repeat(extra));
            let b = area("/bin/zsh", &["zsh"], &["HOME=/Users/a", &var], &APPLE);
            let p = parse(&b).unwrap();
            assert_eq!(p.env, ["HOME=/Users/a", var.as_str()], "extra {extra}");
        }
        // Unaligned end: the padding NULs are not variables either.
        let b = area("/bin/zsh", &["zsh"], &["HOME=/Users/a"], &APPLE);
        assert!(!parse(&b).unwrap().env.iter().any(|v| v.starts_with("pfz=")));
    }

    #[test]
    fn a_variable_named_like_an_apple_key_hides_nothing() {
        for decoy in ["pfz=1", "ptr_munge=1", "stack_guard=0"] {
            for filler in 0..8 {
                let fill = format!("F={}", "f".repeat(filler));
                let env = [fill.as_str(), decoy, "", "ALL_PROXY=socks5://10.0.0.1:1080"];
                let b = area("/usr/bin/curl", &["curl"], &env, &APPLE);
                let p = parse(&b).unwrap();
                assert!(
                    p.env
                        .contains(&"ALL_PROXY=socks5://10.0.0.1:1080".to_string()),
                    "{decoy} {filler}: {:?}",
                    p.env
                );
                assert!(!p.env.iter().any(|v| v.starts_with("stack_guard=0x")));
            }
        }
    }

    #[test]
    fn withheld_environment_is_reported() {
        // sysctl_procargsx cuts a CS_RESTRICT process's area right after argv.
        let full = area("/usr/libexec/x", &["x", "-y"], &["SECRET=1"], &APPLE);
        let argv_end = 4 + 16 + "x".len() + 1 + "-y".len() + 1;
        let p = parse(&full[..argv_end]).unwrap();
        assert_eq!(p.argv, ["x", "-y"]);
        assert!(p.env_withheld && p.env.is_empty() && !p.truncated);
        assert!(!parse(&full).unwrap().env_withheld);
    }

    #[test]
    fn size_first_and_a_reply_that_fills_the_buffer_is_unreliable() {
        // About 1 MiB of environment: the area is larger than the kernel returns whole.
        let big = format!("JUNK={}", "j".repeat(1024 * 1024));
        let full = area(
            "/usr/bin/python3",
            &["python3", "/tmp/evil.py"],
            &[&big, "X=python3"],
            &APPLE,
        );
        let argmax = 1024 * 1024;
        assert_eq!(buffer_capacity(full.len(), argmax), None);
        // The area grew between the size query and the read: the tail comes back.
        let small = area("/usr/bin/python3", &["python3", "/tmp/x.py"], &[], &APPLE);
        let capacity = buffer_capacity(small.len(), argmax).unwrap();
        assert!(capacity > small.len());
        let reply = kernel_reply(&full, capacity);
        assert_eq!(reply.len(), capacity);
        let p = parse_reply(&reply, capacity).unwrap();
        assert!(p.unreliable && p.argv.is_empty() && p.env.is_empty());
        // Parsed anyway, the tail would have made environment strings argv.
        let tail = parse(&reply).unwrap();
        assert_ne!(tail.argv, ["python3", "/tmp/evil.py"]);
        // The whole area fits: parsed.
        let reply = kernel_reply(&small, capacity);
        let p = parse_reply(&reply, capacity).unwrap();
        assert!(!p.unreliable);
        assert_eq!(p.argv, ["python3", "/tmp/x.py"]);
        assert_eq!(buffer_capacity(argmax + 4, argmax), None);
        assert_eq!(buffer_capacity(argmax, argmax), Some(argmax + 4));
    }

    #[test]
    fn truncated_buffers_give_a_marked_prefix() {
        let full = area(
            "/usr/bin/perl",
            &["perl", "-e", "connect()"],
            &["X=1"],
            &APPLE,
        );
        // Cut inside the third argument.
        let third = 4 + 16 + "perl".len() + 1 + "-e".len() + 1;
        let p = parse(&full[..third + 1]).unwrap();
        assert_eq!(p.argv, ["perl", "-e", "c"]);
        assert!(p.truncated);
        // Cut right after the second argument's NUL: argc not reached.
        let p = parse(&full[..third]).unwrap();
        assert_eq!(p.argv, ["perl", "-e"]);
        assert!(p.truncated);
        // Cut inside the executable path, and inside its padding.
        let p = parse(&full[..8]).unwrap();
        assert_eq!(p.exec_path, "/usr");
        assert!(p.argv.is_empty() && p.truncated);
        let p = parse(&full[..4 + 15]).unwrap();
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
        // Non-NUL padding: not the kernel's layout.
        let mut b = 1i32.to_ne_bytes().to_vec();
        b.extend_from_slice(b"/bin/x\0zz\0\0\0\0\0");
        let p = parse(&b).unwrap();
        assert!(p.unreliable && p.argv.is_empty());
        // Invalid UTF-8 survives as replacement characters, not a panic.
        let mut b = 1i32.to_ne_bytes().to_vec();
        b.extend_from_slice(b"/bin/\xff\0\0\xfe\xfd\0");
        let p = parse(&b).unwrap();
        assert_eq!(p.exec_path, "/bin/\u{fffd}");
        assert_eq!(p.argv, ["\u{fffd}\u{fffd}"]);
    }

    #[test]
    fn environment_is_bounded() {
        let vars = vec!["V=1"; MAX_ENV_STRINGS + 10];
        let b = area("/bin/a", &["a"], &vars, &APPLE);
        let p = parse(&b).unwrap();
        assert_eq!(p.env.len(), MAX_ENV_STRINGS);
    }

    /// Finding 15: the kernel compares effective uids.
    #[test]
    fn permission_uses_effective_uids() {
        for (scanner, target, allowed) in [
            (0, 501, true),
            (501, 501, true),
            (501, 502, false),
            // A setuid-root process run by 501 has euid 0: 501 may not read it.
            (501, 0, false),
        ] {
            assert_eq!(
                may_read_arguments(scanner, target),
                allowed,
                "{scanner} {target}"
            );
        }
    }
}
