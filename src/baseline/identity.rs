//! Validation of baseline keys: an identity in one of the formats
//! `subject::baseline_key` / `subject::subject_of` produce, a `protocol_name` the
//! socket table can produce, and a port (-1 = any).

use super::StoreError;
use crate::judge::classify::PROTOCOL_NAMES;
use crate::judge::script::StdinSource;

/// Longest identity accepted (paths included).
pub const MAX_IDENTITY_LEN: usize = 4096;

/// The key of a baseline entry, validated and normalised.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EntryKey {
    pub identity: String,
    pub protocol_name: String,
    pub remote_port: i64,
}

fn is_hex64(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Validates an identity; returns it normalised (hex digests lower-cased).
pub fn validate_identity(identity: &str) -> Result<String, StoreError> {
    validate_identity_depth(identity, 0)
}

fn validate_identity_depth(identity: &str, depth: u8) -> Result<String, StoreError> {
    const FORMATS: &str = "team:<TEAMID>:<signing id>, apple:<signing id>, package:<pkg>:</path>, sha256:<64 hex>, inline:<interpreter>:<64 hex>, path:</path>, module:<module>:<interpreter identity>, script:<64 hex>:<interpreter identity>, tainted:<identity>, stdin:<interpreter>:<stdin source>:<interpreter identity>";
    if identity.is_empty() {
        return Err(StoreError::Invalid(format!(
            "identity is empty; expected one of {FORMATS}"
        )));
    }
    if identity.len() > MAX_IDENTITY_LEN {
        return Err(StoreError::Invalid(format!(
            "identity is longer than {MAX_IDENTITY_LEN} bytes"
        )));
    }
    if identity.chars().any(char::is_control) {
        return Err(StoreError::Invalid(
            "identity contains control characters".into(),
        ));
    }
    crate::terminal::reject_bidi("identity", identity)
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    let bad = |why: &str| {
        Err(StoreError::Invalid(format!(
            "identity {identity:?}: {why}; expected one of {FORMATS}"
        )))
    };
    let Some((kind, rest)) = identity.split_once(':') else {
        return bad("no `kind:` prefix");
    };
    match kind {
        "team" => match rest.split_once(':') {
            Some((team, id))
                if !team.is_empty()
                    && team.bytes().all(|b| b.is_ascii_alphanumeric())
                    && !id.is_empty() =>
            {
                Ok(identity.to_owned())
            }
            _ => bad("team identities are team:<alphanumeric team id>:<signing id>"),
        },
        "apple" if !rest.is_empty() => Ok(identity.to_owned()),
        "apple" => bad("apple identities need a signing id"),
        "package" => match rest.split_once(':') {
            Some((pkg, path)) if !pkg.is_empty() && path.starts_with('/') => {
                Ok(identity.to_owned())
            }
            _ => bad("package identities are package:<package>:</absolute/path>"),
        },
        "sha256" if is_hex64(rest) => Ok(format!("sha256:{}", rest.to_ascii_lowercase())),
        "sha256" => bad("sha256 identities carry exactly 64 hex digits"),
        "inline" => match rest.rsplit_once(':') {
            Some((interpreter, digest)) if !interpreter.is_empty() && is_hex64(digest) => Ok(
                format!("inline:{interpreter}:{}", digest.to_ascii_lowercase()),
            ),
            _ => bad("inline identities are inline:<interpreter>:<64 hex>"),
        },
        "path" if rest.starts_with('/') => Ok(identity.to_owned()),
        "path" => bad("path identities carry an absolute path"),
        "module" if depth == 0 => match rest.split_once(':') {
            Some((name, inner)) if !name.is_empty() => {
                let inner = validate_identity_depth(inner, 1).map_err(|e| {
                    StoreError::Invalid(format!(
                        "identity {identity:?}: its interpreter part is invalid: {e}"
                    ))
                })?;
                Ok(format!("{kind}:{name}:{inner}"))
            }
            _ => bad("module identities are module:<name>:<interpreter identity>"),
        },
        "script" if depth <= 1 => match rest.split_once(':') {
            Some((digest, inner)) if is_hex64(digest) => {
                let inner = validate_identity_depth(inner, depth + 1).map_err(|e| {
                    StoreError::Invalid(format!(
                        "identity {identity:?}: its interpreter part is invalid: {e}"
                    ))
                })?;
                Ok(format!("script:{}:{inner}", digest.to_ascii_lowercase()))
            }
            _ => bad("script identities are script:<64 hex>:<interpreter identity>"),
        },
        "tainted" if depth == 0 => {
            let inner = validate_identity_depth(rest, 1).map_err(|e| {
                StoreError::Invalid(format!(
                    "identity {identity:?}: its code part is invalid: {e}"
                ))
            })?;
            if ["path:", "stdin:", "module:", "tainted:"]
                .iter()
                .any(|k| inner.starts_with(k))
            {
                return bad("tainted identities wrap the identity of one piece of code (package:, apple:, team:, sha256:, inline:, script:)");
            }
            Ok(format!("tainted:{inner}"))
        }
        "stdin" if depth == 0 => {
            let mut parts = rest.splitn(3, ':');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(name), Some(source), Some(inner))
                    if !name.is_empty() && StdinSource::NAMES.contains(&source) =>
                {
                    let inner = validate_identity_depth(inner, 1).map_err(|e| {
                        StoreError::Invalid(format!(
                            "identity {identity:?}: its interpreter part is invalid: {e}"
                        ))
                    })?;
                    Ok(format!("stdin:{name}:{source}:{inner}"))
                }
                _ => bad(&format!(
                    "stdin identities are stdin:<interpreter>:<{}>:<interpreter identity>",
                    StdinSource::NAMES.join("|")
                )),
            }
        }
        _ => bad("unknown kind"),
    }
}

/// Longest note accepted.
pub const MAX_NOTE_LEN: usize = 4096;

/// Validates a note: bounded, and free of bidi controls (they would disguise it,
/// or the entry it sits beside, on an operator's screen).
pub fn validate_note(note: &str) -> Result<(), StoreError> {
    if note.len() > MAX_NOTE_LEN {
        return Err(StoreError::Invalid(format!(
            "note is longer than {MAX_NOTE_LEN} bytes"
        )));
    }
    crate::terminal::reject_bidi("note", note).map_err(|e| StoreError::Invalid(e.to_string()))
}

/// What an approval of a broad identity would cover, or `None` for an identity
/// that names one piece of code. `stdin:`, `module:` and `path:` identities name a
/// class (every program piped into bash, any code at a path): the sampler never
/// learns them, and approving one needs `--force` (never through osquery).
pub fn broad_identity_scope(identity: &str) -> Option<String> {
    let (kind, rest) = identity.split_once(':')?;
    match kind {
        "stdin" => {
            let mut parts = rest.splitn(3, ':');
            let interpreter = parts.next().unwrap_or("?");
            let source = parts.next().unwrap_or("?");
            let runner = parts.next().unwrap_or("?");
            Some(format!(
                "every program {interpreter} ({runner}) reads from a {source} on stdin: the code itself is never seen"
            ))
        }
        "module" => {
            let (module, runner) = rest.split_once(':').unwrap_or((rest, "?"));
            Some(format!(
                "any code {runner} runs as module {module}, wherever it comes from"
            ))
        }
        "path" => Some(format!(
            "any content at {rest}: it could not be hashed, so changing the file keeps the approval"
        )),
        "tainted" => Some(format!(
            "every run of {rest} with other code in its process (loaded by options or variables, a program loader, an untrusted interpreter), or from a file that another user could change after it was read: that code is never identified"
        )),
        "script" => {
            let (_, runner) = rest.split_once(':').unwrap_or((rest, "?"));
            broad_identity_scope(runner)
                .map(|scope| format!("code run by an interpreter that is itself a class: {scope}"))
        }
        _ => None,
    }
}

/// Validates a `protocol_name`.
pub fn validate_protocol(name: &str) -> Result<(), StoreError> {
    if PROTOCOL_NAMES.contains(&name) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "protocol_name {name:?} is not one of {}",
            PROTOCOL_NAMES.join(", ")
        )))
    }
}

/// Validates a port: -1 (any) to 65535.
pub fn validate_port(port: i64) -> Result<(), StoreError> {
    if (-1..=65535).contains(&port) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "remote_port {port} is out of range; use -1 (any port) or 0..65535"
        )))
    }
}

/// Validates a whole key; returns it normalised.
pub fn validate_entry(
    identity: &str,
    protocol_name: &str,
    port: i64,
) -> Result<EntryKey, StoreError> {
    let identity = validate_identity(identity)?;
    validate_protocol(protocol_name)?;
    validate_port(port)?;
    Ok(EntryKey {
        identity,
        protocol_name: protocol_name.to_owned(),
        remote_port: port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::subject::baseline_key;
    use crate::model::{CodeIdentity, Trust};

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn accepts_every_format_subject_produces() {
        let mut id = CodeIdentity {
            trust: Trust::Package,
            identifier: "chrony".into(),
            sha256: HEX.into(),
            ..Default::default()
        };
        for trust in [
            Trust::Package,
            Trust::Apple,
            Trust::DeveloperId,
            Trust::Unsigned,
        ] {
            id.trust = trust;
            id.team_identifier = "ABCDE12345".into();
            let key = baseline_key(&id, "/usr/sbin/chronyd");
            assert_eq!(
                validate_identity(&key).as_deref(),
                Ok(key.as_str()),
                "{key}"
            );
        }
        id.sha256.clear();
        id.trust = Trust::Unsigned;
        let key = baseline_key(&id, "/tmp/x");
        assert_eq!(key, "path:/tmp/x");
        assert!(validate_identity(&key).is_ok());
        for ok in [
            format!("inline:python3:{HEX}"),
            format!("module:http.server:sha256:{HEX}"),
            "stdin:bash:pipe:package:bash:/usr/bin/bash".to_owned(),
        ] {
            assert!(validate_identity(&ok).is_ok(), "{ok}");
        }
        assert_eq!(
            validate_identity(&format!("sha256:{}", HEX.to_uppercase())).unwrap(),
            format!("sha256:{HEX}")
        );
    }

    #[test]
    fn rejects_malformed_identities_with_reasons() {
        for bad in [
            "",
            "nocolon",
            "sha256:abc",
            "team::id",
            "team:ABC",
            "package:pkg:relative",
            "path:relative",
            "inline:python:xyz",
            "module:m:module:n:sha256:00",
            "stdin:bash:package:bash:/usr/bin/bash",
            "stdin:bash:typed:package:bash:/usr/bin/bash",
            "bogus:thing",
            "apple:",
            "apple:a\nb",
        ] {
            let err = validate_identity(bad).unwrap_err();
            assert!(!err.to_string().is_empty(), "{bad}");
        }
        assert!(validate_protocol("tcp")
            .unwrap_err()
            .to_string()
            .contains("udp"));
        assert!(validate_port(65536).is_err() && validate_port(-2).is_err());
        assert!(validate_port(-1).is_ok() && validate_port(65535).is_ok());
    }

    #[test]
    fn broad_identities_say_what_an_approval_covers() {
        let stdin = broad_identity_scope("stdin:bash:pipe:package:bash:/usr/bin/bash").unwrap();
        assert!(
            stdin.contains("every program bash") && stdin.contains("pipe"),
            "{stdin}"
        );
        let module = broad_identity_scope(&format!("module:x:sha256:{HEX}")).unwrap();
        assert!(module.contains("module x"), "{module}");
        let path = broad_identity_scope("path:/tmp/fifo").unwrap();
        assert!(path.contains("/tmp/fifo"), "{path}");
        for narrow in [
            format!("sha256:{HEX}"),
            format!("inline:bash:{HEX}"),
            "package:bash:/usr/bin/bash".into(),
            "team:ABCDE12345:io.x".into(),
            "apple:com.apple.x".into(),
        ] {
            assert_eq!(broad_identity_scope(&narrow), None, "{narrow}");
        }
    }
}
