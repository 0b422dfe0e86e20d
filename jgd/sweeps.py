"""Hyperparameter sweeps: every configuration trained at once, in one compiled program.

``sweep`` vmaps the same pure training core that ``fit`` compiles, so each
member behaves exactly like a solo ``fit`` (batching, reshuffles, history,
stopping, divergence), and hyperparameters are traced data. For jgd's linear
model with MSE the batched loss and gradient have their own rule
(``jgd._fused``: three passes over the members' residuals instead of nine).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgd import _filtering, _members, _progress, _sharding
from jgd._checks import check_hyperparameter, check_positive_int
from jgd._driver import Program, RunOptions, check_checkpointing, drive
from jgd._engine import (
    Config,
    Problem,
    State,
    finish,
    n_rows,
    n_values,
    values_per_row,
)
from jgd._validate import check_optimizer, check_params, prepare
from jgd.curvature import lr_bound
from jgd.data import Dataset
from jgd.distributed import data_mesh
from jgd.losses import Objective
from jgd.models import for_batched_params
from jgd.results import Best, PerMember, Status, SweepResult

__all__ = ["Best", "Halving", "SweepResult", "sweep"]


class Halving(NamedTuple):
    """Successive halving inside one sweep (Hyperband's inner loop).

    Every configuration trains for ``min_epochs``; the best ``1 / eta`` of
    them (by the monitored value at their final params: validation loss by
    default, or ``monitor``/``mode``; training loss without ``val_data``;
    diverged members last) train ``eta`` times longer, and so on until
    ``epochs`` or one configuration is left. Members train in blocks and only
    the survivors' blocks run, so compute follows the live members, with one
    compiled program for every rung. Eliminated members keep their results
    and history up to elimination, with ``Status.ELIMINATED``.
    """

    eta: int = 3
    min_epochs: int = 1


def _plain_gd_factories() -> tuple[Any, ...]:
    from jgd.optimizers import gd, momentum, nesterov

    return (gd, momentum, nesterov)


_PLAIN_GD = _plain_gd_factories()


class _Members(dict):
    """Configurations already expanded, one value per member: a chunk of a larger grid."""


def _grid(grid: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Validate the grid and return its Cartesian product, name -> (M,)."""
    if isinstance(grid, _Members):
        return dict(grid)
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError("grid must be a non-empty dict of name -> 1-D array of values.")
    axes = {}
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
        axes[name] = array
    # Axes keep their kind: integer axes (step counts) are traced as int32, others as floats.
    product = list(itertools.product(*axes.values()))
    return {name: np.asarray([p[i] for p in product]) for i, name in enumerate(axes)}


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
        check_optimizer(factory(**{n: configs[n] for n in names}))
        return
    except (TypeError, ValueError):
        pass
    for i in range(members):
        try:
            built = factory(**{n: configs[n][i].item() for n in names})
        except TypeError as error:
            raise TypeError(f"optimizer factory rejected grid names {names}: {error}") from None
        check_optimizer(built)


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
    metrics: dict[str, Any] | None = None,
    has_aux: bool = False,
    loss_takes_key: bool = False,
    monitor: str = "val_loss",
    mode: str = "min",
    stability_bound: bool = True,
    halving: Halving | None = None,
    member_chunk: int | None = None,
    compact: bool | int | None = None,
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
            ``params(key_i)`` and, with mini-batches, data orders: seed ``s``
            shuffles (and draws loss keys) with ``jax.random.fold_in(key, s)``,
            so a member equals a solo ``fit`` with that key. Adds a ``"seed"``
            entry to ``configs``; ``SweepResult.aggregate()`` gives mean ± std
            over seeds.
        record_params, progress: as in ``jgd.fit``; the bar shows the best and
            median current loss and how many members are still running.
        checkpoint, checkpoint_every, resume: as in ``jgd.fit``, for the whole
            sweep's state (a checkpoint also records the grid).
        metrics, has_aux, loss_takes_key, monitor, mode: as in ``jgd.fit``,
            recorded per member (``history.metrics[name]`` is (M, R)).
        stability_bound: with a ``learning_rate`` axis and jgd's own
            ``gd``/``momentum``/``nesterov`` factories, compute the plain-GD
            bound 2/L at the start (``lr_bound``; per member with its own
            ``l2`` in ``lr_bounds``). ``False`` skips it (a few seconds on big
            models); other optimizers (Adam, ...) never get it: 2/L says
            nothing about them.
        mesh: a ``jax.sharding.Mesh``: members are sharded over its
            ``"members"`` axis and data rows over its ``"data"`` axis (a 2-D
            mesh does both). Without one, members are sharded over every
            visible device. Results equal the single-device sweep.
        halving: a ``jgd.Halving(eta, min_epochs)`` to run successive halving
            (no checkpoints, meshes or progress bar with it).
        compact: train the members in blocks (a sixteenth of the grid each,
            but large enough to keep a step busy; an int sets the members per
            block) and, at each chunk boundary, run only the blocks of members
            still running, so diverged, converged and early-stopped members
            stop costing compute. One compiled program serves every live count
            (no recompiles as members drop out). Results equal
            ``compact=False`` up to round-off (a block vmaps fewer members).
            ``None`` (default): on for long runs (≥ ~1 s, which run in chunks
            anyway) of models larger than their data rows (MLPs, not linear
            models, whose members share each read of the data) on one CPU
            device; off on GPU/TPU, where one wide vmap may be faster (not
            measured). Needs one device.

    Grids too large for memory run automatically in chunks of members, one
    program call per chunk (same program), merged into one result;
    ``member_chunk`` sets the members per chunk (default: from the device's
    memory, a quarter of it for the sweep's state).

    Static axes: ``grid`` entries ``"batch_size"`` and ``"epochs"``,
    ``optimizer`` given as a dict ``{name: factory}`` (an ``"optimizer"``
    column), and models: ``loss_fn`` as a dict ``{name: loss}`` with
    ``params`` a dict of the same names (each the model's params or init
    function; a ``"model"`` column), change the program itself. The sweep
    runs one compiled program per combination of their values and merges the
    results into one ``SweepResult`` (``result.programs`` counts the
    programs; params of different shapes are kept as a
    ``jgd.results.PerMember`` list, one pytree per member); the other axes are
    traced as usual.

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
    arguments = {**locals()}
    split, configs = _split_sweep(arguments)
    if split is not None:
        return split
    if "l2" in configs and not isinstance(loss_fn, Objective):
        raise ValueError(
            "grid['l2'] needs a loss built with jgd.objective(model, loss) so l2 can be swept."
        )
    members = len(next(iter(configs.values())))
    _check_factory(optimizer, configs, [n for n in configs if n != "l2"], members)
    configs, start, seeded = _starts(params, configs, seeds, key)
    if isinstance(loss_fn, Objective):
        loss_fn = loss_fn._replace(model=for_batched_params(loss_fn.model))
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
    config = checked.config._replace(batched=True, record_params=bool(record_params))
    problem = checked.problem(None)
    arrays, static, config, padded = _placed(problem, start, configs, seeded, config, mesh)
    members = len(configs[next(iter(configs))])
    # A seeded start already holds one set of params per member.
    per_member = n_values(start) // (members if seeded else 1)
    options = _options(
        checked, config, members, per_member, progress, checkpoint, checkpoint_every, resume
    )
    call = (arrays, static, optimizer, seeded, config)
    step_work = per_member * (batch_size or n_rows(checked.data))
    if halving is not None:
        _check_halving(halving, checkpoint, mesh)
        block = _block_size(members, config.epochs, halving, step_work)
        outcome, final_loss, final_val = _run_halving(call, halving, block)
    else:
        block = None
        heavy = per_member >= 4 * values_per_row(checked.data)
        if _compacts(compact, mesh, padded == members, heavy, options):
            block = _block_size(members, config.epochs, None, step_work)
            block = compact if type(compact) is int else block
            options = options._replace(long=True)  # chunk boundaries: where members drop out
        outcome, final_loss, final_val = drive(_program(call, problem, configs, block), options)
    if padded != members:
        outcome, final_loss, final_val = jax.tree.map(
            lambda a: a[:members], (outcome, final_loss, final_val)
        )
    bounds = None
    if stability_bound and "learning_rate" in configs and optimizer in _PLAIN_GD:
        if not (has_aux or loss_takes_key):
            first = start if not seeded else jax.tree.map(lambda a: a[0], start)
            bounds = _bounds(checked.loss_fn, first, checked.data, configs)
    return _sweep_result(configs, outcome, final_loss, final_val, bounds)


def _options(checked, config, members, per_member, progress, checkpoint, checkpoint_every, resume):
    """How the driver runs a sweep (bar, checkpoints, chunks for long runs)."""
    rows = n_rows(checked.data)
    return RunOptions(
        epochs=config.epochs,
        description="jgd.sweep",
        progress=_progress.wanted(progress, config.epochs, rows * members),
        checkpoint=None if checkpoint is None else os.fspath(checkpoint),
        checkpoint_every=check_checkpointing(checkpoint, checkpoint_every, resume, config.epochs),
        resume=resume,
        long=_progress.long_run(
            config.epochs, rows, values_per_row(checked.data), per_member * members
        ),
    )


def _sweep_result(configs, outcome, final_loss, final_val, bounds) -> SweepResult:
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
        lr_bound=None if bounds is None else float(np.min(bounds)),
        lr_bounds=bounds,
    )


#: Grid names that change the program (not traced): one compiled program per value.
_STATIC_NAMES = ("batch_size", "epochs")


def _split_sweep(arguments: dict[str, Any]) -> tuple[SweepResult | None, Any]:
    """A sweep run as several programs (static axes, or member chunks), and the grid.

    ``arguments`` are ``sweep``'s own; the pieces call ``sweep`` again. Returns
    (the merged result, None), or (None, the grid's configurations) to run it
    as one program.
    """
    grid, optimizer = arguments["grid"], arguments["optimizer"]
    one_program = ("checkpoint", "halving")
    static = _static_axes(grid, optimizer, arguments["loss_fn"], arguments["params"])
    if static:
        if any(arguments[name] is not None for name in one_program):
            raise ValueError(
                "static grid axes (batch_size, epochs, a dict of optimizers or of models) run "
                "one program per combination: use them without checkpoint= or halving=."
            )
        if "model" in static and arguments["record_params"]:
            raise ValueError(
                "record_params keeps every member's parameter path in one array; with a dict "
                "of models (other shapes) run one sweep per model to record paths."
            )
        rest = {k: v for k, v in arguments.items() if k not in ("grid", "optimizer")}
        return _static_sweep(static, grid, optimizer, rest), None
    if not callable(optimizer):
        raise TypeError(
            "optimizer must be a factory called with the grid's values, e.g. jgd.gd or "
            f"lambda learning_rate: optax.adam(learning_rate); got {optimizer!r}."
        )
    configs = _grid(grid)
    chunk = _member_chunk(
        arguments["member_chunk"],
        configs,
        arguments["params"],
        arguments["data"],
        arguments["epochs"],
        arguments["record_every"],
        arguments["batch_size"],
    )
    if chunk >= len(next(iter(configs.values()))):
        return None, configs
    if any(arguments[name] is not None for name in one_program):
        raise ValueError(
            f"this grid runs in chunks of {chunk} members (memory); checkpoint= and "
            "halving= need it in one program: pass member_chunk=None with a smaller grid."
        )
    rest = {k: v for k, v in arguments.items() if k not in ("grid", "member_chunk")}
    return _chunked_sweep(configs, chunk, rest), None


def _static_axes(grid: Any, optimizer: Any, loss_fn: Any, params: Any) -> dict[str, list[Any]]:
    """The grid's static axes: batch_size/epochs entries, a dict of optimizer factories, and
    a dict of losses (models) with a dict of their params (or init functions)."""
    static = {}
    if isinstance(loss_fn, Mapping):
        if not loss_fn or not all(isinstance(k, str) and callable(f) for k, f in loss_fn.items()):
            raise TypeError(
                "a dict loss_fn maps model names to losses, e.g. {'width16': "
                "jgd.objective(jgd.models.mlp([8, 16, 1])), ...}."
            )
        if not isinstance(params, Mapping) or set(params) != set(loss_fn):
            raise ValueError(
                "with a dict of losses, params is a dict with the same names, each the model's "
                f"params or init function; got names {sorted(loss_fn)} for the losses and "
                f"{sorted(params) if isinstance(params, Mapping) else type(params).__name__} "
                "for params."
            )
        static["model"] = list(loss_fn)
    if isinstance(grid, Mapping):
        for name in _STATIC_NAMES:
            if name in grid:
                values = np.atleast_1d(np.asarray(grid[name])).tolist()
                static[name] = [None if v is None else check_positive_int(v, name) for v in values]
    if isinstance(optimizer, Mapping):
        if not optimizer or not all(
            isinstance(k, str) and callable(f) for k, f in optimizer.items()
        ):
            raise TypeError(
                "a dict optimizer maps names to factories, e.g. {'sgd': jgd.gd, 'adam': "
                "lambda learning_rate: optax.adam(learning_rate)}."
            )
        static["optimizer"] = list(optimizer)
    return static


def _static_sweep(static, grid, optimizer, arguments) -> SweepResult:
    """One sweep per combination of static values, merged into one ``SweepResult``."""
    traced = {n: v for n, v in grid.items() if n not in static}
    if not traced:
        raise ValueError(
            "grid needs at least one traced axis (a number swept inside the program, e.g. "
            "learning_rate) beside its static axes."
        )
    results, columns = [], []
    for values in itertools.product(*static.values()):
        chosen = dict(zip(static, values))
        factory = optimizer[chosen["optimizer"]] if "optimizer" in chosen else optimizer
        model = chosen.get("model")
        result = sweep(
            **{
                **arguments,
                "batch_size": chosen.get("batch_size", arguments["batch_size"]),
                "epochs": chosen.get("epochs", arguments["epochs"]),
                "loss_fn": arguments["loss_fn"] if model is None else arguments["loss_fn"][model],
                "params": arguments["params"] if model is None else arguments["params"][model],
            },
            grid=traced,
            optimizer=factory,
        )
        results.append(result)
        columns.append(chosen)
    return _merge_results(results, columns)


#: The share of device (or host) memory a sweep's per-member state may take.
_MEMORY_SHARE = 0.25


def _memory_bytes() -> int:
    stats = jax.devices()[0].memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _member_chunk(chunk, configs, params, data, epochs, record_every, batch_size) -> int:
    """Members per program: ``chunk`` if given, else what fits in a share of memory.

    Per member: params, optimizer state and best params (about 5 copies),
    the history records and one residual per row of a step, in float32/64.
    """
    members = len(next(iter(configs.values())))
    if chunk is not None:
        return check_positive_int(chunk, "member_chunk")
    sizes = [np.size(a) for a in jax.tree.leaves(params)] if not callable(params) else [0]
    rows = max((np.shape(a)[0] for a in jax.tree.leaves(data) if np.ndim(a)), default=1)
    records = -(-int(epochs) // int(record_every)) if isinstance(epochs, int) else 1
    step_rows = batch_size if isinstance(batch_size, int) else rows
    per_member = 8 * (5 * sum(sizes) + 8 * records + step_rows)
    return max(1, min(members, int(_MEMORY_SHARE * _memory_bytes() // max(per_member, 1))))


def _chunked_sweep(configs: dict[str, np.ndarray], chunk: int, arguments: dict) -> SweepResult:
    members = len(next(iter(configs.values())))
    results = [
        sweep(
            **arguments,
            grid=_Members({n: v[i : i + chunk] for n, v in configs.items()}),
            member_chunk=chunk,
        )
        for i in range(0, members, chunk)
    ]
    merged = _merge_results(results, [{} for _ in results])
    return merged._replace(programs=len({r.n_members for r in results}))


def _merge_results(results: list[SweepResult], columns: list[dict[str, Any]]) -> SweepResult:
    """Sweeps of the same grid under different static values, as one result."""
    configs = {}
    for name in columns[0]:
        configs[name] = np.concatenate(
            [np.full(r.n_members, c[name]) for r, c in zip(results, columns)]
        )
    for name in results[0].configs:
        configs[name] = np.concatenate([np.asarray(r.configs[name]) for r in results])
    records = max(r.history.epoch.shape[1] for r in results)
    histories = [_members.grow_history(r.history, records) for r in results]
    stacked = jax.tree.map(
        lambda *a: jnp.concatenate(a),
        *[
            (h, r.final_loss, r.final_val_loss, r.status, r.stop_epoch, r.diverged_at)
            for r, h in zip(results, histories)
        ],
    )
    bounds = [r.lr_bounds for r in results]
    lr_bounds = np.concatenate(bounds) if all(b is not None for b in bounds) else None
    return SweepResult(
        configs,
        _stack_or_list(results, "params"),
        _stack_or_list(results, "opt_state"),
        *stacked,
        lr_bound=None if lr_bounds is None else float(np.min(lr_bounds)),
        lr_bounds=lr_bounds,
        programs=len(results),
    )


def _stack_or_list(results: list[SweepResult], field: str) -> Any:
    """The pieces' params (or optimizer states) stacked over members when they have one
    layout, else one pytree per member (other optimizers or models)."""
    trees = [getattr(r, field) for r in results]
    layouts = {
        (jax.tree.structure(t), tuple(np.shape(a)[1:] for a in jax.tree.leaves(t))) for t in trees
    }
    if len(layouts) == 1:
        return jax.tree.map(lambda *a: jnp.concatenate(a), *trees)
    return PerMember(getattr(r.member(i), field) for r in results for i in range(r.n_members))


def _check_halving(halving: Any, checkpoint: Any, mesh: Any) -> None:
    if not isinstance(halving, Halving):
        raise TypeError(f"halving must be a jgd.Halving(eta, min_epochs), got {halving!r}.")
    check_positive_int(halving.eta, "halving.eta", minimum=2)
    check_positive_int(halving.min_epochs, "halving.min_epochs")
    if checkpoint is not None or mesh is not None:
        raise ValueError("halving runs on one device without checkpoints; drop checkpoint/mesh.")


#: Without halving, a grid runs in about this many blocks when stopped members are compacted.
_BLOCKS = 16
#: The least work (parameters x rows of a step, over a block's members) a block's step
#: should do: each block runs its own epoch loop, and small blocks lose more to it than
#: compaction saves (an 8-16-1 MLP, 256-row steps: 8 members per block 1.6x slower than
#: one wide vmap of 128, 32 members as fast).
_BLOCK_WORK = 2**20


def _block_size(members: int, epochs: int, halving: Halving | None, step_work: int) -> int:
    """Members per block: a sixteenth of the grid; with halving, the last rung's size (at
    least 1/64 of the grid), so the last rungs waste no compute on padding; and never so
    few that a block's step does less than ``_BLOCK_WORK``."""
    smallest = min(members, -(-_BLOCK_WORK // max(step_work, 1)))
    if halving is None:
        return max(-(-members // _BLOCKS), smallest)
    live, end = members, halving.min_epochs
    while end < epochs and live > 1:
        live, end = -(-live // halving.eta), end * halving.eta
    return max(live, -(-members // 64), smallest)


def _compacts(compact: Any, mesh: Any, unpadded: bool, heavy: bool, options: RunOptions) -> bool:
    """Whether stopped members are compacted: asked for, or (``None``) for a long run (in
    chunks anyway: chunk boundaries are where members drop out) on one CPU device of a
    model ``heavy`` beside its data (≥ 4 parameters per value in a row: an MLP, not a
    linear model, whose members share each read of the data; blocks would read it again
    per block)."""
    if compact is not None and not isinstance(compact, bool):
        if type(compact) is not int or compact < 1:
            raise TypeError(
                f"compact must be True, False, None or the members per block, got {compact!r}."
            )
    one_device = mesh is None and unpadded and len(jax.devices()) == 1
    if compact and not one_device:
        raise ValueError("compact= runs on one device: drop mesh= (or use one device).")
    if compact is None:
        chunked = options.long or options.progress or options.checkpoint_every is not None
        return one_device and heavy and chunked and jax.default_backend() == "cpu"
    return bool(compact)


def _live(state: State) -> np.ndarray:
    return np.flatnonzero(np.asarray(state.status) == Status.MAX_EPOCHS)


def _advance_live(call: tuple, state: State, block: int, stop_at: Any) -> State:
    """Advance only the running members (the block program: no recompile as they drop)."""
    order, n_blocks = _members.block_order(_live(state), state.status.shape[0], block)
    return _members.advance_blocks(*call, state, order, n_blocks, np.int32(stop_at), block=block)


def _run_halving(call: tuple, halving: Halving, block: int):
    """Successive halving: rung by rung, the best 1/eta of the members go on.

    Members are ranked by the monitored value at their final params (validation
    loss by default; diverged members last); the eliminated keep their state,
    history and final losses, with status ``ELIMINATED`` if they were running.
    Two programs in all (start, and the scored block loop), whatever the rungs.
    """
    config = call[-1]
    state = _members.start(*call)
    members = state.status.shape[0]
    final_loss, final_val = np.full(members, np.nan), np.full(members, np.nan)
    alive, end = np.arange(members), halving.min_epochs
    while True:
        end = min(end, config.epochs)
        order, n_blocks = _members.block_order(alive, members, block)
        state, scored = _members.advance_blocks(
            *call, state, order, n_blocks, np.int32(end), block=block, scored=True
        )
        scored = jax.device_get(scored)
        final_loss[alive], final_val[alive] = scored.final_loss[alive], scored.final_val[alive]
        if end >= config.epochs or alive.size <= 1:
            break
        ranked, status = np.array(scored.score[alive], float), np.array(state.status)
        ranked[~np.isfinite(ranked) | (status[alive] == Status.DIVERGED)] = np.inf
        by_score = np.argsort(ranked, kind="stable")
        kept = -(-alive.size // halving.eta)  # ceil(live / eta)
        gone = alive[by_score[kept:]]
        status[gone[status[gone] == Status.MAX_EPOCHS]] = Status.ELIMINATED
        state = state._replace(status=jnp.asarray(status, jnp.int32))
        alive, end = np.sort(alive[by_score[:kept]]), end * halving.eta
    dtype = state.prev_loss.dtype
    return finish(state, config), jnp.asarray(final_loss, dtype), jnp.asarray(final_val, dtype)


def _bounds(loss_fn: Any, params: Any, data: Any, configs: dict[str, np.ndarray]):
    """Each member's plain-GD bound 2/L at the start, with its own l2; None if not finite."""
    l2_values = configs.get("l2")
    if l2_values is None:
        bound = lr_bound(loss_fn, params, data)
        per_value = {None: bound}
        keys = [None] * len(next(iter(configs.values())))
    else:
        per_value = {
            v: lr_bound(loss_fn._replace(l2=jnp.asarray(v)), params, data)
            for v in np.unique(l2_values).tolist()
        }
        keys = np.asarray(l2_values).tolist()
    bounds = np.asarray([per_value[k] for k in keys], float)
    return bounds if np.all(np.isfinite(bounds)) and np.all(bounds > 0) else None


def _starts(
    params: Any, configs: dict[str, np.ndarray], seeds: Any, key: Any
) -> tuple[dict[str, np.ndarray], Any, bool]:
    """The members' starting params: shared, or one per seed (tiled over the grid)."""
    if seeds is None:
        if callable(params) and not isinstance(params, (dict, list, tuple)):
            params = params(key if key is not None else jax.random.key(0))
        return configs, check_params(params), False
    seeds = check_positive_int(seeds, "seeds")
    if not callable(params):
        raise ValueError("seeds needs params as an init function, e.g. model.init.")
    members = len(next(iter(configs.values())))
    base = key if key is not None else jax.random.key(0)
    init_keys = jax.random.split(jax.random.fold_in(base, 0x5EED), seeds)
    starts = [check_params(params(k)) for k in init_keys]
    configs = {n: np.repeat(v, seeds) for n, v in configs.items()}
    configs["seed"] = np.tile(np.arange(seeds), members)
    tiled = [starts[s] for s in np.asarray(configs["seed"])]
    return configs, jax.tree.map(lambda *leaves: jnp.stack(leaves), *tiled), True


def _placed(problem: Problem, start: Any, configs, seeded: bool, config: Config, mesh: Any):
    """Members sharded over devices, data rows over a mesh's data axis; the program's arrays."""
    members = len(next(iter(configs.values())))
    dtype = jax.dtypes.canonicalize_dtype(np.float64)
    traced = {
        n: jnp.asarray(v, jnp.int32 if np.issubdtype(v.dtype, np.integer) else dtype)
        for n, v in configs.items()
        if n != "seed"
    }
    if seeded:
        traced["seed"] = jnp.asarray(configs["seed"], jnp.int32)
    member_axis, data_axis = "members", None
    if mesh is not None:
        mesh = data_mesh(mesh)
        member_axis = "members" if "members" in mesh.axis_names else None
        data_axis = "data" if "data" in mesh.axis_names else None
        if member_axis is None and data_axis is None:
            member_axis = mesh.axis_names[0]
    (traced, start_sharded), padded = _sharding.shard_members(
        (traced, start if seeded else None), members, mesh, member_axis
    )
    if seeded:
        start = start_sharded
    arrays, static = _filtering.partition((problem, start, traced))
    if mesh is not None:
        arrays, rows = _sharding.place_on_mesh(
            arrays, (problem.data, problem.val_data), mesh, data_axis
        )
        config = config._replace(data_sharding=rows)
    return arrays, static, config._replace(native=_sharding.on_one_device(arrays)), padded


def _program(
    call: tuple, problem: Problem, configs: dict[str, np.ndarray], block: int | None
) -> Program:
    """The sweep's program for the driver; with ``block``, each chunk advances only the
    members still running (compaction)."""
    config = call[-1]

    def postfix(state: State) -> dict[str, str]:
        status, loss = (np.asarray(a) for a in jax.device_get((state.status, state.prev_loss)))
        finite = loss[np.isfinite(loss)]
        return {
            "best": f"{finite.min():.4g}" if finite.size else "-",
            "median": f"{np.median(finite):.4g}" if finite.size else "-",
            "running": f"{int((status == Status.MAX_EPOCHS).sum())}/{status.size}",
        }

    def fingerprint(state: State) -> dict[str, Any]:
        from jgd import checkpoint as checkpoints

        grid_values = {n: np.asarray(v).tolist() for n, v in configs.items()}
        return checkpoints.fingerprint(
            loss_fn=problem.loss_fn,
            optimizer=call[2],
            data=problem.data,
            val_data=problem.val_data,
            key=problem.key,
            tol=problem.tol,
            config=config,
            state=state,
            extra={"grid": grid_values},
        )

    return Program(
        start=lambda: _members.start(*call),
        advance=(
            (lambda state, stop_at: _members.advance(*call, state, stop_at))
            if block is None
            else (lambda state, stop_at: _advance_live(call, state, block, stop_at))
        ),
        finish=lambda state: _members.finish_all(*call, state),
        running=lambda state: bool(np.any(np.asarray(state.status) == Status.MAX_EPOCHS)),
        postfix=postfix,
        fingerprint=fingerprint,
    )
