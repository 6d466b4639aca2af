"""cffi build script (API mode) for the kernel extension h2odl_mpi._kernel.

The C header csrc/h2odl.h is the whole boundary: its declarations are passed to cdef
after the preprocessor-only lines are dropped.  Flags are portable by default
(-O3, OpenMP; net.c, with the files it #includes (layers.c, workspace.c, frame_rows.c),
is compiled for the baseline, AVX2 and AVX-512 by kernel_*.c and dispatch.c picks the
widest the CPU has at run time; frame_rows.c, the column-store row decoder, is also
compiled once more on its own for h2o_rows_expand and h2o_hash; exit_alarm.c is the
process's exit alarm; codec.c the 8-bit logarithmic code of combine_precision bfloat16_log8);
H2ODL_NATIVE=1 adds -march=native for a build on the cluster's own nodes.
"""
import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))


def _cdef_from_header(path):
    text = open(path).read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    lines = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#define"):
            parts = s.split()
            if len(parts) >= 3 and re.fullmatch(r"-?\d+", parts[2]):
                lines.append(f"#define {parts[1]} {parts[2]}")
            continue
        if s.startswith("#"):
            continue
        lines.append(line)
    return "\n".join(lines)


def compile_args():
    # -ffp-contract=fast: a * b + c as one fused multiply-add where the ISA has one (AVX2,
    # AVX-512; ISO C mode turns contraction off); the baseline x86-64 build has none
    args = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-std=c11", "-ffp-contract=fast", "-Wall"]
    if os.environ.get("H2ODL_NATIVE", "0") not in ("", "0"):
        args.append("-march=native")
    return args


ffibuilder = FFI()
ffibuilder.cdef(_cdef_from_header(os.path.join(HERE, "h2odl.h")))
ffibuilder.set_source(
    "h2odl_mpi._kernel",
    '#include "h2odl.h"',
    sources=[os.path.relpath(os.path.join(HERE, f))
             for f in ("dispatch.c", "kernel_base.c", "kernel_avx2.c", "kernel_avx512.c",
                       "frame_rows.c", "exit_alarm.c", "codec.c")],
    include_dirs=[os.path.relpath(HERE)],
    extra_compile_args=compile_args(),
    extra_link_args=["-fopenmp"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
