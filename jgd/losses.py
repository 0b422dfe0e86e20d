"""Losses ``(predictions, targets) -> scalar`` and the training objective.

The element-wise losses come from ``optax.losses``; jgd takes their mean.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jgd._checks import check_hyperparameter, is_traced
from jgd.data import Dataset
from jgd.models import Model

__all__ = [
    "Objective",
    "binary_cross_entropy",
    "huber",
    "l2_penalty",
    "mae",
    "mse",
    "objective",
    "softmax_cross_entropy",
]

Loss = Callable[[jax.Array, jax.Array], jax.Array]


def _same_shape(predictions: jax.Array, targets: jax.Array, loss: str) -> None:
    """Element-wise losses need equal shapes: (n,) against (n, 1) would broadcast to (n, n)."""
    if jnp.shape(predictions) != jnp.shape(targets):
        raise ValueError(
            f"{loss}: predictions have shape {jnp.shape(predictions)} but targets "
            f"{jnp.shape(targets)}; they must match (e.g. y.ravel() for one target column, or "
            "a model with as many outputs as target columns)."
        )


def mse(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean squared error ``mean((predictions - targets) ** 2)``.

    Example:
        >>> import jax.numpy as jnp, jgd
        >>> float(jgd.losses.mse(jnp.array([1.0, 3.0]), jnp.array([0.0, 0.0])))
        5.0
    """
    _same_shape(predictions, targets, "mse")
    return jnp.mean(optax.losses.squared_error(predictions, targets))


def mae(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean absolute error ``mean(|predictions - targets|)``.

    Example:
        >>> import jax.numpy as jnp, jgd
        >>> float(jgd.losses.mae(jnp.array([1.0, -3.0]), jnp.array([0.0, 0.0])))
        2.0
    """
    _same_shape(predictions, targets, "mae")
    return jnp.mean(jnp.abs(predictions - targets))


def huber(predictions: jax.Array, targets: jax.Array, delta: float = 1.0) -> jax.Array:
    """Mean Huber loss: quadratic (``0.5 r**2``) within ``delta``, linear beyond.

    Use ``functools.partial(jgd.losses.huber, delta=2.0)`` for another ``delta``.

    Example:
        >>> import jax.numpy as jnp, jgd
        >>> float(jgd.losses.huber(jnp.array([0.5, 3.0]), jnp.array([0.0, 0.0])))
        1.3125
    """
    _same_shape(predictions, targets, "huber")
    return jnp.mean(optax.losses.huber_loss(predictions, targets, delta=delta))


def binary_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean binary cross-entropy from logits (numerically stable for any logit).

    Targets are 0/1 labels (or probabilities).

    Example:
        >>> import jax.numpy as jnp, jgd
        >>> round(float(jgd.losses.binary_cross_entropy(jnp.zeros(2), jnp.array([0.0, 1.0]))), 4)
        0.6931
    """
    _same_shape(logits, targets, "binary_cross_entropy")
    return jnp.mean(optax.losses.sigmoid_binary_cross_entropy(logits, targets))


def softmax_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of (n, k) logits against integer labels (n,) or one-hot (n, k).

    Integer (or integral float, e.g. read from a CSV) labels use
    ``optax.softmax_cross_entropy_with_integer_labels``; (n, k) targets are
    one-hot rows or probabilities (``optax.softmax_cross_entropy``).

    Example:
        >>> import jax.numpy as jnp, jgd
        >>> logits = jnp.array([[2.0, 0.0], [0.0, 2.0]])
        >>> round(float(jgd.losses.softmax_cross_entropy(logits, jnp.array([0, 1]))), 4)
        0.1269
        >>> round(float(jgd.losses.softmax_cross_entropy(logits, jnp.eye(2))), 4)
        0.1269
    """
    if jnp.ndim(targets) == jnp.ndim(logits):
        _same_shape(logits, targets, "softmax_cross_entropy")
        return jnp.mean(optax.losses.softmax_cross_entropy(logits, targets))
    if jnp.ndim(logits) != jnp.ndim(targets) + 1 or jnp.shape(logits)[:-1] != jnp.shape(targets):
        raise ValueError(
            f"softmax_cross_entropy: logits of shape {jnp.shape(logits)} need integer labels of "
            f"shape {jnp.shape(logits)[:-1]} or one-hot targets of shape {jnp.shape(logits)}, got "
            f"{jnp.shape(targets)}."
        )
    labels = jnp.asarray(targets)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        labels = labels.astype(jnp.int32)  # labels read as floats (CSV): 0.0, 1.0, 2.0
    return jnp.mean(optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels))


def _is_bias(path: tuple[Any, ...]) -> bool:
    last = path[-1] if path else None
    return isinstance(last, jax.tree_util.DictKey) and last.key == "b"


def l2_penalty(params: Any) -> jax.Array:
    """Sum of squared weights; leaves stored under the key ``"b"`` (biases) are not penalised.

    Example:
        >>> import jax.numpy as jnp, jgd
        >>> float(jgd.losses.l2_penalty({"w": jnp.array([1.0, 2.0]), "b": jnp.array(5.0)}))
        5.0
    """
    weights = [
        leaf for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0] if not _is_bias(path)
    ]
    return optax.tree.norm(weights, squared=True)


class Objective(NamedTuple):
    """``loss(model.apply(params, batch.X), batch.y) + l2 * l2_penalty(params)``.

    Callable as ``objective(params, batch)``. It is a pytree whose only array
    leaf is ``l2`` (when non-zero), so ``fit``/``sweep`` treat ``l2`` as data:
    other values reuse the compiled program, and a sweep can vmap over it.
    """

    model: Model
    loss: Loss
    l2: jax.typing.ArrayLike = 0.0

    def __call__(self, params: Any, batch: Dataset) -> jax.Array:
        value = self.loss(self.model.apply(params, batch.X), batch.y)
        if isinstance(self.l2, (int, float)) and self.l2 == 0:
            return value
        return value + self.l2 * l2_penalty(params)


def objective(model: Model, loss: Loss = mse, *, l2: jax.typing.ArrayLike = 0.0) -> Objective:
    """Build ``loss_fn(params, batch) -> scalar`` from a model and a loss.

    Args:
        model: a ``jgd.models`` model (or any ``Model(init, apply)``).
        loss: ``(predictions, targets) -> scalar``, e.g. ``jgd.losses.mse``.
        l2: ridge strength (>= 0) on the weights (not the biases).

    Example:
        >>> import jax.numpy as jnp, jgd
        >>> loss_fn = jgd.objective(jgd.models.linear(1), jgd.losses.mse)
        >>> params = {"w": jnp.array([2.0]), "b": jnp.array(0.0)}
        >>> float(loss_fn(params, jgd.Dataset(jnp.array([[1.0]]), jnp.array([3.0]))))
        1.0
    """
    if not isinstance(model, Model):
        raise TypeError(
            f"model must be a jgd.models.Model(init, apply), got {type(model).__name__}."
        )
    if not callable(loss):
        raise TypeError(f"loss must be a function (predictions, targets) -> scalar, got {loss!r}.")
    check_hyperparameter(l2, "l2", low=0.0, low_inclusive=True)
    if not (isinstance(l2, (int, float)) and l2 == 0) and not is_traced(l2):
        l2 = jnp.asarray(l2)
    return Objective(model, loss, l2)
