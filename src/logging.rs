//! Logging to stderr, set up first thing in `main` for every mode, so nothing
//! (the sampler thread, a store recovery, an audit record) logs into the void.
//!
//! Extension mode logs at INFO (DEBUG with `--verbose`); osquery passes an
//! extension's stderr through. CLI modes log at WARN, so store trouble, recoveries
//! and baseline changes reach the operator's terminal without drowning the output.

/// Writes `an1256[pid] LEVEL target: message` lines to stderr.
struct StderrLogger;

static LOGGER: StderrLogger = StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let message = record.args().to_string();
            eprintln!(
                "an1256[{}] {} {}: {}",
                std::process::id(),
                record.level(),
                record.target(),
                crate::terminal::sanitize(&message)
            );
        }
    }

    fn flush(&self) {}
}

/// Installs the stderr logger at `level`. A second call (tests, or the extension
/// after `main`) keeps the first logger and only raises the level when asked.
pub fn init(level: log::LevelFilter) {
    if log::set_logger(&LOGGER).is_ok() || level > log::max_level() {
        log::set_max_level(level);
    }
}

/// The level of a mode: extension mode INFO (DEBUG when verbose), CLI WARN.
pub fn level_for(extension_mode: bool, verbose: bool) -> log::LevelFilter {
    match (extension_mode, verbose) {
        (_, true) => log::LevelFilter::Debug,
        (true, false) => log::LevelFilter::Info,
        (false, false) => log::LevelFilter::Warn,
    }
}
