"""Stand-in, under the sanitizers only, for
test_kernel_minibatch.py::test_mini_batch_size_1_is_the_one_row_path_bit_for_bit.

That test compares sha256 digests of trained models with ones recorded from the optimised
build.  The sanitizers stop gcc from vectorising the kernel's `#pragma omp simd reduction`
dot products (layers.c), so the sums are added in another order and every digest differs
in its last bits: a non-sanitized build with -fno-tree-loop-vectorize gives exactly the
sanitized digests.  So tests/sanitize/run.py deselects it and runs the same four trainings
(mini_batch_size 1: dense and CSR rows, Rectifier with dropout, Maxout with L1/L2, Tanh with
Nesterov momentum and max_w2, ExpRectifier with plain momentum and L2; baseline variant, in
a subprocess) here, where they must finish without a sanitizer report and train every row
to the same model twice.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: reference_net, ...

from test_kernel_minibatch import ROW_PATH_DIGESTS, row_path_digests  # noqa: E402


def test_one_row_path_trains_clean_under_the_sanitizers():
    first = row_path_digests({"mini_batch_size": 1})
    assert set(first) == set(ROW_PATH_DIGESTS)
    assert row_path_digests({"mini_batch_size": 1}) == first
