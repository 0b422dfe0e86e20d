"""Gradient descent optimizers, written from scratch as optax ``GradientTransformation``s.

Each optimizer's ``update`` is a ``jax.tree_util.Partial`` of a module-level
function whose hyperparameters are array leaves. Two optimizers that differ
only in their hyperparameter values therefore share one compiled training
program, and a sweep can vmap over them. Their trajectories equal
``optax.sgd`` (with ``momentum``/``nesterov``) to float32 round-off.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.tree_util import Partial

from jgd._checks import check_hyperparameter, check_learning_rate, is_traced

__all__ = ["GDState", "MomentumState", "gd", "momentum", "nesterov"]


class GDState(NamedTuple):
    """Step counter (read by learning-rate schedules)."""

    count: jax.Array


class MomentumState(NamedTuple):
    """Step counter and the velocity ``v``, one leaf per parameter leaf."""

    count: jax.Array
    velocity: optax.Updates


def _as_hyperparameter(value: Any) -> Any:
    """Store numbers as (weakly typed) arrays so they are traced, not baked in."""
    if callable(value) or is_traced(value):
        return value
    return jnp.asarray(value)


def _step_size(learning_rate: optax.ScalarOrSchedule, count: jax.Array) -> jax.Array:
    return learning_rate(count) if callable(learning_rate) else learning_rate


def _descend(updates: optax.Updates, step_size: jax.Array) -> optax.Updates:
    # Same arithmetic as optax.scale_by_learning_rate: (-lr) * g in g's dtype.
    return jax.tree.map(lambda g: jnp.asarray(-step_size, dtype=g.dtype) * g, updates)


def _gd_init(params: optax.Params) -> GDState:
    del params
    return GDState(count=jnp.zeros([], jnp.int32))


def _gd_update(
    updates: optax.Updates,
    state: GDState,
    params: optax.Params | None = None,
    *,
    learning_rate: optax.ScalarOrSchedule,
) -> tuple[optax.Updates, GDState]:
    del params
    step = _step_size(learning_rate, state.count)
    return _descend(updates, step), GDState(optax.safe_int32_increment(state.count))


def _momentum_init(params: optax.Params) -> MomentumState:
    return MomentumState(count=jnp.zeros([], jnp.int32), velocity=optax.tree.zeros_like(params))


def _momentum_update(
    updates: optax.Updates,
    state: MomentumState,
    params: optax.Params | None = None,
    *,
    learning_rate: optax.ScalarOrSchedule,
    beta: jax.Array,
    nesterov: bool,
) -> tuple[optax.Updates, MomentumState]:
    del params
    velocity = jax.tree.map(lambda g, v: g + beta * v, updates, state.velocity)
    direction = jax.tree.map(lambda g, v: g + beta * v, updates, velocity) if nesterov else velocity
    step = _step_size(learning_rate, state.count)
    new_state = MomentumState(optax.safe_int32_increment(state.count), velocity)
    return _descend(direction, step), new_state


def gd(learning_rate: optax.ScalarOrSchedule) -> optax.GradientTransformation:
    """Plain gradient descent: ``params <- params - learning_rate * grad``.

    Args:
        learning_rate: a positive float, a JAX array (vmappable), or an optax
            schedule ``step -> rate``.

    Example:
        >>> import jax.numpy as jnp, optax, jgd
        >>> opt = jgd.gd(0.1)
        >>> params = jnp.array([1.0])
        >>> updates, state = opt.update(jnp.array([2.0]), opt.init(params))
        >>> optax.apply_updates(params, updates).tolist()
        [0.800000011920929]
    """
    check_learning_rate(learning_rate)
    return optax.GradientTransformation(
        Partial(_gd_init), Partial(_gd_update, learning_rate=_as_hyperparameter(learning_rate))
    )


def _momentum(learning_rate: Any, beta: Any, nesterov: bool) -> optax.GradientTransformation:
    check_learning_rate(learning_rate)
    check_hyperparameter(beta, "beta", low=0.0, high=1.0, low_inclusive=True)
    return optax.GradientTransformation(
        Partial(_momentum_init),
        Partial(
            _momentum_update,
            learning_rate=_as_hyperparameter(learning_rate),
            beta=_as_hyperparameter(beta),
            nesterov=nesterov,
        ),
    )


def momentum(
    learning_rate: optax.ScalarOrSchedule, beta: jax.typing.ArrayLike = 0.9
) -> optax.GradientTransformation:
    """Heavy-ball momentum: ``v <- grad + beta * v``; ``params <- params - learning_rate * v``.

    Equals ``optax.sgd(learning_rate, momentum=beta)``.

    Example:
        >>> import jax.numpy as jnp, jgd
        >>> opt = jgd.momentum(0.1, beta=0.9)
        >>> type(opt.init(jnp.zeros(2))).__name__
        'MomentumState'
    """
    return _momentum(learning_rate, beta, nesterov=False)


def nesterov(
    learning_rate: optax.ScalarOrSchedule, beta: jax.typing.ArrayLike = 0.9
) -> optax.GradientTransformation:
    """Nesterov momentum: ``v <- grad + beta * v``; step along ``grad + beta * v``.

    Equals ``optax.sgd(learning_rate, momentum=beta, nesterov=True)``.

    Example:
        >>> import jax.numpy as jnp, jgd
        >>> opt = jgd.nesterov(0.1)
        >>> updates, _ = opt.update(jnp.array([1.0]), opt.init(jnp.zeros(1)))
        >>> [round(u, 4) for u in updates.tolist()]
        [-0.19]
    """
    return _momentum(learning_rate, beta, nesterov=True)
