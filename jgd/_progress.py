"""Progress bars (tqdm, the optional ``progress`` extra) for chunked runs."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

#: A run is "long" (progress on by default, on a terminal) from this many row-epochs
#: (about a second of linear regression on a laptop CPU; chunking costs a few ms per run).
LONG_RUN_ROW_EPOCHS = 100_000_000
#: Seconds one chunk of epochs aims to take: the bar moves about twice a second.
CHUNK_SECONDS = 0.5


#: Work (epochs × rows × (parameters + values per row)) from which a run may take about
#: a second or more: it then runs in chunks even without a bar, so Ctrl-C stops it promptly.
#: Measured on a 2-core CPU: linear 1M × 16 × 20 epochs (6.6e8) takes 0.23 s, an MLP epoch
#: of 10,000 rows × 4,800 params (4.8e7) 11 ms, so 3e9 is about a second.
LONG_RUN_WORK = 3_000_000_000


def long_run(epochs: int, rows: int, values_per_row: int, n_params: int) -> bool:
    """Whether a run is likely to take about a second or more (a cheap estimate)."""
    return epochs * rows * (values_per_row + n_params) >= LONG_RUN_WORK


def wanted(progress: bool | None, epochs: int, rows: int) -> bool:
    """Resolve ``progress=None``: on when stderr is a terminal and the run is long."""
    if progress is not None:
        return bool(progress)
    if not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return False
    if epochs * rows < LONG_RUN_ROW_EPOCHS:
        return False
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def bar(total: int, description: str, initial: int = 0) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError(
            "progress=True needs tqdm: pip install 'jgd[progress]' (or pip install tqdm)."
        ) from None
    # smoothing=0: the rate is the average since the clock last started (see ``compiled``).
    return tqdm(
        total=total,
        initial=initial,
        desc=f"{description} (compiling)",
        unit="epoch",
        dynamic_ncols=True,
        leave=True,
        smoothing=0,
    )


def compiled(progress_bar: Any, description: str) -> None:
    """After the first chunk (which also compiled the program): restart the bar's clock.

    The rate, and so the ETA, then come from run time only: a 4 s run no
    longer shows an ETA of minutes because its first chunk waited for XLA.
    """
    progress_bar.set_description(description, refresh=False)
    progress_bar.initial = progress_bar.n
    progress_bar.start_t = progress_bar._time()
    progress_bar.refresh()


def chunks(epochs: int, start: int = 0) -> Iterator[int]:
    """Epoch counts to stop at, sized from the time the previous chunk took.

    The first chunk is 1/64 of the run (it also compiles); then each chunk
    aims at ``CHUNK_SECONDS``, growing at most 8-fold at a time. Each chunk
    boundary costs a program entry (about a millisecond for 4 MB of data on
    CPU), so short runs get few chunks. The caller must finish each chunk
    (block on its result) before asking for the next.
    """
    done, size = start, max(1, epochs // 64)
    while done < epochs:
        start = time.perf_counter()
        done = min(done + size, epochs)
        yield done
        elapsed = max(time.perf_counter() - start, 1e-6)
        size = max(1, min(8 * size, int(size * CHUNK_SECONDS / elapsed)))
