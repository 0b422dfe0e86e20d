"""Repeated timing with min/median/max, and compile time measured apart from run time.

Shared by ``jgd.bench`` and ``jgd.compare``. Two ways to measure compile time,
both taken while compiling rather than inferred from a slow first call:

- ``aot``: ``jax.jit(f).lower(*args).compile()`` timed on its own, for
  functions we can lower ourselves (the optax idioms);
- ``measure(..., jax_compiles=True)``: JAX's own compile events (tracing,
  lowering to MLIR, XLA compile) summed over the warm-up call, for code that
  builds its programs inside (``jgd.fit``, ``jgd.sweep``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.monitoring
import numpy as np

__all__ = ["AheadOfTime", "Measurement", "Timing", "aot", "measure", "time_calls"]

#: The three phases JAX reports for every program it builds; summed, they are
#: the compile time (other events, e.g. cache look-ups, overlap with these).
_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


class Timing(NamedTuple):
    """Wall-clock seconds of ``repeats`` calls: fastest, median and slowest."""

    min: float
    median: float
    max: float
    repeats: int

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return self._asdict()


class Measurement(NamedTuple):
    """Compile seconds (None where nothing is compiled) and the run's ``Timing``."""

    compile_s: float | None
    run: Timing


def time_calls(run: Callable[[], Any], repeats: int) -> Timing:
    """Time ``repeats`` calls of ``run``, each blocked on until its result is ready.

    Example:
        >>> time_calls(lambda: sum(range(100)), 5).repeats
        5
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}.")
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(run())
        samples.append(time.perf_counter() - start)
    return Timing(min(samples), float(np.median(samples)), max(samples), repeats)


class AheadOfTime(NamedTuple):
    """A function compiled ahead of time.

    Attributes:
        call: ``jax.jit(function)``, whose cache now holds the executable for
            those argument types: calling it recompiles nothing and takes
            jit's fast dispatch path (calling ``compiled`` directly goes
            through a slower Python path, ~2× for a small step).
        seconds: how long lowering and compiling took.
        compiled: the ``jax.stages.Compiled`` (for ``cost_analysis()``).
    """

    call: Callable[..., Any]
    seconds: float
    compiled: Any


def aot(function: Callable[..., Any], *args: Any) -> AheadOfTime:
    """Compile ``function`` for ``args`` with ``jax.jit(function).lower(*args).compile()``, timed.

    Example:
        >>> import jax.numpy as jnp
        >>> ahead = aot(lambda x: x + 1, jnp.ones(3))
        >>> float(ahead.call(jnp.ones(3))[0]), ahead.seconds > 0
        (2.0, True)
    """
    jitted = jax.jit(function)
    start = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    return AheadOfTime(jitted, time.perf_counter() - start, compiled)


def measure(
    run: Callable[[], Any],
    repeats: int,
    *,
    compile_s: float | None = None,
    jax_compiles: bool = False,
) -> Measurement:
    """One warm-up call, then ``repeats`` timed calls.

    Args:
        run: the call to time (its result is blocked on).
        repeats: timed calls after the warm-up.
        compile_s: compile seconds measured beforehand (``aot``), reported as is.
        jax_compiles: instead, report the compile time JAX records while the
            warm-up call builds its programs.

    Example:
        >>> measure(lambda: 1, 5).compile_s is None
        True
    """
    if not jax_compiles:
        jax.block_until_ready(run())
        return Measurement(compile_s, time_calls(run, repeats))
    seconds = []

    def listen(event: str, duration: float, **_: Any) -> None:
        if event in _COMPILE_EVENTS:
            seconds.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        jax.block_until_ready(run())
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    return Measurement(float(sum(seconds)), time_calls(run, repeats))
