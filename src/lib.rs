//! # an1256
//!
//! An osquery extension (and a standalone scanner) for MITRE ATT&CK analytic
//! AN1256: unsigned binaries or interpreted scripts that open ICMP, UDP, raw or
//! SOCKS traffic outside the host's baseline.
//!
//! Layers, from the OS up:
//! - [`platform`]: the `Host` trait (processes, sockets, code identity) with one
//!   backend per OS and a fake for tests;
//! - [`script`], [`classify`], [`trust`], [`subject`]: pure, portable judgement;
//! - [`tables`]: one module per osquery table, columns declared once;
//! - [`extension`] (osquery's Thrift protocol) and [`sql`] (embedded SQLite) serve
//!   the same tables.

pub mod classify;
pub mod ecs;
pub mod extension;
pub mod model;
pub mod platform;
pub mod scan;
pub mod script;
pub mod severity;
pub mod socks;
pub mod sql;
pub mod subject;
pub mod tables;
pub mod trust;

use std::sync::Arc;
use tables::TableDef;

/// Every table this build serves, over one host.
pub fn all_tables(host: Arc<dyn platform::Host>) -> Vec<Arc<dyn TableDef>> {
    vec![
        Arc::new(tables::process_code_signature::ProcessCodeSignature::new(
            host.clone(),
        )),
        Arc::new(tables::nonstandard_protocol_sockets::NonstandardProtocolSockets::new(host)),
    ]
}
