"""SplitMix64's finaliser on numpy uint64 arrays: the one 64-bit mixing function behind the
frame's row hashes and the cross-validation folds' (callers wrap it in
np.errstate(over="ignore"): the multiplications wrap around by design)."""
import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def splitmix64(x):
    x = x ^ (x >> np.uint64(30))
    x = x * _MIX1
    x = x ^ (x >> np.uint64(27))
    x = x * _MIX2
    return x ^ (x >> np.uint64(31))
