"""Saving and loading parameters: one ``.npz``, atomic, checksummed, pickle-free."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import zipfile
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np

from jgd._checks import warn_if_float64_dropped
from jgd._io import atomic_write, check_writable

__all__ = ["Saved", "load", "save"]

FORMAT = "jgd-params/1"
_HEADER = "__jgd__"


class Saved(NamedTuple):
    """What ``load`` returns: the params pytree and the metadata given to ``save``."""

    params: Any
    metadata: dict[str, Any]


def _encode(tree: Any, leaves: list[np.ndarray]) -> Any:
    """The pytree's structure as JSON; its arrays appended to ``leaves``."""
    if isinstance(tree, Mapping):
        if not all(isinstance(k, str) for k in tree):
            raise TypeError("params dicts must have string keys to be saved.")
        return {"dict": {k: _encode(v, leaves) for k, v in tree.items()}}
    if isinstance(tree, (list, tuple)) and not hasattr(tree, "_fields"):
        kind = "list" if isinstance(tree, list) else "tuple"
        return {kind: [_encode(v, leaves) for v in tree]}
    if tree is None:
        return {"none": None}
    if isinstance(tree, (jax.Array, np.ndarray, np.generic, int, float)) and not isinstance(
        tree, bool
    ):
        leaves.append(np.asarray(tree))
        return {"array": len(leaves) - 1}
    raise TypeError(
        f"cannot save a {type(tree).__name__} in params: use dicts, lists, tuples and arrays."
    )


def _decode(node: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
    if not isinstance(node, dict) or len(node) != 1:
        raise ValueError(f"{path} is corrupted: its saved structure is malformed.")
    ((kind, value),) = node.items()
    if kind == "dict" and isinstance(value, dict):
        return {k: _decode(v, arrays, path) for k, v in value.items()}
    if kind in ("list", "tuple") and isinstance(value, list):
        items = [_decode(v, arrays, path) for v in value]
        return items if kind == "list" else tuple(items)
    if kind == "none":
        return None
    if kind == "array":
        name = f"p/{value}"
        if name not in arrays:
            raise ValueError(f"{path} is corrupted: its header names an array {name!r} it lacks.")
        return as_jax_array(arrays[name], f"{path}: params array {name!r}")
    raise ValueError(f"{path} is corrupted: unknown node {kind!r} in the saved structure.")


def _check_fits(array: np.ndarray, dtype: np.dtype, what: str) -> None:
    """Raise unless converting ``array`` to ``dtype`` keeps every value (up to rounding)."""
    hint = (
        "Turn on 64-bit JAX (jax.config.update('jax_enable_x64', True)) before loading, "
        "or load the file with numpy."
    )
    if array.size == 0 or dtype == np.bool_:
        return
    if np.issubdtype(array.dtype, np.integer) and np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        low, high = array.min(), array.max()
        if low < info.min or high > info.max:
            bad = high if high > info.max else low
            raise ValueError(
                f"{what} holds the {array.dtype} value {int(bad)}, which does not fit {dtype} "
                f"(JAX's 64-bit mode is off). {hint}"
            )
        return
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        converted = array.astype(dtype)
    overflow = np.isfinite(array) & ~np.isfinite(converted)
    underflow = (array != 0) & (converted == 0)
    for bad, word in ((overflow, "infinite"), (underflow, "zero")):
        if bad.any():
            value = array[bad].ravel()[0].item()
            raise ValueError(
                f"{what} holds the {array.dtype} value {value!r}, which would become {word} "
                f"in {dtype} (JAX's 64-bit mode is off). {hint}"
            )


def as_jax_array(array: np.ndarray, what: str, dtype: Any = None) -> jax.Array:
    """``array`` as a JAX array of ``dtype`` (default: JAX's for it), never changing a value.

    With 64-bit mode off JAX would wrap int64 values into int32 and turn
    float64 values beyond float32's range into inf or 0 silently: those raise
    ``ValueError`` naming ``what``. Rounding float64 to float32 is JAX's rule
    for every float64 input; it warns once (as ``jgd.fit`` does).
    """
    target = np.dtype(jax.dtypes.canonicalize_dtype(array.dtype if dtype is None else dtype))
    if target != array.dtype:
        _check_fits(array, target, what)
        warn_if_float64_dropped(array.dtype, what)
    return jnp.asarray(array, target)


def checksum(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over every array's name, dtype, shape and bytes (in name order)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _extended_dtype(name: Any) -> np.dtype | None:
    """The ml_dtypes dtype (bfloat16, float8_*, int4, ...) called ``name``, if any."""
    kind = getattr(ml_dtypes, name, None) if isinstance(name, str) else None
    try:
        dtype = np.dtype(kind) if kind is not None else None
    except TypeError:
        return None
    return dtype if dtype is not None and dtype.kind == "V" and dtype.name == name else None


def write_npz(path: str | os.PathLike[str], arrays: dict[str, np.ndarray], header: dict) -> None:
    """Atomically write ``arrays`` and a JSON ``header`` (with their checksum) as ``.npz``.

    NumPy writes ml_dtypes arrays (bfloat16, float8_*, ...) as anonymous
    void bytes it cannot read back as numbers, so they are stored as unsigned
    integers of the same width holding their bits, with their dtype names in
    the header (``"dtypes"``); ``read_npz`` views them back.
    """
    stored, extended = {}, {}
    for name, array in arrays.items():
        if array.dtype == object:
            raise TypeError(f"{name} is an object array; only numeric arrays are saved.")
        if _extended_dtype(array.dtype.name) is not None:
            extended[name] = array.dtype.name
            # (ascontiguousarray makes a 0-d array 1-d: reshape it back.)
            bits = np.ascontiguousarray(array).view(f"u{array.dtype.itemsize}")
            array = bits.reshape(array.shape)
        elif array.dtype.kind == "V":
            raise TypeError(f"{name} has dtype {array.dtype}, which cannot be saved.")
        stored[name] = array
    header = {**header, "checksum": checksum(stored)}
    if extended:
        header["dtypes"] = extended
    payload = {**stored, _HEADER: np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    atomic_write(path, lambda handle: np.savez(handle, **payload))


def _view_extended(path: str, header: dict, arrays: dict[str, np.ndarray]) -> None:
    """Give arrays stored as bits (see ``write_npz``) their ml_dtypes dtype back."""
    extended = header.get("dtypes", {})
    if not isinstance(extended, dict):
        raise ValueError(f"{path} is corrupted: its dtype table is malformed.")
    for name, dtype_name in extended.items():
        dtype = _extended_dtype(dtype_name)
        array = arrays.get(name)
        if dtype is None or array is None or array.dtype != np.dtype(f"u{dtype.itemsize}"):
            raise ValueError(f"{path} is corrupted: bad stored dtype {dtype_name!r} for {name!r}.")
        arrays[name] = array.view(dtype)


def read_npz(path: str | os.PathLike[str], expected_format: str) -> tuple[dict, dict]:
    """Read and verify a file written by ``write_npz``: ``(header, arrays)``.

    Refuses (``ValueError``) a missing, truncated or corrupted file, one whose
    checksum does not match, one with pickled objects, and other formats:
    whatever the damage, the error is a ``ValueError``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"no such file: {path!r}.")
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
        # np.load treats anything that does not start like a zip archive as a pickle.
        if not raw.startswith(b"PK\x03\x04") or not zipfile.is_zipfile(io.BytesIO(raw)):
            raise ValueError(f"{path} is corrupted or truncated: not an .npz (zip) archive.")
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except ValueError as error:
        if "corrupted or truncated" in str(error):
            raise
        if "pickle" in str(error).lower():
            raise ValueError(
                f"{path} contains pickled objects; refused (jgd never unpickles)."
            ) from None
        raise ValueError(f"{path} is corrupted or truncated: {error}") from None
    except (
        OSError,
        EOFError,
        zipfile.BadZipFile,
        KeyError,
        IndexError,
        TypeError,
        OverflowError,
        struct.error,
        # zipfile's answer to a damaged compression-method or flag field:
        NotImplementedError,
        RuntimeError,
    ) as error:
        raise ValueError(f"{path} is corrupted or truncated: {error!r}") from None
    if _HEADER not in arrays:
        raise ValueError(f"{path} is not a jgd file (no {_HEADER} entry).")
    try:
        header = json.loads(arrays.pop(_HEADER).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{path} is corrupted: its header is not valid JSON.") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} is corrupted: its header is not a JSON object.")
    if header.get("format") != expected_format:
        raise ValueError(
            f"{path} has format {header.get('format')!r}, expected {expected_format!r}."
        )
    if checksum(arrays) != header.get("checksum"):
        raise ValueError(f"{path} is corrupted: the checksum does not match its contents.")
    _view_extended(path, header, arrays)
    return header, arrays


def save(path: str | os.PathLike[str], params: Any, **metadata: Any) -> None:
    """Save params (dicts/lists/tuples of arrays) and metadata to ``path`` (``.npz``).

    The write is atomic (a temporary file, fsynced, then ``os.replace``), and the
    file holds only numeric arrays and JSON: nothing is pickled. Metadata values
    are JSON values (numbers, strings, lists, dicts) or arrays.

    Example:
        >>> import os, tempfile, jax.numpy as jnp, jgd
        >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
        >>> jgd.save(path, {"w": jnp.array([1.0, 2.0]), "b": jnp.array(0.5)}, model="linear")
        >>> saved = jgd.load(path)
        >>> saved.params["w"].tolist(), saved.metadata["model"]
        ([1.0, 2.0], 'linear')
    """
    check_writable(path, "save path")
    leaves: list[np.ndarray] = []
    structure = _encode(params, leaves)
    arrays = {f"p/{i}": leaf for i, leaf in enumerate(leaves)}
    plain, array_names = {}, []
    for name, value in metadata.items():
        if isinstance(value, (jax.Array, np.ndarray)):
            arrays[f"m/{name}"] = np.asarray(value)
            array_names.append(name)
            continue
        try:
            json.dumps(value)
        except TypeError:
            raise TypeError(
                f"metadata {name!r} must be a JSON value or an array, got {type(value).__name__}."
            ) from None
        plain[name] = value
    header = {"format": FORMAT, "structure": structure, "metadata": plain, "arrays": array_names}
    write_npz(path, arrays, header)


def load(path: str | os.PathLike[str]) -> Saved:
    """Load what ``save`` wrote, verifying its checksum (``allow_pickle=False``).

    Values come back exactly (bfloat16 and other ml_dtypes included); a value
    the current JAX cannot hold (an int64 beyond int32 or a float64 beyond
    float32's range while 64-bit mode is off) raises ``ValueError`` instead of
    wrapping or becoming inf.
    """
    path = os.fspath(path)
    header, arrays = read_npz(path, FORMAT)
    params = _decode(header.get("structure"), arrays, path)
    metadata = header.get("metadata", {})
    names = header.get("arrays", [])
    if not isinstance(metadata, dict) or not isinstance(names, list):
        raise ValueError(f"{path} is corrupted: its metadata is malformed.")
    metadata = dict(metadata)
    for name in names:
        key = f"m/{name}"
        if key not in arrays:
            raise ValueError(f"{path} is corrupted: its header names an array {key!r} it lacks.")
        metadata[name] = as_jax_array(arrays[key], f"{path}: metadata {name!r}")
    return Saved(params, metadata)
