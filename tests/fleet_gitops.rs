//! The Fleet GitOps files in `packs/fleet/` checked against the schema Fleet's own
//! parser enforces, and against the osquery pack they are generated from.
//!
//! The schema is derived from Fleet's source (fleetdm/fleet):
//! - `pkg/spec/gitops.go` (as mirrored at getvictor/fleet-mirror
//!   394d71dfca16ae266ed8976ad24e34510bf7ed36): `GitOpsFromFile` rejects any top-level
//!   key outside `topKeys` ("unknown top-level field"); `parseReports`, `parsePolicies`
//!   and `parseLabels` run `validateRawKeys` / `validateYAMLKeys` over `[]Query`,
//!   `[]Policy` and `[]Label`, so an unknown key in a list item is an error too;
//!   `validateReport` requires `name` and `query`, names ASCII; duplicate names fail.
//!   `Query` = `fleet.BaseItem` (`path`, `paths`) + `fleet.QuerySpec`; `Policy` =
//!   `BaseItem` + `fleet.PolicySpec` + `run_script`, `install_software`,
//!   `webhooks_and_tickets_enabled`; `Label` = `BaseItem` + `fleet.LabelSpec`.
//! - `pkg/spec/gitops_deprecations.go` (9125d5d0ce58e5b6999411687c82da0f48f6d2ef):
//!   `queries` -> `reports`, `team_settings` -> `settings` (old names warn; both at
//!   once fail).
//! - `server/fleet/queries.go` (8672f690c2350c6fd50bd77d5fa96b704b64db0d): `QuerySpec`
//!   fields and `verifyLogging` / `verifyQueryPlatforms` (the allowed values);
//!   `labels_include_any` / `labels_include_all` on reports: fleetdm/fleet#26575 and
//!   #44534. `server/fleet/policies.go` (cb553e05ecd24e439b2b6bc919985e3f706aa90a):
//!   `PolicySpec`; `labels_include_any` / `labels_exclude_any` on policies.
//!
//! YAML is read by PyYAML (YAML 1.1, like the go-yaml v2 under Fleet's ghodss/yaml).

use serde_json::{Map, Value as Json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `topKeys` in `GitOpsFromFile`.
const TOP_KEYS: &[&str] = &[
    "name",
    "settings",
    "org_settings",
    "agent_options",
    "controls",
    "policies",
    "reports",
    "software",
    "labels",
];
/// `fleet.BaseItem`: an item may be a reference to a file instead.
const BASE_ITEM: &[&str] = &["path", "paths"];
/// `fleet.QuerySpec` (json tags) and the report label targets.
const REPORT_KEYS: &[&str] = &[
    "name",
    "description",
    "query",
    "team",
    "interval",
    "observer_can_run",
    "platform",
    "min_osquery_version",
    "automations_enabled",
    "logging",
    "discard_data",
    "labels_include_any",
    "labels_include_all",
];
/// `fleet.PolicySpec` + `GitOpsPolicySpec`'s own keys.
const POLICY_KEYS: &[&str] = &[
    "name",
    "query",
    "description",
    "critical",
    "resolution",
    "team",
    "platform",
    "calendar_events_enabled",
    "software_title_id",
    "script_id",
    "labels_include_any",
    "labels_exclude_any",
    "run_script",
    "install_software",
    "webhooks_and_tickets_enabled",
];
/// `fleet.LabelSpec`.
const LABEL_KEYS: &[&str] = &[
    "name",
    "description",
    "query",
    "platform",
    "label_membership_type",
    "hosts",
    "host_vitals_criteria",
];
/// `verifyLogging`.
const LOGGING: &[&str] = &["snapshot", "differential", "differential_ignore_removals"];
/// `verifyQueryPlatforms` / `verifyPolicyPlatforms`.
const PLATFORMS: &[&str] = &["darwin", "linux", "windows", "chrome"];
/// The label every report targets (hosts with the extension registered).
const LABEL: &str = "an1256 extension loaded";

fn fleet_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packs/fleet")
}

/// Parses a YAML file with PyYAML into JSON.
fn yaml(path: &Path) -> Json {
    let python = ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .args(["-c", "import yaml"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("a python3 with PyYAML (Debian python3-yaml; scripts/install-test-deps)");
    let out = Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(path)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{} is not YAML: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python printed JSON")
}

/// Every problem Fleet's parser would report for one list file, as messages.
fn check_items(file: &str, items: &Json, allowed: &[&str], problems: &mut Vec<String>) {
    let Some(items) = items.as_array() else {
        problems.push(format!("{file}: not a list"));
        return;
    };
    let mut names = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let Some(item) = item.as_object() else {
            problems.push(format!("{file}[{i}]: not a mapping"));
            continue;
        };
        for key in item.keys() {
            if !allowed.contains(&key.as_str()) && !BASE_ITEM.contains(&key.as_str()) {
                problems.push(format!("{file}[{i}]: unknown key {key:?}"));
            }
        }
        match item.get("name").and_then(Json::as_str) {
            Some(name) if !name.trim().is_empty() && name.is_ascii() => {
                if !names.insert(name.to_owned()) {
                    problems.push(format!("{file}: duplicate name {name:?}"));
                }
            }
            other => problems.push(format!("{file}[{i}]: name {other:?} (required, ASCII)")),
        }
        match item.get("query").and_then(Json::as_str) {
            Some(q) if !q.trim().is_empty() => {}
            other => problems.push(format!("{file}[{i}]: query {other:?} (required)")),
        }
        for (key, value) in item {
            let ok = match key.as_str() {
                "name"
                | "description"
                | "query"
                | "resolution"
                | "min_osquery_version"
                | "team"
                | "label_membership_type" => value.is_string(),
                "interval" => value.as_u64().is_some(),
                "observer_can_run"
                | "automations_enabled"
                | "discard_data"
                | "critical"
                | "calendar_events_enabled" => value.is_boolean(),
                "logging" => value.as_str().is_some_and(|l| LOGGING.contains(&l)),
                "platform" => value.as_str().is_some_and(|p| {
                    p.is_empty() || p.split(',').all(|p| PLATFORMS.contains(&p.trim()))
                }),
                "labels_include_any" | "labels_include_all" | "labels_exclude_any" => value
                    .as_array()
                    .is_some_and(|l| !l.is_empty() && l.iter().all(Json::is_string)),
                _ => true,
            };
            if !ok {
                problems.push(format!("{file}[{i}].{key}: bad value {value}"));
            }
        }
        let label_modes = [
            "labels_include_any",
            "labels_include_all",
            "labels_exclude_any",
        ]
        .iter()
        .filter(|k| item.contains_key(**k))
        .count();
        if label_modes > 1 {
            problems.push(format!("{file}[{i}]: more than one labels_* target"));
        }
    }
}

fn object<'a>(value: &'a Json, what: &str) -> &'a Map<String, Json> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not a mapping: {value}"))
}

#[test]
fn reports_policies_and_labels_use_only_keys_fleet_accepts() {
    let dir = fleet_dir();
    let mut problems = Vec::new();
    let reports = yaml(&dir.join("an1256-queries.yml"));
    check_items("an1256-queries.yml", &reports, REPORT_KEYS, &mut problems);
    let policies = yaml(&dir.join("an1256-policies.yml"));
    check_items("an1256-policies.yml", &policies, POLICY_KEYS, &mut problems);
    let labels = yaml(&dir.join("an1256-labels.yml"));
    check_items("an1256-labels.yml", &labels, LABEL_KEYS, &mut problems);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_checker_rejects_what_fleet_rejects() {
    // The same checks over broken items: each must be reported.
    let broken: Json = serde_json::json!([
        {"name": "a", "query": "SELECT 1;", "labels": ["x"]},
        {"name": "b", "query": "SELECT 1;", "logging": "event"},
        {"name": "c", "query": "SELECT 1;", "platform": "darwin,ubuntu"},
        {"name": "d", "query": "", "interval": 60},
        {"name": "e", "query": "SELECT 1;", "discard_data": "yes please"},
        {"name": "e", "query": "SELECT 1;"},
        {"name": "f\u{e9}", "query": "SELECT 1;"},
        {"name": "g", "query": "SELECT 1;", "labels_include_any": ["x"], "labels_include_all": ["y"]},
    ]);
    let mut problems = Vec::new();
    check_items("broken", &broken, REPORT_KEYS, &mut problems);
    for expected in [
        "unknown key \"labels\"",
        "logging: bad value",
        "platform: bad value",
        "query Some(\"\")",
        "discard_data: bad value",
        "duplicate name \"e\"",
        "(required, ASCII)",
        "more than one labels_* target",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{expected} not reported in {problems:#?}"
        );
    }
}

#[test]
fn every_report_targets_the_loaded_label_and_inventories_discard_data() {
    let dir = fleet_dir();
    let labels = yaml(&dir.join("an1256-labels.yml"));
    let label = labels
        .as_array()
        .and_then(|l| l.iter().find(|l| l["name"] == LABEL))
        .unwrap_or_else(|| panic!("label {LABEL:?} defined in an1256-labels.yml"));
    assert_eq!(
        label["query"],
        "SELECT 1 FROM osquery_extensions WHERE name = 'an1256';"
    );
    assert_eq!(label["label_membership_type"], "dynamic");

    let pack = an1256::cli::packs::pack_queries().expect("pack parses");
    let reports = yaml(&dir.join("an1256-queries.yml"));
    let reports = reports.as_array().expect("a list");
    assert_eq!(reports.len(), pack.len(), "one report per pack query");
    for report in reports {
        let name = report["name"].as_str().expect("name");
        let query = &pack[name];
        assert_eq!(report["query"], query.query.as_str(), "{name}: SQL");
        assert_eq!(report["interval"], query.interval, "{name}: interval");
        assert_eq!(
            report["labels_include_any"],
            serde_json::json!([LABEL]),
            "{name}: hosts without the extension would log `no such table`"
        );
        // Fleet keeps at most 1,000 rows of a report: hourly snapshot inventories
        // are shipped to the log destination only.
        let inventory = query.snapshot && query.interval <= 3600;
        assert_eq!(report["discard_data"], inventory, "{name}: discard_data");
        assert_eq!(report["automations_enabled"], true, "{name}: logged");
        let logging = report["logging"].as_str().expect("logging");
        assert_eq!(logging == "snapshot", query.snapshot, "{name}: logging");
    }
}

#[test]
fn the_example_fleet_file_is_a_valid_gitops_fleet_file() {
    let dir = fleet_dir().join("fleets");
    let fleet = yaml(&dir.join("an1256.yml"));
    let top = object(&fleet, "fleets/an1256.yml");
    for key in top.keys() {
        assert!(
            TOP_KEYS.contains(&key.as_str()),
            "unknown top-level field {key}"
        );
    }
    for deprecated in ["queries", "team_settings"] {
        assert!(
            !top.contains_key(deprecated),
            "{deprecated}: use the new name"
        );
    }
    assert!(top["name"].as_str().is_some_and(|n| !n.is_empty()));
    assert!(
        !top.contains_key("org_settings"),
        "a fleet file has name, not org_settings"
    );
    // Every referenced file exists and holds the list kind it is referenced as.
    for (key, file) in [
        ("reports", "an1256-queries.yml"),
        ("policies", "an1256-policies.yml"),
        ("labels", "an1256-labels.yml"),
    ] {
        let refs = top[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key} is a list"));
        let paths: Vec<&str> = refs.iter().filter_map(|r| r["path"].as_str()).collect();
        assert_eq!(paths.len(), refs.len(), "{key}: path references");
        assert!(
            paths.iter().any(|p| p.ends_with(file)),
            "{key} references {file}"
        );
        for path in paths {
            let resolved = dir.join(path);
            assert!(resolved.is_file(), "{key}: {} missing", resolved.display());
            assert!(yaml(&resolved).is_array(), "{path}: a list file");
        }
    }
    let agent = object(&top["agent_options"], "agent_options");
    let flags = object(&agent["command_line_flags"], "command_line_flags");
    assert_eq!(
        flags["extensions_require"], "an1256",
        "fleetd must make osquery wait for the extension (osquery#4302)"
    );
    // fleetd's extensions: one TUF target per platform, each with channel and
    // platform (Fleet docs/Configuration/agent-configuration.md, "extensions").
    let extensions = object(&agent["extensions"], "extensions");
    let platforms: BTreeSet<&str> = extensions
        .iter()
        .map(|(name, spec)| {
            assert!(name.starts_with("an1256_"), "{name}");
            assert!(spec["channel"].is_string(), "{name}: channel");
            let platform = spec["platform"].as_str().expect("platform");
            assert!(
                ["linux", "macos", "windows"].contains(&platform),
                "{platform}"
            );
            platform
        })
        .collect();
    assert_eq!(platforms, BTreeSet::from(["linux", "macos"]));
}

/// The health policy's SQL runs in the embedded engine over the real tables: it
/// fails on a store whose sampler never ran and passes once it has.
#[test]
fn the_health_policy_passes_only_once_the_sampler_has_run() {
    let policies = yaml(&fleet_dir().join("an1256-policies.yml"));
    let healthy = policies
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "an1256 extension healthy"))
        .expect("the health policy");
    assert_eq!(healthy["labels_include_any"], serde_json::json!([LABEL]));
    let sql = healthy["query"].as_str().expect("query");
    let work = tempfile::tempdir().expect("tempdir");
    let config = work.path().join("config.json");
    std::fs::write(&config, "{}").unwrap();
    let an1256 = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_an1256"))
            .args(args)
            .env("AN1256_DB", work.path().join("store/an1256.db"))
            .env("AN1256_CONFIG", &config)
            .output()
            .expect("run an1256");
        assert!(
            out.status.success(),
            "an1256 {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // `query --json` prints one JSON object per row.
    let rows = |out: &str| -> usize {
        out.lines()
            .filter(|l| serde_json::from_str::<Json>(l).is_ok_and(|j| j.is_object()))
            .count()
    };
    let before = an1256(&["query", sql, "--json"]);
    assert_eq!(rows(&before), 0, "no sampler pass yet: failing\n{before}");
    an1256(&["baseline", "sample"]);
    let after = an1256(&["query", sql, "--json"]);
    assert_eq!(rows(&after), 1, "after a sampler pass: passing\n{after}");
}

/// `packs/elastic/an1256-pack.json`, the body of Kibana's create-pack API, carries
/// the pack's queries with their result type stated: osquerybeat schedules a query
/// as a snapshot unless told otherwise, which would re-log every hit every minute.
#[test]
fn the_elastic_pack_carries_the_same_queries_with_explicit_result_types() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packs/elastic/an1256-pack.json");
    let body: Json = serde_json::from_str(&std::fs::read_to_string(&path).expect("read"))
        .expect("the Kibana pack is JSON");
    assert_eq!(body["name"], "an1256");
    let queries = object(&body["queries"], "queries");
    let pack = an1256::cli::packs::pack_queries().expect("pack parses");
    assert_eq!(queries.len(), pack.len());
    for (name, query) in &pack {
        let entry = &queries[name.as_str()];
        assert_eq!(entry["query"], query.query.as_str(), "{name}: SQL");
        assert_eq!(entry["interval"], query.interval, "{name}: interval");
        assert_eq!(entry["snapshot"], query.snapshot, "{name}: snapshot stated");
        if !query.snapshot {
            assert_eq!(
                entry["removed"],
                query.removed.unwrap_or(true),
                "{name}: removed stated"
            );
        }
    }
}
