"""Time jgd's standard workloads in two source trees, interleaved, in one run.

Usage: python benchmarks/before_after.py OLD_TREE NEW_TREE [--rounds 5] [--out FILE.json]

Each round runs every workload once per tree, alternating which tree goes first, each in
a fresh process that imports jgd from that tree (PYTHONPATH). Inside a process a workload
is compiled and warmed up first, then timed ``repeats`` times with block_until_ready; the
process reports its median. The table gives, per tree, the median over rounds and the
spread (min-max), and the ratio new/old. Only public API that both trees have is used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

WORKLOAD = r"""
import json, sys, time
import jax, jax.numpy as jnp, numpy as np, optax, jgd
name = sys.argv[1]
rng = np.random.default_rng(0)
def regression(n, d):
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X @ rng.normal(size=d) + 0.5).astype(np.float32)
    return jgd.Dataset(jnp.asarray(X), jnp.asarray(y))
if name.startswith("fit_"):
    n, d, epochs = {"fit_1000x2_1epoch": (1000, 2, 1), "fit_1000x2_300": (1000, 2, 300),
                    "fit_100000x10_100": (100_000, 10, 100),
                    "fit_1000000x16_20": (1_000_000, 16, 20)}[name]
    data = regression(n, d)
    loss_fn = jgd.objective(jgd.models.linear(d))
    start, opt = loss_fn.model.init(None), jgd.gd(0.1)
    run = lambda: jgd.fit(loss_fn, start, data, optimizer=opt, epochs=epochs).params
    repeats, per = (300, 1) if epochs == 1 else (20, epochs)
elif name == "mlp_momentum_minibatch":
    data = regression(10_000, 8)
    loss_fn = jgd.objective(jgd.models.mlp([8, 64, 64, 1]))
    start, opt = loss_fn.model.init(jax.random.key(0)), jgd.momentum(0.01)
    run = lambda: jgd.fit(loss_fn, start, data, optimizer=opt, epochs=3, batch_size=128,
                          key=jax.random.key(0)).params
    repeats, per = 10, 3 * 79
elif name == "mlp_adam_minibatch":
    data = regression(10_000, 8)
    loss_fn = jgd.objective(jgd.models.mlp([8, 64, 64, 1]))
    start, opt = loss_fn.model.init(jax.random.key(0)), optax.adam(1e-3)
    run = lambda: jgd.fit(loss_fn, start, data, optimizer=opt, epochs=3, batch_size=128,
                          key=jax.random.key(0)).params
    repeats, per = 10, 3 * 79
elif name == "sweep_mlp_128_lr":
    # Long enough (~1 s) to run in chunks, so the new code trains it in member blocks.
    data = regression(3_000, 8)
    loss_fn = jgd.objective(jgd.models.mlp([8, 16, 1]))
    grid = {"learning_rate": jnp.geomspace(1e-3, 0.05, 128)}
    start = loss_fn.model.init(jax.random.key(0))
    run = lambda: jgd.sweep(loss_fn, start, data, optimizer=jgd.momentum, grid=grid, epochs=64,
                            batch_size=256, key=jax.random.key(0)).params
    repeats, per = 3, 64
elif name == "sweep_256_lr":
    data = regression(10_000, 10)
    loss_fn = jgd.objective(jgd.models.linear(10))
    grid = {"learning_rate": jnp.geomspace(1e-3, 1.0, 256)}
    run = lambda: jgd.sweep(loss_fn, loss_fn.model.init(None), data, optimizer=jgd.gd,
                            grid=grid, epochs=50).params
    repeats, per = 5, 50
jax.block_until_ready(run()); jax.block_until_ready(run())
times = []
for _ in range(repeats):
    t = time.perf_counter(); jax.block_until_ready(run()); times.append(time.perf_counter() - t)
print(json.dumps({"median_us": 1e6 * float(np.median(times)), "per": per}))
"""

NAMES = [
    "fit_1000x2_1epoch",
    "fit_1000x2_300",
    "fit_100000x10_100",
    "fit_1000000x16_20",
    "mlp_momentum_minibatch",
    "mlp_adam_minibatch",
    "sweep_256_lr",
    "sweep_mlp_128_lr",
]


def _run(tree: str, name: str) -> float:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(tree), "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-c", WORKLOAD, name],
        capture_output=True,
        text=True,
        env=env,
        cwd=os.path.abspath(tree),
        check=True,
        timeout=900,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["median_us"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default=",".join(NAMES))
    parser.add_argument("--out")
    args = parser.parse_args()
    names = args.only.split(",")
    results: dict[str, dict[str, list[float]]] = {n: {"old": [], "new": []} for n in names}
    for round_ in range(args.rounds):
        for name in names:
            order = ("old", "new") if round_ % 2 == 0 else ("new", "old")
            for which in order:
                results[name][which].append(_run(getattr(args, which), name))
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(
        f"{'workload':26s} {'old median µs (min-max)':>30s} {'new median µs (min-max)':>30s} "
        f"{'new/old':>8s}"
    )
    for name in names:
        old, new = results[name]["old"], results[name]["new"]

        def cell(values: list[float]) -> str:
            return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"

        ratio = statistics.median(new) / statistics.median(old)
        print(f"{name:26s} {cell(old):>30s} {cell(new):>30s} {ratio:8.2f}")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
