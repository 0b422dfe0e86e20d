"""What the figures were measured on, and what that device can do at best.

``machine()`` names the CPU (model and cores), the accelerator (name, memory,
driver) and the library versions; ``device_peaks()`` measures the device's own
read bandwidth and f32 matmul rate, once per process, so that every achieved
figure can be read against them.
"""

from __future__ import annotations

import datetime
import functools
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jgd import _native
from jgd._timing import aot, measure

__all__ = ["DevicePeaks", "accelerator", "cpu", "device_peaks", "machine"]

_MiB = 1 << 20


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def _cpuinfo_values(lines: list[str], field: str) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in lines if line.split(":")[0].strip() == field]


def cpu() -> dict[str, Any]:
    """The CPU's model name, logical CPUs, physical cores (None where unknown) and CPUs usable here.

    Read from /proc/cpuinfo (no lscpu needed), else ``platform.processor()``.

    Example:
        >>> info = cpu()
        >>> info["cpu_count"] >= 1 and bool(info["cpu_model"])
        True
    """
    lines = _cpuinfo()
    models = _cpuinfo_values(lines, "model name")
    # Physical cores: "cpu cores" per package times the number of packages.
    per_package = _cpuinfo_values(lines, "cpu cores")
    packages = set(_cpuinfo_values(lines, "physical id"))
    cores = int(per_package[0]) * max(len(packages), 1) if per_package else None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_model": models[0] if models else platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_cores": cores,
        "cpu_usable": usable,
    }


def _nvidia_smi() -> dict[str, str] | None:
    """name, memory.total and driver_version of GPU 0 from nvidia-smi, when it is installed."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return None
    query = [binary, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    fields = [part.strip() for part in out.splitlines()[0].split(",")] if out.strip() else []
    if len(fields) != 3:
        return None
    return dict(zip(("gpu_name", "gpu_memory", "gpu_driver"), fields))


def accelerator() -> dict[str, Any] | None:
    """The first accelerator's name, memory, driver and platform version; None on CPU.

    Example:
        >>> import jax
        >>> (accelerator() is None) == (jax.default_backend() == "cpu")
        True
    """
    if jax.default_backend() == "cpu":
        return None
    device = jax.devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    info: dict[str, Any] = {
        "name": device.device_kind,
        "memory_bytes": (stats or {}).get("bytes_limit"),
        # e.g. "cuda 12080": the CUDA version the runtime reports.
        "platform_version": getattr(device.client, "platform_version", None),
    }
    info.update(_nvidia_smi() or {})
    return info


def machine() -> dict[str, Any]:
    """What the figures were measured on: date, backend, CPU, accelerator and library versions.

    Example:
        >>> info = machine()
        >>> sorted(k for k in ("cpu_model", "cpu_count", "jax") if k in info)
        ['cpu_count', 'cpu_model', 'jax']
    """
    import jaxlib.version

    device = jax.devices()[0]
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "backend": jax.default_backend(),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        **cpu(),
        "processor": platform.processor() or platform.machine(),
        "accelerator": accelerator(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.version.__version__,
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


class DevicePeaks(NamedTuple):
    """The device's own rates, measured by this process (median of 5).

    Attributes:
        read_gb_per_s: a jitted ``jnp.sum`` over ``read_bytes`` of float32.
        read_bytes: that array's size: at least 4× the last-level cache, so
            the figure is memory bandwidth, not cache bandwidth.
        matmul_gflop_per_s: a jitted float32 ``n × n`` matmul, ``2 n³`` flops.
        matmul_size: ``n``.
    """

    read_gb_per_s: float
    read_bytes: int
    matmul_gflop_per_s: float
    matmul_size: int

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return self._asdict()


def _last_level_cache_bytes() -> int:
    """The largest CPU cache listed in sysfs (32 MiB where unreadable)."""
    sizes = []
    for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = path.read_text().strip().upper()
        scale = {"K": 1 << 10, "M": _MiB, "G": 1 << 30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes, default=32 * _MiB)


@functools.cache
def device_peaks(repeats: int = 5) -> DevicePeaks:
    """Measure the default device's read bandwidth and f32 matmul rate (cached per process).

    Example:
        >>> peaks = device_peaks()
        >>> peaks.read_gb_per_s > 0 and peaks.matmul_gflop_per_s > 0
        True
    """
    on_cpu = jax.default_backend() == "cpu"
    # GPU L2 caches are at most ~128 MiB; 1 GiB stays well clear of them.
    read_bytes = max(4 * _last_level_cache_bytes(), 64 * _MiB) if on_cpu else 1 << 30
    array = jnp.ones(read_bytes // 4, jnp.float32)
    total = aot(jnp.sum, array).call
    read = measure(lambda: total(array), repeats).run
    size = 1024 if on_cpu else 8192
    matrix = jnp.ones((size, size), jnp.float32)
    product = aot(jnp.matmul, matrix, matrix).call
    matmul = measure(lambda: product(matrix, matrix), repeats).run
    return DevicePeaks(
        read_gb_per_s=read_bytes / read.median / 1e9,
        read_bytes=read_bytes,
        matmul_gflop_per_s=2 * size**3 / matmul.median / 1e9,
        matmul_size=size,
    )
