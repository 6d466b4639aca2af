"""Sizes: the memory this process may still take, and byte counts as short text for
messages."""
import os


def memory_available():
    """Bytes of memory this process may still take: /proc/meminfo's MemAvailable (else the
    physical memory), within the cgroup's memory.max when one is set; None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            avail = next(int(l.split()[1]) * 1024 for l in f if l.startswith("MemAvailable:"))
    except (OSError, ValueError, IndexError, StopIteration):
        try:
            avail = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    try:
        with open("/sys/fs/cgroup/memory.max") as f, open("/sys/fs/cgroup/memory.current") as g:
            limit, used = f.read().strip(), int(g.read().strip())
        avail = min(avail, max(0, int(limit) - used)) if limit.isdigit() else avail
    except (OSError, ValueError):
        pass
    return avail


def size_text(nbytes):
    """Bytes as a short text: 512 bytes, 12.0 TB."""
    n, units, k = float(nbytes), ("bytes", "kB", "MB", "GB", "TB", "PB"), 0
    while n >= 1000 and k < len(units) - 1:
        n, k = n / 1000, k + 1
    return f"{n:.0f} bytes" if k == 0 else f"{n:.1f} {units[k]}"
