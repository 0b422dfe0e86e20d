"""Small standard problems with known answers, shared by tests, comparisons and benchmarks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgd import datasets, losses, models
from jgd.data import Dataset, split, standardize
from jgd.exact import least_squares

__all__ = ["PROBLEMS", "Problem", "get", "names"]


class Problem(NamedTuple):
    """A loss, a start, data, and what gradient descent should reach.

    Attributes:
        name: registry key.
        description: one line.
        loss_fn: ``loss_fn(params, batch) -> scalar``.
        params: the starting parameters.
        data: the training ``Dataset`` (a single dummy row for analytic losses).
        learning_rate: a rate at which plain GD is stable on this problem.
        solution: the known minimiser (params), or None where none is known in
            closed form.
    """

    name: str
    description: str
    loss_fn: Callable[[Any, Dataset], jax.Array]
    params: Any
    data: Dataset
    learning_rate: float
    solution: Any | None


def _dummy() -> Dataset:
    return Dataset(jnp.zeros((1, 1)), jnp.zeros(1))


def _weather() -> Problem:
    train, _ = standardize(split(datasets.seattle_weather(), (0.85, 0.15))[0])
    model = models.linear(3)
    return Problem(
        "weather",
        "Seattle weather: tomorrow's max temperature, linear MSE (standardized)",
        losses.objective(model, losses.mse),
        model.init(None),
        train,
        0.1,
        least_squares(train.X, train.y),
    )


def _least_squares() -> Problem:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    y = (X @ rng.normal(size=5) + 1.0 + 0.1 * rng.normal(size=200)).astype(np.float32)
    data = Dataset(jnp.asarray(X), jnp.asarray(y))
    model = models.linear(5)
    return Problem(
        "least_squares",
        "random least squares, N=200, D=5",
        losses.objective(model, losses.mse),
        model.init(None),
        data,
        0.1,
        least_squares(data.X, data.y),
    )


def _logistic() -> Problem:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, size=200)
    X = rng.normal(size=(200, 3)) + 1.2 * labels[:, None]
    data = Dataset(jnp.asarray(X, jnp.float32), jnp.asarray(labels, jnp.float32))
    model = models.logistic(3)
    return Problem(
        "logistic",
        "two-class logistic regression, N=200, D=3, l2=0.01",
        losses.objective(model, losses.binary_cross_entropy, l2=0.01),
        model.init(None),
        data,
        0.5,
        None,
    )


def _bowl_loss(params: Any, batch: Dataset) -> jax.Array:
    del batch
    curvature = jnp.array([1.0, 10.0])
    return 0.5 * jnp.sum(curvature * params["x"] ** 2)


def _rosenbrock_loss(params: Any, batch: Dataset) -> jax.Array:
    del batch
    x, y = params["x"][0], params["x"][1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def _bowl() -> Problem:
    return Problem(
        "quadratic_bowl",
        "0.5 (x² + 10 y²), minimum at the origin (condition number 10)",
        _bowl_loss,
        {"x": jnp.array([3.0, -2.0])},
        _dummy(),
        0.1,
        {"x": jnp.zeros(2)},
    )


def _rosenbrock() -> Problem:
    return Problem(
        "rosenbrock",
        "Rosenbrock (1-x)² + 100 (y-x²)² from (-1.2, 1), minimum at (1, 1)",
        _rosenbrock_loss,
        {"x": jnp.array([-1.2, 1.0])},
        _dummy(),
        1e-3,
        {"x": jnp.ones(2)},
    )


def _mlp() -> Problem:
    x = jnp.linspace(-2.0, 2.0, 128)[:, None]
    data = Dataset(x, jnp.sin(2.0 * x[:, 0]))
    model = models.mlp([1, 16, 16, 1])
    return Problem(
        "mlp_regression",
        "MLP 1-16-16-1 (tanh) fitting sin(2x) on [-2, 2]",
        losses.objective(model, losses.mse),
        model.init(jax.random.key(0)),
        data,
        0.05,
        None,
    )


#: name -> builder; problems are built on first use (the weather one reads a file).
PROBLEMS: dict[str, Callable[[], Problem]] = {
    "weather": _weather,
    "least_squares": _least_squares,
    "logistic": _logistic,
    "quadratic_bowl": _bowl,
    "rosenbrock": _rosenbrock,
    "mlp_regression": _mlp,
}


def names() -> list[str]:
    """The registered problem names."""
    return list(PROBLEMS)


def get(name: str) -> Problem:
    """Build the named problem.

    Example:
        >>> import jgd
        >>> problem = jgd.problems.get("quadratic_bowl")
        >>> float(problem.loss_fn(problem.solution, problem.data))
        0.0
    """
    if name not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; choose one of {names()}.")
    return PROBLEMS[name]()
