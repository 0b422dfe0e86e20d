"""Timing helpers shared by the benchmark scripts.

Every figure is measured in one run, side by side: warm-up first (so compile
time is reported apart), ``block_until_ready()`` on JAX results, the best of
several repeats, and the machine and library versions recorded with the result.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from typing import Any

import jax


def block(value: Any) -> Any:
    """Wait for every JAX array in ``value`` to be computed."""
    return jax.block_until_ready(value)


def seconds(function: Callable[[], Any], repeats: int = 5) -> float:
    """Best wall-clock time of ``repeats`` calls (the function must block)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def first_call_seconds(function: Callable[[], Any]) -> float:
    """Time of the first call, which includes tracing and compilation."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import numpy
    import optax

    device = jax.devices()[0]
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "backend": jax.default_backend(),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jax.lib.__version__ if hasattr(jax.lib, "__version__") else jax.__version__,
        "optax": optax.__version__,
        "numpy": numpy.__version__,
    }


def write_json(path: str, payload: dict[str, Any]) -> None:
    """Write ``payload`` atomically (temp file in the same folder, then rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False) as handle:
        json.dump(payload, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, path)
