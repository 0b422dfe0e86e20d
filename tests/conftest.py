"""Strict JAX settings for the whole suite: implicit rank promotion is a bug."""

import os
import shutil
import tempfile

os.environ.setdefault("MPLBACKEND", "Agg")  # plots are tested headless
# One BLAS / OpenMP thread for the NumPy, SciPy and scikit-learn references (results are
# the same; XLA keeps its own thread pool). On the 2-core machines the suite runs on, their
# spinning workers compete with XLA's and with each other: one reference
# LogisticRegression fit on the digits took 20 s with two threads, 0.2 s with one. Child
# processes (examples, CLI) inherit the variables.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

# One persistent compilation cache for the session (a fresh directory: CI starts cold),
# shared with the child processes (pytest-xdist workers, examples, CLI, multi-device runs:
# they inherit the variable, so only the process that made the directory removes it).
# The suite is mostly XLA compiles, and many are the same program again: another closure
# of the same function, another process running the same command. Programs are looked up
# by their HLO and compile options, so a hit is the executable the compile would have made.
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jgd-tests-xla-")
elif os.environ.get("PYTEST_XDIST_WORKER"):
    # A folder per worker: two workers writing one entry at once could leave a
    # half-written file for the other to read (the cache has no lock without filelock).
    _WORKER_CACHE = os.path.join(
        os.environ["JAX_COMPILATION_CACHE_DIR"], os.environ["PYTEST_XDIST_WORKER"]
    )
    os.makedirs(_WORKER_CACHE, exist_ok=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _WORKER_CACHE
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402 (after the environment it reads)
import pytest  # noqa: E402

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


def pytest_sessionfinish(session, exitstatus):
    """Remove the session's compilation cache (child processes have ended by now)."""
    if _OWN_CACHE:
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
