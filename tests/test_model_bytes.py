"""Every byte of a model file: a changed byte loads the same model or is refused in one line.

A small model is trained (params.validate + trainer.train: hidden [3], epochs 1, threads 1,
on a tiny CSV), with the checkpoint of the same run and an ensemble file of two such models
(fuzz/model_bytes.build_files).  In each file a deterministic sample of offsets is changed
(XOR 0xFF), one at a time: the first 1,024 bytes (the seal, a 512-byte user block, then
HDF5's superblock and root headers), the last 64 and an even stride over the rest, 2,048
offsets per file; every one must load, as the program loads it, to the same model (network
config, weights buffer, data description, parameters and the other attributes equal) or be
refused with one UserError line naming the file.  fuzz/model_bytes.py tries every offset.

The corpus fuzz/corpus/model_offsets/ holds offsets the long runs found: in files without
the seal (written before it) a changed byte could crash (SIGSEGV) or hang the HDF5 library,
or be read silently different (a dataset's byte order flipped: its CRC32 covered the bytes,
not the values).  Each is replayed on the sealed files, and the silent ones on the unsealed
files too (the CRC32 now covers the values); the crashes and hangs are not replayed without
the seal, which only the seal prevents.
"""
import glob
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "fuzz"))

import model_bytes as M  # noqa: E402

from h2odl_mpi.model.model_io import SEAL_BYTES, unseal  # noqa: E402

OFFSETS_PER_FILE = 2048
CORPUS = sorted(glob.glob(os.path.join(ROOT, "fuzz", "corpus", "model_offsets", "*.json")))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    images = M.build_files(str(tmp_path_factory.mktemp("model_bytes")))
    refs = {kind: M.fingerprint(kind, M.load(kind, image, "damaged.h5")) for kind, image in images.items()}
    return images, refs


def sample(size, n=OFFSETS_PER_FILE):
    """The first 1,024 offsets, the last 64 and an even stride over the rest: n in all."""
    head, tail = list(range(min(1024, size))), list(range(max(0, size - 64), size))
    middle = range(len(head), max(len(head), size - 64))
    rest = n - len(head) - len(tail)
    stride = max(1, len(middle) // max(rest, 1))
    picked = list(middle[::stride])[:rest]
    return sorted(set(head + picked + tail))


@pytest.mark.parametrize("kind", M.FILES)
def test_every_sampled_byte_loads_the_same_model_or_is_refused(files, kind):
    images, refs = files
    image = images[kind]
    offsets = sample(len(image))
    assert len(offsets) >= 2000
    counts, bad = {}, []
    for offset in offsets:
        result, detail = M.outcome(kind, M.changed(image, offset, 0xFF), "damaged.h5", refs[kind])
        counts[result] = counts.get(result, 0) + 1
        if result not in ("same", "refused"):
            bad.append((offset, result, detail))
    assert not bad, f"{kind}: {len(bad)} of {len(offsets)} offsets: {bad[:5]} ({counts})"
    assert counts.get("refused", 0) > len(offsets) // 2


def test_the_files_are_sealed_and_the_seal_is_what_hdf5_ignores(files):
    images, refs = files
    for kind in ("model", "checkpoint"):
        hdf5 = unseal(images[kind], kind)
        assert len(hdf5) == len(images[kind]) - SEAL_BYTES
        # without the seal (a file written before it) the same model loads
        assert M.fingerprint(kind, M.load(kind, hdf5, "damaged.h5")) == refs[kind]


def test_ensemble_files_are_written_sealed(files):
    from h2odl_mpi.evaluation.ensemble_model import load_member
    from h2odl_mpi.workflows.ensemble import ensemble_image
    images, _refs = files
    members = [load_member(f"m{i}", unseal(images[kind], kind), kind) for i, kind in enumerate(("model", "model"))]
    assert M.is_sealed(ensemble_image(members, [0.5, 0.5], "equal"))


@pytest.mark.parametrize("path", CORPUS, ids=[os.path.basename(p) for p in CORPUS])
def test_corpus_offsets_load_the_same_model_or_are_refused(files, path):
    images, refs = files
    with open(path) as f:
        case = json.load(f)
    kind, offset, mask = case["file"], case["offset"], case["mask"]
    variants = [images[kind]]
    if case.get("unsealed") and case["found"] == "SILENT":
        variants.append(unseal(images[kind], kind))
    for image in variants:
        if offset >= len(image):
            continue
        result, detail = M.outcome(kind, M.changed(image, offset, mask), "damaged.h5", refs[kind])
        assert result in ("same", "refused"), f"{os.path.basename(path)}: {result}: {detail}"


def test_a_damaged_checkpoint_names_no_lineage_and_is_never_pruned(files, tmp_path):
    from h2odl_mpi.training.checkpoint_files import lineage_of, prune
    images, _refs = files
    good, bad = tmp_path / "ckpt_000002.h5", tmp_path / "ckpt_000001.h5"
    good.write_bytes(images["checkpoint"])
    bad.write_bytes(M.changed(images["checkpoint"], len(images["checkpoint"]) // 2, 0xFF))
    lineage = lineage_of(str(good))
    assert lineage  # the intact checkpoint names its run's lineage ...
    assert lineage_of(str(bad)) is None  # ... the damaged one is not parsed at all
    prune(str(tmp_path), keep=1, mine=[str(good)], lineage=lineage)
    assert bad.exists() and good.exists()
