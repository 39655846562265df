//! The README's table reference is the output of `an1256 tables`: this test fails
//! when a column changes and the README does not (run `scripts/update-readme`).

use std::process::Command;

#[test]
fn readme_table_reference_matches_the_registered_columns() {
    let out = Command::new(env!("CARGO_BIN_EXE_an1256"))
        .arg("tables")
        .output()
        .expect("run an1256 tables");
    assert!(out.status.success(), "an1256 tables failed: {out:?}");
    let generated = String::from_utf8(out.stdout).expect("utf-8");
    assert!(generated.contains("### `process_code_signature`"));
    assert!(generated.contains("| `subject_identity` | TEXT |"));
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let begin = "<!-- tables:begin -->\n";
    let start = readme
        .find(begin)
        .expect("README has a tables:begin marker")
        + begin.len();
    let end = readme
        .find("<!-- tables:end -->")
        .expect("README has a tables:end marker");
    assert_eq!(
        &readme[start..end],
        generated,
        "README table reference is stale: run scripts/update-readme"
    );
}
