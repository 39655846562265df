//! A full scan's check on itself. The fd pass (or walk) finds sockets through
//! the processes that hold them, and a holder that keeps moving can stay out of
//! its way: a process that forks every few milliseconds and exits, its child
//! given a pid the pass has gone by (red team: with the pid cursor lapped by
//! failed clones, missed by the pass, by the per-process fallback, by the /proc
//! walk and by `ss -p` alike), or a socket held by no fd table at all (in flight
//! over a UNIX socket, registered with io_uring). The socket itself does not
//! move: the scanner's own network namespace's datagram and raw sockets are
//! listed before the scan and again after it, and one listed both times that
//! the scan found no process holding was open through the whole scan, unseen.
//! The result is then incomplete and says whose socket it is.
//!
//! Root's sockets are left out: the kernel's own (a WireGuard or VXLAN tunnel,
//! an NFS client) are root's and held by no fd. Other network namespaces are
//! not listed (their tables are read only through a process found in them).
//!
//! A tripwire, not attribution (red team): a socket listed at one end only
//! escapes it (made anew faster than a scan lasts, or taken off the tables
//! between sends by `connect(AF_UNSPEC)`), as does one a trusted process holds
//! a copy of (it is found). Recording the sender at send time would close those.

use super::send_ledger::{LedgerRead, Lineage, Sending};
use super::socket_tables::{tables_for, TableEntry, TableKind, UNKNOWN_UID};
use crate::model::{
    Pid, ProtocolSet, SocketInfo, SocketScan, SocketType, IPPROTO_ICMP, IPPROTO_ICMPV6,
    IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE,
};
use std::collections::{HashMap, HashSet};

/// Unseen sockets named one by one in the note; the rest are counted.
const MAX_NAMED: usize = 8;

/// The datagram and raw sockets a scan reports, of users other than root, in
/// the scanner's own network namespace at one moment, by inode.
#[derive(Debug, Default)]
pub struct Census {
    namespace: u64,
    sockets: HashMap<u64, TableEntry>,
    /// When given, only these inodes are kept: the listing after a scan needs
    /// only the sockets listed before it that the scan did not find.
    only: Option<HashSet<u64>>,
}

/// The tables a census for `protocols` lists: the datagram and raw ones (TCP
/// left out: its sockets are many, and SOCKS is judged per connection).
pub fn kinds(protocols: &ProtocolSet) -> Vec<TableKind> {
    tables_for(protocols)
        .into_iter()
        .filter(|kind| kind.socket_type() != SocketType::Stream)
        .collect()
}

impl Census {
    /// An empty census of the namespace `namespace`, to keep the sockets of
    /// `only` when given.
    pub fn new(namespace: u64, only: Option<HashSet<u64>>) -> Census {
        Census {
            namespace,
            sockets: HashMap::new(),
            only,
        }
    }

    /// Counts `entry` when a scan for `protocols` reports it and a user other
    /// than root owns it (the rest is never held: a table of a million root
    /// sockets costs a census nothing).
    pub fn add(&mut self, entry: TableEntry, protocols: &ProtocolSet) {
        let counted = entry.inode != 0
            && entry.uid != 0
            && entry.uid != UNKNOWN_UID
            && !(entry.protocol == IPPROTO_TCP && entry.socket_type == SocketType::Stream)
            && protocols.wants_kind(entry.socket_type, entry.protocol)
            && self
                .only
                .as_ref()
                .is_none_or(|only| only.contains(&entry.inode));
        if counted {
            self.sockets.insert(entry.inode, entry);
        }
    }

    /// The sockets of this census still listed, the same, in `after`, that no
    /// socket the scan found (by inode, `seen`) is: open through the whole scan,
    /// held where the scan did not look. By uid, then inode.
    pub fn unseen_by(&self, after: &Census, seen: &HashSet<u64>) -> Vec<TableEntry> {
        if self.namespace != after.namespace {
            return Vec::new();
        }
        let mut unseen: Vec<TableEntry> = self
            .sockets
            .iter()
            .filter(|(inode, _)| !seen.contains(inode))
            .filter_map(|(inode, entry)| {
                let later = after.sockets.get(inode)?;
                same_socket(entry, later).then_some(*entry)
            })
            .collect();
        unseen.sort_by_key(|e| (e.uid, e.inode));
        unseen
    }
}

/// Whether two listings of one inode are one socket: made by one user, of one
/// kind, at one local address (a datagram socket binds once).
fn same_socket(before: &TableEntry, after: &TableEntry) -> bool {
    before.uid == after.uid
        && before.family == after.family
        && before.protocol == after.protocol
        && before.socket_type == after.socket_type
        && before.local == after.local
        && before.local_port == after.local_port
}

/// Ends a full scan's check: marks `scan` incomplete for each socket `before`
/// listed that the scan did not find and the listing taken `after` it (given
/// those sockets' inodes, the only ones it need keep) lists the same, or when
/// either listing failed (nothing then tells a miss apart). When the scan
/// found every socket listed before, nothing is listed again.
pub fn check(
    before: Result<Census, String>,
    after: impl FnOnce(HashSet<u64>) -> Result<Census, String>,
    scan: &mut SocketScan,
) {
    let cannot_list = |why: String| {
        format!(
            "the sockets of this network namespace could not be listed ({why}): a socket \
             whose holder the scan missed would not be noticed"
        )
    };
    let before = match before {
        Ok(before) => before,
        Err(why) => return scan.incomplete.push(cannot_list(why)),
    };
    let seen: HashSet<u64> = scan.sockets.iter().map(|s| s.socket).collect();
    let missed: HashSet<u64> = before
        .sockets
        .keys()
        .filter(|inode| !seen.contains(inode))
        .copied()
        .collect();
    if missed.is_empty() {
        return;
    }
    match after(missed) {
        Ok(after) => {
            if let Some(note) = note(&before.unseen_by(&after, &seen)) {
                scan.incomplete.push(note);
            }
        }
        Err(why) => scan.incomplete.push(cannot_list(why)),
    }
}

/// The incomplete note naming unseen sockets (at most [`MAX_NAMED`]).
pub fn note(unseen: &[TableEntry]) -> Option<String> {
    if unseen.is_empty() {
        return None;
    }
    let named: Vec<String> = unseen.iter().take(MAX_NAMED).map(describe).collect();
    let more = match unseen.len().saturating_sub(MAX_NAMED) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    Some(format!(
        "{}{more} open through the whole scan, but no process was found holding {}: a \
         holder that keeps moving (forking and exiting) or a socket held outside any fd \
         table (in flight over a UNIX socket, io_uring); look at the uid's processes",
        named.join(", "),
        if unseen.len() == 1 { "it" } else { "them" },
    ))
}

/// `UDP socket 127.0.0.1:47212 (socket 1234) of uid 1001`.
fn describe(entry: &TableEntry) -> String {
    let kind = match (entry.socket_type, entry.protocol) {
        (SocketType::Raw, protocol) => format!("raw socket (IP protocol {protocol})"),
        (_, IPPROTO_UDP) => "UDP socket".to_owned(),
        (_, IPPROTO_UDPLITE) => "UDP-Lite socket".to_owned(),
        (_, IPPROTO_ICMP | IPPROTO_ICMPV6) => "ICMP (ping) socket".to_owned(),
        (_, protocol) => format!("socket of IP protocol {protocol}"),
    };
    let local = super::socket_tables::address_text(entry.local);
    let local = if entry.family == crate::model::FAMILY_INET6 {
        format!("[{local}]")
    } else {
        local
    };
    format!(
        "{kind} {local}:{} (socket {}) of uid {}",
        entry.local_port, entry.inode, entry.uid
    )
}

/// The `state` of a row the send ledger gave: a socket sent on by a process
/// the scan did not find holding it (its `fd` is -1).
pub const SENT_NOT_HELD: &str = "sent_not_held";

/// Who a live process is, as far as attributing a send needs: its real uid,
/// its executable's (device, inode), and when its leader started (ns since
/// boot, to the clock tick `/proc` gives).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Runner {
    pub uid: u32,
    pub exe: (u64, u64),
    pub start: u64,
}

/// Processes by (real uid, executable's inode number), each with its start:
/// who runs an image. By inode number alone: the kernel's device of a file on
/// an overlay of two filesystems is the overlay's, `statx`'s the layer's (red
/// team); a number shared across filesystems only adds rows (more heirs), and
/// the check that a holder still runs what sent compares both.
type ImageIndex = HashMap<(u32, u64), Vec<(u64, Pid)>>;

/// Processes of the sender's image given one sent-on socket at most; more
/// make the result incomplete.
const MAX_HEIRS: usize = 8;
/// Rows the ledger gives one scan at most (as many as it holds sends; with
/// heirs it could give 8 times as many): more make the result incomplete.
const MAX_GIVEN_ROWS: usize = super::send_ledger::CAPACITY as usize;
/// Rows one user's sends are given in one scan at most (red team: one user's
/// flood gave every scan 16,384 rows for two minutes); the rest are counted in
/// the result's incomplete note.
const MAX_ROWS_PER_USER: usize = 1024;

/// What attributing the ledger's sends needs of the host.
pub trait LiveProcesses {
    /// The process `pid` now, if it still runs and can be read.
    fn runner(&mut self, pid: Pid) -> Option<Runner>;
    /// Only the executable `pid` runs now: what a search of every process reads
    /// first (one `statx`), the rest only for a process of a wanted image.
    fn image(&mut self, pid: Pid) -> Option<(u64, u64)>;
    /// Every process now (`None`: the list could not be read).
    fn pids(&mut self) -> Option<Vec<Pid>>;
    /// Whether the scan's time is up: the search stops, and says so.
    fn out_of_time(&self) -> bool;
    /// The clock tick `Runner::start` is rounded down to, in ns.
    fn tick_ns(&self) -> u64;
    /// The lineage the ledger keeps of the live process `pid`: its leader
    /// start (ns since boot, exact) and its forkers on record, nearest first.
    fn forkers(&mut self, pid: Pid) -> Option<Lineage>;
}

/// Forebears looked at per send at most, walking the lineage up from the
/// sender (through live forkers' own lineages).
const MAX_FOREBEARS: usize = 64;

/// Ends a scan's check with the send ledger (`send_ledger`): each socket a user
/// sent on lately, of a kind the scan reports, that the scan did not find held
/// by its sender becomes a row (`fd` -1, state [`SENT_NOT_HELD`]) of the sender
/// if it still runs (the same user, image and start), else of each process of
/// the same user running the same image that started since the sender did: a
/// holder that forks away keeps its image, and a process older than the sender
/// cannot descend from it. At most [`MAX_HEIRS`] of them; more, a ledger that
/// could not be read, lost sends, or a search cut short make the result
/// incomplete. `constrained` (a `pid =` scan) looks among those pids only and
/// says nothing of the rest. A send no process can be given (most often a
/// short-lived command gone with its socket) is returned, for the log.
pub fn attribute_senders(
    read: Result<LedgerRead, String>,
    protocols: &ProtocolSet,
    constrained: Option<&[Pid]>,
    scan: &mut SocketScan,
    live: &mut impl LiveProcesses,
    row: impl Fn(&Sending, Pid) -> Option<SocketInfo>,
) -> Option<String> {
    let read = match read {
        Ok(read) => read,
        Err(why) => {
            scan.incomplete.push(format!(
                "the send ledger could not be read ({why}): a socket sent on by a process \
                 the scan missed would not be noticed"
            ));
            return None;
        }
    };
    if read.dropped_since > 0 {
        scan.incomplete.push(format!(
            "{} sends on users' sockets (or forks) were not recorded: the send ledger \
             ({} sockets) or the lineage ({} processes) was full; a socket sent on by a \
             process the scan missed may not be noticed",
            read.dropped_since,
            super::send_ledger::CAPACITY,
            super::send_ledger::LINEAGE_CAPACITY
        ));
    }
    let mut holders: HashMap<u64, Vec<Pid>> = HashMap::new();
    for socket in &scan.sockets {
        holders.entry(socket.socket).or_default().push(socket.pid);
    }
    // One row per (process, socket): two gone senders of one socket may have
    // the same heir.
    let mut given: HashSet<(Pid, u64)> = scan.sockets.iter().map(|s| (s.pid, s.socket)).collect();
    let tick = live.tick_ns().max(1);
    // Processes by (uid, image), with their starts: made once, from every pid
    // (or the scan's own), when a sender is first found gone.
    let mut by_image: Option<Option<ImageIndex>> = None;
    let mut cut = false;
    let mut unattributed = Vec::new();
    let mut crowded = Vec::new();
    // A scan of given pids looks only at sends of their users and images, or
    // by them: their runners are read at the first send that asks (the watch
    // scans its pids every second, mostly with no user's send to look at).
    let mut asked_images: Option<Vec<Runner>> = None;
    let asked = |pid: Pid| constrained.is_none_or(|pids| pids.contains(&pid));
    let mut not_looked_at = 0;
    let mut given_rows = 0;
    let mut rows_by_user: HashMap<u32, usize> = HashMap::new();
    let mut over_by_user: std::collections::BTreeMap<u32, usize> = Default::default();
    for (index, sending) in read.sendings.iter().enumerate() {
        if live.out_of_time() {
            cut = true;
            not_looked_at = read.sendings.len() - index;
            break;
        }
        let socket_type = match i32::from(sending.socket_type) {
            libc::SOCK_DGRAM => SocketType::Dgram,
            libc::SOCK_RAW => SocketType::Raw,
            _ => continue,
        };
        if sending.uid == 0 || !protocols.wants_kind(socket_type, i32::from(sending.protocol)) {
            continue;
        }
        let tgid = Pid::try_from(sending.tgid).unwrap_or(-1);
        // An executable the program could not read matches nothing.
        let exe = (sending.exe_dev, sending.exe_inode);
        let known_image = exe != (0, 0);
        let asked_forebear = || {
            sending
                .ancestors
                .iter()
                .any(|&(ancestor, _)| Pid::try_from(ancestor).is_ok_and(asked))
        };
        if let Some(pids) = constrained {
            let images = asked_images
                .get_or_insert_with(|| pids.iter().filter_map(|&pid| live.runner(pid)).collect());
            let theirs = images
                .iter()
                .any(|r| known_image && r.uid == sending.uid && r.exe.1 == exe.1);
            if !asked(tgid) && !asked_forebear() && !theirs {
                continue;
            }
        }
        // A start `/proc` gives (rounded down to its tick) is the kernel's `at`.
        let started_as = |given: u64, at: u64| given <= at && at < given + tick;
        // The sender's process, as it is now: the same pid, user and start,
        // whatever it runs (it may have exec'd since it sent).
        let process = live
            .runner(tgid)
            .filter(|r| r.uid == sending.uid && started_as(r.start, sending.leader_start));
        let same_image = process.is_some_and(|r| known_image && r.exe == exe);
        let held_by = holders.get(&sending.socket).map_or(&[][..], Vec::as_slice);
        // Found holding it, still what sent: its own row says it all.
        if same_image && held_by.contains(&tgid) {
            continue;
        }
        let mut heirs: Vec<Pid> = Vec::new();
        if process.is_some() && asked(tgid) {
            heirs.push(tgid);
        }
        if !same_image {
            // Whoever made the sender, as it was made (its parent then, and
            // the processes that forked its forebears, kept by the ledger
            // through reparenting), while it runs as recorded, whatever its
            // image: a program that forks, double-forks or execs a copy per
            // send lives on in one of them (red team). Of the sender's user.
            // The walk goes on up through each live forebear's own lineage
            // (red team: four live trusted forkers, `timeout` and `xargs`,
            // filled the sender's slots and left the implant above them).
            let mut queue: std::collections::VecDeque<(u32, u64)> =
                sending.ancestors.iter().copied().collect();
            let mut seen: HashSet<u32> = HashSet::new();
            while let Some((ancestor, start)) = queue.pop_front() {
                if seen.len() >= MAX_FOREBEARS {
                    break;
                }
                let Ok(pid) = Pid::try_from(ancestor) else {
                    continue;
                };
                if pid <= 1 || !seen.insert(ancestor) {
                    continue;
                }
                let Some(r) = live.runner(pid).filter(|r| started_as(r.start, start)) else {
                    continue;
                };
                if r.uid == sending.uid && asked(pid) && !heirs.contains(&pid) {
                    heirs.push(pid);
                }
                if let Some((exact, forkers)) = live.forkers(pid) {
                    if exact == start {
                        queue.extend(forkers);
                    }
                }
            }
        }
        if !same_image && known_image {
            // The image that sent runs no more in that process (gone, or
            // exec'd into another): every process of the same user and image
            // started since (a holder that forks away keeps its image; an older
            // one cannot descend from it).
            let index = by_image.get_or_insert_with(|| {
                let pids = match constrained {
                    Some(pids) => Some(pids.to_vec()),
                    None => live.pids(),
                }?;
                let wanted: HashSet<u64> = read
                    .sendings
                    .iter()
                    .map(|s| s.exe_inode)
                    .filter(|&inode| inode != 0)
                    .collect();
                let mut index = ImageIndex::new();
                for pid in pids {
                    if live.out_of_time() {
                        return None;
                    }
                    if !live.image(pid).is_some_and(|exe| wanted.contains(&exe.1)) {
                        continue;
                    }
                    if let Some(r) = live.runner(pid) {
                        index
                            .entry((r.uid, r.exe.1))
                            .or_default()
                            .push((r.start, pid));
                    }
                }
                Some(index)
            });
            let Some(index) = index else {
                cut = cut || live.out_of_time();
                unattributed.push(sending);
                continue;
            };
            let of_image = index
                .get(&(sending.uid, exe.1))
                .map_or(&[][..], Vec::as_slice);
            let later = |&&(start, _): &&(u64, Pid)| start + tick > sending.leader_start;
            for &(_, pid) in of_image.iter().filter(later) {
                if !heirs.contains(&pid) {
                    heirs.push(pid);
                }
            }
        }
        if heirs.len() > MAX_HEIRS {
            crowded.push(sending);
        }
        if heirs.is_empty() && constrained.is_none() {
            unattributed.push(sending);
        }
        let rows: Vec<SocketInfo> = heirs
            .iter()
            .take(MAX_HEIRS)
            .filter(|&&pid| given.insert((pid, sending.socket)))
            .filter_map(|&pid| row(sending, pid))
            .collect();
        let of_user = rows_by_user.entry(sending.uid).or_insert(0);
        if *of_user + rows.len() > MAX_ROWS_PER_USER {
            *over_by_user.entry(sending.uid).or_insert(0) += 1;
            continue;
        }
        *of_user += rows.len();
        if given_rows + rows.len() > MAX_GIVEN_ROWS {
            scan.incomplete.push(format!(
                "sockets sent on by processes the scan did not find were given {MAX_GIVEN_ROWS} \
                 rows, the most one scan gives; the rest were not looked at"
            ));
            break;
        }
        given_rows += rows.len();
        scan.sockets.extend(rows);
    }
    for (uid, over) in &over_by_user {
        scan.incomplete.push(format!(
            "{over} sockets of uid {uid} sent on by processes the scan did not find were not \
             given rows: {MAX_ROWS_PER_USER} at most per user"
        ));
    }
    if !crowded.is_empty() {
        scan.incomplete.push(format!(
            "{} sent on by processes the scan did not find, and over {MAX_HEIRS} processes \
             of their users run their executables: only {MAX_HEIRS} are given each socket",
            named_sendings(&crowded, read.now)
        ));
    }
    if cut || matches!(by_image, Some(None)) {
        let not_looked_at = match not_looked_at {
            0 => String::new(),
            n => format!(" ({n} sends not looked at)"),
        };
        scan.incomplete.push(format!(
            "the processes running the executables of senders the scan did not find could \
             not be {}{not_looked_at}{}",
            if cut { "searched in time" } else { "listed" },
            if unattributed.is_empty() {
                String::new()
            } else {
                format!(": {}", named_sendings(&unattributed, read.now))
            }
        ));
        return None;
    }
    if unattributed.is_empty() {
        return None;
    }
    Some(format!(
        "{} sent on by processes that are gone, and no process of their users started \
         since runs their executables",
        named_sendings(&unattributed, read.now)
    ))
}

/// The first [`MAX_NAMED`] sends described, then how many more.
fn named_sendings(sendings: &[&Sending], now: u64) -> String {
    let named: Vec<String> = sendings
        .iter()
        .take(MAX_NAMED)
        .map(|s| describe_sending(s, now))
        .collect();
    match sendings.len().saturating_sub(MAX_NAMED) {
        0 => named.join(", "),
        n => format!("{} and {n} more", named.join(", ")),
    }
}

/// `socket 1234 sent on 3 s ago by pid 4242 ("hop", uid 1001, executable 8:3
/// inode 77)`; `made by` when the entry is the socket's maker's.
fn describe_sending(sending: &Sending, now: u64) -> String {
    format!(
        "socket {} sent on {} s ago {} pid {} ({:?}, uid {}, executable {}:{} inode {})",
        sending.socket,
        now.saturating_sub(sending.sent_at) / 1_000_000_000,
        if sending.made { "(made by)" } else { "by" },
        sending.tgid,
        sending.command,
        sending.uid,
        libc::major(sending.exe_dev),
        libc::minor(sending.exe_dev),
        sending.exe_inode
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SocketInfo, FAMILY_INET};
    use std::net::{IpAddr, Ipv4Addr};

    fn entry(inode: u64, uid: u32, protocol: i32, socket_type: SocketType) -> TableEntry {
        TableEntry {
            inode,
            family: FAMILY_INET,
            protocol,
            socket_type,
            local: IpAddr::V4(Ipv4Addr::LOCALHOST),
            local_port: 47212,
            remote: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            remote_port: 0,
            tcp_state: "",
            uid,
        }
    }

    fn udp(inode: u64, uid: u32) -> TableEntry {
        entry(inode, uid, IPPROTO_UDP, SocketType::Dgram)
    }

    fn census(entries: &[TableEntry], protocols: &ProtocolSet) -> Census {
        let mut census = Census::new(7, None);
        for &entry in entries {
            census.add(entry, protocols);
        }
        census
    }

    fn take(protocols: &ProtocolSet) -> Option<Result<Census, String>> {
        super::super::sockets::census(protocols, None)
    }

    fn inodes(unseen: &[TableEntry]) -> Vec<u64> {
        unseen.iter().map(|e| e.inode).collect()
    }

    #[test]
    fn only_a_users_socket_listed_both_times_and_found_by_no_one_is_unseen() {
        let all = ProtocolSet::ALL;
        let before = census(
            &[
                udp(1, 1001),        // unseen
                udp(2, 1001),        // found by the scan
                udp(3, 0),           // root's: the kernel's own are root's
                udp(4, 1001),        // closed during the scan
                udp(5, UNKNOWN_UID), // no table said whose
                udp(0, 1001),        // no inode: no fd can hold it
                entry(6, 1001, IPPROTO_TCP, SocketType::Stream),
            ],
            &all,
        );
        let after = census(
            &[
                udp(1, 1001),
                udp(2, 1001),
                udp(3, 0),
                udp(5, UNKNOWN_UID),
                udp(9, 1001), // made during the scan
                entry(6, 1001, IPPROTO_TCP, SocketType::Stream),
            ],
            &all,
        );
        let seen: HashSet<u64> = [2].into();
        assert_eq!(inodes(&before.unseen_by(&after, &seen)), vec![1]);
        // Found: nothing unseen.
        let seen: HashSet<u64> = [1, 2].into();
        assert!(before.unseen_by(&after, &seen).is_empty());
    }

    #[test]
    fn a_socket_the_query_does_not_report_is_never_unseen() {
        let udp_only = ProtocolSet {
            udp: true,
            ..ProtocolSet::NONE
        };
        let listed = [
            udp(1, 1001),
            entry(2, 1001, IPPROTO_ICMP, SocketType::Dgram),
            entry(3, 1001, IPPROTO_ICMP, SocketType::Raw),
        ];
        let before = census(&listed, &udp_only);
        let after = census(&listed, &udp_only);
        assert_eq!(inodes(&before.unseen_by(&after, &HashSet::new())), vec![1]);
        let raw = ProtocolSet {
            raw: true,
            ..ProtocolSet::NONE
        };
        let before = census(&listed, &raw);
        let after = census(&listed, &raw);
        assert_eq!(inodes(&before.unseen_by(&after, &HashSet::new())), vec![3]);
        // wants_kind agrees with wants on every listed kind.
        for set in [udp_only, raw, ProtocolSet::ALL] {
            for e in &listed {
                let info: SocketInfo = e.to_socket_info(1, 3, "7");
                assert_eq!(set.wants(&info), set.wants_kind(e.socket_type, e.protocol));
            }
        }
    }

    #[test]
    fn an_inode_listed_again_for_another_socket_is_not_the_one_that_was_open() {
        let before = census(&[udp(1, 1001)], &ProtocolSet::ALL);
        let mut other = udp(1, 1001);
        other.local_port = 53;
        let after = census(&[other], &ProtocolSet::ALL);
        assert!(before.unseen_by(&after, &HashSet::new()).is_empty());
        let mut other_user = udp(1, 1002);
        other_user.local_port = 47212;
        let after = census(&[other_user], &ProtocolSet::ALL);
        assert!(before.unseen_by(&after, &HashSet::new()).is_empty());
        // Another namespace's listing says nothing of this one's sockets.
        let mut elsewhere = census(&[udp(1, 1001)], &ProtocolSet::ALL);
        elsewhere.namespace = 8;
        assert!(before.unseen_by(&elsewhere, &HashSet::new()).is_empty());
    }

    #[test]
    fn the_second_listing_is_taken_only_when_a_socket_listed_first_was_not_found() {
        let scan_of = |inodes: &[u64]| SocketScan {
            sockets: inodes
                .iter()
                .map(|&i| udp(i, 1001).to_socket_info(1, 3, "7"))
                .collect(),
            ..SocketScan::default()
        };
        let before = || Ok(census(&[udp(1, 1001), udp(2, 1001)], &ProtocolSet::ALL));
        let mut listed_again = false;
        let mut found_all = scan_of(&[1, 2]);
        check(
            before(),
            |_| {
                listed_again = true;
                Err("not wanted".into())
            },
            &mut found_all,
        );
        assert!(!listed_again && found_all.incomplete.is_empty());
        let mut one_missed = scan_of(&[2]);
        let mut asked_for = HashSet::new();
        check(
            before(),
            |missed| {
                asked_for = missed.clone();
                // Listed after: the missed socket and others, of which only
                // the missed one is kept.
                let mut after = Census::new(7, Some(missed));
                for entry in [udp(1, 1001), udp(2, 1001), udp(3, 1001)] {
                    after.add(entry, &ProtocolSet::ALL);
                }
                assert_eq!(
                    inodes(&after.sockets.values().copied().collect::<Vec<_>>()),
                    vec![1]
                );
                Ok(after)
            },
            &mut one_missed,
        );
        assert_eq!(
            asked_for,
            [1].into(),
            "only the socket not found is asked for"
        );
        assert_eq!(
            one_missed.incomplete.len(),
            1,
            "{:?}",
            one_missed.incomplete
        );
        assert!(one_missed.incomplete[0].contains("(socket 1) of uid 1001"));
        // Closed during the scan: listed once only, nothing said.
        let mut closed = scan_of(&[2]);
        check(
            before(),
            |_| Ok(census(&[], &ProtocolSet::ALL)),
            &mut closed,
        );
        assert!(closed.incomplete.is_empty());
        // A listing that failed says so: a miss could not be told apart.
        for (first, second) in [(true, false), (false, true)] {
            let mut failed = scan_of(&[2]);
            let first: Result<Census, String> = if first {
                Err("sock_diag: EPERM".into())
            } else {
                before()
            };
            check(
                first,
                |_| {
                    if second {
                        Err("sock_diag: EPERM".into())
                    } else {
                        before()
                    }
                },
                &mut failed,
            );
            assert!(
                failed
                    .incomplete
                    .iter()
                    .any(|n| n.contains("could not be listed (sock_diag: EPERM)")),
                "{:?}",
                failed.incomplete
            );
        }
    }

    #[test]
    fn the_note_names_each_socket_and_its_user_up_to_a_bound() {
        assert_eq!(note(&[]), None);
        let one = note(&[udp(41, 1001)]).unwrap_or_default();
        assert!(
            one.starts_with("UDP socket 127.0.0.1:47212 (socket 41) of uid 1001 open through"),
            "{one}"
        );
        let many: Vec<TableEntry> = (0..20).map(|i| udp(100 + i, 1001)).collect();
        let text = note(&many).unwrap_or_default();
        assert_eq!(text.matches("of uid 1001").count(), MAX_NAMED, "{text}");
        assert!(text.contains(" and 12 more open through"), "{text}");
        let raw = describe(&entry(5, 7, IPPROTO_ICMP, SocketType::Raw));
        assert_eq!(
            raw,
            "raw socket (IP protocol 1) 127.0.0.1:47212 (socket 5) of uid 7"
        );
    }

    /// A real UDP socket made under another fsuid (sk_uid is the maker's) is
    /// listed with that uid, both times, and is unseen until the scan found it;
    /// root's own twin is never listed.
    #[test]
    fn a_real_socket_of_another_uid_is_listed_by_its_owner() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        const NOBODY: u32 = 65534;
        // setfsuid is per thread: only this one makes the socket as NOBODY.
        let made = std::thread::spawn(|| {
            // SAFETY: setfsuid changes this thread's fs uid only; put back below.
            unsafe { libc::setfsuid(NOBODY) };
            let socket = std::net::UdpSocket::bind("127.0.0.1:0");
            // SAFETY: as above.
            unsafe { libc::setfsuid(0) };
            socket
        })
        .join();
        let Ok(Ok(theirs)) = made else {
            panic!("no socket made");
        };
        let Ok(ours) = std::net::UdpSocket::bind("127.0.0.1:0") else {
            panic!("no socket made");
        };
        // Each socket by its inode: other users' sockets may share a port.
        let inode = |s: &std::net::UdpSocket| -> u64 {
            use std::os::fd::AsRawFd;
            std::fs::read_link(format!("/proc/self/fd/{}", s.as_raw_fd()))
                .ok()
                .and_then(|link| {
                    let link = link.to_string_lossy().into_owned();
                    link.strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .parse()
                        .ok()
                })
                .unwrap_or(0)
        };
        let listed = |inode: u64| -> Vec<TableEntry> {
            let Some(Ok(census)) = take(&ProtocolSet::ALL) else {
                panic!("the census could not be taken");
            };
            census.sockets.get(&inode).copied().into_iter().collect()
        };
        assert!(
            listed(inode(&ours)).is_empty(),
            "root's sockets are left out"
        );
        let theirs_listed = listed(inode(&theirs));
        assert_eq!(theirs_listed.len(), 1, "{theirs_listed:?}");
        assert_eq!(theirs_listed[0].uid, NOBODY);
        let (Some(Ok(before)), Some(Ok(after))) =
            (take(&ProtocolSet::ALL), take(&ProtocolSet::ALL))
        else {
            panic!("the census could not be taken");
        };
        let theirs_inode = theirs_listed[0].inode;
        assert!(inodes(&before.unseen_by(&after, &HashSet::new())).contains(&theirs_inode));
        let seen: HashSet<u64> = [theirs_inode].into();
        assert!(!inodes(&before.unseen_by(&after, &seen)).contains(&theirs_inode));
        drop(theirs);
        let Some(Ok(closed)) = take(&ProtocolSet::ALL) else {
            panic!("the census could not be taken");
        };
        assert!(!inodes(&before.unseen_by(&closed, &HashSet::new())).contains(&theirs_inode));
    }

    /// A host of processes given by pid.
    #[derive(Default)]
    struct FakeLive {
        runners: HashMap<Pid, Runner>,
        lineage: HashMap<Pid, Lineage>,
        unlistable: bool,
        out_of_time: bool,
        runners_read: usize,
    }

    impl LiveProcesses for FakeLive {
        fn runner(&mut self, pid: Pid) -> Option<Runner> {
            self.runners_read += 1;
            self.runners.get(&pid).copied()
        }
        fn image(&mut self, pid: Pid) -> Option<(u64, u64)> {
            self.runners.get(&pid).map(|r| r.exe)
        }
        fn pids(&mut self) -> Option<Vec<Pid>> {
            let mut pids: Vec<Pid> = self.runners.keys().copied().collect();
            pids.sort_unstable();
            (!self.unlistable).then_some(pids)
        }
        fn out_of_time(&self) -> bool {
            self.out_of_time
        }
        fn tick_ns(&self) -> u64 {
            TICK
        }
        fn forkers(&mut self, pid: Pid) -> Option<Lineage> {
            self.lineage.get(&pid).cloned()
        }
    }

    /// 10 ms ticks; the sender's leader started at 1.003 s, which `/proc`
    /// gives as 1.000 s.
    const TICK: u64 = 10_000_000;
    const SENDER_START: u64 = 1_003_000_000;
    const HOP: (u64, u64) = (2049, 77);
    const SLEEP: (u64, u64) = (2049, 12);

    fn live(runners: &[(Pid, u32, (u64, u64), u64)]) -> FakeLive {
        let mut live = FakeLive::default();
        for &(pid, uid, exe, start) in runners {
            live.runners.insert(pid, Runner { uid, exe, start });
        }
        live
    }

    /// The sender (pid 40, uid 1001, HOP) as `/proc` shows it while it runs.
    const SENDER: (Pid, u32, (u64, u64), u64) = (40, 1001, HOP, 1_000_000_000);

    fn live_with_sender(others: &[(Pid, u32, (u64, u64), u64)]) -> FakeLive {
        let mut all = vec![SENDER];
        all.extend_from_slice(others);
        live(&all)
    }

    fn sending(socket: u64, tgid: u32, uid: u32, exe: (u64, u64)) -> Sending {
        Sending {
            socket,
            tgid,
            leader_start: SENDER_START,
            uid,
            exe_dev: exe.0,
            exe_inode: exe.1,
            family: 2,
            socket_type: libc::SOCK_DGRAM as u16,
            protocol: IPPROTO_UDP as u16,
            local: IpAddr::V4(Ipv4Addr::LOCALHOST),
            local_port: 47212,
            remote: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            remote_port: 0,
            net: 4026531840,
            sent_at: 5_000_000_000,
            command: "hop".into(),
            made: false,
            ancestors: Vec::new(),
        }
    }

    fn held(pid: Pid, socket: u64) -> SocketInfo {
        udp(socket, 1001).to_socket_info(pid, 3, "4026531840")
    }

    fn read_of(sendings: Vec<Sending>) -> Result<LedgerRead, String> {
        Ok(LedgerRead {
            sendings,
            dropped_since: 0,
            now: 9_000_000_000,
        })
    }

    fn row(s: &Sending, pid: Pid) -> Option<SocketInfo> {
        let mut info = udp(s.socket, s.uid).to_socket_info(pid, -1, "4026531840");
        info.tcp_state = SENT_NOT_HELD.into();
        Some(info)
    }

    fn attributed_in(
        constrained: Option<&[Pid]>,
        sendings: Vec<Sending>,
        found: Vec<SocketInfo>,
        live: &mut FakeLive,
    ) -> (SocketScan, Option<String>) {
        let mut scan = SocketScan {
            sockets: found,
            ..SocketScan::default()
        };
        let read = read_of(sendings);
        let log = attribute_senders(read, &ProtocolSet::ALL, constrained, &mut scan, live, row);
        (scan, log)
    }

    fn attributed(
        sendings: Vec<Sending>,
        found: Vec<SocketInfo>,
        live: &mut FakeLive,
    ) -> (SocketScan, Option<String>) {
        attributed_in(None, sendings, found, live)
    }

    fn unheld(scan: &SocketScan) -> Vec<(Pid, u64)> {
        scan.sockets
            .iter()
            .filter(|s| s.fd == -1 && s.tcp_state == SENT_NOT_HELD)
            .map(|s| (s.pid, s.socket))
            .collect()
    }

    #[test]
    fn a_sender_found_holding_its_socket_adds_nothing() {
        let mut live = live(&[SENDER]);
        let (scan, log) = attributed(
            vec![sending(9, 40, 1001, HOP)],
            vec![held(40, 9)],
            &mut live,
        );
        assert_eq!(unheld(&scan), []);
        assert_eq!((scan.incomplete.len(), log), (0, None));
    }

    #[test]
    fn a_socket_a_trusted_process_holds_is_also_the_senders_row() {
        // Red team F3: `sleep` holds the socket; the untrusted sender does not.
        let mut live = live(&[SENDER, (41, 1001, SLEEP, 2_000_000_000)]);
        let (scan, _) = attributed(
            vec![sending(9, 40, 1001, HOP)],
            vec![held(41, 9)],
            &mut live,
        );
        assert_eq!(unheld(&scan), [(40, 9)]);
        assert!(scan.incomplete.is_empty());
    }

    #[test]
    fn a_sender_that_forked_away_is_each_process_of_its_image_started_since() {
        // The sender is gone; its child (the same image and user, started
        // since) runs. Neither another user's process of that image, nor one
        // of the same user's that started before the sender (it cannot descend
        // from it), nor the holder of another image, is given the socket.
        let mut live = live(&[
            (30, 1002, HOP, 2_000_000_000),
            (31, 1001, HOP, 990_000_000),
            (41, 1001, SLEEP, 2_000_000_000),
            (52, 1001, HOP, 1_000_000_000),
            (53, 1001, HOP, 3_000_000_000),
        ]);
        let (scan, log) = attributed(
            vec![sending(9, 40, 1001, HOP)],
            vec![held(41, 9)],
            &mut live,
        );
        assert_eq!(unheld(&scan), [(52, 9), (53, 9)]);
        assert_eq!((scan.incomplete.len(), log), (0, None));
    }

    #[test]
    fn a_pid_taken_again_by_a_process_of_the_same_image_is_an_heir_not_the_sender() {
        // Pid 40 again, the same user and image, started after the sender: a
        // later process (it may descend from it), given the socket as an heir.
        // Started before it (impossible for a reused pid, but say a wrong
        // start): not the sender, not an heir.
        for (start, given) in [(5_000_000_000, vec![(40, 9)]), (900_000_000, vec![])] {
            let mut live = live(&[(40, 1001, HOP, start)]);
            let (scan, _) = attributed(vec![sending(9, 40, 1001, HOP)], vec![], &mut live);
            assert_eq!(unheld(&scan), given, "start {start}");
        }
    }

    #[test]
    fn a_sender_that_exec_d_a_trusted_program_is_not_found_holding_its_socket() {
        // Red team F-A: the sender sends, then execs /usr/bin/sleep keeping the
        // socket (its pid is found holding it, now as sleep); a child of the
        // unsigned image it forked first lives on. Both are given it: the pid
        // (already a row) is not repeated, the child gets a row.
        let mut live = live(&[
            (40, 1001, SLEEP, 1_000_000_000),
            (52, 1001, HOP, 2_000_000_000),
        ]);
        let (scan, _) = attributed(
            vec![sending(9, 40, 1001, HOP)],
            vec![held(40, 9)],
            &mut live,
        );
        assert_eq!(unheld(&scan), [(52, 9)]);
    }

    #[test]
    fn a_sender_that_exec_d_a_fresh_copy_of_itself_keeps_its_row() {
        // Red team F-B: the same pid and start, another image (a fresh copy,
        // another inode): the process is given it whatever it runs now.
        let mut live = live(&[(40, 1001, (2049, 78), 1_000_000_000)]);
        let (scan, log) = attributed(vec![sending(9, 40, 1001, HOP)], vec![], &mut live);
        assert_eq!(unheld(&scan), [(40, 9)]);
        assert_eq!(log, None);
    }

    #[test]
    fn a_sender_forked_per_send_lives_on_in_its_parent_not_in_an_older_decoy() {
        // Red team F-D: evil.py forks a child per beacon, which sends and
        // exits; a trusted pydoc (the same interpreter image, the same user)
        // started before is the lowest pid. The parent, running the image and
        // started as recorded, is given it; the decoy is not.
        let mut live = live(&[(20, 1001, HOP, 100_000_000), (30, 1001, HOP, 500_000_000)]);
        let mut child = sending(9, 40, 1001, HOP);
        child.ancestors = vec![(30, 505_000_000)];
        let (scan, log) = attributed(vec![child.clone()], vec![], &mut live);
        assert_eq!(unheld(&scan), [(30, 9)]);
        assert_eq!(log, None);
        // A parent pid taken since by another process of the image: not it.
        child.ancestors = vec![(30, 700_000_000)];
        let (scan, log) = attributed(vec![child], vec![], &mut live);
        assert_eq!(unheld(&scan), []);
        assert!(log.is_some());
    }

    #[test]
    fn a_sender_is_given_to_its_forkers_of_its_user_whatever_they_run() {
        // Red team round 2: a double fork (the intermediate gone, the
        // grandchild reparented), a CLONE_PARENT child, a child that execs a
        // fresh copy: the implant is a forker on record, running another
        // image or older than the sender. Root's (runuser) is not given it.
        let mut live = live(&[
            (1, 0, SLEEP, 0),
            (25, 1001, (2049, 90), 100_000_000),
            (30, 1002, HOP, 100_000_000),
        ]);
        let mut child = sending(9, 40, 1001, HOP);
        child.ancestors = vec![
            (1, 0),
            (33, 200_000_000),
            (25, 105_000_000),
            (30, 100_000_000),
        ];
        let (scan, log) = attributed(vec![child], vec![], &mut live);
        assert_eq!(unheld(&scan), [(25, 9)]);
        assert_eq!(log, None);
    }

    #[test]
    fn an_heir_on_an_overlay_is_found_by_its_inode_number() {
        // Red team round 2 (F2): the kernel's device of an overlay file (0:41)
        // is not the one statx gives (a layer's, 0:43); the numbers agree.
        let mut live = live(&[(52, 1001, (43, HOP.1), 2_000_000_000)]);
        let (scan, _) = attributed(vec![sending(9, 40, 1001, (41, HOP.1))], vec![], &mut live);
        assert_eq!(unheld(&scan), [(52, 9)]);
    }

    #[test]
    fn the_lineage_is_walked_up_through_live_forkers_to_the_implant() {
        // Red team round 4: implant 25 -> timeout 60 -> timeout 61 -> timeout
        // 62 -> xargs 63 -> the sender (gone). The sender's four slots hold
        // xargs and the timeouts; the implant is in the last timeout's lineage.
        // Each live forebear of the user is given it (six at most here).
        let mut live = live(&[
            (25, 1001, HOP, 100_000_000),
            (60, 1001, SLEEP, 200_000_000),
            (61, 1001, SLEEP, 210_000_000),
            (62, 1001, SLEEP, 220_000_000),
            (63, 1001, (2049, 91), 230_000_000),
        ]);
        live.lineage.insert(
            62,
            (
                220_000_001,
                vec![(61, 210_000_001), (60, 200_000_001), (25, 100_000_001)],
            ),
        );
        live.lineage.insert(25, (100_000_001, vec![(1, 0)]));
        let mut child = sending(9, 70, 1001, HOP);
        child.ancestors = vec![
            (63, 230_000_001),
            (62, 220_000_001),
            (61, 210_000_001),
            (60, 200_000_001),
        ];
        let (scan, log) = attributed(vec![child.clone()], vec![], &mut live);
        assert_eq!(unheld(&scan), [(63, 9), (62, 9), (61, 9), (60, 9), (25, 9)]);
        assert_eq!(log, None);
        // A lineage entry of another process under that pid leads nowhere.
        live.lineage.insert(62, (999, vec![(25, 100_000_001)]));
        let (scan, _) = attributed(vec![child], vec![], &mut live);
        assert_eq!(unheld(&scan), [(63, 9), (62, 9), (61, 9), (60, 9)]);
    }

    #[test]
    fn each_sender_of_one_socket_is_given_it_once() {
        // The untrusted sender and a trusted co-sender (sleep's image), which
        // holds it: the untrusted one's row stays. Two gone senders with one
        // heir give it one row.
        let mut live = live_with_sender(&[(41, 1001, SLEEP, 500_000_000)]);
        let sendings = vec![sending(9, 40, 1001, HOP), sending(9, 41, 1001, SLEEP)];
        let (scan, _) = attributed(sendings, vec![held(41, 9)], &mut live);
        assert_eq!(unheld(&scan), [(40, 9)]);
        let mut heir = self::live(&[(52, 1001, HOP, 2_000_000_000)]);
        let sendings = vec![sending(9, 40, 1001, HOP), sending(9, 44, 1001, HOP)];
        let (scan, _) = attributed(sendings, vec![], &mut heir);
        assert_eq!(unheld(&scan), [(52, 9)]);
    }

    #[test]
    fn a_holder_of_the_senders_image_does_not_excuse_the_sender() {
        // Red team: a trusted interpreter process of the same user holding the
        // socket must not hide the script that sent on it.
        let mut live = live(&[SENDER, (41, 1001, HOP, 500_000_000)]);
        let (scan, _) = attributed(
            vec![sending(9, 40, 1001, HOP)],
            vec![held(41, 9)],
            &mut live,
        );
        assert_eq!(unheld(&scan), [(40, 9)]);
    }

    #[test]
    fn over_the_bound_of_heirs_the_result_is_incomplete() {
        let runners: Vec<(Pid, u32, (u64, u64), u64)> = (100..120)
            .map(|pid| (pid, 1001, HOP, 2_000_000_000))
            .collect();
        let mut live = live(&runners);
        let (scan, _) = attributed(vec![sending(9, 40, 1001, HOP)], vec![], &mut live);
        assert_eq!(unheld(&scan).len(), MAX_HEIRS);
        assert!(
            scan.incomplete.len() == 1
                && scan.incomplete[0].contains("over 8 processes of their users"),
            "{:?}",
            scan.incomplete
        );
    }

    #[test]
    fn the_rows_one_users_sends_are_given_are_bounded() {
        let heirs: Vec<(Pid, u32, (u64, u64), u64)> = (100..108)
            .map(|pid| (pid, 1001, HOP, 2_000_000_000))
            .collect();
        let mut live = live(&heirs);
        let sendings = (0..200).map(|i| sending(1000 + i, 40, 1001, HOP)).collect();
        let (scan, _) = attributed(sendings, vec![], &mut live);
        assert_eq!(unheld(&scan).len(), MAX_ROWS_PER_USER);
        assert!(
            scan.incomplete
                .iter()
                .any(|n| n.starts_with("72 sockets of uid 1001")
                    && n.contains("1024 at most per user")),
            "{:?}",
            scan.incomplete
        );
    }

    #[test]
    fn the_rows_one_scan_gives_are_bounded() {
        // Gone senders of 2,100 sockets of 21 users, each user's image with 8
        // heirs: 16,800 rows asked, 800 of each user's.
        let heirs: Vec<(Pid, u32, (u64, u64), u64)> = (0..21u32)
            .flat_map(|user| {
                (0..8u32)
                    .map(move |i| ((100 + user * 8 + i) as Pid, 2000 + user, HOP, 2_000_000_000))
            })
            .collect();
        let mut live = live(&heirs);
        let sendings = (0..2100u64)
            .map(|i| sending(1000 + i, 40, 2000 + (i % 21) as u32, HOP))
            .collect();
        let (scan, _) = attributed(sendings, vec![], &mut live);
        assert_eq!(unheld(&scan).len(), MAX_GIVEN_ROWS);
        assert!(
            scan.incomplete
                .iter()
                .any(|n| n.contains("the most one scan gives")),
            "{:?}",
            scan.incomplete
        );
    }

    #[test]
    fn a_scan_of_given_pids_gives_sockets_to_those_only_and_logs_nothing_else() {
        let mut live = live(&[
            (52, 1001, HOP, 2_000_000_000),
            (53, 1001, HOP, 3_000_000_000),
        ]);
        let sendings = vec![sending(9, 40, 1001, HOP), sending(10, 60, 1001, SLEEP)];
        let (scan, log) = attributed_in(Some(&[53]), sendings, vec![], &mut live);
        assert_eq!(unheld(&scan), [(53, 9)]);
        assert_eq!((scan.incomplete.len(), log), (0, None));
        // The sender runs: a scan of another pid of its image gives it nothing.
        let mut live = live_with_sender(&[(53, 1001, HOP, 3_000_000_000)]);
        let sendings = vec![sending(9, 40, 1001, HOP)];
        let (scan, log) = attributed_in(Some(&[53]), sendings, vec![], &mut live);
        assert_eq!(unheld(&scan), []);
        assert_eq!((scan.incomplete.len(), log), (0, None));
        // A scan of a forker of the sender (another image) gives it to it.
        let mut forker = self::live(&[(25, 1001, SLEEP, 100_000_000)]);
        let mut child = sending(9, 40, 1001, HOP);
        child.ancestors = vec![(25, 105_000_000)];
        let (scan, _) = attributed_in(Some(&[25]), vec![child], vec![], &mut forker);
        assert_eq!(unheld(&scan), [(25, 9)]);
        let sendings = vec![sending(9, 40, 1001, HOP)];
        let (scan, _) = attributed_in(Some(&[40]), sendings, vec![], &mut live);
        assert_eq!(unheld(&scan), [(40, 9)]);
    }

    /// The watch scans its pids every second: with no user's send of a kind
    /// asked for, no process is read; the first such send reads each asked
    /// pid once.
    #[test]
    fn a_scan_of_given_pids_reads_them_only_for_a_users_send() {
        let mut live = live(&[
            (52, 1001, HOP, 2_000_000_000),
            (53, 1001, HOP, 3_000_000_000),
        ]);
        let roots = sending(9, 40, 0, HOP);
        let mut stream = sending(10, 40, 1001, HOP);
        stream.socket_type = libc::SOCK_STREAM as u16;
        let (scan, _) = attributed_in(Some(&[52, 53]), vec![roots, stream], vec![], &mut live);
        assert_eq!(unheld(&scan), []);
        assert_eq!(live.runners_read, 0);
        let users = vec![sending(11, 40, 1001, HOP), sending(12, 41, 1001, HOP)];
        let (scan, _) = attributed_in(Some(&[52, 53]), users, vec![], &mut live);
        assert_eq!(unheld(&scan), [(52, 11), (53, 11), (52, 12), (53, 12)]);
        assert!(live.runners_read >= 2, "{}", live.runners_read);
    }

    #[test]
    fn a_sender_gone_with_nothing_running_its_executable_is_logged() {
        let mut live = live(&[(41, 1001, SLEEP, 2_000_000_000)]);
        let (scan, log) = attributed(vec![sending(9, 40, 1001, HOP)], vec![], &mut live);
        assert_eq!(unheld(&scan), []);
        assert!(scan.incomplete.is_empty());
        let log = log.expect("a log note");
        assert!(
            log.contains("socket 9 sent on 4 s ago by pid 40 (\"hop\", uid 1001"),
            "{log}"
        );
    }

    #[test]
    fn a_search_cut_short_or_unlisted_makes_the_result_incomplete() {
        for (unlistable, out_of_time, says) in [
            (true, false, "could not be listed: socket 9 sent on"),
            (
                false,
                true,
                "could not be searched in time (1 sends not looked at)",
            ),
        ] {
            let mut live = live(&[(52, 1001, HOP, 2_000_000_000)]);
            live.unlistable = unlistable;
            live.out_of_time = out_of_time;
            let (scan, log) = attributed(vec![sending(9, 40, 1001, HOP)], vec![], &mut live);
            assert_eq!(unheld(&scan), []);
            assert_eq!(log, None);
            assert!(
                scan.incomplete.len() == 1 && scan.incomplete[0].contains(says),
                "{:?}",
                scan.incomplete
            );
        }
    }

    #[test]
    fn lost_sends_or_an_unread_ledger_make_the_result_incomplete() {
        let mut live = FakeLive::default();
        let mut scan = SocketScan::default();
        let lost = Ok(LedgerRead {
            sendings: Vec::new(),
            dropped_since: 12,
            now: 0,
        });
        attribute_senders(lost, &ProtocolSet::ALL, None, &mut scan, &mut live, row);
        assert!(scan.incomplete[0]
            .starts_with("12 sends on users' sockets (or forks) were not recorded"));
        let mut scan = SocketScan::default();
        let unread = Err("EPERM".into());
        attribute_senders(unread, &ProtocolSet::ALL, None, &mut scan, &mut live, row);
        assert!(scan.incomplete[0].contains("could not be read (EPERM)"));
    }

    #[test]
    fn a_send_of_a_kind_the_query_does_not_report_or_with_no_executable_is_not_given() {
        let mut live = live(&[(40, 1001, (0, 0), 1_000_000_000)]);
        let only_icmp = ProtocolSet {
            icmp: true,
            ..ProtocolSet::NONE
        };
        let mut scan = SocketScan::default();
        let sendings = read_of(vec![sending(9, 40, 1001, HOP)]);
        attribute_senders(sendings, &only_icmp, None, &mut scan, &mut live, row);
        assert!(scan.sockets.is_empty() && scan.incomplete.is_empty());
        // An executable the program could not read matches nothing, not
        // everything: the sender itself (its pid, user and start) is given it,
        // and once it is gone, no one.
        let (scan, _) = attributed(vec![sending(9, 40, 1001, (0, 0))], vec![], &mut live);
        assert_eq!(unheld(&scan), [(40, 9)]);
        let mut gone = self::live(&[(52, 1001, (0, 0), 2_000_000_000)]);
        let (scan, log) = attributed(vec![sending(9, 40, 1001, (0, 0))], vec![], &mut gone);
        assert_eq!(unheld(&scan), []);
        assert!(log.is_some());
    }
}
