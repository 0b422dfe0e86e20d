"""jgd: gradient descent compiled with JAX.

A loss ``loss_fn(params, batch) -> scalar``, optax-compatible optimizers, and a
whole training run (every epoch and mini-batch) compiled into one XLA program.
"""

from jgd import (
    compare,
    curvature,
    data,
    datasets,
    distributed,
    losses,
    metrics,
    models,
    problems,
    schedules,
)
from jgd.curvature import lr_bound
from jgd.data import Dataset
from jgd.exact import least_squares
from jgd.losses import objective
from jgd.optimizers import gd, momentum, nesterov
from jgd.serialization import load, save
from jgd.sweeps import Halving, SweepResult, sweep
from jgd.training import FitResult, History, Status, fit

__version__ = "0.1.0"

__all__ = [
    "Dataset",
    "FitResult",
    "Halving",
    "History",
    "Status",
    "SweepResult",
    "compare",
    "curvature",
    "data",
    "datasets",
    "distributed",
    "fit",
    "gd",
    "least_squares",
    "load",
    "losses",
    "lr_bound",
    "metrics",
    "models",
    "momentum",
    "nesterov",
    "objective",
    "problems",
    "save",
    "schedules",
    "sweep",
]
