"""Every byte of a model file, a checkpoint and an ensemble file, changed in turn.

    .venv/bin/python fuzz/model_bytes.py [--files model,checkpoint,ensemble] [--step 1]
        [--masks ff,01] [--workers 2] [--hang 60] [--memory 8] [--unsealed] [--save 20]
        [--out DIR]

A small model is trained (params.validate + trainer.train: hidden [3], epochs 1, threads 1,
on a tiny CSV), with the checkpoint the same run writes, and an ensemble file is made of
two such models (workflows.ensemble.ensemble_image, sealed as model files are: see
build_files).  Every byte offset of each file (every --step-th) is changed (XOR with each
mask of --masks, default 0xFF) and the file loaded as the program loads it (load: an
ensemble file if ensemble_model.is_ensemble says so, else model_io.load_model; a
checkpoint with load_model).  Each processes runs under an address-space limit (--memory
GiB, the bound) and is watched for crashes and hangs (fuzz/fuzz_supervise.py).  Outcomes:

    same     it loads to the same model: network config, weights buffer, data description,
             parameters and the other attributes (scoring history, training state) equal
    refused  one UserError whose message names the file and is one line
    SILENT   it loads to a different model without a word (the defect this hunts)
    CRASH    another exception, a UserError that does not name the file in one line, or
             the process died (a signal); HANG: no progress for --hang seconds

--unsealed drops the seal of the three files (model_io.unseal): files written before it,
and ensembles as workflows/ensemble writes them today; what HDF5 and the CRCs alone catch.
Exit status 1 when any offset is SILENT, CRASH or HANG; each is listed, and at most --save
per file written to fuzz/corpus/model_offsets/<file>_<offset>_<mask>.json, which
tests/test_model_bytes.py replays.  The test suite runs a deterministic sample of 2,000
offsets per file (sample_offsets).
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus", "model_offsets")
FILES = ("model", "checkpoint", "ensemble")


# ---------------------------------------------------------------------- the three files

def _tiny_csv(path, seed):
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        f.write("a,b,c,y\n")
        for _ in range(40):
            x = rng.normal(size=3)
            f.write(f"{x[0]:.4f},{x[1]:.4f},{'u' if x[2] > 0 else 'v'},{'yes' if x[0] + x[1] > 0 else 'no'}\n")
    return path


def build_files(directory):
    """{"model": bytes, "checkpoint": bytes, "ensemble": bytes} made in `directory`: a small
    model trained with params.validate + trainer.train (hidden [3], epochs 1, threads 1),
    the checkpoint the same run wrote, and an ensemble file of two such models
    (workflows.ensemble.ensemble_image, equal weights)."""
    from h2odl_mpi.evaluation.ensemble_model import load_member
    from h2odl_mpi.params import validate
    from h2odl_mpi.training.trainer import train
    from h2odl_mpi.workflows.ensemble import ensemble_image

    data = _tiny_csv(os.path.join(directory, "tiny.csv"), 0)
    out = {}
    for seed in (1, 2):
        model = os.path.join(directory, f"m{seed}.h5")
        ck = os.path.join(directory, f"ck{seed}")
        train(validate({"train": data, "response": "y", "hidden": [3], "epochs": 1, "threads": 1, "seed": seed,
                        "reproducible": True, "quiet_mode": True, "model_out": model, "checkpoint_dir": ck,
                        "checkpoint_interval": "1it", "checkpoint_keep": 1}))
        with open(model, "rb") as f:
            out.setdefault("members", []).append(f.read())
        if seed == 1:
            out["model"] = out["members"][0]
            (name,) = [n for n in os.listdir(ck) if n.endswith(".h5")]
            with open(os.path.join(ck, name), "rb") as f:
                out["checkpoint"] = f.read()
    members = [load_member(f"model_{i + 1}", img, f"member {i + 1}") for i, img in enumerate(out.pop("members"))]
    image = ensemble_image(members, [0.5, 0.5], "equal")
    # (sealed as model files are: workflows/ensemble.ensemble_image should do it itself)
    out["ensemble"] = image if is_sealed(image) else seal(image)
    return out


def is_sealed(image):
    """Whether the bytes end with a seal that matches them (model_io.unseal)."""
    from h2odl_mpi.errors import UserError
    from h2odl_mpi.model.model_io import SEAL_BYTES, SEAL_MAGIC, unseal
    try:
        return image.startswith(SEAL_MAGIC) and len(unseal(image, "")) == len(image) - SEAL_BYTES
    except UserError:
        return False


def seal(image):
    from h2odl_mpi.model.model_io import seal as seal_image
    return seal_image(image)


# ---------------------------------------------------------------------- loading, comparing

def load(kind, image, path):
    """Load `image` as the program loads a model file (predict.load_for_scoring, report):
    an ensemble file when is_ensemble says so, else a model file; `path` names it.  (A
    checkpoint is loaded by load_model alone: checkpoint.load_everywhere.)"""
    from h2odl_mpi.evaluation.ensemble_model import is_ensemble, load_ensemble
    from h2odl_mpi.model.model_io import load_model
    if kind != "checkpoint" and is_ensemble(image):
        return load_ensemble(path, image=image)
    return load_model(path, image=image)


def canonical(v):
    """A comparable, hashable form of a loaded value: arrays by dtype, shape and bytes
    (so NaN equals NaN and -0.0 differs from 0.0), floats by their bits."""
    if isinstance(v, dict):
        return ("dict", tuple(sorted((str(k), canonical(x)) for k, x in v.items())))
    if isinstance(v, (list, tuple)):
        return ("list", tuple(canonical(x) for x in v))
    if isinstance(v, np.ndarray):
        if v.dtype == object:
            return ("objarray", v.shape, tuple(canonical(x) for x in v.ravel()))
        return ("array", v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, np.generic):
        return ("scalar", v.dtype.str, v.tobytes())
    if isinstance(v, float):
        return ("float", np.float64(v).tobytes())
    if isinstance(v, bytes):
        return ("bytes", v)
    if isinstance(v, (str, int, bool)) or v is None:
        return (type(v).__name__, v)
    return ("other", type(v).__name__, repr(v))


def _model_fingerprint(network, model, info, params, attrs):
    return canonical({"config": dict(network.config.__dict__), "units": list(network.units),
                      "model": np.asarray(model), "info": info.to_bytes(), "params": params, "attrs": attrs})


def fingerprint(kind, loaded):
    """Everything a loaded file gives, in canonical form: two loads with equal fingerprints
    are the same model (`kind` is not used: what was loaded decides)."""
    network, model, info, params, attrs = loaded
    if not getattr(network, "is_ensemble", False):
        return _model_fingerprint(network, model, info, params, attrs)
    members = [_model_fingerprint(m.network, m.model, m.info, m.params, m.attrs) + (m.model_id, m.image)
               for m in network.members]
    return canonical({"weights": np.asarray(model), "members": members, "params": params, "attrs": attrs})


def outcome(kind, image, path, reference):
    """('same' | 'refused' | 'SILENT' | 'CRASH', detail) of loading `image`."""
    from h2odl_mpi.errors import UserError
    try:
        loaded = load(kind, image, path)
    except UserError as e:
        text = str(e)
        if path not in text or "\n" in text:
            return "CRASH", f"UserError not naming the file in one line: {text[:200]!r}"
        return "refused", text
    except BaseException as e:  # noqa: BLE001 - what is hunted: anything but a UserError
        if isinstance(e, KeyboardInterrupt):
            raise
        return "CRASH", f"{type(e).__name__}: {str(e)[:200]}"
    if fingerprint(kind, loaded) == reference:
        return "same", ""
    return "SILENT", "loaded a different model"


def changed(image, offset, mask):
    b = bytearray(image)
    b[offset] ^= mask
    return bytes(b)


def check_offsets(kind, image, offsets, masks, path="damaged.h5"):
    """{outcome: count} and [(offset, mask, outcome, detail)] of the bad ones (SILENT, CRASH)."""
    reference = fingerprint(kind, load(kind, image, path))
    counts, bad = {}, []
    for offset in offsets:
        for mask in masks:
            result, detail = outcome(kind, changed(image, offset, mask), path, reference)
            counts[result] = counts.get(result, 0) + 1
            if result in ("SILENT", "CRASH"):
                bad.append((int(offset), int(mask), result, detail))
    return counts, bad


def sample_offsets(size, n, seed=20260):
    """A deterministic sample of `n` offsets of a file of `size` bytes: the first 1,024 bytes
    (the superblock and the root's headers) and an evenly strided rest, shifted by a
    seeded offset so that the sample meets every position of the stride over runs with
    other seeds."""
    if n >= size:
        return list(range(size))
    head = list(range(min(1024, n // 2)))
    rest = n - len(head)
    start = len(head)
    stride = (size - start) / rest
    shift = np.random.default_rng(seed).random()
    return head + sorted({start + int((i + shift) * stride) for i in range(rest)})


# ---------------------------------------------------------------------- the long run

def _job(kind, image, reference, offsets, masks):
    def job(log):
        for offset in offsets:
            for mask in masks:
                if log.seen([offset, mask]):
                    continue
                log.start([offset, mask])
                log.done(*outcome(kind, changed(image, offset, mask), "damaged.h5", reference))
    return job


def save_case(kind, offset, mask, outcome_, detail, unsealed=False):
    os.makedirs(CORPUS, exist_ok=True)
    name = f"{kind}{'_unsealed' if unsealed else ''}_{offset}_{mask:02x}.json"
    with open(os.path.join(CORPUS, name), "w") as f:
        json.dump({"file": kind, "unsealed": unsealed, "offset": offset, "mask": mask, "found": outcome_,
                   "detail": detail}, f)
        f.write("\n")


def main(argv=None):
    from fuzz_supervise import supervise
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", default=",".join(FILES))
    ap.add_argument("--step", type=int, default=1)
    ap.add_argument("--masks", default="ff")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--hang", type=float, default=60.0, help="seconds without progress that make a hang")
    ap.add_argument("--memory", type=float, default=8.0, help="GiB of address space per worker (the bound)")
    ap.add_argument("--unsealed", action="store_true", help="drop the seal (model_io.unseal) of the three "
                    "files, as files written before it (and ensembles as written now): what HDF5 and the CRCs "
                    "alone catch")
    ap.add_argument("--out", help="also write the three files into this directory")
    ap.add_argument("--save", type=int, default=20, help="write at most this many bad offsets per file "
                    "into fuzz/corpus/model_bytes (0: none)")
    ns = ap.parse_args(argv)
    masks = [int(m, 16) for m in ns.masks.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        files = build_files(tmp)
    if ns.unsealed:
        from h2odl_mpi.model.model_io import unseal
        files = {k: unseal(v, "") for k, v in files.items()}
    if ns.out:
        os.makedirs(ns.out, exist_ok=True)
        for kind, image in files.items():
            with open(os.path.join(ns.out, f"{kind}.h5"), "wb") as f:
                f.write(image)
    failed = 0
    for kind in ns.files.split(","):
        image = files[kind]
        reference = fingerprint(kind, load(kind, image, "damaged.h5"))
        offsets = list(range(0, len(image), ns.step))
        t0 = time.time()
        parts = max(1, 8 * ns.workers)
        jobs = [_job(kind, image, reference, offsets[i::parts], masks) for i in range(parts) if offsets[i::parts]]
        records = supervise(jobs, ns.workers, ns.hang, int(ns.memory * (1 << 30)))
        counts, bad = {}, []
        for _job_index, (offset, mask), result, detail in records:
            counts[result] = counts.get(result, 0) + 1
            if result not in ("same", "refused"):
                bad.append((offset, mask, result, detail))
        bad.sort()
        print(f"{kind}: {len(image)} bytes, {len(offsets)} offsets x {len(masks)} mask(s) = {len(records)} images "
              f"in {time.time() - t0:.0f} s: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
              + f"; silent-wrong {counts.get('SILENT', 0)}", flush=True)
        for i, (offset, mask, result, detail) in enumerate(bad):
            print(f"  {kind} offset {offset} ^0x{mask:02x}: {result}: {detail}")
            if i < ns.save:
                save_case(kind, offset, mask, result, detail, ns.unsealed)
        failed += len(bad)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(HERE))
    sys.path.insert(0, HERE)
    sys.exit(main())
