//! Socket fds of every process from one BPF `task_file` iterator, instead of a
//! getdents + readlink per fd of `/proc/<pid>/fd/*` (the walk `ss -p` pays too).
//!
//! The kernel runs a tiny program over every (task, fd) pair and writes one record
//! per socket fd: `{tgid u32, tid u32, fd u32, pad u32, inode u64}`. It visits each
//! thread whose fd table differs from its leader's, so a socket held only by a
//! thread that did `unshare(CLONE_FILES)` is seen too. The records are candidates
//! only: the caller re-reads each `fd/<n>` link through the process's held
//! `/proc/<pid>` directory before attributing it (pid reuse in between).
//!
//! Everything here is parsed and assembled by hand: the struct offsets the program
//! needs come from the kernel's own BTF (`/sys/kernel/btf/vmlinux`), checked to be
//! whole integers of the expected size; any doubt is an error and the caller walks
//! `/proc` as before. The program, its link and the parsed layout are made once per
//! process; each scan creates a fresh iterator from the link.

use std::ffi::CStr;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;

/// `/sys/kernel/btf/vmlinux` is 5-6 MiB on current kernels; refuse anything absurd.
const MAX_BTF_BYTES: u64 = 64 * 1024 * 1024;
const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";
/// One record the program writes per socket fd.
pub const RECORD_BYTES: usize = 24;
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
}

/// What one pass of the iterator gave.
#[derive(Debug, Default)]
pub struct SocketFds {
    pub records: Vec<SocketFd>,
    /// Cut at the byte bound or the deadline: sockets past the cut are missing.
    pub cut: Option<String>,
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

fn refused(why: impl Into<String>) -> FdIteratorError {
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
    kind: u8,
    kind_flag: bool,
    vlen: u16,
    /// `size` (INT, STRUCT, UNION…) or `type` (PTR, TYPEDEF, modifiers, FUNC).
    size_or_type: u32,
    /// Offset of the trailing data in the type section.
    extra: usize,
}

struct Btf<'a> {
    /// Where each type starts in the type section, by id - 1 (decoded on use:
    /// 4 bytes a type instead of a decoded copy of ~150k types).
    types: Vec<u32>,
    type_section: &'a [u8],
    strings: &'a [u8],
    /// (id, kind, name) of the structs and FUNCs named in [`WANTED`], found in the
    /// one pass over the types (vmlinux has ~150k types: no search per name).
    named: Vec<(u32, u8, &'static str)>,
}

/// The names `parse_layout` looks up.
const WANTED: [&str; 6] = [
    "bpf_iter_task_file",
    "bpf_iter__task_file",
    "bpf_iter_meta",
    "task_struct",
    "file",
    "inode",
];

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

/// The `struct btf_type` at `at` in the type section.
fn decode(type_section: &[u8], at: usize) -> Option<BtfType> {
    let info = u32_at(type_section, at + 4)?;
    Some(BtfType {
        kind: ((info >> 24) & 0x1f) as u8,
        kind_flag: info >> 31 == 1,
        vlen: (info & 0xffff) as u16,
        size_or_type: u32_at(type_section, at + 8)?,
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
    fn parse(blob: &'a [u8]) -> Result<Btf<'a>, FdIteratorError> {
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
        let mut types: Vec<u32> = Vec::with_capacity(type_section.len() / 16);
        let mut named = Vec::new();
        let mut at = 0;
        while at < type_section.len() {
            let start = u32::try_from(at).map_err(|_| malformed("BTF type section over 4 GiB"))?;
            let name_off = u32_at(type_section, at).ok_or_else(|| malformed("BTF type is cut"))?;
            let t = decode(type_section, at).ok_or_else(|| malformed("BTF type is cut"))?;
            let (kind, extra, n) = (t.kind, t.extra, t.vlen as usize);
            let trailing = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
                | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * n,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * n,
                other => return Err(malformed(format!("BTF kind {other} is unknown here"))),
            };
            at = extra + trailing;
            if at > type_section.len() {
                return Err(malformed("BTF type data runs past its section"));
            }
            if kind == KIND_STRUCT || kind == KIND_FUNC {
                let rest = strings.get(name_off as usize..).unwrap_or_default();
                let wanted = WANTED
                    .iter()
                    .find(|w| rest.get(w.len()) == Some(&0) && rest.starts_with(w.as_bytes()));
                if let Some(wanted) = wanted {
                    named.push((types.len() as u32 + 1, kind, *wanted));
                }
            }
            types.push(start);
        }
        Ok(Btf {
            types,
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

    /// Type id `id` (1-based; 0 is void).
    fn get(&self, id: u32) -> Result<BtfType, FdIteratorError> {
        id.checked_sub(1)
            .and_then(|i| self.types.get(i as usize))
            .and_then(|&at| decode(self.type_section, at as usize))
            .ok_or_else(|| malformed(format!("BTF type id {id} does not exist")))
    }

    /// Ids of every struct or FUNC (`kind`) named `name`, one of [`WANTED`].
    fn find(&self, kind: u8, name: &str) -> Vec<u32> {
        debug_assert!(WANTED.contains(&name), "{name} is not indexed");
        self.named
            .iter()
            .filter(|(_, k, n)| *k == kind && *n == name)
            .map(|(id, _, _)| *id)
            .collect()
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
    fn member_offset(
        &self,
        structure: &str,
        member: &str,
        int_bytes: u32,
    ) -> Result<u32, FdIteratorError> {
        let id = self.struct_named(structure)?;
        let mut found = Vec::new();
        self.members(id, member.as_bytes(), 0, 0, &mut found)?;
        let [(offset, member_type)] = found.as_slice() else {
            return Err(refused(format!(
                "{structure}.{member}: {} matching members",
                found.len()
            )));
        };
        let (_, resolved) = self.resolve(*member_type)?;
        let fits = if int_bytes == 0 {
            resolved.kind == KIND_PTR
        } else {
            let encoding = u32_at(self.type_section, resolved.extra).unwrap_or(u32::MAX);
            // INT data: bits 0-7 nr_bits, 16-23 bit offset.
            resolved.kind == KIND_INT
                && resolved.size_or_type == int_bytes
                && encoding & 0xff == int_bytes * 8
                && (encoding >> 16) & 0xff == 0
        };
        if !fits {
            let wanted = if int_bytes == 0 {
                "a pointer".to_string()
            } else {
                format!("a {int_bytes}-byte integer")
            };
            return Err(refused(format!("{structure}.{member} is not {wanted}")));
        }
        Ok(*offset)
    }
}

/// Finds what the program needs in a BTF blob; any doubt is an error.
pub fn parse_layout(blob: &[u8]) -> Result<KernelLayout, FdIteratorError> {
    let btf = Btf::parse(blob)?;
    let iter_func_id = match btf.find(KIND_FUNC, "bpf_iter_task_file").as_slice() {
        [one] => *one,
        other => {
            return Err(refused(format!(
                "BTF has {} FUNCs named bpf_iter_task_file",
                other.len()
            )))
        }
    };
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
    Ok(KernelLayout {
        iter_func_id,
        task_tgid: btf.member_offset("task_struct", "tgid", 4)?,
        task_pid: btf.member_offset("task_struct", "pid", 4)?,
        file_f_inode: btf.member_offset("file", "f_inode", 0)?,
        inode_i_mode: btf.member_offset("inode", "i_mode", 2)?,
        inode_i_ino: btf.member_offset("inode", "i_ino", 8)?,
    })
}

/// The kernel's BTF: mapped read-only where the kernel allows it (Linux 6.16+:
/// no copy through `read` and no private buffer to fault in, ~10 ms of a CLI
/// scan), else read.
enum BtfBlob {
    Mapped {
        at: std::ptr::NonNull<libc::c_void>,
        len: usize,
    },
    Read(Vec<u8>),
}

impl BtfBlob {
    fn bytes(&self) -> &[u8] {
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

fn read_vmlinux_btf() -> Result<BtfBlob, FdIteratorError> {
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
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const LDX_DW: u8 = 0x79; // BPF_LDX | BPF_MEM | BPF_DW
const LDX_W: u8 = 0x61;
const LDX_H: u8 = 0x69;
const STX_DW: u8 = 0x7b; // BPF_STX | BPF_MEM | BPF_DW
const STX_W: u8 = 0x63;
const ST_W: u8 = 0x62; // BPF_ST | BPF_MEM | BPF_W
const MOV64_REG: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV64_IMM: u8 = 0xb7;
const ADD64_IMM: u8 = 0x07;
const AND64_IMM: u8 = 0x57;
const JEQ_IMM: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JNE_IMM: u8 = 0x55;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;
/// `BPF_FUNC_seq_write` (GPL-only helper).
const HELPER_SEQ_WRITE: i32 = 127;
const S_IFMT: i32 = 0o170000;
const S_IFSOCK: i32 = 0o140000;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (dst & 0x0f) | (src << 4),
        off,
        imm,
    }
}

fn offset16(value: u32) -> Result<i16, FdIteratorError> {
    i16::try_from(value).map_err(|_| FdIteratorError::OffsetTooFar(value))
}

/// The program: for each (task, file) with a socket inode, write one record
/// `{tgid, tid, fd, 0, inode}` with `bpf_seq_write`.
pub fn program(layout: &KernelLayout) -> Result<Vec<Insn>, FdIteratorError> {
    const EXIT_AT: i16 = 25;
    // A jump at `pc` to the exit: offsets count from the next instruction.
    let to_exit = |pc: i16| EXIT_AT - pc - 1;
    let code = vec![
        insn(MOV64_REG, 6, 1, 0, 0),                           // 0: r6 = ctx
        insn(LDX_DW, 7, 6, 8, 0),                              // 1: r7 = ctx->task
        insn(JEQ_IMM, 7, 0, to_exit(2), 0),                    // 2
        insn(LDX_DW, 8, 6, 24, 0),                             // 3: r8 = ctx->file
        insn(JEQ_IMM, 8, 0, to_exit(4), 0),                    // 4
        insn(LDX_DW, 1, 8, offset16(layout.file_f_inode)?, 0), // 5: r1 = f_inode
        insn(JEQ_IMM, 1, 0, to_exit(6), 0),                    // 6
        insn(LDX_H, 2, 1, offset16(layout.inode_i_mode)?, 0),  // 7: r2 = i_mode
        insn(AND64_IMM, 2, 0, 0, S_IFMT),                      // 8
        insn(JNE_IMM, 2, 0, to_exit(9), S_IFSOCK),             // 9
        insn(LDX_DW, 3, 1, offset16(layout.inode_i_ino)?, 0),  // 10: r3 = i_ino
        insn(STX_DW, 10, 3, -8, 0),                            // 11: rec.inode
        insn(LDX_W, 4, 7, offset16(layout.task_tgid)?, 0),     // 12
        insn(STX_W, 10, 4, -24, 0),                            // 13: rec.tgid
        insn(LDX_W, 4, 7, offset16(layout.task_pid)?, 0),      // 14
        insn(STX_W, 10, 4, -20, 0),                            // 15: rec.tid
        insn(LDX_W, 4, 6, 16, 0),                              // 16: ctx->fd
        insn(STX_W, 10, 4, -16, 0),                            // 17: rec.fd
        insn(ST_W, 10, 0, -12, 0),                             // 18: rec.pad
        insn(LDX_DW, 1, 6, 0, 0),                              // 19: r1 = ctx->meta
        insn(LDX_DW, 1, 1, 0, 0),                              // 20: r1 = meta->seq
        insn(MOV64_REG, 2, 10, 0, 0),                          // 21
        insn(ADD64_IMM, 2, 0, 0, -(RECORD_BYTES as i32)),      // 22: r2 = &rec
        insn(MOV64_IMM, 3, 0, 0, RECORD_BYTES as i32),         // 23
        insn(CALL, 0, 0, 0, HELPER_SEQ_WRITE),                 // 24
        insn(MOV64_IMM, 0, 0, 0, 0),                           // 25: exit
        insn(EXIT, 0, 0, 0, 0),                                // 26
    ];
    Ok(code)
}

/// The license the kernel is told: `bpf_seq_write` is a GPL-only helper. We
/// license the text of this small embedded program (the instructions above) as
/// "Dual MIT/GPL", as Cilium does for its BPF programs; the crate stays Apache-2.0.
const PROGRAM_LICENSE: &CStr = c"Dual MIT/GPL";

// ---------------------------------------------------------------------------
// bpf(2)

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
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
struct LinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    iter_info: u64,
    iter_info_len: u32,
    pad: u32,
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

/// `bpf(cmd, attr, sizeof attr)` returning a new fd.
fn bpf_fd<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<OwnedFd> {
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
    let fd = i32::try_from(rc).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn load_program(layout: &KernelLayout) -> Result<OwnedFd, FdIteratorError> {
    let code = program(layout)?;
    let load = |log: Option<&mut Vec<u8>>| {
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_TRACING,
            insn_cnt: code.len() as u32,
            insns: code.as_ptr() as u64,
            license: PROGRAM_LICENSE.as_ptr() as u64,
            expected_attach_type: BPF_TRACE_ITER,
            attach_btf_id: layout.iter_func_id,
            ..Default::default()
        };
        attr.prog_name[..10].copy_from_slice(b"an1256_fds");
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
    _program: OwnedFd,
    link: OwnedFd,
}

impl FdIterator {
    fn build() -> Result<FdIterator, FdIteratorError> {
        let layout = parse_layout(read_vmlinux_btf()?.bytes())?;
        let program = load_program(&layout)?;
        let mut attr = LinkCreateAttr {
            prog_fd: program.as_raw_fd() as u32,
            attach_type: BPF_TRACE_ITER,
            ..Default::default()
        };
        let link = bpf_fd(BPF_LINK_CREATE, &mut attr).map_err(|source| FdIteratorError::Io {
            what: "BPF_LINK_CREATE",
            source,
        })?;
        Ok(FdIterator {
            _program: program,
            link,
        })
    }

    /// One pass over every task's fds: reads at most `max_bytes` of records and
    /// stops when `deadline` passes (both reported in `cut`).
    pub fn socket_fds(
        &self,
        max_bytes: usize,
        deadline: crate::deadline::Deadline,
    ) -> Result<SocketFds, FdIteratorError> {
        let mut attr = IterCreateAttr {
            link_fd: self.link.as_raw_fd() as u32,
            flags: 0,
        };
        let iterator =
            bpf_fd(BPF_ITER_CREATE, &mut attr).map_err(|source| FdIteratorError::Io {
                what: "BPF_ITER_CREATE",
                source,
            })?;
        let mut file = std::fs::File::from(iterator);
        let mut data = Vec::with_capacity(64 * 1024);
        // Small reads: the kernel runs the program until a read's bytes are
        // filled (or a million objects passed), so a huge fd table listed once per
        // thread of an exited leader cannot hold one read for seconds past the
        // deadline.
        let mut chunk = vec![0u8; RECORD_BYTES * 64];
        let mut cut = None;
        loop {
            if deadline.expired() {
                cut = Some("deadline passed while reading the fd iterator".to_string());
                break;
            }
            let n = match file.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                // EAGAIN: a million objects passed without a socket; go on.
                Err(e)
                    if e.kind() == io::ErrorKind::Interrupted
                        || e.kind() == io::ErrorKind::WouldBlock =>
                {
                    continue
                }
                Err(source) => {
                    return Err(FdIteratorError::Io {
                        what: "reading the fd iterator",
                        source,
                    })
                }
            };
            if data.len() + n > max_bytes {
                cut = Some(format!(
                    "the fd iterator gave over {} MiB of socket records",
                    max_bytes >> 20
                ));
                break;
            }
            data.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
        if data.len() % RECORD_BYTES != 0 && cut.is_none() {
            return Err(FdIteratorError::PartialRecord(data.len()));
        }
        if cut.is_none() {
            PASSES.with(|p| p.set(p.get() + 1));
        }
        Ok(SocketFds {
            records: parse_records(&data),
            cut,
        })
    }
}

thread_local! {
    static PASSES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Whole iterator passes this thread has read: lets tests tell which path a
/// scan took (a scan reads the iterator on its calling thread).
pub fn passes_on_this_thread() -> u64 {
    PASSES.with(std::cell::Cell::get)
}

/// The whole records of the iterator's output.
pub fn parse_records(data: &[u8]) -> Vec<SocketFd> {
    data.chunks_exact(RECORD_BYTES)
        .filter_map(|r| {
            Some(SocketFd {
                tgid: u32_at(r, 0)?,
                tid: u32_at(r, 4)?,
                fd: u32_at(r, 8)?,
                inode: u64::from_ne_bytes(r.get(16..24)?.try_into().ok()?),
            })
        })
        .collect()
}

/// The iterator when this process can use it exactly, else why not (made once).
pub fn shared() -> Result<&'static FdIterator, &'static FdIteratorError> {
    static SHARED: OnceLock<Result<FdIterator, FdIteratorError>> = OnceLock::new();
    SHARED
        .get_or_init(|| exact_here().and_then(|()| FdIterator::build()))
        .as_ref()
}

/// The records name `/proc`'s pids, and every process is ours to read, only for a
/// privileged scanner in the initial pid namespace whose `/proc` is that
/// namespace's.
fn exact_here() -> Result<(), FdIteratorError> {
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
        let task = b.structure(
            "task_struct",
            KIND_STRUCT,
            flag,
            4096,
            &[("pid", pid_t, 1020 * 8), ("tgid", pid_t, tgid_offset)],
        );
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
        assert_eq!(code.len(), 27);
        // r1 = *(u64 *)(r8 + 32): file->f_inode
        assert_eq!(
            code[5],
            Insn {
                code: 0x79,
                regs: 0x81,
                off: 32,
                imm: 0
            }
        );
        // Every jump lands on `r0 = 0; exit`.
        for (pc, i) in code.iter().enumerate() {
            if i.code == JEQ_IMM || i.code == JNE_IMM {
                assert_eq!(pc as i16 + 1 + i.off, 25, "jump at {pc}");
            }
        }
        assert_eq!(
            code[24],
            Insn {
                code: CALL,
                regs: 0,
                off: 0,
                imm: 127
            }
        );
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
        let mut data = Vec::new();
        for word in [7u32, 8, 3, 0] {
            data.extend_from_slice(&word.to_ne_bytes());
        }
        data.extend_from_slice(&99u64.to_ne_bytes());
        data.extend_from_slice(&[1, 2, 3]);
        assert_eq!(
            parse_records(&data),
            [SocketFd {
                tgid: 7,
                tid: 8,
                fd: 3,
                inode: 99
            }]
        );
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
        assert!(
            ours.iter()
                .any(|r| r.fd == socket.as_raw_fd() as u32 && r.inode == st.st_ino),
            "{ours:?}"
        );
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
