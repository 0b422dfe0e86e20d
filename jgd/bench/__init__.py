"""``jgd.bench``: time jgd against the optax idioms, on your workload or the standard ones.

- ``time_workload(loss_fn, params, data, optimizer, epochs=..., batch_size=...)``
  times any training run with ``jgd.fit``, a jitted optax step in a Python
  loop and optax in one ``lax.scan``: ≥ 5 repeats (min, median, max), compile
  time measured apart, steps/s, samples/s, GB/s and GFLOP/s beside the
  device's own read bandwidth and matmul rate (``device_peaks``).
- ``run()`` / ``jgd bench`` time the standard suite (linear GD, learning-rate
  sweeps, mini-batch MLPs) against optax, NumPy and, when installed, PyTorch
  and scikit-learn; ``jgd bench --workload {linear,mlp,softmax}`` times one
  built-in workload at the sizes you give.
- ``machine()`` records what it ran on: CPU model and cores, accelerator name,
  memory and driver, jax/jaxlib/CUDA versions.
"""

from jgd._timing import Timing
from jgd.bench._cli import BUILTIN_WORKLOADS, Builtin, add_arguments, builtin, command, main
from jgd.bench._machine import DevicePeaks, accelerator, cpu, device_peaks, machine
from jgd.bench._suite import WORKLOADS, Sizes, format_table, run, write
from jgd.bench._workload import MethodTiming, WorkloadTiming, time_workload

__all__ = [
    "BUILTIN_WORKLOADS",
    "WORKLOADS",
    "Builtin",
    "DevicePeaks",
    "MethodTiming",
    "Sizes",
    "Timing",
    "WorkloadTiming",
    "accelerator",
    "add_arguments",
    "builtin",
    "command",
    "cpu",
    "device_peaks",
    "format_table",
    "machine",
    "main",
    "run",
    "time_workload",
    "write",
]
