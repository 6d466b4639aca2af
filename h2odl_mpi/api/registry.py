"""The models and frames this process holds, by key, as an H2O cluster holds them: what
h2o.get_model, h2o.get_frame, h2o.ls and h2o.remove see, and what checkpoint= and
pretrained_autoencoder= resolve a model key through.

Models are held until removed (a script may drop its variable and get the model back by its
key, as from a cluster); frames only while the script holds them (weakly), those with a key
of their own (read, made from Python data, or named by split_frame's destination_frames).
Model keys are h2o-py's: DeepLearning_model_python_<session>_<n>.
"""
import contextlib
import itertools
import os
import tempfile
import time
import weakref

from h2odl_mpi.atomic import discard, write_bytes
from h2odl_mpi.collectives import bcast_obj, rank_and_size
from h2odl_mpi.errors import EstimatorError, agree

MODELS = {}
FRAMES = weakref.WeakValueDictionary()
SESSION = int(time.time() * 1000)
_COUNTER = itertools.count(1)
MODEL_REFERENCES = ("checkpoint", "pretrained_autoencoder")


def new_model_id(comm):
    """A fresh h2o-py model key, rank 0's on every rank."""
    return bcast_obj(comm, f"DeepLearning_model_python_{SESSION}_{next(_COUNTER)}")


def keep_model(model):
    MODELS[model.model_id_] = model


def keep_frame(frame):
    FRAMES[frame.frame_id] = frame


def get_model(model_id):
    """The model of key `model_id` (h2o.get_model)."""
    if model_id not in MODELS:
        raise EstimatorError(f"get_model: no model {model_id!r} in this process (h2o.ls() lists the keys)")
    return MODELS[model_id]


def remove(key):
    """Forget the model or frame of `key` (h2o.remove); an unknown key is an error."""
    if key in MODELS:
        del MODELS[key]
    elif key in FRAMES:
        del FRAMES[key]
    else:
        raise EstimatorError(f"remove: no model or frame {key!r} in this process (h2o.ls() lists the keys)")


def keys():
    return sorted(set(MODELS) | set(FRAMES.keys()))


def referenced_model(value, what):
    """The fitted model a checkpoint= / pretrained_autoencoder= value names: a model
    itself, or the key of one this process holds; None for a model file's path."""
    if hasattr(value, "model_id_") or hasattr(value, "_model_image"):
        return value
    if isinstance(value, str) and value in MODELS and not os.path.exists(value):
        return MODELS[value]
    if isinstance(value, str) and not os.path.exists(value) and value.startswith("DeepLearning_model"):
        raise EstimatorError(f"{what}: no model {value!r} in this process (h2o.ls() lists the keys; a model "
                             f"file is named by its path)")
    return None


@contextlib.contextmanager
def model_files(raw, comm):
    """checkpoint= and pretrained_autoencoder= given as a model or a model key: the model
    file written by rank 0 to a temporary file for the run (removed after it).  Yields
    {parameter: the model} for those given so."""
    given, paths = {}, []
    try:
        for key in MODEL_REFERENCES:
            model = referenced_model(raw.get(key), key)
            if model is None:
                continue
            model._fitted()
            path, err = None, None
            if rank_and_size(comm)[0] == 0:
                try:
                    fd, path = tempfile.mkstemp(prefix=f"h2odl_mpi-{key}-", suffix=".h5")
                    os.close(fd)
                    paths.append(path)
                    write_bytes(path, model._model_image())
                except OSError as e:
                    err = EstimatorError(f"{key}: cannot write the model to a temporary file: {e.strerror or e}")
            agree(comm, err)
            raw[key] = bcast_obj(comm, path)
            given[key] = model
        yield given
    finally:
        for path in paths:
            discard(path)
