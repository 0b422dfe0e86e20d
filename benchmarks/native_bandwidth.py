"""jgd's native kernel against XLA at 1,000,000 x 16 float32, beside the machine's read bandwidth.

A full-batch GD step on X (rows x features, float32) has to read X at least
once; the kernel reads it once, XLA's ``jax.value_and_grad`` twice. This prints,
side by side with min / median / max over repeats:

- the machine's read bandwidth: a C loop summing a 1 GB float32 array on every
  core (OpenMP, built here with ``$CC``/``cc``) and a jitted ``jnp.sum`` of it;
- ms per step, steps/s and GB/s of X (its bytes once per step / time) for the
  native kernel (GD steps in one ``lax.scan``), ``jgd.fit`` (the user's path)
  and XLA's autodiff of ``mean((X @ w + b - y) ** 2)`` in the same ``lax.scan``.

Run: python benchmarks/native_bandwidth.py [--rows 1000000] [--features 16]
     [--steps 50] [--repeats 7] [--isa avx2|avx512|generic]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

_READ_LOOP = r"""
/* Sum of p[0:n], n a multiple of 2**16: four vector accumulators per thread. */
typedef float v8 __attribute__((vector_size(32)));
double jgd_read_sum(const float* p, long n) {
  double total = 0.0;
  #pragma omp parallel for reduction(+ : total) schedule(static)
  for (long start = 0; start < n; start += 1 << 16) {
    v8 a = {0}, b = {0}, c = {0}, d = {0}, x, y, z, w;
    for (long i = start; i < start + (1 << 16); i += 32) {
      __builtin_memcpy(&x, p + i, 32);
      __builtin_memcpy(&y, p + i + 8, 32);
      __builtin_memcpy(&z, p + i + 16, 32);
      __builtin_memcpy(&w, p + i + 24, 32);
      a += x; b += y; c += z; d += w;
    }
    a += b + c + d;
    for (int k = 0; k < 8; ++k) total += a[k];
  }
  return total;
}
"""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _read_loop() -> Callable[..., float] | None:
    """The C read loop as a Python function, or None without a C compiler and OpenMP."""
    compiler = shutil.which(os.environ.get("CC") or "cc")
    if compiler is None:
        return None
    folder = Path(tempfile.mkdtemp(prefix="jgd-bandwidth-"))
    (folder / "read.c").write_text(_READ_LOOP)
    flags = ["-O3", "-march=native", "-ffast-math", "-fopenmp", "-shared", "-fPIC"]
    built = subprocess.run(
        [compiler, *flags, str(folder / "read.c"), "-o", str(folder / "read.so")],
        capture_output=True,
        check=False,
    )
    if built.returncode != 0:
        return None
    # Idle OpenMP threads must sleep, not spin: spinning ones would take cores
    # from the XLA runs timed between the read loop's calls.
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    function = ctypes.CDLL(str(folder / "read.so")).jgd_read_sum
    function.restype = ctypes.c_double
    function.argtypes = [ctypes.c_void_p, ctypes.c_long]
    return function


def _times(methods: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each method: one warm-up call, then ``repeats`` rounds.

    Each round calls every method once, so a busy spell on a shared machine
    falls on all of them rather than on one method's repeats.
    """
    for run in methods.values():
        run()
    out: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, run in methods.items():
            start = time.perf_counter()
            run()
            out[name].append(time.perf_counter() - start)
    return out


def _bandwidth(repeats: int) -> dict[str, list[float]]:
    """GB/s reading float32 arrays: the C loop on every core and XLA's jnp.sum.

    1 GB measures memory; 64 MB is X's size at 1M x 16, which the L3 cache
    (32 MB on the EPYC measured) partly holds between steps.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    loop = _read_loop()
    total = jax.jit(jnp.sum)
    methods: dict[str, Callable[[], object]] = {}
    sizes: dict[str, float] = {}
    for label, count in (("1 GB", 2**28), ("64 MB", 2**24)):
        host = np.ones(count, np.float32)
        device = jnp.asarray(host)
        if loop is not None:
            name = f"C read loop, all cores ({label})"
            methods[name] = lambda host=host: loop(host.ctypes.data, host.size)
            sizes[name] = host.nbytes / 1e9
        name = f"XLA jnp.sum ({label})"
        methods[name] = lambda device=device: total(device).block_until_ready()
        sizes[name] = host.nbytes / 1e9
    times = _times(methods, repeats)
    return {name: [sizes[name] / t for t in values] for name, values in times.items()}


def _step_times(rows: int, features: int, steps: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per GD step: the native kernel, jgd.fit and XLA's autodiff."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jgd
    from jgd import _native

    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.normal(size=(rows, features)), jnp.float32)
    y = jnp.asarray(X @ rng.normal(size=features).astype(np.float32) + 0.5, jnp.float32)
    w0, b0, lr = jnp.zeros(features, jnp.float32), jnp.float32(0.0), jnp.float32(0.01)

    def scan(value_and_grad: Callable) -> Callable:
        def body(carry, _):
            w, b = carry
            loss, (gw, gb) = value_and_grad(w, b)
            return (w - lr * gw, b - lr * gb), loss

        return jax.jit(lambda: jax.lax.scan(body, (w0, b0), length=steps))

    def mse(w, b):
        return jnp.mean((X @ w + b - y) ** 2)

    def native(w, b):
        value, gw, gb = _native.linear_mse(w, b, X, y)
        return value, (gw, gb)

    methods = {"XLA autodiff (lax.scan)": scan(jax.value_and_grad(mse, argnums=(0, 1)))}
    if _native.available():
        methods["native kernel (lax.scan)"] = scan(native)
    loss_fn = jgd.objective(jgd.models.linear(features))
    data, start = jgd.Dataset(X, y), loss_fn.model.init(None)
    methods["jgd.fit"] = lambda: jgd.fit(loss_fn, start, data, optimizer=jgd.gd(0.01), epochs=steps)
    blocking = {name: lambda run=run: jax.block_until_ready(run()) for name, run in methods.items()}
    return {name: [t / steps for t in calls] for name, calls in _times(blocking, repeats).items()}


def _spread(values: list[float], scale: float = 1.0) -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid * scale:9.2f}  ({low * scale:.2f}–{high * scale:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--isa", help="force a kernel variant (sets JGD_NATIVE_ISA)")
    args = parser.parse_args()
    if args.isa:
        os.environ["JGD_NATIVE_ISA"] = args.isa
    import jax

    from jgd import _native

    print(f"machine: {_cpu_model()}, {os.cpu_count()} cores, {platform.system()} {sys.version[:7]}")
    print(f"jax {jax.__version__}; native kernel: {_native.status()}")
    bandwidth = _bandwidth(args.repeats)
    print(f"\nread bandwidth, GB/s: median (min–max) of {args.repeats}")
    for name, values in bandwidth.items():
        print(f"  {name:34s} {_spread(values)}")
    memory = [statistics.median(v) for name, v in bandwidth.items() if "1 GB" in name]
    best = max(memory)  # the machine's read bandwidth: the faster reader of 1 GB

    gigabytes = args.rows * args.features * 4 / 1e9
    steps = _step_times(args.rows, args.features, args.steps, args.repeats)
    print(
        f"\n{args.rows:,} x {args.features} float32 ({gigabytes * 1e3:.0f} MB of X), "
        f"{args.steps} full-batch GD steps a call; median (min–max) of {args.repeats} calls"
    )
    header = f"  {'method':28s} {'ms/step':>24s} {'steps/s':>8s} {'GB/s of X':>10s}"
    print(f"{header} {'% of 1 GB read':>14s}")
    for name, values in steps.items():
        median = statistics.median(values)
        rate = gigabytes / median
        print(
            f"  {name:28s} {_spread(values, 1e3)} {1 / median:8.0f} {rate:10.1f} "
            f"{100 * rate / best:13.0f}%"
        )
    xla = statistics.median(steps["XLA autodiff (lax.scan)"])
    for name in ("native kernel (lax.scan)", "jgd.fit"):
        if name in steps:
            print(f"  {name}: {xla / statistics.median(steps[name]):.2f}x XLA autodiff")


if __name__ == "__main__":
    main()
