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

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::OnceLock;

use super::fd_iterator::{
    insn, load_program, offset16, read_iterator, Assembler, Cut, FdIterator, FdIteratorError, Insn,
    KernelLayout, LibraryLayout, ADD64_IMM, AND64_IMM, CALL, EXIT, HELPER_SEQ_WRITE, JEQ_IMM,
    JEQ_REG, JNE_IMM, JNE_REG, LDX_B, LDX_DW, LDX_H, LDX_W, MOV64_IMM, MOV64_REG, OR64_IMM, STX_DW,
    STX_W, ST_DW,
};

/// One record per process leader walked: `{tgid u32, flags u32, leader_start
/// u64 (ns since boot)}`.
pub const RECORD_BYTES: usize = 16;
/// The walk went through every VMA of the address space.
pub const WALKED: u32 = 1;
/// An executable file mapping's name starts like a SOCKS library's.
pub const FOUND: u32 = 2;
/// A mapped file's name could not be read: the walk proves nothing.
pub const NAME_UNREAD: u32 = 4;
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
    /// The record written: tgid, flags, then the leader's start.
    pub const RECORD: i16 = -40;
    /// The mapped file and its dentry, while they are compared.
    pub const FILE: i16 = -48;
    pub const DENTRY: i16 = -56;
    pub const TGID: i16 = RECORD;
    pub const FLAGS: i16 = RECORD + 4;
    pub const START: i16 = RECORD + 8;
}

/// Library file names (their first bytes) that route a process's connections
/// through SOCKS: the judge's list (`is_socks_preload_library`), compared in
/// the kernel as an 8-byte head and a tail.
const PROXYCHAINS: &[u8; 14] = b"libproxychains";
const TORSOCKS: &[u8; 11] = b"libtorsocks";
const TSOCKS: &[u8; 9] = b"libtsocks";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Label {
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
    a.emit(insn(ST_DW, 10, 0, stack::RECORD, 0));
    a.emit(insn(ST_DW, 10, 0, stack::RECORD + 8, 0));
    a.copy(LDX_W, STX_W, 7, kernel.task_tgid, stack::TGID)?;
    a.copy(LDX_DW, STX_DW, 7, kernel.task_start_boottime, stack::START)?;
    a.emit(insn(MOV64_IMM, 8, 0, 0, 0)); // r8 = flags
    a.emit(insn(MOV64_REG, 1, 10, 0, 0));
    a.emit(insn(ADD64_IMM, 1, 0, 0, i32::from(stack::ITER)));
    a.emit(insn(MOV64_REG, 2, 7, 0, 0));
    a.emit(insn(MOV64_IMM, 3, 0, 0, 0)); // from address 0: every VMA
    a.call_kfunc(layout.vma_new)?;
    // Failed (the mmap lock contended): no walk; the iterator is still destroyed.
    a.jump(JNE_IMM, 0, 0, Done);
    a.emit(insn(MOV64_IMM, 8, 0, 0, WALKED as i32));
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
    a.emit(insn(MOV64_REG, 1, 10, 0, 0));
    a.emit(insn(ADD64_IMM, 1, 0, 0, i32::from(stack::NAME)));
    a.emit(insn(MOV64_IMM, 2, 0, 0, 16));
    a.emit(insn(CALL, 0, 0, 0, HELPER_PROBE_READ_KERNEL));
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

/// `r3 = *(u64 *)(base + offset)` through `bpf_probe_read_kernel` (into the
/// name buffer); to `unread` if the read fails, to `null` if it gives 0.
fn probe_read(
    a: &mut Assembler<Label>,
    base: u8,
    offset: u32,
    null: Label,
) -> Result<(), FdIteratorError> {
    let offset = i32::try_from(offset).map_err(|_| FdIteratorError::OffsetTooFar(offset))?;
    a.emit(insn(MOV64_REG, 3, base, 0, 0));
    a.emit(insn(ADD64_IMM, 3, 0, 0, offset));
    a.emit(insn(MOV64_REG, 1, 10, 0, 0));
    a.emit(insn(ADD64_IMM, 1, 0, 0, i32::from(stack::NAME)));
    a.emit(insn(MOV64_IMM, 2, 0, 0, 8));
    a.emit(insn(CALL, 0, 0, 0, HELPER_PROBE_READ_KERNEL));
    a.jump(
        JNE_IMM,
        0,
        0,
        if null == Label::Exit {
            Label::Exit
        } else {
            Label::Unread
        },
    );
    a.emit(insn(LDX_DW, 3, 10, stack::NAME, 0));
    a.jump(JEQ_IMM, 3, 0, null);
    Ok(())
}

/// The program's link, made on first need (`None`: this kernel has no such
/// program, or refused it).
static LINK: OnceLock<Option<OwnedFd>> = OnceLock::new();

/// One pass of the program over every process; `None` where this kernel has
/// no such program (the caller walks each process's mappings).
pub fn pass(
    iterator: &FdIterator,
    deadline: crate::deadline::Deadline,
) -> Option<Result<LibraryPass, FdIteratorError>> {
    let link = LINK
        .get_or_init(|| {
            let kernel = iterator.layout();
            let layout = kernel.libraries?;
            load(kernel, &layout)
                .and_then(|program| FdIterator::link(&program, None))
                .inspect_err(|why| log::warn!("no kernel-side library check: {why}"))
                .ok()
        })
        .as_ref()?;
    Some(read(link, deadline))
}

/// The program, loaded.
pub(super) fn load(
    kernel: &KernelLayout,
    layout: &LibraryLayout,
) -> Result<OwnedFd, FdIteratorError> {
    load_program(
        &program(kernel, layout)?,
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
    /// `Some(found)` when its whole address space was walked; `None` when not
    /// (the caller walks its mappings).
    pub socks_library: Option<bool>,
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
    // A library found is found, whatever else the walk met; none found proves
    // nothing unless every name was read in a whole walk.
    let socks_library = if flags & !(WALKED | FOUND | NAME_UNREAD) != 0 {
        None
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
        let mut r = Vec::new();
        r.extend_from_slice(&tgid.to_ne_bytes());
        r.extend_from_slice(&flags.to_ne_bytes());
        r.extend_from_slice(&start.to_ne_bytes());
        r
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
            (6, WALKED | 8),
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
        };
        let code = program(&kernel, &layout).expect("program");
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
            probes, 8,
            "mm, file, dentry, its parent, mount, its root, name's address, name"
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
