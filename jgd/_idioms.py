"""The two optax idioms jgd is measured and checked against, on jgd's own batches.

- ``optax_loop``: a jitted optax step called from a Python ``for`` over epochs
  and mini-batches;
- ``optax_scan``: the whole run in one jitted ``lax.scan``.

Both visit the rows as ``jgd.fit`` does: mini-batches of ``batch_size`` rows,
the last short batch a step of its own, reshuffled every epoch ``e`` (from 1)
as ``jgd.data.permutation(jax.random.fold_in(key, e), n)`` when there is a key.
So ``jgd.bench`` times equal work and ``jgd.compare`` compares equal
trajectories. Each is compiled ahead of time and says how long that took.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jgd._timing import aot
from jgd.data import permutation

__all__ = ["Idiom", "Run", "optax_loop", "optax_scan"]


class Run(NamedTuple):
    """One training run: what to minimise, from where, on what, and how the rows are visited."""

    loss_fn: Callable[[Any, Any], jax.Array]
    params: Any
    data: Any
    optimizer: optax.GradientTransformation
    epochs: int
    batch_size: int | None  # None: full batch
    key: jax.Array | None  # None: rows in order

    @property
    def rows(self) -> int:
        return int(jax.tree.leaves(self.data)[0].shape[0])

    @property
    def batches(self) -> tuple[int, int]:
        """(full mini-batches, rows in the last short one) per epoch."""
        return divmod(self.rows, self.batch_size) if self.batch_size else (1, 0)

    @property
    def steps(self) -> int:
        full, rest = self.batches
        return self.epochs * (full + (rest > 0))


class Idiom(NamedTuple):
    """A compiled idiom: ``call()`` runs it; ``compiled``: its (step's) ``jax.stages.Compiled``.

    For the loop, ``compiled`` is the mini-batch step (XLA's FLOP count is per step).
    """

    call: Callable[[], Any]
    compile_s: float
    compiled: Any


def _step_fn(run: Run) -> Callable[..., Any]:
    def step(params, state, batch):
        loss, grads = jax.value_and_grad(run.loss_fn)(params, batch)
        if isinstance(run.optimizer, optax.GradientTransformationExtraArgs):
            # optax's documented loop for L-BFGS, line searches, reduce_on_plateau.
            updates, state = run.optimizer.update(
                grads,
                state,
                params,
                value=loss,
                grad=grads,
                value_fn=lambda p: run.loss_fn(p, batch),
            )
        else:
            updates, state = run.optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    return step


def _gather(data: Any, rows: jax.Array) -> Any:
    return jax.tree.map(lambda a: jnp.take(a, rows, axis=0), data)


def _order(run: Run, key: jax.Array, epoch: jax.Array) -> jax.Array:
    """The epoch's rows: jgd's shuffle when there is a key, else in order."""
    if run.key is None:
        return jnp.arange(run.rows)
    return permutation(jax.random.fold_in(key, epoch), run.rows)


def _split(run: Run, order: jax.Array) -> tuple[jax.Array, jax.Array]:
    """An epoch's order as (full mini-batches, one per row; the short last batch)."""
    full, _ = run.batches
    cut = full * run.batch_size
    return order[:cut].reshape(full, run.batch_size), order[cut:]


def optax_loop(run: Run, *, keep_path: bool = False) -> Idiom:
    """A jitted optax step in a Python loop; ``call()`` returns the final params.

    With ``keep_path``, ``call()`` returns the list of params after each epoch.
    """
    step = _step_fn(run)
    state = run.optimizer.init(run.params)
    if run.batch_size is None:
        full_step = aot(step, run.params, state, run.data)

        def epochs(params: Any, opt_state: Any) -> Any:
            for _ in range(run.epochs):
                params, opt_state, _ = full_step.call(params, opt_state, run.data)
                yield params

        return Idiom(
            lambda: _finish(epochs(run.params, state), keep_path),
            full_step.seconds,
            full_step.compiled,
        )

    key = run.key if run.key is not None else jax.random.key(0)
    # Epoch numbers and batch indices go in as np.int32, the types compiled for
    # (a Python int is weakly typed: another signature, another compile).
    orders = aot(lambda k, e: _split(run, _order(run, k, e)), key, np.int32(1))
    matrix, tail = orders.call(key, np.int32(1))
    batch_step = aot(
        lambda p, s, data, m, i: step(p, s, _gather(data, m[i])),
        run.params, state, run.data, matrix, np.int32(0),
    )  # fmt: skip
    tail_step = None
    if tail.size:
        tail_step = aot(
            lambda p, s, data, rows: step(p, s, _gather(data, rows)),
            run.params, state, run.data, tail,
        )  # fmt: skip
    indices = [np.int32(i) for i in range(matrix.shape[0])]

    def epochs(params: Any, opt_state: Any) -> Any:
        for epoch in range(1, run.epochs + 1):
            matrix, tail = orders.call(key, np.int32(epoch))
            for i in indices:
                params, opt_state, _ = batch_step.call(params, opt_state, run.data, matrix, i)
            if tail_step is not None:
                params, opt_state, _ = tail_step.call(params, opt_state, run.data, tail)
            yield params

    seconds = orders.seconds + batch_step.seconds + (tail_step.seconds if tail_step else 0.0)
    return Idiom(
        lambda: _finish(epochs(run.params, state), keep_path), seconds, batch_step.compiled
    )


def _finish(path: Iterator[Any], keep_path: bool) -> Any:
    """Drain the per-epoch generator: every epoch's params, or only the last."""
    return list(path) if keep_path else collections.deque(path, maxlen=1).pop()


def optax_scan(run: Run) -> Idiom:
    """The whole run, every epoch and mini-batch, in one jitted ``lax.scan``."""
    step = _step_fn(run)
    key = run.key if run.key is not None else jax.random.key(0)

    def whole_run(params, data, key):
        def epoch(carry, index):
            if run.batch_size is None:
                return step(*carry, data)[:2], None
            matrix, tail = _split(run, _order(run, key, index))

            def batch_step(carry, rows):
                return step(*carry, _gather(data, rows))[:2], None

            carry, _ = lax.scan(batch_step, carry, matrix)
            if tail.size:
                carry, _ = batch_step(carry, tail)
            return carry, None

        start = (params, run.optimizer.init(params))
        return lax.scan(epoch, start, jnp.arange(1, run.epochs + 1))[0][0]

    ahead = aot(whole_run, run.params, run.data, key)
    return Idiom(lambda: ahead.call(run.params, run.data, key), ahead.seconds, ahead.compiled)
