"""Plots of training runs and sweeps (optional extra ``plot``: matplotlib).

Every function returns a ``matplotlib.figure.Figure`` built without pyplot (no
global state, no display needed) and, with ``save=PATH``, writes a PNG.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

try:
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.figure import Figure
except ImportError as error:  # pragma: no cover - exercised only without matplotlib
    raise ImportError(
        "jgd.plot needs matplotlib: pip install 'jgd[plot]' (or pip install matplotlib)."
    ) from error

from jgd.data import Dataset
from jgd.sweeps import SweepResult
from jgd.training import FitResult, Status

__all__ = ["loss_curve", "loss_surface", "loss_vs_params", "sweep_curve"]


def _finish(figure: Figure, save: str | os.PathLike[str] | None) -> Figure:
    figure.tight_layout()
    if save is not None:
        folder = os.path.dirname(os.path.abspath(save))
        os.makedirs(folder, exist_ok=True)
        figure.savefig(save, dpi=120)
    return figure


def _scalar_names(params: Any) -> list[str]:
    """'w[0]', 'w[1]', 'b', ... for every scalar in a params pytree (ravel order)."""
    names = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        base = jax.tree_util.keystr(path).replace("['", "").replace("']", "")
        size = int(np.size(leaf))
        names += [base] if np.ndim(leaf) == 0 else [f"{base}[{i}]" for i in range(size)]
    return names


def loss_curve(
    result: FitResult | SweepResult, *, log: bool = True, save: str | None = None
) -> Figure:
    """Training (and validation) loss by epoch.

    A ``FitResult`` draws one training line and, with validation data, one
    validation line. A ``SweepResult`` draws one line per member, coloured by
    its learning rate when the sweep varied it.

    Example:
        >>> import jax.numpy as jnp, jgd, jgd.plot
        >>> data = jgd.Dataset(jnp.linspace(-1, 1, 8)[:, None], jnp.linspace(-1, 1, 8))
        >>> loss_fn = jgd.objective(jgd.models.linear(1), jgd.losses.mse)
        >>> result = jgd.fit(loss_fn, loss_fn.model.init(None), data,
        ...                  optimizer=jgd.gd(0.1), epochs=5)
        >>> len(jgd.plot.loss_curve(result).axes[0].lines)
        1
    """
    figure = Figure(figsize=(6.4, 4.0))
    axes = figure.add_subplot()
    if isinstance(result, SweepResult):
        epochs = np.asarray(result.history.epoch)
        losses = np.asarray(result.history.loss)
        rates = result.configs.get("learning_rate")
        colour = None
        if rates is not None:
            rates = np.asarray(rates, float)
            norm = LogNorm(rates.min(), rates.max()) if rates.min() > 0 else Normalize()
            colour = ScalarMappable(norm=norm, cmap=colormaps["viridis"])
            figure.colorbar(colour, ax=axes, label="learning rate")
        for i in range(result.n_members):
            kept = epochs[i] > 0
            axes.plot(
                epochs[i][kept],
                losses[i][kept],
                color=None if colour is None else colour.to_rgba(rates[i]),
                linewidth=1,
            )
        axes.set_title(f"Training loss of {result.n_members} sweep members")
    else:
        history = result.history
        axes.plot(np.asarray(history.epoch), np.asarray(history.loss), label="train")
        if history.val_loss is not None:
            axes.plot(np.asarray(history.epoch), np.asarray(history.val_loss), label="validation")
        axes.legend()
        axes.set_title(f"Loss by epoch ({result.status.name})")
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    if log:
        axes.set_yscale("log")
    return _finish(figure, save)


def loss_vs_params(
    result: FitResult,
    loss_fn: Any | None = None,
    data: Dataset | None = None,
    *,
    feature_names: Sequence[str] | None = None,
    max_panels: int = 8,
    save: str | None = None,
) -> Figure:
    """Loss against each scalar parameter over training, one panel per parameter.

    Needs the run's parameter path: ``jgd.fit(..., record_params=True)``. With
    ``loss_fn`` and ``data`` the loss is evaluated at every recorded point.
    Without them the history is used: ``history.loss[e + 1]`` is the loss at
    the params recorded after epoch ``e`` (exact for full-batch runs recorded
    every epoch; for mini-batches it is the next epoch's mean batch loss).

    With more than ``max_panels`` scalars only the ``max_panels`` largest by
    final absolute value are drawn (in parameter order), so a model with many
    features stays readable; the figure's title says how many were left out.
    ``feature_names`` (one per input column) names the weights ``w`` by
    feature (``w`` of shape (d, k), e.g. softmax: ``"name[j]"`` for output j).

    Example:
        >>> import jax.numpy as jnp, jgd, jgd.plot
        >>> data = jgd.Dataset(jnp.linspace(-1, 1, 8)[:, None], jnp.linspace(-1, 1, 8))
        >>> loss_fn = jgd.objective(jgd.models.linear(1), jgd.losses.mse)
        >>> result = jgd.fit(loss_fn, loss_fn.model.init(None), data, optimizer=jgd.gd(0.1),
        ...                  epochs=5, record_params=True)
        >>> len(jgd.plot.loss_vs_params(result).axes)  # w[0] and b
        2
        >>> [a.get_xlabel() for a in jgd.plot.loss_vs_params(result, feature_names=["x"]).axes]
        ['b', 'x']
    """
    path = _path(result)
    names = _scalar_names(jax.tree.map(lambda a: a[0], path))
    values = np.asarray(jax.vmap(lambda p: ravel_pytree(p)[0])(path))
    if loss_fn is not None and data is not None:
        losses = np.asarray(jax.jit(jax.vmap(lambda p: loss_fn(p, data)))(path))
    else:
        # The loss measured in epoch e+1 is the loss at the params after epoch e.
        losses = np.asarray(result.history.loss)[1:]
        values = values[:-1]
    if feature_names is not None:
        names = _feature_named(jax.tree.map(lambda a: a[0], path), list(feature_names), names)
    if max_panels < 1:
        raise ValueError(f"max_panels must be >= 1, got {max_panels}.")
    shown = np.arange(len(names))
    if len(names) > max_panels:
        shown = np.sort(np.argsort(-np.abs(values[-1]), kind="stable")[:max_panels])
    columns = min(len(shown), 3)
    rows = -(-len(shown) // columns)
    figure = Figure(figsize=(4.0 * columns, 3.2 * rows))
    for panel, i in enumerate(shown):
        axes = figure.add_subplot(rows, columns, panel + 1)
        axes.plot(values[:, i], losses, marker=".", markersize=3)
        axes.set_xlabel(names[i])
        axes.set_ylabel("loss")
    if len(shown) < len(names):
        figure.suptitle(f"the {len(shown)} largest of {len(names)} parameters (by final |value|)")
    return _finish(figure, save)


def _feature_named(params: Any, features: list[str], names: list[str]) -> list[str]:
    """Rename the scalars of a top-level ``w`` of shape (d,) or (d, k) after the d features."""
    weights = params.get("w") if isinstance(params, dict) else None
    if weights is None or np.ndim(weights) not in (1, 2) or np.shape(weights)[0] != len(features):
        return names
    outputs = 1 if np.ndim(weights) == 1 else np.shape(weights)[1]
    renamed = [
        features[j // outputs] if outputs == 1 else f"{features[j // outputs]}[{j % outputs}]"
        for j in range(int(np.size(weights)))
    ]
    flat = iter(renamed)
    return [next(flat) if name.startswith("w[") else name for name in names]


def _path(result: FitResult) -> Any:
    if result.history.params is None:
        raise ValueError(
            "this result has no parameter path; fit with record_params=True to plot it."
        )
    return result.history.params


def loss_surface(
    loss_fn: Any,
    params: Any,
    data: Dataset,
    *,
    path: FitResult | None = None,
    start: Any | None = None,
    indices: tuple[int | str, int | str] | None = None,
    span: float | None = None,
    resolution: int = 60,
    save: str | None = None,
) -> Figure:
    """Contours of the loss over two parameters, with the gradient-descent path on top.

    The two axes are two entries of the flattened parameter vector
    (``jax.flatten_util.ravel_pytree`` order; names like ``w[0]`` and ``b``);
    the others stay at ``params`` (a 2-D slice).

    Args:
        loss_fn: ``loss_fn(params, batch)``.
        params: where the slice is taken (e.g. the exact solution).
        data: the data the loss is computed on.
        path: a ``FitResult`` fitted with ``record_params=True``: its path is
            drawn, the start and the end marked.
        start: the params the run started from, drawn as the path's first
            point (the history holds the params after each epoch).
        indices: which two parameters span the plane, by position in the
            flattened vector or by name (``("w[0]", "b")``); by default the
            first weight and the bias when there is one, else the first two.
        span: half-width of the window around ``params`` (default: enough to
            hold the path, or 1).
        resolution: grid points per axis.

    Example:
        >>> import jax.numpy as jnp, jgd, jgd.plot
        >>> data = jgd.Dataset(jnp.linspace(-1, 1, 8)[:, None], jnp.linspace(-1, 1, 8))
        >>> loss_fn = jgd.objective(jgd.models.linear(1), jgd.losses.mse)
        >>> exact = jgd.least_squares(data.X, data.y)
        >>> figure = jgd.plot.loss_surface(loss_fn, exact, data, resolution=10)
        >>> figure.axes[0].get_xlabel(), figure.axes[0].get_ylabel()
        ('w[0]', 'b')
    """
    centre, unravel = ravel_pytree(params)
    names = _scalar_names(params)
    if indices is None:
        weights = [k for k, name in enumerate(names) if name != "b"]
        indices = (weights[0], names.index("b")) if "b" in names and weights else (0, 1)
    i, j = (names.index(k) if isinstance(k, str) and k in names else k for k in indices)
    valid = all(isinstance(k, int) and 0 <= k < centre.size for k in (i, j))
    if centre.size < 2 or not valid or i == j:
        raise ValueError(
            f"indices must name two different parameters out of {names}, got {indices!r}."
        )
    points = None
    if path is not None:
        points = np.asarray(jax.vmap(lambda p: ravel_pytree(p)[0])(_path(path)))
        if start is not None:
            points = np.concatenate([np.asarray(ravel_pytree(start)[0])[None], points])
    if span is None:
        span = 1.0
        if points is not None:
            reach = float(np.abs(points[:, [i, j]] - np.asarray(centre)[[i, j]]).max())
            span = max(1.15 * reach, 1e-3)
    a = np.linspace(float(centre[i]) - span, float(centre[i]) + span, resolution)
    b = np.linspace(float(centre[j]) - span, float(centre[j]) + span, resolution)
    A, B = np.meshgrid(a, b)
    grid = jnp.tile(centre, (A.size, 1))
    grid = grid.at[:, i].set(A.ravel()).at[:, j].set(B.ravel())
    values = jax.jit(jax.vmap(lambda flat: loss_fn(unravel(flat), data)))(grid)
    Z = np.asarray(values).reshape(A.shape)
    figure = Figure(figsize=(6.0, 5.0))
    axes = figure.add_subplot()
    positive = Z[np.isfinite(Z) & (Z > 0)]
    finite = Z[np.isfinite(Z)]
    if positive.size and positive.max() / positive.min() > 100:
        levels = np.geomspace(positive.min(), positive.max(), 25)
    else:
        levels = np.linspace(finite.min(), finite.max(), 25)
    contour = axes.contour(A, B, Z, levels=levels, cmap="viridis", linewidths=0.8)
    figure.colorbar(contour, ax=axes, label="loss")
    if points is not None:
        axes.plot(
            points[:, i], points[:, j], color="tab:red", marker=".", markersize=3, label="path"
        )
        axes.plot(points[0, i], points[0, j], "o", color="black", label="start")
        axes.plot(points[-1, i], points[-1, j], "*", color="tab:orange", markersize=12, label="end")
        axes.legend(loc="best")
    axes.set_xlabel(names[i])
    axes.set_ylabel(names[j])
    axes.set_title("Loss surface and gradient-descent path")
    return _finish(figure, save)


def sweep_curve(
    result: SweepResult, *, x: str = "learning_rate", y: str | None = None, save: str | None = None
) -> Figure:
    """Final validation loss (or training loss) against any grid axis; seeds as a band.

    ``x`` names a grid axis; ``y`` is ``"val_loss"`` (the default when the
    sweep had ``val_data``, what ``best()`` ranks by) or ``"loss"``. Members
    that differ only in ``seed`` are drawn as their mean with a ±1 std band;
    other axes get one line each. Diverged members are marked at the top; for
    a learning-rate axis the plain-GD bound 2/L is drawn when known.

    Example:
        >>> import jax.numpy as jnp, jgd, jgd.plot
        >>> data = jgd.Dataset(jnp.linspace(-1, 1, 8)[:, None], jnp.linspace(-1, 1, 8))
        >>> loss_fn = jgd.objective(jgd.models.linear(1), jgd.losses.mse)
        >>> result = jgd.sweep(loss_fn, loss_fn.model.init(None), data, optimizer=jgd.gd,
        ...                    grid={"learning_rate": jnp.array([0.1, 1.0, 9.0])}, epochs=50)
        >>> figure = jgd.plot.sweep_curve(result)
        >>> [len(c.get_offsets()) for c in figure.axes[0].collections]  # finished, diverged
        [2, 1]
    """
    if x not in result.configs:
        raise ValueError(f"x must be one of the grid's axes {list(result.configs)}, got {x!r}.")
    has_val = not np.isnan(np.asarray(result.final_val_loss, float)).all()
    y = y or ("val_loss" if has_val else "loss")
    if y not in ("loss", "val_loss"):
        raise ValueError(f"y must be 'loss' or 'val_loss', got {y!r}.")
    values = np.asarray(result.final_val_loss if y == "val_loss" else result.final_loss, float)
    xs = np.asarray(result.configs[x])
    diverged = np.asarray(result.status) == Status.DIVERGED
    figure = Figure(figsize=(6.4, 4.0))
    axes = figure.add_subplot()
    _sweep_lines(axes, result, x, xs, np.where(diverged, np.nan, values))
    finite = np.isfinite(values) & ~diverged
    axes.scatter(xs[finite], values[finite], s=14, label="finished")
    if diverged.any():
        top = np.nanmax(values[finite]) * 10 if finite.any() else 1.0
        axes.scatter(
            xs[diverged],
            np.full(diverged.sum(), top),
            marker="x",
            color="tab:red",
            label="diverged",
        )
    if x == "learning_rate" and result.lr_bound is not None and np.isfinite(result.lr_bound):
        axes.axvline(
            result.lr_bound, color="black", linestyle="--", label=f"2/L = {result.lr_bound:.3g}"
        )
    numeric = np.issubdtype(xs.dtype, np.number)
    if numeric and np.all(xs > 0) and xs.max() > 10 * xs.min():
        axes.set_xscale("log")
    if finite.any() and np.all(values[finite] > 0):
        axes.set_yscale("log")
    axes.set_xlabel(x.replace("_", " "))
    axes.set_ylabel(f"final {'validation' if y == 'val_loss' else 'training'} loss")
    axes.set_title(f"Sweep over {x.replace('_', ' ')}")
    axes.legend(fontsize="small")
    return _finish(figure, save)


def _sweep_lines(axes: Any, result: SweepResult, x: str, xs: np.ndarray, values: np.ndarray):
    """One line per combination of the other axes: the mean over seeds, with a ±1 std band."""
    others = [n for n in result.configs if n not in (x, "seed")]
    keys = list(zip(*(np.asarray(result.configs[n]).tolist() for n in others))) or [()] * len(xs)
    for key in sorted(set(keys), key=str)[:8]:  # beyond 8 lines a plot is unreadable
        chosen = np.asarray([k == key for k in keys])
        points = sorted(set(xs[chosen].tolist()))
        stats = [values[chosen & (xs == p)] for p in points]
        mean = np.asarray([np.nanmean(v) if np.isfinite(v).any() else np.nan for v in stats])
        std = np.asarray([np.nanstd(v) if np.isfinite(v).any() else np.nan for v in stats])
        label = ", ".join(
            f"{n}={v:g}" if isinstance(v, float) else f"{n}={v}" for n, v in zip(others, key)
        )
        (line,) = axes.plot(points, mean, linewidth=1, label=label or None)
        if "seed" in result.configs:
            axes.fill_between(points, mean - std, mean + std, color=line.get_color(), alpha=0.2)
