"""The sweep benchmarks' shared problem: a small MLP regression with a validation split.

``halving.py`` and ``compaction.py`` train grids of the same 8-16-1 MLP on the same rows.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

import jgd


def mlp_regression() -> tuple[jgd.Dataset, jgd.Dataset, Any]:
    """(train, val, model): 2,400/600 rows of sin(x0) + x1 x2 + noise, an 8-16-1 MLP."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 8)).astype(np.float32)
    y = (np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + 0.1 * rng.normal(size=3000)).astype(np.float32)
    train, val = jgd.data.split(jgd.Dataset(jnp.asarray(X), jnp.asarray(y)), (0.8, 0.2))
    return train, val, jgd.models.mlp([8, 16, 1])
