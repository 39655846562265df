//! The config files a SOCKS client or server names, read through `Host` as the
//! process would read them, bounded: an ssh process's configs and their
//! `Include`s (for `DynamicForward`), and proxychains' config. Parsing them is
//! `ssh` and `proxychains`; judging what they say is the classifier's.

use super::ssh;
use crate::model::{PathKind, ProcessInfo};
use crate::platform::Host;
use crate::util::glob::{self, Dialect};

/// Largest ssh config file read (bytes); larger files are read up to this much.
pub const MAX_SSH_CONFIG_BYTES: u64 = 256 * 1024;

/// Most ssh config files read for one ssh process (its configs and their Includes).
pub(super) const MAX_SSH_CONFIG_FILES: usize = 64;
/// Deepest `Include` nesting followed (OpenSSH's own limit).
const MAX_SSH_INCLUDE_DEPTH: usize = 16;
/// Most directory entries looked at to expand one `Include` glob.
const MAX_INCLUDE_DIR_ENTRIES: usize = 4096;

/// Follows an ssh process's config files and their `Include`s, bounded, collecting
/// the `DynamicForward` ports that apply to its destination.
pub(super) struct SshConfigReader<'a> {
    pub(super) host: &'a dyn Host,
    /// The ssh process: its files are read with its rights, in its root.
    pub(super) process: &'a ProcessInfo,
    pub(super) home: Option<&'a str>,
    pub(super) destination: Option<&'a str>,
    pub(super) files_left: usize,
    pub(super) ports: Vec<u16>,
    /// Provider libraries named (`PKCS11Provider in <file>`, value as written).
    pub(super) providers: Vec<(String, String)>,
    /// Why a user config file ssh may have read at start is not known now:
    /// unreadable as the process's user, or missing where a user can change it
    /// (read at start and removed since).
    pub(super) unread: Vec<String>,
}

impl<'a> SshConfigReader<'a> {
    /// A reader of `process`'s ssh config files, for `destination`; `home` is
    /// its user's home directory.
    pub(super) fn new(
        host: &'a dyn Host,
        process: &'a ProcessInfo,
        home: Option<&'a str>,
        destination: Option<&'a str>,
    ) -> Self {
        SshConfigReader {
            host,
            process,
            home,
            destination,
            files_left: MAX_SSH_CONFIG_FILES,
            ports: Vec::new(),
            providers: Vec::new(),
            unread: Vec::new(),
        }
    }

    /// Reads the config files ssh reads for `args` (`-F`, else the user's and the
    /// system's), with their `Include`s.
    pub(super) fn read_all(&mut self, args: &ssh::SshArgs) {
        for path in ssh::config_paths(args, self.home, &self.process.cwd) {
            let user_config = path != ssh::SYSTEM_CONFIG;
            self.read(&path, user_config, 0);
        }
    }
}

impl SshConfigReader<'_> {
    pub(super) fn read(&mut self, path: &str, user_config: bool, depth: usize) {
        if depth > MAX_SSH_INCLUDE_DEPTH
            || self.files_left == 0
            || crate::deadline::Deadline::current().expired()
        {
            return;
        }
        self.files_left -= 1;
        let Some(text) = read_config(self.host, self.process, path) else {
            if user_config {
                self.unread.extend(self.why_unread(path));
            }
            return;
        };
        let found = ssh::read_config(&text, self.destination);
        self.ports.extend(found.forwards.iter().map(|f| f.port));
        self.providers.extend(
            found
                .providers
                .into_iter()
                .map(|(keyword, library)| (format!("{keyword} in {path}"), library)),
        );
        for argument in &found.includes {
            let Some(pattern) = ssh::include_path(argument, self.home, user_config) else {
                continue;
            };
            for file in expand_file_glob(self.host, self.process, &pattern) {
                self.read(&file, user_config, depth + 1);
            }
        }
    }
}

impl SshConfigReader<'_> {
    /// Why the user config file `path`, which could not be read, may still have
    /// said something when ssh read it at start; `None` when it could not have.
    fn why_unread(&self, path: &str) -> Option<String> {
        let pid = self.process.pid;
        match self.host.path_kind(pid, path) {
            // Missing since before ssh started: there was nothing to read.
            PathKind::Missing if self.host.missing_since_start(pid, path) => None,
            PathKind::Missing => {
                let dir = path.rsplit_once('/').map_or("/", |(d, _)| d);
                let why = self
                    .host
                    .path_changeable(pid, if dir.is_empty() { "/" } else { dir });
                (!why.is_empty()).then(|| {
                    format!("{path} is absent now, but {why}: ssh may have read it at start")
                })
            }
            _ => Some(format!(
                "{path} cannot be read as the process's user: what it says is not known"
            )),
        }
    }
}

/// The PKCS#11 and security-key provider libraries an ssh client's config files
/// (`-F`, else `~/.ssh/config` and the system's, with their `Include`s) name for its
/// destination: each is loaded into ssh. `(where, library)`, `~/` expanded; and
/// why user config files ssh may have read at start cannot be read now.
pub fn ssh_config_providers(
    host: &dyn Host,
    process: &ProcessInfo,
) -> (Vec<(String, String)>, Vec<String>) {
    let args = ssh::parse_ssh_argv(&process.argv);
    let home = host.home_directory(process.uid);
    let mut reader =
        SshConfigReader::new(host, process, home.as_deref(), args.destination.as_deref());
    reader.read_all(&args);
    let providers = reader
        .providers
        .into_iter()
        .map(|(place, library)| {
            let library = match (library.strip_prefix("~/"), home.as_deref()) {
                (Some(rest), Some(home)) => format!("{}/{rest}", home.trim_end_matches('/')),
                _ => library,
            };
            (place, library)
        })
        .collect();
    (providers, reader.unread)
}

/// The files a path whose file name may hold `*`/`?` names, sorted as glob(3)
/// returns them (hidden files only for a pattern starting with `.`); the directory
/// is listed as `process` would list it (`Host::list_user_dir`).
fn expand_file_glob(host: &dyn Host, process: &ProcessInfo, pattern: &str) -> Vec<String> {
    if !ssh::has_glob(pattern) {
        return vec![pattern.to_owned()];
    }
    let (dir, name_pattern) = pattern.rsplit_once('/').unwrap_or((".", pattern));
    let dir = if dir.is_empty() { "/" } else { dir };
    let Some(entries) = host.list_user_dir(process, dir, MAX_INCLUDE_DIR_ENTRIES) else {
        return Vec::new();
    };
    let mut files: Vec<String> = entries
        .into_iter()
        .filter(|name| !name.starts_with('.') || name_pattern.starts_with('.'))
        // Undecided (over the glob's bounds): read the file; more config read
        // means more forwards seen, and MAX_SSH_CONFIG_FILES still bounds it.
        .filter(|name| glob::matches(Dialect::Ssh, name_pattern, name).unwrap_or(true))
        .map(|name| format!("{}/{name}", dir.trim_end_matches('/')))
        .collect();
    files.sort();
    files
}

/// At most `MAX_SSH_CONFIG_BYTES` of a config file `process` names, read as the
/// process would read it (never as root for the user, never a device or FIFO).
pub(super) fn read_config(host: &dyn Host, process: &ProcessInfo, path: &str) -> Option<String> {
    let bytes = host.read_user_file(process, path, MAX_SSH_CONFIG_BYTES)?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixtures::process;
    use crate::platform::FakeHost;

    /// `Include` globs expand sorted and skip hidden files; nested includes are
    /// followed; a file that includes itself stops at the bounds.
    #[test]
    fn ssh_config_includes_are_followed_and_bounded() {
        // In memory: the judge reads the user's files only through the Host.
        let d = "/home/u/.ssh";
        let mut host = FakeHost::default();
        let mut write = |name: &str, text: String| {
            host.files.insert(format!("{d}/{name}"), text.into_bytes());
        };
        write(
            "main",
            format!("Include {d}/conf.d/*.conf\nHost other\n  Include {d}/never\n"),
        );
        write(
            "conf.d/b.conf",
            format!("Host pivot\n  DynamicForward 2002\n  Include {d}/nested\n"),
        );
        write("conf.d/a.conf", "DynamicForward 2001\n".into());
        write("conf.d/.hidden.conf", "DynamicForward 2999\n".into());
        write("conf.d/c.txt", "DynamicForward 2998\n".into());
        write("nested", "DynamicForward 2003\n".into());
        write("never", "DynamicForward 2997\n".into());
        write("loop", format!("DynamicForward 2004\nInclude {d}/loop\n"));
        let ssh = process(1, "/usr/bin/ssh", &["ssh"]);
        assert_eq!(
            expand_file_glob(&host, &ssh, &format!("{d}/conf.d/*.conf")),
            vec![format!("{d}/conf.d/a.conf"), format!("{d}/conf.d/b.conf")]
        );
        assert_eq!(
            expand_file_glob(&host, &ssh, "/nonexistent-an1256/none/*"),
            Vec::<String>::new()
        );
        let mut reader = SshConfigReader::new(&host, &ssh, None, Some("pivot"));
        reader.read(&format!("{d}/main"), true, 0);
        assert_eq!(reader.ports, vec![2001, 2002, 2003]);
        reader.ports.clear();
        reader.read(&format!("{d}/loop"), true, 0);
        assert_eq!(reader.ports.len(), MAX_SSH_INCLUDE_DEPTH + 1);
        assert!(reader.files_left < MAX_SSH_CONFIG_FILES);
    }

    /// A user config ssh may have read at start but that cannot be read now says
    /// nothing about what it named: missing where a user can change it, or there
    /// but unreadable. Missing under root-only directories, or the system's, is
    /// nothing.
    #[test]
    fn unreadable_or_removed_user_configs_are_reported() {
        let mut host = FakeHost::default();
        let ssh = process(1, "/usr/bin/ssh", &["ssh", "pivot"]);
        let unread = |host: &FakeHost, path: &str, user_config: bool| {
            let mut reader = SshConfigReader::new(host, &ssh, None, Some("pivot"));
            reader.read(path, user_config, 0);
            reader.unread
        };
        let config = "/home/u/.ssh/config";
        assert!(unread(&host, config, true).is_empty(), "root-only");
        host.changeable.insert(
            "/home/u/.ssh".into(),
            "/home/u is writable by a user other than root".into(),
        );
        let why = unread(&host, config, true);
        assert!(
            why.len() == 1
                && why[0].contains("is absent now, but /home/u is writable")
                && why[0].contains("ssh may have read it at start"),
            "{why:?}"
        );
        assert!(unread(&host, config, false).is_empty(), "the system's");
        host.missing_at_start.insert(config.into());
        assert!(unread(&host, config, true).is_empty(), "missing at start");
        host.missing_at_start.clear();
        host.path_kinds.insert(config.into(), PathKind::File);
        let why = unread(&host, config, true);
        assert!(
            why.len() == 1 && why[0].contains("cannot be read as the process's user"),
            "{why:?}"
        );
        host.files.insert(config.into(), b"Host other\n".to_vec());
        assert!(unread(&host, config, true).is_empty(), "read");
    }

    /// A FIFO at the config path is not read (and does not hang the scan).
    #[test]
    fn a_fifo_config_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let host = FakeHost::default();
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).unwrap();
        // SAFETY: valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let owner = process(1, "/usr/bin/ssh", &["ssh"]);
        assert_eq!(read_config(&host, &owner, &fifo.to_string_lossy()), None);
    }
}
