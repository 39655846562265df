//! What a store rebuild must not reset, and where the store may live.
//!
//! - The learning window and install time live in `<store>.state` (JSON, 0600,
//!   written atomically), not in the SQLite file: a store that is deleted, or
//!   moved aside as corrupt, comes back without its approvals but never with a
//!   fresh learning window that would learn whatever runs then (implants included).
//! - The store's directory is verified from `/` down through directory fds
//!   (`openat(O_NOFOLLOW | O_DIRECTORY)`): every ancestor owned by root (or by
//!   us) and not writable by others unless sticky; the directory itself owned by
//!   root or us and writable by nobody else, sticky or not (a sticky shared
//!   directory still lets another user pre-create `-wal`/`-shm`/`.state` files).

use super::StoreError;
use std::ffi::{CString, OsStr};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// Largest state file read.
const MAX_STATE_BYTES: u64 = 4096;
/// Symlinks followed while verifying one directory path (macOS `/var`).
const MAX_SYMLINKS: usize = 8;

/// The learning window and install time of a host's baseline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LearningState {
    pub installed_at: i64,
    pub learning_until: i64,
}

/// `<store>.state`.
pub fn state_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".state");
    PathBuf::from(name)
}

/// Reads the state file: `Ok(None)` when there is none, `Err` when it cannot be
/// trusted (unreadable, malformed, a symlink, not ours).
pub fn read_state(db: &Path) -> Result<Option<LearningState>, StoreError> {
    let fail = |message: String| StoreError::Io {
        path: db.display().to_string(),
        message,
    };
    let path = state_path(db);
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(format!("cannot read {}: {e}", path.display()))),
    };
    let meta = file
        .metadata()
        .map_err(|e| fail(format!("cannot inspect {}: {e}", path.display())))?;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if !meta.is_file() || meta.uid() != euid || meta.mode() & 0o022 != 0 {
        return Err(fail(format!(
            "{} is not a regular file of ours, writable only by us",
            path.display()
        )));
    }
    let mut text = String::new();
    file.take(MAX_STATE_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| fail(format!("{} is malformed: {e}", path.display())))
}

/// Writes the state file atomically (a private temporary file, fsync, rename).
pub fn write_state(db: &Path, state: &LearningState) -> Result<(), StoreError> {
    let fail = |message: String| StoreError::Io {
        path: db.display().to_string(),
        message,
    };
    let path = state_path(db);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let text = serde_json::to_string(state).map_err(|e| fail(e.to_string()))?;
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, &path));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(format!("cannot write {}: {e}", path.display()))
    })
}

/// A verified store directory, held open.
pub struct StoreDir {
    pub fd: OwnedFd,
}

fn open_at(parent: &OwnedFd, name: &OsStr) -> std::io::Result<OwnedFd> {
    let c_name = CString::new(name.as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: parent is an open directory fd and c_name a NUL-terminated name.
    let fd = unsafe {
        libc::openat(
            parent.as_raw_fd(),
            c_name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn stat_fd(fd: &OwnedFd) -> std::io::Result<libc::stat> {
    // SAFETY: an all-zero stat is a valid value for fstat to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open and st is valid for writing.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`; `Ok(None)` when absent.
pub fn stat_at(dir: &OwnedFd, name: &OsStr) -> std::io::Result<Option<libc::stat>> {
    let c_name = CString::new(name.as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: as in stat_fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: dir is open, c_name NUL-terminated, st valid for writing.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c_name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        return Ok(Some(st));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENOENT) {
        return Ok(None);
    }
    Err(e)
}

/// Verifies `dir` from `/` down (creating missing directories 0700 when
/// `create`) and returns it held open. `Err` says what is wrong and how to fix it.
pub fn verify_dir(dir: &Path, create: bool) -> Result<StoreDir, StoreError> {
    let absolute = if dir.is_absolute() {
        dir.to_owned()
    } else {
        std::env::current_dir()
            .map_err(|e| unreachable(dir, format!("cannot resolve {}: {e}", dir.display())))?
            .join(dir)
    };
    let mut target = absolute.clone();
    for _ in 0..=MAX_SYMLINKS {
        match walk(&target, &absolute, create)? {
            Walk::Done(fd) => return Ok(StoreDir { fd }),
            Walk::Symlink(resolved) => target = resolved,
        }
    }
    Err(refused(
        &absolute,
        format!("more than {MAX_SYMLINKS} symlinks on the way"),
    ))
}

/// The store directory cannot be reached (an I/O failure, not a policy refusal).
fn unreachable(dir: &Path, message: String) -> StoreError {
    StoreError::Io {
        path: dir.display().to_string(),
        message: format!("cannot reach the store directory: {message}"),
    }
}

/// The store directory is refused: `why` says what is unsafe and how to fix it.
fn refused(dir: &Path, why: String) -> StoreError {
    StoreError::UnsafePath {
        path: dir.display().to_string(),
        why,
    }
}

enum Walk {
    Done(OwnedFd),
    /// A root-owned symlink in a safe directory: walk its resolution instead.
    Symlink(PathBuf),
}

fn walk(target: &Path, shown: &Path, create: bool) -> Result<Walk, StoreError> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let fix = format!(
        "keep the store in a directory owned by root (or you), mode 0700, under root-owned parents, e.g. chmod 0700 {}; or choose another --db",
        shown.display()
    );
    let root =
        std::fs::File::open("/").map_err(|e| unreachable(shown, format!("cannot open /: {e}")))?;
    let mut fd = OwnedFd::from(root);
    let mut so_far = PathBuf::from("/");
    let components: Vec<&OsStr> = target
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(Ok(name)),
            Component::ParentDir => Some(Err(())),
            _ => None,
        })
        .collect::<Result<_, _>>()
        .map_err(|()| refused(shown, "`..` is not allowed in the store path".into()))?;
    let count = components.len();
    for (i, name) in components.iter().enumerate() {
        let last = i + 1 == count;
        let next = match open_at(&fd, name) {
            Ok(next) => next,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {
                let c_name = CString::new(name.as_bytes())
                    .map_err(|_| refused(shown, "a NUL byte in the path".into()))?;
                // SAFETY: fd is an open directory, c_name NUL-terminated.
                let rc = unsafe { libc::mkdirat(fd.as_raw_fd(), c_name.as_ptr(), 0o700) };
                if rc != 0 {
                    let e = std::io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(unreachable(
                            shown,
                            format!("cannot create {}: {e}", so_far.join(name).display()),
                        ));
                    }
                }
                open_at(&fd, name).map_err(|e| {
                    unreachable(
                        shown,
                        format!("cannot open {}: {e}", so_far.join(name).display()),
                    )
                })?
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                let link = so_far.join(name);
                let st = stat_at(&fd, name)
                    .map_err(|e| {
                        unreachable(shown, format!("cannot inspect {}: {e}", link.display()))
                    })?
                    .ok_or_else(|| unreachable(shown, format!("{} vanished", link.display())))?;
                if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
                    return Err(refused(
                        shown,
                        format!("{} is not a directory", link.display()),
                    ));
                }
                if st.st_uid != 0 && st.st_uid != euid {
                    return Err(refused(
                        shown,
                        format!(
                            "{} is a symlink owned by uid {}; {fix}",
                            link.display(),
                            st.st_uid
                        ),
                    ));
                }
                let resolved = std::fs::canonicalize(&link).map_err(|e| {
                    unreachable(shown, format!("cannot resolve {}: {e}", link.display()))
                })?;
                let rest: PathBuf = components[i + 1..].iter().collect();
                return Ok(Walk::Symlink(resolved.join(rest)));
            }
            Err(e) => {
                return Err(unreachable(
                    shown,
                    format!("cannot open {}: {e}", so_far.join(name).display()),
                ))
            }
        };
        so_far.push(name);
        let st = stat_fd(&next)
            .map_err(|e| unreachable(shown, format!("cannot inspect {}: {e}", so_far.display())))?;
        check_dir(shown, &so_far, &st, last, euid, &fix)?;
        fd = next;
    }
    if count == 0 {
        let st = stat_fd(&fd).map_err(|e| unreachable(shown, format!("cannot inspect /: {e}")))?;
        check_dir(shown, &so_far, &st, true, euid, &fix)?;
    }
    Ok(Walk::Done(fd))
}

fn check_dir(
    shown: &Path,
    path: &Path,
    st: &libc::stat,
    last: bool,
    euid: u32,
    fix: &str,
) -> Result<(), StoreError> {
    let mode = st.st_mode & 0o7777;
    if st.st_uid != 0 && st.st_uid != euid {
        return Err(refused(shown, format!(
            "{} is owned by uid {}, not by root or us ({euid}): its owner could swap the store; {fix}",
            path.display(),
            st.st_uid
        )));
    }
    let others_write = mode & 0o022 != 0;
    let sticky = mode & 0o1000 != 0;
    if last && others_write {
        return Err(refused(shown, format!(
            "the store directory {} is writable by others (mode {mode:o}{}): they could plant or read its -wal/-shm files; {fix}",
            path.display(),
            if sticky { ", sticky or not" } else { "" }
        )));
    }
    if !last && others_write && !sticky {
        return Err(refused(
            shown,
            format!(
                "{} (mode {mode:o}) lets others rename what is inside it; {fix}",
                path.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn state_round_trips_atomically_and_privately() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("an1256.db");
        assert_eq!(read_state(&db).unwrap(), None);
        let state = LearningState {
            installed_at: 10,
            learning_until: 20,
        };
        write_state(&db, &state).unwrap();
        assert_eq!(read_state(&db).unwrap(), Some(state));
        let mode = std::fs::metadata(state_path(&db)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(state_path(&db), "{not json").unwrap();
        assert!(read_state(&db)
            .unwrap_err()
            .to_string()
            .contains("malformed"));
    }

    #[test]
    fn directories_writable_by_others_are_refused_sticky_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("ok");
        verify_dir(&ok, true).unwrap();
        assert_eq!(std::fs::metadata(&ok).unwrap().mode() & 0o777, 0o700);
        for mode in [0o1777, 0o777, 0o770] {
            let shared = dir.path().join(format!("shared-{mode:o}"));
            std::fs::create_dir(&shared).unwrap();
            std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = verify_dir(&shared, false).err().unwrap();
            assert!(matches!(err, StoreError::UnsafePath { .. }), "{err}");
            let err = err.to_string();
            assert!(
                err.contains("writable by others") && err.contains("chmod 0700"),
                "{err}"
            );
            // Below a non-sticky shared directory, nothing is safe either.
            if mode & 0o1000 == 0 {
                let below = shared.join("store");
                let err = verify_dir(&below, true).err().unwrap().to_string();
                assert!(err.contains("lets others rename"), "{err}");
            } else {
                verify_dir(&shared.join("store"), true).unwrap();
            }
        }
        // A symlink we own to a safe directory is followed and verified.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&ok, &link).unwrap();
        verify_dir(&link, false).unwrap();
    }
}
