//! One glob matcher for every dialect an1256 reads: iterative, two pointers, no
//! recursion, bounded. A hostile user writes some of these patterns (ssh_config
//! `Host` lines) and some of the subjects (ssh destinations in argv), so:
//!
//! - runs of `*` collapse, and a mismatch backtracks only to the last star that
//!   can still grow (the classic two-pointer scheme): cost O(|pattern| + |subject|
//!   × longest literal run between stars), never exponential, no stack;
//! - patterns and subjects longer than [`MAX_PATTERN_BYTES`] / [`MAX_SUBJECT_BYTES`]
//!   are not matched, and a match that would need more than
//!   `STEPS_PER_BYTE × (|pattern| + |subject|)` steps is abandoned: both answer
//!   `None` (undecided), and each caller maps `None` to the answer that is safe
//!   for it (see the callers' comments).

/// Longest pattern matched (10,000 `*` fit).
pub const MAX_PATTERN_BYTES: usize = 16 * 1024;
/// Longest subject matched (paths, host names, program names are far shorter).
pub const MAX_SUBJECT_BYTES: usize = 16 * 1024;
/// Steps allowed per byte of pattern and subject. Real patterns need a few; only
/// long literal runs retried at many positions come near.
const STEPS_PER_BYTE: usize = 32;
/// Steps any match may take, however short its inputs.
const MIN_STEPS: usize = 4096;

/// What the wildcards mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite `GLOB` as the pack's SQL uses it: `*` is any run (`/` included) and
    /// the only wildcard (the pattern lists use no `?` or `[`, and a test keeps it
    /// so, so the SQL and this agree); case-sensitive.
    SqliteStar,
    /// Baseline policy: `*` any run within one path segment (no `/`), `**` any run
    /// across segments, `?` one byte other than `/`; case-sensitive.
    Path,
    /// OpenSSH `match_pattern`: `*` any run, `?` exactly one byte; ASCII
    /// case-insensitive.
    Ssh,
}

/// Whether `subject` matches `pattern`: `Some(answer)`, or `None` when an input is
/// over its bound or the match would cost more than its budget.
pub fn matches(dialect: Dialect, pattern: &str, subject: &str) -> Option<bool> {
    run(dialect, pattern.as_bytes(), subject.as_bytes()).0
}

/// The match and the steps it took (tests assert the cost without a clock).
fn run(dialect: Dialect, p: &[u8], t: &[u8]) -> (Option<bool>, usize) {
    if p.len() > MAX_PATTERN_BYTES || t.len() > MAX_SUBJECT_BYTES {
        return (None, 0);
    }
    let budget = STEPS_PER_BYTE
        .saturating_mul(p.len() + t.len())
        .max(MIN_STEPS);
    let same = |a: u8, b: u8| match dialect {
        Dialect::Ssh => a.eq_ignore_ascii_case(&b),
        _ => a == b,
    };
    let (mut pi, mut ti) = (0usize, 0usize);
    // Resume points (pattern index after the star, subject index the star's run
    // ends at): the last star that may cross `/` (every star, outside Path; `**`
    // in Path), and the last Path `*` after it, which may not.
    let mut any_star: Option<(usize, usize)> = None;
    let mut segment_star: Option<(usize, usize)> = None;
    let mut steps = 0usize;
    loop {
        steps += 1;
        if steps > budget {
            return (None, steps);
        }
        if let Some(&c) = p.get(pi) {
            if c == b'*' {
                let mut end = pi;
                while p.get(end) == Some(&b'*') {
                    end += 1;
                }
                steps += end - pi - 1;
                if dialect == Dialect::Path && end - pi == 1 {
                    segment_star = Some((end, ti));
                } else {
                    any_star = Some((end, ti));
                    segment_star = None;
                }
                pi = end;
                continue;
            }
            if let Some(&s) = t.get(ti) {
                let one = match (dialect, c) {
                    (Dialect::Ssh, b'?') => true,
                    (Dialect::Path, b'?') => s != b'/',
                    _ => same(c, s),
                };
                if one {
                    pi += 1;
                    ti += 1;
                    continue;
                }
            }
        } else if ti == t.len() {
            return (Some(true), steps);
        }
        // Mismatch: grow the newest star that can grow by one byte and retry.
        if let Some((resume, end)) = segment_star {
            if t.get(end).is_some_and(|&s| s != b'/') {
                segment_star = Some((resume, end + 1));
                (pi, ti) = (resume, end + 1);
                continue;
            }
            segment_star = None;
        }
        match any_star {
            Some((resume, end)) if end < t.len() => {
                any_star = Some((resume, end + 1));
                (pi, ti) = (resume, end + 1);
            }
            _ => return (Some(false), steps),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Dialect::*;

    fn yes(d: Dialect, p: &str, t: &str) -> bool {
        matches(d, p, t).expect("decided")
    }

    /// The matchers this one replaced, kept as the specification (recursive and
    /// exponential: small inputs only).
    fn reference(d: Dialect, p: &[u8], t: &[u8]) -> bool {
        match d {
            SqliteStar => {
                let (p, t) = (String::from_utf8_lossy(p), String::from_utf8_lossy(t));
                let mut parts = p.split('*');
                let first = parts.next().unwrap_or("");
                let Some(mut rest) = t.strip_prefix(first) else {
                    return false;
                };
                let parts: Vec<&str> = parts.collect();
                for (i, part) in parts.iter().enumerate() {
                    if i + 1 == parts.len() {
                        return rest.ends_with(part);
                    }
                    match rest.find(part) {
                        Some(at) => rest = &rest[at + part.len()..],
                        None => return false,
                    }
                }
                rest.is_empty()
            }
            Path => match p.first() {
                None => t.is_empty(),
                Some(b'*') if p.get(1) == Some(&b'*') => {
                    (0..=t.len()).any(|i| reference(d, &p[2..], &t[i..]))
                }
                Some(b'*') => {
                    for i in 0..=t.len() {
                        if reference(d, &p[1..], &t[i..]) {
                            return true;
                        }
                        if t.get(i) == Some(&b'/') {
                            break;
                        }
                    }
                    false
                }
                Some(b'?') => {
                    t.first().is_some_and(|&c| c != b'/') && reference(d, &p[1..], &t[1..])
                }
                Some(&c) => t.first() == Some(&c) && reference(d, &p[1..], &t[1..]),
            },
            Ssh => match p.split_first() {
                None => t.is_empty(),
                Some((b'*', rest)) => (0..=t.len()).any(|i| reference(d, rest, &t[i..])),
                Some((b'?', rest)) => !t.is_empty() && reference(d, rest, &t[1..]),
                Some((c, rest)) => {
                    t.first().is_some_and(|x| x.eq_ignore_ascii_case(c))
                        && reference(d, rest, &t[1..])
                }
            },
        }
    }

    /// Every string of length 0..=max over `alphabet`.
    fn strings(alphabet: &[u8], max: usize) -> Vec<Vec<u8>> {
        let mut all = vec![Vec::new()];
        let mut last = vec![Vec::new()];
        for _ in 0..max {
            let next: Vec<Vec<u8>> = last
                .iter()
                .flat_map(|s| {
                    alphabet.iter().map(move |&c| {
                        let mut s = s.clone();
                        s.push(c);
                        s
                    })
                })
                .collect();
            all.extend(next.iter().cloned());
            last = next;
        }
        all
    }

    #[test]
    fn agrees_with_the_replaced_matchers_on_every_small_input() {
        let subjects = strings(b"a/b", 6);
        for (dialect, alphabet) in [
            (SqliteStar, &b"a/*"[..]),
            (Path, &b"a/*?"[..]),
            (Ssh, &b"aB*?"[..]),
        ] {
            let subjects = if dialect == Ssh {
                strings(b"ab.", 6)
            } else {
                subjects.clone()
            };
            for pattern in strings(alphabet, 5) {
                for subject in &subjects {
                    let (got, _) = run(dialect, &pattern, subject);
                    let want = reference(dialect, &pattern, subject);
                    assert_eq!(
                        got,
                        Some(want),
                        "{dialect:?} {:?} vs {:?}",
                        String::from_utf8_lossy(&pattern),
                        String::from_utf8_lossy(subject)
                    );
                }
            }
        }
    }

    #[test]
    fn sqlite_star_dialect_as_the_severity_globs_use_it() {
        assert!(yes(SqliteStar, "/tmp/*", "/tmp/x/y"));
        assert!(yes(
            SqliteStar,
            "/home/*/Downloads/*",
            "/home/al/Downloads/a"
        ));
        assert!(yes(
            SqliteStar,
            "/home/*/Downloads/*",
            "/home/a/b/Downloads/c"
        ));
        assert!(!yes(SqliteStar, "/home/*/Downloads/*", "/home/al/Down"));
        assert!(!yes(SqliteStar, "/tmp/*", "/TMP/x"));
        // `?` is no wildcard here (the lists have none).
        assert!(!yes(SqliteStar, "/tmp/?", "/tmp/x"));
        assert!(yes(SqliteStar, "", "") && !yes(SqliteStar, "", "x"));
    }

    #[test]
    fn path_dialect_as_the_policy_uses_it() {
        assert!(yes(Path, "/usr/sbin/*", "/usr/sbin/chronyd"));
        assert!(!yes(Path, "/usr/sbin/*", "/usr/sbin/x/y"));
        assert!(yes(Path, "/opt/**/bin/*", "/opt/a/b/c/bin/tool"));
        assert!(!yes(Path, "/opt/**/bin/*", "/opt/a/bin/x/tool"));
        assert!(yes(Path, "python3.?", "python3.1"));
        assert!(!yes(Path, "a?b", "a/b"));
        assert!(yes(Path, "com.tailscale.*", "com.tailscale.ipn.macsys"));
        assert!(!yes(Path, "a", "ab"));
        assert!(yes(Path, "**", ""));
        assert!(!yes(Path, "/USR/*", "/usr/x"));
    }

    #[test]
    fn ssh_dialect_as_ssh_config_uses_it() {
        assert!(yes(Ssh, "*", "anything"));
        assert!(yes(Ssh, "bastion-?", "BASTION-1"));
        assert!(!yes(Ssh, "bastion-?", "bastion-12"));
        assert!(yes(Ssh, "*.corp", "a.b.corp"));
        assert!(!yes(Ssh, "*.corp", "corp"));
        // `*` crosses `/` here (Include file names never hold one).
        assert!(yes(Ssh, "a*b", "a/b"));
    }

    #[test]
    fn over_the_bounds_is_undecided() {
        let long = "a".repeat(MAX_SUBJECT_BYTES + 1);
        assert_eq!(matches(Ssh, "*", &long), None);
        assert_eq!(matches(Path, &"*".repeat(MAX_PATTERN_BYTES + 1), "a"), None);
        let fits = "a".repeat(MAX_SUBJECT_BYTES);
        assert_eq!(matches(Ssh, "*", &fits), Some(true));
    }

    #[test]
    fn ten_thousand_stars_against_ten_thousand_bytes_take_linear_steps() {
        let subject = "a".repeat(10_000);
        let stars = "*".repeat(10_000);
        let star_pairs = "*?".repeat(5_000);
        let star_runs = "*a".repeat(5_000);
        for dialect in [SqliteStar, Path, Ssh] {
            for (pattern, want) in [
                (format!("{stars}x"), false),
                (format!("{stars}a"), true),
                (stars.clone(), true),
                (format!("{star_runs}x"), false),
                (star_runs.clone(), true),
            ] {
                let (got, steps) = run(dialect, pattern.as_bytes(), subject.as_bytes());
                assert_eq!(got, Some(want), "{dialect:?} {}…", &pattern[..8]);
                assert!(
                    steps <= 3 * (pattern.len() + subject.len()),
                    "{dialect:?} {}…: {steps} steps",
                    &pattern[..8]
                );
            }
        }
        for dialect in [Path, Ssh] {
            let (got, steps) = run(
                dialect,
                format!("{star_pairs}x").as_bytes(),
                subject.as_bytes(),
            );
            assert_eq!(got, Some(false));
            assert!(steps <= 3 * (20_001), "{dialect:?}: {steps} steps");
        }
    }

    #[test]
    fn a_long_literal_retried_everywhere_runs_out_of_budget_instead_of_time() {
        // `*aaaa…ab` against `aaaa…a`: each of 10,000 positions compares ~5,000
        // bytes (5e7 steps) before failing. The budget stops it.
        let pattern = format!("*{}b", "a".repeat(5_000));
        let subject = "a".repeat(10_000);
        for dialect in [SqliteStar, Path, Ssh] {
            let (got, steps) = run(dialect, pattern.as_bytes(), subject.as_bytes());
            assert_eq!(got, None);
            assert!(steps <= STEPS_PER_BYTE * 15_002 + 1, "{steps}");
        }
    }
}
