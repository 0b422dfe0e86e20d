"""Saving and loading parameters: one ``.npz``, atomic, checksummed, pickle-free."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgd._io import atomic_write

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


def _decode(node: Any, arrays: dict[str, np.ndarray]) -> Any:
    ((kind, value),) = node.items()
    if kind == "dict":
        return {k: _decode(v, arrays) for k, v in value.items()}
    if kind in ("list", "tuple"):
        items = [_decode(v, arrays) for v in value]
        return items if kind == "list" else tuple(items)
    if kind == "none":
        return None
    if kind == "array":
        return jnp.asarray(arrays[f"p/{value}"])
    raise ValueError(f"unknown node {kind!r} in the saved structure.")


def checksum(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over every array's name, dtype, shape and bytes (in name order)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def write_npz(path: str | os.PathLike[str], arrays: dict[str, np.ndarray], header: dict) -> None:
    """Atomically write ``arrays`` and a JSON ``header`` (with their checksum) as ``.npz``."""
    for name, array in arrays.items():
        if array.dtype == object:
            raise TypeError(f"{name} is an object array; only numeric arrays are saved.")
    header = {**header, "checksum": checksum(arrays)}
    payload = {**arrays, _HEADER: np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    atomic_write(path, lambda handle: np.savez(handle, **payload))


def read_npz(path: str | os.PathLike[str], expected_format: str) -> tuple[dict, dict]:
    """Read and verify a file written by ``write_npz``: ``(header, arrays)``.

    Refuses (``ValueError``) a missing, truncated or corrupted file, one whose
    checksum does not match, one with pickled objects, and other formats.
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
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise ValueError(f"{path} is corrupted or truncated: {error}") from None
    if _HEADER not in arrays:
        raise ValueError(f"{path} is not a jgd file (no {_HEADER} entry).")
    try:
        header = json.loads(arrays.pop(_HEADER).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{path} is corrupted: its header is not valid JSON.") from None
    if header.get("format") != expected_format:
        raise ValueError(
            f"{path} has format {header.get('format')!r}, expected {expected_format!r}."
        )
    if checksum(arrays) != header.get("checksum"):
        raise ValueError(f"{path} is corrupted: the checksum does not match its contents.")
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
    """Load what ``save`` wrote, verifying its checksum (``allow_pickle=False``)."""
    header, arrays = read_npz(path, FORMAT)
    params = _decode(header["structure"], arrays)
    metadata = dict(header.get("metadata", {}))
    for name in header.get("arrays", []):
        metadata[name] = jnp.asarray(arrays[f"m/{name}"])
    return Saved(params, metadata)
