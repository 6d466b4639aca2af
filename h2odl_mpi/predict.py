"""`predict`: score a data file with a saved model and write a predictions CSV.

Classification writes `predict` (the class label) and one probability column per class;
regression the value in the response's units; --anomaly the per-row reconstruction MSE of
an autoencoder; --deepfeatures K the activations of hidden layer K.  Rows come out in the
input's order.  Rank 0 reads the data into the column store, scores it (the kernel's
threads in parallel) and writes the file.
"""
import csv

import numpy as np

from h2odl_mpi.atomic import replacing
from h2odl_mpi.collectives import rank_and_size
from h2odl_mpi.errors import UserError, agree
from h2odl_mpi.frame import Frame
from h2odl_mpi.model_io import load_model


def predict_file(model_path, data_path, out_path, comm=None, threads=None, anomaly=False,
                 deepfeatures=None):
    err = None
    try:
        network, model, info, _params, _attrs = load_model(model_path)
    except Exception as e:  # noqa: BLE001 - reported on every rank by agree()
        err = e
    agree(comm, err)
    if rank_and_size(comm)[0] != 0:
        return None
    frame = Frame.read(data_path)  # rank 0 reads and scores, keeping the input's row order
    rows = info.rows(frame, training=False)
    if anomaly:
        if not info.autoencoder:
            raise UserError(f"{model_path}: --anomaly needs an autoencoder model")
        values = network.predict(model, rows, "recon", threads=threads)
        header = ["Reconstruction.MSE"]
    elif deepfeatures is not None:
        n_hidden = network.n_layers - 1
        if not 0 <= deepfeatures < n_hidden:
            raise UserError(f"--deepfeatures: the model has hidden layers 0..{n_hidden - 1}")
        values = network.predict(model, rows, "hidden", layer=deepfeatures, threads=threads)
        header = [f"DF.L{deepfeatures + 1}.C{j + 1}" for j in range(values.shape[1])]
    elif info.autoencoder:
        values = network.predict(model, rows, "output", threads=threads)
        header = [f"reconstr_{n}" for n in info.input_names]
    elif info.classification:
        prob = info.correct_probabilities(network.predict(model, rows, "output", threads=threads))
        labels = np.array(info.domain, dtype=object)[prob.argmax(1)]
        values = np.column_stack([labels, prob.astype(object)])
        header = ["predict"] + [f"p{d}" for d in info.domain]
    else:
        out = network.predict(model, rows, "output", threads=threads)[:, 0].astype(np.float64)
        values = info.decode_response(out)[:, None]
        header = ["predict"]
    with replacing(out_path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(values.tolist())
    return values
