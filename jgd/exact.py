"""The exact least-squares answer that gradient descent should reach."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jgd._checks import check_hyperparameter
from jgd.data import Dataset, check_dataset

__all__ = ["least_squares"]


def least_squares(
    X: jax.typing.ArrayLike, y: jax.typing.ArrayLike, *, l2: float = 0.0
) -> dict[str, jax.Array]:
    """Closed-form minimiser of ``mean((X @ w + b - y)**2) + l2 * ||w||**2``.

    The intercept ``b`` is not penalised, so this is the minimiser of
    ``jgd.objective(jgd.models.linear(D), jgd.losses.mse, l2=l2)`` (scikit-learn's
    ``Ridge(alpha=n * l2)``). Solved in float64 with NumPy (``lstsq`` when
    ``l2 == 0``, so rank-deficient X gives the minimum-norm answer).

    Returns:
        ``{"w": (D,), "b": ()}`` in JAX's default float dtype.

    Example:
        >>> import jax.numpy as jnp, jgd
        >>> X = jnp.array([[0.0], [1.0], [2.0]])
        >>> exact = jgd.least_squares(X, 3 * X[:, 0] - 1)
        >>> [round(float(v), 4) for v in (exact["w"][0], exact["b"])]
        [3.0, -1.0]
    """
    data = check_dataset(Dataset(X, y), "least_squares input")
    check_hyperparameter(l2, "l2", low=0.0, low_inclusive=True)
    X64 = np.asarray(data.X, dtype=np.float64)
    y64 = np.asarray(data.y, dtype=np.float64)
    n, d = X64.shape
    x_mean, y_mean = X64.mean(axis=0), y64.mean()
    Xc, yc = X64 - x_mean, y64 - y_mean
    if l2 == 0:
        w = np.linalg.lstsq(Xc, yc, rcond=None)[0]
    else:
        w = np.linalg.solve(Xc.T @ Xc + n * float(l2) * np.eye(d), Xc.T @ yc)
    b = y_mean - x_mean @ w
    dtype = jax.dtypes.canonicalize_dtype(np.float64)
    return {"w": jnp.asarray(w, dtype), "b": jnp.asarray(b, dtype)}
