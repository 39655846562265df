//! `an1256`: osquery extension mode and standalone subcommands.

fn main() {
    std::process::exit(2);
}
