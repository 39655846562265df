//! The embedded SQLite engine: the same tables as rusqlite virtual tables.
//! (Being written.)
