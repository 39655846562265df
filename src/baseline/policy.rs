//! The policy allowlist: organisation-wide rules (JSON, see `packs/POLICY.md`)
//! that say which subjects may use which non-standard protocols. Rules are not
//! stored; they are matched against the identity a query asks about and appear in
//! `an1256_baseline` with `source = policy`. The file is re-read when its mtime
//! or size changes (checked at most every `RELOAD_CHECK`); a malformed file keeps
//! the last good rules and its error is shown in `an1256_info`.

use super::StoreError;
use crate::judge::classify::PROTOCOL_NAMES;
use crate::platform::{Host, HostError};
use crate::util::glob::{self, Dialect};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How often the policy file's mtime is looked at.
pub const RELOAD_CHECK: Duration = Duration::from_secs(3);
/// Largest policy file read.
const MAX_POLICY_BYTES: u64 = 4 * 1024 * 1024;

/// The default rules shipped with an1256 (also `packs/policy-default.json`).
pub const BUILTIN_POLICY: &str = include_str!("../../packs/policy-default.json");
/// Name the built-in rules are reported under.
pub const BUILTIN_NAME: &str = "builtin:policy-default.json";

/// The policy file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Format version; only 1 exists.
    pub version: u32,
    #[serde(default)]
    pub description: String,
    pub rules: Vec<Rule>,
}

/// One rule. Every matcher given must match (AND); at least one is required.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    /// One line: why this is benign.
    pub reason: String,
    /// `linux`, `darwin`; empty = every platform.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Developer ID / App Store team (matches `team:<TEAM>:…`).
    pub team_id: Option<String>,
    /// Signing identifier glob (matches `team:…:<id>` and `apple:<id>` only: only
    /// verified signatures carry a signing id in their identity).
    pub signing_id: Option<String>,
    /// Package name glob (matches `package:<pkg>:…`, i.e. digest-verified files).
    pub package: Option<String>,
    /// Exact SHA-256 of the binary or script file.
    pub sha256: Option<String>,
    /// Glob over the executable path of binary subjects (and the path inside
    /// `package:`/`path:` identities). Use only for root-owned directories.
    pub path: Option<String>,
    /// Interpreter name glob (`python*`, `bash`…), for script subjects.
    pub interpreter: Option<String>,
    /// Glob over the script path, for script subjects.
    pub script: Option<String>,
    /// Protocol names; empty = all.
    #[serde(default)]
    pub protocols: Vec<String>,
    /// Remote ports; empty = any (-1).
    #[serde(default)]
    pub ports: Vec<i64>,
}

/// What is known about a subject identity: parsed from the identity itself, and
/// (for `sha256:` and other path-less identities) from what the sampler saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubjectFacts {
    pub identity: String,
    /// `binary` or `script`, when known.
    pub kind: String,
    /// Subject paths (executable for binaries, script for scripts), as seen or as
    /// the identity names them. Not proof of where the code is: see `verified_paths`.
    pub paths: Vec<String>,
    pub interpreters: Vec<String>,
    /// Executable paths verified in the latest sampler pass: a process with this
    /// identity ran in the scanner's mount namespace from the very file (device,
    /// inode) at that path. Only these satisfy `path` rules: a path seen in argv or
    /// `/proc/<pid>/exe` can be faked with a bind mount in a user+mount namespace.
    pub verified_paths: Vec<String>,
}

/// A rule that matched: one virtual baseline row per (protocol, port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRow {
    pub identity: String,
    pub protocol_name: String,
    pub remote_port: i64,
    pub rule: String,
    pub reason: String,
    /// Index of the rule in the loaded set (stable while the policy is unchanged).
    pub rule_index: usize,
}

/// A policy glob ([`Dialect::Path`]: `*` within one path segment, `**` across
/// segments, `?` one character but `/`). A match approves traffic, so an
/// undecided match (inputs over the glob's bounds) is no match.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    glob::matches(Dialect::Path, pattern, text).unwrap_or(false)
}

impl SubjectFacts {
    /// The facts an identity carries by itself.
    pub fn from_identity(identity: &str) -> SubjectFacts {
        let mut facts = SubjectFacts {
            identity: identity.to_owned(),
            ..Default::default()
        };
        if let Some(rest) = identity.strip_prefix("package:") {
            if let Some((_, path)) = rest.split_once(':') {
                facts.paths.push(path.to_owned());
            }
        } else if let Some(path) = identity.strip_prefix("path:") {
            facts.paths.push(path.to_owned());
        } else if let Some(rest) = identity
            .strip_prefix("inline:")
            .or_else(|| identity.strip_prefix("stdin:"))
        {
            facts.kind = "script".into();
            if let Some((interpreter, _)) = rest.split_once(':') {
                facts.interpreters.push(interpreter.to_owned());
            }
        } else if identity.starts_with("module:") {
            facts.kind = "script".into();
        }
        facts
    }

    /// Adds an executable path verified for this identity in the current pass.
    pub fn add_verified(&mut self, path: &str) {
        if self.kind.is_empty() {
            self.kind = "binary".into();
        }
        if !path.is_empty()
            && !self.verified_paths.iter().any(|p| p == path)
            && self.verified_paths.len() < 16
        {
            self.verified_paths.push(path.to_owned());
        }
    }

    /// Adds a sighting (from an observation).
    pub fn add(&mut self, kind: &str, path: &str, interpreter: &str) {
        if self.kind.is_empty() && !kind.is_empty() {
            self.kind = kind.to_owned();
        }
        if !path.is_empty() && !self.paths.iter().any(|p| p == path) && self.paths.len() < 16 {
            self.paths.push(path.to_owned());
        }
        if !interpreter.is_empty()
            && !self.interpreters.iter().any(|i| i == interpreter)
            && self.interpreters.len() < 8
        {
            self.interpreters.push(interpreter.to_owned());
        }
    }
}

/// What is wrong with one rule (named in the message).
struct RuleProblem(String);

impl Rule {
    fn check(&self) -> Result<(), RuleProblem> {
        if self.name.trim().is_empty() {
            return Err(RuleProblem("a rule has no name".into()));
        }
        if self.reason.trim().is_empty() {
            return Err(RuleProblem(format!("rule {:?} has no reason", self.name)));
        }
        if self.team_id.is_none()
            && self.signing_id.is_none()
            && self.package.is_none()
            && self.sha256.is_none()
            && self.path.is_none()
            && self.interpreter.is_none()
            && self.script.is_none()
        {
            return Err(RuleProblem(format!(
                "rule {:?} matches nothing: give team_id, signing_id, package, sha256, path, interpreter or script",
                self.name
            )));
        }
        if self.script.is_some() && self.interpreter.is_none() {
            return Err(RuleProblem(format!(
                "rule {:?}: script needs interpreter",
                self.name
            )));
        }
        if let Some(sha) = &self.sha256 {
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(RuleProblem(format!(
                    "rule {:?}: sha256 must be 64 hex digits",
                    self.name
                )));
            }
        }
        for p in &self.protocols {
            if !PROTOCOL_NAMES.contains(&p.as_str()) {
                return Err(RuleProblem(format!(
                    "rule {:?}: protocol {p:?} is not one of {}",
                    self.name,
                    PROTOCOL_NAMES.join(", ")
                )));
            }
        }
        for port in &self.ports {
            if !(-1..=65535).contains(port) {
                return Err(RuleProblem(format!(
                    "rule {:?}: port {port} out of range",
                    self.name
                )));
            }
        }
        for p in &self.platforms {
            if !["linux", "darwin"].contains(&p.as_str()) {
                return Err(RuleProblem(format!(
                    "rule {:?}: platform {p:?} is not linux or darwin",
                    self.name
                )));
            }
        }
        Ok(())
    }

    fn applies_to(&self, platform: &str) -> bool {
        self.platforms.is_empty() || self.platforms.iter().any(|p| p == platform)
    }

    /// Whether the rule's subject matchers accept these facts.
    pub fn matches(&self, facts: &SubjectFacts) -> bool {
        let id = facts.identity.as_str();
        if let Some(team) = &self.team_id {
            let ok = id
                .strip_prefix("team:")
                .and_then(|r| r.split_once(':'))
                .is_some_and(|(t, _)| t == team);
            if !ok {
                return false;
            }
        }
        if let Some(pattern) = &self.signing_id {
            let signing = id.strip_prefix("apple:").or_else(|| {
                id.strip_prefix("team:")
                    .and_then(|r| r.split_once(':'))
                    .map(|(_, s)| s)
            });
            if !signing.is_some_and(|s| glob_match(pattern, s)) {
                return false;
            }
        }
        if let Some(pattern) = &self.package {
            let pkg = id
                .strip_prefix("package:")
                .and_then(|r| r.split_once(':'))
                .map(|(p, _)| p);
            if !pkg.is_some_and(|p| glob_match(pattern, p)) {
                return false;
            }
        }
        if let Some(sha) = &self.sha256 {
            if id.strip_prefix("sha256:") != Some(sha.to_ascii_lowercase().as_str()) {
                return false;
            }
        }
        if let Some(pattern) = &self.path {
            if facts.kind == "script"
                || !facts.verified_paths.iter().any(|p| glob_match(pattern, p))
            {
                return false;
            }
        }
        if let Some(pattern) = &self.interpreter {
            if facts.kind != "script" || !facts.interpreters.iter().any(|i| glob_match(pattern, i))
            {
                return false;
            }
        }
        if let Some(pattern) = &self.script {
            if !facts.paths.iter().any(|p| glob_match(pattern, p)) {
                return false;
            }
        }
        true
    }

    /// Whether matching needs sightings beyond what the identity carries.
    pub fn needs_sightings(&self) -> bool {
        self.path.is_some() || self.interpreter.is_some() || self.script.is_some()
    }

    fn rows(&self, identity: &str, index: usize, out: &mut Vec<PolicyRow>) {
        let protocols: Vec<&str> = if self.protocols.is_empty() {
            PROTOCOL_NAMES.to_vec()
        } else {
            self.protocols.iter().map(String::as_str).collect()
        };
        let ports: &[i64] = if self.ports.is_empty() {
            &[-1]
        } else {
            &self.ports
        };
        for p in protocols {
            for &port in ports {
                out.push(PolicyRow {
                    identity: identity.to_owned(),
                    protocol_name: p.to_owned(),
                    remote_port: port,
                    rule: self.name.clone(),
                    reason: self.reason.clone(),
                    rule_index: index,
                });
            }
        }
    }
}

/// Parses and checks a policy document; `source` names it in errors.
/// Rules for other platforms are parsed and checked too (one file serves a mixed
/// fleet); `Policy` keeps only those for `platform`.
pub fn parse_policy(text: &str, source: &str) -> Result<Vec<Rule>, StoreError> {
    let invalid = |why: String| StoreError::Policy {
        file: source.to_owned(),
        why,
    };
    let file: PolicyFile = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
    if file.version != 1 {
        return Err(invalid(format!(
            "version {} is not supported (this an1256 reads version 1)",
            file.version
        )));
    }
    for rule in &file.rules {
        rule.check().map_err(|e| invalid(e.0))?;
    }
    Ok(file.rules)
}

/// The loaded rule set.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// Policy rows for one identity.
    pub fn rows_for(&self, facts: &SubjectFacts) -> Vec<PolicyRow> {
        let mut out = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.matches(facts) {
                rule.rows(&facts.identity, i, &mut out);
            }
        }
        out
    }

    pub fn needs_sightings(&self) -> bool {
        self.rules.iter().any(Rule::needs_sightings)
    }
}

/// Status for `an1256_info`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyStatus {
    pub path: String,
    pub error: String,
    pub rules: usize,
    pub loaded_at: i64,
}

struct PolicyState {
    rules: Arc<RuleSet>,
    /// (mtime, size) of the file last read (good or bad); None = absent.
    stamp: Option<(SystemTime, u64)>,
    checked: Option<Instant>,
    error: String,
    loaded_at: i64,
}

/// The live policy: built-in rules plus the policy file, hot-reloaded.
pub struct Policy {
    /// Reads the file: regular files only, bounded, never blocking on a FIFO.
    host: Arc<dyn Host>,
    path: PathBuf,
    explicit: bool,
    builtin: Vec<Rule>,
    platform: &'static str,
    state: Mutex<PolicyState>,
}

impl Policy {
    /// `explicit`: a missing file is reported as an error (it was configured).
    pub fn new(
        host: Arc<dyn Host>,
        path: PathBuf,
        explicit: bool,
        builtin: bool,
        platform: &'static str,
    ) -> Policy {
        let builtin = if builtin {
            // The shipped file is checked by a test; a failure here would be a build defect.
            parse_policy(BUILTIN_POLICY, BUILTIN_NAME).unwrap_or_else(|e| {
                log::error!("{e}");
                Vec::new()
            })
        } else {
            Vec::new()
        };
        let policy = Policy {
            host,
            path,
            explicit,
            builtin,
            platform,
            state: Mutex::new(PolicyState {
                rules: Arc::new(RuleSet::default()),
                stamp: None,
                checked: None,
                error: String::new(),
                loaded_at: 0,
            }),
        };
        policy.reload_if_changed(true);
        policy
    }

    /// The current rules (re-reading the file if it changed).
    pub fn rules(&self) -> Arc<RuleSet> {
        self.reload_if_changed(false);
        self.lock().rules.clone()
    }

    pub fn status(&self) -> PolicyStatus {
        self.reload_if_changed(false);
        let state = self.lock();
        let mut path = self.path.display().to_string();
        if !self.builtin.is_empty() {
            path = format!("{BUILTIN_NAME},{path}");
        }
        PolicyStatus {
            path,
            error: state.error.clone(),
            rules: state.rules.rules.len(),
            loaded_at: state.loaded_at,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PolicyState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reload_if_changed(&self, force: bool) {
        let mut state = self.lock();
        if !force && state.checked.is_some_and(|t| t.elapsed() < RELOAD_CHECK) {
            return;
        }
        state.checked = Some(Instant::now());
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        if !force && stamp == state.stamp {
            return;
        }
        state.stamp = stamp;
        let file_rules = match stamp {
            None if self.explicit => Err(StoreError::Policy {
                file: self.path.display().to_string(),
                why: "the file does not exist (fix policy_path in the config file)".into(),
            }),
            None => Ok(Vec::new()),
            Some(_) => read_bounded(self.host.as_ref(), &self.path)
                .and_then(|text| parse_policy(&text, &self.path.display().to_string())),
        };
        match file_rules {
            Ok(rules) => {
                let mut all: Vec<Rule> = self.builtin.clone();
                all.extend(rules);
                all.retain(|r| r.applies_to(self.platform));
                state.rules = Arc::new(RuleSet { rules: all });
                state.error.clear();
                state.loaded_at = super::store::unix_now();
                log::info!(
                    "policy loaded: {} rules ({})",
                    state.rules.rules.len(),
                    self.path.display()
                );
            }
            Err(e) => {
                log::error!("{e}; keeping the last good policy rules");
                if state.loaded_at == 0 {
                    // Never loaded: at least the built-in rules apply.
                    let mut all = self.builtin.clone();
                    all.retain(|r| r.applies_to(self.platform));
                    state.rules = Arc::new(RuleSet { rules: all });
                }
                state.error = e.to_string();
            }
        }
    }
}

/// The policy file's text, through the host's regular-file reader: a FIFO, device
/// or socket at the path (or behind a symlink there) is an error, never a hang.
fn read_bounded(host: &dyn Host, path: &Path) -> Result<String, StoreError> {
    let fail = |why: String| StoreError::Policy {
        file: path.display().to_string(),
        why,
    };
    let Some(name) = path.to_str() else {
        return Err(fail("the path is not UTF-8".into()));
    };
    let bytes = host
        .read_config_file(name, MAX_POLICY_BYTES + 1)
        .map_err(|e| match e {
            HostError::Unreadable { reason, .. } => fail(format!("cannot read it: {reason}")),
            other => fail(format!("cannot read it: {other}")),
        })?;
    if bytes.len() as u64 > MAX_POLICY_BYTES {
        return Err(fail(format!("larger than {MAX_POLICY_BYTES} bytes")));
    }
    String::from_utf8(bytes).map_err(|_| fail("cannot read it: not UTF-8 text".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn globs() {
        assert!(glob_match("/usr/sbin/*", "/usr/sbin/chronyd"));
        assert!(!glob_match("/usr/sbin/*", "/usr/sbin/x/y"));
        assert!(glob_match(
            "/opt/datadog-agent/**",
            "/opt/datadog-agent/embedded/bin/agent"
        ));
        assert!(glob_match("python3.?", "python3.1"));
        assert!(glob_match("com.tailscale.*", "com.tailscale.ipn.macsys"));
        assert!(!glob_match("a", "ab"));
        assert!(glob_match("**", ""));
        // Over the glob's bounds: never approved.
        let long = format!("/opt/{}", "a".repeat(crate::util::glob::MAX_SUBJECT_BYTES));
        assert!(!glob_match("/opt/**", &long));
    }

    #[test]
    fn builtin_policy_parses_and_every_rule_has_a_reason() {
        let rules = parse_policy(BUILTIN_POLICY, BUILTIN_NAME).unwrap();
        assert!(rules.len() >= 10);
        assert!(rules.iter().all(|r| r.reason.len() > 10));
    }

    fn rule(json: &str) -> Rule {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn matching_by_each_matcher() {
        let team = rule(
            r#"{"name":"t","reason":"r","team_id":"ABCDE12345","protocols":["udp"],"ports":[41641]}"#,
        );
        assert!(team.matches(&SubjectFacts::from_identity("team:ABCDE12345:io.x")));
        assert!(!team.matches(&SubjectFacts::from_identity("team:OTHER:io.x")));
        let signing = rule(r#"{"name":"s","reason":"r","signing_id":"com.apple.mDNSResponder"}"#);
        assert!(signing.matches(&SubjectFacts::from_identity(
            "apple:com.apple.mDNSResponder"
        )));
        assert!(!signing.matches(&SubjectFacts::from_identity(&format!("sha256:{HEX}"))));
        let pkg = rule(r#"{"name":"p","reason":"r","package":"chrony"}"#);
        assert!(pkg.matches(&SubjectFacts::from_identity(
            "package:chrony:/usr/sbin/chronyd"
        )));
        let sha = rule(&format!(
            r#"{{"name":"h","reason":"r","sha256":"{}"}}"#,
            HEX.to_uppercase()
        ));
        assert!(sha.matches(&SubjectFacts::from_identity(&format!("sha256:{HEX}"))));
        let path = rule(r#"{"name":"x","reason":"r","path":"/opt/agent/bin/*"}"#);
        let mut facts = SubjectFacts::from_identity(&format!("sha256:{HEX}"));
        assert!(!path.matches(&facts), "sha256 identity alone has no path");
        facts.add("binary", "/opt/agent/bin/pinger", "");
        assert!(!path.matches(&facts), "a path seen is not a path verified");
        let package = SubjectFacts::from_identity("package:agent:/opt/agent/bin/pinger");
        assert!(!path.matches(&package), "nor is a path inside the identity");
        facts.add_verified("/opt/agent/bin/pinger");
        assert!(path.matches(&facts));
        let script =
            rule(r#"{"name":"y","reason":"r","interpreter":"python*","script":"/opt/mon/*.py"}"#);
        let mut sf = SubjectFacts::from_identity(&format!("sha256:{HEX}"));
        sf.add("script", "/opt/mon/check.py", "python3");
        assert!(script.matches(&sf));
        assert!(!path.matches(&sf), "path rules judge binaries, not scripts");
        let rows = RuleSet { rules: vec![team] }
            .rows_for(&SubjectFacts::from_identity("team:ABCDE12345:io.x"));
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].protocol_name.as_str(), rows[0].remote_port),
            ("udp", 41641)
        );
    }

    fn fake_host() -> Arc<dyn Host> {
        Arc::new(crate::platform::FakeHost::default())
    }

    #[test]
    fn malformed_file_keeps_last_good_rules_and_reports() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.json");
        std::fs::write(
            &path,
            format!(
                r#"{{"version":1,"rules":[{{"name":"a","reason":"because","sha256":"{HEX}"}}]}}"#
            ),
        )
        .unwrap();
        let policy = Policy::new(fake_host(), path.clone(), true, false, "linux");
        assert_eq!(policy.rules().rules.len(), 1);
        assert_eq!(policy.status().error, "");
        std::fs::write(&path, "{ not json, and longer than before").unwrap();
        policy.reload_if_changed(true);
        assert_eq!(policy.rules().rules.len(), 1, "last good rules kept");
        assert!(
            policy.status().error.contains("policy"),
            "{:?}",
            policy.status()
        );
        std::fs::write(
            &path,
            r#"{"version":1,"rules":[{"name":"b","reason":"","package":"x"}]}"#,
        )
        .unwrap();
        policy.reload_if_changed(true);
        assert!(policy.status().error.contains("no reason"));
        std::fs::write(&path, r#"{"version":1,"rules":[]}"#).unwrap();
        policy.reload_if_changed(true);
        assert_eq!(
            (policy.rules().rules.len(), policy.status().error.as_str()),
            (0, "")
        );
        let missing = Policy::new(
            fake_host(),
            dir.path().join("nope.json"),
            true,
            true,
            "linux",
        );
        assert!(missing.status().error.contains("does not exist"));
        assert!(
            !missing.rules().rules.is_empty(),
            "built-in rules still apply"
        );
    }
}
