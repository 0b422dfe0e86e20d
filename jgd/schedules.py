"""Learning-rate schedules whose every parameter is traced data, so a sweep can grid over it.

optax's schedules test some arguments in Python (``peak_value == 0.0``,
``transition_steps <= 0``, ``decay_steps > 0``), so inside a sweep's factory,
where the values are tracers, they raise ``TracerBoolConversionError``. These
compute the same values (tested against optax at fixed values) with
``jnp.where`` in place of each Python test, so peak, warm-up steps, decay
steps and end value can all be grid axes::

    def factory(learning_rate, warmup):
        return optax.adam(jgd.schedules.warmup_cosine_decay(0.0, learning_rate, warmup, 2000))

    jgd.sweep(..., optimizer=factory, grid={"learning_rate": [1e-3, 3e-3], "warmup": [0, 100]})

Each returns ``schedule(count) -> value``, an optax ``Schedule``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = [
    "cosine_decay",
    "exponential_decay",
    "linear",
    "piecewise_constant",
    "warmup_cosine_decay",
]

Schedule = Callable[[ArrayLike], jax.Array]


def _float(value: ArrayLike) -> jax.Array:
    # Step counts as floats: no int32 overflow, and integer grid axes divide exactly.
    return jnp.asarray(value, jnp.result_type(float))


def linear(
    init_value: ArrayLike,
    end_value: ArrayLike,
    transition_steps: ArrayLike,
    transition_begin: ArrayLike = 0,
) -> Schedule:
    """``init_value`` until ``transition_begin``, then linearly to ``end_value`` over
    ``transition_steps`` (``optax.linear_schedule``; ``transition_steps <= 0``: constant).

    Example:
        >>> import jgd
        >>> schedule = jgd.schedules.linear(1.0, 0.0, 10)
        >>> [round(float(schedule(t)), 2) for t in (0, 5, 10, 20)]
        [1.0, 0.5, 0.0, 0.0]
    """

    def schedule(count: ArrayLike) -> jax.Array:
        steps = _float(transition_steps)
        safe = jnp.where(steps > 0, steps, 1.0)
        begin = jnp.maximum(_float(transition_begin), 0.0)
        done = jnp.clip(_float(count) - begin, 0.0, safe)
        value = (init_value - end_value) * (1 - done / safe) + end_value
        return jnp.where(steps > 0, value, init_value)

    return schedule


def cosine_decay(
    init_value: ArrayLike, decay_steps: ArrayLike, alpha: ArrayLike = 0.0, exponent: ArrayLike = 1.0
) -> Schedule:
    """Cosine decay from ``init_value`` to ``alpha * init_value`` over ``decay_steps``
    (``optax.cosine_decay_schedule``).

    Example:
        >>> import jgd
        >>> [round(float(jgd.schedules.cosine_decay(1.0, 10)(t)), 2) for t in (0, 5, 10)]
        [1.0, 0.5, 0.0]
    """

    def schedule(count: ArrayLike) -> jax.Array:
        steps = _float(decay_steps)
        done = jnp.minimum(_float(count), steps)
        cosine = 0.5 * (1 + jnp.cos(jnp.pi * done / steps))
        return init_value * ((1 - alpha) * cosine**exponent + alpha)

    return schedule


def exponential_decay(
    init_value: ArrayLike,
    transition_steps: ArrayLike,
    decay_rate: ArrayLike,
    transition_begin: ArrayLike = 0,
    staircase: bool = False,
    end_value: ArrayLike | None = None,
) -> Schedule:
    """``init_value * decay_rate ** ((count - transition_begin) / transition_steps)``
    (``optax.exponential_decay``; ``end_value`` bounds it; ``transition_steps <= 0`` or
    ``decay_rate == 0``: constant).

    Example:
        >>> import jgd
        >>> [round(float(jgd.schedules.exponential_decay(1.0, 10, 0.5)(t)), 3) for t in (0, 10, 20)]
        [1.0, 0.5, 0.25]
    """

    def schedule(count: ArrayLike) -> jax.Array:
        steps = _float(transition_steps)
        constant = (steps <= 0) | (jnp.asarray(decay_rate) == 0)
        passed = _float(count) - jnp.maximum(_float(transition_begin), 0.0)
        power = passed / jnp.where(steps > 0, steps, 1.0)
        if staircase:
            power = jnp.floor(power)
        value = jnp.where(passed <= 0, init_value, init_value * jnp.power(decay_rate, power))
        if end_value is not None:
            bounded = jnp.where(
                jnp.asarray(decay_rate) < 1.0,
                jnp.maximum(value, end_value),
                jnp.minimum(value, end_value),
            )
            value = bounded
        return jnp.where(constant, init_value, value)

    return schedule


def piecewise_constant(
    init_value: ArrayLike, boundaries: Sequence[ArrayLike], scales: Sequence[ArrayLike]
) -> Schedule:
    """``init_value`` times every ``scales[i]`` whose ``boundaries[i] <= count``
    (``optax.piecewise_constant_schedule`` with ``dict(zip(boundaries, scales))``).

    Boundaries and scales may be traced (one grid axis each), so they are two
    sequences rather than a dict.

    Example:
        >>> import jgd
        >>> schedule = jgd.schedules.piecewise_constant(1.0, [10, 20], [0.1, 0.1])
        >>> [round(float(schedule(t)), 3) for t in (5, 10, 25)]
        [1.0, 0.1, 0.01]
    """
    if len(boundaries) != len(scales):
        raise ValueError(
            f"piecewise_constant needs one scale per boundary, got {len(boundaries)} boundaries "
            f"and {len(scales)} scales."
        )

    def schedule(count: ArrayLike) -> jax.Array:
        value = jnp.asarray(init_value)
        for boundary, scale in zip(boundaries, scales):
            value = jnp.where(_float(count) >= _float(boundary), value * scale, value)
        return value

    return schedule


def warmup_cosine_decay(
    init_value: ArrayLike,
    peak_value: ArrayLike,
    warmup_steps: ArrayLike,
    decay_steps: ArrayLike,
    end_value: ArrayLike = 0.0,
    exponent: ArrayLike = 1.0,
) -> Schedule:
    """Linear warm-up from ``init_value`` to ``peak_value`` over ``warmup_steps``, then cosine
    decay to ``end_value`` at ``decay_steps`` (``optax.warmup_cosine_decay_schedule``;
    ``decay_steps`` counts the warm-up).

    Example:
        >>> import jgd
        >>> schedule = jgd.schedules.warmup_cosine_decay(0.0, 1.0, 10, 110)
        >>> [round(float(schedule(t)), 2) for t in (0, 5, 10, 60, 110)]
        [0.0, 0.5, 1.0, 0.5, 0.0]
    """
    peak = jnp.asarray(peak_value)
    alpha = jnp.where(peak == 0.0, 0.0, end_value / jnp.where(peak == 0.0, 1.0, peak))
    warmup = linear(init_value, peak_value, warmup_steps)
    decay = cosine_decay(peak_value, _float(decay_steps) - _float(warmup_steps), alpha, exponent)

    def schedule(count: ArrayLike) -> jax.Array:
        after = _float(count) - _float(warmup_steps)
        return jnp.where(_float(count) < _float(warmup_steps), warmup(count), decay(after))

    return schedule
