"""An ensemble file read and scored as one model: its members (each a model file's bytes),
their predictions' weighted mean, and the (network, model, info) that predict_frame,
score_rows and model_performance take for it (docs/model_format.md, "Ensembles").

The file is written by h2odl_mpi.workflows.ensemble, which builds an ensemble from a
search's best models.  The weighted mean is computed as p_a + sum_k w_k (p_k - p_a), a the
member of the largest weight: the same value as sum_k w_k p_k (the weights sum to 1) that
reproduces p_a bit for bit when the members predict alike.
"""
import io
import json
from dataclasses import dataclass

import h5py
import numpy as np

from h2odl_mpi.errors import UserError
from h2odl_mpi.evaluation.row_blocks import dense_rows
from h2odl_mpi.model.model_io import attr_text, content_crc, crc32_of, damage_text, load_model, read_file, unseal

FORMAT = "h2odl_mpi-ensemble-1"


# ------------------------------------------------------------------------------ members

@dataclass
class Member:
    """One model of the ensemble: its id, load_model's values and its file's bytes."""
    model_id: str
    network: object
    model: np.ndarray
    info: object
    params: dict
    attrs: dict
    image: bytes

    def outputs(self, rows, threads=None):
        """Its predictions of kernel `rows`: class probabilities corrected for
        balance_classes (n, K), or regression values in the response's units (n, 1)."""
        out = self.network.predict(self.model, rows, "output", threads=threads)
        if self.info.classification:
            return self.info.correct_probabilities(out)
        return self.info.decode_response(out[:, :1].astype(np.float64))


def load_member(model_id, image, where):
    """A Member from a model file's bytes; `where` names it in errors."""
    network, model, info, params, attrs = load_model(where, image=image)
    if not np.all(np.isfinite(model[:network.n_params])):
        raise UserError(f"{where}: the model's weights are not all finite (a diverged model)")
    return Member(model_id, network, model, info, params, attrs, bytes(image))


def check_members(members):
    """UserError naming the first member that cannot join the others: an autoencoder, or
    another response, kind or classes than the first (best) member's."""
    first = members[0]
    for m in members:
        if m.info.autoencoder:
            raise UserError(f"{m.model_id} is an autoencoder: an ensemble averages the predictions of "
                            "classification or regression models")
    want = (first.info.response, first.info.kind, list(first.info.domain))
    for m in members[1:]:
        got = (m.info.response, m.info.kind, list(m.info.domain))
        if got != want:
            raise UserError(f"{m.model_id} cannot join an ensemble with {first.model_id}: response "
                            f"{_describe(*got)} against {_describe(*want)} (members need the same response, "
                            "classes and kind)")


def _describe(response, kind, domain):
    classes = f", classes {','.join(map(str, domain))}" if kind == "classification" else ""
    return f"{response!r} ({kind}{classes})"


# ------------------------------------------------------------------------------ scoring

def weighted_mean(outputs, weights):
    """sum_k w_k outputs_k for weights summing to 1, as p_a + sum_k w_k (p_k - p_a), a the
    member of the largest weight (bit for bit p_a when the members' outputs are equal)."""
    w = np.asarray(weights, dtype=np.float64)
    a = int(np.argmax(w))
    total = np.array(outputs[a], dtype=np.float64, copy=True)
    for k, out in enumerate(outputs):
        if k != a and w[k] != 0.0:
            total += w[k] * (np.asarray(out, dtype=np.float64) - outputs[a])
    return total


class EnsembleRows:
    """Each member's kernel rows of the same frame rows (members may lay out inputs
    differently); y, weight and offset are the first member's (the same response)."""

    def __init__(self, parts):
        self.parts = list(parts)
        first = self.parts[0]
        self.n_rows, self.y, self.weight, self.offset = first.n_rows, first.y, first.weight, first.offset

    def dense_subset(self, idx):
        """Rows `idx` as dense rows of every member (row_blocks.dense_rows, part by part)."""
        return EnsembleRows([dense_rows(p, idx) for p in self.parts])


class EnsembleNetwork:
    """What predict and performance call a network, for an ensemble: predict(weights, rows,
    "output") is the weighted mean of the members' predictions (probabilities corrected,
    regression values in the response's units: EnsembleInfo leaves them as they are)."""
    is_ensemble = True

    def __init__(self, members):
        self.members = list(members)
        self.n_params = len(self.members)   # the "model" of an ensemble is its weights
        self.n_layers = 0
        self.config = self.members[0].network.config
        self.units = self.members[0].network.units

    def member_outputs(self, rows, threads=None):
        return [m.outputs(part, threads) for m, part in zip(self.members, rows.parts)]

    def predict(self, model, rows, what="output", layer=None, threads=None):
        if what != "output":
            raise UserError(f"an ensemble gives its members' averaged predictions only, not {what!r}")
        return weighted_mean(self.member_outputs(rows, threads), model)


class EnsembleInfo:
    """The first member's data description (response, classes, settings, ...) with what an
    ensemble does differently: each member's rows, each member's checks, and outputs that
    are already probabilities or in the response's units."""
    autoencoder = False

    def __init__(self, members):
        self._first = members[0].info
        self.members = list(members)
        self._distinct = []
        seen = set()
        for m in self.members:
            key = m.info.to_bytes()
            if key not in seen:
                seen.add(key)
                self._distinct.append(m.info)

    def __getattr__(self, name):
        if name.startswith("__") or name == "_first":
            raise AttributeError(name)
        return getattr(self._first, name)

    def rows(self, frame, training=False):
        return EnsembleRows([m.info.rows(frame, training=training) for m in self.members])

    def check_finite(self, frame, summaries=None, response=True):
        for info in self._distinct:
            info.check_finite(frame, summaries, response=response)

    def correct_probabilities(self, probs):
        return np.array(probs, dtype=np.float64, copy=True)

    def decode_response(self, value):
        return np.asarray(value, dtype=np.float64)

    def __repr__(self):
        return f"EnsembleInfo({len(self.members)} members, {self._first!r})"


def scoring_parts(members, weights):
    """(network, model, info) for predict_frame, score_rows and model_performance."""
    return EnsembleNetwork(members), np.asarray(weights, dtype=np.float64), EnsembleInfo(members)


def is_ensemble(image):
    """Whether the bytes are an ensemble file (its format attribute).  Bytes whose seal
    (model_io.unseal) does not match are none: HDF5 never parses a damaged file here, and
    the loader then says what is wrong."""
    try:
        image = unseal(image, "")
        with h5py.File(io.BytesIO(image), "r") as f:
            return attr_text(f.attrs.get("format", "")) == FORMAT
    except Exception:  # noqa: BLE001 - not HDF5 at all: load_model says what it is
        return False


def load_ensemble(path, image=None):
    """(network, weights, info, params, attrs) of an ensemble file, as load_model's: an
    EnsembleNetwork, the weights (the ensemble's "model"), an EnsembleInfo, the first
    member's parameters, and attrs with `metrics` (the ensemble's, by data set), `members`,
    `weights`, `history` (empty).  Checksums are verified, every member's too."""
    image = unseal(read_file(path) if image is None else image, path)
    try:
        with h5py.File(io.BytesIO(image), "r") as f:
            if attr_text(f.attrs.get("format", "")) != FORMAT:
                raise UserError(f"{path}: not an ensemble file of format {FORMAT}")
            if content_crc(f) != int(f.attrs["content_crc32"]):
                raise UserError(f"{path}: checksum mismatch in the attributes (content_crc32): the file is damaged")
            data = {}

            def check(name, obj):
                if isinstance(obj, h5py.Dataset):
                    if obj.size * obj.dtype.itemsize > len(image):   # (nothing is compressed)
                        raise UserError(f"{path}: {name} claims more bytes than the file holds: it is damaged")
                    data[name] = obj[()]
                    if "crc32" not in obj.attrs or crc32_of(data[name]) != int(obj.attrs["crc32"]):
                        raise UserError(f"{path}: checksum mismatch in {name}: the file is damaged")
            f.visititems(check)
            attrs = {k: f.attrs[k] for k in f.attrs}
            weights = np.asarray(data["ensemble/weights"], dtype=np.float64)
            ids = [attr_text(v) for v in data["ensemble/model_ids"]]
            images = [data[f"ensemble/members/member_{i}"].tobytes() for i in range(len(ids))]
            attrs["metrics"] = {k[len("metrics/"):]: json.loads(attr_text(v)) for k, v in data.items()
                                if k.startswith("metrics/")}
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - h5py and HDF5 report a damaged file with many types
        raise UserError(f"{path}: cannot read the ensemble file (damaged or truncated?): {damage_text(e)}") from None
    if len(weights) != len(ids) or not len(ids) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise UserError(f"{path}: the ensemble's weights are not {len(ids)} finite non-negative numbers")
    members = [load_member(mid, img, f"{path} (member {mid})") for mid, img in zip(ids, images)]
    check_members(members)
    attrs.update(members=ids, weights=weights.tolist(), history=[])
    network, model, info = scoring_parts(members, weights)
    return network, model, info, members[0].params, attrs
