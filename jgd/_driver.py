"""Running a compiled training loop: whole, or chunk by chunk for progress and checkpoints.

A ``Program`` bundles what the driver needs from an entry point: the three
compiled pieces (start, advance to an epoch, finish), optionally ``run`` (a
fresh run in one chunk with as few calls and transfers as it can: a small
fit's fixed cost is mostly program calls and device reads), and how to read a
state (still running? what to show? what fingerprint?). ``RunOptions`` holds
how to run it. A run with a progress bar or checkpoints calls the same
compiled loop program chunk by chunk, so it equals a plain run bit for bit.
(Two programs holding the same loop do not: a program of start, loop and
finish fused the loop differently from the loop-only program and changed a
momentum buffer's last bit, even with optimization barriers around the loop,
as the chunked-equals-unchunked property found. ``fit`` therefore builds a
fresh state inside its one loop program, behind a ``cond`` (large states
and mesh runs call a start program first), and every chunk calls that
loop program.)
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import numpy as np

from jgd import _progress

__all__ = ["Program", "RunOptions", "check_checkpointing", "drive"]


class Program(NamedTuple):
    """An entry point's compiled loop and how to read its state."""

    start: Callable[[], Any]  # () -> the fresh state
    advance: Callable[[Any, jax.Array], Any]  # (state, stop_at) -> state at loop epoch stop_at
    finish: Callable[[Any], Any]  # state -> outcome
    running: Callable[[Any], bool]  # whether any run in the state still runs
    postfix: Callable[[Any], dict[str, str]]  # what the progress bar shows
    fingerprint: Callable[[Any], dict[str, Any]]  # what a checkpoint must match
    # (stop_at) -> what finish returns, for a fresh run in one chunk
    run: Callable[[jax.Array], Any] | None = None


class RunOptions(NamedTuple):
    """How to run a program: epochs, bar, checkpoints.

    ``epochs`` is the loop epoch the run ends at; a warm start begins at
    ``first_epoch`` (the epochs it already ran).
    """

    epochs: int
    description: str
    progress: bool = False
    checkpoint: str | None = None
    checkpoint_every: int | None = None
    resume: bool = False
    first_epoch: int = 0
    # A long run goes in chunks of about half a second even without a bar or
    # checkpoints, and waits for each where Ctrl-C can reach it.
    long: bool = False


def check_checkpointing(
    checkpoint: Any, checkpoint_every: Any, resume: Any, epochs: int
) -> int | None:
    """Validate the checkpoint arguments; default to about ten checkpoints a run."""
    from jgd._checks import check_positive_int
    from jgd._io import check_writable

    if checkpoint is None:
        if checkpoint_every is not None or resume:
            raise ValueError("checkpoint_every and resume need checkpoint=PATH.")
        return None
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a file path, got {checkpoint!r}.")
    check_writable(checkpoint, "checkpoint")
    if checkpoint_every is None:
        return max(1, -(-epochs // 10))
    return check_positive_int(checkpoint_every, "checkpoint_every")


def _stops(options: RunOptions, done: int) -> Iterator[int]:
    """The loop epochs each chunk ends at."""
    if options.checkpoint_every is not None:
        every = options.checkpoint_every
        first = (done // every + 1) * every
        return iter([*range(first, options.epochs, every), options.epochs])
    if options.progress or options.long:
        return _progress.chunks(options.epochs, start=done)
    return iter([options.epochs])


_WAITER: concurrent.futures.ThreadPoolExecutor | None = None


def _wait(state: Any) -> Any:
    """Block until ``state`` is computed, in a way Ctrl-C interrupts.

    A blocking read inside XLA does not return to Python until the program
    ends, so a signal waits with it; a helper thread blocks instead while the
    main thread waits on a future, which a KeyboardInterrupt ends at once.
    """
    global _WAITER
    if _WAITER is None:
        _WAITER = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="jgd-wait")
    return _WAITER.submit(jax.block_until_ready, state).result()


def drive(program: Program, options: RunOptions) -> Any:
    """Run ``program`` to the end (or until every run stopped); return its outcome.

    A fresh run starts at epoch 0 and is running, so only a resumed state is
    read back before the first chunk (each read is a device round trip, a
    good part of a small fit's fixed cost).
    """
    from jgd import checkpoint as checkpoints

    one_chunk = not (options.checkpoint or options.progress or options.long)
    if program.run is not None and one_chunk:  # no state to show or save between chunks
        return program.run(np.int32(options.epochs))
    state = program.start()
    print_ = program.fingerprint(state) if options.checkpoint is not None else None
    done = options.first_epoch
    if options.checkpoint is not None and options.resume and os.path.exists(options.checkpoint):
        state = checkpoints.load_state(options.checkpoint, state, print_)
        done = int(np.max(jax.device_get(state.epoch)))
        if not program.running(state):
            return program.finish(state)
    stops = _stops(options, done)
    bar, compiled = None, False
    if options.progress:
        first = options.first_epoch
        bar = _progress.bar(options.epochs - first, options.description, initial=done - first)
    try:
        while done < options.epochs:
            stop_at = next(stops)
            # A NumPy scalar: no device op to build the argument.
            state = program.advance(state, np.int32(stop_at))
            if options.long:
                state = _wait(state)
            done = stop_at
            if options.checkpoint is not None:
                checkpoints.save_state(options.checkpoint, state, print_)
            if bar is not None:
                postfix = program.postfix(state)  # reads the state: the chunk has finished
                bar.update(done - options.first_epoch - bar.n)
                bar.set_postfix(**postfix)
                if not compiled:
                    _progress.compiled(bar, options.description)
                    compiled = True
            if done < options.epochs and not program.running(state):
                break
    finally:
        if bar is not None:
            bar.close()
    return program.finish(state)
