//! RPM provenance: which installed rpm package owns a file and the digest its
//! header recorded, read from the rpmdb's SQLite backend (`rpmdb.sqlite`, the
//! default since rpm 4.16: Fedora 33+, RHEL 9, Amazon Linux 2023, CentOS Stream 9).
//!
//! Lookups are lazy and per file: the `Basenames` index table gives the packages
//! (and file index) that list a base name; each package's header blob is parsed
//! (bounded, cached for a few packages) and the file's directory compared. Nothing
//! is loaded up front, so a host with 300k rpm-owned files costs nothing until a
//! file is judged, and the trust cache keeps each verdict.
//!
//! The Berkeley DB (`Packages`, RHEL ≤ 8) and ndb (`Packages.db`, SUSE) backends
//! are not read: files they own are judged `unsigned`, and a warning says so once.
//!
//! Header blob layout (rpm's `headerImport`): big-endian `il` (index entries) and
//! `dl` (data bytes), `il` 16-byte entries `{tag, type, offset, count}`, then the
//! data store. File digests are hex strings (`FILEDIGESTS`) in the algorithm of
//! `FILEDIGESTALGO` (8 = SHA-256; absent = MD5, the legacy default).

use super::provenance::{Claim, ExpectedDigest, ProvenanceSource};
use crate::platform::HostError;
use crate::util::hex::unhex;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

const TAG_NAME: u32 = 1000;
const TAG_FILEDIGESTS: u32 = 1035;
const TAG_DIRINDEXES: u32 = 1116;
const TAG_BASENAMES: u32 = 1117;
const TAG_DIRNAMES: u32 = 1118;
const TAG_FILEDIGESTALGO: u32 = 5011;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

/// PGP hash algorithm ids rpm uses for file digests.
const DIGEST_MD5: i32 = 1;
const DIGEST_SHA256: i32 = 8;

/// Largest header blob parsed (the biggest real packages are a few MiB).
const MAX_HEADER_BYTES: i64 = 64 * 1024 * 1024;
/// Most index entries in one header (real headers have under 100).
const MAX_INDEX_ENTRIES: usize = 65_536;
/// Most packages considered for one base name.
const MAX_CANDIDATES: usize = 256;
/// Parsed headers kept between lookups (files of one package come together).
const HEADER_CACHE: usize = 32;
/// How long a lookup waits while rpm holds the database locked.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// A parsed header: the blob and its index.
#[derive(Debug)]
pub struct Header {
    blob: Vec<u8>,
    /// tag -> (type, offset into the data store, count)
    index: HashMap<u32, (u32, usize, usize)>,
    data_start: usize,
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

impl Header {
    /// Parses a header blob as stored in the rpmdb (no lead, no magic).
    pub fn parse(blob: Vec<u8>) -> Result<Header, HostError> {
        let malformed = |why: String| HostError::Malformed {
            what: "rpm header".into(),
            why,
        };
        let short = || malformed("shorter than 8 bytes".into());
        let il = be32(&blob, 0).ok_or_else(short)? as usize;
        let dl = be32(&blob, 4).ok_or_else(short)? as usize;
        if il > MAX_INDEX_ENTRIES {
            return Err(malformed(format!("claims {il} index entries")));
        }
        let data_start = 8 + il * 16;
        if data_start
            .checked_add(dl)
            .is_none_or(|end| end > blob.len())
        {
            return Err(malformed(format!(
                "claims {il} entries and {dl} data bytes but is {} bytes",
                blob.len()
            )));
        }
        let mut index = HashMap::with_capacity(il);
        for i in 0..il {
            let at = 8 + i * 16;
            let field = |k: usize| {
                be32(&blob, at + 4 * k).ok_or_else(|| malformed("truncated index entry".into()))
            };
            let (tag, kind, offset, count) = (field(0)?, field(1)?, field(2)?, field(3)?);
            if offset as usize > dl {
                return Err(malformed(format!("tag {tag} points past the data store")));
            }
            index.insert(tag, (kind, offset as usize, count as usize));
        }
        Ok(Header {
            blob,
            index,
            data_start,
        })
    }

    fn data(&self) -> &[u8] {
        self.blob.get(self.data_start..).unwrap_or_default()
    }

    /// `count` NUL-terminated strings from the entry of `tag`.
    pub fn strings(&self, tag: u32) -> Option<Vec<&str>> {
        let &(kind, offset, count) = self.index.get(&tag)?;
        if !matches!(kind, TYPE_STRING | TYPE_STRING_ARRAY | TYPE_I18NSTRING) {
            return None;
        }
        let mut rest = self.data().get(offset..)?;
        let mut out = Vec::with_capacity(count.min(rest.len()));
        for _ in 0..count {
            let end = rest.iter().position(|&b| b == 0)?;
            out.push(std::str::from_utf8(&rest[..end]).ok()?);
            rest = &rest[end + 1..];
        }
        Some(out)
    }

    /// The first string of `tag` (NAME, a STRING).
    pub fn string(&self, tag: u32) -> Option<&str> {
        self.strings(tag)?.first().copied()
    }

    /// The INT32 array of `tag`.
    pub fn int32s(&self, tag: u32) -> Option<Vec<i32>> {
        let &(kind, offset, count) = self.index.get(&tag)?;
        if kind != TYPE_INT32 {
            return None;
        }
        let data = self.data();
        (0..count)
            .map(|i| be32(data, offset + 4 * i).map(|v| v as i32))
            .collect()
    }

    /// The package's claim on file number `idx` if that file is `path`.
    pub fn claim(&self, idx: usize, path: &str) -> Option<Claim> {
        let base = *self.strings(TAG_BASENAMES)?.get(idx)?;
        let dir_index = *self.int32s(TAG_DIRINDEXES)?.get(idx)?;
        let dir = *self
            .strings(TAG_DIRNAMES)?
            .get(usize::try_from(dir_index).ok()?)?;
        if path.strip_prefix(dir)? != base {
            return None;
        }
        let algorithm = self
            .int32s(TAG_FILEDIGESTALGO)
            .and_then(|v| v.first().copied())
            .unwrap_or(DIGEST_MD5);
        let digest = self
            .strings(TAG_FILEDIGESTS)
            .and_then(|all| all.get(idx).copied())
            .and_then(|hex| expected_digest(algorithm, hex));
        Some(Claim {
            package: self.string(TAG_NAME)?.to_owned(),
            digest,
        })
    }
}

/// A recorded digest we can check; `None` for ghosts (empty) and algorithms
/// an1256 does not compute.
fn expected_digest(algorithm: i32, hex: &str) -> Option<ExpectedDigest> {
    match algorithm {
        DIGEST_SHA256 => Some(ExpectedDigest::Sha256(unhex(hex)?)),
        DIGEST_MD5 => Some(ExpectedDigest::Md5(unhex(hex)?)),
        _ => None,
    }
}

/// The rpm database under a root (`/var/lib/rpm`), opened on first use.
pub struct RpmDatabase {
    root: PathBuf,
    connection: OnceLock<Option<Mutex<Connection>>>,
    headers: Mutex<HashMap<i64, Arc<Header>>>,
    /// A failing database is reported once, not for every file judged.
    warned: AtomicBool,
}

impl RpmDatabase {
    pub fn new(root: PathBuf) -> Self {
        RpmDatabase {
            root,
            connection: OnceLock::new(),
            headers: Mutex::new(HashMap::new()),
            warned: AtomicBool::new(false),
        }
    }

    /// The database under `root` when it holds one an1256 reads. A legacy backend
    /// is logged (its files will be judged unsigned); an empty or missing
    /// directory (Debian ships an empty `/var/lib/rpm`) is silently no source.
    pub fn at(root: &Path) -> Option<RpmDatabase> {
        if root.join(SQLITE_FILE).exists() {
            return Some(RpmDatabase::new(root.to_owned()));
        }
        if let Some(why) = legacy_backend(root) {
            log::warn!("{why}: rpm-owned files are judged unsigned");
        }
        None
    }

    fn connection(&self) -> Option<&Mutex<Connection>> {
        self.connection
            .get_or_init(|| match open(&self.root) {
                Ok(conn) => Some(Mutex::new(conn)),
                Err(e) => {
                    log::warn!("{e}: rpm-owned files are judged unsigned");
                    None
                }
            })
            .as_ref()
    }

    fn header(&self, conn: &Connection, hnum: i64) -> Result<Option<Arc<Header>>, HostError> {
        let mut cache = self.headers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = cache.get(&hnum) {
            return Ok(Some(found.clone()));
        }
        let blob: Option<Vec<u8>> = conn
            .query_row(
                "SELECT blob FROM Packages WHERE hnum = ?1 AND length(blob) <= ?2",
                rusqlite::params![hnum, MAX_HEADER_BYTES],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.unreadable(e))?;
        let Some(blob) = blob else {
            return Ok(None);
        };
        let header = Arc::new(Header::parse(blob).map_err(|e| HostError::Malformed {
            what: format!("package {hnum} in the rpm database {}", self.root.display()),
            why: e.to_string(),
        })?);
        if cache.len() >= HEADER_CACHE {
            cache.clear();
        }
        cache.insert(hnum, header.clone());
        Ok(Some(header))
    }

    /// A failed read of this database.
    fn unreadable(&self, e: rusqlite::Error) -> HostError {
        HostError::unreadable(format!("the rpm database {}", self.root.display()), e)
    }

    fn lookup(&self, path: &str) -> Result<Vec<Claim>, HostError> {
        let Some((_, base)) = path.rsplit_once('/') else {
            return Ok(Vec::new());
        };
        let Some(conn) = self.connection() else {
            return Ok(Vec::new());
        };
        let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
        let candidates: Vec<(i64, i64)> = {
            let mut statement = conn
                .prepare_cached("SELECT hnum, idx FROM Basenames WHERE key = ?1 LIMIT ?2")
                .map_err(|e| self.unreadable(e))?;
            let rows = statement
                .query_map(rusqlite::params![base, MAX_CANDIDATES as i64], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .map_err(|e| self.unreadable(e))?;
            rows.collect::<Result<_, _>>()
                .map_err(|e| self.unreadable(e))?
        };
        let mut claims = Vec::new();
        for (hnum, idx) in candidates {
            let Some(header) = self.header(&conn, hnum)? else {
                continue;
            };
            if let Some(claim) = usize::try_from(idx)
                .ok()
                .and_then(|idx| header.claim(idx, path))
            {
                claims.push(claim);
            }
        }
        Ok(claims)
    }
}

/// The SQLite backend's file name.
const SQLITE_FILE: &str = "rpmdb.sqlite";

/// Why the database under `root` cannot be read, when it uses a backend other than
/// SQLite.
fn legacy_backend(root: &Path) -> Option<String> {
    [("Packages", "Berkeley DB"), ("Packages.db", "ndb")]
        .into_iter()
        .find(|(file, _)| root.join(file).exists())
        .map(|(_, backend)| {
            format!(
                "the rpm database at {} uses the {backend} backend, which an1256 does not read \
                 (only {SQLITE_FILE}, rpm 4.16+)",
                root.display()
            )
        })
}

/// Opens `rpmdb.sqlite` read-only, or says why the database cannot be read.
fn open(root: &Path) -> Result<Connection, HostError> {
    let file = root.join(SQLITE_FILE);
    if !file.exists() {
        return Err(HostError::Other(legacy_backend(root).unwrap_or_else(
            || format!("no {SQLITE_FILE} in {}", root.display()),
        )));
    }
    let conn = Connection::open_with_flags(
        &file,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| HostError::unreadable(format!("the rpm database {}", file.display()), e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| HostError::unreadable(format!("the rpm database {}", file.display()), e))?;
    Ok(conn)
}

impl ProvenanceSource for RpmDatabase {
    fn authority(&self) -> &'static str {
        "rpm"
    }

    fn claims(&self, path: &str) -> Vec<Claim> {
        self.lookup(path).unwrap_or_else(|e| {
            if !self.warned.swap(true, Ordering::Relaxed) {
                log::warn!(
                    "rpm database {}: {e}; files are judged without it (first: {path})",
                    self.root.display()
                );
            }
            Vec::new()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header blob from `(tag, type, payload, count)` entries.
    fn blob(entries: &[(u32, u32, Vec<u8>, u32)]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        for (tag, kind, payload, count) in entries {
            while *kind == TYPE_INT32 && data.len() % 4 != 0 {
                data.push(0);
            }
            for v in [*tag, *kind, data.len() as u32, *count] {
                index.extend_from_slice(&v.to_be_bytes());
            }
            data.extend_from_slice(payload);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(data);
        out
    }

    fn strings(values: &[&str]) -> Vec<u8> {
        values
            .iter()
            .flat_map(|s| [s.as_bytes(), b"\0"].concat())
            .collect()
    }

    fn ints(values: &[i32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_be_bytes()).collect()
    }

    const SHA: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn demo(algorithm: Option<i32>) -> Header {
        let mut entries = vec![
            (TAG_NAME, TYPE_STRING, strings(&["demo"]), 1),
            (TAG_FILEDIGESTS, TYPE_STRING_ARRAY, strings(&[SHA, ""]), 2),
            (TAG_DIRINDEXES, TYPE_INT32, ints(&[1, 0]), 2),
            (
                TAG_BASENAMES,
                TYPE_STRING_ARRAY,
                strings(&["tool", "ghost"]),
                2,
            ),
            (
                TAG_DIRNAMES,
                TYPE_STRING_ARRAY,
                strings(&["/etc/", "/usr/bin/"]),
                2,
            ),
        ];
        if let Some(a) = algorithm {
            entries.push((TAG_FILEDIGESTALGO, TYPE_INT32, ints(&[a]), 1));
        }
        Header::parse(blob(&entries)).unwrap()
    }

    #[test]
    fn claims_by_directory_and_base_name() {
        let h = demo(Some(DIGEST_SHA256));
        let claim = h.claim(0, "/usr/bin/tool").unwrap();
        assert_eq!(claim.package, "demo");
        assert_eq!(
            claim.digest,
            Some(ExpectedDigest::Sha256(unhex(SHA).unwrap()))
        );
        assert_eq!(h.claim(0, "/usr/sbin/tool"), None, "another directory");
        assert_eq!(h.claim(0, "/usr/bin/toolx"), None);
        // A ghost file is owned but has no digest.
        let ghost = h.claim(1, "/etc/ghost").unwrap();
        assert_eq!(ghost.digest, None);
        assert_eq!(h.claim(5, "/usr/bin/tool"), None, "no such file index");
    }

    #[test]
    fn digest_algorithms() {
        // No FILEDIGESTALGO: MD5 (32 hex digits), so a SHA-256 string does not parse.
        assert_eq!(demo(None).claim(0, "/usr/bin/tool").unwrap().digest, None);
        assert_eq!(
            expected_digest(DIGEST_MD5, "900150983cd24fb0d6963f7d28e17f72"),
            Some(ExpectedDigest::Md5(
                unhex("900150983cd24fb0d6963f7d28e17f72").unwrap()
            ))
        );
        // SHA-512 (10) is not computed: owned, digest unknown.
        assert_eq!(
            demo(Some(10)).claim(0, "/usr/bin/tool").unwrap().digest,
            None
        );
        assert_eq!(expected_digest(DIGEST_SHA256, "zz"), None);
    }

    #[test]
    fn malformed_headers_are_errors_not_panics() {
        let good = blob(&[(TAG_NAME, TYPE_STRING, strings(&["demo"]), 1)]);
        for cut in 0..good.len() {
            if let Ok(h) = Header::parse(good[..cut].to_vec()) {
                // A cut inside the data store leaves the string unterminated.
                assert_eq!(h.string(TAG_NAME), None, "cut {cut}");
            }
        }
        let mut huge = good.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Header::parse(huge).is_err());
        let mut past = good.clone();
        past[16..20].copy_from_slice(&1000u32.to_be_bytes()); // offset of entry 0
        assert!(Header::parse(past).is_err());
        // A count larger than the strings present.
        let lying = blob(&[(TAG_BASENAMES, TYPE_STRING_ARRAY, strings(&["a"]), 5)]);
        assert_eq!(Header::parse(lying).unwrap().strings(TAG_BASENAMES), None);
        // A wrong type is not read as another.
        let typed = blob(&[(TAG_DIRINDEXES, TYPE_STRING, strings(&["x"]), 1)]);
        assert_eq!(Header::parse(typed).unwrap().int32s(TAG_DIRINDEXES), None);
    }

    #[test]
    fn legacy_backends_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Packages"), b"").unwrap();
        let err = open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("Berkeley DB"), "{err}");
        assert!(RpmDatabase::at(dir.path()).is_none());
        let empty = tempfile::tempdir().unwrap();
        assert!(open(empty.path())
            .unwrap_err()
            .to_string()
            .contains("no rpmdb.sqlite"));
        assert!(
            RpmDatabase::at(empty.path()).is_none(),
            "Debian's empty /var/lib/rpm"
        );
        let db = RpmDatabase::new(empty.path().to_owned());
        assert!(db.claims("/usr/bin/tool").is_empty());
        // Not a database at all: no claims, no panic.
        std::fs::write(empty.path().join(SQLITE_FILE), b"not sqlite").unwrap();
        let db = RpmDatabase::at(empty.path()).unwrap();
        assert!(db.claims("/usr/bin/tool").is_empty());
    }
}
