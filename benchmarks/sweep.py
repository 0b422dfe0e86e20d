"""Learning-rate sweep: jgd.sweep vs sequential jgd.fit vs the usual vmap recipes.

256 learning rates, linear regression N=10,000, D=10, 500 full-batch epochs, float32;
plus a 64-member MLP sweep. Run: ``python benchmarks/sweep.py [--quick]``.
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


def problem(n: int, d: int) -> jgd.Dataset:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X @ rng.normal(size=d) + 0.1 * rng.normal(size=n)).astype(np.float32)
    return jgd.Dataset(jnp.asarray(X), jnp.asarray(y))


def mse(params, X, y):
    return jnp.mean((X @ params["w"] + params["b"] - y) ** 2)


def methods(data: jgd.Dataset, rates: np.ndarray, epochs: int):
    loss_fn = jgd.objective(jgd.models.linear(data.n_features), jgd.losses.mse)
    start = loss_fn.model.init(None)
    rates_array = jnp.asarray(rates, jnp.float32)

    def jgd_sweep():
        result = jgd.sweep(
            loss_fn, start, data, optimizer=jgd.gd, grid={"learning_rate": rates}, epochs=epochs
        )
        return _harness.block(result.params)

    def sequential():
        out = [
            jgd.fit(loss_fn, start, data, optimizer=jgd.gd(float(lr)), epochs=epochs).params
            for lr in rates
        ]
        return _harness.block(out)

    def scan_run(learning_rate, optimizer_factory):
        optimizer = optimizer_factory(learning_rate)

        def step(carry, _):
            params, state = carry
            loss, grads = jax.value_and_grad(mse)(params, data.X, data.y)
            updates, state = optimizer.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), loss

        params = {"w": jnp.zeros(data.n_features), "b": jnp.zeros(())}
        (params, _), losses = jax.lax.scan(step, (params, optimizer.init(params)), length=epochs)
        return params, losses

    vmap_scan = jax.jit(jax.vmap(lambda lr: scan_run(lr, optax.sgd)))

    def inject(lr):
        return optax.inject_hyperparams(optax.sgd)(learning_rate=lr)

    vmap_inject = jax.jit(jax.vmap(lambda lr: scan_run(lr, inject)))
    return {
        "jgd.sweep": jgd_sweep,
        "sequential jgd.fit": sequential,
        "vmap(optax scan)": lambda: _harness.block(vmap_scan(rates_array)),
        "vmap(inject_hyperparams scan)": lambda: _harness.block(vmap_inject(rates_array)),
    }


def mlp_sweep(members: int, epochs: int):
    rng = np.random.default_rng(1)
    X = rng.uniform(-2, 2, size=(2_000, 8)).astype(np.float32)
    y = np.sin(X[:, 0]) * np.cos(X[:, 1]) + 0.1 * X[:, 2:].sum(axis=1)
    data = jgd.Dataset(jnp.asarray(X), jnp.asarray(y, jnp.float32))
    model = jgd.models.mlp([8, 32, 32, 1])
    loss_fn = jgd.objective(model, jgd.losses.mse)
    start = model.init(jax.random.key(0))
    rates = np.geomspace(1e-3, 1.0, members)

    def run():
        result = jgd.sweep(
            loss_fn,
            start,
            data,
            optimizer=jgd.momentum,
            grid={"learning_rate": rates},
            epochs=epochs,
            batch_size=256,
            key=jax.random.key(0),
        )
        return _harness.block(result.params)

    def sequential():
        return _harness.block(
            [
                jgd.fit(
                    loss_fn,
                    start,
                    data,
                    optimizer=jgd.momentum(float(lr)),
                    epochs=epochs,
                    batch_size=256,
                    key=jax.random.key(0),
                ).params
                for lr in rates
            ]
        )

    return {"jgd.sweep (MLP)": run, "sequential jgd.fit (MLP)": sequential}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/sweep.json")
    args = parser.parse_args()
    members, epochs, repeats = (64, 100, 1) if args.quick else (256, 500, 3)
    data = problem(10_000, 10)
    rates = np.geomspace(1e-4, 0.5, members)
    rows = []
    for workload, suite, count, runs in (
        (
            f"linear N=10,000 D=10, {members} lrs, {epochs} epochs",
            methods(data, rates, epochs),
            members,
            repeats,
        ),
        (
            f"MLP 8-32-32-1, N=2,000, 64 lrs, {epochs // 5} epochs, batch 256",
            mlp_sweep(64, epochs // 5),
            64,
            1,
        ),
    ):
        for name, function in suite.items():
            first = _harness.first_call_seconds(function)
            best = _harness.seconds(function, runs)
            rows.append(
                {
                    "workload": workload,
                    "method": name,
                    "members": count,
                    "run_s": best,
                    "compile_s": max(first - best, 0.0),
                    "models_per_s": count / best,
                }
            )
    for row in rows:
        base = next(r for r in rows if r["workload"] == row["workload"])
        row["speedup_of_jgd"] = base["models_per_s"] / row["models_per_s"]
    info = _harness.machine()
    print(f"{info['device_kind']} ({info['backend']}), {info['cpu_count']} CPUs, jax {info['jax']}")
    print(
        table(
            ["workload", "method", "run s", "compile s", "models/s", "jgd ×"],
            [
                (
                    r["workload"],
                    r["method"],
                    r["run_s"],
                    r["compile_s"],
                    r["models_per_s"],
                    r["speedup_of_jgd"],
                )
                for r in rows
            ],
        )
    )
    _harness.write_json(args.out, {"machine": info, "results": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
