//! macOS backend: libproc sockets, Security.framework trust of the live process,
//! procargs, proxies. (Being written.)

use crate::model::{CodeIdentity, Pid, ProcessInfo, SocketQuery, SocketScan};
use crate::platform::{Host, HostConfig, HostError};

pub struct MacHost {
    #[allow(dead_code)]
    config: HostConfig,
}

impl MacHost {
    pub fn new(config: HostConfig) -> Self {
        MacHost { config }
    }
}

impl Host for MacHost {
    fn platform(&self) -> &'static str {
        "darwin"
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
