"""Result types shared by ``fit`` and ``sweep``: statuses, histories, results.

``fit_result`` is the one conversion from the engine's outcome to a
``FitResult``: ``jgd.fit`` and ``SweepResult.member`` both use it, so a sweep
member and a solo run are described by the same rule.
"""

from __future__ import annotations

import enum
import functools
from typing import Any, NamedTuple

import jax
import numpy as np

from jgd._text import table as _table

__all__ = [
    "Aggregate",
    "Best",
    "FitResult",
    "History",
    "PerMember",
    "Status",
    "SweepResult",
    "fit_result",
]


class Status(enum.IntEnum):
    """Why a run stopped. ``str(status)`` is its name (``"DIVERGED"``)."""

    MAX_EPOCHS = 0  #: ran every epoch it was given
    CONVERGED = 1  #: training loss changed by less than ``tol`` (relative)
    EARLY_STOPPED = 2  #: the monitored validation value did not improve for ``patience`` epochs
    DIVERGED = 3  #: the loss or the parameters became NaN/inf
    #: with ``patience``: the monitored validation value became NaN/inf (the
    #: training itself was finite); the run stops there, see ``FitResult.message``
    VALIDATION_NONFINITE = 4
    #: a sweep member stopped by successive halving (``jgd.Halving``): it ranked below the
    #: survivors at the end of a rung; its results are those at its last rung
    ELIMINATED = 5

    def __str__(self) -> str:
        return self.name

    def __format__(self, spec: str) -> str:
        if spec and spec[-1] in "bcdoxXn":
            return format(int(self), spec)
        return format(self.name, spec)


class History(NamedTuple):
    """Per-epoch records (every ``record_every``-th epoch and the last one run).

    ``loss`` is the training loss seen during the epoch: for full-batch GD the
    loss at the parameters the epoch started from; for mini-batches the
    size-weighted mean of the batch losses. ``val_loss`` is measured on
    ``val_data`` after the epoch's updates (None without ``val_data``).
    ``epoch`` numbers epochs from 1. ``params`` holds the parameters after
    each recorded epoch (leading axis: records) when ``fit`` was called with
    ``record_params=True``, else None. ``metrics``/``val_metrics`` map each
    name given to ``fit(..., metrics=...)`` to its values on the training and
    validation data after the epoch's updates; ``aux`` maps each entry of the
    loss's aux dict (``has_aux=True``) to its size-weighted mean over the
    epoch's steps (None when not asked for).
    """

    epoch: jax.Array
    loss: jax.Array
    val_loss: jax.Array | None
    params: Any = None
    metrics: dict[str, jax.Array] | None = None
    val_metrics: dict[str, jax.Array] | None = None
    aux: dict[str, jax.Array] | None = None


class _Shape(str):
    """Prints without quotes inside a params repr."""

    def __repr__(self) -> str:
        return str(self)


class FitResult(NamedTuple):
    """The outcome of ``fit``.

    Attributes:
        params: final parameters (the best-validation ones when early-stopped,
            the last finite ones when diverged).
        opt_state: the optimizer state matching the final update.
        history: a ``History`` of recorded epochs.
        status: a ``Status``.
        epochs_run: epochs completed (counting the one that diverged).
        diverged_at: the epoch in which a NaN/inf appeared, else None.
        message: for a diverged run, what happened and what to try (the
            stability bound 2/L, standardization); else None.
    """

    params: Any
    opt_state: Any
    history: History
    status: Status
    epochs_run: int
    diverged_at: int | None
    message: str | None = None

    def __repr__(self) -> str:
        shapes = jax.tree.map(lambda leaf: _Shape(f"{leaf.dtype}{list(leaf.shape)}"), self.params)
        lines = [
            f"FitResult(status={self.status.name}, epochs_run={self.epochs_run}, "
            f"diverged_at={self.diverged_at},"
        ]
        if self.history.loss.shape[0]:
            loss = np.asarray(self.history.loss)
            lines.append(f"  loss: first {loss[0]:.6g}, last {loss[-1]:.6g},")
            if self.history.val_loss is not None:
                val = np.asarray(self.history.val_loss)
                lines.append(f"  val_loss: last {val[-1]:.6g}, best {np.nanmin(val):.6g},")
            for prefix, values in (("", self.history.metrics), ("val_", self.history.val_metrics)):
                for name, trace in (values or {}).items():
                    lines.append(f"  {prefix}{name}: last {float(np.asarray(trace)[-1]):.6g},")
        if self.message:
            lines.append(f"  message={self.message!r},")
        lines.append(f"  params={shapes})")
        return "\n".join(lines)


def fit_result(
    params: Any,
    opt_state: Any,
    history: History,
    status: int,
    epochs_run: int,
    diverged_at: int,
    message: str | None = None,
    filled: int | None = None,
) -> FitResult:
    """The ``FitResult`` of one run from the engine's outcome (host scalars).

    History slots fill from the first; slots the run never reached hold epoch
    0 and are dropped. ``diverged_at`` 0 (the engine's "did not diverge")
    becomes None. ``filled``: the number of filled slots, when already known.
    """
    if filled is None:
        filled = int((np.asarray(history.epoch) > 0).sum())
    if filled != history.epoch.shape[0]:
        history = jax.tree.map(lambda a: a[:filled], history)
    return FitResult(
        params=params,
        opt_state=opt_state,
        history=history,
        status=Status(int(status)),
        epochs_run=int(epochs_run),
        diverged_at=int(diverged_at) or None,
        message=message,
    )


class Best(NamedTuple):
    """The winning member of a sweep."""

    config: dict[str, float]
    params: Any
    index: int


class Aggregate(NamedTuple):
    """A sweep's configurations with mean and standard deviation over their seeds.

    ``configs`` holds one row per configuration (the grid without ``"seed"``);
    the statistics ignore diverged members and non-finite losses (NaN when no
    seed is left);
    ``diverged`` counts them; ``seeds`` is the number of seeds per configuration.
    """

    configs: dict[str, np.ndarray]
    final_loss_mean: np.ndarray
    final_loss_std: np.ndarray
    final_val_loss_mean: np.ndarray
    final_val_loss_std: np.ndarray
    diverged: np.ndarray
    seeds: np.ndarray


class PerMember(list):
    """One pytree per member: a sweep's params or optimizer states when its members'
    layouts differ (a dict of optimizers or of models). A pytree node, so
    ``jax.tree`` functions reach every member's arrays."""


jax.tree_util.register_pytree_node(
    PerMember, lambda members: (list(members), None), lambda _, children: PerMember(children)
)


class SweepResult(NamedTuple):
    """Results of ``sweep``, one entry per member along the leading axis.

    Attributes:
        configs: name -> (M,) NumPy array of the values as given (``"seed"`` with ``seeds``).
        params: final params, stacked with a leading member axis (with a dict of
            models of different shapes: a ``PerMember`` list, one pytree per member).
        opt_state: final optimizer states, stacked likewise (``PerMember`` with a
            dict of different optimizers or models).
        history: ``History`` with (M, R) arrays; slots a member never reached
            hold NaN losses and epoch 0.
        final_loss: training loss at each member's final params.
        final_val_loss: validation loss there (NaN without ``val_data``).
        status: (M,) ``Status`` codes.
        stop_epoch: (M,) epochs each member ran.
        diverged_at: (M,) epoch of divergence, 0 when it did not diverge
            (``member(i).diverged_at`` is then None, as for ``fit``).
        lr_bound: the plain-GD stability bound ``2 / L`` at the start when
            the grid sweeps ``learning_rate`` of jgd's gd/momentum/nesterov
            (the smallest over the members' ``l2``), else None.
        lr_bounds: (M,) each member's bound with its own ``l2``, or None.
        programs: how many programs the sweep compiled: one per combination of
            static axes (``batch_size``, ``epochs``, a dict of optimizers or models).
    """

    configs: dict[str, np.ndarray]
    params: Any
    opt_state: Any
    history: History
    final_loss: jax.Array
    final_val_loss: jax.Array
    status: jax.Array
    stop_epoch: jax.Array
    diverged_at: jax.Array
    lr_bound: float | None
    lr_bounds: np.ndarray | None = None
    programs: int = 1

    @property
    def n_members(self) -> int:
        return int(self.status.shape[0])

    def _ranking(self, by: str) -> np.ndarray:
        if by not in ("loss", "val_loss"):
            raise ValueError(f"by must be 'loss' or 'val_loss', got {by!r}.")
        scores = np.asarray(self.final_val_loss if by == "val_loss" else self.final_loss, float)
        if by == "val_loss" and np.isnan(scores).all():
            raise ValueError("this sweep had no val_data; use best(by='loss').")
        # Diverged members never win, whatever their last finite loss was.
        scores = np.where(np.asarray(self.status) == Status.DIVERGED, np.inf, scores)
        scores = np.where(np.isnan(scores), np.inf, scores)
        return np.argsort(scores, kind="stable")

    def best(self, by: str = "val_loss") -> Best:
        """The member with the lowest final ``"val_loss"`` (or ``"loss"``).

        Diverged members are never chosen: when every member diverged this
        raises ``ValueError``.
        """
        if by == "val_loss" and np.isnan(np.asarray(self.final_val_loss)).all():
            by = "loss"
        if (np.asarray(self.status) == Status.DIVERGED).all():
            raise ValueError(
                f"every one of the {self.n_members} members diverged, so there is no best "
                "member; try smaller learning rates or standardized features."
            )
        index = int(self._ranking(by)[0])
        return Best(self.config(index), self.member(index).params, index)

    def config(self, index: int) -> dict[str, float]:
        """Member ``index``'s hyperparameters as Python numbers."""
        return {name: np.asarray(values)[index].item() for name, values in self.configs.items()}

    def member(self, index: int) -> FitResult:
        """Member ``index`` as the ``FitResult`` a solo ``fit`` would return."""
        if not -self.n_members <= index < self.n_members:
            raise IndexError(f"member {index} out of range for {self.n_members} members.")
        index %= self.n_members
        take = functools.partial(jax.tree.map, lambda a: a[index])
        scalars = np.asarray(self.status), np.asarray(self.stop_epoch), np.asarray(self.diverged_at)
        # Static axes of different optimizers (or models) keep one state (or params) per member.
        opt_state, params = self.opt_state, self.params
        opt_state = opt_state[index] if isinstance(opt_state, PerMember) else take(opt_state)
        return fit_result(
            params[index] if isinstance(params, PerMember) else take(params),
            opt_state,
            take(self.history),
            *(int(a[index]) for a in scalars),
        )

    def records(self) -> list[dict[str, Any]]:
        """One plain dict per member: its hyperparameters, final losses, status and epochs.

        Example:
            >>> import jax.numpy as jnp, jgd
            >>> data = jgd.Dataset(jnp.ones((4, 1)), jnp.ones(4))
            >>> loss_fn = jgd.objective(jgd.models.linear(1))
            >>> result = jgd.sweep(loss_fn, loss_fn.model.init(None), data, optimizer=jgd.gd,
            ...                    grid={"learning_rate": [0.1, 0.2]}, epochs=3)
            >>> sorted(result.records()[0])
            ['diverged_at', 'epochs', 'final_loss', 'final_val_loss', 'learning_rate', 'member', \
'status']
        """
        status = np.asarray(self.status)
        columns = {
            "final_loss": np.asarray(self.final_loss, float),
            "final_val_loss": np.asarray(self.final_val_loss, float),
            "epochs": np.asarray(self.stop_epoch),
            "diverged_at": np.asarray(self.diverged_at),
        }
        return [
            {
                "member": i,
                **self.config(i),
                **{name: values[i].item() for name, values in columns.items()},
                "status": Status(int(status[i])).name,
            }
            for i in range(self.n_members)
        ]

    def to_dataframe(self) -> Any:
        """``records()`` as a pandas ``DataFrame`` (pandas is optional: ``pip install pandas``)."""
        try:
            import pandas
        except ImportError:
            raise ImportError(
                "to_dataframe needs pandas (pip install pandas); records() gives the same "
                "rows as plain dicts."
            ) from None
        return pandas.DataFrame(self.records())

    def aggregate(self) -> Aggregate:
        """Mean and standard deviation over seeds for each configuration (see ``Aggregate``)."""
        names = [n for n in self.configs if n != "seed"]
        rows = list(zip(*(np.asarray(self.configs[n]).tolist() for n in names)))
        unique = sorted(set(rows))
        group = np.asarray([unique.index(row) for row in rows])
        kept = np.asarray(self.status) != Status.DIVERGED
        stats = {}
        for field in ("final_loss", "final_val_loss"):
            values = np.where(kept, np.asarray(getattr(self, field), float), np.nan)
            means, stds = [], []
            for g in range(len(unique)):
                chosen = values[group == g]
                finite = chosen[np.isfinite(chosen)]
                means.append(finite.mean() if finite.size else np.nan)
                stds.append(finite.std() if finite.size else np.nan)
            stats[field] = (np.asarray(means), np.asarray(stds))
        configs = {
            n: np.asarray([row[j] for row in unique], np.asarray(self.configs[n]).dtype)
            for j, n in enumerate(names)
        }
        return Aggregate(
            configs=configs,
            final_loss_mean=stats["final_loss"][0],
            final_loss_std=stats["final_loss"][1],
            final_val_loss_mean=stats["final_val_loss"][0],
            final_val_loss_std=stats["final_val_loss"][1],
            diverged=np.bincount(group, weights=~kept, minlength=len(unique)).astype(int),
            seeds=np.bincount(group, minlength=len(unique)),
        )

    def status_counts(self) -> dict[str, int]:
        codes = np.asarray(self.status)
        return {s.name: int((codes == s).sum()) for s in Status if (codes == s).any()}

    def table(self, max_rows: int | None = 20, by: str = "val_loss") -> str:
        """A readable summary, best members first, with status counts."""
        if by == "val_loss" and np.isnan(np.asarray(self.final_val_loss)).all():
            by = "loss"
        order = self._ranking(by)
        shown = order if max_rows is None else order[:max_rows]
        names = list(self.configs)
        has_val = not np.isnan(np.asarray(self.final_val_loss)).all()
        headers = ["rank", "member", *names, "final loss"]
        headers += ["final val loss"] if has_val else []
        headers += ["status", "epochs"]
        rows = []
        for rank, i in enumerate(shown, 1):
            row = [rank, int(i), *self.config(int(i)).values()]
            row.append(float(self.final_loss[i]))
            if has_val:
                row.append(float(self.final_val_loss[i]))
            row += [Status(int(self.status[i])).name, int(self.stop_epoch[i])]
            rows.append(row)
        counts = ", ".join(f"{name} {count}" for name, count in self.status_counts().items())
        lines = [f"SweepResult: {self.n_members} members ({counts}); ranked by final {by}"]
        if self.lr_bound is not None:
            lines.append(
                f"plain-GD stability bound 2/L = {self.lr_bound:.6g} at the start "
                "(rates above it diverge on a quadratic loss)"
            )
        lines.append(_table(headers, rows))
        if len(shown) < len(order):
            lines.append(f"... {len(order) - len(shown)} more members")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.table(max_rows=10)
