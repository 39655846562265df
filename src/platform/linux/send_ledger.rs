//! Who sent on each socket: a ledger the kernel keeps as sends happen, so a full
//! scan can tell a socket used by a process it did not find holding it.
//!
//! A scan finds sockets through the processes that hold them at one moment, and
//! the census (`unseen_sockets`) through the tables at two. The red team beat
//! both: a socket taken off the tables between sends (`connect(AF_UNSPEC)`), one
//! made anew faster than a scan lasts, a holder that forks away from the scan,
//! or an untrusted process that sends on a socket a trusted one (`sleep`) holds a
//! copy of, so the scan finds the socket through the trusted holder only.
//!
//! A BTF tracepoint program on `sock_send_length` (fired by every send that
//! reaches a socket: `send*`, `write`, io_uring, once the tracepoint is on)
//! records, for each IPv4/IPv6 datagram or raw socket a user other than root
//! sends on, the socket's facts and the sender: tgid, uid, leader start,
//! command name, executable (device, inode), and when. An entry not sent on for
//! [`SEND_WINDOW_SECS`] is dropped when the ledger is read, so the ledger holds
//! the sockets users sent on lately. TCP is left out: its sends are the hot
//! path of a busy server, and SOCKS is judged per connection. (An fentry or
//! LSM program on the send path would see the same; some kernels refuse
//! those, as this one does, while tracepoints load.)
//!
//! The ledger is made once per process (`start`): the extension makes it when
//! it starts serving, so it sees every send since; a one-shot scan does not pay
//! to make it. It is a hash of [`CAPACITY`] entries: a send it had no room for
//! is counted, and a scan that finds the count grown says its result is
//! incomplete. The offsets come from the kernel's BTF, checked as the fd
//! iterator's are; any doubt and there is no ledger (said in the log; scans
//! rely on the census alone).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Mutex, OnceLock};

use super::boot_ns;
use super::fd_iterator::{
    bpf_call, bpf_fd, create_map, exact_here, insn, io_error, load_map, load_program,
    load_program_of, load_tracing_program, map_lookup, offset16, read_iterator, read_vmlinux_btf,
    sock_layout, Assembler, Btf, Endpoints, Expect, FdIterator, FdIteratorError, Insn,
    LinkCreateAttr, MapCreateAttr, MapElemAttr, SockLayout, ADD64_IMM, AF_INET, AF_INET6,
    BPF_F_NO_PREALLOC, BPF_LINK_CREATE, BPF_MAP_CREATE, BPF_MAP_DELETE_ELEM, BPF_MAP_LOOKUP_ELEM,
    BPF_MAP_TYPE_HASH, CALL, EXIT, EXIT_TRACEPOINT, FORK_TRACEPOINT, ITER_TASK, JEQ_IMM, JEQ_REG,
    JNE_IMM, JNE_REG, LDX_DW, LDX_H, LDX_W, MOV64_IMM, MOV64_REG, SEND_TRACEPOINT, STX_DW, STX_H,
    STX_W, ST_B, ST_DW, ST_W,
};

/// (socket, sending process) pairs of users' sends within
/// [`SEND_WINDOW_SECS`], at most: ~2 MiB of kernel memory, preallocated. A user
/// who fills it makes scans say they are incomplete.
pub const CAPACITY: u32 = 16384;
/// How long a send is kept: a scan reports the senders of this long. The
/// extension's sampler reads every 15 s; packs every 60 s, give or take
/// osquery's splay (red team: a 60 s window let sends just after one pack run
/// expire before the next).
pub const SEND_WINDOW_SECS: u64 = 120;
/// Entries visited per read at most (a key deleted while the ledger is read
/// makes the kernel start over from the first).
const MAX_STEPS: u32 = 4 * CAPACITY;

/// Where each field of a ledger entry's value is.
mod at {
    pub const TGID: i16 = 0;
    pub const UID: i16 = 4;
    pub const LEADER_START: i16 = 8;
    pub const EXE_INODE: i16 = 16;
    pub const EXE_DEV: i16 = 24;
    pub const FAMILY: i16 = 28;
    pub const TYPE: i16 = 30;
    pub const PROTOCOL: i16 = 32;
    /// Host order.
    pub const LOCAL_PORT: i16 = 34;
    /// Network order.
    pub const REMOTE_PORT: i16 = 36;
    /// One byte: 1 when the entry is the socket's maker's, written at a send by
    /// another process (see `creator_program`).
    pub const MADE: i16 = 38;
    pub const SENT_AT: i16 = 40;
    pub const COMM: i16 = 48;
    pub const LOCAL_V4: i16 = 64;
    pub const REMOTE_V4: i16 = 68;
    pub const NET: i16 = 72;
    pub const LOCAL_V6: i16 = 80;
    pub const REMOTE_V6: i16 = 96;
    pub const PARENT_TGID: i16 = 112;
    pub const PARENT_START: i16 = 120;
    /// [`LINEAGE_DEPTH`] tgids, then as many leader starts: the lineage (see
    /// `fork_program`), copied at the send.
    pub const FORKERS: i16 = 128;
    pub const FORKER_STARTS: i16 = 144;
}
/// Forkers kept per process: the one that forked it, and that one's three.
pub const LINEAGE_DEPTH: usize = 4;
/// Bytes of an entry's value: the forkers' starts end it.
pub const VALUE_BYTES: usize = 176;
const _: () = assert!(
    at::FORKERS as usize + 4 * LINEAGE_DEPTH == at::FORKER_STARTS as usize
        && at::FORKER_STARTS as usize + 8 * LINEAGE_DEPTH == VALUE_BYTES
        && VALUE_BYTES % 8 == 0
);

/// An entry's key: the socket's inode, then the sender's tgid (and 4 zero
/// bytes). One entry per sender: a trusted process sending on the socket after
/// an untrusted one does not take the untrusted one's place.
pub const KEY_BYTES: usize = 16;

/// The value on the stack at `r10 - VALUE_BYTES`, its key below it, and the
/// counter's key below that.
const VALUE: i16 = -(VALUE_BYTES as i16);
const KEY: i16 = VALUE - KEY_BYTES as i16;
const KEY_TGID: i16 = KEY + 8;
const COUNTER_KEY: i16 = KEY - 4;

const fn on_stack(field: i16) -> i16 {
    VALUE + field
}

// Helpers (include/uapi/linux/bpf.h, `enum bpf_func_id`).
const HELPER_MAP_UPDATE: i32 = 2;
const HELPER_MAP_DELETE: i32 = 3;
/// `BPF_ANY`: an update that makes or replaces the entry.
const BPF_ANY: i32 = 0;
/// `BPF_NOEXIST`: an update that makes an entry only.
const BPF_NOEXIST: i32 = 1;
const HELPER_PID_TGID: i32 = 14;
const HELPER_UID_GID: i32 = 15;
const HELPER_COMM: i32 = 16;
const HELPER_BOOT_NS: i32 = 125;
const HELPER_CURRENT_TASK_BTF: i32 = 158;
/// `bpf_sk_storage_get(map, sk, value, flags)`.
const HELPER_SK_STORAGE_GET: i32 = 107;
const SK_STORAGE_GET_F_CREATE: i32 = 1;
const MOV32_REG: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X: zero-extends
const RSH64_IMM: u8 = 0x77;
/// `BPF_STX | BPF_ATOMIC | BPF_DW` with `imm = BPF_ADD`: `lock *(u64 *)(dst + off) += src`.
const ATOMIC_ADD_DW: u8 = 0xdb;
const SOCK_STREAM: i32 = 1;

/// Where the program reads what it records, from the running kernel's BTF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderLayout {
    /// BTF id of the tracepoint's typedef: what the program attaches to.
    pub tracepoint: u32,
    /// The same, of the fork and exit tracepoints (the lineage).
    pub fork_tracepoint: u32,
    pub exit_tracepoint: u32,
    pub task_pid: u32,
    /// BTF id of the FUNC `bpf_iter_task`: the pass that gives the processes
    /// already running their lineage (`None`: they have none).
    pub iter_task: Option<u32>,
    /// `task->signal`, then `signal->live.counter`: threads of the group alive.
    pub task_signal: u32,
    pub signal_live: u32,
    pub sock: SockLayout,
    /// `sk->sk_socket`, then `socket->file`.
    pub sock_socket: u32,
    pub socket_file: u32,
    pub file_f_inode: u32,
    pub inode_i_ino: u32,
    pub inode_i_sb: u32,
    pub sb_s_dev: u32,
    pub task_tgid: u32,
    pub task_real_parent: u32,
    pub task_group_leader: u32,
    pub task_start_boottime: u32,
    pub task_mm: u32,
    pub mm_exe_file: u32,
}

/// Finds what the program needs in a BTF blob; any doubt is an error.
pub fn parse_sender_layout(blob: &[u8]) -> Result<SenderLayout, FdIteratorError> {
    let btf = Btf::parse(blob)?;
    Ok(SenderLayout {
        tracepoint: btf.typedef_named(SEND_TRACEPOINT)?,
        fork_tracepoint: btf.typedef_named(FORK_TRACEPOINT)?,
        exit_tracepoint: btf.typedef_named(EXIT_TRACEPOINT)?,
        task_pid: btf.member_offset("task_struct", "pid", 4)?,
        iter_task: btf.func_named(ITER_TASK).ok(),
        task_signal: btf.member_offset("task_struct", "signal", 0)?,
        signal_live: btf.path_offset("signal_struct", &["live", "counter"], Expect::Int(4))?,
        sock: sock_layout(&btf)?,
        sock_socket: btf.member_offset("sock", "sk_socket", 0)?,
        socket_file: btf.member_offset("socket", "file", 0)?,
        file_f_inode: btf.member_offset("file", "f_inode", 0)?,
        inode_i_ino: btf.member_offset("inode", "i_ino", 8)?,
        inode_i_sb: btf.member_offset("inode", "i_sb", 0)?,
        sb_s_dev: btf.member_offset("super_block", "s_dev", 4)?,
        task_tgid: btf.member_offset("task_struct", "tgid", 4)?,
        task_real_parent: btf.member_offset("task_struct", "real_parent", 0)?,
        task_group_leader: btf.member_offset("task_struct", "group_leader", 0)?,
        task_start_boottime: btf.member_offset("task_struct", "start_boottime", 8)?,
        task_mm: btf.member_offset("task_struct", "mm", 0)?,
        mm_exe_file: btf.path_offset("mm_struct", &["exe_file"], Expect::Pointer)?,
    })
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Label {
    Inet,
    Net,
    Parent,
    Exe,
    Identified,
    Lineaged,
    Maker,
    Recorded,
    Made,
    Allow,
    /// The fork program's: the next forker to look at, and the next slot to
    /// try for forker `i`.
    Candidate(i16),
    Slot(i16, i16),
    Exit,
}

/// `r0 = bpf_map_update_elem(map, r10 + key, r10 + value, flags)`.
fn map_update(a: &mut Assembler<Label>, map: &OwnedFd, key: i16, value: i16, flags: i32) {
    load_map(a, 1, map);
    a.emit(insn(MOV64_REG, 2, 10, 0, 0));
    a.emit(insn(ADD64_IMM, 2, 0, 0, i32::from(key)));
    a.emit(insn(MOV64_REG, 3, 10, 0, 0));
    a.emit(insn(ADD64_IMM, 3, 0, 0, i32::from(value)));
    a.emit(insn(MOV64_IMM, 4, 0, 0, flags));
    a.emit(insn(CALL, 0, 0, 0, HELPER_MAP_UPDATE));
}

/// `bpf_map_delete_elem(map, r10 + key)`.
fn map_delete(a: &mut Assembler<Label>, map: &OwnedFd, key: i16) {
    load_map(a, 1, map);
    a.emit(insn(MOV64_REG, 2, 10, 0, 0));
    a.emit(insn(ADD64_IMM, 2, 0, 0, i32::from(key)));
    a.emit(insn(CALL, 0, 0, 0, HELPER_MAP_DELETE));
}

/// Copies [`LINEAGE_DEPTH`] forkers (tgids, then leader starts) from
/// `from + tgids/starts` to `to + tgids/starts`: a lineage into a ledger value,
/// a maker's record, or back.
fn copy_forkers(
    a: &mut Assembler<Label>,
    (from, from_tgids, from_starts): (u8, i16, i16),
    (to, to_tgids, to_starts): (u8, i16, i16),
) {
    for i in 0..LINEAGE_DEPTH as i16 {
        a.emit(insn(LDX_W, 2, from, from_tgids + 4 * i, 0));
        a.emit(insn(STX_W, to, 2, to_tgids + 4 * i, 0));
        a.emit(insn(LDX_DW, 2, from, from_starts + 8 * i, 0));
        a.emit(insn(STX_DW, to, 2, to_starts + 8 * i, 0));
    }
}

/// Writes who the current task is at `base + at(field)`: its tgid, when (now),
/// its command name, its leader's start, its parent and the parent's start,
/// and its executable (inode, device); a field it cannot read stays as it was
/// (zeroed). Uses r0-r6.
fn identify_current(
    a: &mut Assembler<Label>,
    layout: &SenderLayout,
    base: u8,
    at: fn(i16) -> i16,
) -> Result<(), FdIteratorError> {
    use Label::*;
    a.emit(insn(CALL, 0, 0, 0, HELPER_PID_TGID));
    a.emit(insn(RSH64_IMM, 0, 0, 0, 32));
    a.emit(insn(STX_W, base, 0, at(at::TGID), 0));
    a.emit(insn(CALL, 0, 0, 0, HELPER_BOOT_NS));
    a.emit(insn(STX_DW, base, 0, at(at::SENT_AT), 0));
    a.emit(insn(MOV64_REG, 1, base, 0, 0));
    a.emit(insn(ADD64_IMM, 1, 0, 0, i32::from(at(at::COMM))));
    a.emit(insn(MOV64_IMM, 2, 0, 0, 16));
    a.emit(insn(CALL, 0, 0, 0, HELPER_COMM));
    a.emit(insn(CALL, 0, 0, 0, HELPER_CURRENT_TASK_BTF));
    a.emit(insn(MOV64_REG, 6, 0, 0, 0)); // r6 = the current task
    let leader = (layout.task_group_leader, layout.task_start_boottime);
    a.copy_leader_start(6, leader, base, at(at::LEADER_START), Parent)?;
    // The parent, and its leader's start: a sender that forks a child per send
    // lives on as that parent.
    a.label(Parent);
    a.emit(insn(LDX_DW, 2, 6, offset16(layout.task_real_parent)?, 0));
    a.jump(JEQ_IMM, 2, 0, Exe);
    a.emit(insn(LDX_W, 3, 2, offset16(layout.task_tgid)?, 0));
    a.emit(insn(STX_W, base, 3, at(at::PARENT_TGID), 0));
    a.copy_leader_start(2, leader, base, at(at::PARENT_START), Exe)?;
    a.label(Exe);
    a.emit(insn(LDX_DW, 2, 6, offset16(layout.task_mm)?, 0));
    a.jump(JEQ_IMM, 2, 0, Identified);
    a.emit(insn(LDX_DW, 2, 2, offset16(layout.mm_exe_file)?, 0));
    a.jump(JEQ_IMM, 2, 0, Identified);
    a.emit(insn(LDX_DW, 2, 2, offset16(layout.file_f_inode)?, 0));
    a.jump(JEQ_IMM, 2, 0, Identified);
    a.emit(insn(LDX_DW, 3, 2, offset16(layout.inode_i_ino)?, 0));
    a.emit(insn(STX_DW, base, 3, at(at::EXE_INODE), 0));
    a.emit(insn(LDX_DW, 2, 2, offset16(layout.inode_i_sb)?, 0));
    a.jump(JEQ_IMM, 2, 0, Identified);
    a.emit(insn(LDX_W, 3, 2, offset16(layout.sb_s_dev)?, 0));
    a.emit(insn(STX_W, base, 3, at(at::EXE_DEV), 0));
    a.label(Identified);
    Ok(())
}

/// The program on the tracepoint `sock_send_length(struct sock *, int ret,
/// int flags)`: one entry per (datagram or raw, IPv4 or IPv6) socket a user
/// other than root sends on and process that sends on it, its last send; a
/// send the ledger has no room for adds one to `dropped[0]`.
pub fn send_program(
    layout: &SenderLayout,
    ledger: &OwnedFd,
    dropped: &OwnedFd,
    makers: Option<&OwnedFd>,
    lineages: Option<&OwnedFd>,
) -> Result<Vec<Insn>, FdIteratorError> {
    use Label::*;
    let sock = &layout.sock;
    let mut a = Assembler::<Label>::default();
    a.emit(insn(LDX_DW, 7, 1, 0, 0)); // r7 = the struct sock
    a.jump(JEQ_IMM, 7, 0, Exit);
    a.emit(insn(LDX_H, 2, 7, offset16(sock.socket_type)?, 0));
    a.jump(JEQ_IMM, 2, SOCK_STREAM, Exit);
    a.emit(insn(LDX_H, 8, 7, offset16(sock.family)?, 0));
    a.jump(JEQ_IMM, 8, AF_INET, Inet);
    a.jump(JNE_IMM, 8, AF_INET6, Exit);
    a.label(Inet);
    a.emit(insn(CALL, 0, 0, 0, HELPER_UID_GID));
    a.emit(insn(MOV32_REG, 0, 0, 0, 0)); // the uid: the low half
    a.jump(JEQ_IMM, 0, 0, Exit); // root's sends are not kept (see `CAPACITY`)
    a.emit(insn(MOV64_REG, 9, 0, 0, 0));
    // The key: the socket's inode, through its file.
    a.emit(insn(LDX_DW, 2, 7, offset16(layout.sock_socket)?, 0));
    a.jump(JEQ_IMM, 2, 0, Exit);
    a.emit(insn(LDX_DW, 2, 2, offset16(layout.socket_file)?, 0));
    a.jump(JEQ_IMM, 2, 0, Exit);
    a.emit(insn(LDX_DW, 2, 2, offset16(layout.file_f_inode)?, 0));
    a.jump(JEQ_IMM, 2, 0, Exit);
    a.emit(insn(LDX_DW, 2, 2, offset16(layout.inode_i_ino)?, 0));
    a.emit(insn(STX_DW, 10, 2, KEY, 0));
    // The value zeroed whole: the helper may only read initialised stack.
    for slot in 0..(VALUE_BYTES / 8) as i16 {
        a.emit(insn(ST_DW, 10, 0, on_stack(slot * 8), 0));
    }
    a.emit(insn(STX_W, 10, 9, on_stack(at::UID), 0));
    a.emit(insn(STX_H, 10, 8, on_stack(at::FAMILY), 0));
    a.copy(LDX_H, STX_H, 7, sock.socket_type, on_stack(at::TYPE))?;
    a.copy(LDX_H, STX_H, 7, sock.protocol, on_stack(at::PROTOCOL))?;
    a.copy_endpoints(
        7,
        sock,
        Endpoints {
            local_port: on_stack(at::LOCAL_PORT),
            remote_port: on_stack(at::REMOTE_PORT),
            local_v4: on_stack(at::LOCAL_V4),
            remote_v4: on_stack(at::REMOTE_V4),
            local_v6: on_stack(at::LOCAL_V6),
            remote_v6: on_stack(at::REMOTE_V6),
        },
    )?;
    a.emit(insn(LDX_DW, 3, 7, offset16(sock.net)?, 0));
    a.jump(JEQ_IMM, 3, 0, Net);
    a.copy(LDX_W, STX_W, 3, sock.net_inum, on_stack(at::NET))?;
    a.label(Net);
    identify_current(&mut a, layout, 10, on_stack)?;
    // The sender's forkers, from its lineage (if it is the process the entry
    // was made for: the same leader start).
    if let Some(lineages) = lineages {
        a.emit(insn(LDX_W, 2, 10, on_stack(at::TGID), 0));
        a.emit(insn(STX_W, 10, 2, COUNTER_KEY, 0));
        map_lookup(&mut a, lineages, COUNTER_KEY);
        a.jump(JEQ_IMM, 0, 0, Lineaged);
        a.emit(insn(LDX_DW, 2, 0, lineage::START, 0));
        a.emit(insn(LDX_DW, 3, 10, on_stack(at::LEADER_START), 0));
        a.jump_reg(JNE_REG, 2, 3, Lineaged);
        copy_forkers(
            &mut a,
            (0, lineage::TGIDS, lineage::STARTS),
            (10, on_stack(at::FORKERS), on_stack(at::FORKER_STARTS)),
        );
        a.label(Lineaged);
    }
    a.emit(insn(LDX_W, 2, 10, on_stack(at::TGID), 0));
    a.emit(insn(STX_W, 10, 2, KEY_TGID, 0));
    a.emit(insn(ST_W, 10, 0, KEY_TGID + 4, 0));
    record(&mut a, ledger, dropped, Recorded);
    // The socket's maker, when another process, or another image of this
    // one, made it (red team: made, then exec'd into cat): an entry of its
    // own (its key marked), so a program that makes a socket and has trusted
    // ones send on it is a sender too.
    if let Some(makers) = makers {
        load_map(&mut a, 1, makers);
        a.emit(insn(MOV64_REG, 2, 7, 0, 0));
        a.emit(insn(MOV64_IMM, 3, 0, 0, 0));
        a.emit(insn(MOV64_IMM, 4, 0, 0, 0));
        a.emit(insn(CALL, 0, 0, 0, HELPER_SK_STORAGE_GET));
        a.jump(JEQ_IMM, 0, 0, Exit);
        a.emit(insn(MOV64_REG, 8, 0, 0, 0)); // r8 = what the maker left
        a.emit(insn(LDX_W, 2, 8, at::TGID, 0));
        a.jump(JEQ_IMM, 2, 0, Exit);
        a.emit(insn(LDX_W, 3, 10, on_stack(at::TGID), 0));
        a.jump_reg(JNE_REG, 2, 3, Maker);
        a.emit(insn(LDX_DW, 3, 8, at::LEADER_START, 0));
        a.emit(insn(LDX_DW, 4, 10, on_stack(at::LEADER_START), 0));
        a.jump_reg(JNE_REG, 3, 4, Maker);
        a.emit(insn(LDX_DW, 3, 8, at::EXE_INODE, 0));
        a.emit(insn(LDX_DW, 4, 10, on_stack(at::EXE_INODE), 0));
        a.jump_reg(JEQ_REG, 3, 4, Exit);
        a.label(Maker);
        a.emit(insn(STX_W, 10, 2, KEY_TGID, 0));
        a.emit(insn(ST_W, 10, 0, KEY_TGID + 4, 1));
        for (load, store, field) in [
            (LDX_W, STX_W, at::TGID),
            (LDX_W, STX_W, at::UID),
            (LDX_DW, STX_DW, at::LEADER_START),
            (LDX_DW, STX_DW, at::EXE_INODE),
            (LDX_W, STX_W, at::EXE_DEV),
            (LDX_DW, STX_DW, at::COMM),
            (LDX_DW, STX_DW, at::COMM + 8),
            (LDX_W, STX_W, at::PARENT_TGID),
            (LDX_DW, STX_DW, at::PARENT_START),
        ] {
            a.emit(insn(load, 2, 8, field, 0));
            a.emit(insn(store, 10, 2, on_stack(field), 0));
        }
        // The maker's forkers, as it made the socket.
        copy_forkers(
            &mut a,
            (8, at::FORKERS, at::FORKER_STARTS),
            (10, on_stack(at::FORKERS), on_stack(at::FORKER_STARTS)),
        );
        a.emit(insn(ST_B, 10, 0, on_stack(at::MADE), 1));
        record(&mut a, ledger, dropped, Made);
    }
    a.label(Exit);
    a.emit(insn(MOV64_IMM, 0, 0, 0, 0));
    a.emit(insn(EXIT, 0, 0, 0, 0));
    a.finish()
}

/// Processes whose lineage is kept at most (live processes forked since the
/// ledger started, root's included: an implant a root helper started must be
/// found alive); a fork with no room is counted as a lost send.
pub const LINEAGE_CAPACITY: u32 = 65536;

/// A lineage entry (by tgid): the process's leader start, then the tgids and
/// leader starts of [`LINEAGE_DEPTH`] forkers, nearest first.
mod lineage {
    pub const START: i16 = 0;
    pub const TGIDS: i16 = 8;
    pub const STARTS: i16 = 24;
    pub const BYTES: usize = 56;
}
const _: () = assert!(
    lineage::TGIDS as usize + 4 * LINEAGE_DEPTH == lineage::STARTS as usize
        && lineage::STARTS as usize + 8 * LINEAGE_DEPTH == lineage::BYTES
);

/// The program on `sched_process_fork(struct task_struct *parent, struct
/// task_struct *child)`, `parent` being the forking task: the new process's
/// lineage is its forker, then those of its forker's forkers still alive
/// (their own lineage entries there with the same start), nearest first: a
/// chain of intermediates that exit leaves the live ancestor in reach (red
/// team: a chain of five hid the implant). A `CLONE_PARENT` child is given the
/// real parent of its forker, a double-forked one init, but its forkers stay on
/// record. Threads are not kept.
pub fn fork_program(
    layout: &SenderLayout,
    lineages: &OwnedFd,
    dropped: &OwnedFd,
) -> Result<Vec<Insn>, FdIteratorError> {
    use Label::*;
    const VALUE: i16 = -(lineage::BYTES as i16);
    const KEY: i16 = VALUE - 4;
    const FORKER_KEY: i16 = KEY - 4;
    /// The forker's entry, copied: the map's value may change under us.
    const FORKERS_OF: i16 = FORKER_KEY - lineage::BYTES as i16;
    const LOOKUP_KEY: i16 = FORKERS_OF - 4;
    let mut a = Assembler::<Label>::default();
    a.emit(insn(LDX_DW, 6, 1, 0, 0)); // r6 = the forking task
    a.emit(insn(LDX_DW, 7, 1, 8, 0)); // r7 = the new one
    a.jump(JEQ_IMM, 6, 0, Exit);
    a.jump(JEQ_IMM, 7, 0, Exit);
    a.emit(insn(LDX_W, 8, 7, offset16(layout.task_tgid)?, 0));
    a.emit(insn(LDX_W, 9, 6, offset16(layout.task_tgid)?, 0));
    a.jump_reg(JEQ_REG, 8, 9, Exit); // a thread
    a.emit(insn(STX_W, 10, 8, KEY, 0));
    a.emit(insn(STX_W, 10, 9, FORKER_KEY, 0));
    for slot in 0..(lineage::BYTES / 8) as i16 {
        a.emit(insn(ST_DW, 10, 0, VALUE + slot * 8, 0));
        a.emit(insn(ST_DW, 10, 0, FORKERS_OF + slot * 8, 0));
    }
    a.copy(
        LDX_DW,
        STX_DW,
        7,
        layout.task_start_boottime,
        VALUE + lineage::START,
    )?;
    a.emit(insn(STX_W, 10, 9, VALUE + lineage::TGIDS, 0));
    let leader = (layout.task_group_leader, layout.task_start_boottime);
    a.copy_leader_start(6, leader, 10, VALUE + lineage::STARTS, Inet)?;
    a.label(Inet);
    // The forker's own forkers, copied.
    map_lookup(&mut a, lineages, FORKER_KEY);
    a.jump(JEQ_IMM, 0, 0, Net);
    copy_forkers(
        &mut a,
        (0, lineage::TGIDS, lineage::STARTS),
        (
            10,
            FORKERS_OF + lineage::TGIDS,
            FORKERS_OF + lineage::STARTS,
        ),
    );
    // Each of them still alive goes in the next free slot (r9 counts the
    // slots filled; the forker took the first).
    a.emit(insn(MOV64_IMM, 9, 0, 0, 1));
    for i in 0..LINEAGE_DEPTH as i16 {
        let (tgid, start) = (lineage::TGIDS + 4 * i, lineage::STARTS + 8 * i);
        a.emit(insn(LDX_W, 2, 10, FORKERS_OF + tgid, 0));
        a.jump(JEQ_IMM, 2, 0, Net);
        a.emit(insn(STX_W, 10, 2, LOOKUP_KEY, 0));
        map_lookup(&mut a, lineages, LOOKUP_KEY);
        a.jump(JEQ_IMM, 0, 0, Candidate(i + 1));
        a.emit(insn(LDX_DW, 2, 0, lineage::START, 0));
        a.emit(insn(LDX_DW, 3, 10, FORKERS_OF + start, 0));
        a.jump_reg(JNE_REG, 2, 3, Candidate(i + 1));
        for slot in 1..LINEAGE_DEPTH as i16 {
            a.jump(JNE_IMM, 9, i32::from(slot), Slot(i, slot + 1));
            a.emit(insn(LDX_W, 2, 10, FORKERS_OF + tgid, 0));
            a.emit(insn(STX_W, 10, 2, VALUE + lineage::TGIDS + 4 * slot, 0));
            a.emit(insn(STX_DW, 10, 3, VALUE + lineage::STARTS + 8 * slot, 0));
            a.emit(insn(ADD64_IMM, 9, 0, 0, 1));
            a.goto(Candidate(i + 1));
            a.label(Slot(i, slot + 1));
        }
        // Every slot filled.
        a.goto(Net);
        a.label(Candidate(i + 1));
    }
    a.label(Net);
    map_update(&mut a, lineages, KEY, VALUE, BPF_ANY);
    a.jump(JEQ_IMM, 0, 0, Exit);
    count_lost(&mut a, dropped, FORKER_KEY, Exit);
    a.label(Exit);
    a.emit(insn(MOV64_IMM, 0, 0, 0, 0));
    a.emit(insn(EXIT, 0, 0, 0, 0));
    a.finish()
}

/// The `iter/task` program run once as the ledger starts: each process
/// already running is given a lineage (its start, and its parent now as its
/// forker), so the fork program counts it alive (red team round 4: an implant
/// started before the extension counted as dead). An entry the fork program
/// made meanwhile is kept.
pub fn existing_program(
    layout: &SenderLayout,
    lineages: &OwnedFd,
) -> Result<Vec<Insn>, FdIteratorError> {
    use Label::*;
    const VALUE: i16 = -(lineage::BYTES as i16);
    const KEY: i16 = VALUE - 4;
    let mut a = Assembler::<Label>::default();
    a.emit(insn(LDX_DW, 6, 1, 8, 0)); // r6 = ctx->task
    a.jump(JEQ_IMM, 6, 0, Exit);
    a.emit(insn(LDX_W, 2, 6, offset16(layout.task_tgid)?, 0));
    a.emit(insn(LDX_W, 3, 6, offset16(layout.task_pid)?, 0));
    a.jump_reg(JNE_REG, 2, 3, Exit); // leaders only
    a.emit(insn(STX_W, 10, 2, KEY, 0));
    for slot in 0..(lineage::BYTES / 8) as i16 {
        a.emit(insn(ST_DW, 10, 0, VALUE + slot * 8, 0));
    }
    a.copy(
        LDX_DW,
        STX_DW,
        6,
        layout.task_start_boottime,
        VALUE + lineage::START,
    )?;
    a.emit(insn(LDX_DW, 7, 6, offset16(layout.task_real_parent)?, 0));
    a.jump(JEQ_IMM, 7, 0, Net);
    a.copy(LDX_W, STX_W, 7, layout.task_tgid, VALUE + lineage::TGIDS)?;
    let leader = (layout.task_group_leader, layout.task_start_boottime);
    a.copy_leader_start(7, leader, 10, VALUE + lineage::STARTS, Net)?;
    a.label(Net);
    map_update(&mut a, lineages, KEY, VALUE, BPF_NOEXIST);
    a.label(Exit);
    a.emit(insn(MOV64_IMM, 0, 0, 0, 0));
    a.emit(insn(EXIT, 0, 0, 0, 0));
    a.finish()
}

/// The program on `sched_process_exit(struct task_struct *, …)`: a process's
/// lineage leaves with its last thread (`signal->live` is 0 once the group is
/// dead; red team: on the leader's own exit, a process whose leader called
/// `pthread_exit`, or whose other thread exec'd, lost its lineage alive).
pub fn exit_program(
    layout: &SenderLayout,
    lineages: &OwnedFd,
) -> Result<Vec<Insn>, FdIteratorError> {
    use Label::*;
    let mut a = Assembler::<Label>::default();
    a.emit(insn(LDX_DW, 6, 1, 0, 0));
    a.jump(JEQ_IMM, 6, 0, Exit);
    a.emit(insn(LDX_DW, 2, 6, offset16(layout.task_signal)?, 0));
    a.jump(JEQ_IMM, 2, 0, Exit);
    a.emit(insn(LDX_W, 3, 2, offset16(layout.signal_live)?, 0));
    a.jump(JNE_IMM, 3, 0, Exit);
    a.emit(insn(LDX_W, 2, 6, offset16(layout.task_tgid)?, 0));
    a.emit(insn(STX_W, 10, 2, -4, 0));
    map_delete(&mut a, lineages, -4);
    a.label(Exit);
    a.emit(insn(MOV64_IMM, 0, 0, 0, 0));
    a.emit(insn(EXIT, 0, 0, 0, 0));
    a.finish()
}

/// Adds one to `dropped[0]` (its key written at `r10 + key`), then `next`.
fn count_lost(a: &mut Assembler<Label>, dropped: &OwnedFd, key: i16, next: Label) {
    a.emit(insn(ST_W, 10, 0, key, 0));
    map_lookup(a, dropped, key);
    a.jump(JEQ_IMM, 0, 0, next);
    a.emit(insn(MOV64_IMM, 1, 0, 0, 1));
    a.emit(insn(ATOMIC_ADD_DW, 0, 1, 0, 0));
}

/// What a maker's record holds: the identity fields of an entry's value
/// (tgid, uid, leader start, executable, when, command, parent), at the same
/// offsets.
pub const MAKER_BYTES: usize = VALUE_BYTES;

// `struct bpf_sock` (include/uapi/linux/bpf.h): what a `cgroup/sock_create`
// program reads of the socket being made.
const BPF_SOCK_FAMILY: i16 = 4;
const BPF_SOCK_TYPE: i16 = 8;

/// The `cgroup/sock_create` program: when a user other than root makes an
/// IPv4/IPv6 datagram or raw socket, who made it, kept with the socket
/// (socket-local storage, freed with it). It never refuses a socket.
pub fn maker_program(
    layout: &SenderLayout,
    makers: &OwnedFd,
    lineages: Option<&OwnedFd>,
) -> Result<Vec<Insn>, FdIteratorError> {
    use Label::*;
    let mut a = Assembler::<Label>::default();
    a.emit(insn(MOV64_REG, 6, 1, 0, 0)); // r6 = ctx, the socket
    a.emit(insn(LDX_W, 2, 6, BPF_SOCK_TYPE, 0));
    a.jump(JEQ_IMM, 2, SOCK_STREAM, Allow);
    a.emit(insn(LDX_W, 2, 6, BPF_SOCK_FAMILY, 0));
    a.jump(JEQ_IMM, 2, AF_INET, Inet);
    a.jump(JNE_IMM, 2, AF_INET6, Allow);
    a.label(Inet);
    a.emit(insn(CALL, 0, 0, 0, HELPER_UID_GID));
    a.emit(insn(MOV32_REG, 0, 0, 0, 0));
    a.jump(JEQ_IMM, 0, 0, Allow);
    a.emit(insn(MOV64_REG, 9, 0, 0, 0));
    load_map(&mut a, 1, makers);
    a.emit(insn(MOV64_REG, 2, 6, 0, 0));
    a.emit(insn(MOV64_IMM, 3, 0, 0, 0));
    a.emit(insn(MOV64_IMM, 4, 0, 0, SK_STORAGE_GET_F_CREATE));
    a.emit(insn(CALL, 0, 0, 0, HELPER_SK_STORAGE_GET));
    a.jump(JEQ_IMM, 0, 0, Allow);
    a.emit(insn(MOV64_REG, 7, 0, 0, 0)); // r7 = the maker's record
    a.emit(insn(STX_W, 7, 9, at::UID, 0));
    identify_current(&mut a, layout, 7, |field| field)?;
    // Its forkers, from its lineage (if the entry is this process's).
    if let Some(lineages) = lineages {
        a.emit(insn(LDX_W, 2, 7, at::TGID, 0));
        a.emit(insn(STX_W, 10, 2, -4, 0));
        map_lookup(&mut a, lineages, -4);
        a.jump(JEQ_IMM, 0, 0, Allow);
        a.emit(insn(LDX_DW, 2, 0, lineage::START, 0));
        a.emit(insn(LDX_DW, 3, 7, at::LEADER_START, 0));
        a.jump_reg(JNE_REG, 2, 3, Allow);
        copy_forkers(
            &mut a,
            (0, lineage::TGIDS, lineage::STARTS),
            (7, at::FORKERS, at::FORKER_STARTS),
        );
    }
    a.label(Allow);
    a.emit(insn(MOV64_IMM, 0, 0, 0, 1));
    a.emit(insn(EXIT, 0, 0, 0, 0));
    a.finish()
}

/// A BTF blob of two types, what a socket-storage map must be given: `int`
/// (id 1, its key) and an array of ints of [`MAKER_BYTES`] (id 2, its value).
fn maker_btf() -> Vec<u8> {
    const KIND_INT: u32 = 1;
    const KIND_ARRAY: u32 = 3;
    let strings: &[u8] = b"\0int\0";
    let mut types = Vec::new();
    for word in [
        1,                // name "int"
        KIND_INT << 24,   // info
        4,                // size
        (1 << 24) | 32,   // signed, 32 bits
        0,                // no name
        KIND_ARRAY << 24, // info
        0,
        1, // element type
        1, // index type
        (MAKER_BYTES / 4) as u32,
    ] {
        types.extend_from_slice(&u32::to_ne_bytes(word));
    }
    let mut blob = Vec::new();
    blob.extend_from_slice(&0xEB9Fu16.to_ne_bytes());
    blob.extend_from_slice(&[1, 0]); // version 1, no flags
    for word in [
        24,
        0,
        types.len() as u32,
        types.len() as u32,
        strings.len() as u32,
    ] {
        blob.extend_from_slice(&u32::to_ne_bytes(word));
    }
    blob.extend_from_slice(&types);
    blob.extend_from_slice(strings);
    blob
}

/// Puts the entry on the stack into the ledger; a send it has no room for
/// adds one to `dropped[0]`.
fn record(a: &mut Assembler<Label>, ledger: &OwnedFd, dropped: &OwnedFd, next: Label) {
    map_update(a, ledger, KEY, VALUE, BPF_ANY);
    a.jump(JEQ_IMM, 0, 0, next);
    // No room: counted, so the scan can say so.
    count_lost(a, dropped, COUNTER_KEY, next);
    a.label(next);
}

/// A socket a user's process sent on, as the ledger recorded that process's
/// last send on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sending {
    /// The socket's inode.
    pub socket: u64,
    /// The sending process (thread-group id: `/proc`'s pid in the initial pid
    /// namespace) and its leader's start, ns since boot.
    pub tgid: u32,
    pub leader_start: u64,
    pub uid: u32,
    /// The sender's executable, as `stat` gives it (0, 0: not read).
    pub exe_dev: u64,
    pub exe_inode: u64,
    pub family: u16,
    /// `SOCK_DGRAM`, `SOCK_RAW`…
    pub socket_type: u16,
    pub protocol: u16,
    pub local: IpAddr,
    pub local_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
    /// The socket's network namespace's inode (0: not read).
    pub net: u32,
    /// When, ns since boot (`CLOCK_BOOTTIME`).
    pub sent_at: u64,
    /// The sending thread's command name.
    pub command: String,
    /// The entry is the socket's maker's, written at another process's send.
    pub made: bool,
    /// Who made the sender, nearest first: its parent at the send, then the
    /// processes that forked it and its forebears (tgid, leader start).
    pub ancestors: Vec<(u32, u64)>,
}

/// Parses one entry (`socket`, its key's inode; `value`, [`VALUE_BYTES`]).
pub fn parse_entry(socket: u64, value: &[u8]) -> Option<Sending> {
    if value.len() != VALUE_BYTES {
        return None;
    }
    let bytes = |at: i16, n: usize| value.get(at as usize..at as usize + n);
    let u16_at = |at: i16| Some(u16::from_ne_bytes(bytes(at, 2)?.try_into().ok()?));
    let u32_at = |at: i16| Some(u32::from_ne_bytes(bytes(at, 4)?.try_into().ok()?));
    let u64_at = |at: i16| Some(u64::from_ne_bytes(bytes(at, 8)?.try_into().ok()?));
    let v6 = |at: i16| -> Option<[u8; 16]> { bytes(at, 16)?.try_into().ok() };
    let family = u16_at(at::FAMILY)?;
    let (local, remote) = if i32::from(family) == AF_INET6 {
        (
            IpAddr::V6(Ipv6Addr::from(v6(at::LOCAL_V6)?)),
            IpAddr::V6(Ipv6Addr::from(v6(at::REMOTE_V6)?)),
        )
    } else {
        // Stored in network order, as the kernel keeps them.
        let v4 = |at: i16| -> Option<[u8; 4]> { bytes(at, 4)?.try_into().ok() };
        (
            IpAddr::V4(Ipv4Addr::from(v4(at::LOCAL_V4)?)),
            IpAddr::V4(Ipv4Addr::from(v4(at::REMOTE_V4)?)),
        )
    };
    let comm = bytes(at::COMM, 16)?;
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    Some(Sending {
        socket,
        tgid: u32_at(at::TGID)?,
        leader_start: u64_at(at::LEADER_START)?,
        uid: u32_at(at::UID)?,
        exe_dev: user_dev(u32_at(at::EXE_DEV)?),
        exe_inode: u64_at(at::EXE_INODE)?,
        family,
        socket_type: u16_at(at::TYPE)?,
        protocol: u16_at(at::PROTOCOL)?,
        local,
        local_port: u16_at(at::LOCAL_PORT)?,
        remote,
        remote_port: u16::from_be(u16_at(at::REMOTE_PORT)?),
        net: u32_at(at::NET)?,
        sent_at: u64_at(at::SENT_AT)?,
        command: String::from_utf8_lossy(comm.get(..end)?).into_owned(),
        made: bytes(at::MADE, 1)? == [1],
        ancestors: {
            let mut ancestors = Vec::new();
            let parent = (u32_at(at::PARENT_TGID)?, u64_at(at::PARENT_START)?);
            if parent.0 != 0 {
                ancestors.push(parent);
            }
            for i in 0..LINEAGE_DEPTH as i16 {
                let forker = (
                    u32_at(at::FORKERS + 4 * i)?,
                    u64_at(at::FORKER_STARTS + 8 * i)?,
                );
                if forker.0 != 0 && !ancestors.contains(&forker) {
                    ancestors.push(forker);
                }
            }
            ancestors
        },
    })
}

/// A kernel `dev_t` (12-bit major above a 20-bit minor) as `stat` encodes it.
pub fn user_dev(kernel: u32) -> u64 {
    let (major, minor) = (kernel >> 20, kernel & 0xf_ffff);
    libc::makedev(major, minor)
}

/// A live process's lineage: its leader start (ns since boot, exact) and its
/// forkers on record (tgid, leader start), nearest first.
pub type Lineage = (u64, Vec<(u32, u64)>);

/// What one read of the ledger gave.
#[derive(Debug, Default)]
pub struct LedgerRead {
    /// Sends within [`SEND_WINDOW_SECS`], by uid, socket, then sender.
    pub sendings: Vec<Sending>,
    /// Sends not recorded (no room) within [`SEND_WINDOW_SECS`]: every read in
    /// the window after a loss says so, whoever read first.
    pub dropped_since: u64,
    /// The clock the sends are on (`CLOCK_BOOTTIME`, ns) at the read.
    pub now: u64,
}

/// The ledger's maps and the link that keeps its program attached.
pub struct SendLedger {
    ledger: OwnedFd,
    dropped: OwnedFd,
    _link: OwnedFd,
    /// The maker program's link (to the cgroup v2 root), or why there is none.
    makers: Result<OwnedFd, String>,
    /// The lineage map and the fork and exit programs' links, or why there
    /// are none.
    lineages: Result<(OwnedFd, [OwnedFd; 2]), String>,
    /// Why the processes running when the ledger started have no lineage, or
    /// only some (their forks' lineages then stop at them).
    existing: Option<String>,
    /// Losses as reads saw them.
    losses: Mutex<Losses>,
}

/// The drop count the last read saw, and the losses of the window.
#[derive(Debug, Default)]
struct Losses {
    seen: u64,
    recent: u64,
    last_at: u64,
}

impl Losses {
    /// Takes the drop count `total` at `now`; the sends lost within the window.
    fn take(&mut self, total: u64, now: u64) -> u64 {
        let window = SEND_WINDOW_SECS * 1_000_000_000;
        let new = total.saturating_sub(self.seen);
        self.seen = self.seen.max(total);
        if new > 0 {
            if now.saturating_sub(self.last_at) > window {
                self.recent = 0;
            }
            self.recent = self.recent.saturating_add(new);
            self.last_at = now;
        }
        if self.recent > 0 && now.saturating_sub(self.last_at) <= window {
            self.recent
        } else {
            0
        }
    }
}

const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_MAP_TYPE_SK_STORAGE: u32 = 24;
const BPF_BTF_LOAD: libc::c_long = 18;
const BPF_PROG_TYPE_CGROUP_SOCK: u32 = 9;
const BPF_CGROUP_INET_SOCK_CREATE: u32 = 2;
const BPF_TRACE_RAW_TP: u32 = 23;

/// `union bpf_attr` as BPF_BTF_LOAD reads it.
#[repr(C)]
#[derive(Default)]
struct BtfLoadAttr {
    btf: u64,
    btf_log_buf: u64,
    btf_size: u32,
    btf_log_size: u32,
    btf_log_level: u32,
}

/// `union bpf_attr` as BPF_RAW_TRACEPOINT_OPEN reads it (no name: the
/// program's own tracepoint).
#[repr(C)]
#[derive(Default)]
struct RawTracepointAttr {
    name: u64,
    prog_fd: u32,
    pad: u32,
}

const _: () = {
    assert!(std::mem::size_of::<BtfLoadAttr>() == 32);
    assert!(std::mem::size_of::<RawTracepointAttr>() == 16);
};

/// The socket-local storage the maker program writes (with its BTF).
fn maker_storage() -> Result<OwnedFd, String> {
    let blob = maker_btf();
    let mut load = BtfLoadAttr {
        btf: blob.as_ptr() as u64,
        btf_size: blob.len() as u32,
        ..Default::default()
    };
    let btf = bpf_fd(BPF_BTF_LOAD, &mut load).map_err(|e| format!("BPF_BTF_LOAD: {e}"))?;
    let mut attr = MapCreateAttr {
        map_type: BPF_MAP_TYPE_SK_STORAGE,
        key_size: 4,
        value_size: MAKER_BYTES as u32,
        map_flags: BPF_F_NO_PREALLOC,
        btf_fd: btf.as_raw_fd() as u32,
        btf_key_type_id: 1,
        btf_value_type_id: 2,
        ..Default::default()
    };
    attr.map_name[..12].copy_from_slice(b"an1256_maker");
    bpf_fd(BPF_MAP_CREATE, &mut attr).map_err(|e| format!("socket storage: {e}"))
}

/// The cgroup v2 hierarchy's root: where the maker program sees every
/// process's sockets made.
fn cgroup2_root() -> Result<std::path::PathBuf, String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
    mountinfo
        .lines()
        .find_map(|line| {
            let (mount, kind) = line.split_once(" - ")?;
            let fields: Vec<&str> = mount.split(' ').collect();
            let root = fields.get(3) == Some(&"/");
            let at = fields.get(4)?;
            (kind.split(' ').next() == Some("cgroup2") && root)
                .then(|| std::path::PathBuf::from(at))
        })
        .ok_or_else(|| "no cgroup v2 hierarchy is mounted".to_owned())
}

/// The lineage map, and the fork and exit programs attached.
fn attach_lineage(
    layout: &SenderLayout,
    dropped: &OwnedFd,
) -> Result<(OwnedFd, [OwnedFd; 2]), String> {
    let lineages = create_map(
        BPF_MAP_TYPE_HASH,
        4,
        lineage::BYTES as u32,
        LINEAGE_CAPACITY,
        0,
        b"an1256_lineage",
    )
    .map_err(|e| e.to_string())?;
    let attach = |code: Vec<Insn>, tracepoint: u32, name: &[u8]| {
        let program = load_tracing_program(&code, tracepoint, BPF_TRACE_RAW_TP, name)
            .map_err(|e| e.to_string())?;
        let mut attr = RawTracepointAttr {
            prog_fd: program.as_raw_fd() as u32,
            ..Default::default()
        };
        bpf_fd(BPF_RAW_TRACEPOINT_OPEN, &mut attr)
            .map_err(|e| format!("BPF_RAW_TRACEPOINT_OPEN: {e}"))
    };
    // The exit program first: no entry is made that could not leave.
    let exit = attach(
        exit_program(layout, &lineages).map_err(|e| e.to_string())?,
        layout.exit_tracepoint,
        b"an1256_exits",
    )?;
    let fork = attach(
        fork_program(layout, &lineages, dropped).map_err(|e| e.to_string())?,
        layout.fork_tracepoint,
        b"an1256_forks",
    )?;
    Ok((lineages, [exit, fork]))
}

/// Gives the processes already running a lineage (`existing_program`), after
/// the fork program is attached: one forked in between has its entry
/// already, and keeps it. Why some or all have none, if so.
fn lineage_of_existing(layout: &SenderLayout, lineages: &OwnedFd) -> Option<String> {
    let Some(iter_task) = layout.iter_task else {
        return Some("this kernel has no task iterator".to_owned());
    };
    let pass = || -> Result<Option<String>, FdIteratorError> {
        let code = existing_program(layout, lineages)?;
        let program = load_program(&code, iter_task, b"an1256_existing")?;
        let link = FdIterator::link(&program, None)?;
        let output = read_iterator(
            &link,
            1,
            4096,
            1 << 20,
            crate::deadline::Deadline::after(std::time::Duration::from_secs(10)),
        )?;
        Ok(output
            .cut
            .map(|_| "the pass over them was cut at 10 s".to_owned()))
    };
    pass().unwrap_or_else(|e| Some(e.to_string()))
}

/// Loads the maker program and links it to the cgroup v2 root.
fn attach_maker(
    layout: &SenderLayout,
    makers: &OwnedFd,
    lineages: Option<&OwnedFd>,
) -> Result<OwnedFd, String> {
    let program = load_program_of(
        BPF_PROG_TYPE_CGROUP_SOCK,
        &maker_program(layout, makers, lineages).map_err(|e| e.to_string())?,
        0,
        BPF_CGROUP_INET_SOCK_CREATE,
        b"an1256_makers",
    )
    .map_err(|e| e.to_string())?;
    let root = cgroup2_root()?;
    let cgroup = std::fs::File::open(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let mut attr = LinkCreateAttr {
        prog_fd: program.as_raw_fd() as u32,
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_INET_SOCK_CREATE,
        ..Default::default()
    };
    bpf_fd(BPF_LINK_CREATE, &mut attr)
        .map_err(|e| format!("BPF_LINK_CREATE on {}: {e}", root.display()))
}

impl SendLedger {
    /// Makes the maps, loads the program and attaches it.
    pub fn build() -> Result<SendLedger, FdIteratorError> {
        exact_here()?;
        let layout = parse_sender_layout(read_vmlinux_btf()?.bytes())?;
        let ledger = create_map(
            BPF_MAP_TYPE_HASH,
            KEY_BYTES as u32,
            VALUE_BYTES as u32,
            CAPACITY,
            0,
            b"an1256_senders",
        )?;
        let dropped = create_map(BPF_MAP_TYPE_ARRAY, 4, 8, 1, 0, b"an1256_dropped")?;
        // Who made each socket, and who forked each process: without them the
        // ledger still runs, and says so.
        let lineages = attach_lineage(&layout, &dropped);
        let existing = match &lineages {
            Ok((map, _)) => lineage_of_existing(&layout, map),
            Err(_) => None,
        };
        let makers = maker_storage().and_then(|makers| {
            let lineage_map = lineages.as_ref().ok().map(|(map, _)| map);
            let link = attach_maker(&layout, &makers, lineage_map)?;
            Ok((makers, link))
        });
        let program = load_tracing_program(
            &send_program(
                &layout,
                &ledger,
                &dropped,
                makers.as_ref().ok().map(|(map, _)| map),
                lineages.as_ref().ok().map(|(map, _)| map),
            )?,
            layout.tracepoint,
            BPF_TRACE_RAW_TP,
            b"an1256_sends",
        )?;
        let mut attr = RawTracepointAttr {
            prog_fd: program.as_raw_fd() as u32,
            ..Default::default()
        };
        let link = bpf_fd(BPF_RAW_TRACEPOINT_OPEN, &mut attr)
            .map_err(io_error("BPF_RAW_TRACEPOINT_OPEN"))?;
        Ok(SendLedger {
            ledger,
            dropped,
            _link: link,
            makers: makers.map(|(_, link)| link),
            lineages,
            existing,
            losses: Mutex::new(Losses::default()),
        })
    }

    fn lookup(map: &OwnedFd, key: &[u8], value: &mut [u8]) -> io::Result<()> {
        let mut attr = MapElemAttr {
            map_fd: map.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value_or_next_key: value.as_mut_ptr() as u64,
            ..Default::default()
        };
        bpf_call(BPF_MAP_LOOKUP_ELEM, &mut attr)
    }

    fn delete(&self, key: &[u8; KEY_BYTES]) {
        let mut attr = MapElemAttr {
            map_fd: self.ledger.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            ..Default::default()
        };
        // Gone already (a concurrent read dropped it) is as good.
        let _ = bpf_call(BPF_MAP_DELETE_ELEM, &mut attr);
    }

    /// The lineage of the live process `tgid`: its leader start (ns since
    /// boot) and its forkers on record, nearest first; `None` without one.
    pub fn lineage(&self, tgid: u32) -> Option<Lineage> {
        let (map, _) = self.lineages.as_ref().ok()?;
        let mut value = [0u8; lineage::BYTES];
        Self::lookup(map, &tgid.to_ne_bytes(), &mut value).ok()?;
        let u32_at = |at: usize| Some(u32::from_ne_bytes(value.get(at..at + 4)?.try_into().ok()?));
        let u64_at = |at: usize| Some(u64::from_ne_bytes(value.get(at..at + 8)?.try_into().ok()?));
        let start = u64_at(lineage::START as usize)?;
        let mut forkers = Vec::new();
        for i in 0..LINEAGE_DEPTH {
            let tgid = u32_at(lineage::TGIDS as usize + 4 * i)?;
            if tgid != 0 {
                forkers.push((tgid, u64_at(lineage::STARTS as usize + 8 * i)?));
            }
        }
        Some((start, forkers))
    }

    /// Sends not recorded since the ledger was made.
    fn dropped_total(&self) -> Result<u64, FdIteratorError> {
        let mut value = [0u8; 8];
        Self::lookup(&self.dropped, &0u32.to_ne_bytes(), &mut value)
            .map_err(io_error("BPF_MAP_LOOKUP_ELEM"))?;
        Ok(u64::from_ne_bytes(value))
    }

    /// The sends within [`SEND_WINDOW_SECS`], and how many went unrecorded
    /// since the last read; older entries are dropped. A read that cannot
    /// finish within [`MAX_STEPS`] is an error.
    pub fn read(&self) -> Result<LedgerRead, FdIteratorError> {
        let now = boot_ns();
        let oldest = now.saturating_sub(SEND_WINDOW_SECS * 1_000_000_000);
        let mut found: HashMap<[u8; KEY_BYTES], Sending> = HashMap::new();
        let mut stale = Vec::new();
        let mut key: Option<[u8; KEY_BYTES]> = None;
        let mut next = [0u8; KEY_BYTES];
        let mut value = [0u8; VALUE_BYTES];
        let mut steps = 0u32;
        loop {
            steps += 1;
            if steps > MAX_STEPS {
                return Err(FdIteratorError::Unavailable(format!(
                    "the send ledger changed under {MAX_STEPS} steps of reading it"
                )));
            }
            let mut attr = MapElemAttr {
                map_fd: self.ledger.as_raw_fd() as u32,
                key: key.as_ref().map_or(0, |k| k.as_ptr() as u64),
                value_or_next_key: next.as_mut_ptr() as u64,
                ..Default::default()
            };
            match bpf_call(BPF_MAP_GET_NEXT_KEY, &mut attr) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break,
                Err(e) => return Err(io_error("BPF_MAP_GET_NEXT_KEY")(e)),
            }
            key = Some(next);
            let mut inode = [0u8; 8];
            inode.copy_from_slice(&next[..8]);
            let socket = u64::from_ne_bytes(inode);
            match Self::lookup(&self.ledger, &next, &mut value) {
                Ok(()) => match parse_entry(socket, &value) {
                    Some(sending) if sending.sent_at >= oldest => {
                        found.insert(next, sending);
                    }
                    _ => stale.push(next),
                },
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(io_error("BPF_MAP_LOOKUP_ELEM")(e)),
            }
        }
        // Dropped after the walk: deleting under it would restart it.
        for key in &stale {
            self.delete(key);
        }
        let dropped = self.dropped_total()?;
        let lost = match self.losses.lock() {
            Ok(mut losses) => losses.take(dropped, now),
            Err(poisoned) => poisoned.into_inner().take(dropped, now),
        };
        let mut sendings: Vec<Sending> = found.into_values().collect();
        sendings.sort_by_key(|s| (s.uid, s.socket, s.tgid));
        Ok(LedgerRead {
            sendings,
            dropped_since: lost,
            now,
        })
    }
}

static SHARED: OnceLock<Result<SendLedger, FdIteratorError>> = OnceLock::new();

/// Makes the ledger for the life of this process (once), or says why not.
pub fn start() -> Result<&'static SendLedger, &'static FdIteratorError> {
    SHARED.get_or_init(SendLedger::build).as_ref()
}

/// `running`, why `start` could not make the ledger, or empty when nothing
/// asked for it (a one-shot run).
pub fn status() -> String {
    match SHARED.get() {
        Some(Ok(ledger)) => {
            let mut status = "running".to_owned();
            if let Err(why) = &ledger.makers {
                status.push_str(&format!("; who makes each socket is not recorded: {why}"));
            }
            if let Err(why) = &ledger.lineages {
                status.push_str(&format!("; who forks each process is not recorded: {why}"));
            }
            if let Some(why) = &ledger.existing {
                status.push_str(&format!(
                    "; the processes running when it started have no lineage: {why}"
                ));
            }
            status
        }
        Some(Err(why)) => why.to_string(),
        None => String::new(),
    }
}

/// The ledger if `start` made it; never makes it.
pub fn running() -> Option<&'static SendLedger> {
    SHARED.get()?.as_ref().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::MetadataExt;
    use std::process::{Command, Stdio};

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    /// Python as uid 65534: sends one UDP datagram to itself, prints its
    /// socket's inode and port, and waits for stdin to close.
    fn sender() -> (std::process::Child, u64, u16) {
        let script = "import os,socket,sys\n\
                      s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
                      s.bind(('127.0.0.1',0)); s.sendto(b'x',s.getsockname())\n\
                      print(os.fstat(s.fileno()).st_ino,s.getsockname()[1],flush=True)\n\
                      sys.stdin.read()\n";
        let mut child = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(["/usr/bin/python3", "-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("setpriv python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("inode line");
        let mut fields = line
            .split_whitespace()
            .map(|f| f.parse::<u64>().expect("a number"));
        let (inode, port) = (fields.next().expect("inode"), fields.next().expect("port"));
        (child, inode, port as u16)
    }

    #[test]
    fn a_users_send_is_recorded_with_its_sender() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let ledger = match start() {
            Ok(ledger) => ledger,
            Err(why) => panic!("no send ledger: {why}"),
        };
        let (mut child, inode, port) = sender();
        assert_eq!(status(), "running");
        // This process, and its parent, ran before the ledger: they have a
        // lineage (their parent as their forker) all the same.
        let parent = std::os::unix::process::parent_id();
        let own = ledger.lineage(std::process::id()).expect("own lineage");
        assert_eq!(own.1.first().map(|f| f.0), Some(parent));
        assert!(ledger.lineage(parent).is_some(), "the parent's lineage");
        let read = ledger.read().expect("ledger read");
        let python = std::fs::metadata(format!("/proc/{}/exe", child.id())).expect("exe");
        drop(child.stdin.take());
        let _ = child.wait();
        let entry = read.sendings.iter().find(|s| s.socket == inode);
        let entry = entry.unwrap_or_else(|| panic!("no entry for socket {inode}: {read:?}"));
        assert_eq!(entry.tgid, child.id());
        assert_eq!(entry.uid, 65534);
        assert_eq!(entry.command, "python3");
        assert!(!entry.made);
        assert_eq!(
            (entry.exe_dev, entry.exe_inode),
            (python.dev(), python.ino())
        );
        assert_eq!(entry.socket_type, libc::SOCK_DGRAM as u16);
        assert_eq!(entry.protocol, libc::IPPROTO_UDP as u16);
        assert_eq!(
            (entry.local, entry.local_port),
            (IpAddr::V4(Ipv4Addr::LOCALHOST), port)
        );
        assert!(entry.sent_at <= read.now && entry.sent_at + 10_000_000_000 > read.now);
        // Root's own send is never kept.
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket
            .send_to(b"x", socket.local_addr().expect("addr"))
            .expect("send");
        let own = std::fs::metadata(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&socket)
        ))
        .expect("socket")
        .ino();
        let read = ledger.read().expect("ledger read");
        assert!(
            !read.sendings.iter().any(|s| s.socket == own),
            "root's send kept"
        );
    }

    #[test]
    fn a_socket_only_a_trusted_program_sends_on_has_its_maker_recorded() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let ledger = match start() {
            Ok(ledger) => ledger,
            Err(why) => panic!("no send ledger: {why}"),
        };
        // Python as uid 65534 makes a connected UDP socket, makes it cat's
        // stdout, closes its own copy, and never sends: cat does.
        let script = "import os,socket,subprocess,sys,time\n\
                      s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
                      s.bind(('127.0.0.1',0)); s.connect(s.getsockname())\n\
                      c=subprocess.Popen(['/usr/bin/cat'],stdin=subprocess.PIPE,stdout=s.fileno())\n\
                      print(os.fstat(s.fileno()).st_ino,c.pid,flush=True)\n\
                      s.close(); c.stdin.write(b'y\\n'); c.stdin.flush(); time.sleep(0.3)\n\
                      print('sent',flush=True)\n\
                      sys.stdin.read()\n";
        let mut child = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(["/usr/bin/python3", "-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("setpriv python3");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let _sent = lines.next();
        let mut fields = first
            .split_whitespace()
            .map(|f| f.parse::<u64>().unwrap_or(0));
        let (inode, cat) = (fields.next().unwrap_or(0), fields.next().unwrap_or(0));
        let read = ledger.read().expect("ledger read");
        drop(child.stdin.take());
        let _ = child.wait();
        let of_socket: Vec<(u32, bool, &str)> = read
            .sendings
            .iter()
            .filter(|s| s.socket == inode)
            .map(|s| (s.tgid, s.made, s.command.as_str()))
            .collect();
        assert!(
            of_socket.contains(&(cat as u32, false, "cat")),
            "{of_socket:?}"
        );
        assert!(
            of_socket.contains(&(child.id(), true, "python3")),
            "{of_socket:?}"
        );
        assert_eq!(of_socket.len(), 2, "{of_socket:?}");
    }

    #[test]
    fn the_maker_program_never_refuses_a_socket() {
        // A cgroup/sock_create program returning 0 would refuse every socket
        // on the host: its one exit returns 1.
        let layout = SenderLayout {
            tracepoint: 1,
            fork_tracepoint: 2,
            exit_tracepoint: 3,
            task_pid: 0,
            iter_task: None,
            task_signal: 0,
            signal_live: 0,
            sock: crate::platform::linux::fd_iterator::EMPTY_LAYOUT.sock,
            sock_socket: 0,
            socket_file: 0,
            file_f_inode: 0,
            inode_i_ino: 0,
            inode_i_sb: 0,
            sb_s_dev: 0,
            task_tgid: 0,
            task_real_parent: 0,
            task_group_leader: 0,
            task_start_boottime: 0,
            task_mm: 0,
            mm_exe_file: 0,
        };
        let map = OwnedFd::from(std::fs::File::open("/dev/null").expect("/dev/null"));
        let code = maker_program(&layout, &map, Some(&map)).expect("assembled");
        let exits: Vec<usize> = (0..code.len()).filter(|&i| code[i].code == EXIT).collect();
        assert_eq!(exits.len(), 1);
        assert_eq!(code[exits[0] - 1], insn(MOV64_IMM, 0, 0, 0, 1));
    }

    #[test]
    fn a_loss_is_said_by_every_read_within_the_window_then_forgotten() {
        const S: u64 = 1_000_000_000;
        let mut losses = Losses::default();
        assert_eq!(losses.take(0, 100 * S), 0);
        assert_eq!(losses.take(7, 101 * S), 7);
        assert_eq!(losses.take(7, 130 * S), 7, "a second reader in the window");
        assert_eq!(losses.take(9, 150 * S), 9);
        assert_eq!(losses.take(9, 150 * S + SEND_WINDOW_SECS * S), 9);
        assert_eq!(losses.take(9, 151 * S + SEND_WINDOW_SECS * S), 0);
        assert_eq!(losses.take(10, 400 * S), 1, "a later loss counts alone");
    }

    #[test]
    fn an_entry_is_parsed_from_the_programs_layout() {
        let mut value = [0u8; VALUE_BYTES];
        value[0..4].copy_from_slice(&4242u32.to_ne_bytes());
        value[4..8].copy_from_slice(&1001u32.to_ne_bytes());
        value[24..28].copy_from_slice(&((8u32 << 20) | 3).to_ne_bytes());
        value[28..30].copy_from_slice(&2u16.to_ne_bytes());
        value[30..32].copy_from_slice(&2u16.to_ne_bytes());
        value[32..34].copy_from_slice(&17u16.to_ne_bytes());
        value[34..36].copy_from_slice(&5353u16.to_ne_bytes());
        value[36..38].copy_from_slice(&53u16.to_be_bytes());
        value[48..51].copy_from_slice(b"hop");
        value[64..68].copy_from_slice(&[127, 0, 0, 1]);
        value[68..72].copy_from_slice(&[192, 0, 2, 7]);
        let entry = parse_entry(99, &value).expect("parsed");
        assert_eq!((entry.socket, entry.tgid, entry.uid), (99, 4242, 1001));
        assert_eq!(entry.exe_dev, libc::makedev(8, 3));
        assert_eq!(entry.command, "hop");
        assert_eq!(entry.local, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(
            (entry.remote, entry.remote_port),
            (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), 53)
        );
        assert_eq!(entry.local_port, 5353);
        assert!(parse_entry(99, &value[..VALUE_BYTES - 8]).is_none());
    }
}
