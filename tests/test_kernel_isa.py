"""Every instruction-set variant of the kernel (baseline, AVX2, AVX-512) passes the
reference checks, one row at a time, in mini-batches and in blocked scoring: each runs in a subprocess with
H2ODL_ISA naming it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from h2odl_mpi._kernel import ffi, lib
from isa_variants import cpu_runs

HERE = Path(__file__).parent




@pytest.mark.parametrize("isa", ["baseline", "avx2", "avx512"])
def test_variant_matches_reference(isa):
    if not cpu_runs(isa):
        pytest.skip(f"this CPU cannot run the {isa} variant")
    env = dict(os.environ, H2ODL_ISA=isa)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        str(HERE / "test_kernel_math.py"), str(HERE / "test_kernel_minibatch.py"),
                        str(HERE / "test_kernel_scoring.py"),
                        "-k", "forward or update or gradient or every or frame or scoring or bits "
                              "or neighbours or scratch"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:]
    assert " passed" in r.stdout


def test_default_is_the_widest_supported():
    name = ffi.string(lib.h2o_isa()).decode()
    if os.environ.get("H2ODL_ISA"):
        pytest.skip("H2ODL_ISA is set")
    assert name in ("baseline", "avx2", "avx512")
    if name == "baseline":
        assert not cpu_runs("avx2")
