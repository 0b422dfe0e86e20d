"""Optax comparison harness: jgd's training checked step by step, and timed, against optax's.

For each pair ``(ours, theirs)`` of optimizers, ``jgd.fit`` runs ``ours`` and
the plain optax idiom (a jitted optax step called from a Python loop) runs
``theirs`` from the same start on the same mini-batches; the parameters after
every epoch must agree to round-off, and both runs are timed. The pairs are
jgd's optimizers and their optax twins by default, or any optimizers named or
passed in (an optax optimizer paired with itself checks jgd's loop alone).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jgd import problems
from jgd._checks import check_positive_int
from jgd._idioms import Run, optax_loop
from jgd._text import table
from jgd._timing import time_calls
from jgd.optimizers import gd, momentum, nesterov
from jgd.training import fit

__all__ = [
    "JGD_OPTIMIZERS",
    "ParityReport",
    "ParityRow",
    "default_pairs",
    "named_pairs",
    "optax_parity",
    "optimizer_by_name",
    "tolerance",
]

Pair = tuple[optax.GradientTransformation, optax.GradientTransformation]

#: jgd's own optimizers by name, with the optax call each one equals.
JGD_OPTIMIZERS = ("gd", "momentum", "nesterov")

#: Round-off allowance in units of the dtype's epsilon, per sqrt(step): float32
#: paths that compute the same formula in a different order drift apart like a
#: random walk of rounding errors.
_EPS_PER_ROOT_STEP = 64.0


class ParityRow(NamedTuple):
    """One optimizer pair on one problem.

    ``jgd_seconds`` / ``optax_seconds``: median seconds of one whole run of
    ``jgd.fit`` and of the optax Python loop (both keeping every epoch's
    params); None when not timed.
    """

    problem: str
    pair: str
    epochs: int
    max_param_diff: float
    tolerance: float
    jgd_loss: float
    optax_loss: float
    passed: bool
    jgd_seconds: float | None = None
    optax_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (non-finite numbers become None)."""
        return {k: _finite_or_none(v) for k, v in self._asdict().items()}


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class ParityReport(NamedTuple):
    """Rows of ``optax_parity``; ``passed`` is True when every row passed."""

    rows: list[ParityRow]

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.rows)

    def to_dict(self) -> dict[str, Any]:
        """``{"passed": ..., "rows": [...]}``, JSON-ready."""
        return {"passed": self.passed, "rows": [row.to_dict() for row in self.rows]}

    def table(self) -> str:
        """One line per pair: largest parameter gap, tolerance, losses, verdict; times if timed."""
        timed = any(r.jgd_seconds is not None for r in self.rows)
        headers = [
            "problem",
            "pair",
            "epochs",
            "max |Δparam|",
            "tolerance",
            "jgd loss",
            "optax loss",
            "",
        ] + (["jgd s", "optax loop s"] if timed else [])
        rows = [
            (
                r.problem,
                r.pair,
                r.epochs,
                r.max_param_diff,
                r.tolerance,
                r.jgd_loss,
                r.optax_loss,
                "ok" if r.passed else "FAIL",
            )
            + ((r.jgd_seconds, r.optax_seconds) if timed else ())
            for r in self.rows
        ]
        return table(headers, rows)  # fmt: skip

    def __repr__(self) -> str:
        return self.table()


def default_pairs(learning_rate: float, beta: float = 0.9) -> dict[str, Pair]:
    """jgd's optimizers and their optax twins at one learning rate, and optax's L-BFGS.

    L-BFGS (with its zoom line search; no learning rate) runs in ``jgd.fit``
    against optax's documented loop, which passes ``value``, ``grad`` and
    ``value_fn`` to ``update``.

    Example:
        >>> list(default_pairs(0.1))
        ['gd / optax.sgd', 'momentum / optax.sgd(momentum)', 'nesterov / optax.sgd(nesterov)', \
'optax.lbfgs']
    """
    return {
        "gd / optax.sgd": (gd(learning_rate), optax.sgd(learning_rate)),
        "momentum / optax.sgd(momentum)": (
            momentum(learning_rate, beta),
            optax.sgd(learning_rate, momentum=beta),
        ),
        "nesterov / optax.sgd(nesterov)": (
            nesterov(learning_rate, beta),
            optax.sgd(learning_rate, momentum=beta, nesterov=True),
        ),
        "optax.lbfgs": (optax.lbfgs(), optax.lbfgs()),
    }


def optimizer_by_name(name: str, learning_rate: float, beta: float = 0.9) -> Any:
    """jgd's ``gd``/``momentum``/``nesterov``, or ``optax.<name>(learning_rate)``.

    Example:
        >>> optimizer_by_name("adam", 1e-3).init({"w": jnp.zeros(2)})[0].count
        Array(0, dtype=int32)
    """
    if name == "lbfgs":  # its zoom line search picks the step; no learning rate
        return optax.lbfgs()
    if name in JGD_OPTIMIZERS:
        factory = {"gd": gd, "momentum": momentum, "nesterov": nesterov}[name]
        return factory(learning_rate) if name == "gd" else factory(learning_rate, beta)
    factory = getattr(optax, name, None) if not name.startswith("_") else None
    try:
        optimizer = factory(learning_rate) if callable(factory) else None
    except TypeError:
        optimizer = None
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(
            f"unknown optimizer {name!r}: give one of {', '.join(JGD_OPTIMIZERS)} or the name "
            "of an optax optimizer taking a learning rate (sgd, adam, adamw, rmsprop, ...)."
        )
    return optimizer


def named_pairs(names: Sequence[str], learning_rate: float, beta: float = 0.9) -> dict[str, Pair]:
    """Pairs for optimizer names: jgd's own with their optax twins, an optax one with itself.

    Example:
        >>> list(named_pairs(["gd", "adam"], 0.1))
        ['gd / optax.sgd', 'optax.adam']
    """
    twins = default_pairs(learning_rate, beta)
    pairs = {}
    for name in names:
        if name in JGD_OPTIMIZERS:
            pairs.update((k, v) for k, v in twins.items() if k.split(" ")[0] == name)
        else:
            optimizer = optimizer_by_name(name, learning_rate, beta)
            pairs[f"optax.{name}"] = (optimizer, optimizer)
    return pairs


def tolerance(dtype: Any, epochs: int, scale: float) -> float:
    """Largest parameter difference still counted as round-off.

    ``64 * eps(dtype) * sqrt(epochs) * max(1, scale)``, where ``scale`` is the
    largest parameter magnitude along the trajectory.

    Example:
        >>> tolerance(jnp.float32, 100, 1.0) == 64 * 2**-23 * 10
        True
    """
    eps = float(jnp.finfo(dtype).eps)
    return _EPS_PER_ROOT_STEP * eps * float(np.sqrt(epochs)) * max(1.0, scale)


class _Settings(NamedTuple):
    """How every pair is run: epochs, batches, shuffling key, timed repeats (0: untimed)."""

    epochs: int
    batch_size: int | None
    key: jax.Array | None  # None with full batches: nothing to shuffle
    repeats: int


def _jgd_run(problem: problems.Problem, optimizer: Any, settings: _Settings) -> Any:
    """``jgd.fit`` keeping every epoch's params (a ``FitResult``)."""
    return fit(
        problem.loss_fn,
        problem.params,
        problem.data,
        optimizer=optimizer,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        key=settings.key,
        record_params=True,
    )


def _max_gap(ours: Any, theirs: Any) -> float:
    """Largest absolute difference between two stacked paths; inf if their shapes differ
    (a run that diverged stops early and keeps fewer epochs)."""
    shapes = jax.tree.map(jnp.shape, (ours, theirs))
    if jax.tree.structure(ours) != jax.tree.structure(theirs) or shapes[0] != shapes[1]:
        return float("inf")
    gaps = jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), ours, theirs)
    return float(max(jax.tree.leaves(gaps)))


def _pair_row(problem: problems.Problem, name: str, pair: Pair, settings: _Settings) -> ParityRow:
    ours, theirs = pair
    for optimizer in pair:
        if not (
            callable(getattr(optimizer, "init", None))
            and callable(getattr(optimizer, "update", None))
        ):
            raise TypeError(f"pair {name!r}: {optimizer!r} is not an optax.GradientTransformation.")
    run = Run(
        problem.loss_fn,
        problem.params,
        problem.data,
        theirs,
        settings.epochs,
        settings.batch_size,
        settings.key,
    )
    loop = optax_loop(run, keep_path=True)
    result = _jgd_run(problem, ours, settings)
    epochs_theirs = loop.call()
    path_theirs = jax.tree.map(lambda *leaves: jnp.stack(leaves), *epochs_theirs)
    max_diff = _max_gap(result.history.params, path_theirs)
    scale = max(float(jnp.max(jnp.abs(leaf))) for leaf in jax.tree.leaves(path_theirs))
    dtype = jax.tree.leaves(problem.params)[0].dtype
    allowed = tolerance(dtype, settings.epochs, scale)
    seconds: list[float | None] = [None, None]
    if settings.repeats:
        # Both already ran (and compiled) once above: these are warm timings.
        def jgd_call() -> Any:
            return _jgd_run(problem, ours, settings).history.params

        seconds = [time_calls(call, settings.repeats).median for call in (jgd_call, loop.call)]
    return ParityRow(
        problem=problem.name,
        pair=name,
        epochs=settings.epochs,
        max_param_diff=max_diff,
        tolerance=allowed,
        jgd_loss=float(problem.loss_fn(result.params, problem.data)),
        optax_loss=float(problem.loss_fn(epochs_theirs[-1], problem.data)),
        passed=bool(np.isfinite(max_diff) and max_diff <= allowed),
        jgd_seconds=seconds[0],
        optax_seconds=seconds[1],
    )


def optax_parity(
    problem: problems.Problem | str,
    pairs: Mapping[str, Pair] | None = None,
    *,
    epochs: int,
    batch_size: int | None = None,
    key: jax.Array | None = None,
    repeats: int = 0,
) -> ParityReport:
    """Run each pair: ``jgd.fit`` with the first optimizer, the optax loop with the second.

    Both start from the problem's params and see the same mini-batches (jgd's
    reshuffle, replayed by the loop). The optax side is the plain idiom: a
    jitted ``value_and_grad`` + ``optimizer.update`` + ``apply_updates`` step
    called from a Python loop.

    Args:
        problem: a ``jgd.problems.Problem`` or its registry name.
        pairs: name -> (optimizer for jgd.fit, optimizer for the optax loop),
            e.g. ``named_pairs(["adam"], 0.01)``; by default
            ``default_pairs(problem.learning_rate)``.
        epochs: epochs to run (full batch: one step each).
        batch_size: mini-batch size; both runs see the same batches.
        key: shuffling key for mini-batches (default ``jax.random.key(0)``).
        repeats: also time each run this many times (median seconds in the
            row's ``jgd_seconds`` / ``optax_seconds``); 0 skips timing.

    Returns:
        A ``ParityReport``: per pair, the largest parameter difference along the
        whole trajectory (after every epoch), both final losses, pass/fail
        against ``tolerance``, and the median times when timed.

    Example:
        >>> import jgd
        >>> report = jgd.compare.optax_parity("quadratic_bowl", epochs=50)
        >>> report.passed, len(report.rows)  # gd, momentum, nesterov and L-BFGS
        (True, 4)
    """
    if isinstance(problem, str):
        problem = problems.get(problem)
    epochs = check_positive_int(epochs, "epochs")
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "batch_size")
        if batch_size >= problem.data.n_rows:
            batch_size = None
    if repeats:
        repeats = check_positive_int(repeats, "repeats")
    key = None if batch_size is None else jax.random.key(0) if key is None else key
    settings = _Settings(epochs, batch_size, key, repeats)
    pairs = default_pairs(problem.learning_rate) if pairs is None else pairs
    return ParityReport([_pair_row(problem, name, pair, settings) for name, pair in pairs.items()])
