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

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jgd._timing import aot
from jgd.data import permutation

__all__ = ["Compiled", "Run", "optax_loop", "optax_scan"]


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


class Compiled(NamedTuple):
    """A compiled idiom: ``call()`` runs it; ``step`` is the compiled optimizer step, if one."""

    call: Callable[[], Any]
    compile_s: float
    step: Any = None


def _step_fn(run: Run) -> Callable[..., Any]:
    def step(params, state, batch):
        loss, grads = jax.value_and_grad(run.loss_fn)(params, batch)
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


def optax_loop(run: Run, *, keep_path: bool = False) -> Compiled:
    """A jitted optax step in a Python loop; ``call()`` returns the final params.

    With ``keep_path``, ``call()`` returns the list of params after each epoch.
    """
    step = _step_fn(run)
    state = run.optimizer.init(run.params)
    if run.batch_size is None:
        compiled, seconds = aot(step, run.params, state, run.data)

        def epochs(params: Any, opt_state: Any) -> Any:
            for _ in range(run.epochs):
                params, opt_state, _ = compiled(params, opt_state, run.data)
                yield params

        return Compiled(lambda: _finish(epochs(run.params, state), keep_path), seconds, compiled)

    key = run.key if run.key is not None else jax.random.key(0)
    orders, seconds = aot(lambda k, e: _split(run, _order(run, k, e)), key, np.int32(1))
    matrix, tail = orders(key, np.int32(1))
    stepper, more = aot(
        lambda p, s, data, m, i: step(p, s, _gather(data, m[i])),
        run.params, state, run.data, matrix, np.int32(0),
    )  # fmt: skip
    seconds += more
    tail_stepper = None
    if tail.size:
        tail_stepper, more = aot(
            lambda p, s, data, rows: step(p, s, _gather(data, rows)),
            run.params, state, run.data, tail,
        )  # fmt: skip
        seconds += more
    indices = [np.int32(i) for i in range(matrix.shape[0])]

    def epochs(params: Any, opt_state: Any) -> Any:
        for epoch in range(1, run.epochs + 1):
            matrix, tail = orders(key, np.int32(epoch))
            for i in indices:
                params, opt_state, _ = stepper(params, opt_state, run.data, matrix, i)
            if tail_stepper is not None:
                params, opt_state, _ = tail_stepper(params, opt_state, run.data, tail)
            yield params

    return Compiled(lambda: _finish(epochs(run.params, state), keep_path), seconds, stepper)


def _finish(path: Any, keep_path: bool) -> Any:
    """Drain the per-epoch generator: every epoch's params, or only the last."""
    if keep_path:
        return list(path)
    params = None
    for params in path:  # noqa: B007 - only the last one is wanted
        pass
    return params


def optax_scan(run: Run) -> Compiled:
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

    compiled, seconds = aot(whole_run, run.params, run.data, key)
    return Compiled(lambda: compiled(run.params, run.data, key), seconds)
