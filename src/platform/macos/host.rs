//! `MacHost`: the `Host` trait on macOS, over `sys.rs` (libproc, sysctl, csops,
//! xattr), `sockets.rs` and `security.rs`, with verdicts cached so a second query
//! over the same processes makes no Security.framework validation call.

use super::codesign::{self, CODE_DIRECTORY_XATTR};
use super::procargs;
use super::quarantine::{self, MAX_QUARANTINE_BYTES, QUARANTINE_XATTR};
use super::{security, sockets, sys};
use crate::model::{CodeIdentity, Pid, ProcessInfo, SocketQuery, SocketScan, Trust};
use crate::platform::trust::{self, FileId, TrustCache, DEFAULT_CACHE_ENTRIES};
use crate::platform::{Host, HostConfig, HostError};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why argv is not reported: the kernel may have returned only the tail of the area.
const ARGV_UNRELIABLE: &str = "argv unreliable: the argument area did not fit the buffer whole and the kernel returns its tail; what the process runs is unknown";

/// What a live process's verdict depends on: the code the kernel runs (cdhash and
/// flags) and the executable file on disk (replaced or edited -> recomputed).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ProcessCodeKey {
    cdhash: Option<[u8; sys::CDHASH_LEN]>,
    kernel_flags: u32,
    file: Option<FileId>,
}

pub struct MacHost {
    config: HostConfig,
    process_cache: TrustCache<ProcessCodeKey>,
    file_cache: TrustCache<FileId>,
    /// Security.framework validation calls made by this host.
    validation_calls: AtomicU64,
}

impl MacHost {
    pub fn new(config: HostConfig) -> Self {
        MacHost {
            config,
            process_cache: TrustCache::new(DEFAULT_CACHE_ENTRIES),
            file_cache: TrustCache::new(DEFAULT_CACHE_ENTRIES),
            validation_calls: AtomicU64::new(0),
        }
    }

    /// Security.framework validation calls made so far (validity and requirement
    /// checks); unchanged by queries answered from the caches.
    pub fn validation_calls(&self) -> u64 {
        self.validation_calls.load(Ordering::Relaxed)
    }

    /// SHA-256 of a file, bounded by `max_hash_bytes`; the error text otherwise.
    fn sha256_of(&self, file: &mut std::fs::File) -> Result<String, trust::HashError> {
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        trust::hash_reader(file, size, self.config.max_hash_bytes, false).map(|d| d.sha256)
    }

    fn fill_sha256(&self, id: &mut CodeIdentity, path: &str) {
        if id.trust.is_trusted() || !id.sha256.is_empty() {
            return;
        }
        let result = std::fs::File::open(path)
            .map_err(trust::HashError::from)
            .and_then(|mut f| self.sha256_of(&mut f));
        match result {
            Ok(sha) => id.sha256 = sha,
            Err(e) => append_error(&mut id.error, &e.to_string()),
        }
    }

    /// The verdict of a live process and whether it may be cached: looked up by audit
    /// token when we have one, and the kernel's cdhash read again afterwards so an
    /// exec or pid reuse during the evaluation is seen.
    fn evaluate_process(
        &self,
        process: &ProcessInfo,
        kernel_flags: u32,
        kernel_cdhash: Option<[u8; sys::CDHASH_LEN]>,
    ) -> (CodeIdentity, bool) {
        let kernel_cdhash = kernel_cdhash.map(|h| h.to_vec());
        let mut evidence = if kernel_flags & codesign::CS_SIGNED == 0 {
            // The kernel loaded no signature at exec: nothing to ask Security.
            codesign::SigningEvidence {
                kernel_flags: Some(kernel_flags),
                kernel_cdhash,
                ..Default::default()
            }
        } else {
            let token = sys::audit_token(process.pid);
            security::process_evidence(
                process.pid,
                token.as_ref().map(|t| t.as_slice()),
                kernel_flags,
                kernel_cdhash,
                &self.validation_calls,
            )
        };
        evidence.kernel_cdhash_after = sys::kernel_cdhash(process.pid).ok().map(|h| h.to_vec());
        let codesign::Verdict {
            identity: mut id,
            cacheable,
        } = codesign::decide(&evidence);
        if !process.path.is_empty() {
            self.fill_sha256(&mut id, &process.path);
        }
        (id, cacheable)
    }

    fn evaluate_file(&self, path: &str, file: &mut std::fs::File) -> (CodeIdentity, bool) {
        let mut header = [0u8; 4];
        let header_len = read_prefix(file, &mut header);
        let has_detached_signature =
            matches!(sys::xattr(path, CODE_DIRECTORY_XATTR, 1), Ok(Some(_)));
        let bundle = std::fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false);
        let (mut id, cacheable) = if !bundle
            && !has_detached_signature
            && !codesign::is_mach_o(header.get(..header_len).unwrap_or_default())
        {
            // A script with no signature xattr: unsigned, no Security.framework call.
            let unsigned = codesign::SigningEvidence {
                lookup: codesign::ERR_SEC_CS_UNSIGNED,
                ..Default::default()
            };
            let verdict = codesign::decide(&unsigned);
            (verdict.identity, verdict.cacheable)
        } else {
            let verdict = codesign::decide(&security::file_evidence(path, &self.validation_calls));
            (verdict.identity, verdict.cacheable)
        };
        if !bundle && id.trust == Trust::Unsigned {
            if let Some((root, relative)) = codesign::enclosing_bundle(path) {
                id = self.sealed_in_bundle(id, file, root, relative);
            }
        }
        match sys::xattr(path, QUARANTINE_XATTR, MAX_QUARANTINE_BYTES) {
            Ok(Some(value)) => {
                id.quarantined = true;
                id.quarantine_agent = quarantine::parse(&value).agent;
            }
            Ok(None) => {}
            Err(e) => append_error(&mut id.error, &format!("quarantine unreadable: {e}")),
        }
        if !id.trust.is_trusted() && !bundle {
            match self.sha256_of(file) {
                Ok(sha) => id.sha256 = sha,
                Err(e) => append_error(&mut id.error, &e.to_string()),
            }
        }
        (id, cacheable)
    }
}

impl MacHost {
    /// An unsigned script inside an app bundle: the bundle's trust when its
    /// `CodeResources` seal covers exactly the bytes read here.
    fn sealed_in_bundle(
        &self,
        id: CodeIdentity,
        file: &mut std::fs::File,
        root: &str,
        relative: &str,
    ) -> CodeIdentity {
        use std::io::Seek;
        let bundle = self.file_identity(root);
        if !bundle.trust.is_trusted() {
            return id;
        }
        let limit = self.config.max_hash_bytes.min(MAX_SEALED_RESOURCE_BYTES);
        let mut bytes = Vec::new();
        let read = (&mut *file)
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes);
        let _ = file.seek(std::io::SeekFrom::Start(0));
        let mut id = id;
        match read {
            Ok(n) if (n as u64) <= limit => {
                let status = security::validate_bundle_resource(
                    root,
                    relative,
                    &bytes,
                    &self.validation_calls,
                );
                codesign::sealed_resource_verdict(id, &bundle, root, status)
            }
            Ok(_) => {
                append_error(
                    &mut id.error,
                    &format!("larger than {limit} bytes: not checked against {root}'s seal"),
                );
                id
            }
            Err(e) => {
                append_error(
                    &mut id.error,
                    &format!("not checked against {root}'s seal: {e}"),
                );
                id
            }
        }
    }
}

/// Largest script checked against its bundle's seal (read whole into memory).
const MAX_SEALED_RESOURCE_BYTES: u64 = 16 * 1024 * 1024;

/// Whether the kernel lets us read the arguments of a process with this effective uid.
fn may_read_process_of(euid: u32) -> bool {
    // SAFETY: geteuid(2) cannot fail.
    procargs::may_read_arguments(unsafe { libc::geteuid() }, euid)
}

fn append_error(error: &mut String, more: &str) {
    if !error.is_empty() {
        error.push_str("; ");
    }
    error.push_str(more);
}

/// Reads up to `buf.len()` bytes from the start of the file, then rewinds.
fn read_prefix(file: &mut std::fs::File, buf: &mut [u8]) -> usize {
    use std::io::Seek;
    let n = file.read(buf).unwrap_or(0);
    let _ = file.seek(std::io::SeekFrom::Start(0));
    n
}

impl Host for MacHost {
    fn platform(&self) -> &'static str {
        "darwin"
    }

    fn pids(&self) -> Result<Vec<Pid>, HostError> {
        sockets::all_pids().map_err(|e| HostError::Other(format!("cannot list processes: {e}")))
    }

    fn process(&self, pid: Pid) -> Result<ProcessInfo, HostError> {
        let bsd = sys::bsd_info(pid).map_err(|e| sys::host_error(pid, e, "bsd info"))?;
        let mut error = String::new();
        let path = self.executable_path(pid).unwrap_or_else(|e| {
            append_error(&mut error, &format!("path unreadable: {e}"));
            String::new()
        });
        let mut argv_truncated = false;
        let argv = match sys::procargs(pid) {
            Ok(args) if args.unreliable => {
                append_error(&mut error, ARGV_UNRELIABLE);
                argv_truncated = true;
                Vec::new()
            }
            Ok(args) => {
                if args.truncated {
                    append_error(&mut error, "argv truncated");
                    argv_truncated = true;
                }
                args.argv
            }
            Err(e) => {
                append_error(&mut error, &e.to_string());
                Vec::new()
            }
        };
        let cwd = sys::cwd(pid).unwrap_or_else(|e| {
            append_error(
                &mut error,
                &format!("cwd unreadable: {}", std::io::Error::from_raw_os_error(e)),
            );
            String::new()
        });
        if bsd.start.is_none() {
            append_error(&mut error, "start time needs root (another user's process)");
        }
        let exe_deleted = !path.is_empty() && std::fs::symlink_metadata(&path).is_err();
        // What `ps -c` shows: the kernel's p_comm is the executable's file name.
        let name = path.rsplit('/').next().unwrap_or_default().to_owned();
        Ok(ProcessInfo {
            pid,
            parent: bsd.ppid,
            name,
            path,
            argv,
            uid: i64::from(bsd.ruid),
            euid: Some(i64::from(bsd.euid)),
            cwd,
            start_time: bsd
                .start
                .and_then(|(secs, _)| i64::try_from(secs).ok())
                .unwrap_or(0),
            net_namespace: String::new(),
            exe_deleted,
            error,
            argv_truncated,
            ..Default::default()
        })
    }

    fn process_events(
        &self,
    ) -> Result<Box<dyn crate::platform::ProcessEvents>, crate::platform::EventSourceError> {
        super::proc_events::KqueueEvents::open()
            .map(|k| Box::new(k) as Box<dyn crate::platform::ProcessEvents>)
    }

    fn executable_path(&self, pid: Pid) -> Result<String, HostError> {
        libproc::libproc::proc_pid::pidpath(pid).map_err(|m| {
            match super::sockinfo::read_failure(super::sockinfo::errno_in_message(&m)) {
                super::sockinfo::ReadFailure::Vanished => HostError::Vanished(pid),
                super::sockinfo::ReadFailure::Permission => HostError::PermissionDenied(pid),
                _ => HostError::Other(format!("path of process {pid}: {m}")),
            }
        })
    }

    fn sockets(&self, query: &SocketQuery) -> SocketScan {
        sockets::scan(query)
    }

    fn process_identity(&self, process: &ProcessInfo) -> CodeIdentity {
        // csops is the cheapest signal and needs no privilege.
        let kernel_flags = match sys::kernel_cs_flags(process.pid) {
            Ok(flags) => flags,
            Err(libc::ESRCH) => {
                return CodeIdentity::unknown(format!("process {} has exited", process.pid))
            }
            Err(e) => {
                return CodeIdentity::unknown(format!(
                    "code-signing status unreadable: {}",
                    std::io::Error::from_raw_os_error(e)
                ))
            }
        };
        let kernel_cdhash = sys::kernel_cdhash(process.pid).ok();
        let key = ProcessCodeKey {
            cdhash: kernel_cdhash,
            kernel_flags,
            file: std::fs::metadata(&process.path)
                .ok()
                .map(|m| FileId::from_metadata(&m)),
        };
        self.process_cache.get_or_insert_if(key, || {
            self.evaluate_process(process, kernel_flags, kernel_cdhash)
        })
    }

    fn file_identity(&self, path: &str) -> CodeIdentity {
        let mut file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => return CodeIdentity::unknown(format!("cannot open {path}: {e}")),
        };
        let file_id = match file.metadata() {
            Ok(m) => FileId::from_metadata(&m),
            Err(e) => return CodeIdentity::unknown(format!("cannot stat {path}: {e}")),
        };
        self.file_cache
            .get_or_insert_if(file_id, || self.evaluate_file(path, &mut file))
    }

    fn system_socks_proxy(&self) -> Option<(String, u16)> {
        super::proxy::system_socks_proxy().map(|p| (p.host, p.port))
    }

    fn home_directory(&self, uid: i64) -> Option<String> {
        sys::home_directory(uid)
    }

    fn user_name(&self, uid: i64) -> Option<String> {
        sys::user_name(uid)
    }

    fn responsible_pid(&self, pid: Pid) -> Option<Pid> {
        sys::responsible_pid(pid)
    }

    fn mapped_libraries(&self, pid: Pid) -> Result<Vec<String>, HostError> {
        sys::mapped_files(pid).map_err(|e| sys::host_error(pid, e, "mapped files"))
    }

    fn open_regular_files(
        &self,
        pid: Pid,
    ) -> Option<Result<Vec<crate::model::OpenFile>, HostError>> {
        Some(sys::open_regular_files(pid).map_err(|e| sys::host_error(pid, e, "open files")))
    }

    fn script_file_key(
        &self,
        process: &ProcessInfo,
        path: &str,
    ) -> Option<Result<(u64, u64), HostError>> {
        use std::os::unix::fs::MetadataExt;
        // No mount namespaces here: the path names the same file for the process,
        // resolved against its cwd when relative.
        let full = if path.starts_with('/') {
            std::path::PathBuf::from(path)
        } else if process.cwd.starts_with('/') {
            std::path::Path::new(&process.cwd).join(path)
        } else {
            return Some(Err(HostError::Malformed {
                what: path.to_owned(),
                why: "relative, and the process's cwd is unknown".into(),
            }));
        };
        Some(
            std::fs::metadata(&full)
                .map(|m| (u64::from(m.dev() as u32), m.ino()))
                .map_err(|e| HostError::unreadable(full.display(), e)),
        )
    }

    fn executable_is_at(&self, pid: Pid, path: &str) -> Result<bool, HostError> {
        use std::os::unix::fs::MetadataExt;
        let start = |pid| {
            sys::bsd_info(pid)
                .map(|b| b.start)
                .map_err(|e| sys::host_error(pid, e, "bsd info"))
        };
        let before = start(pid)?;
        let (dev, ino) =
            sys::executable_file_id(pid).map_err(|e| sys::host_error(pid, e, "executable"))?;
        let file = std::fs::metadata(path).map_err(|e| HostError::unreadable(path, e))?;
        // The same process still: a pid reused meanwhile has another start time.
        if start(pid)? != before {
            return Err(HostError::Vanished(pid));
        }
        Ok(dev == file.dev() as u32 && ino == file.ino())
    }

    fn stdin_source(&self, pid: Pid) -> crate::model::StdinSource {
        match sys::fd0(pid) {
            Ok(fd0) => super::stdin::stdin_source(&fd0),
            Err(_) => crate::model::StdinSource::Unknown,
        }
    }

    fn environment(&self, pid: Pid) -> Result<Vec<String>, HostError> {
        match sys::procargs(pid) {
            Ok(args) if args.unreliable => Err(HostError::Other(format!(
                "environment of {pid}: {ARGV_UNRELIABLE}"
            ))),
            Ok(args) if args.env_withheld => Err(HostError::Withheld {
                pid,
                what: "environment (CS_RESTRICT process)",
            }),
            Ok(args) => Ok(args.env),
            Err(e) => Err(match sys::bsd_info(pid) {
                Err(errno) => sys::host_error(pid, errno, "environment"),
                Ok(bsd) if !may_read_process_of(bsd.euid) => HostError::PermissionDenied(pid),
                Ok(_) => e,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    //! These run on a Mac only (CI's macOS job); here they are type-checked by
    //! scripts/check-macos.
    use super::*;
    use crate::model::{ProtocolSet, SocketType};

    #[test]
    fn reads_this_process() {
        let host = MacHost::new(HostConfig::default());
        let me = std::process::id() as Pid;
        let p = host.process(me).unwrap();
        assert_eq!(p.pid, me);
        assert_eq!(p.path, std::env::current_exe().unwrap().to_string_lossy());
        assert_eq!(
            p.argv.first().map(String::as_str),
            std::env::args().next().as_deref()
        );
        assert_eq!(p.cwd, std::env::current_dir().unwrap().to_string_lossy());
        assert!(p.start_time > 1_600_000_000);
        assert!(host.pids().unwrap().contains(&me));
        let env = host.environment(me).unwrap();
        assert!(env.iter().any(|v| v.starts_with("PATH=")), "{env:?}");
        assert!(matches!(
            host.process(i32::MAX),
            Err(HostError::Vanished(_))
        ));
        let mapped = host.mapped_libraries(me).unwrap();
        assert!(mapped.contains(&p.path), "{mapped:?}");
        // SAFETY: getuid(2) cannot fail.
        let home = sys::home_directory(i64::from(unsafe { libc::getuid() }));
        assert!(
            home.as_deref().is_some_and(|h| h.starts_with('/')),
            "{home:?}"
        );
    }

    #[test]
    fn fail_closed_hooks_see_this_process() {
        use std::os::unix::fs::MetadataExt;
        let host = MacHost::new(HostConfig::default());
        let me = std::process::id() as Pid;
        let exe = std::env::current_exe().unwrap();
        assert_eq!(host.executable_is_at(me, &exe.to_string_lossy()), Ok(true));
        assert_eq!(host.executable_is_at(me, "/bin/ls"), Ok(false));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("held.py");
        std::fs::write(&path, "print(1)\n").unwrap();
        let held = std::fs::File::open(&path).unwrap();
        let meta = held.metadata().unwrap();
        let files = host.open_regular_files(me).unwrap().unwrap();
        assert!(
            files
                .iter()
                .any(|f| f.ino == meta.ino() && f.dev == u64::from(meta.dev() as u32)),
            "{files:?}"
        );
        let process = host.process(me).unwrap();
        let key = host
            .script_file_key(&process, &path.to_string_lossy())
            .unwrap()
            .unwrap();
        assert_eq!(key, (u64::from(meta.dev() as u32), meta.ino()));
        // The test harness's stdin is whatever CI gives it; never an error.
        let _ = host.stdin_source(me);
    }

    #[test]
    fn finds_an_unprivileged_icmp_socket_of_this_process() {
        // SOCK_DGRAM + IPPROTO_ICMP is how macOS's unprivileged ping works.
        // SAFETY: plain socket(2); closed below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP) };
        if fd < 0 {
            eprintln!(
                "skip: cannot open an ICMP datagram socket: {}",
                std::io::Error::last_os_error()
            );
            return;
        }
        let host = MacHost::new(HostConfig::default());
        let me = std::process::id() as Pid;
        let mut icmp_only = ProtocolSet::NONE;
        icmp_only.icmp = true;
        let scan = host.sockets(&SocketQuery {
            pids: Some(vec![me]),
            protocols: icmp_only,
        });
        // SAFETY: our own fd.
        unsafe { libc::close(fd) };
        let found = scan.sockets.iter().find(|s| s.fd == i64::from(fd));
        let s = found.unwrap_or_else(|| panic!("fd {fd} not in {scan:?}"));
        assert_eq!(
            (s.protocol, s.socket_type, s.family),
            (1, SocketType::Dgram, 2)
        );
        assert!(scan
            .sockets
            .iter()
            .all(|s| s.protocol == 1 || s.protocol == 58));
    }

    #[test]
    fn udp_socket_has_its_port() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = i32::from(sock.local_addr().unwrap().port());
        let host = MacHost::new(HostConfig::default());
        let me = std::process::id() as Pid;
        let scan = host.sockets(&SocketQuery {
            pids: Some(vec![me]),
            protocols: ProtocolSet::ALL,
        });
        let s = scan
            .sockets
            .iter()
            .find(|s| s.local_port == port)
            .expect("udp socket");
        assert_eq!((s.protocol, s.local_address.as_str()), (17, "127.0.0.1"));
    }

    #[test]
    fn identity_is_cached_after_the_first_query() {
        let host = MacHost::new(HostConfig::default());
        let me = host.process(std::process::id() as Pid).unwrap();
        let first = host.process_identity(&me);
        // The test binary is linker-signed (arm64) or unsigned (x86_64).
        assert!(
            matches!(first.trust, Trust::Adhoc | Trust::Unsigned),
            "{first:?}"
        );
        assert_eq!(first.sha256.len(), 64, "{first:?}");
        let before = host.validation_calls();
        assert!(before > 0, "the first query validated nothing");
        let second = host.process_identity(&me);
        assert_eq!(first, second);
        assert_eq!(host.validation_calls(), before);

        let launchd = host.process(1).map(|p| host.process_identity(&p));
        if let Ok(id) = launchd {
            assert_eq!(id.trust, Trust::Apple, "{id:?}");
            assert_eq!(id.platform_binary, 1);
        }
    }

    #[test]
    fn scripts_are_unsigned_and_quarantine_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("x.sh");
        std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        let path = script.to_string_lossy().into_owned();
        let value = b"0083;65a1b2c3;Safari;0B3C6E2A-8D1F-4C55-9E0B-2A1C3D4E5F60";
        let c_path = std::ffi::CString::new(path.clone()).unwrap();
        // SAFETY: valid strings and buffer.
        let ret = unsafe {
            libc::setxattr(
                c_path.as_ptr(),
                c"com.apple.quarantine".as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
                0,
            )
        };
        assert_eq!(ret, 0, "{}", std::io::Error::last_os_error());
        let host = MacHost::new(HostConfig::default());
        let id = host.file_identity(&path);
        assert_eq!(id.trust, Trust::Unsigned);
        assert!(id.quarantined);
        assert_eq!(id.quarantine_agent, "Safari");
        assert_eq!(
            id.sha256,
            crate::util::hex::sha256_hex(b"#!/bin/sh\necho hi\n")
        );
        let ls = host.file_identity("/bin/ls");
        assert_eq!(ls.trust, Trust::Apple, "{ls:?}");
    }
}
