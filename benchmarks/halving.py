"""Successive halving against the full grid: a 729-configuration MLP sweep, in one run.

Usage: python benchmarks/halving.py [--epochs 81] [--min-epochs 3] [--repeats 2]

All sweeps train the same grid (27 learning rates x 27 momentum values) of a small MLP on
the same data with the same mini-batches; the full grid trains every member for every epoch
(by default compacting diverged members away, and once with ``compact=False``), halving
(eta=3) keeps the best third by validation loss at each rung. Printed: wall time of
each (median of repeats, compile included; and
a second call, programs cached), the best validation loss each found, and the ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import numpy as np
from _sweep_problem import mlp_regression

import jgd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=81)
    parser.add_argument("--min-epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    train, val, model = mlp_regression()
    loss_fn = jgd.objective(model)
    grid = {
        "learning_rate": np.geomspace(1e-3, 1.0, 27).astype(np.float32),
        "beta": np.linspace(0.0, 0.95, 27).astype(np.float32),
    }
    kwargs = dict(
        optimizer=jgd.momentum,
        grid=grid,
        epochs=args.epochs,
        val_data=val,
        batch_size=256,
        key=jax.random.key(0),
        stability_bound=False,
    )
    start = model.init(jax.random.key(1))
    runs = {
        "full, no compaction": lambda: jgd.sweep(loss_fn, start, train, compact=False, **kwargs),
        "full grid": lambda: jgd.sweep(loss_fn, start, train, **kwargs),
        "halving": lambda: jgd.sweep(
            loss_fn, start, train, halving=jgd.Halving(3, args.min_epochs), **kwargs
        ),
    }
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__}, backend {jax.default_backend()}"
    )
    print(f"729 members, MLP [8, 16, 1], 2,400 rows, batch 256, {args.epochs} epochs")
    results = {}
    for name, run in runs.items():
        times, best = [], None
        for _ in range(args.repeats):
            begin = time.perf_counter()
            result = run()
            jax.block_until_ready(result.params)
            times.append(time.perf_counter() - begin)
            best = float(result.final_val_loss[result.best().index])
        results[name] = (times, best)
        print(
            f"{name:19s} first call {times[0]:7.2f} s, cached {min(times[1:] or times):7.2f} s, "
            f"best val loss {best:.5f}"
        )
    halved = results["halving"]
    for name in ("full grid", "full, no compaction"):
        full = results[name]
        print(
            f"halving vs {name}: {full[0][0] / halved[0][0]:.2f}x first call, "
            f"{min(full[0][1:] or full[0]) / min(halved[0][1:] or halved[0]):.2f}x cached; "
            f"best val loss ratio {halved[1] / full[1]:.4f}"
        )


if __name__ == "__main__":
    main()
