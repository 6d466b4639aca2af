"""pytest plugin of the sanitizer run (tests/sanitize/run.py loads it in every pytest, the
tests' own included): refuses to run unless h2odl_mpi._kernel is the sanitized build and
libasan and libubsan are loaded, with UBSan's reports going to run.py's log files; names
the extension in the header."""
import ctypes
import os

import pytest


def _state():
    import h2odl_mpi._kernel as k
    maps = open("/proc/self/maps").read()
    ubsan_log = None
    if os.environ.get("H2ODL_SANITIZE_UBSAN_LIB"):
        get = ctypes.CDLL(os.environ["H2ODL_SANITIZE_UBSAN_LIB"]).__sanitizer_get_report_path
        get.restype = ctypes.c_char_p
        ubsan_log = (get() or b"").decode()
    return k.__file__, "libasan" in maps, "libubsan" in maps, ubsan_log


def pytest_configure(config):
    path, asan, ubsan, ubsan_log = _state()
    want = os.environ.get("H2ODL_SANITIZED_KERNEL", "")
    want_log = os.environ.get("H2ODL_SANITIZE_UBSAN_LOG", "")
    if not (want and os.path.realpath(path) == os.path.realpath(want) and asan and ubsan
            and want_log and (ubsan_log or "").startswith(want_log)):
        raise pytest.UsageError(f"sanitizer run: h2odl_mpi._kernel is {path} (want {want}), libasan "
                                f"loaded: {asan}, libubsan loaded: {ubsan}, UBSan reports to {ubsan_log!r} "
                                f"(want {want_log!r})")


def pytest_report_header(config):
    path, asan, ubsan, ubsan_log = _state()
    return f"h2odl_mpi._kernel: {path} (libasan, libubsan loaded: {asan}, {ubsan}; UBSan log {ubsan_log})"
