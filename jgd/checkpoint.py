"""Checkpoints of a running ``fit``/``sweep``: the full state in one atomic, checksummed ``.npz``.

A checkpoint holds every array of the run's state (params, optimizer state,
epoch counters, history so far, best-validation params, status) and a
*fingerprint* of the problem it belongs to: the config, the state's shapes and
dtypes, a process-independent description of the loss and optimizer (function
names and closed-over values), the hyperparameter values, the PRNG key and a
hash of the data. Resuming a different problem is refused with what differs.
"""

from __future__ import annotations

import functools
import hashlib
import os
from typing import Any

import jax
import numpy as np

from jgd.serialization import as_jax_array, read_npz, write_npz

__all__ = ["fingerprint", "load_state", "save_state"]

#: /2: the engine's state (a warm start's first epoch, metrics, aux) and content
#: fingerprints of closed-over arrays; /1 checkpoints are refused with this format named.
FORMAT = "jgd-checkpoint/2"


def _describe(value: Any, depth: int = 0) -> Any:
    """A JSON description of ``value`` that is the same in every process."""
    if depth > 6:
        return "..."
    if isinstance(value, jax.tree_util.Partial):
        return {
            "partial": _describe(value.func, depth + 1),
            "args": [_describe(a, depth + 1) for a in value.args],
            "keywords": {k: _describe(v, depth + 1) for k, v in sorted(value.keywords.items())},
        }
    if isinstance(value, functools.partial):
        return {
            "partial": _describe(value.func, depth + 1),
            "args": _describe(value.args, depth + 1),
        }
    if isinstance(value, (jax.Array, np.ndarray, np.generic)):
        if jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
            return "prng-key"
        return _describe_array(np.asarray(value))
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if hasattr(value, "_fields"):  # NamedTuple: its type and fields
        return {
            type(value).__name__: {
                f: _describe(getattr(value, f), depth + 1) for f in value._fields
            }
        }
    if isinstance(value, (list, tuple)):
        return [_describe(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): _describe(v, depth + 1) for k, v in sorted(value.items(), key=str)}
    if callable(value):
        qualname = getattr(value, "__qualname__", type(value).__name__)
        name = f"{getattr(value, '__module__', '?')}.{qualname}"
        cells = getattr(value, "__closure__", None) or ()
        captured = []
        for cell in cells:
            try:
                captured.append(_describe(cell.cell_contents, depth + 1))
            except ValueError:  # an empty cell
                captured.append(None)
        return {"function": name, "closure": captured} if captured else {"function": name}
    return type(value).__name__


def _readable(array: np.ndarray) -> list | None:
    """Small, finite, real arrays as JSON lists (so a difference can be shown), else None."""
    if array.size > 16 or array.dtype.kind not in "biufV":
        return None
    if array.dtype.kind == "V":  # bfloat16, float8_*: ml_dtypes scalars are not JSON
        array = array.astype(np.float64)
    # NaN != NaN: a list holding one would never compare equal to itself.
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        return None
    return array.tolist()


def _describe_array(array: np.ndarray) -> dict[str, Any]:
    """An array by its contents' hash (every value counts), small ones also readable."""
    digest = hashlib.sha256(f"{array.dtype}|{array.shape}|".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    description = {"shape": list(array.shape), "dtype": str(array.dtype)}
    values = _readable(array)
    if values is not None:
        description["array"] = values
    description["sha256"] = digest.hexdigest()
    return description


def _data_hash(*datasets: Any) -> str:
    digest = hashlib.sha256()
    for data in datasets:
        if data is None:
            digest.update(b"none")
            continue
        for array in jax.tree.leaves(data):
            host = np.ascontiguousarray(np.asarray(array))
            digest.update(f"{host.dtype.str}{host.shape}".encode())
            digest.update(host.tobytes())
    return digest.hexdigest()


def _key_data(key: Any) -> Any:
    if key is None:
        return None
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.asarray(key).tolist()


def fingerprint(
    *,
    loss_fn: Any,
    optimizer: Any,
    data: Any,
    val_data: Any,
    key: Any,
    tol: Any,
    config: Any,
    state: Any,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a checkpoint must match to be resumed (all JSON values)."""
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    return {
        # Whether jgd's native kernel ran changes round-off, not the run: a
        # checkpoint may be resumed on a machine without it.
        # A mesh's row sharding is recorded by its spec and mesh shape (JSON values).
        "config": {
            k: _sharding_text(v) if k == "data_sharding" else v
            for k, v in config._asdict().items()
            if k != "native"
        },
        "state": [
            [jax.tree_util.keystr(path), list(leaf.shape), str(leaf.dtype)] for path, leaf in leaves
        ],
        "loss_fn": _describe(loss_fn),
        "optimizer": _describe(optimizer),
        "data": _data_hash(data, val_data),
        "key": _key_data(key),
        "tol": None if tol is None else float(tol),
        **(extra or {}),
    }


def _sharding_text(sharding: Any) -> str | None:
    if sharding is None:
        return None
    mesh = getattr(sharding, "mesh", None)
    shape = dict(mesh.shape) if mesh is not None else None
    return f"{getattr(sharding, 'spec', sharding)} on mesh {shape}"


def _first_difference(stored: Any, wanted: Any, where: str = "") -> str:
    """Where two descriptions first differ, e.g. 'keywords.learning_rate: 0.05 vs 0.07'."""
    if isinstance(stored, dict) and isinstance(wanted, dict):
        for key in sorted(set(stored) | set(wanted), key=str):
            if stored.get(key) != wanted.get(key):
                return _first_difference(stored.get(key), wanted.get(key), f"{where}.{key}")
    if isinstance(stored, list) and isinstance(wanted, list) and len(stored) == len(wanted):
        for i, (a, b) in enumerate(zip(stored, wanted)):
            if a != b:
                return _first_difference(a, b, f"{where}[{i}]")

    def short(value: Any) -> str:
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."

    return f"{where.lstrip('.') or 'value'}: {short(stored)} in the checkpoint, {short(wanted)} now"


def _grows(stored: Any, wanted: Any) -> bool:
    """Whether a stored history entry ``[path, shape, dtype]`` fits a longer run's.

    A run resumed with more epochs keeps more history records: one axis (the
    records) may be longer now; everything else must match.
    """
    path, old, dtype = stored
    if not (path.startswith(".history") and path == wanted[0] and dtype == wanted[2]):
        return False
    new = wanted[1]
    diffs = [i for i, (a, b) in enumerate(zip(old, new)) if a != b]
    return len(old) == len(new) and len(diffs) == 1 and old[diffs[0]] < new[diffs[0]]


def _allowing_more_epochs(stored: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """``stored`` as a run with more epochs than it was written for would fingerprint it.

    Resuming with a larger ``epochs`` continues the run; a smaller one is
    refused (the stored settings then differ).
    """
    config, now = stored.get("config"), wanted.get("config")
    if not (isinstance(config, dict) and isinstance(now, dict)):
        return stored
    if not isinstance(config.get("epochs"), int) or config["epochs"] > now.get("epochs", 0):
        return stored
    state, wanted_state = stored.get("state"), wanted.get("state")
    if isinstance(state, list) and isinstance(wanted_state, list):
        if len(state) == len(wanted_state):
            state = [w if _grows(s, w) else s for s, w in zip(state, wanted_state)]
    return {**stored, "config": {**config, "epochs": now["epochs"]}, "state": state}


def _differences(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    stored = _allowing_more_epochs(stored, wanted)
    names = {
        "config": "settings",
        "state": "parameter/state shapes or dtypes",
        "loss_fn": "loss function",
        "optimizer": "optimizer",
        "data": "training or validation data",
        "key": "PRNG key",
        "tol": "tol",
        "grid": "sweep grid",
    }
    found = []
    for field in sorted(set(stored) | set(wanted)):
        if stored.get(field) == wanted.get(field):
            continue
        label = names.get(field, field)
        if field == "config" and isinstance(stored.get(field), dict):
            changed = [
                f"{k}={stored[field].get(k)!r} (now {wanted[field].get(k)!r})"
                for k in sorted(set(stored[field]) | set(wanted[field]))
                if stored[field].get(k) != wanted[field].get(k)
            ]
            found.append(f"{label}: " + ", ".join(changed))
        elif field == "data":
            found.append(f"{label} differs (other values)")
        else:
            found.append(
                f"{label} differs ({_first_difference(stored.get(field), wanted.get(field))})"
            )
    return found


def save_state(path: str | os.PathLike[str], state: Any, print_: dict[str, Any]) -> None:
    """Write ``state`` and its fingerprint atomically (temp file, fsync, os.replace)."""
    leaves = jax.device_get(jax.tree.leaves(state))
    arrays = {f"s/{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
    write_npz(path, arrays, {"format": FORMAT, "fingerprint": print_})


def load_state(path: str | os.PathLike[str], template: Any, print_: dict[str, Any]) -> Any:
    """Read a checkpoint for the run whose fresh state is ``template``.

    Raises ``ValueError`` when the file is corrupted, truncated or holds
    pickled objects, or when it was written for another problem.
    """
    header, arrays = read_npz(path, FORMAT)
    differences = _differences(header.get("fingerprint", {}), print_)
    if differences:
        raise ValueError(
            f"checkpoint {os.fspath(path)} was written for another run: "
            + "; ".join(differences)
            + ". Delete it or choose another checkpoint path to start afresh."
        )
    leaves, treedef = jax.tree.flatten(template)
    if len(arrays) != len(leaves):
        raise ValueError(
            f"checkpoint {os.fspath(path)} has {len(arrays)} arrays, expected {len(leaves)}."
        )
    restored = []
    for i, leaf in enumerate(leaves):
        name = f"s/{i}"
        if name not in arrays:
            raise ValueError(f"checkpoint {os.fspath(path)} is corrupted: it lacks {name!r}.")
        what = f"checkpoint {os.fspath(path)}: state array {name!r}"
        restored.append(_restore(as_jax_array(arrays[name], what, leaf.dtype), leaf))
    return jax.tree.unflatten(treedef, restored)


def _restore(stored: jax.Array, leaf: Any) -> Any:
    """A stored array as the template's leaf; shorter history records go first."""
    if stored.shape == leaf.shape:
        return stored
    # A resume with more epochs: the records written so far, then the template's empties.
    index = tuple(slice(0, n) for n in stored.shape)
    return jax.numpy.asarray(leaf).at[index].set(stored)
