"""Strict JAX settings for the whole suite: implicit rank promotion is a bug."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")  # plots are tested headless
# One BLAS / OpenMP thread for the NumPy, SciPy and scikit-learn references (results are
# the same; XLA keeps its own thread pool). On the 2-core machines the suite runs on, their
# spinning workers compete with XLA's and with each other: one reference
# LogisticRegression fit on the digits took 20 s with two threads, 0.2 s with one. Child
# processes (examples, CLI) inherit the variables.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import jax
import pytest

try:  # the same limit for the libraries already loaded
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - comes with scikit-learn
    pass
else:
    threadpool_limits(1)

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    doctest_namespace["jax"] = jax
