//! The script file a process runs, found as the process would find it: from the
//! raw argv bytes, inside `/proc/<pid>/root` (absolute operands) or beneath
//! `/proc/<pid>/cwd` (relative ones), with `openat2` and no lexical `..` removal, and
//! opened with the process's own fs credentials (`userfile`).
//!
//! The decisions are pure and unit-tested here (`raw_operand`, `package_refusal`,
//! `apply_refusal`); the syscalls are thin. Rules (fail closed):
//! - an operand whose display text does not map back to exactly one raw argv
//!   element cannot be resolved: `unknown`;
//! - `package` trust is never granted through a symlink on the way, through a
//!   directory the process's user can write (they could have swapped the file after
//!   start), to a file that is not the host's file at that path (`(dev, ino)`
//!   differs: another mount namespace or root, e.g. a bind mount in `unshare -Urm`),
//!   or to a relative operand (the cwd may have changed since exec);
//! - a relative operand is judged at all only when the file it resolves to now is
//!   one the process holds open (bash fd 255, dash fd >= 10, php fd 3); otherwise
//!   it is `unknown` with no hash, since the file found now may not be the one that
//!   was started.

use super::procfs::ProcDir;
use super::userfile::{self, Anchor, FsCredentials};
use crate::platform::HostError;
use std::collections::HashSet;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};

/// Most fds looked at for a held script file.
const MAX_HELD_FDS: usize = 65_536;
/// Most path components checked for a writable directory.
const MAX_COMPONENTS: usize = 64;

/// The raw argv bytes of the script operand. `operand` is the display text the
/// script grammar found; when it is an argv element, that element's raw bytes are
/// used. Text that came from a lossy decode (U+FFFD) and matches no single raw
/// element cannot be turned back into the bytes the process used.
pub fn raw_operand(
    argv: &[String],
    argv_raw: &[Vec<u8>],
    operand: &str,
) -> Result<Vec<u8>, HostError> {
    let matches: HashSet<&[u8]> = argv
        .iter()
        .zip(argv_raw)
        .filter(|(text, _)| text.as_str() == operand)
        .map(|(_, raw)| raw.as_slice())
        .collect();
    match matches.len() {
        1 => Ok(matches.into_iter().next().unwrap_or_default().to_vec()),
        0 if !operand.contains('\u{FFFD}') => Ok(operand.as_bytes().to_vec()),
        0 => Err(HostError::Malformed {
            what: format!("script path {operand:?}"),
            why: "not valid UTF-8 and names no single argv element".into(),
        }),
        _ => Err(HostError::Malformed {
            what: format!("script path {operand:?}"),
            why: "matches argv elements with different bytes".into(),
        }),
    }
}

/// What resolving a script operand showed, for `package_refusal`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathFacts {
    /// The operand was relative (resolved against the cwd as it is now).
    pub relative: bool,
    pub through_symlink: bool,
    /// A directory on the way that the process's user can write (`None`: none).
    pub writable_directory: Option<String>,
    /// Why the walk could not be checked (too deep, a component unreadable).
    pub unchecked: Option<String>,
    /// A directory on the way that anyone but root may write (whoever runs the
    /// process: the attacker need not be its user).
    pub changeable_directory: Option<String>,
    /// Why the process may see other files at these paths than the host did when
    /// it started: another mount namespace or root (a user namespace's bind mount,
    /// undone after the interpreter read the file); `None` in the host's own view.
    pub other_view: Option<String>,
    /// The file is the host's file at the same path (same `(dev, ino)`).
    pub same_file_on_host: bool,
}

/// Why `package` trust must not be granted, and whether the file's hash still
/// names what runs (so it may stay as the identity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: String,
    pub keep_hash: bool,
}

/// The fail-closed rules for package trust over a resolved script path.
pub fn package_refusal(facts: &PathFacts) -> Option<Refusal> {
    let refuse = |reason: String, keep_hash: bool| Some(Refusal { reason, keep_hash });
    if facts.through_symlink {
        return refuse(
            "script path goes through a symbolic link: package trust is not granted".into(),
            false,
        );
    }
    if let Some(dir) = &facts.writable_directory {
        return refuse(
            format!(
                "directory {dir} is writable by the process's user: package trust is not granted"
            ),
            false,
        );
    }
    if let Some(why) = &facts.unchecked {
        return refuse(
            format!("script path not verified ({why}): package trust is not granted"),
            false,
        );
    }
    if let Some(why) = &facts.other_view {
        return refuse(format!("{why}: package trust is not granted"), true);
    }
    if !facts.same_file_on_host {
        return refuse(
            "the process sees a different file at this path than the host (another mount namespace or root): package trust is not granted".into(),
            true,
        );
    }
    if facts.relative {
        return refuse(
            "relative script path (the cwd may have changed since exec): package trust is not granted".into(),
            true,
        );
    }
    None
}

/// Why the script's hash need not name the code that ran: someone other than root
/// (the process's own user included, unless it is root) can change the file, or a
/// directory on its path, so the content hashed now may not be what the
/// interpreter read at start; or the path goes through a symlink or could not be
/// checked. Empty when only root can change them.
pub fn changeable(resolved: &ResolvedScript) -> String {
    let facts = &resolved.facts;
    if let Some(why) = &facts.other_view {
        return why.clone();
    }
    if let Some(dir) = &facts.changeable_directory {
        return format!(
            "directory {dir} on the script's path is writable by a user other than root"
        );
    }
    if facts.through_symlink {
        return "the script's path goes through a symbolic link".into();
    }
    if let Some(why) = &facts.unchecked {
        return format!("the script's path was not checked ({why})");
    }
    match userfile::fstat(resolved.file.as_raw_fd()) {
        Ok(st) if FsCredentials::ROOT.may_write(st.st_uid, st.st_gid, st.st_mode) => {
            "the script file is writable by a user other than root".into()
        }
        Ok(_) => String::new(),
        Err(e) => format!("cannot stat the script file: {e}"),
    }
}

/// A verdict with `refusal` applied: a `package` verdict becomes `unknown` with the
/// reason; other verdicts are already untrusted and stay as they are.
pub fn apply_refusal(
    mut identity: crate::model::CodeIdentity,
    refusal: Option<&Refusal>,
) -> crate::model::CodeIdentity {
    let Some(refusal) = refusal else {
        return identity;
    };
    if identity.trust == crate::model::Trust::Package {
        identity.trust = crate::model::Trust::Unknown;
        identity.error = refusal.reason.clone();
        if !refusal.keep_hash {
            identity.sha256.clear();
        }
    }
    identity
}

/// The script file, open for reading, with what resolving it showed.
pub struct ResolvedScript {
    pub file: File,
    /// The name the package databases know it by (the kernel's name for it).
    pub claim_path: String,
    pub facts: PathFacts,
}

/// `(dev, ino)` of an fd.
fn file_key(fd: &OwnedFd) -> std::io::Result<(u64, u64)> {
    userfile::fstat(fd.as_raw_fd()).map(|st| (st.st_dev, st.st_ino))
}

/// `(dev, ino)` of every regular file the process holds open (bounded).
fn held_regular_files(dir: &ProcDir) -> HashSet<(u64, u64)> {
    let mut held = HashSet::new();
    let mut seen = 0usize;
    let _ = dir.for_each_fd(|fd_dir, _, name| {
        seen += 1;
        if seen > MAX_HELD_FDS {
            return;
        }
        // stat (not open) through the magic link: no side effect on any file type.
        // SAFETY: st is plain data filled by fstatat; name is NUL-terminated.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fd_dir is an open directory fd, st is valid for writes.
        if unsafe { libc::fstatat(fd_dir, name.as_ptr(), &mut st, 0) } == 0
            && st.st_mode & libc::S_IFMT == libc::S_IFREG
        {
            held.insert((st.st_dev, st.st_ino));
        }
    });
    held
}

/// The kernel's name for an open fd.
fn fd_path(fd: &OwnedFd) -> Option<String> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// What a path walk checks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// The directories leading to a file that must be there (`Err` when one is not).
    DirectoriesOfFile,
    /// Every component of a directory path, which may be missing part way: a
    /// missing component under directories only root can change was not there to
    /// be removed by anyone else.
    MaybeMissingDirectory,
}

/// The first directory on `raw`'s way from `base` (itself included) that
/// `credentials` may write. `Err` when the walk cannot be checked.
fn writable_directory(
    base: &OwnedFd,
    raw: &[u8],
    anchor: Anchor,
    credentials: &FsCredentials,
) -> Result<Option<String>, HostError> {
    walk_for_writers(base, raw, anchor, credentials, Walk::DirectoriesOfFile)
}

/// Why the directory `dir` (absolute, in the process's root `root`) or one above
/// it can be changed by someone other than root (a pyvenv.cfg or a program there
/// may have been removed since the process started); empty when only root can.
/// Symlinks are not followed: one on the way answers that it cannot be checked.
pub fn changeable_directory(root: &OwnedFd, dir: &[u8]) -> String {
    match walk_for_writers(
        root,
        dir,
        Anchor::InRoot,
        &FsCredentials::ROOT,
        Walk::MaybeMissingDirectory,
    ) {
        Ok(None) => String::new(),
        Ok(Some(found)) => format!("{found} is writable by a user other than root"),
        Err(why) => format!("cannot check it: {why}"),
    }
}

/// `f_type` of a FUSE file system: its server reports any ctime it likes.
const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

/// Whether `path` (absolute, missing now in the process's root `root`) was
/// missing before `before_ns` (wall clock, nanoseconds since the epoch) too: its
/// nearest existing directory above has a ctime older than that. Removing or
/// renaming an entry sets its directory's ctime to now, and no unprivileged call
/// sets a ctime back. `false` (not shown) on a symlink on the way (not followed),
/// on anything but a directory there, on FUSE, or on any error.
pub fn missing_before(root: &OwnedFd, path: &[u8], before_ns: i128) -> bool {
    let components: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    if !path.starts_with(b"/") || components.is_empty() || components.len() > MAX_COMPONENTS {
        return false;
    }
    for depth in (0..components.len()).rev() {
        let prefix = components.get(..depth).unwrap_or_default().join(&b'/');
        let ancestor = if depth == 0 {
            root.try_clone()
        } else {
            userfile::resolve(root.as_raw_fd(), &prefix, Anchor::InRoot, false).map(|r| r.fd)
        };
        let ancestor = match ancestor {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(_) => return false,
        };
        // The next component must be missing in this very directory (not a
        // symlink, not created since the caller looked).
        let Some(child) = components.get(depth) else {
            return false;
        };
        match userfile::resolve(ancestor.as_raw_fd(), child, Anchor::Beneath, false) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            _ => return false,
        }
        return unchanged_directory_before(&ancestor, before_ns);
    }
    false
}

/// A directory, not on FUSE, whose ctime is older than `before_ns`.
fn unchanged_directory_before(dir: &OwnedFd, before_ns: i128) -> bool {
    let Ok(st) = userfile::fstat(dir.as_raw_fd()) else {
        return false;
    };
    // SAFETY: statfs is plain data; fstatfs fills it or fails (O_PATH fds allowed).
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fs is valid for writes; dir is an open descriptor.
    if unsafe { libc::fstatfs(dir.as_raw_fd(), &mut fs) } != 0 {
        return false;
    }
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between targets
    let fs_type = fs.f_type as i64;
    let ctime_ns = i128::from(st.st_ctime) * 1_000_000_000 + i128::from(st.st_ctime_nsec);
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
        && fs_type != FUSE_SUPER_MAGIC
        && ctime_ns < before_ns
}

fn walk_for_writers(
    base: &OwnedFd,
    raw: &[u8],
    anchor: Anchor,
    credentials: &FsCredentials,
    walk: Walk,
) -> Result<Option<String>, HostError> {
    let components: Vec<&[u8]> = raw
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    if components.len() > MAX_COMPONENTS {
        return Err(HostError::TooMany {
            what: "path components".into(),
            limit: MAX_COMPONENTS,
        });
    }
    let last = match walk {
        Walk::DirectoriesOfFile => components.len().saturating_sub(1),
        Walk::MaybeMissingDirectory => components.len(),
    };
    let leading = if raw.starts_with(b"/") { "/" } else { "" };
    for depth in 0..=last {
        let prefix = components.get(..depth).unwrap_or_default().join(&b'/');
        let shown = format!("{leading}{}", String::from_utf8_lossy(&prefix));
        let st = if depth == 0 {
            userfile::fstat(base.as_raw_fd())
        } else {
            userfile::resolve(base.as_raw_fd(), &prefix, anchor, false)
                .and_then(|r| userfile::fstat(r.fd.as_raw_fd()))
        };
        let st = match st {
            Err(e)
                if walk == Walk::MaybeMissingDirectory
                    && e.raw_os_error() == Some(libc::ENOENT) =>
            {
                return Ok(None);
            }
            other => other.map_err(|e| HostError::unreadable(&shown, e))?,
        };
        if credentials.may_write(st.st_uid, st.st_gid, st.st_mode) {
            return Ok(Some(if shown.is_empty() { ".".into() } else { shown }));
        }
    }
    Ok(None)
}

/// Why the process may have read other files at these paths than the host
/// holds: it runs in another user namespace (where an unprivileged user can
/// mount over any path, and unmount after the interpreter read it) or in another
/// root. A mount namespace of its own in the host's user namespace (systemd's
/// sandboxing) was made by root and is not counted. `None` in the host's view.
pub fn other_view(dir: &ProcDir) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    /// The scanner's user namespace link and root (dev, ino).
    type View = (std::path::PathBuf, (u64, u64));
    // Read once: the scanner never changes its namespace or root.
    static OURS: std::sync::OnceLock<Result<View, String>> = std::sync::OnceLock::new();
    let ours = OURS.get_or_init(|| {
        let user = std::fs::read_link("/proc/self/ns/user")
            .map_err(|e| format!("cannot read the scanner's user namespace: {e}"))?;
        let root = std::fs::metadata("/")
            .map_err(|e| format!("cannot compare the process's root: {e}"))?;
        Ok((user, (root.dev(), root.ino())))
    });
    let (our_user, our_root) = match ours {
        Ok(ours) => ours,
        Err(why) => return Some(why.clone()),
    };
    let theirs = match dir.read_link(c"ns/user") {
        Ok(link) => link,
        Err(e) => return Some(format!("cannot read the process's user namespace: {e}")),
    };
    if std::path::Path::new(&theirs) != our_user {
        return Some(
            "the process runs in another user namespace, where its user can mount over any path: what it read need not be the file there now".into(),
        );
    }
    match dir.stat_entry(c"root") {
        Ok(st) if (st.st_dev, st.st_ino) == *our_root => None,
        Ok(_) => Some(
            "the process runs in another root (chroot): what it read need not be the host's file"
                .into(),
        ),
        Err(e) => Some(format!("cannot compare the process's root: {e}")),
    }
}

/// Resolves and opens the script `raw` names for the process behind `dir`.
pub fn resolve(
    dir: &ProcDir,
    raw: &[u8],
    credentials: &FsCredentials,
) -> Result<ResolvedScript, HostError> {
    let relative = !raw.starts_with(b"/");
    let (entry, anchor) = if relative {
        (c"cwd", Anchor::Beneath)
    } else {
        (c"root", Anchor::InRoot)
    };
    let base = dir
        .open_entry(entry, libc::O_PATH | libc::O_DIRECTORY)
        .map_err(|e| {
            HostError::unreadable(
                format!("the {} of process {}", entry.to_string_lossy(), dir.pid()),
                e,
            )
        })?;
    let shown = String::from_utf8_lossy(raw);
    let opened = userfile::open_regular(Some(credentials.clone()), Some(&base), raw, anchor, true)
        .map_err(|e| HostError::unreadable(format!("script {shown} as the process's user"), e))?;
    let key = file_key(&opened.path_fd)
        .map_err(|e| HostError::unreadable(format!("the status of script {shown}"), e))?;
    if relative && !held_regular_files(dir).contains(&key) {
        return Err(HostError::Malformed {
            what: format!("relative script path {shown}"),
            why: "the file it names now is not one the process holds open, and the process may have changed directory since exec (run scripts by absolute path)".into(),
        });
    }
    let claim_path = fd_path(&opened.path_fd).unwrap_or_default();
    let (writable_directory, unchecked) = match writable_directory(&base, raw, anchor, credentials)
    {
        Ok(found) => (found, None),
        Err(why) => (None, Some(why.to_string())),
    };
    let changeable_directory = if credentials.uid == 0 {
        writable_directory.clone()
    } else {
        self::writable_directory(&base, raw, anchor, &FsCredentials::ROOT)
            .unwrap_or_else(|why| Some(format!("? ({why})")))
    };
    let same_file_on_host = !claim_path.is_empty()
        && userfile::open_regular(None, None, claim_path.as_bytes(), Anchor::InRoot, false)
            .and_then(|host| file_key(&host.path_fd))
            .is_ok_and(|host_key| host_key == key);
    let other_view = other_view(dir);
    Ok(ResolvedScript {
        file: opened.file,
        claim_path,
        facts: PathFacts {
            relative,
            through_symlink: opened.through_symlink,
            writable_directory,
            unchecked,
            changeable_directory,
            other_view,
            same_file_on_host,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CodeIdentity, Trust};

    /// A directory under root-only ones, or missing beneath them, could not have
    /// been changed by another user; one a user owns, or under one, could; a
    /// symlink on the way is not followed.
    #[test]
    fn changeable_directories_are_those_a_user_could_have_changed() {
        use std::os::unix::fs::PermissionsExt;
        let root = open_at_root();
        let dir = tempfile::Builder::new()
            .prefix("a1256-changeable")
            .tempdir_in("/opt")
            .or_else(|_| tempfile::tempdir_in(std::env::temp_dir()))
            .expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = |p: &std::path::Path| p.to_str().expect("utf-8").as_bytes().to_vec();
        let under_opt = dir.path().starts_with("/opt");
        if under_opt && unsafe { libc::geteuid() } == 0 {
            assert_eq!(changeable_directory(&root, &path(dir.path())), "");
            assert_eq!(
                changeable_directory(&root, &path(&dir.path().join("gone/bin"))),
                "",
                "missing under root-only directories"
            );
            let users = dir.path().join("users");
            std::fs::create_dir(&users).unwrap();
            std::os::unix::fs::chown(&users, Some(65534), None).unwrap();
            let why = changeable_directory(&root, &path(&users.join("gone")));
            assert!(why.contains("writable by a user other than root"), "{why}");
            std::os::unix::fs::symlink("/usr", dir.path().join("link")).unwrap();
            let why = changeable_directory(&root, &path(&dir.path().join("link/bin")));
            assert!(why.contains("cannot check"), "{why}");
        }
        // /tmp is writable by everyone (sticky or not).
        let why = changeable_directory(&root, b"/tmp");
        assert!(why.contains("/tmp"), "{why}");
    }

    /// Missing below a directory unchanged since before a time: shown; the same
    /// after a removal there, through a symlink, or when the path is there: not.
    #[test]
    fn missing_before_reads_the_nearest_directory_ctime() {
        use std::os::unix::fs::MetadataExt;
        let root = open_at_root();
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".local/share")).unwrap();
        let bytes = |p: &std::path::Path| p.to_str().expect("utf-8").as_bytes().to_vec();
        let site = bytes(&home.join(".local/lib/python3.11/site-packages"));
        let ctime = |p: &std::path::Path| {
            let m = std::fs::metadata(p).unwrap();
            i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec())
        };
        let local = home.join(".local");
        assert!(missing_before(&root, &site, ctime(&local) + 1));
        assert!(
            !missing_before(&root, &site, ctime(&local)),
            "equal is not older"
        );
        // A removal there sets the directory's ctime to now.
        std::fs::create_dir(local.join("lib")).unwrap();
        let before_removal = ctime(&local) + 1;
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::remove_dir(local.join("lib")).unwrap();
        assert!(!missing_before(&root, &site, before_removal));
        assert!(missing_before(&root, &site, ctime(&local) + 1));
        // There now (a directory of that name), or behind a symlink: not shown.
        let there = bytes(&home.join(".local/share"));
        assert!(!missing_before(&root, &there, i128::MAX));
        std::os::unix::fs::symlink(&home, dir.path().join("link")).unwrap();
        let linked = bytes(&dir.path().join("link/.local/lib"));
        assert!(!missing_before(&root, &linked, i128::MAX));
        assert!(!missing_before(&root, b"relative/lib", i128::MAX));
    }

    fn open_at_root() -> OwnedFd {
        let fd = std::fs::File::open("/").expect("open /");
        OwnedFd::from(fd)
    }

    #[test]
    fn raw_operands_come_from_argv_bytes() {
        let argv = vec!["python3".to_string(), "/tmp/\u{FFFD}.py".to_string()];
        let raw = vec![b"python3".to_vec(), b"/tmp/\xff.py".to_vec()];
        assert_eq!(
            raw_operand(&argv, &raw, "/tmp/\u{FFFD}.py").unwrap(),
            b"/tmp/\xff.py"
        );
        assert_eq!(raw_operand(&argv, &raw, "/tmp/x.py").unwrap(), b"/tmp/x.py");
        // A lossy name that is no argv element (joined or normalised) is refused.
        assert!(raw_operand(&argv, &raw, "/a/\u{FFFD}.py").is_err());
        // Two raw spellings behind one display text: ambiguous.
        let argv2 = vec!["a\u{FFFD}".to_string(), "a\u{FFFD}".to_string()];
        let raw2 = vec![b"a\xff".to_vec(), b"a\xfe".to_vec()];
        assert!(raw_operand(&argv2, &raw2, "a\u{FFFD}").is_err());
        // No raw argv (another backend): the text is the bytes when it is clean.
        assert_eq!(raw_operand(&argv, &[], "/tmp/y.py").unwrap(), b"/tmp/y.py");
        assert!(raw_operand(&argv, &[], "/tmp/\u{FFFD}.py").is_err());
    }

    #[test]
    fn package_trust_needs_a_clean_absolute_host_path() {
        let clean = PathFacts {
            same_file_on_host: true,
            ..Default::default()
        };
        assert_eq!(package_refusal(&clean), None);
        let cases = [
            (
                PathFacts {
                    through_symlink: true,
                    ..clean.clone()
                },
                false,
            ),
            (
                PathFacts {
                    writable_directory: Some("/home/u".into()),
                    ..clean.clone()
                },
                false,
            ),
            (
                PathFacts {
                    unchecked: Some("deep".into()),
                    ..clean.clone()
                },
                false,
            ),
            (
                PathFacts {
                    same_file_on_host: false,
                    ..clean.clone()
                },
                true,
            ),
            (
                PathFacts {
                    relative: true,
                    ..clean.clone()
                },
                true,
            ),
        ];
        for (facts, keep_hash) in cases {
            let refusal = package_refusal(&facts).expect("refused");
            assert_eq!(refusal.keep_hash, keep_hash, "{facts:?}");
        }
    }

    #[test]
    fn a_refusal_turns_package_into_unknown_only() {
        let package = CodeIdentity {
            trust: Trust::Package,
            sha256: "ab".into(),
            identifier: "pkg".into(),
            ..Default::default()
        };
        let refusal = Refusal {
            reason: "symlink".into(),
            keep_hash: false,
        };
        let refused = apply_refusal(package.clone(), Some(&refusal));
        assert_eq!(refused.trust, Trust::Unknown);
        assert_eq!(refused.sha256, "");
        assert_eq!(refused.error, "symlink");
        let kept = apply_refusal(
            package.clone(),
            Some(&Refusal {
                keep_hash: true,
                ..refusal.clone()
            }),
        );
        assert_eq!(kept.sha256, "ab");
        let unsigned = CodeIdentity {
            trust: Trust::Unsigned,
            sha256: "cd".into(),
            ..Default::default()
        };
        assert_eq!(apply_refusal(unsigned.clone(), Some(&refusal)), unsigned);
        assert_eq!(apply_refusal(package.clone(), None), package);
    }
}
