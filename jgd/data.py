"""Datasets: the ``Dataset`` pytree, CSV loading, splitting and standardization."""

from __future__ import annotations

import csv
import io
import itertools
import math
import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgd._checks import (
    checked_before,
    first_nonfinite_row,
    leaves_finite,
    remember_checked,
    warn_if_float64_dropped,
)

__all__ = [
    "Dataset",
    "Standardization",
    "check_data",
    "check_dataset",
    "column_statistics",
    "encode_labels",
    "load_csv",
    "load_feature_rows",
    "load_labeled_csv",
    "permutation",
    "split",
    "standardize",
]

_MISSING_TOKENS = frozenset({"", "na", "nan", "null", "none", "n/a", "?"})
_MISSING_MODES = ("error", "drop", "ffill")


class Dataset(NamedTuple):
    """Features ``X`` (n, d) and targets ``y`` (n,) sharing their leading axis.

    ``fit`` and ``sweep`` also take ``X`` of shape (n, ...) (e.g. images) and
    ``y`` of shape (n, ...) (several targets, integer class labels), and any
    other pytree of arrays with a shared row axis (see ``check_data``).

    A ``NamedTuple``, so it is an immutable pytree: it can be passed through
    ``jax.jit``/``jax.vmap`` and indexed row-wise with ``jax.tree.map``.

    Example:
        >>> import jax.numpy as jnp, jgd
        >>> data = jgd.Dataset(jnp.ones((4, 2)), jnp.zeros(4))
        >>> data.n_rows
        4
    """

    X: jax.Array
    y: jax.Array

    @property
    def n_rows(self) -> int:
        """Number of rows (``len(dataset)`` is 2, the number of fields, as for any tuple)."""
        return int(np.shape(self.X)[0])

    @property
    def n_features(self) -> int:
        """Number of feature columns (values per row for ``X`` of rank > 2)."""
        return math.prod(np.shape(self.X)[1:])


class Standardization(NamedTuple):
    """Per-feature ``mean`` and ``scale`` learned from the training rows.

    Both are float64 NumPy arrays whatever JAX's precision, so that
    ``transform`` of new rows is computed exactly as ``standardize`` computed
    the training rows (rounding the mean to float32 first could shift a
    z-score by up to a whole unit for a column whose spread is a few float32
    steps of its mean).
    """

    mean: np.ndarray
    scale: np.ndarray

    def transform(self, X: jax.typing.ArrayLike) -> jax.Array:
        """Z-score raw features with the stored training statistics.

        Concrete inputs are computed in float64 and refused (``ValueError``)
        where a result does not fit the dtype; traced ones (inside ``jit``) in
        their own dtype.
        """
        if not isinstance(X, jax.core.Tracer):
            X = jnp.asarray(np.asarray(X, dtype=float) if _is_pandas(X) else X)
        if X.ndim != 2 or X.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"X must have shape (n, {self.mean.shape[0]}) to be standardized with these "
                f"statistics, got {X.shape}."
            )
        if isinstance(X, jax.core.Tracer):
            dtype = jnp.result_type(X.dtype, jnp.float32)
            mean, scale = (jnp.asarray(v, dtype) for v in (self.mean, self.scale))
            return (X - mean[None, :]) / scale[None, :]
        mean, scale = (np.asarray(v, dtype=np.float64) for v in (self.mean, self.scale))
        return _standardized(X, mean, scale, "X")

    def inverse(self, X: jax.typing.ArrayLike) -> jax.Array:
        """Map standardized features back to raw units."""
        X = jnp.asarray(X)
        dtype = jnp.result_type(X.dtype, jnp.float32)
        mean, scale = (jnp.asarray(v, dtype) for v in (self.mean, self.scale))
        return X * scale[None, :] + mean[None, :]


def _is_pandas(value: Any) -> bool:
    """A pandas (or other library's) array-like that is neither a NumPy nor a JAX array."""
    return not isinstance(value, (jax.Array, np.ndarray)) and hasattr(value, "__array__")


def _default_float() -> np.dtype:
    return np.dtype(jax.dtypes.canonicalize_dtype(np.float64))


def _as_array(value: Any) -> Any:
    """JAX arrays stay; pandas objects, NumPy arrays, lists and scalars become NumPy arrays."""
    if isinstance(value, jax.Array):
        return value
    if hasattr(value, "to_numpy") and not isinstance(value, np.ndarray):  # pandas
        return value.to_numpy()
    return np.asarray(value)


def _is_pandas(value: Any) -> bool:
    return hasattr(value, "to_numpy") and not isinstance(value, (np.ndarray, jax.Array))


def _check_leaves(named: list[tuple[str, Any]], name: str) -> list[Any]:
    """Row-axis, dtype and NaN/inf checks for named leaves; returns them as arrays."""
    arrays = [_as_array(leaf) for _, leaf in named]
    for (where, _), array in zip(named, arrays):
        if array.ndim == 0:
            raise ValueError(
                f"{where} is a scalar; every array of {name} needs a leading row axis."
            )
        dtype = array.dtype
        if jnp.issubdtype(dtype, jnp.complexfloating) or not (
            jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.bool_)
        ):
            raise TypeError(f"{where} must be real numbers, got dtype {dtype}.")
        warn_if_float64_dropped(dtype, where)
    rows = arrays[0].shape[0]
    for (where, _), array in zip(named, arrays):
        if array.shape[0] != rows:
            raise ValueError(
                f"{where} has {array.shape[0]} rows but {named[0][0]} has {rows}; every array "
                f"of {name} must have the same number of rows (its leading axis)."
            )
    if rows == 0:
        raise ValueError(f"{name} has 0 rows; give at least one example.")
    for (where, _), array, ok in zip(named, arrays, leaves_finite(arrays)):
        if not ok:
            host = np.asarray(array)
            row = first_nonfinite_row(host)
            kind = "NaN" if np.isnan(host[row]).any() else "inf"
            raise ValueError(
                f"{where} contains {kind} at row {row}; remove or impute it "
                f"(e.g. jgd.data.load_csv(..., missing='drop'))."
            )
    return [a if isinstance(a, jax.Array) else jnp.asarray(a) for a in arrays]


def check_dataset(data: Any, name: str = "data", *, tabular: bool = True) -> Dataset:
    """Validate a dataset and return it as a ``Dataset`` of JAX arrays.

    With ``tabular=True`` (default) ``X`` must be (n, d) and ``y`` (n,);
    ``tabular=False`` (what ``fit``/``sweep`` use) allows ``X`` of shape
    (n, ...) and ``y`` of shape (n, ...) (images, several targets, integer
    labels). pandas ``DataFrame``/``Series`` are accepted. Raises
    ``ValueError``/``TypeError`` naming the problem: wrong type or rank,
    mismatched lengths, no rows or no features, NaN or inf (with its row).
    """
    if isinstance(data, tuple) and not isinstance(data, Dataset) and len(data) == 2:
        data = Dataset(*data)
    if not isinstance(data, Dataset):
        raise TypeError(f"{name} must be a jgd.Dataset(X, y), got {type(data).__name__}.")
    X, y = (_as_array(field) for field in data)
    if X.ndim != 2 and (tabular or X.ndim < 2):
        hint = " Use X.reshape(-1, 1) for a single feature." if X.ndim == 1 else ""
        raise ValueError(f"{name}.X must be 2-D (rows, features), got shape {X.shape}.{hint}")
    if y.ndim != 1 and (tabular or y.ndim < 1):
        hint = (
            " Use y.ravel() for a single target column." if y.ndim == 2 and y.shape[1] == 1 else ""
        )
        raise ValueError(f"{name}.y must be 1-D (rows,), got shape {y.shape}.{hint}")
    if X.shape[0] != y.shape[0]:
        raise ValueError(
            f"{name}.X has {X.shape[0]} rows but {name}.y has {y.shape[0]}; they must match."
        )
    if X.shape[0] == 0:
        raise ValueError(f"{name} has 0 rows; give at least one example.")
    if math.prod(X.shape[1:]) == 0:
        raise ValueError(f"{name}.X has 0 feature columns; give at least one feature.")
    for field, array in (("X", X), ("y", y)):
        if not jnp.issubdtype(array.dtype, jnp.number) or jnp.issubdtype(array.dtype, jnp.bool_):
            raise TypeError(f"{name}.{field} must be numeric, got dtype {array.dtype}.")
    X, y = _check_leaves([(f"Input X of {name}", X), (f"Input y of {name}", y)], name)
    return Dataset(X, y)


def check_data(data: Any, name: str = "data") -> Any:
    """Validate a training batch: a ``Dataset`` or any pytree of arrays sharing their rows.

    A dict, tuple or NamedTuple of arrays of any rank, e.g.
    ``{"image": (n, 8, 8), "label": (n,) int32, "weight": (n,)}``: every leaf
    must have the same leading (row) axis; integer and boolean leaves are
    allowed (labels, masks) and only floating-point leaves are checked for
    NaN/inf. A plain ``(X, y)`` pair is read as a ``Dataset``; pandas objects
    are accepted as leaves. Errors name the leaf, e.g. ``data['label']``.

    Example:
        >>> import jax.numpy as jnp, jgd
        >>> batch = jgd.data.check_data({"x": jnp.ones((3, 2, 2)), "label": jnp.arange(3)})
        >>> sorted(batch)
        ['label', 'x']
    """
    reusable = type(data) in (Dataset, dict)  # returned as given once its arrays passed
    if reusable:
        leaves, treedef = jax.tree.flatten(data)
        if checked_before(("data", treedef), leaves):
            return data
    is_pair = isinstance(data, tuple) and not hasattr(data, "_fields") and len(data) == 2
    if isinstance(data, Dataset) or (is_pair and not any(map(_is_tree, data))):
        checked = check_dataset(data, name, tabular=False)
    else:
        paths, structure = jax.tree_util.tree_flatten_with_path(data, is_leaf=_is_pandas)
        if not paths:
            raise ValueError(f"{name} holds no arrays; give a Dataset(X, y) or a dict of arrays.")
        named = [(f"{name}{jax.tree_util.keystr(path)}", leaf) for path, leaf in paths]
        checked = jax.tree.unflatten(structure, _check_leaves(named, name))
    if reusable and all(a is b for a, b in zip(leaves, jax.tree.leaves(checked))):
        remember_checked(("data", treedef), leaves)
    return checked


def _is_tree(value: Any) -> bool:
    return isinstance(value, (dict, list, tuple)) and not _is_pandas(value)


def _parse_cell(text: str, path: str, line: int, column: str) -> float:
    if text.strip().lower() in _MISSING_TOKENS:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise ValueError(
            f"{path}, line {line}, column {column!r}: cannot read {text!r} as a number. "
            f"Choose numeric columns with features=[...] (--features on the command line)."
        ) from None
    if math.isnan(value):
        return math.nan
    if math.isinf(value):
        raise ValueError(f"{path}, line {line}, column {column!r}: value {text!r} is infinite.")
    return value


def load_csv(
    path: str | os.PathLike[str],
    target: str,
    features: Sequence[str] | None = None,
    missing: str = "error",
) -> Dataset:
    """Read a CSV file with a header row into a ``Dataset``.

    The file must be UTF-8 (a byte-order mark, as Excel's "CSV UTF-8" writes,
    is ignored); every column needs its own name (empty trailing columns, from
    trailing commas, are dropped); values must fit JAX's default float dtype.
    Anything else is a ``ValueError`` naming the file, line and column.

    Args:
        path: the CSV file; its first line names the columns.
        target: the column to predict (``y``).
        features: the columns to use as ``X``, in order; by default every
            column except ``target`` (all must then be numeric).
        missing: what to do with empty/``NA``/``NaN`` cells in the used columns:
            ``"error"`` (raise, naming the line), ``"drop"`` (drop those rows) or
            ``"ffill"`` (carry the previous row's value forward).

    Returns:
        A ``Dataset`` in JAX's default float dtype.

    Example:
        >>> import jgd
        >>> from jgd.datasets import seattle_weather_path
        >>> data = jgd.data.load_csv(seattle_weather_path(), "temp_max", ["temp_min"])
        >>> data.X.shape
        (1461, 1)
    """
    path = os.fspath(path)
    return _dataset_from_table(path, _read_table(path), target, features, missing)


def _dataset_from_table(
    path: str, table: _Table, target: str, features: Sequence[str] | None, missing: str
) -> Dataset:
    """``load_csv``'s checks and parsing on an already read table."""
    if missing not in _MISSING_MODES:
        raise ValueError(f"missing must be one of {_MISSING_MODES}, got {missing!r}.")
    if target not in table.header:
        raise ValueError(f"{path}: target column {target!r} not found; columns are {table.header}.")
    if features is None:
        features = [name for name in table.header if name != target]
    features = list(features)
    if not features:
        raise ValueError(f"{path}: no feature columns; name them with features=[...].")
    if target in features:
        raise ValueError(f"{path}: the target {target!r} is also listed as a feature.")
    values, _ = _numeric_columns(path, table, [*features, target], missing)
    return Dataset(jnp.asarray(values[:, :-1]), jnp.asarray(values[:, -1]))


def _as_number(value: Any) -> float | None:
    """``value`` as a float when it is a number (or text reading as one), else None."""
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def encode_labels(values: Any) -> tuple[np.ndarray, list[Any]]:
    """Map class labels (text or numbers) to integer codes 0..k-1, keeping the mapping.

    ``classes`` is sorted: numerically when every label is a number (or text
    reading as one, e.g. ``"2.0"`` from a CSV), else as text. Numbers that are
    all whole come back as ``int`` (``1.0`` -> ``1``), so 0/1 labels keep their
    codes. ``classes[code]`` gives a label back, e.g. for ``jgd predict``.

    Args:
        values: a sequence or 1-D array of labels; missing ones (NaN, None or
            empty text) are refused.

    Returns:
        ``(codes, classes)``: int32 codes of shape (n,) and the k class labels.

    Example:
        >>> import jgd
        >>> codes, classes = jgd.data.encode_labels(["sun", "rain", "sun", "fog"])
        >>> codes.tolist(), classes
        ([2, 1, 2, 0], ['fog', 'rain', 'sun'])
        >>> [classes[c] for c in codes]
        ['sun', 'rain', 'sun', 'fog']
        >>> jgd.data.encode_labels([2.0, 10.0, 1.0])
        (array([1, 2, 0], dtype=int32), [1, 2, 10])
    """
    items = np.asarray(values, dtype=object).ravel().tolist()
    if not items:
        raise ValueError("encode_labels: no labels given.")
    numbers = [_as_number(item) for item in items]
    if any(item is None or (n is not None and math.isnan(n)) for item, n in zip(items, numbers)):
        raise ValueError("encode_labels: missing label (NaN or None); drop or fill those rows.")
    if all(n is not None for n in numbers):
        whole = all(float(n).is_integer() for n in numbers)
        keys: list[Any] = [int(n) if whole else n for n in numbers]
    else:
        keys = [str(item).strip() for item in items]
        if "" in keys:
            raise ValueError("encode_labels: empty label; drop or fill those rows.")
    classes = sorted(set(keys))
    index = {label: code for code, label in enumerate(classes)}
    return np.asarray([index[key] for key in keys], dtype=np.int32), classes


def load_labeled_csv(
    path: str | os.PathLike[str],
    target: str,
    features: Sequence[str] | None = None,
    missing: str = "error",
) -> tuple[Dataset, list[Any]]:
    """``load_csv`` for classification: the target column holds class labels.

    The labels (text such as ``sun``/``rain``, or numbers) become integer
    codes with ``encode_labels``; ``y`` holds the codes (in JAX's float dtype,
    as ``load_csv`` returns; ``jgd.losses.softmax_cross_entropy`` and
    ``jgd.metrics.accuracy`` read them as integers). The features are parsed,
    and missing cells handled, exactly as ``load_csv`` does; an empty target
    cell counts as missing.

    Returns:
        ``(data, classes)``: ``classes[int(data.y[i])]`` is row i's label.

    Example:
        >>> import jgd
        >>> from jgd.datasets import seattle_weather_path
        >>> data, classes = jgd.data.load_labeled_csv(seattle_weather_path(), "weather",
        ...                                            ["precipitation", "wind"])
        >>> classes
        ['drizzle', 'fog', 'rain', 'snow', 'sun']
        >>> classes[int(data.y[1])]
        'rain'
    """
    path = os.fspath(path)
    table = _read_table(path)
    if target not in table.header:
        raise ValueError(f"{path}: target column {target!r} not found; columns are {table.header}.")
    column = table.header.index(target)
    cells = [row[column].strip() if column < len(row) else "" for row in table.rows]
    present = [cell for cell in cells if cell.lower() not in _MISSING_TOKENS]
    if not present:
        raise ValueError(f"{path}: the target column {target!r} has no labels.")
    codes, classes = encode_labels(present)
    code_of = dict(zip(present, codes.tolist()))
    rows = [
        [*row[:column], str(code_of.get(cell, "")), *row[column + 1 :]]
        if column < len(row)
        else row
        for row, cell in zip(table.rows, cells)
    ]
    data = _dataset_from_table(
        path, _Table(table.header, rows, table.lines), target, features, missing
    )
    return data, classes


def csv_columns(path: str | os.PathLike[str]) -> list[str]:
    """The column names in a CSV file's header line (checked as ``load_csv`` does)."""
    return _read_table(os.fspath(path), need_rows=False).header


def load_features(
    path: str | os.PathLike[str], features: Sequence[str], missing: str = "error"
) -> jax.Array:
    """Read only the named feature columns of a CSV (no target needed), e.g. to predict.

    Same parsing and ``missing`` handling as ``load_csv``.
    """
    return load_feature_rows(path, features, missing)[0]


def load_feature_rows(
    path: str | os.PathLike[str], features: Sequence[str], missing: str = "error"
) -> tuple[jax.Array, np.ndarray]:
    """``load_features`` and the file line number of each row it returns.

    With ``missing="drop"`` rows go missing; the line numbers (1 is the
    header line) say which input row each output row is.
    """
    if missing not in _MISSING_MODES:
        raise ValueError(f"missing must be one of {_MISSING_MODES}, got {missing!r}.")
    path = os.fspath(path)
    if not features:
        raise ValueError(f"{path}: no feature columns to read.")
    values, lines = _numeric_columns(path, _read_table(path), list(features), missing)
    return jnp.asarray(values), lines


class _Table(NamedTuple):
    """A CSV file's column names and its non-blank data rows with their line numbers."""

    header: list[str]
    rows: list[list[str]]
    lines: list[int]


def _decode_text(path: str) -> str:
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        return raw.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a byte-order mark
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ValueError(
            f"{path}, line {line}: byte {raw[error.start]:#04x} (offset {error.start}) is not "
            f"UTF-8 text; the file is in another encoding (e.g. Latin-1). Save it as UTF-8, "
            f"e.g. iconv -f latin1 -t utf-8 IN.csv > OUT.csv, or 'CSV UTF-8' in Excel."
        ) from None


def _read_table(path: str, need_rows: bool = True) -> _Table:
    if not os.path.isfile(path):
        raise ValueError(f"CSV file not found: {path!r}.")
    reader = csv.reader(io.StringIO(_decode_text(path), newline=""))
    rows, lines, end = [], [], 0
    try:
        for row in reader:
            start, end = end + 1, reader.line_num  # a quoted cell may span lines
            if any(cell.strip() for cell in row):
                rows.append(row)
                lines.append(start)
    except csv.Error as error:
        raise ValueError(f"{path}, line {reader.line_num}: not valid CSV ({error}).") from None
    if not rows:
        raise ValueError(f"{path} is empty: expected a header line naming the columns.")
    if need_rows and len(rows) == 1:
        raise ValueError(f"{path} has a header but no data rows.")
    header, data = _clean_header(path, rows[0], rows[1:], lines[1:])
    return _Table(header, data, lines[1:])


def _clean_header(
    path: str, names: list[str], rows: list[list[str]], lines: list[int]
) -> tuple[list[str], list[list[str]]]:
    """Strip names, drop empty trailing columns, refuse unnamed and duplicate ones."""
    names = [name.strip() for name in names]
    width = len(names)
    while width and not names[width - 1]:
        width -= 1
    trimmed = []
    for row, line in zip(rows, lines):
        filled = [i for i, cell in enumerate(row[width:], start=width) if cell.strip()]
        if not filled:
            row = row[:width]  # trailing commas: empty cells of no column
        elif filled[0] < len(names):
            raise ValueError(
                f"{path}, line {line}: column {filled[0] + 1} holds {row[filled[0]]!r} but has "
                "no name in the header line; name it or remove the value."
            )
        trimmed.append(row)
    names = names[:width]
    unnamed = [i + 1 for i, name in enumerate(names) if not name]
    if not names or unnamed:
        which = f"columns {unnamed} have" if unnamed else "no column has"
        raise ValueError(f"{path}: {which} no name in the header line; name every column.")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(
            f"{path}: duplicate column names {duplicates} in the header line; rename them so "
            "that each column has its own name."
        )
    return names, trimmed


def _numeric_columns(
    path: str, table: _Table, names: list[str], missing: str
) -> tuple[np.ndarray, np.ndarray]:
    """The named columns as float64 values that fit JAX's float dtype, and their line numbers."""
    header = table.header
    for name in names:
        if name not in header:
            raise ValueError(f"{path}: column {name!r} not found; columns are {header}.")
    columns = [header.index(name) for name in names]
    values = np.empty((len(table.rows), len(columns)))
    for i, (row, line) in enumerate(zip(table.rows, table.lines)):
        if len(row) != len(header):
            raise ValueError(
                f"{path}, line {line}: expected {len(header)} cells, found {len(row)}."
            )
        for j, (column, name) in enumerate(zip(columns, names)):
            values[i, j] = _parse_cell(row[column], path, line, name)
    _check_range(values, path, names, table.lines)
    values, lines = _handle_missing(values, missing, path, names, table.lines)
    return values.astype(_default_float()), lines


def _check_range(values: np.ndarray, path: str, names: list[str], lines: list[int]) -> None:
    """Refuse values JAX's float dtype would turn into inf, or into 0 / a few-bit subnormal."""
    info = np.finfo(_default_float())
    magnitude = np.abs(values)
    bad = (magnitude > info.max) | ((magnitude < info.tiny) & (magnitude > 0))
    if not bad.any():
        return
    row, column = (int(i) for i in np.argwhere(bad)[0])
    raise ValueError(
        f"{path}, line {lines[row]}, column {names[column]!r}: {values[row, column]:.6g} is "
        f"outside {info.dtype}'s range (magnitudes {info.tiny:.3g} to {info.max:.3g}); rescale "
        "that column (e.g. change its units) or turn on 64-bit JAX "
        "(jax.config.update('jax_enable_x64', True))."
    )


def _handle_missing(
    values: np.ndarray, missing: str, path: str, names: list[str], lines: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    holes = np.isnan(values)
    if not holes.any():
        return values, np.asarray(lines)
    first_row, first_col = np.argwhere(holes)[0]
    where = f"{path}, line {lines[first_row]}, column {names[first_col]!r}"
    if missing == "error":
        raise ValueError(
            f"{where}: missing value. Use missing='drop' to drop such rows or "
            f"missing='ffill' to carry the previous value forward."
        )
    if missing == "drop":
        keep = ~holes.any(axis=1)
        if not keep.any():
            raise ValueError(f"{path}: every row has a missing value; nothing is left to use.")
        return values[keep], np.asarray(lines)[keep]
    if holes[0].any():
        raise ValueError(f"{where}: missing value in the first row cannot be forward-filled.")
    filled = values.copy()
    for i in range(1, filled.shape[0]):
        gap = np.isnan(filled[i])
        filled[i, gap] = filled[i - 1, gap]
    return filled, np.asarray(lines)


_FEISTEL_ROUNDS = 8
_SORT_BELOW = 64  # tiny domains make a Feistel network too regular; sorting them is cheap


def _round_function(half: jax.Array, round_key: jax.Array) -> jax.Array:
    """A keyed 32-bit hash: golden-ratio multiply, add the key, MurmurHash3's finaliser."""
    x = half * jnp.uint32(0x9E3779B1) + round_key
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * jnp.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


def permutation(key: jax.Array, n: int) -> jax.Array:
    """A random permutation of ``range(n)`` from ``key``, without sorting: the epoch row order.

    ``jax.random.permutation`` sorts random keys, which on CPU costs 3.5 ms for
    10,000 rows (two sorts), as long as 70 mini-batch steps of a small MLP.
    This is the sort-free shuffle GPU libraries use (Mitchell et al., 2021,
    "Bandwidth-optimal random shuffling for GPUs"): a keyed bijection of
    ``[0, 2^k)`` (an eight-round unbalanced Feistel network whose round
    function is a 32-bit integer hash of the half and a round key drawn from
    ``key``), then the values below ``n`` taken in order, which is a
    permutation of ``range(n)``; ~150 µs for 10,000 rows. Below 64 rows, where
    the network's few bits make it too regular, it is ``jax.random.permutation``.
    Tested for uniformity (where each row lands, chi-square) on both paths.
    Every epoch of a mini-batch ``fit`` or ``sweep`` visits rows in
    ``permutation(jax.random.fold_in(key, epoch), n)``.

    Args:
        key: a PRNG key.
        n: number of rows (a Python int).

    Example:
        >>> import jax, jgd
        >>> order = jgd.data.permutation(jax.random.key(0), 6)
        >>> sorted(order.tolist())
        [0, 1, 2, 3, 4, 5]
    """
    if not 1 <= n <= 2**30:
        raise ValueError(f"n must be between 1 and 2**30, got {n}.")
    if n < _SORT_BELOW:
        return jax.random.permutation(key, n).astype(jnp.int32)
    bits = (n - 1).bit_length()  # the smallest power-of-two domain holding range(n)
    left_bits = bits // 2
    right_bits = bits - left_bits
    left_mask = jnp.uint32((1 << left_bits) - 1)
    right_mask = jnp.uint32((1 << right_bits) - 1)
    round_keys = jax.random.bits(key, (_FEISTEL_ROUNDS,), jnp.uint32)
    domain = jax.lax.iota(jnp.uint32, 1 << bits)
    left, right = domain >> right_bits, domain & right_mask
    for i in range(_FEISTEL_ROUNDS):
        # Each half-round xors one half with a hash of the other: a bijection.
        if i % 2 == 0:
            left = left ^ (_round_function(right, round_keys[i]) & left_mask)
        else:
            right = right ^ (_round_function(left, round_keys[i]) & right_mask)
    values = ((left << right_bits) | right).astype(jnp.int32)
    # The relative order of 0..n-1 within a random permutation of the larger
    # domain is itself a random permutation of range(n).
    return values[jnp.nonzero(values < n, size=n)[0]]


def split(
    dataset: Dataset,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    *,
    key: jax.Array | None = None,
) -> tuple[Dataset, ...]:
    """Split rows into consecutive parts (train/validation/test by default).

    Args:
        dataset: the rows to split.
        fractions: positive fractions summing to 1, one per part.
        key: a PRNG key to shuffle the rows first; without one the order is kept
            (right for time series such as the weather data).

    Returns:
        One ``Dataset`` per fraction; sizes are rounded so no row is lost.

    Example:
        >>> import jax.numpy as jnp, jgd
        >>> parts = jgd.data.split(jgd.Dataset(jnp.ones((10, 1)), jnp.zeros(10)))
        >>> [part.n_rows for part in parts]
        [7, 2, 1]
    """
    dataset = check_dataset(dataset, "dataset")
    fractions = [float(f) for f in fractions]
    if len(fractions) < 2 or any(not math.isfinite(f) or f <= 0 for f in fractions):
        raise ValueError(f"fractions must be two or more positive numbers, got {fractions}.")
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must sum to 1, got {fractions} (sum {sum(fractions):g}).")
    n = dataset.n_rows
    bounds = [0, *(math.floor(n * c + 0.5) for c in np.cumsum(fractions)[:-1]), n]
    sizes = np.diff(bounds)
    if (sizes < 1).any():
        raise ValueError(
            f"{n} rows are too few to split into {fractions}: part sizes would be {list(sizes)}."
        )
    if key is not None:
        order = jax.random.permutation(key, n)
        dataset = jax.tree.map(lambda a: a[order], dataset)
    return tuple(
        jax.tree.map(lambda a, lo=lo, hi=hi: a[lo:hi], dataset)
        for lo, hi in itertools.pairwise(bounds)
    )


def _is_constant(var: np.ndarray, mean: np.ndarray, n_rows: int) -> np.ndarray:
    """Columns whose variance is within float64 round-off of their magnitude.

    scikit-learn's rule (``sklearn.preprocessing._data._is_constant_feature``):
    the bound on the error of the two-pass variance (Chan, Golub and LeVeque),
    ``n eps var + (n |mean| eps)^2``. A computed variance below it is round-off
    of a constant column, not a spread; dividing by its square root would
    multiply any later different value by up to 1e16.
    """
    eps = np.finfo(np.float64).eps
    return var <= n_rows * eps * var + (n_rows * mean * eps) ** 2


def column_statistics(X: Any, name: str = "X") -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and scale (standard deviation) for standardizing, in float64.

    The one rule every jgd standardization uses (``standardize``, the
    estimators, ``jgd fit``): statistics are computed in float64 on the host,
    each column first divided by a power of two near its largest magnitude so
    that squaring cannot overflow (float32 values of 1e19 would); a column
    that is constant up to round-off (see ``_is_constant``) gets scale 1.

    Args:
        X: a 2-D array (rows, columns) of finite numbers.
        name: what ``X`` is, for error messages.

    Returns:
        ``(mean, scale)``, float64 NumPy arrays of shape ``(columns,)``.

    Raises:
        ValueError: if ``X`` is not 2-D with at least one row or holds
            NaN/inf (or, as a safeguard, a mean or scale is not finite).

    Example:
        >>> import numpy as np, jgd
        >>> mean, scale = jgd.data.column_statistics(np.array([[1.0, 5.0], [3.0, 5.0]]))
        >>> mean.tolist(), scale.tolist()
        ([2.0, 5.0], [1.0, 1.0])
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"{name} must be 2-D (rows, columns) with rows, got shape {X.shape}.")
    finite = np.isfinite(X)
    if not finite.all():
        row, column = (int(i) for i in np.argwhere(~finite)[0])
        raise ValueError(
            f"{name}: column {column} holds {X[row, column]} at row {row}; remove or impute "
            "non-finite values first."
        )
    peak = np.max(np.abs(X), axis=0)
    # A power of two: dividing by it is exact, so the statistics lose nothing.
    unit = np.ldexp(1.0, np.frexp(np.where(peak > 0, peak, 1.0))[1] - 1)
    unit = np.where(np.isfinite(unit), unit, 1.0)
    scaled = X / unit
    mean = scaled.mean(axis=0)
    var = ((scaled - mean) ** 2).mean(axis=0)
    constant = _is_constant(var, mean, X.shape[0])
    mean, scale = mean * unit, np.where(constant, 1.0, np.sqrt(var) * unit)
    bad = ~(np.isfinite(mean) & np.isfinite(scale))
    if bad.any():
        column = int(np.argmax(bad))
        raise ValueError(
            f"{name}: column {column} has a non-finite mean or scale ({mean[column]}, "
            f"{scale[column]}); remove NaN/inf values first."
        )
    return mean, scale


def _as_host_dataset(data: Any) -> Any:
    """Accept pandas (or other array-like) ``X``/``y`` by converting them to float arrays."""
    if not (isinstance(data, tuple) and len(data) == 2):
        return data
    fields = []
    for field in data:
        if not _is_pandas(field):
            fields.append(field)
            continue
        try:
            fields.append(np.asarray(field, dtype=float))
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"cannot use a {type(field).__name__} as numeric data ({error}); convert it to "
                "numbers first, e.g. df.astype(float) or df.to_numpy(dtype=float, na_value=nan)."
            ) from None
    return Dataset(*fields)


def _standardized(X: jax.Array, mean: np.ndarray, scale: np.ndarray, name: str) -> jax.Array:
    """``(X - mean) / scale`` computed in float64, refused if it does not fit X's float dtype."""
    dtype = X.dtype if jnp.issubdtype(X.dtype, jnp.floating) else _default_float()
    values = (np.asarray(X, dtype=np.float64) - mean) / scale
    limit = float(jnp.finfo(dtype).max)
    too_big = np.abs(values) > limit
    if too_big.any():
        row, column = (int(i) for i in np.argwhere(too_big)[0])
        raise ValueError(
            f"{name}.X standardized at row {row}, column {column} is {values[row, column]:.3g}, "
            f"beyond {jnp.dtype(dtype).name}'s range: that value is far outside the training "
            f"rows' spread (mean {mean[column]:.3g}, scale {scale[column]:.3g})."
        )
    return jnp.asarray(values, dtype)


def standardize(train: Dataset, *others: Dataset) -> tuple[Any, ...]:
    """Z-score features using the training rows' mean and standard deviation only.

    Statistics come from ``column_statistics``: float64, overflow-safe, and a
    feature that is constant (up to round-off) gets scale 1, as in
    scikit-learn's StandardScaler. Standardized values are computed in float64
    and must fit ``X``'s dtype (``ValueError`` otherwise). Targets are left as
    they are. ``X``/``y`` may be pandas objects (converted with
    ``np.asarray(..., dtype=float)``).

    Returns:
        ``(train_std, *others_std, stats)`` where ``stats`` is a
        ``Standardization`` (float64 statistics) that maps new raw data the
        same way, to the same values.

    Example:
        >>> import jax.numpy as jnp, jgd
        >>> train = jgd.Dataset(jnp.array([[1.0], [3.0]]), jnp.zeros(2))
        >>> train_std, stats = jgd.data.standardize(train)
        >>> train_std.X.ravel().tolist(), stats.mean.tolist()
        ([-1.0, 1.0], [2.0])
    """
    train = check_dataset(_as_host_dataset(train), "train")
    others = tuple(
        check_dataset(_as_host_dataset(other), f"others[{i}]") for i, other in enumerate(others)
    )
    for i, other in enumerate(others):
        if other.n_features != train.n_features:
            raise ValueError(
                f"others[{i}] has {other.n_features} features but train has {train.n_features}."
            )
    mean, scale = column_statistics(train.X, "train.X")
    names = ("train", *(f"others[{i}]" for i in range(len(others))))
    standardized = [
        Dataset(_standardized(d.X, mean, scale, name), d.y)
        for d, name in zip((train, *others), names)
    ]
    return (*standardized, Standardization(mean, scale))


def _rows_sharding(mesh: Any, axis: str | None = None) -> Any:
    from jax.sharding import NamedSharding, PartitionSpec

    axis = axis or ("data" if "data" in mesh.axis_names else mesh.axis_names[0])
    return NamedSharding(mesh, PartitionSpec(axis)), mesh.shape[axis]


def shard(dataset: Dataset, mesh: Any, axis: str | None = None) -> Dataset:
    """Place a dataset's rows across the devices of ``mesh`` (along ``axis``).

    Args:
        dataset: the rows to place.
        mesh: a ``jax.sharding.Mesh``.
        axis: the mesh axis to split rows over (default ``"data"`` if the mesh
            has it, else its first axis).

    The row count must divide evenly over that axis; ``jgd.fit(..., mesh=...)``
    handles the uneven case itself (XLA pads the last shard internally).

    Example:
        >>> import jax, jax.numpy as jnp, jgd
        >>> mesh = jax.make_mesh((1,), ("data",))
        >>> placed = jgd.data.shard(jgd.Dataset(jnp.ones((4, 2)), jnp.ones(4)), mesh)
        >>> placed.X.sharding.spec == jax.sharding.PartitionSpec("data")
        True
    """
    dataset = check_dataset(dataset, "dataset")
    sharding, count = _rows_sharding(mesh, axis)
    if dataset.n_rows % count:
        raise ValueError(
            f"{dataset.n_rows} rows do not split evenly over {count} devices; pass the data "
            "to jgd.fit(..., mesh=...), which handles a short last shard, or drop/pad rows."
        )
    return jax.device_put(dataset, sharding)


def load_npy(
    x_path: str | os.PathLike[str],
    y_path: str | os.PathLike[str],
    mesh: Any | None = None,
    axis: str | None = None,
) -> Dataset:
    """Load ``X`` and ``y`` from ``.npy`` files, memory-mapped, shard by shard.

    With a mesh, each device's rows are read from the memory-mapped files and
    copied straight to that device (``jax.make_array_from_callback``), so a
    dataset larger than one device's memory (or the host's) can be placed. The
    files are read with ``allow_pickle=False``.

    Example:
        >>> import os, tempfile, numpy as np, jax, jgd
        >>> folder = tempfile.mkdtemp()
        >>> np.save(f"{folder}/X.npy", np.ones((8, 2), np.float32))
        >>> np.save(f"{folder}/y.npy", np.zeros(8, np.float32))
        >>> mesh = jax.make_mesh((1,), ("data",))
        >>> jgd.data.load_npy(f"{folder}/X.npy", f"{folder}/y.npy", mesh).X.shape
        (8, 2)
    """
    X = np.load(os.fspath(x_path), mmap_mode="r", allow_pickle=False)
    y = np.load(os.fspath(y_path), mmap_mode="r", allow_pickle=False)
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise ValueError(
            f"expected X (n, d) and y (n,) with the same n, got {X.shape} and {y.shape}."
        )
    dtype = _default_float()
    if mesh is None:
        return check_dataset(Dataset(jnp.asarray(X, dtype), jnp.asarray(y, dtype)))
    sharding, count = _rows_sharding(mesh, axis)
    if X.shape[0] % count:
        raise ValueError(f"{X.shape[0]} rows do not split evenly over {count} devices.")

    def place(source: np.ndarray) -> jax.Array:
        return jax.make_array_from_callback(
            source.shape, sharding, lambda index: np.asarray(source[index], dtype)
        )

    return check_dataset(Dataset(place(X), place(y)))
