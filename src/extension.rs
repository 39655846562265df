//! osquery extension mode: serves the tables over osquery's Thrift protocol.
//! (Being written.)
