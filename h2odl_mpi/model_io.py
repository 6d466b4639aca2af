"""The model file: plain HDF5 (h5py), never pickle.

Layout (readable with h5py or h5dump):
  /                      attrs: format, software_version, parameters (JSON), epochs, samples
  /network               attrs: units, activation, output, loss; per-array datasets
                         layer_<l>/<name> (weights are (outputs, inputs)), and `buffer`, the
                         whole float32 model buffer the kernel trains (weights, biases,
                         optimizer state), with a CRC32 in its attrs
  /preprocess            the data description (h2odl_mpi.preprocess, docs/preprocessing.md):
                         input layout, encodings, domains, means and sds, the response
  /scoring_history       one dataset per column
The file is written to a temporary name, flushed, fsynced and renamed: never half-written.
"""
import json
import os
import zlib

import h5py
import numpy as np

from h2odl_mpi import __version__
from h2odl_mpi.preprocess import Preprocess
from h2odl_mpi.errors import UserError
from h2odl_mpi.kernel import NetConfig, Network

FORMAT = "h2odl_mpi-model-1"
_str = h5py.string_dtype()


def _json_default(v):
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    raise TypeError(f"cannot store {type(v).__name__} in parameters")


def save_model(path, network, model, info, params, progress, history=()):
    """Write the model atomically to `path`."""
    tmp = f"{path}.tmp{os.getpid()}"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["software_version"] = __version__
            f.attrs["parameters"] = json.dumps(params, default=_json_default, sort_keys=True)
            for k, v in progress.items():
                f.attrs[k] = v
            g = f.create_group("network")
            cfg = network.config
            g.attrs["units"] = np.array(network.units, dtype=np.int64)
            for k in ("activation", "output", "loss"):
                g.attrs[k] = getattr(cfg, k)
            g.attrs["config"] = json.dumps(cfg.__dict__, default=_json_default, sort_keys=True)
            buf = g.create_dataset("buffer", data=model)
            buf.attrs["crc32"] = zlib.crc32(model.tobytes())
            for name, layer, _off, _shape in network.segments():
                g.create_dataset(f"layer_{layer}/{name}", data=network.view(model, name, layer))
            info.to_hdf5(f.create_group("preprocess"))
            h = f.create_group("scoring_history")
            if history:
                for key in history[0]:
                    vals = [row.get(key, np.nan) for row in history]
                    h.create_dataset(key, data=np.array(vals, dtype=np.float64))
            f.flush()
            os.fsync(f.id.get_vfd_handle())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_model(path):
    """(network, model buffer, Preprocess, parameters, attrs) from a model file."""
    if not os.path.exists(path):
        raise UserError(f"{path}: no such model file")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise UserError(f"{path}: not an h2odl_mpi model file")
            params = json.loads(f.attrs["parameters"])
            cfg = json.loads(f["network"].attrs["config"])
            cfg = {k: (float(v) if v in ("inf", "-inf", "nan") else v) for k, v in cfg.items()}
            model = f["network/buffer"][...]
            if zlib.crc32(model.tobytes()) != int(f["network/buffer"].attrs["crc32"]):
                raise UserError(f"{path}: checksum mismatch: the model buffer is damaged")
            info = Preprocess.from_hdf5(f["preprocess"])
            attrs = {k: f.attrs[k] for k in f.attrs}
    except (OSError, KeyError) as e:
        raise UserError(f"{path}: cannot read the model file: {e}") from None
    network = Network(NetConfig(**cfg))
    if model.size != network.n_total:
        raise UserError(f"{path}: model buffer has {model.size} values, the network needs {network.n_total}")
    return network, np.ascontiguousarray(model, dtype=np.float32), info, params, attrs
