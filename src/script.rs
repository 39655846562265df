//! Interpreter argv -> the script it runs. Pure and portable: no file is opened here.
//! (Being written: see the interface below.)

/// How the interpreter gets its code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScriptKind {
    /// A script file (`python3 x.py`, `#!` scripts, `bash x.sh`).
    File,
    /// Code on the command line (`python3 -c`, `perl -e`, `bash -c`, `osascript -e`).
    Inline,
    /// Code read from standard input (`python3 -`, `bash -s`, `sh < x`).
    Stdin,
    /// A module run by name (`python3 -m http.server`).
    Module,
    /// A REPL or interactive shell: no script.
    Interactive,
}

impl ScriptKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScriptKind::File => "file",
            ScriptKind::Inline => "inline",
            ScriptKind::Stdin => "stdin",
            ScriptKind::Module => "module",
            ScriptKind::Interactive => "interactive",
        }
    }
}

/// What an interpreter process runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptInvocation {
    /// Canonical interpreter name: python, perl, ruby, sh, bash, dash, zsh, ksh, node,
    /// php, tclsh, osascript, pwsh, swift.
    pub interpreter: &'static str,
    pub kind: ScriptKind,
    /// Absolute path of the script (kind File); relative paths are resolved against
    /// the process's cwd. Empty otherwise.
    pub script_path: String,
    /// SHA-256 (hex) of the inline code text (kind Inline); empty otherwise.
    pub inline_sha256: String,
    /// Module name (kind Module); empty otherwise.
    pub module: String,
}

/// The canonical interpreter name for an executable, if it is one we know.
pub fn interpreter_of(_exe_path: &str, _argv: &[String]) -> Option<&'static str> {
    None
}

/// What the interpreter process runs; `None` when the executable is no interpreter.
pub fn analyze(exe_path: &str, argv: &[String], _cwd: &str) -> Option<ScriptInvocation> {
    let _ = interpreter_of(exe_path, argv)?;
    None
}
