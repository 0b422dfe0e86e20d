"""Curvature: the largest stable plain-GD learning rate, from Hessian-vector products."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree

from jgd import _filtering
from jgd._checks import check_positive_int
from jgd.data import Dataset, check_dataset

__all__ = ["lr_bound", "top_hessian_eigenvalue"]


@functools.partial(jax.jit, static_argnames=("static", "max_iterations"))
def _power_iteration(
    arrays: list[Any], static: _filtering.Static, max_iterations: int, rtol: jax.Array
) -> tuple[jax.Array, jax.Array]:
    loss_fn, params, data = _filtering.combine(arrays, static)
    flat, unravel = ravel_pytree(params)

    def hvp(vector: jax.Array) -> jax.Array:
        # Forward-over-reverse: jvp of the gradient along ``vector``.
        grad = lambda p: ravel_pytree(jax.grad(loss_fn)(unravel(p), data))[0]  # noqa: E731
        return jax.jvp(grad, (flat,), (vector,))[1]

    start = jax.random.normal(jax.random.key(0), flat.shape, flat.dtype)
    start = start / jnp.linalg.norm(start)

    def cond(state):
        i, _, eigenvalue, previous = state
        moving = jnp.abs(eigenvalue - previous) > rtol * jnp.abs(eigenvalue)
        return (i < max_iterations) & ((i < 2) | moving)

    def body(state):
        i, vector, eigenvalue, _ = state
        product = hvp(vector)
        new_eigenvalue = jnp.vdot(vector, product)  # Rayleigh quotient, |vector| = 1
        norm = jnp.linalg.norm(product)
        vector = jnp.where(norm > 0, product / jnp.where(norm > 0, norm, 1), vector)
        return i + 1, vector, new_eigenvalue, eigenvalue

    zero = jnp.zeros((), flat.dtype)
    iterations, _, eigenvalue, _ = lax.while_loop(
        cond, body, (jnp.zeros((), jnp.int32), start, zero, zero)
    )
    return eigenvalue, iterations


def top_hessian_eigenvalue(
    loss_fn: Any,
    params: Any,
    data: Dataset,
    *,
    max_iterations: int = 500,
    rtol: float = 1e-6,
) -> float:
    """Largest-magnitude eigenvalue of the Hessian of ``loss_fn`` at ``params``.

    Power iteration on Hessian-vector products (``jax.jvp`` of ``jax.grad``),
    compiled into one ``lax.while_loop``; the Hessian is never formed.

    Example:
        >>> import jax.numpy as jnp, jgd
        >>> data = jgd.Dataset(jnp.array([[1.0], [-1.0]]), jnp.zeros(2))
        >>> loss_fn = jgd.objective(jgd.models.linear(1), jgd.losses.mse)
        >>> round(jgd.curvature.top_hessian_eigenvalue(loss_fn, loss_fn.model.init(None), data), 4)
        2.0
    """
    data = check_dataset(data)
    max_iterations = check_positive_int(max_iterations, "max_iterations")
    params = jax.tree.map(jnp.asarray, params)
    arrays, static = _filtering.partition((loss_fn, params, data))
    eigenvalue, _ = _power_iteration(arrays, static, max_iterations, jnp.asarray(rtol))
    return float(eigenvalue)


def lr_bound(loss_fn: Any, params: Any, data: Dataset, **power_iteration: Any) -> float:
    """The largest stable plain-GD learning rate ``2 / L`` at ``params``.

    ``L`` is the top Hessian eigenvalue. For quadratic objectives (MSE linear
    regression, with or without ``l2``) the bound is exact and global: any
    learning rate below it converges and any above it diverges. For other
    objectives it describes the neighbourhood of ``params``.

    Example:
        >>> import jax.numpy as jnp, jgd
        >>> data = jgd.Dataset(jnp.array([[1.0], [-1.0]]), jnp.zeros(2))
        >>> loss_fn = jgd.objective(jgd.models.linear(1), jgd.losses.mse)
        >>> round(jgd.lr_bound(loss_fn, loss_fn.model.init(None), data), 4)
        1.0
    """
    eigenvalue = top_hessian_eigenvalue(loss_fn, params, data, **power_iteration)
    return 2.0 / eigenvalue if eigenvalue > 0 else float("inf")
