"""Helper for tests that run the kernel's instruction-set variants (H2ODL_ISA)."""
import os
import subprocess
import sys


def cpu_runs(isa):
    """Whether this CPU runs the kernel variant `isa` (baseline, avx2, avx512)."""
    env = dict(os.environ, H2ODL_ISA=isa)
    out = subprocess.run([sys.executable, "-c",
                          "from h2odl_mpi._kernel import ffi, lib; print(ffi.string(lib.h2o_isa()).decode())"],
                         env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip() == isa
