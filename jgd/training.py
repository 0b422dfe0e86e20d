"""Training: a whole gradient-descent run compiled into one XLA loop.

``fit`` validates its inputs in Python, then runs every epoch, mini-batch,
reshuffle, validation pass, stopping test and history write inside one
``lax.while_loop`` in one ``jax.jit`` program (``_fit_advance``); two tiny
programs build the initial state and the result. The loop stops at the epoch
count or when the run stops (diverged, converged, early-stopped). Progress
bars and checkpoints call the same loop program chunk by chunk, so they give
the same bits.

``_initial_state``/``_advance_until``/``_finish`` are the pure core;
``jgd.sweep`` vmaps them over hyperparameters.
"""

from __future__ import annotations

import enum
import functools
import math
import os
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jgd import _filtering, _fused, _progress
from jgd._checks import check_hyperparameter, check_positive_int, warn_if_float64_dropped
from jgd.data import Dataset, check_dataset, permutation

__all__ = ["FitResult", "History", "Status", "fit"]


class Status(enum.IntEnum):
    """Why a run stopped."""

    MAX_EPOCHS = 0  #: ran every epoch it was given
    CONVERGED = 1  #: training loss changed by less than ``tol`` (relative)
    EARLY_STOPPED = 2  #: validation loss did not improve for ``patience`` epochs
    DIVERGED = 3  #: the loss or the parameters became NaN/inf


class History(NamedTuple):
    """Per-epoch records (every ``record_every``-th epoch and the last one run).

    ``loss`` is the training loss seen during the epoch: for full-batch GD the
    loss at the parameters the epoch started from; for mini-batches the
    size-weighted mean of the batch losses. ``val_loss`` is measured on
    ``val_data`` after the epoch's updates (None without ``val_data``).
    ``epoch`` numbers epochs from 1. ``params`` holds the parameters after
    each recorded epoch (leading axis: records) when ``fit`` was called with
    ``record_params=True``, else None.
    """

    epoch: jax.Array
    loss: jax.Array
    val_loss: jax.Array | None
    params: Any = None


class _Shape(str):
    """Prints without quotes inside a params repr."""

    def __repr__(self) -> str:
        return str(self)


class FitResult(NamedTuple):
    """The outcome of ``fit``.

    Attributes:
        params: final parameters (the best-validation ones when early-stopped,
            the last finite ones when diverged).
        opt_state: the optimizer state matching the final update.
        history: a ``History`` of recorded epochs.
        status: a ``Status``.
        epochs_run: epochs completed (counting the one that diverged).
        diverged_at: the epoch in which a NaN/inf appeared, else None.
        message: for a diverged run, what happened and what to try (the
            stability bound 2/L, standardization); else None.
    """

    params: Any
    opt_state: Any
    history: History
    status: Status
    epochs_run: int
    diverged_at: int | None
    message: str | None = None

    def __repr__(self) -> str:
        shapes = jax.tree.map(lambda leaf: _Shape(f"{leaf.dtype}{list(leaf.shape)}"), self.params)
        lines = [
            f"FitResult(status={self.status.name}, epochs_run={self.epochs_run}, "
            f"diverged_at={self.diverged_at},"
        ]
        if self.history.loss.shape[0]:
            loss = np.asarray(self.history.loss)
            lines.append(f"  loss: first {loss[0]:.6g}, last {loss[-1]:.6g},")
            if self.history.val_loss is not None:
                val = np.asarray(self.history.val_loss)
                lines.append(f"  val_loss: last {val[-1]:.6g}, best {np.nanmin(val):.6g},")
        if self.message:
            lines.append(f"  message={self.message!r},")
        lines.append(f"  params={shapes})")
        return "\n".join(lines)


class _Config(NamedTuple):
    """Static settings: changing one of these compiles a new program."""

    epochs: int
    batch_size: int | None  # None: full batch
    record_every: int
    patience: int | None
    use_tol: bool
    shuffle: bool
    # A sweep vmaps the run: there each mini-batch step keeps the last finite
    # params with a select; a single run instead replays a diverged epoch (see
    # _run_epoch), which under vmap would run every epoch for every member.
    batched: bool = False
    record_params: bool = False
    # With a mesh: the NamedSharding of data rows, applied inside the program
    # (XLA pads a short last shard itself, so no row is dropped or repeated).
    data_sharding: Any = None
    # Whether jgd's native CPU kernels may be used (jgd/_native): every array on
    # one device. XLA's partitioner cannot split a custom call over devices.
    native: bool = True


class _State(NamedTuple):
    params: Any
    opt_state: Any
    epoch: jax.Array  # the loop counter, shared by every member of a sweep
    epochs_run: jax.Array  # this run's own count: it stops when the run stops
    status: jax.Array
    diverged_at: jax.Array
    prev_loss: jax.Array
    best_val: jax.Array
    best_params: Any
    bad_epochs: jax.Array
    history: History


class _Outcome(NamedTuple):
    params: Any
    opt_state: Any
    status: jax.Array
    epochs_run: jax.Array
    diverged_at: jax.Array  # 0 when the run did not diverge
    history: History


def _all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
    return functools.reduce(jnp.logical_and, leaves, jnp.array(True))


def _step(loss_fn, optimizer, params, opt_state, batch, native=True):
    """One update; ``finite`` says whether the loss and new params are finite.

    ``native=False`` (arrays spread over devices) keeps jgd's native CPU kernels out.
    """
    loss, grads = _fused.value_and_grad(loss_fn, native=native)(params, batch)
    updates, new_opt_state = optimizer.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    finite = jnp.isfinite(loss) & _all_finite(new_params)
    return loss, new_params, new_opt_state, finite


def _run_epoch(loss_fn, optimizer, params, opt_state, data, key, epoch, config):
    """One pass over the data; returns params, opt_state, epoch loss, all-finite flag.

    After a non-finite step the remaining steps of the epoch are discarded, so
    the parameters are always the last finite ones.
    """
    n = data.X.shape[0]
    native = config.native
    if config.batch_size is None:
        loss, new_params, new_opt_state, ok = _step(
            loss_fn, optimizer, params, opt_state, data, native
        )
        return (
            optax.tree.where(ok, new_params, params),
            optax.tree.where(ok, new_opt_state, opt_state),
            loss,
            ok,
        )

    def guarded_step(carry, rows):
        """A step that keeps the last finite params and state (one select per leaf)."""
        params, opt_state, ok = carry
        batch = jax.tree.map(lambda a: jnp.take(a, rows, axis=0), data)
        loss, new_params, new_opt_state, finite = _step(
            loss_fn, optimizer, params, opt_state, batch, native
        )
        ok = ok & finite
        carry = (
            optax.tree.where(ok, new_params, params),
            optax.tree.where(ok, new_opt_state, opt_state),
            ok,
        )
        return carry, loss

    def plain_step(carry, rows):
        params, opt_state = carry
        batch = jax.tree.map(lambda a: jnp.take(a, rows, axis=0), data)
        loss, params, opt_state, finite = _step(
            loss_fn, optimizer, params, opt_state, batch, native
        )
        return (params, opt_state), (loss, finite)

    if config.shuffle:
        order = permutation(jax.random.fold_in(key, epoch), n)
    else:
        order = jnp.arange(n)
    n_full, remainder = divmod(n, config.batch_size)
    carry = (params, opt_state, jnp.array(True))
    total = jnp.zeros(())
    if n_full:
        rows = order[: n_full * config.batch_size].reshape(n_full, config.batch_size)
        if config.batched:
            carry, losses = lax.scan(guarded_step, carry, rows)
        else:
            # Run the epoch unguarded (a select per leaf per step costs ~15 % of a
            # small MLP step on CPU). If a step went non-finite, replay the epoch
            # from its start up to the last finite step: the same computations, so
            # the same last finite params, and it only runs when the epoch diverged.
            (end_params, end_state), (losses, finite) = lax.scan(
                plain_step, (params, opt_state), rows
            )
            all_finite = jnp.all(finite)
            good_steps = jnp.argmin(finite)  # index of the first non-finite step

            def replay():
                return lax.fori_loop(
                    0,
                    good_steps,
                    lambda i, c: plain_step(c, rows[i])[0],
                    (params, opt_state),
                )

            kept = lax.cond(all_finite, lambda: (end_params, end_state), replay)
            carry = (*kept, all_finite)
        total = jnp.sum(losses) * config.batch_size
    if remainder:
        # The last short batch is a step of its own, with its true size.
        carry, loss = guarded_step(carry, order[n_full * config.batch_size :])
        total = total + loss * remainder
    params, opt_state, ok = carry
    return params, opt_state, total / n, ok


def _initial_state(
    loss_fn, optimizer, params, data: Dataset, val_data: Dataset | None, config: _Config
) -> _State:
    """The state before epoch 1 (traceable, vmappable)."""
    loss_shape = jax.eval_shape(lambda p, b: loss_fn(p, b), params, data)
    if getattr(loss_shape, "shape", None) != ():
        raise ValueError(
            f"loss_fn must return a scalar, got shape {getattr(loss_shape, 'shape', loss_shape)}; "
            "average over the batch (e.g. jnp.mean)."
        )
    loss_dtype = loss_shape.dtype
    n_records = -(-config.epochs // config.record_every)
    nan = jnp.full((n_records,), jnp.nan, loss_dtype)
    path = None
    if config.record_params:
        path = jax.tree.map(lambda p: jnp.full((n_records, *p.shape), jnp.nan, p.dtype), params)
    return _State(
        params=params,
        opt_state=optimizer.init(params),
        epoch=jnp.zeros((), jnp.int32),
        epochs_run=jnp.zeros((), jnp.int32),
        status=jnp.asarray(Status.MAX_EPOCHS, jnp.int32),
        diverged_at=jnp.zeros((), jnp.int32),
        prev_loss=jnp.full((), jnp.inf, loss_dtype),
        best_val=jnp.full((), jnp.inf, loss_dtype),
        best_params=params if config.patience is not None else None,
        bad_epochs=jnp.zeros((), jnp.int32),
        history=History(
            epoch=jnp.zeros((n_records,), jnp.int32),
            loss=nan,
            val_loss=None if val_data is None else nan,
            params=path,
        ),
    )


def _epoch_body(loss_fn, optimizer, data, val_data, key, tol, config: _Config, loss_dtype):
    """One epoch as a function of the state (shared by every way of looping)."""

    def epoch_body(state: _State) -> _State:
        # A stopped run (diverged, converged, early-stopped) keeps its state:
        # masking here, rather than lax.cond around the epoch, stays cheap
        # under vmap, where a cond would select the whole state every epoch.
        # The loop counter ``epoch`` is not per-run, so under a sweep's vmap
        # the reshuffle and the history slot stay shared (unbatched).
        # A single run's loop ends as soon as the run stops, so its body only
        # ever runs a running run: a constant lets XLA drop the masking
        # (selects and history reads, ~6 of 22 kernels per epoch at N=1,000).
        running = state.status == Status.MAX_EPOCHS if config.batched else jnp.array(True)
        epoch = state.epoch + 1
        params, opt_state, loss, ok = _run_epoch(
            loss_fn, optimizer, state.params, state.opt_state, data, key, epoch, config
        )
        loss = loss.astype(loss_dtype)
        converged = jnp.array(False)
        if config.use_tol:
            change = jnp.abs(state.prev_loss - loss)
            converged = (epoch > 1) & (change <= tol * jnp.abs(state.prev_loss))
        val_loss = None if val_data is None else loss_fn(params, val_data).astype(loss_dtype)
        best_val, best_params, bad_epochs = state.best_val, state.best_params, state.bad_epochs
        early = jnp.array(False)
        if config.patience is not None:
            improved = running & (val_loss < best_val)
            best_val = jnp.where(improved, val_loss, best_val)
            best_params = optax.tree.where(improved, params, best_params)
            bad_epochs = jnp.where(improved, 0, bad_epochs + 1)
            early = bad_epochs >= config.patience
        # Nested wheres (one elementwise kernel) rather than jnp.select (an argmax).
        status = jnp.where(
            ~ok,
            Status.DIVERGED,
            jnp.where(
                early,
                Status.EARLY_STOPPED,
                jnp.where(converged, Status.CONVERGED, Status.MAX_EPOCHS),
            ),
        ).astype(jnp.int32)
        # Each record slot holds the last epoch run in its block of record_every;
        # a stopped run writes back what its slots already hold.
        slot = (epoch - 1) // config.record_every

        def record(buffer: jax.Array, value: jax.Array) -> jax.Array:
            return buffer.at[slot].set(jnp.where(running, value, buffer[slot]))

        history = History(
            epoch=record(state.history.epoch, epoch),
            loss=record(state.history.loss, loss),
            val_loss=None if val_loss is None else record(state.history.val_loss, val_loss),
            params=None
            if state.history.params is None
            else jax.tree.map(record, state.history.params, params),
        )
        return _State(
            params=optax.tree.where(running, params, state.params),
            opt_state=optax.tree.where(running, opt_state, state.opt_state),
            epoch=epoch,
            epochs_run=jnp.where(running, epoch, state.epochs_run),
            status=jnp.where(running, status, state.status),
            diverged_at=jnp.where(running & ~ok, epoch, state.diverged_at),
            prev_loss=jnp.where(running, loss, state.prev_loss),
            best_val=best_val,
            best_params=best_params,
            bad_epochs=jnp.where(running, bad_epochs, state.bad_epochs),
            history=history,
        )

    return epoch_body


def _advance_until(
    loss_fn,
    optimizer,
    data,
    val_data,
    key,
    tol,
    config: _Config,
    state: _State,
    stop_at,
) -> _State:
    """Run until the loop counter reaches ``stop_at`` or the run stops.

    Whole runs and chunked runs (progress bars, checkpoints) both loop here,
    so they compile the same loop and agree bit for bit (a ``lax.scan`` for the
    whole run compiled differently: XLA fused the epoch differently and a
    momentum buffer could differ in its last bit). ``stop_at`` may be traced:
    one program serves any chunk length.

    A single run leaves the loop once it stops (diverged, converged...). A
    sweep without tol/patience keeps one shared, unbatched loop counter (its
    members are masked once stopped, and the driver stops between chunks), as
    a per-member loop condition would make vmap select the whole state every
    epoch.
    """
    body = _epoch_body(loss_fn, optimizer, data, val_data, key, tol, config, state.prev_loss.dtype)
    stop_when_stopped = not config.batched or config.use_tol or config.patience is not None

    def cond(s: _State) -> jax.Array:
        going = s.epoch < jnp.minimum(stop_at, config.epochs)
        return going & (s.status == Status.MAX_EPOCHS) if stop_when_stopped else going

    return lax.while_loop(cond, body, state)


def _finish(state: _State, config: _Config) -> _Outcome:
    params = state.params
    if config.patience is not None:
        params = optax.tree.where(state.status == Status.EARLY_STOPPED, state.best_params, params)
    return _Outcome(
        params=params,
        opt_state=state.opt_state,
        status=state.status,
        epochs_run=state.epochs_run,
        diverged_at=state.diverged_at,
        history=state.history,
    )


def _constrain(datasets: Any, config: _Config) -> Any:
    """Shard data rows over the mesh inside the program (a no-op without one)."""
    if config.data_sharding is None:
        return datasets
    return jax.tree.map(lambda a: lax.with_sharding_constraint(a, config.data_sharding), datasets)


@jax.jit
def _leaves_finite(leaves: list[jax.Array]) -> list[jax.Array]:
    return [jnp.isfinite(leaf).all() for leaf in leaves]


@functools.partial(jax.jit, static_argnames=("static", "config"))
def _fit_start(arrays: list[Any], static: _filtering.Static, config: _Config) -> _State:
    loss_fn, optimizer, params, data, val_data, _, _ = _filtering.combine(arrays, static)
    data, val_data = _constrain((data, val_data), config)
    return _initial_state(loss_fn, optimizer, params, data, val_data, config)


@functools.partial(jax.jit, static_argnames=("static", "config"))
def _fit_advance(
    arrays: list[Any], static: _filtering.Static, config: _Config, state: _State, stop_at
) -> _State:
    loss_fn, optimizer, _, data, val_data, key, tol = _filtering.combine(arrays, static)
    data, val_data = _constrain((data, val_data), config)
    return _advance_until(
        loss_fn,
        optimizer,
        data,
        val_data,
        key,
        tol,
        config,
        state,
        stop_at,
    )


@functools.partial(jax.jit, static_argnames=("config",))
def _fit_finish(state: _State, config: _Config) -> _Outcome:
    return _finish(state, config)


def _check_params(params: Any) -> Any:
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ValueError("params is empty; use model.init(key) to create parameters.")
    for leaf in leaves:
        if hasattr(leaf, "dtype"):
            warn_if_float64_dropped(leaf.dtype, "params")
    params = jax.tree.map(jnp.asarray, params)
    paths = jax.tree_util.tree_flatten_with_path(params)[0]
    for path, leaf in paths:
        if not jnp.issubdtype(leaf.dtype, jnp.inexact):
            raise TypeError(
                f"params{jax.tree_util.keystr(path)} has dtype {leaf.dtype}; parameters must be "
                "floating point."
            )
    finite = jax.device_get(_leaves_finite([leaf for _, leaf in paths]))
    for (path, _), ok in zip(paths, finite):
        if not ok:
            raise ValueError(f"params{jax.tree_util.keystr(path)} contains NaN or inf.")
    return params


def _check_optimizer(optimizer: Any) -> None:
    if not (
        callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))
    ):
        raise TypeError(
            "optimizer must be an optax.GradientTransformation (e.g. jgd.gd(0.1) or "
            f"optax.adam(1e-3)), got {optimizer!r}."
        )


def _prepare(
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
) -> tuple[Any, Dataset, Dataset | None, Any, _Config, Any]:
    """Validate ``fit``/``sweep`` arguments; return cleaned values and the static config."""
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function (params, batch) -> scalar, got {loss_fn!r}.")
    data = check_dataset(data, "data")
    if val_data is not None:
        val_data = check_dataset(val_data, "val_data")
        if val_data.n_features != data.n_features:
            raise ValueError(
                f"val_data has {val_data.n_features} features but data has {data.n_features}."
            )
    epochs = check_positive_int(epochs, "epochs")
    record_every = check_positive_int(record_every, "record_every")
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "batch_size")
        if batch_size > data.n_rows:
            raise ValueError(
                f"batch_size {batch_size} is larger than the data ({data.n_rows} rows); use "
                "batch_size=None for full-batch gradient descent."
            )
        if batch_size == data.n_rows:
            batch_size = None
    if patience is not None:
        patience = check_positive_int(patience, "patience")
        if val_data is None:
            raise ValueError("patience needs val_data: early stopping watches the validation loss.")
    if tol is not None:
        check_hyperparameter(tol, "tol", low=0.0, low_inclusive=True)
        tol = jnp.asarray(tol)
    shuffle = batch_size is not None and key is not None
    config = _Config(
        epochs=epochs,
        batch_size=batch_size,
        record_every=record_every,
        patience=patience,
        use_tol=tol is not None,
        shuffle=shuffle,
    )
    return loss_fn, data, val_data, (key if shuffle else None), config, tol


def _on_one_device(tree: Any) -> bool:
    """Whether no array is spread over several devices (a mesh, jgd.data.shard)."""
    return all(
        len(leaf.sharding.device_set) == 1
        for leaf in jax.tree.leaves(tree)
        if isinstance(leaf, jax.Array)
    )


def _trim(outcome: _Outcome, record_every: int) -> FitResult:
    status, epochs_run, diverged_at = (
        int(x) for x in jax.device_get((outcome.status, outcome.epochs_run, outcome.diverged_at))
    )
    kept = math.ceil(epochs_run / record_every)
    history = jax.tree.map(lambda a: a[:kept], outcome.history)
    return FitResult(
        params=outcome.params,
        opt_state=outcome.opt_state,
        history=history,
        status=Status(status),
        epochs_run=epochs_run,
        diverged_at=diverged_at or None,
    )


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
) -> FitResult:
    """Train ``params`` to minimise ``loss_fn`` in one compiled program.

    Args:
        loss_fn: ``loss_fn(params, batch) -> scalar`` with ``batch`` a
            ``Dataset``, e.g. ``jgd.objective(model, jgd.losses.mse)``.
        params: the starting parameters (a pytree of float arrays).
        data: the training ``Dataset``.
        optimizer: any ``optax.GradientTransformation`` (``jgd.gd(0.1)``,
            ``optax.adam(1e-3)``, ...).
        epochs: the most epochs to run.
        batch_size: ``None`` for full-batch GD, ``1`` for stochastic GD, ``k``
            for mini-batches of ``k`` rows (the last short batch counts with its
            true size).
        key: PRNG key to reshuffle the rows every epoch (mini-batch only);
            without one the rows are visited in order.
        val_data: a ``Dataset`` whose loss is recorded after every epoch.
        tol: stop with ``Status.CONVERGED`` when the training loss changes by
            less than ``tol`` relative to the previous epoch's.
        patience: with ``val_data``, stop with ``Status.EARLY_STOPPED`` after
            this many epochs without a better validation loss and return the
            best-validation parameters.
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
    _check_optimizer(optimizer)
    params = _check_params(params)
    loss_fn, data, val_data, key, config, tol = _prepare(
        loss_fn,
        data,
        epochs=epochs,
        batch_size=batch_size,
        key=key,
        val_data=val_data,
        tol=tol,
        patience=patience,
        record_every=record_every,
    )
    config = config._replace(record_params=bool(record_params))
    checkpoint_every = _check_checkpointing(checkpoint, checkpoint_every, resume, config.epochs)
    arrays, static = _filtering.partition((loss_fn, optimizer, params, data, val_data, key, tol))
    if mesh is not None:
        arrays, config = _place_on_mesh(arrays, (data, val_data), mesh, config)
    config = config._replace(native=_on_one_device(arrays))

    def postfix(state: _State) -> dict[str, str]:
        status, loss = jax.device_get((state.status, state.prev_loss))
        return {"loss": f"{float(loss):.4g}", "status": Status(int(status)).name}

    def fingerprint(state: _State) -> dict[str, Any]:
        from jgd import checkpoint as checkpoints

        return checkpoints.fingerprint(
            loss_fn=loss_fn,
            optimizer=optimizer,
            data=data,
            val_data=val_data,
            key=key,
            tol=tol,
            config=config,
            state=state,
        )

    outcome = _drive(
        start=lambda: _fit_start(arrays, static, config),
        advance=lambda state, stop_at: _fit_advance(arrays, static, config, state, stop_at),
        finish=lambda state: _fit_finish(state, config),
        config=config,
        description="jgd.fit",
        still_running=lambda state: bool(state.status == Status.MAX_EPOCHS),
        postfix=postfix,
        progress=_progress.wanted(progress, config.epochs, data.n_rows),
        checkpoint=None if checkpoint is None else os.fspath(checkpoint),
        checkpoint_every=checkpoint_every,
        resume=resume,
        fingerprint=fingerprint,
    )
    result = _trim(outcome, config.record_every)
    if result.status is Status.DIVERGED:
        message = _divergence_message(loss_fn, params, data, result.diverged_at)
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        result = result._replace(message=message)
    return result


def _divergence_message(loss_fn: Any, params: Any, data: Dataset, epoch: int | None) -> str:
    """Why a run may have diverged, quoting the stability bound 2/L at the start."""
    from jgd.curvature import lr_bound

    parts = [
        f"training diverged at epoch {epoch}: the loss or the parameters became NaN/inf, so "
        "the run stopped and kept the last finite parameters."
    ]
    try:
        bound = lr_bound(loss_fn, params, data)
    except Exception:  # a loss the power iteration cannot handle: no bound to quote
        bound = float("nan")
    if np.isfinite(bound) and bound > 0:
        parts.append(
            f"Plain gradient descent is stable here only for learning rates below "
            f"2/L = {bound:.4g} (jgd.lr_bound at the starting parameters): use a smaller rate."
        )
    else:
        parts.append("The loss curvature at the start is not finite (2/L cannot be computed).")
    largest = float(jnp.max(jnp.abs(data.X)))
    if largest > 1e3:
        parts.append(
            f"The features are far from unit scale (largest |X| = {largest:.3g}): standardize "
            "them with jgd.data.standardize."
        )
    else:
        parts.append("Standardized features (jgd.data.standardize) also help.")
    return " ".join(parts)


def _place_on_mesh(
    arrays: list[Any], datasets: Any, mesh: Any, config: _Config, data_axis: str | None = None
) -> tuple[list[Any], _Config]:
    """Put data rows on the mesh's data axis and every other array replicated.

    Rows that split evenly are placed sharded (each device holds its rows);
    otherwise they are placed replicated and sharded inside the program, where
    XLA pads the short last shard. Arrays already on this mesh (e.g. from
    ``jgd.data.shard`` or ``jgd.distributed.global_dataset``) are left as they are.
    """
    from jax.sharding import NamedSharding, PartitionSpec

    from jgd.distributed import data_mesh

    mesh = data_mesh(mesh)
    replicated = NamedSharding(mesh, PartitionSpec())
    if data_axis is None and "members" in mesh.axis_names:
        # A sweep's members-only mesh: the data stays whole on every device.
        return [a if _on_mesh(a, mesh) else _put(a, replicated) for a in arrays], config
    if data_axis is None:
        data_axis = "data" if "data" in mesh.axis_names else mesh.axis_names[0]
    rows = NamedSharding(mesh, PartitionSpec(data_axis))
    data_leaves = {id(leaf) for leaf in jax.tree.leaves(datasets)}

    def place(array: Any) -> Any:
        if _on_mesh(array, mesh):
            return array
        if id(array) in data_leaves and array.shape[0] % mesh.shape[data_axis] == 0:
            return _put(array, rows)
        return _put(array, replicated)

    return [place(a) for a in arrays], config._replace(data_sharding=rows)


def _put(array: Any, sharding: Any) -> Any:
    """``jax.device_put`` that also works for meshes spanning other processes.

    There, every process holds the whole (host) value and contributes the
    pieces its own devices need.
    """
    if sharding.is_fully_addressable:
        return jax.device_put(array, sharding)
    if jax.dtypes.issubdtype(array.dtype, jax.dtypes.prng_key):
        data = _put(jax.random.key_data(array), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(array))
    host = np.asarray(array)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def _on_mesh(array: Any, mesh: Any) -> bool:
    from jax.sharding import NamedSharding

    sharding = getattr(array, "sharding", None)
    return isinstance(sharding, NamedSharding) and sharding.mesh == mesh


def _check_checkpointing(
    checkpoint: Any, checkpoint_every: Any, resume: Any, epochs: int
) -> int | None:
    """Validate the checkpoint arguments; default to about ten checkpoints a run."""
    if checkpoint is None:
        if checkpoint_every is not None or resume:
            raise ValueError("checkpoint_every and resume need checkpoint=PATH.")
        return None
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a file path, got {checkpoint!r}.")
    if checkpoint_every is None:
        return max(1, -(-epochs // 10))
    return check_positive_int(checkpoint_every, "checkpoint_every")


def _drive(
    *,
    start: Any,
    advance: Any,
    finish: Any,
    config: _Config,
    description: str,
    still_running: Any,
    postfix: Any,
    progress: bool,
    checkpoint: str | None,
    checkpoint_every: int | None,
    resume: bool,
    fingerprint: Any,
) -> Any:
    """Run a compiled training loop: whole, or in chunks for progress and checkpoints.

    ``start()`` gives the fresh state, ``advance(state, stop_at)`` runs it to the
    loop epoch ``stop_at`` (one compiled program for every chunk length), and
    ``finish(state)`` the outcome. Every run goes through here, a plain one as
    a single chunk, so a run with a progress bar or checkpoints calls the same
    compiled loop and equals a plain run bit for bit. (One program holding
    start, loop and finish fused the epoch differently and changed last bits.)
    """
    from jgd import checkpoint as checkpoints

    state = start()
    print_ = fingerprint(state) if checkpoint is not None else None
    if checkpoint is not None and resume and os.path.exists(checkpoint):
        state = checkpoints.load_state(checkpoint, state, print_)
    done = int(np.max(jax.device_get(state.epoch)))
    if checkpoint_every is not None:
        first = (done // checkpoint_every + 1) * checkpoint_every
        stops = iter([*range(first, config.epochs, checkpoint_every), config.epochs])
    elif progress:
        stops = _progress.chunks(config.epochs, start=done)
    else:
        stops = iter([config.epochs])
    bar = _progress.bar(config.epochs, description, initial=done) if progress else None
    try:
        while done < config.epochs and still_running(state):
            stop_at = next(stops)
            state = advance(state, jnp.asarray(stop_at, jnp.int32))
            done = stop_at
            if checkpoint is not None:
                checkpoints.save_state(checkpoint, state, print_)
            if bar is not None:
                bar.update(done - bar.n)
                bar.set_postfix(**postfix(state))
    finally:
        if bar is not None:
            bar.close()
    return finish(state)
