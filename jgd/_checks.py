"""Input validation shared by the public entry points.

Every check runs on concrete values in Python, before anything is traced or
compiled, and raises ``ValueError``/``TypeError`` with a message that names the
problem and the fix. Traced values (inside ``jit``/``vmap``) are skipped: they
cannot be inspected and were validated where they entered.
"""

from __future__ import annotations

import math
import numbers
import warnings
import weakref
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def is_traced(value: Any) -> bool:
    """True when ``value`` is a JAX tracer (its value is unknown until run time)."""
    return isinstance(value, jax.core.Tracer)


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def check_hyperparameter(
    value: Any,
    name: str,
    *,
    low: float,
    high: float = math.inf,
    low_inclusive: bool = False,
    high_inclusive: bool = False,
) -> None:
    """Check a scalar hyperparameter is a finite number inside an interval.

    Arrays are checked element-wise (so a grid can be validated at once);
    tracers and callables (optax schedules) are left alone.
    """
    if callable(value) or is_traced(value):
        return
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a number, got the string {value!r}.")
    if isinstance(value, (bool, np.bool_)) or (
        isinstance(value, (np.ndarray, jax.Array)) and value.dtype == bool
    ):
        raise TypeError(f"{name} must be a number, got the bool {value!r}.")
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}.") from None
    if array.size == 0:
        raise ValueError(f"{name} is empty; give at least one value.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {value!r}.")
    below = array < low if low_inclusive else array <= low
    above = array > high if high_inclusive else array >= high
    if np.any(below) or np.any(above):
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        bad = array[below | above].ravel()[0].item()  # a Python number prints as one
        raise ValueError(f"{name} must be in {left}{low}, {high}{right}, got {bad!r}.")


def check_learning_rate(learning_rate: Any) -> None:
    """Learning rates are positive, finite numbers (or an optax schedule)."""
    check_hyperparameter(learning_rate, "learning_rate", low=0.0)


_warned_float64 = False


def warn_if_float64_dropped(dtype: Any, what: str) -> None:
    """Warn (once per process) when float64 input becomes float32 because x64 is off."""
    global _warned_float64
    if _warned_float64 or jax.config.jax_enable_x64:
        return
    if np.dtype(dtype) == np.float64:
        _warned_float64 = True
        warnings.warn(
            f"jgd: {what} is float64 but jax_enable_x64 is off, so jgd converted it to float32 "
            "(and trains in float32). To train in float64, run "
            "jax.config.update('jax_enable_x64', True) before creating arrays. "
            "(This warning is shown once.)",
            UserWarning,
            stacklevel=5,  # the caller of jgd.fit / jgd.sweep
        )


def first_nonfinite_row(array: np.ndarray) -> int | None:
    """Index of the first row holding NaN or inf, or None when all are finite."""
    bad = ~np.isfinite(array)
    if not bad.any():
        return None
    return int(np.argmax(bad.reshape(bad.shape[0], -1).any(axis=1)))


# JAX arrays are immutable, so a finite check holds for the array's lifetime:
# remember it by identity (a weak reference drops the entry with the array).
_FINITE: dict[int, weakref.ref] = {}


def known_finite(array: Any) -> bool:
    """Whether ``array`` (a JAX array) was already found finite."""
    ref = _FINITE.get(id(array))
    return ref is not None and ref() is array


def remember_finite(array: Any) -> None:
    key = id(array)
    _FINITE[key] = weakref.ref(array, lambda _: _FINITE.pop(key, None))


#: Pytrees of JAX arrays that passed a whole check, by the identity of their leaves.
_CHECKED: dict[tuple[Any, ...], list[weakref.ref]] = {}
_MAX_CHECKED = 1024


def checked_before(kind: Any, leaves: list[Any]) -> bool:
    """Whether these very JAX arrays (immutable) already passed the check ``kind``.

    A repeated ``fit`` on the same arrays then skips its input checks: they
    would reach the same verdict (a good part of a small fit's fixed cost).
    """
    refs = _CHECKED.get((kind, *map(id, leaves)))
    return refs is not None and all(ref() is leaf for ref, leaf in zip(refs, leaves))


def remember_checked(kind: Any, leaves: list[Any]) -> None:
    """Record that ``leaves`` passed ``kind`` (only JAX arrays: NumPy ones can change)."""
    if not leaves or not all(isinstance(leaf, jax.Array) for leaf in leaves):
        return
    key = (kind, *map(id, leaves))

    def forget(_: Any) -> None:
        _CHECKED.pop(key, None)

    _CHECKED[key] = [weakref.ref(leaf, forget) for leaf in leaves]
    if len(_CHECKED) > _MAX_CHECKED:
        _CHECKED.pop(next(iter(_CHECKED)))


@jax.jit
def _leaves_finite_on_device(leaves: list[jax.Array]) -> list[jax.Array]:
    return [jnp.isfinite(leaf).all() for leaf in leaves]


def leaves_finite(leaves: list[Any]) -> list[bool]:
    """Whether each float leaf is finite; one device call for the unknown JAX arrays.

    Non-float leaves (integers, booleans) are finite by definition. Results for
    JAX arrays are remembered by identity, so a second ``fit`` on the same
    arrays pays no device round trip.
    """
    result = [True] * len(leaves)
    pending = []
    for i, leaf in enumerate(leaves):
        dtype = leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype
        if not jnp.issubdtype(dtype, jnp.inexact):
            continue
        if isinstance(leaf, jax.Array):
            if not known_finite(leaf):
                pending.append(i)
        else:
            result[i] = bool(np.isfinite(np.asarray(leaf)).all())
    if pending:
        found = jax.device_get(_leaves_finite_on_device([leaves[i] for i in pending]))
        for i, ok in zip(pending, found):
            result[i] = bool(ok)
            if ok:
                remember_finite(leaves[i])
    return result


def positive_int_argument(text: str) -> int:
    """An argparse ``type``: a positive integer, or a one-line usage error."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value
