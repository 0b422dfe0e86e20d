"""The standard suite behind ``jgd bench``: linear GD, learning-rate sweeps, mini-batch MLPs.

Every workload is timed side by side in one run: jgd, a jitted optax step in a
Python for-loop, optax inside one ``lax.scan``, NumPy from scratch, and, when
installed, PyTorch CPU and scikit-learn. Each figure is the median of at least
five timed calls (after a warm-up call) with the min and max beside it; compile
time is measured apart (ahead of time for the optax idioms, from JAX's compile
events for jgd). The table is printed and JSON (with the machine, device, its
measured peaks and library versions) is written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jgd import losses, models
from jgd._io import atomic_write
from jgd._text import table
from jgd._timing import Measurement, aot, measure
from jgd.bench._machine import device_peaks, machine
from jgd.bench._workload import WorkloadTiming, time_workload
from jgd.data import Dataset
from jgd.optimizers import gd, momentum
from jgd.sweeps import sweep
from jgd.training import fit

__all__ = ["QUICK", "WORKLOADS", "Sizes", "format_table", "run", "write"]

Runner = Callable[[], Any]


class Sizes(NamedTuple):
    """Problem sizes of the suite (``QUICK`` and ``FULL`` are the presets).

    Attributes:
        linear: (rows, features, epochs) of each full-batch linear GD workload.
        sweep: (members, epochs) of the linear learning-rate sweep (10,000 × 10).
        mlp_sweep: (members, epochs) of the MLP learning-rate sweep (2,000 rows).
        mlp: (rows, epochs) of the mini-batch MLP workloads (batch 128).
    """

    linear: tuple[tuple[int, int, int], ...]
    sweep: tuple[int, int]
    mlp_sweep: tuple[int, int]
    mlp: tuple[int, int]


FULL = Sizes(
    linear=((1_000, 2, 5_000), (100_000, 10, 200), (1_000_000, 16, 20)),
    sweep=(256, 500),
    mlp_sweep=(64, 20),
    mlp=(10_000, 20),
)
# Each call long enough that fixed per-call costs stay under ~10 %: one jgd.fit
# call of a single 1,000 × 2 epoch took 1.6 ms (min of 9) on the shared 2-core
# development machine, so every linear call here runs ≥ ~20 ms.
QUICK = Sizes(
    linear=((1_000, 2, 10_000), (100_000, 10, 200)),
    sweep=(32, 200),
    mlp_sweep=(16, 4),
    mlp=(10_000, 3),
)


def _regression(n: int, d: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X @ rng.normal(size=d) + 0.1 * rng.normal(size=n)).astype(np.float32)
    return Dataset(jnp.asarray(X), jnp.asarray(y))


def _rows(timing: WorkloadTiming, label: str) -> list[dict[str, Any]]:
    """Result rows (µs per step, median with its range) of a ``time_workload`` answer."""
    rows = []
    for m in timing.methods:
        scale = 1e6 / timing.steps
        rows.append(
            {
                "workload": label,
                "method": m.method,
                "metric": "us_per_step",
                "value": m.seconds.median * scale,
                "value_range": [m.seconds.min * scale, m.seconds.max * scale],
                "repeats": m.seconds.repeats,
                "compile_s": m.compile_s,
                "x_gb_per_s": m.gb_per_s,
                "gflop_per_s": m.gflop_per_s,
                "steps": timing.steps,
                "rows": timing.rows,
                "features": timing.features,
                "batch_size": timing.batch_size,
                "epochs": timing.epochs,
            }
        )
    return rows


def _row(label: str, method: str, measured: Measurement, **fields: Any) -> dict[str, Any]:
    """A result row from a ``Measurement``: ``models_per_s`` when ``members`` is given."""
    t, members = measured.run, fields.get("members")
    if members is not None:
        value, low, high = members / t.median, members / t.max, members / t.min
        metric = "models_per_s"
    else:
        value, low, high = t.median * 1e6, t.min * 1e6, t.max * 1e6
        metric = "us_per_epoch"
    return {
        "workload": label,
        "method": method,
        "metric": metric,
        "value": value,
        "value_range": [low, high],
        "repeats": t.repeats,
        "compile_s": measured.compile_s,
        **fields,
    }


# ------------------------------------------------- 1. full-batch linear GD

_LINEAR_LR = 0.01


def _linear_mse(params, X, y):
    return jnp.mean((X @ params["w"] + params["b"] - y) ** 2)


def _numpy_linear(data: Dataset, epochs: int) -> Runner:
    X_np, y_np = np.asarray(data.X), np.asarray(data.y)
    d = X_np.shape[1]

    def numpy_gd():
        w, b, n = np.zeros(d, np.float32), np.float32(0), len(y_np)
        scale = np.float32(_LINEAR_LR * 2 / n)
        for _ in range(epochs):
            error = X_np @ w + b - y_np
            w = w - scale * (X_np.T @ error)
            b = b - scale * error.sum()
        return w, b

    return numpy_gd


def _torch_linear(data: Dataset, epochs: int) -> Runner | None:
    torch = _torch()
    if torch is None:
        return None
    X_t, y_t = torch.from_numpy(np.asarray(data.X)), torch.from_numpy(np.asarray(data.y))

    def torch_gd():
        w = torch.zeros(X_t.shape[1], requires_grad=True)
        b = torch.zeros((), requires_grad=True)
        optimizer = torch.optim.SGD([w, b], lr=_LINEAR_LR)
        for _ in range(epochs):
            optimizer.zero_grad()
            loss = torch.mean((X_t @ w + b - y_t) ** 2)
            loss.backward()
            optimizer.step()
        return w.detach().numpy()

    return torch_gd


def _loss_trace_gap(loss_fn: Any, start: Any, data: Dataset, epochs: int) -> float:
    """Largest relative gap between jgd.fit's per-epoch losses and an optax scan's."""
    sgd = optax.sgd(_LINEAR_LR)

    @jax.jit
    def scanned(X, y):
        def body(carry, _):
            params, state = carry
            loss, grads = jax.value_and_grad(_linear_mse)(params, X, y)
            updates, state = sgd.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), loss

        return jax.lax.scan(body, (start, sgd.init(start)), length=epochs)[1]

    ours = fit(loss_fn, start, data, optimizer=gd(_LINEAR_LR), epochs=epochs).history.loss
    theirs = scanned(data.X, data.y)
    return float(jnp.max(jnp.abs(ours - theirs) / jnp.abs(theirs)))


def _linear(sizes: Sizes, repeats: int) -> list[dict[str, Any]]:
    rows = []
    for n, d, epochs in sizes.linear:
        data = _regression(n, d)
        label = f"linear GD N={n:,} D={d}"
        loss_fn = losses.objective(models.linear(d), losses.mse)
        start = loss_fn.model.init(None)
        others = {"numpy": _numpy_linear(data, epochs)}
        torch_gd = _torch_linear(data, epochs)
        if torch_gd is not None:
            others["torch (loss.backward loop)"] = torch_gd
        timing = time_workload(
            loss_fn, start, data, gd(_LINEAR_LR), epochs=epochs, repeats=repeats,
            flops_per_step=4.0 * n * d, others=others, name=label,
        )  # fmt: skip
        workload_rows = _rows(timing, label)
        # Same trajectory, not only the same speed: jgd's per-epoch losses
        # against an optax scan's (plain autodiff), largest relative gap.
        workload_rows[0]["loss_trace_vs_optax_scan"] = _loss_trace_gap(loss_fn, start, data, epochs)
        rows += workload_rows
        sklearn_epoch = _sklearn_epoch(data) if n <= 100_000 else None
        if sklearn_epoch is not None:
            method = "sklearn SGDRegressor (1 epoch of per-sample SGD)"
            measured = measure(sklearn_epoch, repeats)
            rows.append(_row(label, method, measured, steps=n, rows=n, features=d, epochs=1))
    return rows


def _sklearn_epoch(data: Dataset) -> Runner | None:
    try:
        from sklearn.linear_model import SGDRegressor
    except ImportError:
        return None
    X, y = np.asarray(data.X), np.asarray(data.y)

    def one_epoch():
        SGDRegressor(max_iter=1, tol=None, learning_rate="constant", eta0=1e-3).fit(X, y)

    return one_epoch


# --------------------------------------------------------- 2. LR sweep


def _sweep(sizes: Sizes, repeats: int) -> list[dict[str, Any]]:
    members, epochs = sizes.sweep
    data = _regression(10_000, 10)
    loss_fn = losses.objective(models.linear(10), losses.mse)
    start = loss_fn.model.init(None)
    rates = np.geomspace(1e-4, 0.5, members)
    lr_array = jnp.asarray(rates, jnp.float32)

    def scan_run(learning_rate, factory):
        optimizer = factory(learning_rate)

        def body(carry, _):
            params, state = carry
            loss, grads = jax.value_and_grad(_linear_mse)(params, data.X, data.y)
            updates, state = optimizer.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), loss

        return jax.lax.scan(body, (start, optimizer.init(start)), length=epochs)

    vmap_scan = aot(jax.vmap(lambda lr: scan_run(lr, optax.sgd)), lr_array)
    injected = aot(jax.vmap(lambda lr: scan_run(lr, optax.inject_hyperparams(optax.sgd))), lr_array)
    label = f"sweep {members} lrs, linear N=10,000 D=10, {epochs} epochs"
    measured = {
        "jgd.sweep": measure(
            lambda: (
                sweep(
                    loss_fn, start, data, optimizer=gd, grid={"learning_rate": rates}, epochs=epochs
                ).params
            ),
            repeats,
            jax_compiles=True,
        ),
        "sequential jgd.fit": measure(
            lambda: [
                fit(loss_fn, start, data, optimizer=gd(float(r)), epochs=epochs).params
                for r in rates
            ],
            repeats,
            jax_compiles=True,
        ),
        "vmap(optax lax.scan)": measure(
            lambda: vmap_scan.call(lr_array), repeats, compile_s=vmap_scan.seconds
        ),
        "vmap(inject_hyperparams scan)": measure(
            lambda: injected.call(lr_array), repeats, compile_s=injected.seconds
        ),
    }
    sizes_fields = {"members": members, "rows": 10_000, "features": 10, "epochs": epochs}
    rows = [_row(label, name, m, **sizes_fields) for name, m in measured.items()]
    return rows + _mlp_sweep(sizes, repeats)


def _mlp_sweep(sizes: Sizes, repeats: int) -> list[dict[str, Any]]:
    """Learning rates of an 8-32-32-1 MLP, mini-batch momentum, vs as many sequential fits."""
    members, epochs = sizes.mlp_sweep
    data = _mlp_data(2_000)
    model = models.mlp([8, 32, 32, 1])
    loss_fn = losses.objective(model, losses.mse)
    start = model.init(jax.random.key(0))
    rates = np.geomspace(1e-3, 0.3, members)
    common = dict(epochs=epochs, batch_size=_BATCH, key=jax.random.key(0))
    measured = {
        "jgd.sweep (MLP)": measure(
            lambda: (
                sweep(
                    loss_fn,
                    start,
                    data,
                    optimizer=momentum,
                    grid={"learning_rate": rates},
                    **common,
                ).params
            ),
            repeats,
            jax_compiles=True,
        ),
        "sequential jgd.fit (MLP)": measure(
            lambda: [
                fit(loss_fn, start, data, optimizer=momentum(float(r)), **common).params
                for r in rates
            ],
            repeats,
            jax_compiles=True,
        ),
    }
    label = f"sweep {members} lrs, MLP 8-32-32-1, N=2,000, batch {_BATCH}, {epochs} epochs"
    fields = {"members": members, "rows": 2_000, "features": 8, "batch_size": _BATCH}
    return [_row(label, name, m, **fields, epochs=epochs) for name, m in measured.items()]


# ------------------------------------------------------- 3. mini-batch MLP

_MLP_SIZES = (8, 64, 64, 1)
_BATCH = 128


def _mlp_data(n: int) -> Dataset:
    rng = np.random.default_rng(2)
    X = rng.uniform(-2, 2, size=(n, 8)).astype(np.float32)
    y = (np.sin(X[:, 0]) * np.cos(X[:, 1]) + 0.1 * X[:, 2:].sum(axis=1)).astype(np.float32)
    return Dataset(jnp.asarray(X), jnp.asarray(y))


def _mlp(sizes: Sizes, repeats: int) -> list[dict[str, Any]]:
    n, epochs = sizes.mlp
    data = _mlp_data(n)
    model = models.mlp(list(_MLP_SIZES))
    loss_fn = losses.objective(model, losses.mse)
    start = model.init(jax.random.key(0))
    rows = []
    for kind in ("adam", "momentum"):
        optimizer = optax.adam(1e-3) if kind == "adam" else momentum(0.01, beta=0.9)
        others = {"numpy": _numpy_mlp(data, start, epochs, kind)}
        torch_runner = _torch_mlp(data, start, epochs, kind)
        if torch_runner is not None:
            others["torch (loss.backward loop)"] = torch_runner
        label = f"MLP 8-64-64-1 {kind}, batch {_BATCH}, {epochs} epochs, N={n:,}"
        timing = time_workload(
            loss_fn, start, data, optimizer, epochs=epochs, batch_size=_BATCH,
            key=jax.random.key(0), repeats=repeats, others=others, name=label,
        )  # fmt: skip
        rows += _rows(timing, label)
    return rows


def _numpy_mlp(data: Dataset, start: Any, epochs: int, kind: str) -> Runner:
    X_all, y_all = np.asarray(data.X), np.asarray(data.y)
    init = [(np.asarray(layer["w"]), np.asarray(layer["b"])) for layer in start]

    def run():
        params = [(w.copy(), b.copy()) for w, b in init]
        moments = [[(np.zeros_like(w), np.zeros_like(b)) for w, b in params] for _ in range(2)]
        rng, count = np.random.default_rng(0), 0
        for _ in range(epochs):
            order = rng.permutation(len(y_all))
            for i in range(0, len(order), _BATCH):
                rows = order[i : i + _BATCH]
                X, y = X_all[rows], y_all[rows]
                activations = [X]
                for w, b in params[:-1]:
                    activations.append(np.tanh(activations[-1] @ w + b))
                out = (activations[-1] @ params[-1][0] + params[-1][1])[:, 0]
                delta = (2.0 / len(y) * (out - y))[:, None].astype(np.float32)
                grads = []
                for layer in range(len(params) - 1, -1, -1):
                    w = params[layer][0]
                    grads.append((activations[layer].T @ delta, delta.sum(axis=0)))
                    if layer:
                        delta = (delta @ w.T) * (1 - activations[layer] ** 2)
                grads.reverse()
                count += 1
                params = _numpy_update(params, grads, moments, count, kind)
        return params

    return run


def _numpy_update(params, grads, moments, count, kind):
    updated = []
    for i, ((w, b), (gw, gb)) in enumerate(zip(params, grads)):
        new = []
        for j, (p, g) in enumerate(((w, gw), (b, gb))):
            m = moments[0][i][j]
            if kind == "adam":
                v = moments[1][i][j]
                m[...] = 0.9 * m + 0.1 * g
                v[...] = 0.999 * v + 0.001 * g * g
                m_hat = m / (1 - 0.9**count)
                v_hat = v / (1 - 0.999**count)
                new.append(p - 1e-3 * m_hat / (np.sqrt(v_hat) + 1e-8))
            else:
                m[...] = g + 0.9 * m
                new.append(p - 0.01 * m)
        updated.append(tuple(new))
    return updated


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch


def _torch_mlp(data: Dataset, start: Any, epochs: int, kind: str) -> Runner | None:
    torch = _torch()
    if torch is None:
        return None
    X_all, y_all = torch.from_numpy(np.asarray(data.X)), torch.from_numpy(np.asarray(data.y))
    layers = []
    for i in range(len(_MLP_SIZES) - 1):
        layers.append(torch.nn.Linear(_MLP_SIZES[i], _MLP_SIZES[i + 1]))
        if i < len(_MLP_SIZES) - 2:
            layers.append(torch.nn.Tanh())

    def run():
        net = torch.nn.Sequential(*layers)
        with torch.no_grad():
            for linear, layer in zip(net[::2], start):
                linear.weight.copy_(torch.from_numpy(np.asarray(layer["w"]).T.copy()))
                linear.bias.copy_(torch.from_numpy(np.asarray(layer["b"])))
        if kind == "adam":
            optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        else:
            optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        generator = torch.Generator().manual_seed(0)
        for _ in range(epochs):
            order = torch.randperm(len(y_all), generator=generator)
            for i in range(0, len(order), _BATCH):
                rows = order[i : i + _BATCH]
                optimizer.zero_grad()
                loss = torch.mean((net(X_all[rows])[:, 0] - y_all[rows]) ** 2)
                loss.backward()
                optimizer.step()
        return net

    return run


# ------------------------------------------------------------------ driver

WORKLOADS = {"linear": _linear, "sweep": _sweep, "mlp": _mlp}


def _ratios(rows: list[dict[str, Any]]) -> None:
    """Add each method's time relative to jgd's in the same workload (>1: jgd faster)."""
    for row in rows:
        reference = next(
            (r for r in rows if r["workload"] == row["workload"] and r["method"].startswith("jgd")),
            None,
        )
        if reference is None or row["metric"] != reference["metric"]:
            row["jgd_speedup"] = None
        elif row["metric"] == "models_per_s":
            row["jgd_speedup"] = reference["value"] / row["value"]
        else:
            row["jgd_speedup"] = row["value"] / reference["value"]


def run(
    quick: bool = False,
    only: Sequence[str] | None = None,
    *,
    repeats: int = 5,
    sizes: Sizes | None = None,
) -> dict[str, Any]:
    """Time the standard workloads.

    Args:
        quick: the ``QUICK`` sizes (under a minute or two) instead of ``FULL``.
        only: workload names from ``WORKLOADS`` (default: all).
        repeats: timed calls per figure, after a warm-up call.
        sizes: your own ``Sizes`` instead of either preset.

    Returns:
        ``{"machine": ..., "peaks": ..., "quick": ..., "repeats": ..., "results": [...]}``,
        one result row per workload and method: ``value`` (the median, in
        ``metric`` units), ``value_range`` (from the min and max times),
        ``compile_s`` and the sizes as numbers.

    Example:
        >>> sorted(WORKLOADS), QUICK.linear[0]
        (['linear', 'mlp', 'sweep'], (1000, 2, 10000))
    """
    chosen = list(WORKLOADS) if not only else list(only)
    for name in chosen:
        if name not in WORKLOADS:
            raise ValueError(f"unknown workload {name!r}; choose from {list(WORKLOADS)}.")
    sizes = sizes or (QUICK if quick else FULL)
    rows = [row for name in chosen for row in WORKLOADS[name](sizes, repeats)]
    _ratios(rows)
    return {
        "machine": machine(),
        "peaks": device_peaks().to_dict(),
        "quick": quick,
        "repeats": repeats,
        "results": rows,
    }


def _spread(row: dict[str, Any]) -> str:
    low, high = row["value_range"]
    return f"{row['value']:.4g} ({low:.4g}–{high:.4g})"


def format_table(report: dict[str, Any]) -> str:
    """The report as text: one line per workload and method, median with (min–max)."""
    info, peaks = report["machine"], report["peaks"]
    header = (
        f"{info['device_kind']} ({info['backend']}, {info['device_count']} device(s)), "
        f"{info['cpu_model']}, {info['cpu_count']} CPUs, jax {info['jax']}, optax {info['optax']}"
    )
    units = {"us_per_step": "µs/step", "us_per_epoch": "µs/epoch", "models_per_s": "models/s"}
    body = table(
        ["workload", "method", "median (min–max)", "unit", "compile s", "data GB/s", "jgd ×"],
        [
            (
                r["workload"],
                r["method"],
                _spread(r),
                units[r["metric"]],
                "-" if r["compile_s"] is None else r["compile_s"],
                "" if r.get("x_gb_per_s") is None else r["x_gb_per_s"],
                "" if r.get("jgd_speedup") is None else r["jgd_speedup"],
            )
            for r in report["results"]
        ],
    )
    checks = [
        f"{r['workload']}: jgd.fit's loss trace is optax lax.scan's to a relative "
        f"{r['loss_trace_vs_optax_scan']:.1e}"
        for r in report["results"]
        if "loss_trace_vs_optax_scan" in r
    ]
    return "\n".join(
        [
            header,
            f"device peaks: read {peaks['read_gb_per_s']:.3g} GB/s, "
            f"f32 matmul {peaks['matmul_gflop_per_s']:.3g} GFLOP/s",
            f"jgd native kernel: {info.get('jgd_native_kernel', 'not recorded')}",
            f"each figure: median of {report['repeats']} timed calls after a warm-up",
            body,
            "(jgd ×: the method's time over jgd's; above 1 means jgd is faster)",
            *checks,
        ]
    )


def write(report: dict[str, Any], path: str) -> None:
    """Write ``report`` as JSON to ``path`` atomically."""
    atomic_write(path, lambda handle: handle.write(json.dumps(report, indent=2).encode()))
