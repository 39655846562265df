//! A user who fills the send ledger (`platform::linux::send_ledger`) makes full
//! scans say they are incomplete for the next minute, never quiet, and the
//! scan stays bounded: at most one row per ledger entry. In a binary of its own: the flood fills the
//! ledger of every process that runs one, for a minute.
#![cfg(target_os = "linux")]

mod common;

use an1256::model::{ProtocolSet, SocketQuery};
use an1256::platform::linux::send_ledger;
use an1256::platform::Host;

const LOST: &str = "sends on users' sockets (or forks) were not recorded";

#[test]
fn a_user_who_fills_the_send_ledger_makes_full_scans_say_so() {
    if !common::is_root() {
        return common::skip(
            "a_user_who_fills_the_send_ledger_makes_full_scans_say_so",
            "needs root",
        );
    }
    if let Err(why) = send_ledger::start() {
        panic!("no send ledger on this kernel: {why}");
    }
    let _alone = common::FullScanLock::exclusive();
    let host = an1256::platform::linux::LinuxHost::new(an1256::platform::HostConfig::default());
    let query = SocketQuery {
        pids: None,
        protocols: ProtocolSet::ALL,
    };
    // The twin: a scan before the flood says nothing of lost sends.
    let before = host.sockets(&query);
    assert!(
        !before.incomplete.iter().any(|n| n.contains(LOST)),
        "{:?}",
        before.incomplete
    );
    let attacker = common::attacker("ledgerflood");
    let _kill = common::KillUser(attacker.name.clone());
    let python = attacker.unsigned_python_copy("flood", "ledgerflood");
    let sockets = send_ledger::CAPACITY as usize + 600;
    let mut command = attacker.command(&python);
    command.args([
        "-c",
        "import socket, sys, time\n\
         for _ in range(int(sys.argv[1])):\n\
         \x20   s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         \x20   s.sendto(b'x', ('127.0.0.1', 9))\n\
         \x20   s.close()\n\
         print('ready', flush=True)\n\
         time.sleep(300)\n",
        &sockets.to_string(),
    ]);
    let flooder = common::spawn_ready(command).expect("the flooder");
    let scan = host.sockets(&query);
    assert!(
        scan.incomplete.iter().any(|n| n.contains(LOST)),
        "{:?}",
        scan.incomplete
    );
    // Every socket it sent on is closed, but its sender runs: at most one row
    // per entry the ledger holds.
    let rows = scan.sockets.iter().filter(|s| s.pid == flooder.pid).count();
    eprintln!("flood of {sockets} sockets: {rows} rows of the flooder");
    assert!(
        rows > 0 && rows <= send_ledger::CAPACITY as usize,
        "{rows} rows"
    );
    // Every scan within the window after a loss says so, whoever read first.
    let again = host.sockets(&query);
    assert!(
        again.incomplete.iter().any(|n| n.contains(LOST)),
        "{:?}",
        again.incomplete
    );
}
