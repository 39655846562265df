//! The README's generated sections are the output of `an1256 tables --section …`:
//! this test fails when the code changes and the README does not (run
//! `scripts/update-readme`).

use std::process::Command;

fn generated(section: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_an1256"))
        .args(["tables", "--section", section])
        .output()
        .expect("run an1256 tables");
    assert!(
        out.status.success(),
        "an1256 tables --section {section} failed: {out:?}"
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn readme_section(section: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let begin = format!("<!-- {section}:begin -->\n");
    let end = format!("<!-- {section}:end -->");
    let start = readme
        .find(&begin)
        .unwrap_or_else(|| panic!("README has no {begin:?} marker"))
        + begin.len();
    let stop = readme
        .find(&end)
        .unwrap_or_else(|| panic!("README has no {end:?} marker"));
    readme[start..stop].to_owned()
}

#[test]
fn readme_generated_sections_match_the_code() {
    let tables = generated("tables");
    assert!(tables.contains("### `process_code_signature`"));
    assert!(tables.contains("| `subject_identity` | TEXT |"));
    assert!(generated("index").contains("(docs/tables/process_code_signature.md)"));
    assert!(generated("socks").contains("`socks_server`"));
    assert!(generated("severity").contains("| untrusted subject | 30 |"));
    assert!(generated("ecs").contains("`process.code_signature.trusted`"));
    for section in ["index", "socks", "severity", "ecs"] {
        assert_eq!(
            readme_section(section),
            generated(section),
            "README section {section} is stale: run scripts/update-readme"
        );
    }
}

/// docs/tables/ holds exactly the pages `an1256 tables --pages` writes, byte for
/// byte: a column added, renamed or re-documented in a table declaration fails
/// here until `scripts/update-readme` is run.
#[test]
fn docs_tables_pages_match_the_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_an1256"))
        .arg("tables")
        .arg("--pages")
        .arg(dir.path())
        .output()
        .expect("run an1256 tables --pages");
    assert!(
        out.status.success(),
        "an1256 tables --pages failed: {out:?}"
    );
    let pages = |path: &std::path::Path| -> std::collections::BTreeMap<String, String> {
        std::fs::read_dir(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .map(|entry| {
                let entry = entry.expect("dir entry");
                let name = entry.file_name().to_string_lossy().into_owned();
                (
                    name,
                    std::fs::read_to_string(entry.path()).expect("read page"),
                )
            })
            .collect()
    };
    let generated = pages(dir.path());
    let committed = pages(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/tables"));
    assert!(
        generated.contains_key("process_code_signature.md"),
        "{:?}",
        generated.keys()
    );
    assert_eq!(
        committed.keys().collect::<Vec<_>>(),
        generated.keys().collect::<Vec<_>>(),
        "docs/tables/ has other pages than the tables: run scripts/update-readme"
    );
    for (name, page) in &generated {
        assert_eq!(
            &committed[name], page,
            "docs/tables/{name} is stale: run scripts/update-readme"
        );
        assert!(
            readme_section("index").contains(&format!("(docs/tables/{name})")),
            "the README does not link {name}"
        );
    }
}
