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
    assert!(generated("socks").contains("`socks_server`"));
    assert!(generated("severity").contains("| untrusted subject | 30 |"));
    assert!(generated("ecs").contains("`process.code_signature.trusted`"));
    for section in ["tables", "socks", "severity", "ecs"] {
        assert_eq!(
            readme_section(section),
            generated(section),
            "README section {section} is stale: run scripts/update-readme"
        );
    }
}
