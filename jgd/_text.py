"""Plain-text tables and charts for the command line."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Right-aligned columns; floats printed with 6 significant digits."""

    def cell(value: object) -> str:
        if isinstance(value, (float, np.floating)):
            return f"{value:.6g}"
        return str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def ascii_chart(
    values: Sequence[float], *, width: int = 60, height: int = 10, log: bool = True
) -> str:
    """A small chart of ``values`` by epoch; log-scaled on both axes by default.

    A log epoch axis gives the first few epochs, where the loss falls fastest,
    as much room as the long tail.
    """
    data = np.asarray(values, dtype=float)
    finite = np.isfinite(data) & ((data > 0) if log else True)
    data = data[finite]
    if data.size == 0:
        return "(nothing finite to chart)"
    if log:
        picks = np.unique(np.round(np.geomspace(1, data.size, width)).astype(int)) - 1
    else:
        picks = np.unique(np.round(np.linspace(0, data.size - 1, width)).astype(int))
    points = np.log10(data[picks]) if log else data[picks]
    low, high = float(points.min()), float(points.max())
    span = high - low or 1.0
    levels = np.round((points - low) / span * (height - 1)).astype(int)
    grid = [[" "] * len(points) for _ in range(height)]
    for x, level in enumerate(levels):
        grid[height - 1 - level][x] = "*"

    def label(v: float) -> str:
        return f"{10**v:.3g}" if log else f"{v:.3g}"

    pad = max(len(label(low)), len(label(high)))
    lines = []
    for row_index, row in enumerate(grid):
        if row_index == 0:
            tag = label(high)
        elif row_index == height - 1:
            tag = label(low)
        else:
            tag = ""
        lines.append(f"{tag.rjust(pad)} |{''.join(row)}")
    lines.append(" " * pad + " +" + "-" * len(points))
    scale = "log-log scale" if log else "linear scale"
    lines.append(" " * pad + f"  epoch 1 .. {data.size} ({scale})")
    if not math.isfinite(float(np.asarray(values, dtype=float)[-1])):
        lines.append(" " * pad + "  (the last value is not finite)")
    return "\n".join(lines)
