"""Loaded at start-up by every Python process of the sanitizer run (tests/sanitize/run.py
puts this directory on PYTHONPATH; nothing else does), the tests' own subprocesses
included: points UBSan's reports at files, as ASAN_OPTIONS=log_path does ASan's.

With gcc, UBSan's runtime (libubsan) is a library of its own beside libasan; when ASan is
present it does not apply UBSAN_OPTIONS=log_path, because its call of
__sanitizer_set_report_path binds to libasan's copy.  So that call is made here on
libubsan's own (dlsym on its handle), and a report in a subprocess whose stderr a test
captures still reaches run.py.
"""
import os

_lib, _path = os.environ.get("H2ODL_SANITIZE_UBSAN_LIB"), os.environ.get("H2ODL_SANITIZE_UBSAN_LOG")
if _lib and _path:
    import ctypes

    ctypes.CDLL(_lib).__sanitizer_set_report_path(_path.encode())
del _lib, _path
