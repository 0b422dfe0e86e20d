"""Metrics ready for ``fit(..., metrics=...)``: ``metric(model)`` gives ``fn(params, batch)``.

Each takes a ``jgd.models`` model (or any ``Model(init, apply)``) and returns a
function of ``(params, batch)`` with ``batch`` a ``Dataset`` (``X``, ``y``), so
it runs inside the compiled program on the training and validation data:

    fit(..., metrics={"accuracy": jgd.metrics.accuracy(model)})

Classification metrics read the model's output as logits: one column (or
(n,) outputs) for binary labels 0/1, k columns for integer labels 0..k-1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jgd.models import Model

__all__ = ["accuracy", "log_loss", "r2"]

Metric = Callable[[Any, Any], jax.Array]


def _predicted_class(logits: jax.Array) -> jax.Array:
    if logits.ndim == 1:  # binary: one logit per row
        return (logits > 0).astype(jnp.int32)
    return jnp.argmax(logits, axis=-1)


def accuracy(model: Model) -> Metric:
    """Fraction of rows whose predicted class equals the label (binary or multi-class).

    Example:
        >>> import jax.numpy as jnp, jgd
        >>> model = jgd.models.linear(1, n_outputs=2)
        >>> params = {"w": jnp.array([[1.0, -1.0]]), "b": jnp.zeros(2)}
        >>> data = jgd.Dataset(jnp.array([[1.0], [-1.0], [2.0]]), jnp.array([0, 1, 1]))
        >>> round(float(jgd.metrics.accuracy(model)(params, data)), 4)
        0.6667
    """

    def metric(params: Any, batch: Any) -> jax.Array:
        predicted = _predicted_class(model.apply(params, batch.X))
        return jnp.mean(predicted == jnp.asarray(batch.y).astype(predicted.dtype))

    return metric


def log_loss(model: Model) -> Metric:
    """Mean cross-entropy of the model's logits (binary: sigmoid; multi-class: softmax).

    Example:
        >>> import jax.numpy as jnp, jgd
        >>> model = jgd.models.logistic(1)
        >>> data = jgd.Dataset(jnp.array([[0.0]]), jnp.array([1.0]))
        >>> round(float(jgd.metrics.log_loss(model)(model.init(None), data)), 4)
        0.6931
    """

    def metric(params: Any, batch: Any) -> jax.Array:
        logits = model.apply(params, batch.X)
        if logits.ndim == 1:
            return jnp.mean(optax.losses.sigmoid_binary_cross_entropy(logits, batch.y))
        labels = jnp.asarray(batch.y).astype(jnp.int32)
        return jnp.mean(optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels))

    return metric


def r2(model: Model) -> Metric:
    """Coefficient of determination 1 - SS_res / SS_tot (averaged over target columns).

    Example:
        >>> import jax.numpy as jnp, jgd
        >>> model = jgd.models.linear(1)
        >>> data = jgd.Dataset(jnp.array([[0.0], [1.0], [2.0]]), jnp.array([1.0, 3.0, 5.0]))
        >>> float(jgd.metrics.r2(model)({"w": jnp.array([2.0]), "b": jnp.array(1.0)}, data))
        1.0
    """

    def metric(params: Any, batch: Any) -> jax.Array:
        predictions = model.apply(params, batch.X)
        targets = jnp.asarray(batch.y, predictions.dtype)
        residual = jnp.sum((targets - predictions) ** 2, axis=0)
        total = jnp.sum((targets - jnp.mean(targets, axis=0)) ** 2, axis=0)
        return jnp.mean(1 - residual / total)

    return metric
