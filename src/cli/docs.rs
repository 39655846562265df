//! The per-table reference pages in docs/tables/, generated from the table
//! declarations (`an1256 tables --pages DIR`, run by scripts/update-readme), and
//! their index for the README (`an1256 tables --section index`). tests/readme.rs
//! fails when the committed pages differ from these.

use crate::tables::TableDef;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the pages live, relative to the repository root.
pub const PAGES_DIR: &str = "docs/tables";

/// The label packs/fleet defines for hosts that have the extension loaded.
const FLEET_LABEL: &str = "an1256 extension loaded";

/// One table's page: what it is, every column with its type and doc (like osquery's
/// schema pages), and example queries for osqueryi, a Fleet live query and a
/// scheduled pack.
pub fn page(table: &dyn TableDef) -> String {
    let name = table.name();
    let mut out = format!("# `{name}`\n\n{}\n\n", table.description());
    let indexed: Vec<String> = table
        .columns()
        .iter()
        .filter(|c| c.index)
        .map(|c| format!("`{}`", c.name))
        .collect();
    out.push_str("| | |\n|---|---|\n| platforms | linux, darwin |\n");
    match table.rowid_column() {
        Some(rowid) => out.push_str(&format!(
            "| writable | yes: INSERT, UPDATE and DELETE (rowid = `{rowid}`) |\n"
        )),
        None => out.push_str("| writable | no |\n"),
    }
    if !indexed.is_empty() {
        out.push_str(&format!(
            "| index | {} (`=` and `IN (…)` are pushed down to the table) |\n",
            indexed.join(", ")
        ));
    }
    out.push_str("\n## Columns\n\n| column | type | description |\n|---|---|---|\n");
    for c in table.columns() {
        let index = if c.index { " (index)" } else { "" };
        out.push_str(&format!(
            "| `{}` | {}{index} | {} |\n",
            c.name,
            c.ty.as_str(),
            c.doc.replace('|', "\\|")
        ));
    }
    let examples = table.examples();
    if let Some(first) = examples.first() {
        out.push_str("\n## Examples\n\n### osqueryi\n\n");
        out.push_str("```sh\nosqueryi --extension /usr/local/osquery/an1256.ext\n```\n\n```sql\n");
        for (n, example) in examples.iter().enumerate() {
            if n > 0 {
                out.push('\n');
            }
            out.push_str(&format!("-- {}\n{}\n", example.title, example.sql));
        }
        out.push_str("```\n\n");
        out.push_str(&format!(
            "`an1256 query \"…\"` runs the same SQL with no osquery (embedded engine).\n\n\
             ### Fleet live query\n\n\
             On hosts with the extension (the `{FLEET_LABEL}` label of packs/fleet):\n\n\
             ```sh\nfleetctl query --labels '{FLEET_LABEL}' --query \"{}\"\n```\n\n",
            first.sql
        ));
        let pack = serde_json::json!({
            "queries": {
                format!("an1256_{}", name.trim_start_matches("an1256_")): {
                    "query": first.sql,
                    "interval": 3600,
                    "description": first.title,
                }
            }
        });
        out.push_str(&format!(
            "### Scheduled pack\n\n\
             A pack file (osquery's `\"packs\": {{\"an1256-examples\": \"/path/to/file.conf\"}}`; \
             packs/an1256.conf holds the real AN1256 queries):\n\n```json\n{}\n```\n",
            serde_json::to_string_pretty(&pack).unwrap_or_default()
        ));
    }
    out.push_str(&format!(
        "\n<!-- Generated from the declaration in src/tables/{name}.rs by scripts/update-readme; do not edit. -->\n"
    ));
    out
}

/// The README's table index: one line per table, linking its page.
pub fn index(tables: &[Arc<dyn TableDef>]) -> String {
    let mut out = String::from("| table | what it is |\n|---|---|\n");
    for table in tables {
        out.push_str(&format!(
            "| [`{0}`]({PAGES_DIR}/{0}.md) | {1} |\n",
            table.name(),
            table.description().replace('|', "\\|")
        ));
    }
    out
}

/// Writes one page per table into `dir` (created if needed); returns the files.
pub fn write_pages(tables: &[Arc<dyn TableDef>], dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::with_capacity(tables.len());
    for table in tables {
        let path = dir.join(format!("{}.md", table.name()));
        std::fs::write(&path, page(table.as_ref()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> Vec<Arc<dyn TableDef>> {
        let dir = tempfile::tempdir().unwrap();
        let host: Arc<dyn crate::platform::Host> = Arc::new(crate::platform::FakeHost::default());
        let config = crate::settings::Settings::with_db(dir.path().join("b.db"));
        crate::all_tables(
            host.clone(),
            Arc::new(crate::baseline::Baseline::new(config, host)),
        )
    }

    #[test]
    fn every_table_has_examples_that_paste_into_a_shell_and_a_page_with_every_column() {
        for table in tables() {
            let page = page(table.as_ref());
            assert!(
                !table.examples().is_empty(),
                "{} has no example",
                table.name()
            );
            for example in table.examples() {
                // The Fleet example is pasted inside double quotes.
                assert!(
                    !example.sql.contains(['"', '$', '`', '\\']),
                    "{}: {}",
                    table.name(),
                    example.sql
                );
                assert!(example.sql.contains(table.name()), "{}", example.sql);
            }
            for column in table.columns() {
                assert!(
                    page.contains(&format!("| `{}` | {}", column.name, column.ty.as_str())),
                    "{} page lacks {}",
                    table.name(),
                    column.name
                );
            }
        }
    }
}
