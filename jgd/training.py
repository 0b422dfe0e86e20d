"""``fit``: a whole gradient-descent run compiled into one XLA loop.

A thin entry point over the engine (``jgd._engine``) and the driver
(``jgd._driver``): validate the inputs once, split them into traced arrays
and static structure, run the compiled loop, convert the outcome. One
program does the work: ``_fit_run`` builds a fresh run's state and runs
every epoch, mini-batch, reshuffle, validation pass, stopping test and
history write inside one ``lax.while_loop``; ``_fit_finish`` picks the
final params when patience may have kept better ones. Progress bars and
checkpoints call the same program chunk by chunk, so they give the same bits.
"""

from __future__ import annotations

import functools
import os
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jgd import _filtering, _progress, _sharding
from jgd._driver import Program, RunOptions, check_checkpointing, drive
from jgd._engine import (
    Config,
    Outcome,
    Problem,
    Start,
    State,
    advance_until,
    constrained,
    finish,
    initial_state,
    n_rows,
    n_values,
    values_per_row,
)
from jgd._validate import check_optimizer_argument, check_warm_start, prepare, warn_if_uphill
from jgd.data import Dataset
from jgd.results import FitResult, History, Status, fit_result

__all__ = ["FitResult", "History", "Status", "fit"]


@functools.partial(jax.jit, static_argnames=("static", "config"))
def _fit_start(arrays: list[Any], static: _filtering.Static, config: Config) -> State:
    problem, start = _filtering.combine(arrays, static)
    return initial_state(constrained(problem, config), config, start)


@functools.partial(jax.jit, static_argnames=("static", "config"))
def _fit_run(
    arrays: list[Any], static: _filtering.Static, config: Config, state: State, fresh, stop_at
) -> tuple[State, jax.Array]:
    """Every call of a run, fresh or continued: the loop to ``stop_at``.

    With ``fresh`` the state is built here from the start params (``state``
    is then a placeholder of its shapes), so a one-chunk run is one program
    call; later chunks continue ``state``. Whole and chunked runs call this
    same program, so they run the same compiled loop and agree bit for bit.
    It also returns the counters the host reads after the last chunk (in one
    array: one transfer instead of four).
    """
    problem, start = _filtering.combine(arrays, static)
    problem = constrained(problem, config)
    state = lax.cond(
        fresh, lambda: initial_state(problem, config, start), lambda: _kept(state, fresh)
    )
    state = advance_until(problem, config, state, stop_at)
    return state, _counters(state)


def _kept(state: State, fresh: jax.Array) -> State:
    """``state`` itself, as new buffers (``fresh`` is False on this branch).

    Passed through unchanged, the loop would have to copy every argument of
    a fresh run too (XLA places those copies before the cond, not in it):
    13 copies in a small fit, about 15 % of its program time. A select
    (exact) gives the branch its own buffers. Key arrays pass through.
    """

    def own(leaf: jax.Array) -> jax.Array:
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            return leaf
        return jnp.where(fresh, jnp.zeros_like(leaf), leaf)

    return jax.tree.map(own, state)


def _counters(state: State | Outcome) -> jax.Array:
    """status, epochs_run, diverged_at and the number of history records filled."""
    filled = jnp.sum(state.history.epoch > 0)
    return jnp.stack([state.status, state.epochs_run, state.diverged_at, filled])


@functools.partial(jax.jit, static_argnames=("config",))
def _fit_finish(state: State, config: Config) -> Outcome:
    return finish(state, config)


#: States of up to this many values keep a cached placeholder (``_placeholder``).
_SMALL_STATE = 2**18
_PLACEHOLDERS: dict[Any, State | None] = {}


def _placeholder(arrays: list[Any], static: _filtering.Static, config: Config) -> State | None:
    """Zeros shaped like the fresh state, cached per problem layout (or None).

    A fresh ``_fit_run`` call needs a state argument of the right shapes,
    which it then ignores. Small states keep one (at most 16 layouts of at
    most ``_SMALL_STATE`` values); large states, and states placed on a mesh,
    start with ``_fit_start`` instead: one program call more, no memory held.
    The layout includes the settings that change traced dtypes (x64, the
    PRNG implementation).
    """
    if config.data_sharding is not None:
        return None
    layout = (
        static,
        config,
        jax.config.jax_enable_x64,
        jax.config.jax_default_prng_impl,
        *(_layout(x) for x in arrays),
    )
    try:
        return _PLACEHOLDERS[layout]
    except KeyError:
        pass
    shapes = jax.eval_shape(functools.partial(_fit_start, static=static, config=config), arrays)
    small = n_values(shapes) <= _SMALL_STATE
    placeholder = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes) if small else None
    while len(_PLACEHOLDERS) >= 16:  # forget the oldest (another thread may do it too)
        _PLACEHOLDERS.pop(next(iter(_PLACEHOLDERS), None), None)
    _PLACEHOLDERS[layout] = placeholder
    return placeholder


def _layout(array: Any) -> Any:
    """What fixes the state's shapes: shape, dtype, weak type (a JAX array's aval)."""
    return array.aval if isinstance(array, jax.Array) else (array.shape, array.dtype)


def _program(problem: Problem, start: Start, config: Config, first_epoch: int) -> Program:
    arrays, static = _filtering.partition((problem, start))
    placeholder = _placeholder(arrays, static, config)

    def begin(stop_at) -> tuple[State, jax.Array]:
        """A fresh run to ``stop_at``."""
        if placeholder is not None:
            return _fit_run(arrays, static, config, placeholder, np.True_, stop_at)
        return continued(_fit_start(arrays, static, config), stop_at)

    def continued(state: State, stop_at) -> tuple[State, jax.Array]:
        return _fit_run(arrays, static, config, state, np.False_, stop_at)

    def whole(stop_at) -> tuple[Outcome, jax.Array]:
        state, counters = begin(stop_at)
        outcome = finish(state, config) if config.patience is None else _fit_finish(state, config)
        return outcome, counters

    def postfix(state: State) -> dict[str, str]:
        return _bar_postfix(state, config.record_every)

    def fingerprint(state: State) -> dict[str, Any]:
        from jgd import checkpoint as checkpoints

        return checkpoints.fingerprint(
            loss_fn=problem.loss_fn,
            optimizer=problem.optimizer,
            data=problem.data,
            val_data=problem.val_data,
            key=problem.key,
            tol=problem.tol,
            config=config,
            state=state,
        )

    return Program(
        # The fresh state is a zero-epoch run of the same program.
        start=lambda: begin(np.int32(first_epoch))[0],
        advance=lambda state, stop_at: continued(state, stop_at)[0],
        run=whole,
        # Without patience, finishing only repackages the state: no program call.
        finish=(lambda state: (finish(state, config), None))
        if config.patience is None
        else (lambda state: (_fit_finish(state, config), None)),
        running=lambda state: bool(state.status == Status.MAX_EPOCHS),
        postfix=postfix,
        fingerprint=fingerprint,
    )


@functools.partial(jax.jit, static_argnames=("record_every",))
def _bar_values(state: State, record_every: int) -> dict[str, jax.Array]:
    """The latest and best training and validation values, for the progress bar."""
    history = state.history
    slot = jnp.maximum(state.epoch - state.first_epoch - 1, 0) // record_every
    values = {"loss": history.loss[slot], "best": jnp.nanmin(history.loss)}
    if history.val_loss is not None:
        values["val_loss"] = history.val_loss[slot]
        values["best_val"] = jnp.nanmin(history.val_loss)
    for name, trace in (history.val_metrics or history.metrics or {}).items():
        prefix = "val_" if history.val_metrics is not None else ""
        values[f"{prefix}{name}"] = trace[slot]
        break  # one metric: the first
    return values


def _bar_postfix(state: State, record_every: int) -> dict[str, str]:
    values = jax.device_get(_bar_values(state, record_every))
    return {name: f"{float(value):.4g}" for name, value in values.items()}


def _placed(problem: Problem, start: Start, config: Config, mesh: Any):
    """Arrays on the mesh (if any) and the config that records where they are."""
    if mesh is not None:
        arrays, static = _filtering.partition((problem, start))
        arrays, rows = _sharding.place_on_mesh(arrays, (problem.data, problem.val_data), mesh)
        problem, start = _filtering.combine(arrays, static)
        config = config._replace(data_sharding=rows)
    return problem, start, config._replace(native=_sharding.on_one_device((problem, start)))


def fit(
    loss_fn: Any,
    params: Any,
    data: Dataset,
    *,
    optimizer: optax.GradientTransformation,
    epochs: int,
    batch_size: int | None = None,
    key: jax.Array | None = None,
    val_data: Dataset | None = None,
    tol: float | None = None,
    patience: int | None = None,
    record_every: int = 1,
    record_params: bool = False,
    progress: bool | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    mesh: Any = None,
    metrics: dict[str, Any] | None = None,
    has_aux: bool = False,
    loss_takes_key: bool = False,
    monitor: str = "val_loss",
    mode: str = "min",
    hyperparams: dict[str, Any] | None = None,
    warm_start: FitResult | None = None,
) -> FitResult:
    """Train ``params`` to minimise ``loss_fn`` in one compiled program.

    Args:
        loss_fn: ``loss_fn(params, batch) -> scalar`` with ``batch`` a
            ``Dataset`` (or rows of ``data``'s pytree), e.g.
            ``jgd.objective(model, jgd.losses.mse)``. With ``has_aux=True`` it
            returns ``(loss, aux)``, aux a dict of scalars; with
            ``loss_takes_key=True`` it is called ``loss_fn(params, batch, key)``.
        params: the starting parameters (a pytree of float arrays).
        data: the training ``Dataset``, or any pytree of arrays sharing their
            leading row axis (``{"image": (n, 8, 8), "label": (n,)}``; integer
            leaves allowed); pandas objects are accepted as arrays.
        optimizer: any ``optax.GradientTransformation`` (``jgd.gd(0.1)``,
            ``optax.adam(1e-3)``, ``optax.lbfgs()``: optimizers taking optax's
            extra arguments get ``value``, ``grad`` and ``value_fn``), or with
            ``hyperparams`` a factory such as ``optax.adam``.
        epochs: the most epochs to run (with ``warm_start``: more epochs).
        batch_size: ``None`` for full-batch GD, ``1`` for stochastic GD, ``k``
            for mini-batches of ``k`` rows (the last short batch counts with its
            true size).
        key: PRNG key (or an int seed) to reshuffle the rows every epoch
            (mini-batch only; without one the rows are visited in order) and to
            derive the loss's per-step keys.
        val_data: data laid out like ``data`` whose loss is recorded after every
            epoch.
        tol: stop with ``Status.CONVERGED`` when the training loss changes by
            less than ``tol`` relative to the previous epoch's.
        patience: with ``val_data``, stop with ``Status.EARLY_STOPPED`` after
            this many epochs without a better ``monitor`` value and return the
            best parameters. A NaN/inf monitored value stops the run with
            ``Status.VALIDATION_NONFINITE`` (it cannot be ranked).
        record_every: keep every k-th epoch's losses (and the last epoch's).
        record_params: also keep the parameters after each recorded epoch in
            ``history.params`` (for plotting the path; memory grows with it).
        progress: show a tqdm bar (the ``progress`` extra). The run is then
            compiled as chunks of epochs; the result is the same, bit for bit.
            Default: on when stderr is a terminal and epochs × rows ≥ 10⁸.
        checkpoint: a ``.npz`` path; every ``checkpoint_every`` epochs (default:
            a tenth of ``epochs``) the whole state is written there atomically.
        checkpoint_every: epochs between checkpoints.
        resume: continue from ``checkpoint`` when it exists (else start afresh).
            The result equals the uninterrupted run's. A checkpoint of another
            problem (data, shapes, optimizer, settings, key) is refused with
            what differs; a corrupted or truncated one is refused too.
        mesh: a ``jax.sharding.Mesh`` (or ``"auto"``: all devices) to train
            data-parallel: rows sharded over its ``"data"`` axis (or first
            axis), parameters replicated, gradients all-reduced by XLA. The
            mini-batches are the global ones, so results equal the
            single-device run to round-off. See ``jgd.distributed``.
        metrics: ``{name: fn(params, batch) -> scalar}``, evaluated inside the
            compiled program after each epoch's updates on ``data`` and
            ``val_data``: ``history.metrics[name]``, ``history.val_metrics[name]``.
            ``jgd.metrics`` has ready ones (accuracy, log-loss, R²).
        has_aux: the loss returns ``(loss, aux)``; each aux entry's
            size-weighted mean over the epoch's steps is in ``history.aux``.
        loss_takes_key: call ``loss_fn(params, batch, key)`` with a fresh key
            per step (dropout, noise), ``fold_in(fold_in(fold_in(key, stream),
            epoch), step)``: reproducible and the same with or without bars,
            chunks or resume. When jgd evaluates the loss (validation loss,
            final loss) it passes ``key=None``: switch dropout off then.
        monitor: what ``patience`` watches: ``"val_loss"`` or ``"val_<metric>"``.
        mode: ``"min"`` (lower is better) or ``"max"`` (e.g. accuracy).
        hyperparams: ``{name: number}`` for an optimizer factory, e.g.
            ``optimizer=optax.adam, hyperparams={"learning_rate": 1e-3}``: the
            optimizer is built inside the program with the values as traced
            data, so new values reuse the compiled program (as a sweep's grid).
        warm_start: a previous ``FitResult`` to continue: its params, optimizer
            state (moments, schedule counts) and epoch count; with the same
            ``key`` the shuffles continue too, so 20 epochs then 30 more equal
            one 50-epoch run. Pass ``params=None``. ``history`` holds the new
            epochs (numbered from the previous count).

    Returns:
        A ``FitResult``. A NaN/inf loss or parameter ends the run with
        ``Status.DIVERGED``, keeping the last finite parameters.

    Example:
        >>> import jax.numpy as jnp, jgd
        >>> X = jnp.array([[0.0], [1.0], [2.0]]); y = 2 * X[:, 0] + 1
        >>> model = jgd.models.linear(1)
        >>> result = jgd.fit(jgd.objective(model, jgd.losses.mse), model.init(None),
        ...                  jgd.Dataset(X, y), optimizer=jgd.gd(0.1), epochs=2000)
        >>> [round(float(v), 3) for v in (result.params["w"][0], result.params["b"])]
        [2.0, 1.0]
    """
    optimizer = check_optimizer_argument(optimizer, hyperparams)
    start = check_warm_start(warm_start, params, optimizer)
    warn_if_uphill(optimizer, start.params)
    checked = prepare(
        loss_fn,
        data,
        epochs=epochs,
        batch_size=batch_size,
        key=key,
        val_data=val_data,
        tol=tol,
        patience=patience,
        record_every=record_every,
        metrics=metrics,
        has_aux=has_aux,
        loss_takes_key=loss_takes_key,
        monitor=monitor,
        mode=mode,
    )
    config = checked.config._replace(record_params=bool(record_params))
    first = int(start.epoch)
    options = RunOptions(
        epochs=first + config.epochs,
        description="jgd.fit",
        progress=_progress.wanted(progress, config.epochs, n_rows(checked.data)),
        checkpoint=None if checkpoint is None else os.fspath(checkpoint),
        checkpoint_every=check_checkpointing(checkpoint, checkpoint_every, resume, config.epochs),
        resume=resume,
        first_epoch=first,
        long=_progress.long_run(
            config.epochs,
            n_rows(checked.data),
            values_per_row(checked.data),
            n_values(start.params),
        ),
    )
    problem = checked.problem(optimizer)
    problem, start, config = _placed(problem, start, config, mesh)
    outcome, counters = drive(_program(problem, start, config, first), options)
    if counters is None:
        counters = jax.device_get(_counters(outcome))
    status, epochs_run, diverged_at, filled = np.asarray(counters).tolist()
    message = _message(
        problem, config, start.params, int(status), int(diverged_at), int(epochs_run)
    )
    return fit_result(
        outcome.params,
        outcome.opt_state,
        outcome.history,
        status,
        epochs_run,
        diverged_at,
        message,
        filled=filled,
    )


def _message(
    problem: Problem, config: Config, params: Any, status: int, diverged_at: int, epochs_run: int
) -> str | None:
    """The result's message (and one warning) for a diverged or unrankable run."""
    if status == Status.VALIDATION_NONFINITE:
        message = (
            f"the monitored validation value ({config.monitor}) became NaN/inf at epoch "
            f"{epochs_run}, so early stopping could not rank it and the run stopped there, "
            "keeping the parameters after that epoch (training itself was finite). Check "
            "val_data for values the loss cannot take (e.g. a target of 0 under a log loss)."
        )
    elif status == Status.DIVERGED:
        message = _divergence_message(problem, config, params, diverged_at)
    else:
        return None
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    return message


def _divergence_message(problem: Problem, config: Config, params: Any, epoch: int) -> str:
    """Why a run may have diverged, quoting the stability bound 2/L at the start."""
    from jgd.curvature import lr_bound

    parts = [
        f"training diverged at epoch {epoch}: the loss or the parameters became NaN/inf, so "
        "the run stopped and kept the last finite parameters."
    ]
    bound = float("nan")
    if not (config.has_aux or config.loss_takes_key):
        try:
            bound = lr_bound(problem.loss_fn, params, problem.data)
        except Exception:  # a loss the Hessian products cannot handle: no bound to quote
            pass
    if np.isfinite(bound) and bound > 0:
        parts.append(
            f"Plain gradient descent is stable here only for learning rates below "
            f"2/L = {bound:.4g} (jgd.lr_bound at the starting parameters): use a smaller rate."
        )
    elif not (config.has_aux or config.loss_takes_key):
        parts.append("The loss curvature at the start is not finite (2/L cannot be computed).")
    floats = [
        leaf for leaf in jax.tree.leaves(problem.data) if jnp.issubdtype(leaf.dtype, jnp.floating)
    ]
    largest = max((float(jnp.max(jnp.abs(leaf))) for leaf in floats), default=0.0)
    if largest > 1e3:
        parts.append(
            f"The features are far from unit scale (largest |X| = {largest:.3g}): standardize "
            "them with jgd.data.standardize."
        )
    else:
        parts.append("Standardized features (jgd.data.standardize) also help.")
    return " ".join(parts)
