"""Checkpoint write speed against the disk, and the time a restart takes to train again.

    .venv/bin/python benchmarks/checkpoint.py              # the tuning guide's large network
    .venv/bin/python benchmarks/checkpoint.py --reps 5 --dir /scratch/me/bench

Network: the tuning guide's 2500-2000-1500-1000-500 Tanh on MNIST (inputs = the training
file's non-constant columns, 10 classes), ADADELTA, so the buffer holds the weights and
biases plus two accumulators per value (about 12 million weights, 36 million floats).

1. Disk: sequential write of the same number of bytes (8 MiB writes, then fsync) into the
   checkpoint directory: bytes / seconds, the median of --reps.
2. Checkpoint: model_io.save_model of that model (every array with its CRC32, HDF5, fsync,
   rename), the median of --reps: file bytes / seconds.  Target: >= 0.5 x the disk's speed.
   Also the time load_model takes to read and verify it.
3. Restart: `train --checkpoint FILE` on the MNIST training file, one iteration of 50 rows,
   in this process (1 rank) and under `mpirun -n 2`; from the run's summary, the seconds from
   the end of the data load to the first trained row (reading, verifying and sending the
   checkpoint to every rank, setting up).  Target: <= 2 s.
Results: benchmarks/results/checkpoint.json.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from h2odl_mpi.data.frame import Frame  # noqa: E402
from h2odl_mpi.kernel import Network  # noqa: E402
from h2odl_mpi.model.model_io import load_model, save_model  # noqa: E402
from h2odl_mpi.params import validate  # noqa: E402
from h2odl_mpi.data.preprocess import Preprocess  # noqa: E402
from h2odl_mpi.training.model_setup import net_config  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TRAIN = ROOT / "h2odl_mpi" / "datasets" / "mnist" / "train.csv.gz"
HIDDEN = [2500, 2000, 1500, 1000, 500]


def disk_write(path, nbytes, block=8 << 20):
    """Seconds to write nbytes sequentially and fsync them."""
    buf = np.random.default_rng(0).integers(0, 255, block, dtype=np.uint8).tobytes()
    t = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        left = nbytes
        while left > 0:
            left -= os.write(fd, buf[:min(block, left)])
        os.fsync(fd)
    finally:
        os.close(fd)
    dt = time.perf_counter() - t
    os.unlink(path)
    return dt


def restart_run(params, ranks, workdir):
    """startup_s of a `train --checkpoint` run on `ranks` ranks (1: in this process)."""
    summary = os.path.join(workdir, f"restart{ranks}.json")
    args = ["train"] + [x for k, v in params.items() if v is not None
                        for x in (f"--{k}", ",".join(map(str, v)) if isinstance(v, list) else str(v))]
    args += ["--summary_json", summary]
    if ranks == 1:
        cmd = [sys.executable, "-m", "h2odl_mpi"] + args
    else:
        cmd = [str(Path(sys.executable).parent / "mpirun"), "-n", str(ranks), sys.executable, "-m", "h2odl_mpi"] + args
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI", "MPI", "HYDRA"))}
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    with open(summary) as f:
        return json.load(f)["startup_s"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to write (default: a temporary directory)")
    ap.add_argument("--ranks", type=int, default=2, help="ranks of the mpirun restart (0: skip)")
    args = ap.parse_args()
    work = args.dir or tempfile.mkdtemp(prefix="h2odl_ckpt_bench_")
    os.makedirs(work, exist_ok=True)

    params = validate({"train": str(TRAIN), "response": "C785", "hidden": HIDDEN, "activation": "Tanh",
                       "epochs": 1.0, "seed": 1})
    frame = Frame.read(str(TRAIN))
    info = Preprocess.fit(frame, params)
    network = Network(net_config(params, info))
    model = network.new_model(1)
    model[network.n_params:] = np.random.default_rng(2).random(network.n_total - network.n_params,
                                                               dtype=np.float32)  # optimizer state
    n_weights = sum(int(np.prod(s)) for name, _l, _o, s in network.segments() if name == "weights")
    path = os.path.join(work, "large.h5")
    progress = {"epochs": 1.0, "training_samples": 10000, "iterations": 1}
    state = {"samples": 10000, "iteration": 1, "epochs": 1.0, "n_total": 10000, "seed": 1, "n_ranks": 1,
             "tspi": 10000, "rng_states": [json.dumps(np.random.default_rng(1).bit_generator.state)]}

    save_s, load_s, disk_s = [], [], []
    for rep in range(args.reps):  # a new file each time, as checkpoints are (old ones go later)
        if os.path.exists(path):
            os.unlink(path)
        t = time.perf_counter()
        save_model(path, network, model, info, params, progress, state=state)
        save_s.append(time.perf_counter() - t)
        size = os.path.getsize(path)
        disk_s.append(disk_write(os.path.join(work, "dd.bin"), size))
        t = time.perf_counter()
        _net, loaded, _i, _p, _a = load_model(path)
        load_s.append(time.perf_counter() - t)
        assert np.array_equal(loaded, model)
    size = os.path.getsize(path)
    disk_bps = size / statistics.median(disk_s)
    ckpt_bps = size / statistics.median(save_s)

    # the restart: one iteration of 50 rows after the checkpoint's epoch
    rp = {"train": str(TRAIN), "response": "C785", "hidden": HIDDEN, "activation": "Tanh",
          "checkpoint": path, "epochs": 1.005, "train_samples_per_iteration": 50,
          "score_training_samples": 50, "quiet_mode": "true", "threads": 1}
    restarts = {"1": restart_run(rp, 1, work)}
    if args.ranks > 1:
        restarts[str(args.ranks)] = restart_run(rp, args.ranks, work)
    for st in restarts.values():
        st["after_data_load"] = st["to_first_row"] - st["data_load"]

    result = {
        "network": network.units, "weights": n_weights, "floats": network.n_total,
        "file_bytes": size, "reps": args.reps,
        "disk_write_MBps": disk_bps / 1e6, "checkpoint_write_MBps": ckpt_bps / 1e6,
        "write_ratio": ckpt_bps / disk_bps, "save_s": save_s, "disk_s": disk_s, "load_s": load_s,
        "restart_startup_s": restarts,
        "targets": {"write_ratio >= 0.5": ckpt_bps / disk_bps >= 0.5,
                    "restart <= 2 s after data load": all(s["after_data_load"] <= 2.0 for s in restarts.values())},
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average": os.getloadavg()[0],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "checkpoint.json", "w") as f:
        json.dump(result, f, indent=2)
    print(f"network {'-'.join(map(str, network.units))}: {n_weights:,} weights, {network.n_total:,} floats, "
          f"file {size / 1e6:.1f} MB")
    print(f"disk sequential write {disk_bps / 1e6:,.0f} MB/s; checkpoint {ckpt_bps / 1e6:,.0f} MB/s "
          f"(ratio {ckpt_bps / disk_bps:.2f}, target >= 0.5); load + verify {statistics.median(load_s):.2f} s")
    for r, st in restarts.items():
        print(f"restart on {r} rank(s): data load {st['data_load']:.2f} s, checkpoint read and sent "
              f"{st['restore']:.2f} s, first row {st['after_data_load']:.2f} s after the data load (target <= 2 s)")


if __name__ == "__main__":
    main()
