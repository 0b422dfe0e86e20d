"""The loss and gradient of a training step, written out for jgd's linear MSE objective.

``jax.value_and_grad`` of ``mean((X @ w + b - y) ** 2)`` is what every step
computes. Under a sweep's ``vmap`` over ``(w, b)`` XLA builds it from separate
kernels that each stream the (rows, members) residual matrix: the product,
adding the bias and subtracting the targets, the square, the cotangent, the
bias gradient's sum and the gradient product, about nine passes over a
matrix that does not fit in cache. Written batched by hand, the bias and the
targets become two extra columns of X, ``[X, 1, y] @ [w, b, -1]``, so one
product gives the residuals, one reduction the losses and one product both
gradients: three passes (1.95 -> 0.94 ms per epoch for 256 members, N=10,000,
D=10 on a 2-core CPU). The arithmetic is the same up to round-off; the loss
is still ``mean(r ** 2)`` of the residuals (not an algebraic shortcut, which
would lose accuracy near a perfect fit).

A single run (``fit``) traces exactly ``jax.value_and_grad(loss_fn)``, except
with at most four features, where the products are written column by column
(XLA:CPU's dot kernels cost more to launch than such products take), and with
5 to 64 float32 features on a CPU where jgd's native kernel is built
(``jgd/_native``): it reads X once per step where XLA's two products read it
twice. There, a sweep with 1 to 16 float32 features uses the native members
kernel instead of the batched rule above (no residual matrix in memory at
all). Anything jgd does not recognise as its own linear model with MSE uses
autodiff.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.tree_util import Partial

from jgd import _native
from jgd.losses import Objective, l2_penalty, mse
from jgd.models import LINEAR_APPLIES


def value_and_grad(
    loss_fn: Callable[..., jax.Array], *, native: bool = True
) -> Callable[..., tuple[jax.Array, Any]]:
    """``jax.value_and_grad(loss_fn)``, with fused rules for linear MSE.

    ``native=False`` keeps jgd's native CPU kernels out (arrays spread over
    several devices: XLA's partitioner cannot split a custom call).
    """
    if _is_linear_mse(loss_fn):
        return Partial(_linear_mse_value_and_grad, loss_fn, native)
    return jax.value_and_grad(loss_fn)


def _is_linear_mse(loss_fn: Any) -> bool:
    if not isinstance(loss_fn, Objective) or loss_fn.loss is not mse:
        return False
    apply = loss_fn.model.apply
    return (
        isinstance(apply, Partial)
        and apply.func in LINEAR_APPLIES
        and not apply.args
        and not apply.keywords
    )


def _fusable(params: Any, batch: Any) -> bool:
    """Shapes and dtypes the fused rule is written for (else: plain autodiff)."""
    if not isinstance(params, dict) or set(params) != {"w", "b"}:
        return False
    w, b, X, y = params["w"], params["b"], batch.X, batch.y
    arrays = (w, b, X, y)
    if not all(isinstance(a, jax.Array) for a in arrays):
        return False
    dtypes = {a.dtype for a in arrays}
    return (
        len(dtypes) == 1
        and jnp.issubdtype(w.dtype, jnp.floating)
        and (w.ndim, b.ndim, X.ndim, y.ndim) == (1, 0, 2, 1)
        and X.shape == (y.shape[0], w.shape[0])
    )


def _linear_mse_value_and_grad(loss_fn: Objective, native: bool, params: Any, batch: Any):
    if not _fusable(params, batch):
        return jax.value_and_grad(loss_fn)(params, batch)
    mse_and_grads = _mse_and_grads_native if native else _mse_and_grads
    value, grad_w, grad_b = mse_and_grads(params["w"], params["b"], batch.X, batch.y)
    grads = {"w": grad_w, "b": grad_b}
    if not (isinstance(loss_fn.l2, (int, float)) and loss_fn.l2 == 0):
        penalty, penalty_grads = jax.value_and_grad(lambda p: loss_fn.l2 * l2_penalty(p))(params)
        value = value + penalty
        grads = jax.tree.map(jnp.add, grads, penalty_grads)
    return value, grads


# Up to this many features a single run writes the products out column by
# column: on CPU, launching XLA's dot kernels costs more than the arithmetic
# (N=1,000, D=2: 1.6 against 2.9 us per step in a bare loop).
_ELEMENTWISE_FEATURES = 4


def _plain(w: jax.Array, b: jax.Array, X: jax.Array, y: jax.Array):
    """One run's loss and gradients (the unbatched rule)."""
    if X.shape[1] <= _ELEMENTWISE_FEATURES:
        return _elementwise(w, b, X, y)
    return _autodiff(w, b, X, y)


def _plain_native(w: jax.Array, b: jax.Array, X: jax.Array, y: jax.Array):
    """``_plain``, with the native kernel on CPU where it is built and fits."""
    if X.shape[1] <= _ELEMENTWISE_FEATURES or not _native.fits(X) or not _native.available():
        return _plain(w, b, X, y)
    return jax.lax.platform_dependent(w, b, X, y, cpu=_native.linear_mse, default=_autodiff)


def _autodiff(w: jax.Array, b: jax.Array, X: jax.Array, y: jax.Array):
    value, (grad_w, grad_b) = jax.value_and_grad(lambda w, b: mse(X @ w + b, y), argnums=(0, 1))(
        w, b
    )
    return value, grad_w, grad_b


def _elementwise(w: jax.Array, b: jax.Array, X: jax.Array, y: jax.Array):
    """``X @ w + b - y`` and ``(2/n) [X, 1]^T r`` as one fused loop and a few sums."""
    columns = [X[:, j] for j in range(X.shape[1])]
    residuals = functools.reduce(jnp.add, [c * w[j] for j, c in enumerate(columns)]) + b - y
    value = jnp.mean(jnp.square(residuals))
    scale = 2 / X.shape[0]
    grad_w = jnp.stack([jnp.sum(c * residuals) for c in columns]) * scale
    return value, grad_w, jnp.sum(residuals) * scale


_mse_and_grads = jax.custom_batching.custom_vmap(_plain)
_mse_and_grads_native = jax.custom_batching.custom_vmap(_plain_native)


def _batched_native(axis_size: int, in_batched: tuple[bool, ...], w, b, X, y):
    """``_batched``, with the sweep's native kernel on CPU where it is built and fits."""
    w_batched, b_batched, X_batched, y_batched = in_batched
    sweep_shape = w_batched and not (X_batched or y_batched)
    if not (sweep_shape and _native.fits_members(X) and _native.available()):
        return _batched(axis_size, in_batched, w, b, X, y)
    if not b_batched:
        b = jnp.broadcast_to(b, (axis_size,))

    def xla(w, b, X, y):
        return _batched(axis_size, (True, True, False, False), w, b, X, y)[0]

    out = jax.lax.platform_dependent(w, b, X, y, cpu=_native.linear_mse_members, default=xla)
    return out, (True, True, True)


def _batched(axis_size: int, in_batched: tuple[bool, ...], w, b, X, y):
    w_batched, b_batched, X_batched, y_batched = in_batched
    if X_batched or y_batched or not w_batched:
        # Not a sweep's shape (data batched too): vmap the plain rule.
        axes = tuple(0 if batched else None for batched in in_batched)
        return jax.vmap(_plain, in_axes=axes)(w, b, X, y), (True, True, True)
    if not b_batched:
        b = jnp.broadcast_to(b, (axis_size,))
    n_rows = X.shape[0]
    # Rows of [X, 1, y] times members' [w, b, -1]: the residuals, (rows, members).
    # XLA hoists the concatenation of the data out of the training loop.
    columns = jnp.concatenate([X, jnp.ones((n_rows, 1), X.dtype), y[:, None]], axis=1)
    coefficients = jnp.concatenate([w, b[:, None], -jnp.ones((axis_size, 1), w.dtype)], axis=1)
    residuals = columns @ coefficients.T
    value = jnp.mean(jnp.square(residuals), axis=0)
    # [X, 1]^T r: every member's weight and bias gradients in one product.
    grads = (columns[:, :-1].T @ residuals) * (2 / n_rows)
    return (value, grads[:-1].T, grads[-1]), (True, True, True)


_mse_and_grads.def_vmap(_batched)
_mse_and_grads_native.def_vmap(_batched_native)
