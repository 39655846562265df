//! The store file's hardening: its directory verified (and created 0700), the
//! file checked without following symlinks (created 0600), its owner and that of
//! its `-wal`/`-shm` companions checked; a corrupt file renamed aside. Only SQLite
//! ever opens the file: closing a descriptor of it would drop SQLite's locks.

use super::{io_error, sqlite_error, unix_now, unsafe_path, StoreError};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Device and inode of the store file, to rename aside only the file we checked.
pub(super) type FileId = (u64, u64);

/// Verifies the store's directory from `/` down (see `state::verify_dir`),
/// creating it 0700 when `writable`, then checks the file relative to that
/// verified directory without following a symlink (creating it 0600 when
/// `writable`), and the ownership of its `-wal`/`-shm` companions. Returns the
/// file's identity. With `writable` false nothing is created or changed.
///
/// The file is never opened here: POSIX locks belong to the process, and closing
/// any descriptor of the file drops every lock SQLite holds on it for the other
/// stores open in this process. Without its shared lock, another process closing
/// its connection takes itself for the last one and deletes the WAL, and this
/// process's later commits go to the unlinked WAL: reported written, seen by no
/// one (see tests/baseline.rs a_second_open_in_the_process_keeps_…).
pub(super) fn prepare_file(path: &Path, writable: bool) -> Result<FileId, StoreError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let Some(name) = path.file_name() else {
        return Err(unsafe_path(path, "the path names no file"));
    };
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let verified = crate::baseline::state::verify_dir(&dir, writable).map_err(|e| match e {
        StoreError::UnsafePath { why, .. } => unsafe_path(path, why),
        other => other,
    })?;
    let dir_fd = std::os::fd::AsRawFd::as_raw_fd(&verified.fd);
    let c_name = CString::new(name.as_bytes())
        .map_err(|_| unsafe_path(path, "the path contains a NUL byte"))?;
    let stat = || {
        crate::baseline::state::stat_at(&verified.fd, name)
            .map_err(|e| io_error(path, "cannot inspect the store file", e))
    };
    let st = match stat()? {
        Some(st) => st,
        None if writable => {
            // mknodat creates without opening and never follows a symlink; EEXIST:
            // another process created it first, which the stat below checks.
            // SAFETY: the dir fd is open and c_name NUL-terminated.
            let rc = unsafe { libc::mknodat(dir_fd, c_name.as_ptr(), libc::S_IFREG | 0o600, 0) };
            if rc != 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EEXIST) {
                    return Err(io_error(path, "cannot create the store file", e));
                }
            }
            stat()?.ok_or_else(|| {
                io_error(
                    path,
                    "the store file vanished as it was created",
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                )
            })?
        }
        None => {
            return Err(io_error(
                path,
                "cannot open the store file",
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ))
        }
    };
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => {}
        libc::S_IFLNK => return Err(unsafe_path(path, "it is a symlink")),
        _ => return Err(unsafe_path(path, "it is not a regular file")),
    }
    if st.st_uid != euid {
        return Err(unsafe_path(
            path,
            format!("it is owned by uid {}, not by us ({euid})", st.st_uid),
        ));
    }
    let access = if writable {
        libc::R_OK | libc::W_OK
    } else {
        libc::R_OK
    };
    // What opening it read-write would have told: a read-only file system or a
    // file we may not write sends the caller to a read-only open.
    // SAFETY: the dir fd is open and c_name NUL-terminated.
    if unsafe { libc::faccessat(dir_fd, c_name.as_ptr(), access, libc::AT_EACCESS) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(io_error(path, "cannot open the store file", e));
    }
    if writable && st.st_mode & 0o077 != 0 {
        // A regular file in the verified directory, where only its owner renames.
        // SAFETY: the dir fd is open and c_name NUL-terminated.
        if unsafe { libc::fchmodat(dir_fd, c_name.as_ptr(), 0o600, 0) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(io_error(path, "cannot set the store file to mode 0600", e));
        }
    }
    let owner = st.st_uid;
    // SQLite opens these by name: one planted by someone else would let them
    // read what we write or feed us frames.
    for suffix in ["-wal", "-shm"] {
        let mut side = name.to_owned();
        side.push(suffix);
        let side_st = crate::baseline::state::stat_at(&verified.fd, &side)
            .map_err(|e| io_error(path, "cannot inspect the store's companion files", e))?;
        if let Some(side_st) = side_st {
            if side_st.st_mode & libc::S_IFMT != libc::S_IFREG || side_st.st_uid != owner {
                return Err(unsafe_path(
                    path,
                    format!(
                        "its {} file is not a regular file owned by the store's owner (uid {}, owner {}); remove it after finding out who made it",
                        side.to_string_lossy(),
                        side_st.st_uid,
                        owner
                    ),
                ));
            }
        }
    }
    // As `MetadataExt::dev()` does (dev_t is i32 on macOS), to compare with it.
    #[allow(clippy::unnecessary_cast)]
    Ok((st.st_dev as u64, st.st_ino as u64))
}

/// Renames a corrupt store (and its WAL/SHM files) to `<name>.corrupt-<unixtime>`.
pub(super) fn move_aside(path: &Path, checked: FileId) -> Result<PathBuf, StoreError> {
    let now = unix_now();
    let with_suffix = |p: &Path, n: u32| {
        let mut name = p.as_os_str().to_owned();
        name.push(format!(".corrupt-{now}"));
        if n > 0 {
            name.push(format!(".{n}"));
        }
        PathBuf::from(name)
    };
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| io_error(path, "cannot inspect the corrupt store", e))?;
    if (meta.dev(), meta.ino()) != checked {
        // Another process already moved it aside and started a fresh store.
        return Err(sqlite_error(
            path,
            "the store was replaced while it was being checked; retry".into(),
        ));
    }
    let mut n = 0;
    let target = loop {
        let candidate = with_suffix(path, n);
        if !candidate.exists() {
            break candidate;
        }
        n += 1;
        if n > 100 {
            return Err(sqlite_error(
                path,
                "too many corrupt copies beside it".into(),
            ));
        }
    };
    std::fs::rename(path, &target)
        .map_err(|e| io_error(path, "cannot move the corrupt store aside", e))?;
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let side = PathBuf::from(side);
        if side.exists() {
            let mut to = target.as_os_str().to_owned();
            to.push(suffix);
            if let Err(e) = std::fs::rename(&side, PathBuf::from(to)) {
                log::warn!("cannot move {} aside: {e}", side.display());
            }
        }
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use crate::baseline::store::{Store, StoreError};

    #[test]
    fn refuses_symlinked_store_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere.db");
        std::fs::write(&target, b"").unwrap();
        let link = dir.path().join("an1256.db");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = Store::open(&link, 0).unwrap_err();
        assert!(matches!(err, StoreError::UnsafePath { .. }), "{err}");
        assert!(err.to_string().contains("symlink"));
    }
}
