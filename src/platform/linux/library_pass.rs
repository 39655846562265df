//! Whether each process maps a SOCKS library, from one BPF `task` iterator pass
//! instead of a `PROCMAP_QUERY` walk of each TCP client's mappings (~55 µs a
//! process, a third of a full scan on a host of TCP clients).
//!
//! For each process leader with an address space, the program walks its VMAs
//! with the open-coded VMA iterator (Linux 6.7) and, for each executable
//! mapping of a file, compares the start of the file's name (`d_name`, the last
//! component of the path `maps` prints) with `libproxychains`, `libtorsocks`
//! and `libtsocks`, as `judge::socks::proxy::is_socks_preload_library` does
//! with the walk's paths. It writes one record per leader it saw (see
//! [`RECORD_BYTES`]): whether it walked the whole address space, and whether
//! it found such a library. A process it could not walk whole (the mmap lock
//! contended, a name it could not read), a leader that exited, or a process
//! made after the pass has no whole record: the caller walks its mappings as
//! before. So does a file whose own name is not what `maps` prints last: a
//! mount's root (a file bind-mounted onto another name) or a pseudo file (a
//! `memfd:` name may hold a `/`). The offsets come from the same checked BTF layout as the fd
//! iterator's (`fd_iterator::LibraryLayout`).
//!
//! Walking is most of a one-shot full scan's cost on a host of TCP clients
//! (~200 ns a mapping; 25,000 mappings in the benchmark's 200 Python clients).
//! So a process walked whole that held no such library is remembered, in
//! root's `/run/an1256/library-walks`, under its leader's start, its exec
//! count (`self_exec_id`) and the kernel's count of mmap write locks
//! (`mm_lock_seq`, the count the kernel's own lockless readers of an address
//! space rely on). No mapping is made, moved or removed without that lock,
//! and an exec gives a new count, so while all three are the same the walk
//! would find the same mappings: the program then writes `UNCHANGED` and does
//! not walk. A walk is relied on for [`REMEMBER_WALK_SECS`] at most, far less
//! than bringing the count round takes. Only a whole walk that read every name
//! and found none, with no exec during it, is remembered; a library found, or
//! any doubt, is walked again. What the counts do not see is a mapped file
//! renamed: a library a user maps under a plain name and then renames to a
//! SOCKS one is seen once the walk's time is up (red team; the user could as
//! well have kept the plain name, which no walk tells from any library).

use std::collections::HashMap;
use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Mutex, OnceLock};

use super::fd_iterator::{
    bpf, bpf_call, create_map, insn, load_program, map_lookup, offset16, read_iterator,
    read_private_file, write_private_file, Assembler, Cut, FdIterator, FdIteratorError,
    ImageChangeLayout, Insn, KernelLayout, LayoutCacheKey, LibraryLayout, MapElemAttr, ADD64_IMM,
    AND64_IMM, BPF_F_NO_PREALLOC, BPF_MAP_DELETE_ELEM, BPF_MAP_TYPE_HASH, CALL, EXIT,
    HELPER_SEQ_WRITE, JEQ_IMM, JEQ_REG, JNE_IMM, JNE_REG, LAYOUT_CACHE_DIR, LDX_B, LDX_DW, LDX_H,
    LDX_W, MOV64_IMM, MOV64_REG, OR64_IMM, STX_DW, STX_W, ST_DW,
};

/// One record per process leader walked: `{tgid u32, flags u32, leader_start
/// u64 (ns since boot), exec_id u64, mm_seq u32, 0 u32}` (the last two counts
/// only with [`STEADY`]).
pub const RECORD_BYTES: usize = 32;
/// The walk went through every VMA of the address space.
pub const WALKED: u32 = 1;
/// An executable file mapping's name starts like a SOCKS library's.
pub const FOUND: u32 = 2;
/// A mapped file's name could not be read: the walk proves nothing.
pub const NAME_UNREAD: u32 = 4;
/// Not walked: the process's image and mappings are as when an earlier walk,
/// remembered, found none (see [`remembered`]).
pub const UNCHANGED: u32 = 8;
/// The counts of change were read, with no writer of the mappings at work:
/// a walk that found none may be remembered under them.
pub const STEADY: u32 = 16;
/// `VM_EXEC` (include/linux/mm.h; the same on every architecture).
const VM_EXEC: i32 = 0x4;
/// `BPF_FUNC_probe_read_kernel`.
const HELPER_PROBE_READ_KERNEL: i32 = 113;
/// Records read per `read`: the deadline is checked between reads, and a
/// process with the most mappings a user may make (65,530 by default) takes
/// ~46 ms to walk (red team: ~0.7 µs a mapping), so a read of a few such
/// processes ends within ~0.2 s of it.
const CHUNK_RECORDS: usize = 4;
/// A host of 4 million processes would still fit; records past it are a cut.
const MAX_PASS_BYTES: usize = 64 << 20;

/// Where the program keeps what it works on, below r10.
mod stack {
    /// `struct bpf_iter_task_vma`: the iterator's state.
    pub const ITER: i16 = -8;
    /// The first 16 bytes of a mapped file's name.
    pub const NAME: i16 = -24;
    /// The record written (`RECORD_BYTES`): tgid, flags, the leader's
    /// start, the exec count, the mappings' count.
    pub const RECORD: i16 = -56;
    /// The mapped file and its dentry, while they are compared.
    pub const FILE: i16 = -64;
    pub const DENTRY: i16 = -72;
    /// The address space.
    pub const MM: i16 = -80;
    pub const TGID: i16 = RECORD;
    pub const FLAGS: i16 = RECORD + 4;
    pub const START: i16 = RECORD + 8;
    pub const EXEC_ID: i16 = RECORD + 16;
    pub const MM_SEQ: i16 = RECORD + 24;
}

/// A remembered walk in the program's map, by tgid: the start and counts of
/// change it was made under.
mod remembered_at {
    pub const START: i16 = 0;
    pub const EXEC_ID: i16 = 8;
    pub const MM_SEQ: i16 = 16;
    pub const BYTES: usize = 24;
}

/// Library file names (their first bytes) that route a process's connections
/// through SOCKS: the judge's list (`is_socks_preload_library`), compared in
/// the kernel as an 8-byte head and a tail.
const PROXYCHAINS: &[u8; 14] = b"libproxychains";
const TORSOCKS: &[u8; 11] = b"libtorsocks";
const TSOCKS: &[u8; 9] = b"libtsocks";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Label {
    Walk,
    NotSteady,
    Write,
    Loop,
    Proxychains,
    Torsocks,
    Unread,
    Found,
    Done,
    Exit,
}

/// The `n` bytes of `name` from `at`, as the kernel loads them from the stack
/// (native byte order), for an immediate compare; `None` if a byte is not
/// ASCII (the immediate is sign-extended).
fn word(name: &[u8], at: usize, n: usize) -> Option<i32> {
    let bytes = name.get(at..at + n)?;
    if !bytes.is_ascii() {
        return None;
    }
    let mut four = [0u8; 4];
    four.get_mut(..n)?.copy_from_slice(bytes);
    let value = u32::from_ne_bytes(four);
    // On a big-endian machine the loaded bytes are the value's high ones.
    let value = if cfg!(target_endian = "big") {
        value >> (8 * (4 - n))
    } else {
        value
    };
    i32::try_from(value).ok()
}

fn head(name: &[u8]) -> Option<u64> {
    Some(u64::from_ne_bytes(name.get(..8)?.try_into().ok()?))
}

/// The program: for each task that leads its process and has an address space,
/// one record (see [`RECORD_BYTES`]) written with `bpf_seq_write`.
pub fn program(
    kernel: &KernelLayout,
    layout: &LibraryLayout,
    remembered: Option<&OwnedFd>,
) -> Result<Vec<Insn>, FdIteratorError> {
    use Label::*;
    let not_ascii = || FdIteratorError::BtfRefused("a library name is not ASCII".into());
    let mut a = Assembler::<Label>::default();
    // The output is loaded once, here: each path the verifier explores to a
    // load of a pointer from a kernel struct costs it a search of the kernel's
    // BTF by name (~0.3 ms), and the loop's exits reach the write many ways.
    a.emit(insn(MOV64_REG, 6, 1, 0, 0)); // r6 = ctx
    a.emit(insn(LDX_DW, 9, 6, 0, 0)); // r9 = ctx->meta
    a.emit(insn(LDX_DW, 9, 9, 0, 0)); // r9 = meta->seq
    a.emit(insn(LDX_DW, 7, 6, 8, 0)); // r7 = ctx->task
    a.jump(JEQ_IMM, 7, 0, Exit);
    // Leaders only: a thread shares its leader's mappings. A process whose
    // leader exited gets no record (the caller walks it through a thread).
    a.emit(insn(LDX_W, 1, 7, offset16(kernel.task_pid)?, 0));
    a.emit(insn(LDX_W, 2, 7, offset16(kernel.task_tgid)?, 0));
    a.jump_reg(JNE_REG, 1, 2, Exit);
    // A kernel thread, or an exiting task, has no address space (read through
    // a probe, as the file below: a pointer loaded from the task costs the
    // verifier a search of the BTF).
    probe_read(&mut a, 7, layout.task_mm, Exit)?;
    a.emit(insn(STX_DW, 10, 3, stack::MM, 0));
    for slot in 0..(RECORD_BYTES / 8) as i16 {
        a.emit(insn(ST_DW, 10, 0, stack::RECORD + slot * 8, 0));
    }
    a.copy(LDX_W, STX_W, 7, kernel.task_tgid, stack::TGID)?;
    a.copy(LDX_DW, STX_DW, 7, kernel.task_start_boottime, stack::START)?;
    a.emit(insn(MOV64_IMM, 8, 0, 0, 0)); // r8 = flags
    if let (Some(change), Some(remembered)) = (layout.image_change, remembered) {
        unchanged_since_remembered(&mut a, change, remembered)?;
    }
    a.label(Walk);
    a.emit(insn(MOV64_REG, 1, 10, 0, 0));
    a.emit(insn(ADD64_IMM, 1, 0, 0, i32::from(stack::ITER)));
    a.emit(insn(MOV64_REG, 2, 7, 0, 0));
    a.emit(insn(MOV64_IMM, 3, 0, 0, 0)); // from address 0: every VMA
    a.call_kfunc(layout.vma_new)?;
    // Failed (the mmap lock contended): no walk; the iterator is still destroyed.
    a.jump(JNE_IMM, 0, 0, Done);
    a.emit(insn(OR64_IMM, 8, 0, 0, WALKED as i32));
    a.label(Loop);
    a.emit(insn(MOV64_REG, 1, 10, 0, 0));
    a.emit(insn(ADD64_IMM, 1, 0, 0, i32::from(stack::ITER)));
    a.call_kfunc(layout.vma_next)?;
    a.jump(JEQ_IMM, 0, 0, Done);
    a.emit(insn(LDX_DW, 1, 0, offset16(layout.vma_flags)?, 0));
    a.emit(insn(AND64_IMM, 1, 0, 0, VM_EXEC));
    a.jump(JEQ_IMM, 1, 0, Loop);
    // The file, its dentry and the name's address through probe reads, not
    // loads: the verifier looks up a "trusted" type by name (a linear search of
    // the kernel's BTF) for each pointer loaded from a trusted one, at each of
    // the loop body's verifications (~14 ms a load).
    probe_read(&mut a, 0, layout.vma_file, Loop)?; // none: anonymous
    a.emit(insn(STX_DW, 10, 3, stack::FILE, 0));
    probe_read(&mut a, 3, layout.file_dentry, Unread)?;
    a.emit(insn(STX_DW, 10, 3, stack::DENTRY, 0));
    // Where `maps` would not print this name last (red team): a pseudo file,
    // its own parent (`memfd:x/libproxychains.so`), or a mount's root (a file
    // bind-mounted onto `…/libproxychains.so.4`): the walk judges it.
    probe_read(&mut a, 3, layout.dentry_parent, Unread)?;
    a.emit(insn(LDX_DW, 1, 10, stack::DENTRY, 0));
    a.jump_reg(JEQ_REG, 3, 1, Unread);
    a.emit(insn(LDX_DW, 3, 10, stack::FILE, 0));
    probe_read(&mut a, 3, layout.file_mnt, Unread)?;
    probe_read(&mut a, 3, layout.mount_root, Unread)?;
    a.emit(insn(LDX_DW, 1, 10, stack::DENTRY, 0));
    a.jump_reg(JEQ_REG, 3, 1, Unread);
    a.emit(insn(MOV64_REG, 3, 1, 0, 0));
    probe_read(&mut a, 3, layout.dentry_name, Unread)?;
    probe_read_to(&mut a, stack::NAME, 16);
    a.jump(JNE_IMM, 0, 0, Unread);
    // The first 8 bytes name the library; the rest of its prefix follows.
    // Bytes past a shorter name's NUL cannot match: the NUL is compared first.
    a.emit(insn(LDX_DW, 1, 10, stack::NAME, 0));
    a.load_imm64(2, head(PROXYCHAINS).ok_or_else(not_ascii)?);
    a.jump_reg(JEQ_REG, 1, 2, Proxychains);
    a.load_imm64(2, head(TORSOCKS).ok_or_else(not_ascii)?);
    a.jump_reg(JEQ_REG, 1, 2, Torsocks);
    a.load_imm64(2, head(TSOCKS).ok_or_else(not_ascii)?);
    a.jump_reg(JNE_REG, 1, 2, Loop);
    // "libtsock" + "s"
    a.emit(insn(LDX_B, 1, 10, stack::NAME + 8, 0));
    a.jump(JNE_IMM, 1, word(TSOCKS, 8, 1).ok_or_else(not_ascii)?, Loop);
    a.goto(Found);
    // "libproxy" + "chai" + "ns"
    a.label(Proxychains);
    a.emit(insn(LDX_W, 1, 10, stack::NAME + 8, 0));
    a.jump(
        JNE_IMM,
        1,
        word(PROXYCHAINS, 8, 4).ok_or_else(not_ascii)?,
        Loop,
    );
    a.emit(insn(LDX_H, 1, 10, stack::NAME + 12, 0));
    a.jump(
        JNE_IMM,
        1,
        word(PROXYCHAINS, 12, 2).ok_or_else(not_ascii)?,
        Loop,
    );
    a.goto(Found);
    // "libtorso" + "ck" + "s"
    a.label(Torsocks);
    a.emit(insn(LDX_H, 1, 10, stack::NAME + 8, 0));
    a.jump(
        JNE_IMM,
        1,
        word(TORSOCKS, 8, 2).ok_or_else(not_ascii)?,
        Loop,
    );
    a.emit(insn(LDX_B, 1, 10, stack::NAME + 10, 0));
    a.jump(
        JNE_IMM,
        1,
        word(TORSOCKS, 10, 1).ok_or_else(not_ascii)?,
        Loop,
    );
    a.goto(Found);
    a.label(Unread);
    a.emit(insn(OR64_IMM, 8, 0, 0, NAME_UNREAD as i32));
    a.goto(Loop);
    a.label(Found);
    a.emit(insn(OR64_IMM, 8, 0, 0, FOUND as i32));
    a.label(Done);
    a.emit(insn(MOV64_REG, 1, 10, 0, 0));
    a.emit(insn(ADD64_IMM, 1, 0, 0, i32::from(stack::ITER)));
    a.call_kfunc(layout.vma_destroy)?;
    if let (Some(change), Some(_)) = (layout.image_change, remembered) {
        still_the_same_image(&mut a, layout, change)?;
    }
    a.label(Write);
    a.emit(insn(STX_W, 10, 8, stack::FLAGS, 0));
    a.emit(insn(MOV64_REG, 1, 9, 0, 0)); // r1 = meta->seq
    a.emit(insn(MOV64_REG, 2, 10, 0, 0));
    a.emit(insn(ADD64_IMM, 2, 0, 0, i32::from(stack::RECORD)));
    a.emit(insn(MOV64_IMM, 3, 0, 0, RECORD_BYTES as i32));
    a.emit(insn(CALL, 0, 0, 0, HELPER_SEQ_WRITE));
    a.label(Exit);
    a.emit(insn(MOV64_IMM, 0, 0, 0, 0));
    a.emit(insn(EXIT, 0, 0, 0, 0));
    a.finish()
}

/// The counts of change into the record, then, if the remembered walk of this
/// process (by tgid) was under the same start and counts: `UNCHANGED`, and on
/// to the write, with no walk. Counts read while a writer held the mappings
/// are not `STEADY`: never remembered, nor taken as unchanged.
fn unchanged_since_remembered(
    a: &mut Assembler<Label>,
    change: ImageChangeLayout,
    remembered: &OwnedFd,
) -> Result<(), FdIteratorError> {
    use Label::*;
    a.copy(LDX_DW, STX_DW, 7, change.task_exec_id, stack::EXEC_ID)?;
    a.emit(insn(LDX_DW, 3, 10, stack::MM, 0));
    let mm_seq =
        i32::try_from(change.mm_seq).map_err(|_| FdIteratorError::OffsetTooFar(change.mm_seq))?;
    a.emit(insn(ADD64_IMM, 3, 0, 0, mm_seq));
    probe_read_to(a, stack::MM_SEQ, 4);
    a.jump(JNE_IMM, 0, 0, Walk);
    // Odd: a writer holds the mmap lock (the kernel's own speculation test).
    a.emit(insn(LDX_W, 1, 10, stack::MM_SEQ, 0));
    a.emit(insn(AND64_IMM, 1, 0, 0, 1));
    a.jump(JNE_IMM, 1, 0, Walk);
    a.emit(insn(MOV64_IMM, 8, 0, 0, STEADY as i32));
    map_lookup(a, remembered, stack::TGID);
    a.jump(JEQ_IMM, 0, 0, Walk);
    for (load, at, mine) in [
        (LDX_DW, remembered_at::START, stack::START),
        (LDX_DW, remembered_at::EXEC_ID, stack::EXEC_ID),
        (LDX_W, remembered_at::MM_SEQ, stack::MM_SEQ),
    ] {
        a.emit(insn(load, 1, 0, at, 0));
        a.emit(insn(load, 2, 10, mine, 0));
        a.jump_reg(JNE_REG, 1, 2, Walk);
    }
    a.emit(insn(OR64_IMM, 8, 0, 0, UNCHANGED as i32));
    a.goto(Write);
    Ok(())
}

/// After a walk: the counts read before it hold for what it walked only if no
/// exec swapped the address space meanwhile (the walk takes the task's mm
/// afresh); else they are not `STEADY` (red team: an exec between the reads).
fn still_the_same_image(
    a: &mut Assembler<Label>,
    layout: &LibraryLayout,
    change: ImageChangeLayout,
) -> Result<(), FdIteratorError> {
    use Label::*;
    // Whatever the flags: a branch on them would make the verifier tell the
    // loop's states apart by them (r8 precise), ~0.5 ms more at each load.
    probe_read(a, 7, layout.task_mm, NotSteady)?;
    a.emit(insn(LDX_DW, 1, 10, stack::MM, 0));
    a.jump_reg(JNE_REG, 3, 1, NotSteady);
    a.emit(insn(LDX_DW, 1, 7, offset16(change.task_exec_id)?, 0));
    a.emit(insn(LDX_DW, 2, 10, stack::EXEC_ID, 0));
    a.jump_reg(JEQ_REG, 1, 2, Write);
    a.label(NotSteady);
    a.emit(insn(AND64_IMM, 8, 0, 0, !(STEADY as i32)));
    Ok(())
}

/// `r3 = *(u64 *)(base + offset)` through `bpf_probe_read_kernel` (into the
/// name buffer); to `null` if it gives 0, and if the read fails to `null`
/// too where that is the pass's end or the counts' doubt, else to `Unread`.
fn probe_read(
    a: &mut Assembler<Label>,
    base: u8,
    offset: u32,
    null: Label,
) -> Result<(), FdIteratorError> {
    let offset = i32::try_from(offset).map_err(|_| FdIteratorError::OffsetTooFar(offset))?;
    a.emit(insn(MOV64_REG, 3, base, 0, 0));
    a.emit(insn(ADD64_IMM, 3, 0, 0, offset));
    probe_read_to(a, stack::NAME, 8);
    // A failed read leaves zeros: where a null pointer goes where a failure
    // does, the one test of the value is both (each branch in the loop costs
    // the verifier more states: the program loads in 1.5 ms, not 1.9).
    let failed = match null {
        Label::Exit | Label::NotSteady => null,
        _ => Label::Unread,
    };
    if null != failed {
        a.jump(JNE_IMM, 0, 0, failed);
    }
    a.emit(insn(LDX_DW, 3, 10, stack::NAME, 0));
    a.jump(JEQ_IMM, 3, 0, null);
    Ok(())
}

/// `r0 = bpf_probe_read_kernel(r10 + slot, bytes, r3)`.
fn probe_read_to(a: &mut Assembler<Label>, slot: i16, bytes: i32) {
    a.emit(insn(MOV64_REG, 1, 10, 0, 0));
    a.emit(insn(ADD64_IMM, 1, 0, 0, i32::from(slot)));
    a.emit(insn(MOV64_IMM, 2, 0, 0, bytes));
    a.emit(insn(CALL, 0, 0, 0, HELPER_PROBE_READ_KERNEL));
}

/// The program, its link, and the map of walks it may rely on.
struct Program {
    link: OwnedFd,
    /// `None` where the kernel gives no counts of change (every process is
    /// walked at every pass).
    remembered: Option<OwnedFd>,
    /// The tgids this process put in the map (taken out before each pass).
    in_map: Mutex<Vec<u32>>,
}

/// The program, made on first need (`None`: this kernel has no such program,
/// or refused it).
static PROGRAM: OnceLock<Option<Program>> = OnceLock::new();

/// How long a walk that found no SOCKS library is relied on, from the walk (a
/// pass that relies on it does not renew it). Within it a process is not walked
/// again while its start, exec count and mappings' count are the same. The
/// mappings' count moves twice at each take of the mmap write lock, so
/// bringing it round to a remembered value takes 2^31 takes: 223 s at 104 ns
/// a `brk(0)`, the cheapest take the red team found on this host (an
/// `mprotect` is 0.5-1.4 µs), over 7 times this.
pub const REMEMBER_WALK_SECS: u64 = 30;
/// Walks remembered at most: past it, processes are walked. The map is
/// sized to the host's tasks (its buckets are allocated whole: 1 MiB, ~0.7
/// ms of a CLI run, at the most).
const REMEMBERED_CAPACITY: u32 = 65_536;
const MIN_REMEMBERED_CAPACITY: u32 = 1024;
/// Root's file of remembered walks, in `LAYOUT_CACHE_DIR` (read only exactly
/// as root left it: `read_private_file`): one-shot runs are separate processes.
const REMEMBERED_FILE: &CStr = c"library-walks";
const REMEMBERED_HEADER: &[u8] = b"an1256 library walks 1\n";
/// Per walk: tgid u32, mm_seq u32, start u64, exec_id u64, walked_at u64.
const REMEMBERED_RECORD_BYTES: usize = 32;
/// The header, a boot id and its newline, and a full map's records.
const MAX_REMEMBERED_BYTES: u64 =
    (REMEMBERED_HEADER.len() + 37 + REMEMBERED_RECORD_BYTES * REMEMBERED_CAPACITY as usize) as u64;

/// A walk that found no SOCKS library, and what it was made under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Remembered {
    pub start: u64,
    pub exec_id: u64,
    pub mm_seq: u32,
    /// `CLOCK_BOOTTIME` ns at the pass that walked.
    pub walked_at: u64,
}

/// One pass of the program over every process; `None` where this kernel has
/// no such program (the caller walks each process's mappings).
pub fn pass(
    iterator: &FdIterator,
    deadline: crate::deadline::Deadline,
) -> Option<Result<LibraryPass, FdIteratorError>> {
    let program = PROGRAM
        .get_or_init(|| {
            let kernel = iterator.layout();
            let layout = kernel.libraries?;
            make_program(kernel, &layout)
                .inspect_err(|why| log::warn!("no kernel-side library check: {why}"))
                .ok()
        })
        .as_ref()?;
    let now = super::boot_ns();
    let dir = std::path::Path::new(LAYOUT_CACHE_DIR);
    // Root's own file, this boot's: nothing is remembered otherwise.
    let boot = LayoutCacheKey::here().map(|key| key.boot_id);
    let before = match (&program.remembered, &boot) {
        (Some(map), Some(boot)) if now > 0 => {
            let walks = read_private_file(dir, REMEMBERED_FILE, MAX_REMEMBERED_BYTES)
                .map(|bytes| decode_remembered(&bytes, boot, now))
                .unwrap_or_default();
            program.fill(map, &walks);
            Some(walks)
        }
        _ => None,
    };
    let result = read(&program.link, deadline);
    if let (Ok(pass), Some(before), Some(boot)) = (&result, &before, &boot) {
        let after = remember(before, &pass.processes, now);
        if &after != before {
            if let Err(why) =
                write_private_file(dir, REMEMBERED_FILE, &encode_remembered(boot, &after))
            {
                log::debug!("library walks not kept in {LAYOUT_CACHE_DIR}: {why}");
            }
        }
    }
    Some(result)
}

fn make_program(kernel: &KernelLayout, layout: &LibraryLayout) -> Result<Program, FdIteratorError> {
    let remembered = match layout.image_change {
        Some(_) => create_map(
            BPF_MAP_TYPE_HASH,
            4,
            remembered_at::BYTES as u32,
            super::procfs::tasks_now()
                .and_then(|tasks| u32::try_from(tasks).ok())
                .map_or(REMEMBERED_CAPACITY, |tasks| {
                    tasks
                        .checked_next_power_of_two()
                        .unwrap_or(REMEMBERED_CAPACITY)
                        .clamp(MIN_REMEMBERED_CAPACITY, REMEMBERED_CAPACITY)
                }),
            BPF_F_NO_PREALLOC,
            b"an1256_walks",
        )
        .inspect_err(|why| log::debug!("no library walks remembered: {why}"))
        .ok(),
        None => None,
    };
    let program = load(kernel, layout, remembered.as_ref())?;
    Ok(Program {
        link: FdIterator::link(&program, None)?,
        remembered,
        in_map: Mutex::new(Vec::new()),
    })
}

impl Program {
    /// The map holds `walks` and nothing else (as far as the kernel takes
    /// them: a walk it did not take is made again).
    fn fill(&self, map: &OwnedFd, walks: &HashMap<u32, Remembered>) {
        let mut in_map = self.in_map.lock().unwrap_or_else(|e| e.into_inner());
        for tgid in in_map.drain(..) {
            let key = tgid.to_ne_bytes();
            let mut attr = MapElemAttr {
                map_fd: map.as_raw_fd() as u32,
                key: key.as_ptr() as u64,
                ..Default::default()
            };
            // Gone already is as good.
            let _ = bpf_call(BPF_MAP_DELETE_ELEM, &mut attr);
        }
        if walks.is_empty() {
            return;
        }
        let mut keys = Vec::with_capacity(walks.len());
        let mut values = Vec::with_capacity(walks.len() * remembered_at::BYTES);
        for (&tgid, walk) in walks {
            keys.push(tgid);
            values.extend_from_slice(&walk.start.to_ne_bytes());
            values.extend_from_slice(&walk.exec_id.to_ne_bytes());
            values.extend_from_slice(&walk.mm_seq.to_ne_bytes());
            values.extend_from_slice(&0u32.to_ne_bytes());
        }
        let mut attr = BatchAttr {
            keys: keys.as_ptr() as u64,
            values: values.as_ptr() as u64,
            count: keys.len() as u32,
            map_fd: map.as_raw_fd() as u32,
            ..Default::default()
        };
        if let Err(why) = bpf(BPF_MAP_UPDATE_BATCH, &mut attr) {
            log::debug!("library walks not all remembered in the kernel: {why}");
        }
        // Each may be in: all are taken out next time.
        *in_map = keys;
    }
}

const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

/// `union bpf_attr` as the map batch commands read it.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

const _: () = assert!(std::mem::size_of::<BatchAttr>() == 56);

/// The walks a pass leaves to remember: those it relied on, as remembered
/// (their time unchanged), and those it made whole under steady counts that
/// found none, at `now`. A process the pass did not meet is forgotten.
pub fn remember(
    before: &HashMap<u32, Remembered>,
    walks: &HashMap<u32, LibraryWalk>,
    now: u64,
) -> HashMap<u32, Remembered> {
    walks
        .iter()
        .filter_map(|(&tgid, walk)| {
            let (exec_id, mm_seq) = walk.counts?;
            if walk.socks_library != Some(false) {
                return None;
            }
            let kept = if walk.unchanged {
                *before.get(&tgid)?
            } else {
                Remembered {
                    start: walk.leader_start,
                    exec_id,
                    mm_seq,
                    walked_at: now,
                }
            };
            let same =
                (kept.start, kept.exec_id, kept.mm_seq) == (walk.leader_start, exec_id, mm_seq);
            same.then_some((tgid, kept))
        })
        .collect()
}

/// The file's bytes: the header, this boot's id, then one record per walk.
pub fn encode_remembered(boot: &str, walks: &HashMap<u32, Remembered>) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        REMEMBERED_HEADER.len() + boot.len() + 1 + walks.len() * REMEMBERED_RECORD_BYTES,
    );
    out.extend_from_slice(REMEMBERED_HEADER);
    out.extend_from_slice(boot.as_bytes());
    out.push(b'\n');
    for (&tgid, walk) in walks.iter().take(REMEMBERED_CAPACITY as usize) {
        out.extend_from_slice(&tgid.to_ne_bytes());
        out.extend_from_slice(&walk.mm_seq.to_ne_bytes());
        out.extend_from_slice(&walk.start.to_ne_bytes());
        out.extend_from_slice(&walk.exec_id.to_ne_bytes());
        out.extend_from_slice(&walk.walked_at.to_ne_bytes());
    }
    out
}

/// The walks in `bytes` still to be relied on at `now`: written this boot
/// (`boot`), walked at most [`REMEMBER_WALK_SECS`] before `now` and not after
/// it. Another format or boot, or a cut record, leaves nothing remembered; a
/// tgid written twice is left out.
pub fn decode_remembered(bytes: &[u8], boot: &str, now: u64) -> HashMap<u32, Remembered> {
    let mut walks = HashMap::new();
    let records = bytes
        .strip_prefix(REMEMBERED_HEADER)
        .and_then(|rest| rest.strip_prefix(boot.as_bytes()))
        .and_then(|rest| rest.strip_prefix(b"\n"));
    let Some(records) = records.filter(|r| r.len() % REMEMBERED_RECORD_BYTES == 0) else {
        return walks;
    };
    let oldest = now.saturating_sub(REMEMBER_WALK_SECS * 1_000_000_000);
    let mut twice = Vec::new();
    for r in records.chunks_exact(REMEMBERED_RECORD_BYTES) {
        let u32_at = |at: usize| {
            r.get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_ne_bytes)
        };
        let u64_at = |at: usize| {
            r.get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_ne_bytes)
        };
        let (Some(tgid), Some(mm_seq), Some(start), Some(exec_id), Some(walked_at)) =
            (u32_at(0), u32_at(4), u64_at(8), u64_at(16), u64_at(24))
        else {
            continue;
        };
        if walked_at > now || walked_at < oldest {
            continue;
        }
        let walk = Remembered {
            start,
            exec_id,
            mm_seq,
            walked_at,
        };
        if walks.insert(tgid, walk).is_some() {
            twice.push(tgid);
        }
    }
    for tgid in twice {
        walks.remove(&tgid);
    }
    walks
}

/// The program, loaded (relying on `remembered` walks where given).
pub(super) fn load(
    kernel: &KernelLayout,
    layout: &LibraryLayout,
    remembered: Option<&OwnedFd>,
) -> Result<OwnedFd, FdIteratorError> {
    load_program(
        &program(kernel, layout, remembered)?,
        layout.iter_func_id,
        b"an1256_libs",
    )
}

/// What the pass found of one process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LibraryWalk {
    /// The leader's start, ns since boot: tells the process from a later one
    /// under the same pid.
    pub leader_start: u64,
    /// `Some(found)` when its whole address space was walked (or was
    /// unchanged since a walk that found none); `None` when not (the caller
    /// walks its mappings).
    pub socks_library: Option<bool>,
    /// Not walked: unchanged since a remembered walk ([`UNCHANGED`]).
    pub unchanged: bool,
    /// The exec count and mappings' count, read with no writer at work
    /// ([`STEADY`]).
    pub counts: Option<(u64, u32)>,
}

/// One pass's walks, by pid.
#[derive(Debug, Default)]
pub struct LibraryPass {
    pub processes: HashMap<u32, LibraryWalk>,
    /// Cut at the deadline or the byte bound: processes past the cut have no
    /// record.
    pub cut: Option<String>,
}

/// One pass over every process, from the program's link.
pub(super) fn read(
    link: &OwnedFd,
    deadline: crate::deadline::Deadline,
) -> Result<LibraryPass, FdIteratorError> {
    let output = read_iterator(link, RECORD_BYTES, CHUNK_RECORDS, MAX_PASS_BYTES, deadline)?;
    let cut = output.cut.map(|cut| match cut {
        Cut::Deadline => "deadline passed while reading the library pass".to_string(),
        Cut::Bytes => format!(
            "the library pass gave over {} MiB of records",
            MAX_PASS_BYTES >> 20
        ),
    });
    Ok(LibraryPass {
        processes: parse_records(&output.data),
        cut,
    })
}

/// The whole records of the pass's output, by pid. A pid written twice (the
/// kernel resumes a read at the task it stopped on) keeps its first record
/// only if both agree; otherwise it is unknown.
pub fn parse_records(data: &[u8]) -> HashMap<u32, LibraryWalk> {
    let mut out: HashMap<u32, LibraryWalk> = HashMap::new();
    for record in data.chunks_exact(RECORD_BYTES) {
        let Some((tgid, walk)) = parse_record(record) else {
            continue;
        };
        out.entry(tgid)
            .and_modify(|seen| {
                if *seen != walk {
                    seen.socks_library = None;
                }
            })
            .or_insert(walk);
    }
    out
}

fn parse_record(r: &[u8]) -> Option<(u32, LibraryWalk)> {
    let tgid = u32::from_ne_bytes(r.get(0..4)?.try_into().ok()?);
    let flags = u32::from_ne_bytes(r.get(4..8)?.try_into().ok()?);
    let leader_start = u64::from_ne_bytes(r.get(8..16)?.try_into().ok()?);
    let exec_id = u64::from_ne_bytes(r.get(16..24)?.try_into().ok()?);
    let mm_seq = u32::from_ne_bytes(r.get(24..28)?.try_into().ok()?);
    let unchanged = flags & UNCHANGED != 0;
    // A library found is found, whatever else the walk met; none found proves
    // nothing unless every name was read in a whole walk, or the process is
    // unchanged since one (and then nothing else is said of it).
    let socks_library = if flags & !(WALKED | FOUND | NAME_UNREAD | UNCHANGED | STEADY) != 0 {
        None
    } else if unchanged {
        (flags == UNCHANGED | STEADY).then_some(false)
    } else if flags & FOUND != 0 {
        Some(true)
    } else {
        (flags & WALKED != 0 && flags & NAME_UNREAD == 0).then_some(false)
    };
    Some((
        tgid,
        LibraryWalk {
            leader_start,
            socks_library,
            unchanged,
            counts: (flags & STEADY != 0).then_some((exec_id, mm_seq)),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::linux::fd_iterator;

    fn deadline() -> crate::deadline::Deadline {
        crate::deadline::Deadline::after(std::time::Duration::from_secs(60))
    }

    fn record(tgid: u32, flags: u32, start: u64) -> Vec<u8> {
        record_with_counts(tgid, flags, start, 7, 42)
    }

    fn record_with_counts(tgid: u32, flags: u32, start: u64, exec_id: u64, mm_seq: u32) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&tgid.to_ne_bytes());
        r.extend_from_slice(&flags.to_ne_bytes());
        r.extend_from_slice(&start.to_ne_bytes());
        r.extend_from_slice(&exec_id.to_ne_bytes());
        r.extend_from_slice(&mm_seq.to_ne_bytes());
        r.extend_from_slice(&0u32.to_ne_bytes());
        assert_eq!(r.len(), RECORD_BYTES);
        r
    }

    const SECOND: u64 = 1_000_000_000;
    const BOOT: &str = "908a2e03-a59a-4970-910d-a2bbe5a8a137";

    fn remembered(start: u64, exec_id: u64, mm_seq: u32, walked_at: u64) -> Remembered {
        Remembered {
            start,
            exec_id,
            mm_seq,
            walked_at,
        }
    }

    /// "Unchanged" says none only as the program writes it (with steady
    /// counts and nothing else); the counts are kept only when steady.
    #[test]
    fn unchanged_says_none_only_with_steady_counts_and_nothing_else() {
        let mut data = Vec::new();
        for (tgid, flags) in [
            (1, UNCHANGED | STEADY),
            (2, UNCHANGED),
            (3, UNCHANGED | STEADY | FOUND),
            (4, UNCHANGED | STEADY | WALKED),
            (5, WALKED | STEADY),
            (6, WALKED),
        ] {
            data.extend(record_with_counts(tgid, flags, 100, 3, 8));
        }
        let walks = parse_records(&data);
        let walk = |tgid: u32| walks[&tgid];
        assert_eq!(walk(1).socks_library, Some(false));
        assert!(walk(1).unchanged);
        assert_eq!(walk(1).counts, Some((3, 8)));
        for tgid in [2, 3, 4] {
            assert_eq!(walk(tgid).socks_library, None, "{tgid}");
        }
        assert_eq!(walk(5).socks_library, Some(false));
        assert!(!walk(5).unchanged);
        assert_eq!(walk(5).counts, Some((3, 8)));
        assert_eq!(walk(6).counts, None, "not steady: no counts");
    }

    /// What a pass leaves to remember: its clean walks under steady counts at
    /// its time; the remembered walks it relied on, with their own time; never
    /// a library found, a walk unsure, counts not steady, a process it did not
    /// meet, or an unchanged one whose remembered walk it cannot match.
    #[test]
    fn a_pass_remembers_clean_steady_walks_and_keeps_the_time_of_those_it_relied_on() {
        let before: HashMap<u32, Remembered> = [
            (10, remembered(100, 3, 8, 5 * SECOND)),
            (11, remembered(100, 3, 8, 5 * SECOND)),
            (12, remembered(100, 3, 8, 5 * SECOND)),
        ]
        .into();
        let mut data = Vec::new();
        for (tgid, flags, seq) in [
            (1, WALKED | STEADY, 8),
            (2, WALKED | STEADY | FOUND, 8),
            (3, WALKED | STEADY | NAME_UNREAD, 8),
            (4, WALKED, 8),
            (5, STEADY, 8),
            (10, UNCHANGED | STEADY, 8),
            (11, UNCHANGED | STEADY, 9),
            (13, UNCHANGED | STEADY, 8),
        ] {
            data.extend(record_with_counts(tgid, flags, 100, 3, seq));
        }
        let now = 50 * SECOND;
        let after = remember(&before, &parse_records(&data), now);
        let expected: HashMap<u32, Remembered> = [
            (1, remembered(100, 3, 8, now)),
            (10, remembered(100, 3, 8, 5 * SECOND)),
        ]
        .into();
        assert_eq!(after, expected);
    }

    /// The file round-trips, and only this boot's walks of the last
    /// `REMEMBER_WALK_SECS` come back; anything malformed, nothing.
    #[test]
    fn remembered_walks_come_back_only_from_this_boot_and_within_their_time() {
        let now = 1000 * SECOND;
        let walks: HashMap<u32, Remembered> = [
            (1, remembered(11, 1, 2, now)),
            (2, remembered(12, 1, 2, now - REMEMBER_WALK_SECS * SECOND)),
            (
                3,
                remembered(13, 1, 2, now - REMEMBER_WALK_SECS * SECOND - 1),
            ),
            (4, remembered(14, 1, 2, now + 1)),
        ]
        .into();
        let bytes = encode_remembered(BOOT, &walks);
        let back = decode_remembered(&bytes, BOOT, now);
        let expected: HashMap<u32, Remembered> = [(1, walks[&1]), (2, walks[&2])].into();
        assert_eq!(back, expected, "too old and from the future are left out");
        let other_boot = BOOT.replace('9', "8");
        assert!(decode_remembered(&bytes, &other_boot, now).is_empty());
        assert!(
            decode_remembered(&bytes[..bytes.len() - 1], BOOT, now).is_empty(),
            "cut"
        );
        let mut other_format = bytes.clone();
        other_format[REMEMBERED_HEADER.len() - 2] = b'2';
        assert!(decode_remembered(&other_format, BOOT, now).is_empty());
        assert!(decode_remembered(b"", BOOT, now).is_empty());
        // A tgid written twice is left out, whichever is right.
        let mut twice = encode_remembered(BOOT, &[(1, walks[&1])].into());
        let record = twice[twice.len() - REMEMBERED_RECORD_BYTES..].to_vec();
        twice.extend_from_slice(&record);
        assert!(decode_remembered(&twice, BOOT, now).is_empty());
    }

    /// Only a whole walk says "none"; a library found is found; anything
    /// else (not walked, a name unread, flags unknown here) is unknown, and a
    /// process written twice with two answers is unknown too.
    #[test]
    fn a_record_says_none_only_after_a_whole_walk() {
        let mut data = Vec::new();
        for (tgid, flags) in [
            (1, WALKED),
            (2, WALKED | FOUND),
            (3, WALKED | FOUND | NAME_UNREAD),
            (4, WALKED | NAME_UNREAD),
            (5, 0),
            (6, WALKED | 64),
            (7, WALKED),
            (7, WALKED | FOUND),
            (8, WALKED),
            (8, WALKED),
        ] {
            data.extend(record(tgid, flags, 1000 + u64::from(tgid)));
        }
        data.extend_from_slice(&[1, 2, 3]); // a cut record is no record
        let walks = parse_records(&data);
        let verdict = |tgid: u32| walks.get(&tgid).and_then(|w| w.socks_library);
        assert_eq!(verdict(1), Some(false));
        assert_eq!(verdict(2), Some(true));
        assert_eq!(verdict(3), Some(true));
        assert_eq!(verdict(4), None);
        assert_eq!(verdict(5), None);
        assert_eq!(verdict(6), None);
        assert_eq!(verdict(7), None, "two answers");
        assert_eq!(verdict(8), Some(false), "the same answer twice");
        assert_eq!(walks.get(&1).map(|w| w.leader_start), Some(1001));
        assert_eq!(walks.len(), 8);
    }

    /// The compares the program makes are the judge's prefixes, byte for byte.
    #[test]
    fn the_compared_words_spell_the_judges_library_names() {
        for name in [&PROXYCHAINS[..], &TORSOCKS[..], &TSOCKS[..]] {
            let text = std::str::from_utf8(name).expect("ascii");
            assert!(
                crate::judge::socks::proxy::is_socks_preload_library(&format!("/x/{text}.so")),
                "{text}"
            );
            assert!(!crate::judge::socks::proxy::is_socks_preload_library(
                &format!("/x/{}.so", &text[..text.len() - 1])
            ));
            let head_bytes = head(name).expect("8 bytes").to_ne_bytes();
            assert_eq!(&head_bytes, &name[..8]);
        }
        // As LDX_B/H/W load the stack's bytes on this machine.
        let tail = |bytes: &[u8]| {
            let mut four = [0u8; 4];
            four[..bytes.len()].copy_from_slice(bytes);
            let value = u32::from_ne_bytes(four);
            if cfg!(target_endian = "big") {
                value >> (8 * (4 - bytes.len()))
            } else {
                value
            }
        };
        assert_eq!(word(PROXYCHAINS, 8, 4), Some(tail(b"chai") as i32));
        assert_eq!(word(PROXYCHAINS, 12, 2), Some(tail(b"ns") as i32));
        assert_eq!(word(TORSOCKS, 8, 2), Some(tail(b"ck") as i32));
        assert_eq!(word(TORSOCKS, 10, 1), Some(i32::from(b's')));
        assert_eq!(word(TSOCKS, 8, 1), Some(i32::from(b's')));
        assert_eq!(word(b"lib\xff", 3, 1), None, "not ASCII");
        assert_eq!(word(TSOCKS, 8, 2), None, "past the name");
    }

    /// The program's shape: the three kfuncs by their ids, one loop back to
    /// the `next` call, and a 16-byte record written once.
    #[test]
    fn the_program_calls_the_vma_iterator_and_writes_one_record() {
        for remembering in [false, true] {
            program_shape(remembering);
        }
    }

    /// With remembered walks (`remembering`), the program also reads the
    /// counts, looks its tgid up once, and goes from the three compares
    /// straight to the write, past every kfunc.
    fn program_shape(remembering: bool) {
        use std::os::fd::AsRawFd;
        let map = OwnedFd::from(std::fs::File::open("/dev/null").expect("an fd"));
        let kernel = KernelLayout {
            task_tgid: 1268,
            task_pid: 1264,
            task_start_boottime: 1560,
            ..fd_iterator::EMPTY_LAYOUT
        };
        let layout = LibraryLayout {
            iter_func_id: 2,
            vma_new: 70001,
            vma_next: 70002,
            vma_destroy: 70003,
            task_mm: 1136,
            vma_flags: 32,
            vma_file: 160,
            file_dentry: 24,
            dentry_name: 40,
            file_mnt: 16,
            mount_root: 0,
            dentry_parent: 24,
            image_change: remembering.then_some(ImageChangeLayout {
                task_exec_id: 2000,
                mm_seq: 120,
            }),
        };
        // Both needed: the counts alone, or the map alone, remember nothing.
        if remembering {
            let counts_only = program(&kernel, &layout, None).expect("program");
            let map_only = program(
                &kernel,
                &LibraryLayout {
                    image_change: None,
                    ..layout
                },
                Some(&map),
            )
            .expect("program");
            for code in [counts_only, map_only] {
                assert!(!code.iter().any(|i| i.imm == map.as_raw_fd()));
            }
        }
        let code = program(&kernel, &layout, Some(&map)).expect("program");
        let lookups: Vec<usize> = (0..code.len())
            .filter(|&pc| code[pc].code == CALL && code[pc].regs == 0 && code[pc].imm == 1)
            .collect();
        if remembering {
            assert_eq!(lookups.len(), 1, "one lookup, of this tgid");
            let lookup = lookups[0];
            assert_eq!(code[lookup - 4].imm, map.as_raw_fd(), "in the map");
            assert_eq!(code[lookup - 2].regs, 2 | (10 << 4));
            assert_eq!(code[lookup - 1].imm, i32::from(stack::TGID));
            // Three compares of a remembered field with its own, each to
            // the walk, then a jump past the destroy kfunc to the write.
            let compares: Vec<&Insn> = code[lookup..]
                .iter()
                .filter(|i| i.code == JNE_REG)
                .take(3)
                .collect();
            assert_eq!(compares.len(), 3);
            let goto = code[lookup..]
                .iter()
                .position(|i| i.code == fd_iterator::JA)
                .map(|at| at + lookup)
                .expect("the jump to the write");
            let to = (goto as i64 + 1 + i64::from(code[goto].off)) as usize;
            let destroy = code
                .iter()
                .position(|i| i.code == CALL && i.imm == 70003)
                .expect("destroy");
            assert!(to > destroy, "past the walk");
            // After the walk, an exec that swapped the address space (mm or
            // exec count no longer what was read) takes `STEADY` away.
            let unsteady = code[destroy..]
                .iter()
                .filter(|i| i.code == AND64_IMM && i.regs == 8 && i.imm == !(STEADY as i32))
                .count();
            assert_eq!(unsteady, 1);
            assert_eq!(
                (code[to].code, code[to].off),
                (STX_W, stack::FLAGS),
                "straight to the write"
            );
        } else {
            assert!(lookups.is_empty());
        }
        let kfuncs: Vec<i32> = code
            .iter()
            .filter(|i| i.code == CALL && i.regs >> 4 == 2)
            .map(|i| i.imm)
            .collect();
        assert_eq!(kfuncs, [70001, 70002, 70003]);
        let next_at = code
            .iter()
            .position(|i| i.code == CALL && i.imm == 70002)
            .expect("next");
        let back: Vec<usize> = (0..code.len())
            .filter(|&pc| {
                let jump = code[pc].code & 0x07 == 0x05 && ![CALL, EXIT].contains(&code[pc].code);
                jump && code[pc].off < 0
            })
            .map(|pc| (pc as i64 + 1 + i64::from(code[pc].off)) as usize)
            .collect();
        assert!(!back.is_empty());
        // Every backward jump lands on the loop's head: the two instructions
        // that set up and make the `next` call.
        assert!(
            back.iter().all(|&to| to + 2 == next_at),
            "{back:?} {next_at}"
        );
        let writes: Vec<usize> = (0..code.len())
            .filter(|&pc| {
                code[pc].code == CALL && code[pc].regs == 0 && code[pc].imm == HELPER_SEQ_WRITE
            })
            .collect();
        assert_eq!(writes.len(), 1);
        assert_eq!(code[writes[0] - 1].imm, RECORD_BYTES as i32);
        // No pointer is loaded from a VMA or a file: they are probe reads.
        let probes = code
            .iter()
            .filter(|i| i.code == CALL && i.regs == 0 && i.imm == HELPER_PROBE_READ_KERNEL)
            .count();
        assert_eq!(
            probes,
            8 + 2 * usize::from(remembering),
            "mm, (its count), file, dentry, its parent, mount, its root, name's address, name, \
             (mm again after the walk)"
        );
    }

    #[test]
    fn the_pass_walks_this_process_and_finds_no_socks_library() {
        let iterator = match fd_iterator::shared() {
            Ok(it) => it,
            Err(why) => {
                eprintln!("skipped: no fd iterator here: {why}");
                return;
            }
        };
        let Some(pass) = pass(iterator, deadline()) else {
            assert!(
                !fd_iterator::kernel_has_vma_iterator(),
                "a 6.7+ kernel must take the library program (see the warning logged)"
            );
            eprintln!("skipped: no library program on this kernel");
            return;
        };
        let pass = pass.expect("the pass reads");
        assert_eq!(pass.cut, None);
        let ours = pass
            .processes
            .get(&std::process::id())
            .expect("this process's leader is walked");
        assert_eq!(ours.socks_library, Some(false), "{ours:?}");
        assert!(ours.leader_start > 0);
    }
}
