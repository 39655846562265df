//! Red team round 4 (B): a process already running when the send ledger starts
//! had no lineage, so the fork program counted it dead and left it out of its
//! children's forkers: an implant started before the extension, sending
//! through a trusted `xargs`, was never given its sends. The ledger now gives
//! every running process a lineage as it starts. In a binary of its own: the
//! implant must be running before this process starts its ledger.
#![cfg(target_os = "linux")]

mod common;

use an1256::model::{ProtocolSet, SocketQuery};
use an1256::platform::linux::send_ledger;
use an1256::platform::Host;

#[test]
fn an_implant_running_before_the_ledger_is_given_its_senders_sockets() {
    if !common::is_root() {
        return common::skip(
            "an_implant_running_before_the_ledger_is_given_its_senders_sockets",
            "needs root",
        );
    }
    let _full_scan = common::FullScanLock::shared();
    let attacker = common::attacker("preledger");
    let _kill = common::KillUser(attacker.name.clone());
    let python = attacker.unsigned_python_copy("early", "preledger");
    let sent = attacker.home.join("inode");
    // Told to (SIGUSR1), the implant has xargs run a copy of itself that sends
    // once, writes its socket's inode, and exits.
    let send = format!(
        "import os, socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.sendto(b'beacon', ('127.0.0.1', 9))\n\
         open('{}', 'w').write(str(os.fstat(s.fileno()).st_ino))\n",
        sent.display()
    );
    let mut command = attacker.command(&python);
    command.args([
        "-c",
        "import signal, subprocess, sys, time\n\
         signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})\n\
         print('ready', flush=True)\n\
         signal.sigwait({signal.SIGUSR1})\n\
         x = subprocess.Popen(['/usr/bin/xargs', '-L1', sys.executable, '-c', sys.argv[1]],\n\
         \x20                    stdin=subprocess.PIPE)\n\
         x.communicate(b'x\\n')\n\
         time.sleep(300)\n",
        &send,
    ]);
    let implant = common::spawn_ready(command).expect("the implant");
    if let Err(why) = send_ledger::start() {
        panic!("no send ledger on this kernel: {why}");
    }
    assert_eq!(send_ledger::status(), "running");
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(implant.pid, libc::SIGUSR1) };
    let mut inode = None;
    for _ in 0..100 {
        inode = std::fs::read_to_string(&sent)
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok());
        if inode.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let inode = inode.expect("the copy sent");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let host = an1256::platform::linux::LinuxHost::new(an1256::platform::HostConfig {
        fd_iterator: true,
        ..an1256::platform::HostConfig::default()
    });
    let scan = host.sockets(&SocketQuery {
        pids: None,
        protocols: ProtocolSet::ALL,
    });
    let given: Vec<i32> = scan
        .sockets
        .iter()
        .filter(|s| s.socket == inode && s.fd == -1 && s.tcp_state == "sent_not_held")
        .map(|s| s.pid)
        .collect();
    assert!(given.contains(&implant.pid), "given to {given:?}");
}
