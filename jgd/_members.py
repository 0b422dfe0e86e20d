"""A sweep's members: their problems, and the compiled programs that train them.

Every program vmaps the engine (``jgd._engine``) over the members. Two ways
to run them:

- whole: one vmap over all members (``start``, ``advance``, ``finish``);
- in blocks: ``advance_blocks`` trains only the members listed in ``order``,
  ``block`` at a time in a loop whose trip count is data, so compute follows
  the live members (stopped ones are never touched again) while the program,
  compiled once, serves any number of them. Compaction of stopped members and
  successive halving both run this way: no recompiles as members drop out.

A member's computation depends only on its own slice of the state, so a
member trained in a block gives the result it gives in the whole vmap.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jgd import _filtering
from jgd._engine import (
    Config,
    Problem,
    Start,
    State,
    advance_until,
    constrained,
    evaluate,
    final_losses,
    finish,
    initial_state,
    state_axes,
)
from jgd.results import History

__all__ = [
    "STATIC",
    "Scores",
    "advance",
    "advance_blocks",
    "block_order",
    "finish_all",
    "grow_history",
    "member_problem",
    "start",
    "take",
]

#: Static arguments of every member program (the rest are arrays: traced).
STATIC = ("static", "factory", "seeded", "config")


def member_problem(problem: Problem, factory: Any, values: dict[str, jax.Array]) -> Problem:
    """A member's problem: its objective (with its l2) and optimizer (from the factory)."""
    loss_fn = problem.loss_fn
    member_loss = loss_fn._replace(l2=values["l2"]) if "l2" in values else loss_fn
    optimizer = factory(**{n: v for n, v in values.items() if n not in ("l2", "seed")})
    key = problem.key
    if "seed" in values and key is not None:
        # Each seed has its own data order (and loss keys): fold_in(key, seed).
        key = jax.random.fold_in(key, values["seed"])
    return problem._replace(loss_fn=member_loss, optimizer=optimizer, key=key)


def take(tree: Any, axes: Any, rows: Any) -> Any:
    """The members ``rows`` of ``tree``; ``axes`` (a prefix: 0 or None per part) says which
    parts have a member axis (a sweep's shared loop counter has none). Rows past the end
    read the last member (block padding: computed, never written back)."""

    def pick(axis: Any, part: Any) -> Any:
        if axis is None or part is None:
            return part
        return jax.tree.map(lambda leaf: jnp.take(leaf, rows, axis=0, mode="clip"), part)

    return jax.tree.map(pick, axes, tree, is_leaf=lambda x: x is None)


def _put(tree: Any, axes: Any, rows: jax.Array, part: Any) -> Any:
    """``tree`` with members ``rows`` replaced by ``part``; rows past the end are dropped."""

    def place(axis: Any, whole: Any, new: Any) -> Any:
        if axis is None or whole is None:
            return whole
        return jax.tree.map(lambda w, n: w.at[rows].set(n, mode="drop"), whole, new)

    return jax.tree.map(place, axes, tree, part, is_leaf=lambda x: x is None)


def grow_history(history: History, records: int) -> History:
    """History buffers (members, R, ...) padded to ``records`` slots (NaN, epoch 0)."""

    def grow(buffer: jax.Array) -> jax.Array:
        extra = records - buffer.shape[1]
        fill = 0 if jnp.issubdtype(buffer.dtype, jnp.integer) else jnp.nan
        widths = [(0, 0), (0, extra)] + [(0, 0)] * (buffer.ndim - 2)
        return jnp.pad(buffer, widths, constant_values=fill)

    return jax.tree.map(grow, history)


def block_order(live: np.ndarray, members: int, block: int) -> tuple[np.ndarray, np.int32]:
    """The block program's arguments: live members first, padded (with ``members``, out of
    range) to every slot, so the array's shape never changes; and the number of blocks."""
    slots = -(-members // block) * block
    order = np.full(slots, members, np.int32)
    order[: live.size] = live
    return order, np.int32(-(-live.size // block))


@functools.partial(jax.jit, static_argnames=STATIC)
def start(arrays, static, factory, seeded: bool, config: Config) -> State:
    problem, params, configs = _filtering.combine(arrays, static)
    problem = constrained(problem, config)

    def member(values, start_params):
        return initial_state(member_problem(problem, factory, values), config, Start(start_params))

    return jax.vmap(member, in_axes=(0, 0 if seeded else None), out_axes=state_axes(config))(
        configs, params
    )


@functools.partial(jax.jit, static_argnames=STATIC)
def advance(arrays, static, factory, seeded: bool, config: Config, state, stop_at):
    del seeded
    problem, _, configs = _filtering.combine(arrays, static)
    problem = constrained(problem, config)

    def member(values, member_state):
        member_problem_ = member_problem(problem, factory, values)
        return advance_until(member_problem_, config, member_state, stop_at)

    axes = state_axes(config)
    return jax.vmap(member, in_axes=(0, axes), out_axes=axes)(configs, state)


@functools.partial(jax.jit, static_argnames=STATIC)
def finish_all(arrays, static, factory, seeded: bool, config: Config, state):
    """Every member's outcome, training and validation loss at its final params."""
    del seeded
    problem, _, configs = _filtering.combine(arrays, static)
    problem = constrained(problem, config)

    def member(values, member_state):
        outcome = finish(member_state, config)
        losses = final_losses(member_problem(problem, factory, values), config, outcome.params)
        return outcome, *losses

    return jax.vmap(member, in_axes=(0, state_axes(config)))(configs, state)


def _score(problem: Problem, config: Config, params: Any) -> jax.Array:
    """The monitored value at ``params``, signed so that lower is better (validation data
    when there is some, else training data)."""
    batch = problem.data if problem.val_data is None else problem.val_data
    if config.monitor == "val_loss":
        value = evaluate(problem, config, params, batch)
    else:
        value = problem.metrics[config.monitor.removeprefix("val_")](params, batch)
    return -value if config.maximize else value


class Scores(NamedTuple):
    """What halving ranks by, per member (NaN/inf for members not in the blocks)."""

    final_loss: jax.Array  # training loss at the final params
    final_val: jax.Array  # validation loss there (NaN without val_data)
    score: jax.Array  # the monitored value, signed so that lower is better


@functools.partial(jax.jit, static_argnames=(*STATIC, "block", "scored"))
def advance_blocks(
    arrays,
    static,
    factory,
    seeded: bool,
    config: Config,
    state,
    order,
    n_blocks,
    stop_at,
    block: int,
    scored: bool = False,
):
    """Advance the members ``order[: n_blocks * block]`` to ``stop_at``, a block at a time.

    Each block runs its own epoch loop; the other members keep their state. With a
    shared loop counter every block starts from the same epoch, and the counter
    moves on once, after the last block. ``scored``: also return their ``Scores``
    (computed here, so successive halving needs no other program).
    """
    del seeded
    problem, _, configs = _filtering.combine(arrays, static)
    problem = constrained(problem, config)
    axes = state_axes(config)

    def member(values, member_state):
        member_problem_ = member_problem(problem, factory, values)
        member_state = advance_until(member_problem_, config, member_state, stop_at)
        if not scored:
            return member_state, None
        params = finish(member_state, config).params
        losses = final_losses(member_problem_, config, params)
        return member_state, Scores(*losses, _score(member_problem_, config, params))

    run = jax.vmap(member, in_axes=(0, axes), out_axes=(axes, 0))
    nan = jnp.full(state.status.shape, jnp.nan, state.prev_loss.dtype)
    empty = Scores(nan, nan, jnp.full_like(nan, jnp.inf)) if scored else None

    def body(index, carry):
        whole, epoch, values = carry
        rows = lax.dynamic_slice_in_dim(order, index * block, block)
        part, part_values = run(take(configs, 0, rows), take(whole, axes, rows))
        if scored:
            values = jax.tree.map(
                lambda a, b: a.at[rows].set(b.astype(a.dtype), mode="drop"), values, part_values
            )
        epoch = part.epoch if axes.epoch is None else epoch
        return _put(whole, axes, rows, part), epoch, values

    whole, epoch, values = lax.fori_loop(0, n_blocks, body, (state, state.epoch, empty))
    if axes.epoch is None:
        whole = whole._replace(epoch=epoch)
    return (whole, values) if scored else whole
