"""Split pytrees into traced arrays and static (hashable) structure.

``jax.jit`` retraces when a static argument changes and a closure's constants
are static. jgd keeps hyperparameters as array leaves of ``Partial``/NamedTuple
pytrees instead; this module separates those array leaves (passed to the
compiled program as data) from everything else (functions, ints, strings:
hashed into the cache key). It is the idea behind ``equinox.filter_jit``,
kept to what jgd needs so the core depends only on jax, optax and numpy.
"""

from __future__ import annotations

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


def is_array(leaf: Any) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic))


def partition(tree: Any) -> tuple[list[Any], Static]:
    """Return ``(array_leaves, static)``; ``combine`` puts them back together."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    arrays = [leaf for leaf in leaves if is_array(leaf)]
    static = tuple(_DYNAMIC if is_array(leaf) else leaf for leaf in leaves)
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
    leaves = [next(remaining) if leaf is _DYNAMIC else leaf for leaf in static.leaves]
    return jax.tree_util.tree_unflatten(static.treedef, leaves)
