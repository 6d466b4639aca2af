"""Files that appear whole or not at all, and lock files that say who owns a directory.

A file is written to a temporary name beside the target, fsynced, then renamed over the
target (rename is atomic on POSIX file systems, parallel ones included); on a failure the
temporary file is removed and the target left as it was.  `write_bytes` writes bytes made in
memory with plain system calls, checking the free space first, so that every failure of a
full, read-only or broken disk is an OSError (never a library's half-written state).

`LockFile` is an exclusive lock file holding its owner's identity (host, pid, process start,
Slurm or PBS job): created atomically, kept fresh by a heartbeat, and taken over only when
its owner is provably gone (docs/model_format.md, "Checkpoints").
"""
import contextlib
import errno
import json
import os
import socket
import sys
import threading
import time

from h2odl_mpi.sizes import size_text

# free space kept beyond a file's size when checking before a write (metadata, rounding)
SPACE_MARGIN = 64 << 10


@contextlib.contextmanager
def replacing(path, mode=None):
    """Yield a temporary path beside `path` to write; on success it replaces `path` (with
    the permission bits `mode`, if given), on an exception it is removed."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
        discard_stale_temporaries(path)
    finally:
        discard(tmp)


def discard_stale_temporaries(path):
    """Remove `path`'s temporary files (<path>.tmp<pid>) whose writer is no longer running on
    this host: what a process killed while writing (SIGKILL, a node's end) left behind,
    once the file it was writing has been written whole by another."""
    import glob
    prefix = f"{path}.tmp"
    for other in glob.glob(glob.escape(prefix) + "*"):
        pid = other[len(prefix):]
        if pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            discard(other)


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # (EPERM: another user's process)
        return True
    return True


def discard(path):
    """Remove `path` if it is there; a failure to remove it is not an error."""
    try:
        os.unlink(path)
    except OSError:
        pass


def ensure_space(directory, nbytes):
    """OSError(ENOSPC) naming both sizes when `directory`'s file system has no room for
    `nbytes` more (plus a margin); file systems that cannot tell are trusted."""
    try:
        st = os.statvfs(directory)
    except (OSError, AttributeError):
        return
    free = st.f_bavail * st.f_frsize
    if st.f_blocks and free < nbytes + SPACE_MARGIN:
        raise OSError(errno.ENOSPC, f"No space left on device (the file needs {size_text(nbytes)}, "
                                    f"{size_text(free)} free)")


def write_bytes(path, data, mode=None):
    """Write the bytes-like `data` to `path` atomically and durably (temp file, fsync,
    rename, fsync of the directory).  Any failure is an OSError and leaves `path` as it was
    and no temporary file."""
    view = memoryview(data).cast("B")
    ensure_space(os.path.dirname(os.path.abspath(path)), view.nbytes)
    with replacing(path, mode) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            done = 0
            while done < view.nbytes:
                done += os.write(fd, view[done:done + (1 << 26)])
            os.fsync(fd)
        finally:
            os.close(fd)
    fsync_dir(path)


def fsync_dir(path):
    """Make a rename in `path`'s directory durable (POSIX: fsync the directory)."""
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- lock files
class LockHeld(Exception):
    """The lock file belongs to a live owner; `owner` is its identity (a dict)."""

    def __init__(self, path, owner):
        super().__init__(f"{path} is held by {describe_owner(owner)}")
        self.path, self.owner = path, owner


def _process_start(pid):
    """The start time of process `pid` in clock ticks since boot (Linux), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def identity():
    """This process as a lock owner: host, pid, its start time, the batch job if any."""
    me = {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": _process_start(os.getpid()),
          "since": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)[:300]}
    for key, var in (("slurm_job_id", "SLURM_JOB_ID"), ("slurm_restart_count", "SLURM_RESTART_COUNT"),
                     ("pbs_job_id", "PBS_JOBID")):
        if os.environ.get(var):
            me[key] = os.environ[var]
    return me


def describe_owner(owner):
    """An owner identity in words: 'pid 12 on host n1 (Slurm job 5), since ...'."""
    if not isinstance(owner, dict):
        return "an unknown owner (the lock file cannot be read)"
    job = [f"{name} job {owner[key]}" for name, key in (("Slurm", "slurm_job_id"), ("PBS", "pbs_job_id"))
           if owner.get(key)]
    text = f"pid {owner.get('pid')} on host {owner.get('host')}"
    text += f" ({', '.join(job)})" if job else ""
    return text + (f", since {owner['since']}" if owner.get("since") else "")


def _alive(owner):
    """False when the owner (on this host) is gone: its pid is dead or now another process."""
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    start = _process_start(pid)
    return owner.get("pid_start") is None or start is None or start == owner.get("pid_start")


def stale_reason(owner, age, stale_after, me=None):
    """Why a lock with identity `owner`, last refreshed `age` s ago, is stale, or None
    while its owner may still be running."""
    me = me or identity()
    if not isinstance(owner, dict):
        return "an unreadable lock file" if age > 60 else None
    if owner.get("host") == me["host"]:
        return None if _alive(owner) else f"pid {owner.get('pid')} is no longer running on {me['host']}"
    if owner.get("slurm_job_id") and owner.get("slurm_job_id") == me.get("slurm_job_id"):
        if int(owner.get("slurm_restart_count") or 0) < int(me.get("slurm_restart_count") or 0):
            return f"Slurm job {me['slurm_job_id']} was requeued since"
    if age > stale_after:
        return f"not refreshed for {age:.0f} s"
    return None


class LockFile:
    """An exclusive lock file at `path` holding this process's identity (JSON).

    acquire() creates it atomically (a link of a complete temporary file), takes over a
    stale one (its owner gone: a dead pid on this host, an earlier run of the same Slurm
    job, or no heartbeat for `stale_after` s) and raises LockHeld for a live owner.  While
    held, a daemon thread refreshes its modification time every `beat` s."""

    def __init__(self, path, stale_after=600.0, beat=60.0):
        self.path, self.stale_after, self.beat = path, stale_after, beat
        self.me, self.taken_over = None, None
        self._stop = None

    def acquire(self):
        """Own the lock, or raise LockHeld (a live owner) or OSError (cannot write)."""
        self.me = identity()
        text = json.dumps(self.me, sort_keys=True)
        for _ in range(5):
            if self._create(text):
                self._start_heartbeat()
                return self
            seen, owner, age = self._read()
            if seen is None:
                continue  # gone meanwhile: try again
            why = stale_reason(owner, age, self.stale_after, self.me)
            if why is None:
                raise LockHeld(self.path, owner)
            self._take_over(seen)
            self.taken_over = f"{describe_owner(owner)}: {why}"
        raise LockHeld(self.path, self._read()[1])

    def _create(self, text):
        """Create the lock file whole; False if it exists."""
        tmp = f"{self.path}.new{os.getpid()}"
        try:
            write_bytes(tmp, text.encode())
            try:
                os.link(tmp, self.path)
                return True
            except FileExistsError:
                return False
            except OSError as e:  # a file system without hard links: exclusive create instead
                if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                    raise
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w") as f:
                f.write(text)
            return True
        finally:
            discard(tmp)

    def _read(self):
        """(raw text, identity dict or None, age in seconds); text None when absent."""
        try:
            with open(self.path, "rb") as f:
                raw = f.read(1 << 16)
            age = time.time() - os.stat(self.path).st_mtime
        except FileNotFoundError:
            return None, None, 0.0
        try:
            owner = json.loads(raw)
        except ValueError:
            owner = None
        return raw, owner, age

    def _take_over(self, seen):
        """Remove the stale lock whose content was `seen`, unless it changed meanwhile."""
        grave = f"{self.path}.stale{os.getpid()}"
        try:
            os.rename(self.path, grave)
        except FileNotFoundError:
            return
        with open(grave, "rb") as f:
            now = f.read(1 << 16)
        if now != seen:  # another run took it over first: give its lock back
            with contextlib.suppress(FileExistsError):
                os.link(grave, self.path)
        discard(grave)

    def _start_heartbeat(self):
        """Refresh the lock's modification time every `beat` s until release()."""
        self._stop = threading.Event()

        def beat(stop=self._stop):
            while not stop.wait(self.beat):
                with contextlib.suppress(OSError):
                    os.utime(self.path)
        threading.Thread(target=beat, name="h2odl_mpi-lock-heartbeat", daemon=True).start()

    def release(self):
        """Remove the lock file if it is still this process's; stop the heartbeat."""
        if self._stop is not None:
            self._stop.set()
            self._stop = None
        if self.me is None:
            return
        _raw, owner, _age = self._read()
        if isinstance(owner, dict) and owner.get("pid") == self.me["pid"] and owner.get("host") == self.me["host"]:
            discard(self.path)
        self.me = None


def same_file(a, b):
    """Whether paths `a` and `b` name the same file: os.path.samefile where both exist
    (hard links and symbolic links included), else their real paths compared."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return os.path.realpath(a) == os.path.realpath(b)
