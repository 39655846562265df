//! Linux backend: /proc, per-netns socket tables, fd walk, dpkg provenance.
//! (Being written.)

use crate::model::{CodeIdentity, Pid, ProcessInfo, SocketQuery, SocketScan};
use crate::platform::{Host, HostConfig, HostError};

pub struct LinuxHost {
    #[allow(dead_code)]
    config: HostConfig,
}

impl LinuxHost {
    pub fn new(config: HostConfig) -> Self {
        LinuxHost { config }
    }
}

impl Host for LinuxHost {
    fn platform(&self) -> &'static str {
        "linux"
    }
    fn pids(&self) -> Result<Vec<Pid>, HostError> {
        Err(HostError::Other("not yet implemented".into()))
    }
    fn process(&self, pid: Pid) -> Result<ProcessInfo, HostError> {
        Err(HostError::Vanished(pid))
    }
    fn sockets(&self, _query: &SocketQuery) -> SocketScan {
        SocketScan::default()
    }
    fn process_identity(&self, _process: &ProcessInfo) -> CodeIdentity {
        CodeIdentity::unknown("not yet implemented")
    }
    fn file_identity(&self, _path: &str) -> CodeIdentity {
        CodeIdentity::unknown("not yet implemented")
    }
}
