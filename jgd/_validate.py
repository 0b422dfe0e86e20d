"""Every input check of ``fit`` and ``sweep``, run once in Python before anything compiles.

``prepare`` returns one ``Checked`` bundle (cleaned data, key, tol and the
static ``Config``); ``check_params`` and ``check_optimizer`` check the rest.
Errors name the input and the fix.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgd._checks import (
    check_hyperparameter,
    check_positive_int,
    checked_before,
    leaves_finite,
    remember_checked,
    warn_if_float64_dropped,
)
from jgd._engine import Config, n_rows
from jgd.data import Dataset, check_data

__all__ = [
    "Checked",
    "check_optimizer",
    "check_optimizer_argument",
    "check_params",
    "check_warm_start",
    "prepare",
]


class Checked(NamedTuple):
    """Validated arguments shared by ``fit`` and ``sweep``."""

    loss_fn: Any
    data: Any
    val_data: Any
    key: Any
    tol: Any
    config: Config
    metrics: dict[str, Any] | None = None

    def problem(self, optimizer: Any) -> Any:
        """The engine's ``Problem`` for these checked values (a sweep passes None)."""
        from jgd._engine import Problem

        return Problem(
            self.loss_fn, optimizer, self.data, self.val_data, self.key, self.tol, self.metrics
        )


def check_params(params: Any) -> Any:
    """Params as a pytree of finite float JAX arrays, or a clear error."""
    leaves, treedef = jax.tree.flatten(params)
    if not leaves:
        raise ValueError("params is empty; use model.init(key) to create parameters.")
    if checked_before(("params", treedef), leaves):
        return params
    for leaf in leaves:
        if hasattr(leaf, "dtype"):
            warn_if_float64_dropped(leaf.dtype, "params")
    params = jax.tree.map(lambda a: a if isinstance(a, jax.Array) else jnp.asarray(a), params)
    paths = jax.tree_util.tree_flatten_with_path(params)[0]
    for path, leaf in paths:
        if not jnp.issubdtype(leaf.dtype, jnp.inexact):
            raise TypeError(
                f"params{jax.tree_util.keystr(path)} has dtype {leaf.dtype}; parameters must be "
                "floating point."
            )
    for (path, _), ok in zip(paths, leaves_finite([leaf for _, leaf in paths])):
        if not ok:
            raise ValueError(f"params{jax.tree_util.keystr(path)} contains NaN or inf.")
    remember_checked(("params", treedef), leaves)
    return params


def check_optimizer(optimizer: Any) -> None:
    if not (
        callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))
    ):
        raise TypeError(
            "optimizer must be an optax.GradientTransformation (e.g. jgd.gd(0.1) or "
            f"optax.adam(1e-3)), got {optimizer!r}."
        )


def check_optimizer_argument(optimizer: Any, hyperparams: Any) -> Any:
    """An optimizer, or with ``hyperparams`` a factory to build inside the program.

    The values follow a sweep grid's rule: numbers, traced as float arrays, so
    new values reuse the compiled program.
    """
    from jgd._engine import OptimizerFactory

    if hyperparams is None:
        check_optimizer(optimizer)
        _check_scalar_hyperparameters(optimizer)
        return optimizer
    if not isinstance(hyperparams, dict) or not hyperparams:
        raise TypeError(
            f"hyperparams must be a non-empty dict of name -> number, got {hyperparams!r}."
        )
    if not callable(optimizer) or hasattr(optimizer, "update"):
        raise TypeError(
            "with hyperparams, optimizer must be a factory called with them, e.g. "
            f"optimizer=optax.adam, hyperparams={{'learning_rate': 1e-3}}; got {optimizer!r}."
        )
    dtype = jax.dtypes.canonicalize_dtype(np.float64)
    values = {}
    for name, value in hyperparams.items():
        check_hyperparameter(value, f"hyperparams[{name!r}]", low=-np.inf)
        if name == "learning_rate":
            check_hyperparameter(value, "hyperparams['learning_rate']", low=0.0)
        values[name] = _scalar(jnp.asarray(value, dtype), f"hyperparams[{name!r}]")
    try:
        built = optimizer(**{name: float(value) for name, value in values.items()})
    except TypeError as error:
        raise TypeError(
            f"the optimizer factory rejected hyperparams {list(values)}: {error}"
        ) from None
    check_optimizer(built)
    return OptimizerFactory(optimizer, values)


def _check_scalar_hyperparameters(optimizer: Any) -> None:
    """jgd's optimizers keep their hyperparameters as array leaves: one value each in ``fit``."""
    paths = jax.tree_util.tree_flatten_with_path(optimizer)[0]
    for path, leaf in paths:
        if hasattr(leaf, "ndim") and leaf.ndim > 0:
            raise ValueError(
                f"an optimizer hyperparameter ({jax.tree_util.keystr(path)}) is an array of shape "
                f"{leaf.shape}; fit "
                "takes one value per hyperparameter. To train several values at once, use "
                "jgd.sweep(..., optimizer=jgd.gd, grid={'learning_rate': values})."
            )


_UPHILL_CHECKED: dict[Any, bool] = {}


def warn_if_uphill(optimizer: Any, params: Any) -> None:
    """Warn when an optimizer's first update climbs the gradient (a negative learning rate).

    ``optax.adam(-0.05)`` is a valid optax object that trains uphill. One
    eager probe per optimizer (remembered by its content): the update for a
    gradient of ones at ``params``; a positive dot product with the gradient
    means ascent. Transforms that need extra arguments (line searches) fail the
    probe and are skipped.
    """
    from jgd import _filtering
    from jgd._engine import OptimizerFactory

    if isinstance(optimizer, OptimizerFactory):
        return
    update = getattr(optimizer, "update", None)
    if isinstance(update, jax.tree_util.Partial) and update.args + tuple(update.keywords.values()):
        return  # jgd's own optimizers: rates are array leaves, validated when built
    arrays, static = _filtering.partition(optimizer)
    key = (static, tuple((a.shape, str(a.dtype)) for a in jax.tree.leaves(params)))
    try:
        hash(key)
    except TypeError:
        return
    if key in _UPHILL_CHECKED or arrays:  # jgd's own optimizers validate their rates
        return
    grads = jax.tree.map(jnp.ones_like, params)
    try:
        updates, _ = optimizer.update(grads, optimizer.init(params), params)
        ascent = float(
            sum(jnp.vdot(u, g) for u, g in zip(jax.tree.leaves(updates), jax.tree.leaves(grads)))
        )
    except Exception:  # an optimizer the probe cannot drive: nothing to say
        return
    _UPHILL_CHECKED[key] = ascent > 0
    if ascent > 0:
        warnings.warn(
            "jgd: the optimizer's first update points along the gradient, so it would "
            "increase the loss: is its learning rate negative (e.g. optax.adam(-0.05))? "
            "optax expects a positive learning rate.",
            UserWarning,
            stacklevel=3,
        )


def check_warm_start(warm_start: Any, params: Any, optimizer: Any) -> Any:
    """Where a run starts: fresh ``params``, or a previous ``FitResult`` to continue."""
    from jgd._engine import OptimizerFactory, Start
    from jgd.results import FitResult

    if warm_start is None:
        return Start(check_params(params))
    if not isinstance(warm_start, FitResult):
        raise TypeError(
            f"warm_start must be a FitResult from jgd.fit, got {type(warm_start).__name__}."
        )
    if params is not None and jax.tree.leaves(params) != jax.tree.leaves(warm_start.params):
        raise ValueError(
            "warm_start continues from its own params: pass params=None (or result.params)."
        )
    params = check_params(warm_start.params)
    build = optimizer.build if isinstance(optimizer, OptimizerFactory) else lambda: optimizer
    expected = jax.eval_shape(lambda p: build().init(p), params)
    if jax.tree.structure(expected) != jax.tree.structure(warm_start.opt_state) or any(
        jnp.shape(a) != b.shape
        for a, b in zip(jax.tree.leaves(warm_start.opt_state), jax.tree.leaves(expected))
    ):
        raise ValueError(
            "warm_start's optimizer state does not fit this optimizer (another optimizer or "
            "chain?); continue with the optimizer the previous run used."
        )
    return Start(params, warm_start.opt_state, np.int32(warm_start.epochs_run))


def _check_like(val_data: Any, data: Any) -> Any:
    """``val_data`` must be laid out like ``data``: same structure, same shape per row."""
    if isinstance(data, Dataset) and isinstance(val_data, Dataset):
        if val_data.X.shape[1:] != data.X.shape[1:]:
            what = "features" if data.X.ndim == 2 else "values per row"
            raise ValueError(
                f"val_data has {val_data.n_features} {what} but data has {data.n_features} "
                f"(X shapes {val_data.X.shape} and {data.X.shape})."
            )
    if jax.tree.structure(val_data) != jax.tree.structure(data):
        raise ValueError(
            f"val_data is laid out as {jax.tree.structure(val_data)} but data as "
            f"{jax.tree.structure(data)}; give both the same fields."
        )
    paths = jax.tree_util.tree_flatten_with_path(data)[0]
    for (path, leaf), other in zip(paths, jax.tree.leaves(val_data)):
        if leaf.shape[1:] != other.shape[1:]:
            where = jax.tree_util.keystr(path)
            raise ValueError(
                f"val_data{where} has rows of shape {other.shape[1:]} but data{where} has "
                f"{leaf.shape[1:]}; they must match."
            )
    return val_data


def _check_batch_size(batch_size: Any, rows: int) -> int | None:
    if batch_size is None:
        return None
    batch_size = check_positive_int(batch_size, "batch_size")
    if batch_size > rows:
        raise ValueError(
            f"batch_size {batch_size} is larger than the data ({rows} rows); use "
            "batch_size=None for full-batch gradient descent."
        )
    return None if batch_size == rows else batch_size


def prepare(
    loss_fn: Any,
    data: Any,
    *,
    epochs: Any,
    batch_size: Any,
    key: Any,
    val_data: Any,
    tol: Any,
    patience: Any,
    record_every: Any,
    metrics: Any = None,
    has_aux: bool = False,
    loss_takes_key: bool = False,
    monitor: str = "val_loss",
    mode: str = "min",
) -> Checked:
    """Validate ``fit``/``sweep`` arguments; return cleaned values and the static config."""
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function (params, batch) -> scalar, got {loss_fn!r}.")
    data = check_data(data, "data")
    if val_data is not None:
        val_data = _check_like(check_data(val_data, "val_data"), data)
    epochs = check_positive_int(epochs, "epochs")
    if epochs > MAX_EPOCHS:
        raise ValueError(
            f"epochs={epochs} is more than jgd's int32 epoch counter holds ({MAX_EPOCHS}); "
            "use fewer epochs (and tol= or patience= to stop when done)."
        )
    record_every = _record_every(check_positive_int(record_every, "record_every"), epochs)
    batch_size = _check_batch_size(batch_size, n_rows(data))
    if patience is not None:
        patience = check_positive_int(patience, "patience")
        if val_data is None:
            raise ValueError("patience needs val_data: early stopping watches the validation loss.")
    if tol is not None:
        check_hyperparameter(tol, "tol", low=0.0, low_inclusive=True)
        tol = _scalar(tol, "tol")
    metrics = check_metrics(metrics)
    monitor, maximize = check_monitor(monitor, mode, metrics)
    key = check_key(key)
    if loss_takes_key and key is None:
        raise ValueError(
            "loss_takes_key=True needs key=jax.random.key(seed): the loss's per-step keys "
            "are derived from it."
        )
    shuffle = batch_size is not None and key is not None
    config = Config(
        epochs=epochs,
        batch_size=batch_size,
        record_every=record_every,
        patience=patience,
        use_tol=tol is not None,
        shuffle=shuffle,
        has_aux=bool(has_aux),
        loss_takes_key=bool(loss_takes_key),
        monitor=monitor,
        maximize=maximize,
    )
    key = key if shuffle or loss_takes_key else None
    return Checked(loss_fn, data, val_data, key, tol, config, metrics)


#: The epoch counter is int32 (warm starts add to it, so leave room).
MAX_EPOCHS = 2**30
#: The most history records a run keeps; beyond, record_every grows (see _record_every).
MAX_RECORDS = 1_000_000


def _record_every(record_every: int, epochs: int) -> int:
    """History memory follows a clear rule: at most ``MAX_RECORDS`` records per run.

    History is allocated for every record before the run starts (a compiled
    program has fixed shapes), so ``epochs=50_000_000`` with ``tol`` would
    allocate hundreds of MB for a run that may stop at epoch 122. Past the
    cap, every k-th epoch is kept with k = ceil(epochs / MAX_RECORDS), and a
    warning says so.
    """
    if -(-epochs // record_every) <= MAX_RECORDS:
        return record_every
    wider = -(-epochs // MAX_RECORDS)
    warnings.warn(
        f"jgd: epochs={epochs} with record_every={record_every} would keep "
        f"{-(-epochs // record_every):,} history records; jgd keeps at most {MAX_RECORDS:,}, so "
        f"record_every={wider} (one record every {wider} epochs, and the last). Pass record_every "
        "to choose.",
        UserWarning,
        stacklevel=4,
    )
    return wider


def _scalar(value: Any, name: str) -> jax.Array:
    """A scalar hyperparameter as an array; arrays of several values are refused."""
    array = jnp.asarray(value)
    if array.ndim != 0:
        raise ValueError(
            f"{name} must be a single number, got an array of shape {array.shape}; to try "
            "several values, use jgd.sweep with a grid."
        )
    return array


def check_key(key: Any) -> Any:
    """A PRNG key: typed keys and raw uint32 keys pass; an int seed becomes ``key(seed)``."""
    if key is None:
        return None
    if isinstance(key, (bool, np.bool_)):
        raise TypeError(f"key must be a PRNG key (jax.random.key(0)) or an int seed, got {key!r}.")
    if isinstance(key, (int, np.integer)):
        return jax.random.key(int(key))
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return key
    if dtype == np.uint32 and getattr(key, "shape", None) == (2,):
        return key
    raise TypeError(f"key must be a PRNG key (jax.random.key(0)) or an int seed, got {key!r}.")


def check_metrics(metrics: Any) -> dict[str, Any] | None:
    """``{name: fn(params, batch) -> scalar}`` with keyword-like names, or None."""
    if metrics is None:
        return None
    if not isinstance(metrics, dict) or not metrics:
        raise TypeError(
            "metrics must be a non-empty dict of name -> fn(params, batch) -> scalar, "
            f"got {metrics!r}."
        )
    for name, fn in metrics.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"metric names must be identifiers like 'accuracy', got {name!r}.")
        if not callable(fn):
            raise TypeError(f"metrics[{name!r}] must be a function (params, batch) -> scalar.")
    return dict(metrics)


def check_monitor(monitor: Any, mode: Any, metrics: dict[str, Any] | None) -> tuple[str, bool]:
    """What early stopping watches: ``"val_loss"`` or ``"val_<metric>"``; mode min or max."""
    allowed = ["val_loss", *(f"val_{name}" for name in metrics or {})]
    if monitor not in allowed:
        raise ValueError(f"monitor must be one of {allowed}, got {monitor!r}.")
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}.")
    return monitor, mode == "max"
