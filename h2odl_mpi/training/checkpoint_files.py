"""The checkpoint files of a directory (docs/model_format.md): their names
(ckpt_<iteration, 9 digits>.h5), the newest first, the run they belong to (the lineage in
their /progress), pruning the old ones of a run, and the newest that loads."""
import glob
import os
import re
import sys

from h2odl_mpi.atomic import discard
from h2odl_mpi.errors import UserError
from h2odl_mpi.model.model_io import load_model, read_file, unseal

_NAME = re.compile(r"ckpt_(\d+)\.h5$")


def checkpoint_path(directory, iteration):
    """The checkpoint file of `iteration` in `directory`."""
    return os.path.join(directory, f"ckpt_{iteration:09d}.h5")


def list_checkpoints(directory):
    """Checkpoint files in `directory`, newest (highest iteration) first."""
    found = []
    for p in glob.glob(os.path.join(glob.escape(directory), "ckpt_*.h5")):
        m = _NAME.search(os.path.basename(p))
        if m:
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found, reverse=True)]


def is_checkpoint_name(path):
    """Whether `path`'s file name is a checkpoint's (ckpt_<iteration>.h5)."""
    return bool(_NAME.fullmatch(os.path.basename(path)))


def _iteration(path):
    """The iteration in a checkpoint's name (-1 for another name)."""
    m = _NAME.search(os.path.basename(path))
    return int(m.group(1)) if m else -1


def lineage_of(path):
    """The lineage recorded in a checkpoint's /progress (None if absent, unreadable or
    damaged: its seal is checked before HDF5 parses a byte)."""
    import io
    import h5py
    try:
        with h5py.File(io.BytesIO(unseal(read_file(path, "checkpoint"), path)), "r") as f:
            v = f["progress"].attrs.get("lineage") if "progress" in f else None
    except Exception:  # noqa: BLE001 - a damaged file belongs to no one we know
        return None
    return v.decode() if isinstance(v, bytes) else v


def prune(directory, keep, mine=(), lineage=None):
    """Delete the checkpoints of this run (`mine`: the ones it wrote or continues, all
    valid) and of its `lineage` (its earlier, requeued parts) that are older than the newest
    `keep` of `mine` (keep <= 0: keep all), and temporary files that a killed writer left
    behind (the run owns the directory, so no one else is writing).  Other runs' files and
    damaged ones that name no lineage are never deleted, nor counted as kept."""
    mine = [p for p in dict.fromkeys(mine) if os.path.exists(p)]
    if keep > 0 and mine:
        kept = sorted(mine, key=_iteration, reverse=True)[:keep]
        oldest = min(_iteration(p) for p in kept)
        ours = {os.path.realpath(p) for p in mine}
        for p in list_checkpoints(directory):
            if _iteration(p) < oldest and (os.path.realpath(p) in ours or
                                           (lineage is not None and lineage_of(p) == lineage)):
                discard(p)
    for p in glob.glob(os.path.join(glob.escape(directory), "ckpt_*.h5.tmp*")):
        discard(p)


def newest_valid(directory, warn=True):
    """The newest checkpoint in `directory` that loads with its checksums, or None.
    A damaged one is skipped with a warning on stderr."""
    for p in list_checkpoints(directory):
        try:
            load_model(p)
        except UserError as e:
            if warn:
                print(f"warning: skipping damaged checkpoint: {e}", file=sys.stderr, flush=True)
            continue
        return p
    return None
