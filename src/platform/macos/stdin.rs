//! What feeds a macOS process's standard input, from what libproc says about fd 0:
//! its type in `PROC_PIDLISTFDS` and, for a vnode, the mode and path from
//! `PROC_PIDFDVNODEPATHINFO`. Pure and portable; `sys.rs` reads the two.

use crate::model::StdinSource;

/// `PROX_FDTYPE_*` (xnu `proc_info.h`).
pub const PROX_FDTYPE_VNODE: u32 = 1;
pub const PROX_FDTYPE_SOCKET: u32 = 2;
pub const PROX_FDTYPE_PIPE: u32 = 6;

/// fd 0 as libproc describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fd0 {
    /// Not in the process's fd list.
    Absent,
    /// A vnode whose mode and path were read.
    Vnode { mode: u16, path: String },
    /// Any other fd type, or a vnode whose details could not be read.
    Other { fd_type: u32 },
}

/// Classifies fd 0. Only a terminal device counts as a terminal (`/dev/tty*`,
/// `/dev/console`: pty slaves are `/dev/ttysNNN`); `/dev/null` and `/dev/ptmx` are
/// devices.
pub fn stdin_source(fd0: &Fd0) -> StdinSource {
    const S_IFMT: u16 = 0o170_000;
    match fd0 {
        Fd0::Absent => StdinSource::Closed,
        Fd0::Other {
            fd_type: PROX_FDTYPE_PIPE,
        } => StdinSource::Pipe,
        Fd0::Other {
            fd_type: PROX_FDTYPE_SOCKET,
        } => StdinSource::Socket,
        Fd0::Other { .. } => StdinSource::Unknown,
        Fd0::Vnode { mode, path } => match mode & S_IFMT {
            0o010_000 => StdinSource::Pipe,
            0o140_000 => StdinSource::Socket,
            0o100_000 | 0o040_000 => StdinSource::File,
            0o020_000 if path.starts_with("/dev/tty") || path == "/dev/console" => {
                StdinSource::Terminal
            }
            0o020_000 | 0o060_000 => StdinSource::Device,
            _ => StdinSource::Unknown,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd0_kinds() {
        let vnode = |mode: u16, path: &str| Fd0::Vnode {
            mode,
            path: path.into(),
        };
        for (fd0, expected) in [
            (Fd0::Absent, StdinSource::Closed),
            (Fd0::Other { fd_type: 6 }, StdinSource::Pipe),
            (Fd0::Other { fd_type: 2 }, StdinSource::Socket),
            (Fd0::Other { fd_type: 5 }, StdinSource::Unknown),
            (Fd0::Other { fd_type: 1 }, StdinSource::Unknown),
            (vnode(0o020_620, "/dev/ttys003"), StdinSource::Terminal),
            (vnode(0o020_666, "/dev/tty"), StdinSource::Terminal),
            (vnode(0o020_600, "/dev/console"), StdinSource::Terminal),
            (vnode(0o020_666, "/dev/null"), StdinSource::Device),
            (vnode(0o020_666, "/dev/ptmx"), StdinSource::Device),
            (vnode(0o100_644, "/tmp/x.py"), StdinSource::File),
            (vnode(0o010_600, "/tmp/fifo"), StdinSource::Pipe),
        ] {
            assert_eq!(stdin_source(&fd0), expected, "{fd0:?}");
        }
    }
}
