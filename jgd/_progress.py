"""Progress bars (tqdm, the optional ``progress`` extra) for chunked runs."""

from __future__ import annotations

import sys
from typing import Any

#: A run is "long" (progress on by default, on a terminal) from this many row-epochs.
LONG_RUN_ROW_EPOCHS = 10_000_000
#: Chunks per run: the bar moves about this many times.
CHUNKS = 50


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


def bar(total: int, description: str) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError(
            "progress=True needs tqdm: pip install 'jgd[progress]' (or pip install tqdm)."
        ) from None
    return tqdm(total=total, desc=description, unit="epoch", dynamic_ncols=True, leave=True)


def chunk_size(epochs: int) -> int:
    return max(1, -(-epochs // CHUNKS))
