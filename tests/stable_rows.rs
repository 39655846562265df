//! Differential pack queries report each thing once: run the pack's differential
//! (non-snapshot) queries over a real unsigned process holding a real UDP socket,
//! then again 25 hours later (the clock shifted, the sampler having run all along),
//! and the rows are identical. A real change (a new process, a new socket) does
//! give a new row.

mod common;

use an1256::baseline::Baseline;
use an1256::cli::packs::pack_queries;
use an1256::platform::{self, HostConfig};
use an1256::settings::Settings;
use an1256::sql::Engine;
use an1256::util::time::shift_this_thread;
use common::{attacker, is_root, skip};
use rusqlite::types::Value as SqlValue;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One row, columns by name (ordered, so rows compare and sort).
type Row = BTreeMap<String, String>;
/// Rows by query name.
type Results = BTreeMap<String, Vec<Row>>;

const DAY_AND_AN_HOUR: i64 = 25 * 3600;
/// The sampler's period as the replay below runs it (under the 180 s appearance gap).
const SAMPLER_STEP: i64 = 170;

fn display(value: &SqlValue) -> String {
    match value {
        SqlValue::Null => "NULL".into(),
        SqlValue::Integer(i) => i.to_string(),
        SqlValue::Real(f) => f.to_string(),
        SqlValue::Text(t) => t.clone(),
        SqlValue::Blob(b) => format!("{b:?}"),
    }
}

/// Every differential query of the pack, its rows about `identity` only.
fn differential_rows(engine: &Engine, identity: &str) -> Results {
    let mut results = Results::new();
    for (name, query) in pack_queries().expect("pack") {
        if query.snapshot {
            continue;
        }
        let (columns, rows) = engine
            .query(&query.query)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut rows: Vec<Row> = rows
            .iter()
            .map(|r| columns.iter().cloned().zip(r.iter().map(display)).collect())
            .filter(|r: &Row| r.get("subject_identity").map(String::as_str) == Some(identity))
            .collect();
        rows.sort();
        results.insert(name, rows);
    }
    assert!(
        results.len() >= 2,
        "the pack has differential queries: {results:?}"
    );
    results
}

/// What osquery would log as `added` going from `before` to `after`.
fn added(before: &Results, after: &Results) -> Vec<(String, Row)> {
    let mut out = Vec::new();
    for (name, rows) in after {
        for row in rows {
            if !before.get(name).is_some_and(|b| b.contains(row)) {
                out.push((name.clone(), row.clone()));
            }
        }
    }
    out
}

fn pid_of(row: &Row) -> i64 {
    row["pid"].parse().expect("pid")
}

#[test]
fn differential_rows_are_identical_a_day_later_and_change_only_with_the_socket() {
    if !is_root() {
        skip("stable rows", "needs root to run the attacker's process");
        return;
    }
    let user = attacker("stablerows");
    let binary = user.unsigned_python_copy("updater", "an1256-stable-rows");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = Settings::with_db(dir.path().join("store/an1256.db"));
    settings.policy_path = dir.path().join("policy.json");
    settings.learning_secs = 0;
    let host: Arc<dyn platform::Host> = Arc::from(platform::native(HostConfig::default()));
    let baseline = Arc::new(Baseline::new(settings, host.clone()));
    let engine = Engine::new(an1256::all_tables(host, baseline.clone())).expect("embedded engine");

    let mut first = user.udp_holder(&binary, 4789);
    let (_, rows) = engine
        .query(&format!(
            "SELECT subject_identity FROM process_code_signature WHERE pid = {}",
            first.pid
        ))
        .expect("identity");
    let identity = display(&rows[0][0]);
    assert!(identity.starts_with("sha256:"), "{identity}");

    // Before the sampler's scheduled pass (the hit query's policy lookup may run
    // one of its own).
    let unsampled = differential_rows(&engine, &identity);
    assert_eq!(unsampled["an1256_hits"].len(), 1, "{unsampled:?}");

    let pass = baseline.sample().expect("sampler pass");
    let now = an1256::util::time::unix_now();
    let at_start = differential_rows(&engine, &identity);
    assert_eq!(at_start["an1256_hits_recent"].len(), 1, "{at_start:?}");
    assert_eq!(
        at_start["an1256_hits"], unsampled["an1256_hits"],
        "the sampler's first sighting changes no live row"
    );
    let hit = &at_start["an1256_hits"][0];
    assert_eq!(pid_of(hit), i64::from(first.pid));
    assert_eq!(hit["first_seen_before_start"], "NULL");
    eprintln!("hit at start: severity {}", hit["severity"]);

    // The sampler keeps seeing the process for 25 hours (its passes replayed every
    // 170 s into the store), then a real pass and the queries run 25 h later.
    let store = baseline.store().expect("store");
    let mut at = now;
    while at < now + DAY_AND_AN_HOUR {
        at += SAMPLER_STEP;
        store
            .record_pass(&pass.observations, false, at, baseline.limits())
            .expect("replayed pass");
    }
    let later = shift_this_thread(DAY_AND_AN_HOUR);
    baseline.sample().expect("sampler pass a day later");
    let a_day_later = differential_rows(&engine, &identity);
    assert_eq!(
        a_day_later,
        at_start,
        "differential rows changed while the socket lived: {:?}",
        added(&at_start, &a_day_later)
    );

    // Another process of the same binary takes over the socket's key and the
    // first one exits: the observation's appearance goes on (same recent row), and
    // the new process is a new live hit.
    let mut second = user.udp_holder(&binary, 4789);
    first.kill();
    drop(later);
    let _later = shift_this_thread(DAY_AND_AN_HOUR + 15);
    baseline
        .sample()
        .expect("sampler pass with the second process");
    let handed_over = differential_rows(&engine, &identity);
    assert_eq!(
        handed_over["an1256_hits_recent"], at_start["an1256_hits_recent"],
        "same subject, protocol and port within one appearance: no new row"
    );
    let new_rows = added(&a_day_later, &handed_over);
    assert_eq!(new_rows.len(), 1, "{new_rows:?}");
    assert_eq!(new_rows[0].0, "an1256_hits");
    assert_eq!(pid_of(&new_rows[0].1), i64::from(second.pid));

    // A new socket (another remote port) is new in both queries.
    let third = user.udp_holder(&binary, 4790);
    baseline.sample().expect("sampler pass with the new socket");
    let new_socket = differential_rows(&engine, &identity);
    let mut new_rows = added(&handed_over, &new_socket);
    new_rows.sort();
    assert_eq!(new_rows.len(), 2, "{new_rows:?}");
    assert_eq!(new_rows[0].0, "an1256_hits");
    assert_eq!(pid_of(&new_rows[0].1), i64::from(third.pid));
    assert_eq!(new_rows[1].0, "an1256_hits_recent");
    assert_eq!(new_rows[1].1["remote_port"], "4790");
    second.kill();
}
