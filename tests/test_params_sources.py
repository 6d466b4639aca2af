"""params.SPEC is the one source of parameter names, choices and limits: the kernel's and the
preprocessing's tables agree with it, and a training run leaves no global state behind."""
import signal

import numpy as np
import pytest

from h2odl_mpi import kernel, params
from h2odl_mpi.data import encodings
from h2odl_mpi.errors import UserError
from h2odl_mpi.training.trainer import train


def test_every_activation_and_weight_distribution_reaches_the_kernel():
    for act in params.SPEC["activation"][2]:
        assert act.replace("WithDropout", "") in kernel.ACTIVATIONS
    assert set(kernel.ACTIVATIONS) == {a.replace("WithDropout", "") for a in params.ACTIVATIONS}
    assert kernel.WEIGHT_DISTRIBUTIONS is params.SPEC["initial_weight_distribution"][2]
    assert set(params.SPEC["categorical_encoding"][2]) == set(encodings.CATEGORICAL_ENCODINGS)


def test_the_layer_limit_is_the_kernels():
    deepest = [3] * params.MAX_HIDDEN_LAYERS
    assert params.MAX_HIDDEN_LAYERS == kernel.MAX_LAYERS - 1
    kernel.Network(kernel.NetConfig(units=[2] + deepest + [2]))  # the kernel takes the deepest
    params.validate({"hidden": deepest})
    with pytest.raises(UserError, match=f"at most {params.MAX_HIDDEN_LAYERS} hidden layers"):
        params.validate({"hidden": deepest + [3]})


def test_h2o_choices_not_implemented_are_refused_with_the_reason():
    with pytest.raises(UserError, match="categorical_encoding='Eigen' is not supported: .*eigenvector"):
        params.validate({"categorical_encoding": "Eigen"})
    with pytest.raises(UserError, match="is not one of"):
        params.validate({"categorical_encoding": "Nonsense"})


def test_a_run_leaves_the_signal_handlers_as_it_found_them(tmp_path):
    path = tmp_path / "d.csv"
    rng = np.random.default_rng(0)
    path.write_text("x,y\n" + "".join(f"{v:.4f},{int(v > 0)}\n" for v in rng.normal(size=200)))
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    train(params.validate({"train": str(path), "response": "y", "hidden": [3], "epochs": 1, "quiet_mode": True,
                           "checkpoint_dir": str(tmp_path / "ck"), "threads": 1}))
    assert {s: signal.getsignal(s) for s in before} == before
