//! # an1256
//!
//! An osquery extension (and a standalone scanner) for MITRE ATT&CK analytic
//! AN1256: unsigned binaries or interpreted scripts that open ICMP, UDP, raw or
//! SOCKS traffic outside the host's baseline.
//!
//! Layers, bottom to top. A module imports only from its own layer or those
//! below it; `tests/architecture.rs` reads the sources and fails on an upward
//! import or on two modules importing each other.
//!
//! | layer | modules | what |
//! |---|---|---|
//! | util | [`util`] (glob, hex, time, base64), [`terminal`], [`logging`], [`deadline`] | no OS policy, no domain |
//! | model | [`model`] | plain row types, protocol numbers, `ProtocolSet` |
//! | platform | [`platform`] (`Host`, linux/, macos/, `read_processes`, `trust`: digests, hashing budget and the verdict cache the backends share) | the only OS code |
//! | judge | [`judge`]: `script`, `classify`, `subject`, `socks`, `severity` | decisions over `Host` facts; every user file (scripts, ssh and proxychains configs, Include directories) is read through `Host` |
//! | observe | [`observe`] | THE pipeline: socket scan -> SOCKS reasons -> classify -> judged owner |
//! | settings | [`settings`] | config file + env + CLI, resolved once (`Settings`); the baseline's rank, below the `Baseline` it configures |
//! | baseline | [`baseline`] (store, policy, identity, state, sampler) | host state |
//! | tables | [`tables`] | one module per osquery table |
//! | serve | [`extension`] (osquery Thrift), [`sql`] (embedded SQLite) | the same tables, two servers |
//! | cli | [`cli`]: `scan`, `ecs`, `osquery_log`, `baseline`, `packs` | commands and output formats (scan runs the embedded engine, so cli sits on serve) |
//! | main | this crate root (`all_tables`, `process_and_socket_tables`), `main.rs` (argv -> settings -> one function per mode) | wiring |

pub mod baseline;
pub mod cli;
pub mod deadline;
pub mod extension;
pub mod judge;
pub mod logging;
pub mod model;
pub mod observe;
pub mod platform;
pub mod settings;
pub mod sql;
pub mod tables;
pub mod terminal;
pub mod util;

use std::sync::Arc;
use tables::TableDef;

/// The two tables that need no baseline (`process_code_signature`,
/// `nonstandard_protocol_sockets`) over one host, with default SOCKS settings.
pub fn process_and_socket_tables(host: Arc<dyn platform::Host>) -> Vec<Arc<dyn TableDef>> {
    process_and_socket_tables_with(host, judge::socks::SocksConfig::default())
}

/// `process_code_signature` and `nonstandard_protocol_sockets` over one host.
fn process_and_socket_tables_with(
    host: Arc<dyn platform::Host>,
    socks: judge::socks::SocksConfig,
) -> Vec<Arc<dyn TableDef>> {
    vec![
        Arc::new(tables::process_code_signature::ProcessCodeSignature::new(
            host.clone(),
        )),
        Arc::new(
            tables::nonstandard_protocol_sockets::NonstandardProtocolSockets::with_socks_config(
                host, socks,
            ),
        ),
    ]
}

/// Every table: the process and socket tables plus the baseline tables
/// (`an1256_baseline`, `an1256_observations`, `an1256_baseline_audit`,
/// `an1256_info`) over one baseline context, with the SOCKS settings of its settings.
pub fn all_tables(
    host: Arc<dyn platform::Host>,
    baseline: Arc<baseline::Baseline>,
) -> Vec<Arc<dyn TableDef>> {
    let mut tables = process_and_socket_tables_with(host, baseline.settings.socks.clone());
    tables.push(Arc::new(tables::an1256_baseline::An1256Baseline::new(
        baseline.clone(),
    )));
    tables.push(Arc::new(
        tables::an1256_observations::An1256Observations::new(baseline.clone()),
    ));
    tables.push(Arc::new(
        tables::an1256_baseline_audit::An1256BaselineAudit::new(baseline.clone()),
    ));
    tables.push(Arc::new(tables::an1256_info::An1256Info::new(baseline)));
    tables
}
