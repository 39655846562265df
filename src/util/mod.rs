//! Small helpers with no OS policy and no knowledge of an1256's domain: the
//! bottom layer, importable from everywhere.

pub mod glob;
