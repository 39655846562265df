//! The judge layer: decisions over `Host` facts. Which file a process runs
//! (`script`, `subject`), what its sockets are (`classify`, `socks`) and how
//! bad a hit is (`severity`). OS access goes through `platform::Host`.

pub mod classify;
pub mod script;
pub mod severity;
pub mod socks;
pub mod subject;

use crate::platform::HostError;

/// The judge layer's error: why a decision could not be made from what the host
/// shows. The caller fails closed (the subject stays untrusted, the reason in
/// `error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JudgeError {
    /// A host fact the decision needs could not be read.
    #[error("cannot read the {what}: {cause}")]
    Host {
        what: &'static str,
        cause: HostError,
    },
    #[error("cannot tell the python version from {executable}")]
    PythonVersionUnknown { executable: String },
    #[error("the process cwd is unknown")]
    CwdUnknown,
    #[error("the user's home is unknown (user site-packages)")]
    HomeUnknown,
    #[error("{0:?} is not a module name")]
    NotAModuleName(String),
    #[error("cannot tell what {0} is")]
    PathUnknown(String),
    /// `-m module` for an interpreter whose module search is not modelled.
    #[error("{interpreter} modules are not resolved")]
    ModulesNotResolved { interpreter: String },
    /// The module's file cannot be found, or found only where it cannot be
    /// trusted (a zip archive, a namespace portion outside package locations).
    #[error("{0}")]
    ModuleUnresolved(String),
    /// More distinct `sys.path` entries than an1256 searches: each costs several
    /// opens, and `PYTHONPATH` is the user's to fill.
    #[error("{entries} distinct entries on sys.path, more than {cap}: the module is not searched")]
    SearchPathTooLong { entries: usize, cap: usize },
    /// The table call's deadline passed during the module search.
    #[error("the deadline passed while searching sys.path for the module")]
    DeadlinePassed,
}
