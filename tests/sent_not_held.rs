//! The send ledger (`platform::linux::send_ledger`): a socket a user's process
//! sent on, which the scan finds held by another process or by none, is also a
//! row of the process that sent on it (`fd` -1, state `sent_not_held`).
//!
//! Red team F3 (high): an unsigned program hands its UDP socket to a trusted
//! process (`sleep` inherits it) and keeps sending through it while hopping
//! away from the scan. The scan found the socket only through `sleep`, the hit
//! query dropped it as trusted, and nothing was said. Every attacker here runs
//! as a user the test makes, each case beside a benign twin that stays quiet.
#![cfg(target_os = "linux")]

mod common;

use an1256::model::{ProtocolSet, SocketInfo, SocketQuery};
use an1256::platform::linux::send_ledger;
use an1256::platform::Host;

/// The unsigned sender: binds UDP 127.0.0.1, sends to itself once, then by
/// mode: `keep` holds its socket; `handoff` gives it to `/usr/bin/sleep` and
/// closes its own copy; `hop` hands it off too and forks, the parent exiting
/// (its child, the same image, lives on without the socket); `once` closes it
/// and exits after printing `ready` (a short-lived sender gone with its socket);
/// `cosend` connects it, makes it `/usr/bin/cat`'s stdout, closes its own copy
/// and has cat send a line on it (the last sender is then trusted); `catonly`
/// does the same without sending itself first (cat alone sends).
const SENDER: &str = "import os, socket, subprocess, sys, time\n\
mode = sys.argv[1]\n\
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
u.bind(('127.0.0.1', 0))\n\
port = u.getsockname()[1]\n\
if mode != 'catonly':\n\
\x20   u.sendto(b'x', ('127.0.0.1', port))\n\
print(f'port={port}')\n\
print(f'inode={os.fstat(u.fileno()).st_ino}')\n\
if mode in ('handoff', 'hop'):\n\
\x20   s = subprocess.Popen(['/usr/bin/sleep', '300'], pass_fds=[u.fileno()])\n\
\x20   print(f'sleep={s.pid}')\n\
\x20   u.close()\n\
if mode == 'hop':\n\
\x20   child = os.fork()\n\
\x20   if child:\n\
\x20       print(f'child={child}')\n\
\x20       print('ready', flush=True)\n\
\x20       os._exit(0)\n\
\x20   time.sleep(300)\n\
if mode == 'once':\n\
\x20   u.close()\n\
if mode in ('cosend', 'catonly'):\n\
\x20   u.connect(('127.0.0.1', port))\n\
\x20   c = subprocess.Popen(['/usr/bin/cat'], stdin=subprocess.PIPE, stdout=u.fileno())\n\
\x20   u.close()\n\
\x20   c.stdin.write(b'y\\n')\n\
\x20   c.stdin.flush()\n\
\x20   print(f'cat={c.pid}')\n\
\x20   time.sleep(0.3)\n\
print('ready', flush=True)\n\
if mode != 'once':\n\
\x20   time.sleep(300)\n";

fn full_scan(host: &an1256::platform::linux::LinuxHost) -> an1256::model::SocketScan {
    host.sockets(&SocketQuery {
        pids: None,
        protocols: ProtocolSet::ALL,
    })
}

fn sender(attacker: &common::Attacker, python: &std::path::Path, mode: &str) -> common::ReadyChild {
    let mut command = attacker.command(python);
    command.args(["-c", SENDER, mode]);
    common::spawn_ready(command).unwrap_or_else(|e| panic!("the {mode} sender: {e}"))
}

fn rows_of(scan: &an1256::model::SocketScan, inode: i64) -> Vec<&SocketInfo> {
    scan.sockets
        .iter()
        .filter(|s| s.socket == inode as u64)
        .collect()
}

fn unheld(rows: &[&SocketInfo]) -> Vec<i32> {
    rows.iter()
        .filter(|s| s.fd == -1 && s.tcp_state == "sent_not_held")
        .map(|s| s.pid)
        .collect()
}

fn host() -> an1256::platform::linux::LinuxHost {
    an1256::platform::linux::LinuxHost::new(an1256::platform::HostConfig {
        fd_iterator: true,
        ..an1256::platform::HostConfig::default()
    })
}

fn start_ledger(test: &str) -> bool {
    if !common::is_root() {
        common::skip(test, "needs root");
        return false;
    }
    if let Err(why) = send_ledger::start() {
        panic!("no send ledger on this kernel: {why}");
    }
    true
}

#[test]
fn a_socket_handed_to_a_trusted_process_is_also_its_unsigned_senders_row() {
    if !start_ledger("a_socket_handed_to_a_trusted_process_is_also_its_unsigned_senders_row") {
        return;
    }
    let _full_scan = common::FullScanLock::shared();
    let attacker = common::attacker("handoff");
    let _kill = common::KillUser(attacker.name.clone());
    let python = attacker.unsigned_python_copy("relay", "handoff");
    let handed = sender(&attacker, &python, "handoff");
    let twin = sender(&attacker, &python, "keep");
    let scan = full_scan(&host());
    let (inode, sleep) = (handed.int("inode"), handed.int("sleep") as i32);
    let rows = rows_of(&scan, inode);
    assert!(
        rows.iter().any(|s| s.pid == sleep && s.fd >= 0),
        "sleep holds it: {rows:?}"
    );
    assert_eq!(unheld(&rows), [handed.pid], "the sender's row: {rows:?}");
    let port = handed.int("port") as i32;
    let row = rows.iter().find(|s| s.fd == -1).expect("the sender's row");
    assert_eq!(
        (row.protocol, row.local_address.as_str(), row.local_port),
        (17, "127.0.0.1", port)
    );
    // The sender's executable, the unsigned copy, is the row's.
    let exe = std::fs::read_link(format!("/proc/{}/exe", handed.pid)).expect("exe");
    assert_eq!(exe, python);
    // The twin keeps its socket: one row, its own, held.
    let twin_rows = rows_of(&scan, twin.int("inode"));
    assert_eq!(
        twin_rows
            .iter()
            .map(|s| (s.pid, s.fd >= 0))
            .collect::<Vec<_>>(),
        [(twin.pid, true)],
        "{twin_rows:?}"
    );
    assert!(scan.incomplete.is_empty(), "{:?}", scan.incomplete);
    // `pid =` the sender gives it too; `pid =` the twin, only its own.
    let of_pids = |pid: i32| {
        host().sockets(&SocketQuery {
            pids: Some(vec![pid]),
            protocols: ProtocolSet::ALL,
        })
    };
    let by_pid = of_pids(handed.pid);
    assert_eq!(unheld(&rows_of(&by_pid, inode)), [handed.pid]);
    assert!(by_pid.errors.is_empty(), "{:?}", by_pid.errors);
    let twin_only = of_pids(twin.pid);
    assert_eq!(unheld(&rows_of(&twin_only, inode)), Vec::<i32>::new());
}

#[test]
fn a_sender_that_forked_away_is_found_through_its_child() {
    if !start_ledger("a_sender_that_forked_away_is_found_through_its_child") {
        return;
    }
    let _full_scan = common::FullScanLock::shared();
    let attacker = common::attacker("forkaway");
    let _kill = common::KillUser(attacker.name.clone());
    let python = attacker.unsigned_python_copy("hopper", "forkaway");
    let hopped = sender(&attacker, &python, "hop");
    let (inode, child) = (hopped.int("inode"), hopped.int("child") as i32);
    // The parent, the sender, exits once it printed `ready`.
    for _ in 0..100 {
        if !std::path::Path::new(&format!("/proc/{}/exe", hopped.pid)).exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let scan = full_scan(&host());
    let rows = rows_of(&scan, inode);
    assert_eq!(
        unheld(&rows),
        [child],
        "the child runs the sender's image: {rows:?}"
    );
    assert!(
        rows.iter()
            .any(|s| s.pid == hopped.int("sleep") as i32 && s.fd >= 0),
        "{rows:?}"
    );
}

#[test]
fn a_short_lived_sender_gone_with_its_socket_adds_no_row_and_no_warning() {
    if !start_ledger("a_short_lived_sender_gone_with_its_socket_adds_no_row_and_no_warning") {
        return;
    }
    let _full_scan = common::FullScanLock::shared();
    let attacker = common::attacker("oneshot");
    let _kill = common::KillUser(attacker.name.clone());
    let python = attacker.unsigned_python_copy("lookup", "oneshot");
    let once = sender(&attacker, &python, "once");
    let inode = once.int("inode");
    drop(once);
    let scan = full_scan(&host());
    assert_eq!(rows_of(&scan, inode).len(), 0);
    assert!(
        !scan
            .incomplete
            .iter()
            .any(|n| n.contains(&format!("socket {inode} "))),
        "{:?}",
        scan.incomplete
    );
    assert!(
        scan.errors
            .iter()
            .any(|n| n.contains(&format!("socket {inode} sent on")) && n.contains("are gone")),
        "logged: {:?}",
        scan.errors
    );
}

/// Red team: the ledger kept one sender per socket, the last. An unsigned
/// program that sent, then had `/usr/bin/cat` (holding the socket as its
/// stdout) send after it, left only cat on record, found holding the socket.
/// Each sender now has its entry.
#[test]
fn a_trusted_co_sender_does_not_take_the_unsigned_senders_place() {
    if !start_ledger("a_trusted_co_sender_does_not_take_the_unsigned_senders_place") {
        return;
    }
    let _full_scan = common::FullScanLock::shared();
    let attacker = common::attacker("cosend");
    let _kill = common::KillUser(attacker.name.clone());
    let python = attacker.unsigned_python_copy("cosender", "cosend");
    let cosent = sender(&attacker, &python, "cosend");
    let scan = full_scan(&host());
    let rows = rows_of(&scan, cosent.int("inode"));
    let cat = cosent.int("cat") as i32;
    assert!(rows.iter().any(|s| s.pid == cat && s.fd == 1), "{rows:?}");
    assert_eq!(unheld(&rows), [cosent.pid], "{rows:?}");
}

/// Red team F-A: the unsigned sender forks a child of its image, sends, then
/// execs `/usr/bin/sleep` keeping the socket: its pid was found holding the
/// socket (as sleep, trusted) and so counted as its sender. The pid no longer
/// runs what sent: the child of the sender's image, started since, is given it.
#[test]
fn a_sender_that_execs_a_trusted_program_is_found_through_its_child() {
    if !start_ledger("a_sender_that_execs_a_trusted_program_is_found_through_its_child") {
        return;
    }
    let _full_scan = common::FullScanLock::shared();
    let attacker = common::attacker("execaway");
    let _kill = common::KillUser(attacker.name.clone());
    let python = attacker.unsigned_python_copy("execer", "execaway");
    let mut command = attacker.command(&python);
    command.args([
        "-c",
        "import os, socket, time\n\
         child = os.fork()\n\
         if child == 0:\n\
         \x20   time.sleep(300)\n\
         \x20   os._exit(0)\n\
         u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         u.bind(('127.0.0.1', 0))\n\
         u.sendto(b'x', u.getsockname())\n\
         u.set_inheritable(True)\n\
         print(f'inode={os.fstat(u.fileno()).st_ino}')\n\
         print(f'child={child}')\n\
         print('ready', flush=True)\n\
         os.execv('/usr/bin/sleep', ['sleep', '300'])\n",
    ]);
    let execer = common::spawn_ready(command).expect("the sender");
    let (inode, child) = (execer.int("inode"), execer.int("child") as i32);
    // Until it runs sleep.
    for _ in 0..100 {
        let exe = std::fs::read_link(format!("/proc/{}/exe", execer.pid)).unwrap_or_default();
        if exe == std::path::Path::new("/usr/bin/sleep") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let scan = full_scan(&host());
    let rows = rows_of(&scan, inode);
    assert!(
        rows.iter().any(|s| s.pid == execer.pid && s.fd >= 0),
        "{rows:?}"
    );
    assert_eq!(unheld(&rows), [child], "{rows:?}");
}

/// Red team F-D: an unsigned script forks a child per beacon, which sends and
/// exits; a process of the same image started before (a decoy, the lowest
/// pid) took the socket. The parent, running the image, is given it; the
/// decoy, which cannot descend from the sender, is not.
#[test]
fn a_child_per_send_leads_to_its_parent_and_not_to_an_older_decoy() {
    if !start_ledger("a_child_per_send_leads_to_its_parent_and_not_to_an_older_decoy") {
        return;
    }
    let _full_scan = common::FullScanLock::shared();
    let attacker = common::attacker("perchild");
    let _kill = common::KillUser(attacker.name.clone());
    let python = attacker.unsigned_python_copy("beacon", "perchild");
    let mut decoy = attacker.command(&python);
    decoy.args([
        "-c",
        "import time\nprint('ready', flush=True)\ntime.sleep(300)\n",
    ]);
    let decoy = common::spawn_ready(decoy).expect("the decoy");
    let mut command = attacker.command(&python);
    command.args([
        "-c",
        "import os, socket, sys, time\n\
         child = os.fork()\n\
         if child == 0:\n\
         \x20   s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         \x20   s.sendto(b'beacon', ('127.0.0.1', 9))\n\
         \x20   print(f'inode={os.fstat(s.fileno()).st_ino}', flush=True)\n\
         \x20   os._exit(0)\n\
         os.waitpid(child, 0)\n\
         print('ready', flush=True)\n\
         time.sleep(300)\n",
    ]);
    let beacon = common::spawn_ready(command).expect("the beacon");
    let scan = full_scan(&host());
    let rows = rows_of(&scan, beacon.int("inode"));
    assert_eq!(unheld(&rows), [beacon.pid], "{rows:?}");
    assert!(!rows.iter().any(|s| s.pid == decoy.pid), "{rows:?}");
}

/// Red team (known gap of the send ledger, closed): an unsigned program makes a
/// socket, hands it to `/usr/bin/cat` and never sends on it itself: cat, the
/// only sender, holds it and is trusted. The ledger now keeps who made each
/// socket (a `cgroup/sock_create` program), and a send by another process
/// records the maker too.
#[test]
fn a_socket_only_a_trusted_program_sends_on_is_its_unsigned_makers_row() {
    if !start_ledger("a_socket_only_a_trusted_program_sends_on_is_its_unsigned_makers_row") {
        return;
    }
    assert_eq!(send_ledger::status(), "running");
    let _full_scan = common::FullScanLock::shared();
    let attacker = common::attacker("catonly");
    let _kill = common::KillUser(attacker.name.clone());
    let python = attacker.unsigned_python_copy("maker", "catonly");
    let maker = sender(&attacker, &python, "catonly");
    let scan = full_scan(&host());
    let rows = rows_of(&scan, maker.int("inode"));
    let cat = maker.int("cat") as i32;
    assert!(rows.iter().any(|s| s.pid == cat && s.fd == 1), "{rows:?}");
    assert_eq!(unheld(&rows), [maker.pid], "{rows:?}");
}

/// Red team round 2: the implant's sends are made by a grandchild whose
/// intermediate exited first (reparented to init: its parent at the send is
/// not the implant), or by a child that execs a fresh copy of the code (another
/// image). The ledger keeps who forked each process: the implant, a forker on
/// record of the same user, alive, is given the socket.
#[test]
fn a_double_forked_or_re_exec_d_sender_leads_to_the_implant() {
    if !start_ledger("a_double_forked_or_re_exec_d_sender_leads_to_the_implant") {
        return;
    }
    assert_eq!(send_ledger::status(), "running");
    let _full_scan = common::FullScanLock::shared();
    let attacker = common::attacker("dfork");
    let _kill = common::KillUser(attacker.name.clone());
    let python = attacker.unsigned_python_copy("implant", "dfork");
    let copy = attacker.unsigned_python_copy("fresh", "dfork-copy");
    let send = "import os, socket\n\
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                s.sendto(b'beacon', ('127.0.0.1', 9))\n\
                print(f'inode={os.fstat(s.fileno()).st_ino}', flush=True)\n";
    // `implant -c SCRIPT HOW COPY SEND`: the implant forks; the child sends
    // through a grandchild after it exits, or execs COPY to run SEND.
    let script = "import os, sys, time\n\
         how, copy, send = sys.argv[1], sys.argv[2], sys.argv[3]\n\
         child = os.fork()\n\
         if child == 0:\n\
         \x20   if how == 'exec-copy':\n\
         \x20       os.execv(copy, [copy, '-c', send])\n\
         \x20   if os.fork():\n\
         \x20       os._exit(0)\n\
         \x20   time.sleep(0.3)\n\
         \x20   exec(send)\n\
         \x20   os._exit(0)\n\
         os.waitpid(child, 0)\n\
         time.sleep(0.6)\n\
         print('ready', flush=True)\n\
         time.sleep(300)\n";
    for how in ["double-fork", "exec-copy"] {
        let mut command = attacker.command(&python);
        command.arg("-c").arg(script).arg(how).arg(&copy).arg(send);
        let implant = common::spawn_ready(command).expect("the implant");
        let scan = full_scan(&host());
        let rows = rows_of(&scan, implant.int("inode"));
        assert_eq!(unheld(&rows), [implant.pid], "{how}: {rows:?}");
    }
}

/// The red team's third round, as one program. `chain N`: the implant forks a
/// chain of N processes, each intermediate exiting once it has forked; the
/// last sends (its forkers on record are dead intermediates, its parent init).
/// `leader`: the implant forks I, I forks S and exits; S's leader calls
/// `pthread_exit` and a second thread sends (the leader's exit was taken for
/// the process's). `cat`: a child makes a connected UDP socket and execs
/// `/usr/bin/cat` on it (the maker and the sender share a pid); the implant
/// sends through cat. `maker`: the implant forks I, I forks M and exits; M
/// makes the socket, starts cat on it and exits (the maker's forkers lead to
/// the implant). `xargs`: the implant runs `timeout timeout timeout xargs`,
/// which runs a copy of it that sends (four live trusted forkers fill the
/// sender's slots; red team round 4). Each prints `inode=N`, then the implant
/// `ready`.
const ROUND_THREE: &str = r#"
#define _GNU_SOURCE
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
static struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = 0x0900};
static void beacon(void) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  to.sin_addr.s_addr = htonl(0x7f000001);
  sendto(s, "beacon", 6, 0, (void *)&to, sizeof to);
  struct stat st; fstat(s, &st);
  printf("inode=%lu\n", (unsigned long)st.st_ino); fflush(stdout);
  close(s);
}
static void *second(void *unused) { usleep(150000); beacon(); exit(0); return unused; }
int main(int argc, char **argv) {
  if (!strcmp(argv[1], "s")) { beacon(); return 0; }
  usleep(100000);
  if (!strcmp(argv[1], "xargs")) {
    int p[2]; pipe(p);
    if (!fork()) {
      dup2(p[0], 0); close(p[0]); close(p[1]);
      execl("/usr/bin/timeout", "timeout", "1000", "/usr/bin/timeout", "1000",
            "/usr/bin/timeout", "1000", "/usr/bin/xargs", "-L1", argv[0], "s", (char *)0);
      _exit(1);
    }
    close(p[0]); usleep(300000); write(p[1], "x\n", 2);
  } else if (!strcmp(argv[1], "chain")) {
    int n = atoi(argv[2]);
    if (!fork()) {
      for (int i = 1; i < n; i++) if (fork()) _exit(0);
      usleep(200000); beacon(); _exit(0);
    }
  } else if (!strcmp(argv[1], "leader")) {
    if (!fork()) {
      if (fork()) _exit(0);
      pthread_t t; pthread_create(&t, 0, second, 0); pthread_exit(0);
    }
  } else if (!strcmp(argv[1], "maker")) {
    int p[2]; pipe(p);
    if (!fork()) {
      if (fork()) _exit(0);
      usleep(100000);
      int s = socket(AF_INET, SOCK_DGRAM, 0);
      to.sin_addr.s_addr = htonl(0x7f000001);
      connect(s, (void *)&to, sizeof to);
      struct stat st; fstat(s, &st);
      printf("inode=%lu\n", (unsigned long)st.st_ino); fflush(stdout);
      if (!fork()) {
        dup2(p[0], 0); dup2(s, 1); close(p[0]); close(p[1]); close(s);
        execl("/usr/bin/cat", "cat", (char *)0); _exit(1);
      }
      _exit(0);
    }
    close(p[0]); usleep(300000); write(p[1], "beacon\n", 7);
  } else {
    int p[2]; pipe(p);
    if (!fork()) {
      int s = socket(AF_INET, SOCK_DGRAM, 0);
      to.sin_addr.s_addr = htonl(0x7f000001);
      connect(s, (void *)&to, sizeof to);
      struct stat st; fstat(s, &st);
      printf("inode=%lu\n", (unsigned long)st.st_ino); fflush(stdout);
      dup2(p[0], 0); dup2(s, 1); close(p[0]); close(p[1]); close(s);
      execl("/usr/bin/cat", "cat", (char *)0); _exit(1);
    }
    close(p[0]); usleep(200000); write(p[1], "beacon\n", 7);
  }
  usleep(600000);
  printf("ready\n"); fflush(stdout);
  for (;;) pause();
}
"#;

/// Red team round 3: a fork chain of five and of eight (R3-A), a leader that
/// exits before its thread sends (R3-B), a socket made and then exec'd into cat
/// (R3-C), a gone maker whose intermediate exited (R3-D). The implant, alive,
/// is given each socket.
#[test]
fn chains_exited_leaders_and_makers_that_exec_lead_to_the_implant() {
    if !start_ledger("chains_exited_leaders_and_makers_that_exec_lead_to_the_implant") {
        return;
    }
    let _full_scan = common::FullScanLock::shared();
    let attacker = common::attacker("round3");
    let _kill = common::KillUser(attacker.name.clone());
    let Some(binary) = common::compiled(&attacker, "implant3", ROUND_THREE) else {
        return common::skip(
            "chains_exited_leaders_and_makers_that_exec_lead_to_the_implant",
            "no C compiler",
        );
    };
    let mut missed = Vec::new();
    let ways: [&[&str]; 6] = [
        &["chain", "5"],
        &["chain", "8"],
        &["leader"],
        &["cat"],
        &["maker"],
        &["xargs"],
    ];
    for how in ways {
        let mut command = attacker.command(&binary);
        command.args(how);
        let implant = common::spawn_ready(command).expect("the implant");
        let scan = full_scan(&host());
        let rows = rows_of(&scan, implant.int("inode"));
        if !unheld(&rows).contains(&implant.pid) {
            missed.push(format!("{how:?}: {rows:?}"));
        }
    }
    assert!(missed.is_empty(), "the implant was not given: {missed:#?}");
}
