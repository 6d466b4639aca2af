"""Peer measurements for the kernel benchmark (benchmarks/kernel_throughput.py).

- h2o_peer: H2O-3 Deep Learning (Java, local one-node cluster) on the bundled MNIST pair.
- torch_hogwild: PyTorch CPU, PyTorch's own Hogwild! example pattern, one row at a time.
- membw: this machine's memory bandwidth (STREAM-like copy/triad) for 1 and 2 threads, plus the
  machine description (CPU model, cores, caches) that every peer records with its numbers.

The extra packages (h2o, torch) are listed in benchmarks/requirements.txt; nothing here downloads
data. See benchmarks/peers/README.md.
"""
