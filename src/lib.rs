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
//! | judge | [`judge`]: `script`, `classify`, `subject`, `socks`, `severity` | decisions over `Host` facts (`subject` and `socks` still read some files directly) |
//! | observe | [`observe`] | THE pipeline: socket scan -> SOCKS reasons -> classify -> judged owner |
//! | baseline | [`baseline`] (store, policy, identity, config, sampler) | host state |
//! | tables | [`tables`] | one module per osquery table |
//! | serve | [`extension`] (osquery Thrift), [`sql`] (embedded SQLite) | the same tables, two servers |
//! | cli | [`cli`]: `scan`, `ecs`, `baseline`, `packs` | commands and output formats (scan runs the embedded engine, so cli sits on serve) |
//! | main | this crate root (`all_tables*`), `main.rs` | wiring |

pub mod baseline;
pub mod cli;
pub mod deadline;
pub mod extension;
pub mod judge;
pub mod logging;
pub mod model;
pub mod observe;
pub mod platform;
pub mod sql;
pub mod tables;
pub mod terminal;
pub mod util;

use std::sync::Arc;
use tables::TableDef;

/// The two core tables over one host, with default SOCKS settings.
pub fn all_tables(host: Arc<dyn platform::Host>) -> Vec<Arc<dyn TableDef>> {
    core_tables(host, judge::socks::SocksConfig::default())
}

/// The two core tables over one host.
fn core_tables(
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

/// Every table, including the baseline tables (`an1256_baseline`,
/// `an1256_observations`, `an1256_info`) over one baseline context, with the SOCKS
/// settings of its config.
pub fn all_tables_with(
    host: Arc<dyn platform::Host>,
    baseline: Arc<baseline::Baseline>,
) -> Vec<Arc<dyn TableDef>> {
    let mut tables = core_tables(host, baseline.config.socks.clone());
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
