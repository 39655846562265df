//! Socket fds of every process from one BPF `task_file` iterator, instead of a
//! getdents + readlink per fd of `/proc/<pid>/fd/*` (the walk `ss -p` pays too).
//!
//! The kernel runs a tiny program over every (task, fd) pair and writes one record
//! per IPv4/IPv6 socket fd (see [`RECORD_BYTES`]): who holds it (tgid, tid, fd,
//! the leader's start time, real uid), its inode, and what its `struct sock`
//! says (family, type, protocol, state, ports, addresses, network namespace),
//! so the caller needs no socket table. It visits each thread whose fd table
//! differs from its leader's, so a socket held only by a thread that did
//! `unshare(CLONE_FILES)` is seen too. The caller checks that each process it
//! opens is the one the records name before attributing them (the pid may have
//! been reused since).
//!
//! Everything here is parsed and assembled by hand: the struct offsets the program
//! needs come from the kernel's own BTF (`/sys/kernel/btf/vmlinux`), checked to be
//! whole integers (or pointers, or structs) of the expected size; any doubt is an
//! error and the caller walks `/proc` as before. The verifier checks every load
//! against the same BTF. The program, its link and the parsed layout are made once
//! per process; each scan creates a fresh iterator from the link.

use std::ffi::CStr;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;

/// `/sys/kernel/btf/vmlinux` is 5-6 MiB on current kernels; refuse anything absurd.
const MAX_BTF_BYTES: u64 = 64 * 1024 * 1024;
const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";
/// One record the program writes per socket fd: `{tgid u32, tid u32, fd u32,
/// uid u32 (the task's real uid), inode u64, leader_start u64 (ns since boot),
/// net u32, family u16, type u16, protocol u16, state u8, has_facts u8,
/// local_port u16 (host order), remote_port u16 (network order), local_v4 [4],
/// remote_v4 [4], local_v6 [16], remote_v6 [16]}` (see `at`): no padding, and a
/// multiple of 8 bytes, as the program zeroes it with 8-byte stack stores (the
/// verifier takes only aligned stack accesses).
pub const RECORD_BYTES: usize = 88;
/// Passes of one process's tasks made while its threads keep changing, before
/// its result is said unsure (see `FdIterator::socket_fds_of`).
const PASSES_PER_PROCESS: usize = 3;
/// The pid namespace every boot starts in (`PROC_PID_INIT_INO`): the only one in
/// which the kernel's pids (what the program records) are `/proc`'s pids.
const INITIAL_PID_NAMESPACE: &[u8] = b"pid:[4026531836]";

/// Where the program reads what it needs, from the running kernel's BTF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelLayout {
    /// BTF id of the FUNC `bpf_iter_task_file`: what the program attaches to.
    pub iter_func_id: u32,
    pub task_tgid: u32,
    pub task_pid: u32,
    pub file_f_inode: u32,
    pub inode_i_mode: u32,
    pub inode_i_ino: u32,
    /// `task->group_leader->start_boottime`: tells the process from a later one
    /// under the same pid.
    pub task_group_leader: u32,
    pub task_start_boottime: u32,
    /// `task->real_cred->uid.val`: whose share of a scan the socket takes.
    pub task_real_cred: u32,
    pub cred_uid: u32,
    /// Where a socket's facts are: `socket->sk`, then `struct sock` members.
    pub sock: SockLayout,
    /// What the library program needs (see `library_program`); `None` on a
    /// kernel without the open-coded VMA iterator (before 6.7) or whose BTF
    /// leaves any doubt: the caller then walks each holder's mappings.
    pub libraries: Option<LibraryLayout>,
}

/// The `iter/task` FUNC, the VMA iterator kfuncs and the offsets the library
/// program reads (`task->mm`, then each VMA's flags and file, the file's
/// dentry and the dentry's name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LibraryLayout {
    /// BTF id of the FUNC `bpf_iter_task`: what the program attaches to.
    pub iter_func_id: u32,
    pub vma_new: u32,
    pub vma_next: u32,
    pub vma_destroy: u32,
    pub task_mm: u32,
    pub vma_flags: u32,
    pub vma_file: u32,
    /// `file->f_path.dentry`.
    pub file_dentry: u32,
    /// `dentry->d_name.name`: the last component of the path `maps` prints,
    /// unless the file is a mount's root (a file bind-mounted elsewhere:
    /// `maps` names the mount point) or a pseudo file (`memfd:`, its own
    /// parent: its name may hold a `/`). Those two are told by:
    pub dentry_name: u32,
    /// `file->f_path.mnt`, then `mnt->mnt_root`.
    pub file_mnt: u32,
    pub mount_root: u32,
    /// `dentry->d_parent`.
    pub dentry_parent: u32,
    /// What tells that a process's mappings may have changed since a walk;
    /// `None` where the kernel does not count it (no walk is then remembered).
    pub image_change: Option<ImageChangeLayout>,
}

/// `task->self_exec_id` (one more at each exec) and `mm->mm_lock_seq` (the
/// count the kernel moves at each take and release of the mmap write lock,
/// without which no mapping is made, moved or removed; `CONFIG_PER_VMA_LOCK`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageChangeLayout {
    pub task_exec_id: u32,
    pub mm_seq: u32,
}

/// Offsets in `struct socket`, `struct sock` (its `__sk_common` included) and
/// `struct net` of what the program reads of a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockLayout {
    pub socket_sk: u32,
    pub family: u32,
    pub socket_type: u32,
    pub protocol: u32,
    pub state: u32,
    /// `skc_num`: the local port, host order.
    pub local_port: u32,
    /// `skc_dport`: the remote port, network order.
    pub remote_port: u32,
    pub local_v4: u32,
    pub remote_v4: u32,
    /// Absent from a kernel built without IPv6 (no IPv6 socket exists there).
    pub local_v6: Option<u32>,
    pub remote_v6: Option<u32>,
    /// `skc_net.net`, then `net->ns.inum`: the namespace the socket lives in.
    pub net: u32,
    pub net_inum: u32,
}

/// One socket fd the iterator saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketFd {
    /// Thread-group id: the process (`/proc/<tgid>`).
    pub tgid: u32,
    /// The thread whose fd table holds it: `tgid` unless a thread has its own table.
    pub tid: u32,
    pub fd: u32,
    pub inode: u64,
    /// The process leader's start, ns since boot (0: not read).
    pub leader_start: u64,
    /// The holding task's real uid (`u32::MAX`: not read).
    pub uid: u32,
    /// What the kernel's `struct sock` said at the pass; `None` for a socket file
    /// the program found no `struct sock` behind (resolved through the tables).
    pub facts: Option<SocketFacts>,
}

/// An IPv4 or IPv6 socket as its `struct sock` described it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketFacts {
    /// The network namespace's inode number.
    pub net: u32,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// `SOCK_STREAM`, `SOCK_DGRAM`, `SOCK_RAW`…
    pub socket_type: u16,
    pub protocol: u16,
    /// TCP state code (`TCP_ESTABLISHED`…); a datagram socket has one too.
    pub state: u8,
    pub local: IpAddr,
    pub local_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
}

/// What one pass of the iterator gave.
#[derive(Debug, Default)]
pub struct SocketFds {
    pub records: Vec<SocketFd>,
    /// Cut at the byte bound or the deadline: sockets past the cut are missing.
    pub cut: Option<String>,
    /// Why the pass may have ended early without saying so (see
    /// `socket_fds_of`): sockets past that point may be missing.
    pub unsure: Option<String>,
}

/// Why the iterator cannot be made or read here; the caller walks `/proc` instead.
#[derive(Debug, thiserror::Error)]
pub enum FdIteratorError {
    #[error("{path}: {source}")]
    BtfRead {
        path: &'static str,
        source: io::Error,
    },
    #[error("{path} is over {limit_mib} MiB")]
    BtfTooLarge { path: &'static str, limit_mib: u64 },
    /// The blob is not well-formed BTF (cut, wrong magic, unknown kind…).
    #[error("{0}")]
    BtfMalformed(String),
    /// Well-formed BTF that does not describe what the program needs exactly
    /// (a missing or doubled struct, a bitfield, a member of another size).
    #[error("{0}")]
    BtfRefused(String),
    #[error("struct offset {0} does not fit a BPF load")]
    OffsetTooFar(u32),
    #[error("BPF_PROG_LOAD: {source}; verifier log:\n{verifier_log}")]
    ProgramLoad {
        source: io::Error,
        verifier_log: String,
    },
    /// `BPF_LINK_CREATE`, `BPF_ITER_CREATE` or reading the iterator failed.
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: io::Error,
    },
    #[error("fd iterator output is {0} bytes, not whole records")]
    PartialRecord(usize),
    /// This process cannot use the iterator exactly (privilege, pid namespace).
    #[error("{0}")]
    Unavailable(String),
}

fn malformed(why: impl Into<String>) -> FdIteratorError {
    FdIteratorError::BtfMalformed(why.into())
}

pub(super) fn refused(why: impl Into<String>) -> FdIteratorError {
    FdIteratorError::BtfRefused(why.into())
}

// ---------------------------------------------------------------------------
// BTF (format: include/uapi/linux/btf.h, Documentation/bpf/btf.rst)

const BTF_MAGIC: u16 = 0xEB9F;
const KIND_INT: u8 = 1;
const KIND_PTR: u8 = 2;
const KIND_ARRAY: u8 = 3;
const KIND_STRUCT: u8 = 4;
const KIND_UNION: u8 = 5;
const KIND_ENUM: u8 = 6;
const KIND_FWD: u8 = 7;
const KIND_TYPEDEF: u8 = 8;
const KIND_VOLATILE: u8 = 9;
const KIND_CONST: u8 = 10;
const KIND_RESTRICT: u8 = 11;
const KIND_FUNC: u8 = 12;
const KIND_FUNC_PROTO: u8 = 13;
const KIND_VAR: u8 = 14;
const KIND_DATASEC: u8 = 15;
const KIND_FLOAT: u8 = 16;
const KIND_DECL_TAG: u8 = 17;
const KIND_TYPE_TAG: u8 = 18;
const KIND_ENUM64: u8 = 19;
/// Anonymous struct/union nesting followed when looking for a member.
const MAX_NESTING: usize = 8;
/// Typedef/modifier chain followed when resolving a member's type.
const MAX_TYPE_CHAIN: usize = 32;

/// One `struct btf_type` and where its trailing data starts.
#[derive(Clone, Copy)]
struct BtfType {
    name_off: u32,
    kind: u8,
    kind_flag: bool,
    vlen: u16,
    /// `size` (INT, STRUCT, UNION…) or `type` (PTR, TYPEDEF, modifiers, FUNC).
    size_or_type: u32,
    /// Offset of the trailing data in the type section.
    extra: usize,
}

pub(super) struct Btf<'a> {
    /// Where every [`CHECKPOINT_EVERY`]th type starts in the type section: type
    /// `id` is found by walking forward from checkpoint `(id - 1) / CHECKPOINT_EVERY`
    /// (~500 lookups a parse; a full index of ~130k types was ~0.5 MiB to
    /// fault in and fill on every CLI run).
    checkpoints: Vec<u32>,
    /// How many types the section holds (ids 1..=count).
    count: u32,
    type_section: &'a [u8],
    strings: &'a [u8],
    /// (id, kind, name) of the structs named in [`WANTED`] and the FUNCs named
    /// in [`WANTED_FUNCS`], found in the
    /// one pass over the types (vmlinux has ~150k types: no search per name).
    named: Vec<(u32, u8, &'static str)>,
}

/// One checkpoint per this many types (see `Btf::checkpoints`).
const CHECKPOINT_EVERY: u32 = 16;

/// The struct names `parse_layout` looks up.
const WANTED: [&str; 17] = [
    "bpf_iter__task_file",
    "bpf_iter__task",
    "bpf_iter_meta",
    "bpf_iter_task_vma",
    "task_struct",
    "vm_area_struct",
    "file",
    "dentry",
    "vfsmount",
    "inode",
    "socket",
    "sock",
    "net",
    "cred",
    "mm_struct",
    "super_block",
    "signal_struct",
];

/// Which bytes a struct name in [`WANTED`] may start with.
const WANTED_FIRST: [bool; 256] = first_bytes_of(&WANTED);
/// The FUNCs `parse_layout` looks up: the iterators the programs attach to and
/// the kfuncs the library program calls. A FUNC (~56k in vmlinux) has its name
/// read only when it starts with one of these names' first bytes.
const ITER_TASK_FILE: &str = "bpf_iter_task_file";
pub(super) const ITER_TASK: &str = "bpf_iter_task";
const VMA_NEW: &str = "bpf_iter_task_vma_new";
const VMA_NEXT: &str = "bpf_iter_task_vma_next";
const VMA_DESTROY: &str = "bpf_iter_task_vma_destroy";
const WANTED_FUNCS: [&str; 5] = [ITER_TASK_FILE, ITER_TASK, VMA_NEW, VMA_NEXT, VMA_DESTROY];
/// The tracepoint the send ledger's program attaches to (`send_ledger`): its
/// typedef names the tracepoint's arguments.
pub(super) const SEND_TRACEPOINT: &str = "btf_trace_sock_send_length";
/// Where it learns who forked each process, and when a process is gone.
pub(super) const FORK_TRACEPOINT: &str = "btf_trace_sched_process_fork";
pub(super) const EXIT_TRACEPOINT: &str = "btf_trace_sched_process_exit";
const WANTED_TYPEDEFS: [&str; 3] = [SEND_TRACEPOINT, FORK_TRACEPOINT, EXIT_TRACEPOINT];
const WANTED_FUNCS_FIRST: [bool; 256] = first_bytes_of(&WANTED_FUNCS);

/// By kind, then a name's first byte: whether a type may be one `parse_layout`
/// looks up (a struct in [`WANTED`], a FUNC in [`WANTED_FUNCS`]).
const CANDIDATE: [[bool; 256]; 32] = {
    let mut table = [[false; 256]; 32];
    table[KIND_STRUCT as usize] = WANTED_FIRST;
    table[KIND_FUNC as usize] = WANTED_FUNCS_FIRST;
    table[KIND_TYPEDEF as usize] = first_bytes_of(&WANTED_TYPEDEFS);
    table
};

const fn first_bytes_of(names: &[&str]) -> [bool; 256] {
    let mut first = [false; 256];
    let mut i = 0;
    while i < names.len() {
        first[names[i].as_bytes()[0] as usize] = true;
        i += 1;
    }
    first
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

/// The bytes after a type's 12-byte header, by kind: `fixed + per_member *
/// vlen`; `None` for a kind unknown here (it cannot be skipped). A table, not a
/// `match`: kinds alternate unpredictably through ~130k types.
const TRAILING: [Option<(usize, usize)>; 32] = {
    let mut table = [None; 32];
    let mut kind = 0;
    while kind < 32 {
        table[kind] = match kind as u8 {
            KIND_INT | KIND_VAR | KIND_DECL_TAG => Some((4, 0)),
            KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
            | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => Some((0, 0)),
            KIND_ARRAY => Some((12, 0)),
            KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => Some((0, 12)),
            KIND_ENUM | KIND_FUNC_PROTO => Some((0, 8)),
            _ => None,
        };
        kind += 1;
    }
    table
};

/// The `struct btf_type` at `at` in the type section and where the next one
/// starts (checked to lie inside the section).
#[inline(always)]
fn decode_whole(type_section: &[u8], at: usize) -> Result<(BtfType, usize), FdIteratorError> {
    let t = decode(type_section, at).ok_or_else(|| malformed("BTF type is cut"))?;
    let Some((fixed, per_member)) = TRAILING[t.kind as usize & 0x1f] else {
        return Err(malformed(format!("BTF kind {} is unknown here", t.kind)));
    };
    let next = t.extra + fixed + per_member * t.vlen as usize;
    if next > type_section.len() {
        return Err(malformed("BTF type data runs past its section"));
    }
    Ok((t, next))
}

/// The `struct btf_type` at `at` in the type section.
#[inline(always)]
fn decode(type_section: &[u8], at: usize) -> Option<BtfType> {
    let header: &[u8; 12] = type_section.get(at..at.checked_add(12)?)?.try_into().ok()?;
    let word =
        |i: usize| u32::from_ne_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let info = word(4);
    Some(BtfType {
        name_off: word(0),
        kind: ((info >> 24) & 0x1f) as u8,
        kind_flag: info >> 31 == 1,
        vlen: (info & 0xffff) as u16,
        size_or_type: word(8),
        extra: at + 12,
    })
}

fn section(blob: &[u8], base: usize, off: u32, len: u32) -> Result<&[u8], FdIteratorError> {
    let start = base
        .checked_add(off as usize)
        .ok_or_else(|| malformed("BTF section offset overflows"))?;
    let end = start
        .checked_add(len as usize)
        .ok_or_else(|| malformed("BTF section length overflows"))?;
    blob.get(start..end)
        .ok_or_else(|| malformed("BTF section lies outside the blob"))
}

impl<'a> Btf<'a> {
    pub(super) fn parse(blob: &'a [u8]) -> Result<Btf<'a>, FdIteratorError> {
        let magic = u16_at(blob, 0).ok_or_else(|| malformed("BTF shorter than its header"))?;
        if magic != BTF_MAGIC {
            return Err(malformed(format!(
                "BTF magic {magic:#06x} (not {BTF_MAGIC:#06x}, or another byte order)"
            )));
        }
        if blob.get(2) != Some(&1) {
            return Err(malformed("BTF version is not 1"));
        }
        let header =
            |i: usize| u32_at(blob, 4 + 4 * i).ok_or_else(|| malformed("BTF header is cut"));
        let (hdr_len, type_off, type_len, str_off, str_len) =
            (header(0)?, header(1)?, header(2)?, header(3)?, header(4)?);
        if hdr_len < 24 {
            return Err(malformed(format!(
                "BTF header length {hdr_len} is below 24"
            )));
        }
        let base = hdr_len as usize;
        let type_section = section(blob, base, type_off, type_len)?;
        let strings = section(blob, base, str_off, str_len)?;
        let mut checkpoints = Vec::with_capacity(type_section.len() / 1024);
        let mut named = Vec::new();
        let mut count = 0u32;
        let mut at = 0;
        while at < type_section.len() {
            let start = u32::try_from(at).map_err(|_| malformed("BTF type section over 4 GiB"))?;
            let (t, next) = decode_whole(type_section, at)?;
            count = count
                .checked_add(1)
                .ok_or_else(|| malformed("BTF has over 4G types"))?;
            if (count - 1) % CHECKPOINT_EVERY == 0 {
                checkpoints.push(start);
            }
            let rest = strings.get(t.name_off as usize..).unwrap_or_default();
            let first = rest.first().copied().unwrap_or(0);
            if CANDIDATE[t.kind as usize & 0x1f][first as usize] {
                let names: &[&str] = match t.kind {
                    KIND_FUNC => &WANTED_FUNCS,
                    KIND_TYPEDEF => &WANTED_TYPEDEFS,
                    _ => &WANTED,
                };
                let wanted = names
                    .iter()
                    .find(|w| rest.get(w.len()) == Some(&0) && rest.starts_with(w.as_bytes()));
                if let Some(wanted) = wanted {
                    named.push((count, t.kind, *wanted));
                }
            }
            at = next;
        }
        Ok(Btf {
            checkpoints,
            count,
            type_section,
            strings,
            named,
        })
    }

    fn name(&self, name_off: u32) -> Option<&'a [u8]> {
        let rest = self.strings.get(name_off as usize..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        rest.get(..end)
    }

    /// Type id `id` (1-based; 0 is void): decoded from its checkpoint forward.
    fn get(&self, id: u32) -> Result<BtfType, FdIteratorError> {
        let missing = || malformed(format!("BTF type id {id} does not exist"));
        if id == 0 || id > self.count {
            return Err(missing());
        }
        let index = id - 1;
        let checkpoint = self
            .checkpoints
            .get((index / CHECKPOINT_EVERY) as usize)
            .ok_or_else(missing)?;
        let mut at = *checkpoint as usize;
        for _ in 0..index % CHECKPOINT_EVERY {
            at = decode_whole(self.type_section, at)?.1;
        }
        Ok(decode_whole(self.type_section, at)?.0)
    }

    /// Ids of every struct or FUNC (`kind`) named `name`, one of [`WANTED`] or
    /// [`WANTED_FUNCS`].
    fn find(&self, kind: u8, name: &str) -> Vec<u32> {
        debug_assert!(
            WANTED.contains(&name)
                || WANTED_FUNCS.contains(&name)
                || WANTED_TYPEDEFS.contains(&name),
            "{name} is not indexed"
        );
        self.named
            .iter()
            .filter(|(_, k, n)| *k == kind && *n == name)
            .map(|(id, _, _)| *id)
            .collect()
    }

    /// The one FUNC named `name`, one of [`WANTED_FUNCS`].
    pub(super) fn func_named(&self, name: &str) -> Result<u32, FdIteratorError> {
        match self.find(KIND_FUNC, name).as_slice() {
            [one] => Ok(*one),
            other => Err(refused(format!(
                "BTF has {} FUNCs named {name}",
                other.len()
            ))),
        }
    }

    /// The one typedef named `name`, one of [`WANTED_TYPEDEFS`].
    pub(super) fn typedef_named(&self, name: &str) -> Result<u32, FdIteratorError> {
        match self.find(KIND_TYPEDEF, name).as_slice() {
            [one] => Ok(*one),
            other => Err(refused(format!(
                "BTF has {} typedefs named {name}",
                other.len()
            ))),
        }
    }

    /// The one complete struct named `name`.
    fn struct_named(&self, name: &str) -> Result<u32, FdIteratorError> {
        let found: Vec<u32> = self
            .find(KIND_STRUCT, name)
            .into_iter()
            .filter(|&id| self.get(id).is_ok_and(|t| t.vlen > 0))
            .collect();
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(refused(format!("BTF has no struct {name}"))),
            _ => Err(refused(format!(
                "BTF has {} structs named {name}",
                found.len()
            ))),
        }
    }

    /// Follows typedefs and modifiers to the type they name.
    fn resolve(&self, mut id: u32) -> Result<(u32, BtfType), FdIteratorError> {
        for _ in 0..MAX_TYPE_CHAIN {
            let t = self.get(id)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type
                }
                _ => return Ok((id, t)),
            }
        }
        Err(malformed("BTF typedef chain too long"))
    }

    /// Byte offsets and type ids of every member `name` of struct `id`, looking
    /// into anonymous structs and unions.
    fn members(
        &self,
        id: u32,
        name: &[u8],
        base: u32,
        depth: usize,
        out: &mut Vec<(u32, u32)>,
    ) -> Result<(), FdIteratorError> {
        if depth > MAX_NESTING {
            return Err(refused("BTF anonymous members nest too deep"));
        }
        let t = self.get(id)?;
        if t.kind != KIND_STRUCT && t.kind != KIND_UNION {
            return Err(malformed(format!("BTF type {id} is not a struct or union")));
        }
        for i in 0..t.vlen as usize {
            let at = t.extra + 12 * i;
            let read = |k: usize| {
                u32_at(self.type_section, at + 4 * k).ok_or_else(|| malformed("BTF member is cut"))
            };
            let (member_name, member_type, offset) = (read(0)?, read(1)?, read(2)?);
            let (bitfield_size, bit_offset) = if t.kind_flag {
                (offset >> 24, offset & 0x00ff_ffff)
            } else {
                (0, offset)
            };
            let named = self.name(member_name).unwrap_or_default();
            if named == name || named.is_empty() {
                if bitfield_size != 0 || bit_offset % 8 != 0 {
                    if named == name {
                        return Err(refused(format!(
                            "member {} is a bitfield",
                            String::from_utf8_lossy(name)
                        )));
                    }
                    continue;
                }
                let offset = base
                    .checked_add(bit_offset / 8)
                    .ok_or_else(|| malformed("BTF member offset overflows"))?;
                if named == name {
                    out.push((offset, member_type));
                } else {
                    let (inner, inner_type) = self.resolve(member_type)?;
                    if matches!(inner_type.kind, KIND_STRUCT | KIND_UNION) {
                        self.members(inner, name, offset, depth + 1, out)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The byte offset of `structure.member`, whose type must resolve to an
    /// integer of `int_bytes` bytes (or a pointer when `int_bytes` is 0).
    pub(super) fn member_offset(
        &self,
        structure: &str,
        member: &str,
        int_bytes: u32,
    ) -> Result<u32, FdIteratorError> {
        let expect = if int_bytes == 0 {
            Expect::Pointer
        } else {
            Expect::Int(int_bytes)
        };
        self.path_offset(structure, &[member], expect)
    }

    /// The byte offset of `structure.a.b…`: every member but the last must be a
    /// struct or union (named or not), the last what `expect` says.
    pub(super) fn path_offset(
        &self,
        structure: &str,
        path: &[&str],
        expect: Expect,
    ) -> Result<u32, FdIteratorError> {
        let mut id = self.struct_named(structure)?;
        let mut total = 0u32;
        let mut described = structure.to_string();
        for (i, member) in path.iter().enumerate() {
            let mut found = Vec::new();
            self.members(id, member.as_bytes(), 0, 0, &mut found)?;
            described.push('.');
            described.push_str(member);
            let [(offset, member_type)] = found.as_slice() else {
                return Err(refused(format!(
                    "{described}: {} matching members",
                    found.len()
                )));
            };
            total = total
                .checked_add(*offset)
                .ok_or_else(|| malformed("BTF member offset overflows"))?;
            let (resolved_id, resolved) = self.resolve(*member_type)?;
            if i + 1 < path.len() {
                if !matches!(resolved.kind, KIND_STRUCT | KIND_UNION) {
                    return Err(refused(format!("{described} is not a struct")));
                }
                id = resolved_id;
                continue;
            }
            let fits = match expect {
                Expect::Pointer => resolved.kind == KIND_PTR,
                Expect::Int(bytes) => {
                    let encoding = u32_at(self.type_section, resolved.extra).unwrap_or(u32::MAX);
                    // INT data: bits 0-7 nr_bits, 16-23 bit offset.
                    resolved.kind == KIND_INT
                        && resolved.size_or_type == bytes
                        && encoding & 0xff == bytes * 8
                        && (encoding >> 16) & 0xff == 0
                }
                Expect::Bytes(bytes) => {
                    matches!(resolved.kind, KIND_STRUCT | KIND_UNION)
                        && resolved.size_or_type == bytes
                }
            };
            if !fits {
                let wanted = match expect {
                    Expect::Pointer => "a pointer".to_string(),
                    Expect::Int(bytes) => format!("a {bytes}-byte integer"),
                    Expect::Bytes(bytes) => format!("a {bytes}-byte struct"),
                };
                return Err(refused(format!("{described} is not {wanted}")));
            }
        }
        Ok(total)
    }
}

/// What the last member of a `path_offset` path must be.
#[derive(Clone, Copy)]
pub(super) enum Expect {
    Pointer,
    /// A whole integer of this many bytes (no bitfield).
    Int(u32),
    /// A struct or union of this many bytes (an `in6_addr`).
    Bytes(u32),
}

/// Finds what the program needs in a BTF blob; any doubt is an error.
pub fn parse_layout(blob: &[u8]) -> Result<KernelLayout, FdIteratorError> {
    let btf = Btf::parse(blob)?;
    let iter_func_id = btf.func_named(ITER_TASK_FILE)?;
    // The program's context: struct bpf_iter__task_file { meta@0; task@8; u32 fd@16;
    // file@24 } (kernel/bpf/task_iter.c); check that the running kernel agrees.
    for (member, bytes, expected) in [
        ("meta", 0, 0),
        ("task", 0, 8),
        ("fd", 4, 16),
        ("file", 0, 24),
    ] {
        let offset = btf.member_offset("bpf_iter__task_file", member, bytes)?;
        if offset != expected {
            return Err(refused(format!(
                "bpf_iter__task_file.{member} is at {offset}, not {expected}"
            )));
        }
    }
    if btf.member_offset("bpf_iter_meta", "seq", 0)? != 0 {
        return Err(refused("bpf_iter_meta.seq is not at 0"));
    }
    let task_tgid = btf.member_offset("task_struct", "tgid", 4)?;
    let task_pid = btf.member_offset("task_struct", "pid", 4)?;
    let file_f_inode = btf.member_offset("file", "f_inode", 0)?;
    let inode_i_mode = btf.member_offset("inode", "i_mode", 2)?;
    let inode_i_ino = btf.member_offset("inode", "i_ino", 8)?;
    let sock = sock_layout(&btf)?;
    let libraries = library_layout(&btf)
        .inspect_err(|why| log::debug!("no kernel-side library check: {why}"))
        .ok();
    Ok(KernelLayout {
        iter_func_id,
        task_tgid,
        task_pid,
        file_f_inode,
        inode_i_mode,
        inode_i_ino,
        task_group_leader: btf.member_offset("task_struct", "group_leader", 0)?,
        task_start_boottime: btf.member_offset("task_struct", "start_boottime", 8)?,
        task_real_cred: btf.member_offset("task_struct", "real_cred", 0)?,
        cred_uid: btf.path_offset("cred", &["uid", "val"], Expect::Int(4))?,
        sock,
        libraries,
    })
}

/// Where a `struct sock`'s facts are (and `socket->sk`).
pub(super) fn sock_layout(btf: &Btf) -> Result<SockLayout, FdIteratorError> {
    let common =
        |member: &str, expect: Expect| btf.path_offset("sock", &["__sk_common", member], expect);
    let v6 = |member: &str| match common(member, Expect::Bytes(16)) {
        Ok(offset) => Ok(Some(offset)),
        // No member at all: a kernel without IPv6; any other doubt refuses.
        Err(FdIteratorError::BtfRefused(why)) if why.ends_with(": 0 matching members") => Ok(None),
        Err(e) => Err(e),
    };
    Ok(SockLayout {
        socket_sk: btf.member_offset("socket", "sk", 0)?,
        family: common("skc_family", Expect::Int(2))?,
        socket_type: btf.member_offset("sock", "sk_type", 2)?,
        protocol: btf.member_offset("sock", "sk_protocol", 2)?,
        state: common("skc_state", Expect::Int(1))?,
        local_port: common("skc_num", Expect::Int(2))?,
        remote_port: common("skc_dport", Expect::Int(2))?,
        local_v4: common("skc_rcv_saddr", Expect::Int(4))?,
        remote_v4: common("skc_daddr", Expect::Int(4))?,
        local_v6: v6("skc_v6_rcv_saddr")?,
        remote_v6: v6("skc_v6_daddr")?,
        net: btf.path_offset("sock", &["__sk_common", "skc_net", "net"], Expect::Pointer)?,
        net_inum: btf.path_offset("net", &["ns", "inum"], Expect::Int(4))?,
    })
}

/// `struct bpf_iter_task_vma`: the VMA iterator's state, on the library
/// program's stack (`library_pass::stack::ITER`).
const ITER_STATE_BYTES: usize = 8;

/// Whether the running kernel is one with the open-coded VMA iterator
/// (Linux 6.7), which the library program needs: what tests expect of it.
#[cfg(test)]
pub(super) fn kernel_has_vma_iterator() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split(['.', '-']);
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (6, 7)
}

/// What the library program needs, if the kernel has it all.
fn library_layout(btf: &Btf) -> Result<LibraryLayout, FdIteratorError> {
    // struct bpf_iter__task { meta@0; task@8 } (kernel/bpf/task_iter.c).
    for (member, expected) in [("meta", 0), ("task", 8)] {
        let offset = btf.member_offset("bpf_iter__task", member, 0)?;
        if offset != expected {
            return Err(refused(format!(
                "bpf_iter__task.{member} is at {offset}, not {expected}"
            )));
        }
    }
    // The iterator's state lives on the program's stack, in the 8 bytes the
    // program gives it.
    let state = btf
        .get(btf.struct_named("bpf_iter_task_vma")?)?
        .size_or_type;
    if state != ITER_STATE_BYTES as u32 {
        return Err(refused(format!(
            "struct bpf_iter_task_vma is {state} bytes, not {ITER_STATE_BYTES}"
        )));
    }
    Ok(LibraryLayout {
        iter_func_id: btf.func_named(ITER_TASK)?,
        vma_new: btf.func_named(VMA_NEW)?,
        vma_next: btf.func_named(VMA_NEXT)?,
        vma_destroy: btf.func_named(VMA_DESTROY)?,
        task_mm: btf.member_offset("task_struct", "mm", 0)?,
        vma_flags: btf.member_offset("vm_area_struct", "vm_flags", 8)?,
        vma_file: btf.member_offset("vm_area_struct", "vm_file", 0)?,
        file_dentry: btf.path_offset("file", &["f_path", "dentry"], Expect::Pointer)?,
        dentry_name: btf.path_offset("dentry", &["d_name", "name"], Expect::Pointer)?,
        file_mnt: btf.path_offset("file", &["f_path", "mnt"], Expect::Pointer)?,
        mount_root: btf.member_offset("vfsmount", "mnt_root", 0)?,
        dentry_parent: btf.member_offset("dentry", "d_parent", 0)?,
        image_change: image_change_layout(btf),
    })
}

/// `None` where either count is missing, or not what it should be.
fn image_change_layout(btf: &Btf) -> Option<ImageChangeLayout> {
    let task_exec_id = btf.member_offset("task_struct", "self_exec_id", 8).ok()?;
    // A `seqcount_t` since Linux 6.13, an `int` before.
    let mm_seq = btf
        .path_offset("mm_struct", &["mm_lock_seq", "sequence"], Expect::Int(4))
        .or_else(|_| btf.member_offset("mm_struct", "mm_lock_seq", 4))
        .ok()?;
    Some(ImageChangeLayout {
        task_exec_id,
        mm_seq,
    })
}

/// The kernel's BTF: mapped read-only where the kernel allows it (Linux 6.16+:
/// no copy through `read` and no private buffer to fault in, ~10 ms of a CLI
/// scan), else read.
pub(super) enum BtfBlob {
    Mapped {
        at: std::ptr::NonNull<libc::c_void>,
        len: usize,
    },
    Read(Vec<u8>),
}

impl BtfBlob {
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            // SAFETY: the mapping is `len` readable bytes and lives as long as self.
            BtfBlob::Mapped { at, len } => unsafe {
                std::slice::from_raw_parts(at.as_ptr().cast::<u8>(), *len)
            },
            BtfBlob::Read(data) => data,
        }
    }
}

impl Drop for BtfBlob {
    fn drop(&mut self) {
        if let BtfBlob::Mapped { at, len } = self {
            // SAFETY: at/len are exactly what mmap returned and mapped; unmapped once.
            unsafe { libc::munmap(at.as_ptr(), *len) };
        }
    }
}

pub(super) fn read_vmlinux_btf() -> Result<BtfBlob, FdIteratorError> {
    let unreadable = |source| FdIteratorError::BtfRead {
        path: VMLINUX_BTF,
        source,
    };
    let too_large = FdIteratorError::BtfTooLarge {
        path: VMLINUX_BTF,
        limit_mib: MAX_BTF_BYTES >> 20,
    };
    let file = std::fs::File::open(VMLINUX_BTF).map_err(unreadable)?;
    let stated = file.metadata().map_or(0, |m| m.len());
    if stated > MAX_BTF_BYTES {
        return Err(too_large);
    }
    let len = stated as usize;
    if len > 0 {
        // SAFETY: a fresh read-only private mapping of an open file; checked below.
        let at = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if at != libc::MAP_FAILED {
            if let Some(at) = std::ptr::NonNull::new(at) {
                return Ok(BtfBlob::Mapped { at, len });
            }
        }
    }
    // Sized once from the file's stated size (sysfs gives it), not grown in steps.
    let mut blob = Vec::with_capacity(len + 1);
    file.take(MAX_BTF_BYTES + 1)
        .read_to_end(&mut blob)
        .map_err(unreadable)?;
    if blob.len() as u64 > MAX_BTF_BYTES {
        return Err(too_large);
    }
    Ok(BtfBlob::Read(blob))
}

// ---------------------------------------------------------------------------
// The program (instruction encoding: include/uapi/linux/bpf.h, struct bpf_insn)

/// One `struct bpf_insn`: code, dst/src registers, offset, immediate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    pub(super) code: u8,
    pub(super) regs: u8,
    pub(super) off: i16,
    pub(super) imm: i32,
}

pub(super) const LDX_DW: u8 = 0x79; // BPF_LDX | BPF_MEM | BPF_DW
pub(super) const LDX_W: u8 = 0x61;
pub(super) const LDX_H: u8 = 0x69;
pub(super) const LDX_B: u8 = 0x71;
pub(super) const STX_DW: u8 = 0x7b; // BPF_STX | BPF_MEM | BPF_DW
pub(super) const STX_W: u8 = 0x63;
pub(super) const STX_H: u8 = 0x6b;
pub(super) const STX_B: u8 = 0x73;
pub(super) const ST_DW: u8 = 0x7a; // BPF_ST | BPF_MEM | BPF_DW
pub(super) const ST_W: u8 = 0x62;
pub(super) const ST_B: u8 = 0x72;
pub(super) const MOV64_REG: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
pub(super) const MOV64_IMM: u8 = 0xb7;
pub(super) const ADD64_IMM: u8 = 0x07;
pub(super) const AND64_IMM: u8 = 0x57;
pub(super) const OR64_IMM: u8 = 0x47;
pub(super) const LD_IMM64: u8 = 0x18; // BPF_LD | BPF_IMM | BPF_DW
pub(super) const JA: u8 = 0x05;
pub(super) const JEQ_IMM: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
pub(super) const JNE_IMM: u8 = 0x55;
pub(super) const JEQ_REG: u8 = 0x1d; // BPF_JMP | BPF_JEQ | BPF_X
pub(super) const JNE_REG: u8 = 0x5d;
pub(super) const CALL: u8 = 0x85;
pub(super) const EXIT: u8 = 0x95;
/// `src_reg` of a call whose `imm` is a kfunc's BTF id.
pub(super) const PSEUDO_KFUNC_CALL: u8 = 2;
/// `BPF_FUNC_seq_write` (GPL-only helper).
pub(super) const HELPER_SEQ_WRITE: i32 = 127;
/// `BPF_FUNC_sock_from_file` (Linux 5.11): the `struct socket` of a socket file.
pub(super) const HELPER_SOCK_FROM_FILE: i32 = 162;
pub(super) const S_IFMT: i32 = 0o170000;
pub(super) const S_IFSOCK: i32 = 0o140000;
pub(super) const AF_INET: i32 = 2;
pub(super) const AF_INET6: i32 = 10;

pub(super) fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (dst & 0x0f) | (src << 4),
        off,
        imm,
    }
}

pub(super) fn offset16(value: u32) -> Result<i16, FdIteratorError> {
    i16::try_from(value).map_err(|_| FdIteratorError::OffsetTooFar(value))
}

/// Where the program's jumps land.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Label {
    Sock,
    Facts,
    Write,
    Exit,
}

/// Stack offsets (from r10) a socket's ports and addresses are copied to.
#[derive(Clone, Copy)]
pub(super) struct Endpoints {
    pub local_port: i16,
    pub remote_port: i16,
    pub local_v4: i16,
    pub remote_v4: i16,
    pub local_v6: i16,
    pub remote_v6: i16,
}

/// Code with jumps to labels (forward, or back to a loop's head), resolved at
/// the end; `L` names a program's labels.
pub(super) struct Assembler<L> {
    code: Vec<Insn>,
    jumps: Vec<(usize, L)>,
    labels: Vec<(L, usize)>,
}

impl<L> Default for Assembler<L> {
    fn default() -> Self {
        Assembler {
            code: Vec::new(),
            jumps: Vec::new(),
            labels: Vec::new(),
        }
    }
}

impl<L: Copy + PartialEq + std::fmt::Debug> Assembler<L> {
    pub(super) fn emit(&mut self, i: Insn) {
        self.code.push(i);
    }

    /// `if dst <op> imm goto label`.
    pub(super) fn jump(&mut self, code: u8, dst: u8, imm: i32, to: L) {
        self.jumps.push((self.code.len(), to));
        self.emit(insn(code, dst, 0, 0, imm));
    }

    /// `if dst <op> src goto label`.
    pub(super) fn jump_reg(&mut self, code: u8, dst: u8, src: u8, to: L) {
        self.jumps.push((self.code.len(), to));
        self.emit(insn(code, dst, src, 0, 0));
    }

    /// `goto label`.
    pub(super) fn goto(&mut self, to: L) {
        self.jumps.push((self.code.len(), to));
        self.emit(insn(JA, 0, 0, 0, 0));
    }

    /// `dst = imm` over 64 bits (two instructions).
    pub(super) fn load_imm64(&mut self, dst: u8, imm: u64) {
        self.emit(insn(LD_IMM64, dst, 0, 0, imm as u32 as i32));
        self.emit(insn(0, 0, 0, 0, (imm >> 32) as u32 as i32));
    }

    /// A call of the kernel function whose BTF FUNC id (in vmlinux) is `id`.
    pub(super) fn call_kfunc(&mut self, id: u32) -> Result<(), FdIteratorError> {
        let imm = i32::try_from(id).map_err(|_| refused(format!("kfunc BTF id {id} too large")))?;
        self.emit(insn(CALL, 0, PSEUDO_KFUNC_CALL, 0, imm));
        Ok(())
    }

    pub(super) fn label(&mut self, label: L) {
        self.labels.push((label, self.code.len()));
    }

    /// `dst = *(size *)(src + offset)` then `*(size *)(r10 + at) = dst`: one field
    /// copied into the record.
    pub(super) fn copy(
        &mut self,
        load: u8,
        store: u8,
        src: u8,
        offset: u32,
        at: i16,
    ) -> Result<(), FdIteratorError> {
        self.emit(insn(load, 2, src, offset16(offset)?, 0));
        self.emit(insn(store, 10, 2, at, 0));
        Ok(())
    }

    /// `*(u64 *)(base + at) = task->group_leader->start_boottime`, the task in
    /// register `task` (r2 is overwritten); to `null` when it has no leader.
    pub(super) fn copy_leader_start(
        &mut self,
        task: u8,
        layout: (u32, u32),
        base: u8,
        at: i16,
        null: L,
    ) -> Result<(), FdIteratorError> {
        let (group_leader, start_boottime) = layout;
        self.emit(insn(LDX_DW, 2, task, offset16(group_leader)?, 0));
        self.jump(JEQ_IMM, 2, 0, null);
        self.emit(insn(LDX_DW, 2, 2, offset16(start_boottime)?, 0));
        self.emit(insn(STX_DW, base, 2, at, 0));
        Ok(())
    }

    /// Copies a `struct sock`'s ports and addresses (in register `from`) to
    /// the stack slots `to` names (an IPv6 address only where the kernel has
    /// IPv6).
    pub(super) fn copy_endpoints(
        &mut self,
        from: u8,
        sock: &SockLayout,
        to: Endpoints,
    ) -> Result<(), FdIteratorError> {
        self.copy(LDX_H, STX_H, from, sock.local_port, to.local_port)?;
        self.copy(LDX_H, STX_H, from, sock.remote_port, to.remote_port)?;
        self.copy(LDX_W, STX_W, from, sock.local_v4, to.local_v4)?;
        self.copy(LDX_W, STX_W, from, sock.remote_v4, to.remote_v4)?;
        for (address, at) in [(sock.local_v6, to.local_v6), (sock.remote_v6, to.remote_v6)] {
            if let Some(address) = address {
                self.copy(LDX_DW, STX_DW, from, address, at)?;
                self.copy(LDX_DW, STX_DW, from, address + 8, at + 8)?;
            }
        }
        Ok(())
    }

    pub(super) fn finish(mut self) -> Result<Vec<Insn>, FdIteratorError> {
        for (pc, to) in &self.jumps {
            let target = self
                .labels
                .iter()
                .find(|(l, _)| l == to)
                .map(|(_, at)| *at)
                .ok_or_else(|| refused(format!("BPF label {to:?} is not placed")))?;
            let off = i16::try_from(target as i64 - *pc as i64 - 1)
                .map_err(|_| refused("BPF jump too far"))?;
            if let Some(i) = self.code.get_mut(*pc) {
                i.off = off;
            }
        }
        Ok(self.code)
    }
}

/// Where each field of a record is, from the record's start (see [`RECORD_BYTES`]).
mod at {
    pub const TGID: i16 = 0;
    pub const TID: i16 = 4;
    pub const FD: i16 = 8;
    pub const UID: i16 = 12;
    pub const INODE: i16 = 16;
    pub const LEADER_START: i16 = 24;
    pub const NET: i16 = 32;
    pub const FAMILY: i16 = 36;
    pub const TYPE: i16 = 38;
    pub const PROTOCOL: i16 = 40;
    pub const STATE: i16 = 42;
    /// One byte: 1 once every fact is copied.
    pub const HAS_FACTS: i16 = 43;
    pub const LOCAL_PORT: i16 = 44;
    pub const REMOTE_PORT: i16 = 46;
    pub const LOCAL_V4: i16 = 48;
    pub const REMOTE_V4: i16 = 52;
    pub const LOCAL_V6: i16 = 56;
    pub const REMOTE_V6: i16 = 72;
}

// The last field ends the record, and 8-byte stores zero it whole.
const _: () = assert!(at::REMOTE_V6 as usize + 16 == RECORD_BYTES && RECORD_BYTES % 8 == 0);

/// The record is built on the stack at `r10 - RECORD_BYTES`.
const fn on_stack(field: i16) -> i16 {
    field - RECORD_BYTES as i16
}

/// The program: for each (task, file) with a socket inode, one record (see
/// [`RECORD_BYTES`]) written with `bpf_seq_write`. An IPv4 or IPv6 socket's record
/// carries its facts (family, type, protocol, state, ports, addresses,
/// namespace); a socket of another family is not written; a socket file without
/// a `struct sock` is written without facts (the caller resolves it as before).
pub fn program(layout: &KernelLayout) -> Result<Vec<Insn>, FdIteratorError> {
    use Label::*;
    let sock = &layout.sock;
    let mut a = Assembler::<Label>::default();
    a.emit(insn(MOV64_REG, 6, 1, 0, 0)); // r6 = ctx
    a.emit(insn(LDX_DW, 7, 6, 8, 0)); // r7 = ctx->task
    a.jump(JEQ_IMM, 7, 0, Exit);
    a.emit(insn(LDX_DW, 8, 6, 24, 0)); // r8 = ctx->file
    a.jump(JEQ_IMM, 8, 0, Exit);
    // Is it a socket? The helper compares `f_op` with the file already at hand;
    // only sockets' inodes are read (most fds are not sockets, and their inodes
    // are cold in the cache).
    a.emit(insn(MOV64_REG, 1, 8, 0, 0));
    a.emit(insn(CALL, 0, 0, 0, HELPER_SOCK_FROM_FILE));
    a.jump(JEQ_IMM, 0, 0, Exit);
    a.emit(insn(MOV64_REG, 9, 0, 0, 0)); // r9 = the struct socket
    a.emit(insn(LDX_DW, 1, 8, offset16(layout.file_f_inode)?, 0));
    a.jump(JEQ_IMM, 1, 0, Exit);
    a.emit(insn(LDX_H, 2, 1, offset16(layout.inode_i_mode)?, 0));
    a.emit(insn(AND64_IMM, 2, 0, 0, S_IFMT));
    a.jump(JNE_IMM, 2, S_IFSOCK, Exit);
    a.emit(insn(LDX_DW, 3, 1, offset16(layout.inode_i_ino)?, 0));
    // The whole record zeroed: the helper may only read initialised stack.
    for slot in 0..(RECORD_BYTES / 8) as i16 {
        a.emit(insn(ST_DW, 10, 0, on_stack(slot * 8), 0));
    }
    a.emit(insn(STX_DW, 10, 3, on_stack(at::INODE), 0));
    a.emit(insn(ST_W, 10, 0, on_stack(at::UID), -1)); // unknown until read
    a.copy(LDX_W, STX_W, 7, layout.task_tgid, on_stack(at::TGID))?;
    a.copy(LDX_W, STX_W, 7, layout.task_pid, on_stack(at::TID))?;
    a.emit(insn(LDX_W, 2, 6, 16, 0)); // ctx->fd
    a.emit(insn(STX_W, 10, 2, on_stack(at::FD), 0));
    let leader = (layout.task_group_leader, layout.task_start_boottime);
    a.copy_leader_start(7, leader, 10, on_stack(at::LEADER_START), Sock)?;
    a.emit(insn(LDX_DW, 4, 7, offset16(layout.task_real_cred)?, 0));
    a.jump(JEQ_IMM, 4, 0, Sock);
    a.copy(LDX_W, STX_W, 4, layout.cred_uid, on_stack(at::UID))?;
    a.label(Sock);
    a.emit(insn(LDX_DW, 9, 9, offset16(sock.socket_sk)?, 0)); // r9 = socket->sk
    a.jump(JEQ_IMM, 9, 0, Write);
    a.emit(insn(LDX_H, 2, 9, offset16(sock.family)?, 0));
    a.jump(JEQ_IMM, 2, AF_INET, Facts);
    a.jump(JNE_IMM, 2, AF_INET6, Exit);
    a.label(Facts);
    a.emit(insn(STX_H, 10, 2, on_stack(at::FAMILY), 0));
    a.copy(LDX_H, STX_H, 9, sock.socket_type, on_stack(at::TYPE))?;
    a.copy(LDX_H, STX_H, 9, sock.protocol, on_stack(at::PROTOCOL))?;
    a.copy(LDX_B, STX_B, 9, sock.state, on_stack(at::STATE))?;
    a.copy_endpoints(
        9,
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
    a.emit(insn(LDX_DW, 3, 9, offset16(sock.net)?, 0)); // r3 = sk->skc_net.net
    a.jump(JEQ_IMM, 3, 0, Write);
    a.copy(LDX_W, STX_W, 3, sock.net_inum, on_stack(at::NET))?;
    // Facts are whole only once every field above is copied.
    a.emit(insn(ST_B, 10, 0, on_stack(at::HAS_FACTS), 1));
    a.label(Write);
    a.emit(insn(LDX_DW, 1, 6, 0, 0)); // r1 = ctx->meta
    a.emit(insn(LDX_DW, 1, 1, 0, 0)); // r1 = meta->seq
    a.emit(insn(MOV64_REG, 2, 10, 0, 0));
    a.emit(insn(ADD64_IMM, 2, 0, 0, -(RECORD_BYTES as i32)));
    a.emit(insn(MOV64_IMM, 3, 0, 0, RECORD_BYTES as i32));
    a.emit(insn(CALL, 0, 0, 0, HELPER_SEQ_WRITE));
    a.label(Exit);
    a.emit(insn(MOV64_IMM, 0, 0, 0, 0));
    a.emit(insn(EXIT, 0, 0, 0, 0));
    a.finish()
}

// ---------------------------------------------------------------------------
// Maps

/// `bpf_map_lookup_elem` (include/uapi/linux/bpf.h, `enum bpf_func_id`).
pub(super) const HELPER_MAP_LOOKUP: i32 = 1;
/// `BPF_LD | BPF_IMM | BPF_DW` with this source register: the immediate is a map fd.
pub(super) const PSEUDO_MAP_FD: u8 = 1;
pub(super) const BPF_MAP_CREATE: libc::c_long = 0;
pub(super) const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
pub(super) const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
pub(super) const BPF_MAP_TYPE_HASH: u32 = 1;
pub(super) const BPF_F_NO_PREALLOC: u32 = 1;

/// `union bpf_attr` as BPF_MAP_CREATE reads it, up to `btf_value_type_id`.
#[repr(C)]
#[derive(Default)]
pub(super) struct MapCreateAttr {
    pub(super) map_type: u32,
    pub(super) key_size: u32,
    pub(super) value_size: u32,
    pub(super) max_entries: u32,
    pub(super) map_flags: u32,
    pub(super) inner_map_fd: u32,
    pub(super) numa_node: u32,
    pub(super) map_name: [u8; 16],
    pub(super) map_ifindex: u32,
    pub(super) btf_fd: u32,
    pub(super) btf_key_type_id: u32,
    pub(super) btf_value_type_id: u32,
}

/// `union bpf_attr` as the map element commands read it.
#[repr(C)]
#[derive(Default)]
pub(super) struct MapElemAttr {
    pub(super) map_fd: u32,
    pub(super) pad: u32,
    pub(super) key: u64,
    pub(super) value_or_next_key: u64,
    pub(super) flags: u64,
}

const _: () = {
    assert!(std::mem::offset_of!(MapCreateAttr, map_name) == 28);
    assert!(std::mem::offset_of!(MapCreateAttr, btf_value_type_id) == 56);
    assert!(std::mem::size_of::<MapElemAttr>() == 32);
};

/// `bpf(cmd, attr, sizeof attr)` for a command that returns 0 or an error.
pub(super) fn bpf_call<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<()> {
    bpf(cmd, attr).map(|_| ())
}

pub(super) fn io_error(what: &'static str) -> impl FnOnce(io::Error) -> FdIteratorError {
    move |source| FdIteratorError::Io { what, source }
}

/// A map of `map_type` (`flags`: `BPF_F_NO_PREALLOC` or 0).
pub(super) fn create_map(
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
    name: &[u8],
) -> Result<OwnedFd, FdIteratorError> {
    let mut attr = MapCreateAttr {
        map_type,
        key_size,
        value_size,
        max_entries,
        map_flags: flags,
        ..Default::default()
    };
    let named = name.len().min(attr.map_name.len() - 1);
    attr.map_name[..named].copy_from_slice(&name[..named]);
    bpf_fd(BPF_MAP_CREATE, &mut attr).map_err(io_error("BPF_MAP_CREATE"))
}

/// `dst = map` (the map fd, resolved by the kernel at load).
pub(super) fn load_map<L: Copy + PartialEq + std::fmt::Debug>(
    a: &mut Assembler<L>,
    dst: u8,
    map: &OwnedFd,
) {
    a.emit(insn(LD_IMM64, dst, PSEUDO_MAP_FD, 0, map.as_raw_fd()));
    a.emit(insn(0, 0, 0, 0, 0));
}

/// `r0 = bpf_map_lookup_elem(map, r10 + key)`.
pub(super) fn map_lookup<L: Copy + PartialEq + std::fmt::Debug>(
    a: &mut Assembler<L>,
    map: &OwnedFd,
    key: i16,
) {
    load_map(a, 1, map);
    a.emit(insn(MOV64_REG, 2, 10, 0, 0));
    a.emit(insn(ADD64_IMM, 2, 0, 0, i32::from(key)));
    a.emit(insn(CALL, 0, 0, 0, HELPER_MAP_LOOKUP));
}

/// The license the kernel is told: `bpf_seq_write` is a GPL-only helper. We
/// license the text of this small embedded program (the instructions above) as
/// "Dual MIT/GPL", as Cilium does for its BPF programs; the crate stays Apache-2.0.
const PROGRAM_LICENSE: &CStr = c"Dual MIT/GPL";

// ---------------------------------------------------------------------------
// bpf(2)

const BPF_PROG_LOAD: libc::c_long = 5;
pub(super) const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_ITER_CREATE: libc::c_long = 33;
const BPF_PROG_TYPE_TRACING: u32 = 26;
const BPF_TRACE_ITER: u32 = 28;
/// Verifier log kept when a load fails.
const VERIFIER_LOG_BYTES: usize = 64 * 1024;

/// `union bpf_attr` as BPF_PROG_LOAD reads it, up to `attach_btf_obj_fd`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_btf_obj_fd: u32,
    core_relo_cnt: u32,
}

/// `union bpf_attr` as BPF_LINK_CREATE reads it (iterator form).
#[repr(C)]
#[derive(Default)]
pub(super) struct LinkCreateAttr {
    pub prog_fd: u32,
    pub target_fd: u32,
    pub attach_type: u32,
    pub flags: u32,
    pub iter_info: u64,
    pub iter_info_len: u32,
    pub pad: u32,
}

/// `union bpf_attr` as BPF_ITER_CREATE reads it.
#[repr(C)]
#[derive(Default)]
struct IterCreateAttr {
    link_fd: u32,
    flags: u32,
}

// The layouts above must match the kernel's (include/uapi/linux/bpf.h).
const _: () = {
    assert!(std::mem::offset_of!(ProgLoadAttr, log_buf) == 32);
    assert!(std::mem::offset_of!(ProgLoadAttr, prog_name) == 48);
    assert!(std::mem::offset_of!(ProgLoadAttr, expected_attach_type) == 68);
    assert!(std::mem::offset_of!(ProgLoadAttr, func_info) == 80);
    assert!(std::mem::offset_of!(ProgLoadAttr, line_info) == 96);
    assert!(std::mem::offset_of!(ProgLoadAttr, attach_btf_id) == 108);
    assert!(std::mem::offset_of!(ProgLoadAttr, attach_btf_obj_fd) == 112);
    assert!(std::mem::size_of::<ProgLoadAttr>() == 120);
    assert!(std::mem::offset_of!(LinkCreateAttr, iter_info) == 16);
    assert!(std::mem::size_of::<IterCreateAttr>() == 8);
    assert!(std::mem::size_of::<Insn>() == 8);
};

/// `bpf(cmd, attr, sizeof attr)`: what the kernel returned, or its error.
pub(super) fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: attr is a fully initialised #[repr(C)] bpf_attr prefix of the given
    // size; every pointer inside it is valid for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut T).cast::<libc::c_void>(),
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// `bpf(cmd, attr, sizeof attr)` returning a new fd.
pub(super) fn bpf_fd<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<OwnedFd> {
    let rc = bpf(cmd, attr)?;
    let fd = i32::try_from(rc).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn loadprogram(layout: &KernelLayout) -> Result<OwnedFd, FdIteratorError> {
    load_program(&program(layout)?, layout.iter_func_id, b"an1256_fds")
}

/// Loads `code` as an iterator program attached to the FUNC `attach_btf_id`.
pub(super) fn load_program(
    code: &[Insn],
    attach_btf_id: u32,
    name: &[u8],
) -> Result<OwnedFd, FdIteratorError> {
    load_tracing_program(code, attach_btf_id, BPF_TRACE_ITER, name)
}

/// Loads `code` as a tracing program of `expected_attach_type` (an iterator, an
/// fentry…) for the FUNC `attach_btf_id`.
pub(super) fn load_tracing_program(
    code: &[Insn],
    attach_btf_id: u32,
    expected_attach_type: u32,
    name: &[u8],
) -> Result<OwnedFd, FdIteratorError> {
    load_program_of(
        BPF_PROG_TYPE_TRACING,
        code,
        attach_btf_id,
        expected_attach_type,
        name,
    )
}

/// Loads `code` as a program of `prog_type` for `expected_attach_type` (and
/// the FUNC `attach_btf_id` of a tracing program; 0 otherwise).
pub(super) fn load_program_of(
    prog_type: u32,
    code: &[Insn],
    attach_btf_id: u32,
    expected_attach_type: u32,
    name: &[u8],
) -> Result<OwnedFd, FdIteratorError> {
    let load = |log: Option<&mut Vec<u8>>| {
        let mut attr = ProgLoadAttr {
            prog_type,
            insn_cnt: code.len() as u32,
            insns: code.as_ptr() as u64,
            license: PROGRAM_LICENSE.as_ptr() as u64,
            expected_attach_type,
            attach_btf_id,
            ..Default::default()
        };
        let named = name.len().min(attr.prog_name.len() - 1);
        attr.prog_name[..named].copy_from_slice(&name[..named]);
        if let Some(log) = log {
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
        }
        bpf_fd(BPF_PROG_LOAD, &mut attr)
    };
    let first = match load(None) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    // Again with the verifier's log, which says exactly what it refused.
    let mut log = vec![0u8; VERIFIER_LOG_BYTES];
    let again = load(Some(&mut log));
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(log.get(..end).unwrap_or_default());
    match again {
        Ok(fd) => Ok(fd),
        Err(_) => Err(FdIteratorError::ProgramLoad {
            source: first,
            verifier_log: text.trim_end().to_string(),
        }),
    }
}

/// The loaded program and its link: iterators are created from the link.
pub struct FdIterator {
    /// Kept for the per-process links (`socket_fds_of`).
    program: OwnedFd,
    link: OwnedFd,
    layout: KernelLayout,
}

impl FdIterator {
    fn build() -> Result<FdIterator, FdIteratorError> {
        let cache_dir = std::path::Path::new(LAYOUT_CACHE_DIR);
        let key = LayoutCacheKey::here();
        // This boot's layout as root kept it; any refusal, or a program the
        // kernel does not take whole from it, and the BTF is parsed again.
        if let Some(cached) = key
            .as_ref()
            .and_then(|key| load_layout_cache(cache_dir, key).ok())
        {
            if let Ok(iterator) = Self::from_layout(&cached) {
                return Ok(iterator);
            }
        }
        let layout = parse_layout(read_vmlinux_btf()?.bytes())?;
        let iterator = Self::from_layout(&layout)?;
        if let Some(key) = &key {
            if let Err(why) = store_layout_cache(cache_dir, key, &layout) {
                log::debug!("kernel layout not kept in {LAYOUT_CACHE_DIR}: {why}");
            }
        }
        Ok(iterator)
    }

    fn from_layout(layout: &KernelLayout) -> Result<FdIterator, FdIteratorError> {
        let program = loadprogram(layout)?;
        let link = Self::link(&program, None)?;
        Ok(FdIterator {
            program,
            link,
            layout: *layout,
        })
    }

    /// A link of the program over every task, or over the threads of one process
    /// (`bpf_iter_link_info.task.pid`, Linux 6.1).
    pub(super) fn link(program: &OwnedFd, pid: Option<u32>) -> Result<OwnedFd, FdIteratorError> {
        // union bpf_iter_link_info: its task member is {tid, pid, pid_fd}; the
        // union is 16 bytes (its cgroup member).
        let info: [u32; 4] = [0, pid.unwrap_or(0), 0, 0];
        let mut attr = LinkCreateAttr {
            prog_fd: program.as_raw_fd() as u32,
            attach_type: BPF_TRACE_ITER,
            ..Default::default()
        };
        if pid.is_some() {
            attr.iter_info = info.as_ptr() as u64;
            attr.iter_info_len = std::mem::size_of_val(&info) as u32;
        }
        bpf_fd(BPF_LINK_CREATE, &mut attr).map_err(|source| FdIteratorError::Io {
            what: "BPF_LINK_CREATE",
            source,
        })
    }

    /// One pass over every task's fds: reads at most `max_bytes` of records and
    /// stops when `deadline` passes (both reported in `cut`).
    pub fn socket_fds(
        &self,
        max_bytes: usize,
        deadline: crate::deadline::Deadline,
    ) -> Result<SocketFds, FdIteratorError> {
        let (records, _) = Self::read_pass(&self.link, max_bytes, deadline)?;
        if records.cut.is_none() {
            PASSES.with(|p| p.set(p.get() + 1));
        }
        Ok(records)
    }

    /// The kernel layout the program was made from.
    pub fn layout(&self) -> &KernelLayout {
        &self.layout
    }

    /// One pass over the fds of process `pid`'s threads only: its records alone
    /// are kept (a kernel that ignored the restriction would list every task).
    pub fn socket_fds_of(
        &self,
        pid: u32,
        max_bytes: usize,
        deadline: crate::deadline::Deadline,
    ) -> Result<SocketFds, FdIteratorError> {
        let link = Self::link(&self.program, Some(pid))?;
        // The kernel steps from thread to thread by looking up the thread it
        // last visited (task_group_seq_get_next), at each thread it finishes
        // and at each read it resumes: if that thread has exited by then, the
        // pass ends as if it were whole, within one read as well as between
        // reads. So a pass is whole only if no thread came or went meanwhile: a
        // thread made during the pass joins the end of the list, so one that
        // came and went had only threads made after it, also gone, behind it.
        // A process gone by the end has no socket left to miss. A process
        // whose threads changed is read again (a thread pool's churn is
        // seldom constant), up to `PASSES_PER_PROCESS` times, then said unsure.
        let mut before = super::procfs::thread_ids(pid);
        let mut passes = 0;
        loop {
            passes += 1;
            let (mut records, reads) = Self::read_pass(&link, max_bytes, deadline)?;
            let after = super::procfs::thread_ids(pid);
            // Gone by the end: no socket left to miss. Too many threads to list
            // (or unlistable): it cannot be told whole (nor made so by another
            // pass).
            let gone = match &after {
                Some(tids) => tids.is_empty(),
                // Unlistable because the process is no more (not a reason to
                // doubt what it held).
                None => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            };
            let unlistable = before.is_none() || after.is_none();
            let changed = !gone && (unlistable || after != before);
            if changed && records.cut.is_none() && !unlistable && passes < PASSES_PER_PROCESS {
                before = after;
                continue;
            }
            if records.cut.is_none() && changed {
                records.unsure = Some(format!(
                    "process {pid}: its threads came or went while its fds were read \
                     ({passes} passes, the last in {reads} reads): sockets past a thread \
                     that exited may be missing"
                ));
            }
            records.records.retain(|r| r.tgid == pid);
            if records.cut.is_none() {
                PID_PASSES.with(|p| p.set(p.get() + 1));
            }
            return Ok(records);
        }
    }

    /// One pass's records, and in how many reads.
    fn read_pass(
        link: &OwnedFd,
        max_bytes: usize,
        deadline: crate::deadline::Deadline,
    ) -> Result<(SocketFds, usize), FdIteratorError> {
        // Small reads: the kernel runs the program until a read's bytes are
        // filled (or a million objects passed), so a huge fd table listed once per
        // thread of an exited leader cannot hold one read for seconds past the
        // deadline.
        let output = read_iterator(link, RECORD_BYTES, 64, max_bytes, deadline)?;
        let cut = output.cut.map(|cut| match cut {
            Cut::Deadline => "deadline passed while reading the fd iterator".to_string(),
            Cut::Bytes => format!(
                "the fd iterator gave over {} MiB of socket records",
                max_bytes >> 20
            ),
        });
        Ok((
            SocketFds {
                records: parse_records(&output.data),
                cut,
                unsure: None,
            },
            output.reads,
        ))
    }
}

/// Why an iterator's output stopped short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cut {
    Deadline,
    Bytes,
}

/// What reading one iterator made from `link` gave.
pub(super) struct IteratorOutput {
    /// Whole records only, unless `cut`.
    pub data: Vec<u8>,
    pub cut: Option<Cut>,
    pub reads: usize,
}

/// Reads one iterator made from `link`, `chunk_records` records of
/// `record_bytes` per read, until its end, `max_bytes` or `deadline`.
pub(super) fn read_iterator(
    link: &OwnedFd,
    record_bytes: usize,
    chunk_records: usize,
    max_bytes: usize,
    deadline: crate::deadline::Deadline,
) -> Result<IteratorOutput, FdIteratorError> {
    let mut attr = IterCreateAttr {
        link_fd: link.as_raw_fd() as u32,
        flags: 0,
    };
    let iterator = bpf_fd(BPF_ITER_CREATE, &mut attr).map_err(|source| FdIteratorError::Io {
        what: "BPF_ITER_CREATE",
        source,
    })?;
    let mut file = std::fs::File::from(iterator);
    let mut data = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; record_bytes * chunk_records];
    let mut cut = None;
    let mut reads = 0;
    loop {
        if deadline.expired() {
            cut = Some(Cut::Deadline);
            break;
        }
        reads += 1;
        let n = match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            // EAGAIN: a million objects passed without a record; go on.
            Err(e)
                if e.kind() == io::ErrorKind::Interrupted
                    || e.kind() == io::ErrorKind::WouldBlock =>
            {
                continue
            }
            Err(source) => {
                return Err(FdIteratorError::Io {
                    what: "reading a BPF iterator",
                    source,
                })
            }
        };
        if data.len() + n > max_bytes {
            cut = Some(Cut::Bytes);
            break;
        }
        data.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    if data.len() % record_bytes != 0 && cut.is_none() {
        return Err(FdIteratorError::PartialRecord(data.len()));
    }
    Ok(IteratorOutput { data, cut, reads })
}

thread_local! {
    static PASSES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    static PID_PASSES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Whole iterator passes over every task this thread has read: lets tests tell
/// which path a scan took (a scan reads the iterator on its calling thread).
pub fn passes_on_this_thread() -> u64 {
    PASSES.with(std::cell::Cell::get)
}

/// Whole passes over one process's tasks this thread has read.
pub fn pid_passes_on_this_thread() -> u64 {
    PID_PASSES.with(std::cell::Cell::get)
}

/// The whole records of the iterator's output.
pub fn parse_records(data: &[u8]) -> Vec<SocketFd> {
    data.chunks_exact(RECORD_BYTES)
        .filter_map(parse_record)
        .collect()
}

fn parse_record(r: &[u8]) -> Option<SocketFd> {
    let u16_field = |at: i16| u16_at(r, at as usize);
    let u32_field = |at: i16| u32_at(r, at as usize);
    let u64_field = |at: i16| {
        let at = at as usize;
        Some(u64::from_ne_bytes(r.get(at..at + 8)?.try_into().ok()?))
    };
    let bytes = |at: i16, n: usize| r.get(at as usize..at as usize + n);
    let facts = if *r.get(at::HAS_FACTS as usize)? == 1 {
        let family = u16_field(at::FAMILY)?;
        let address = |v4: i16, v6: i16| -> Option<IpAddr> {
            if i32::from(family) == AF_INET {
                let octets: [u8; 4] = bytes(v4, 4)?.try_into().ok()?;
                return Some(IpAddr::V4(Ipv4Addr::from(octets)));
            }
            let octets: [u8; 16] = bytes(v6, 16)?.try_into().ok()?;
            let v6 = Ipv6Addr::from(octets);
            // As the tables print them: a v4-mapped address is the IPv4 one.
            Some(match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            })
        };
        let remote_port: [u8; 2] = bytes(at::REMOTE_PORT, 2)?.try_into().ok()?;
        Some(SocketFacts {
            net: u32_field(at::NET)?,
            family,
            socket_type: u16_field(at::TYPE)?,
            protocol: u16_field(at::PROTOCOL)?,
            state: *r.get(at::STATE as usize)?,
            local: address(at::LOCAL_V4, at::LOCAL_V6)?,
            local_port: u16_field(at::LOCAL_PORT)?,
            remote: address(at::REMOTE_V4, at::REMOTE_V6)?,
            remote_port: u16::from_be_bytes(remote_port),
        })
    } else {
        None
    };
    Some(SocketFd {
        tgid: u32_field(at::TGID)?,
        tid: u32_field(at::TID)?,
        fd: u32_field(at::FD)?,
        inode: u64_field(at::INODE)?,
        leader_start: u64_field(at::LEADER_START)?,
        uid: u32_field(at::UID)?,
        facts,
    })
}

// ---------------------------------------------------------------------------
// The parsed layout, kept for the rest of the boot

/// Where root keeps the running kernel's parsed layout: parsing the BTF is
/// ~1.2 ms of each CLI run's CPU (a fifth of a scan on an idle host), and the
/// layout cannot change before the next boot. Owned by root, 0700; the file
/// 0600. Anyone able to write there could make the program read the wrong
/// fields (another uid or other facts for a socket), so anything but exactly
/// that (owner, mode, type, one link, the boot, the BTF's size, the format) is
/// refused and the BTF parsed instead.
pub(super) const LAYOUT_CACHE_DIR: &str = "/run/an1256";
const LAYOUT_CACHE_FILE: &CStr = c"kernel-layout";
/// Format 1 had six offsets more (`view.*`: the namespaces and root a program
/// version compared with the scanner's), format 2 lacked the library program's
/// twelve (`libraries.*`), format 3 had nine of them, format 4 lacked the two
/// counts of `libraries.image_change`: a new number each time,
/// so a file written by such a build is refused and written anew, never read
/// with its lines shifted.
const LAYOUT_CACHE_HEADER: &str = "an1256 kernel layout 5";
/// A cache file is ~500 bytes.
const MAX_LAYOUT_CACHE_BYTES: u64 = 4096;
/// How many fields a layout has (the cache's lines after its key).
const LAYOUT_FIELDS: usize = 37;

/// What a cached layout must have been made for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct LayoutCacheKey {
    /// `/proc/sys/kernel/random/boot_id`: new at every boot.
    pub(super) boot_id: String,
    /// The size of `/sys/kernel/btf/vmlinux`.
    btf_bytes: u64,
}

impl LayoutCacheKey {
    /// This boot's key; `None` (no cache) unless we are root.
    pub(super) fn here() -> Option<LayoutCacheKey> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let mut boot_id = String::new();
        std::fs::File::open("/proc/sys/kernel/random/boot_id")
            .ok()?
            .take(64)
            .read_to_string(&mut boot_id)
            .ok()?;
        let boot_id = boot_id.trim_end().to_string();
        if boot_id.len() != 36 || !boot_id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return None;
        }
        let btf_bytes = std::fs::metadata(VMLINUX_BTF).ok()?.len();
        Some(LayoutCacheKey { boot_id, btf_bytes })
    }
}

/// Every field of a layout, named, in one fixed order (the cache's lines).
fn layout_fields(l: &KernelLayout) -> [(&'static str, Option<u32>); LAYOUT_FIELDS] {
    let s = &l.sock;
    let lib = |field: fn(&LibraryLayout) -> u32| l.libraries.as_ref().map(field);
    let change = |field: fn(&ImageChangeLayout) -> u32| {
        l.libraries
            .as_ref()
            .and_then(|l| l.image_change.as_ref())
            .map(field)
    };
    [
        ("iter_func_id", Some(l.iter_func_id)),
        ("task_tgid", Some(l.task_tgid)),
        ("task_pid", Some(l.task_pid)),
        ("file_f_inode", Some(l.file_f_inode)),
        ("inode_i_mode", Some(l.inode_i_mode)),
        ("inode_i_ino", Some(l.inode_i_ino)),
        ("task_group_leader", Some(l.task_group_leader)),
        ("task_start_boottime", Some(l.task_start_boottime)),
        ("task_real_cred", Some(l.task_real_cred)),
        ("cred_uid", Some(l.cred_uid)),
        ("sock.socket_sk", Some(s.socket_sk)),
        ("sock.family", Some(s.family)),
        ("sock.socket_type", Some(s.socket_type)),
        ("sock.protocol", Some(s.protocol)),
        ("sock.state", Some(s.state)),
        ("sock.local_port", Some(s.local_port)),
        ("sock.remote_port", Some(s.remote_port)),
        ("sock.local_v4", Some(s.local_v4)),
        ("sock.remote_v4", Some(s.remote_v4)),
        ("sock.local_v6", s.local_v6),
        ("sock.remote_v6", s.remote_v6),
        ("sock.net", Some(s.net)),
        ("sock.net_inum", Some(s.net_inum)),
        ("libraries.iter_func_id", lib(|l| l.iter_func_id)),
        ("libraries.vma_new", lib(|l| l.vma_new)),
        ("libraries.vma_next", lib(|l| l.vma_next)),
        ("libraries.vma_destroy", lib(|l| l.vma_destroy)),
        ("libraries.task_mm", lib(|l| l.task_mm)),
        ("libraries.vma_flags", lib(|l| l.vma_flags)),
        ("libraries.vma_file", lib(|l| l.vma_file)),
        ("libraries.file_dentry", lib(|l| l.file_dentry)),
        ("libraries.dentry_name", lib(|l| l.dentry_name)),
        ("libraries.file_mnt", lib(|l| l.file_mnt)),
        ("libraries.mount_root", lib(|l| l.mount_root)),
        ("libraries.dentry_parent", lib(|l| l.dentry_parent)),
        ("libraries.task_exec_id", change(|c| c.task_exec_id)),
        ("libraries.mm_seq", change(|c| c.mm_seq)),
    ]
}

/// The layout from values in [`layout_fields`]' order (a struct literal's
/// fields are evaluated in the order written); `None` if one is missing.
fn layout_from_fields(values: [Option<u32>; LAYOUT_FIELDS]) -> Option<KernelLayout> {
    let mut next = values.into_iter();
    let mut required = || next.next().flatten();
    let head = [(); 10].map(|()| required());
    let sock = [(); 9].map(|()| required());
    let v6 = [next.next()?, next.next()?];
    let net = [next.next()??, next.next()??];
    // All twelve or none: a kernel without the library program has none.
    let libraries = [(); 12].map(|()| next.next().flatten());
    // Both or neither, and only with the library program's.
    let image_change = match [next.next()?, next.next()?] {
        [Some(task_exec_id), Some(mm_seq)] => Some(ImageChangeLayout {
            task_exec_id,
            mm_seq,
        }),
        [None, None] => None,
        _ => return None,
    };
    let libraries = match libraries {
        [Some(iter_func_id), Some(vma_new), Some(vma_next), Some(vma_destroy), Some(task_mm), Some(vma_flags), Some(vma_file), Some(file_dentry), Some(dentry_name), Some(file_mnt), Some(mount_root), Some(dentry_parent)] => {
            Some(LibraryLayout {
                iter_func_id,
                vma_new,
                vma_next,
                vma_destroy,
                task_mm,
                vma_flags,
                vma_file,
                file_dentry,
                dentry_name,
                file_mnt,
                mount_root,
                dentry_parent,
                image_change,
            })
        }
        libraries if libraries.iter().all(Option::is_none) && image_change.is_none() => None,
        _ => return None,
    };
    let [iter_func_id, task_tgid, task_pid, file_f_inode, inode_i_mode, inode_i_ino, task_group_leader, task_start_boottime, task_real_cred, cred_uid] =
        head;
    let [socket_sk, family, socket_type, protocol, state, local_port, remote_port, local_v4, remote_v4] =
        sock;
    Some(KernelLayout {
        iter_func_id: iter_func_id?,
        task_tgid: task_tgid?,
        task_pid: task_pid?,
        file_f_inode: file_f_inode?,
        inode_i_mode: inode_i_mode?,
        inode_i_ino: inode_i_ino?,
        task_group_leader: task_group_leader?,
        task_start_boottime: task_start_boottime?,
        task_real_cred: task_real_cred?,
        cred_uid: cred_uid?,
        sock: SockLayout {
            socket_sk: socket_sk?,
            family: family?,
            socket_type: socket_type?,
            protocol: protocol?,
            state: state?,
            local_port: local_port?,
            remote_port: remote_port?,
            local_v4: local_v4?,
            remote_v4: remote_v4?,
            local_v6: v6[0],
            remote_v6: v6[1],
            net: net[0],
            net_inum: net[1],
        },
        libraries,
    })
}

/// The cache file's text.
fn layout_cache_text(key: &LayoutCacheKey, layout: &KernelLayout) -> String {
    let mut text = format!(
        "{LAYOUT_CACHE_HEADER}\nboot_id {}\nbtf_bytes {}\n",
        key.boot_id, key.btf_bytes
    );
    for (name, value) in layout_fields(layout) {
        match value {
            Some(value) => text.push_str(&format!("{name} {value}\n")),
            None => text.push_str(&format!("{name} none\n")),
        }
    }
    text
}

/// The layout in `text` if it was made for `key`, in this format, whole.
fn parse_layout_cache(text: &str, key: &LayoutCacheKey) -> Result<KernelLayout, String> {
    let mut lines = text.split('\n');
    if lines.next() != Some(LAYOUT_CACHE_HEADER) {
        return Err("another format".into());
    }
    if lines.next() != Some(&format!("boot_id {}", key.boot_id)) {
        return Err("made for another boot".into());
    }
    if lines.next() != Some(&format!("btf_bytes {}", key.btf_bytes)) {
        return Err("made for another BTF".into());
    }
    let names = layout_fields(&EMPTY_LAYOUT).map(|(name, _)| name);
    let mut values = [None; LAYOUT_FIELDS];
    for (slot, name) in values.iter_mut().zip(names) {
        let line = lines.next().ok_or("cut short")?;
        let value = line
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(' '))
            .ok_or_else(|| format!("no {name}"))?;
        *slot = match value {
            "none" => None,
            number => Some(number.parse().map_err(|_| format!("{name} {number:?}"))?),
        };
    }
    if lines.next() != Some("") || lines.next().is_some() {
        return Err("trailing text".into());
    }
    layout_from_fields(values).ok_or_else(|| "a required field is none".into())
}

/// A layout of zeros: only its field names are used (and tests' layouts start
/// from it).
pub(super) const EMPTY_LAYOUT: KernelLayout = KernelLayout {
    iter_func_id: 0,
    task_tgid: 0,
    task_pid: 0,
    file_f_inode: 0,
    inode_i_mode: 0,
    inode_i_ino: 0,
    task_group_leader: 0,
    task_start_boottime: 0,
    task_real_cred: 0,
    cred_uid: 0,
    sock: SockLayout {
        socket_sk: 0,
        family: 0,
        socket_type: 0,
        protocol: 0,
        state: 0,
        local_port: 0,
        remote_port: 0,
        local_v4: 0,
        remote_v4: 0,
        local_v6: None,
        remote_v6: None,
        net: 0,
        net_inum: 0,
    },
    libraries: None,
};

fn fstat(fd: &OwnedFd) -> io::Result<libc::stat> {
    // SAFETY: st is plain data that fstat fills.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open; st is valid for writes.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// `dir`, opened without following a symlink, if it is a directory owned by
/// root with mode 0700 (made so first when `create`).
fn open_layout_cache_dir(dir: &std::path::Path, create: bool) -> Result<OwnedFd, String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if create {
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e.to_string()),
            _ => {}
        }
    }
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let fd = OwnedFd::from(opened);
    let st = fstat(&fd).map_err(|e| e.to_string())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR || st.st_uid != 0 || st.st_mode & 0o7777 != 0o700
    {
        return Err(format!(
            "{} is not a directory of root's with mode 0700",
            dir.display()
        ));
    }
    Ok(fd)
}

/// The layout cached in `dir` for `key`, or why not.
fn load_layout_cache(dir: &std::path::Path, key: &LayoutCacheKey) -> Result<KernelLayout, String> {
    let bytes = read_private_file(dir, LAYOUT_CACHE_FILE, MAX_LAYOUT_CACHE_BYTES)?;
    let text = String::from_utf8(bytes).map_err(|e| e.to_string())?;
    parse_layout_cache(&text, key)
}

/// Writes the layout for `key` into `dir` (made 0700 if missing).
fn store_layout_cache(
    dir: &std::path::Path,
    key: &LayoutCacheKey,
    layout: &KernelLayout,
) -> Result<(), String> {
    write_private_file(
        dir,
        LAYOUT_CACHE_FILE,
        layout_cache_text(key, layout).as_bytes(),
    )
}

/// The bytes of `name` in root's private directory `dir`, only if it is
/// exactly as root left it: a regular file of root's, mode 0600, one link, at
/// most `max` bytes.
pub(super) fn read_private_file(
    dir: &std::path::Path,
    name: &CStr,
    max: u64,
) -> Result<Vec<u8>, String> {
    let dir_fd = open_layout_cache_dir(dir, false)?;
    // SAFETY: dir_fd is an open directory; the name is NUL-terminated.
    let fd = unsafe {
        libc::openat(
            dir_fd.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error().to_string());
    }
    // SAFETY: openat returned a new fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let st = fstat(&fd).map_err(|e| e.to_string())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG
        || st.st_uid != 0
        || st.st_mode & 0o7777 != 0o600
        || st.st_nlink != 1
    {
        return Err("not a regular file of root's with mode 0600 and one link".into());
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > max {
        return Err("too large".into());
    }
    Ok(bytes)
}

/// Writes `bytes` as `name` in root's private directory `dir` (made 0700 if
/// missing): a private temporary file renamed over the old one.
pub(super) fn write_private_file(
    dir: &std::path::Path,
    name: &CStr,
    bytes: &[u8],
) -> Result<(), String> {
    use std::io::Write;
    let dir_fd = open_layout_cache_dir(dir, true)?;
    let temporary =
        std::ffi::CString::new(format!("{}.{}", name.to_string_lossy(), std::process::id()))
            .map_err(|e| e.to_string())?;
    // SAFETY: dir_fd is an open directory; the name is NUL-terminated.
    unsafe { libc::unlinkat(dir_fd.as_raw_fd(), temporary.as_ptr(), 0) };
    // SAFETY: as above; O_EXCL | O_NOFOLLOW make a new file or fail.
    let fd = unsafe {
        libc::openat(
            dir_fd.as_raw_fd(),
            temporary.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600 as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error().to_string());
    }
    // SAFETY: openat returned a new fd that nothing else owns.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let written = file
        .write_all(bytes)
        .and_then(|()| {
            // SAFETY: plain fchmod on our open fd (the umask may have taken bits).
            match unsafe { libc::fchmod(file.as_raw_fd(), 0o600) } {
                0 => Ok(()),
                _ => Err(io::Error::last_os_error()),
            }
        })
        .and_then(|()| {
            // SAFETY: both names are NUL-terminated, in the open directory.
            match unsafe {
                libc::renameat(
                    dir_fd.as_raw_fd(),
                    temporary.as_ptr(),
                    dir_fd.as_raw_fd(),
                    name.as_ptr(),
                )
            } {
                0 => Ok(()),
                _ => Err(io::Error::last_os_error()),
            }
        });
    written.map_err(|e| {
        // SAFETY: as above.
        unsafe { libc::unlinkat(dir_fd.as_raw_fd(), temporary.as_ptr(), 0) };
        e.to_string()
    })
}

static SHARED: OnceLock<Result<FdIterator, FdIteratorError>> = OnceLock::new();

/// The iterator when this process can use it exactly, else why not (made once).
pub fn shared() -> Result<&'static FdIterator, &'static FdIteratorError> {
    SHARED
        .get_or_init(|| exact_here().and_then(|()| FdIterator::build()))
        .as_ref()
}

/// The iterator if `shared` made it already; never makes it.
pub fn if_made() -> Option<&'static FdIterator> {
    SHARED.get()?.as_ref().ok()
}

/// The records name `/proc`'s pids, and every process is ours to read, only for a
/// privileged scanner in the initial pid namespace whose `/proc` is that
/// namespace's.
pub(super) fn exact_here() -> Result<(), FdIteratorError> {
    let unavailable = |why: String| FdIteratorError::Unavailable(why);
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| unavailable(format!("/proc/self/status: {e}")))?;
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or_else(|| unavailable("no CapEff in /proc/self/status".into()))?;
    let has = |cap: u32| effective & (1u64 << cap) != 0;
    let (sys_admin, sys_ptrace, perfmon, bpf) = (21, 19, 38, 39);
    if !(has(sys_ptrace) && (has(sys_admin) || (has(perfmon) && has(bpf)))) {
        return Err(unavailable(
            "not privileged (needs CAP_SYS_PTRACE and CAP_BPF+CAP_PERFMON or CAP_SYS_ADMIN)".into(),
        ));
    }
    let namespace = std::fs::read_link("/proc/self/ns/pid")
        .map_err(|e| unavailable(format!("/proc/self/ns/pid: {e}")))?;
    if namespace.as_os_str().as_encoded_bytes() != INITIAL_PID_NAMESPACE {
        return Err(unavailable(format!(
            "not in the initial pid namespace ({})",
            namespace.display()
        )));
    }
    let own =
        std::fs::read_link("/proc/self").map_err(|e| unavailable(format!("/proc/self: {e}")))?;
    if own.as_os_str().as_encoded_bytes() != std::process::id().to_string().as_bytes() {
        return Err(unavailable(
            "/proc is not mounted for our pid namespace".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a BTF blob: types are (name, info, size_or_type, trailing words).
    struct Builder {
        strings: Vec<u8>,
        types: Vec<u8>,
        count: u32,
    }

    impl Builder {
        fn new() -> Self {
            Builder {
                strings: vec![0],
                types: Vec::new(),
                count: 0,
            }
        }

        fn name(&mut self, name: &str) -> u32 {
            if name.is_empty() {
                return 0;
            }
            let at = self.strings.len() as u32;
            self.strings.extend_from_slice(name.as_bytes());
            self.strings.push(0);
            at
        }

        fn add(
            &mut self,
            name: &str,
            kind: u8,
            flag: bool,
            vlen: u16,
            size: u32,
            extra: &[u32],
        ) -> u32 {
            let name = self.name(name);
            let info = (u32::from(kind) << 24) | u32::from(vlen) | (u32::from(flag) << 31);
            for word in [name, info, size].iter().chain(extra) {
                self.types.extend_from_slice(&word.to_ne_bytes());
            }
            self.count += 1;
            self.count
        }

        fn int(&mut self, name: &str, bytes: u32) -> u32 {
            self.add(name, KIND_INT, false, 0, bytes, &[bytes * 8])
        }

        fn ptr(&mut self, to: u32) -> u32 {
            self.add("", KIND_PTR, false, 0, to, &[])
        }

        /// Members: (name, type, bit offset).
        fn structure(
            &mut self,
            name: &str,
            kind: u8,
            flag: bool,
            size: u32,
            members: &[(&str, u32, u32)],
        ) -> u32 {
            let mut words = Vec::new();
            for (member, ty, offset) in members {
                words.extend([self.name(member), *ty, *offset]);
            }
            self.add(name, kind, flag, members.len() as u16, size, &words)
        }

        fn blob(&self) -> Vec<u8> {
            let mut blob = Vec::new();
            blob.extend_from_slice(&BTF_MAGIC.to_ne_bytes());
            blob.extend_from_slice(&[1, 0]);
            for word in [
                24,
                0,
                self.types.len() as u32,
                self.types.len() as u32,
                self.strings.len() as u32,
            ] {
                blob.extend_from_slice(&word.to_ne_bytes());
            }
            blob.extend_from_slice(&self.types);
            blob.extend_from_slice(&self.strings);
            blob
        }
    }

    /// A kernel-like BTF: typedefs, an anonymous union, a FUNC_PROTO and ENUM to skip.
    fn kernel_like(i_mode_bytes: u32, tgid_bitfield: bool) -> Builder {
        let mut b = Builder::new();
        let int = b.int("int", 4);
        let ushort = b.int("unsigned short", i_mode_bytes);
        let ulong = b.int("long unsigned int", 8);
        let uint = b.int("unsigned int", 4);
        let pid_t = b.add("pid_t", KIND_TYPEDEF, false, 0, int, &[]);
        let umode = b.add("umode_t", KIND_TYPEDEF, false, 0, ushort, &[]);
        let _enum = b.add("e", KIND_ENUM, false, 2, 4, &[1, 0, 2, 1]);
        let proto = b.add("", KIND_FUNC_PROTO, false, 1, int, &[0, int]);
        b.add("bpf_iter_task_file", KIND_FUNC, false, 0, proto, &[]);
        let (tgid_offset, flag) = if tgid_bitfield {
            ((32 << 24) | (1024 * 8), true)
        } else {
            (1024 * 8, false)
        };
        let task_fwd = b.add("task_struct", KIND_FWD, false, 0, 0, &[]);
        let kuid = b.structure("", KIND_STRUCT, false, 4, &[("val", uint, 0)]);
        let kuid_t = b.add("kuid_t", KIND_TYPEDEF, false, 0, kuid, &[]);
        let cred = b.structure("cred", KIND_STRUCT, false, 64, &[("uid", kuid_t, 8 * 8)]);
        let cred_ptr = b.ptr(cred);
        let leader = b.ptr(task_fwd);
        let task = b.structure(
            "task_struct",
            KIND_STRUCT,
            flag,
            4096,
            &[
                ("pid", pid_t, 1020 * 8),
                ("tgid", pid_t, tgid_offset),
                ("group_leader", leader, 1100 * 8),
                ("start_boottime", ulong, 1600 * 8),
                ("real_cred", cred_ptr, 1700 * 8),
            ],
        );
        add_socket_types(&mut b, ushort);
        let inode = b.structure(
            "inode",
            KIND_STRUCT,
            false,
            600,
            &[("i_mode", umode, 0), ("i_ino", ulong, 64 * 8)],
        );
        let const_inode = b.add("", KIND_CONST, false, 0, inode, &[]);
        let inode_ptr = b.ptr(const_inode);
        let anon = b.structure("", KIND_UNION, false, 8, &[("f_inode", inode_ptr, 0)]);
        let file = b.structure(
            "file",
            KIND_STRUCT,
            false,
            200,
            &[("f_mode", uint, 0), ("", anon, 32 * 8)],
        );
        let seq = b.structure("seq_file", KIND_STRUCT, false, 8, &[("x", int, 0)]);
        let seq_ptr = b.ptr(seq);
        let meta = b.structure(
            "bpf_iter_meta",
            KIND_STRUCT,
            false,
            24,
            &[("seq", seq_ptr, 0)],
        );
        let (meta_ptr, task_ptr, file_ptr) = (b.ptr(meta), b.ptr(task), b.ptr(file));
        b.structure(
            "bpf_iter__task_file",
            KIND_STRUCT,
            false,
            32,
            &[
                ("meta", meta_ptr, 0),
                ("task", task_ptr, 64),
                ("fd", uint, 128),
                ("file", file_ptr, 192),
            ],
        );
        b
    }

    /// `struct socket`, `struct sock` (its `__sk_common` with anonymous unions, a
    /// volatile state, a typedef'd struct holding the `net` pointer, two
    /// `in6_addr`) and `struct net`, laid out like the kernel's.
    fn add_socket_types(b: &mut Builder, ushort: u32) {
        let byte = b.int("unsigned char", 1);
        let u32_ = b.int("u32", 4);
        let u64_ = b.int("u64", 8);
        let volatile_byte = b.add("", KIND_VOLATILE, false, 0, byte, &[]);
        let be16 = b.add("__be16", KIND_TYPEDEF, false, 0, ushort, &[]);
        let addrs = b.structure(
            "",
            KIND_STRUCT,
            false,
            8,
            &[("skc_daddr", u32_, 0), ("skc_rcv_saddr", u32_, 32)],
        );
        let addr_union = b.structure(
            "",
            KIND_UNION,
            false,
            8,
            &[("skc_addrpair", u64_, 0), ("", addrs, 0)],
        );
        let ports = b.structure(
            "",
            KIND_STRUCT,
            false,
            4,
            &[("skc_dport", be16, 0), ("skc_num", ushort, 16)],
        );
        let port_union = b.structure(
            "",
            KIND_UNION,
            false,
            4,
            &[("skc_portpair", u32_, 0), ("", ports, 0)],
        );
        let ns_common = b.structure(
            "ns_common",
            KIND_STRUCT,
            false,
            24,
            &[("inum", u32_, 16 * 8)],
        );
        let net = b.structure(
            "net",
            KIND_STRUCT,
            false,
            512,
            &[("ns", ns_common, 120 * 8)],
        );
        let net_ptr = b.ptr(net);
        let possible = b.structure("", KIND_STRUCT, false, 8, &[("net", net_ptr, 0)]);
        let possible_net = b.add("possible_net_t", KIND_TYPEDEF, false, 0, possible, &[]);
        let in6 = b.structure(
            "in6_addr",
            KIND_STRUCT,
            false,
            16,
            &[("lo", u64_, 0), ("hi", u64_, 64)],
        );
        let common = b.structure(
            "sock_common",
            KIND_STRUCT,
            false,
            136,
            &[
                ("", addr_union, 0),
                ("", port_union, 12 * 8),
                ("skc_family", ushort, 16 * 8),
                ("skc_state", volatile_byte, 18 * 8),
                ("skc_net", possible_net, 48 * 8),
                ("skc_v6_daddr", in6, 56 * 8),
                ("skc_v6_rcv_saddr", in6, 72 * 8),
            ],
        );
        let sock = b.structure(
            "sock",
            KIND_STRUCT,
            false,
            1024,
            &[
                ("__sk_common", common, 0),
                ("sk_type", ushort, 512 * 8),
                ("sk_protocol", ushort, 514 * 8),
            ],
        );
        let sock_ptr = b.ptr(sock);
        b.structure(
            "socket",
            KIND_STRUCT,
            false,
            128,
            &[("type", ushort, 4 * 8), ("sk", sock_ptr, 24 * 8)],
        );
    }

    #[test]
    fn the_layout_cache_is_used_only_exactly_as_root_left_it() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root (chown)");
            return;
        }
        let layout = parse_layout(&kernel_like(2, false).blob()).expect("layout");
        let key = LayoutCacheKey {
            boot_id: "908a2e03-a59a-4970-910d-a2bbe5a8a137".into(),
            btf_bytes: 5_516_713,
        };
        let parent = tempfile::tempdir().expect("tempdir");
        let dir = parent.path().join("an1256");
        let file = dir.join("kernel-layout");
        let load = || load_layout_cache(&dir, &key);
        let mode =
            |path: &std::path::Path| std::fs::symlink_metadata(path).expect("stat").mode() & 0o7777;
        let chmod = |path: &std::path::Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod")
        };
        let chown = |path: &std::path::Path, uid: u32| {
            std::os::unix::fs::lchown(path, Some(uid), None).expect("chown")
        };
        assert!(load().is_err(), "nothing there yet");
        store_layout_cache(&dir, &key, &layout).expect("store");
        assert_eq!((mode(&dir), mode(&file)), (0o700, 0o600));
        assert_eq!(load(), Ok(layout));
        // Stored again over the old one; no temporary file is left.
        store_layout_cache(&dir, &key, &layout).expect("store again");
        assert_eq!(std::fs::read_dir(&dir).expect("list").count(), 1);
        // Made for another boot, or another BTF.
        let other_boot = LayoutCacheKey {
            boot_id: "00000000-a59a-4970-910d-a2bbe5a8a137".into(),
            ..key.clone()
        };
        assert_eq!(
            load_layout_cache(&dir, &other_boot),
            Err("made for another boot".into())
        );
        let other_btf = LayoutCacheKey {
            btf_bytes: key.btf_bytes + 1,
            ..key.clone()
        };
        assert!(load_layout_cache(&dir, &other_btf).is_err());
        // Another owner, another mode, a second link: for the file, then the
        // directory.
        chown(&file, 12_345);
        assert!(load().is_err(), "owned by another user");
        chown(&file, 0);
        for bad in [0o644, 0o640, 0o400, 0o4600] {
            chmod(&file, bad);
            assert!(load().is_err(), "mode {bad:o}");
        }
        chmod(&file, 0o600);
        let link = parent.path().join("second-link");
        std::fs::hard_link(&file, &link).expect("link");
        assert!(load().is_err(), "two links");
        std::fs::remove_file(&link).expect("unlink");
        assert_eq!(load(), Ok(layout));
        chown(&dir, 12_345);
        assert!(load().is_err(), "a directory owned by another user");
        chown(&dir, 0);
        chmod(&dir, 0o755);
        assert!(load().is_err(), "a directory of mode 0755");
        chmod(&dir, 0o700);
        assert_eq!(load(), Ok(layout));
        // Symlinks: the file, the directory.
        let real = parent.path().join("real-layout");
        std::fs::rename(&file, &real).expect("move");
        std::os::unix::fs::symlink(&real, &file).expect("symlink");
        assert!(load().is_err(), "the file a symlink");
        std::fs::remove_file(&file).expect("unlink");
        std::fs::rename(&real, &file).expect("move back");
        let moved = parent.path().join("moved");
        std::fs::rename(&dir, &moved).expect("move dir");
        std::os::unix::fs::symlink(&moved, &dir).expect("symlink dir");
        assert!(load().is_err(), "the directory a symlink");
        std::fs::remove_file(&dir).expect("unlink");
        std::fs::rename(&moved, &dir).expect("move dir back");
        assert_eq!(load(), Ok(layout));
        // Garbage, cut, or extended text (root's, 0600): refused.
        let good = std::fs::read_to_string(&file).expect("read");
        let cut_at = good.len() / 2;
        let required_none = good.replace("task_tgid 1024", "task_tgid none");
        let wrong_name = good.replace("task_tgid 1024", "task_tgidx 1024");
        let negative = good.replace("task_tgid 1024", "task_tgid -1");
        let large = format!("{good}{}", "x".repeat(5000));
        for (why, text) in [
            ("garbage", "\u{1}\u{2}garbage\n".to_string()),
            ("empty", String::new()),
            ("cut", good[..cut_at].to_string()),
            ("no last newline", good.trim_end().to_string()),
            ("a line more", format!("{good}extra 1\n")),
            ("a required field none", required_none),
            ("a field misnamed", wrong_name),
            ("a negative offset", negative),
            ("too large", large),
            ("another format", good.replace(" layout 5\n", " layout 6\n")),
        ] {
            std::fs::write(&file, text.as_bytes()).expect("write");
            assert_eq!(mode(&file), 0o600);
            assert!(load().is_err(), "{why}");
        }
        std::fs::write(&file, good.as_bytes()).expect("write");
        assert_eq!(load(), Ok(layout));
        // Without IPv6, the optional fields round-trip as none.
        let no_v6 = KernelLayout {
            sock: SockLayout {
                local_v6: None,
                remote_v6: None,
                ..layout.sock
            },
            ..layout
        };
        store_layout_cache(&dir, &key, &no_v6).expect("store");
        assert_eq!(load(), Ok(no_v6));
        // Fields and their names go both ways in one order: distinct values
        // come back each in its place, through the file too.
        let numbered: [Option<u32>; LAYOUT_FIELDS] = std::array::from_fn(|i| Some(i as u32 + 1));
        let distinct = layout_from_fields(numbered).expect("every field set");
        assert_eq!(layout_fields(&distinct).map(|(_, value)| value), numbered);
        store_layout_cache(&dir, &key, &distinct).expect("store");
        assert_eq!(load(), Ok(distinct));
        // Every field is written, each under its own name.
        let names = layout_fields(&layout).map(|(name, _)| name);
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        // The library program's fields: all twelve or none, never some; its
        // two counts of change both or neither, and only with the twelve.
        let library_slots = names.iter().filter(|n| n.starts_with("libraries.")).count();
        assert_eq!(library_slots, 14);
        let first_library = LAYOUT_FIELDS - library_slots;
        let mut without = numbered;
        without[first_library..].fill(None);
        let no_libraries = layout_from_fields(without).expect("none of the nine");
        assert_eq!(no_libraries.libraries, None);
        assert_eq!(no_libraries.sock, distinct.sock);
        for missing in first_library..LAYOUT_FIELDS {
            let mut partial = numbered;
            partial[missing] = None;
            assert_eq!(layout_from_fields(partial), None, "{}", names[missing]);
        }
        // A format-2 file (no `libraries.*` lines) is another format, and
        // relabelled as this one, short of its lines.
        store_layout_cache(&dir, &key, &distinct).expect("store");
        let format_2: String = std::fs::read_to_string(&file)
            .expect("read")
            .replace(" layout 5\n", " layout 2\n")
            .lines()
            .filter(|line| !line.starts_with("libraries."))
            .map(|line| format!("{line}\n"))
            .collect();
        assert_eq!(
            parse_layout_cache(&format_2, &key),
            Err("another format".into())
        );
        assert_eq!(
            parse_layout_cache(&format_2.replace(" layout 2\n", " layout 5\n"), &key),
            Err("no libraries.iter_func_id".into())
        );
    }

    /// A cache file as the build before format 2 wrote it (from a 6.x kernel):
    /// six `view.*` lines between `cred_uid` and the socket's offsets.
    const FORMAT_1_CACHE: &str = "an1256 kernel layout 1
boot_id 908a2e03-a59a-4970-910d-a2bbe5a8a137
btf_bytes 5516713
iter_func_id 64261
task_tgid 1268
task_pid 1264
file_f_inode 32
inode_i_mode 0
inode_i_ino 64
task_group_leader 1328
task_start_boottime 1560
task_real_cred 1728
cred_uid 8
view.cred_user_ns 144
view.task_nsproxy 1840
view.nsproxy_mnt_ns 24
view.task_fs 1816
view.fs_root_mnt 24
view.fs_root_dentry 32
sock.socket_sk 24
sock.family 16
sock.socket_type 534
sock.protocol 532
sock.state 18
sock.local_port 14
sock.remote_port 12
sock.local_v4 4
sock.remote_v4 0
sock.local_v6 72
sock.remote_v6 56
sock.net 48
sock.net_inum 176
";

    #[test]
    fn a_layout_cache_of_the_format_with_the_view_is_refused_then_written_anew() {
        use std::os::unix::fs::PermissionsExt;
        let key = LayoutCacheKey {
            boot_id: "908a2e03-a59a-4970-910d-a2bbe5a8a137".into(),
            btf_bytes: 5_516_713,
        };
        assert_eq!(
            parse_layout_cache(FORMAT_1_CACHE, &key),
            Err("another format".into())
        );
        // Even under this format's header its lines are not this format's.
        let relabelled = FORMAT_1_CACHE.replace(" layout 1\n", " layout 5\n");
        assert_eq!(
            parse_layout_cache(&relabelled, &key),
            Err("no sock.socket_sk".into())
        );
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped the file half: needs root (the cache is root's)");
            return;
        }
        let parent = tempfile::tempdir().expect("tempdir");
        let dir = parent.path().join("an1256");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let file = dir.join("kernel-layout");
        std::fs::write(&file, FORMAT_1_CACHE).expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(
            load_layout_cache(&dir, &key),
            Err("another format".into()),
            "exactly as root left it, but format 1"
        );
        // What `FdIterator::build` does on that refusal: parse, then store.
        let layout = parse_layout(&kernel_like(2, false).blob()).expect("layout");
        store_layout_cache(&dir, &key, &layout).expect("store over format 1");
        assert_eq!(load_layout_cache(&dir, &key), Ok(layout));
        let text = std::fs::read_to_string(&file).expect("read");
        assert!(text.starts_with("an1256 kernel layout 5\n"), "{text}");
        assert!(!text.contains("view"), "{text}");
    }

    #[test]
    fn a_type_is_found_from_its_checkpoint() {
        // Types of every trailing size, across several checkpoints.
        let mut b = Builder::new();
        let mut expected = Vec::new();
        let every = CHECKPOINT_EVERY;
        for i in 0..3 * every + 5 {
            let id = match i % 4 {
                0 => b.int("int", 4),
                1 => b.ptr(i),
                2 => b.structure("s", KIND_STRUCT, false, i, &[("a", 1, 0), ("b", 1, 32)]),
                _ => b.add("e", KIND_ENUM, false, 3, i, &[1, 0, 2, 1, 3, 2]),
            };
            expected.push((
                id,
                [KIND_INT, KIND_PTR, KIND_STRUCT, KIND_ENUM][i as usize % 4],
            ));
        }
        let blob = b.blob();
        let btf = Btf::parse(&blob).expect("parse");
        assert_eq!(btf.count, 3 * every + 5);
        assert_eq!(btf.checkpoints.len(), 4);
        for (id, kind) in &expected {
            let t = btf.get(*id).expect("every id");
            assert_eq!(t.kind, *kind, "id {id}");
            // INT's size is 4; the others carry their index (id - 1).
            let size = if *kind == KIND_INT { 4 } else { id - 1 };
            assert_eq!(t.size_or_type, size, "id {id}");
        }
        // The checkpoints' own types and their neighbours, by hand.
        for id in [1, every, every + 1, 2 * every, 2 * every + 1, 3 * every + 1] {
            assert_eq!(btf.get(id).expect("id").kind, expected[id as usize - 1].1);
        }
        for missing in [0, 3 * every + 6, u32::MAX] {
            assert!(btf.get(missing).is_err(), "{missing}");
        }
    }

    #[test]
    fn layout_from_a_built_blob() {
        let layout = parse_layout(&kernel_like(2, false).blob()).expect("layout");
        assert_eq!(
            layout,
            KernelLayout {
                iter_func_id: 9,
                task_tgid: 1024,
                task_pid: 1020,
                file_f_inode: 32,
                inode_i_mode: 0,
                inode_i_ino: 64,
                task_group_leader: 1100,
                task_start_boottime: 1600,
                task_real_cred: 1700,
                cred_uid: 8,
                sock: SockLayout {
                    socket_sk: 24,
                    family: 16,
                    socket_type: 512,
                    protocol: 514,
                    state: 18,
                    local_port: 14,
                    remote_port: 12,
                    local_v4: 4,
                    remote_v4: 0,
                    local_v6: Some(72),
                    remote_v6: Some(56),
                    net: 48,
                    net_inum: 136,
                },
                // No VMA iterator in this BTF: no library program.
                libraries: None,
            }
        );
    }

    #[test]
    fn doubtful_blobs_are_refused() {
        // i_mode of the wrong size, a bitfield tgid.
        let err = parse_layout(&kernel_like(4, false).blob()).unwrap_err();
        assert!(matches!(err, FdIteratorError::BtfRefused(_)), "{err:?}");
        assert!(err.to_string().contains("inode.i_mode"), "{err}");
        let err = parse_layout(&kernel_like(2, true).blob()).unwrap_err();
        assert!(matches!(err, FdIteratorError::BtfRefused(_)), "{err:?}");
        assert!(err.to_string().contains("bitfield"), "{err}");
        // Truncated anywhere, wrong magic, no iterator FUNC.
        let blob = kernel_like(2, false).blob();
        for len in [0, 3, 23, 40, blob.len() - 1] {
            assert!(parse_layout(&blob[..len]).is_err(), "cut at {len}");
        }
        let mut swapped = blob.clone();
        swapped.swap(0, 1);
        let err = parse_layout(&swapped).unwrap_err();
        assert!(matches!(err, FdIteratorError::BtfMalformed(_)), "{err:?}");
        assert!(err.to_string().contains("magic"));
        let mut b = Builder::new();
        b.int("int", 4);
        assert!(parse_layout(&b.blob())
            .unwrap_err()
            .to_string()
            .contains("bpf_iter_task_file"));
        // An unknown kind cannot be skipped.
        let mut b = kernel_like(2, false);
        b.add("odd", 31, false, 0, 0, &[]);
        assert!(parse_layout(&b.blob())
            .unwrap_err()
            .to_string()
            .contains("kind 31"));
    }

    #[test]
    fn program_encoding() {
        let layout = parse_layout(&kernel_like(2, false).blob()).expect("layout");
        let code = program(&layout).expect("program");
        // Only after the helper said "a socket": r1 = *(u64 *)(r8 + 32), f_inode.
        let helper = code
            .iter()
            .position(|i| *i == insn(CALL, 0, 0, 0, HELPER_SOCK_FROM_FILE))
            .expect("sock_from_file");
        let f_inode = code
            .iter()
            .position(|i| {
                *i == Insn {
                    code: 0x79,
                    regs: 0x81,
                    off: 32,
                    imm: 0,
                }
            })
            .expect("the f_inode load");
        assert!(helper < f_inode);
        let exit = code.len() - 2;
        assert_eq!(code[exit], insn(MOV64_IMM, 0, 0, 0, 0));
        assert_eq!(code[exit + 1], insn(EXIT, 0, 0, 0, 0));
        // Every jump lands inside the program, forward; the early ones (no task,
        // no file, not a socket, no inode, not a socket inode) on `r0 = 0; exit`.
        let jumps: Vec<(usize, i16)> = code
            .iter()
            .enumerate()
            .filter(|(_, i)| matches!(i.code, JEQ_IMM | JNE_IMM))
            .map(|(pc, i)| (pc, pc as i16 + 1 + i.off))
            .collect();
        assert!(jumps
            .iter()
            .all(|&(pc, to)| to as usize > pc && (to as usize) < code.len()));
        for &(_, to) in &jumps[..5] {
            assert_eq!(to as usize, exit);
        }
        // Two helpers only: is it a socket, then the write.
        let calls: Vec<i32> = code
            .iter()
            .filter(|i| i.code == CALL)
            .map(|i| i.imm)
            .collect();
        assert_eq!(calls, [HELPER_SOCK_FROM_FILE, HELPER_SEQ_WRITE]);
        // The record is zeroed whole, 8 bytes a store, before any field is set.
        let zeroing: Vec<(usize, i16)> = code
            .iter()
            .enumerate()
            .filter(|(_, i)| i.code == ST_DW)
            .map(|(pc, i)| (pc, i.off))
            .collect();
        let offsets: Vec<i16> = zeroing.iter().map(|&(_, off)| off).collect();
        let expected: Vec<i16> = (0..RECORD_BYTES as i16 / 8)
            .map(|slot| on_stack(slot * 8))
            .collect();
        assert_eq!(offsets, expected);
        let first_field = code
            .iter()
            .position(|i| matches!(i.code, STX_DW | STX_W | STX_H | STX_B | ST_W | ST_B))
            .expect("a field stored");
        assert!(zeroing.iter().all(|&(pc, _)| pc < first_field));
        // Facts are marked whole (one byte) once every one is copied, right
        // before the write; only a socket without a `struct sock` or a network
        // namespace jumps to the write unmarked.
        let mark = code
            .iter()
            .position(|i| *i == insn(ST_B, 10, 0, on_stack(at::HAS_FACTS), 1))
            .expect("the facts mark");
        let write = code
            .iter()
            .position(|i| *i == insn(LDX_DW, 1, 6, 0, 0))
            .expect("the write");
        assert_eq!(mark + 1, write);
        let unmarked: Vec<usize> = jumps
            .iter()
            .filter(|&&(_, to)| to as usize == write)
            .map(|&(pc, _)| pc)
            .collect();
        assert_eq!(unmarked.len(), 2, "{unmarked:?}");
        for pc in unmarked {
            assert_eq!((code[pc].code, code[pc].imm), (JEQ_IMM, 0), "a NULL check");
        }
        // The write hands over exactly the record: r2 = r10 - RECORD_BYTES, r3 = RECORD_BYTES.
        assert_eq!(
            code[write + 2..write + 6],
            [
                insn(MOV64_REG, 2, 10, 0, 0),
                insn(ADD64_IMM, 2, 0, 0, -(RECORD_BYTES as i32)),
                insn(MOV64_IMM, 3, 0, 0, RECORD_BYTES as i32),
                insn(CALL, 0, 0, 0, HELPER_SEQ_WRITE),
            ]
        );
        // Stores stay inside the record on the stack.
        for i in code
            .iter()
            .filter(|i| matches!(i.code, STX_DW | STX_W | STX_H | STX_B | ST_DW | ST_W | ST_B))
        {
            assert_eq!(i.regs & 0x0f, 10);
            assert!((-(RECORD_BYTES as i16)..0).contains(&i.off), "{i:?}");
        }
        // Without IPv6 members the v6 loads are left out (the fields stay zero).
        let no_v6 = KernelLayout {
            sock: SockLayout {
                local_v6: None,
                remote_v6: None,
                ..layout.sock
            },
            ..layout
        };
        assert_eq!(program(&no_v6).expect("program").len(), code.len() - 8);
        let far = KernelLayout {
            task_tgid: 40_000,
            ..layout
        };
        assert!(matches!(
            program(&far),
            Err(FdIteratorError::OffsetTooFar(40_000))
        ));
    }

    #[test]
    fn records_parse_whole_only() {
        fn put_in(record: &mut [u8], at: i16, bytes: &[u8]) {
            record[at as usize..at as usize + bytes.len()].copy_from_slice(bytes)
        }
        let mut record = vec![0u8; RECORD_BYTES];
        let mut put = |at: i16, bytes: &[u8]| put_in(&mut record, at, bytes);
        put(at::TGID, &7u32.to_ne_bytes());
        put(at::TID, &8u32.to_ne_bytes());
        put(at::FD, &3u32.to_ne_bytes());
        put(at::INODE, &99u64.to_ne_bytes());
        put(at::LEADER_START, &5_000_000_000u64.to_ne_bytes());
        put(at::UID, &1001u32.to_ne_bytes());
        let bare = record.clone();
        let mut put = |at: i16, bytes: &[u8]| put_in(&mut record, at, bytes);
        put(at::HAS_FACTS, &[1]);
        put(at::NET, &4026531840u32.to_ne_bytes());
        put(at::FAMILY, &10u16.to_ne_bytes());
        put(at::TYPE, &2u16.to_ne_bytes());
        put(at::PROTOCOL, &17u16.to_ne_bytes());
        put(at::STATE, &[7]);
        put(at::LOCAL_PORT, &5353u16.to_ne_bytes());
        put(at::REMOTE_PORT, &53u16.to_be_bytes());
        // A v4-mapped local address and a plain IPv6 remote one.
        put(
            at::LOCAL_V6,
            &"::ffff:192.0.2.1".parse::<Ipv6Addr>().expect("v6").octets(),
        );
        put(
            at::REMOTE_V6,
            &"2001:db8::1".parse::<Ipv6Addr>().expect("v6").octets(),
        );
        let mut data = bare.clone();
        data.extend_from_slice(&record);
        data.extend_from_slice(&record[..RECORD_BYTES - 1]);
        let parsed = parse_records(&data);
        assert_eq!(parsed.len(), 2, "the cut record is dropped");
        assert_eq!(
            (
                parsed[0].tgid,
                parsed[0].tid,
                parsed[0].fd,
                parsed[0].inode,
                parsed[0].facts
            ),
            (7, 8, 3, 99, None)
        );
        assert_eq!(
            (parsed[0].leader_start, parsed[0].uid),
            (5_000_000_000, 1001)
        );
        assert_eq!(
            parsed[1].facts,
            Some(SocketFacts {
                net: 4026531840,
                family: 10,
                socket_type: 2,
                protocol: 17,
                state: 7,
                local: "192.0.2.1".parse().expect("v4"),
                local_port: 5353,
                remote: "2001:db8::1".parse().expect("v6"),
                remote_port: 53,
            })
        );
        // IPv4: the v4 fields, in network byte order.
        let mut v4 = record.clone();
        put_in(&mut v4, at::FAMILY, &2u16.to_ne_bytes());
        put_in(&mut v4, at::REMOTE_V4, &[198, 51, 100, 7]);
        let facts = parse_records(&v4)[0].facts.expect("facts");
        assert_eq!(facts.remote, "198.51.100.7".parse::<IpAddr>().expect("v4"));
        assert_eq!(facts.local, "0.0.0.0".parse::<IpAddr>().expect("v4"));
        // Facts only under the program's mark, exactly 1.
        for mark in [0u8, 2, 0xff] {
            let mut unmarked = record.clone();
            put_in(&mut unmarked, at::HAS_FACTS, &[mark]);
            assert_eq!(parse_records(&unmarked)[0].facts, None, "{mark}");
        }
    }

    #[test]
    fn real_vmlinux_btf() {
        let Ok(blob) = read_vmlinux_btf() else {
            eprintln!("skipped: no readable {VMLINUX_BTF}");
            return;
        };
        let layout = parse_layout(blob.bytes()).expect("the running kernel's layout");
        assert!(layout.iter_func_id > 0);
        assert_ne!(layout.task_tgid, layout.task_pid);
        assert_eq!(
            layout.task_tgid,
            layout.task_pid + 4,
            "pid and tgid are adjacent"
        );
        if kernel_has_vma_iterator() {
            let libraries = layout
                .libraries
                .expect("6.7+: the library program's layout");
            assert_ne!(libraries.vma_new, libraries.vma_next);
            assert!(libraries.iter_func_id > 0);
            // This kernel (per-VMA locks) counts mmap write locks.
            if std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .is_ok_and(|r| r.starts_with("6.18"))
            {
                let change = libraries.image_change.expect("6.18: both counts");
                assert_ne!(change.task_exec_id, 0);
                assert_ne!(change.mm_seq, 0);
            }
        }
    }

    #[test]
    fn the_iterator_sees_our_own_socket() {
        use std::os::fd::AsRawFd;
        let iterator = match shared() {
            Ok(it) => it,
            Err(why) => {
                eprintln!("skipped: no fd iterator here: {why}");
                return;
            }
        };
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        // SAFETY: st is plain data filled by fstat on an open fd.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: the fd is open and st is valid for writes.
        assert_eq!(unsafe { libc::fstat(socket.as_raw_fd(), &mut st) }, 0);
        let found = iterator
            .socket_fds(
                64 << 20,
                crate::deadline::Deadline::after(std::time::Duration::from_secs(60)),
            )
            .expect("iterate");
        assert!(found.cut.is_none());
        let pid = std::process::id();
        let ours: Vec<_> = found.records.iter().filter(|r| r.tgid == pid).collect();
        let record = ours
            .iter()
            .find(|r| r.fd == socket.as_raw_fd() as u32 && r.inode == st.st_ino)
            .unwrap_or_else(|| panic!("{ours:?}"));
        // Its facts are the socket's, its namespace ours, its start our leader's.
        let facts = record.facts.expect("an IPv4 socket has facts");
        let port = socket.local_addr().expect("bound").port();
        assert_eq!(
            (
                facts.family,
                facts.socket_type,
                facts.protocol,
                facts.local_port
            ),
            (2, 2, 17, port)
        );
        assert_eq!(facts.local, IpAddr::V4(Ipv4Addr::LOCALHOST));
        let netns = std::fs::read_link("/proc/self/ns/net").expect("netns");
        assert_eq!(
            netns.to_string_lossy(),
            format!("net:[{}]", facts.net),
            "the socket's namespace"
        );
        let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
        let ticks = crate::platform::linux::procfs::parse_stat(&stat)
            .expect("stat")
            .start_ticks;
        let tick_ns = 1_000_000_000 / crate::platform::linux::procfs::clock_ticks() as u64;
        assert_eq!(record.leader_start / tick_ns, ticks, "the leader's start");
        // SAFETY: getuid has no preconditions.
        assert_eq!(
            record.uid,
            unsafe { libc::getuid() },
            "the holder's real uid"
        );
        // A UNIX socket is not written at all.
        let (unix, _) = std::os::unix::net::UnixStream::pair().expect("pair");
        let with_unix = iterator
            .socket_fds(
                64 << 20,
                crate::deadline::Deadline::after(std::time::Duration::from_secs(60)),
            )
            .expect("iterate");
        assert!(!with_unix
            .records
            .iter()
            .any(|r| r.tgid == pid && r.fd == unix.as_raw_fd() as u32));
        // A regular file is not a socket.
        let file = std::fs::File::open("/proc/self/status").expect("file");
        let again = iterator
            .socket_fds(
                64 << 20,
                crate::deadline::Deadline::after(std::time::Duration::from_secs(60)),
            )
            .expect("iterate");
        assert!(!again
            .records
            .iter()
            .any(|r| r.tgid == pid && r.fd == file.as_raw_fd() as u32));
    }
}
