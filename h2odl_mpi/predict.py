"""`predict`: score a data file with a saved model and write a predictions CSV.

Classification writes `predict` (the class label) and one probability column per class;
regression the value in the response's units; --anomaly the per-row reconstruction MSE of
an autoencoder; --deepfeatures K the activations of hidden layer K.  Rows come out in the
input's order.  Rank 0 reads the data into the column store, scores it (the kernel's
threads in parallel) and writes the file.

Nothing is written silently wrong: the output path is checked before any scoring (not a
directory, in a writable directory, not the data or model file itself), a model with
non-finite weights and data with Inf or overflowing values are refused, and so is a NaN
prediction, naming its row; a failed write names the file and leaves no partial file.
"""
import csv
import io
import os

import numpy as np

from h2odl_mpi.atomic import same_file, write_bytes
from h2odl_mpi.collectives import rank_and_size
from h2odl_mpi.errors import UserError, agree
from h2odl_mpi.frame import Frame
from h2odl_mpi.model_io import load_model


def predict_file(model_path, data_path, out_path, comm=None, threads=None, anomaly=False,
                 deepfeatures=None):
    err = None
    try:
        check_output(out_path, (("--data", data_path), ("--model", model_path)))
        network, model, info, _params, _attrs = load_model(model_path)
        if not np.all(np.isfinite(model[:network.n_params])):
            raise UserError(f"{model_path}: the model's weights are not all finite (a diverged model)")
    except Exception as e:  # noqa: BLE001 - reported on every rank by agree()
        err = e
    agree(comm, err)
    if rank_and_size(comm)[0] != 0:
        return None
    frame = Frame.read(data_path)  # rank 0 reads and scores, keeping the input's row order
    info.check_finite(frame, response=False)
    rows = info.rows(frame, training=False)
    header, values, numbers = _score(network, model, info, rows, model_path, threads, anomaly, deepfeatures)
    bad = np.flatnonzero(np.isnan(numbers).any(axis=1))
    if bad.size:
        raise UserError(f"{data_path}: the prediction for data row {bad[0] + 1:,} is NaN "
                        f"({bad.size:,} rows in all); nothing written to {out_path}")
    write_csv(out_path, header, values)
    return values


def _score(network, model, info, rows, model_path, threads, anomaly, deepfeatures):
    """(header, values to write, their numbers as a float matrix) of the asked-for output."""
    if anomaly:
        if not info.autoencoder:
            raise UserError(f"{model_path}: --anomaly needs an autoencoder model")
        values = network.predict(model, rows, "recon", threads=threads)
        return ["Reconstruction.MSE"], values, values
    if deepfeatures is not None:
        n_hidden = network.n_layers - 1
        if not 0 <= deepfeatures < n_hidden:
            raise UserError(f"--deepfeatures: the model has hidden layers 0..{n_hidden - 1}")
        values = network.predict(model, rows, "hidden", layer=deepfeatures, threads=threads)
        return [f"DF.L{deepfeatures + 1}.C{j + 1}" for j in range(values.shape[1])], values, values
    if info.autoencoder:
        values = network.predict(model, rows, "output", threads=threads)
        return [f"reconstr_{n}" for n in info.input_names], values, values
    if info.classification:
        prob = info.correct_probabilities(network.predict(model, rows, "output", threads=threads))
        labels = np.array(info.domain, dtype=object)[prob.argmax(1)]
        return (["predict"] + [f"p{d}" for d in info.domain], np.column_stack([labels, prob.astype(object)]),
                prob)
    out = network.predict(model, rows, "output", threads=threads)[:, 0].astype(np.float64)
    values = info.decode_response(out)[:, None]
    return ["predict"], values, values


def check_output(path, inputs=()):
    """UserError naming --out unless `path` can be written: not a directory or a device,
    its directory there and writable, not one of `inputs` ((option, path) pairs) itself."""
    target = os.path.abspath(path)
    if os.path.isdir(target):
        raise UserError(f"--out {path}: is a directory")
    if os.path.exists(target) and not os.path.isfile(target):  # a device or FIFO: never renamed over
        raise UserError(f"--out {path}: is not a regular file")
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        raise UserError(f"--out {path}: no such directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        read_only = bool(os.statvfs(parent).f_flag & os.ST_RDONLY)
        raise UserError(f"--out {path}: cannot write in {parent} "
                        f"({'read-only file system' if read_only else 'permission denied'})")
    for option, other in inputs:
        if os.path.exists(target) and same_file(target, other):
            raise UserError(f"--out {path}: is the {option} file: it would be overwritten")


def write_csv(path, header, values):
    """The CSV, written whole (a temporary file renamed over `path`) or not at all."""
    text = io.StringIO(newline="")
    w = csv.writer(text)
    w.writerow(header)
    w.writerows(values.tolist())
    try:
        write_bytes(path, text.getvalue().encode())
    except OSError as e:
        raise UserError(f"--out {path}: cannot write: {e.strerror or e}") from None
