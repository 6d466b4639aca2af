"""Shared fixtures: paths of the bundled data sets, and small MNIST arrays."""
import gzip
from pathlib import Path

import numpy as np
import pytest

import h2odl_mpi

DATA = Path(h2odl_mpi.__file__).parent / "datasets"


@pytest.fixture(scope="session")
def data_dir():
    return DATA


@pytest.fixture(scope="session")
def mnist():
    """(x_train, y_train, x_test, y_test) standardised as H2O does, constant columns dropped."""
    tr = np.loadtxt(gzip.open(DATA / "mnist" / "train.csv.gz"), delimiter=",", dtype=np.float32)
    te = np.loadtxt(gzip.open(DATA / "mnist" / "test.csv.gz"), delimiter=",", dtype=np.float32)
    x, y, xt, yt = tr[:, :-1], tr[:, -1], te[:, :-1], te[:, -1]
    keep = x.min(0) != x.max(0)
    mu, sd = x[:, keep].mean(0), x[:, keep].std(0, ddof=1)
    return (x[:, keep] - mu) / sd, y, (xt[:, keep] - mu) / sd, yt
