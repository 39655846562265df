//! The cli layer: the standalone commands and their output formats. `scan`
//! runs the embedded engine, so this layer sits on serve.

pub mod baseline;
pub mod docs;
pub mod ecs;
pub mod osquery_log;
pub mod packs;
pub mod scan;
