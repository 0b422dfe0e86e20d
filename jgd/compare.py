"""Optax comparison harness: jgd's optimizers checked step by step against optax's."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jgd import _filtering, problems
from jgd._checks import check_positive_int
from jgd._engine import Config, Problem, run_epoch
from jgd._text import table
from jgd._validate import check_optimizer
from jgd.optimizers import gd, momentum, nesterov

__all__ = ["ParityReport", "ParityRow", "default_pairs", "optax_parity", "tolerance"]

Pair = tuple[optax.GradientTransformation, optax.GradientTransformation]

#: Round-off allowance in units of the dtype's epsilon, per sqrt(step): float32
#: paths that compute the same formula in a different order drift apart like a
#: random walk of rounding errors.
_EPS_PER_ROOT_STEP = 64.0


class ParityRow(NamedTuple):
    """One optimizer pair on one problem."""

    problem: str
    pair: str
    epochs: int
    max_param_diff: float
    tolerance: float
    jgd_loss: float
    optax_loss: float
    passed: bool


class ParityReport(NamedTuple):
    """Rows of ``optax_parity``; ``passed`` is True when every row passed."""

    rows: list[ParityRow]

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.rows)

    def table(self) -> str:
        return table(
            [
                "problem",
                "pair",
                "epochs",
                "max |Δparam|",
                "tolerance",
                "jgd loss",
                "optax loss",
                "",
            ],
            [
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
                for r in self.rows
            ],
        )

    def __repr__(self) -> str:
        return self.table()


def default_pairs(learning_rate: float, beta: float = 0.9) -> dict[str, Pair]:
    """jgd's optimizers and their optax twins at one learning rate."""
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
    }


def tolerance(dtype: Any, epochs: int, scale: float) -> float:
    """Largest parameter difference still counted as round-off.

    ``64 * eps(dtype) * sqrt(epochs) * max(1, scale)``, where ``scale`` is the
    largest parameter magnitude along the trajectory.
    """
    eps = float(jnp.finfo(dtype).eps)
    return _EPS_PER_ROOT_STEP * eps * float(np.sqrt(epochs)) * max(1.0, scale)


@functools.partial(jax.jit, static_argnames=("static", "config"))
def _trajectory(arrays: list[Any], static: _filtering.Static, config: Config):
    problem, params = _filtering.combine(arrays, static)

    def epoch(carry, index):
        params, opt_state = carry
        params, opt_state, loss, _ = run_epoch(problem, config, params, opt_state, index + 1)
        return (params, opt_state), (params, loss)

    start = (params, problem.optimizer.init(params))
    _, (path, losses) = lax.scan(epoch, start, jnp.arange(config.epochs))
    return path, losses, problem.loss_fn(jax.tree.map(lambda a: a[-1], path), problem.data)


def _run(problem: problems.Problem, optimizer, epochs: int, batch_size, key):
    config = Config(
        epochs=epochs,
        batch_size=batch_size,
        record_every=1,
        patience=None,
        use_tol=False,
        shuffle=batch_size is not None,
    )
    run = Problem(problem.loss_fn, optimizer, problem.data, None, key, None)
    arrays, static = _filtering.partition((run, problem.params))
    return _trajectory(arrays, static, config)


def optax_parity(
    problem: problems.Problem | str,
    pairs: Mapping[str, Pair] | None = None,
    *,
    epochs: int,
    batch_size: int | None = None,
    key: jax.Array | None = None,
) -> ParityReport:
    """Run each (jgd, optax) optimizer pair from the same start on the same batches.

    Args:
        problem: a ``jgd.problems.Problem`` or its registry name.
        pairs: name -> (jgd optimizer, optax optimizer); by default
            ``default_pairs(problem.learning_rate)``.
        epochs: epochs to run (full batch: one step each).
        batch_size: mini-batch size; both optimizers see the same batches.
        key: shuffling key for mini-batches (default ``jax.random.key(0)``).

    Returns:
        A ``ParityReport``: per pair, the largest parameter difference along the
        whole trajectory (after every epoch), both final losses, and pass/fail
        against ``tolerance``.

    Example:
        >>> import jgd
        >>> report = jgd.compare.optax_parity("quadratic_bowl", epochs=50)
        >>> report.passed, len(report.rows)
        (True, 3)
    """
    if isinstance(problem, str):
        problem = problems.get(problem)
    epochs = check_positive_int(epochs, "epochs")
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "batch_size")
        if batch_size >= problem.data.n_rows:
            batch_size = None
    key = jax.random.key(0) if key is None else key
    pairs = default_pairs(problem.learning_rate) if pairs is None else pairs
    rows = []
    for name, (ours, theirs) in pairs.items():
        check_optimizer(ours)
        check_optimizer(theirs)
        path_ours, _, loss_ours = _run(problem, ours, epochs, batch_size, key)
        path_theirs, _, loss_theirs = _run(problem, theirs, epochs, batch_size, key)
        diffs = jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), path_ours, path_theirs)
        max_diff = float(max(jax.tree.leaves(diffs)))
        scale = float(
            max(jax.tree.leaves(jax.tree.map(lambda a: jnp.max(jnp.abs(a)), path_theirs)))
        )
        dtype = jax.tree.leaves(problem.params)[0].dtype
        allowed = tolerance(dtype, epochs, scale)
        rows.append(
            ParityRow(
                problem=problem.name,
                pair=name,
                epochs=epochs,
                max_param_diff=max_diff,
                tolerance=allowed,
                jgd_loss=float(loss_ours),
                optax_loss=float(loss_theirs),
                passed=bool(np.isfinite(max_diff) and max_diff <= allowed),
            )
        )
    return ParityReport(rows)
