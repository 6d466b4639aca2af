"""Helper for tests that signal a training process: wait until it (with its children, such
as the ranks under a nested mpirun) has used some CPU time, so that the signal lands while
it trains, however loaded the machine is, rather than after a fixed sleep."""
import os
import time


def _stat(pid):
    """(parent pid, CPU seconds) of a process from /proc/<pid>/stat (Linux), or None."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root):
    """CPU seconds used by process `root` and all its descendants now alive."""
    stats = {int(p): _stat(p) for p in os.listdir("/proc") if p.isdigit()}
    stats = {p: s for p, s in stats.items() if s is not None}
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
        todo += [p for p, (parent, _) in stats.items() if parent == pid]
    return total


def wait_for_cpu(root, seconds, limit=60):
    """Wait until the process tree of `root` has used `seconds` more CPU time (or `limit`)."""
    start, t0 = tree_cpu_seconds(root), time.time()
    while tree_cpu_seconds(root) - start < seconds and time.time() - t0 < limit:
        time.sleep(0.1)
