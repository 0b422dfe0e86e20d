"""``jgd bench``: time the standard workloads on whatever backend JAX sees.

Every workload is timed side by side in one run: jgd, a jitted optax step in a
Python for-loop, optax inside one ``lax.scan``, NumPy from scratch, and, when
installed, PyTorch CPU and scikit-learn. Each method is warmed up first (its
compile time is reported apart), JAX results are blocked on, and the best of a
few repeats is kept. The table is printed and JSON (with the machine, device
and library versions) is written atomically.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jgd import _native, losses, models
from jgd._io import atomic_write
from jgd._text import table
from jgd.data import Dataset
from jgd.optimizers import gd, momentum
from jgd.sweeps import sweep
from jgd.training import fit

__all__ = ["machine", "main", "run"]

Runner = Callable[[], Any]


# ----------------------------------------------------------------- timing


def _seconds(function: Runner, repeats: int) -> tuple[float, float]:
    """(first call, best of ``repeats`` later calls) in seconds."""
    start = time.perf_counter()
    function()
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return first, best


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    device = jax.devices()[0]
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "backend": jax.default_backend(),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": getattr(jax.lib, "__version__", jax.__version__),
        "optax": optax.__version__,
        "numpy": np.__version__,
        # Whether jgd's one-pass CPU kernels for linear MSE are in use, and why (jgd/_native).
        "jgd_native_kernel": _native.status(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        pass
    return info


def _block(value: Any) -> Any:
    return jax.block_until_ready(value)


def _regression(n: int, d: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X @ rng.normal(size=d) + 0.1 * rng.normal(size=n)).astype(np.float32)
    return Dataset(jnp.asarray(X), jnp.asarray(y))


# ------------------------------------------------- 1. full-batch linear GD

_LINEAR_LR = 0.01


def _linear_mse(params, X, y):
    return jnp.mean((X @ params["w"] + params["b"] - y) ** 2)


def _linear_methods(data: Dataset, epochs: int) -> tuple[dict[str, Runner], Callable[[], float]]:
    """The timed methods, and a check that jgd's loss trace is optax's (max relative gap)."""
    d = data.n_features
    loss_fn = losses.objective(models.linear(d), losses.mse)
    start = loss_fn.model.init(None)
    sgd = optax.sgd(_LINEAR_LR)

    def optax_step(params, state, X, y):
        loss, grads = jax.value_and_grad(_linear_mse)(params, X, y)
        updates, state = sgd.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    step = jax.jit(optax_step)

    def loop():
        params, state, trace = start, sgd.init(start), []
        for _ in range(epochs):
            params, state, loss = step(params, state, data.X, data.y)
            trace.append(loss)
        return _block((params, trace))

    @jax.jit
    def scanned(X, y):
        def body(carry, _):
            params, state, loss = optax_step(*carry, X, y)
            return (params, state), loss

        return jax.lax.scan(body, (start, sgd.init(start)), length=epochs)

    X_np, y_np = np.asarray(data.X), np.asarray(data.y)

    def numpy_gd():
        w, b, n, trace = np.zeros(d, np.float32), np.float32(0), len(y_np), []
        scale = np.float32(_LINEAR_LR * 2 / n)
        for _ in range(epochs):
            error = X_np @ w + b - y_np
            trace.append(float(np.mean(error**2)))
            w = w - scale * (X_np.T @ error)
            b = b - scale * error.sum()
        return w, b

    methods = {
        "jgd.fit": lambda: _block(
            fit(loss_fn, start, data, optimizer=gd(_LINEAR_LR), epochs=epochs).params
        ),
        "optax python loop": loop,
        "optax lax.scan": lambda: _block(scanned(data.X, data.y)),
        "numpy": numpy_gd,
    }
    torch = _torch()
    if torch is not None:
        X_t, y_t = torch.from_numpy(X_np), torch.from_numpy(y_np)

        def torch_gd():
            w = torch.zeros(d, requires_grad=True)
            b = torch.zeros((), requires_grad=True)
            optimizer = torch.optim.SGD([w, b], lr=_LINEAR_LR)
            for _ in range(epochs):
                optimizer.zero_grad()
                loss = torch.mean((X_t @ w + b - y_t) ** 2)
                loss.backward()
                optimizer.step()
            return w.detach().numpy()

        methods["torch (loss.backward loop)"] = torch_gd

    def agreement() -> float:
        ours = fit(loss_fn, start, data, optimizer=gd(_LINEAR_LR), epochs=epochs).history.loss
        theirs = scanned(data.X, data.y)[1]
        return float(jnp.max(jnp.abs(ours - theirs) / jnp.abs(theirs)))

    return methods, agreement


def _sklearn_epoch(data: Dataset) -> Runner | None:
    try:
        from sklearn.linear_model import SGDRegressor
    except ImportError:
        return None
    X, y = np.asarray(data.X), np.asarray(data.y)

    def one_epoch():
        SGDRegressor(max_iter=1, tol=None, learning_rate="constant", eta0=1e-3).fit(X, y)

    return one_epoch


def _linear(quick: bool, repeats: int) -> list[dict[str, Any]]:
    sizes = (
        [(1_000, 2, 300), (100_000, 10, 10)]
        if quick
        else [
            (1_000, 2, 5_000),
            (100_000, 10, 200),
            (1_000_000, 16, 20),
        ]
    )
    rows = []
    for n, d, epochs in sizes:
        data = _regression(n, d)
        workload = f"linear GD N={n:,} D={d}"
        methods, agreement = _linear_methods(data, epochs)
        for name, runner in methods.items():
            first, best = _seconds(runner, repeats)
            per_step = best / epochs
            rows.append(
                {
                    "workload": workload,
                    "method": name,
                    "metric": "us_per_step",
                    "value": per_step * 1e6,
                    "compile_s": max(first - best, 0.0),
                    "x_gb_per_s": n * d * 4 / per_step / 1e9,
                    "steps": epochs,
                }
            )
        # Same trajectory, not only the same speed: jgd's per-epoch losses
        # against the optax scan's (plain autodiff), largest relative gap.
        jgd_row = next(r for r in rows if r["workload"] == workload and r["method"] == "jgd.fit")
        jgd_row["loss_trace_vs_optax_scan"] = agreement()
        sklearn_epoch = _sklearn_epoch(data) if n <= 100_000 else None
        if sklearn_epoch is not None:
            first, best = _seconds(sklearn_epoch, repeats)
            rows.append(
                {
                    "workload": workload,
                    "method": "sklearn SGDRegressor (1 epoch of per-sample SGD)",
                    "metric": "us_per_epoch",
                    "value": best * 1e6,
                    "compile_s": 0.0,
                    "steps": n,
                }
            )
    return rows


# --------------------------------------------------------- 2. LR sweep


def _sweep(quick: bool, repeats: int) -> list[dict[str, Any]]:
    members, epochs = (32, 50) if quick else (256, 500)
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

    vmap_scan = jax.jit(jax.vmap(lambda lr: scan_run(lr, optax.sgd)))
    injected = jax.jit(jax.vmap(lambda lr: scan_run(lr, optax.inject_hyperparams(optax.sgd))))
    methods = {
        "jgd.sweep": lambda: _block(
            sweep(
                loss_fn, start, data, optimizer=gd, grid={"learning_rate": rates}, epochs=epochs
            ).params
        ),
        "sequential jgd.fit": lambda: _block(
            [fit(loss_fn, start, data, optimizer=gd(float(r)), epochs=epochs).params for r in rates]
        ),
        "vmap(optax lax.scan)": lambda: _block(vmap_scan(lr_array)),
        "vmap(inject_hyperparams scan)": lambda: _block(injected(lr_array)),
    }
    workload = f"sweep {members} lrs, linear N=10,000 D=10, {epochs} epochs"
    rows = _time_sweep(workload, methods, members, repeats)
    rows += _mlp_sweep(quick)
    return rows


def _time_sweep(
    workload: str, methods: dict[str, Runner], members: int, repeats: int
) -> list[dict[str, Any]]:
    rows = []
    for name, runner in methods.items():
        first, best = _seconds(runner, 1 if name.startswith("sequential") else repeats)
        rows.append(
            {
                "workload": workload,
                "method": name,
                "metric": "models_per_s",
                "value": members / best,
                "compile_s": max(first - best, 0.0),
            }
        )
    return rows


def _mlp_sweep(quick: bool) -> list[dict[str, Any]]:
    """64 learning rates of an 8-32-32-1 MLP, mini-batch momentum, vs 64 sequential fits."""
    members, epochs = (16, 2) if quick else (64, 20)
    data = _mlp_data(2_000)
    model = models.mlp([8, 32, 32, 1])
    loss_fn = losses.objective(model, losses.mse)
    start = model.init(jax.random.key(0))
    rates = np.geomspace(1e-3, 0.3, members)
    common = dict(epochs=epochs, batch_size=_BATCH, key=jax.random.key(0))
    methods = {
        "jgd.sweep (MLP)": lambda: _block(
            sweep(
                loss_fn, start, data, optimizer=momentum, grid={"learning_rate": rates}, **common
            ).params
        ),
        "sequential jgd.fit (MLP)": lambda: _block(
            [
                fit(loss_fn, start, data, optimizer=momentum(float(r)), **common).params
                for r in rates
            ]
        ),
    }
    workload = f"sweep {members} lrs, MLP 8-32-32-1, N=2,000, batch {_BATCH}, {epochs} epochs"
    return _time_sweep(workload, methods, members, 1)


# ------------------------------------------------------- 3. mini-batch MLP

_MLP_SIZES = (8, 64, 64, 1)
_BATCH = 128


def _mlp_data(n: int) -> Dataset:
    rng = np.random.default_rng(2)
    X = rng.uniform(-2, 2, size=(n, 8)).astype(np.float32)
    y = (np.sin(X[:, 0]) * np.cos(X[:, 1]) + 0.1 * X[:, 2:].sum(axis=1)).astype(np.float32)
    return Dataset(jnp.asarray(X), jnp.asarray(y))


def _mlp_methods(data: Dataset, epochs: int, kind: str) -> dict[str, Runner]:
    model = models.mlp(list(_MLP_SIZES))
    loss_fn = losses.objective(model, losses.mse)
    start = model.init(jax.random.key(0))
    n = data.n_rows
    make = (lambda: optax.adam(1e-3)) if kind == "adam" else (lambda: optax.sgd(0.01, momentum=0.9))
    ours = optax.adam(1e-3) if kind == "adam" else momentum(0.01, beta=0.9)
    opt = make()

    def optax_step(params, state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    step = jax.jit(optax_step)

    def loop():
        params, state = start, opt.init(start)
        rng = np.random.default_rng(0)
        for _ in range(epochs):
            order = rng.permutation(n)
            for i in range(0, n, _BATCH):
                rows = order[i : i + _BATCH]
                params, state, _ = step(params, state, Dataset(data.X[rows], data.y[rows]))
        return _block(params)

    full, rest = divmod(n, _BATCH)

    @jax.jit
    def scanned(key):
        def epoch(carry, e):
            order = jax.random.permutation(jax.random.fold_in(key, e), n)

            def batch_step(carry, rows):
                params, state, _ = optax_step(*carry, jax.tree.map(lambda a: a[rows], data))
                return (params, state), None

            carry, _ = jax.lax.scan(batch_step, carry, order[: full * _BATCH].reshape(full, _BATCH))
            if rest:
                carry, _ = batch_step(carry, order[full * _BATCH :])
            return carry, None

        return jax.lax.scan(epoch, (start, opt.init(start)), jnp.arange(epochs))[0]

    methods = {
        "jgd.fit": lambda: _block(
            fit(
                loss_fn,
                start,
                data,
                optimizer=ours,
                epochs=epochs,
                batch_size=_BATCH,
                key=jax.random.key(0),
            ).params
        ),
        "optax python loop": loop,
        "optax lax.scan": lambda: _block(scanned(jax.random.key(0))),
        "numpy": _numpy_mlp(data, start, epochs, kind),
    }
    torch_runner = _torch_mlp(data, start, epochs, kind)
    if torch_runner is not None:
        methods["torch (loss.backward loop)"] = torch_runner
    return methods


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


def _mlp(quick: bool, repeats: int) -> list[dict[str, Any]]:
    n, epochs = (10_000, 2) if quick else (10_000, 20)
    data = _mlp_data(n)
    steps = epochs * -(-n // _BATCH)
    rows = []
    for kind in ("adam", "momentum"):
        workload = f"MLP 8-64-64-1 {kind}, batch {_BATCH}, {epochs} epochs, N={n:,}"
        for name, runner in _mlp_methods(data, epochs, kind).items():
            first, best = _seconds(runner, repeats)
            rows.append(
                {
                    "workload": workload,
                    "method": name,
                    "metric": "us_per_step",
                    "value": best / steps * 1e6,
                    "compile_s": max(first - best, 0.0),
                    "steps": steps,
                }
            )
    return rows


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


def run(quick: bool = False, only: Sequence[str] | None = None) -> dict[str, Any]:
    """Time the workloads; returns ``{"machine": ..., "results": [...]}``."""
    chosen = list(WORKLOADS) if not only else list(only)
    for name in chosen:
        if name not in WORKLOADS:
            raise ValueError(f"unknown workload {name!r}; choose from {list(WORKLOADS)}.")
    repeats = 1 if quick else 3
    rows = [row for name in chosen for row in WORKLOADS[name](quick, repeats)]
    _ratios(rows)
    return {"machine": machine(), "quick": quick, "results": rows}


def format_table(report: dict[str, Any]) -> str:
    info = report["machine"]
    header = (
        f"{info['device_kind']} ({info['backend']}, {info['device_count']} device(s)), "
        f"{info['cpu_count']} CPUs, jax {info['jax']}, optax {info['optax']}"
    )
    units = {"us_per_step": "µs/step", "us_per_epoch": "µs/epoch", "models_per_s": "models/s"}
    body = table(
        ["workload", "method", "value", "unit", "compile s", "X GB/s", "jgd ×"],
        [
            (
                r["workload"],
                r["method"],
                r["value"],
                units[r["metric"]],
                r["compile_s"],
                r.get("x_gb_per_s", "") if r.get("x_gb_per_s") is None else r["x_gb_per_s"],
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
            f"jgd native kernel: {info.get('jgd_native_kernel', 'not recorded')}",
            body,
            "(jgd ×: the method's time over jgd's; above 1 means jgd is faster)",
            *checks,
        ]
    )


def write(report: dict[str, Any], path: str) -> None:
    atomic_write(path, lambda handle: handle.write(json.dumps(report, indent=2).encode()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jgd bench", description=__doc__)
    add_arguments(parser)
    return command(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small sizes: under a minute")
    parser.add_argument(
        "--only", default=None, help=f"comma-separated workloads from {','.join(WORKLOADS)}"
    )
    parser.add_argument("--out", default="jgd-bench.json", help="JSON output path")


def command(args: argparse.Namespace) -> int:
    only = [name.strip() for name in args.only.split(",")] if args.only else None
    report = run(quick=args.quick, only=only)
    print(format_table(report))
    write(report, args.out)
    print(f"wrote {args.out}")
    return 0
