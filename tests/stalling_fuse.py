"""A one-file FUSE file system whose file answers stat and open normally but whose
read() never returns for anyone but one uid: the user's own interpreter can read
its script, the scanner (uid 0) blocks forever, as on a hung FUSE or NFS mount.

Usage: stalling_fuse.py MOUNTPOINT READER_UID SCRIPT_FILE [trickle]
With `trickle`, other readers are not blocked but served slowly and steadily
(4 KiB per 100 ms), like a big file read on a loaded host.
Prints `ready` once mounted (the test waits for it). Runs in the foreground.
"""
import errno
import os
import stat
import sys
import threading
import time

from fusepy import FUSE, FuseOSError, Operations, fuse_get_context

mountpoint, reader_uid, script_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
TRICKLE = sys.argv[4:] == ["trickle"]
TRICKLE_BYTES, TRICKLE_PAUSE = 4096, 0.1
with open(script_file, "rb") as f:
    CONTENT = f.read()
NAME = "/job.sh"
STARTED = time.time()


class Stalling(Operations):
    def getattr(self, path, fh=None):
        if path == "/":
            return dict(st_mode=stat.S_IFDIR | 0o755, st_nlink=2, st_uid=0, st_gid=0,
                        st_mtime=STARTED, st_ctime=STARTED, st_atime=STARTED)
        if path == NAME:
            return dict(st_mode=stat.S_IFREG | 0o755, st_nlink=1, st_size=len(CONTENT),
                        st_uid=reader_uid, st_gid=0, st_blocks=1,
                        st_mtime=STARTED, st_ctime=STARTED, st_atime=STARTED)
        raise FuseOSError(errno.ENOENT)

    def readdir(self, path, fh):
        return [".", "..", NAME[1:]]

    def open(self, path, flags):
        if path != NAME:
            raise FuseOSError(errno.ENOENT)
        return 0

    def read(self, path, size, offset, fh):
        uid, _gid, pid = fuse_get_context()
        if uid != reader_uid and TRICKLE:
            time.sleep(TRICKLE_PAUSE)
            return CONTENT[offset:offset + min(size, TRICKLE_BYTES)]
        if uid != reader_uid:
            sys.stderr.write("stalling read from uid %d pid %d\n" % (uid, pid))
            sys.stderr.flush()
            threading.Event().wait()  # forever
        return CONTENT[offset:offset + size]


def announce():
    while not os.path.ismount(mountpoint):
        time.sleep(0.05)
    print("ready", flush=True)


threading.Thread(target=announce, daemon=True).start()
# direct_io: every read reaches this server (no page cache a scanner could hit).
FUSE(Stalling(), mountpoint, foreground=True, allow_other=True, direct_io=True,
     nothreads=False)
