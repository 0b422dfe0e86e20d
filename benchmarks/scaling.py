"""Data-parallel scaling of jgd.fit(mesh="auto") over 1, 2, 4, 8 (forced) CPU devices.

Each device count runs in its own process (XLA_FLAGS=--xla_force_host_platform_device_count=K).
On a CPU these "devices" share the machine's cores, so this measures the overhead
and the core-level parallelism of the sharded program, not extra hardware.
Run: python benchmarks/scaling.py [--rows 1000000] [--epochs 20]
"""

import argparse
import json
import os
import subprocess
import sys

WORKER = """
import json, sys, time, jax, numpy as np, jgd
rows, features, epochs = (int(v) for v in sys.argv[1:4])
rng = np.random.default_rng(0)
X = rng.normal(size=(rows, features)).astype(np.float32)
y = (X @ rng.normal(size=features)).astype(np.float32)
mesh = jgd.distributed.data_mesh("auto")
data = jgd.data.shard(jgd.Dataset(X, y), mesh)
loss = jgd.objective(jgd.models.linear(features), jgd.losses.mse)
start = loss.model.init(None)
run = lambda: jax.block_until_ready(
    jgd.fit(loss, start, data, optimizer=jgd.gd(0.01), epochs=epochs, mesh=mesh).params)
t0 = time.perf_counter(); run(); first = time.perf_counter() - t0
best = min((lambda t: (run(), time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(3))
print(json.dumps({"devices": jax.device_count(), "us_per_step": best / epochs * 1e6,
                  "compile_s": first - best, "device_kind": jax.devices()[0].device_kind}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--devices", default="1,2,4,8")
    args = parser.parse_args()
    results = []
    for count in (int(c) for c in args.devices.split(",")):
        env = {
            **os.environ,
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={count}",
            "JAX_PLATFORMS": "cpu",
        }
        out = subprocess.run(
            [sys.executable, "-c", WORKER, str(args.rows), str(args.features), str(args.epochs)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    base = results[0]["us_per_step"]
    print(f"linear GD N={args.rows:,} D={args.features}, full batch, {os.cpu_count()} CPU cores")
    print(f"{'devices':>8} {'µs/step':>10} {'speed-up':>9} {'compile s':>10}")
    for r in results:
        print(
            f"{r['devices']:>8} {r['us_per_step']:>10.0f} {base / r['us_per_step']:>9.2f} "
            f"{r['compile_s']:>10.2f}"
        )


if __name__ == "__main__":
    main()
