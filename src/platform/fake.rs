//! Test doubles of the platform layer: [`FakeHost`] (processes, sockets and
//! identities are whatever a test puts in) and [`FakeProcessEvents`]. Compiled for
//! unit tests and with the `fake-host` feature only: the release binary has none
//! of it.

use super::{EventSourceError, Host, HostError, ProcessEvent, ProcessEvents};
use crate::model::{CodeIdentity, Pid, ProcessInfo, SocketQuery, SocketScan};
use std::collections::HashMap;
use std::sync::Mutex;

/// An in-memory host for tests: processes, sockets and identities are whatever the
/// test puts in. Records which pids were asked for so push-down can be asserted.
#[derive(Default)]
pub struct FakeHost {
    pub processes: Vec<ProcessInfo>,
    pub sockets: Vec<crate::model::SocketInfo>,
    /// Identity by executable or script path; missing paths are `unsigned`.
    pub identities: HashMap<String, CodeIdentity>,
    pub environments: HashMap<Pid, Vec<String>>,
    /// What `environment` fails with, by pid (e.g. `Truncated`).
    pub environment_errors: HashMap<Pid, HostError>,
    /// Mapped libraries by pid (`mapped_libraries`).
    pub libraries: HashMap<Pid, Vec<String>>,
    /// What `mapped_libraries` fails with, by pid.
    pub library_errors: HashMap<Pid, HostError>,
    /// What `system_socks_proxy` returns.
    pub system_proxy: Option<(String, u16)>,
    /// Every pid whose environment was read, in order.
    pub environment_reads: Mutex<Vec<Pid>>,
    /// Every pid whose mapped libraries were read, in order.
    pub library_reads: Mutex<Vec<Pid>>,
    /// Responsible process by pid (macOS notion), for tests.
    pub responsible: HashMap<Pid, Pid>,
    /// Standard input by pid; absent pids are `Unknown`.
    pub stdin: HashMap<Pid, crate::model::StdinSource>,
    /// Regular files each pid holds open (`open_regular_files`); absent: `None`.
    pub open_files: HashMap<Pid, Vec<crate::model::OpenFile>>,
    /// `(dev, ino)` by script path (`script_file_key`); absent: `None`.
    pub file_keys: HashMap<String, (u64, u64)>,
    /// The path each pid verifiably runs from (`executable_is_at`).
    pub executables_at: HashMap<Pid, String>,
    /// Files mapped executable, by pid (`mapped_code`; absent: not told).
    pub code_mappings: HashMap<Pid, Vec<String>>,
    /// Why a script path's file (`CodeIdentity::changeable` from `script_identity`)
    /// or a directory (`path_changeable`) could change; absent: only root can.
    pub changeable: HashMap<String, String>,
    /// What `path_kind` answers; absent paths are `Missing`.
    pub path_kinds: HashMap<String, crate::model::PathKind>,
    /// Missing paths `missing_since_start` says were missing at start too.
    pub missing_at_start: std::collections::HashSet<String>,
    /// Every pid passed to `process()`, in order.
    pub process_calls: Mutex<Vec<Pid>>,
    /// Every query passed to `sockets()`, in order.
    pub socket_queries: Mutex<Vec<SocketQuery>>,
    /// What `process_events` hands out; `None`: no source (the watch polls).
    pub events: Option<FakeProcessEvents>,
    /// `sockets()` reports the holders' executable paths (`SocketScan::executables`).
    pub scan_executables: bool,
    /// User files by path (`read_user_file`, and `list_user_dir` of their
    /// directories); a path not here is read from the real file system.
    pub files: HashMap<String, Vec<u8>>,
    /// Pids whose image has no stamp (`process_image`); the others get one
    /// made of their path and argv, as an exec lays out a new image.
    pub unstamped: std::collections::HashSet<Pid>,
}

/// Process events a test scripts: each `wait` hands out the next batch (waiting
/// out the timeout when there is none), and every `follow` is recorded.
#[derive(Clone, Default)]
pub struct FakeProcessEvents {
    pub batches: std::sync::Arc<Mutex<std::collections::VecDeque<Vec<ProcessEvent>>>>,
    pub followed: std::sync::Arc<Mutex<Vec<Pid>>>,
    /// What `reports_every_process` answers.
    pub every_process: bool,
}

impl ProcessEvents for FakeProcessEvents {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn reports_every_process(&self) -> bool {
        self.every_process
    }

    fn follow(&mut self, pid: Pid) -> Result<(), EventSourceError> {
        if let Ok(mut followed) = self.followed.lock() {
            followed.push(pid);
        }
        Ok(())
    }

    fn wait(
        &mut self,
        timeout: std::time::Duration,
        max: usize,
        out: &mut Vec<ProcessEvent>,
    ) -> Result<(), EventSourceError> {
        let batch = self.batches.lock().ok().and_then(|mut b| b.pop_front());
        match batch {
            Some(mut batch) => {
                if batch.len() > max {
                    let rest = batch.split_off(max);
                    if let Ok(mut batches) = self.batches.lock() {
                        batches.push_front(rest);
                    }
                }
                out.extend(batch);
            }
            None => std::thread::sleep(timeout.min(std::time::Duration::from_millis(20))),
        }
        Ok(())
    }
}

impl FakeHost {
    fn identity_of(&self, path: &str) -> CodeIdentity {
        self.identities
            .get(path)
            .cloned()
            .unwrap_or_else(|| CodeIdentity {
                trust: crate::model::Trust::Unsigned,
                notarized: -1,
                platform_binary: -1,
                sha256: format!("{:064x}", path.len()),
                ..Default::default()
            })
    }
}

impl Host for FakeHost {
    fn platform(&self) -> &'static str {
        "fake"
    }

    fn pids(&self) -> Result<Vec<Pid>, HostError> {
        Ok(self.processes.iter().map(|p| p.pid).collect())
    }

    fn process_image(&self, pid: Pid) -> Result<super::ProcessImage, HostError> {
        use std::hash::{Hash, Hasher};
        let process = self
            .processes
            .iter()
            .find(|p| p.pid == pid)
            .ok_or(HostError::Vanished(pid))?;
        let mut layout = std::collections::hash_map::DefaultHasher::new();
        process.argv.hash(&mut layout);
        let mut file = std::collections::hash_map::DefaultHasher::new();
        process.path.hash(&mut file);
        let stamp = (!self.unstamped.contains(&pid)).then(|| super::process_cache::ProcessStamp {
            pid,
            start_ticks: 1,
            executable: (1, file.finish()),
            layout: [layout.finish(); 10],
        });
        Ok(super::ProcessImage {
            executable: process.path.clone(),
            stamp,
        })
    }

    fn process(&self, pid: Pid) -> Result<ProcessInfo, HostError> {
        if let Ok(mut calls) = self.process_calls.lock() {
            calls.push(pid);
        }
        self.processes
            .iter()
            .find(|p| p.pid == pid)
            .cloned()
            .ok_or(HostError::Vanished(pid))
    }

    fn namespace_tcp_sockets(&self, pid: Pid) -> Option<Vec<crate::model::SocketInfo>> {
        let namespace = &self.processes.iter().find(|p| p.pid == pid)?.net_namespace;
        let sockets: Vec<crate::model::SocketInfo> = self
            .sockets
            .iter()
            .filter(|s| s.protocol == crate::model::IPPROTO_TCP && &s.net_namespace == namespace)
            .map(|s| crate::model::SocketInfo {
                pid: 0,
                fd: -1,
                ..s.clone()
            })
            .collect();
        Some(sockets)
    }

    fn sockets(&self, query: &SocketQuery) -> SocketScan {
        if let Ok(mut calls) = self.socket_queries.lock() {
            calls.push(query.clone());
        }
        let sockets = self
            .sockets
            .iter()
            .filter(|s| query.pids.as_ref().is_none_or(|p| p.contains(&s.pid)))
            .filter(|s| query.protocols.wants(s))
            .cloned()
            .collect::<Vec<_>>();
        // As the Linux walk does, when asked: the holders' executables.
        let executables = self
            .processes
            .iter()
            .filter(|p| self.scan_executables && sockets.iter().any(|s| s.pid == p.pid))
            .map(|p| (p.pid, p.path.clone()))
            .collect();
        SocketScan {
            sockets,
            executables,
            ..Default::default()
        }
    }

    fn process_identity(&self, process: &ProcessInfo) -> CodeIdentity {
        self.identity_of(&process.path)
    }

    fn file_identity(&self, path: &str) -> CodeIdentity {
        self.identity_of(path)
    }

    fn path_changeable(&self, _pid: Pid, dir: &str) -> String {
        self.changeable.get(dir).cloned().unwrap_or_default()
    }

    fn missing_since_start(&self, _pid: Pid, path: &str) -> bool {
        self.missing_at_start.contains(path)
    }

    fn script_identity(
        &self,
        _process: &ProcessInfo,
        _operand: &str,
        display_path: &str,
    ) -> Option<CodeIdentity> {
        display_path.starts_with('/').then(|| CodeIdentity {
            changeable: self
                .changeable
                .get(display_path)
                .cloned()
                .unwrap_or_default(),
            ..self.identity_of(display_path)
        })
    }

    fn environment(&self, pid: Pid) -> Result<Vec<String>, HostError> {
        if let Ok(mut reads) = self.environment_reads.lock() {
            reads.push(pid);
        }
        if let Some(error) = self.environment_errors.get(&pid) {
            return Err(error.clone());
        }
        Ok(self.environments.get(&pid).cloned().unwrap_or_default())
    }

    fn mapped_libraries(&self, pid: Pid) -> Result<Vec<String>, HostError> {
        if let Ok(mut reads) = self.library_reads.lock() {
            reads.push(pid);
        }
        if let Some(error) = self.library_errors.get(&pid) {
            return Err(error.clone());
        }
        Ok(self.libraries.get(&pid).cloned().unwrap_or_default())
    }

    fn mapped_code(&self, pid: Pid) -> Option<Result<Vec<String>, HostError>> {
        self.code_mappings.get(&pid).cloned().map(Ok)
    }

    fn system_socks_proxy(&self) -> Option<(String, u16)> {
        self.system_proxy.clone()
    }

    fn responsible_pid(&self, pid: Pid) -> Option<Pid> {
        self.responsible.get(&pid).copied()
    }

    fn stdin_source(&self, pid: Pid) -> crate::model::StdinSource {
        self.stdin.get(&pid).copied().unwrap_or_default()
    }

    fn executable_is_at(&self, pid: Pid, path: &str) -> Result<bool, HostError> {
        Ok(self.executables_at.get(&pid).is_some_and(|p| p == path))
    }

    fn open_regular_files(
        &self,
        pid: Pid,
    ) -> Option<Result<Vec<crate::model::OpenFile>, HostError>> {
        self.open_files.get(&pid).cloned().map(Ok)
    }

    fn script_file_key(
        &self,
        _process: &ProcessInfo,
        path: &str,
    ) -> Option<Result<(u64, u64), HostError>> {
        self.file_keys.get(path).copied().map(Ok)
    }

    fn read_user_file(&self, _process: &ProcessInfo, path: &str, limit: u64) -> Option<Vec<u8>> {
        match self.files.get(path) {
            Some(bytes) => Some(bytes.iter().take(limit as usize).copied().collect()),
            None => super::read_regular_file(path, limit),
        }
    }

    fn list_user_dir(
        &self,
        _process: &ProcessInfo,
        dir: &str,
        max_entries: usize,
    ) -> Option<Vec<String>> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let names: Vec<String> = self
            .files
            .keys()
            .filter_map(|path| path.strip_prefix(&prefix))
            .filter_map(|rest| rest.split('/').next())
            .map(str::to_owned)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .take(max_entries)
            .collect();
        if names.is_empty() {
            super::list_dir_here(dir, max_entries)
        } else {
            Some(names)
        }
    }

    fn path_kind(&self, _pid: Pid, path: &str) -> crate::model::PathKind {
        self.path_kinds
            .get(path)
            .copied()
            .unwrap_or(crate::model::PathKind::Missing)
    }

    fn process_events(&self) -> Result<Box<dyn ProcessEvents>, EventSourceError> {
        match &self.events {
            Some(events) => Ok(Box::new(events.clone())),
            None => Err(EventSourceError::Unsupported),
        }
    }
}
