//! The dpkg database as a `ProvenanceSource`: `info/*.md5sums` and the `Conffiles:`
//! digests of `status` (path -> package, md5), `info/*.list` ownership for paths with
//! no digest (built only when first needed), `diversions`, and merged-/usr aliases
//! (the database may record `/bin/bash` for the file at `/usr/bin/bash`, or the
//! reverse). Each index is built once, lazily, and is immutable afterwards.

use super::provenance::{Claim, ExpectedDigest, ProvenanceSource};
use crate::util::hex::unhex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Index of a package name in `DigestIndex::packages`.
type PackageId = u32;

/// A path's owners as (package, digest) pairs; nearly always one.
type Owners<T> = HashMap<Box<str>, Vec<(PackageId, T)>, FastHash>;

/// The index holds ~130k paths and is built on the first trust query of a CLI
/// run: SipHash (DoS resistance we do not need for root-owned local data) was a
/// fifth of the build time. This is the Fx multiply-rotate hash.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for &byte in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// `BuildHasher` for [`FxHasher`].
pub type FastHash = std::hash::BuildHasherDefault<FxHasher>;

/// Upper bound for one database file (the biggest `.list`/`.md5sums` is a few MiB;
/// `status` tens of MiB on a large system).
const MAX_DB_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// One `diversions` entry: the package's file `from` is installed at `to`; `from`
/// belongs to `by` (`None`: a local administrator's diversion).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diversion {
    pub from: String,
    pub to: String,
    pub by: Option<String>,
}

/// Package names and the path -> (package, md5) map.
#[derive(Default)]
struct DigestIndex {
    packages: Vec<String>,
    package_ids: HashMap<String, PackageId>,
    digests: Owners<[u8; 16]>,
    diversions_to: HashMap<String, Diversion>,
    diversions_from: HashMap<String, Diversion>,
}

impl DigestIndex {
    fn package_id(&mut self, name: &str) -> PackageId {
        if let Some(&id) = self.package_ids.get(name) {
            return id;
        }
        let id = PackageId::try_from(self.packages.len()).unwrap_or(PackageId::MAX);
        self.packages.push(name.to_owned());
        self.package_ids.insert(name.to_owned(), id);
        id
    }

    fn add_digest(&mut self, path: String, package: PackageId, md5: [u8; 16]) {
        match self.digests.get_mut(path.as_str()) {
            Some(owners) => {
                if !owners.iter().any(|(p, d)| *p == package && *d == md5) {
                    owners.push((package, md5));
                }
            }
            None => {
                self.digests
                    .insert(path.into_boxed_str(), vec![(package, md5)]);
            }
        }
    }
}

/// The dpkg database at a root (`/var/lib/dpkg`, or a test fixture).
pub struct DpkgDatabase {
    root: PathBuf,
    index: OnceLock<DigestIndex>,
    /// path -> owning packages, from `*.list`; only for paths with no digest.
    listed: OnceLock<HashMap<Box<str>, Vec<PackageId>, FastHash>>,
}

impl DpkgDatabase {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DpkgDatabase {
            root: root.into(),
            index: OnceLock::new(),
            listed: OnceLock::new(),
        }
    }

    fn index(&self) -> &DigestIndex {
        self.index.get_or_init(|| build_digest_index(&self.root))
    }

    fn listed(&self) -> &HashMap<Box<str>, Vec<PackageId>, FastHash> {
        self.listed
            .get_or_init(|| build_list_index(&self.root, self.index()))
    }

    /// Owners of `path` as the database names it, honouring diversions.
    fn owners_with<T: Copy>(
        &self,
        index: &DigestIndex,
        path: &str,
        lookup: impl Fn(&str) -> Vec<(PackageId, T)>,
    ) -> Vec<(PackageId, T)> {
        let package_of = |name: &Option<String>| {
            name.as_ref()
                .and_then(|n| index.package_ids.get(n.as_str()).copied())
        };
        if let Some(diversion) = index.diversions_to.get(path) {
            // The diverted package's file now lives here: its owners are those of
            // `from` other than the diverting package.
            let diverter = package_of(&diversion.by);
            return lookup(&diversion.from)
                .into_iter()
                .filter(|(p, _)| Some(*p) != diverter)
                .collect();
        }
        if let Some(diversion) = index.diversions_from.get(path) {
            // Only the diverting package's file is at `from` (none for a local one).
            let diverter = package_of(&diversion.by);
            return lookup(path)
                .into_iter()
                .filter(|(p, _)| Some(*p) == diverter)
                .collect();
        }
        lookup(path)
    }
}

impl ProvenanceSource for DpkgDatabase {
    fn authority(&self) -> &'static str {
        "dpkg"
    }

    fn claims(&self, path: &str) -> Vec<Claim> {
        let index = self.index();
        let name = |id: PackageId| index.packages.get(id as usize).cloned().unwrap_or_default();
        let path = canonical_path(path);
        let owners = self.owners_with(index, &path, |p| {
            index.digests.get(p).cloned().unwrap_or_default()
        });
        if !owners.is_empty() {
            return owners
                .into_iter()
                .map(|(id, md5)| Claim {
                    package: name(id),
                    digest: Some(ExpectedDigest::Md5(md5)),
                })
                .collect();
        }
        // Owned without a digest? Only now is the (bigger) list index built.
        let listed = self.listed();
        self.owners_with(index, &path, |p| {
            listed
                .get(p)
                .map(|ids| ids.iter().map(|&id| (id, ())).collect())
                .unwrap_or_default()
        })
        .into_iter()
        .map(|(id, ())| Claim {
            package: name(id),
            digest: None,
        })
        .collect()
    }
}

/// Top-level directories merged into /usr on merged-/usr systems.
const MERGED_DIRS: [&str; 7] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32", "libo32"];

/// The one form under which the index keeps a path: `/bin/x` and `/usr/bin/x` are
/// the same file on a merged-/usr system, and dpkg may record either (and divert
/// either), so both the database's paths and the queried path become `/usr/bin/x`.
/// On a rare non-merged system two files can share a key; their claims are merged,
/// and a digest match against either still decides.
pub fn canonical_path(path: &str) -> String {
    let top = path
        .strip_prefix('/')
        .and_then(|p| p.split('/').next())
        .unwrap_or_default();
    if MERGED_DIRS.contains(&top) && path.len() > top.len() + 1 {
        format!("/usr{path}")
    } else {
        path.to_owned()
    }
}

/// `libc6:amd64` -> `libc6`; the identifier stays stable across architectures.
pub fn package_from_file_stem(stem: &str) -> &str {
    stem.split(':').next().unwrap_or(stem)
}

/// Database paths are relative (`usr/bin/ls`) in md5sums: made absolute, then
/// canonical (as `canonical_path`), in one allocation of the final size (the
/// index holds ~130k of them).
fn absolute(path: &str) -> String {
    let relative = path.strip_prefix('/').unwrap_or(path);
    let top = relative.split('/').next().unwrap_or_default();
    let merged = MERGED_DIRS.contains(&top) && relative.len() > top.len();
    let mut out = String::with_capacity(relative.len() + if merged { 5 } else { 1 });
    if merged {
        out.push_str("/usr");
    }
    out.push('/');
    out.push_str(relative);
    out
}

/// `<md5>  <path relative to />` lines of an `info/<pkg>.md5sums` file.
pub fn parse_md5sums(text: &str) -> Vec<(String, [u8; 16])> {
    text.lines()
        .filter_map(|line| {
            let (md5, path) = line.split_once(char::is_whitespace)?;
            let path = path.trim_start();
            if path.is_empty() {
                return None;
            }
            Some((absolute(path), unhex(md5)?))
        })
        .collect()
}

/// Paths of an `info/<pkg>.list` file (directories included; `/.` skipped).
pub fn parse_list(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| !line.is_empty() && *line != "/.")
        .map(absolute)
        .collect()
}

/// The `diversions` file: triples of lines `from`, `to`, `package` (`:` = local).
pub fn parse_diversions(text: &str) -> Vec<Diversion> {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .chunks_exact(3)
        .map(|triple| Diversion {
            from: canonical_path(triple[0]),
            to: canonical_path(triple[1]),
            by: (triple[2] != ":").then(|| triple[2].to_owned()),
        })
        .collect()
}

/// `(package, path, md5)` for every conffile in `status`. Lines look like
/// ` /etc/foo.conf 5d41402abc4b2a76b9719d911017c592 [obsolete|remove-on-upgrade]`;
/// `newconffile` placeholders are skipped.
pub fn parse_status_conffiles(text: &str) -> Vec<(String, String, [u8; 16])> {
    let mut found = Vec::new();
    let mut package = String::new();
    let mut in_conffiles = false;
    for line in text.lines() {
        if line.is_empty() {
            package.clear();
            in_conffiles = false;
            continue;
        }
        if let Some(rest) = line.strip_prefix(' ') {
            if !in_conffiles {
                continue;
            }
            let mut tokens: Vec<&str> = rest.split(' ').filter(|t| !t.is_empty()).collect();
            if matches!(
                tokens.last(),
                Some(&"obsolete") | Some(&"remove-on-upgrade")
            ) {
                tokens.pop();
            }
            let Some(md5) = tokens.pop().and_then(unhex) else {
                continue;
            };
            if tokens.is_empty() || package.is_empty() {
                continue;
            }
            found.push((package.clone(), canonical_path(&tokens.join(" ")), md5));
            continue;
        }
        in_conffiles = line.starts_with("Conffiles:");
        if let Some(name) = line.strip_prefix("Package:") {
            package = name.trim().to_owned();
        }
    }
    found
}

fn read_text(path: &Path) -> Option<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).ok()?;
    let mut data = Vec::new();
    file.take(MAX_DB_FILE_BYTES).read_to_end(&mut data).ok()?;
    Some(match String::from_utf8(data) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Files of `info/` with the given suffix, as (package, path).
fn info_files(root: &Path, suffix: &str) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(root.join("info")) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let stem = name.to_str()?.strip_suffix(suffix)?;
            Some((package_from_file_stem(stem).to_owned(), entry.path()))
        })
        .collect()
}

fn build_digest_index(root: &Path) -> DigestIndex {
    let mut index = DigestIndex::default();
    index.digests.reserve(1 << 17);
    for (package, path) in info_files(root, ".md5sums") {
        let Some(text) = read_text(&path) else {
            continue;
        };
        let id = index.package_id(&package);
        for (file, md5) in parse_md5sums(&text) {
            index.add_digest(file, id, md5);
        }
    }
    // Packages with a file list but no md5sums still need a name for ownership.
    for (package, _) in info_files(root, ".list") {
        index.package_id(&package);
    }
    if let Some(status) = read_text(&root.join("status")) {
        for (package, file, md5) in parse_status_conffiles(&status) {
            let id = index.package_id(&package);
            index.add_digest(file, id, md5);
        }
    }
    if let Some(text) = read_text(&root.join("diversions")) {
        for diversion in parse_diversions(&text) {
            if let Some(by) = &diversion.by {
                index.package_id(by);
            }
            index
                .diversions_to
                .insert(diversion.to.clone(), diversion.clone());
            index
                .diversions_from
                .insert(diversion.from.clone(), diversion);
        }
    }
    log::debug!(
        "dpkg index at {}: {} digests, {} packages",
        root.display(),
        index.digests.len(),
        index.packages.len()
    );
    index
}

fn build_list_index(
    root: &Path,
    index: &DigestIndex,
) -> HashMap<Box<str>, Vec<PackageId>, FastHash> {
    let mut listed: HashMap<Box<str>, Vec<PackageId>, FastHash> = HashMap::default();
    for (package, path) in info_files(root, ".list") {
        // Every listed package got an id when the digest index was built.
        let Some(&id) = index.package_ids.get(&package) else {
            continue;
        };
        let Some(text) = read_text(&path) else {
            continue;
        };
        for file in parse_list(&text) {
            if !index.digests.contains_key(file.as_str()) {
                let owners = listed.entry(file.into()).or_default();
                if !owners.contains(&id) {
                    owners.push(id);
                }
            }
        }
    }
    listed
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD5_A: &str = "900150983cd24fb0d6963f7d28e17f72";
    const MD5_B: &str = "d41d8cd98f00b204e9800998ecf8427e";

    #[test]
    fn md5sums_lines() {
        let text = format!(
            "{MD5_A}  usr/bin/ls\n{MD5_B}  usr/share/doc/my file.txt\nnot-a-digest  usr/bin/x\n{MD5_A}\n"
        );
        let parsed = parse_md5sums(&text);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].0, "/usr/bin/ls");
        assert_eq!(crate::util::hex::hex(&parsed[0].1), MD5_A);
        assert_eq!(parse_list("/bin/ls\n"), ["/usr/bin/ls"]);
        assert_eq!(parsed[1].0, "/usr/share/doc/my file.txt");
    }

    #[test]
    fn list_lines() {
        assert_eq!(
            parse_list("/.\n/usr\n/usr/bin\n/usr/bin/ls\n\n"),
            ["/usr", "/usr/bin", "/usr/bin/ls"]
        );
    }

    #[test]
    fn diversions_triples() {
        let text =
            "/usr/bin/ls\n/usr/bin/ls.distrib\nmy-ls\n/etc/issue\n/etc/issue.orig\n:\n/dangling\n";
        let parsed = parse_diversions(text);
        assert_eq!(
            parsed,
            [
                Diversion {
                    from: "/usr/bin/ls".into(),
                    to: "/usr/bin/ls.distrib".into(),
                    by: Some("my-ls".into())
                },
                Diversion {
                    from: "/etc/issue".into(),
                    to: "/etc/issue.orig".into(),
                    by: None
                },
            ]
        );
    }

    #[test]
    fn status_conffiles() {
        let text = format!(
            "Package: openssh-server\nStatus: install ok installed\nConffiles:\n /etc/ssh/moduli {MD5_A}\n /etc/default/ssh {MD5_B} obsolete\n /etc/new.conf newconffile\nDescription: secure shell\n multi-line description {MD5_A}\n\nPackage: base-files\nConffiles:\n /etc/with space.conf {MD5_B} remove-on-upgrade\n"
        );
        let parsed = parse_status_conffiles(&text);
        let summary: Vec<(String, String)> = parsed
            .iter()
            .map(|(p, f, _)| (p.clone(), f.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                ("openssh-server".to_string(), "/etc/ssh/moduli".to_string()),
                ("openssh-server".to_string(), "/etc/default/ssh".to_string()),
                ("base-files".to_string(), "/etc/with space.conf".to_string()),
            ]
        );
        assert_eq!(crate::util::hex::hex(&parsed[1].2), MD5_B);
    }

    #[test]
    fn merged_usr_paths_share_one_form() {
        assert_eq!(canonical_path("/usr/bin/bash"), "/usr/bin/bash");
        assert_eq!(canonical_path("/bin/bash"), "/usr/bin/bash");
        assert_eq!(
            canonical_path("/lib64/ld-linux-x86-64.so.2"),
            "/usr/lib64/ld-linux-x86-64.so.2"
        );
        assert_eq!(canonical_path("/sbin"), "/sbin");
        assert_eq!(canonical_path("/usr/share/x"), "/usr/share/x");
        assert_eq!(canonical_path("/binx/y"), "/binx/y");
        assert_eq!(canonical_path("/opt/bin/x"), "/opt/bin/x");
        assert_eq!(
            parse_md5sums(&format!("{MD5_A}  bin/ls"))[0].0,
            "/usr/bin/ls"
        );
        for path in [
            "bin/ls",
            "/bin/ls",
            "bin",
            "sbin/x",
            "usr/bin/x",
            "binx/y",
            "//bin/x",
            "lib64/ld.so",
            "",
        ] {
            let slashed = if path.starts_with('/') {
                path.to_owned()
            } else {
                format!("/{path}")
            };
            assert_eq!(absolute(path), canonical_path(&slashed), "{path:?}");
        }
        assert_eq!(package_from_file_stem("libc6:amd64"), "libc6");
        assert_eq!(package_from_file_stem("coreutils"), "coreutils");
    }

    #[test]
    fn fixture_database_claims() {
        let root = tempfile::tempdir().unwrap();
        let info = root.path().join("info");
        std::fs::create_dir(&info).unwrap();
        std::fs::write(
            info.join("coreutils.md5sums"),
            format!("{MD5_A}  bin/ls\n{MD5_B}  usr/bin/shared\n"),
        )
        .unwrap();
        std::fs::write(
            info.join("coreutils.list"),
            "/.\n/bin\n/bin/ls\n/usr/bin/shared\n",
        )
        .unwrap();
        std::fs::write(
            info.join("other:amd64.md5sums"),
            format!("{MD5_A}  usr/bin/shared\n"),
        )
        .unwrap();
        std::fs::write(info.join("my-ls.md5sums"), format!("{MD5_B}  usr/bin/ls\n")).unwrap();
        std::fs::write(info.join("nodigest.list"), "/usr/bin/undigested\n").unwrap();
        std::fs::write(
            root.path().join("diversions"),
            "/usr/bin/ls\n/usr/bin/ls.distrib\nmy-ls\n/etc/motd\n/etc/motd.orig\n:\n",
        )
        .unwrap();
        std::fs::write(
            root.path().join("status"),
            format!(
                "Package: base-files\nConffiles:\n /etc/motd {MD5_A}\n /etc/motd.orig {MD5_B}\n"
            ),
        )
        .unwrap();
        let db = DpkgDatabase::new(root.path());
        let packages = |path: &str| -> Vec<String> {
            db.claims(path).into_iter().map(|c| c.package).collect()
        };
        // The diverting package owns the path it diverted…
        assert_eq!(packages("/usr/bin/ls"), ["my-ls"]);
        assert_eq!(packages("/bin/ls"), ["my-ls"]);
        // …and coreutils' file (recorded as /bin/ls) lives at the diverted name,
        // found through the merged-/usr alias.
        let claims = db.claims("/usr/bin/ls.distrib");
        assert_eq!(claims.len(), 1);
        assert_eq!(claims[0].package, "coreutils");
        assert_eq!(claims[0].digest, unhex(MD5_A).map(ExpectedDigest::Md5));
        // Several owners.
        let mut shared = packages("/usr/bin/shared");
        shared.sort();
        assert_eq!(shared, ["coreutils", "other"]);
        // A local diversion: nobody's file is at /etc/motd; /etc/motd.orig is the
        // conffile of base-files.
        assert!(packages("/etc/motd").is_empty());
        assert_eq!(packages("/etc/motd.orig"), ["base-files"]);
        // Listed without a digest.
        let claims = db.claims("/usr/bin/undigested");
        assert_eq!(claims.len(), 1);
        assert_eq!(
            (claims[0].package.as_str(), claims[0].digest),
            ("nodigest", None)
        );
        assert!(db.claims("/tmp/nothing").is_empty());
        // A missing database owns nothing.
        assert!(DpkgDatabase::new(root.path().join("absent"))
            .claims("/bin/ls")
            .is_empty());
    }
}
