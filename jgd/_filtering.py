"""Split pytrees into traced arrays and static (hashable) structure.

``jax.jit`` retraces when a static argument changes and a closure's constants
are static. jgd keeps hyperparameters as array leaves of ``Partial``/NamedTuple
pytrees instead; this module separates those array leaves (passed to the
compiled program as data) from everything else (functions, ints, strings:
hashed into the cache key). It is the idea behind ``equinox.filter_jit``,
kept to what jgd needs so the core depends only on jax, optax and numpy.
"""

from __future__ import annotations

import functools
import types
import weakref
from collections.abc import Hashable
from typing import Any, NamedTuple

import jax
import numpy as np


class _Dynamic:
    """Placeholder for an array leaf inside the static part."""

    def __repr__(self) -> str:
        return "<array>"


_DYNAMIC = _Dynamic()


class Static(NamedTuple):
    """The hashable, non-array part of a pytree."""

    treedef: Any
    leaves: tuple[Any, ...]


_ARRAY_TYPES = (jax.Array, np.ndarray, np.generic)
#: ``is_array`` by leaf type (a fit flattens its whole problem on every call). Weak
#: keys: a class made on the fly is not kept alive by it.
_IS_ARRAY: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def is_array(leaf: Any) -> bool:
    kind = type(leaf)
    answer = _IS_ARRAY.get(kind)
    if answer is None:
        if issubclass(kind, jax.core.Tracer):  # an array or not per object (its aval)
            return isinstance(leaf, _ARRAY_TYPES)
        answer = _IS_ARRAY[kind] = isinstance(leaf, _ARRAY_TYPES)
    return answer


#: How deep closures are compared by content; deeper values compare by identity.
_MAX_DEPTH = 24
#: Arrays up to this size inside closures compare by value (hyperparameters).
_SMALL_ARRAY = 64


def _content(value: Any, depth: int = 0) -> Hashable:
    """A hashable description of what ``value`` computes with (see ``_Function``)."""
    if depth > _MAX_DEPTH:
        return ("id", id(value))
    if isinstance(value, types.FunctionType):
        cells = []
        for cell in value.__closure__ or ():
            try:
                cells.append(_content(cell.cell_contents, depth + 1))
            except ValueError:  # an empty cell
                cells.append("empty")
        return (
            "function",
            value.__code__,
            id(value.__globals__),
            _content(value.__defaults__, depth + 1),
            _content(value.__kwdefaults__, depth + 1),
            tuple(cells),
        )
    if isinstance(value, functools.partial):
        parts = (value.func, value.args, value.keywords)
        return ("partial", *(_content(part, depth + 1) for part in parts))
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, tuple(_content(item, depth + 1) for item in value))
    if isinstance(value, (set, frozenset)):
        return ("set", frozenset(_content(item, depth + 1) for item in value))
    if isinstance(value, dict):
        return ("dict", tuple((key, _content(item, depth + 1)) for key, item in value.items()))
    if isinstance(value, (np.ndarray, np.generic)) or (
        isinstance(value, jax.Array) and not isinstance(value, jax.core.Tracer)
    ):
        if value.size <= _SMALL_ARRAY and not jax.dtypes.issubdtype(
            value.dtype, jax.dtypes.prng_key
        ):
            host = np.asarray(value)
            return ("array", host.dtype.str, host.shape, host.tobytes())
        return ("id", id(value))
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    return value


#: ``(key, hash)`` per function object: the same optimizer again skips the walk.
#: (Not the ``_Function`` itself: it holds its function, which would never die.)
_KEYS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _Function:
    """A function as a static leaf, equal to another that computes the same thing.

    Two functions are equal when they have the same code, globals, defaults
    and closed-over values (compared the same way, recursively; arrays of up
    to 64 values by value, larger ones and unhashable objects by identity).
    So ``optax.adam(1e-3)`` built twice, or a lambda defined again in a
    notebook cell, reuses the compiled program, while ``optax.adam(1e-4)``
    compiles its own (the rate is a constant of its closure).
    """

    __slots__ = ("function", "hash", "key")

    def __init__(self, function: types.FunctionType) -> None:
        self.function = function
        known = _KEYS.get(function)
        if known is None:
            key = _content(function)
            known = _KEYS[function] = (key, hash(key))
        self.key, self.hash = known

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Function) and self.key == other.key

    def __hash__(self) -> int:
        return self.hash

    def __repr__(self) -> str:
        return f"<function {self.function.__qualname__}>"


def partition(tree: Any) -> tuple[list[Any], Static]:
    """Return ``(array_leaves, static)``; ``combine`` puts them back together."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    arrays, parts = [], []
    for leaf in leaves:
        if is_array(leaf):
            arrays.append(leaf)
            parts.append(_DYNAMIC)
        else:
            parts.append(_Function(leaf) if isinstance(leaf, types.FunctionType) else leaf)
    static = tuple(parts)
    try:
        hash(static)
    except TypeError as error:
        raise TypeError(
            f"every non-array leaf of a loss function or optimizer must be hashable: {error}"
        ) from None
    return arrays, Static(treedef, static)


def combine(arrays: list[Any], static: Static) -> Any:
    """Inverse of ``partition``."""
    remaining = iter(arrays)
    leaves = [
        next(remaining)
        if leaf is _DYNAMIC
        else (leaf.function if isinstance(leaf, _Function) else leaf)
        for leaf in static.leaves
    ]
    return jax.tree_util.tree_unflatten(static.treedef, leaves)
