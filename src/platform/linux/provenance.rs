//! Package provenance: which installed package claims a file and what digest it
//! recorded, and the verdict that follows from hashing the file. Two sources
//! implement it: dpkg (`dpkg.rs`, MD5) and rpm (`rpm.rs`, SHA-256 from the rpmdb's
//! headers).

use crate::model::{CodeIdentity, Trust};
use crate::platform::trust::{FileDigests, HashError};

/// A digest a package database recorded for a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedDigest {
    /// dpkg `md5sums` and `Conffiles:`; rpm headers without `FILEDIGESTALGO`.
    Md5([u8; 16]),
    /// rpm `FILEDIGESTS` with `FILEDIGESTALGO` 8.
    Sha256([u8; 32]),
}

impl ExpectedDigest {
    fn matches(&self, digests: &FileDigests) -> bool {
        match self {
            ExpectedDigest::Md5(expected) => digests
                .md5
                .as_deref()
                .is_some_and(|md5| md5 == crate::util::hex::hex(expected)),
            ExpectedDigest::Sha256(expected) => digests.sha256 == crate::util::hex::hex(expected),
        }
    }

    pub fn needs_md5(&self) -> bool {
        matches!(self, ExpectedDigest::Md5(_))
    }
}

/// One package's claim on a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub package: String,
    /// `None` when the package owns the path but recorded no digest for it.
    pub digest: Option<ExpectedDigest>,
}

/// A package database that can say who installed a file.
pub trait ProvenanceSource: Send + Sync {
    /// `dpkg` or `rpm`: the `authority` column.
    fn authority(&self) -> &'static str;
    /// Every package claim on `path` (absolute; aliases such as merged-/usr forms
    /// and diversions are the source's business). Empty when no package owns it.
    fn claims(&self, path: &str) -> Vec<Claim>;
}

/// The verdict for a file given the claims on it and the result of hashing it.
/// `replaced` is true for a running executable deleted or replaced after exec, whose
/// bytes may legitimately predate the installed package (an upgrade without restart).
pub fn judge(
    claims: &[Claim],
    hashed: Result<FileDigests, HashError>,
    authority: &str,
    replaced: bool,
) -> CodeIdentity {
    let mut identity = CodeIdentity {
        notarized: -1,
        platform_binary: -1,
        ..Default::default()
    };
    let digests = match hashed {
        Ok(d) => {
            identity.sha256 = d.sha256.clone();
            Some(d)
        }
        Err(e) => {
            identity.error = e.to_string();
            None
        }
    };
    let Some(first) = claims.first() else {
        identity.trust = Trust::Unsigned;
        return identity;
    };
    identity.signed = true;
    identity.authority = authority.to_owned();
    identity.identifier = first.package.clone();
    let Some(digests) = digests else {
        identity.trust = Trust::Unknown;
        identity.error = format!(
            "cannot verify against package {}: {}",
            first.package, identity.error
        );
        return identity;
    };
    if let Some(matching) = claims
        .iter()
        .find(|c| c.digest.is_some_and(|d| d.matches(&digests)))
    {
        identity.trust = Trust::Package;
        identity.identifier = matching.package.clone();
        return identity;
    }
    match claims.iter().find(|c| c.digest.is_some()) {
        Some(differs) => {
            identity.identifier = differs.package.clone();
            if replaced {
                identity.trust = Trust::Unknown;
                identity.error = format!(
                    "executable was deleted or replaced after exec; its digest differs from package {}",
                    differs.package
                );
            } else {
                identity.trust = Trust::Invalid;
                identity.error = format!("digest differs from package {}", differs.package);
            }
        }
        None => {
            identity.trust = Trust::Unknown;
            identity.error = format!("owned by package {} but no digest recorded", first.package);
        }
    }
    identity
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digests(md5: &str) -> FileDigests {
        FileDigests {
            sha256: "ab".repeat(32),
            md5: Some(md5.into()),
            bytes: 3,
        }
    }

    fn md5_claim(package: &str, hex: &str) -> Claim {
        Claim {
            package: package.into(),
            digest: Some(ExpectedDigest::Md5(crate::util::hex::unhex(hex).unwrap())),
        }
    }

    const ABC: &str = "900150983cd24fb0d6963f7d28e17f72";
    const OTHER: &str = "d41d8cd98f00b204e9800998ecf8427e";

    #[test]
    fn verdicts() {
        let v = judge(
            &[md5_claim("coreutils", ABC)],
            Ok(digests(ABC)),
            "dpkg",
            false,
        );
        assert_eq!((v.trust, v.signed), (Trust::Package, true));
        assert_eq!(
            (v.identifier.as_str(), v.authority.as_str()),
            ("coreutils", "dpkg")
        );
        assert_eq!((v.notarized, v.platform_binary), (-1, -1));
        assert!(v.error.is_empty());

        let v = judge(
            &[md5_claim("fakepkg", OTHER)],
            Ok(digests(ABC)),
            "dpkg",
            false,
        );
        assert_eq!(v.trust, Trust::Invalid);
        assert_eq!(v.error, "digest differs from package fakepkg");
        assert_eq!(v.sha256, "ab".repeat(32));

        let v = judge(
            &[md5_claim("openssh-server", OTHER)],
            Ok(digests(ABC)),
            "dpkg",
            true,
        );
        assert_eq!(v.trust, Trust::Unknown);
        assert!(v.error.contains("replaced after exec"), "{}", v.error);

        // Several owners: any matching digest is enough.
        let v = judge(
            &[md5_claim("a", OTHER), md5_claim("b", ABC)],
            Ok(digests(ABC)),
            "dpkg",
            false,
        );
        assert_eq!((v.trust, v.identifier.as_str()), (Trust::Package, "b"));

        let owned_only = Claim {
            package: "base-files".into(),
            digest: None,
        };
        let v = judge(&[owned_only], Ok(digests(ABC)), "dpkg", false);
        assert_eq!(v.trust, Trust::Unknown);
        assert_eq!(
            v.error,
            "owned by package base-files but no digest recorded"
        );

        let v = judge(&[], Ok(digests(ABC)), "dpkg", false);
        assert_eq!((v.trust, v.signed), (Trust::Unsigned, false));
        assert!(v.authority.is_empty());

        let too_large = Err(HashError::TooLarge { size: 10, limit: 5 });
        let v = judge(&[], too_large, "dpkg", false);
        assert_eq!(v.trust, Trust::Unsigned);
        assert!(v.sha256.is_empty() && v.error.contains("max_hash_bytes"));
        let too_large = Err(HashError::TooLarge { size: 10, limit: 5 });
        let v = judge(&[md5_claim("x", ABC)], too_large, "dpkg", false);
        assert_eq!(v.trust, Trust::Unknown);
        assert!(
            v.error.contains("cannot verify against package x"),
            "{}",
            v.error
        );
    }
}
