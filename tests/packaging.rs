//! Deployment, for real: `packaging/an1256-setup` puts the extension where osquery
//! and fleetd load it (root-owned, 0755, non-sticky directory) and writes the
//! flags; the Debian package (`cargo deb`, metadata in Cargo.toml) installs with
//! `dpkg -i`, runs from its installed path, and `dpkg -r` / `--purge` leave nothing.
#![cfg(target_os = "linux")]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXTENSION: &str = env!("CARGO_BIN_EXE_an1256");
/// Where the Debian package and the setup script put the extension on Linux.
const EXT_PATH: &str = "/usr/lib/an1256/an1256.ext";
const REQUIRE_FLAG: &str = "--extensions_require=an1256";

fn setup_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packaging/an1256-setup")
}

fn run(command: &mut Command) -> Output {
    let output = command.output().expect("spawn");
    assert!(
        output.status.success(),
        "{command:?}: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn setup(root: &Path, args: &[&str]) -> Output {
    run(Command::new(setup_script())
        .args(args)
        .arg("--root")
        .arg(root))
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path.as_ref())
        .unwrap_or_else(|e| panic!("read {}: {e}", path.as_ref().display()))
}

fn lines_equal(text: &str, line: &str) -> usize {
    text.lines().filter(|l| *l == line).count()
}

/// What osquery's autoloader checks (osquery `safePermissions`): a root-owned
/// executable, writable by nobody else, in a root-owned directory that is not sticky
/// and not writable by others.
fn assert_osquery_would_load(ext: &Path) {
    let file = std::fs::metadata(ext).expect("stat the extension");
    assert_eq!(file.uid(), 0, "{} owner", ext.display());
    assert_eq!(
        file.permissions().mode() & 0o7777,
        0o755,
        "{} mode",
        ext.display()
    );
    let dir = std::fs::metadata(ext.parent().expect("parent")).expect("stat its directory");
    assert_eq!(dir.uid(), 0, "directory owner");
    assert_eq!(
        dir.permissions().mode() & 0o7777,
        0o755,
        "directory mode (no sticky bit)"
    );
}

#[test]
fn setup_installs_for_osquery_keeps_what_was_there_and_removes_only_its_own() {
    if !common::is_root() {
        return common::skip("setup_installs_for_osquery", "needs root (chown to root)");
    }
    let root = tempfile::tempdir().expect("tempdir");
    let etc = root.path().join("etc/osquery");
    std::fs::create_dir_all(&etc).unwrap();
    // An admin's existing files, the flag file without a trailing newline.
    let flags_before = "--host_identifier=uuid\n--logger_path=/var/log/osquery";
    let autoload_before = "/usr/local/osquery/other.ext\n";
    std::fs::write(etc.join("osquery.flags"), flags_before).unwrap();
    std::fs::write(etc.join("extensions.load"), autoload_before).unwrap();

    // Twice: the second run changes nothing.
    for _ in 0..2 {
        setup(root.path(), &["--osquery", "--ext", EXTENSION]);
    }
    let ext = root.path().join(EXT_PATH.trim_start_matches('/'));
    assert_osquery_would_load(&ext);
    assert_eq!(
        std::fs::read(&ext).unwrap(),
        std::fs::read(EXTENSION).unwrap()
    );
    let autoload = read(etc.join("extensions.load"));
    assert_eq!(lines_equal(&autoload, EXT_PATH), 1, "{autoload}");
    assert_eq!(lines_equal(&autoload, "/usr/local/osquery/other.ext"), 1);
    let flags = read(etc.join("osquery.flags"));
    assert_eq!(lines_equal(&flags, REQUIRE_FLAG), 1, "{flags}");
    assert_eq!(
        lines_equal(&flags, "--logger_path=/var/log/osquery"),
        1,
        "{flags}"
    );
    assert_eq!(lines_equal(&flags, "--host_identifier=uuid"), 1, "{flags}");

    // The installed binary runs from there.
    let help = run(Command::new(&ext).arg("--help"));
    assert!(String::from_utf8_lossy(&help.stdout).contains("scan"));

    setup(root.path(), &["--remove"]);
    assert_eq!(read(etc.join("extensions.load")), autoload_before);
    // Only the newline the script had to add to reach a new line stays.
    assert_eq!(read(etc.join("osquery.flags")), format!("{flags_before}\n"));
    assert!(!ext.exists(), "the copied binary is removed");
}

/// A flag file takes a flag's last value: an admin who already requires another
/// extension keeps it (ours lists both), and keeps their own timeout.
#[test]
fn setup_keeps_the_admins_required_extensions_and_timeout() {
    if !common::is_root() {
        return common::skip("setup_keeps_required", "needs root (chown to root)");
    }
    let root = tempfile::tempdir().expect("tempdir");
    let etc = root.path().join("etc/osquery");
    std::fs::create_dir_all(&etc).unwrap();
    let before = "--extensions_require=other_ext\n--extensions_timeout=60\n";
    std::fs::write(etc.join("osquery.flags"), before).unwrap();
    for _ in 0..2 {
        setup(root.path(), &["--osquery", "--ext", EXTENSION]);
    }
    let flags = read(etc.join("osquery.flags"));
    let last = |flag: &str| {
        flags
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(flag))
            .map(str::to_owned)
    };
    // What osquery ends up with: the last occurrence of each flag.
    assert_eq!(
        last("--extensions_require=").as_deref(),
        Some("other_ext,an1256"),
        "{flags}"
    );
    assert_eq!(
        last("--extensions_timeout=").as_deref(),
        Some("60"),
        "{flags}"
    );
    setup(root.path(), &["--remove"]);
    assert_eq!(read(etc.join("osquery.flags")), before);
}

#[test]
fn setup_for_fleet_writes_orbit_autoload_and_leaves_nothing_after_remove() {
    if !common::is_root() {
        return common::skip("setup_for_fleet", "needs root (chown to root)");
    }
    let root = tempfile::tempdir().expect("tempdir");
    let out = setup(root.path(), &["--fleet", "--ext", EXTENSION]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("command_line_flags.extensions_require"),
        "tells the admin where fleetd's flags come from"
    );
    let orbit = root.path().join("opt/orbit/extensions.load");
    assert_eq!(read(&orbit), format!("{EXT_PATH}\n"));
    assert_osquery_would_load(&root.path().join(EXT_PATH.trim_start_matches('/')));
    assert!(
        !root.path().join("etc/osquery/osquery.flags").exists(),
        "fleetd owns osquery's flags: --fleet writes none"
    );
    setup(root.path(), &["--remove"]);
    assert!(!orbit.exists(), "an extensions.load left empty is removed");
    assert!(!root.path().join(EXT_PATH.trim_start_matches('/')).exists());
}

/// An admin installs a binary a user built (`--ext ~user/...`): the installed copy
/// is root's own file, and the user's later writes to their copy change nothing.
#[test]
fn setup_installs_a_root_owned_copy_of_a_user_writable_binary() {
    if !common::is_root() {
        return common::skip("setup_user_binary", "needs root");
    }
    let attacker = common::attacker("setupext");
    let theirs = attacker.write("build/an1256", &std::fs::read(EXTENSION).unwrap(), true);
    // The attacker keeps write access to their file (mode 0755, their uid).
    let root = tempfile::tempdir().expect("tempdir");
    setup(
        root.path(),
        &["--osquery", "--ext", theirs.to_str().expect("utf-8 path")],
    );
    let ext = root.path().join(EXT_PATH.trim_start_matches('/'));
    assert_osquery_would_load(&ext);
    assert_ne!(
        std::fs::metadata(&ext).unwrap().ino(),
        std::fs::metadata(&theirs).unwrap().ino(),
        "a copy, not a link to the user's file"
    );
    let appended = attacker
        .command("sh")
        .arg("-c")
        .arg("echo 'tampered' >> build/an1256")
        .status()
        .expect("run as the attacker");
    assert!(appended.success(), "the attacker can write their own file");
    assert_eq!(
        std::fs::read(&ext).unwrap(),
        std::fs::read(EXTENSION).unwrap(),
        "the installed extension is unchanged"
    );
}

/// The Debian package, built by cargo-deb from the Cargo.toml metadata around the
/// binary these tests built (cargo-deb's `--no-build`, so no second compile), then
/// installed, run and removed with the real dpkg.
#[test]
fn debian_package_installs_runs_and_purges_to_nothing() {
    const TEST: &str = "debian_package";
    if !common::is_root() {
        return common::skip(TEST, "dpkg -i needs root");
    }
    if common::which("dpkg").is_none() {
        return common::skip(TEST, "not a Debian system (no dpkg)");
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let has_cargo_deb = Command::new(&cargo)
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_cargo_deb {
        return common::skip(
            TEST,
            "cargo-deb is not installed (scripts/install-test-deps installs it: cargo install cargo-deb --locked)",
        );
    }
    let installed = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "an1256"])
        .output()
        .expect("dpkg-query");
    if String::from_utf8_lossy(&installed.stdout).contains("installed") {
        return common::skip(TEST, "an1256 is already installed here; not touching it");
    }
    let osquery_configured = Path::new("/etc/osquery").exists();
    let store_existed = Path::new("/var/lib/an1256").exists();

    // cargo-deb packages target/release/an1256: give it this build's binary there.
    let work = tempfile::tempdir().expect("tempdir");
    let target = work.path().join("target");
    std::fs::create_dir_all(target.join("release")).unwrap();
    common::copy_executable(EXTENSION, target.join("release/an1256"));
    let out_dir = work.path().join("deb");
    let started = std::time::Instant::now();
    run(Command::new(&cargo)
        .args(["deb", "--no-build", "--fast", "--no-strip", "--output"])
        .arg(&out_dir)
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(env!("CARGO_MANIFEST_DIR")));
    eprintln!("cargo deb --no-build: {:?}", started.elapsed());
    let deb = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb");

    let package = DebInstall::new(&deb);
    let files = package.files();
    for expected in [
        EXT_PATH,
        "/usr/bin/an1256",
        "/usr/lib/an1256/an1256-setup",
        "/etc/an1256/osquery.flags",
        "/usr/share/an1256/packs/an1256.conf",
        "/usr/share/an1256/fleet/an1256-queries.yml",
        "/usr/share/an1256/fleet/an1256-policies.yml",
        "/usr/share/an1256/fleet/fleets/an1256.yml",
        "/usr/share/an1256/elastic/an1256-pack.json",
    ] {
        assert!(
            files.iter().any(|f| f == expected),
            "{expected} in {files:?}"
        );
    }
    assert_osquery_would_load(Path::new(EXT_PATH));
    assert_eq!(
        std::fs::read_link("/usr/bin/an1256").unwrap(),
        PathBuf::from("../lib/an1256/an1256.ext")
    );
    let setup_meta = std::fs::metadata("/usr/lib/an1256/an1256-setup").unwrap();
    assert_eq!(
        (setup_meta.uid(), setup_meta.permissions().mode() & 0o7777),
        (0, 0o755)
    );
    let conffiles = read("/var/lib/dpkg/info/an1256.conffiles");
    assert_eq!(conffiles.trim(), "/etc/an1256/osquery.flags");
    assert!(read("/etc/an1256/osquery.flags").contains(REQUIRE_FLAG));

    // An empty config file: this host's /etc/an1256/config.json must not steer it.
    let config = work.path().join("config.json");
    std::fs::write(&config, "{}").unwrap();
    // It runs from the installed paths: the extension's help, and a real scan.
    let help = run(Command::new(EXT_PATH).arg("--help"));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--socket"));
    let scan = Command::new("/usr/bin/an1256")
        .args(["scan", "--format", "json"])
        .env("AN1256_DB", work.path().join("store/an1256.db"))
        .env("AN1256_CONFIG", &config)
        .output()
        .expect("run the installed an1256 scan");
    assert!(
        matches!(scan.status.code(), Some(0 | 1)),
        "an1256 scan: {}\n{}",
        scan.status,
        String::from_utf8_lossy(&scan.stderr)
    );
    if !store_existed {
        // The default store, so purge has something of ours to remove.
        run(Command::new("/usr/bin/an1256")
            .args(["baseline", "sample"])
            .env_remove("AN1256_DB")
            .env("AN1256_CONFIG", &config));
        assert!(Path::new("/var/lib/an1256").exists());
    }
    if !osquery_configured {
        // Wire it into osquery; `dpkg -r` must take it out again (prerm), or a
        // restarted osqueryd would wait for an extension that is gone.
        run(Command::new("/usr/lib/an1256/an1256-setup").arg("--osquery"));
        assert!(read("/etc/osquery/extensions.load").contains(EXT_PATH));
        assert!(read("/etc/osquery/osquery.flags").contains(REQUIRE_FLAG));
    }

    package.remove("-r");
    for file in &files {
        let path = Path::new(file);
        let kept = file == "/etc/an1256/osquery.flags"; // a conffile stays until purge
        if !kept && !path.is_dir() {
            assert!(
                std::fs::symlink_metadata(path).is_err(),
                "{file} left after dpkg -r"
            );
        }
    }
    if !osquery_configured {
        assert!(!Path::new("/etc/osquery/extensions.load").exists());
        assert!(!Path::new("/etc/osquery/osquery.flags").exists());
        // The directory the setup script made on a host without osquery.
        std::fs::remove_dir("/etc/osquery").expect("/etc/osquery left empty");
    }
    package.remove("--purge");
    for gone in ["/etc/an1256", "/usr/lib/an1256", "/usr/share/an1256"] {
        assert!(!Path::new(gone).exists(), "{gone} left after purge");
    }
    if !store_existed {
        assert!(
            !Path::new("/var/lib/an1256").exists(),
            "purge removes the baseline store"
        );
    }
    let status = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "an1256"])
        .output()
        .expect("dpkg-query");
    assert!(
        !String::from_utf8_lossy(&status.stdout).contains("installed"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
}

/// An installed package, purged on drop if the test stops half way.
struct DebInstall;

impl DebInstall {
    fn new(deb: &Path) -> DebInstall {
        run(Command::new("dpkg").arg("-i").arg(deb));
        DebInstall
    }

    /// Every path the package installed (`dpkg -L`), directories included.
    fn files(&self) -> Vec<String> {
        let out = run(Command::new("dpkg").args(["-L", "an1256"]));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with('/') && *l != "/.")
            .map(str::to_owned)
            .collect()
    }

    fn remove(&self, how: &str) {
        run(Command::new("dpkg").arg(how).arg("an1256"));
    }
}

impl Drop for DebInstall {
    fn drop(&mut self) {
        // A no-op once the test purged it.
        let _ = Command::new("dpkg").args(["--purge", "an1256"]).output();
    }
}

/// `--root` names where root writes, chowns and appends. A directory another user
/// controls (their own, or one of theirs inside a root-only one) would let them
/// swap a path for a symlink to a file of root's: the script refuses, and the
/// file is untouched. The benign twin, the same layout all root's, installs.
#[test]
fn setup_refuses_a_root_directory_another_user_controls() {
    if !common::is_root() {
        return common::skip("setup_user_root", "needs root");
    }
    use std::os::unix::fs::symlink;
    let victim_dir = tempfile::tempdir().expect("tempdir");
    let victim = victim_dir.path().join("shadow-like");
    std::fs::write(&victim, "root's secret\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let untouched = |why: &str| {
        let meta = std::fs::symlink_metadata(&victim).unwrap();
        assert_eq!(read(&victim), "root's secret\n", "{why}: content");
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "{why}: mode");
        assert_eq!(meta.uid(), 0, "{why}: owner");
    };
    let refused = |root: &Path, why: &str| {
        let output = Command::new(setup_script())
            .args(["--osquery", "--ext", EXTENSION, "--root"])
            .arg(root)
            .output()
            .expect("spawn");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{why}: accepted\n{stderr}");
        assert!(stderr.contains("root-only"), "{why}: says why: {stderr}");
        untouched(why);
    };

    // 1. The attacker's own home as --root, with etc/osquery/osquery.flags planted
    // as a symlink to root's file.
    let attacker = common::attacker("setuproot");
    attacker.write("etc/osquery/.keep", b"", false);
    let planted = attacker.home.join("etc/osquery/osquery.flags");
    std::os::unix::fs::lchown(
        {
            symlink(&victim, &planted).unwrap();
            &planted
        },
        Some(attacker.uid),
        Some(attacker.gid),
    )
    .unwrap();
    refused(&attacker.home, "the attacker's home");

    // 2. A root-only --root, but etc/ inside it belongs to the attacker.
    let root = tempfile::tempdir().expect("tempdir");
    let etc = root.path().join("etc");
    std::fs::create_dir_all(etc.join("osquery")).unwrap();
    std::os::unix::fs::chown(&etc, Some(attacker.uid), Some(attacker.gid)).unwrap();
    symlink(&victim, etc.join("osquery/extensions.load")).unwrap();
    refused(root.path(), "an attacker's directory inside --root");

    // 3. A group-writable directory on the way.
    let open = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o775)).unwrap();
    refused(open.path(), "a group-writable --root");

    // Benign twin: the same layout, all root's, installs and leaves the file alone.
    std::os::unix::fs::chown(&etc, Some(0), Some(0)).unwrap();
    std::fs::remove_file(etc.join("osquery/extensions.load")).unwrap();
    setup(root.path(), &["--osquery", "--ext", EXTENSION]);
    assert_osquery_would_load(&root.path().join(EXT_PATH.trim_start_matches('/')));
    assert_eq!(
        lines_equal(&read(etc.join("osquery/osquery.flags")), REQUIRE_FLAG),
        1
    );
    untouched("benign twin");
}
