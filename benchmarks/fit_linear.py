"""Full-batch linear-regression GD: jgd.fit vs a Python loop of a jitted optax step vs NumPy.

Run: ``python benchmarks/fit_linear.py [--quick] [--out benchmarks/results/fit_linear.json]``.
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(__file__))
import _harness

import jgd
from jgd._text import table

LEARNING_RATE = 0.01


def problem(n: int, d: int) -> jgd.Dataset:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X @ rng.normal(size=d) + 0.1 * rng.normal(size=n)).astype(np.float32)
    return jgd.Dataset(jnp.asarray(X), jnp.asarray(y))


def run_jgd(data: jgd.Dataset, epochs: int):
    model = jgd.models.linear(data.n_features)
    loss_fn = jgd.objective(model, jgd.losses.mse)
    params = model.init(None)
    return lambda: _harness.block(
        jgd.fit(loss_fn, params, data, optimizer=jgd.gd(LEARNING_RATE), epochs=epochs).params
    )


def run_optax_loop(data: jgd.Dataset, epochs: int):
    """The common way: a jitted optax step called from a Python for-loop."""
    optimizer = optax.sgd(LEARNING_RATE)

    def loss_fn(params, X, y):
        return jnp.mean((X @ params["w"] + params["b"] - y) ** 2)

    @jax.jit
    def step(params, state, X, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, X, y)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    def run():
        params = {"w": jnp.zeros(data.n_features), "b": jnp.zeros(())}
        state = optimizer.init(params)
        losses = []
        for _ in range(epochs):
            params, state, loss = step(params, state, data.X, data.y)
            losses.append(loss)
        return _harness.block((params, losses))

    return run


def run_numpy(data: jgd.Dataset, epochs: int):
    X, y = np.asarray(data.X), np.asarray(data.y)
    n = X.shape[0]

    def run():
        w = np.zeros(X.shape[1], np.float32)
        b = np.float32(0.0)
        losses = []
        for _ in range(epochs):
            error = X @ w + b - y
            losses.append(np.mean(error**2))
            w = w - np.float32(LEARNING_RATE * 2 / n) * (X.T @ error)
            b = b - np.float32(LEARNING_RATE * 2 / n) * error.sum()
        return w, b, losses

    return run


def measure(n: int, d: int, epochs: int, repeats: int) -> list[dict]:
    data = problem(n, d)
    rows = []
    for name, build in (
        ("jgd.fit", run_jgd),
        ("optax python loop", run_optax_loop),
        ("numpy", run_numpy),
    ):
        function = build(data, epochs)
        first = _harness.first_call_seconds(function)
        best = _harness.seconds(function, repeats)
        rows.append(
            {
                "workload": f"N={n:,} D={d}",
                "method": name,
                "epochs": epochs,
                "us_per_step": best / epochs * 1e6,
                "compile_s": max(first - best, 0.0) if name != "numpy" else 0.0,
            }
        )
    base = rows[0]["us_per_step"]
    for row in rows:
        row["slowdown_vs_jgd"] = row["us_per_step"] / base
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer epochs and repeats")
    parser.add_argument("--out", default="benchmarks/results/fit_linear.json")
    args = parser.parse_args()
    repeats = 2 if args.quick else 5
    sizes = [(1_000, 2, 500 if args.quick else 5_000), (100_000, 10, 20 if args.quick else 200)]
    rows = [row for n, d, epochs in sizes for row in measure(n, d, epochs, repeats)]
    info = _harness.machine()
    print(f"{info['device_kind']} ({info['backend']}), {info['cpu_count']} CPUs, jax {info['jax']}")
    print(
        table(
            ["workload", "method", "µs/step", "compile s", "× jgd time"],
            [
                (r["workload"], r["method"], r["us_per_step"], r["compile_s"], r["slowdown_vs_jgd"])
                for r in rows
            ],
        )
    )
    _harness.write_json(args.out, {"machine": info, "results": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
