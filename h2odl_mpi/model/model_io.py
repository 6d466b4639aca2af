"""The model file: plain HDF5 (h5py or h5dump read it), never pickle.

A model file and a checkpoint are the same thing; docs/model_format.md documents every
group, dataset and attribute.  In short:
  /                      attrs: format, software_version, parameters (JSON), epochs,
                         training_samples, iterations, content_crc32
  /network               attrs: units, activation, output, loss, config (JSON), n_values;
                         layer_<l>/<array>: weights (outputs, inputs), biases and the
                         optimizer state, each once (the kernel's buffer is their concatenation)
  /preprocess            the data description (docs/preprocessing.md)
  /scoring_history       one float64 dataset per column
  /variable_importances  the inputs' importances (Gedeon), most important first
  attr model_summary     H2O's layer table of the model (JSON, model_summary.py)
  attr cross_validation  a cross-validated model's metrics and summary table (JSON)
  /metrics/<data>        the final model's training / validation metrics (a JSON string each)
  /progress              training state to continue from: samples, iteration, seed, every
                         rank's random state (JSON)
Every dataset carries the CRC32 of its bytes (attr crc32); the root's content_crc32 covers
every path and attribute.  The file starts with its seal, a user block of 512 bytes that
HDF5 and h5dump skip: SEAL_MAGIC, the length of the HDF5 image after it and the CRC32 of
all the image's bytes, checked before HDF5 parses any of them, so a byte changed anywhere
(HDF5's own structures too, which the CRCs above do not cover and whose damage can crash
or hang the HDF5 library) is refused as damage.  Files written before the seal (which start
with HDF5's signature) are still read, their CRCs checked; a file that starts with neither
is refused before HDF5 sees it.
Files are written to a temporary name, flushed, fsynced and renamed: a reader never sees a
half-written file.
The HDF5 image is made in memory and written with plain system calls, so a full or failing
disk is an OSError naming the cause, never a crash inside the HDF5 library.
"""
import csv
import errno
import io
import json
import os
import shutil
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np

from h2odl_mpi.version import VERSION
from h2odl_mpi.model import model_summary
from h2odl_mpi.atomic import write_bytes
from h2odl_mpi.errors import UserError
from h2odl_mpi.kernel import NetConfig, Network
from h2odl_mpi.data.preprocess import Preprocess
from h2odl_mpi.model.mojo_format import is_mojo
from h2odl_mpi.model.mojo_reader import load_mojo

FORMAT = "h2odl_mpi-model-2"
_str = h5py.string_dtype()
SEAL_MAGIC = b"\x89h2odl_mpi-crc\x1a\n"   # then the image's length (<u8) and CRC32 (<u4)
_SEAL = struct.Struct("<16sQI")
SEAL_BYTES = 512                              # (the HDF5 user block: a power of 2, >= 512)
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def seal(image):
    """The sealed file of `image`, the bytes of an HDF5 file without a user block: its seal
    (SEAL_BYTES), then the image (HDF5 finds its superblock after the user block)."""
    data = bytes(image)
    return _seal_header(data) + data


def _seal_header(hdf5):
    return _SEAL.pack(SEAL_MAGIC, len(hdf5), zlib.crc32(hdf5)).ljust(SEAL_BYTES, b"\0")


def unseal(data, path):
    """The HDF5 image in a file's bytes `data`, checked against its seal (UserError naming
    `path` when it does not match); a file written before the seal (HDF5's signature first)
    as it is; anything else is refused.  Call it before h5py parses any byte of a file."""
    if data[:len(SEAL_MAGIC)] == SEAL_MAGIC:
        _magic, length, crc = _SEAL.unpack(bytes(data[:_SEAL.size]).ljust(_SEAL.size, b"\0"))
        image = memoryview(data)[SEAL_BYTES:]
        damaged = len(data) < SEAL_BYTES or any(memoryview(data)[_SEAL.size:SEAL_BYTES])   # (zeros)
        if damaged or length != len(image) or zlib.crc32(image) != crc:
            raise UserError(f"{path}: checksum mismatch over the whole file (its seal): the file is damaged or "
                            "truncated")
        return bytes(image)
    if data[:len(HDF5_SIGNATURE)] == HDF5_SIGNATURE:
        return bytes(data)
    raise UserError(f"{path}: not an h2odl_mpi model file (it starts with neither the seal nor HDF5's "
                    "signature: another kind of file, or damaged at its start)")


def reseal(path):
    """Make the seal of file `path` match its HDF5 image again, after the image was edited in
    place (h5py's "r+" keeps the user block, and so the old seal).  For tests that make a
    file lie consistently, as a hostile one would; a file without a seal is left as it is."""
    data = read_file(path)
    if data[:len(SEAL_MAGIC)] == SEAL_MAGIC:
        write_bytes(path, _seal_header(memoryview(data)[SEAL_BYTES:]) + data[SEAL_BYTES:])


def read_file(path, what="model file"):
    """The bytes of file `path` (UserError naming it if it is missing or unreadable)."""
    if not os.path.exists(path):
        raise UserError(f"{path}: no such {what}")
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as e:
        raise UserError(f"{path}: cannot read the {what}: {e.strerror or e}") from None


def _json_default(v):
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    raise TypeError(f"cannot store {type(v).__name__} in parameters")


def _bytes(v):
    """The bytes a value is checksummed as: strings UTF-8 (string arrays joined by NUL),
    numbers their little-endian bytes (the bytes of the values: a big-endian number read
    from a damaged file, whose stored bytes are those of another value, does not match)."""
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, bytes):
        return v
    a = np.asarray(v)
    if a.dtype == object or a.dtype.kind in "SU":
        return b"\0".join(x if isinstance(x, bytes) else str(x).encode() for x in a.ravel())
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()


def crc32_of(v):
    """CRC32 of a dataset's or attribute's value (as its crc32 attribute holds it)."""
    if isinstance(v, np.ndarray) and v.dtype.kind in "fiub" and v.flags.c_contiguous and v.dtype.byteorder != ">":
        return zlib.crc32(v.view(np.uint8).reshape(-1))  # no copy of a large array
    return zlib.crc32(_bytes(v))


def content_crc(f):
    """CRC32 over every object's path and attributes (sorted; content_crc32 itself left
    out), the root first.  Datasets take part through their crc32 attribute."""
    crc = 0
    names = [""]
    f.visit(names.append)
    for n in sorted(names):
        obj = f[n] if n else f
        crc = zlib.crc32(n.encode(), crc)
        for k in sorted(obj.attrs):
            if k != "content_crc32":
                crc = zlib.crc32(k.encode(), crc)
                crc = zlib.crc32(_bytes(obj.attrs[k]), crc)
    return crc


def attr_text(v):
    """An HDF5 attribute or string dataset's value as text (h5py gives bytes or str)."""
    return v.decode() if isinstance(v, bytes) else str(v)


def checked_dataset(group, name, data, **kw):
    """group[name] = data, with its crc32 attribute (load_model verifies it)."""
    ds = group.create_dataset(name, data=data, **kw)
    ds.attrs["crc32"] = crc32_of(data)
    return ds


def save_model(path, network, model, info, params, progress, history=(), state=None, importances=None,
               cross_validation=None, metrics=None):
    """Write the model atomically to `path`.  `progress`: epochs, training_samples,
    iterations.  `state` (what a restart needs): a dict of scalars plus `rng_states`, one
    JSON string per rank.  `importances`: the variable importance table
    (h2odl_mpi.model.importance.table).  `cross_validation`: a cross-validated model's metrics and
    summary table (outputs.cross_validation_of), kept as JSON.  The HDF5 image is made in
    memory and written with plain system calls (HDF5 itself never meets a full or failing
    disk, which can crash it), so a failure of the disk is an OSError that leaves no file
    behind."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    image = model_image(network, model, info, params, progress, history, state, importances, cross_validation,
                        metrics)
    with image.getbuffer() as view:
        write_bytes(path, view)


def model_image(network, model, info, params, progress, history=(), state=None, importances=None,
                cross_validation=None, metrics=None):
    """The model file's bytes (an io.BytesIO holding the HDF5 image and its seal); see
    save_model."""
    image = io.BytesIO()
    with h5py.File(image, "w", userblock_size=SEAL_BYTES) as f:   # (the seal's room)
        f.attrs["format"] = FORMAT
        f.attrs["software_version"] = VERSION
        f.attrs["parameters"] = json.dumps(params, default=_json_default, sort_keys=True)
        for k, v in progress.items():
            f.attrs[k] = v
        f.attrs["model_summary"] = json.dumps(  # H2O's "Status of Neuron Layers", one dict a layer
            model_summary.table(network, model, params, progress.get("training_samples", 0)),
            default=_json_default)
        _write_network(f.create_group("network"), network, model)
        info.to_hdf5(f.create_group("preprocess"))
        h = f.create_group("scoring_history")
        for key in (history[0] if history else ()):
            checked_dataset(h, key, np.array([row.get(key, np.nan) for row in history], dtype=np.float64))
        if importances:
            vg = f.create_group("variable_importances")
            checked_dataset(vg, "variable", np.array([r["variable"] for r in importances], dtype=object), dtype=_str)
            for key in ("relative_importance", "scaled_importance", "percentage"):
                checked_dataset(vg, key, np.array([r[key] for r in importances], dtype=np.float64))
        if cross_validation:  # (JSON: NaN where a fold's metric is undefined)
            f.attrs["cross_validation"] = json.dumps(cross_validation, default=_json_default)
        if metrics:  # {"training": {...}, "validation": {...}}: the final model's, confusion matrix included
            mg = f.create_group("metrics")
            for name, m in metrics.items():
                if m:
                    checked_dataset(mg, name, json.dumps(m, default=_json_default), dtype=_str)
        if state is not None:
            _write_state(f.create_group("progress"), state)

        def checksum_rest(_name, obj):  # the small datasets written by others
            if isinstance(obj, h5py.Dataset) and "crc32" not in obj.attrs:
                obj.attrs["crc32"] = crc32_of(obj[()])
        f.visititems(checksum_rest)
        f.attrs["content_crc32"] = content_crc(f)
    with image.getbuffer() as view:
        header = _seal_header(view[SEAL_BYTES:])
    image.seek(0)
    image.write(header)
    return image


def _write_network(g, network, model):
    """/network: the layout's attributes and each layer's arrays with their CRC32."""
    cfg = network.config
    g.attrs["units"] = np.array(network.units, dtype=np.int64)
    for k in ("activation", "output", "loss"):
        g.attrs[k] = getattr(cfg, k)
    g.attrs["config"] = json.dumps(cfg.__dict__, default=_json_default, sort_keys=True)
    g.attrs["n_values"] = network.n_total
    arrays = [(f"layer_{layer}/{name}", network.view(model, name, layer))
              for name, layer, _off, _shape in network.segments()]
    # the CRCs run on other cores (zlib lets go of the GIL) while HDF5 writes
    with ThreadPoolExecutor(max_workers=max(1, min(4, (os.cpu_count() or 2) - 1))) as pool:
        crcs = [pool.submit(crc32_of, a) for _key, a in arrays]
        for key, a in arrays:
            g.create_dataset(key, data=a)
        for (key, _a), crc in zip(arrays, crcs):
            g[key].attrs["crc32"] = crc.result()


def _write_state(pg, state):
    """/progress: the training state's scalars, the ranks' random states, the combiner."""
    for k, v in state.items():
        if k not in ("rng_states", "combiner_arrays"):
            pg.attrs[k] = v
    checked_dataset(pg, "rng_states", np.array(list(state["rng_states"]), dtype=object), dtype=_str)
    cg = pg.create_group("combiner")
    for k, v in (state.get("combiner_arrays") or {}).items():
        checked_dataset(cg, k, np.asarray(v, dtype=np.float32))


def _verify_datasets(path, f, network, model, file_bytes):
    """Read every dataset once, checking its crc32; the network's arrays land in `model`.
    A dataset claiming more bytes than the file holds (`file_bytes`: none is compressed) is
    damage, refused before anything is allocated for it."""
    segments = {f"network/layer_{layer}/{name}": (off, shape) for name, layer, off, shape in network.segments()}
    found = set()

    def check(name, obj):
        if not isinstance(obj, h5py.Dataset):
            return
        if obj.size * obj.dtype.itemsize > file_bytes:
            raise UserError(f"{path}: {name} claims {obj.shape} values, more than the file holds: the file is "
                            "damaged")
        if obj.dtype.kind not in "fO":   # (numbers are floats, the rest strings: a damaged type)
            raise UserError(f"{path}: {name} has the type {obj.dtype}, which no model file holds: the file is "
                            "damaged")
        if name in segments:
            off, shape = segments[name]
            if obj.shape != tuple(shape) or obj.dtype != np.float32:
                raise UserError(f"{path}: {name} has shape {obj.shape} {obj.dtype}, the network needs "
                                f"{tuple(shape)} float32")
            data = model[off:off + int(np.prod(shape))].reshape(shape)
            if data.size:
                obj.read_direct(data)
            found.add(name)
        else:
            data = obj[()]
        if "crc32" not in obj.attrs or crc32_of(data) != int(obj.attrs["crc32"]):
            raise UserError(f"{path}: checksum mismatch in {name}: the file is damaged")
    f.visititems(check)
    missing = sorted(set(segments) - found)
    if missing:
        raise UserError(f"{path}: missing arrays {', '.join(missing)}")


def load_model(path, image=None):
    """(network, model buffer, Preprocess, parameters, attrs) from a model file; attrs hold
    the root attributes, `history` (the scoring history rows) and, when the file has one,
    `state` (the training progress of a checkpoint).  A damaged, truncated or foreign file
    is a UserError naming the file and what is wrong; an H2O-3 Deep Learning MOJO (a zip)
    is read by mojo_reader.load_mojo (attrs format "h2o-mojo").  `image`: the file's bytes, already
    read (as sent to every rank), parsed from memory; `path` then only names it."""
    data = read_file(path) if image is None else image
    if is_mojo(data):  # an H2O-3 Deep Learning MOJO (zip), read as a model (mojo_reader)
        return load_mojo(path, data)
    data = unseal(data, path)
    try:
        with h5py.File(io.BytesIO(data), "r") as f:
            fmt = f.attrs.get("format")
            if fmt != FORMAT:
                raise UserError(f"{path}: not an h2odl_mpi model file of format {FORMAT} (format: {fmt!r})")
            if content_crc(f) != int(f.attrs["content_crc32"]):
                raise UserError(f"{path}: checksum mismatch in the attributes (content_crc32): "
                                "the file is damaged")
            params = json.loads(f.attrs["parameters"])
            cfg = json.loads(f["network"].attrs["config"])
            cfg = {k: (float(v) if v in ("inf", "-inf", "nan") else v) for k, v in cfg.items()}
            network = Network(NetConfig(**cfg))
            if int(f["network"].attrs["n_values"]) != network.n_total:
                raise UserError(f"{path}: the file holds {int(f['network'].attrs['n_values'])} values, "
                                f"the network needs {network.n_total}")
            model = np.zeros(network.n_total, dtype=np.float32)
            _verify_datasets(path, f, network, model, len(data))
            info = Preprocess.from_hdf5(f["preprocess"])
            attrs = {k: f.attrs[k] for k in f.attrs}
            if "model_summary" in attrs:  # (files written before it have none)
                attrs["model_summary"] = json.loads(attrs["model_summary"])
            if "cross_validation" in attrs:  # (a cross-validated model's metrics and summary table)
                attrs["cross_validation"] = json.loads(attrs["cross_validation"])
            if "metrics" in f:  # the final model's metrics by data set (files before it: none)
                attrs["metrics"] = {k: json.loads(attr_text(v[()])) for k, v in f["metrics"].items()}
            h = f["scoring_history"]
            cols = {k: h[k][...].tolist() for k in h}
            attrs["history"] = [dict(zip(cols, vals)) for vals in zip(*cols.values())]
            if "variable_importances" in f:
                vg = f["variable_importances"]
                names = [v.decode() if isinstance(v, bytes) else str(v) for v in vg["variable"][...]]
                cols = {k: vg[k][...].tolist() for k in ("relative_importance", "scaled_importance", "percentage")}
                attrs["variable_importances"] = [dict(variable=n, **{k: cols[k][i] for k in cols})
                                                 for i, n in enumerate(names)]
            if "progress" in f:
                st = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f["progress"].attrs.items()}
                st["rng_states"] = [s.decode() if isinstance(s, bytes) else str(s)
                                    for s in f["progress/rng_states"][...]]
                if "progress/combiner" in f:
                    st["combiner_arrays"] = {k: v[...] for k, v in f["progress/combiner"].items()}
                attrs["state"] = st
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - h5py and HDF5 report a damaged file with many types
        raise UserError(f"{path}: cannot read the model file (damaged or truncated?): {damage_text(e)}") from None
    return network, model, info, params, attrs


def damage_text(error):
    """One line saying what a reader of a damaged file raised (RuntimeError: "Object
    visitation failed ...", OSError, KeyError, ...)."""
    text = " ".join(str(error).split())[:300]
    usual = isinstance(error, (OSError, KeyError, ValueError, TypeError))
    return text if usual and text else f"{type(error).__name__}: {text}"


def export_weights_and_biases(path, network, model, info):
    """H2O's export_weights_and_biases: each layer's weights and biases as plain CSV files
    in directory `path`: weights_<k>.csv (one row per unit of layer k, one column per unit
    of layer k-1, headed by the input names for k = 1) and biases_<k>.csv, k = 1 for the
    first hidden layer, as H2O numbers them.  The files are written into a temporary
    directory that then replaces `path` whole.  Returns the file names."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.mkdir(tmp)
    written = []
    try:
        for layer in range(network.n_layers):
            k = layer + 1
            w = network.view(model, "weights", layer)
            b = network.view(model, "biases", layer)
            header = list(info.input_names) if layer == 0 else [f"C{j + 1}" for j in range(w.shape[1])]
            for name, head, rows in ((f"weights_{k}.csv", header, w), (f"biases_{k}.csv", ["C1"], b[:, None])):
                text = io.StringIO()
                csv.writer(text).writerow(head)
                np.savetxt(text, rows, fmt="%.9g", delimiter=",")  # 9 digits: float32 exactly
                write_bytes(os.path.join(tmp, name), text.getvalue().encode())
                written.append(name)
        _swap_directory(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return written


def _swap_directory(new, path):
    """Put directory `new` in the place of `path` (an older directory there goes)."""
    old = None
    if os.path.lexists(path):
        if not os.path.isdir(path) or os.path.islink(path):
            raise OSError(errno.EEXIST, "it exists and is not a directory")
        old = f"{path}.old{os.getpid()}"
        os.rename(path, old)
    try:
        os.rename(new, path)
    except OSError:
        if old is not None:
            os.rename(old, path)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
