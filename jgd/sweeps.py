"""Hyperparameter sweeps: every configuration trained at once, in one compiled program.

``sweep`` vmaps the same pure training core that ``fit`` compiles, so each
member behaves exactly like a solo ``fit`` (batching, reshuffles, history,
stopping, divergence), and hyperparameters are traced data. For jgd's linear
model with MSE the batched loss and gradient have their own rule
(``jgd._fused``: three passes over the members' residuals instead of nine).
"""

from __future__ import annotations

import functools
import itertools
import math
import os
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jgd import _filtering, _progress
from jgd._checks import check_hyperparameter, check_positive_int
from jgd._text import table as _table
from jgd.curvature import lr_bound
from jgd.data import Dataset
from jgd.distributed import data_mesh
from jgd.losses import Objective
from jgd.models import _for_batched_params
from jgd.training import (
    FitResult,
    History,
    Status,
    _advance_until,
    _check_checkpointing,
    _check_optimizer,
    _check_params,
    _Config,
    _constrain,
    _drive,
    _finish,
    _initial_state,
    _on_one_device,
    _place_on_mesh,
    _prepare,
    _put,
    _State,
)

__all__ = ["Best", "SweepResult", "sweep"]


class Best(NamedTuple):
    """The winning member of a sweep."""

    config: dict[str, float]
    params: Any
    index: int


class SweepResult(NamedTuple):
    """Results of ``sweep``, one entry per member along the leading axis.

    Attributes:
        configs: name -> (M,) NumPy array of the values as given (``"seed"`` with ``seeds``).
        params: final params, stacked with a leading member axis.
        opt_state: final optimizer states, stacked likewise.
        history: ``History`` with (M, R) arrays; slots a member never reached
            hold NaN losses and epoch 0.
        final_loss: training loss at each member's final params.
        final_val_loss: validation loss there (NaN without ``val_data``).
        status: (M,) ``Status`` codes.
        stop_epoch: (M,) epochs each member ran.
        diverged_at: (M,) epoch of divergence, 0 when it did not diverge.
        lr_bound: ``2 / L`` at the start when the grid sweeps
            ``learning_rate`` (plain-GD stability bound), else None.
    """

    configs: dict[str, np.ndarray]
    params: Any
    opt_state: Any
    history: History
    final_loss: jax.Array
    final_val_loss: jax.Array
    status: jax.Array
    stop_epoch: jax.Array
    diverged_at: jax.Array
    lr_bound: float | None

    @property
    def n_members(self) -> int:
        return int(self.status.shape[0])

    def _ranking(self, by: str) -> np.ndarray:
        if by not in ("loss", "val_loss"):
            raise ValueError(f"by must be 'loss' or 'val_loss', got {by!r}.")
        scores = np.asarray(self.final_val_loss if by == "val_loss" else self.final_loss, float)
        if by == "val_loss" and np.isnan(scores).all():
            raise ValueError("this sweep had no val_data; use best(by='loss').")
        # Diverged members never win, whatever their last finite loss was.
        scores = np.where(np.asarray(self.status) == Status.DIVERGED, np.inf, scores)
        scores = np.where(np.isnan(scores), np.inf, scores)
        return np.argsort(scores, kind="stable")

    def best(self, by: str = "val_loss") -> Best:
        """The member with the lowest final ``"val_loss"`` (or ``"loss"``).

        Diverged members are never chosen.
        """
        if by == "val_loss" and np.isnan(np.asarray(self.final_val_loss)).all():
            by = "loss"
        index = int(self._ranking(by)[0])
        return Best(self.config(index), jax.tree.map(lambda a: a[index], self.params), index)

    def config(self, index: int) -> dict[str, float]:
        """Member ``index``'s hyperparameters as Python numbers."""
        return {name: np.asarray(values)[index].item() for name, values in self.configs.items()}

    def member(self, index: int) -> FitResult:
        """Member ``index`` as the ``FitResult`` a solo ``fit`` would return."""
        if not -self.n_members <= index < self.n_members:
            raise IndexError(f"member {index} out of range for {self.n_members} members.")
        index %= self.n_members
        take = functools.partial(jax.tree.map, lambda a: a[index])
        epochs_run = int(self.stop_epoch[index])
        # Records fill from the first slot; slots the member never reached keep epoch 0.
        kept = int((np.asarray(self.history.epoch[index]) > 0).sum())
        history = jax.tree.map(lambda a: a[index, :kept], self.history)
        diverged_at = int(self.diverged_at[index])
        return FitResult(
            params=take(self.params),
            opt_state=take(self.opt_state),
            history=history,
            status=Status(int(self.status[index])),
            epochs_run=epochs_run,
            diverged_at=diverged_at or None,
        )

    def status_counts(self) -> dict[str, int]:
        codes = np.asarray(self.status)
        return {s.name: int((codes == s).sum()) for s in Status if (codes == s).any()}

    def table(self, max_rows: int | None = 20, by: str = "val_loss") -> str:
        """A readable summary, best members first, with status counts."""
        if by == "val_loss" and np.isnan(np.asarray(self.final_val_loss)).all():
            by = "loss"
        order = self._ranking(by)
        shown = order if max_rows is None else order[:max_rows]
        names = list(self.configs)
        has_val = not np.isnan(np.asarray(self.final_val_loss)).all()
        headers = ["rank", "member", *names, "final loss"]
        headers += ["final val loss"] if has_val else []
        headers += ["status", "epochs"]
        rows = []
        for rank, i in enumerate(shown, 1):
            row = [rank, int(i), *(float(np.asarray(self.configs[n])[i]) for n in names)]
            row.append(float(self.final_loss[i]))
            if has_val:
                row.append(float(self.final_val_loss[i]))
            row += [Status(int(self.status[i])).name, int(self.stop_epoch[i])]
            rows.append(row)
        counts = ", ".join(f"{name} {count}" for name, count in self.status_counts().items())
        lines = [f"SweepResult: {self.n_members} members ({counts}); ranked by final {by}"]
        if self.lr_bound is not None:
            lines.append(
                f"plain-GD stability bound 2/L = {self.lr_bound:.6g} at the start "
                "(rates above it diverge on a quadratic loss)"
            )
        lines.append(_table(headers, rows))
        if len(shown) < len(order):
            lines.append(f"... {len(order) - len(shown)} more members")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.table(max_rows=10)


def _grid(grid: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Validate the grid and return its Cartesian product, name -> (M,)."""
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError("grid must be a non-empty dict of name -> 1-D array of values.")
    axes = {}
    kinds = set()
    for name, values in grid.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"grid names must be keyword names, got {name!r}.")
        items = values if isinstance(values, (list, tuple)) else [values]
        if any(isinstance(v, (bool, np.bool_)) for v in items):
            raise TypeError(f"grid[{name!r}] holds a bool; give numbers.")
        array = np.asarray(values)
        if array.ndim == 0:
            array = array[None]
        if array.ndim != 1:
            raise ValueError(f"grid[{name!r}] must be 1-D, got shape {array.shape}.")
        if array.size == 0:
            raise ValueError(f"grid[{name!r}] is empty; give at least one value.")
        if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
            raise TypeError(f"grid[{name!r}] must hold numbers, got dtype {array.dtype}.")
        check_hyperparameter(array, f"grid[{name!r}]", low=-math.inf)
        if name == "learning_rate":
            check_hyperparameter(array, "grid['learning_rate']", low=0.0)
        if name == "l2":
            check_hyperparameter(array, "grid['l2']", low=0.0, low_inclusive=True)
        kinds.add(np.issubdtype(array.dtype, np.integer))
        axes[name] = array
    if len(kinds) > 1:
        raise TypeError(
            "grid mixes integer and floating-point values; give every entry as floats "
            f"(got { ({n: str(a.dtype) for n, a in axes.items()}) })."
        )
    product = list(itertools.product(*axes.values()))
    return {name: np.asarray([p[i] for p in product]) for i, name in enumerate(axes)}


def _member(loss_fn, factory, values: dict[str, jax.Array]):
    """Member's objective (with its l2) and optimizer (from the factory)."""
    member_loss = loss_fn._replace(l2=values["l2"]) if "l2" in values else loss_fn
    optimizer = factory(**{n: v for n, v in values.items() if n not in ("l2", "seed")})
    return member_loss, optimizer


def _check_factory(
    factory: Callable[..., Any], configs: dict[str, np.ndarray], names: list[str], members: int
) -> None:
    """Build the members' optimizers with concrete values, before compiling.

    Bad values and unknown names fail here with the factory's own message.
    One call with the whole grid's arrays checks every member at once (jgd's
    checks are element-wise; 256 separate calls cost ~5 % of a quick sweep);
    if it fails, the members are built one by one to report the first bad one.
    """
    try:
        _check_optimizer(factory(**{n: configs[n] for n in names}))
        return
    except (TypeError, ValueError):
        pass
    for i in range(members):
        try:
            built = factory(**{n: configs[n][i].item() for n in names})
        except TypeError as error:
            raise TypeError(f"optimizer factory rejected grid names {names}: {error}") from None
        _check_optimizer(built)


def _final_losses(member_loss, params, data, val_data):
    final_loss = member_loss(params, data)
    if val_data is None:
        return final_loss, jnp.full_like(final_loss, jnp.nan)
    return final_loss, member_loss(params, val_data)


def _state_axes(config: _Config) -> _State:
    """vmap axes of a sweep's state: the loop counter stays shared when it can."""
    shared = not (config.use_tol or config.patience is not None)
    fields = {name: 0 for name in _State._fields}
    if shared:
        fields["epoch"] = None
    return _State(**fields)


_STATIC = ("static", "factory", "seeded", "config")


@functools.partial(jax.jit, static_argnames=_STATIC)
def _sweep_start(arrays, static, factory, seeded: bool, config: _Config) -> _State:
    loss_fn, params, data, val_data, _, _, configs = _filtering.combine(arrays, static)
    data, val_data = _constrain((data, val_data), config)

    def member(values, start):
        member_loss, optimizer = _member(loss_fn, factory, values)
        return _initial_state(member_loss, optimizer, start, data, val_data, config)

    return jax.vmap(member, in_axes=(0, 0 if seeded else None), out_axes=_state_axes(config))(
        configs, params
    )


@functools.partial(jax.jit, static_argnames=_STATIC)
def _sweep_advance(arrays, static, factory, seeded: bool, config: _Config, state, stop_at):
    del seeded
    loss_fn, _, data, val_data, key, tol, configs = _filtering.combine(arrays, static)
    data, val_data = _constrain((data, val_data), config)

    def member(values, member_state):
        member_loss, optimizer = _member(loss_fn, factory, values)
        return _advance_until(
            member_loss,
            optimizer,
            data,
            val_data,
            key,
            tol,
            config,
            member_state,
            stop_at,
        )

    axes = _state_axes(config)
    return jax.vmap(member, in_axes=(0, axes), out_axes=axes)(configs, state)


@functools.partial(jax.jit, static_argnames=_STATIC)
def _sweep_finish(arrays, static, factory, seeded: bool, config: _Config, state):
    del seeded
    loss_fn, _, data, val_data, _, _, configs = _filtering.combine(arrays, static)
    data, val_data = _constrain((data, val_data), config)

    def member(values, member_state):
        member_loss, _ = _member(loss_fn, factory, values)
        outcome = _finish(member_state, config)
        return outcome, *_final_losses(member_loss, outcome.params, data, val_data)

    return jax.vmap(member, in_axes=(0, _state_axes(config)))(configs, state)


def _shard_members(
    tree: Any, members: int, mesh: Any = None, axis: str | None = "members"
) -> tuple[Any, int]:
    """Pad the member axis to a multiple of the mesh axis size and shard it.

    Without a mesh, every visible device takes a share of the members.
    """
    if mesh is None:
        devices = jax.devices()
        if len(devices) == 1:
            return tree, members
        mesh = jax.make_mesh(
            (len(devices),),
            ("members",),
            devices=devices,
            axis_types=(jax.sharding.AxisType.Auto,),
        )
    if axis is None:
        return jax.tree.map(lambda a: _put(a, NamedSharding(mesh, PartitionSpec())), tree), members
    count = mesh.shape[axis]
    padded = -(-members // count) * count

    def pad(a: jax.Array) -> jax.Array:
        extra = jnp.repeat(a[-1:], padded - members, axis=0)
        return jnp.concatenate([a, extra], axis=0)

    sharding = NamedSharding(mesh, PartitionSpec(axis))
    return jax.tree.map(lambda a: _put(pad(a), sharding), tree), padded


def sweep(
    loss_fn: Any,
    params: Any,
    data: Dataset,
    *,
    optimizer: Callable[..., Any],
    grid: Mapping[str, Any],
    epochs: int,
    batch_size: int | None = None,
    key: jax.Array | None = None,
    val_data: Dataset | None = None,
    tol: float | None = None,
    patience: int | None = None,
    record_every: int = 1,
    seeds: int | None = None,
    record_params: bool = False,
    progress: bool | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    mesh: Any = None,
) -> SweepResult:
    """Train every configuration of a hyperparameter grid at once with ``jax.vmap``.

    Args:
        loss_fn: ``loss_fn(params, batch) -> scalar``; a ``jgd.objective`` when
            the grid has an ``"l2"`` entry.
        params: the shared starting params, or an init function ``init(key)``
            (required with ``seeds``).
        data: the training ``Dataset``.
        optimizer: a factory called with the grid's hyperparameters as keyword
            arguments: ``jgd.gd``, ``jgd.momentum``,
            ``lambda learning_rate, b1: optax.adam(learning_rate, b1=b1)``, ...
        grid: name -> 1-D values; the sweep runs their Cartesian product.
            ``"l2"`` sets the objective's ridge strength instead.
        epochs, batch_size, key, val_data, tol, patience, record_every: as in
            ``jgd.fit``, applied to every member (all members see the same
            mini-batch order for a given key).
        seeds: train each configuration from this many initialisations
            ``params(key_i)``; adds a ``"seed"`` entry to ``configs``.
        record_params, progress: as in ``jgd.fit``; the bar shows the best and
            median current loss and how many members are still running.
        checkpoint, checkpoint_every, resume: as in ``jgd.fit``, for the whole
            sweep's state (a checkpoint also records the grid).
        mesh: a ``jax.sharding.Mesh``: members are sharded over its
            ``"members"`` axis and data rows over its ``"data"`` axis (a 2-D
            mesh does both). Without one, members are sharded over every
            visible device. Results equal the single-device sweep.

    Returns:
        A ``SweepResult``; ``result.member(i)`` equals ``jgd.fit`` run alone
        with member ``i``'s hyperparameters.

    Example:
        >>> import jax.numpy as jnp, jgd
        >>> X = jnp.linspace(-1, 1, 20)[:, None]
        >>> data = jgd.Dataset(X, 3 * X[:, 0])
        >>> loss_fn = jgd.objective(jgd.models.linear(1), jgd.losses.mse)
        >>> result = jgd.sweep(loss_fn, loss_fn.model.init(None), data, optimizer=jgd.gd,
        ...                    grid={"learning_rate": jnp.array([0.1, 1.0, 5.0])}, epochs=200)
        >>> [s.name for s in map(jgd.Status, result.status.tolist())]
        ['MAX_EPOCHS', 'MAX_EPOCHS', 'DIVERGED']
    """
    if not callable(optimizer):
        raise TypeError(
            "optimizer must be a factory called with the grid's values, e.g. jgd.gd or "
            f"lambda learning_rate: optax.adam(learning_rate); got {optimizer!r}."
        )
    configs = _grid(grid)
    names = tuple(configs)
    if "l2" in configs and not isinstance(loss_fn, Objective):
        raise ValueError(
            "grid['l2'] needs a loss built with jgd.objective(model, loss) so l2 can be swept."
        )
    members = len(next(iter(configs.values())))
    _check_factory(optimizer, configs, [n for n in names if n != "l2"], members)
    if seeds is not None:
        seeds = check_positive_int(seeds, "seeds")
        if not callable(params):
            raise ValueError("seeds needs params as an init function, e.g. model.init.")
        base = key if key is not None else jax.random.key(0)
        init_keys = jax.random.split(jax.random.fold_in(base, 0x5EED), seeds)
        starts = [_check_params(params(k)) for k in init_keys]
        configs = {n: np.repeat(v, seeds) for n, v in configs.items()}
        configs["seed"] = np.tile(np.arange(seeds), members)
        members *= seeds
        tiled = [starts[s] for s in np.asarray(configs["seed"])]
        start = jax.tree.map(lambda *leaves: jnp.stack(leaves), *tiled)
    else:
        if callable(params) and not isinstance(params, (dict, list, tuple)):
            params = params(key if key is not None else jax.random.key(0))
        start = _check_params(params)
    if isinstance(loss_fn, Objective):
        loss_fn = loss_fn._replace(model=_for_batched_params(loss_fn.model))
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
    config = config._replace(batched=True, record_params=bool(record_params))
    dtype = jax.dtypes.canonicalize_dtype(np.float64)
    traced = {n: jnp.asarray(v, dtype) for n, v in configs.items() if n != "seed"}
    if seeds is not None:
        traced["seed"] = jnp.asarray(configs["seed"], jnp.int32)
    member_axis, data_axis = "members", None
    if mesh is not None:
        mesh = data_mesh(mesh)
        member_axis = "members" if "members" in mesh.axis_names else None
        data_axis = "data" if "data" in mesh.axis_names else None
        if member_axis is None and data_axis is None:
            member_axis = mesh.axis_names[0]
    (traced, start_sharded), padded = _shard_members(
        (traced, start if seeds is not None else None), members, mesh, member_axis
    )
    if seeds is not None:
        start = start_sharded
    arrays, static = _filtering.partition((loss_fn, start, data, val_data, key, tol, traced))
    if mesh is not None:
        arrays, config = _place_on_mesh(arrays, (data, val_data), mesh, config, data_axis)
    config = config._replace(native=_on_one_device(arrays))
    seeded = seeds is not None
    every = _check_checkpointing(checkpoint, checkpoint_every, resume, config.epochs)
    show = _progress.wanted(progress, config.epochs, data.n_rows * members)
    call = (arrays, static, optimizer, seeded, config)

    def postfix(state: _State) -> dict[str, str]:
        status, loss = (np.asarray(a) for a in jax.device_get((state.status, state.prev_loss)))
        finite = loss[np.isfinite(loss)]
        return {
            "best": f"{finite.min():.4g}" if finite.size else "-",
            "median": f"{np.median(finite):.4g}" if finite.size else "-",
            "running": f"{int((status == Status.MAX_EPOCHS).sum())}/{status.size}",
        }

    def fingerprint(state: _State) -> dict[str, Any]:
        from jgd import checkpoint as checkpoints

        grid_values = {n: np.asarray(v).tolist() for n, v in configs.items()}
        return checkpoints.fingerprint(
            loss_fn=loss_fn,
            optimizer=optimizer,
            data=data,
            val_data=val_data,
            key=key,
            tol=tol,
            config=config,
            state=state,
            extra={"grid": grid_values},
        )

    outcome, final_loss, final_val = _drive(
        start=lambda: _sweep_start(*call),
        advance=lambda state, stop_at: _sweep_advance(*call, state, stop_at),
        finish=lambda state: _sweep_finish(*call, state),
        config=config,
        description="jgd.sweep",
        still_running=lambda state: bool(np.any(np.asarray(state.status) == Status.MAX_EPOCHS)),
        postfix=postfix,
        progress=show,
        checkpoint=None if checkpoint is None else os.fspath(checkpoint),
        checkpoint_every=every,
        resume=resume,
        fingerprint=fingerprint,
    )
    if padded != members:
        outcome, final_loss, final_val = jax.tree.map(
            lambda a: a[:members], (outcome, final_loss, final_val)
        )
    bound = None
    if "learning_rate" in configs:
        first = start if seeds is None else jax.tree.map(lambda a: a[0], start)
        bound = lr_bound(loss_fn, first, data)
    return SweepResult(
        configs={n: np.asarray(v) for n, v in configs.items()},
        params=outcome.params,
        opt_state=outcome.opt_state,
        history=outcome.history,
        final_loss=final_loss,
        final_val_loss=final_val,
        status=outcome.status,
        stop_epoch=outcome.epochs_run,
        diverged_at=outcome.diverged_at,
        lr_bound=bound,
    )
