"""The small data set the search tests train on: 3 normal inputs, y = [a + b > 0]."""
import numpy as np


def binary_csv(path, n=400, seed=4):
    """Write the CSV (header a,b,c,y) of n rows drawn with `seed` to `path`; its path as str."""
    x = np.random.default_rng(seed).normal(size=(n, 3))
    with open(path, "w") as f:
        f.write("a,b,c,y\n")
        f.writelines(f"{a:.5f},{b:.5f},{c:.5f},{int(a + b > 0)}\n" for a, b, c in x)
    return str(path)
