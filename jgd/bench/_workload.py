"""Time any ``(loss_fn, params, data, optimizer)``: jgd.fit beside the two optax idioms.

The three methods do the same work on the same problem: ``epochs`` passes over
``data`` in mini-batches of ``batch_size`` rows (the last short batch a step of
its own, as in ``jgd.fit``), reshuffled every epoch with
``jgd.data.permutation(jax.random.fold_in(key, epoch), n)`` when a key is
given, so only the way the loop is run differs:

- ``jgd.fit``: jgd's compiled loop;
- ``optax python loop``: a jitted optax step called from a Python ``for``;
- ``optax lax.scan``: the whole run in one jitted ``lax.scan``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np
import optax

from jgd._idioms import Run, optax_loop, optax_scan
from jgd._text import table
from jgd._timing import Measurement, Timing, measure
from jgd.bench._machine import DevicePeaks, device_peaks, machine
from jgd.data import Dataset
from jgd.training import fit

__all__ = ["MethodTiming", "WorkloadTiming", "time_workload"]


class MethodTiming(NamedTuple):
    """One method's figures; rates use the median time.

    Attributes:
        method: ``"jgd.fit"``, ``"optax python loop"``, ``"optax lax.scan"`` or
            the name of an extra method.
        compile_s: compile seconds, measured apart (None: nothing compiled).
        seconds: the run's min/median/max over the repeats.
        steps_per_s: optimizer steps per second.
        samples_per_s: rows processed per second (``epochs × rows / time``).
        gb_per_s: data bytes read per second (see ``time_workload``).
        gflop_per_s: from the FLOP count per step; None where unknown.
    """

    method: str
    compile_s: float | None
    seconds: Timing
    steps_per_s: float
    samples_per_s: float
    gb_per_s: float
    gflop_per_s: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``seconds`` becomes a dict."""
        return {**self._asdict(), "seconds": self.seconds.to_dict()}


class WorkloadTiming(NamedTuple):
    """``time_workload``'s answer: the sizes, each method's figures, and the device's peaks."""

    workload: str
    rows: int
    features: int
    batch_size: int | None
    epochs: int
    steps: int
    bytes_per_epoch: int
    flops_per_step: float | None
    flops_source: str | None
    methods: tuple[MethodTiming, ...]
    peaks: DevicePeaks
    machine: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (sizes as plain numbers)."""
        return {
            **self._asdict(),
            "methods": [m.to_dict() for m in self.methods],
            "peaks": self.peaks.to_dict(),
        }

    def table(self) -> str:
        """The methods side by side: median seconds with (min–max), rates, share of the peaks."""
        peaks = self.peaks
        rows = [
            (
                m.method,
                "-" if m.compile_s is None else f"{m.compile_s:.3g}",
                f"{m.seconds.median:.4g} ({m.seconds.min:.4g}–{m.seconds.max:.4g})",
                m.steps_per_s,
                m.samples_per_s,
                f"{m.gb_per_s:.3g} ({m.gb_per_s / peaks.read_gb_per_s:.0%})",
                "-"
                if m.gflop_per_s is None
                else f"{m.gflop_per_s:.3g} ({m.gflop_per_s / peaks.matmul_gflop_per_s:.0%})",
            )
            for m in self.methods
        ]
        batch = "full batch" if self.batch_size is None else f"batch {self.batch_size}"
        return "\n".join(
            [
                f"{self.workload}: {self.rows:,} rows × {self.features} features, {batch}, "
                f"{self.epochs} epochs ({self.steps:,} steps), "
                f"median of {self.methods[0].seconds.repeats}",
                table(
                    ["method", "compile s", "run s (min–max)", "steps/s", "samples/s",
                     "GB/s (of read)", "GFLOP/s (of matmul)"],
                    rows,
                ),
                f"device: reads {peaks.read_gb_per_s:.3g} GB/s "
                f"({peaks.read_bytes / 2**20:.0f} MiB sum), matmul {peaks.matmul_gflop_per_s:.3g} "
                f"GFLOP/s (f32 {peaks.matmul_size}²)",
            ]
        )  # fmt: skip


def _flops(compiled: Any) -> float | None:
    """XLA's FLOP count for one compiled step, where the backend reports one."""
    try:
        cost = compiled.cost_analysis()
    except Exception:  # backends without a cost model raise; the figure is then unknown
        return None
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    flops = (cost or {}).get("flops")
    return float(flops) if flops and flops > 0 else None


def _time_fit(run: Run, repeats: int) -> Measurement:
    """``jgd.fit``: its programs are built inside, so JAX's compile events time them."""

    def call() -> Any:
        return fit(
            run.loss_fn,
            run.params,
            run.data,
            optimizer=run.optimizer,
            epochs=run.epochs,
            batch_size=run.batch_size,
            key=run.key,
        ).params

    return measure(call, repeats, jax_compiles=True)


def _figures(
    name: str, measured: Measurement, run: Run, bytes_per_epoch: int, flops: float | None
) -> MethodTiming:
    seconds = measured.run.median
    return MethodTiming(
        method=name,
        compile_s=measured.compile_s,
        seconds=measured.run,
        steps_per_s=run.steps / seconds,
        samples_per_s=run.epochs * run.rows / seconds,
        gb_per_s=bytes_per_epoch * run.epochs / seconds / 1e9,
        gflop_per_s=None if flops is None else flops * run.steps / seconds / 1e9,
    )


def time_workload(
    loss_fn: Callable[[Any, Any], jax.Array],
    params: Any,
    data: Dataset,
    optimizer: optax.GradientTransformation,
    *,
    epochs: int,
    batch_size: int | None = None,
    key: jax.Array | None = None,
    repeats: int = 5,
    flops_per_step: float | None = None,
    others: Mapping[str, Callable[[], Any]] | None = None,
    name: str = "workload",
) -> WorkloadTiming:
    """Time a training run with ``jgd.fit``, the optax Python loop and the optax ``lax.scan``.

    Each method is compiled first, its compile time measured apart: the two
    optax idioms with ``jax.jit(f).lower(...).compile()``, ``jgd.fit`` (which
    builds its programs inside) by JAX's own compile events during its first
    call (a later ``time_workload`` of the same ``loss_fn`` and settings finds
    those programs cached and reports what is left). Then one warm-up call and
    ``repeats`` timed calls, each blocked on.

    Byte model: every epoch reads the whole of ``data`` once (each row in one
    mini-batch), so GB/s is ``data bytes × epochs / median time``; parameters,
    optimizer state and the gathered batch copies are not counted. FLOP model:
    ``flops_per_step`` when given, else XLA's ``cost_analysis()`` of the
    optax loop's compiled step (the short last batch counted as a full one),
    else None. The device's own read bandwidth and matmul rate (measured once
    per process) come with the result.

    Args:
        loss_fn: ``loss_fn(params, batch) -> scalar``.
        params: the starting parameters.
        data: a ``jgd.Dataset`` (rows on the leading axis).
        optimizer: any ``optax.GradientTransformation``, used by all methods.
        epochs: passes over the data.
        batch_size: rows per step; None (or all rows) for full batch.
        key: reshuffle every epoch from this key; None visits rows in order.
        repeats: timed calls per method (after a warm-up call).
        flops_per_step: FLOPs of one step, if you have a model for it.
        others: more methods to time beside them, name -> call doing the same
            run (e.g. a NumPy or PyTorch loop); nothing is compiled for them.
        name: a label for the table and JSON.

    Returns:
        A ``WorkloadTiming``: ``.methods`` (one ``MethodTiming`` each),
        ``.table()`` and ``.to_dict()``.

    Example:
        >>> import jax.numpy as jnp, jgd
        >>> data = jgd.Dataset(jnp.ones((64, 2)), jnp.ones(64))
        >>> model = jgd.models.linear(2)
        >>> timing = time_workload(jgd.objective(model, jgd.losses.mse), model.init(None),
        ...                        data, jgd.gd(0.1), epochs=10)
        >>> [m.method for m in timing.methods]
        ['jgd.fit', 'optax python loop', 'optax lax.scan']
    """
    rows = int(jax.tree.leaves(data)[0].shape[0])
    if batch_size is not None and batch_size == rows:
        batch_size = None
    run = Run(loss_fn, params, data, optimizer, epochs, batch_size, key)
    measured = {"jgd.fit": _time_fit(run, repeats)}
    loop, scan = optax_loop(run), optax_scan(run)
    measured["optax python loop"] = measure(loop.call, repeats, compile_s=loop.compile_s)
    measured["optax lax.scan"] = measure(scan.call, repeats, compile_s=scan.compile_s)
    xla_flops = _flops(loop.compiled)
    for other, call in (others or {}).items():
        measured[other] = measure(call, repeats)
    flops, source = flops_per_step, "given"
    if flops is None:
        flops, source = xla_flops, "cost_analysis" if xla_flops is not None else None
    bytes_per_epoch = sum(int(leaf.nbytes) for leaf in jax.tree.leaves(data))
    X = data.X if isinstance(data, Dataset) else jax.tree.leaves(data)[0]
    return WorkloadTiming(
        workload=name,
        rows=rows,
        features=int(np.prod(X.shape[1:])),
        batch_size=batch_size,
        epochs=int(epochs),
        steps=run.steps,
        bytes_per_epoch=bytes_per_epoch,
        flops_per_step=flops,
        flops_source=source,
        methods=tuple(_figures(n, m, run, bytes_per_epoch, flops) for n, m in measured.items()),
        peaks=device_peaks(),
        machine=machine(),
    )
