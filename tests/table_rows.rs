//! osquery's `validate_rows`, for every an1256 table over the real host: the rows a
//! table generates, the rows osquery receives from the extension and the rows of
//! the embedded engine's `SELECT *` have exactly the declared columns, each value
//! of its declared type. A real process holds a UDP socket so every table has rows.

mod common;

use an1256::baseline::Baseline;
use an1256::extension::TableAdapter;
use an1256::platform;
use an1256::settings::Settings;
use an1256::sql::Engine;
use an1256::tables::validate::{check_osquery_row, check_row, check_sql_row};
use an1256::tables::QueryContext;
use common::{python, spawn_ready};
use osquery_rust_ng::plugin::OsqueryPlugin;
use std::sync::Arc;

#[test]
fn every_table_row_has_its_declared_columns_and_types_on_the_real_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = Settings::with_db(dir.path().join("store/an1256.db"));
    let host: Arc<dyn platform::Host> = Arc::from(platform::native(settings.host.clone()));
    let baseline = Arc::new(Baseline::new(settings, host.clone()));
    // Inline python code is an untrusted subject: the sampler records its socket.
    let _holder = spawn_ready(python(
        "import socket, time\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.connect(('192.0.2.1', 53))\n\
         print('ready', flush=True)\n\
         time.sleep(600)",
    ))
    .expect("python3 UDP holder");
    let key = an1256::baseline::identity::validate_entry(
        &format!("sha256:{}", "a".repeat(64)),
        "udp",
        53,
    )
    .expect("entry");
    baseline
        .store()
        .expect("store")
        .approve(&key, "validate_rows")
        .expect("approve");
    baseline.sample();

    let tables = an1256::all_tables(host, baseline);
    let engine = Engine::new(tables.clone()).expect("engine");
    let mut counts = Vec::new();
    for table in tables {
        let name = table.name();
        let columns = table.columns();
        let rows = table
            .generate(&QueryContext::new())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for row in &rows {
            check_row(columns, row).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let request = [("action", "generate"), ("context", "{}")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let reply = TableAdapter::new(table.clone()).handle_call(request);
        let extra: &[&str] = if table.rowid_column().is_some() {
            &["rowid"]
        } else {
            &[]
        };
        let osquery_rows = reply.response.unwrap_or_default();
        for row in &osquery_rows {
            check_osquery_row(columns, row, extra)
                .unwrap_or_else(|e| panic!("{name} (osquery): {e}"));
        }
        let (names, sql_rows) = engine
            .query(&format!("SELECT * FROM {name}"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for row in &sql_rows {
            check_sql_row(columns, &names, row).unwrap_or_else(|e| panic!("{name} (SQLite): {e}"));
        }
        counts.push((name, rows.len(), osquery_rows.len(), sql_rows.len()));
    }
    assert_eq!(counts.len(), 6, "{counts:?}");
    // Every table answered with rows in all three forms: the checks ran on something.
    assert!(
        counts.iter().all(|(_, a, b, c)| *a > 0 && *b > 0 && *c > 0),
        "{counts:?}"
    );
}
